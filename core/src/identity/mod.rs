//! Identity and roles: who is calling, and what their tenant role allows.

pub mod passwords;
pub mod refresh_family;
pub mod routes;
pub mod signing_keys;

use protocol::{Role, TenantId, UserId};

use crate::http::error::ApiError;

/// A verified caller: the claims of a valid access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Auth {
    pub user_id: UserId,
    pub tenant_id: TenantId,
    pub role: Role,
}

impl Auth {
    /// Admins and teachers run classes; everyone else gets a 403.
    pub fn require_staff(&self) -> Result<(), ApiError> {
        if self.role.is_staff() {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "staff_only",
                format!(
                    "a {} cannot do this; it needs a teacher or admin",
                    self.role
                ),
            ))
        }
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.role == Role::Admin {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "admin_only",
                "this needs a tenant admin",
            ))
        }
    }
}
