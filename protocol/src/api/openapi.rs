//! The OpenAPI description of the class command routes, shared by core's
//! document and the edge's: one operation per [`super::CLASS_ROUTES`] row,
//! made from the row (its body type, its answer), so a route cannot be
//! served without being described.

use std::collections::BTreeMap;

use utoipa::ToSchema;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, Paths};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, RefBuilder, Schema};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, OpenApi, OpenApiBuilder, Ref, RefOr, Required,
    ResponseBuilder,
};

use super::{Answer, ApiErrorBody, CLASS_ROUTES, ClassRoute, schema_of};
use crate::event::PollResult;
use crate::ids::{PollId, Seq};

/// Every error status a class command route can answer, on core or on the
/// edge, with what it means there. Bodies are [`ApiErrorBody`].
pub const CLASS_ERRORS: &[(u16, &str)] = &[
    (
        400,
        "Invalid input: a body that is not JSON or not of this route's schema \
         (`invalid_body`, `unsupported_content_type`), an id in the path that is not \
         a UUID (`invalid_id`), or a command the session refuses as invalid (its own \
         code, e.g. `bad_color`)",
    ),
    (401, "No token, or a bad or expired one"),
    (
        403,
        "Not allowed: the caller lacks a permission (`missing_permission` names it), \
         has no seat in the class (`not_joined`), was removed, the room is locked; \
         on the edge also a join token for another session (`wrong_session`)",
    ),
    (
        404,
        "The session (on the edge: not live here), the deck, or what the path names \
         does not exist (`session_not_found`, `deck_not_found`, `poll_not_found`, ...)",
    ),
    (
        409,
        "Conflicts with the session's state: the class has ended (`session_ended`), \
         the poll is closed (`poll_closed`), ...",
    ),
    (413, "The body is larger than 64 KiB (`payload_too_large`)"),
    (
        429,
        "Too many commands from this participant (the edge's rate limits, \
         `rate_limited`); retry after `Retry-After` seconds",
    ),
    (
        503,
        "Nothing was changed: the class's edge or its event log is unreachable \
         (`edge_unreachable`, `event_log_unavailable`), the session's writer stopped, \
         or the edge has not loaded the token keys yet (`keys_unavailable`)",
    ),
];

/// The operationId of a class route, from its path: `class_chat`,
/// `class_chat_delete`, `class_questions_upvote`, ...
pub fn operation_id(route: &ClassRoute) -> String {
    let mut id = String::from("class");
    for seg in route.path.split('/').skip(3) {
        if seg.starts_with('{') {
            continue;
        }
        id.push('_');
        id.push_str(&seg.replace('-', "_"));
    }
    if route.method != "POST" {
        id.push('_');
        id.push_str(&route.method.to_ascii_lowercase());
    }
    id
}

fn param_description(name: &str) -> &'static str {
    match name {
        "id" => "The session",
        "message_id" => "The chat message",
        "question_id" => "The question",
        "poll_id" => "The poll",
        "cta_id" => "The call to action",
        _ => "An id",
    }
}

