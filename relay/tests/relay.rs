//! End-to-end tests: real relay processes on loopback, a stand-in for core's
//! JWKS, and MoQ clients speaking moq-transport 0.17 to them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use moq_transport::serve::{Subgroup, SubgroupsWriter};
use protocol::claims::RelayGrants;
use relay::client::{
    CLOSE_TOKEN_EXPIRED, CLOSE_UNAUTHORIZED, CloseReason, Connection, DialError, Dialer,
};
use relay::testkit::{Received, RelayProcess, TestPublisher, TokenIssuer, subscribe};
use tokio::sync::mpsc::UnboundedReceiver;
use url::Url;

const NS: &str = "demo/s1/p1";
const WAIT: Duration = Duration::from_secs(20);

struct Env {
    _dir: tempfile::TempDir,
    ca_dir: PathBuf,
    issuer: Arc<TokenIssuer>,
    core_url: String,
}

impl Env {
    async fn new() -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca_dir = dir.path().join("ca");
        // The same subcommand deploy/dev-ca.sh runs.
        let status = std::process::Command::new(relay_bin())
            .arg("gen-dev-ca")
            .arg(&ca_dir)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("gen-dev-ca");
        assert!(status.success());
        let issuer = Arc::new(TokenIssuer::new());
        let core_url = issuer.serve().await.expect("jwks server");
        Env {
            _dir: dir,
            ca_dir,
            issuer,
            core_url,
        }
    }

    fn args(&self, listen: &str) -> Vec<String> {
        vec![
            "--listen".into(),
            listen.into(),
            "--dev-ca-dir".into(),
            self.ca_dir.display().to_string(),
            "--core-url".into(),
            self.core_url.clone(),
        ]
    }

    async fn relay(&self) -> RelayProcess {
        RelayProcess::spawn(&relay_bin(), &self.args("127.0.0.1:0"))
            .await
            .expect("relay starts")
    }

    fn dialer(&self) -> Dialer {
        let config = relay::tls::client_config(&[self.ca_dir.join("ca.pem")]).expect("client tls");
        Dialer::new(config).expect("dialer")
    }

    /// Connects with a fresh valid token and checks the relay accepted it.
    async fn connect(&self, relay: &RelayProcess, who: &str) -> Connection {
        self.connect_with(relay, who, 600, &RelayGrants::all())
            .await
    }

    /// Connects with a token of these grants living `ttl` seconds.
    async fn connect_with(
        &self,
        relay: &RelayProcess,
        who: &str,
        ttl: i64,
        grants: &RelayGrants,
    ) -> Connection {
        let token = self.issuer.token_with(who, ttl, grants);
        let mut c = self
            .dialer()
            .connect(&url(relay), Some(&token))
            .await
            .expect("connect");
        c.probe().await.expect("token accepted");
        c
    }
}

fn relay_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_relay"))
}

fn url(relay: &RelayProcess) -> Url {
    // "localhost" so the certificate's DNS name is what gets verified.
    Url::parse(&format!("moqt://localhost:{}", relay.addr.port())).expect("url")
}

fn payload(group: u64, object: u64) -> Bytes {
    Bytes::from(format!("g{group}o{object}"))
}

/// Writes `groups` groups of `per_group` objects, `gap` apart.
async fn publish_groups(
    track: &mut SubgroupsWriter,
    groups: std::ops::Range<u64>,
    per_group: u64,
    gap: Duration,
) {
    // the publisher's cadence: one object every `gap`
    let mut pace = tokio::time::interval(gap);
    for g in groups {
        let mut group = track
            .create(Subgroup {
                group_id: g,
                subgroup_id: 0,
                priority: 1,
            })
            .expect("group");
        for o in 0..per_group {
            group.write(payload(g, o)).expect("write");
            pace.tick().await;
        }
        group.finish().expect("finish");
    }
}

/// Collects objects per group until `done` says enough (or WAIT passes).
async fn collect(
    rx: &mut UnboundedReceiver<Received>,
    done: impl Fn(&BTreeMap<u64, Vec<u64>>) -> bool,
) -> BTreeMap<u64, Vec<u64>> {
    let mut got: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    let _ = tokio::time::timeout(WAIT, async {
        while !done(&got) {
            match rx.recv().await {
                Some(Received::Object {
                    group,
                    object,
                    payload: p,
                }) => {
                    assert_eq!(p, payload(group, object), "payload intact");
                    got.entry(group).or_default().push(object);
                }
                Some(Received::GroupEnd { .. }) => {}
                Some(Received::End(_)) | None => break,
            }
        }
    })
    .await;
    got
}

