//! The writer's rules: each denial names its reason; bad input changes nothing.

mod common;

use common::*;
use expect_test::{Expect, expect};
use protocol::event::*;
use protocol::*;

/// Runs a command and renders the outcome as text: the event types on
/// success, `kind code [missing]` on rejection. The state must not change on
/// a rejection.
fn check(log: &mut Log, actor: &Actor, cmd: Command, expect: Expect) {
    let before = log.state.clone();
    let out = match log.run(actor, cmd) {
        Ok(evs) => {
            let types: Vec<&str> = evs.iter().map(|e| e.event_type()).collect();
            format!("ok {}", types.join(" "))
        }
        Err(r) => {
            assert_eq!(log.state, before, "a rejection must change nothing");
            match r.missing_permission {
                Some(p) => format!("{:?} {} [{p}]", r.kind, r.code),
                None => format!("{:?} {}", r.kind, r.code),
            }
        }
    };
    expect.assert_eq(out.trim_end());
}

#[test]
fn students_cannot_run_the_class() {
    let mut log = Log::start();
    let s = log.join(1, Role::Student);
    let other = log.join(2, Role::Student);
    check(
        &mut log,
        &s,
        Command::SetScene {
            scene: Scene::Whiteboard,
        },
        expect!["Forbidden missing_permission [control_scene]"],
    );
    check(
        &mut log,
        &s,
        Command::End,
        expect!["Forbidden missing_permission [end_session]"],
    );
    check(
        &mut log,
        &s,
        Command::ChangePermissions {
            participant_id: pid_of(&s),
            grant: [Permission::Present].into(),
            revoke: Default::default(),
        },
        expect!["Forbidden missing_permission [manage_permissions]"],
    );
    check(
        &mut log,
        &s,
        Command::OpenPoll {
            poll_id: uid(50),
            question: "q".into(),
            options: vec!["a".into(), "b".into()],
            correct_option: None,
        },
        expect!["Forbidden missing_permission [manage_polls]"],
    );
    check(
        &mut log,
        &s,
        Command::Remove {
            participant_id: pid_of(&other),
        },
        expect!["Forbidden missing_permission [moderate]"],
    );
    check(
        &mut log,
        &s,
        Command::Lock { locked: true },
        expect!["Forbidden missing_permission [moderate]"],
    );
    check(
        &mut log,
        &s,
        Command::KillSwitch {
            switch: KillSwitch::Chat,
            engaged: true,
        },
        expect!["Forbidden missing_permission [kill_switch]"],
    );
    check(
        &mut log,
        &s,
        Command::System {
            event: EventBody::RecordingArmed {
                started_at: chrono::DateTime::from_timestamp(1_750_000_000, 0).unwrap(),
                offset_ms: 0,
            },
        },
        expect!["Forbidden system_only"],
    );
    // a student who has not joined can do nothing
    let ghost = Actor::Person {
        user_id: Some(uid(5)),
        participant_id: None,
        role: Role::Student,
    };
    check(
        &mut log,
        &ghost,
        Command::RaiseHand,
        expect!["Forbidden not_joined"],
    );
}

#[test]
fn a_grant_lets_a_student_present_and_a_revoke_takes_it_back() {
    let mut log = Log::start();
    let s = log.join(1, Role::Student);
    let t = teacher_actor(None);
    check(
        &mut log,
        &s,
        Command::SetLayout {
            layout: Layout::Grid,
        },
        expect!["Forbidden missing_permission [control_scene]"],
    );
    check(
        &mut log,
        &t,
        Command::ChangePermissions {
            participant_id: pid_of(&s),
            grant: [Permission::ControlScene].into(),
            revoke: Default::default(),
        },
        expect!["ok permission.changed"],
    );
    check(
        &mut log,
        &s,
        Command::SetLayout {
            layout: Layout::Grid,
        },
        expect!["ok layout.changed"],
    );
    check(
        &mut log,
        &t,
        Command::ChangePermissions {
            participant_id: pid_of(&s),
            grant: Default::default(),
            revoke: [Permission::ControlScene].into(),
        },
        expect!["ok permission.changed"],
    );
    check(
        &mut log,
        &s,
        Command::SetLayout {
            layout: Layout::Pip,
        },
        expect!["Forbidden missing_permission [control_scene]"],
    );
    // granting what is already there changes nothing and emits nothing
    check(
        &mut log,
        &t,
        Command::ChangePermissions {
            participant_id: pid_of(&s),
            grant: [Permission::Chat].into(),
            revoke: Default::default(),
        },
        expect!["ok"],
    );
    check(
        &mut log,
        &t,
        Command::ChangePermissions {
            participant_id: uid(4040),
            grant: [Permission::Chat].into(),
            revoke: Default::default(),
        },
        expect!["NotFound participant_not_found"],
    );
    check(
        &mut log,
        &t,
        Command::ChangePermissions {
            participant_id: pid_of(&s),
            grant: [Permission::Chat].into(),
            revoke: [Permission::Chat].into(),
        },
        expect!["Invalid grant_and_revoke"],
    );
}

