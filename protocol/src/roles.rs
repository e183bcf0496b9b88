//! Roles and permissions.
//!
//! A tenant role says who a user is in the school; a session permission says
//! what a participant may do in one class right now. A participant starts with
//! its role's defaults; every later grant or revoke is a `permission.changed`
//! event, so the current set is always a fold of the log.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

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
pub enum Role {
    Admin,
    Teacher,
    Assistant,
    Student,
    /// A viewer through a public link: no account, no identities, no chat.
    Public,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Admin,
        Role::Teacher,
        Role::Assistant,
        Role::Student,
        Role::Public,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Teacher => "teacher",
            Role::Assistant => "assistant",
            Role::Student => "student",
            Role::Public => "public",
        }
    }

    /// Roles that run a class: they may create courses, start and end sessions.
    pub fn is_staff(self) -> bool {
        match self {
            Role::Admin | Role::Teacher => true,
            Role::Assistant | Role::Student | Role::Public => false,
        }
    }

    /// The permissions a participant of this role starts a session with.
    pub fn default_permissions(self) -> BTreeSet<Permission> {
        use Permission::*;
        let list: &[Permission] = match self {
            Role::Admin | Role::Teacher => &Permission::ALL,
            Role::Assistant => &[
                Present,
                Speak,
                Chat,
                Ask,
                Vote,
                RaiseHand,
                Whiteboard,
                ScreenShare,
                ControlScene,
                Moderate,
                ManagePermissions,
                ManagePolls,
                ViewParticipants,
                TakeNotes,
                PostLinks,
            ],
            Role::Student => &[Chat, Ask, Vote, RaiseHand, ViewParticipants, TakeNotes],
            Role::Public => &[],
        };
        list.iter().copied().collect()
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

/// What a participant may do in a session.
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
pub enum Permission {
    /// Publish camera video as a presenter.
    Present,
    /// Publish microphone audio.
    Speak,
    ScreenShare,
    Chat,
    /// Post links in chat (students may not by default).
    PostLinks,
    Ask,
    Vote,
    RaiseHand,
    Whiteboard,
    TakeNotes,
    /// See other participants' identities (public viewers may not).
    ViewParticipants,
    /// Switch scenes, slides and layouts; show CTAs.
    ControlScene,
    /// Delete chat, answer/dismiss questions, mute/remove, lock the room.
    Moderate,
    ManagePolls,
    ManagePermissions,
    ManageRecording,
    /// Engage per-session kill switches and exam mode.
    KillSwitch,
    EndSession,
}

impl Permission {
    pub const ALL: [Permission; 18] = [
        Permission::Present,
        Permission::Speak,
        Permission::ScreenShare,
        Permission::Chat,
        Permission::PostLinks,
        Permission::Ask,
        Permission::Vote,
        Permission::RaiseHand,
        Permission::Whiteboard,
        Permission::TakeNotes,
        Permission::ViewParticipants,
        Permission::ControlScene,
        Permission::Moderate,
        Permission::ManagePolls,
        Permission::ManagePermissions,
        Permission::ManageRecording,
        Permission::KillSwitch,
        Permission::EndSession,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Present => "present",
            Permission::Speak => "speak",
            Permission::ScreenShare => "screen_share",
            Permission::Chat => "chat",
            Permission::PostLinks => "post_links",
            Permission::Ask => "ask",
            Permission::Vote => "vote",
            Permission::RaiseHand => "raise_hand",
            Permission::Whiteboard => "whiteboard",
            Permission::TakeNotes => "take_notes",
            Permission::ViewParticipants => "view_participants",
            Permission::ControlScene => "control_scene",
            Permission::Moderate => "moderate",
            Permission::ManagePolls => "manage_polls",
            Permission::ManagePermissions => "manage_permissions",
            Permission::ManageRecording => "manage_recording",
            Permission::KillSwitch => "kill_switch",
            Permission::EndSession => "end_session",
        }
    }

    /// Publishing any media needs one of these.
    pub fn allows_publishing(self) -> bool {
        match self {
            Permission::Present | Permission::Speak | Permission::ScreenShare => true,
            Permission::Chat
            | Permission::PostLinks
            | Permission::Ask
            | Permission::Vote
            | Permission::RaiseHand
            | Permission::Whiteboard
            | Permission::TakeNotes
            | Permission::ViewParticipants
            | Permission::ControlScene
            | Permission::Moderate
            | Permission::ManagePolls
            | Permission::ManagePermissions
            | Permission::ManageRecording
            | Permission::KillSwitch
            | Permission::EndSession => false,
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_names_match_serde() {
        for p in Permission::ALL {
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{}\"", p.as_str()));
        }
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
    }

    #[test]
    fn students_cannot_run_the_class_by_default() {
        let s = Role::Student.default_permissions();
        for p in [
            Permission::Present,
            Permission::ControlScene,
            Permission::EndSession,
            Permission::ManagePermissions,
            Permission::PostLinks,
        ] {
            assert!(!s.contains(&p), "student must not have {p}");
        }
        assert!(Role::Public.default_permissions().is_empty());
        assert_eq!(
            Role::Teacher.default_permissions().len(),
            Permission::ALL.len()
        );
    }
}
