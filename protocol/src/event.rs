//! The event envelope and the typed payloads of every event a class produces.
//!
//! On the wire an event is one JSON object:
//! `{"event_id", "tenant_id", "session_id", "seq", "occurred_at", "actor",
//!   "source", "v", "type", "payload"}`. `type` is a dotted name such as
//! `question.asked`; `payload` is that type's fields. `v` is the envelope's
//! schema version: a reader that meets a newer `v` keeps the raw JSON.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::*;
use crate::roles::{Permission, Role};

/// The version this crate writes.
pub const EVENT_SCHEMA_VERSION: u16 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub event_id: EventId,
    pub tenant_id: TenantId,
    pub session_id: SessionId,
    pub seq: Seq,
    pub occurred_at: DateTime<Utc>,
    pub actor: Actor,
    pub source: Source,
    pub v: u16,
    #[serde(flatten)]
    pub body: EventBody,
}

impl Envelope {
    pub fn event_type(&self) -> &'static str {
        self.body.event_type()
    }
}

/// Who caused an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Actor {
    /// A person: a user with an account, or a public viewer (no `user_id`).
    Person {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user_id: Option<UserId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        participant_id: Option<ParticipantId>,
        role: Role,
    },
    /// The platform itself: the SFU, the recorder, the captioner, core's pipeline.
    System,
}

impl Actor {
    pub fn participant_id(&self) -> Option<ParticipantId> {
        match self {
            Actor::Person { participant_id, .. } => *participant_id,
            Actor::System => None,
        }
    }
    pub fn user_id(&self) -> Option<UserId> {
        match self {
            Actor::Person { user_id, .. } => *user_id,
            Actor::System => None,
        }
    }
}

/// Which process wrote an event: the session's home edge while the class is
/// live, core after it ended.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    Edge(EdgeId),
    Core,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Edge(id) => write!(f, "edge:{id}"),
            Source::Core => f.write_str("core"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event source must be \"core\" or \"edge:<edge id>\", got {0:?}")]
pub struct InvalidSource(pub String);

impl FromStr for Source {
    type Err = InvalidSource;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "core" {
            return Ok(Source::Core);
        }
        s.strip_prefix("edge:")
            .and_then(|id| EdgeId::new(id).ok())
            .map(Source::Edge)
            .ok_or_else(|| InvalidSource(s.to_owned()))
    }
}

impl Serialize for Source {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Source {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Scene {
    /// The presenter's camera, full frame.
    Camera,
    /// The current slide, the presenter's camera in a corner.
    Slides,
    /// A screen share.
    Screen,
    Whiteboard,
    /// Slides or screen beside the presenter's camera.
    Split,
}

impl Scene {
    pub const ALL: [Scene; 5] = [
        Scene::Camera,
        Scene::Slides,
        Scene::Screen,
        Scene::Whiteboard,
        Scene::Split,
    ];
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// The active speaker fills the frame.
    Speaker,
    /// Everyone on camera in a grid.
    Grid,
    /// Content full frame, presenter as picture-in-picture.
    Pip,
    SideBySide,
}

impl Layout {
    pub const ALL: [Layout; 4] = [
        Layout::Speaker,
        Layout::Grid,
        Layout::Pip,
        Layout::SideBySide,
    ];
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    Audio,
    Video,
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TrackSource {
    Camera,
    Microphone,
    Screen,
    /// The composed program feed of the session.
    Program,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// A teacher or admin ended the class.
    Ended,
    /// The start could not complete and was rolled back.
    Aborted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    Left,
    /// Media dropped and did not come back within the grace period.
    Disconnected,
    Removed,
}

/// Per-session switches that cut one capability at once, whatever else is
/// happening (spec: content safety, kill switches).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum KillSwitch {
    Chat,
    Recording,
    Multistream,
    /// All media of one participant.
    Media {
        participant_id: ParticipantId,
    },
}

/// Settings fixed when a class starts; copied from the tenant and course.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SessionSettings {
    /// If the recorder can't arm, the start aborts.
    #[serde(default)]
    pub recording_required: bool,
    /// A public link may watch the program feed.
    #[serde(default)]
    pub public_viewing: bool,
    /// Chat and question text containing one of these words is refused.
    #[serde(default)]
    pub blocked_words: Vec<String>,
    /// The tenant's public recording key: the edge seals every recording
    /// object to it (and cannot open them). Set by core on every start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_key: Option<RecordingKey>,
}

/// A tenant's public X25519 key for sealing recordings (public: safe in the
/// event log).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingKey {
    /// 64 hex digits.
    pub x25519: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PollResult {
    pub option: u32,
    pub label: String,
    pub votes: u32,
}

/// A whiteboard point in normalised board units, 0..=10000 on each axis.
pub type BoardPoint = [u16; 2];

/// The OpenAPI schema of a list of [`BoardPoint`]s: `[[x, y], ...]`.
pub fn board_points_schema() -> utoipa::openapi::schema::Array {
    use crate::command::{BOARD_MAX, MAX_STROKE_POINTS};
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    let coord = ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(0))
        .maximum(Some(BOARD_MAX));
    let point = ArrayBuilder::new()
        .items(coord)
        .min_items(Some(2))
        .max_items(Some(2))
        .description(Some(format!(
            "`[x, y]` in board units, 0..={BOARD_MAX} on each axis"
        )));
    ArrayBuilder::new()
        .items(point)
        .min_items(Some(1))
        .max_items(Some(MAX_STROKE_POINTS))
        .build()
}

