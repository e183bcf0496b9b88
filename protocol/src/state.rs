//! The session reducer: `fold(events) -> SessionState`.
//!
//! Core and edge compute a session's state with this one function, so they
//! cannot disagree. The reducer is total over well-sequenced input: a payload
//! that refers to something unknown (a vote on a poll that never opened)
//! changes nothing rather than failing, because validation belongs to the
//! writer (`command::decide`) and a log, once written, must always fold.
//! What it does refuse is a broken sequence: a gap, another session's event,
//! or a log that does not begin with `session.started`.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::*;
use crate::ids::*;
use crate::roles::{Permission, Role};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    Live,
    Ended,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    pub participant_id: ParticipantId,
    pub user_id: Option<UserId>,
    pub role: Role,
    pub display_name: String,
    pub edge_id: EdgeId,
    pub permissions: BTreeSet<Permission>,
    /// False once the participant left (their seat is kept for a rejoin).
    pub present: bool,
    pub removed: bool,
    pub hand_raised: bool,
    pub audio_muted: bool,
    pub video_muted: bool,
    /// `false` once the participant declined being recorded.
    pub recording_consent: bool,
    pub joined_seq: Seq,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SlideRef {
    pub deck_id: DeckId,
    pub index: u32,
    pub page_count: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatEntry {
    pub message_id: MessageId,
    pub participant_id: ParticipantId,
    pub text: String,
    pub seq: Seq,
    pub deleted: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QuestionStatus {
    Open,
    Answered,
    Dismissed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Question {
    pub question_id: QuestionId,
    pub participant_id: ParticipantId,
    pub text: String,
    pub upvoters: BTreeSet<ParticipantId>,
    pub status: QuestionStatus,
    pub answer: Option<String>,
    pub asked_seq: Seq,
}

impl Question {
    pub fn votes(&self) -> usize {
        self.upvoters.len()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Poll {
    pub poll_id: PollId,
    pub question: String,
    pub options: Vec<String>,
    pub correct_option: Option<u32>,
    pub votes: BTreeMap<ParticipantId, u32>,
    pub open: bool,
    pub opened_seq: Seq,
}

impl Poll {
    /// Vote counts per option, in option order.
    pub fn results(&self) -> Vec<PollResult> {
        let mut counts = vec![0u32; self.options.len()];
        for &option in self.votes.values() {
            if let Some(c) = counts.get_mut(option as usize) {
                *c += 1;
            }
        }
        self.options
            .iter()
            .zip(counts)
            .enumerate()
            .map(|(i, (label, votes))| PollResult {
                option: i as u32,
                label: label.clone(),
                votes,
            })
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Stroke {
    pub stroke_id: StrokeId,
    pub participant_id: ParticipantId,
    pub color: String,
    pub width: u16,
    #[schema(schema_with = crate::event::board_points_schema)]
    pub points: Vec<BoardPoint>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Track {
    pub track_id: TrackId,
    pub participant_id: ParticipantId,
    pub kind: MediaKind,
    pub source: TrackSource,
    pub codec: String,
    pub simulcast: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Cta {
    pub cta_id: CtaId,
    pub url: String,
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KillSwitches {
    pub chat: bool,
    pub recording: bool,
    pub multistream: bool,
    pub media: BTreeSet<ParticipantId>,
}

impl KillSwitches {
    pub fn is_engaged(&self, switch: KillSwitch) -> bool {
        match switch {
            KillSwitch::Chat => self.chat,
            KillSwitch::Recording => self.recording,
            KillSwitch::Multistream => self.multistream,
            KillSwitch::Media { participant_id } => self.media.contains(&participant_id),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecordingStatus {
    #[default]
    Off,
    Armed,
    Finalized,
}

/// A destination's figures as its pusher last reported them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DestinationStats {
    /// While live: kbit/s sent over the last report's stretch.
    pub bitrate_kbps: Option<u32>,
    /// Frames dropped because the destination could not keep up.
    pub dropped_frames: u64,
    /// Why it is retrying, failed or stopped.
    pub reason: Option<String>,
    /// When the pusher last reported.
    pub at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RecordingState {
    pub status: RecordingStatus,
    /// When the recording's media time 0 was (the first arm).
    #[serde(default)]
    pub armed_at: Option<DateTime<Utc>>,
    /// Recorder runs (a crash or the kill switch ends one).
    #[serde(default)]
    pub runs: u32,
    /// The index the next segment takes.
    #[serde(default)]
    pub next_index: u32,
    pub segments: u32,
    /// End of the last finished segment, in ms of media time.
    pub recorded_ms: u64,
    pub gaps: u32,
    pub alerts: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Note {
    pub note_id: NoteId,
    pub text: String,
    pub seq: Seq,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionState {
    pub session_id: SessionId,
    pub tenant_id: TenantId,
    pub status: SessionStatus,
    pub seq: Seq,
    pub last_event_id: EventId,
    pub lesson_run_id: LessonRunId,
    pub course_id: CourseId,
    pub lesson_id: LessonId,
    pub title: String,
    pub edge_id: EdgeId,
    pub started_by: UserId,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub settings: SessionSettings,
    pub participants: BTreeMap<ParticipantId, Participant>,
    pub scene: Scene,
    pub slide: Option<SlideRef>,
    pub layout: Layout,
    pub strokes: Vec<Stroke>,
    pub chat: Vec<ChatEntry>,
    pub questions: BTreeMap<QuestionId, Question>,
    pub polls: BTreeMap<PollId, Poll>,
    /// Raised hands in the order they went up.
    pub hands: Vec<ParticipantId>,
    pub tracks: BTreeMap<TrackId, Track>,
    pub ctas: BTreeMap<CtaId, Cta>,
    pub kill_switches: KillSwitches,
    pub locked: bool,
    pub exam_mode: bool,
    pub recording: RecordingState,
    pub destinations: BTreeMap<DestinationId, String>,
    /// Each destination's last reported figures (the status is in
    /// `destinations`).
    #[serde(default)]
    pub destination_stats: BTreeMap<DestinationId, DestinationStats>,
    pub captions: u32,
    pub notes: BTreeMap<ParticipantId, Vec<Note>>,
    pub published: Option<ReplayId>,
    /// The course's roster (user → role in the class), once core has sent
    /// it. `None` for a class whose roster never arrived: then only core's
    /// own enrollment check guards joins.
    pub roster: Option<BTreeMap<UserId, Role>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FoldError {
    #[error("the log must begin with session.started at seq 1, got {event_type} at seq {seq}")]
    NotStarted { event_type: &'static str, seq: Seq },
    #[error("seq gap: expected {expected}, got {got}")]
    SeqGap { expected: Seq, got: Seq },
    #[error("event {event_id} belongs to session {got}, not {expected}")]
    WrongSession {
        expected: SessionId,
        got: SessionId,
        event_id: EventId,
    },
    #[error("seq {seq} is already taken by event {existing}, not {event_id}")]
    SeqConflict {
        seq: Seq,
        existing: EventId,
        event_id: EventId,
    },
    #[error("an empty log has no state")]
    Empty,
}

/// What `apply` did with one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Applied,
    /// The event was at or before the current seq: a redelivery. Nothing changed.
    Duplicate,
}

/// Folds a whole log into its state.
pub fn fold<'a>(events: impl IntoIterator<Item = &'a Envelope>) -> Result<SessionState, FoldError> {
    let mut it = events.into_iter();
    let first = it.next().ok_or(FoldError::Empty)?;
    let mut state = SessionState::genesis(first)?;
    for ev in it {
        state.apply(ev)?;
    }
    Ok(state)
}

impl SessionState {
    /// The state after the first event, which must be `session.started` at seq 1.
    pub fn genesis(ev: &Envelope) -> Result<SessionState, FoldError> {
        let EventBody::SessionStarted {
            lesson_run_id,
            course_id,
            lesson_id,
            title,
            edge_id,
            started_by,
            settings,
        } = &ev.body
        else {
            return Err(FoldError::NotStarted {
                event_type: ev.event_type(),
                seq: ev.seq,
            });
        };
        if ev.seq != Seq::FIRST {
            return Err(FoldError::NotStarted {
                event_type: ev.event_type(),
                seq: ev.seq,
            });
        }
        Ok(SessionState {
            session_id: ev.session_id,
            tenant_id: ev.tenant_id,
            status: SessionStatus::Live,
            seq: ev.seq,
            last_event_id: ev.event_id,
            lesson_run_id: *lesson_run_id,
            course_id: *course_id,
            lesson_id: *lesson_id,
            title: title.clone(),
            edge_id: edge_id.clone(),
            started_by: *started_by,
            started_at: ev.occurred_at,
            ended_at: None,
            settings: settings.clone(),
            participants: BTreeMap::new(),
            scene: Scene::Camera,
            slide: None,
            layout: Layout::Speaker,
            strokes: Vec::new(),
            chat: Vec::new(),
            questions: BTreeMap::new(),
            polls: BTreeMap::new(),
            hands: Vec::new(),
            tracks: BTreeMap::new(),
            ctas: BTreeMap::new(),
            kill_switches: KillSwitches::default(),
            locked: false,
            exam_mode: false,
            recording: RecordingState::default(),
            destinations: BTreeMap::new(),
            destination_stats: BTreeMap::new(),
            captions: 0,
            notes: BTreeMap::new(),
            published: None,
            roster: None,
        })
    }

    pub fn is_live(&self) -> bool {
        self.status == SessionStatus::Live
    }

    /// Participants in the room now.
    pub fn present(&self) -> impl Iterator<Item = &Participant> {
        self.participants.values().filter(|p| p.present)
    }

    pub fn participant(&self, id: ParticipantId) -> Option<&Participant> {
        self.participants.get(&id)
    }

    /// Open questions, most upvoted first, ties in the order asked.
    pub fn questions_by_votes(&self) -> Vec<&Question> {
        let mut qs: Vec<&Question> = self
            .questions
            .values()
            .filter(|q| q.status == QuestionStatus::Open)
            .collect();
        qs.sort_by(|a, b| {
            b.votes()
                .cmp(&a.votes())
                .then(a.asked_seq.cmp(&b.asked_seq))
        });
        qs
    }

    /// Applies the next event of the log.
    ///
    /// An event at or before the current seq is a redelivery and changes
    /// nothing, which is what makes replays after a cut link safe.
    pub fn apply(&mut self, ev: &Envelope) -> Result<Applied, FoldError> {
        if ev.session_id != self.session_id {
            return Err(FoldError::WrongSession {
                expected: self.session_id,
                got: ev.session_id,
                event_id: ev.event_id,
            });
        }
        if ev.seq <= self.seq {
            if ev.seq == self.seq && ev.event_id != self.last_event_id {
                return Err(FoldError::SeqConflict {
                    seq: ev.seq,
                    existing: self.last_event_id,
                    event_id: ev.event_id,
                });
            }
            return Ok(Applied::Duplicate);
        }
        if ev.seq != self.seq.next() {
            return Err(FoldError::SeqGap {
                expected: self.seq.next(),
                got: ev.seq,
            });
        }
        self.apply_body(ev);
        self.seq = ev.seq;
        self.last_event_id = ev.event_id;
        Ok(Applied::Applied)
    }

    fn apply_body(&mut self, ev: &Envelope) {
        use EventBody::*;
        match &ev.body {
            // A second start inside one log is meaningless; the writer never
            // emits it and the reducer keeps the first.
            SessionStarted { .. } => {}
            SessionEnded { .. } => {
                self.status = SessionStatus::Ended;
                self.ended_at = Some(ev.occurred_at);
                for p in self.participants.values_mut() {
                    p.present = false;
                    p.hand_raised = false;
                }
                self.hands.clear();
                self.tracks.clear();
                for poll in self.polls.values_mut() {
                    poll.open = false;
                }
            }
            ParticipantJoined {
                participant_id,
                user_id,
                role,
                display_name,
                edge_id,
                permissions,
            } => {
                let p = self
                    .participants
                    .entry(*participant_id)
                    .or_insert_with(|| Participant {
                        participant_id: *participant_id,
                        user_id: *user_id,
                        role: *role,
                        display_name: display_name.clone(),
                        edge_id: edge_id.clone(),
                        permissions: permissions.clone(),
                        present: true,
                        removed: false,
                        hand_raised: false,
                        audio_muted: false,
                        video_muted: false,
                        recording_consent: true,
                        joined_seq: ev.seq,
                    });
                // A rejoin keeps the seat and its permissions; only presence
                // and the edge it came through change.
                p.present = true;
                p.edge_id = edge_id.clone();
            }
            ParticipantLeft {
                participant_id,
                reason,
            } => {
                if let Some(p) = self.participants.get_mut(participant_id) {
                    p.present = false;
                    p.hand_raised = false;
                    if *reason == LeaveReason::Removed {
                        p.removed = true;
                    }
                }
                self.hands.retain(|h| h != participant_id);
                self.tracks
                    .retain(|_, t| t.participant_id != *participant_id);
            }
            ParticipantMuted {
                participant_id,
                media,
            } => {
                if let Some(p) = self.participants.get_mut(participant_id) {
                    match media {
                        MediaKind::Audio => p.audio_muted = true,
                        MediaKind::Video => p.video_muted = true,
                    }
                }
            }
            PermissionChanged {
                participant_id,
                permissions,
                ..
            } => {
                if let Some(p) = self.participants.get_mut(participant_id) {
                    p.permissions = permissions.clone();
                }
            }
            HandRaised { participant_id } => {
                if let Some(p) = self.participants.get_mut(participant_id)
                    && !p.hand_raised
                {
                    p.hand_raised = true;
                    self.hands.push(*participant_id);
                }
            }
            HandLowered { participant_id } => {
                if let Some(p) = self.participants.get_mut(participant_id) {
                    p.hand_raised = false;
                }
                self.hands.retain(|h| h != participant_id);
            }
            ConsentChanged {
                participant_id,
                recording,
            } => {
                if let Some(p) = self.participants.get_mut(participant_id) {
                    p.recording_consent = *recording;
                }
            }
            SceneChanged { scene } => self.scene = *scene,
            SlideChanged {
                deck_id,
                index,
                page_count,
            } => {
                self.slide = Some(SlideRef {
                    deck_id: *deck_id,
                    index: *index,
                    page_count: *page_count,
                })
            }
            LayoutChanged { layout } => self.layout = *layout,
            WhiteboardStroke {
                stroke_id,
                participant_id,
                color,
                width,
                points,
            } => self.strokes.push(Stroke {
                stroke_id: *stroke_id,
                participant_id: *participant_id,
                color: color.clone(),
                width: *width,
                points: points.clone(),
            }),
            WhiteboardCleared {} => self.strokes.clear(),
            ChatMessage {
                message_id,
                participant_id,
                text,
            } => self.chat.push(ChatEntry {
                message_id: *message_id,
                participant_id: *participant_id,
                text: text.clone(),
                seq: ev.seq,
                deleted: false,
            }),
            ChatDeleted { message_id } => {
                if let Some(m) = self.chat.iter_mut().find(|m| m.message_id == *message_id) {
                    m.deleted = true;
                    m.text.clear();
                }
            }
            QuestionAsked {
                question_id,
                participant_id,
                text,
            } => {
                self.questions
                    .entry(*question_id)
                    .or_insert_with(|| Question {
                        question_id: *question_id,
                        participant_id: *participant_id,
                        text: text.clone(),
                        upvoters: BTreeSet::new(),
                        status: QuestionStatus::Open,
                        answer: None,
                        asked_seq: ev.seq,
                    });
            }
            QuestionUpvoted {
                question_id,
                participant_id,
            } => {
                if let Some(q) = self.questions.get_mut(question_id) {
                    q.upvoters.insert(*participant_id);
                }
            }
            QuestionAnswered {
                question_id,
                answer,
            } => {
                if let Some(q) = self.questions.get_mut(question_id) {
                    q.status = QuestionStatus::Answered;
                    q.answer = answer.clone();
                }
            }
            QuestionDismissed { question_id } => {
                if let Some(q) = self.questions.get_mut(question_id) {
                    q.status = QuestionStatus::Dismissed;
                }
            }
            PollOpened {
                poll_id,
                question,
                options,
                correct_option,
            } => {
                self.polls.entry(*poll_id).or_insert_with(|| Poll {
                    poll_id: *poll_id,
                    question: question.clone(),
                    options: options.clone(),
                    correct_option: *correct_option,
                    votes: BTreeMap::new(),
                    open: true,
                    opened_seq: ev.seq,
                });
            }
            PollVoted {
                poll_id,
                participant_id,
                option,
            } => {
                if let Some(p) = self.polls.get_mut(poll_id)
                    && p.open
                    && (*option as usize) < p.options.len()
                {
                    p.votes.entry(*participant_id).or_insert(*option);
                }
            }
            PollClosed { poll_id, .. } => {
                if let Some(p) = self.polls.get_mut(poll_id) {
                    p.open = false;
                }
            }
            CaptionSegment { .. } => self.captions += 1,
            NoteSaved {
                note_id,
                participant_id,
                text,
            } => self.notes.entry(*participant_id).or_default().push(Note {
                note_id: *note_id,
                text: text.clone(),
                seq: ev.seq,
            }),
            CtaShown { cta_id, url, label } => {
                self.ctas.insert(
                    *cta_id,
                    Cta {
                        cta_id: *cta_id,
                        url: url.clone(),
                        label: label.clone(),
                    },
                );
            }
            CtaHidden { cta_id } => {
                self.ctas.remove(cta_id);
            }
            RoomLocked { locked } => self.locked = *locked,
            ExamModeChanged { enabled } => self.exam_mode = *enabled,
            KillSwitchChanged { switch, engaged } => {
                let ks = &mut self.kill_switches;
                match switch {
                    KillSwitch::Chat => ks.chat = *engaged,
                    KillSwitch::Recording => ks.recording = *engaged,
                    KillSwitch::Multistream => ks.multistream = *engaged,
                    KillSwitch::Media { participant_id } => {
                        if *engaged {
                            ks.media.insert(*participant_id);
                            self.tracks
                                .retain(|_, t| t.participant_id != *participant_id);
                        } else {
                            ks.media.remove(participant_id);
                        }
                    }
                }
            }
            TrackPublished {
                track_id,
                participant_id,
                kind,
                source,
                codec,
                simulcast,
            } => {
                self.tracks.insert(
                    *track_id,
                    Track {
                        track_id: *track_id,
                        participant_id: *participant_id,
                        kind: *kind,
                        source: *source,
                        codec: codec.clone(),
                        simulcast: simulcast.clone(),
                    },
                );
            }
            TrackUnpublished { track_id } => {
                self.tracks.remove(track_id);
            }
            MediaQuality { .. } => {}
            RecordingArmed { started_at, .. } => {
                self.recording.status = RecordingStatus::Armed;
                self.recording.armed_at.get_or_insert(*started_at);
                self.recording.runs += 1;
            }
            RecordingSegment { index, end_ms, .. } => {
                self.recording.segments += 1;
                self.recording.next_index = self.recording.next_index.max(index.saturating_add(1));
                self.recording.recorded_ms = self.recording.recorded_ms.max(*end_ms);
            }
            RecordingGap { .. } => self.recording.gaps += 1,
            RecordingAlert { .. } => self.recording.alerts += 1,
            RecordingFinalized { duration_ms, .. } => {
                self.recording.status = RecordingStatus::Finalized;
                self.recording.recorded_ms = *duration_ms;
            }
            DestinationStatus {
                destination_id,
                status,
                bitrate_kbps,
                dropped_frames,
                reason,
            } => {
                self.destinations.insert(*destination_id, status.clone());
                let stats = self.destination_stats.entry(*destination_id).or_default();
                stats.bitrate_kbps = if status == "live" {
                    *bitrate_kbps
                } else {
                    None
                };
                if let Some(d) = dropped_frames {
                    stats.dropped_frames = *d;
                }
                stats.reason = reason.clone();
                stats.at = Some(ev.occurred_at);
            }
            ArtifactReady { .. } => {}
            SessionPublished { replay_id, .. } => self.published = Some(*replay_id),
            RosterSet { members } => self.roster = Some(members.clone()),
            RosterChanged { user_id, role } => {
                let roster = self.roster.get_or_insert_with(BTreeMap::new);
                match role {
                    Some(r) => {
                        roster.insert(*user_id, *r);
                    }
                    None => {
                        roster.remove(user_id);
                    }
                }
            }
        }
    }
}
