//! The synthetic corpus: lecture transcripts cut into ~8 s segments of ~20
//! words, over many tenants, courses, teachers, replays and dates. Words are
//! drawn Zipf-like from the shared vocabulary (function words first, then
//! academic words) and from the course's subject, so that topic words cluster
//! in their courses as they do in real classes. Everything follows from the
//! seed.

use chrono::{DateTime, Duration, TimeZone, Utc};
use classroom_search::Doc;
use rand::Rng;
use rand::distributions::{Distribution, WeightedIndex};
use rand_chacha::ChaCha8Rng;
use uuid::Uuid;

const VOCABULARY: &str = include_str!("vocabulary.txt");

/// Share of a segment's words drawn from the course's subject.
const SUBJECT_SHARE: f64 = 0.28;
const TENANTS: usize = 40;
/// A sentence ends after a word with this probability.
const SENTENCE_END: f64 = 1.0 / 11.0;

pub(crate) struct Vocabulary {
    /// "general" then "academic" words, most frequent first.
    pub(crate) shared: Vec<String>,
    /// Number of "general" words at the head of `shared`.
    pub(crate) general_len: usize,
    pub(crate) subjects: Vec<Subject>,
}

pub(crate) struct Subject {
    pub(crate) name: String,
    /// Most frequent first.
    pub(crate) words: Vec<String>,
}

impl Vocabulary {
    pub(crate) fn load() -> Vocabulary {
        let mut general = Vec::new();
        let mut academic = Vec::new();
        let mut subjects: Vec<Subject> = Vec::new();
        let mut section = "";
        for line in VOCABULARY.lines() {
            let line = line.trim();
            if line.starts_with("# ") || line.is_empty() {
                continue;
            }
            if let Some(name) = line.strip_prefix("## ") {
                section = if let Some(subject) = name.strip_prefix("subject ") {
                    subjects.push(Subject {
                        name: subject.to_string(),
                        words: Vec::new(),
                    });
                    "subject"
                } else if name == "general" {
                    "general"
                } else {
                    "academic"
                };
                continue;
            }
            let words = line.split_whitespace().map(str::to_string);
            match section {
                "general" => general.extend(words),
                "academic" => academic.extend(words),
                _ => {
                    if let Some(s) = subjects.last_mut() {
                        s.words.extend(words);
                    }
                }
            }
        }
        // Plurals and third persons after the base forms: more distinct
        // words, and work for the stemmers.
        inflect(&mut academic);
        for s in &mut subjects {
            inflect(&mut s.words);
        }
        let general = dedup(general);
        let general_len = general.len();
        let mut shared = general;
        shared.extend(academic);
        let shared = dedup(shared);
        for s in &mut subjects {
            s.words = dedup(std::mem::take(&mut s.words));
        }
        Vocabulary {
            shared,
            general_len,
            subjects,
        }
    }

    pub(crate) fn distinct_words(&self) -> usize {
        let mut all: Vec<&str> = self.shared.iter().map(String::as_str).collect();
        for s in &self.subjects {
            all.extend(s.words.iter().map(String::as_str));
        }
        all.sort_unstable();
        all.dedup();
        all.len()
    }
}

fn inflect(words: &mut Vec<String>) {
    let extra: Vec<String> = words
        .iter()
        .filter(|w| {
            w.len() >= 4
                && w.chars().all(|c| c.is_ascii_lowercase())
                && !w.ends_with(['s', 'x', 'y', 'h', 'z'])
        })
        .map(|w| format!("{w}s"))
        .collect();
    words.extend(extra);
}

fn dedup(words: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    words
        .into_iter()
        .filter(|w| seen.insert(w.clone()))
        .collect()
}

fn zipf(n: usize) -> WeightedIndex<f64> {
    // Invariant: n > 0 (every list in vocabulary.txt has words), so the
    // weights are positive and finite.
    WeightedIndex::new((1..=n).map(|rank| 1.0 / rank as f64)).expect("non-empty word list")
}

pub(crate) struct Replay {
    pub(crate) replay_id: Uuid,
    pub(crate) tenant: usize,
    pub(crate) subject: usize,
    pub(crate) docs: Vec<Doc>,
}

pub(crate) struct Corpus {
    pub(crate) tenants: Vec<Uuid>,
    pub(crate) replays: Vec<Replay>,
    pub(crate) segments: usize,
    pub(crate) words: usize,
    pub(crate) courses: usize,
    pub(crate) teachers: usize,
}

