//! What each kind of viewer may see of a session: the state snapshot and
//! which events of the live feed reach them. Private notes reach only their
//! author; public viewers see the program (scene, slide, layout, CTAs,
//! captions) but no chat and no identities.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::*;
use crate::ids::*;
use crate::roles::{Permission, Role};
use crate::state::*;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Viewer {
    /// Staff through core's API, or the platform itself.
    Staff,
    Participant {
        participant_id: ParticipantId,
        role: Role,
    },
    Public,
}

impl Viewer {
    fn sees_identities(&self, state: &SessionState) -> bool {
        match self {
            Viewer::Staff => true,
            Viewer::Participant { participant_id, .. } => state
                .participant(*participant_id)
                .is_some_and(|p| p.permissions.contains(&Permission::ViewParticipants)),
            Viewer::Public => false,
        }
    }
    fn is_moderator(&self, state: &SessionState) -> bool {
        match self {
            Viewer::Staff => true,
            Viewer::Participant { participant_id, .. } => {
                state.participant(*participant_id).is_some_and(|p| {
                    p.permissions.contains(&Permission::Moderate)
                        || p.permissions.contains(&Permission::ManagePolls)
                })
            }
            Viewer::Public => false,
        }
    }
    fn own_id(&self) -> Option<ParticipantId> {
        match self {
            Viewer::Participant { participant_id, .. } => Some(*participant_id),
            Viewer::Staff | Viewer::Public => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ParticipantView {
    pub participant_id: ParticipantId,
    pub user_id: Option<UserId>,
    pub role: Role,
    pub display_name: String,
    pub edge_id: EdgeId,
    pub permissions: Vec<Permission>,
    pub hand_raised: bool,
    pub audio_muted: bool,
    pub video_muted: bool,
    pub recording_consent: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PollView {
    pub poll_id: PollId,
    pub question: String,
    pub options: Vec<String>,
    pub open: bool,
    pub total_votes: u32,
    /// Hidden from students while the poll is open.
    pub results: Option<Vec<PollResult>>,
    pub correct_option: Option<u32>,
    pub my_vote: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QuestionView {
    pub question_id: QuestionId,
    pub participant_id: Option<ParticipantId>,
    pub text: String,
    pub votes: u32,
    pub upvoted_by_me: bool,
    pub status: QuestionStatus,
    pub answer: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChatView {
    pub message_id: MessageId,
    pub participant_id: Option<ParticipantId>,
    pub display_name: Option<String>,
    pub text: String,
    pub seq: Seq,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SessionView {
    pub id: SessionId,
    pub tenant_id: TenantId,
    pub status: SessionStatus,
    pub seq: Seq,
    pub title: String,
    pub edge_id: EdgeId,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub participant_count: usize,
    pub participants: Vec<ParticipantView>,
    pub scene: Scene,
    pub slide: Option<SlideRef>,
    pub layout: Layout,
    pub open_polls: Vec<PollView>,
    pub polls: Vec<PollView>,
    /// Open questions, most upvoted first; then answered and dismissed ones.
    pub questions: Vec<QuestionView>,
    pub hands: Vec<ParticipantId>,
    pub chat: Vec<ChatView>,
    pub ctas: Vec<Cta>,
    pub whiteboard: Vec<Stroke>,
    pub tracks: Vec<Track>,
    pub locked: bool,
    pub exam_mode: bool,
    pub kill_switches: KillSwitches,
    pub recording: RecordingState,
    pub notes: Vec<Note>,
}

/// Chat messages kept in a snapshot; older ones are in the event log.
pub const SNAPSHOT_CHAT: usize = 200;

impl SessionState {
    pub fn view(&self, viewer: &Viewer) -> SessionView {
        let ids = viewer.sees_identities(self);
        let moderator = viewer.is_moderator(self);
        let me = viewer.own_id();
        let public = matches!(viewer, Viewer::Public);

        let participants = if ids {
            self.present()
                .map(|p| ParticipantView {
                    participant_id: p.participant_id,
                    user_id: p.user_id,
                    role: p.role,
                    display_name: p.display_name.clone(),
                    edge_id: p.edge_id.clone(),
                    permissions: p.permissions.iter().copied().collect(),
                    hand_raised: p.hand_raised,
                    audio_muted: p.audio_muted,
                    video_muted: p.video_muted,
                    recording_consent: p.recording_consent,
                })
                .collect()
        } else {
            Vec::new()
        };

        let poll_view = |p: &Poll| {
            let show = !p.open || moderator;
            PollView {
                poll_id: p.poll_id,
                question: p.question.clone(),
                options: p.options.clone(),
                open: p.open,
                total_votes: p.votes.len() as u32,
                results: show.then(|| p.results()),
                correct_option: if show { p.correct_option } else { None },
                my_vote: me.and_then(|m| p.votes.get(&m).copied()),
            }
        };
        let mut polls: Vec<&Poll> = self.polls.values().collect();
        polls.sort_by_key(|p| p.opened_seq);

        let mut questions: Vec<&Question> = self.questions_by_votes();
        let mut closed: Vec<&Question> = self
            .questions
            .values()
            .filter(|q| q.status != QuestionStatus::Open)
            .collect();
        closed.sort_by_key(|q| q.asked_seq);
        questions.extend(closed);

        let name_of = |id: ParticipantId| self.participant(id).map(|p| p.display_name.clone());
        let chat = if public {
            Vec::new()
        } else {
            let live: Vec<&ChatEntry> = self.chat.iter().filter(|m| !m.deleted).collect();
            let skip = live.len().saturating_sub(SNAPSHOT_CHAT);
            live[skip..]
                .iter()
                .map(|m| ChatView {
                    message_id: m.message_id,
                    participant_id: ids.then_some(m.participant_id),
                    display_name: if ids { name_of(m.participant_id) } else { None },
                    text: m.text.clone(),
                    seq: m.seq,
                })
                .collect()
        };

        SessionView {
            id: self.session_id,
            tenant_id: self.tenant_id,
            status: self.status,
            seq: self.seq,
            title: self.title.clone(),
            edge_id: self.edge_id.clone(),
            started_at: self.started_at,
            ended_at: self.ended_at,
            participant_count: self.present().count(),
            participants,
            scene: self.scene,
            slide: self.slide.clone(),
            layout: self.layout,
            open_polls: polls
                .iter()
                .filter(|p| p.open)
                .map(|p| poll_view(p))
                .collect(),
            polls: if public {
                Vec::new()
            } else {
                polls.iter().map(|p| poll_view(p)).collect()
            },
            questions: if public {
                Vec::new()
            } else {
                questions
                    .into_iter()
                    .map(|q| QuestionView {
                        question_id: q.question_id,
                        participant_id: ids.then_some(q.participant_id),
                        text: q.text.clone(),
                        votes: q.votes() as u32,
                        upvoted_by_me: me.is_some_and(|m| q.upvoters.contains(&m)),
                        status: q.status,
                        answer: q.answer.clone(),
                    })
                    .collect()
            },
            hands: if ids { self.hands.clone() } else { Vec::new() },
            chat,
            ctas: self.ctas.values().cloned().collect(),
            whiteboard: self.strokes.clone(),
            tracks: if public {
                Vec::new()
            } else {
                self.tracks.values().cloned().collect()
            },
            locked: self.locked,
            exam_mode: self.exam_mode,
            kill_switches: self.kill_switches.clone(),
            recording: self.recording.clone(),
            notes: me
                .and_then(|m| self.notes.get(&m).cloned())
                .unwrap_or_default(),
        }
    }
}

/// Whether one event of the live feed reaches this viewer.
pub fn event_visible_to(body: &EventBody, viewer: &Viewer) -> bool {
    if let Some(owner) = body.private_to() {
        return match viewer {
            Viewer::Participant { participant_id, .. } => *participant_id == owner,
            Viewer::Staff | Viewer::Public => false,
        };
    }
    if let EventBody::RosterSet { .. } | EventBody::RosterChanged { .. } = body {
        // the roster names every member of the course: staff only
        return match viewer {
            Viewer::Staff => true,
            Viewer::Participant { role, .. } => role.is_staff(),
            Viewer::Public => false,
        };
    }
    match viewer {
        Viewer::Staff | Viewer::Participant { .. } => true,
        Viewer::Public => public_event(body),
    }
}

/// The events a public viewer sees: what shapes the program they watch.
fn public_event(body: &EventBody) -> bool {
    use EventBody::*;
    match body {
        SessionStarted { .. }
        | SessionEnded { .. }
        | SceneChanged { .. }
        | SlideChanged { .. }
        | LayoutChanged { .. }
        | WhiteboardStroke { .. }
        | WhiteboardCleared {}
        | CaptionSegment { .. }
        | CtaShown { .. }
        | CtaHidden { .. } => true,
        ParticipantJoined { .. }
        | ParticipantLeft { .. }
        | ParticipantMuted { .. }
        | PermissionChanged { .. }
        | HandRaised { .. }
        | HandLowered { .. }
        | ConsentChanged { .. }
        | ChatMessage { .. }
        | ChatDeleted { .. }
        | QuestionAsked { .. }
        | QuestionUpvoted { .. }
        | QuestionAnswered { .. }
        | QuestionDismissed { .. }
        | PollOpened { .. }
        | PollVoted { .. }
        | PollClosed { .. }
        | NoteSaved { .. }
        | RoomLocked { .. }
        | ExamModeChanged { .. }
        | KillSwitchChanged { .. }
        | TrackPublished { .. }
        | TrackUnpublished { .. }
        | MediaQuality { .. }
        | RecordingArmed { .. }
        | RecordingSegment { .. }
        | RecordingGap { .. }
        | RecordingAlert { .. }
        | RecordingFinalized { .. }
        | DestinationStatus { .. }
        | ArtifactReady { .. }
        | SessionPublished { .. }
        | RosterSet { .. }
        | RosterChanged { .. } => false,
    }
}
