//! Messages between core and an edge's control endpoint (NATS request/reply
//! on `subjects::edge_control_subject`), and the edge's health report.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::command::{Command, Rejection};
use crate::event::{Actor, Envelope, SessionSettings};
use crate::ids::*;
use crate::state::{Participant, SessionState};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum EdgeRequest {
    /// Become the home of a new session and append `session.started`.
    Start {
        session_id: SessionId,
        tenant_id: TenantId,
        lesson_run_id: LessonRunId,
        course_id: CourseId,
        lesson_id: LessonId,
        title: String,
        started_by: UserId,
        settings: SessionSettings,
        /// Decks the class may show, so slides work while core is away.
        #[serde(default)]
        decks: Vec<DeckInfo>,
    },
    /// Decks uploaded since (or not known yet).
    Decks { decks: Vec<DeckInfo> },
    /// Run one command through the session's writer.
    Command {
        session_id: SessionId,
        actor: Actor,
        command: Command,
    },
    /// The session's current state, folded on the edge.
    State { session_id: SessionId },
    /// Core could not finish a start: forget the session (ending it if it
    /// was already appended).
    Abort { session_id: SessionId },
    /// The destinations a live class streams to now (the whole set: one
    /// missing from it is stopped).
    Destinations {
        session_id: SessionId,
        destinations: Vec<PushTarget>,
    },
}

/// Where a class is pushed, as its home edge needs it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushTarget {
    pub destination_id: DestinationId,
    pub kind: PushKind,
    /// The URL pushed to: for RTMP(S) the destination's URL, `/` and its
    /// stream key. It holds the key: never log it.
    pub url: String,
    pub audience: Audience,
}

impl std::fmt::Debug for PushTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushTarget")
            .field("destination_id", &self.destination_id)
            .field("kind", &self.kind)
            .field("url", &"<redacted>")
            .field("audience", &self.audience)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushKind {
    Rtmp,
    Rtmps,
    Srt,
}

/// Which program a destination takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    /// Anyone may watch: the class's staff, slides, screen and whiteboard
    /// only (no student's camera, voice or name).
    Public,
    /// Another campus of the institution: the whole program.
    Private,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum EdgeReply {
    /// The command was appended (or was already satisfied: `events` empty).
    Done {
        events: Vec<Envelope>,
        seq: Seq,
        /// For join and permission commands: the participant afterwards.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        participant: Option<Participant>,
    },
    State {
        state: Box<SessionState>,
    },
    Rejected {
        rejection: Rejection,
    },
    /// The edge could not do it: no such session, event log unavailable, ...
    Failed {
        code: String,
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeckInfo {
    pub deck_id: DeckId,
    pub tenant_id: TenantId,
    pub page_count: u32,
    /// Signed URLs of the page images, for the edge's composer.
    #[serde(default)]
    pub page_urls: Vec<String>,
}

/// What an edge tells core every second or so.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EdgeHealth {
    pub edge_id: EdgeId,
    /// Base URL clients use for signaling and the live feed.
    pub url: String,
    #[serde(default)]
    pub region: Option<String>,
    /// Sessions this edge can host at once.
    pub capacity: u32,
    pub sessions: u32,
    pub participants: u32,
    /// False when the edge can't take new classes (event log or media down).
    pub accepting: bool,
    pub at: DateTime<Utc>,
    /// Public viewers watching through this edge now, per session.
    #[serde(default)]
    pub public_viewers: std::collections::BTreeMap<crate::ids::SessionId, u32>,
    /// When this edge process started: a new value tells core the edge
    /// restarted (and lost what it held only in memory, such as the
    /// classes' push targets).
    #[serde(default)]
    pub booted_at: Option<DateTime<Utc>>,
}
