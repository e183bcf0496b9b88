//! The index through its public API: a small fixture of two tenants, three
//! replays, and one `check(query, expect)` per behaviour.

use std::collections::HashMap;

use chrono::{DateTime, TimeZone, Utc};
use classroom_search::{Doc, Hit, Index, Query, SearchError};
use expect_test::{Expect, expect};
use uuid::Uuid;

const ACME: Uuid = Uuid::from_u128(0xa);
const GLOBEX: Uuid = Uuid::from_u128(0xb);

struct Replay {
    name: &'static str,
    tenant: Uuid,
    course: &'static str,
    teacher: &'static str,
    date: (i32, u32, u32),
    docs: &'static [(u64, &'static str, &'static str)],
}

const REPLAYS: &[Replay] = &[
    Replay {
        name: "calc1",
        tenant: ACME,
        course: "calculus",
        teacher: "ada",
        date: (2025, 1, 10),
        docs: &[
            (
                0,
                "transcript",
                "Today we study the derivative of a function.",
            ),
            (
                8_000,
                "transcript",
                "The chain rule tells us how to differentiate compositions.",
            ),
            (
                16_000,
                "transcript",
                "A rule about the chain of command is another thing.",
            ),
            (24_000, "chapter", "Derivatives and limits"),
            (30_000, "slide", "Chain rule: (f o g)' = f'(g) g'"),
        ],
    },
    Replay {
        name: "bio1",
        tenant: ACME,
        course: "biology",
        teacher: "grace",
        date: (2025, 2, 20),
        docs: &[
            (
                0,
                "transcript",
                "Photosynthesis turns light into chemical energy.",
            ),
            (
                9_000,
                "transcript",
                "Energy, energy, energy: the cell needs energy all day.",
            ),
            (
                18_000,
                "transcript",
                "The kinetic energy of molecules rises with temperature.",
            ),
            (27_000, "question", "Why is chlorophyll green?"),
            (36_000, "poll", "Which organelle hosts photosynthesis?"),
        ],
    },
    Replay {
        name: "gbio",
        tenant: GLOBEX,
        course: "globex-biology",
        teacher: "linus",
        date: (2025, 2, 21),
        docs: &[(
            0,
            "transcript",
            "Photosynthesis and the derivative, at Globex.",
        )],
    },
];

/// Stable ids from names, and back, so expectations read as names.
struct Names(HashMap<Uuid, &'static str>);

impl Names {
    fn id(&mut self, name: &'static str) -> Uuid {
        let mut n: u128 = 0;
        for b in name.bytes() {
            n = n.wrapping_mul(131).wrapping_add(u128::from(b));
        }
        let id = Uuid::from_u128(n);
        self.0.insert(id, name);
        id
    }
}

fn date((y, m, d): (i32, u32, u32)) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 9, 0, 0).unwrap()
}

fn replay_docs(names: &mut Names, r: &Replay) -> Vec<Doc> {
    r.docs
        .iter()
        .map(|&(start_ms, kind, text)| Doc {
            tenant_id: r.tenant,
            replay_id: names.id(r.name),
            session_id: names.id(r.name),
            course_id: Some(names.id(r.course)),
            teacher_id: Some(names.id(r.teacher)),
            date: date(r.date),
            start_ms,
            end_ms: start_ms + 8_000,
            kind: kind.to_string(),
            text: text.to_string(),
        })
        .collect()
}

fn load(index: &Index, names: &mut Names) {
    for r in REPLAYS {
        let docs = replay_docs(names, r);
        index.replace_replay(names.id(r.name), &docs).unwrap();
    }
}

struct Fixture {
    index: Index,
    names: Names,
}

fn fixture() -> Fixture {
    let index = Index::in_memory().unwrap();
    let mut names = Names(HashMap::new());
    load(&index, &mut names);
    Fixture { index, names }
}

fn acme(text: &str) -> Query {
    Query {
        tenant_id: ACME,
        text: text.to_string(),
        ..Query::default()
    }
}

impl Fixture {
    fn show(&self, hits: &[Hit]) -> String {
        hits.iter()
            .map(|h| {
                format!(
                    "{}@{} {}: {}\n",
                    self.names.0.get(&h.replay_id).unwrap_or(&"?"),
                    h.start_ms,
                    h.kind,
                    h.text
                )
            })
            .collect()
    }

    fn check(&self, q: Query, expect: Expect) {
        let hits = self.index.search(&q).unwrap();
        expect.assert_eq(&self.show(&hits));
    }
}

