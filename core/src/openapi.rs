//! The OpenAPI 3.1 description of the HTTP API, served at `/openapi.json`.
//! Built from one table so every route is listed with its body and answers.

use axum::Json;
use serde_json::{Map, Value, json};

struct Op {
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    auth: bool,
    body: Option<Value>,
    ok: u16,
    errors: &'static [u16],
}

fn obj(required: &[&str], props: Value) -> Value {
    json!({ "type": "object", "required": required, "properties": props })
}

fn uuid() -> Value {
    json!({ "type": "string", "format": "uuid" })
}

fn ops() -> Vec<Op> {
    let s = |t: &str| json!({ "type": t });
    let perms = json!({ "type": "array", "items": { "$ref": "#/components/schemas/Permission" } });
    vec![
        Op {
            method: "get",
            path: "/healthz",
            summary: "Liveness and dependencies",
            auth: false,
            body: None,
            ok: 200,
            errors: &[503],
        },
        Op {
            method: "get",
            path: "/.well-known/jwks.json",
            summary: "Public keys that verify access and join tokens",
            auth: false,
            body: None,
            ok: 200,
            errors: &[],
        },
        Op {
            method: "get",
            path: "/openapi.json",
            summary: "This document",
            auth: false,
            body: None,
            ok: 200,
            errors: &[],
        },
        Op {
            method: "post",
            path: "/auth/login",
            summary: "Log in with email and password",
            auth: false,
            body: Some(obj(
                &["email", "password"],
                json!({ "email": s("string"), "password": s("string"), "tenant": s("string") }),
            )),
            ok: 200,
            errors: &[400, 401, 413],
        },
        Op {
            method: "post",
            path: "/auth/refresh",
            summary: "Rotate a refresh token; reuse revokes its family",
            auth: false,
            body: Some(obj(
                &["refresh_token"],
                json!({ "refresh_token": s("string") }),
            )),
            ok: 200,
            errors: &[400, 401],
        },
        Op {
            method: "post",
            path: "/auth/logout",
            summary: "Revoke the refresh token's family",
            auth: false,
            body: Some(obj(
                &["refresh_token"],
                json!({ "refresh_token": s("string") }),
            )),
            ok: 204,
            errors: &[400],
        },
        Op {
            method: "get",
            path: "/me",
            summary: "The caller",
            auth: true,
            body: None,
            ok: 200,
            errors: &[401],
        },
        Op {
            method: "post",
            path: "/courses",
            summary: "Create a course (teacher, admin)",
            auth: true,
            body: Some(obj(&["title"], json!({ "title": s("string") }))),
            ok: 201,
            errors: &[400, 401, 403, 409],
        },
        Op {
            method: "get",
            path: "/courses",
            summary: "List the tenant's courses",
            auth: true,
            body: None,
            ok: 200,
            errors: &[401],
        },
        Op {
            method: "get",
            path: "/courses/{id}",
            summary: "A course and its lessons",
            auth: true,
            body: None,
            ok: 200,
            errors: &[401, 404],
        },
        Op {
            method: "post",
            path: "/lessons",
            summary: "Create a lesson in a course",
            auth: true,
            body: Some(obj(
                &["course_id", "title"],
                json!({ "course_id": uuid(), "title": s("string") }),
            )),
            ok: 201,
            errors: &[400, 401, 403, 404, 409],
        },
        Op {
            method: "post",
            path: "/lesson-runs",
            summary: "Schedule a run of a lesson",
            auth: true,
            body: Some(obj(
                &["lesson_id"],
                json!({ "lesson_id": uuid(), "scheduled_start": { "type": "string", "format": "date-time" }, "edge_id": s("string"), "region": s("string") }),
            )),
            ok: 201,
            errors: &[400, 401, 403, 404, 409],
        },
        Op {
            method: "get",
            path: "/edges",
            summary: "Edges and their health (admin)",
            auth: true,
            body: None,
            ok: 200,
            errors: &[401, 403],
        },
        Op {
            method: "post",
            path: "/sessions/start",
            summary: "Start a class on a healthy edge (idempotent with Idempotency-Key)",
            auth: true,
            body: Some(obj(&["lesson_run_id"], json!({ "lesson_run_id": uuid() }))),
            ok: 201,
            errors: &[400, 401, 403, 404, 409, 503],
        },
        Op {
            method: "post",
            path: "/sessions/{id}/end",
            summary: "End a live class",
            auth: true,
            body: None,
            ok: 200,
            errors: &[401, 403, 404, 409, 503],
        },
        Op {
            method: "get",
            path: "/sessions/{id}/state",
            summary: "The session's reduced state as the caller may see it",
            auth: true,
            body: None,
            ok: 200,
            errors: &[401, 404],
        },
        Op {
            method: "get",
            path: "/sessions/{id}/events",
            summary: "The session's events after ?after=SEQ, in seq order",
            auth: true,
            body: None,
            ok: 200,
            errors: &[400, 401, 404],
        },
        Op {
            method: "post",
            path: "/sessions/{id}/join",
            summary: "Join: a seat and an edge join token",
            auth: true,
            body: Some(obj(
                &[],
                json!({ "edge_id": s("string"), "region": s("string") }),
            )),
            ok: 200,
            errors: &[400, 401, 403, 404, 409, 503],
        },
        Op {
            method: "post",
            path: "/sessions/{id}/leave",
            summary: "Leave the session",
            auth: true,
            body: None,
            ok: 204,
            errors: &[401, 404, 409, 503],
        },
        Op {
            method: "post",
            path: "/sessions/{id}/permissions",
            summary: "Grant or revoke a participant's permissions",
            auth: true,
            body: Some(obj(
                &["participant_id"],
                json!({ "participant_id": uuid(), "grant": perms.clone(), "revoke": perms }),
            )),
            ok: 200,
            errors: &[400, 401, 403, 404, 409, 503],
        },
        Op {
            method: "get",
            path: "/sessions/{id}/recording",
            summary: "The session's recording: status, duration, signed URLs of the joined file, manifest and segments, gaps and alerts",
            auth: true,
            body: None,
            ok: 200,
            errors: &[401, 403, 404],
        },
        Op {
            method: "get",
            path: "/sessions/{id}/recording.mp4",
            summary: "The whole recording as one MP4 (?sig= from /recording; gaps filled with black and silence; Range supported)",
            auth: false,
            body: None,
            ok: 200,
            errors: &[401, 404, 409, 503],
        },
        Op {
            method: "get",
            path: "/objects/{key}",
            summary: "A stored object (recording segment, manifest, raw audio) by signed URL (?sig=; Range supported)",
            auth: false,
            body: None,
            ok: 200,
            errors: &[400, 401, 404],
        },
        Op {
            method: "get",
            path: "/sessions/{id}/artifacts",
            summary: "The artifact pipeline's state: job, stages (attempts, errors, timings), artifacts made",
            auth: true,
            body: None,
            ok: 200,
            errors: &[401, 403, 404],
        },
        Op {
            method: "post",
            path: "/sessions/{id}/artifacts/rerun",
            summary: "Staff: run every stage again (a new version of a model, a fixed bug)",
            auth: true,
            body: None,
            ok: 200,
            errors: &[401, 403, 404, 409],
        },
        Op {
            method: "get",
            path: "/sessions/{id}/transcript",
            summary: "Transcript segments with word timings on the media clock (?format=vtt for WebVTT)",
            auth: true,
            body: None,
            ok: 200,
            errors: &[400, 401, 403, 404, 409],
        },
        Op {
            method: "get",
            path: "/sessions/{id}/chapters",
            summary: "Chapters: start/end ms, title, source event seq",
            auth: true,
            body: None,
            ok: 200,
            errors: &[401, 403, 404, 409],
        },
        Op {
            method: "get",
            path: "/sessions/{id}/highlights",
            summary: "Highlights: answered questions, polls with results, lively moments, calls to action",
            auth: true,
            body: None,
            ok: 200,
            errors: &[401, 403, 404, 409],
        },
        Op {
            method: "get",
            path: "/sessions/{id}/summary",
            summary: "Key terms, outline, counts",
            auth: true,
            body: None,
            ok: 200,
            errors: &[401, 403, 404, 409],
        },
        Op {
            method: "get",
            path: "/sessions/{id}/timeline",
            summary: "Every class event as a marker on the media clock",
            auth: true,
            body: None,
            ok: 200,
            errors: &[401, 403, 404, 409],
        },
        Op {
            method: "post",
            path: "/sessions/{id}/publish",
            summary: "Staff: publish the ended class as a replay (visibility enrolled, tenant or public)",
            auth: true,
            body: Some(obj(
                &[],
                json!({ "visibility": { "type": "string", "enum": ["enrolled", "tenant", "public"] } }),
            )),
            ok: 201,
            errors: &[400, 401, 403, 404, 409],
        },
        Op {
            method: "get",
            path: "/replays/search",
            summary: "Search every replay the caller may open (?q=, course_id, teacher_id, from, to, kind, limit); hits with timestamps",
            auth: true,
            body: None,
            ok: 200,
            errors: &[400, 401],
        },
        Op {
            method: "get",
            path: "/replays/{id}",
            summary: "A replay: media URL, transcript (+WebVTT URL), chapters, highlights, markers, summary (access logged)",
            auth: true,
            body: None,
            ok: 200,
            errors: &[401, 403, 404],
        },
        Op {
            method: "get",
            path: "/replays/{id}/search",
            summary: "Search inside a replay (?q=): hits [{start_ms, end_ms, text, kind}]",
            auth: true,
            body: None,
            ok: 200,
            errors: &[400, 401, 403, 404],
        },
        Op {
            method: "get",
            path: "/replays/{id}/transcript.vtt",
            summary: "The replay's captions as WebVTT (?sig= from the replay)",
            auth: false,
            body: None,
            ok: 200,
            errors: &[401, 404, 409],
        },
        Op {
            method: "get",
            path: "/public/replays/{id}",
            summary: "A public replay by its link (?key=; no account)",
            auth: false,
            body: None,
            ok: 200,
            errors: &[400, 401, 404],
        },
        Op {
            method: "get",
            path: "/public/replays/{id}/search",
            summary: "Search a public replay (?key=&q=)",
            auth: false,
            body: None,
            ok: 200,
            errors: &[400, 401, 404],
        },
        Op {
            method: "post",
            path: "/decks",
            summary: "Upload a PDF deck (application/pdf, ?course_id=): pages rendered, text kept",
            auth: true,
            body: None,
            ok: 201,
            errors: &[400, 401, 403, 404, 413],
        },
        Op {
            method: "get",
            path: "/decks/{id}",
            summary: "A deck: pages with signed image URLs and text",
            auth: true,
            body: None,
            ok: 200,
            errors: &[401, 404],
        },
    ]
}

