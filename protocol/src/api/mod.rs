//! Request bodies of the class commands, shared by core's API and the edge's
//! campus API (the same routes, the same JSON), and how each becomes a
//! `Command`. Fresh ids are passed in by the shell.

pub mod openapi;

use std::borrow::Cow;
use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;

use crate::command::Command;
use crate::event::{KillSwitch, Layout, LeaveReason, MediaKind, Scene};
use crate::ids::*;
use crate::roles::Permission;
use crate::{Envelope, EventBody};

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({ "scene": "slides" })))]
pub struct SceneBody {
    pub scene: Scene,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({ "layout": "grid" })))]
pub struct LayoutBody {
    pub layout: Layout,
}

/// A chat message, a question or a private note.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({ "text": "Could you go over the last slide again?" })))]
pub struct TextBody {
    /// Not empty; refused past the session's length limit or with a
    /// blocked word (chat and questions).
    pub text: String,
}

/// Marks a question answered, with an optional written answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({ "text": "Yes: see slide 4." })))]
pub struct AnswerBody {
    #[serde(default)]
    pub text: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({ "question": "Which one is a prime?", "options": ["4", "7", "9"], "correct_option": 1 })))]
pub struct PollBody {
    pub question: String,
    /// Two or more options, in order.
    pub options: Vec<String>,
    /// The index of the right option, for a quiz.
    #[serde(default)]
    pub correct_option: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({ "option": 1 })))]
pub struct VoteBody {
    /// The index of the chosen option.
    pub option: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({ "participant_id": "0190b2a4-5a2e-7c3d-9f10-1b2c3d4e5f60", "grant": ["speak"], "revoke": ["chat"] })))]
pub struct PermissionsBody {
    pub participant_id: ParticipantId,
    #[serde(default)]
    pub grant: BTreeSet<Permission>,
    #[serde(default)]
    pub revoke: BTreeSet<Permission>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({ "participant_id": "0190b2a4-5a2e-7c3d-9f10-1b2c3d4e5f60", "media": "audio" })))]
pub struct MuteBody {
    pub participant_id: ParticipantId,
    pub media: MediaKind,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({ "participant_id": "0190b2a4-5a2e-7c3d-9f10-1b2c3d4e5f60" })))]
pub struct ParticipantBody {
    pub participant_id: ParticipantId,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({ "locked": true })))]
pub struct LockBody {
    pub locked: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({ "enabled": true })))]
pub struct ExamModeBody {
    pub enabled: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({ "switch": { "kind": "chat" }, "engaged": true })))]
pub struct KillSwitchBody {
    pub switch: KillSwitch,
    pub engaged: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({ "url": "https://example.edu/survey", "label": "Course survey" })))]
pub struct CtaBody {
    /// An `http(s)` URL, shown as a QR code.
    pub url: String,
    pub label: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({ "recording": false })))]
pub struct ConsentBody {
    /// `false` withdraws consent to being recorded.
    pub recording: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({ "color": "#1a73e8", "width": 4, "points": [[1200, 800], [1300, 860]] })))]
pub struct StrokeBody {
    #[schema(pattern = "^#[0-9a-fA-F]{6}$")]
    pub color: String,
    /// In board units.
    #[schema(minimum = 1, maximum = 100)]
    pub width: u16,
    #[schema(schema_with = crate::event::board_points_schema)]
    pub points: Vec<crate::event::BoardPoint>,
}

/// Lowers the caller's own hand, or (a moderator) someone else's.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({})))]
pub struct LowerHandBody {
    /// Whose hand; the caller's when absent.
    #[serde(default)]
    pub participant_id: Option<ParticipantId>,
}

/// A leave by the caller themselves.
pub fn leave(participant_id: ParticipantId) -> Command {
    Command::Leave {
        participant_id,
        reason: LeaveReason::Left,
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({ "deck_id": "0190b2a4-5a2e-7c3d-9f10-1b2c3d4e5f61", "index": 0 })))]
pub struct SlideBody {
    /// A deck uploaded to core (`POST /decks`) in the caller's tenant.
    pub deck_id: DeckId,
    /// 0-based; less than the deck's page count.
    pub index: u32,
}

/// No fields: `{}`, or an empty body.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({})))]
pub struct Empty {}

/// The error body of every HTTP API (core's and the edge's):
/// `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiErrorBody {
    pub error: ApiErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiErrorDetail {
    /// A snake_case code, stable for clients.
    pub code: String,
    /// Human text.
    pub message: String,
    /// For a 403 from a session: the permission the caller lacks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub missing_permission: Option<Permission>,
}