/// Waits for the track to end, returning the error text (if any).
async fn ended(
    rx: &mut UnboundedReceiver<Received>,
    within: Duration,
) -> Option<Result<(), String>> {
    tokio::time::timeout(within, async {
        loop {
            match rx.recv().await {
                Some(Received::End(r)) => return Some(r),
                Some(_) => {}
                None => return None,
            }
        }
    })
    .await
    .ok()
    .flatten()
}

#[tokio::test]
async fn publish_fans_out_to_three_subscribers_in_order() {
    let env = Env::new().await;
    let relay = env.relay().await;
    let pub_conn = env.connect(&relay, "edge-a").await;
    let mut publisher = TestPublisher::start(&pub_conn, NS).await.expect("publish");
    let mut track = publisher.track("video").expect("track");

    let mut subs = Vec::new();
    for i in 0..3 {
        let c = env.connect(&relay, &format!("edge-sub{i}")).await;
        let (handle, rx) = subscribe(&c, NS, "video").await.expect("subscribe");
        subs.push((c, handle, rx));
    }
    publish_groups(&mut track, 0..5, 20, Duration::from_millis(2)).await;

    let everything: BTreeMap<u64, Vec<u64>> = (0..5).map(|g| (g, (0..20).collect())).collect();
    for (_, _, rx) in &mut subs {
        let got = collect(rx, |got| got == &everything).await;
        assert_eq!(got, everything, "every object of every group, in order");
    }
    let health = relay.health().await.expect("healthz");
    assert_eq!(health["objects_in"], 100);
    assert_eq!(
        health["objects_out"], 300,
        "each object once per subscriber: {health}"
    );
    assert_eq!(health["tracks"], 1);
    assert_eq!(health["subscribers"], 3);
}

#[tokio::test]
async fn late_subscriber_starts_at_the_latest_groups_first_object() {
    let env = Env::new().await;
    let relay = env.relay().await;
    let pub_conn = env.connect(&relay, "edge-a").await;
    let mut publisher = TestPublisher::start(&pub_conn, NS).await.expect("publish");
    let mut track = publisher.track("video").expect("track");

    // An early subscriber makes the relay pull the track.
    let early = env.connect(&relay, "edge-early").await;
    let (_early_sub, mut early_rx) = subscribe(&early, NS, "video").await.expect("subscribe");

    // Groups 0..2 complete, then group 2 stays open with 3 objects.
    publish_groups(&mut track, 0..2, 5, Duration::from_millis(1)).await;
    let mut open = track
        .create(Subgroup {
            group_id: 2,
            subgroup_id: 0,
            priority: 1,
        })
        .expect("group 2");
    for o in 0..3 {
        open.write(payload(2, o)).expect("write");
    }
    collect(&mut early_rx, |got| {
        got.get(&2).is_some_and(|o| o.len() == 3)
    })
    .await;

    let late = env.connect(&relay, "edge-late").await;
    let (_late_sub, mut late_rx) = subscribe(&late, NS, "video").await.expect("subscribe");
    for o in 3..5 {
        open.write(payload(2, o)).expect("write");
    }
    open.finish().expect("finish");
    publish_groups(&mut track, 3..4, 5, Duration::from_millis(1)).await;

    let got = collect(&mut late_rx, |got| {
        got.get(&3).is_some_and(|o| o.len() == 5)
    })
    .await;
    let expected: BTreeMap<u64, Vec<u64>> = [(2, (0..5).collect()), (3, (0..5).collect())].into();
    assert_eq!(
        got, expected,
        "starts at group 2 object 0 (the keyframe), nothing older"
    );
}

async fn assert_refused(env: &Env, relay: &RelayProcess, token: Option<&str>) {
    refused(env.dialer().connect(&url(relay), token).await).await;
}

