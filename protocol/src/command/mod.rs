//! Commands and the rules that turn them into events.
//!
//! `decide(state, actor, command)` is the session writer's whole judgement:
//! it checks the actor's current permissions in the reduced state, the
//! session's safety switches and the command's own input, and returns the
//! events to append, or a `Rejection` that names what was missing. It is pure:
//! ids for new things (messages, polls) arrive inside the command, minted by
//! the shell.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::event::*;
use crate::ids::*;
use crate::roles::{Permission, Role};
use crate::state::{QuestionStatus, SessionState};

mod content;
mod join;
pub use content::{blocked_word, contains_link};
use content::{check_content, text_field};
use join::decide_join;

pub const MAX_CHAT_CHARS: usize = 2000;
pub const MAX_QUESTION_CHARS: usize = 1000;
pub const MAX_NOTE_CHARS: usize = 10_000;
pub const MAX_POLL_OPTIONS: usize = 10;
pub const MAX_LABEL_CHARS: usize = 200;
pub const MAX_URL_CHARS: usize = 2000;
pub const MAX_STROKE_POINTS: usize = 2000;
pub const BOARD_MAX: u16 = 10_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Command {
    Join {
        participant_id: ParticipantId,
        #[serde(default)]
        user_id: Option<UserId>,
        role: Role,
        display_name: String,
        edge_id: EdgeId,
    },
    Leave {
        participant_id: ParticipantId,
        reason: LeaveReason,
    },
    ChangePermissions {
        participant_id: ParticipantId,
        #[serde(default)]
        grant: BTreeSet<Permission>,
        #[serde(default)]
        revoke: BTreeSet<Permission>,
    },
    SetScene {
        scene: Scene,
    },
    ShowSlide {
        deck_id: DeckId,
        index: u32,
        page_count: u32,
    },
    SetLayout {
        layout: Layout,
    },
    Stroke {
        stroke_id: StrokeId,
        color: String,
        width: u16,
        points: Vec<BoardPoint>,
    },
    ClearWhiteboard,
    Chat {
        message_id: MessageId,
        text: String,
    },
    DeleteChat {
        message_id: MessageId,
    },
    Ask {
        question_id: QuestionId,
        text: String,
    },
    Upvote {
        question_id: QuestionId,
    },
    Answer {
        question_id: QuestionId,
        #[serde(default)]
        answer: Option<String>,
    },
    Dismiss {
        question_id: QuestionId,
    },
    OpenPoll {
        poll_id: PollId,
        question: String,
        options: Vec<String>,
        #[serde(default)]
        correct_option: Option<u32>,
    },
    Vote {
        poll_id: PollId,
        option: u32,
    },
    ClosePoll {
        poll_id: PollId,
    },
    RaiseHand,
    LowerHand {
        /// Someone else's hand (a moderator); `None` is one's own.
        #[serde(default)]
        participant_id: Option<ParticipantId>,
    },
    SaveNote {
        note_id: NoteId,
        text: String,
    },
    ShowCta {
        cta_id: CtaId,
        url: String,
        label: String,
    },
    HideCta {
        cta_id: CtaId,
    },
    SetConsent {
        recording: bool,
    },
    Mute {
        participant_id: ParticipantId,
        media: MediaKind,
    },
    Remove {
        participant_id: ParticipantId,
    },
    Lock {
        locked: bool,
    },
    ExamMode {
        enabled: bool,
    },
    KillSwitch {
        switch: KillSwitch,
        engaged: bool,
    },
    End,
    /// An event from the edge's own machinery (SFU, recorder, captioner).
    /// Only `Actor::System` may send it.
    System {
        event: EventBody,
    },
}