#[test]
fn stemming_finds_other_forms() {
    let fx = fixture();
    fx.check(
        acme("derivatives"),
        expect![[r#"
            calc1@24000 chapter: Derivatives and limits
            calc1@0 transcript: Today we study the derivative of a function.
        "#]],
    );
    fx.check(
        acme("differentiating"),
        expect![[r#"
            calc1@8000 transcript: The chain rule tells us how to differentiate compositions.
        "#]],
    );
}

#[test]
fn phrase_matches_only_the_exact_order() {
    let fx = fixture();
    fx.check(
        acme("\"chain rule\""),
        expect![[r#"
            calc1@30000 slide: Chain rule: (f o g)' = f'(g) g'
            calc1@8000 transcript: The chain rule tells us how to differentiate compositions.
        "#]],
    );
    fx.check(acme("\"rule chain\""), expect![[""]]);
}

#[test]
fn typo_finds_the_word_below_exact_matches() {
    let fx = fixture();
    fx.check(
        acme("photosythesis"),
        expect![[r#"
            bio1@0 transcript: Photosynthesis turns light into chemical energy.
            bio1@36000 poll: Which organelle hosts photosynthesis?
        "#]],
    );
    // Two edits for long words; none for short ones.
    fx.check(
        acme("chlorofyll"),
        expect![[r#"
            bio1@27000 question: Why is chlorophyll green?
        "#]],
    );
    fx.check(acme("cel"), expect![[""]]);
    // "energi" is one edit from "energy": exact matches rank first.
    let hits = fx.index.search(&acme("energy chemikal")).unwrap();
    assert_eq!(hits[0].start_ms, 0, "{hits:?}");
}

#[test]
fn documents_with_every_word_rank_first() {
    let fx = fixture();
    fx.check(
        acme("kinetic energy"),
        expect![[r#"
            bio1@18000 transcript: The kinetic energy of molecules rises with temperature.
            bio1@9000 transcript: Energy, energy, energy: the cell needs energy all day.
            bio1@0 transcript: Photosynthesis turns light into chemical energy.
        "#]],
    );
    let hits = fx.index.search(&acme("kinetic energy")).unwrap();
    assert!(
        hits.windows(2).all(|w| w[0].score >= w[1].score),
        "{hits:?}"
    );
}

#[test]
fn stopwords_are_not_required() {
    let fx = fixture();
    fx.check(
        acme("the derivative of the function"),
        expect![[r#"
            calc1@0 transcript: Today we study the derivative of a function.
            calc1@24000 chapter: Derivatives and limits
        "#]],
    );
}

#[test]
fn excluded_words_and_phrases() {
    let fx = fixture();
    fx.check(
        acme("chain -command"),
        expect![[r#"
            calc1@30000 slide: Chain rule: (f o g)' = f'(g) g'
            calc1@8000 transcript: The chain rule tells us how to differentiate compositions.
        "#]],
    );
    fx.check(
        acme("chain -\"chain rule\""),
        expect![[r#"
            calc1@16000 transcript: A rule about the chain of command is another thing.
        "#]],
    );
}

#[test]
fn bad_syntax_falls_back_to_words() {
    let fx = fixture();
    fx.check(
        acme("\"chain rule"),
        expect![[r#"
            calc1@30000 slide: Chain rule: (f o g)' = f'(g) g'
            calc1@8000 transcript: The chain rule tells us how to differentiate compositions.
            calc1@16000 transcript: A rule about the chain of command is another thing.
        "#]],
    );
    fx.check(
        acme("f(g) AND (chlorophyll OR"),
        expect![[r#"
            calc1@30000 slide: Chain rule: (f o g)' = f'(g) g'
            bio1@27000 question: Why is chlorophyll green?
        "#]],
    );
}

#[test]
fn empty_queries_are_errors() {
    let fx = fixture();
    for text in ["", "   ", "?!", "\"\"", "-energy"] {
        match fx.index.search(&acme(text)) {
            Err(SearchError::Query(_)) => {}
            other => panic!("{text:?}: {other:?}"),
        }
    }
}

#[test]
fn tenants_never_see_each_other() {
    let mut fx = fixture();
    fx.check(
        Query {
            tenant_id: GLOBEX,
            ..acme("photosynthesis derivative")
        },
        expect![[r#"
            gbio@0 transcript: Photosynthesis and the derivative, at Globex.
        "#]],
    );
    // Naming another tenant's replay does not reach it.
    let gbio = fx.names.id("gbio");
    fx.check(
        Query {
            replay_id: Some(gbio),
            ..acme("photosynthesis")
        },
        expect![[""]],
    );
    let hits = fx.index.search(&acme("photosynthesis")).unwrap();
    assert!(hits.iter().all(|h| h.replay_id != gbio), "{hits:?}");
    fx.check(
        Query {
            tenant_id: Uuid::from_u128(0xc),
            ..acme("photosynthesis")
        },
        expect![[""]],
    );
}

#[test]
fn filters_narrow() {
    let mut fx = fixture();
    let calc1 = fx.names.id("calc1");
    let biology = fx.names.id("biology");
    let ada = fx.names.id("ada");
    fx.check(
        Query {
            replay_id: Some(calc1),
            ..acme("chain energy")
        },
        expect![[r#"
            calc1@30000 slide: Chain rule: (f o g)' = f'(g) g'
            calc1@8000 transcript: The chain rule tells us how to differentiate compositions.
            calc1@16000 transcript: A rule about the chain of command is another thing.
        "#]],
    );
    fx.check(
        Query {
            course_id: Some(biology),
            ..acme("chain energy")
        },
        expect![[r#"
            bio1@9000 transcript: Energy, energy, energy: the cell needs energy all day.
            bio1@0 transcript: Photosynthesis turns light into chemical energy.
            bio1@18000 transcript: The kinetic energy of molecules rises with temperature.
        "#]],
    );
    fx.check(
        Query {
            teacher_id: Some(ada),
            ..acme("rule photosynthesis")
        },
        expect![[r#"
            calc1@30000 slide: Chain rule: (f o g)' = f'(g) g'
            calc1@8000 transcript: The chain rule tells us how to differentiate compositions.
            calc1@16000 transcript: A rule about the chain of command is another thing.
        "#]],
    );
    fx.check(
        Query {
            kind: Some("slide".into()),
            ..acme("chain")
        },
        expect![[r#"
            calc1@30000 slide: Chain rule: (f o g)' = f'(g) g'
        "#]],
    );
    // Dates: calc1 on 2025-01-10, bio1 on 2025-02-20, both at 09:00.
    let since_feb = Query {
        from: Some(date((2025, 2, 1))),
        ..acme("derivative photosynthesis")
    };
    fx.check(
        since_feb,
        expect![[r#"
            bio1@36000 poll: Which organelle hosts photosynthesis?
            bio1@0 transcript: Photosynthesis turns light into chemical energy.
        "#]],
    );
    let until_jan = Query {
        to: Some(date((2025, 1, 31))),
        ..acme("derivative photosynthesis")
    };
    fx.check(
        until_jan,
        expect![[r#"
            calc1@24000 chapter: Derivatives and limits
            calc1@0 transcript: Today we study the derivative of a function.
        "#]],
    );
    // Bounds are inclusive, to the second.
    let that_morning = Query {
        from: Some(date((2025, 1, 10))),
        to: Some(date((2025, 1, 10))),
        ..acme("derivative photosynthesis")
    };
    fx.check(
        that_morning,
        expect![[r#"
            calc1@24000 chapter: Derivatives and limits
            calc1@0 transcript: Today we study the derivative of a function.
        "#]],
    );
}

#[test]
fn limit_defaults_to_twenty() {
    let index = Index::in_memory().unwrap();
    let replay = Uuid::from_u128(1);
    let docs: Vec<Doc> = (0..30)
        .map(|i| Doc {
            tenant_id: ACME,
            replay_id: replay,
            session_id: replay,
            course_id: None,
            teacher_id: None,
            date: date((2025, 3, 1)),
            start_ms: i * 8_000,
            end_ms: (i + 1) * 8_000,
            kind: "transcript".into(),
            text: format!("entropy again, segment {i}"),
        })
        .collect();
    index.replace_replay(replay, &docs).unwrap();
    assert_eq!(index.search(&acme("entropy")).unwrap().len(), 20);
    let five = Query {
        limit: 5,
        ..acme("entropy")
    };
    assert_eq!(index.search(&five).unwrap().len(), 5);
    let many = Query {
        limit: 100,
        ..acme("entropy")
    };
    assert_eq!(index.search(&many).unwrap().len(), 30);
}

#[test]
fn start_ms_is_carried_through() {
    let fx = fixture();
    let hits = fx.index.search(&acme("chlorophyll")).unwrap();
    assert_eq!(
        hits.iter()
            .map(|h| (h.start_ms, h.end_ms))
            .collect::<Vec<_>>(),
        [(27_000, 35_000)]
    );
    let mut names = Names(HashMap::new());
    assert_eq!(hits[0].session_id, names.id("bio1"));
}

#[test]
fn replace_is_idempotent() {
    let mut fx = fixture();
    let count = fx.index.doc_count();
    let before = fx.index.search(&acme("energy")).unwrap();
    load(&fx.index, &mut fx.names);
    assert_eq!(fx.index.doc_count(), count);
    assert_eq!(fx.index.search(&acme("energy")).unwrap(), before);
}

#[test]
fn replace_many_in_one_commit() {
    let index = Index::in_memory().unwrap();
    let mut names = Names(HashMap::new());
    let all: Vec<(Uuid, Vec<Doc>)> = REPLAYS
        .iter()
        .map(|r| (names.id(r.name), replay_docs(&mut names, r)))
        .collect();
    let batch = || all.iter().map(|(id, docs)| (*id, docs.as_slice()));
    index.replace_replays(batch()).unwrap();
    assert_eq!(index.doc_count(), 11);
    index.replace_replays(batch()).unwrap();
    assert_eq!(index.doc_count(), 11);
    // One bad replay and none is applied.
    let calc1 = names.id("calc1");
    let bio1 = names.id("bio1");
    let wrong = [(calc1, &[][..]), (bio1, all[0].1.as_slice())];
    match index.replace_replays(wrong) {
        Err(SearchError::Doc(_)) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(index.doc_count(), 11);
}

#[test]
fn replace_swaps_the_documents() {
    let mut fx = fixture();
    let calc1 = fx.names.id("calc1");
    let mut docs = replay_docs(&mut fx.names, &REPLAYS[0]);
    docs.truncate(1);
    docs[0].text = "Integrals, at last.".into();
    fx.index.replace_replay(calc1, &docs).unwrap();
    fx.check(acme("derivative"), expect![[""]]);
    fx.check(
        acme("integral"),
        expect![[r#"
            calc1@0 transcript: Integrals, at last.
        "#]],
    );
}

#[test]
fn replace_refuses_another_replays_documents() {
    let mut fx = fixture();
    let docs = replay_docs(&mut fx.names, &REPLAYS[0]);
    let bio1 = fx.names.id("bio1");
    match fx.index.replace_replay(bio1, &docs) {
        Err(SearchError::Doc(_)) => {}
        other => panic!("{other:?}"),
    }
    // Nothing half done was committed.
    assert_eq!(fx.index.search(&acme("chlorophyll")).unwrap().len(), 1);
}

#[test]
fn remove_drops_a_replay() {
    let mut fx = fixture();
    let count = fx.index.doc_count();
    let bio1 = fx.names.id("bio1");
    fx.index.remove_replay(bio1).unwrap();
    assert_eq!(fx.index.doc_count(), count - 5);
    fx.check(acme("photosynthesis"), expect![[""]]);
    // Removing what is not there is fine.
    fx.index.remove_replay(bio1).unwrap();
}

#[test]
fn index_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("search-index");
    let mut names = Names(HashMap::new());
    {
        let index = Index::open(&path).unwrap();
        load(&index, &mut names);
        index.close().unwrap();
    }
    {
        // Dropped without close: the lock is released all the same.
        let index = Index::open(&path).unwrap();
        index.remove_replay(names.id("gbio")).unwrap();
    }
    let fx = Fixture {
        index: Index::open(&path).unwrap(),
        names,
    };
    assert_eq!(fx.index.doc_count(), 10);
    fx.check(
        acme("\"chain rule\""),
        expect![[r#"
            calc1@30000 slide: Chain rule: (f o g)' = f'(g) g'
            calc1@8000 transcript: The chain rule tells us how to differentiate compositions.
        "#]],
    );
}

#[test]
fn long_texts_are_cut_around_the_match() {
    let index = Index::in_memory().unwrap();
    let replay = Uuid::from_u128(1);
    let filler = "lorem ipsum dolor sit amet ".repeat(30);
    let text = format!("{filler} the mitochondria is the powerhouse of the cell {filler}");
    let doc = Doc {
        tenant_id: ACME,
        replay_id: replay,
        session_id: replay,
        course_id: None,
        teacher_id: None,
        date: date((2025, 3, 1)),
        start_ms: 5,
        end_ms: 6,
        kind: "slide".into(),
        text,
    };
    index.replace_replay(replay, &[doc]).unwrap();
    let hits = index.search(&acme("mitochondria")).unwrap();
    assert!(hits[0].text.contains("mitochondria"), "{:?}", hits[0].text);
    assert!(hits[0].text.chars().count() <= 240, "{:?}", hits[0].text);
    // Through a typo only: the beginning, whole words.
    let hits = index.search(&acme("mitochondira")).unwrap();
    assert!(
        hits[0].text.starts_with("lorem ipsum"),
        "{:?}",
        hits[0].text
    );
    assert!(hits[0].text.ends_with(|c: char| c.is_alphanumeric()));
}
