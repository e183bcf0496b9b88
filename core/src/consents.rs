//! Recording consent as records: for each participant of a class, whether
//! they may appear in its recording now, and every time they gave or
//! withdrew it, read from the class's log (`participant.joined` seats
//! someone consenting; `consent.changed` records each change).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use protocol::SessionId;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::console::{course_of_session, require_course_staff};
use crate::http::error::{ApiErrorBody, ApiResult};
use crate::http::extract::PathIds;
use crate::identity::Auth;
use crate::orchestration::sessions::load_session;

/// One change of a participant's consent.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ConsentChange {
    /// The event's place in the class's log.
    pub seq: i64,
    pub at: DateTime<Utc>,
    /// May they appear in the recording from then on?
    pub recording: bool,
}

/// A participant's consent in one class.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ConsentRecord {
    #[schema(value_type = String, format = Uuid)]
    pub participant_id: Uuid,
    #[schema(value_type = Option<String>, format = Uuid)]
    pub user_id: Option<Uuid>,
    pub display_name: String,
    pub role: String,
    pub joined_at: DateTime<Utc>,
    /// Their consent now (`true` from the join until withdrawn).
    pub recording: bool,
    /// Every change after the join, in order.
    pub changes: Vec<ConsentChange>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ConsentRecords {
    #[schema(value_type = String, format = Uuid)]
    pub session_id: Uuid,
    pub participants: Vec<ConsentRecord>,
    /// How many do not consent now.
    pub declined: usize,
}

/// The consent records of a class (the course's staff, admins).
#[utoipa::path(get, path = "/sessions/{id}/consents", operation_id = "session_consents", tag = "privacy",
    params(("id" = Uuid, Path, description = "The session")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Each participant's consent now and its history", body = ConsentRecords),
        (status = 400, description = "The id is not a UUID (`invalid_id`)", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not the course's staff (`not_course_staff`)", body = ApiErrorBody),
        (status = 404, description = "No such session in the tenant", body = ApiErrorBody),
    ))]
pub(crate) async fn list(
    State(app): State<AppState>,
    auth: Auth,
    ids: PathIds,
) -> ApiResult<Json<ConsentRecords>> {
    let session: SessionId = ids.get(0)?;
    load_session(&app, &auth, session).await?;
    let course = course_of_session(&app, session.as_uuid()).await?;
    require_course_staff(&app, &auth, course).await?;
    let rows: Vec<(Uuid, i64, String, DateTime<Utc>, Value)> = sqlx::query_as(
        "SELECT event_id, seq, type, occurred_at, payload FROM session_state_events
          WHERE tenant_id = $1 AND session_id = $2
            AND type IN ('participant.joined', 'consent.changed')
          ORDER BY seq",
    )
    .bind(auth.tenant_id.as_uuid())
    .bind(session.as_uuid())
    .fetch_all(app.db())
    .await?;
    let mut opened = Vec::with_capacity(rows.len());
    for (event_id, seq, ty, at, mut payload) in rows {
        app.vault()
            .open_payload(
                app.db(),
                auth.tenant_id.as_uuid(),
                event_id,
                &ty,
                &mut payload,
            )
            .await?;
        opened.push((seq, ty, at, payload));
    }
    Ok(Json(records(session.as_uuid(), opened)))
}

/// Folds the class's seat and consent events into records.
fn records(session_id: Uuid, rows: Vec<(i64, String, DateTime<Utc>, Value)>) -> ConsentRecords {
    let mut by_seat: BTreeMap<Uuid, ConsentRecord> = BTreeMap::new();
    let uuid = |v: &Value| v.as_str().and_then(|s| s.parse::<Uuid>().ok());
    for (seq, ty, at, p) in rows {
        let Some(seat) = uuid(&p["participant_id"]) else {
            continue;
        };
        match ty.as_str() {
            "participant.joined" => {
                // a rejoin keeps the seat and its consent
                by_seat.entry(seat).or_insert_with(|| ConsentRecord {
                    participant_id: seat,
                    user_id: uuid(&p["user_id"]),
                    display_name: p["display_name"].as_str().unwrap_or_default().to_owned(),
                    role: p["role"].as_str().unwrap_or_default().to_owned(),
                    joined_at: at,
                    recording: true,
                    changes: Vec::new(),
                });
            }
            "consent.changed" => {
                if let (Some(r), Some(recording)) =
                    (by_seat.get_mut(&seat), p["recording"].as_bool())
                {
                    r.recording = recording;
                    r.changes.push(ConsentChange { seq, at, recording });
                }
            }
            _ => {}
        }
    }
    let participants: Vec<ConsentRecord> = by_seat.into_values().collect();
    let declined = participants.iter().filter(|r| !r.recording).count();
    ConsentRecords {
        session_id,
        participants,
        declined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn consent_is_given_at_the_join_and_follows_each_change() {
        let t = |s: i64| DateTime::from_timestamp(1_750_000_000 + s, 0).unwrap();
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let joined = |p: Uuid, name: &str| json!({ "participant_id": p, "user_id": Uuid::from_u128(9), "display_name": name, "role": "student" });
        let rows = vec![
            (2, "participant.joined".into(), t(2), joined(a, "Ana")),
            (3, "participant.joined".into(), t(3), joined(b, "Ben")),
            (
                4,
                "consent.changed".into(),
                t(4),
                json!({ "participant_id": a, "recording": false }),
            ),
            (5, "participant.joined".into(), t(5), joined(a, "Ana again")),
            (
                6,
                "consent.changed".into(),
                t(6),
                json!({ "participant_id": a, "recording": true }),
            ),
            (
                7,
                "consent.changed".into(),
                t(7),
                json!({ "participant_id": a, "recording": false }),
            ),
            // a change for nobody seated is ignored
            (
                8,
                "consent.changed".into(),
                t(8),
                json!({ "participant_id": Uuid::from_u128(3), "recording": false }),
            ),
        ];
        let r = records(Uuid::from_u128(7), rows);
        assert_eq!(r.participants.len(), 2);
        assert_eq!(r.declined, 1);
        let ana = &r.participants[0];
        assert_eq!(ana.display_name, "Ana", "a rejoin keeps the seat");
        assert!(!ana.recording);
        let seqs: Vec<(i64, bool)> = ana.changes.iter().map(|c| (c.seq, c.recording)).collect();
        assert_eq!(seqs, vec![(4, false), (6, true), (7, false)]);
        let ben = &r.participants[1];
        assert!(ben.recording && ben.changes.is_empty());
    }
}
