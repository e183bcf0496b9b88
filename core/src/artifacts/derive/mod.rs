//! The pure part of the artifact pipeline: from a session's events, its
//! transcript and its slides' text to one timeline, chapters, highlights and
//! a summary. No I/O: the same inputs always give the same artifacts.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use protocol::event::Scene;
use protocol::{DeckId, Envelope, EventBody};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A chapter boundary closer than this to the previous one is folded into it.
pub(crate) const MIN_CHAPTER_MS: u64 = 8_000;
/// Chapters longer than this are split at the sharpest topic shift.
pub(crate) const SPLIT_CHAPTER_MS: u64 = 240_000;
/// A topic-shift split leaves at least this much on each side.
const MIN_TOPIC_MS: u64 = 90_000;
/// Engagement is counted in windows this long.
const ENGAGEMENT_WINDOW_MS: u64 = 30_000;

// --- the media clock -------------------------------------------------------

/// Maps wall-clock instants to the recording's media time (ms from media
/// start). Each recorder run (`recording.armed`) starts at a wall-clock
/// instant and a media offset; an instant belongs to the last run that had
/// started by then. Without a recording the clock starts at
/// `session.started`.
#[derive(Debug, Clone)]
pub(crate) struct Clock {
    runs: Vec<(DateTime<Utc>, u64)>,
    origin: Option<DateTime<Utc>>,
}

impl Clock {
    pub(crate) fn from_events(events: &[Envelope]) -> Clock {
        let mut runs = Vec::new();
        let mut origin = None;
        for ev in events {
            match &ev.body {
                EventBody::RecordingArmed {
                    started_at,
                    offset_ms,
                } => runs.push((*started_at, *offset_ms)),
                EventBody::SessionStarted { .. } if origin.is_none() => {
                    origin = Some(ev.occurred_at)
                }
                _ => {}
            }
        }
        runs.sort_by_key(|r| r.0);
        Clock { runs, origin }
    }

    pub(crate) fn media_ms(&self, at: DateTime<Utc>) -> u64 {
        let run = self
            .runs
            .iter()
            .rev()
            .find(|(start, _)| *start <= at)
            .or_else(|| self.runs.first());
        let (start, offset) = match (run, self.origin) {
            (Some(r), _) => *r,
            (None, Some(o)) => (o, 0),
            (None, None) => return 0,
        };
        let d = (at - start).num_milliseconds().max(0) as u64;
        offset + d
    }
}

// --- the transcript --------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = TranscriptWord)]
pub(crate) struct Word {
    pub start_ms: u64,
    pub end_ms: u64,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct TranscriptSegment {
    pub start_ms: u64,
    pub end_ms: u64,
    pub text: String,
    #[serde(default)]
    pub words: Vec<Word>,
    /// The seat whose voice dominates the segment, when one does (from the
    /// raw per-participant tracks); its words are sealed under that
    /// person's key at rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speaker: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct Transcript {
    pub model: String,
    pub duration_ms: u64,
    pub segments: Vec<TranscriptSegment>,
}

impl Transcript {
    pub(crate) fn words(&self) -> impl Iterator<Item = &Word> {
        self.segments.iter().flat_map(|s| s.words.iter())
    }

    /// WebVTT: a cue per segment, long segments cut at word boundaries so no
    /// cue runs past 7 s.
    pub(crate) fn to_vtt(&self) -> String {
        let mut out = String::from("WEBVTT\n\n");
        let mut n = 0;
        for cue in self.cues(7_000) {
            n += 1;
            out.push_str(&format!(
                "{n}\n{} --> {}\n{}\n\n",
                vtt_time(cue.0),
                vtt_time(cue.1),
                cue.2
            ));
        }
        out
    }