/// The OpenAPI schema of a body type: `(name, schema)` of the type itself
/// first, then of every schema it refers to.
pub type SchemaFn = fn() -> Vec<(String, RefOr<Schema>)>;

/// [`SchemaFn`] of `T`.
pub fn schema_of<T: ToSchema>() -> Vec<(String, RefOr<Schema>)> {
    let mut out = vec![(T::name().into_owned(), T::schema())];
    T::schemas(&mut out);
    out
}

/// What a class command route answers with 200; every answer also has
/// `seq`. Made by [`answer`], on core and on the edge alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// `{"seq"}`.
    Seq,
    /// `{"seq", "id", "<name>"}`: the id the command created, under its
    /// own name (`message_id`, ...) and as `id`.
    Created(&'static str),
    /// `{"seq", "poll_id", "results"}`: the closed poll's results.
    PollResults,
}

impl Answer {
    /// The answer's schema name in `components/schemas`.
    pub fn schema_name(self) -> Cow<'static, str> {
        match self {
            Answer::Seq => Cow::Borrowed("CommandAnswer"),
            Answer::Created(name) => {
                let stem = name.strip_suffix("_id").unwrap_or(name);
                let mut chars = stem.chars();
                let head: String = chars
                    .next()
                    .map(|c| c.to_ascii_uppercase())
                    .into_iter()
                    .collect();
                Cow::Owned(format!("Created{head}{}Answer", chars.as_str()))
            }
            Answer::PollResults => Cow::Borrowed("PollResultsAnswer"),
        }
    }
}

/// The 200 answer of a class command, the same JSON from core and from the
/// edge: `seq` is the last event the command appended (the log's position
/// when it changed nothing); a created id comes under its own name and as
/// `id`; a closed poll comes with its results.
pub fn answer(
    created: Option<(&str, uuid::Uuid)>,
    events: &[Envelope],
    seq: Seq,
) -> serde_json::Value {
    let mut answer = json!({ "seq": events.last().map(|e| e.seq).unwrap_or(seq) });
    if let Some((name, id)) = created {
        answer[name] = json!(id);
        answer["id"] = json!(id);
    }
    for ev in events {
        if let EventBody::PollClosed { poll_id, results } = &ev.body {
            answer["poll_id"] = json!(poll_id);
            answer["results"] = json!(results);
        }
    }
    answer
}

/// One class command route: the same on core's API and on the edge, with
/// what its OpenAPI description needs (`openapi::class_routes`).
#[derive(Debug, Clone, Copy)]
pub struct ClassRoute {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    /// The JSON body's schema: the type [`build`] reads for this route (an
    /// empty body counts as `{}`). Its first example is a valid body.
    pub body: SchemaFn,
    /// What the route answers with 200 (made by [`answer`]).
    pub answer: Answer,
}

const fn post(path: &'static str, summary: &'static str, body: SchemaFn) -> ClassRoute {
    ClassRoute {
        method: "POST",
        path,
        summary,
        body,
        answer: Answer::Seq,
    }
}

/// A route whose command creates something, named `created` in the answer.
const fn creates(
    path: &'static str,
    summary: &'static str,
    body: SchemaFn,
    created: &'static str,
) -> ClassRoute {
    ClassRoute {
        answer: Answer::Created(created),
        ..post(path, summary, body)
    }
}

/// A DELETE: the body is not read (beyond being JSON, if sent).
const fn delete(path: &'static str, summary: &'static str) -> ClassRoute {
    ClassRoute {
        method: "DELETE",
        ..post(path, summary, schema_of::<Empty>)
    }
}

