//! `/openapi.json` is made from the handlers: every route the console and
//! the class pages use is in it with its parameters, body and answers; and
//! every documented operation, called without a token and with an empty
//! body, exists on the router and answers only a status its description
//! lists (the fuzz run in the e2e suite goes further, with generated input).

use std::collections::{BTreeMap, BTreeSet};

use axum::http::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

mod common;
use common::{app, call};

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

async fn document(app: &axum::Router) -> Value {
    let (s, doc) = call(app, "GET", "/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    doc
}

/// (method, path) → operation
fn operations(doc: &Value) -> BTreeMap<(String, String), Value> {
    let mut out = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in METHODS {
            if let Some(op) = item.get(m) {
                out.insert((m.to_owned(), path.clone()), op.clone());
            }
        }
    }
    out
}

fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let ptr = r.trim_start_matches('#');
            doc.pointer(ptr)
                .unwrap_or_else(|| panic!("dangling $ref {r}"))
        }
        None => v,
    }
}

#[sqlx::test(migrator = "classroom_core::db::MIGRATOR")]
async fn the_document_lists_every_route_with_its_schemas(db: PgPool) {
    let app = app(db);
    let doc = document(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let ops = operations(&doc);

    let must = [
        ("get", "/users"),
        ("post", "/users"),
        ("patch", "/users/{id}"),
        ("post", "/users/import"),
        ("get", "/courses/{id}/members"),
        ("post", "/courses/{id}/members"),
        ("post", "/courses/{id}/members/import"),
        ("delete", "/courses/{id}/members/{user_id}"),
        ("get", "/me/classes"),
        ("get", "/sessions"),
        ("get", "/replays"),
        ("get", "/tenant/settings"),
        ("patch", "/tenant/settings"),
        ("get", "/audit"),
        ("post", "/auth/login"),
        ("get", "/courses"),
        ("post", "/sessions/start"),
        ("post", "/sessions/{id}/join"),
        ("get", "/sessions/{id}/events"),
        ("get", "/replays/search"),
        ("get", "/replays/{id}"),
        ("post", "/decks"),
    ];
    for (m, p) in must {
        assert!(ops.contains_key(&(m.into(), p.into())), "{m} {p} missing");
    }
    for r in protocol::api::CLASS_ROUTES {
        let key = (r.method.to_lowercase(), r.path.to_owned());
        assert!(
            ops.contains_key(&key),
            "class route {} {} missing",
            r.method,
            r.path
        );
    }

    let mut ids = BTreeSet::new();
    for ((m, p), op) in &ops {
        let id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{m} {p}: no operationId"));
        assert!(ids.insert(id.to_owned()), "operationId {id} used twice");
        let responses = op["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{m} {p}: no responses"));
        assert!(
            responses
                .keys()
                .any(|s| s.starts_with('2') || s.starts_with('3')),
            "{m} {p}: no success answer"
        );
        // every path parameter is declared
        let declared: BTreeSet<String> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|x| resolve(&doc, x))
            .filter(|x| x["in"] == "path")
            .map(|x| x["name"].as_str().unwrap_or_default().to_owned())
            .collect();
        let in_path: BTreeSet<String> = p
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(str::to_owned)
            .collect();
        assert_eq!(declared, in_path, "{m} {p}: path parameters");
        // a body-taking JSON route says what it takes; JSON answers have schemas
        if ["post", "patch", "put"].contains(&m.as_str())
            && let Some(rb) = op.get("requestBody")
        {
            let content = rb["content"].as_object().expect("request content");
            for (ct, media) in content {
                if ct == "application/json" {
                    assert!(
                        media.get("schema").is_some(),
                        "{m} {p}: body without schema"
                    );
                }
            }
        }
        for (status, resp) in responses {
            let resp = resolve(&doc, resp);
            if let Some(media) = resp["content"].get("application/json") {
                assert!(
                    media.get("schema").is_some(),
                    "{m} {p} {status}: answer without schema"
                );
            }
            if status.starts_with('4') {
                let schema = resolve(&doc, &resp["content"]["application/json"]["schema"]);
                assert!(
                    schema["properties"]["error"].is_object(),
                    "{m} {p} {status}: errors use the api.md body, got {schema}"
                );
            }
        }
        let secured = op["security"].as_array().is_some_and(|s| {
            !s.is_empty()
                && s.iter()
                    .all(|r| r.as_object().is_some_and(|o| !o.is_empty()))
        });
        if secured {
            assert!(responses.contains_key("401"), "{m} {p}: secured but no 401");
        }
    }
    // the query parameters the console pages page and filter with
    let params = |m: &str, p: &str| -> BTreeSet<String> {
        ops[&(m.to_owned(), p.to_owned())]["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|x| x["in"] == "query")
            .map(|x| x["name"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    for q in ["status", "course_id", "limit", "before"] {
        assert!(params("get", "/sessions").contains(q), "/sessions ?{q}");
    }
    for q in ["actor", "action", "from", "to", "limit"] {
        assert!(params("get", "/audit").contains(q), "/audit ?{q}");
    }
    assert!(params("get", "/replays").contains("course_id"));
    assert!(params("get", "/replays/search").contains("q"));
    // the users list answers a schema with the fields the console shows
    let list = &ops[&("get".to_owned(), "/users".to_owned())]["responses"]["200"];
    let schema = resolve(&doc, &list["content"]["application/json"]["schema"]);
    assert!(schema["properties"]["users"].is_object(), "{schema}");
}

#[sqlx::test(migrator = "classroom_core::db::MIGRATOR")]
async fn every_documented_operation_exists_and_answers_only_documented_statuses(db: PgPool) {
    let app = app(db);
    let doc = document(&app).await;
    let session = uuid::Uuid::now_v7();
    let mut walked = 0;
    for ((m, p), op) in operations(&doc) {
        let path: String = p
            .split('/')
            .map(|s| {
                if s.starts_with('{') {
                    // one id for every parameter: the session's; others are
                    // unknown, which is as good for an unauthenticated call
                    session.to_string()
                } else {
                    s.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        let body = ["post", "patch", "put"]
            .contains(&m.as_str())
            .then(|| json!({}));
        let (s, v) = call(&app, &m.to_uppercase(), &path, None, body).await;
        let code = v["error"]["code"].as_str().unwrap_or_default();
        assert!(
            code != "route_not_found" && s != StatusCode::METHOD_NOT_ALLOWED,
            "{m} {p} is documented but not routed: {s} {v}"
        );
        assert!(
            !s.is_server_error() || s == StatusCode::SERVICE_UNAVAILABLE,
            "{m} {p}: {s} {v}"
        );
        let responses = op["responses"].as_object().unwrap();
        assert!(
            responses.contains_key(s.as_str()) || responses.contains_key("default"),
            "{m} {p} answered {s} ({code}), which it does not document ({:?})",
            responses.keys().collect::<Vec<_>>()
        );
        let secured = op["security"].as_array().is_some_and(|s| {
            !s.is_empty()
                && s.iter()
                    .all(|r| r.as_object().is_some_and(|o| !o.is_empty()))
        });
        if secured {
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{m} {p} without a token: {v}");
        }
        walked += 1;
    }
    assert!(walked > 60, "only {walked} operations documented");
}

/// The web app's API client is generated from `web/openapi.json`; it must be
/// this document, so the pages cannot call a route that does not exist.
/// `UPDATE_OPENAPI=1 cargo test -p core --test openapi` rewrites it.
#[test]
fn the_web_client_is_generated_from_this_document() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/openapi.json");
    let now = serde_json::to_string_pretty(&classroom_core::openapi::spec()).unwrap() + "\n";
    if std::env::var("UPDATE_OPENAPI").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &now).unwrap();
    }
    let kept = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        kept == now,
        "web/openapi.json is not core's document: run UPDATE_OPENAPI=1 cargo test -p core --test openapi, then npm run gen in web/"
    );
}