    fn cues(&self, max_ms: u64) -> Vec<(u64, u64, String)> {
        let mut cues = Vec::new();
        for s in &self.segments {
            if s.words.is_empty() || s.end_ms - s.start_ms <= max_ms {
                if !s.text.trim().is_empty() {
                    cues.push((
                        s.start_ms,
                        s.end_ms.max(s.start_ms + 1),
                        s.text.trim().into(),
                    ));
                }
                continue;
            }
            let mut cur: Vec<&Word> = Vec::new();
            for w in &s.words {
                if let Some(first) = cur.first()
                    && w.end_ms.saturating_sub(first.start_ms) > max_ms
                {
                    cues.push(cue_of(&cur));
                    cur.clear();
                }
                cur.push(w);
            }
            if !cur.is_empty() {
                cues.push(cue_of(&cur));
            }
        }
        cues
    }
}

fn cue_of(words: &[&Word]) -> (u64, u64, String) {
    let text = words
        .iter()
        .map(|w| w.text.trim())
        .collect::<Vec<_>>()
        .join(" ");
    let start = words[0].start_ms;
    let end = words[words.len() - 1].end_ms.max(start + 1);
    (start, end, text)
}

fn vtt_time(ms: u64) -> String {
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

// --- the timeline ----------------------------------------------------------

/// One class event placed on the media clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = TimelineMarker)]
pub(crate) struct Marker {
    pub at_ms: u64,
    pub seq: u64,
    /// The event type (`slide.changed`, `question.asked`...).
    pub kind: String,
    pub label: String,
    #[serde(default)]
    pub detail: Value,
}

/// Slide text by deck and page (0-based), from `POST /decks`.
pub(crate) type SlideText = HashMap<(DeckId, u32), String>;

/// A slide's title: its first line with letters in it.
pub(crate) fn slide_title(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .find(|l| l.chars().filter(|c| c.is_alphabetic()).count() >= 2)
        .map(|l| truncate(l, 80))
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

fn scene_name(s: Scene) -> &'static str {
    match s {
        Scene::Camera => "Camera",
        Scene::Slides => "Slides",
        Scene::Screen => "Screen share",
        Scene::Whiteboard => "Whiteboard",
        Scene::Split => "Split view",
    }
}

/// Every teaching event of the class on the media clock, in seq order.
pub(crate) fn markers(events: &[Envelope], clock: &Clock, slides: &SlideText) -> Vec<Marker> {
    let mut out = Vec::new();
    let mut questions: HashMap<String, String> = HashMap::new();
    let mut polls: HashMap<String, (String, Vec<String>)> = HashMap::new();
    for ev in events {
        let at_ms = clock.media_ms(ev.occurred_at);
        let seq = ev.seq.get();
        let (kind, label, detail) = match &ev.body {
            EventBody::SceneChanged { scene } => (
                "scene.changed",
                scene_name(*scene).to_owned(),
                json!({ "scene": scene }),
            ),
            EventBody::SlideChanged {
                deck_id,
                index,
                page_count,
            } => {
                let title = slides
                    .get(&(*deck_id, *index))
                    .and_then(|t| slide_title(t))
                    .unwrap_or_else(|| format!("Slide {}", index + 1));
                (
                    "slide.changed",
                    title,
                    json!({ "deck_id": deck_id, "index": index, "page_count": page_count }),
                )
            }
            EventBody::QuestionAsked {
                question_id, text, ..
            } => {
                questions.insert(question_id.to_string(), text.clone());
                (
                    "question.asked",
                    truncate(text, 120),
                    json!({ "question_id": question_id }),
                )
            }
            EventBody::QuestionAnswered {
                question_id,
                answer,
            } => (
                "question.answered",
                questions
                    .get(&question_id.to_string())
                    .map(|q| truncate(q, 120))
                    .unwrap_or_else(|| "Question answered".into()),
                json!({ "question_id": question_id, "answer": answer }),
            ),
            EventBody::PollOpened {
                poll_id,
                question,
                options,
                ..
            } => {
                polls.insert(poll_id.to_string(), (question.clone(), options.clone()));
                (
                    "poll.opened",
                    truncate(question, 120),
                    json!({ "poll_id": poll_id, "options": options }),
                )
            }
            EventBody::PollClosed { poll_id, results } => (
                "poll.closed",
                polls
                    .get(&poll_id.to_string())
                    .map(|p| truncate(&p.0, 120))
                    .unwrap_or_else(|| "Poll closed".into()),
                json!({ "poll_id": poll_id, "results": results }),
            ),
            EventBody::ChatMessage { text, .. } => ("chat.message", truncate(text, 120), json!({})),
            EventBody::HandRaised { .. } => ("hand.raised", "Hand raised".into(), json!({})),
            EventBody::CtaShown { label, url, .. } => {
                ("cta.shown", truncate(label, 120), json!({ "url": url }))
            }
            EventBody::RecordingGap {
                from_ms,
                to_ms,
                reason,
            } => {
                out.push(Marker {
                    at_ms: *from_ms,
                    seq,
                    kind: "recording.gap".into(),
                    label: format!("Recording gap ({reason})"),
                    detail: json!({ "to_ms": to_ms }),
                });
                continue;
            }
            _ => continue,
        };
        out.push(Marker {
            at_ms,
            seq,
            kind: kind.into(),
            label,
            detail,
        });
    }
    out
}

// --- chapters --------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct Chapter {
    pub start_ms: u64,
    pub end_ms: u64,
    pub title: String,
    /// The scene or slide change that opened it (none for the class's
    /// opening or a topic shift found in the transcript).
    pub source_event_seq: Option<u64>,
    /// "start", "scene", "slide" or "topic".
    pub source: String,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct View {
    scene: Option<Scene>,
    slide: Option<(DeckId, u32)>,
}

/// Chapters open at scene and slide changes (one chapter per distinct thing
/// on screen; changes within [`MIN_CHAPTER_MS`] fold into one), long
/// chapters are split at transcript topic shifts, and each is titled from
/// its slide's text, else its transcript's key terms, else its scene.
pub(crate) fn chapters(
    markers: &[Marker],
    transcript: &Transcript,
    slides: &SlideText,
    duration_ms: u64,
) -> Vec<Chapter> {
    struct Open {
        start_ms: u64,
        seq: Option<u64>,
        source: &'static str,
        view: View,
    }
    let mut view = View {
        scene: None,
        slide: None,
    };
    let mut opens: Vec<Open> = vec![Open {
        start_ms: 0,
        seq: None,
        source: "start",
        view,
    }];
    for m in markers {
        let before = view;
        let source = match m.kind.as_str() {
            "scene.changed" => {
                view.scene = serde_json::from_value(m.detail["scene"].clone()).ok();
                "scene"
            }
            "slide.changed" => {
                let deck: Option<DeckId> = serde_json::from_value(m.detail["deck_id"].clone()).ok();
                let index = m.detail["index"].as_u64().map(|i| i as u32);
                if let (Some(d), Some(i)) = (deck, index) {
                    view.slide = Some((d, i));
                }
                "slide"
            }
            _ => continue,
        };
        if view == before {
            continue;
        }
        // a slide change while slides are not on screen changes nothing seen
        if source == "slide" && !shows_slides(view.scene) && view.scene.is_some() {
            if let Some(last) = opens.last_mut() {
                last.view = view;
            }
            continue;
        }
        let last = opens.last_mut().expect("opening chapter");
        if m.at_ms < last.start_ms + MIN_CHAPTER_MS {
            // a burst of changes: one chapter showing where it settled
            last.view = view;
            if last.seq.is_none() && last.start_ms > 0 {
                last.seq = Some(m.seq);
            }
            continue;
        }
        opens.push(Open {
            start_ms: m.at_ms,
            seq: Some(m.seq),
            source,
            view,
        });
    }
    let duration_ms = duration_ms.max(opens.last().map(|o| o.start_ms + 1).unwrap_or(1));
    let mut out = Vec::new();
    for (i, o) in opens.iter().enumerate() {
        let end_ms = opens.get(i + 1).map(|n| n.start_ms).unwrap_or(duration_ms);
        if end_ms <= o.start_ms {
            continue;
        }
        // the class's opening before the first change, if it is too short
        // to be worth a chapter, is left to the next one
        if o.source == "start" && end_ms - o.start_ms < MIN_CHAPTER_MS && opens.len() > 1 {
            continue;
        }
        let slide_title_of = |v: &View| {
            v.slide
                .filter(|_| shows_slides(v.scene) || v.scene.is_none())
                .and_then(|s| slides.get(&s).and_then(|t| slide_title(t)))
        };
        let pieces = split_topics(transcript, o.start_ms, end_ms);
        for (j, (s, e)) in pieces.iter().enumerate() {
            let terms = key_terms_between(transcript, *s, *e, 3);
            let title = if j == 0 {
                slide_title_of(&o.view)
                    .or_else(|| (!terms.is_empty()).then(|| capitalize(&terms.join(", "))))
                    .unwrap_or_else(|| match o.view.scene {
                        Some(sc) => scene_name(sc).to_owned(),
                        None => "Introduction".to_owned(),
                    })
            } else if terms.is_empty() {
                "Continued".to_owned()
            } else {
                capitalize(&terms.join(", "))
            };
            out.push(Chapter {
                start_ms: *s,
                end_ms: *e,
                title,
                source_event_seq: if j == 0 { o.seq } else { None },
                source: if j == 0 { o.source } else { "topic" }.to_owned(),
            });
        }
    }
    if let Some(first) = out.first_mut() {
        // the first chapter opens the recording
        if first.start_ms < MIN_CHAPTER_MS {
            first.start_ms = 0;
        }
    }
    out
}

fn shows_slides(scene: Option<Scene>) -> bool {
    matches!(scene, Some(Scene::Slides) | Some(Scene::Split))
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// Splits `[start, end)` at topic shifts: the word stream is cut into 30 s
/// blocks, and the boundary where the vocabulary of the minute before and
/// the minute after overlap least (cosine similarity below 0.1) becomes a
/// cut, recursively, while both sides keep at least [`MIN_TOPIC_MS`].
fn split_topics(t: &Transcript, start: u64, end: u64) -> Vec<(u64, u64)> {
    if end - start < SPLIT_CHAPTER_MS {
        return vec![(start, end)];
    }
    let block = 30_000u64;
    let mut best: Option<(f64, u64)> = None;
    let mut cut = start + MIN_TOPIC_MS;
    while cut + MIN_TOPIC_MS <= end {
        let before = bag(t, cut.saturating_sub(2 * block).max(start), cut);
        let after = bag(t, cut, (cut + 2 * block).min(end));
        if !before.is_empty() && !after.is_empty() {
            let sim = cosine(&before, &after);
            if best.is_none_or(|(b, _)| sim < b) {
                best = Some((sim, cut));
            }
        }
        cut += block;
    }
    match best {
        Some((sim, cut)) if sim < 0.1 => {
            // the cut goes to the first word at or after it
            let at = t
                .words()
                .find(|w| w.start_ms >= cut)
                .map(|w| w.start_ms)
                .unwrap_or(cut)
                .min(end - 1);
            let mut out = split_topics(t, start, at);
            out.extend(split_topics(t, at, end));
            out
        }
        _ => vec![(start, end)],
    }
}

fn bag(t: &Transcript, from: u64, to: u64) -> HashMap<String, f64> {
    let mut m = HashMap::new();
    for w in t.words().filter(|w| w.start_ms >= from && w.start_ms < to) {
        if let Some(term) = term_of(&w.text) {
            *m.entry(term).or_insert(0.0) += 1.0;
        }
    }
    m
}

fn cosine(a: &HashMap<String, f64>, b: &HashMap<String, f64>) -> f64 {
    let dot: f64 = a.iter().filter_map(|(k, v)| b.get(k).map(|w| v * w)).sum();
    let na: f64 = a.values().map(|v| v * v).sum::<f64>().sqrt();
    let nb: f64 = b.values().map(|v| v * v).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

// --- key terms -------------------------------------------------------------

/// Words too common to say what a class is about.
const STOPWORDS: &str = "a about above after again against all also am an and any are as at be because been before being below between both but by can could did do does doing down during each few for from further had has have having he her here hers herself him himself his how i if in into is it its itself just let lets like me more most my myself no nor not now of off on once only or other our ours ourselves out over own same she should so some such than that thats the their theirs them themselves then there these they this those through to too under until up very was we were what when where which while who whom why will with would you your yours yourself yourselves okay ok yeah really well going get got gonna one two three first second next today thing things something way know think see look say said make made much many may might must need right now just also even still lot lots kind sort mean want come back take use used using bit little good great new time times every another call called happen happens";

fn stopwords() -> &'static HashSet<&'static str> {
    static SET: std::sync::OnceLock<HashSet<&'static str>> = std::sync::OnceLock::new();
    SET.get_or_init(|| STOPWORDS.split_whitespace().collect())
}

/// A word's index term: lowercase letters only, four or more, not a stop
/// word, crudely singular.
fn term_of(word: &str) -> Option<String> {
    let w: String = word
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '\'')
        .collect::<String>()
        .to_lowercase();
    let w = w.trim_end_matches("'s").trim_matches('\'').to_owned();
    if w.chars().count() < 4 || w.chars().any(|c| c.is_ascii_digit()) {
        return None;
    }
    if stopwords().contains(w.as_str()) {
        return None;
    }
    Some(singular(&w))
}

fn singular(w: &str) -> String {
    if let Some(s) = w.strip_suffix("ies")
        && s.len() >= 3
    {
        return format!("{s}y");
    }
    if w.ends_with("sses") || w.ends_with("ss") || w.ends_with("us") || w.ends_with("is") {
        return w.to_owned();
    }
    if let Some(s) = w.strip_suffix('s')
        && s.len() >= 4
    {
        return s.to_owned();
    }
    w.to_owned()
}

/// The `n` most frequent terms spoken in `[from, to)`, most frequent first
/// (ties: earliest first).
fn key_terms_between(t: &Transcript, from: u64, to: u64, n: usize) -> Vec<String> {
    let mut counts: BTreeMap<String, (u32, u64)> = BTreeMap::new();
    for w in t.words().filter(|w| w.start_ms >= from && w.start_ms < to) {
        if let Some(term) = term_of(&w.text) {
            let e = counts.entry(term).or_insert((0, w.start_ms));
            e.0 += 1;
        }
    }
    let mut v: Vec<(String, (u32, u64))> = counts.into_iter().filter(|(_, c)| c.0 >= 2).collect();
    v.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.1.1.cmp(&b.1.1)));
    v.into_iter().take(n).map(|(t, _)| t).collect()
}

// --- highlights ------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct Highlight {
    pub start_ms: u64,
    pub end_ms: u64,
    /// "question", "poll", "engagement", "cta".
    pub kind: String,
    pub title: String,
    #[serde(default)]
    pub detail: Value,
}

