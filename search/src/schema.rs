//! The index layout: which field holds what, and the two analyzers.
//!
//! Text is indexed twice. `text` goes through the English stemmer with
//! positions, for ranking and phrases. `text_words` keeps the lowercased words
//! unstemmed and without positions, for typo tolerance only: a typo'd word
//! often stems to something unrelated ("derivatvie" → "derivatvi" against the
//! indexed "deriv"), while against the plain word it is one edit away.

use tantivy::schema::{
    DateOptions, DateTimePrecision, FAST, Field, IndexRecordOption, STORED, STRING, Schema,
    TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer,
    TextAnalyzer, TokenizerManager,
};

/// Stemmed English, the analyzer of `text` (and of query words and phrases).
pub(crate) const STEMMED: &str = "classroom_en_stem";
/// Lowercased, folded, unstemmed words, the analyzer of `text_words`.
pub(crate) const WORDS: &str = "classroom_words";

/// Words longer than this are dropped (base64 blobs, URLs pasted in chat).
const MAX_TOKEN_LEN: usize = 40;

#[derive(Clone, Copy)]
pub(crate) struct Fields {
    pub(crate) tenant: Field,
    pub(crate) replay: Field,
    pub(crate) session: Field,
    pub(crate) course: Field,
    pub(crate) teacher: Field,
    pub(crate) date: Field,
    pub(crate) start_ms: Field,
    pub(crate) end_ms: Field,
    pub(crate) kind: Field,
    pub(crate) text: Field,
    pub(crate) text_words: Field,
}

pub(crate) fn build() -> (Schema, Fields) {
    let mut b = Schema::builder();
    // Ids are indexed as their hyphenated text: exact-match filters through
    // the inverted index, and the deletion term of `replace_replay`.
    let tenant = b.add_text_field("tenant", STRING);
    let replay = b.add_text_field("replay", STRING | STORED);
    let session = b.add_text_field("session", STORED);
    let course = b.add_text_field("course", STRING);
    let teacher = b.add_text_field("teacher", STRING);
    // Date ranges are answered from the fast field (column scan), no need
    // for an inverted index of timestamps.
    let date = b.add_date_field(
        "date",
        DateOptions::from(FAST).set_precision(DateTimePrecision::Seconds),
    );
    let start_ms = b.add_u64_field("start_ms", STORED | FAST);
    let end_ms = b.add_u64_field("end_ms", STORED);
    let kind = b.add_text_field("kind", STRING | STORED);
    let text = b.add_text_field(
        "text",
        TextOptions::default().set_stored().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(STEMMED)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        ),
    );
    let text_words = b.add_text_field(
        "text_words",
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(WORDS)
                .set_fieldnorms(false)
                .set_index_option(IndexRecordOption::Basic),
        ),
    );
    let fields = Fields {
        tenant,
        replay,
        session,
        course,
        teacher,
        date,
        start_ms,
        end_ms,
        kind,
        text,
        text_words,
    };
    (b.build(), fields)
}

pub(crate) fn stemmed_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(MAX_TOKEN_LEN))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .filter(Stemmer::new(Language::English))
        .build()
}

pub(crate) fn words_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(MAX_TOKEN_LEN))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

/// Analyzers are not stored in the index: register them on every open.
pub(crate) fn register_analyzers(manager: &TokenizerManager) {
    manager.register(STEMMED, stemmed_analyzer());
    manager.register(WORDS, words_analyzer());
}

/// Dates are kept to the second, in the index and in range bounds alike.
pub(crate) fn to_date(d: chrono::DateTime<chrono::Utc>) -> tantivy::DateTime {
    tantivy::DateTime::from_timestamp_secs(d.timestamp())
}
