//! Request bodies of the class commands, shared by core's API and the edge's
//! campus API (the same routes, the same JSON), and how each becomes a
//! `Command`. Fresh ids are passed in by the shell.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::command::Command;
use crate::event::{KillSwitch, Layout, LeaveReason, MediaKind, Scene};
use crate::ids::*;
use crate::roles::Permission;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SceneBody {
    pub scene: Scene,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayoutBody {
    pub layout: Layout,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextBody {
    pub text: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerBody {
    #[serde(default)]
    pub text: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollBody {
    pub question: String,
    pub options: Vec<String>,
    #[serde(default)]
    pub correct_option: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoteBody {
    pub option: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermissionsBody {
    pub participant_id: ParticipantId,
    #[serde(default)]
    pub grant: BTreeSet<Permission>,
    #[serde(default)]
    pub revoke: BTreeSet<Permission>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MuteBody {
    pub participant_id: ParticipantId,
    pub media: MediaKind,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParticipantBody {
    pub participant_id: ParticipantId,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockBody {
    pub locked: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExamModeBody {
    pub enabled: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KillSwitchBody {
    pub switch: KillSwitch,
    pub engaged: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CtaBody {
    pub url: String,
    pub label: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentBody {
    pub recording: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrokeBody {
    pub color: String,
    pub width: u16,
    pub points: Vec<crate::event::BoardPoint>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LowerHandBody {
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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlideBody {
    pub deck_id: DeckId,
    pub index: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// One class command route: the same on core's API and on the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassRoute {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
}

const fn route(method: &'static str, path: &'static str, summary: &'static str) -> ClassRoute {
    ClassRoute {
        method,
        path,
        summary,
    }
}

/// Every class command route. `{id}` is the session; other parameters are
/// ids named by the route.
pub const CLASS_ROUTES: &[ClassRoute] = &[
    route("POST", "/sessions/{id}/scene", "Switch the scene"),
    route("POST", "/sessions/{id}/slides", "Show a slide of a deck"),
    route("POST", "/sessions/{id}/layout", "Change the layout"),
    route(
        "POST",
        "/sessions/{id}/whiteboard/strokes",
        "Draw a whiteboard stroke",
    ),
    route(
        "POST",
        "/sessions/{id}/whiteboard/clear",
        "Clear the whiteboard",
    ),
    route("POST", "/sessions/{id}/chat", "Send a chat message"),
    route(
        "DELETE",
        "/sessions/{id}/chat/{message_id}",
        "Delete a chat message (author or moderator)",
    ),
    route("POST", "/sessions/{id}/questions", "Ask a question"),
    route(
        "POST",
        "/sessions/{id}/questions/{question_id}/upvote",
        "Upvote a question once",
    ),
    route(
        "POST",
        "/sessions/{id}/questions/{question_id}/answer",
        "Mark a question answered",
    ),
    route(
        "POST",
        "/sessions/{id}/questions/{question_id}/dismiss",
        "Dismiss a question",
    ),
    route("POST", "/sessions/{id}/polls", "Open a poll"),
    route(
        "POST",
        "/sessions/{id}/polls/{poll_id}/vote",
        "Vote once in a poll",
    ),
    route(
        "POST",
        "/sessions/{id}/polls/{poll_id}/close",
        "Close a poll; answers its results",
    ),
    route("POST", "/sessions/{id}/hands", "Raise one's hand"),
    route(
        "POST",
        "/sessions/{id}/hands/lower",
        "Lower one's hand (or, as moderator, someone's)",
    ),
    route("POST", "/sessions/{id}/notes", "Save a private note"),
    route(
        "POST",
        "/sessions/{id}/ctas",
        "Show a call to action (URL rendered as a QR code)",
    ),
    route(
        "DELETE",
        "/sessions/{id}/ctas/{cta_id}",
        "Hide a call to action",
    ),
    route(
        "POST",
        "/sessions/{id}/consent",
        "Give or withdraw recording consent",
    ),
    route(
        "POST",
        "/sessions/{id}/mute",
        "Mute a participant (moderator)",
    ),
    route(
        "POST",
        "/sessions/{id}/remove",
        "Remove a participant (moderator)",
    ),
    route(
        "POST",
        "/sessions/{id}/lock",
        "Lock or unlock the room (moderator)",
    ),
    route(
        "POST",
        "/sessions/{id}/exam-mode",
        "Turn exam mode on or off",
    ),
    route(
        "POST",
        "/sessions/{id}/kill-switch",
        "Engage or release a kill switch",
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

/// A command built from a request, with the id it creates (if any) under
/// the name the answer uses (`message_id`, `question_id`, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct Built {
    pub command: Command,
    pub created: Option<(&'static str, uuid::Uuid)>,
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
