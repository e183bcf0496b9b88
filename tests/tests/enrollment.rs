//! Enrollment against the real stack: only a course's roster joins its
//! classes, on core and on the edge's session writer alike; a teacher runs
//! only the classes of the courses they teach; roster changes reach a live
//! class at once.

use std::time::Duration;

use classroom_tests::{Stack, StackOptions};
use protocol::control::{EdgeReply, EdgeRequest};
use protocol::subjects::edge_control_subject;
use protocol::{Actor, Command, EdgeId, ParticipantId, Role, SessionId, UserId};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<no error code>")
}

/// A join sent straight to the edge's session writer, as the platform,
/// bypassing core's own check: what the writer decides on its own.
async fn join_at_edge(
    nats: &async_nats::Client,
    edge: &str,
    session: &str,
    user: &str,
) -> EdgeReply {
    let user: UserId = user.parse().unwrap();
    let req = EdgeRequest::Command {
        session_id: session.parse::<SessionId>().unwrap(),
        actor: Actor::System,
        command: Command::Join {
            participant_id: ParticipantId::from_uuid(uuid::Uuid::now_v7()),
            user_id: Some(user),
            role: Role::Student,
            display_name: "Straight to the edge".into(),
            edge_id: EdgeId::new(edge.to_owned()).unwrap(),
        },
    };
    let subject = edge_control_subject(&EdgeId::new(edge.to_owned()).unwrap());
    let msg = tokio::time::timeout(
        Duration::from_secs(10),
        nats.request(subject, serde_json::to_vec(&req).unwrap().into()),
    )
    .await
    .expect("the edge answers in time")
    .expect("the edge answers");
    serde_json::from_slice(&msg.payload).unwrap()
}

