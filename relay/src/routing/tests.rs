//! Routing tests as data: a script of inputs, the outputs they produce.
//!
//! Script lines (one input each):
//!   up s1 | up s1 as <peer> pub=<ns,..> sub=<ns,..> | down s1
//!   publish s1 <namespace> | withdraw s1 <namespace>
//!   subscribe s2 #1 <namespace>/<name> | unsubscribe #1
//!   ready @1 [largest=G] | fail @1 not-found|unavailable
//!   obj @1 gG oO pP <payload> | end-group @1 gG
//!   end @1 track-ended|publisher-gone|source-lost
//!   wait <secs>s        (advance the clock, then handle_timeout)
//! A session used without `up` is up with a token that grants everything.
//! Each input is echoed as `> line`, its outputs follow indented; the last
//! line is the stats. Run with UPDATE_EXPECT=1 to rewrite expectations.

use std::fmt::Write;
use std::time::{Duration, Instant};

use bytes::Bytes;
use expect_test::{Expect, expect};

use super::*;

fn check(config: RouterConfig, script: &str, expect: Expect) {
    let mut router = Router::new(config);
    let start = Instant::now();
    let mut now = start;
    let mut out = String::new();
    for line in script.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let _ = writeln!(out, "> {line}");
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["wait", secs] => {
                let secs: u64 = secs.trim_end_matches('s').parse().expect("seconds");
                now += Duration::from_secs(secs);
                router.handle_timeout(now);
            }
            _ => {
                // a session a script uses without `up` connected with a
                // token that grants everything
                if let ["publish" | "subscribe", sess, ..] = words.as_slice() {
                    let key = SessionKey(num(sess, "s"));
                    if !router.sessions.contains_key(&key) {
                        router.handle_input(
                            Input::SessionUp {
                                session: key,
                                peer: sess.to_string(),
                                grants: RelayGrants::all(),
                            },
                            now,
                        );
                    }
                }
                router.handle_input(parse_input(&words), now)
            }
        }
        while let Some(output) = router.poll_output() {
            let _ = writeln!(out, "    {}", render(&output));
        }
    }
    let s = router.stats();
    let _ = writeln!(
        out,
        "stats: sessions={} namespaces={} tracks={} subscribers={} in={} out={} dropped={}",
        s.sessions,
        s.namespaces,
        s.tracks,
        s.subscribers,
        s.objects_in,
        s.objects_out,
        s.objects_dropped
    );
    expect.assert_eq(&out);
}

fn num(word: &str, prefix: &str) -> u64 {
    word.strip_prefix(prefix)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("expected {prefix}<n>, got {word}"))
}

fn track(path: &str) -> TrackKey {
    let (ns, name) = path.rsplit_once('/').expect("namespace/name");
    TrackKey::new(ns, name)
}

fn parse_input(words: &[&str]) -> Input {
    let session = |w: &str| SessionKey(num(w, "s"));
    let source = |w: &str| SourceKey(num(w, "@"));
    match words {
        ["up", s] => Input::SessionUp {
            session: session(s),
            peer: s.to_string(),
            grants: RelayGrants::all(),
        },
        // up s1 as edge-a pub=t1/s1,t1/s2 sub=t1 ("-": nothing)
        ["up", s, "as", peer, publish, subscribe] => {
            let list = |w: &str, key: &str| -> Vec<String> {
                let v = w.strip_prefix(key).expect("pub=/sub=");
                v.split(',')
                    .filter(|x| !x.is_empty() && *x != "-")
                    .map(str::to_owned)
                    .collect()
            };
            Input::SessionUp {
                session: session(s),
                peer: peer.to_string(),
                grants: RelayGrants {
                    publish: list(publish, "pub="),
                    subscribe: list(subscribe, "sub="),
                },
            }
        }
        ["down", s] => Input::SessionDown {
            session: session(s),
        },
        ["publish", s, ns] => Input::NamespacePublished {
            session: session(s),
            namespace: ns.to_string(),
        },
        ["withdraw", s, ns] => Input::NamespaceWithdrawn {
            session: session(s),
            namespace: ns.to_string(),
        },
        ["subscribe", s, sub, path] => Input::Subscribe {
            session: session(s),
            subscription: SubscriptionKey(num(sub, "#")),
            track: track(path),
        },
        ["unsubscribe", sub] => Input::Unsubscribe {
            subscription: SubscriptionKey(num(sub, "#")),
        },
        ["ready", src] => Input::SourceReady {
            source: source(src),
            largest_group: None,
        },
        ["ready", src, largest] => Input::SourceReady {
            source: source(src),
            largest_group: Some(num(largest, "largest=")),
        },
        ["fail", src, reason] => Input::SourceFailed {
            source: source(src),
            reason: match *reason {
                "not-found" => SourceFailure::NotFound,
                "unavailable" => SourceFailure::Unavailable,
                other => panic!("failure {other}"),
            },
        },
        ["obj", src, g, o, p, payload] => Input::Object {
            source: source(src),
            group: num(g, "g"),
            object: num(o, "o"),
            priority: num(p, "p") as u8,
            payload: Bytes::copy_from_slice(payload.as_bytes()),
        },
        ["end-group", src, g] => Input::GroupEnded {
            source: source(src),
            group: num(g, "g"),
        },
        ["end", src, reason] => Input::SourceEnded {
            source: source(src),
            reason: match *reason {
                "track-ended" => EndReason::TrackEnded,
                "publisher-gone" => EndReason::PublisherGone,
                "source-lost" => EndReason::SourceLost,
                other => panic!("reason {other}"),
            },
        },
        other => panic!("unknown script line {other:?}"),
    }
}