/// Every event type of a class. Adding a variant is a schema change: every
/// exhaustive match in the workspace tells you where it matters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload")]
pub enum EventBody {
    // --- lifecycle ------------------------------------------------------
    #[serde(rename = "session.started")]
    SessionStarted {
        lesson_run_id: LessonRunId,
        course_id: CourseId,
        lesson_id: LessonId,
        title: String,
        edge_id: EdgeId,
        started_by: UserId,
        #[serde(default)]
        settings: SessionSettings,
    },
    #[serde(rename = "session.ended")]
    SessionEnded { reason: EndReason },

    // --- participation --------------------------------------------------
    #[serde(rename = "participant.joined")]
    ParticipantJoined {
        participant_id: ParticipantId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user_id: Option<UserId>,
        role: Role,
        display_name: String,
        edge_id: EdgeId,
        permissions: BTreeSet<Permission>,
    },
    #[serde(rename = "participant.left")]
    ParticipantLeft {
        participant_id: ParticipantId,
        reason: LeaveReason,
    },
    #[serde(rename = "participant.muted")]
    ParticipantMuted {
        participant_id: ParticipantId,
        media: MediaKind,
    },
    #[serde(rename = "permission.changed")]
    PermissionChanged {
        participant_id: ParticipantId,
        granted: BTreeSet<Permission>,
        revoked: BTreeSet<Permission>,
        /// The participant's whole set after the change.
        permissions: BTreeSet<Permission>,
    },
    #[serde(rename = "hand.raised")]
    HandRaised { participant_id: ParticipantId },
    #[serde(rename = "hand.lowered")]
    HandLowered { participant_id: ParticipantId },
    #[serde(rename = "consent.changed")]
    ConsentChanged {
        participant_id: ParticipantId,
        /// May this participant appear in the recording?
        recording: bool,
    },

    // --- studio state ---------------------------------------------------
    #[serde(rename = "scene.changed")]
    SceneChanged { scene: Scene },
    #[serde(rename = "slide.changed")]
    SlideChanged {
        deck_id: DeckId,
        index: u32,
        page_count: u32,
    },
    #[serde(rename = "layout.changed")]
    LayoutChanged { layout: Layout },
    #[serde(rename = "whiteboard.stroke")]
    WhiteboardStroke {
        stroke_id: StrokeId,
        participant_id: ParticipantId,
        color: String,
        width: u16,
        points: Vec<BoardPoint>,
    },
    #[serde(rename = "whiteboard.cleared")]
    WhiteboardCleared {},

    // --- interaction ----------------------------------------------------
    #[serde(rename = "chat.message")]
    ChatMessage {
        message_id: MessageId,
        participant_id: ParticipantId,
        text: String,
    },
    #[serde(rename = "chat.deleted")]
    ChatDeleted { message_id: MessageId },
    #[serde(rename = "question.asked")]
    QuestionAsked {
        question_id: QuestionId,
        participant_id: ParticipantId,
        text: String,
    },
    #[serde(rename = "question.upvoted")]
    QuestionUpvoted {
        question_id: QuestionId,
        participant_id: ParticipantId,
    },
    #[serde(rename = "question.answered")]
    QuestionAnswered {
        question_id: QuestionId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        answer: Option<String>,
    },
    #[serde(rename = "question.dismissed")]
    QuestionDismissed { question_id: QuestionId },
    #[serde(rename = "poll.opened")]
    PollOpened {
        poll_id: PollId,
        question: String,
        options: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        correct_option: Option<u32>,
    },
    #[serde(rename = "poll.voted")]
    PollVoted {
        poll_id: PollId,
        participant_id: ParticipantId,
        option: u32,
    },
    #[serde(rename = "poll.closed")]
    PollClosed {
        poll_id: PollId,
        results: Vec<PollResult>,
    },
    #[serde(rename = "caption.segment")]
    CaptionSegment {
        start_ms: u64,
        end_ms: u64,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        speaker: Option<ParticipantId>,
    },
    /// A private note: only its author ever sees it.
    #[serde(rename = "note.saved")]
    NoteSaved {
        note_id: NoteId,
        participant_id: ParticipantId,
        text: String,
    },
    #[serde(rename = "cta.shown")]
    CtaShown {
        cta_id: CtaId,
        url: String,
        label: String,
    },
    #[serde(rename = "cta.hidden")]
    CtaHidden { cta_id: CtaId },

