//! The reducer, one event type at a time, and its properties over random logs.

mod common;

use std::collections::BTreeSet;

use common::*;
use proptest::prelude::*;
use protocol::event::*;
use protocol::state::*;
use protocol::*;

fn teacher() -> Actor {
    teacher_actor(None)
}

fn system(log: &mut Log, event: EventBody) {
    log.run(&Actor::System, Command::System { event }).unwrap();
}

#[test]
fn lifecycle_and_participants() {
    let mut log = Log::start();
    assert!(log.state.is_live());
    let s = log.join(1, Role::Student);
    let t = log.join(2, Role::Teacher);
    assert_eq!(log.state.present().count(), 2);
    let p = log.state.participant(pid_of(&s)).unwrap();
    assert_eq!(p.permissions, Role::Student.default_permissions());

    log.run(
        &t,
        Command::Mute {
            participant_id: pid_of(&s),
            media: MediaKind::Audio,
        },
    )
    .unwrap();
    assert!(log.state.participant(pid_of(&s)).unwrap().audio_muted);

    log.run(&s, Command::SetConsent { recording: false })
        .unwrap();
    assert!(!log.state.participant(pid_of(&s)).unwrap().recording_consent);

    log.run(&s, Command::RaiseHand).unwrap();
    assert_eq!(log.state.hands, vec![pid_of(&s)]);
    log.run(
        &s,
        Command::LowerHand {
            participant_id: None,
        },
    )
    .unwrap();
    assert!(log.state.hands.is_empty());

    log.run(
        &s,
        Command::Leave {
            participant_id: pid_of(&s),
            reason: LeaveReason::Left,
        },
    )
    .unwrap();
    assert_eq!(log.state.present().count(), 1);
    // the seat survives: a rejoin keeps its permissions
    log.join(1, Role::Student);
    assert!(log.state.participant(pid_of(&s)).unwrap().present);

    log.run(
        &t,
        Command::Remove {
            participant_id: pid_of(&s),
        },
    )
    .unwrap();
    assert!(log.state.participant(pid_of(&s)).unwrap().removed);

    log.run(&t, Command::End).unwrap();
    assert_eq!(log.state.status, SessionStatus::Ended);
    assert_eq!(log.state.present().count(), 0);
    assert!(log.state.ended_at.is_some());
}

#[test]
fn permission_changes_replace_the_set() {
    let mut log = Log::start();
    let s = log.join(1, Role::Student);
    let evs = log
        .run(
            &teacher(),
            Command::ChangePermissions {
                participant_id: pid_of(&s),
                grant: [Permission::Present, Permission::Speak].into(),
                revoke: [Permission::Chat].into(),
            },
        )
        .unwrap();
    let EventBody::PermissionChanged {
        granted,
        revoked,
        permissions,
        ..
    } = &evs[0].body
    else {
        panic!("expected permission.changed, got {:?}", evs[0].body)
    };
    assert_eq!(
        granted,
        &BTreeSet::from([Permission::Present, Permission::Speak])
    );
    assert_eq!(revoked, &BTreeSet::from([Permission::Chat]));
    assert_eq!(
        &log.state.participant(pid_of(&s)).unwrap().permissions,
        permissions
    );
    assert!(permissions.contains(&Permission::Present));
    assert!(!permissions.contains(&Permission::Chat));
}

#[test]
fn studio_state() {
    let mut log = Log::start();
    let deck: DeckId = log.fresh();
    log.run(
        &teacher(),
        Command::ShowSlide {
            deck_id: deck,
            index: 2,
            page_count: 5,
        },
    )
    .unwrap();
    assert_eq!(
        log.state.slide,
        Some(SlideRef {
            deck_id: deck,
            index: 2,
            page_count: 5
        })
    );
    log.run(
        &teacher(),
        Command::SetScene {
            scene: Scene::Slides,
        },
    )
    .unwrap();
    assert_eq!(log.state.scene, Scene::Slides);
    log.run(
        &teacher(),
        Command::SetLayout {
            layout: Layout::Pip,
        },
    )
    .unwrap();
    assert_eq!(log.state.layout, Layout::Pip);

    let t = log.join(1, Role::Teacher);
    let stroke: StrokeId = log.fresh();
    log.run(
        &t,
        Command::Stroke {
            stroke_id: stroke,
            color: "#FF0000".into(),
            width: 3,
            points: vec![[0, 0], [10_000, 10_000]],
        },
    )
    .unwrap();
    assert_eq!(log.state.strokes.len(), 1);
    assert_eq!(log.state.strokes[0].color, "#ff0000");
    log.run(&t, Command::ClearWhiteboard).unwrap();
    assert!(log.state.strokes.is_empty());

    let cta: CtaId = log.fresh();
    log.run(
        &teacher(),
        Command::ShowCta {
            cta_id: cta,
            url: "https://example.edu/quiz".into(),
            label: "Quiz".into(),
        },
    )
    .unwrap();
    assert_eq!(log.state.ctas.len(), 1);
    log.run(&teacher(), Command::HideCta { cta_id: cta })
        .unwrap();
    assert!(log.state.ctas.is_empty());
}