fn text(payload: &Bytes) -> String {
    String::from_utf8_lossy(payload).into_owned()
}

fn render(output: &Output) -> String {
    match output {
        Output::OpenSource {
            source,
            track,
            origin,
        } => {
            let from = match origin {
                Origin::Session(s) => format!("s{}", s.0),
                Origin::Upstream => "upstream".to_owned(),
            };
            format!("open-source @{} {track} from {from}", source.0)
        }
        Output::CloseSource { source } => format!("close-source @{}", source.0),
        Output::Accept {
            subscription,
            catch_up: None,
        } => format!("accept #{}", subscription.0),
        Output::Accept {
            subscription,
            catch_up: Some(c),
        } => {
            let objects: Vec<String> = c
                .objects
                .iter()
                .map(|(o, p)| format!("o{o} {}", text(p)))
                .collect();
            format!(
                "accept #{} catch-up g{} p{} [{}]{}",
                subscription.0,
                c.group,
                c.priority,
                objects.join(", "),
                if c.complete { " complete" } else { "" }
            )
        }
        Output::Reject {
            subscription,
            reason,
        } => format!("reject #{} {reason:?}", subscription.0),
        Output::StartGroup {
            subscription,
            group,
            priority,
        } => format!("start #{} g{group} p{priority}", subscription.0),
        Output::Deliver {
            subscription,
            group,
            object,
            payload,
        } => format!(
            "deliver #{} g{group} o{object} {}",
            subscription.0,
            text(payload)
        ),
        Output::EndGroup {
            subscription,
            group,
        } => format!("end-group #{} g{group}", subscription.0),
        Output::EndSubscription {
            subscription,
            reason,
        } => format!("end #{} {reason:?}", subscription.0),
        Output::DropNamespace { session, namespace } => {
            format!("drop-namespace s{} {namespace}", session.0)
        }
    }
}

fn local() -> RouterConfig {
    RouterConfig::default()
}

fn with_upstream() -> RouterConfig {
    RouterConfig {
        upstream: true,
        ..RouterConfig::default()
    }
}

