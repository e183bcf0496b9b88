//! The fold in Postgres: read a class's fold, fold what its log holds past
//! it, write the fold and its tables back in one transaction.

use std::collections::BTreeSet;

use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::fold::{Fold, LogEvent, Noted};

/// Events read per round trip.
const PAGE: i64 = 2_000;

/// What one catch-up of a class did.
#[derive(Debug, Default)]
pub(crate) struct Caught {
    pub events: u64,
    pub noted: Vec<Noted>,
    /// The fold after it (None: the class's log does not start with
    /// `session.started` yet, or is gone).
    pub fold: Option<Fold>,
}

/// Accounts of the tenant whose data is erased.
pub(crate) async fn erased(
    tx: &mut Transaction<'_, Postgres>,
    tenant: Uuid,
) -> sqlx::Result<BTreeSet<Uuid>> {
    let rows: Vec<(Uuid,)> =
        sqlx::query_as("SELECT id FROM users WHERE tenant_id = $1 AND erased_at IS NOT NULL")
            .bind(tenant)
            .fetch_all(&mut **tx)
            .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

/// Folds the class's committed log past its fold (up to `sessions.last_seq`)
/// inside `tx`, which holds the fold's row lock. `from_scratch`: ignore
/// the stored fold and fold the whole log again (rebuild).
pub(crate) async fn catch_up(
    tx: &mut Transaction<'_, Postgres>,
    tenant: Uuid,
    session: Uuid,
    from_scratch: bool,
) -> anyhow::Result<Caught> {
    let stored: Option<(serde_json::Value,)> =
        sqlx::query_as("SELECT state FROM analytics_sessions WHERE session_id = $1 FOR UPDATE")
            .bind(session)
            .fetch_optional(&mut **tx)
            .await?;
    let mut fold: Option<Fold> = match (&stored, from_scratch) {
        (Some((state,)), false) => Some(serde_json::from_value(state.clone())?),
        _ => None,
    };
    let (last_seq,): (i64,) =
        sqlx::query_as("SELECT last_seq FROM sessions WHERE id = $1 AND tenant_id = $2")
            .bind(session)
            .bind(tenant)
            .fetch_one(&mut **tx)
            .await?;
    let excluded = erased(tx, tenant).await?;
    // someone erased while this fold was being written
    if let Some(f) = fold.as_mut() {
        for u in &excluded {
            if f.people.contains_key(u) {
                f.forget(*u);
            }
        }
    }
    let mut caught = Caught::default();
    let mut after = fold.as_ref().map_or(0, |f| f.last_seq);
    while after < last_seq {
        let rows: Vec<(
            i64,
            String,
            chrono::DateTime<chrono::Utc>,
            serde_json::Value,
        )> = sqlx::query_as(
            "SELECT seq, type, occurred_at, payload FROM session_state_events
                  WHERE session_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4",
        )
        .bind(session)
        .bind(after)
        .bind(last_seq)
        .bind(PAGE)
        .fetch_all(&mut **tx)
        .await?;
        let Some(last) = rows.last() else { break };
        after = last.0;
        for (seq, event_type, occurred_at, payload) in rows {
            let ev = LogEvent {
                seq,
                event_type,
                occurred_at,
                payload,
            };
            caught.events += 1;
            match fold.as_mut() {
                Some(f) => caught.noted.extend(f.apply(&ev, &excluded)),
                None => match Fold::begin(tenant, session, &ev) {
                    Some(f) => fold = Some(f),
                    // a log that does not begin with the start: nothing to fold
                    None => return Ok(caught),
                },
            }
        }
    }
    if let Some(f) = &fold {
        write(tx, f).await?;
    }
    caught.fold = fold;
    Ok(caught)
}

/// Writes a fold and every table made of it (the class's rows replaced).
pub(crate) async fn write(tx: &mut Transaction<'_, Postgres>, f: &Fold) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO analytics_sessions
           (session_id, tenant_id, course_id, lesson_id, lesson_run_id, started_at, ended_at,
            last_seq, events, state)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (session_id) DO UPDATE SET ended_at = EXCLUDED.ended_at,
           last_seq = EXCLUDED.last_seq, events = EXCLUDED.events, state = EXCLUDED.state",
    )
    .bind(f.session_id)
    .bind(f.tenant_id)
    .bind(f.course_id)
    .bind(f.lesson_id)
    .bind(f.lesson_run_id)
    .bind(f.started_at)
    .bind(f.ended_at)
    .bind(f.last_seq)
    .bind(f.events)
    .bind(serde_json::to_value(f)?)
    .execute(&mut **tx)
    .await?;
    for table in [
        "analytics_attendance",
        "analytics_minutes",
        "analytics_polls",
        "analytics_poll_answers",
    ] {
        sqlx::query(&format!("DELETE FROM {table} WHERE session_id = $1"))
            .bind(f.session_id)
            .execute(&mut **tx)
            .await?;
    }
    let people: Vec<_> = f.people.iter().collect();
    sqlx::query(
        "INSERT INTO analytics_attendance
           (session_id, tenant_id, course_id, user_id, role, first_join, last_leave, present_ms,
            open_since, joins, attendance_only, chat, questions, upvotes, poll_answers,
            poll_correct, hands, speaking_ms, mic_ms)
         SELECT $1, $2, $3, * FROM UNNEST($4::uuid[], $5::text[], $6::timestamptz[],
           $7::timestamptz[], $8::bigint[], $9::timestamptz[], $10::int[], $11::bool[],
           $12::int[], $13::int[], $14::int[], $15::int[], $16::int[], $17::int[], $18::bigint[],
           $19::bigint[])",
    )
    .bind(f.session_id)
    .bind(f.tenant_id)
    .bind(f.course_id)
    .bind(people.iter().map(|(u, _)| **u).collect::<Vec<_>>())
    .bind(
        people
            .iter()
            .map(|(_, p)| p.role.clone())
            .collect::<Vec<_>>(),
    )
    .bind(people.iter().map(|(_, p)| p.first_join).collect::<Vec<_>>())
    .bind(people.iter().map(|(_, p)| p.last_leave).collect::<Vec<_>>())
    .bind(people.iter().map(|(_, p)| p.present_ms).collect::<Vec<_>>())
    .bind(people.iter().map(|(_, p)| p.open_since).collect::<Vec<_>>())
    .bind(people.iter().map(|(_, p)| p.joins).collect::<Vec<_>>())
    .bind(
        people
            .iter()
            .map(|(_, p)| p.attendance_only)
            .collect::<Vec<_>>(),
    )
    .bind(people.iter().map(|(_, p)| p.chat).collect::<Vec<_>>())
    .bind(people.iter().map(|(_, p)| p.questions).collect::<Vec<_>>())
    .bind(people.iter().map(|(_, p)| p.upvotes).collect::<Vec<_>>())
    .bind(
        people
            .iter()
            .map(|(_, p)| p.poll_answers)
            .collect::<Vec<_>>(),
    )
    .bind(
        people
            .iter()
            .map(|(_, p)| p.poll_correct)
            .collect::<Vec<_>>(),
    )
    .bind(people.iter().map(|(_, p)| p.hands).collect::<Vec<_>>())
    .bind(
        people
            .iter()
            .map(|(_, p)| p.speaking_ms)
            .collect::<Vec<_>>(),
    )
    .bind(people.iter().map(|(_, p)| p.mic_ms).collect::<Vec<_>>())
    .execute(&mut **tx)
    .await?;
    let minutes: Vec<_> = f.minutes.iter().collect();
    sqlx::query(
        "INSERT INTO analytics_minutes
           (session_id, minute, attendee_ms, chat, questions, poll_answers, hands, speaking_ms)
         SELECT $1, * FROM UNNEST($2::int[], $3::bigint[], $4::int[], $5::int[], $6::int[],
           $7::int[], $8::bigint[])",
    )
    .bind(f.session_id)
    .bind(minutes.iter().map(|(m, _)| **m).collect::<Vec<_>>())
    .bind(
        minutes
            .iter()
            .map(|(_, m)| m.attendee_ms)
            .collect::<Vec<_>>(),
    )
    .bind(minutes.iter().map(|(_, m)| m.chat).collect::<Vec<_>>())
    .bind(minutes.iter().map(|(_, m)| m.questions).collect::<Vec<_>>())
    .bind(
        minutes
            .iter()
            .map(|(_, m)| m.poll_answers)
            .collect::<Vec<_>>(),
    )
    .bind(minutes.iter().map(|(_, m)| m.hands).collect::<Vec<_>>())
    .bind(
        minutes
            .iter()
            .map(|(_, m)| m.speaking_ms)
            .collect::<Vec<_>>(),
    )
    .execute(&mut **tx)
    .await?;
    for (poll_id, poll) in &f.polls {
        sqlx::query(
            "INSERT INTO analytics_polls
               (session_id, poll_id, opened_seq, opened_at, question, options, correct_option,
                answers, correct)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(f.session_id)
        .bind(poll_id)
        .bind(poll.opened_seq)
        .bind(poll.opened_at)
        .bind(&poll.question)
        .bind(serde_json::to_value(&poll.options)?)
        .bind(poll.correct_option)
        .bind(poll.answers.len() as i32)
        .bind(poll.correct_count())
        .execute(&mut **tx)
        .await?;
        let answers: Vec<_> = poll.answers.iter().collect();
        sqlx::query(
            "INSERT INTO analytics_poll_answers (session_id, poll_id, user_id, option, correct)
             SELECT $1, $2, * FROM UNNEST($3::uuid[], $4::int[], $5::bool[])",
        )
        .bind(f.session_id)
        .bind(poll_id)
        .bind(answers.iter().map(|(u, _)| **u).collect::<Vec<_>>())
        .bind(answers.iter().map(|(_, a)| a.0).collect::<Vec<_>>())
        .bind(answers.iter().map(|(_, a)| a.1).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Refolds every class of the tenant (or all tenants) whose log is still
/// kept, from its first event: `core analytics rebuild`. Statements for
/// events the fold had not reached yet are queued as the consumer would.
/// Returns (classes, events).
pub(crate) async fn rebuild(
    db: &PgPool,
    home: &str,
    tenant: Option<Uuid>,
) -> anyhow::Result<(u64, u64)> {
    let sessions: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT id, tenant_id FROM sessions
          WHERE ($1::uuid IS NULL OR tenant_id = $1) AND purged_at IS NULL
          ORDER BY started_at",
    )
    .bind(tenant)
    .fetch_all(db)
    .await?;
    let (mut classes, mut events) = (0, 0);
    for (session, tenant) in sessions {
        let mut tx = db.begin().await?;
        let before: Option<(i64,)> = sqlx::query_as(
            "SELECT last_seq FROM analytics_sessions WHERE session_id = $1 FOR UPDATE",
        )
        .bind(session)
        .fetch_optional(&mut *tx)
        .await?;
        let caught = catch_up(&mut tx, tenant, session, true).await?;
        let reached = before.map_or(0, |b| b.0);
        let fresh: Vec<Noted> = caught
            .noted
            .into_iter()
            .filter(|n| n.seq > reached)
            .collect();
        if let Some(f) = &caught.fold {
            super::xapi::queue(&mut tx, home, f, &fresh).await?;
            classes += 1;
        }
        events += caught.events;
        tx.commit().await?;
        tracing::info!(session_id = %session, events = caught.events, "analytics refolded");
    }
    Ok((classes, events))
}

/// Removes an erased person from every fold and table of analytics.
pub(crate) async fn erase(
    tx: &mut Transaction<'_, Postgres>,
    tenant: Uuid,
    user: Uuid,
) -> anyhow::Result<u64> {
    let folds: Vec<(Uuid, serde_json::Value)> = sqlx::query_as(
        "SELECT s.session_id, s.state FROM analytics_sessions s
           JOIN analytics_attendance a ON a.session_id = s.session_id
          WHERE a.tenant_id = $1 AND a.user_id = $2
          FOR UPDATE OF s",
    )
    .bind(tenant)
    .bind(user)
    .fetch_all(&mut **tx)
    .await?;
    let mut removed = 0;
    for (_, state) in folds {
        let mut f: Fold = serde_json::from_value(state)?;
        f.forget(user);
        write(tx, &f).await?;
        removed += 1;
    }
    for table in [
        "analytics_replay_viewers",
        "replay_beacons",
        "analytics_attendance",
    ] {
        sqlx::query(&format!(
            "DELETE FROM {table} WHERE tenant_id = $1 AND user_id = $2"
        ))
        .bind(tenant)
        .bind(user)
        .execute(&mut **tx)
        .await?;
    }
    // statements about them not sent yet are not sent
    sqlx::query(
        "DELETE FROM xapi_outbox WHERE tenant_id = $1 AND sent_at IS NULL
           AND statement #>> '{actor,account,name}' = $2",
    )
    .bind(tenant)
    .bind(user.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(removed)
}
