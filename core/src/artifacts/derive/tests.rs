//! The derivations' unit tests.

use super::*;
use chrono::TimeZone;
use protocol::{Actor, EventId, Seq, SessionId, Source, TenantId};
use uuid::Uuid;

fn t0() -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000, 0).unwrap()
}

fn ev(seq: u64, at_ms: i64, body: EventBody) -> Envelope {
    Envelope {
        event_id: EventId::from_uuid(Uuid::from_u128(seq as u128)),
        tenant_id: TenantId::from_uuid(Uuid::from_u128(1)),
        session_id: SessionId::from_uuid(Uuid::from_u128(2)),
        seq: Seq(seq),
        occurred_at: t0() + chrono::Duration::milliseconds(at_ms),
        actor: Actor::System,
        source: Source::Core,
        v: 1,
        body,
    }
}

fn words(spec: &[(u64, &str)]) -> Transcript {
    let segments = spec
        .iter()
        .map(|(at, text)| {
            let ws: Vec<Word> = text
                .split_whitespace()
                .enumerate()
                .map(|(i, w)| Word {
                    start_ms: at + i as u64 * 400,
                    end_ms: at + i as u64 * 400 + 350,
                    text: w.into(),
                })
                .collect();
            TranscriptSegment {
                start_ms: *at,
                end_ms: ws.last().map(|w| w.end_ms).unwrap_or(*at),
                text: (*text).into(),
                words: ws,
                speaker: None,
            }
        })
        .collect();
    Transcript {
        model: "test".into(),
        duration_ms: 0,
        segments,
    }
}

#[test]
fn the_clock_follows_each_recorder_run() {
    let evs = vec![
        ev(
            1,
            0,
            EventBody::RecordingArmed {
                started_at: t0() + chrono::Duration::milliseconds(500),
                offset_ms: 0,
            },
        ),
        ev(
            2,
            20_000,
            EventBody::RecordingArmed {
                started_at: t0() + chrono::Duration::milliseconds(20_000),
                offset_ms: 15_000,
            },
        ),
    ];
    let c = Clock::from_events(&evs);
    assert_eq!(
        c.media_ms(t0() + chrono::Duration::milliseconds(10_500)),
        10_000
    );
    assert_eq!(
        c.media_ms(t0() + chrono::Duration::milliseconds(21_000)),
        16_000
    );
    // before the recorder started: its first instant
    assert_eq!(c.media_ms(t0()), 0);
}

#[test]
fn chapters_open_at_scene_and_slide_changes() {
    let deck = DeckId::from_uuid(Uuid::from_u128(9));
    let mut slides = SlideText::new();
    slides.insert((deck, 0), "\n  Photosynthesis\nlight and leaves".into());
    slides.insert((deck, 1), "The Calvin cycle\n".into());
    let armed = ev(
        1,
        0,
        EventBody::RecordingArmed {
            started_at: t0(),
            offset_ms: 0,
        },
    );
    let evs = vec![
        armed,
        ev(
            2,
            20_000,
            EventBody::SceneChanged {
                scene: Scene::Slides,
            },
        ),
        ev(
            3,
            21_000,
            EventBody::SlideChanged {
                deck_id: deck,
                index: 0,
                page_count: 2,
            },
        ),
        ev(
            4,
            50_000,
            EventBody::SlideChanged {
                deck_id: deck,
                index: 1,
                page_count: 2,
            },
        ),
        // no change seen: no chapter
        ev(
            5,
            60_000,
            EventBody::SceneChanged {
                scene: Scene::Slides,
            },
        ),
        ev(
            6,
            80_000,
            EventBody::SceneChanged {
                scene: Scene::Camera,
            },
        ),
    ];
    let clock = Clock::from_events(&evs);
    let m = markers(&evs, &clock, &slides);
    let t = words(&[(85_000, "energy energy storage storage glucose")]);
    let ch = chapters(&m, &t, &slides, 100_000);
    let got: Vec<(u64, &str, Option<u64>)> = ch
        .iter()
        .map(|c| (c.start_ms, c.title.as_str(), c.source_event_seq))
        .collect();
    assert_eq!(
        got,
        vec![
            (0, "Introduction", None),
            (20_000, "Photosynthesis", Some(2)),
            (50_000, "The Calvin cycle", Some(4)),
            (80_000, "Energy, storage", Some(6)),
        ]
    );
    assert_eq!(ch.last().unwrap().end_ms, 100_000);
    for w in ch.windows(2) {
        assert_eq!(w[0].end_ms, w[1].start_ms);
    }
}