#[test]
fn fans_each_object_out_once_per_subscriber_and_pulls_once() {
    check(
        local(),
        "
        up s1
        publish s1 t/s/p
        up s2
        subscribe s2 #1 t/s/p/video
        subscribe s2 #2 t/s/p/video
        ready @1 largest=7
        obj @1 g7 o0 p1 key
        obj @1 g7 o1 p1 delta
        subscribe s2 #3 t/s/p/video
        obj @1 g7 o2 p1 delta2
        end-group @1 g7
        ",
        expect![[r#"
            > up s1
            > publish s1 t/s/p
            > up s2
            > subscribe s2 #1 t/s/p/video
                open-source @1 t/s/p/video from s1
            > subscribe s2 #2 t/s/p/video
            > ready @1 largest=7
                accept #1
                accept #2
            > obj @1 g7 o0 p1 key
                start #1 g7 p1
                start #2 g7 p1
                deliver #1 g7 o0 key
                deliver #2 g7 o0 key
            > obj @1 g7 o1 p1 delta
                deliver #1 g7 o1 delta
                deliver #2 g7 o1 delta
            > subscribe s2 #3 t/s/p/video
                accept #3 catch-up g7 p1 [o0 key, o1 delta]
            > obj @1 g7 o2 p1 delta2
                deliver #1 g7 o2 delta2
                deliver #2 g7 o2 delta2
                deliver #3 g7 o2 delta2
            > end-group @1 g7
                end-group #1 g7
                end-group #2 g7
                end-group #3 g7
            stats: sessions=2 namespaces=1 tracks=1 subscribers=3 in=3 out=9 dropped=0
        "#]],
    );
}

#[test]
fn late_subscriber_starts_at_the_newest_group_keyframe() {
    check(
        local(),
        "
        publish s1 t/s/p
        subscribe s2 #1 t/s/p/video
        ready @1
        obj @1 g0 o0 p1 k0
        obj @1 g0 o1 p1 d0
        obj @1 g1 o0 p1 k1
        end-group @1 g0
        obj @1 g1 o1 p1 d1
        subscribe s3 #2 t/s/p/video
        obj @1 g1 o2 p1 d2
        end-group @1 g1
        subscribe s4 #3 t/s/p/video
        obj @1 g2 o0 p1 k2
        ",
        expect![[r#"
            > publish s1 t/s/p
            > subscribe s2 #1 t/s/p/video
                open-source @1 t/s/p/video from s1
            > ready @1
                accept #1
            > obj @1 g0 o0 p1 k0
                start #1 g0 p1
                deliver #1 g0 o0 k0
            > obj @1 g0 o1 p1 d0
                deliver #1 g0 o1 d0
            > obj @1 g1 o0 p1 k1
                start #1 g1 p1
                deliver #1 g1 o0 k1
            > end-group @1 g0
                end-group #1 g0
            > obj @1 g1 o1 p1 d1
                deliver #1 g1 o1 d1
            > subscribe s3 #2 t/s/p/video
                accept #2 catch-up g1 p1 [o0 k1, o1 d1]
            > obj @1 g1 o2 p1 d2
                deliver #1 g1 o2 d2
                deliver #2 g1 o2 d2
            > end-group @1 g1
                end-group #1 g1
                end-group #2 g1
            > subscribe s4 #3 t/s/p/video
                accept #3 catch-up g1 p1 [o0 k1, o1 d1, o2 d2] complete
            > obj @1 g2 o0 p1 k2
                start #1 g2 p1
                start #2 g2 p1
                start #3 g2 p1
                deliver #1 g2 o0 k2
                deliver #2 g2 o0 k2
                deliver #3 g2 o0 k2
            stats: sessions=4 namespaces=1 tracks=1 subscribers=3 in=6 out=14 dropped=0
        "#]],
    );
}

#[test]
fn history_older_than_the_origins_newest_group_is_dropped() {
    // The origin replays finished groups to a first reader; only the group
    // it was on when it accepted (largest=5) and newer ones are forwarded.
    check(
        local(),
        "
        publish s1 t/s/p
        subscribe s2 #1 t/s/p/audio
        ready @1 largest=5
        obj @1 g3 o0 p2 old
        obj @1 g5 o0 p2 now
        obj @1 g4 o0 p2 old
        obj @1 g5 o1 p2 next
        ",
        expect![[r#"
            > publish s1 t/s/p
            > subscribe s2 #1 t/s/p/audio
                open-source @1 t/s/p/audio from s1
            > ready @1 largest=5
                accept #1
            > obj @1 g3 o0 p2 old
            > obj @1 g5 o0 p2 now
                start #1 g5 p2
                deliver #1 g5 o0 now
            > obj @1 g4 o0 p2 old
            > obj @1 g5 o1 p2 next
                deliver #1 g5 o1 next
            stats: sessions=2 namespaces=1 tracks=1 subscribers=1 in=4 out=2 dropped=2
        "#]],
    );
}

#[test]
fn out_of_order_groups_are_forwarded_but_not_to_later_joiners() {
    check(
        local(),
        "
        publish s1 t/s/p
        subscribe s2 #1 t/s/p/video
        ready @1
        obj @1 g2 o0 p1 k2
        subscribe s3 #2 t/s/p/video
        obj @1 g1 o0 p1 k1
        end-group @1 g1
        obj @1 g1 o1 p1 straggler
        ",
        expect![[r#"
            > publish s1 t/s/p
            > subscribe s2 #1 t/s/p/video
                open-source @1 t/s/p/video from s1
            > ready @1
                accept #1
            > obj @1 g2 o0 p1 k2
                start #1 g2 p1
                deliver #1 g2 o0 k2
            > subscribe s3 #2 t/s/p/video
                accept #2 catch-up g2 p1 [o0 k2]
            > obj @1 g1 o0 p1 k1
                start #1 g1 p1
                deliver #1 g1 o0 k1
            > end-group @1 g1
                end-group #1 g1
            > obj @1 g1 o1 p1 straggler
            stats: sessions=3 namespaces=1 tracks=1 subscribers=2 in=3 out=3 dropped=1
        "#]],
    );
}

#[test]
fn too_many_open_groups_end_the_oldest() {
    check(
        RouterConfig {
            max_open_groups: 2,
            ..local()
        },
        "
        publish s1 t/s/p
        subscribe s2 #1 t/s/p/video
        ready @1
        obj @1 g1 o0 p1 a
        obj @1 g2 o0 p1 b
        obj @1 g3 o0 p1 c
        obj @1 g1 o1 p1 late
        ",
        expect![[r#"
            > publish s1 t/s/p
            > subscribe s2 #1 t/s/p/video
                open-source @1 t/s/p/video from s1
            > ready @1
                accept #1
            > obj @1 g1 o0 p1 a
                start #1 g1 p1
                deliver #1 g1 o0 a
            > obj @1 g2 o0 p1 b
                start #1 g2 p1
                deliver #1 g2 o0 b
            > obj @1 g3 o0 p1 c
                start #1 g3 p1
                end-group #1 g1
                deliver #1 g3 o0 c
            > obj @1 g1 o1 p1 late
            stats: sessions=2 namespaces=1 tracks=1 subscribers=1 in=4 out=3 dropped=1
        "#]],
    );
}

#[test]
fn a_group_bigger_than_the_cache_is_not_offered_to_late_joiners() {
    check(
        RouterConfig {
            max_cached_bytes: 8,
            ..local()
        },
        "
        publish s1 t/s/p
        subscribe s2 #1 t/s/p/video
        ready @1
        obj @1 g1 o0 p1 12345
        obj @1 g1 o1 p1 67890
        subscribe s3 #2 t/s/p/video
        obj @1 g2 o0 p1 k
        ",
        expect![[r#"
            > publish s1 t/s/p
            > subscribe s2 #1 t/s/p/video
                open-source @1 t/s/p/video from s1
            > ready @1
                accept #1
            > obj @1 g1 o0 p1 12345
                start #1 g1 p1
                deliver #1 g1 o0 12345
            > obj @1 g1 o1 p1 67890
                deliver #1 g1 o1 67890
            > subscribe s3 #2 t/s/p/video
                accept #2
            > obj @1 g2 o0 p1 k
                start #1 g2 p1
                start #2 g2 p1
                deliver #1 g2 o0 k
                deliver #2 g2 o0 k
            stats: sessions=3 namespaces=1 tracks=1 subscribers=2 in=3 out=4 dropped=0
        "#]],
    );
}

#[test]
fn unknown_tracks_are_refused_locally_and_pulled_from_upstream() {
    check(
        local(),
        "
        subscribe s2 #1 t/s/p/video
        subscribe s2 #2 .probe/auth
        ",
        expect![[r#"
            > subscribe s2 #1 t/s/p/video
                reject #1 NotFound
            > subscribe s2 #2 .probe/auth
                reject #2 NotFound
            stats: sessions=1 namespaces=0 tracks=0 subscribers=0 in=0 out=0 dropped=0
        "#]],
    );
    check(
        with_upstream(),
        "
        subscribe s2 #1 t/s/p/video
        subscribe s3 #2 t/s/p/video
        ready @1 largest=0
        obj @1 g0 o0 p1 k
        subscribe s2 #3 t/s/p/audio
        fail @2 not-found
        subscribe s2 #4 .probe/auth
        ",
        expect![[r#"
            > subscribe s2 #1 t/s/p/video
                open-source @1 t/s/p/video from upstream
            > subscribe s3 #2 t/s/p/video
            > ready @1 largest=0
                accept #1
                accept #2
            > obj @1 g0 o0 p1 k
                start #1 g0 p1
                start #2 g0 p1
                deliver #1 g0 o0 k
                deliver #2 g0 o0 k
            > subscribe s2 #3 t/s/p/audio
                open-source @2 t/s/p/audio from upstream
            > fail @2 not-found
                close-source @2
                reject #3 NotFound
            > subscribe s2 #4 .probe/auth
                reject #4 NotFound
            stats: sessions=2 namespaces=0 tracks=1 subscribers=2 in=1 out=2 dropped=0
        "#]],
    );
}

#[test]
fn a_publisher_going_away_ends_its_tracks() {
    check(
        local(),
        "
        up s1
        up s2
        publish s1 t/s/p
        subscribe s2 #1 t/s/p/video
        subscribe s2 #2 t/s/p/audio
        ready @1
        down s1
        obj @1 g0 o0 p1 ignored
        subscribe s2 #3 t/s/p/video
        ",
        expect![[r#"
            > up s1
            > up s2
            > publish s1 t/s/p
            > subscribe s2 #1 t/s/p/video
                open-source @1 t/s/p/video from s1
            > subscribe s2 #2 t/s/p/audio
                open-source @2 t/s/p/audio from s1
            > ready @1
                accept #1
            > down s1
                close-source @2
                reject #2 Unavailable
                close-source @1
                end #1 PublisherGone
            > obj @1 g0 o0 p1 ignored
            > subscribe s2 #3 t/s/p/video
                reject #3 NotFound
            stats: sessions=1 namespaces=0 tracks=0 subscribers=0 in=0 out=0 dropped=0
        "#]],
    );
}

#[test]
fn a_newer_session_takes_the_namespace_over() {
    check(
        local(),
        "
        up s1 as edge-a pub=t sub=t
        up s2 as edge-a pub=t sub=t
        publish s1 t/s/p
        subscribe s3 #1 t/s/p/video
        ready @1
        publish s2 t/s/p
        subscribe s3 #2 t/s/p/video
        withdraw s1 t/s/p
        down s1
        ",
        expect![[r#"
            > up s1 as edge-a pub=t sub=t
            > up s2 as edge-a pub=t sub=t
            > publish s1 t/s/p
            > subscribe s3 #1 t/s/p/video
                open-source @1 t/s/p/video from s1
            > ready @1
                accept #1
            > publish s2 t/s/p
                drop-namespace s1 t/s/p
                close-source @1
                end #1 PublisherGone
            > subscribe s3 #2 t/s/p/video
                open-source @2 t/s/p/video from s2
            > withdraw s1 t/s/p
            > down s1
            stats: sessions=2 namespaces=1 tracks=1 subscribers=1 in=0 out=0 dropped=0
        "#]],
    );
}

#[test]
fn an_unwatched_track_keeps_its_source_for_the_linger_time() {
    check(
        local(),
        "
        publish s1 t/s/p
        subscribe s2 #1 t/s/p/video
        ready @1
        obj @1 g0 o0 p1 k
        unsubscribe #1
        wait 3s
        subscribe s2 #2 t/s/p/video
        unsubscribe #2
        wait 4s
        wait 1s
        subscribe s2 #3 t/s/p/video
        ",
        expect![[r#"
            > publish s1 t/s/p
            > subscribe s2 #1 t/s/p/video
                open-source @1 t/s/p/video from s1
            > ready @1
                accept #1
            > obj @1 g0 o0 p1 k
                start #1 g0 p1
                deliver #1 g0 o0 k
            > unsubscribe #1
            > wait 3s
            > subscribe s2 #2 t/s/p/video
                accept #2 catch-up g0 p1 [o0 k]
            > unsubscribe #2
            > wait 4s
            > wait 1s
                close-source @1
            > subscribe s2 #3 t/s/p/video
                open-source @2 t/s/p/video from s1
            stats: sessions=2 namespaces=1 tracks=1 subscribers=1 in=1 out=2 dropped=0
        "#]],
    );
}

#[test]
fn a_lost_source_ends_its_subscriptions() {
    check(
        with_upstream(),
        "
        subscribe s2 #1 t/s/p/video
        ready @1
        obj @1 g0 o0 p1 k
        end @1 source-lost
        obj @1 g0 o1 p1 ignored
        subscribe s2 #2 t/s/p/video
        ",
        expect![[r#"
            > subscribe s2 #1 t/s/p/video
                open-source @1 t/s/p/video from upstream
            > ready @1
                accept #1
            > obj @1 g0 o0 p1 k
                start #1 g0 p1
                deliver #1 g0 o0 k
            > end @1 source-lost
                close-source @1
                end #1 SourceLost
            > obj @1 g0 o1 p1 ignored
            > subscribe s2 #2 t/s/p/video
                open-source @2 t/s/p/video from upstream
            stats: sessions=1 namespaces=0 tracks=1 subscribers=1 in=1 out=1 dropped=0
        "#]],
    );
}

#[test]
fn tokens_bound_what_a_peer_may_publish_and_subscribe() {
    // edge-a hosts t1/s1; edge-b serves tenant t2 only; a second edge-a
    // session (a reconnect) may take its own namespace over, edge-b may not
    let mut router = Router::new(RouterConfig::default());
    let now = Instant::now();
    let up = |peer: &str, n: u64, publish: &[&str], subscribe: &[&str]| Input::SessionUp {
        session: SessionKey(n),
        peer: peer.to_owned(),
        grants: RelayGrants {
            publish: publish.iter().map(|x| x.to_string()).collect(),
            subscribe: subscribe.iter().map(|x| x.to_string()).collect(),
        },
    };
    router.handle_input(up("edge-a", 1, &["t1/s1"], &["*"]), now);
    router.handle_input(up("edge-b", 2, &["t1/s1", "t2/s9"], &["t2"]), now);
    router.handle_input(up("edge-a", 3, &["t1/s1"], &["*"]), now);
    router.handle_input(up("nobody", 4, &[], &[]), now);
    assert_eq!(router.check_publish(SessionKey(1), "t1/s1/p1"), Ok(()));
    assert_eq!(
        router.check_publish(SessionKey(1), "t1/s2/p1"),
        Err(PublishRefusal::NotGranted),
        "a class it does not host"
    );
    router.handle_input(
        Input::NamespacePublished {
            session: SessionKey(1),
            namespace: "t1/s1/p1".into(),
        },
        now,
    );
    assert_eq!(
        router.check_publish(SessionKey(2), "t1/s1/p1"),
        Err(PublishRefusal::OwnedByAnother),
        "another peer cannot take the namespace over, whatever its token says"
    );
    assert_eq!(
        router.check_publish(SessionKey(3), "t1/s1/p1"),
        Ok(()),
        "the same edge reconnecting can"
    );
    assert_eq!(
        router.check_publish(SessionKey(4), "t1/s1/p1"),
        Err(PublishRefusal::NotGranted)
    );
    // a session that publishes without asking first is dropped, not routed
    router.handle_input(
        Input::NamespacePublished {
            session: SessionKey(2),
            namespace: "t1/s1/p1".into(),
        },
        now,
    );
    assert_eq!(
        router.poll_output(),
        Some(Output::DropNamespace {
            session: SessionKey(2),
            namespace: "t1/s1/p1".into()
        })
    );
    // edge-b may not watch tenant t1's class; edge-a may
    let sub = |n: u64, k: u64| Input::Subscribe {
        session: SessionKey(n),
        subscription: SubscriptionKey(k),
        track: TrackKey::new("t1/s1/p1", "video"),
    };
    router.handle_input(sub(2, 10), now);
    assert_eq!(
        router.poll_output(),
        Some(Output::Reject {
            subscription: SubscriptionKey(10),
            reason: RejectReason::Unauthorized
        })
    );
    router.handle_input(sub(1, 11), now);
    assert!(matches!(
        router.poll_output(),
        Some(Output::OpenSource { .. })
    ));
    assert_eq!(router.stats().refused, 1);
}
