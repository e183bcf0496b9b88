//! Erasure of a person (GDPR art. 17, a parent's request under COPPA):
//! their data key is shredded, so every sealed field of theirs in the
//! append-only log reads as a placeholder for good, and every derived copy
//! is purged: the account's name and email, enrollments, sign-in tokens,
//! export archives, their raw voice tracks in the recordings, the artifacts
//! and search index derived from the classes they sat in (derived again, so
//! replays still play and search for everyone else; the words of theirs the
//! transcript attributes to them read as the placeholder), and the plain copies of their events in the hub stream
//! and in the home edge's stream.
//!
//! Each step is idempotent: a job that dies mid-way is taken up again and
//! finishes the rest. Kept on purpose: the rows' ids (events, seats, the
//! audit chain and the replay access log point at the account's id, which
//! names nobody once the account is scrubbed).

use std::collections::HashSet;
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use axum::extract::State;
use axum::response::Response;
use futures::StreamExt;
use protocol::subjects::{
    HUB_STREAM, core_event_subject, edge_domain, edge_event_subject, edge_stream_name,
};
use protocol::{EdgeId, SessionId, TenantId};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::AppState;
use crate::console::rate_limit::Kind;
use crate::events::store::StoredEvent;
use crate::http::error::{ApiError, ApiErrorBody, ApiResult};
use crate::http::extract::{IdempotencyKey, PathIds};
use crate::identity::Auth;
use crate::privacy::seal::ERASED_NAME;

/// Starts the erasure of a user of the tenant (admins; not oneself).
#[utoipa::path(post, path = "/subjects/{user_id}/erase", operation_id = "erase_subject", tag = "privacy",
    params(
        ("user_id" = Uuid, Path, description = "The person"),
        ("Idempotency-Key" = Option<String>, Header, description = "The same key answers the first job again"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Queued: follow it at `GET /subjects/jobs/{id}`; its `result` says what was erased", body = super::SubjectJob),
        (status = 400, description = "The id is not a UUID (`invalid_id`)", body = ApiErrorBody),
        (status = 401, description = "No or bad token", body = ApiErrorBody),
        (status = 403, description = "Not an admin", body = ApiErrorBody),
        (status = 404, description = "No such user in the tenant", body = ApiErrorBody),
        (status = 409, description = "The caller's own account (`cannot_erase_self`), a person already erased (`already_erased`), or an `Idempotency-Key` used for another request", body = ApiErrorBody),
        (status = 429, description = "Too many subject requests (`rate_limited`); see `Retry-After`", body = ApiErrorBody),
    ))]
pub(crate) async fn erase(
    State(app): State<AppState>,
    auth: Auth,
    IdempotencyKey(key): IdempotencyKey,
    ids: PathIds,
) -> ApiResult<Response> {
    auth.require_admin()?;
    let user: Uuid = ids.get(0)?;
    if user == auth.user_id.as_uuid() {
        return Err(ApiError::conflict(
            "cannot_erase_self",
            "an admin cannot erase their own account; another admin must",
        ));
    }
    app.console_limits().take(auth.user_id, Kind::Subject)?;
    super::queue(&app, &auth, key, user, "erase").await
}