/// Answered (or much upvoted) questions with their answers, every closed
/// poll with its results, calls to action, and the moments when the class
/// reacted most (chat, hands, questions, votes well above the class's
/// usual rate).
pub(crate) fn highlights(events: &[Envelope], clock: &Clock, duration_ms: u64) -> Vec<Highlight> {
    struct Q {
        at: u64,
        text: String,
        votes: u32,
        answered: Option<(u64, Option<String>)>,
    }
    let mut qs: BTreeMap<String, Q> = BTreeMap::new();
    let mut q_order: Vec<String> = Vec::new();
    let mut polls: BTreeMap<String, (u64, String, Vec<String>, Option<u32>)> = BTreeMap::new();
    let mut out = Vec::new();
    let mut activity: Vec<u64> = Vec::new();
    for ev in events {
        let at = clock.media_ms(ev.occurred_at);
        match &ev.body {
            EventBody::QuestionAsked {
                question_id, text, ..
            } => {
                let id = question_id.to_string();
                q_order.push(id.clone());
                qs.insert(
                    id,
                    Q {
                        at,
                        text: text.clone(),
                        votes: 0,
                        answered: None,
                    },
                );
                activity.push(at);
            }
            EventBody::QuestionUpvoted { question_id, .. } => {
                if let Some(q) = qs.get_mut(&question_id.to_string()) {
                    q.votes += 1;
                }
                activity.push(at);
            }
            EventBody::QuestionAnswered {
                question_id,
                answer,
            } => {
                if let Some(q) = qs.get_mut(&question_id.to_string()) {
                    q.answered = Some((at, answer.clone()));
                }
            }
            EventBody::PollOpened {
                poll_id,
                question,
                options,
                correct_option,
            } => {
                polls.insert(
                    poll_id.to_string(),
                    (at, question.clone(), options.clone(), *correct_option),
                );
            }
            EventBody::PollVoted { .. } => activity.push(at),
            EventBody::PollClosed { poll_id, results } => {
                if let Some((opened, question, options, correct)) = polls.get(&poll_id.to_string())
                {
                    let results_json = serde_json::to_value(results).unwrap_or(Value::Null);
                    let total: u64 = results_json
                        .as_array()
                        .map(|a| a.iter().filter_map(|r| r["votes"].as_u64()).sum())
                        .unwrap_or(0);
                    let top = results_json.as_array().and_then(|a| {
                        a.iter()
                            .max_by_key(|r| r["votes"].as_u64().unwrap_or(0))
                            .and_then(|r| r["option"].as_u64())
                    });
                    let title = match top.and_then(|i| options.get(i as usize)) {
                        Some(o) if total > 0 => {
                            format!(
                                "Poll: {} ({} votes; most chose \u{201c}{o}\u{201d})",
                                truncate(question, 100),
                                total
                            )
                        }
                        _ => format!("Poll: {}", truncate(question, 100)),
                    };
                    out.push(Highlight {
                        start_ms: *opened,
                        end_ms: at.max(*opened + 1),
                        kind: "poll".into(),
                        title,
                        detail: json!({
                            "poll_id": poll_id,
                            "question": question,
                            "options": options,
                            "correct_option": correct,
                            "results": results_json,
                            "votes": total,
                        }),
                    });
                }
            }
            EventBody::ChatMessage { .. } | EventBody::HandRaised { .. } => activity.push(at),
            EventBody::CtaShown { label, url, .. } => out.push(Highlight {
                start_ms: at,
                end_ms: at + 1,
                kind: "cta".into(),
                title: truncate(label, 120),
                detail: json!({ "url": url }),
            }),
            _ => {}
        }
    }
    for id in &q_order {
        let q = &qs[id];
        if q.answered.is_none() && q.votes < 2 {
            continue;
        }
        let end = q
            .answered
            .as_ref()
            .map(|a| a.0)
            .unwrap_or(q.at + 30_000)
            .max(q.at + 1);
        out.push(Highlight {
            start_ms: q.at,
            end_ms: end,
            kind: "question".into(),
            title: truncate(&q.text, 120),
            detail: json!({
                "question_id": id,
                "answered": q.answered.is_some(),
                "answer": q.answered.as_ref().and_then(|a| a.1.clone()),
                "upvotes": q.votes,
            }),
        });
    }
    out.extend(engagement(&activity, duration_ms));
    out.sort_by(|a, b| a.start_ms.cmp(&b.start_ms).then(a.kind.cmp(&b.kind)));
    out
}

