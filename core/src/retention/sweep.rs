//! The retention sweep: per tenant, what is past the policy goes, oldest
//! kind first, and each removal leaves a row in `retention_removals` and
//! one in the audit chain. A class on a course under legal hold is kept
//! whole. Every step is idempotent, so a sweep cut short is finished by the
//! next one.
//!
//! A removed class keeps its `sessions` row (title, course, times,
//! `purged_at`) as the record that it was; its events, seats, artifacts,
//! replay with its access rows and search entries, recording objects and
//! the hub stream's copies are gone.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use protocol::subjects::{HUB_STREAM, core_event_subject, edge_event_subject};
use protocol::{EdgeId, SessionId, TenantId};
use serde::Serialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;
use uuid::Uuid;

use super::policy_of;
use crate::AppState;

/// What one sweep of a tenant did.
#[derive(Debug, Default, Serialize, ToSchema, PartialEq, Eq)]
pub(crate) struct SweepReport {
    pub classes_removed: u64,
    pub recordings_removed: u64,
    pub transcripts_removed: u64,
    pub access_log_rows_removed: u64,
    /// Data-subject export archives older than a week.
    pub exports_removed: u64,
    /// Classes whose analytics outlived `analytics_days`.
    pub analytics_removed: u64,
    /// Raw replay beacons older than `beacon_days`.
    pub beacons_removed: u64,
    /// Classes with something past the policy, kept whole because their
    /// course is on legal hold.
    pub held: u64,
}