#[test]
fn chat_input_rules() {
    let mut log = Log::start_with(SessionSettings {
        blocked_words: vec!["darn".into()],
        ..Default::default()
    });
    let s = log.join(1, Role::Student);
    let t = log.join(2, Role::Teacher);
    check(
        &mut log,
        &s,
        Command::Chat {
            message_id: uid(1),
            text: "   ".into(),
        },
        expect!["Invalid empty_text"],
    );
    check(
        &mut log,
        &s,
        Command::Chat {
            message_id: uid(1),
            text: "x".repeat(10_000),
        },
        expect!["Invalid text_too_long"],
    );
    // the log lands in PostgreSQL jsonb, which cannot hold NUL
    check(
        &mut log,
        &s,
        Command::Chat {
            message_id: uid(1),
            text: "nul \u{0} inside".into(),
        },
        expect!["Invalid invalid_text"],
    );
    check(
        &mut log,
        &s,
        Command::Chat {
            message_id: uid(1),
            text: "well DARN it".into(),
        },
        expect!["Invalid blocked_content"],
    );
    check(
        &mut log,
        &s,
        Command::Chat {
            message_id: uid(1),
            text: "darned fine".into(),
        },
        expect!["ok chat.message"],
    );
    check(
        &mut log,
        &s,
        Command::Chat {
            message_id: uid(2),
            text: "see https://evil.example".into(),
        },
        expect!["Forbidden links_not_allowed [post_links]"],
    );
    check(
        &mut log,
        &s,
        Command::Chat {
            message_id: uid(2),
            text: "go to evil.io/x now".into(),
        },
        expect!["Forbidden links_not_allowed [post_links]"],
    );
    check(
        &mut log,
        &t,
        Command::Chat {
            message_id: uid(2),
            text: "read https://school.edu/notes".into(),
        },
        expect!["ok chat.message"],
    );
    check(
        &mut log,
        &s,
        Command::Chat {
            message_id: uid(2),
            text: "dup id".into(),
        },
        expect!["Conflict duplicate_id"],
    );
    check(
        &mut log,
        &s,
        Command::DeleteChat { message_id: uid(2) },
        expect!["Forbidden missing_permission [moderate]"],
    );
    check(
        &mut log,
        &s,
        Command::DeleteChat { message_id: uid(1) },
        expect!["ok chat.deleted"],
    );
    check(
        &mut log,
        &s,
        Command::DeleteChat {
            message_id: uid(404),
        },
        expect!["NotFound message_not_found"],
    );

    check(
        &mut log,
        &t,
        Command::KillSwitch {
            switch: KillSwitch::Chat,
            engaged: true,
        },
        expect!["ok kill_switch.changed"],
    );
    check(
        &mut log,
        &s,
        Command::Chat {
            message_id: uid(3),
            text: "hi".into(),
        },
        expect!["Forbidden chat_disabled"],
    );
    check(
        &mut log,
        &t,
        Command::KillSwitch {
            switch: KillSwitch::Chat,
            engaged: false,
        },
        expect!["ok kill_switch.changed"],
    );
    check(
        &mut log,
        &t,
        Command::ExamMode { enabled: true },
        expect!["ok exam_mode.changed"],
    );
    check(
        &mut log,
        &s,
        Command::Chat {
            message_id: uid(3),
            text: "hi".into(),
        },
        expect!["Forbidden exam_mode"],
    );
    check(
        &mut log,
        &s,
        Command::Ask {
            question_id: uid(3),
            text: "hi?".into(),
        },
        expect!["Forbidden exam_mode"],
    );
}