impl Command {
    pub fn name(&self) -> &'static str {
        match self {
            Command::Join { .. } => "join",
            Command::Leave { .. } => "leave",
            Command::ChangePermissions { .. } => "change_permissions",
            Command::SetScene { .. } => "set_scene",
            Command::ShowSlide { .. } => "show_slide",
            Command::SetLayout { .. } => "set_layout",
            Command::Stroke { .. } => "stroke",
            Command::ClearWhiteboard => "clear_whiteboard",
            Command::Chat { .. } => "chat",
            Command::DeleteChat { .. } => "delete_chat",
            Command::Ask { .. } => "ask",
            Command::Upvote { .. } => "upvote",
            Command::Answer { .. } => "answer",
            Command::Dismiss { .. } => "dismiss",
            Command::OpenPoll { .. } => "open_poll",
            Command::Vote { .. } => "vote",
            Command::ClosePoll { .. } => "close_poll",
            Command::RaiseHand => "raise_hand",
            Command::LowerHand { .. } => "lower_hand",
            Command::SaveNote { .. } => "save_note",
            Command::ShowCta { .. } => "show_cta",
            Command::HideCta { .. } => "hide_cta",
            Command::SetConsent { .. } => "set_consent",
            Command::Mute { .. } => "mute",
            Command::Remove { .. } => "remove",
            Command::Lock { .. } => "lock",
            Command::ExamMode { .. } => "exam_mode",
            Command::KillSwitch { .. } => "kill_switch",
            Command::End => "end",
            Command::System { .. } => "system",
        }
    }
}

pub use crate::rejection::{RejectKind, Rejection};

type Decision = Result<Vec<EventBody>, Rejection>;

/// Who is asking, as far as the session is concerned.
enum Standing<'a> {
    System,
    /// Present in the room with these permissions.
    Participant {
        id: ParticipantId,
        role: Role,
        permissions: &'a BTreeSet<Permission>,
    },
    /// Staff acting from the console without a seat in the room.
    Staff {
        role: Role,
    },
}

impl Standing<'_> {
    fn has(&self, p: Permission) -> bool {
        match self {
            Standing::System | Standing::Staff { .. } => true,
            Standing::Participant { permissions, .. } => permissions.contains(&p),
        }
    }
    fn require(&self, p: Permission) -> Result<(), Rejection> {
        if self.has(p) {
            Ok(())
        } else {
            Err(Rejection::missing(p))
        }
    }
    /// The seat this actor speaks from; chat, votes and hands need one.
    fn seat(&self) -> Result<ParticipantId, Rejection> {
        match self {
            Standing::Participant { id, .. } => Ok(*id),
            Standing::System | Standing::Staff { .. } => Err(Rejection::forbidden(
                "not_joined",
                "join the session first: this action needs a seat in the room",
            )),
        }
    }
    fn role(&self) -> Option<Role> {
        match self {
            Standing::System => None,
            Standing::Participant { role, .. } | Standing::Staff { role } => Some(*role),
        }
    }
    fn is_admin(&self) -> bool {
        matches!(self, Standing::System) || self.role() == Some(Role::Admin)
    }
}

fn standing<'a>(state: &'a SessionState, actor: &Actor) -> Result<Standing<'a>, Rejection> {
    match actor {
        Actor::System => Ok(Standing::System),
        Actor::Person {
            participant_id: Some(pid),
            role,
            user_id,
        } => match state.participants.get(pid) {
            Some(p) if p.removed => Err(Rejection::forbidden(
                "removed",
                "you were removed from this session",
            )),
            Some(p) if p.present => Ok(Standing::Participant {
                id: *pid,
                role: p.role,
                permissions: &p.permissions,
            }),
            Some(_) | None if role.is_staff() => unseated_staff(state, *user_id, *role),
            Some(_) | None => Err(Rejection::forbidden("not_joined", "join the session first")),
        },
        Actor::Person {
            participant_id: None,
            role,
            user_id,
        } => {
            if role.is_staff() {
                unseated_staff(state, *user_id, *role)
            } else {
                Err(Rejection::forbidden("not_joined", "join the session first"))
            }
        }
    }
}