    // --- safety ---------------------------------------------------------
    #[serde(rename = "room.locked")]
    RoomLocked { locked: bool },
    #[serde(rename = "exam_mode.changed")]
    ExamModeChanged { enabled: bool },
    #[serde(rename = "kill_switch.changed")]
    KillSwitchChanged { switch: KillSwitch, engaged: bool },

    // --- media ----------------------------------------------------------
    #[serde(rename = "track.published")]
    TrackPublished {
        track_id: TrackId,
        participant_id: ParticipantId,
        kind: MediaKind,
        source: TrackSource,
        codec: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        simulcast: Vec<String>,
    },
    #[serde(rename = "track.unpublished")]
    TrackUnpublished { track_id: TrackId },
    #[serde(rename = "media.quality")]
    MediaQuality {
        participant_id: ParticipantId,
        /// Packet loss in per-mille over the sample window.
        loss_permille: u32,
        rtt_ms: u32,
        bitrate_kbps: u32,
    },

    // --- recording ------------------------------------------------------
    /// The recorder runs. Media time `offset_ms` of the session's recording
    /// is wall-clock `started_at`; a re-arm after a crash starts at a later
    /// offset (the gap is its own event).
    #[serde(rename = "recording.armed")]
    RecordingArmed {
        started_at: DateTime<Utc>,
        offset_ms: u64,
    },
    #[serde(rename = "recording.segment")]
    RecordingSegment {
        index: u32,
        start_ms: u64,
        end_ms: u64,
        bytes: u64,
        sha256: String,
        object_key: String,
    },
    #[serde(rename = "recording.gap")]
    RecordingGap {
        from_ms: u64,
        to_ms: u64,
        reason: String,
    },
    #[serde(rename = "recording.alert")]
    RecordingAlert { reason: String },
    #[serde(rename = "recording.finalized")]
    RecordingFinalized {
        duration_ms: u64,
        segments: u32,
        manifest_key: String,
    },

    // --- distribution -----------------------------------------------------
    #[serde(rename = "destination.status")]
    DestinationStatus {
        destination_id: DestinationId,
        /// `connecting`, `live`, `retrying`, `failed` or `stopped`.
        status: String,
        /// What was sent over the last stretch, while live.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bitrate_kbps: Option<u32>,
        /// Frames this destination lost because it could not keep up (its
        /// own queue overflowed), since it was attached.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dropped_frames: Option<u64>,
        /// Why it is retrying, failed or stopped.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },

    // --- after the class (written by core) --------------------------------
    #[serde(rename = "artifact.ready")]
    ArtifactReady { kind: String, version: u32 },
    #[serde(rename = "session.published")]
    SessionPublished {
        replay_id: ReplayId,
        visibility: String,
    },

    // --- enrollment (sent by core as the platform) --------------------------
    /// The course's roster when the class started: who may join, in which
    /// role. Staff-only in the live feed (it lists every member).
    #[serde(rename = "roster.set")]
    RosterSet { members: BTreeMap<UserId, Role> },
    /// One member added, changed (`role`) or removed (`role: null`) while
    /// the class runs.
    #[serde(rename = "roster.changed")]
    RosterChanged { user_id: UserId, role: Option<Role> },
}

impl EventBody {
    /// The dotted type name, as on the wire.
    pub fn event_type(&self) -> &'static str {
        use EventBody::*;
        match self {
            SessionStarted { .. } => "session.started",
            SessionEnded { .. } => "session.ended",
            ParticipantJoined { .. } => "participant.joined",
            ParticipantLeft { .. } => "participant.left",
            ParticipantMuted { .. } => "participant.muted",
            PermissionChanged { .. } => "permission.changed",
            HandRaised { .. } => "hand.raised",
            HandLowered { .. } => "hand.lowered",
            ConsentChanged { .. } => "consent.changed",
            SceneChanged { .. } => "scene.changed",
            SlideChanged { .. } => "slide.changed",
            LayoutChanged { .. } => "layout.changed",
            WhiteboardStroke { .. } => "whiteboard.stroke",
            WhiteboardCleared {} => "whiteboard.cleared",
            ChatMessage { .. } => "chat.message",
            ChatDeleted { .. } => "chat.deleted",
            QuestionAsked { .. } => "question.asked",
            QuestionUpvoted { .. } => "question.upvoted",
            QuestionAnswered { .. } => "question.answered",
            QuestionDismissed { .. } => "question.dismissed",
            PollOpened { .. } => "poll.opened",
            PollVoted { .. } => "poll.voted",
            PollClosed { .. } => "poll.closed",
            CaptionSegment { .. } => "caption.segment",
            NoteSaved { .. } => "note.saved",
            CtaShown { .. } => "cta.shown",
            CtaHidden { .. } => "cta.hidden",
            RoomLocked { .. } => "room.locked",
            ExamModeChanged { .. } => "exam_mode.changed",
            KillSwitchChanged { .. } => "kill_switch.changed",
            TrackPublished { .. } => "track.published",
            TrackUnpublished { .. } => "track.unpublished",
            MediaQuality { .. } => "media.quality",
            RecordingArmed { .. } => "recording.armed",
            RecordingSegment { .. } => "recording.segment",
            RecordingGap { .. } => "recording.gap",
            RecordingAlert { .. } => "recording.alert",
            RecordingFinalized { .. } => "recording.finalized",
            DestinationStatus { .. } => "destination.status",
            ArtifactReady { .. } => "artifact.ready",
            SessionPublished { .. } => "session.published",
            RosterSet { .. } => "roster.set",
            RosterChanged { .. } => "roster.changed",
        }
    }

