//! From a user's query to tantivy queries.
//!
//! Ranking in two tiers. Documents holding every word of the query (each
//! word exactly, by its stem, or within the typo distance) come first, by
//! BM25; only when there are fewer of them than asked for does a second pass
//! fill up with documents holding some of the words. Two passes were chosen
//! over one query with a big constant bonus for the conjunction: the first
//! pass is an intersection, cheaper than a union, and usually fills the page
//! alone, while the bonus query evaluates every clause twice on every search.
//!
//! Stopwords ("the", "of", ...) are indexed (phrases need them) but never
//! required: they only add to the score, unless the query has nothing else.

use std::collections::HashSet;
use std::ops::Bound;

use tantivy::Term;
use tantivy::query::{
    BooleanQuery, BoostQuery, ConstScoreQuery, FuzzyTermQuery, Occur, PhraseQuery, Query,
    RangeQuery, TermQuery,
};
use tantivy::schema::IndexRecordOption;
use tantivy::tokenizer::TextAnalyzer;

use crate::query_syntax::{self, Part};
use crate::schema::{self, Fields};
use crate::{Query as SearchQuery, SearchError};

/// What a typo'd match scores: a constant, below any exact match's BM25
/// (which also matches the fuzzy clause, so it always scores more).
const FUZZY_SCORE: f32 = 0.5;
/// Words of this many characters tolerate one edit (insertion, deletion,
/// substitution or transposition)...
const FUZZY_ONE_EDIT_FROM: usize = 5;
/// ...and of this many, two.
const FUZZY_TWO_EDITS_FROM: usize = 8;

/// English function words: never required, never fuzzy.
const STOPWORDS: &[&str] = &[
    "a", "about", "above", "after", "again", "all", "am", "an", "and", "any", "are", "as", "at",
    "be", "because", "been", "before", "being", "below", "between", "both", "but", "by", "can",
    "could", "did", "do", "does", "doing", "down", "during", "each", "few", "for", "from",
    "further", "had", "has", "have", "having", "he", "her", "here", "hers", "him", "his", "how",
    "i", "if", "in", "into", "is", "it", "its", "itself", "just", "me", "more", "most", "my", "no",
    "nor", "not", "now", "of", "off", "on", "once", "only", "or", "other", "our", "ours", "out",
    "over", "own", "same", "she", "should", "so", "some", "such", "than", "that", "the", "their",
    "theirs", "them", "then", "there", "these", "they", "this", "those", "through", "to", "too",
    "under", "until", "up", "very", "was", "we", "were", "what", "when", "where", "which", "while",
    "who", "whom", "why", "will", "with", "would", "you", "your", "yours",
];