/// Staff acting on a class without a seat (through core's API): admins act
/// on any class of their tenant; a teacher only on a class of a course they
/// teach, once the roster says who that is.
fn unseated_staff<'a>(
    state: &SessionState,
    user_id: Option<UserId>,
    role: Role,
) -> Result<Standing<'a>, Rejection> {
    if role == Role::Admin {
        return Ok(Standing::Staff { role });
    }
    match &state.roster {
        None => Ok(Standing::Staff { role }),
        Some(roster) => match user_id.and_then(|u| roster.get(&u)) {
            Some(Role::Teacher) => Ok(Standing::Staff { role }),
            Some(_) | None => Err(Rejection::forbidden(
                "not_course_staff",
                "you do not teach this course",
            )),
        },
    }
}

/// The role a joiner takes in the class: an admin stays an admin and a
/// public viewer stays public; everyone else needs a place on the roster
/// (when the class has one) and takes the role it gives them there.
fn enrolled_role(
    state: &SessionState,
    user_id: Option<UserId>,
    role: Role,
) -> Result<Role, Rejection> {
    match role {
        Role::Admin | Role::Public => return Ok(role),
        Role::Teacher | Role::Assistant | Role::Student => {}
    }
    let Some(roster) = &state.roster else {
        return Ok(role);
    };
    user_id
        .and_then(|u| roster.get(&u).copied())
        .ok_or_else(|| Rejection::forbidden("not_enrolled", "you are not enrolled in this course"))
}

fn scene_source_ready(state: &SessionState, scene: Scene) -> Result<(), Rejection> {
    let has_screen = state
        .tracks
        .values()
        .any(|t| t.source == TrackSource::Screen);
    let ok = match scene {
        Scene::Camera | Scene::Whiteboard => true,
        Scene::Slides => state.slide.is_some(),
        Scene::Screen => has_screen,
        Scene::Split => state.slide.is_some() || has_screen,
    };
    if ok {
        Ok(())
    } else {
        let need = match scene {
            Scene::Slides => "show a slide first",
            Scene::Screen => "start a screen share first",
            Scene::Split => "show a slide or start a screen share first",
            Scene::Camera | Scene::Whiteboard => "",
        };
        Err(Rejection::conflict(
            "scene_source_missing",
            format!("the {scene:?} scene has no source: {need}").to_lowercase(),
        ))
    }
}