fn uuid() -> ObjectBuilder {
    use utoipa::openapi::schema::{KnownFormat, SchemaFormat, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
}

fn schema_ref<T: ToSchema>() -> Ref {
    Ref::from_schema_name(T::name())
}

/// The 200 answer's schema of a route.
pub fn answer_schema(answer: Answer) -> Schema {
    let seq = ObjectBuilder::new()
        .property(
            "seq",
            RefBuilder::new()
                .ref_location_from_schema_name(Seq::name())
                .description(Some(
                    "The last event the command appended (the log's position when it \
                     changed nothing): the live feed has caught up with the command once it \
                     shows this seq",
                )),
        )
        .required("seq");
    match answer {
        Answer::Seq => seq,
        Answer::Created(name) => seq
            .property("id", uuid().description(Some("The id the command created")))
            .required("id")
            .property(name, uuid().description(Some("The same id, by its name")))
            .required(name),
        Answer::PollResults => seq
            .property("poll_id", schema_ref::<PollId>())
            .required("poll_id")
            .property(
                "results",
                ArrayBuilder::new().items(schema_ref::<PollResult>()),
            )
            .required("results"),
    }
    .into()
}

/// Whether a body schema needs a body: it has required fields (an empty
/// body counts as `{}`).
fn body_required(schema: &RefOr<Schema>) -> bool {
    match schema {
        RefOr::T(Schema::Object(o)) => !o.required.is_empty(),
        _ => true,
    }
}

fn json(schema: impl Into<RefOr<Schema>>) -> utoipa::openapi::Content {
    ContentBuilder::new().schema(Some(schema)).build()
}

/// The class command routes, their bodies and answers; `security` names the
/// security scheme the caller's document defines (core: an access token,
/// the edge: a join token).
pub fn class_routes(security: &str) -> OpenApi {
    let mut schemas: BTreeMap<String, RefOr<Schema>> = BTreeMap::new();
    for (name, schema) in schema_of::<ApiErrorBody>()
        .into_iter()
        .chain(schema_of::<Seq>())
        .chain(schema_of::<PollId>())
        .chain(schema_of::<PollResult>())
    {
        schemas.entry(name).or_insert(schema);
    }
    let mut paths = Paths::new();
    for route in CLASS_ROUTES {
        let body = (route.body)();
        let (body_name, body_schema) = body.first().cloned().expect("a body schema");
        let required = body_required(&body_schema);
        for (name, schema) in body {
            schemas.entry(name).or_insert(schema);
        }
        let answer_name = route.answer.schema_name().into_owned();
        schemas
            .entry(answer_name.clone())
            .or_insert_with(|| answer_schema(route.answer).into());

        let params = route
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| {
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .description(Some(param_description(name)))
                    .schema(Some(uuid()))
                    .build()
            });
        let request_body = RequestBodyBuilder::new()
            .content("application/json", json(Ref::from_schema_name(&body_name)))
            .required(Some(if required {
                Required::True
            } else {
                Required::False
            }))
            .description(Some(if route.method == "POST" {
                "An empty body counts as `{}`"
            } else {
                "Not read: send none (a body, if sent, must be JSON)"
            }))
            .build();
        let mut op = OperationBuilder::new()
            .tag("class")
            .operation_id(Some(operation_id(route)))
            .summary(Some(route.summary))
            .parameters(Some(params))
            .request_body(Some(request_body))
            .security(SecurityRequirement::new::<_, [&str; 0], &str>(security, []))
            .response(
                "200",
                ResponseBuilder::new()
                    .description("Done")
                    .content("application/json", json(Ref::from_schema_name(answer_name))),
            );
        for (status, text) in CLASS_ERRORS {
            op = op.response(
                status.to_string(),
                ResponseBuilder::new()
                    .description(*text)
                    .content("application/json", json(schema_ref::<ApiErrorBody>())),
            );
        }
        let method = match route.method {
            "DELETE" => HttpMethod::Delete,
            _ => HttpMethod::Post,
        };
        paths.add_path_operation(route.path, vec![method], op.build());
    }
    let mut components = ComponentsBuilder::new();
    for (name, schema) in schemas {
        components = components.schema(name, schema);
    }
    OpenApiBuilder::new()
        .paths(paths)
        .components(Some(components.build()))
        .build()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::{Value, json};

    use super::*;
    use crate::api::{Built, InputError, answer, build};
    use crate::event::{Actor, EventBody, PollResult, Source};
    use crate::{Envelope, EventId, SessionId, TenantId};

    fn doc() -> Value {
        serde_json::to_value(class_routes("join_token")).unwrap()
    }

    fn ids_for(path: &str) -> Vec<String> {
        let n = path.matches('{').count().saturating_sub(1);
        (0..n)
            .map(|i| uuid::Uuid::from_u128(100 + i as u128).to_string())
            .collect()
    }

    fn try_build(route: &ClassRoute, body: &Value) -> Result<Built, InputError> {
        let ids = ids_for(route.path);
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        build(route.path, &ids, body, uuid::Uuid::from_u128(9))
    }

    fn body_schema(route: &ClassRoute) -> Value {
        let (_, schema) = (route.body)().remove(0);
        serde_json::to_value(schema).unwrap()
    }

    /// Every row's body schema has an example that `build` accepts; each
    /// required field is really required, and (POST) unknown fields are
    /// refused: the documented schema is the type `build` reads.
    #[test]
    fn every_route_documents_a_body_that_builds() {
        for route in CLASS_ROUTES {
            let schema = body_schema(route);
            let example = schema["examples"][0].clone();
            assert!(
                example.is_object(),
                "{} {}: the body schema has no example: {schema}",
                route.method,
                route.path
            );
            let built = try_build(route, &example);
            assert!(
                built.is_ok(),
                "{} {}: its example {example} does not build: {built:?}",
                route.method,
                route.path
            );
            let required: Vec<String> = schema["required"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect();
            for field in &required {
                let mut without = example.clone();
                without.as_object_mut().unwrap().remove(field);
                assert!(
                    matches!(try_build(route, &without), Err(InputError::Body(_))),
                    "{} {}: `{field}` is documented as required but is not",
                    route.method,
                    route.path
                );
            }
            assert_eq!(
                try_build(route, &json!({})).is_ok(),
                required.is_empty(),
                "{} {}: an empty body",
                route.method,
                route.path
            );
            if route.method == "POST" {
                let mut extra = example.clone();
                extra["not_a_field"] = json!(1);
                assert!(
                    matches!(try_build(route, &extra), Err(InputError::Body(_))),
                    "{} {}: an unknown field is accepted, so the body is not {schema}",
                    route.method,
                    route.path
                );
                assert_eq!(schema["additionalProperties"], json!(false));
            }
            // the answer names the id the command creates
            let created = built.unwrap().created.map(|c| c.0);
            let documented = match route.answer {
                Answer::Created(name) => Some(name),
                Answer::Seq | Answer::PollResults => None,
            };
            assert_eq!(created, documented, "{} {}", route.method, route.path);
        }
    }

    fn envelope(body: EventBody) -> Envelope {
        Envelope {
            event_id: EventId::from_uuid(uuid::Uuid::from_u128(1)),
            tenant_id: TenantId::from_uuid(uuid::Uuid::from_u128(2)),
            session_id: SessionId::from_uuid(uuid::Uuid::from_u128(3)),
            seq: Seq(12),
            occurred_at: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            actor: Actor::System,
            source: Source::Core,
            v: crate::EVENT_SCHEMA_VERSION,
            body,
        }
    }

    /// What [`answer`] makes for each row has exactly the documented fields.
    #[test]
    fn answers_match_their_schemas() {
        let doc = doc();
        for route in CLASS_ROUTES {
            let built = try_build(route, &body_schema(route)["examples"][0]).unwrap();
            let events = match route.answer {
                Answer::PollResults => vec![envelope(EventBody::PollClosed {
                    poll_id: PollId::from_uuid(uuid::Uuid::from_u128(100)),
                    results: vec![PollResult {
                        option: 0,
                        label: "a".into(),
                        votes: 1,
                    }],
                })],
                Answer::Seq | Answer::Created(_) => vec![],
            };
            let got = answer(built.created, &events, Seq(11));
            let keys: BTreeSet<&str> = got
                .as_object()
                .unwrap()
                .keys()
                .map(|k| k.as_str())
                .collect();
            let op = if route.method == "DELETE" {
                &doc["paths"][route.path]["delete"]
            } else {
                &doc["paths"][route.path]["post"]
            };
            let r = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
                .as_str()
                .unwrap();
            let schema =
                &doc["components"]["schemas"][r.trim_start_matches("#/components/schemas/")];
            let props: BTreeSet<&str> = schema["properties"]
                .as_object()
                .unwrap()
                .keys()
                .map(|k| k.as_str())
                .collect();
            let required: BTreeSet<&str> = schema["required"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            assert_eq!(keys, props, "{} {}: {got}", route.method, route.path);
            assert_eq!(keys, required, "{} {}", route.method, route.path);
        }
    }

    #[test]
    fn one_operation_per_route_with_unique_ids_params_and_errors() {
        let doc = doc();
        let mut ids = BTreeSet::new();
        for route in CLASS_ROUTES {
            let method = route.method.to_ascii_lowercase();
            let op = &doc["paths"][route.path][method.as_str()];
            assert!(op.is_object(), "{} {} missing", route.method, route.path);
            let id = op["operationId"].as_str().unwrap();
            assert!(ids.insert(id.to_owned()), "operationId {id} twice");
            assert_eq!(op["tags"], json!(["class"]));
            assert_eq!(op["summary"], route.summary);
            assert_eq!(op["security"], json!([{ "join_token": [] }]));
            let params: Vec<&str> = op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            let in_path: Vec<&str> = route
                .path
                .split('/')
                .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
                .collect();
            assert_eq!(params, in_path);
            for (status, _) in CLASS_ERRORS {
                let r = &op["responses"][status.to_string()];
                assert_eq!(
                    r["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ApiErrorBody"
                );
            }
            let body = &op["requestBody"]["content"]["application/json"]["schema"]["$ref"];
            let name = body
                .as_str()
                .unwrap()
                .trim_start_matches("#/components/schemas/");
            assert!(doc["components"]["schemas"][name].is_object(), "{name}");
        }
        assert_eq!(ids.len(), CLASS_ROUTES.len());
        assert!(ids.contains("class_chat_delete"));
        assert!(ids.contains("class_kill_switch"));
    }

    /// Every `$ref` of the document points at one of its components.
    #[test]
    fn no_dangling_refs() {
        fn walk(v: &Value, doc: &Value) {
            match v {
                Value::Object(m) => {
                    if let Some(Value::String(r)) = m.get("$ref") {
                        let ptr = r.trim_start_matches('#');
                        assert!(doc.pointer(ptr).is_some(), "dangling {r}");
                    }
                    m.values().for_each(|x| walk(x, doc));
                }
                Value::Array(a) => a.iter().for_each(|x| walk(x, doc)),
                _ => {}
            }
        }
        let doc = doc();
        walk(&doc, &doc);
    }

    #[test]
    fn the_error_body_round_trips() {
        let e: ApiErrorBody = serde_json::from_value(json!({
            "error": { "code": "missing_permission", "message": "no", "missing_permission": "chat" }
        }))
        .unwrap();
        assert_eq!(e.error.missing_permission, Some(crate::Permission::Chat));
        let plain = json!({ "error": { "code": "x", "message": "y" } });
        let e: ApiErrorBody = serde_json::from_value(plain.clone()).unwrap();
        assert_eq!(serde_json::to_value(e).unwrap(), plain);
    }
}