pub(crate) struct Plan {
    /// Pass one: every required clause.
    pub(crate) all: Box<dyn Query>,
    /// Pass two, when the query has several required clauses: any of them.
    pub(crate) any: Option<Box<dyn Query>>,
    /// Stems to highlight when a long text is cut to a snippet.
    pub(crate) stems: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Clause {
    Word {
        stem: String,
        /// The word as indexed in `text_words`, for typo tolerance.
        word: String,
        /// 0: exact (stem) match only.
        edits: u8,
        stopword: bool,
    },
    /// (position, stem) pairs: positions keep the gaps of dropped tokens.
    Phrase(Vec<(usize, String)>),
}

pub(crate) fn plan(fields: Fields, q: &SearchQuery) -> Result<Plan, SearchError> {
    let parsed = query_syntax::parse(&q.text);
    let mut stemmed = schema::stemmed_analyzer();
    let mut words = schema::words_analyzer();

    let mut include: Vec<Clause> = Vec::new();
    let mut seen = HashSet::new();
    for part in &parsed.include {
        if let Some(c) = clause(part, &mut stemmed, &mut words)
            && seen.insert(c.clone())
        {
            include.push(c);
        }
    }
    if include.is_empty() {
        return Err(SearchError::Query(format!(
            "nothing to search for in {:?}",
            q.text
        )));
    }
    let exclude: Vec<Clause> = parsed
        .exclude
        .iter()
        .filter_map(|p| clause(p, &mut stemmed, &mut words))
        .collect();

    let stems = include
        .iter()
        .flat_map(|c| match c {
            Clause::Word { stem, .. } => vec![stem.clone()],
            Clause::Phrase(terms) => terms.iter().map(|(_, s)| s.clone()).collect(),
        })
        .collect();

    let all_stopwords = include
        .iter()
        .all(|c| matches!(c, Clause::Word { stopword: true, .. }));
    let (required, optional): (Vec<&Clause>, Vec<&Clause>) = include
        .iter()
        .partition(|c| all_stopwords || !matches!(c, Clause::Word { stopword: true, .. }));

    let mut common: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    for f in filters(fields, q) {
        // Filters narrow, they do not rank.
        common.push((Occur::Must, Box::new(ConstScoreQuery::new(f, 0.0))));
    }
    for c in &exclude {
        common.push((Occur::MustNot, clause_query(fields, c)));
    }
    for c in &optional {
        common.push((Occur::Should, clause_query(fields, c)));
    }

    let mut all: Vec<(Occur, Box<dyn Query>)> =
        common.iter().map(|(o, q)| (*o, q.box_clone())).collect();
    for c in &required {
        all.push((Occur::Must, clause_query(fields, c)));
    }
    let any = (required.len() > 1).then(|| {
        let mut any = common;
        let union = required
            .iter()
            .map(|c| (Occur::Should, clause_query(fields, c)))
            .collect();
        any.push((
            Occur::Must,
            Box::new(BooleanQuery::new(union)) as Box<dyn Query>,
        ));
        Box::new(BooleanQuery::new(any)) as Box<dyn Query>
    });
    Ok(Plan {
        all: Box::new(BooleanQuery::new(all)),
        any,
        stems,
    })
}

fn clause(part: &Part, stemmed: &mut TextAnalyzer, words: &mut TextAnalyzer) -> Option<Clause> {
    let (text, typed_word) = match part {
        Part::Word(w) => (w.as_str(), true),
        Part::Phrase(p) => (p.as_str(), false),
    };
    let mut stems = Vec::new();
    stemmed
        .token_stream(text)
        .process(&mut |t| stems.push((t.position, t.text.clone())));
    match stems.len() {
        0 => None,
        1 => {
            let mut plain = Vec::new();
            words
                .token_stream(text)
                .process(&mut |t| plain.push(t.text.clone()));
            let word = plain.pop().unwrap_or_default();
            let stopword = typed_word && STOPWORDS.contains(&word.as_str());
            let len = word.chars().count();
            // A quoted word means "exactly this"; numbers and codes have no
            // typos, "1945" is not "1946".
            let edits = if !typed_word || stopword || word.chars().any(|c| c.is_ascii_digit()) {
                0
            } else if len >= FUZZY_TWO_EDITS_FROM {
                2
            } else if len >= FUZZY_ONE_EDIT_FROM {
                1
            } else {
                0
            };
            let (_, stem) = stems.remove(0);
            Some(Clause::Word {
                stem,
                word,
                edits,
                stopword,
            })
        }
        // "well-known", "newton's law" (quoted) are phrases.
        _ => Some(Clause::Phrase(stems)),
    }
}

fn clause_query(fields: Fields, c: &Clause) -> Box<dyn Query> {
    match c {
        Clause::Word {
            stem, word, edits, ..
        } => {
            let exact = Box::new(TermQuery::new(
                Term::from_field_text(fields.text, stem),
                IndexRecordOption::WithFreqs,
            ));
            if *edits == 0 {
                return exact;
            }
            let fuzzy =
                FuzzyTermQuery::new(Term::from_field_text(fields.text_words, word), *edits, true);
            Box::new(BooleanQuery::new(vec![
                (Occur::Should, exact),
                (
                    Occur::Should,
                    Box::new(BoostQuery::new(Box::new(fuzzy), FUZZY_SCORE)),
                ),
            ]))
        }
        Clause::Phrase(terms) => {
            let terms: Vec<(usize, Term)> = terms
                .iter()
                .map(|(pos, s)| (*pos, Term::from_field_text(fields.text, s)))
                .collect();
            Box::new(PhraseQuery::new_with_offset(terms))
        }
    }
}

fn filters(fields: Fields, q: &SearchQuery) -> Vec<Box<dyn Query>> {
    let term = |field, value: &str| -> Box<dyn Query> {
        Box::new(TermQuery::new(
            Term::from_field_text(field, value),
            IndexRecordOption::Basic,
        ))
    };
    // The tenant filter is unconditional: there is no way to search across
    // tenants through this crate.
    let mut out = vec![term(fields.tenant, &q.tenant_id.to_string())];
    if let Some(id) = q.replay_id {
        out.push(term(fields.replay, &id.to_string()));
    }
    if let Some(id) = q.course_id {
        out.push(term(fields.course, &id.to_string()));
    }
    if let Some(id) = q.teacher_id {
        out.push(term(fields.teacher, &id.to_string()));
    }
    if let Some(kind) = &q.kind {
        out.push(term(fields.kind, kind));
    }
    if q.from.is_some() || q.to.is_some() {
        let bound = |d: Option<chrono::DateTime<chrono::Utc>>| match d {
            Some(d) => Bound::Included(Term::from_field_date(fields.date, schema::to_date(d))),
            None => Bound::Unbounded,
        };
        out.push(Box::new(RangeQuery::new(bound(q.from), bound(q.to))));
    }
    out
}
