//! Core's signing key rotates with overlap (`core rotate-keys`): the JWKS
//! carries the new key and the retired one; tokens signed before the
//! rotation keep working until the next one; an edge that meets a token of
//! a key it does not know fetches the JWKS again at once and accepts it.

use classroom_tests::{Stack, StackOptions};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn kid(token: &str) -> String {
    jsonwebtoken::decode_header(token)
        .unwrap()
        .kid
        .expect("a kid")
}

async fn jwks_kids(stack: &Stack) -> Vec<String> {
    let v: Value = reqwest::get(format!("{}/.well-known/jwks.json", stack.core_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

async fn rotate(stack: &mut Stack) -> Value {
    stack.kill_core().await;
    let out = stack
        .core_command(&["rotate-keys".to_owned()])
        .await
        .unwrap();
    stack.restart_core().await.unwrap();
    serde_json::from_str(out.trim()).unwrap()
}

/// A chat straight at the edge with a join token: the edge's status.
async fn chat_at_edge(http: &reqwest::Client, edge_url: &str, session: &str, token: &str) -> u16 {
    http.post(format!("{edge_url}/sessions/{session}/chat"))
        .bearer_auth(token)
        .json(&json!({ "text": "still here" }))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_with_overlap_and_edges_learn_the_new_key() {
    let mut stack = Stack::start(StackOptions::default()).await.unwrap();
    let http = reqwest::Client::new();
    let teacher = stack.api.login("teacher@demo.test").await.unwrap();
    let student = stack.api.login("student1@demo.test").await.unwrap();
    let class = stack.api.start_class(&teacher).await.unwrap();
    let first = stack.api.join(&student, &class.id).await.unwrap();
    let kid1 = kid(&first.join_token);
    assert_eq!(jwks_kids(&stack).await, vec![kid1.clone()]);
    assert_eq!(
        chat_at_edge(&http, &first.edge_url, &class.id, &first.join_token).await,
        200
    );

    // first rotation: a new key signs, the old one still verifies
    let r = rotate(&mut stack).await;
    let kid2 = r["kid"].as_str().unwrap().to_owned();
    assert_eq!(r["retired"], kid1.as_str(), "{r}");
    assert_eq!(jwks_kids(&stack).await, vec![kid2.clone(), kid1.clone()]);
    let (s, me) = stack.api.get("/me", &student).await.unwrap();
    assert_eq!(s, StatusCode::OK, "an access token of the old key: {me}");
    let student2 = stack.api.login("student1@demo.test").await.unwrap();
    assert_eq!(kid(&student2), kid2, "new tokens carry the new key");
    let second = stack.api.join(&student2, &class.id).await.unwrap();
    assert_eq!(kid(&second.join_token), kid2);
    // the edge had only kid1: it fetches the JWKS again and accepts kid2
    assert_eq!(
        chat_at_edge(&http, &second.edge_url, &class.id, &second.join_token).await,
        200
    );
    assert_eq!(
        chat_at_edge(&http, &first.edge_url, &class.id, &first.join_token).await,
        200,
        "a join token of the retired key keeps working"
    );

    // second rotation: kid1 is gone everywhere
    let r = rotate(&mut stack).await;
    let kid3 = r["kid"].as_str().unwrap().to_owned();
    assert_eq!(jwks_kids(&stack).await, vec![kid3.clone(), kid2.clone()]);
    let (s, v) = stack.api.get("/me", &student).await.unwrap();
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    let (s, _) = stack.api.get("/me", &student2).await.unwrap();
    assert_eq!(s, StatusCode::OK);
    let student3 = stack.api.login("student1@demo.test").await.unwrap();
    let third = stack.api.join(&student3, &class.id).await.unwrap();
    assert_eq!(kid(&third.join_token), kid3);
    assert_eq!(
        chat_at_edge(&http, &third.edge_url, &class.id, &third.join_token).await,
        200
    );
    assert_eq!(
        chat_at_edge(&http, &second.edge_url, &class.id, &second.join_token).await,
        200
    );
    assert_eq!(
        chat_at_edge(&http, &first.edge_url, &class.id, &first.join_token).await,
        401,
        "a join token of a key two rotations old is refused"
    );
}