/// Runs one erasure; the summary becomes the job's `result`.
pub(crate) async fn run(
    app: &AppState,
    job: Uuid,
    tenant: Uuid,
    user: Uuid,
) -> anyhow::Result<Value> {
    // 1. the key: from here on nothing of theirs reads, and nothing of
    //    theirs that still arrives is written
    app.vault().erase(app.db(), tenant, user).await?;

    // 2. the account
    let mut tx = app.db().begin().await?;
    sqlx::query(
        "UPDATE users SET email = $3, display_name = $4, password_hash = '!erased',
                disabled = true, erased_at = COALESCE(erased_at, now())
          WHERE id = $1 AND tenant_id = $2",
    )
    .bind(user)
    .bind(tenant)
    .bind(format!("erased-{}@erased.invalid", user.simple()))
    .bind(ERASED_NAME)
    .execute(&mut *tx)
    .await?;
    let memberships =
        sqlx::query("DELETE FROM course_members WHERE tenant_id = $1 AND user_id = $2")
            .bind(tenant)
            .bind(user)
            .execute(&mut *tx)
            .await?
            .rows_affected();
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = now()
          WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL",
    )
    .bind(tenant)
    .bind(user)
    .execute(&mut *tx)
    .await?;
    // their analytics: out of every fold, their rows and beacons gone
    let analytics_classes = crate::analytics::store::erase(&mut tx, tenant, user).await?;
    tx.commit().await?;

    // 3. export archives made about them
    let archives: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT id, object_key FROM subject_jobs
          WHERE tenant_id = $1 AND user_id = $2 AND object_key IS NOT NULL",
    )
    .bind(tenant)
    .bind(user)
    .fetch_all(app.db())
    .await?;
    for (id, key) in &archives {
        match app
            .objects()
            .delete(&object_store::path::Path::from(key.as_str()))
            .await
        {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => anyhow::bail!("deleting an export archive: {e}"),
        }
        sqlx::query(
            "UPDATE subject_jobs SET object_key = NULL, bytes = NULL, sha256 = NULL WHERE id = $1",
        )
        .bind(id)
        .execute(app.db())
        .await?;
    }

    // 4. what was derived from the classes they sat in
    let classes: Vec<(Uuid, String, i64, bool)> = sqlx::query_as(
        "SELECT DISTINCT s.id, s.edge_id, s.last_seq, s.status = 'ended' FROM participants p
           JOIN sessions s ON s.id = p.session_id
          WHERE p.tenant_id = $1 AND p.user_id = $2",
    )
    .bind(tenant)
    .bind(user)
    .fetch_all(app.db())
    .await?;
    let seats: Vec<(Uuid,)> =
        sqlx::query_as("SELECT id FROM participants WHERE tenant_id = $1 AND user_id = $2")
            .bind(tenant)
            .bind(user)
            .fetch_all(app.db())
            .await?;
    let seats: HashSet<String> = seats.into_iter().map(|(s,)| s.to_string()).collect();
    // their own voice: the raw per-participant tracks the recorder kept
    // beside the mix (for attributing the transcript) go
    let mut voice_tracks = 0;
    for (session, _, _, _) in &classes {
        let prefix = object_store::path::Path::from(format!("recordings/{tenant}/{session}/audio"));
        let tracks: Vec<object_store::ObjectMeta> =
            futures::TryStreamExt::try_collect(app.objects().list(Some(&prefix))).await?;
        for t in tracks {
            let theirs = t
                .location
                .filename()
                .and_then(|f| f.rsplit_once('-').map(|(seat, _)| seats.contains(seat)))
                .unwrap_or(false);
            if !theirs {
                continue;
            }
            match app.objects().delete(&t.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => voice_tracks += 1,
                Err(e) => anyhow::bail!("deleting a voice track: {e}"),
            }
        }
    }
    let mut rederived = 0;
    for (session, _, _, _) in &classes {
        if crate::artifacts::pipeline::rederive(app, *session).await? {
            rederived += 1;
        }
    }

    // 5. the plain copies of their events in the hub stream and in the home
    //    edge's own stream (of ended classes only, and only what Postgres
    //    already holds; a live class's stream is its writer's recovery log)
    let (mut hub_copies, mut edge_copies) = (0, 0);
    let mut unreachable: Vec<String> = Vec::new();
    for (session, home, last_seq, ended) in &classes {
        let Ok(home) = EdgeId::new(home.clone()) else {
            continue;
        };
        if !ended {
            continue;
        }
        let (t, s) = (TenantId::from_uuid(tenant), SessionId::from_uuid(*session));
        let edge_subject = edge_event_subject(&home, t, s);
        let who = Whose {
            user: user.to_string(),
            seats: &seats,
            last_seq: *last_seq,
        };
        hub_copies += purge_copies(
            app.js(),
            HUB_STREAM,
            &[edge_subject.clone(), core_event_subject(t, s)],
            &who,
        )
        .await?;
        let edge_js = jetstream::with_domain(app.nats().clone(), edge_domain(&home));
        match purge_copies(&edge_js, &edge_stream_name(&home), &[edge_subject], &who).await {
            Ok(n) => edge_copies += n,
            Err(e) => {
                tracing::warn!(edge_id = %home, error = %e, "the edge's stream copies could not be deleted; they expire with its retention");
                unreachable.push(home.to_string());
            }
        }
    }

    let summary = json!({
        "key_shredded": true,
        "account_scrubbed": true,
        "enrollments_removed": memberships,
        "analytics_classes_purged": analytics_classes,
        "export_archives_deleted": archives.len(),
        "classes": classes.len(),
        "classes_rederived": rederived,
        "voice_tracks_deleted": voice_tracks,
        "hub_stream_copies_deleted": hub_copies,
        "edge_stream_copies_deleted": edge_copies,
        // their copies expire with the edge stream's own retention (7 days)
        "edges_unreachable": unreachable,
    });
    let mut tx = app.db().begin().await?;
    crate::audit::record_tx(
        &mut tx,
        tenant.into(),
        None,
        "subject.erased",
        "user",
        &user.to_string(),
        json!({ "job_id": job, "summary": summary }),
    )
    .await?;
    tx.commit().await?;
    Ok(summary)
}

