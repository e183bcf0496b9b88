//! The data layer on a fresh migrated database per test: the schema's
//! constraints, refresh-token families, idempotency, and the identity routes
//! called through the router without a port.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::Utc;
use classroom_core::identity::refresh_family;
use classroom_core::seed;
use serde_json::json;
use sqlx::PgPool;
use tower::ServiceExt;
use uuid::Uuid;

mod common;
use common::{app, call};

async fn tenant_and_user(db: &PgPool, slug: &str) -> (Uuid, Uuid) {
    let t = Uuid::now_v7();
    let u = Uuid::now_v7();
    sqlx::query("INSERT INTO tenants (id, slug, name) VALUES ($1, $2, $2)")
        .bind(t)
        .bind(slug)
        .execute(db)
        .await
        .unwrap();
    sqlx::query("INSERT INTO users (id, tenant_id, email, display_name, password_hash) VALUES ($1, $2, $3, 'U', 'x')")
        .bind(u)
        .bind(t)
        .bind(format!("u@{slug}.test"))
        .execute(db)
        .await
        .unwrap();
    (t, u)
}

#[sqlx::test(migrator = "classroom_core::db::MIGRATOR")]
async fn rows_cannot_point_into_another_tenant(db: PgPool) {
    let (t1, u1) = tenant_and_user(&db, "one").await;
    let (t2, _) = tenant_and_user(&db, "two").await;
    let course = Uuid::now_v7();
    sqlx::query("INSERT INTO courses (id, tenant_id, title, owner_id) VALUES ($1, $2, 'C', $3)")
        .bind(course)
        .bind(t1)
        .bind(u1)
        .execute(&db)
        .await
        .unwrap();
    // a lesson of tenant two in tenant one's course: the composite FK refuses
    let err = sqlx::query(
        "INSERT INTO lessons (id, tenant_id, course_id, title) VALUES ($1, $2, $3, 'L')",
    )
    .bind(Uuid::now_v7())
    .bind(t2)
    .bind(course)
    .execute(&db)
    .await
    .unwrap_err();
    assert!(err.to_string().contains("foreign key"), "{err}");
    // a course owned by a user of another tenant
    let err = sqlx::query(
        "INSERT INTO courses (id, tenant_id, title, owner_id) VALUES ($1, $2, 'C', $3)",
    )
    .bind(Uuid::now_v7())
    .bind(t2)
    .bind(u1)
    .execute(&db)
    .await
    .unwrap_err();
    assert!(err.to_string().contains("foreign key"), "{err}");
}

async fn live_session(db: &PgPool) -> (Uuid, Uuid) {
    let (t, u) = tenant_and_user(db, "s").await;
    let (course, lesson, run, session) = (
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
    );
    sqlx::query("INSERT INTO courses (id, tenant_id, title, owner_id) VALUES ($1, $2, 'C', $3)")
        .bind(course)
        .bind(t)
        .bind(u)
        .execute(db)
        .await
        .unwrap();
    sqlx::query("INSERT INTO lessons (id, tenant_id, course_id, title) VALUES ($1, $2, $3, 'L')")
        .bind(lesson)
        .bind(t)
        .bind(course)
        .execute(db)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO lesson_runs (id, tenant_id, lesson_id, created_by) VALUES ($1, $2, $3, $4)",
    )
    .bind(run)
    .bind(t)
    .bind(lesson)
    .bind(u)
    .execute(db)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO edges (id, url, capacity, last_seen) VALUES ('edge-a', 'http://e', 5, now())",
    )
    .execute(db)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO sessions (id, tenant_id, lesson_run_id, edge_id, status, title, started_by, started_at)
         VALUES ($1, $2, $3, 'edge-a', 'live', 'T', $4, now())",
    )
    .bind(session)
    .bind(t)
    .bind(run)
    .bind(u)
    .execute(db)
    .await
    .unwrap();
    // a second live session of the same run is refused
    let err = sqlx::query(
        "INSERT INTO sessions (id, tenant_id, lesson_run_id, edge_id, status, title, started_by, started_at)
         VALUES ($1, $2, $3, 'edge-a', 'live', 'T', $4, now())",
    )
    .bind(Uuid::now_v7())
    .bind(t)
    .bind(run)
    .bind(u)
    .execute(db)
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("sessions_one_live_per_run"),
        "{err}"
    );
    (t, session)
}

async fn insert_event(
    db: &PgPool,
    t: Uuid,
    s: Uuid,
    id: Uuid,
    seq: i64,
) -> Result<u64, sqlx::Error> {
    sqlx::query(
        "INSERT INTO session_state_events (event_id, tenant_id, session_id, seq, type, v, occurred_at, actor, source, payload)
         VALUES ($1, $2, $3, $4, 'chat.message', 1, now(), '{}', 'edge:edge-a', '{}')",
    )
    .bind(id)
    .bind(t)
    .bind(s)
    .bind(seq)
    .execute(db)
    .await
    .map(|r| r.rows_affected())
}

