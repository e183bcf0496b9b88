//! A thin HTTP client for core's and the edges' APIs.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::stack::PASSWORD;

#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
}

/// A started session, as `POST /sessions/start` described it.
#[derive(Clone, Debug)]
pub struct Session {
    pub id: String,
    pub edge_id: String,
    pub edge_url: String,
    pub lesson_run_id: String,
}

/// What `POST /sessions/{id}/join` returned.
#[derive(Clone, Debug)]
pub struct Joined {
    pub participant_id: String,
    pub join_token: String,
    pub edge_url: String,
    pub body: Value,
}

impl Api {
    pub fn new(base: String) -> Api {
        Self::with_client(base, reqwest::Client::new())
    }

    /// With `http` (e.g. one trusting the stack's dev CA).
    pub fn with_client(base: String, http: reqwest::Client) -> Api {
        Api { http, base }
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{}", self.base, path)
        }
    }

    async fn finish(resp: reqwest::Response) -> anyhow::Result<(StatusCode, Value)> {
        let status = resp.status();
        let text = resp.text().await?;
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok((status, v))
    }

    pub async fn get(&self, path: &str, token: &str) -> anyhow::Result<(StatusCode, Value)> {
        Self::finish(
            self.http
                .get(self.url(path))
                .bearer_auth(token)
                .send()
                .await?,
        )
        .await
    }

    pub async fn post(
        &self,
        path: &str,
        token: &str,
        body: Value,
    ) -> anyhow::Result<(StatusCode, Value)> {
        Self::finish(
            self.http
                .post(self.url(path))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await?,
        )
        .await
    }

    pub async fn patch(
        &self,
        path: &str,
        token: &str,
        body: Value,
    ) -> anyhow::Result<(StatusCode, Value)> {
        self.send(reqwest::Method::PATCH, path, token, body).await
    }

    pub async fn put(
        &self,
        path: &str,
        token: &str,
        body: Value,
    ) -> anyhow::Result<(StatusCode, Value)> {
        self.send(reqwest::Method::PUT, path, token, body).await
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Value,
    ) -> anyhow::Result<(StatusCode, Value)> {
        Self::finish(
            self.http
                .request(method, self.url(path))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await?,
        )
        .await
    }

    pub async fn post_with_key(
        &self,
        path: &str,
        token: &str,
        key: &str,
        body: Value,
    ) -> anyhow::Result<(StatusCode, Value)> {
        Self::finish(
            self.http
                .post(self.url(path))
                .bearer_auth(token)
                .header("Idempotency-Key", key)
                .json(&body)
                .send()
                .await?,
        )
        .await
    }

    pub async fn post_raw(
        &self,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let mut req = self
            .http
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        Self::finish(req.send().await?).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> anyhow::Result<(StatusCode, Value)> {
        Self::finish(
            self.http
                .delete(self.url(path))
                .bearer_auth(token)
                .send()
                .await?,
        )
        .await
    }

    pub async fn login_full(&self, email: &str) -> anyhow::Result<Value> {
        let resp = self
            .http
            .post(self.url("/auth/login"))
            .json(&json!({ "email": email, "password": PASSWORD }))
            .send()
            .await?;
        let (status, v) = Self::finish(resp).await?;
        anyhow::ensure!(status == StatusCode::OK, "login {email}: {status} {v}");
        Ok(v)
    }

    /// Logs in a seeded account; returns its access token.
    pub async fn login(&self, email: &str) -> anyhow::Result<String> {
        let v = self.login_full(email).await?;
        Ok(v["access_token"].as_str().unwrap_or_default().to_owned())
    }

    /// Creates a course, a lesson and a lesson run as `token`'s teacher.
    pub async fn lesson_run(&self, token: &str, body_extra: Value) -> anyhow::Result<String> {
        let (s, c) = self
            .post("/courses", token, json!({ "title": "Chemistry" }))
            .await?;
        anyhow::ensure!(s == StatusCode::CREATED, "course: {s} {c}");
        self.enroll_everyone(token, c["id"].as_str().unwrap_or_default())
            .await?;
        let (s, l) = self
            .post(
                "/lessons",
                token,
                json!({ "course_id": c["id"], "title": "Acids" }),
            )
            .await?;
        anyhow::ensure!(s == StatusCode::CREATED, "lesson: {s} {l}");
        let mut run = json!({ "lesson_id": l["id"] });
        if let (Some(o), Value::Object(extra)) = (run.as_object_mut(), body_extra) {
            o.extend(extra);
        }
        let (s, r) = self.post("/lesson-runs", token, run).await?;
        anyhow::ensure!(s == StatusCode::CREATED, "lesson run: {s} {r}");
        Ok(r["id"].as_str().unwrap_or_default().to_owned())
    }

    /// Puts every student (as student) and assistant (as assistant) of the
    /// tenant on the course's roster, through the roster upload.
    pub async fn enroll_everyone(&self, token: &str, course_id: &str) -> anyhow::Result<()> {
        let mut csv = String::from("email,role\n");
        for role in ["student", "assistant"] {
            let mut after: Option<String> = None;
            loop {
                let mut path = format!("/users?role={role}&limit=500");
                if let Some(a) = &after {
                    path.push_str(&format!(
                        "&after={}",
                        a.replace('@', "%40").replace('+', "%2B")
                    ));
                }
                let (s, v) = self.get(&path, token).await?;
                anyhow::ensure!(s == StatusCode::OK, "users: {s} {v}");
                for u in v["users"].as_array().into_iter().flatten() {
                    csv.push_str(&format!(
                        "{},{role}\n",
                        u["email"].as_str().unwrap_or_default()
                    ));
                }
                match v["next_after"].as_str() {
                    Some(a) => after = Some(a.to_owned()),
                    None => break,
                }
            }
        }
        let (s, v) = self
            .post_raw(
                &format!("/courses/{course_id}/members/import"),
                Some(token),
                "text/csv",
                csv.into_bytes(),
            )
            .await?;
        anyhow::ensure!(
            s == StatusCode::OK && v["errors"].as_array().is_some_and(|e| e.is_empty()),
            "roster upload: {s} {v}"
        );
        Ok(())
    }

    pub async fn start(&self, token: &str, lesson_run_id: &str) -> anyhow::Result<Session> {
        let (s, v) = self
            .post(
                "/sessions/start",
                token,
                json!({ "lesson_run_id": lesson_run_id }),
            )
            .await?;
        anyhow::ensure!(s == StatusCode::CREATED, "start: {s} {v}");
        Ok(Session {
            id: v["id"].as_str().unwrap_or_default().to_owned(),
            edge_id: v["edge"]["id"].as_str().unwrap_or_default().to_owned(),
            edge_url: v["edge"]["url"].as_str().unwrap_or_default().to_owned(),
            lesson_run_id: lesson_run_id.to_owned(),
        })
    }

    /// A fresh lesson run, started.
    pub async fn start_class(&self, token: &str) -> anyhow::Result<Session> {
        let run = self.lesson_run(token, json!({})).await?;
        self.start(token, &run).await
    }

    pub async fn join(&self, token: &str, session: &str) -> anyhow::Result<Joined> {
        self.join_with(token, session, json!({})).await
    }

    /// Joins with a body (e.g. `{"edge_id": ...}` to come in through another edge).
    pub async fn join_with(
        &self,
        token: &str,
        session: &str,
        body: Value,
    ) -> anyhow::Result<Joined> {
        let (s, v) = self
            .post(&format!("/sessions/{session}/join"), token, body)
            .await?;
        anyhow::ensure!(s == StatusCode::OK, "join: {s} {v}");
        Ok(Joined {
            participant_id: v["participant_id"].as_str().unwrap_or_default().to_owned(),
            join_token: v["join_token"].as_str().unwrap_or_default().to_owned(),
            edge_url: v["edge"]["url"].as_str().unwrap_or_default().to_owned(),
            body: v,
        })
    }

    /// Uploads a PDF deck as `token`; its id (201 expected).
    pub async fn upload_deck(&self, token: &str, pdf: Vec<u8>) -> anyhow::Result<String> {
        let (s, v) = self
            .post_raw("/decks", Some(token), "application/pdf", pdf)
            .await?;
        anyhow::ensure!(s == StatusCode::CREATED, "upload deck: {s} {v}");
        v["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("no deck id in {v}"))
    }

    /// GET `url` (absolute, e.g. a signed recording URL) for its bytes,
    /// coming back while the answer is 503 (work not done yet, e.g. the
    /// one-file MP4 moments after the recording is finalized) for up to a
    /// minute. Any other status than 200 is an error.
    pub async fn bytes_when_ready(&self, url: &str) -> anyhow::Result<Vec<u8>> {
        let got = crate::wait_until(
            &format!("{url} to be ready"),
            std::time::Duration::from_secs(60),
            || async {
                let r = self.http.get(url).send().await.ok()?;
                match r.status() {
                    StatusCode::SERVICE_UNAVAILABLE => None,
                    s => Some((s, r.bytes().await.ok()?.to_vec())),
                }
            },
        )
        .await?;
        anyhow::ensure!(got.0 == StatusCode::OK, "{url}: {}", got.0);
        Ok(got.1)
    }

    /// The id of the user with `email`, looked up by an admin.
    pub async fn user_id(&self, admin: &str, email: &str) -> anyhow::Result<String> {
        let (s, v) = self
            .get(&format!("/users?q={}", email.replace('@', "%40")), admin)
            .await?;
        anyhow::ensure!(s == StatusCode::OK, "users: {s} {v}");
        v["users"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|u| u["email"] == email)
            .and_then(|u| u["id"].as_str())
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("{email} not in {v}"))
    }

    /// Every event core holds for the session (paged).
    pub async fn events(&self, token: &str, session: &str) -> anyhow::Result<Vec<Value>> {
        let mut out = Vec::new();
        let mut after = 0i64;
        loop {
            let (s, v) = self
                .get(
                    &format!("/sessions/{session}/events?after={after}&limit=5000"),
                    token,
                )
                .await?;
            anyhow::ensure!(s == StatusCode::OK, "events: {s} {v}");
            let page = v["events"].as_array().cloned().unwrap_or_default();
            let next = v["next_after"].as_i64().unwrap_or(after);
            out.extend(page);
            if next == after {
                break;
            }
            after = next;
        }
        Ok(out)
    }
}
