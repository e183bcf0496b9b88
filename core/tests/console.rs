//! The console API through the router on a fresh database: each route's
//! permissions for an admin, the course's teacher, another teacher, a
//! student and another tenant; disabling a user; CSV imports reported per
//! line; an audit row for every change.

use axum::http::StatusCode;
use classroom_core::seed;
use serde_json::{Value, json};
use sqlx::PgPool;

mod common;
use common::{app, call, login, send};

const PW: &str = "a-long-password";

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<none>")
}

struct Cast {
    app: axum::Router,
    admin: String,
    teacher: String,
    other_teacher: String,
    student: String,
    loner: String,
    loner_id: String,
    foreign_teacher: String,
    foreign_student_id: String,
    course: String,
}

async fn cast(db: &PgPool) -> Cast {
    seed::seed(db, PW, 3).await.unwrap();
    let app = app(db.clone());
    let (admin, _) = login(&app, "admin@demo.test", PW).await;
    let (teacher, _) = login(&app, "teacher@demo.test", PW).await;
    let (student, _) = login(&app, "student1@demo.test", PW).await;
    let (foreign_teacher, _) = login(&app, "teacher@other.test", PW).await;
    for (email, role) in [
        ("teacher2@demo.test", "teacher"),
        ("loner@demo.test", "student"),
    ] {
        let (s, v) = call(
            &app,
            "POST",
            "/users",
            Some(&admin),
            Some(json!({ "email": email, "display_name": email, "role": role, "password": PW })),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let (other_teacher, _) = login(&app, "teacher2@demo.test", PW).await;
    let (loner, _) = login(&app, "loner@demo.test", PW).await;
    let (_, me) = call(&app, "GET", "/me", Some(&loner), None).await;
    let loner_id = me["user_id"]
        .as_str()
        .or(me["id"].as_str())
        .unwrap()
        .to_owned();
    let (foreign_student_id,): (uuid::Uuid,) =
        sqlx::query_as("SELECT id FROM users WHERE email = 'student1@other.test'")
            .fetch_one(db)
            .await
            .unwrap();
    let (course,): (uuid::Uuid,) =
        sqlx::query_as("SELECT id FROM courses WHERE title = 'Biology 101'")
            .fetch_one(db)
            .await
            .unwrap();
    Cast {
        app,
        admin,
        teacher,
        other_teacher,
        student,
        loner,
        loner_id,
        foreign_teacher,
        foreign_student_id: foreign_student_id.to_string(),
        course: course.to_string(),
    }
}

/// The status of each caller for one request, in the order admin, the
/// course's teacher, another teacher, a student, another tenant's teacher.
async fn statuses(c: &Cast, method: &str, path: &str, body: Option<Value>) -> Vec<u16> {
    let mut out = Vec::new();
    for t in [
        &c.admin,
        &c.teacher,
        &c.other_teacher,
        &c.student,
        &c.foreign_teacher,
    ] {
        let (s, _) = call(&c.app, method, path, Some(t), body.clone()).await;
        out.push(s.as_u16());
    }
    out
}

#[sqlx::test(migrator = "classroom_core::db::MIGRATOR")]
async fn each_route_answers_by_role_course_and_tenant(db: PgPool) {
    let c = cast(&db).await;
    let course = &c.course;
    let members = format!("/courses/{course}/members");

    // [admin, course teacher, other teacher, student, other tenant]
    assert_eq!(
        statuses(&c, "GET", "/users", None).await,
        [200, 200, 200, 403, 200]
    );
    assert_eq!(
        statuses(&c, "GET", &members, None).await,
        [200, 200, 403, 403, 404]
    );
    assert_eq!(
        statuses(&c, "GET", "/tenant/settings", None).await,
        [200, 403, 403, 403, 403]
    );
    assert_eq!(
        statuses(&c, "GET", "/audit", None).await,
        [200, 403, 403, 403, 403]
    );
    assert_eq!(
        statuses(&c, "GET", "/me/classes", None).await,
        [200, 200, 200, 200, 200]
    );
    assert_eq!(
        statuses(&c, "GET", "/sessions", None).await,
        [200, 200, 200, 200, 200]
    );
    assert_eq!(
        statuses(&c, "GET", "/replays", None).await,
        [200, 200, 200, 200, 200]
    );
    assert_eq!(
        statuses(&c, "GET", &format!("/courses/{course}"), None).await,
        [200, 200, 403, 200, 404]
    );
    let add = json!({ "user_id": c.loner_id, "role": "student" });
    assert_eq!(
        statuses(&c, "POST", &members, Some(add.clone())).await,
        // the admin enrolls (201); the teacher finds them enrolled (200)
        [201, 200, 403, 403, 404]
    );
    assert_eq!(
        statuses(&c, "DELETE", &format!("{members}/{}", c.loner_id), None).await,
        // removed by the admin; then gone for the teacher
        [204, 404, 403, 403, 404]
    );
    let new_user = |n: u32| json!({ "email": format!("u{n}@demo.test"), "display_name": "U", "role": "student", "password": PW });
    for (caller, want) in [
        (&c.teacher, 403),
        (&c.student, 403),
        (&c.foreign_teacher, 403),
    ] {
        let (s, _) = call(&c.app, "POST", "/users", Some(caller), Some(new_user(1))).await;
        assert_eq!(s.as_u16(), want);
    }
    let (s, _) = call(&c.app, "POST", "/users", None, Some(new_user(1))).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // no identity: 401 everywhere
    for (m, p) in [
        ("GET", "/users"),
        ("GET", members.as_str()),
        ("GET", "/audit"),
        ("GET", "/me/classes"),
    ] {
        let (s, v) = call(&c.app, m, p, None, None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{m} {p}: {v}");
    }

    // the course's teacher enrolls by email; bad input changes nothing
    let (s, v) = call(
        &c.app,
        "POST",
        &members,
        Some(&c.teacher),
        Some(json!({ "email": "loner@demo.test", "role": "assistant" })),
    )
    .await;
    assert_eq!(
        (s, v["role"].as_str()),
        (StatusCode::CREATED, Some("assistant")),
        "{v}"
    );
    for (body, want, want_code) in [
        (
            json!({ "email": "loner@demo.test", "role": "dean" }),
            400,
            "invalid_role",
        ),
        (json!({ "role": "student" }), 400, "invalid_member"),
        (
            json!({ "email": "nobody@demo.test", "role": "student" }),
            404,
            "user_not_found",
        ),
        (
            json!({ "user_id": c.foreign_student_id, "role": "student" }),
            404,
            "user_not_found",
        ),
        (
            json!({ "user_id": "not-a-uuid", "role": "student" }),
            400,
            "invalid_body",
        ),
    ] {
        let (s, v) = call(
            &c.app,
            "POST",
            &members,
            Some(&c.teacher),
            Some(body.clone()),
        )
        .await;
        assert_eq!((s.as_u16(), code(&v)), (want, want_code), "{body}: {v}");
    }
    // the last teacher stays
    let (_, me) = call(&c.app, "GET", "/me", Some(&c.teacher), None).await;
    let teacher_id = me["user_id"]
        .as_str()
        .or(me["id"].as_str())
        .unwrap()
        .to_owned();
    let (s, v) = call(
        &c.app,
        "DELETE",
        &format!("{members}/{teacher_id}"),
        Some(&c.teacher),
        None,
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "last_teacher"));
    let (s, v) = call(
        &c.app,
        "POST",
        &members,
        Some(&c.teacher),
        Some(json!({ "user_id": teacher_id, "role": "student" })),
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "last_teacher"));
    let (_, roster) = call(&c.app, "GET", &members, Some(&c.teacher), None).await;
    let roles: Vec<(&str, &str)> = roster["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["email"].as_str().unwrap(), m["role"].as_str().unwrap()))
        .collect();
    assert!(
        roles.contains(&("teacher@demo.test", "teacher")),
        "{roles:?}"
    );
    assert!(
        roles.contains(&("loner@demo.test", "assistant")),
        "{roles:?}"
    );
    assert!(
        roles.contains(&("student1@demo.test", "student")),
        "{roles:?}"
    );
    // a second enrollment changes the role
    let (s, v) = call(
        &c.app,
        "POST",
        &members,
        Some(&c.teacher),
        Some(json!({ "user_id": c.loner_id, "role": "student" })),
    )
    .await;
    assert_eq!(
        (s, v["role"].as_str()),
        (StatusCode::OK, Some("student")),
        "{v}"
    );

    // discovery: a scheduled run shows for the roster, not for a stranger
    let (_, lesson) = call(
        &c.app,
        "POST",
        "/lessons",
        Some(&c.teacher),
        Some(json!({ "course_id": course, "title": "Cells" })),
    )
    .await;
    let at = (chrono::Utc::now() + chrono::Duration::hours(3)).to_rfc3339();
    let (s, v) = call(
        &c.app,
        "POST",
        "/lesson-runs",
        Some(&c.other_teacher),
        Some(json!({ "lesson_id": lesson["id"], "scheduled_start": at })),
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "not_course_teacher"));
    let (s, run) = call(
        &c.app,
        "POST",
        "/lesson-runs",
        Some(&c.teacher),
        Some(json!({ "lesson_id": lesson["id"], "scheduled_start": at })),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{run}");
    let (_, mine) = call(&c.app, "GET", "/me/classes", Some(&c.student), None).await;
    let upcoming: Vec<&Value> = mine["upcoming"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["lesson_run_id"] == run["id"])
        .collect();
    assert_eq!(upcoming.len(), 1, "{mine}");
    assert_eq!(upcoming[0]["my_role"], "student");
    assert_eq!(upcoming[0]["lesson_title"], "Cells");
    let (_, theirs) = call(&c.app, "GET", "/me/classes", Some(&c.other_teacher), None).await;
    assert!(
        theirs["upcoming"].as_array().unwrap().is_empty(),
        "{theirs}"
    );
    let (_, courses) = call(&c.app, "GET", "/courses", Some(&c.other_teacher), None).await;
    assert!(
        courses["courses"].as_array().unwrap().is_empty(),
        "{courses}"
    );
    let (s, v) = call(
        &c.app,
        "GET",
        "/sessions?status=paused",
        Some(&c.student),
        None,
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_status"));
    let (s, v) = call(&c.app, "GET", "/sessions?limit=0", Some(&c.student), None).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_limit"));

    // settings: partial changes, validated, kept
    let (s, v) = call(
        &c.app,
        "PATCH",
        "/tenant/settings",
        Some(&c.admin),
        Some(json!({ "public_viewing": true, "blocked_words": ["Darn", "heck", "darn"] })),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["blocked_words"], json!(["darn", "heck"]));
    assert_eq!(v["public_viewing"], true);
    assert_eq!(v["recording_required"], false);
    let (s, v) = call(
        &c.app,
        "PATCH",
        "/tenant/settings",
        Some(&c.admin),
        Some(json!({ "blocked_words": [""] })),
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "invalid_blocked_words")
    );
    let (s, _) = call(
        &c.app,
        "PATCH",
        "/tenant/settings",
        Some(&c.teacher),
        Some(json!({ "public_viewing": false })),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (_, v) = call(&c.app, "GET", "/tenant/settings", Some(&c.admin), None).await;
    assert_eq!(
        (v["public_viewing"].as_bool(), v["name"].as_str()),
        (Some(true), Some("Demo School"))
    );

    // users: bad input is a clear 400/409 and creates nothing
    for (body, want) in [
        (
            json!({ "email": "x", "display_name": "X", "role": "student", "password": PW }),
            "invalid_email",
        ),
        (
            json!({ "email": "x@demo.test", "display_name": "X", "role": "public", "password": PW }),
            "invalid_role",
        ),
        (
            json!({ "email": "x@demo.test", "display_name": "X", "role": "student", "password": "short" }),
            "weak_password",
        ),
        (
            json!({ "email": "x@demo.test", "display_name": "", "role": "student", "password": PW }),
            "invalid_display_name",
        ),
        (
            json!({ "email": "STUDENT1@demo.test", "display_name": "X", "role": "student", "password": PW }),
            "email_taken",
        ),
    ] {
        let (s, v) = call(&c.app, "POST", "/users", Some(&c.admin), Some(body)).await;
        assert_eq!(code(&v), want, "{s} {v}");
    }
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM users WHERE email = 'x@demo.test'")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(n, 0);
    // another tenant's user is as absent as none
    let (s, _) = call(
        &c.app,
        "PATCH",
        &format!("/users/{}", c.foreign_student_id),
        Some(&c.admin),
        Some(json!({ "display_name": "Mine now" })),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // an admin keeps their own access
    let (_, me) = call(&c.app, "GET", "/me", Some(&c.admin), None).await;
    let admin_id = me["user_id"]
        .as_str()
        .or(me["id"].as_str())
        .unwrap()
        .to_owned();
    let (s, v) = call(
        &c.app,
        "PATCH",
        &format!("/users/{admin_id}"),
        Some(&c.admin),
        Some(json!({ "disabled": true })),
    )
    .await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "own_access"));
    let (s, _) = call(
        &c.app,
        "PATCH",
        &format!("/users/{}", c.loner_id),
        Some(&c.teacher),
        Some(json!({ "role": "admin" })),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = call(
        &c.app,
        "PATCH",
        &format!("/users/{}", c.loner_id),
        Some(&c.admin),
        Some(json!({ "role": "teacher", "display_name": "Lone Ranger" })),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["role"].as_str(), v["display_name"].as_str()),
        (Some("teacher"), Some("Lone Ranger"))
    );
    assert!(
        v.get("password").is_none() && v.get("password_hash").is_none(),
        "{v}"
    );

    // every change above is in the audit log, readable with filters
    let (_, audit) = call(&c.app, "GET", "/audit?limit=500", Some(&c.admin), None).await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for want in [
        "user.created",
        "user.updated",
        "course.member_added",
        "course.member_removed",
        "course.member_changed",
        "tenant.settings_changed",
        "lesson.created",
    ] {
        assert!(actions.contains(&want), "{want} missing from {actions:?}");
    }
    let (_, only) = call(
        &c.app,
        "GET",
        &format!("/audit?action=user.updated&actor={admin_id}"),
        Some(&c.admin),
        None,
    )
    .await;
    let entries = only["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{only}");
    assert_eq!(entries[0]["target_id"], c.loner_id.as_str());
    assert_eq!(entries[0]["details"]["role"]["to"], "teacher");
    assert_eq!(entries[0]["actor_email"], "admin@demo.test");
    let (_, none) = call(
        &c.app,
        "GET",
        "/audit?from=2099-01-01T00:00:00Z",
        Some(&c.admin),
        None,
    )
    .await;
    assert!(none["entries"].as_array().unwrap().is_empty());
    let (_, page) = call(&c.app, "GET", "/audit?limit=2", Some(&c.admin), None).await;
    let next = page["next_before"].as_i64().expect("a next page");
    let (_, page2) = call(
        &c.app,
        "GET",
        &format!("/audit?limit=2&before={next}"),
        Some(&c.admin),
        None,
    )
    .await;
    assert!(page2["entries"][0]["id"].as_i64().unwrap() < next);
    // the other tenant's log holds none of it
    let (n,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM audit_log a JOIN tenants t ON t.id = a.tenant_id
          WHERE t.slug = 'other' AND a.action <> 'auth.login'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(n, 0);
}

#[sqlx::test(migrator = "classroom_core::db::MIGRATOR")]
async fn a_disabled_user_is_out_at_once(db: PgPool) {
    let c = cast(&db).await;
    let (_, refresh) = login(&c.app, "loner@demo.test", PW).await;
    let (s, v) = call(
        &c.app,
        "PATCH",
        &format!("/users/{}", c.loner_id),
        Some(&c.admin),
        Some(json!({ "disabled": true })),
    )
    .await;
    assert_eq!(
        (s, v["disabled"].as_bool()),
        (StatusCode::OK, Some(true)),
        "{v}"
    );
    // both of their refresh tokens died with the change
    for token in [refresh] {
        let (s, v) = call(
            &c.app,
            "POST",
            "/auth/refresh",
            None,
            Some(json!({ "refresh_token": token })),
        )
        .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    }
    let (live,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM refresh_tokens WHERE user_id = $1::uuid AND revoked_at IS NULL",
    )
    .bind(&c.loner_id)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(live, 0);
    let (s, v) = call(
        &c.app,
        "POST",
        "/auth/login",
        None,
        Some(json!({ "email": "loner@demo.test", "password": PW })),
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNAUTHORIZED, "account_disabled")
    );
    let (_, audit) = call(
        &c.app,
        "GET",
        "/audit?action=user.updated",
        Some(&c.admin),
        None,
    )
    .await;
    assert_eq!(
        audit["entries"][0]["details"]["disabled"]["to"], true,
        "{audit}"
    );
    assert!(
        audit["entries"][0]["details"]["refresh_tokens_revoked"].as_u64() >= Some(2),
        "{audit}"
    );
    // enabled again: a fresh login works
    let (s, _) = call(
        &c.app,
        "PATCH",
        &format!("/users/{}", c.loner_id),
        Some(&c.admin),
        Some(json!({ "disabled": false })),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    login(&c.app, "loner@demo.test", PW).await;
    let _ = &c.loner;
}

#[sqlx::test(migrator = "classroom_core::db::MIGRATOR")]
async fn csv_imports_report_every_bad_line(db: PgPool) {
    let c = cast(&db).await;
    let csv = "email,display_name,role\n\
               new1@demo.test,New One,student\n\
               bad-email,Nope,student\n\
               new2@demo.test,New Two,dean\n\
               student1@demo.test,Already Here,student\n\
               new3@demo.test,\"Three, Jr.\",Teacher\n\
               new4@demo.test,Short\n";
    let (s, v) = send(
        &c.app,
        "POST",
        "/users/import",
        Some(&c.teacher),
        "text/csv",
        csv.into(),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, v) = send(
        &c.app,
        "POST",
        "/users/import",
        Some(&c.admin),
        "application/json",
        csv.into(),
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "unsupported_content_type")
    );
    let (s, v) = send(
        &c.app,
        "POST",
        "/users/import",
        Some(&c.admin),
        "text/csv",
        "name,mail\nx,y\n".into(),
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "invalid_csv_header")
    );
    let (s, v) = send(
        &c.app,
        "POST",
        "/users/import",
        Some(&c.admin),
        "text/csv",
        csv.into(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let lines = |k: &str| -> Vec<u64> {
        v[k].as_array()
            .unwrap()
            .iter()
            .map(|e| e["line"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(lines("created"), [2, 6]);
    assert_eq!(lines("skipped"), [5]);
    assert_eq!(lines("errors"), [3, 4, 7]);
    let (_, users) = call(&c.app, "GET", "/users?q=new", Some(&c.admin), None).await;
    let got: Vec<(&str, &str)> = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["email"].as_str().unwrap(), u["role"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        [("new1@demo.test", "student"), ("new3@demo.test", "teacher")]
    );
    // an imported account has no password until an admin sets one
    let (s, v) = call(
        &c.app,
        "POST",
        "/auth/login",
        None,
        Some(json!({ "email": "new1@demo.test", "password": "!no-password" })),
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNAUTHORIZED, "invalid_credentials")
    );
    let (n,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM audit_log WHERE action IN ('user.created', 'user.import')",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(
        n,
        2 + 2 + 1,
        "two from the cast, two imported, one import row"
    );

    // a course roster upload, by the course's teacher
    let roster = "email,role\nnew1@demo.test,student\nnobody@demo.test,student\nnew3@demo.test,assistant\nnew1@demo.test,student\n";
    let path = format!("/courses/{}/members/import", c.course);
    let (s, _) = send(
        &c.app,
        "POST",
        &path,
        Some(&c.other_teacher),
        "text/csv",
        roster.into(),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = send(
        &c.app,
        "POST",
        &path,
        Some(&c.teacher),
        "text/csv",
        roster.into(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let enrolled: Vec<u64> = v["enrolled"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["line"].as_u64().unwrap())
        .collect();
    let errors: Vec<u64> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["line"].as_u64().unwrap())
        .collect();
    assert_eq!((enrolled, errors), (vec![2, 4], vec![3, 5]), "{v}");
}

/// Input PostgreSQL cannot store (a NUL in text, a date before its range)
/// is refused with a 400 before it reaches the database, and changes
/// nothing (these were 500s the fuzz run found).
#[sqlx::test(migrator = "classroom_core::db::MIGRATOR")]
async fn input_the_database_cannot_hold_is_refused_first(db: PgPool) {
    let c = cast(&db).await;
    let count = |sql: &'static str| {
        let db = db.clone();
        async move {
            let (n,): (i64,) = sqlx::query_as(sql).fetch_one(&db).await.unwrap();
            n
        }
    };
    let courses = count("SELECT count(*) FROM courses").await;
    let (s, v) = call(
        &c.app,
        "POST",
        "/courses",
        Some(&c.teacher),
        Some(json!({ "title": "nul \u{0} inside" })),
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "invalid_body"),
        "{v}"
    );
    assert_eq!(count("SELECT count(*) FROM courses").await, courses);

    let (s, v) = call(&c.app, "GET", "/users?email=a%00b", Some(&c.admin), None).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "invalid_query"),
        "{v}"
    );

    let (s, lesson) = call(
        &c.app,
        "POST",
        "/lessons",
        Some(&c.teacher),
        Some(json!({ "course_id": c.course, "title": "Cells" })),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{lesson}");
    let runs = count("SELECT count(*) FROM lesson_runs").await;
    let (s, v) = call(
        &c.app,
        "POST",
        "/lesson-runs",
        Some(&c.teacher),
        Some(json!({ "lesson_id": lesson["id"], "scheduled_start": "-5000-01-01T00:00:00Z" })),
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "invalid_scheduled_start"),
        "{v}"
    );
    assert_eq!(count("SELECT count(*) FROM lesson_runs").await, runs);

    let (s, v) = send(
        &c.app,
        "POST",
        "/users/import",
        Some(&c.admin),
        "text/csv",
        "email,display_name,role\nx@demo.test,X\u{0},student\n".into(),
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "invalid_body"),
        "{v}"
    );
}