#[test]
fn chat_questions_polls_notes() {
    let mut log = Log::start();
    let a = log.join(1, Role::Student);
    let b = log.join(2, Role::Student);
    let m: MessageId = log.fresh();
    log.run(
        &a,
        Command::Chat {
            message_id: m,
            text: "  hello  ".into(),
        },
    )
    .unwrap();
    assert_eq!(log.state.chat[0].text, "hello");
    log.run(&teacher(), Command::DeleteChat { message_id: m })
        .unwrap();
    assert!(log.state.chat[0].deleted);
    assert!(log.state.chat[0].text.is_empty());

    let q1: QuestionId = log.fresh();
    let q2: QuestionId = log.fresh();
    log.run(
        &a,
        Command::Ask {
            question_id: q1,
            text: "first?".into(),
        },
    )
    .unwrap();
    log.run(
        &a,
        Command::Ask {
            question_id: q2,
            text: "second?".into(),
        },
    )
    .unwrap();
    log.run(&b, Command::Upvote { question_id: q2 }).unwrap();
    let order: Vec<QuestionId> = log
        .state
        .questions_by_votes()
        .iter()
        .map(|q| q.question_id)
        .collect();
    assert_eq!(order, vec![q2, q1], "most upvoted first");
    log.run(
        &teacher(),
        Command::Answer {
            question_id: q2,
            answer: Some("yes".into()),
        },
    )
    .unwrap();
    assert_eq!(log.state.questions[&q2].status, QuestionStatus::Answered);
    log.run(&teacher(), Command::Dismiss { question_id: q1 })
        .unwrap();
    assert_eq!(log.state.questions[&q1].status, QuestionStatus::Dismissed);

    let poll: PollId = log.fresh();
    log.run(
        &teacher(),
        Command::OpenPoll {
            poll_id: poll,
            question: "2+2?".into(),
            options: vec!["3".into(), "4".into()],
            correct_option: Some(1),
        },
    )
    .unwrap();
    log.run(
        &a,
        Command::Vote {
            poll_id: poll,
            option: 1,
        },
    )
    .unwrap();
    log.run(
        &b,
        Command::Vote {
            poll_id: poll,
            option: 0,
        },
    )
    .unwrap();
    let evs = log
        .run(&teacher(), Command::ClosePoll { poll_id: poll })
        .unwrap();
    let EventBody::PollClosed { results, .. } = &evs[0].body else {
        panic!()
    };
    assert_eq!(
        results.iter().map(|r| r.votes).collect::<Vec<_>>(),
        vec![1, 1]
    );
    assert!(!log.state.polls[&poll].open);

    let note: NoteId = log.fresh();
    log.run(
        &a,
        Command::SaveNote {
            note_id: note,
            text: "remember chlorophyll".into(),
        },
    )
    .unwrap();
    assert_eq!(log.state.notes[&pid_of(&a)].len(), 1);
}

#[test]
fn safety_switches() {
    let mut log = Log::start();
    let s = log.join(1, Role::Student);
    log.run(&teacher(), Command::Lock { locked: true }).unwrap();
    assert!(log.state.locked);
    log.run(&teacher(), Command::ExamMode { enabled: true })
        .unwrap();
    assert!(log.state.exam_mode);
    log.run(
        &teacher(),
        Command::KillSwitch {
            switch: KillSwitch::Chat,
            engaged: true,
        },
    )
    .unwrap();
    log.run(
        &teacher(),
        Command::KillSwitch {
            switch: KillSwitch::Media {
                participant_id: pid_of(&s),
            },
            engaged: true,
        },
    )
    .unwrap();
    assert!(log.state.kill_switches.chat);
    assert!(log.state.kill_switches.media.contains(&pid_of(&s)));
    log.run(
        &teacher(),
        Command::KillSwitch {
            switch: KillSwitch::Recording,
            engaged: true,
        },
    )
    .unwrap();
    log.run(
        &teacher(),
        Command::KillSwitch {
            switch: KillSwitch::Multistream,
            engaged: true,
        },
    )
    .unwrap();
    assert!(log.state.kill_switches.recording && log.state.kill_switches.multistream);
}