/// Windows whose activity is at least 3 events and twice the class's mean
/// per window (and 2 standard deviations above it), merged when adjacent.
fn engagement(activity: &[u64], duration_ms: u64) -> Vec<Highlight> {
    if activity.is_empty() {
        return Vec::new();
    }
    let windows = (duration_ms.max(1).div_ceil(ENGAGEMENT_WINDOW_MS)).max(1) as usize;
    let mut counts = vec![0u32; windows];
    for a in activity {
        let i = ((a / ENGAGEMENT_WINDOW_MS) as usize).min(windows - 1);
        counts[i] += 1;
    }
    let mean = counts.iter().sum::<u32>() as f64 / windows as f64;
    let var = counts
        .iter()
        .map(|c| (*c as f64 - mean).powi(2))
        .sum::<f64>()
        / windows as f64;
    let threshold = (mean + 2.0 * var.sqrt()).max(2.0 * mean).max(3.0);
    let mut out: Vec<Highlight> = Vec::new();
    for (i, c) in counts.iter().enumerate() {
        if (*c as f64) < threshold {
            continue;
        }
        let start = i as u64 * ENGAGEMENT_WINDOW_MS;
        let end = (start + ENGAGEMENT_WINDOW_MS).min(duration_ms.max(start + 1));
        match out.last_mut() {
            Some(h) if h.end_ms == start => {
                h.end_ms = end;
                let n = h.detail["events"].as_u64().unwrap_or(0) + *c as u64;
                h.detail = json!({ "events": n });
                h.title = format!("Lively moment: {n} reactions");
            }
            _ => out.push(Highlight {
                start_ms: start,
                end_ms: end,
                kind: "engagement".into(),
                title: format!("Lively moment: {c} reactions"),
                detail: json!({ "events": c }),
            }),
        }
    }
    out
}