/// Every class command route. `{id}` is the session; other parameters are
/// ids named by the route.
pub const CLASS_ROUTES: &[ClassRoute] = &[
    post(
        "/sessions/{id}/scene",
        "Switch the scene",
        schema_of::<SceneBody>,
    ),
    post(
        "/sessions/{id}/slides",
        "Show a slide of a deck",
        schema_of::<SlideBody>,
    ),
    post(
        "/sessions/{id}/layout",
        "Change the layout",
        schema_of::<LayoutBody>,
    ),
    creates(
        "/sessions/{id}/whiteboard/strokes",
        "Draw a whiteboard stroke",
        schema_of::<StrokeBody>,
        "stroke_id",
    ),
    post(
        "/sessions/{id}/whiteboard/clear",
        "Clear the whiteboard",
        schema_of::<Empty>,
    ),
    creates(
        "/sessions/{id}/chat",
        "Send a chat message",
        schema_of::<TextBody>,
        "message_id",
    ),
    delete(
        "/sessions/{id}/chat/{message_id}",
        "Delete a chat message (author or moderator)",
    ),
    creates(
        "/sessions/{id}/questions",
        "Ask a question",
        schema_of::<TextBody>,
        "question_id",
    ),
    post(
        "/sessions/{id}/questions/{question_id}/upvote",
        "Upvote a question once",
        schema_of::<Empty>,
    ),
    post(
        "/sessions/{id}/questions/{question_id}/answer",
        "Mark a question answered",
        schema_of::<AnswerBody>,
    ),
    post(
        "/sessions/{id}/questions/{question_id}/dismiss",
        "Dismiss a question",
        schema_of::<Empty>,
    ),
    creates(
        "/sessions/{id}/polls",
        "Open a poll",
        schema_of::<PollBody>,
        "poll_id",
    ),
    post(
        "/sessions/{id}/polls/{poll_id}/vote",
        "Vote once in a poll",
        schema_of::<VoteBody>,
    ),
    ClassRoute {
        answer: Answer::PollResults,
        ..post(
            "/sessions/{id}/polls/{poll_id}/close",
            "Close a poll; answers its results",
            schema_of::<Empty>,
        )
    },
    post(
        "/sessions/{id}/hands",
        "Raise one's hand",
        schema_of::<Empty>,
    ),
    post(
        "/sessions/{id}/hands/lower",
        "Lower one's hand (or, as moderator, someone's)",
        schema_of::<LowerHandBody>,
    ),
    creates(
        "/sessions/{id}/notes",
        "Save a private note",
        schema_of::<TextBody>,
        "note_id",
    ),
    creates(
        "/sessions/{id}/ctas",
        "Show a call to action (URL rendered as a QR code)",
        schema_of::<CtaBody>,
        "cta_id",
    ),
    delete("/sessions/{id}/ctas/{cta_id}", "Hide a call to action"),
    post(
        "/sessions/{id}/consent",
        "Give or withdraw recording consent",
        schema_of::<ConsentBody>,
    ),
    post(
        "/sessions/{id}/mute",
        "Mute a participant (moderator)",
        schema_of::<MuteBody>,
    ),
    post(
        "/sessions/{id}/remove",
        "Remove a participant (moderator)",
        schema_of::<ParticipantBody>,
    ),
    post(
        "/sessions/{id}/lock",
        "Lock or unlock the room (moderator)",
        schema_of::<LockBody>,
    ),
    post(
        "/sessions/{id}/exam-mode",
        "Turn exam mode on or off",
        schema_of::<ExamModeBody>,
    ),
    post(
        "/sessions/{id}/kill-switch",
        "Engage or release a kill switch",
        schema_of::<KillSwitchBody>,
    ),
];

/// Why a class command request could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("invalid body: {0}")]
    Body(String),
    #[error("an id in the path is not a valid UUID")]
    Id,
    #[error("no such route")]
    Route,
}

impl InputError {
    /// The HTTP status both core and the edges answer with.
    pub fn http_status(&self) -> u16 {
        match self {
            InputError::Body(_) | InputError::Id => 400,
            InputError::Route => 404,
        }
    }

    /// The api.md error code.
    pub fn code(&self) -> &'static str {
        match self {
            InputError::Body(_) => "invalid_body",
            InputError::Id => "invalid_id",
            InputError::Route => "route_not_found",
        }
    }

    /// The message for people.
    pub fn message(&self) -> String {
        match self {
            InputError::Body(m) => format!("invalid JSON body: {m}"),
            InputError::Id => "an id in the path is not a valid UUID".to_owned(),
            InputError::Route => "no such route".to_owned(),
        }
    }
}

/// A command built from a request, with the id it creates (if any) under
/// the name the answer uses (`message_id`, `question_id`, ...).
///
/// The class-command handler of core and of the edge is this, around
/// their own authentication and transport: [`build`], then fill in the
/// page count of [`Built::deck`] from the deck store they hold
/// ([`Built::with_page_count`]), run the command where the class's state
/// lives, and reply with [`answer`].
#[derive(Debug, Clone, PartialEq)]
pub struct Built {
    pub command: Command,
    pub created: Option<(&'static str, uuid::Uuid)>,
}

impl Built {
    /// The deck whose page count the command needs (showing a slide), which
    /// only the holder of the tenant's decks knows.
    pub fn deck(&self) -> Option<DeckId> {
        match &self.command {
            Command::ShowSlide { deck_id, .. } => Some(*deck_id),
            _ => None,
        }
    }