fn error_text(code: u16) -> &'static str {
    match code {
        400 => "Malformed or invalid input",
        401 => "No or bad token",
        403 => "Authenticated, not allowed",
        404 => "Not found, or in another tenant",
        409 => "Conflicts with the current state",
        413 => "Too large",
        429 => "Rate limited (see Retry-After)",
        503 => "A dependency is down; nothing was changed",
        _ => "Error",
    }
}

/// Required body fields of each class command route.
fn class_body(path: &str) -> Option<Value> {
    let s = |t: &str| json!({ "type": t });
    let (required, props): (&[&str], Value) = match path {
        "/sessions/{id}/scene" => (
            &["scene"],
            json!({ "scene": { "enum": ["camera", "slides", "screen", "whiteboard", "split"] } }),
        ),
        "/sessions/{id}/slides" => (
            &["deck_id", "index"],
            json!({ "deck_id": uuid(), "index": s("integer") }),
        ),
        "/sessions/{id}/layout" => (
            &["layout"],
            json!({ "layout": { "enum": ["speaker", "grid", "pip", "side_by_side"] } }),
        ),
        "/sessions/{id}/whiteboard/strokes" => (
            &["color", "width", "points"],
            json!({ "color": s("string"), "width": s("integer"), "points": { "type": "array" } }),
        ),
        "/sessions/{id}/chat" | "/sessions/{id}/questions" | "/sessions/{id}/notes" => {
            (&["text"], json!({ "text": s("string") }))
        }
        "/sessions/{id}/questions/{question_id}/answer" => (&[], json!({ "text": s("string") })),
        "/sessions/{id}/polls" => (
            &["question", "options"],
            json!({ "question": s("string"), "options": { "type": "array", "items": s("string") }, "correct_option": s("integer") }),
        ),
        "/sessions/{id}/polls/{poll_id}/vote" => (&["option"], json!({ "option": s("integer") })),
        "/sessions/{id}/hands/lower" => (&[], json!({ "participant_id": uuid() })),
        "/sessions/{id}/ctas" => (
            &["url", "label"],
            json!({ "url": s("string"), "label": s("string") }),
        ),
        "/sessions/{id}/consent" => (&["recording"], json!({ "recording": s("boolean") })),
        "/sessions/{id}/mute" => (
            &["participant_id", "media"],
            json!({ "participant_id": uuid(), "media": { "enum": ["audio", "video"] } }),
        ),
        "/sessions/{id}/remove" => (&["participant_id"], json!({ "participant_id": uuid() })),
        "/sessions/{id}/lock" => (&["locked"], json!({ "locked": s("boolean") })),
        "/sessions/{id}/exam-mode" => (&["enabled"], json!({ "enabled": s("boolean") })),
        "/sessions/{id}/kill-switch" => (
            &["switch", "engaged"],
            json!({ "switch": { "type": "object" }, "engaged": s("boolean") }),
        ),
        _ => return None,
    };
    Some(obj(required, props))
}