#[test]
fn media_recording_and_post_class_events() {
    let mut log = Log::start();
    let t = log.join(1, Role::Teacher);
    let track: TrackId = log.fresh();
    system(
        &mut log,
        EventBody::TrackPublished {
            track_id: track,
            participant_id: pid_of(&t),
            kind: MediaKind::Video,
            source: TrackSource::Screen,
            codec: "VP8".into(),
            simulcast: vec!["h".into(), "l".into()],
        },
    );
    assert_eq!(log.state.tracks.len(), 1);
    // the screen scene needs a screen track, which now exists
    log.run(
        &teacher(),
        Command::SetScene {
            scene: Scene::Screen,
        },
    )
    .unwrap();
    system(
        &mut log,
        EventBody::MediaQuality {
            participant_id: pid_of(&t),
            loss_permille: 3,
            rtt_ms: 20,
            bitrate_kbps: 1500,
        },
    );
    system(&mut log, EventBody::TrackUnpublished { track_id: track });
    assert!(log.state.tracks.is_empty());

    system(
        &mut log,
        EventBody::RecordingArmed {
            started_at: chrono::DateTime::from_timestamp(1_750_000_000, 0).unwrap(),
            offset_ms: 0,
        },
    );
    assert_eq!(log.state.recording.status, RecordingStatus::Armed);
    system(
        &mut log,
        EventBody::RecordingSegment {
            index: 0,
            start_ms: 0,
            end_ms: 6000,
            bytes: 10,
            sha256: "00".into(),
            object_key: "k".into(),
        },
    );
    system(
        &mut log,
        EventBody::RecordingGap {
            from_ms: 6000,
            to_ms: 7000,
            reason: "crash".into(),
        },
    );
    system(
        &mut log,
        EventBody::RecordingAlert {
            reason: "disk full".into(),
        },
    );
    system(
        &mut log,
        EventBody::CaptionSegment {
            start_ms: 0,
            end_ms: 900,
            text: "hello".into(),
            speaker: None,
        },
    );
    let dest: DestinationId = log.fresh();
    system(
        &mut log,
        EventBody::DestinationStatus {
            destination_id: dest,
            status: "live".into(),
            bitrate_kbps: Some(2600),
            dropped_frames: Some(3),
            reason: None,
        },
    );
    assert_eq!(log.state.recording.segments, 1);
    assert_eq!(log.state.recording.gaps, 1);
    assert_eq!(log.state.recording.alerts, 1);
    assert_eq!(log.state.captions, 1);
    assert_eq!(log.state.destinations[&dest], "live");
    assert_eq!(log.state.destination_stats[&dest].bitrate_kbps, Some(2600));
    assert_eq!(log.state.destination_stats[&dest].dropped_frames, 3);
    system(
        &mut log,
        EventBody::RecordingFinalized {
            duration_ms: 7000,
            segments: 1,
            manifest_key: "m".into(),
        },
    );
    assert_eq!(log.state.recording.status, RecordingStatus::Finalized);
    log.run(&teacher(), Command::End).unwrap();
    // core continues the log after the end
    let replay: ReplayId = log.fresh();
    let mut after = log.events.last().unwrap().clone();
    after.seq = after.seq.next();
    after.event_id = log.fresh();
    after.source = Source::Core;
    after.body = EventBody::SessionPublished {
        replay_id: replay,
        visibility: "tenant".into(),
    };
    log.state.apply(&after).unwrap();
    assert_eq!(log.state.published, Some(replay));
    after.seq = after.seq.next();
    after.event_id = log.fresh();
    after.body = EventBody::ArtifactReady {
        kind: "transcript".into(),
        version: 1,
    };
    assert_eq!(log.state.apply(&after).unwrap(), Applied::Applied);
}