    /// The command with the deck's page count filled in.
    pub fn with_page_count(mut self, pages: u32) -> Built {
        if let Command::ShowSlide { page_count, .. } = &mut self.command {
            *page_count = pages;
        }
        self
    }
}

fn body<T: serde::de::DeserializeOwned>(v: &serde_json::Value) -> Result<T, InputError> {
    serde_json::from_value(v.clone()).map_err(|e| InputError::Body(e.to_string()))
}

fn path_id<T: std::str::FromStr>(params: &[&str], i: usize) -> Result<T, InputError> {
    params
        .get(i)
        .and_then(|s| s.parse().ok())
        .ok_or(InputError::Id)
}

/// Builds the command for `route` from its path parameters after the
/// session id, its JSON body and a fresh id (used if the command creates
/// something). `ShowSlide` comes back with `page_count: 0`: the caller fills
/// it from its deck store.
pub fn build(
    route: &str,
    params: &[&str],
    json: &serde_json::Value,
    fresh: uuid::Uuid,
) -> Result<Built, InputError> {
    let plain = |command| {
        Ok(Built {
            command,
            created: None,
        })
    };
    match route {
        "/sessions/{id}/scene" => plain(Command::SetScene {
            scene: body::<SceneBody>(json)?.scene,
        }),
        "/sessions/{id}/slides" => {
            let b: SlideBody = body(json)?;
            plain(Command::ShowSlide {
                deck_id: b.deck_id,
                index: b.index,
                page_count: 0,
            })
        }
        "/sessions/{id}/layout" => plain(Command::SetLayout {
            layout: body::<LayoutBody>(json)?.layout,
        }),
        "/sessions/{id}/whiteboard/strokes" => {
            let b: StrokeBody = body(json)?;
            Ok(Built {
                command: Command::Stroke {
                    stroke_id: StrokeId::from_uuid(fresh),
                    color: b.color,
                    width: b.width,
                    points: b.points,
                },
                created: Some(("stroke_id", fresh)),
            })
        }
        "/sessions/{id}/whiteboard/clear" => {
            body::<Empty>(json)?;
            plain(Command::ClearWhiteboard)
        }
        "/sessions/{id}/chat" => Ok(Built {
            command: Command::Chat {
                message_id: MessageId::from_uuid(fresh),
                text: body::<TextBody>(json)?.text,
            },
            created: Some(("message_id", fresh)),
        }),
        "/sessions/{id}/chat/{message_id}" => plain(Command::DeleteChat {
            message_id: path_id(params, 0)?,
        }),
        "/sessions/{id}/questions" => Ok(Built {
            command: Command::Ask {
                question_id: QuestionId::from_uuid(fresh),
                text: body::<TextBody>(json)?.text,
            },
            created: Some(("question_id", fresh)),
        }),
        "/sessions/{id}/questions/{question_id}/upvote" => {
            body::<Empty>(json)?;
            plain(Command::Upvote {
                question_id: path_id(params, 0)?,
            })
        }
        "/sessions/{id}/questions/{question_id}/answer" => plain(Command::Answer {
            question_id: path_id(params, 0)?,
            answer: body::<AnswerBody>(json)?.text,
        }),
        "/sessions/{id}/questions/{question_id}/dismiss" => {
            body::<Empty>(json)?;
            plain(Command::Dismiss {
                question_id: path_id(params, 0)?,
            })
        }
        "/sessions/{id}/polls" => {
            let b: PollBody = body(json)?;
            Ok(Built {
                command: Command::OpenPoll {
                    poll_id: PollId::from_uuid(fresh),
                    question: b.question,
                    options: b.options,
                    correct_option: b.correct_option,
                },
                created: Some(("poll_id", fresh)),
            })
        }
        "/sessions/{id}/polls/{poll_id}/vote" => plain(Command::Vote {
            poll_id: path_id(params, 0)?,
            option: body::<VoteBody>(json)?.option,
        }),
        "/sessions/{id}/polls/{poll_id}/close" => {
            body::<Empty>(json)?;
            plain(Command::ClosePoll {
                poll_id: path_id(params, 0)?,
            })
        }
        "/sessions/{id}/hands" => {
            body::<Empty>(json)?;
            plain(Command::RaiseHand)
        }
        "/sessions/{id}/hands/lower" => plain(Command::LowerHand {
            participant_id: body::<LowerHandBody>(json)?.participant_id,
        }),
        "/sessions/{id}/notes" => Ok(Built {
            command: Command::SaveNote {
                note_id: NoteId::from_uuid(fresh),
                text: body::<TextBody>(json)?.text,
            },
            created: Some(("note_id", fresh)),
        }),
        "/sessions/{id}/ctas" => {
            let b: CtaBody = body(json)?;
            Ok(Built {
                command: Command::ShowCta {
                    cta_id: CtaId::from_uuid(fresh),
                    url: b.url,
                    label: b.label,
                },
                created: Some(("cta_id", fresh)),
            })
        }
        "/sessions/{id}/ctas/{cta_id}" => plain(Command::HideCta {
            cta_id: path_id(params, 0)?,
        }),
        "/sessions/{id}/consent" => plain(Command::SetConsent {
            recording: body::<ConsentBody>(json)?.recording,
        }),
        "/sessions/{id}/mute" => {
            let b: MuteBody = body(json)?;
            plain(Command::Mute {
                participant_id: b.participant_id,
                media: b.media,
            })
        }
        "/sessions/{id}/remove" => plain(Command::Remove {
            participant_id: body::<ParticipantBody>(json)?.participant_id,
        }),
        "/sessions/{id}/lock" => plain(Command::Lock {
            locked: body::<LockBody>(json)?.locked,
        }),
        "/sessions/{id}/exam-mode" => plain(Command::ExamMode {
            enabled: body::<ExamModeBody>(json)?.enabled,
        }),
        "/sessions/{id}/kill-switch" => {
            let b: KillSwitchBody = body(json)?;
            plain(Command::KillSwitch {
                switch: b.switch,
                engaged: b.engaged,
            })
        }
        _ => Err(InputError::Route),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_route_builds() {
        let id = uuid::Uuid::from_u128(7).to_string();
        let bodies = [
            json!({ "scene": "camera" }),
            json!({ "deck_id": id, "index": 0 }),
            json!({ "layout": "grid" }),
            json!({ "color": "#000000", "width": 2, "points": [[1, 2]] }),
            json!({}),
            json!({ "text": "hi" }),
            json!({}),
            json!({ "text": "why?" }),
            json!({}),
            json!({ "text": "because" }),
            json!({}),
            json!({ "question": "q", "options": ["a", "b"] }),
            json!({ "option": 1 }),
            json!({}),
            json!({}),
            json!({}),
            json!({ "text": "note" }),
            json!({ "url": "https://x.test", "label": "go" }),
            json!({}),
            json!({ "recording": false }),
            json!({ "participant_id": id, "media": "audio" }),
            json!({ "participant_id": id }),
            json!({ "locked": true }),
            json!({ "enabled": true }),
            json!({ "switch": { "kind": "chat" }, "engaged": true }),
        ];
        assert_eq!(bodies.len(), CLASS_ROUTES.len());
        for (r, b) in CLASS_ROUTES.iter().zip(bodies) {
            let built = build(r.path, &[id.as_str()], &b, uuid::Uuid::from_u128(9));
            assert!(built.is_ok(), "{} {}: {:?}", r.method, r.path, built);
        }
    }

    #[test]
    fn bad_input_is_named() {
        let fresh = uuid::Uuid::from_u128(1);
        assert!(matches!(
            build("/sessions/{id}/chat", &[], &json!({ "text": 5 }), fresh),
            Err(InputError::Body(_))
        ));
        assert!(matches!(
            build("/sessions/{id}/chat", &[], &json!({ "txt": "x" }), fresh),
            Err(InputError::Body(_))
        ));
        assert_eq!(
            build(
                "/sessions/{id}/polls/{poll_id}/vote",
                &["nope"],
                &json!({ "option": 1 }),
                fresh
            )
            .unwrap_err(),
            InputError::Id
        );
        assert_eq!(
            build("/nowhere", &[], &json!({}), fresh).unwrap_err(),
            InputError::Route
        );
        assert!(matches!(
            build("/sessions/{id}/hands", &[], &json!({ "x": 1 }), fresh),
            Err(InputError::Body(_))
        ));
    }
}