fn rejected_code(r: &EdgeReply) -> Option<&str> {
    match r {
        EdgeReply::Rejected { rejection } => Some(rejection.code.as_str()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_roster_joins_and_only_its_teachers_run_the_class() {
    let stack = Stack::start(StackOptions::default()).await.unwrap();
    let api = &stack.api;
    let admin = api.login("admin@demo.test").await.unwrap();
    let teacher = api.login("teacher@demo.test").await.unwrap();
    let student1 = api.login("student1@demo.test").await.unwrap();
    let student2 = api.login("student2@demo.test").await.unwrap();
    let s1 = stack
        .api
        .user_id(&admin, "student1@demo.test")
        .await
        .unwrap();
    let s2 = stack
        .api
        .user_id(&admin, "student2@demo.test")
        .await
        .unwrap();
    let nats = stack.hub.client().await.unwrap();

    // a second teacher of the tenant, who does not teach this course
    let (s, v) = api
        .post(
            "/users",
            &admin,
            json!({ "email": "teacher2@demo.test", "display_name": "Tom Two",
                    "role": "teacher", "password": classroom_tests::stack::PASSWORD }),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let teacher2 = api.login("teacher2@demo.test").await.unwrap();

    // a course with only student1 on its roster
    let (_, course) = api
        .post("/courses", &teacher, json!({ "title": "Optics" }))
        .await
        .unwrap();
    let cid = course["id"].as_str().unwrap();
    let (s, v) = api
        .post(
            &format!("/courses/{cid}/members"),
            &teacher,
            json!({ "user_id": s1, "role": "student" }),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (_, lesson) = api
        .post(
            "/lessons",
            &teacher,
            json!({ "course_id": cid, "title": "Lenses" }),
        )
        .await
        .unwrap();
    // the other teacher can neither plan nor start the course's classes
    let (s, v) = api
        .post(
            "/lessons",
            &teacher2,
            json!({ "course_id": cid, "title": "Mine" }),
        )
        .await
        .unwrap();
    assert_eq!(
        (s, code(&v)),
        (StatusCode::FORBIDDEN, "not_course_teacher"),
        "{v}"
    );
    let (_, run) = api
        .post(
            "/lesson-runs",
            &teacher,
            json!({ "lesson_id": lesson["id"] }),
        )
        .await
        .unwrap();
    let rid = run["id"].as_str().unwrap();
    let (s, v) = api
        .post(
            "/sessions/start",
            &teacher2,
            json!({ "lesson_run_id": rid }),
        )
        .await
        .unwrap();
    assert_eq!(
        (s, code(&v)),
        (StatusCode::FORBIDDEN, "not_course_teacher"),
        "{v}"
    );
    let session = api.start(&teacher, rid).await.unwrap();
    let sid = session.id.clone();

    // on core: the enrolled student joins, the other is refused and nothing
    // is appended for them
    api.join(&student1, &sid).await.unwrap();
    let before = api.events(&teacher, &sid).await.unwrap().len();
    let (s, v) = api
        .post(&format!("/sessions/{sid}/join"), &student2, json!({}))
        .await
        .unwrap();
    assert_eq!(
        (s, code(&v)),
        (StatusCode::FORBIDDEN, "not_enrolled"),
        "{v}"
    );
    // the other teacher cannot join or end it either (the writer's check)
    let (s, v) = api
        .post(&format!("/sessions/{sid}/join"), &teacher2, json!({}))
        .await
        .unwrap();
    assert_eq!(
        (s, code(&v)),
        (StatusCode::FORBIDDEN, "not_enrolled"),
        "{v}"
    );
    let (s, v) = api
        .post(&format!("/sessions/{sid}/end"), &teacher2, json!({}))
        .await
        .unwrap();
    assert_eq!(
        (s, code(&v)),
        (StatusCode::FORBIDDEN, "not_course_staff"),
        "{v}"
    );
    let after = api.events(&teacher, &sid).await.unwrap();
    assert_eq!(after.len(), before, "a refused join appends nothing");
    // the roster is in the log for staff (core sent it at the start)
    assert!(
        after.iter().any(|e| e["type"] == "roster.set"),
        "roster.set logged"
    );

    // on the edge: the writer refuses a join core never checked
    let r = join_at_edge(&nats, &session.edge_id, &sid, &s2).await;
    assert_eq!(rejected_code(&r), Some("not_enrolled"), "{r:?}");

    // enrolling student2 mid-class reaches the writer: now both paths admit
    let (s, v) = api
        .post(
            &format!("/courses/{cid}/members"),
            &teacher,
            json!({ "email": "student2@demo.test", "role": "student" }),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let r = join_at_edge(&nats, &session.edge_id, &sid, &s2).await;
    assert!(matches!(r, EdgeReply::Done { .. }), "{r:?}");
    let joined = api.join(&student2, &sid).await.unwrap();
    assert_eq!(joined.body["role"], "student");

    // taking student1 off the roster: the writer refuses their next join
    let (s, _) = api
        .delete(&format!("/courses/{cid}/members/{s1}"), &teacher)
        .await
        .unwrap();
    assert_eq!(s, StatusCode::NO_CONTENT);
    let r = join_at_edge(&nats, &session.edge_id, &sid, &s1).await;
    assert_eq!(rejected_code(&r), Some("not_enrolled"), "{r:?}");
    let (s, v) = api
        .post(&format!("/sessions/{sid}/join"), &student1, json!({}))
        .await
        .unwrap();
    assert_eq!(
        (s, code(&v)),
        (StatusCode::FORBIDDEN, "not_enrolled"),
        "{v}"
    );

    // an assistant of the course joins as assistant whatever their tenant
    // role (a student of the tenant here)
    let (s, v) = api
        .post(
            &format!("/courses/{cid}/members"),
            &teacher,
            json!({ "email": "student3@demo.test", "role": "assistant" }),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let student3 = api.login("student3@demo.test").await.unwrap();
    let j = api.join(&student3, &sid).await.unwrap();
    assert_eq!(j.body["role"], "assistant", "{}", j.body);
    assert!(
        j.body["permissions"]
            .as_array()
            .unwrap()
            .contains(&json!("moderate")),
        "{}",
        j.body
    );
    // student1 back on the roster: their seat is theirs again
    let (s, v) = api
        .post(
            &format!("/courses/{cid}/members"),
            &teacher,
            json!({ "user_id": s1, "role": "student" }),
        )
        .await
        .unwrap();
    assert_eq!(s, StatusCode::CREATED, "{v}");
    api.join(&student1, &sid).await.unwrap();

    // an admin joins any class of the tenant; the roster's owner ends it
    api.join(&admin, &sid).await.unwrap();
    let (s, v) = api
        .post(&format!("/sessions/{sid}/end"), &teacher, json!({}))
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");

    // discovery follows the roster: student2 sees the course's session,
    // teacher2 does not
    let (_, mine) = api
        .get(&format!("/sessions?course_id={cid}"), &student2)
        .await
        .unwrap();
    assert_eq!(mine["sessions"].as_array().map(Vec::len), Some(1), "{mine}");
    let (_, theirs) = api
        .get(&format!("/sessions?course_id={cid}"), &teacher2)
        .await
        .unwrap();
    assert_eq!(
        theirs["sessions"].as_array().map(Vec::len),
        Some(0),
        "{theirs}"
    );

    // every roster change is audited
    let (s, audit) = api.get("/audit?action=course.", &admin).await.unwrap();
    assert_eq!(s, StatusCode::OK);
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["target_id"] == cid)
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for want in [
        "course.created",
        "course.member_added",
        "course.member_removed",
    ] {
        assert!(actions.contains(&want), "{want} in {actions:?}");
    }
    assert!(
        actions
            .iter()
            .filter(|a| **a == "course.member_added")
            .count()
            >= 3,
        "{actions:?}"
    );
    stack.shutdown().await;
}