// --- summary ---------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct KeyTerm {
    pub term: String,
    pub count: u32,
    /// Where it is first said (or shown).
    pub first_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = ClassSummary)]
pub(crate) struct Summary {
    pub duration_ms: u64,
    pub words: usize,
    pub key_terms: Vec<KeyTerm>,
    /// The chapters' titles in order.
    pub outline: Vec<String>,
    pub questions: usize,
    pub polls: usize,
}

/// Key terms: spoken terms weighted by how often they are said, doubled
/// when a slide shown in the class also has them.
pub(crate) fn summary(
    transcript: &Transcript,
    shown_slides: &[String],
    chapters: &[Chapter],
    highlights: &[Highlight],
    duration_ms: u64,
) -> Summary {
    let mut counts: BTreeMap<String, (u32, u64)> = BTreeMap::new();
    let mut words = 0;
    for w in transcript.words() {
        words += 1;
        if let Some(t) = term_of(&w.text) {
            let e = counts.entry(t).or_insert((0, w.start_ms));
            e.0 += 1;
        }
    }
    let on_slides: HashSet<String> = shown_slides
        .iter()
        .flat_map(|s| s.split(|c: char| !c.is_alphanumeric() && c != '\''))
        .filter_map(term_of)
        .collect();
    let mut scored: Vec<(f64, String, u32, u64)> = counts
        .into_iter()
        .filter(|(_, c)| c.0 >= 2)
        .map(|(t, (n, first))| {
            let boost = if on_slides.contains(&t) { 2.0 } else { 1.0 };
            (n as f64 * boost, t, n, first)
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.3.cmp(&b.3)));
    Summary {
        duration_ms,
        words,
        key_terms: scored
            .into_iter()
            .take(12)
            .map(|(_, term, count, first_ms)| KeyTerm {
                term,
                count,
                first_ms,
            })
            .collect(),
        outline: chapters.iter().map(|c| c.title.clone()).collect(),
        questions: highlights.iter().filter(|h| h.kind == "question").count(),
        polls: highlights.iter().filter(|h| h.kind == "poll").count(),
    }
}

#[cfg(test)]
mod tests;