#[test]
fn sequence_rules() {
    let mut log = Log::start();
    let s = log.join(1, Role::Student);
    log.run(&s, Command::RaiseHand).unwrap();
    let evs = log.events.clone();

    // not starting with session.started
    assert!(matches!(fold(&evs[1..]), Err(FoldError::NotStarted { .. })));
    // a gap
    let gapped: Vec<Envelope> = vec![evs[0].clone(), evs[2].clone()];
    assert_eq!(
        fold(&gapped).unwrap_err(),
        FoldError::SeqGap {
            expected: Seq(2),
            got: Seq(3)
        }
    );
    // another session's event
    let mut foreign = evs[1].clone();
    foreign.session_id = uid(999);
    let mut st = fold(&evs[..1]).unwrap();
    assert!(matches!(
        st.apply(&foreign),
        Err(FoldError::WrongSession { .. })
    ));
    // a different event claiming a taken seq
    let mut imposter = evs[2].clone();
    imposter.event_id = uid(4242);
    let mut st = fold(&evs).unwrap();
    assert!(matches!(
        st.apply(&imposter),
        Err(FoldError::SeqConflict { .. })
    ));
    // a redelivery changes nothing
    let before = st.clone();
    assert_eq!(st.apply(&evs[1]).unwrap(), Applied::Duplicate);
    assert_eq!(st, before);
    assert_eq!(fold(std::iter::empty()).unwrap_err(), FoldError::Empty);
}

// ---- properties over random valid logs ---------------------------------

/// One random step: an op code and two small numbers picking its targets.
fn step() -> impl Strategy<Value = (u8, u8, u8)> {
    (0u8..24, 0u8..6, 0u8..6)
}