pub fn spec() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    let mut all = ops();
    for r in protocol::api::CLASS_ROUTES {
        all.push(Op {
            method: if r.method == "DELETE" {
                "delete"
            } else {
                "post"
            },
            path: r.path,
            summary: r.summary,
            auth: true,
            body: class_body(r.path),
            ok: 200,
            errors: &[400, 401, 403, 404, 409, 429, 503],
        });
    }
    for op in all {
        let mut responses = Map::new();
        responses.insert(op.ok.to_string(), json!({ "description": "Success" }));
        for e in op.errors {
            responses.insert(
                e.to_string(),
                json!({ "description": error_text(*e), "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }),
            );
        }
        let mut o = json!({ "summary": op.summary, "responses": responses });
        if op.auth {
            o["security"] = json!([{ "bearer": [] }]);
        }
        if let Some(body) = op.body {
            o["requestBody"] =
                json!({ "required": true, "content": { "application/json": { "schema": body } } });
        }
        let params: Vec<Value> = op
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": uuid() }))
            .collect();
        if !params.is_empty() {
            o["parameters"] = json!(params);
        }
        if op.method == "post" && op.ok == 201 {
            let mut p = o["parameters"].as_array().cloned().unwrap_or_default();
            p.push(json!({ "name": "Idempotency-Key", "in": "header", "required": false, "schema": { "type": "string" } }));
            o["parameters"] = json!(p);
        }
        paths
            .entry(op.path.to_owned())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .map(|m| m.insert(op.method.to_owned(), o));
    }
    let permissions: Vec<&str> = protocol::Permission::ALL
        .iter()
        .map(|p| p.as_str())
        .collect();
    json!({
        "openapi": "3.1.0",
        "info": { "title": "Classroom core API", "version": env!("CARGO_PKG_VERSION") },
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" } },
            "schemas": {
                "Error": obj(&["error"], json!({ "error": obj(&["code", "message"], json!({
                    "code": { "type": "string" }, "message": { "type": "string" }, "missing_permission": { "type": "string" } })) })),
                "Permission": { "type": "string", "enum": permissions },
            }
        }
    })
}

pub async fn document() -> Json<Value> {
    Json(spec())
}
