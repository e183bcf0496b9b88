//! Demo data for the dev stack: tenant `demo` with an admin, a teacher, an
//! assistant and students, a course (every one of them on its roster) with a
//! lesson and a lesson run; tenant
//! `other` with an admin, a teacher and a student, to show tenants never meet.
//! Idempotent: running it twice changes nothing. Never used in production.

use anyhow::Context;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::identity::passwords;

pub struct Seeded {
    pub demo_lesson_run: Uuid,
}

pub async fn demo(db: &PgPool, password: &str, students: u32) -> anyhow::Result<()> {
    let seeded = seed(db, password, students).await?;
    println!(
        "seeded demo tenants; demo lesson run: {}",
        seeded.demo_lesson_run
    );
    Ok(())
}

pub async fn seed(db: &PgPool, password: &str, students: u32) -> anyhow::Result<Seeded> {
    if password.chars().count() < passwords::MIN_PASSWORD_CHARS {
        anyhow::bail!(
            "DEMO_PASSWORD must be at least {} characters",
            passwords::MIN_PASSWORD_CHARS
        );
    }
    // One hash for every demo account: they share the password by design,
    // and hashing 36 times would slow every dev start for nothing.
    let pw = password.to_owned();
    let hash = tokio::task::spawn_blocking(move || passwords::hash(&pw)).await??;
    let mut tx = db.begin().await?;

    let demo = tenant(
        &mut tx,
        "demo",
        "Demo School",
        json!({"blocked_words": ["darn"]}),
    )
    .await?;
    let other = tenant(&mut tx, "other", "Other Academy", json!({})).await?;

    let admin = user(
        &mut tx,
        demo,
        "admin@demo.test",
        "Ada Admin",
        "admin",
        &hash,
    )
    .await?;
    let teacher = user(
        &mut tx,
        demo,
        "teacher@demo.test",
        "Tess Teacher",
        "teacher",
        &hash,
    )
    .await?;
    user(
        &mut tx,
        demo,
        "assistant@demo.test",
        "Sam Assistant",
        "assistant",
        &hash,
    )
    .await?;
    for n in 1..=students {
        user(
            &mut tx,
            demo,
            &format!("student{n}@demo.test"),
            &format!("Student {n}"),
            "student",
            &hash,
        )
        .await?;
    }
    user(
        &mut tx,
        other,
        "admin@other.test",
        "Oona Admin",
        "admin",
        &hash,
    )
    .await?;
    user(
        &mut tx,
        other,
        "teacher@other.test",
        "Olive Other",
        "teacher",
        &hash,
    )
    .await?;
    user(
        &mut tx,
        other,
        "student1@other.test",
        "Otto Student",
        "student",
        &hash,
    )
    .await?;
    let _ = admin;

    let course: (Uuid,) = match sqlx::query_as("SELECT id FROM courses WHERE tenant_id = $1 AND title = 'Biology 101'")
        .bind(demo)
        .fetch_optional(&mut *tx)
        .await?
    {
        Some(c) => c,
        None => sqlx::query_as("INSERT INTO courses (id, tenant_id, title, owner_id) VALUES ($1, $2, 'Biology 101', $3) RETURNING id")
            .bind(Uuid::now_v7())
            .bind(demo)
            .bind(teacher)
            .fetch_one(&mut *tx)
            .await?,
    };
    let lesson: (Uuid,) = match sqlx::query_as("SELECT id FROM lessons WHERE course_id = $1 AND title = 'Photosynthesis'")
        .bind(course.0)
        .fetch_optional(&mut *tx)
        .await?
    {
        Some(l) => l,
        None => sqlx::query_as("INSERT INTO lessons (id, tenant_id, course_id, title) VALUES ($1, $2, $3, 'Photosynthesis') RETURNING id")
            .bind(Uuid::now_v7())
            .bind(demo)
            .bind(course.0)
            .fetch_one(&mut *tx)
            .await?,
    };
    let run: (Uuid,) = match sqlx::query_as("SELECT id FROM lesson_runs WHERE lesson_id = $1 ORDER BY created_at LIMIT 1")
        .bind(lesson.0)
        .fetch_optional(&mut *tx)
        .await?
    {
        Some(r) => r,
        None => sqlx::query_as(
            "INSERT INTO lesson_runs (id, tenant_id, lesson_id, created_by) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(Uuid::now_v7())
        .bind(demo)
        .bind(lesson.0)
        .bind(teacher)
        .fetch_one(&mut *tx)
        .await?,
    };
    // the demo course's roster: its teacher, the assistant, every student
    sqlx::query(
        "INSERT INTO course_members (tenant_id, course_id, user_id, role, added_by)
         SELECT u.tenant_id, $2, u.id,
                CASE rb.role WHEN 'teacher' THEN 'teacher' WHEN 'assistant' THEN 'assistant'
                             ELSE 'student' END::course_role, $3
           FROM users u JOIN role_bindings rb ON rb.user_id = u.id AND rb.tenant_id = u.tenant_id
          WHERE u.tenant_id = $1 AND (rb.role <> 'teacher' OR u.id = $3) AND rb.role <> 'admin'
         ON CONFLICT (course_id, user_id) DO NOTHING",
    )
    .bind(demo)
    .bind(course.0)
    .bind(teacher)
    .execute(&mut *tx)
    .await?;
    tx.commit().await.context("committing seed")?;
    Ok(Seeded {
        demo_lesson_run: run.0,
    })
}

async fn tenant(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    slug: &str,
    name: &str,
    settings: serde_json::Value,
) -> anyhow::Result<Uuid> {
    let (id,): (Uuid,) = sqlx::query_as(
        "INSERT INTO tenants (id, slug, name, settings) VALUES ($1, $2, $3, $4)
         ON CONFLICT (slug) DO UPDATE SET name = EXCLUDED.name RETURNING id",
    )
    .bind(Uuid::now_v7())
    .bind(slug)
    .bind(name)
    .bind(settings)
    .fetch_one(&mut **tx)
    .await?;
    Ok(id)
}

async fn user(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    tenant: Uuid,
    email: &str,
    name: &str,
    role: &str,
    hash: &str,
) -> anyhow::Result<Uuid> {
    let (id,): (Uuid,) = sqlx::query_as(
        "INSERT INTO users (id, tenant_id, email, display_name, password_hash) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (tenant_id, email) DO UPDATE SET password_hash = EXCLUDED.password_hash RETURNING id",
    )
    .bind(Uuid::now_v7())
    .bind(tenant)
    .bind(email)
    .bind(name)
    .bind(hash)
    .fetch_one(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO role_bindings (tenant_id, user_id, role) VALUES ($1, $2, $3::tenant_role)
         ON CONFLICT (tenant_id, user_id) DO UPDATE SET role = EXCLUDED.role",
    )
    .bind(tenant)
    .bind(id)
    .bind(role)
    .execute(&mut **tx)
    .await?;
    Ok(id)
}