    /// Events only their author may read (private notes).
    pub fn private_to(&self) -> Option<ParticipantId> {
        match self {
            EventBody::NoteSaved { participant_id, .. } => Some(*participant_id),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;
    use uuid::Uuid;

    fn id<T: From<Uuid>>(n: u128) -> T {
        T::from(Uuid::from_u128(n))
    }

    #[test]
    fn envelope_wire_shape() {
        let ev = Envelope {
            event_id: id(1),
            tenant_id: id(2),
            session_id: id(3),
            seq: Seq(7),
            occurred_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            actor: Actor::Person {
                user_id: Some(id(4)),
                participant_id: Some(id(5)),
                role: Role::Student,
            },
            source: Source::Edge(EdgeId::new("edge-a").unwrap()),
            v: EVENT_SCHEMA_VERSION,
            body: EventBody::QuestionAsked {
                question_id: id(6),
                participant_id: id(5),
                text: "why?".into(),
            },
        };
        let json = serde_json::to_string(&ev).unwrap();
        expect![[r#"{"event_id":"00000000-0000-0000-0000-000000000001","tenant_id":"00000000-0000-0000-0000-000000000002","session_id":"00000000-0000-0000-0000-000000000003","seq":7,"occurred_at":"2023-11-14T22:13:20Z","actor":{"kind":"person","user_id":"00000000-0000-0000-0000-000000000004","participant_id":"00000000-0000-0000-0000-000000000005","role":"student"},"source":"edge:edge-a","v":1,"type":"question.asked","payload":{"question_id":"00000000-0000-0000-0000-000000000006","participant_id":"00000000-0000-0000-0000-000000000005","text":"why?"}}"#]].assert_eq(&json);
        let back: Envelope = serde_json::from_str(&json).unwrap();
        assert_eq!(back, ev);
        assert_eq!(back.event_type(), "question.asked");
    }

    #[test]
    fn type_names_match_serde_tags() {
        let bodies = vec![
            EventBody::WhiteboardCleared {},
            EventBody::RecordingArmed {
                started_at: DateTime::from_timestamp(0, 0).unwrap(),
                offset_ms: 0,
            },
            EventBody::SceneChanged {
                scene: Scene::Slides,
            },
            EventBody::KillSwitchChanged {
                switch: KillSwitch::Media {
                    participant_id: id(9),
                },
                engaged: true,
            },
        ];
        for b in bodies {
            let v = serde_json::to_value(&b).unwrap();
            assert_eq!(v["type"], b.event_type());
        }
    }

    #[test]
    fn source_parses_and_rejects() {
        assert_eq!("core".parse::<Source>().unwrap(), Source::Core);
        assert_eq!(
            "edge:edge-b".parse::<Source>().unwrap(),
            Source::Edge(EdgeId::new("edge-b").unwrap())
        );
        assert!("edge:".parse::<Source>().is_err());
        assert!("elsewhere".parse::<Source>().is_err());
    }
}
