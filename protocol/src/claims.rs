//! Token claims. Core signs both kinds with its Ed25519 key; anyone holding
//! the JWKS verifies them offline (edges do, so a class goes on when core is
//! unreachable). `typ` and `aud` keep one kind from passing for the other.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::ids::{EdgeId, ParticipantId, SessionId, TenantId, UserId};
use crate::roles::{Permission, Role};

pub const ISSUER: &str = "classroom-core";
pub const ACCESS_AUDIENCE: &str = "classroom-api";
/// The audience of tokens that let an edge (or relay) into the media mesh.
pub const RELAY_AUDIENCE: &str = "relay";
/// How long a relay token lives; holders fetch a new one before it ends.
pub const RELAY_TTL_SECS: i64 = 60 * 60;

/// What a relay token lets its holder do, as MoQ namespace prefixes
/// (namespaces are `<tenant>/<session>/<participant>`): `<tenant>` covers a
/// tenant's classes, `<tenant>/<session>` one class, `*` everything. A token
/// without grants may do nothing. The relay checks every PUBLISH_NAMESPACE
/// and SUBSCRIBE against them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayGrants {
    /// Namespaces the holder may publish (the classes an edge hosts).
    #[serde(default)]
    pub publish: Vec<String>,
    /// Namespaces the holder may subscribe to (the classes an edge may
    /// serve: its tenant's, or every tenant's for a shared edge).
    #[serde(default)]
    pub subscribe: Vec<String>,
}

impl RelayGrants {
    /// Everything (a relay pulling for its peers, tests).
    pub fn all() -> RelayGrants {
        RelayGrants {
            publish: vec!["*".to_owned()],
            subscribe: vec!["*".to_owned()],
        }
    }

    pub fn may_publish(&self, namespace: &str) -> bool {
        self.publish.iter().any(|p| covers(p, namespace))
    }

    pub fn may_subscribe(&self, namespace: &str) -> bool {
        self.subscribe.iter().any(|p| covers(p, namespace))
    }
}

/// Whether `prefix` covers `namespace`, segment by segment (`t1` covers
/// `t1/s1/p` but not `t10/s1/p`).
fn covers(prefix: &str, namespace: &str) -> bool {
    if prefix == "*" {
        return true;
    }
    let prefix = prefix.trim_end_matches('/');
    !prefix.is_empty()
        && (namespace == prefix
            || namespace
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/')))
}

/// Access tokens live this long (seconds).
pub const ACCESS_TTL_SECS: i64 = 15 * 60;
/// Join tokens live this long (seconds); a client re-joins to renew.
pub const JOIN_TTL_SECS: i64 = 30 * 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenType {
    Access,
    Join,
}

/// Who a user is, for core's API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    pub sub: UserId,
    pub tid: TenantId,
    pub role: Role,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub typ: TokenType,
}

/// One participant's pass to one session on one edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinClaims {
    pub iss: String,
    /// `edge:<edge id>`: the only edge that accepts it.
    pub aud: String,
    pub sub: ParticipantId,
    pub tid: TenantId,
    pub sid: SessionId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<UserId>,
    pub role: Role,
    pub edge: EdgeId,
    /// The session's home edge, when `edge` is another one: that edge
    /// pulls the class's media from the relay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home: Option<EdgeId>,
    /// Permissions when the token was minted; the edge checks the live set
    /// in the session state for every action, so a revoke acts at once.
    pub perms: BTreeSet<Permission>,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub typ: TokenType,
}

pub fn join_audience(edge: &EdgeId) -> String {
    format!("edge:{edge}")
}

#[cfg(test)]
mod relay_grant_tests {
    use super::RelayGrants;

    #[test]
    fn grants_cover_whole_segments_only() {
        let g = RelayGrants {
            publish: vec!["t1/s1".into()],
            subscribe: vec!["t1".into()],
        };
        assert!(g.may_publish("t1/s1/p1"));
        assert!(!g.may_publish("t1/s10/p1"));
        assert!(!g.may_publish("t1/s2/p1"));
        assert!(g.may_subscribe("t1/s2/p1"));
        assert!(!g.may_subscribe("t10/s2/p1"));
        assert!(!RelayGrants::default().may_subscribe("t1/s1/p1"));
        assert!(RelayGrants::all().may_publish("anything/at/all"));
    }
}
