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