struct Course {
    id: Uuid,
    subject: usize,
    teacher: Uuid,
}

fn uuid(rng: &mut ChaCha8Rng) -> Uuid {
    uuid::Builder::from_random_bytes(rng.r#gen()).into_uuid()
}

pub(crate) fn generate(
    vocabulary: &Vocabulary,
    hours: f64,
    rng: &mut ChaCha8Rng,
    mut progress: impl FnMut(&Corpus, f64),
) -> Corpus {
    let shared = zipf(vocabulary.shared.len());
    let subject_words: Vec<WeightedIndex<f64>> = vocabulary
        .subjects
        .iter()
        .map(|s| zipf(s.words.len()))
        .collect();

    let tenants: Vec<Uuid> = (0..TENANTS).map(|_| uuid(rng)).collect();
    // A few big institutions, a long tail of small ones.
    let tenant_size = WeightedIndex::new((1..=TENANTS).map(|r| 1.0 / (r as f64).powf(0.8)))
        .expect("positive weights");
    let mut courses: Vec<Vec<Course>> = Vec::new();
    let mut teachers = 0;
    for _ in 0..TENANTS {
        let n_courses = rng.gen_range(3..=12);
        let staff: Vec<Uuid> = (0..n_courses / 2 + 1).map(|_| uuid(rng)).collect();
        teachers += staff.len();
        courses.push(
            (0..n_courses)
                .map(|_| Course {
                    id: uuid(rng),
                    subject: rng.gen_range(0..vocabulary.subjects.len()),
                    teacher: staff[rng.gen_range(0..staff.len())],
                })
                .collect(),
        );
    }
    let term_start = Utc
        .with_ymd_and_hms(2024, 9, 2, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC);

    let mut corpus = Corpus {
        tenants,
        replays: Vec::new(),
        segments: 0,
        words: 0,
        courses: courses.iter().map(Vec::len).sum(),
        teachers,
    };
    let target_ms = (hours * 3_600_000.0) as u64;
    let mut total_ms = 0u64;
    let mut last_report = 0u64;
    while total_ms < target_ms {
        let tenant = tenant_size.sample(rng);
        let course = &courses[tenant][rng.gen_range(0..courses[tenant].len())];
        let replay_id = uuid(rng);
        let session_id = uuid(rng);
        let date = term_start
            + Duration::days(rng.gen_range(0..300))
            + Duration::minutes(rng.gen_range(8 * 60..18 * 60));
        let length_ms = rng.gen_range(45..=90) * 60_000u64;
        let mut docs = Vec::new();
        let mut start_ms = 0;
        let mut sentence_start = true;
        while start_ms < length_ms {
            let end_ms = start_ms + rng.gen_range(6_000..=10_000);
            let n_words = ((end_ms - start_ms) as f64 / 400.0) as i64 + rng.gen_range(-3..=3);
            let mut text = String::new();
            for _ in 0..n_words.max(4) {
                let word = if rng.gen_bool(SUBJECT_SHARE) {
                    let s = &vocabulary.subjects[course.subject];
                    &s.words[subject_words[course.subject].sample(rng)]
                } else {
                    &vocabulary.shared[shared.sample(rng)]
                };
                if !text.is_empty() {
                    text.push(' ');
                }
                if sentence_start {
                    let mut chars = word.chars();
                    if let Some(first) = chars.next() {
                        text.extend(first.to_uppercase());
                        text.push_str(chars.as_str());
                    }
                } else {
                    text.push_str(word);
                }
                sentence_start = rng.gen_bool(SENTENCE_END);
                if sentence_start {
                    text.push('.');
                } else if rng.gen_bool(0.04) {
                    text.push(',');
                }
                corpus.words += 1;
            }
            docs.push(Doc {
                tenant_id: corpus.tenants[tenant],
                replay_id,
                session_id,
                course_id: Some(course.id),
                teacher_id: Some(course.teacher),
                date,
                start_ms,
                end_ms,
                kind: "transcript".to_string(),
                text,
            });
            start_ms = end_ms;
        }
        total_ms += length_ms;
        corpus.segments += docs.len();
        corpus.replays.push(Replay {
            replay_id,
            tenant,
            subject: course.subject,
            docs,
        });
        if total_ms - last_report >= 50 * 3_600_000 {
            last_report = total_ms;
            progress(&corpus, total_ms as f64 / 3_600_000.0);
        }
    }
    corpus
}