#[test]
fn questions_and_polls() {
    let mut log = Log::start();
    let a = log.join(1, Role::Student);
    let b = log.join(2, Role::Student);
    let t = teacher_actor(None);
    check(
        &mut log,
        &a,
        Command::Ask {
            question_id: uid(10),
            text: "why green?".into(),
        },
        expect!["ok question.asked"],
    );
    check(
        &mut log,
        &b,
        Command::Upvote {
            question_id: uid(10),
        },
        expect!["ok question.upvoted"],
    );
    check(
        &mut log,
        &b,
        Command::Upvote {
            question_id: uid(10),
        },
        expect!["Conflict already_upvoted"],
    );
    check(
        &mut log,
        &b,
        Command::Upvote {
            question_id: uid(11),
        },
        expect!["NotFound question_not_found"],
    );
    check(
        &mut log,
        &b,
        Command::Answer {
            question_id: uid(10),
            answer: None,
        },
        expect!["Forbidden missing_permission [moderate]"],
    );
    check(
        &mut log,
        &t,
        Command::Answer {
            question_id: uid(10),
            answer: Some("chlorophyll".into()),
        },
        expect!["ok question.answered"],
    );
    check(
        &mut log,
        &t,
        Command::Dismiss {
            question_id: uid(10),
        },
        expect!["Conflict question_closed"],
    );
    check(
        &mut log,
        &a,
        Command::Upvote {
            question_id: uid(10),
        },
        expect!["Conflict question_closed"],
    );

    let poll = |opts: Vec<&str>, correct| Command::OpenPoll {
        poll_id: uid(20),
        question: "Which?".into(),
        options: opts.into_iter().map(String::from).collect(),
        correct_option: correct,
    };
    check(
        &mut log,
        &t,
        poll(vec!["only"], None),
        expect!["Invalid bad_options"],
    );
    check(
        &mut log,
        &t,
        poll(vec!["a", " "], None),
        expect!["Invalid empty_text"],
    );
    check(
        &mut log,
        &t,
        poll(vec!["a", "b"], Some(2)),
        expect!["Invalid bad_correct_option"],
    );
    check(
        &mut log,
        &t,
        poll(vec!["a", "b"], Some(1)),
        expect!["ok poll.opened"],
    );
    check(
        &mut log,
        &t,
        poll(vec!["a", "b"], Some(1)),
        expect!["Conflict duplicate_id"],
    );
    check(
        &mut log,
        &a,
        Command::Vote {
            poll_id: uid(20),
            option: 2,
        },
        expect!["Invalid unknown_option"],
    );
    check(
        &mut log,
        &a,
        Command::Vote {
            poll_id: uid(21),
            option: 0,
        },
        expect!["NotFound poll_not_found"],
    );
    check(
        &mut log,
        &a,
        Command::Vote {
            poll_id: uid(20),
            option: 1,
        },
        expect!["ok poll.voted"],
    );
    check(
        &mut log,
        &a,
        Command::Vote {
            poll_id: uid(20),
            option: 0,
        },
        expect!["Conflict already_voted"],
    );
    check(
        &mut log,
        &t,
        Command::ClosePoll { poll_id: uid(20) },
        expect!["ok poll.closed"],
    );
    check(
        &mut log,
        &b,
        Command::Vote {
            poll_id: uid(20),
            option: 0,
        },
        expect!["Conflict poll_closed"],
    );
}

#[test]
fn scenes_need_their_source() {
    let mut log = Log::start();
    let t = teacher_actor(None);
    check(
        &mut log,
        &t,
        Command::SetScene {
            scene: Scene::Slides,
        },
        expect!["Conflict scene_source_missing"],
    );
    check(
        &mut log,
        &t,
        Command::SetScene {
            scene: Scene::Screen,
        },
        expect!["Conflict scene_source_missing"],
    );
    check(
        &mut log,
        &t,
        Command::SetScene {
            scene: Scene::Whiteboard,
        },
        expect!["ok scene.changed"],
    );
    check(
        &mut log,
        &t,
        Command::SetScene {
            scene: Scene::Whiteboard,
        },
        expect!["ok"],
    );
    check(
        &mut log,
        &t,
        Command::ShowSlide {
            deck_id: uid(1),
            index: 3,
            page_count: 3,
        },
        expect!["Invalid slide_out_of_range"],
    );
    check(
        &mut log,
        &t,
        Command::ShowSlide {
            deck_id: uid(1),
            index: 0,
            page_count: 3,
        },
        expect!["ok slide.changed"],
    );
    check(
        &mut log,
        &t,
        Command::SetScene {
            scene: Scene::Split,
        },
        expect!["ok scene.changed"],
    );
    check(
        &mut log,
        &t,
        Command::ShowCta {
            cta_id: uid(1),
            url: "javascript:alert(1)".into(),
            label: "x".into(),
        },
        expect!["Invalid bad_url"],
    );
}