/// A refused peer learns it either at SETUP already or from the probe.
async fn refused(connected: Result<Connection, DialError>) {
    let result = match connected {
        Ok(mut c) => {
            let probe = c.probe().await;
            // Even if the peer tried, it gets no track.
            let sub = subscribe(&c, NS, "video").await;
            assert!(sub.is_err(), "a refused peer must not get a subscription");
            probe
        }
        Err(e) => Err(e),
    };
    match result {
        Err(DialError::Refused { code, .. }) => assert_eq!(code, CLOSE_UNAUTHORIZED),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn unauthenticated_peers_are_refused_and_get_nothing() {
    let env = Env::new().await;
    let relay = env.relay().await;
    let pub_conn = env.connect(&relay, "edge-a").await;
    let mut publisher = TestPublisher::start(&pub_conn, NS).await.expect("publish");
    let mut track = publisher.track("video").expect("track");
    let writer = tokio::spawn(async move {
        publish_groups(&mut track, 0..100, 10, Duration::from_millis(5)).await;
    });

    assert_refused(&env, &relay, None).await;
    assert_refused(&env, &relay, Some(&env.issuer.forged("edge-x"))).await;
    assert_refused(&env, &relay, Some(&env.issuer.token("edge-x", -60))).await;
    assert_refused(&env, &relay, Some("not-a-jwt")).await;
    // A token in the URL query works like one in SETUP; a bad one does not.
    // (The path must be "/": moq-transport sends path+query as SETUP PATH.)
    let mut query_url = url(&relay);
    query_url.set_path("/");
    query_url.set_query(Some(&format!("token={}", env.issuer.forged("edge-x"))));
    refused(env.dialer().connect(&query_url, None).await).await;
    query_url.set_query(Some(&format!("token={}", env.issuer.token("edge-q", 60))));
    let mut c = env.dialer().connect(&query_url, None).await.expect("quic");
    c.probe().await.expect("query token accepted");

    let health = relay.health().await.expect("healthz");
    assert_eq!(
        health["subscribers"], 0,
        "no refused peer subscribed: {health}"
    );
    assert_eq!(health["objects_out"], 0);
    writer.abort();
}

#[tokio::test]
async fn chained_relay_pulls_from_its_upstream() {
    let env = Env::new().await;
    let origin = env.relay().await;
    let mut args = env.args("127.0.0.1:0");
    args.extend([
        "--upstream".to_owned(),
        format!("moqt://localhost:{}", origin.addr.port()),
        "--upstream-token".to_owned(),
        env.issuer.token("relay-b", 600),
    ]);
    let regional = RelayProcess::spawn(&relay_bin(), &args)
        .await
        .expect("relay b");

    let pub_conn = env.connect(&origin, "edge-a").await;
    let mut publisher = TestPublisher::start(&pub_conn, NS).await.expect("publish");
    let mut track = publisher.track("audio").expect("track");

    let mut subs = Vec::new();
    for i in 0..2 {
        let c = env.connect(&regional, &format!("edge-b{i}")).await;
        let (handle, rx) = subscribe(&c, NS, "audio").await.expect("subscribe via B");
        subs.push((c, handle, rx));
    }
    publish_groups(&mut track, 0..3, 10, Duration::from_millis(2)).await;
    let everything: BTreeMap<u64, Vec<u64>> = (0..3).map(|g| (g, (0..10).collect())).collect();
    for (_, _, rx) in &mut subs {
        assert_eq!(collect(rx, |got| got == &everything).await, everything);
    }
    // B pulled the track from A once, for both of its subscribers.
    let a = origin.health().await.expect("a healthz");
    assert_eq!(a["subscribers"], 1, "one upstream pull: {a}");
    assert_eq!(a["objects_out"], 30);
    let b = regional.health().await.expect("b healthz");
    assert_eq!(b["objects_out"], 60);

    // A track nobody publishes anywhere is refused through the chain.
    let c = env.connect(&regional, "edge-b9").await;
    assert!(subscribe(&c, "demo/s1/nobody", "audio").await.is_err());
}

#[tokio::test]
async fn relay_restart_gives_a_retryable_error() {
    let env = Env::new().await;
    let mut relay = env.relay().await;
    let listen = relay.addr.to_string();

    let pub_conn = env.connect(&relay, "edge-a").await;
    let mut publisher = TestPublisher::start(&pub_conn, NS).await.expect("publish");
    let mut track = publisher.track("video").expect("track");
    let sub_conn = env.connect(&relay, "edge-b").await;
    let (_sub, mut rx) = subscribe(&sub_conn, NS, "video").await.expect("subscribe");
    publish_groups(&mut track, 0..1, 3, Duration::from_millis(1)).await;
    assert_eq!(collect(&mut rx, |got| got.len() == 1).await.len(), 1);

    relay.kill().await; // SIGKILL: no close, the client finds out by idle timeout
    let end = ended(&mut rx, Duration::from_secs(20)).await;
    assert!(
        matches!(end, Some(Err(_))),
        "subscriber sees an error: {end:?}"
    );
    let closed = tokio::time::timeout(Duration::from_secs(20), sub_conn.closed()).await;
    assert!(closed.is_ok(), "the connection reports closed");

    // The relay comes back on the same port; both sides retry.
    let relay = retry(|| async {
        RelayProcess::spawn(&relay_bin(), &env.args(&listen))
            .await
            .ok()
    })
    .await;
    let pub_conn = env.connect(&relay, "edge-a").await;
    let mut publisher = TestPublisher::start(&pub_conn, NS)
        .await
        .expect("republish");
    let mut track = publisher.track("video").expect("track");
    let sub_conn = env.connect(&relay, "edge-b").await;
    let (_sub, mut rx) = subscribe(&sub_conn, NS, "video")
        .await
        .expect("resubscribe");
    publish_groups(&mut track, 10..11, 3, Duration::from_millis(1)).await;
    let got = collect(&mut rx, |got| got.get(&10).is_some_and(|o| o.len() == 3)).await;
    assert_eq!(got.get(&10), Some(&vec![0, 1, 2]));
}

#[tokio::test]
async fn shutdown_closes_connections_at_once() {
    let env = Env::new().await;
    let relay = env.relay().await;
    let conn = env.connect(&relay, "edge-a").await;
    let pid = relay.pid().expect("pid");
    let status = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .expect("kill");
    assert!(status.success());
    let reason = tokio::time::timeout(Duration::from_secs(3), conn.closed())
        .await
        .expect("closed well before the idle timeout");
    assert!(
        matches!(
            reason,
            relay::client::CloseReason::Application { code: 0, .. }
        ),
        "{reason:?}"
    );
}

async fn retry<T, F, Fut>(mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    // polls the condition until a 10 s deadline
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut poll = tokio::time::interval(Duration::from_millis(200));
    loop {
        poll.tick().await;
        if let Some(v) = f().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "gave up after 10 s");
    }
}

fn grants(publish: &[&str], subscribe: &[&str]) -> RelayGrants {
    RelayGrants {
        publish: publish.iter().map(|s| s.to_string()).collect(),
        subscribe: subscribe.iter().map(|s| s.to_string()).collect(),
    }
}

#[tokio::test]
async fn a_token_reaches_only_its_classes_and_ends_with_its_expiry() {
    let env = Env::new().await;
    let relay = env.relay().await;
    // edge-a hosts class demo/s1 and serves tenant demo
    let a = env
        .connect_with(&relay, "edge-a", 600, &grants(&["demo/s1"], &["demo"]))
        .await;
    let mut publisher = TestPublisher::start(&a, NS).await.expect("its own class");
    let mut track = publisher.track("video").expect("track");
    let writer = tokio::spawn(async move {
        publish_groups(&mut track, 0..400, 5, Duration::from_millis(5)).await;
    });

    // an edge of tenant `other` gets nothing of demo's
    let b = env
        .connect_with(&relay, "edge-b", 600, &grants(&["other/s7"], &["other"]))
        .await;
    assert!(
        subscribe(&b, NS, "video").await.is_err(),
        "another tenant's track"
    );
    assert!(
        TestPublisher::start(&b, "demo/s2/p1").await.is_err(),
        "a class it does not host"
    );
    // a token that names demo's class still cannot take it from edge-a
    let b2 = env
        .connect_with(&relay, "edge-b", 600, &grants(&["demo/s1"], &["*"]))
        .await;
    assert!(
        TestPublisher::start(&b2, NS).await.is_err(),
        "another peer's namespace"
    );
    // a peer allowed to serve tenant demo gets the class, from edge-a
    let c = env
        .connect_with(&relay, "edge-c", 600, &grants(&[], &["demo"]))
        .await;
    let (_sub, mut rx) = subscribe(&c, NS, "video").await.expect("demo's own edge");
    let got = collect(&mut rx, |g| g.len() >= 2).await;
    assert!(got.len() >= 2, "objects flow from edge-a: {got:?}");

    // a token that expires ends its session; the peer must come back
    let short = env
        .connect_with(&relay, "edge-d", 2, &grants(&[], &["demo"]))
        .await;
    let why = tokio::time::timeout(WAIT, short.closed())
        .await
        .expect("closed at expiry");
    assert!(
        matches!(why, CloseReason::Application { code, .. } if code == CLOSE_TOKEN_EXPIRED),
        "{why:?}"
    );
    let health = relay.health().await.expect("healthz");
    assert_eq!(health["refused"], 3, "{health}");
    writer.abort();
}