/// Builds a valid log by running random commands through `decide`;
/// rejected commands are skipped, as a real writer would.
fn build(steps: &[(u8, u8, u8)]) -> Vec<Envelope> {
    let mut log = Log::start();
    let mut people: Vec<Actor> = Vec::new();
    let mut polls: Vec<PollId> = Vec::new();
    let mut questions: Vec<QuestionId> = Vec::new();
    let mut messages: Vec<MessageId> = Vec::new();
    let t = teacher();
    for &(op, a, b) in steps {
        let who = |i: u8| people.get(i as usize % people.len().max(1)).cloned();
        let cmd_actor: Option<(Actor, Command)> = match op {
            0 | 1 => {
                let role = if a == 0 {
                    Role::Assistant
                } else {
                    Role::Student
                };
                let n = people.len() as u128 + 1;
                let actor = Actor::Person {
                    user_id: Some(uid(0x8000 + n)),
                    participant_id: Some(uid(0x9000 + n)),
                    role,
                };
                people.push(actor.clone());
                Some((
                    actor.clone(),
                    Command::Join {
                        participant_id: pid_of(&actor),
                        user_id: actor.user_id(),
                        role,
                        display_name: format!("p{n}"),
                        edge_id: edge(),
                    },
                ))
            }
            2 => who(a).map(|p| {
                let id = pid_of(&p);
                (
                    p,
                    Command::Leave {
                        participant_id: id,
                        reason: LeaveReason::Left,
                    },
                )
            }),
            3 => who(a).map(|p| {
                let m: MessageId = log.fresh();
                messages.push(m);
                (
                    p,
                    Command::Chat {
                        message_id: m,
                        text: format!("msg {b}"),
                    },
                )
            }),
            4 => messages
                .get(a as usize)
                .map(|m| (t.clone(), Command::DeleteChat { message_id: *m })),
            5 => who(a).map(|p| {
                let q: QuestionId = log.fresh();
                questions.push(q);
                (
                    p,
                    Command::Ask {
                        question_id: q,
                        text: format!("q {b}"),
                    },
                )
            }),
            6 => who(a)
                .zip(questions.get(b as usize))
                .map(|(p, q)| (p, Command::Upvote { question_id: *q })),
            7 => questions.get(a as usize).map(|q| {
                (
                    t.clone(),
                    Command::Answer {
                        question_id: *q,
                        answer: None,
                    },
                )
            }),
            8 => questions
                .get(a as usize)
                .map(|q| (t.clone(), Command::Dismiss { question_id: *q })),
            9 => {
                let p: PollId = log.fresh();
                polls.push(p);
                Some((
                    t.clone(),
                    Command::OpenPoll {
                        poll_id: p,
                        question: "?".into(),
                        options: vec!["a".into(), "b".into(), "c".into()],
                        correct_option: Some(b as u32 % 3),
                    },
                ))
            }
            10 => who(a).zip(polls.last()).map(|(p, poll)| {
                (
                    p,
                    Command::Vote {
                        poll_id: *poll,
                        option: b as u32 % 4,
                    },
                )
            }),
            11 => polls
                .get(a as usize)
                .map(|p| (t.clone(), Command::ClosePoll { poll_id: *p })),
            12 => Some((
                t.clone(),
                Command::SetScene {
                    scene: Scene::ALL[a as usize % 5],
                },
            )),
            13 => {
                let deck: DeckId = uid(77);
                Some((
                    t.clone(),
                    Command::ShowSlide {
                        deck_id: deck,
                        index: a as u32,
                        page_count: 5,
                    },
                ))
            }
            14 => Some((
                t.clone(),
                Command::SetLayout {
                    layout: Layout::ALL[a as usize % 4],
                },
            )),
            15 => who(a).map(|p| (p, Command::RaiseHand)),
            16 => who(a).map(|p| {
                (
                    p,
                    Command::LowerHand {
                        participant_id: None,
                    },
                )
            }),
            17 => who(a).map(|p| {
                let id = pid_of(&p);
                (
                    t.clone(),
                    Command::ChangePermissions {
                        participant_id: id,
                        grant: if b % 2 == 0 {
                            [Permission::Present].into()
                        } else {
                            BTreeSet::new()
                        },
                        revoke: if b % 2 == 1 {
                            [Permission::Chat].into()
                        } else {
                            BTreeSet::new()
                        },
                    },
                )
            }),
            18 => Some((t.clone(), Command::Lock { locked: a % 2 == 0 })),
            19 => Some((
                t.clone(),
                Command::ExamMode {
                    enabled: a % 3 == 0,
                },
            )),
            20 => Some((
                t.clone(),
                Command::KillSwitch {
                    switch: KillSwitch::Chat,
                    engaged: a % 2 == 0,
                },
            )),
            21 => who(a).map(|p| {
                let n: NoteId = log.fresh();
                (
                    p,
                    Command::SaveNote {
                        note_id: n,
                        text: "n".into(),
                    },
                )
            }),
            22 => who(a).map(|p| {
                let id = pid_of(&p);
                (t.clone(), Command::Remove { participant_id: id })
            }),
            _ => (a == 5 && b == 5).then(|| (t.clone(), Command::End)),
        };
        if let Some((actor, cmd)) = cmd_actor {
            let _ = log.run(&actor, cmd);
        }
    }
    log.events
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn every_prefix_folds_and_folding_is_deterministic(steps in prop::collection::vec(step(), 0..120)) {
        let log = build(&steps);
        for n in 1..=log.len() {
            let a = fold(&log[..n]);
            prop_assert!(a.is_ok(), "prefix {} failed: {:?}", n, a);
            let b = fold(&log[..n]);
            prop_assert_eq!(a.unwrap(), b.unwrap());
        }
    }

    #[test]
    fn prefix_then_rest_equals_whole(steps in prop::collection::vec(step(), 0..120), cut in 1usize..200) {
        let log = build(&steps);
        let cut = cut.min(log.len());
        let mut st = fold(&log[..cut]).unwrap();
        for ev in &log[cut..] {
            st.apply(ev).unwrap();
        }
        prop_assert_eq!(st, fold(&log).unwrap());
    }

    #[test]
    fn redelivered_events_change_nothing(steps in prop::collection::vec(step(), 1..120), pick in any::<prop::sample::Index>()) {
        let log = build(&steps);
        let whole = fold(&log).unwrap();
        let again = &log[pick.index(log.len())];
        let mut st = whole.clone();
        prop_assert_eq!(st.apply(again).unwrap(), Applied::Duplicate);
        prop_assert_eq!(&st, &whole);
        // a stream with a redelivery spliced in folds to the same state
        let mut spliced = log.clone();
        let at = pick.index(log.len()) + 1;
        spliced.insert(at.min(spliced.len()), again.clone());
        prop_assert_eq!(fold(&spliced).unwrap(), whole);
    }

    #[test]
    fn gaps_are_rejected(steps in prop::collection::vec(step(), 4..120), pick in any::<prop::sample::Index>()) {
        let log = build(&steps);
        prop_assume!(log.len() >= 3);
        // drop one event that is neither the first nor the last
        let drop = 1 + pick.index(log.len() - 2);
        let mut gapped = log.clone();
        let dropped = gapped.remove(drop);
        let err = fold(&gapped).unwrap_err();
        prop_assert_eq!(err, FoldError::SeqGap { expected: dropped.seq, got: dropped.seq.next() });
    }
}