#[test]
fn room_lock_removal_and_end() {
    let mut log = Log::start();
    let s = log.join(1, Role::Student);
    let t = teacher_actor(None);
    check(
        &mut log,
        &t,
        Command::Lock { locked: true },
        expect!["ok room.locked"],
    );
    let late = Actor::Person {
        user_id: Some(uid(77)),
        participant_id: Some(uid(78)),
        role: Role::Student,
    };
    let join = |p: u128, u: u128| Command::Join {
        participant_id: uid(p),
        user_id: Some(uid(u)),
        role: Role::Student,
        display_name: "Late".into(),
        edge_id: edge(),
    };
    check(
        &mut log,
        &late,
        join(78, 77),
        expect!["Forbidden room_locked"],
    );
    check(
        &mut log,
        &late,
        join(78, 99),
        expect!["Forbidden not_yourself"],
    );
    check(
        &mut log,
        &t,
        Command::Remove {
            participant_id: pid_of(&s),
        },
        expect!["ok participant.left"],
    );
    let s_user = s.user_id().unwrap();
    check(
        &mut log,
        &s,
        Command::Join {
            participant_id: pid_of(&s),
            user_id: Some(s_user),
            role: Role::Student,
            display_name: "x".into(),
            edge_id: edge(),
        },
        expect!["Forbidden removed"],
    );
    check(
        &mut log,
        &s,
        Command::RaiseHand,
        expect!["Forbidden removed"],
    );
    check(
        &mut log,
        &t,
        Command::OpenPoll {
            poll_id: uid(5),
            question: "q".into(),
            options: vec!["a".into(), "b".into()],
            correct_option: None,
        },
        expect!["ok poll.opened"],
    );
    check(
        &mut log,
        &t,
        Command::End,
        expect!["ok poll.closed session.ended"],
    );
    check(
        &mut log,
        &t,
        Command::End,
        expect!["Conflict session_ended"],
    );
}

#[test]
fn views_hide_what_they_must() {
    use protocol::view::{Viewer, event_visible_to};
    let mut log = Log::start();
    let a = log.join(1, Role::Student);
    let b = log.join(2, Role::Student);
    let t = teacher_actor(None);
    log.run(
        &a,
        Command::SaveNote {
            note_id: uid(1),
            text: "mine".into(),
        },
    )
    .unwrap();
    log.run(
        &a,
        Command::Chat {
            message_id: uid(2),
            text: "hi".into(),
        },
    )
    .unwrap();
    log.run(
        &t,
        Command::OpenPoll {
            poll_id: uid(3),
            question: "q".into(),
            options: vec!["a".into(), "b".into()],
            correct_option: Some(0),
        },
    )
    .unwrap();
    log.run(
        &a,
        Command::Vote {
            poll_id: uid(3),
            option: 0,
        },
    )
    .unwrap();

    let va = log.state.view(&Viewer::Participant {
        participant_id: pid_of(&a),
        role: Role::Student,
    });
    let vb = log.state.view(&Viewer::Participant {
        participant_id: pid_of(&b),
        role: Role::Student,
    });
    let vp = log.state.view(&Viewer::Public);
    let vs = log.state.view(&Viewer::Staff);
    assert_eq!(va.notes.len(), 1);
    assert!(vb.notes.is_empty() && vs.notes.is_empty());
    assert_eq!(va.open_polls[0].my_vote, Some(0));
    assert!(
        va.open_polls[0].results.is_none(),
        "students see results after close"
    );
    assert!(vs.open_polls[0].results.is_some());
    assert!(vp.participants.is_empty() && vp.chat.is_empty() && vp.hands.is_empty());
    assert_eq!(vp.participant_count, 2);
    assert_eq!(vb.participants.len(), 2);

    let note = log
        .events
        .iter()
        .find(|e| e.event_type() == "note.saved")
        .unwrap();
    let chat = log
        .events
        .iter()
        .find(|e| e.event_type() == "chat.message")
        .unwrap();
    assert!(event_visible_to(
        &note.body,
        &Viewer::Participant {
            participant_id: pid_of(&a),
            role: Role::Student
        }
    ));
    assert!(!event_visible_to(
        &note.body,
        &Viewer::Participant {
            participant_id: pid_of(&b),
            role: Role::Student
        }
    ));
    assert!(!event_visible_to(&note.body, &Viewer::Staff));
    assert!(!event_visible_to(&chat.body, &Viewer::Public));
}