#[test]
fn a_long_chapter_splits_where_the_topic_changes() {
    let mut spec = Vec::new();
    for i in 0..12 {
        spec.push((
            i * 15_000,
            "mitochondria produce energy through respiration inside cells",
        ));
    }
    for i in 12..24 {
        spec.push((
            i * 15_000,
            "volcanoes erupt magma through tectonic plates under oceans",
        ));
    }
    let t = words(&spec);
    let ch = chapters(&[], &t, &SlideText::new(), 360_000);
    assert_eq!(ch.len(), 2, "{ch:?}");
    assert_eq!(ch[1].source, "topic");
    assert!(
        (175_000..=185_000).contains(&ch[1].start_ms),
        "cut at the shift: {}",
        ch[1].start_ms
    );
    assert!(
        ch[1].title.to_lowercase().contains("volcanoe"),
        "{}",
        ch[1].title
    );
}

#[test]
fn highlights_have_answered_questions_and_polls() {
    let q = protocol::QuestionId::from_uuid(Uuid::from_u128(50));
    let q2 = protocol::QuestionId::from_uuid(Uuid::from_u128(51));
    let p = protocol::PollId::from_uuid(Uuid::from_u128(60));
    let pid = protocol::ParticipantId::from_uuid(Uuid::from_u128(70));
    let evs = vec![
        ev(
            1,
            0,
            EventBody::RecordingArmed {
                started_at: t0(),
                offset_ms: 0,
            },
        ),
        ev(
            2,
            10_000,
            EventBody::QuestionAsked {
                question_id: q,
                participant_id: pid,
                text: "Why is the sky blue?".into(),
            },
        ),
        ev(
            3,
            11_000,
            EventBody::QuestionAsked {
                question_id: q2,
                participant_id: pid,
                text: "unanswered".into(),
            },
        ),
        ev(
            4,
            15_000,
            EventBody::QuestionAnswered {
                question_id: q,
                answer: Some("Rayleigh scattering".into()),
            },
        ),
        ev(
            5,
            20_000,
            EventBody::PollOpened {
                poll_id: p,
                question: "Best colour?".into(),
                options: vec!["red".into(), "blue".into()],
                correct_option: Some(1),
            },
        ),
        ev(
            6,
            30_000,
            EventBody::PollClosed {
                poll_id: p,
                results: vec![
                    protocol::event::PollResult {
                        option: 0,
                        label: "red".into(),
                        votes: 1,
                    },
                    protocol::event::PollResult {
                        option: 1,
                        label: "blue".into(),
                        votes: 3,
                    },
                ],
            },
        ),
    ];
    let clock = Clock::from_events(&evs);
    let h = highlights(&evs, &clock, 60_000);
    let q = h.iter().find(|h| h.kind == "question").expect("question");
    assert_eq!((q.start_ms, q.end_ms), (10_000, 15_000));
    assert_eq!(q.detail["answer"], "Rayleigh scattering");
    assert_eq!(h.iter().filter(|h| h.kind == "question").count(), 1);
    let p = h.iter().find(|h| h.kind == "poll").expect("poll");
    assert_eq!((p.start_ms, p.end_ms), (20_000, 30_000));
    assert_eq!(p.detail["votes"], 4);
    assert!(p.title.contains("blue"), "{}", p.title);
}

#[test]
fn a_burst_of_activity_is_an_engagement_highlight() {
    let mut act: Vec<u64> = (0..10).map(|i| i * 60_000).collect();
    act.extend((0..8).map(|i| 300_000 + i * 1000));
    let h = engagement(&act, 600_000);
    assert_eq!(h.len(), 1, "{h:?}");
    assert_eq!(h[0].start_ms, 300_000);
}

#[test]
fn vtt_cues_are_well_formed_and_short() {
    let mut t = words(&[(
        1_000,
        "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty",
    )]);
    t.segments.push(TranscriptSegment {
        start_ms: 3_723_004,
        end_ms: 3_724_000,
        text: " Hello.".into(),
        words: vec![],
        speaker: None,
    });
    let vtt = t.to_vtt();
    assert!(vtt.starts_with("WEBVTT\n\n1\n00:00:01.000 --> "), "{vtt}");
    assert!(
        vtt.contains("01:02:03.004 --> 01:02:04.000\nHello.\n"),
        "{vtt}"
    );
    assert_eq!(vtt.matches(" --> ").count(), 3, "{vtt}");
}

#[test]
fn key_terms_prefer_what_is_said_often_and_shown() {
    let t = words(&[(
        0,
        "the derivative measures change and the derivative of position is velocity velocity",
    )]);
    let s = summary(&t, &["Velocity and acceleration".into()], &[], &[], 10_000);
    assert_eq!(s.key_terms[0].term, "velocity");
    assert_eq!(s.key_terms[1].term, "derivative");
    assert_eq!(s.words, 12);
}