/// Sweeps every tenant every `every`, until `stop`.
pub(crate) async fn run_scheduler(app: AppState, stop: CancellationToken, every: Duration) {
    loop {
        match sqlx::query_as::<_, (Uuid,)>("SELECT id FROM tenants ORDER BY id")
            .fetch_all(app.db())
            .await
        {
            Ok(tenants) => {
                for (t,) in tenants {
                    match tenant(&app, t, Utc::now()).await {
                        Ok(r) if r != SweepReport::default() => {
                            tracing::info!(tenant_id = %t, classes = r.classes_removed,
                                recordings = r.recordings_removed, transcripts = r.transcripts_removed,
                                access_rows = r.access_log_rows_removed, exports = r.exports_removed,
                                held = r.held, "retention sweep")
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(tenant_id = %t, error = %e, "retention sweep failed")
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "retention sweep: listing tenants"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// A class the policy reaches: (session, home edge, ended at, course held).
type Due = (Uuid, String, DateTime<Utc>, bool);

/// Ended classes of the tenant that ended before `cutoff` and still have
/// what `column` says was not purged yet.
async fn due(
    app: &AppState,
    tenant: Uuid,
    cutoff: DateTime<Utc>,
    column: &str,
) -> sqlx::Result<Vec<Due>> {
    sqlx::query_as(&format!(
        "SELECT s.id, s.edge_id, s.ended_at, c.legal_hold FROM sessions s
           JOIN lesson_runs r ON r.id = s.lesson_run_id
           JOIN lessons l ON l.id = r.lesson_id
           JOIN courses c ON c.id = l.course_id
          WHERE s.tenant_id = $1 AND s.status = 'ended' AND s.ended_at < $2
            AND s.purged_at IS NULL AND s.{column} IS NULL
          ORDER BY s.ended_at"
    ))
    .bind(tenant)
    .bind(cutoff)
    .fetch_all(app.db())
    .await
}

/// Sweeps one tenant as of `now`.
pub(crate) async fn tenant(
    app: &AppState,
    tenant: Uuid,
    now: DateTime<Utc>,
) -> anyhow::Result<SweepReport> {
    let policy = policy_of(app.db(), tenant).await?;
    let cutoff = |days: i32| now - chrono::Duration::days(days.into());
    let mut report = SweepReport::default();
    let mut held_classes = std::collections::HashSet::new();

    for (session, edge, ended, held) in
        due(app, tenant, cutoff(policy.class_days), "purged_at").await?
    {
        if held {
            held_classes.insert(session);
            continue;
        }
        remove_class(app, tenant, session, &edge, ended).await?;
        report.classes_removed += 1;
    }
    // a recording and a transcript each go on their own, earlier clock
    for (days, column) in [
        (policy.recording_days, "recording_purged_at"),
        (policy.transcript_days, "transcript_purged_at"),
    ] {
        for (session, _, ended, held) in due(app, tenant, cutoff(days), column).await? {
            if held {
                held_classes.insert(session);
                continue;
            }
            if column == "recording_purged_at" {
                remove_recording(app, tenant, session, ended).await?;
                report.recordings_removed += 1;
            } else {
                remove_transcript(app, tenant, session, ended).await?;
                report.transcripts_removed += 1;
            }
        }
    }
    report.access_log_rows_removed =
        remove_access_rows(app, tenant, cutoff(policy.access_log_days)).await?;
    report.exports_removed = remove_exports(app, tenant, now - EXPORT_KEEP).await?;
    report.analytics_removed = remove_analytics(app, tenant, cutoff(policy.analytics_days)).await?;
    report.beacons_removed = remove_beacons(app, tenant, cutoff(policy.beacon_days)).await?;
    report.held = held_classes.len() as u64;
    Ok(report)
}

/// Deletes every object under `prefix`; returns how many.
async fn delete_prefix(app: &AppState, prefix: &str) -> anyhow::Result<i64> {
    let prefix = ObjectPath::from(prefix);
    let metas: Vec<_> = app.objects().list(Some(&prefix)).try_collect().await?;
    let mut n = 0;
    for m in metas {
        match app.objects().delete(&m.location).await {
            Ok(()) => n += 1,
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(n)
}

async fn record(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    tenant: Uuid,
    session: Option<Uuid>,
    what: &str,
    older_than: DateTime<Utc>,
    rows: i64,
    objects: i64,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO retention_removals (tenant_id, session_id, what, older_than, rows, objects)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(tenant)
    .bind(session)
    .bind(what)
    .bind(older_than)
    .bind(rows)
    .bind(objects)
    .execute(&mut **tx)
    .await?;
    let (target_type, target) = match session {
        Some(s) => ("session", s.to_string()),
        None => ("tenant", tenant.to_string()),
    };
    crate::audit::record_tx(
        tx,
        tenant.into(),
        None,
        &format!("retention.{what}_removed"),
        target_type,
        &target,
        json!({ "older_than": older_than, "rows": rows, "objects": objects }),
    )
    .await?;
    Ok(())
}

async fn remove_class(
    app: &AppState,
    tenant: Uuid,
    session: Uuid,
    edge: &str,
    ended: DateTime<Utc>,
) -> anyhow::Result<()> {
    let objects = delete_prefix(app, &format!("recordings/{tenant}/{session}/")).await?;
    let replay: Option<(Uuid,)> = sqlx::query_as("SELECT id FROM replays WHERE session_id = $1")
        .bind(session)
        .fetch_optional(app.db())
        .await?;
    let mut tx = app.db().begin().await?;
    sqlx::query("SET LOCAL classroom.retention_sweep = 'on'")
        .execute(&mut *tx)
        .await?;
    let events = sqlx::query("DELETE FROM session_state_events WHERE session_id = $1")
        .bind(session)
        .execute(&mut *tx)
        .await?
        .rows_affected() as i64;
    for table in [
        "participants",
        "artifacts",
        "artifact_stages",
        "artifact_jobs",
    ] {
        sqlx::query(&format!("DELETE FROM {table} WHERE session_id = $1"))
            .bind(session)
            .execute(&mut *tx)
            .await?;
    }
    if let Some((r,)) = replay {
        sqlx::query("DELETE FROM replay_access_log WHERE replay_id = $1")
            .bind(r)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM replays WHERE id = $1")
            .bind(r)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(
        "UPDATE sessions SET purged_at = now(),
                recording_purged_at = COALESCE(recording_purged_at, now()),
                transcript_purged_at = COALESCE(transcript_purged_at, now())
          WHERE id = $1",
    )
    .bind(session)
    .execute(&mut *tx)
    .await?;
    record(
        &mut tx,
        tenant,
        Some(session),
        "class",
        ended,
        events,
        objects,
    )
    .await?;
    tx.commit().await?;
    if let Some((r,)) = replay {
        let index = app.search()?;
        tokio::task::spawn_blocking(move || index.remove_replay(r))
            .await?
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    // the hub stream's copies of the class's events (its own retention is
    // 30 days; a shorter policy must not leave them there)
    if let (Ok(home), Ok(stream)) = (
        EdgeId::new(edge.to_owned()),
        app.js().get_stream(HUB_STREAM).await,
    ) {
        let (t, s) = (TenantId::from_uuid(tenant), SessionId::from_uuid(session));
        for subject in [edge_event_subject(&home, t, s), core_event_subject(t, s)] {
            if let Err(e) = stream.purge().filter(subject).await {
                tracing::warn!(session_id = %session, error = %e, "purging the hub stream's copies");
            }
        }
    }
    Ok(())
}

async fn remove_recording(
    app: &AppState,
    tenant: Uuid,
    session: Uuid,
    ended: DateTime<Utc>,
) -> anyhow::Result<()> {
    let objects = delete_prefix(app, &format!("recordings/{tenant}/{session}/")).await?;
    let mut tx = app.db().begin().await?;
    sqlx::query("UPDATE sessions SET recording_purged_at = now() WHERE id = $1")
        .bind(session)
        .execute(&mut *tx)
        .await?;
    record(
        &mut tx,
        tenant,
        Some(session),
        "recording",
        ended,
        0,
        objects,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The transcript and what is derived from its words (chapters, summary);
/// the replay's search entries are rebuilt from what is left.
async fn remove_transcript(
    app: &AppState,
    tenant: Uuid,
    session: Uuid,
    ended: DateTime<Utc>,
) -> anyhow::Result<()> {
    let mut tx = app.db().begin().await?;
    let rows = sqlx::query(
        "DELETE FROM artifacts WHERE session_id = $1 AND kind IN ('transcript', 'chapters', 'summary')",
    )
    .bind(session)
    .execute(&mut *tx)
    .await?
    .rows_affected() as i64;
    sqlx::query("UPDATE sessions SET transcript_purged_at = now() WHERE id = $1")
        .bind(session)
        .execute(&mut *tx)
        .await?;
    record(&mut tx, tenant, Some(session), "transcript", ended, rows, 0).await?;
    tx.commit().await?;
    if let Some(replay) = crate::replays::replay_of(app, SessionId::from_uuid(session)).await? {
        crate::replays::index_replay(app, &replay).await?;
    }
    Ok(())
}

/// How long a data-subject export archive is kept after it was made.
pub(crate) const EXPORT_KEEP: chrono::Duration = chrono::Duration::days(7);

/// Export archives made before `cutoff`: a copy of a person's data is not
/// kept for good (its link only lives 15 minutes anyway).
async fn remove_exports(
    app: &AppState,
    tenant: Uuid,
    cutoff: DateTime<Utc>,
) -> anyhow::Result<u64> {
    let old: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT id, object_key FROM subject_jobs
          WHERE tenant_id = $1 AND object_key IS NOT NULL AND finished_at < $2",
    )
    .bind(tenant)
    .bind(cutoff)
    .fetch_all(app.db())
    .await?;
    for (id, key) in &old {
        match app.objects().delete(&ObjectPath::from(key.as_str())).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let mut tx = app.db().begin().await?;
        sqlx::query(
            "UPDATE subject_jobs SET object_key = NULL, bytes = NULL, sha256 = NULL WHERE id = $1",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        record(&mut tx, tenant, None, "export", cutoff, 1, 1).await?;
        tx.commit().await?;
    }
    Ok(old.len() as u64)
}

/// Replay access rows older than `cutoff`, except those of held courses.
async fn remove_access_rows(
    app: &AppState,
    tenant: Uuid,
    cutoff: DateTime<Utc>,
) -> anyhow::Result<u64> {
    let mut tx = app.db().begin().await?;
    sqlx::query("SET LOCAL classroom.retention_sweep = 'on'")
        .execute(&mut *tx)
        .await?;
    let rows = sqlx::query(
        "DELETE FROM replay_access_log a
          WHERE a.tenant_id = $1 AND a.at < $2
            AND NOT EXISTS (
              SELECT 1 FROM replays rp
                JOIN sessions s ON s.id = rp.session_id
                JOIN lesson_runs r ON r.id = s.lesson_run_id
                JOIN lessons l ON l.id = r.lesson_id
                JOIN courses c ON c.id = l.course_id
               WHERE rp.id = a.replay_id AND c.legal_hold)",
    )
    .bind(tenant)
    .bind(cutoff)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if rows > 0 {
        record(&mut tx, tenant, None, "access_log", cutoff, rows as i64, 0).await?;
    }
    tx.commit().await?;
    Ok(rows)
}

/// Analytics of classes that ended before `cutoff` (not on legal hold): the
/// fold and its tables, and the replay's viewing figures.
async fn remove_analytics(
    app: &AppState,
    tenant: Uuid,
    cutoff: DateTime<Utc>,
) -> anyhow::Result<u64> {
    let mut tx = app.db().begin().await?;
    let gone: Vec<(Uuid,)> = sqlx::query_as(
        "DELETE FROM analytics_sessions a
          WHERE a.tenant_id = $1 AND a.ended_at < $2
            AND NOT EXISTS (SELECT 1 FROM courses c WHERE c.id = a.course_id AND c.legal_hold)
          RETURNING a.session_id",
    )
    .bind(tenant)
    .bind(cutoff)
    .fetch_all(&mut *tx)
    .await?;
    let ids: Vec<Uuid> = gone.into_iter().map(|r| r.0).collect();
    if !ids.is_empty() {
        for table in ["analytics_replay_seconds", "analytics_replay_viewers"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE session_id = ANY($1)"))
                .bind(&ids)
                .execute(&mut *tx)
                .await?;
        }
        record(
            &mut tx,
            tenant,
            None,
            "analytics",
            cutoff,
            ids.len() as i64,
            0,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(ids.len() as u64)
}

/// Raw replay beacons older than `cutoff`; the figures they added to stay.
async fn remove_beacons(
    app: &AppState,
    tenant: Uuid,
    cutoff: DateTime<Utc>,
) -> anyhow::Result<u64> {
    let mut tx = app.db().begin().await?;
    let rows = sqlx::query("DELETE FROM replay_beacons WHERE tenant_id = $1 AND at < $2")
        .bind(tenant)
        .bind(cutoff)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if rows > 0 {
        record(&mut tx, tenant, None, "beacons", cutoff, rows as i64, 0).await?;
    }
    tx.commit().await?;
    Ok(rows)
}