/// Decides what a command does to a session. Returns the events to append
/// (possibly none, for a command that is already satisfied).
pub fn decide(state: &SessionState, actor: &Actor, cmd: &Command) -> Decision {
    if !state.is_live() {
        return Err(Rejection::conflict(
            "session_ended",
            "the session has ended",
        ));
    }
    if let Command::Join { .. } = cmd {
        return decide_join(state, actor, cmd);
    }
    let who = standing(state, actor)?;
    use Command::*;
    match cmd {
        Join { .. } => decide_join(state, actor, cmd),
        Leave {
            participant_id,
            reason,
        } => {
            let own = who.seat().ok() == Some(*participant_id);
            if !own {
                who.require(Permission::Moderate)?;
            }
            match state.participant(*participant_id) {
                None => Err(Rejection::not_found(
                    "participant_not_found",
                    "no such participant in this session",
                )),
                Some(p) if !p.present => Ok(vec![]),
                Some(_) => Ok(vec![EventBody::ParticipantLeft {
                    participant_id: *participant_id,
                    reason: *reason,
                }]),
            }
        }
        ChangePermissions {
            participant_id,
            grant,
            revoke,
        } => {
            who.require(Permission::ManagePermissions)?;
            if grant.is_empty() && revoke.is_empty() {
                return Err(Rejection::invalid(
                    "nothing_to_change",
                    "name at least one permission to grant or revoke",
                ));
            }
            if let Some(p) = grant.intersection(revoke).next() {
                return Err(Rejection::invalid(
                    "grant_and_revoke",
                    format!("{p} is both granted and revoked"),
                ));
            }
            let target = state.participant(*participant_id).ok_or_else(|| {
                Rejection::not_found("participant_not_found", "no such participant")
            })?;
            if target.role.is_staff() && !who.is_admin() {
                return Err(Rejection::forbidden(
                    "cannot_change_staff",
                    "only an admin may change a teacher's permissions",
                ));
            }
            if target.role == Role::Public && !grant.is_empty() {
                return Err(Rejection::forbidden(
                    "public_viewer",
                    "public viewers cannot be granted permissions",
                ));
            }
            let mut after = target.permissions.clone();
            let granted: BTreeSet<Permission> = grant
                .iter()
                .filter(|p| after.insert(**p))
                .copied()
                .collect();
            let revoked: BTreeSet<Permission> = revoke
                .iter()
                .filter(|p| after.remove(*p))
                .copied()
                .collect();
            if granted.is_empty() && revoked.is_empty() {
                return Ok(vec![]);
            }
            Ok(vec![EventBody::PermissionChanged {
                participant_id: *participant_id,
                granted,
                revoked,
                permissions: after,
            }])
        }
        SetScene { scene } => {
            who.require(Permission::ControlScene)?;
            if *scene == Scene::Screen && state.exam_mode {
                return Err(Rejection::forbidden(
                    "exam_mode",
                    "screen sharing is restricted in exam mode",
                ));
            }
            scene_source_ready(state, *scene)?;
            if state.scene == *scene {
                return Ok(vec![]);
            }
            Ok(vec![EventBody::SceneChanged { scene: *scene }])
        }
        ShowSlide {
            deck_id,
            index,
            page_count,
        } => {
            who.require(Permission::ControlScene)?;
            if index >= page_count {
                return Err(Rejection::invalid(
                    "slide_out_of_range",
                    format!("slide {index} does not exist: the deck has {page_count} pages"),
                ));
            }
            Ok(vec![EventBody::SlideChanged {
                deck_id: *deck_id,
                index: *index,
                page_count: *page_count,
            }])
        }
        SetLayout { layout } => {
            who.require(Permission::ControlScene)?;
            if state.layout == *layout {
                return Ok(vec![]);
            }
            Ok(vec![EventBody::LayoutChanged { layout: *layout }])
        }
        Stroke {
            stroke_id,
            color,
            width,
            points,
        } => {
            let seat = who.seat()?;
            who.require(Permission::Whiteboard)?;
            let hex = color.len() == 7
                && color.starts_with('#')
                && color[1..].bytes().all(|b| b.is_ascii_hexdigit());
            if !hex {
                return Err(Rejection::invalid("bad_color", "color must be #rrggbb"));
            }
            if *width == 0 || *width > 100 {
                return Err(Rejection::invalid("bad_width", "width must be 1 to 100"));
            }
            if points.is_empty() || points.len() > MAX_STROKE_POINTS {
                return Err(Rejection::invalid(
                    "bad_points",
                    format!("a stroke has 1 to {MAX_STROKE_POINTS} points"),
                ));
            }
            if points.iter().any(|[x, y]| *x > BOARD_MAX || *y > BOARD_MAX) {
                return Err(Rejection::invalid(
                    "bad_points",
                    format!("points lie within 0..={BOARD_MAX} on each axis"),
                ));
            }
            Ok(vec![EventBody::WhiteboardStroke {
                stroke_id: *stroke_id,
                participant_id: seat,
                color: color.to_lowercase(),
                width: *width,
                points: points.clone(),
            }])
        }
        ClearWhiteboard => {
            who.require(Permission::Whiteboard)?;
            if !who.has(Permission::ControlScene) {
                return Err(Rejection::missing(Permission::ControlScene));
            }
            Ok(vec![EventBody::WhiteboardCleared {}])
        }
        Chat { message_id, text } => {
            let seat = who.seat()?;
            who.require(Permission::Chat)?;
            if state.kill_switches.chat {
                return Err(Rejection::forbidden(
                    "chat_disabled",
                    "chat is switched off in this session",
                ));
            }
            if state.exam_mode {
                return Err(Rejection::forbidden(
                    "exam_mode",
                    "chat is off during exam mode",
                ));
            }
            let text = text_field(text, "a chat message", MAX_CHAT_CHARS)?;
            check_content(state, &who, &text)?;
            if state.chat.iter().any(|m| m.message_id == *message_id) {
                return Err(Rejection::conflict(
                    "duplicate_id",
                    "message id already used",
                ));
            }
            Ok(vec![EventBody::ChatMessage {
                message_id: *message_id,
                participant_id: seat,
                text,
            }])
        }
        DeleteChat { message_id } => {
            let msg = state
                .chat
                .iter()
                .find(|m| m.message_id == *message_id)
                .ok_or_else(|| Rejection::not_found("message_not_found", "no such chat message"))?;
            let own = who.seat().ok() == Some(msg.participant_id);
            if !own {
                who.require(Permission::Moderate)?;
            }
            if msg.deleted {
                return Ok(vec![]);
            }
            Ok(vec![EventBody::ChatDeleted {
                message_id: *message_id,
            }])
        }
        Ask { question_id, text } => {
            let seat = who.seat()?;
            who.require(Permission::Ask)?;
            if state.exam_mode {
                return Err(Rejection::forbidden(
                    "exam_mode",
                    "questions are off during exam mode",
                ));
            }
            let text = text_field(text, "a question", MAX_QUESTION_CHARS)?;
            check_content(state, &who, &text)?;
            if state.questions.contains_key(question_id) {
                return Err(Rejection::conflict(
                    "duplicate_id",
                    "question id already used",
                ));
            }
            Ok(vec![EventBody::QuestionAsked {
                question_id: *question_id,
                participant_id: seat,
                text,
            }])
        }
        Upvote { question_id } => {
            let seat = who.seat()?;
            who.require(Permission::Ask)?;
            let q = question(state, *question_id)?;
            if q.status != QuestionStatus::Open {
                return Err(Rejection::conflict(
                    "question_closed",
                    "the question was already answered or dismissed",
                ));
            }
            if q.upvoters.contains(&seat) {
                return Err(Rejection::conflict(
                    "already_upvoted",
                    "you already upvoted this question",
                ));
            }
            Ok(vec![EventBody::QuestionUpvoted {
                question_id: *question_id,
                participant_id: seat,
            }])
        }
        Answer {
            question_id,
            answer,
        } => {
            who.require(Permission::Moderate)?;
            let q = question(state, *question_id)?;
            if q.status != QuestionStatus::Open {
                return Err(Rejection::conflict(
                    "question_closed",
                    "the question was already answered or dismissed",
                ));
            }
            let answer = match answer {
                Some(a) if !a.trim().is_empty() => {
                    Some(text_field(a, "an answer", MAX_QUESTION_CHARS)?)
                }
                Some(_) | None => None,
            };
            Ok(vec![EventBody::QuestionAnswered {
                question_id: *question_id,
                answer,
            }])
        }
        Dismiss { question_id } => {
            who.require(Permission::Moderate)?;
            let q = question(state, *question_id)?;
            if q.status != QuestionStatus::Open {
                return Err(Rejection::conflict(
                    "question_closed",
                    "the question was already answered or dismissed",
                ));
            }
            Ok(vec![EventBody::QuestionDismissed {
                question_id: *question_id,
            }])
        }
        OpenPoll {
            poll_id,
            question,
            options,
            correct_option,
        } => {
            who.require(Permission::ManagePolls)?;
            let question = text_field(question, "the poll question", MAX_QUESTION_CHARS)?;
            if options.len() < 2 || options.len() > MAX_POLL_OPTIONS {
                return Err(Rejection::invalid(
                    "bad_options",
                    format!("a poll has 2 to {MAX_POLL_OPTIONS} options"),
                ));
            }
            let options = options
                .iter()
                .map(|o| text_field(o, "a poll option", MAX_LABEL_CHARS))
                .collect::<Result<Vec<_>, _>>()?;
            if let Some(c) = correct_option
                && *c as usize >= options.len()
            {
                return Err(Rejection::invalid(
                    "bad_correct_option",
                    format!(
                        "correct_option {c} is not one of the {} options",
                        options.len()
                    ),
                ));
            }
            if state.polls.contains_key(poll_id) {
                return Err(Rejection::conflict("duplicate_id", "poll id already used"));
            }
            Ok(vec![EventBody::PollOpened {
                poll_id: *poll_id,
                question,
                options,
                correct_option: *correct_option,
            }])
        }
        Vote { poll_id, option } => {
            let seat = who.seat()?;
            who.require(Permission::Vote)?;
            let poll = poll(state, *poll_id)?;
            if !poll.open {
                return Err(Rejection::conflict("poll_closed", "the poll is closed"));
            }
            if *option as usize >= poll.options.len() {
                return Err(Rejection::invalid(
                    "unknown_option",
                    format!(
                        "option {option} does not exist: the poll has {} options",
                        poll.options.len()
                    ),
                ));
            }
            if poll.votes.contains_key(&seat) {
                return Err(Rejection::conflict(
                    "already_voted",
                    "you already voted in this poll",
                ));
            }
            Ok(vec![EventBody::PollVoted {
                poll_id: *poll_id,
                participant_id: seat,
                option: *option,
            }])
        }
        ClosePoll { poll_id } => {
            who.require(Permission::ManagePolls)?;
            let poll = poll(state, *poll_id)?;
            if !poll.open {
                return Err(Rejection::conflict(
                    "poll_closed",
                    "the poll is already closed",
                ));
            }
            Ok(vec![EventBody::PollClosed {
                poll_id: *poll_id,
                results: poll.results(),
            }])
        }
        RaiseHand => {
            let seat = who.seat()?;
            who.require(Permission::RaiseHand)?;
            if state.hands.contains(&seat) {
                return Ok(vec![]);
            }
            Ok(vec![EventBody::HandRaised {
                participant_id: seat,
            }])
        }
        LowerHand { participant_id } => {
            let target = match participant_id {
                Some(p) => *p,
                None => who.seat()?,
            };
            if who.seat().ok() != Some(target) {
                who.require(Permission::Moderate)?;
            }
            if !state.hands.contains(&target) {
                return Ok(vec![]);
            }
            Ok(vec![EventBody::HandLowered {
                participant_id: target,
            }])
        }
        SaveNote { note_id, text } => {
            let seat = who.seat()?;
            who.require(Permission::TakeNotes)?;
            let text = text_field(text, "a note", MAX_NOTE_CHARS)?;
            Ok(vec![EventBody::NoteSaved {
                note_id: *note_id,
                participant_id: seat,
                text,
            }])
        }
        ShowCta { cta_id, url, label } => {
            who.require(Permission::ControlScene)?;
            let url = url.trim();
            let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
            if !scheme_ok
                || url.len() > MAX_URL_CHARS
                || url.contains(|c: char| c.is_whitespace() || c.is_control())
            {
                return Err(Rejection::invalid(
                    "bad_url",
                    "a CTA needs an http(s) URL of at most 2000 characters",
                ));
            }
            let label = text_field(label, "a CTA label", MAX_LABEL_CHARS)?;
            Ok(vec![EventBody::CtaShown {
                cta_id: *cta_id,
                url: url.to_owned(),
                label,
            }])
        }
        HideCta { cta_id } => {
            who.require(Permission::ControlScene)?;
            if !state.ctas.contains_key(cta_id) {
                return Err(Rejection::not_found(
                    "cta_not_found",
                    "no such CTA is shown",
                ));
            }
            Ok(vec![EventBody::CtaHidden { cta_id: *cta_id }])
        }
        SetConsent { recording } => {
            let seat = who.seat()?;
            let current = state
                .participant(seat)
                .map(|p| p.recording_consent)
                .unwrap_or(true);
            if current == *recording {
                return Ok(vec![]);
            }
            Ok(vec![EventBody::ConsentChanged {
                participant_id: seat,
                recording: *recording,
            }])
        }
        Mute {
            participant_id,
            media,
        } => {
            who.require(Permission::Moderate)?;
            let target = present_target(state, *participant_id)?;
            if target.role.is_staff() && !who.is_admin() {
                return Err(Rejection::forbidden(
                    "cannot_moderate_staff",
                    "only an admin may mute a teacher",
                ));
            }
            Ok(vec![EventBody::ParticipantMuted {
                participant_id: *participant_id,
                media: *media,
            }])
        }
        Remove { participant_id } => {
            who.require(Permission::Moderate)?;
            let target = present_target(state, *participant_id)?;
            if target.role.is_staff() && !who.is_admin() {
                return Err(Rejection::forbidden(
                    "cannot_moderate_staff",
                    "only an admin may remove a teacher",
                ));
            }
            Ok(vec![EventBody::ParticipantLeft {
                participant_id: *participant_id,
                reason: LeaveReason::Removed,
            }])
        }
        Lock { locked } => {
            who.require(Permission::Moderate)?;
            if state.locked == *locked {
                return Ok(vec![]);
            }
            Ok(vec![EventBody::RoomLocked { locked: *locked }])
        }
        ExamMode { enabled } => {
            who.require(Permission::KillSwitch)?;
            if state.exam_mode == *enabled {
                return Ok(vec![]);
            }
            Ok(vec![EventBody::ExamModeChanged { enabled: *enabled }])
        }
        KillSwitch { switch, engaged } => {
            who.require(Permission::KillSwitch)?;
            if let crate::event::KillSwitch::Media { participant_id } = switch
                && state.participant(*participant_id).is_none()
            {
                return Err(Rejection::not_found(
                    "participant_not_found",
                    "no such participant",
                ));
            }
            if state.kill_switches.is_engaged(*switch) == *engaged {
                return Ok(vec![]);
            }
            Ok(vec![EventBody::KillSwitchChanged {
                switch: *switch,
                engaged: *engaged,
            }])
        }
        End => {
            who.require(Permission::EndSession)?;
            // Close open polls first so their results are in the log.
            let mut events: Vec<EventBody> = state
                .polls
                .values()
                .filter(|p| p.open)
                .map(|p| EventBody::PollClosed {
                    poll_id: p.poll_id,
                    results: p.results(),
                })
                .collect();
            events.push(EventBody::SessionEnded {
                reason: EndReason::Ended,
            });
            Ok(events)
        }
        System { event } => match who {
            Standing::System => Ok(vec![event.clone()]),
            Standing::Participant { .. } | Standing::Staff { .. } => Err(Rejection::forbidden(
                "system_only",
                "only the platform may emit this event",
            )),
        },
    }
}

fn question(state: &SessionState, id: QuestionId) -> Result<&crate::state::Question, Rejection> {
    state.questions.get(&id).ok_or_else(|| {
        Rejection::not_found("question_not_found", "no such question in this session")
    })
}

fn poll(state: &SessionState, id: PollId) -> Result<&crate::state::Poll, Rejection> {
    state
        .polls
        .get(&id)
        .ok_or_else(|| Rejection::not_found("poll_not_found", "no such poll in this session"))
}

fn present_target(
    state: &SessionState,
    id: ParticipantId,
) -> Result<&crate::state::Participant, Rejection> {
    match state.participant(id) {
        Some(p) if p.present => Ok(p),
        Some(_) | None => Err(Rejection::not_found(
            "participant_not_found",
            "no such participant in the room",
        )),
    }
}
