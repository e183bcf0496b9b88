//! Typed identifiers. Every id that crosses a function boundary is one of these,
//! never a bare `Uuid`, `String` or `u64`.
//!
//! Ids are UUIDv7 (time-ordered), but this crate never mints them: time and
//! randomness belong to the shells, which call `Uuid::now_v7()` and wrap it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[doc = $doc:literal])* $name:ident) => {
        $(#[doc = $doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        /// In OpenAPI documents: a UUID string.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                uuid_schema(concat!("" $(, $doc)*))
            }
        }

        impl utoipa::ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed(stringify!($name))
            }
        }
    };
}

fn uuid_schema(doc: &str) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
    let doc = doc.trim();
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
        .description((!doc.is_empty()).then(|| doc.to_owned()))
        .into()
}

uuid_id!(
    /// A tenant: one school or organisation. Nothing crosses tenants.
    TenantId
);
uuid_id!(UserId);
uuid_id!(CourseId);
uuid_id!(LessonId);
uuid_id!(LessonRunId);
uuid_id!(
    /// One live class: from `session.started` to `session.ended`.
    SessionId
);
uuid_id!(
    /// A user's (or public viewer's) seat in one session. Survives reconnects.
    ParticipantId
);
uuid_id!(
    /// The dedup key of an event: JetStream's `Nats-Msg-Id` and Postgres' primary key.
    EventId
);
uuid_id!(MessageId);
uuid_id!(QuestionId);
uuid_id!(PollId);
uuid_id!(DeckId);
uuid_id!(TrackId);
uuid_id!(DestinationId);
uuid_id!(CtaId);
uuid_id!(NoteId);
uuid_id!(StrokeId);
uuid_id!(ReplayId);

/// An edge node's name, e.g. `edge-a`. Also its JetStream domain and part of
/// NATS subjects, so it is restricted to `[a-z0-9-]`, 1 to 32 characters.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EdgeId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("edge id must be 1-32 characters of a-z, 0-9 and '-', got {0:?}")]
pub struct InvalidEdgeId(pub String);

impl EdgeId {
    pub fn new(s: impl Into<String>) -> Result<Self, InvalidEdgeId> {
        let s = s.into();
        let ok = !s.is_empty()
            && s.len() <= 32
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Self(s))
        } else {
            Err(InvalidEdgeId(s))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EdgeId {
    type Error = InvalidEdgeId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl From<EdgeId> for String {
    fn from(id: EdgeId) -> String {
        id.0
    }
}

impl FromStr for EdgeId {
    type Err = InvalidEdgeId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Display for EdgeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl utoipa::PartialSchema for EdgeId {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[a-z0-9-]{1,32}$"))
            .description(Some("An edge node's name, e.g. `edge-a`"))
            .into()
    }
}

impl utoipa::ToSchema for EdgeId {}

impl fmt::Debug for EdgeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EdgeId({})", self.0)
    }
}

/// Position of an event in its session's log: 1 for `session.started`, then
/// gap-free. Assigned by the session's one writer.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    Default,
    Debug,
    utoipa::ToSchema,
)]
#[serde(transparent)]
pub struct Seq(pub u64);

impl Seq {
    pub const ZERO: Seq = Seq(0);
    pub const FIRST: Seq = Seq(1);
    /// The following seq. Saturates: `Seq(u64::MAX)` means "the end" in
    /// queries and is never assigned.
    pub fn next(self) -> Seq {
        Seq(self.0.saturating_add(1))
    }
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edge_ids_are_subject_safe() {
        assert!(EdgeId::new("edge-a").is_ok());
        assert!(EdgeId::new("campus-12").is_ok());
        for bad in ["", "Edge", "a.b", "a*", "a>", "a b", &"x".repeat(33)] {
            assert!(EdgeId::new(bad).is_err(), "{bad:?} must be rejected");
        }
        let parsed: Result<EdgeId, _> = serde_json::from_str("\"a.b\"");
        assert!(parsed.is_err());
    }

    #[test]
    fn uuid_ids_roundtrip_as_plain_strings() {
        let id = SessionId::from_uuid(Uuid::nil());
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"00000000-0000-0000-0000-000000000000\"");
        let back: SessionId = serde_json::from_str(&json).unwrap();
        assert_eq!(back, id);
    }
}