/// Whether an event is about the person (caused by or naming them).
fn concerns(ev: &StoredEvent, user: &str, seats: &HashSet<String>) -> bool {
    let seat = |v: &Value| v.as_str().is_some_and(|s| seats.contains(s));
    ev.payload["user_id"].as_str() == Some(user)
        || ev.actor["user_id"].as_str() == Some(user)
        || seat(&ev.payload["participant_id"])
        || seat(&ev.payload["speaker"])
        || seat(&ev.actor["participant_id"])
}

/// Whose copies are deleted: the person's account and seats, up to the
/// class's `last_seq`.
struct Whose<'a> {
    user: String,
    seats: &'a HashSet<String>,
    last_seq: i64,
}

/// Deletes the messages of `stream` on `subjects` that are about the person
/// and that Postgres already holds. Returns how many were deleted.
async fn purge_copies(
    js: &jetstream::Context,
    stream_name: &str,
    subjects: &[String],
    who: &Whose<'_>,
) -> anyhow::Result<u64> {
    let stream = js
        .get_stream(stream_name)
        .await
        .map_err(|e| anyhow::anyhow!("stream {stream_name}: {e}"))?;
    let mut deleted = 0;
    for subject in subjects {
        let consumer = stream
            .create_consumer(consumer::pull::OrderedConfig {
                filter_subject: subject.clone(),
                deliver_policy: consumer::DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .map_err(|e| anyhow::anyhow!("reading {stream_name}: {e}"))?;
        let mut messages = consumer
            .messages()
            .await
            .map_err(|e| anyhow::anyhow!("reading {stream_name}: {e}"))?;
        let mut doomed = Vec::new();
        loop {
            let next = tokio::time::timeout(Duration::from_secs(2), messages.next()).await;
            let Ok(Some(Ok(m))) = next else { break };
            let Ok(info) = m.info() else { break };
            let (stream_seq, pending) = (info.stream_sequence, info.pending);
            if let Ok(ev) = StoredEvent::from_json(&m.payload)
                && ev.seq <= who.last_seq
                && concerns(&ev, &who.user, who.seats)
            {
                doomed.push(stream_seq);
            }
            if pending == 0 {
                break;
            }
        }
        drop(messages);
        for seq in doomed {
            stream
                .delete_message(seq)
                .await
                .map_err(|e| anyhow::anyhow!("deleting message {seq} of {stream_name}: {e}"))?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(payload: Value, actor: Value) -> StoredEvent {
        StoredEvent {
            event_id: Uuid::from_u128(1),
            tenant_id: Uuid::from_u128(2),
            session_id: Uuid::from_u128(3),
            seq: 1,
            event_type: "chat.message".into(),
            v: 1,
            occurred_at: chrono::Utc::now(),
            actor,
            source: "edge:a".into(),
            payload,
        }
    }

    #[test]
    fn the_events_about_a_person_are_the_ones_of_their_seats_or_account() {
        let user = Uuid::from_u128(7).to_string();
        let seat = Uuid::from_u128(8).to_string();
        let other = Uuid::from_u128(9).to_string();
        let seats: HashSet<String> = [seat.clone()].into();
        let sys = json!({ "kind": "system" });
        assert!(concerns(
            &ev(json!({ "participant_id": seat }), sys.clone()),
            &user,
            &seats
        ));
        assert!(concerns(
            &ev(json!({ "user_id": user }), sys.clone()),
            &user,
            &seats
        ));
        assert!(concerns(
            &ev(json!({ "speaker": seat }), sys.clone()),
            &user,
            &seats
        ));
        assert!(concerns(
            &ev(
                json!({ "question_id": other }),
                json!({ "participant_id": seat })
            ),
            &user,
            &seats
        ));
        assert!(!concerns(
            &ev(json!({ "participant_id": other }), sys.clone()),
            &user,
            &seats
        ));
        assert!(!concerns(
            &ev(json!({ "poll_id": seat }), sys),
            &user,
            &seats
        ));
    }
}