#[sqlx::test(migrator = "classroom_core::db::MIGRATOR")]
async fn the_event_log_is_unique_and_append_only(db: PgPool) {
    let (t, s) = live_session(&db).await;
    let e1 = Uuid::now_v7();
    insert_event(&db, t, s, e1, 1).await.unwrap();
    // same seq, another event: refused
    let err = insert_event(&db, t, s, Uuid::now_v7(), 1)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("session_state_events_session_id_seq_key"),
        "{err}"
    );
    // same event id again: refused
    assert!(insert_event(&db, t, s, e1, 2).await.is_err());
    // seq starts at 1
    assert!(insert_event(&db, t, s, Uuid::now_v7(), 0).await.is_err());
    // another tenant's id with this session: refused by the FK
    let (other, _) = tenant_and_user(&db, "other").await;
    assert!(
        insert_event(&db, other, s, Uuid::now_v7(), 2)
            .await
            .is_err()
    );
    for sql in [
        "UPDATE session_state_events SET payload = '{\"x\":1}'",
        "DELETE FROM session_state_events",
        "TRUNCATE session_state_events CASCADE",
    ] {
        let err = sqlx::query(sql).execute(&db).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM session_state_events")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(n, 1);
}

#[sqlx::test(migrator = "classroom_core::db::MIGRATOR")]
async fn refresh_families_rotate_and_reuse_revokes(db: PgPool) {
    let seeded = seed::seed(&db, "a-long-password", 1).await.unwrap();
    let _ = seeded;
    let (t, u): (Uuid, Uuid) =
        sqlx::query_as("SELECT tenant_id, id FROM users WHERE email = 'teacher@demo.test'")
            .fetch_one(&db)
            .await
            .unwrap();
    let now = Utc::now();
    let mut tx = db.begin().await.unwrap();
    let family = Uuid::now_v7();
    let r1 = refresh_family::issue(&mut tx, t.into(), u.into(), family, now)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let (stored,): (Vec<u8>,) = sqlx::query_as("SELECT token_hash FROM refresh_tokens")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_ne!(stored, r1.as_bytes(), "only a hash is stored");

    let rot = refresh_family::rotate(&db, &r1, now).await.unwrap();
    assert_eq!(rot.role, protocol::Role::Teacher);
    let r2 = rot.refresh_token;
    // reuse of r1: refused and the family is revoked, so r2 is dead too
    assert!(refresh_family::rotate(&db, &r1, now).await.is_err());
    assert!(refresh_family::rotate(&db, &r2, now).await.is_err());
    let (live,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM refresh_tokens WHERE family_id = $1 AND revoked_at IS NULL",
    )
    .bind(family)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(live, 0);
    let (audited,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM audit_log WHERE action = 'auth.refresh_reuse_detected'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(audited, 1);
    // an expired token is refused
    let mut tx = db.begin().await.unwrap();
    let old = refresh_family::issue(
        &mut tx,
        t.into(),
        u.into(),
        Uuid::now_v7(),
        now - chrono::Duration::days(40),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert!(refresh_family::rotate(&db, &old, now).await.is_err());
}

#[sqlx::test(migrator = "classroom_core::db::MIGRATOR")]
async fn login_and_idempotent_course_creation_through_the_router(db: PgPool) {
    seed::seed(&db, "a-long-password", 2).await.unwrap();
    let app = app(db.clone());
    let (s, v) = call(
        &app,
        "POST",
        "/auth/login",
        None,
        Some(json!({ "email": "teacher@demo.test", "password": "nope-nope" })),
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_credentials"))
    );
    let (s, v) = call(
        &app,
        "POST",
        "/auth/login",
        None,
        Some(json!({ "email": "TEACHER@demo.test", "password": "a-long-password" })),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let token = v["access_token"].as_str().unwrap().to_owned();

    let req = |key: &str, title: &str| {
        Request::builder()
            .method("POST")
            .uri("/courses")
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .body(Body::from(json!({ "title": title }).to_string()))
            .unwrap()
    };
    let a = app.clone().oneshot(req("k", "Maths")).await.unwrap();
    assert_eq!(a.status(), StatusCode::CREATED);
    let b = app.clone().oneshot(req("k", "Maths")).await.unwrap();
    assert_eq!(b.status(), StatusCode::CREATED);
    assert_eq!(
        b.headers()
            .get("idempotent-replay")
            .map(|v| v.to_str().unwrap()),
        Some("true")
    );
    let c = app.clone().oneshot(req("k", "Other")).await.unwrap();
    assert_eq!(c.status(), StatusCode::CONFLICT);
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM courses WHERE title = 'Maths'")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(n, 1);

    // a student is refused, with the api.md error body
    let (s, v) = call(
        &app,
        "POST",
        "/auth/login",
        None,
        Some(json!({ "email": "student1@demo.test", "password": "a-long-password" })),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let st = v["access_token"].as_str().unwrap().to_owned();
    let (s, v) = call(
        &app,
        "POST",
        "/courses",
        Some(&st),
        Some(json!({ "title": "x" })),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(v["error"]["code"], "staff_only");
    assert!(v["error"]["message"].is_string());
}
