//! Replay search: one tantivy index for every tenant's replays.
//!
//! A document is one timed piece of a replay (a transcript segment, a slide's
//! text, a chapter title, a question...). Queries are always scoped to a
//! tenant; stemming (English), phrase queries ("..."), typo tolerance and
//! filters by replay, course, teacher, date and kind.
//!
//! Query syntax (never an error, see `query_syntax`): words, `"exact
//! phrases"`, `-excluded` words or phrases. Documents holding every word rank
//! first (see `query_plan`).
//!
//! Writes go through one `IndexWriter` behind a mutex and are committed and
//! made visible to searches before `replace_replay`/`remove_replay` return.

#![warn(unreachable_pub)]

mod hit_text;
mod query_plan;
mod query_syntax;
mod schema;

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use tantivy::collector::TopDocs;
use tantivy::directory::MmapDirectory;
use tantivy::schema::Value;
use tantivy::{DocAddress, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};
use uuid::Uuid;

use crate::schema::Fields;

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("index: {0}")]
    Index(String),
    #[error("bad query: {0}")]
    Query(String),
    /// A document given to `replace_replay` does not belong to that replay.
    #[error("bad document: {0}")]
    Doc(String),
}

impl From<tantivy::TantivyError> for SearchError {
    fn from(e: tantivy::TantivyError) -> Self {
        SearchError::Index(e.to_string())
    }
}

/// One searchable, timed piece of a replay.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Doc {
    pub tenant_id: Uuid,
    pub replay_id: Uuid,
    pub session_id: Uuid,
    pub course_id: Option<Uuid>,
    pub teacher_id: Option<Uuid>,
    /// When the class took place (kept to the second).
    pub date: DateTime<Utc>,
    pub start_ms: u64,
    pub end_ms: u64,
    /// "transcript", "slide", "chapter", "question", "poll", "chat"...
    pub kind: String,
    pub text: String,
}

/// What to look for; `tenant_id` is mandatory, the rest narrows.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub tenant_id: Uuid,
    /// Words, `"exact phrases"`, `-excluded` words or phrases.
    pub text: String,
    pub replay_id: Option<Uuid>,
    pub course_id: Option<Uuid>,
    pub teacher_id: Option<Uuid>,
    /// Classes on or after this instant (to the second).
    pub from: Option<DateTime<Utc>>,
    /// Classes on or before this instant (to the second).
    pub to: Option<DateTime<Utc>>,
    pub kind: Option<String>,
    /// 0 means `DEFAULT_LIMIT`; more than `MAX_LIMIT` is cut to it.
    pub limit: usize,
}

pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 1000;

/// Added to the score of hits that hold every word of the query, so that
/// scores decrease down the list (they are ranked above the others whatever
/// their BM25).
pub const ALL_WORDS_BONUS: f32 = 1000.0;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Hit {
    pub replay_id: Uuid,
    pub session_id: Uuid,
    /// Where the player jumps to.
    pub start_ms: u64,
    pub end_ms: u64,
    pub kind: String,
    /// The document's text, or a snippet around the match when it is long.
    pub text: String,
    /// Higher is better; only comparable within one result list.
    pub score: f32,
}

/// Indexing memory of the one writer thread. Replays are small (a 1-hour
/// class is ~450 transcript segments), so this is never the limit; 15 MB is
/// tantivy's floor.
const WRITER_MEMORY: usize = 64 * 1024 * 1024;

/// The index (`Send + Sync`; one per process).
pub struct Index {
    fields: Fields,
    writer: Mutex<IndexWriter>,
    reader: IndexReader,
}

impl Index {
    /// Opens (or creates) the index in `dir`, creating `dir` if missing.
    pub fn open(dir: &Path) -> Result<Index, SearchError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| SearchError::Index(format!("create {}: {e}", dir.display())))?;
        let directory = MmapDirectory::open(dir)
            .map_err(|e| SearchError::Index(format!("open {}: {e}", dir.display())))?;
        let (schema, fields) = schema::build();
        let index = tantivy::Index::open_or_create(directory, schema)?;
        Index::with(index, fields)
    }

    /// An index in memory (tests, benchmarks).
    pub fn in_memory() -> Result<Index, SearchError> {
        let (schema, fields) = schema::build();
        Index::with(tantivy::Index::create_in_ram(schema), fields)
    }

    fn with(index: tantivy::Index, fields: Fields) -> Result<Index, SearchError> {
        schema::register_analyzers(index.tokenizers());
        // One indexing thread: a replay is one small segment either way, and
        // the machine's other core serves searches and merges.
        let writer = index.writer_with_num_threads(1, WRITER_MEMORY)?;
        // Manual: we reload right after our own commits, so a search that
        // follows `replace_replay` sees it (the default reloads "soon").
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(Index {
            fields,
            writer: Mutex::new(writer),
            reader,
        })
    }

    /// Replaces every document of `replay_id` with `docs` and commits:
    /// running it twice with the same docs leaves the same index.
    pub fn replace_replay(&self, replay_id: Uuid, docs: &[Doc]) -> Result<(), SearchError> {
        self.replace_replays([(replay_id, docs)])
    }

    /// `replace_replay` for many replays in one commit, all or none: a full
    /// reindex. A commit costs tens of milliseconds (segment files, fsync),
    /// which dominates indexing one replay at a time.
    pub fn replace_replays<'a>(
        &self,
        replays: impl IntoIterator<Item = (Uuid, &'a [Doc])>,
    ) -> Result<(), SearchError> {
        let replays: Vec<(Uuid, &[Doc])> = replays.into_iter().collect();
        for (replay_id, docs) in &replays {
            if let Some(d) = docs.iter().find(|d| d.replay_id != *replay_id) {
                // It would escape the next replace's deletion.
                return Err(SearchError::Doc(format!(
                    "document of replay {} given for replay {replay_id}",
                    d.replay_id
                )));
            }
        }
        let mut writer = self.writer();
        let result = (|| {
            for (replay_id, docs) in &replays {
                writer.delete_term(self.replay_term(*replay_id));
                for d in *docs {
                    writer.add_document(self.to_document(d))?;
                }
            }
            writer.commit()?;
            Ok(())
        })();
        self.settle(&mut writer, result)?;
        for (replay_id, docs) in &replays {
            tracing::debug!(%replay_id, docs = docs.len(), "replay indexed");
        }
        Ok(())
    }

    /// Removes a replay's documents (unpublish) and commits.
    pub fn remove_replay(&self, replay_id: Uuid) -> Result<(), SearchError> {
        let mut writer = self.writer();
        let result = (|| {
            writer.delete_term(self.replay_term(replay_id));
            writer.commit()?;
            Ok(())
        })();
        self.settle(&mut writer, result)?;
        tracing::debug!(%replay_id, "replay removed");
        Ok(())
    }

    /// Best hits first.
    pub fn search(&self, q: &Query) -> Result<Vec<Hit>, SearchError> {
        let limit = match q.limit {
            0 => DEFAULT_LIMIT,
            n => n.min(MAX_LIMIT),
        };
        let plan = query_plan::plan(self.fields, q)?;
        let searcher = self.reader.searcher();

        let mut top: Vec<(f32, DocAddress)> =
            searcher.search(&*plan.all, &TopDocs::with_limit(limit).order_by_score())?;
        if let Some(any) = &plan.any {
            for (score, _) in &mut top {
                *score += ALL_WORDS_BONUS;
            }
            if top.len() < limit {
                // The documents of the first pass come back here too: ask for
                // enough to fill the page without them.
                let seen: HashSet<DocAddress> = top.iter().map(|(_, a)| *a).collect();
                let more = searcher.search(
                    &**any,
                    &TopDocs::with_limit(limit + top.len()).order_by_score(),
                )?;
                top.extend(more.into_iter().filter(|(_, a)| !seen.contains(a)));
                top.truncate(limit);
            }
        }

        let mut text_cut = hit_text::HitText::new(&plan.stems);
        top.into_iter()
            .map(|(score, address)| {
                let doc: TantivyDocument = searcher.doc(address)?;
                self.to_hit(&doc, score, &mut text_cut)
            })
            .collect()
    }

    /// Documents in the index, every tenant (tests, benchmarks).
    pub fn doc_count(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Waits for background segment merges to end and releases the index
    /// directory's lock (a clean shutdown; dropping only releases the lock).
    pub fn close(self) -> Result<(), SearchError> {
        let writer = self
            .writer
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        writer.wait_merging_threads()?;
        Ok(())
    }

    fn writer(&self) -> MutexGuard<'_, IndexWriter> {
        // A panic while holding the writer leaves uncommitted operations at
        // worst; `settle` rolls them back on the next error, and a commit
        // only ever follows a complete replace.
        self.writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// After a write: on success make it visible, on failure drop the half
    /// done operations so that a later commit does not publish them.
    fn settle(
        &self,
        writer: &mut IndexWriter,
        result: Result<(), SearchError>,
    ) -> Result<(), SearchError> {
        match result {
            Ok(()) => {
                self.reader.reload()?;
                Ok(())
            }
            Err(e) => {
                if let Err(rollback) = writer.rollback() {
                    tracing::warn!(error = %rollback, "search index rollback failed");
                }
                Err(e)
            }
        }
    }

    fn replay_term(&self, replay_id: Uuid) -> Term {
        Term::from_field_text(self.fields.replay, &replay_id.to_string())
    }

    fn to_document(&self, d: &Doc) -> TantivyDocument {
        let f = self.fields;
        let mut doc = TantivyDocument::new();
        doc.add_text(f.tenant, d.tenant_id.to_string());
        doc.add_text(f.replay, d.replay_id.to_string());
        doc.add_text(f.session, d.session_id.to_string());
        if let Some(id) = d.course_id {
            doc.add_text(f.course, id.to_string());
        }
        if let Some(id) = d.teacher_id {
            doc.add_text(f.teacher, id.to_string());
        }
        doc.add_date(f.date, schema::to_date(d.date));
        doc.add_u64(f.start_ms, d.start_ms);
        doc.add_u64(f.end_ms, d.end_ms);
        doc.add_text(f.kind, &d.kind);
        doc.add_text(f.text, &d.text);
        doc.add_text(f.text_words, &d.text);
        doc
    }

    fn to_hit(
        &self,
        doc: &TantivyDocument,
        score: f32,
        text_cut: &mut hit_text::HitText,
    ) -> Result<Hit, SearchError> {
        let f = self.fields;
        let text = |field, name: &str| {
            doc.get_first(field)
                .and_then(|v| v.as_str())
                .ok_or_else(|| SearchError::Index(format!("stored document without {name}")))
        };
        let number = |field, name: &str| {
            doc.get_first(field)
                .and_then(|v| v.as_u64())
                .ok_or_else(|| SearchError::Index(format!("stored document without {name}")))
        };
        let id = |field, name: &str| {
            text(field, name).and_then(|s| {
                Uuid::parse_str(s)
                    .map_err(|e| SearchError::Index(format!("stored {name} {s:?}: {e}")))
            })
        };
        Ok(Hit {
            replay_id: id(f.replay, "replay")?,
            session_id: id(f.session, "session")?,
            start_ms: number(f.start_ms, "start_ms")?,
            end_ms: number(f.end_ms, "end_ms")?,
            kind: text(f.kind, "kind")?.to_string(),
            text: text_cut.cut(text(f.text, "text")?),
            score,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Index>();
    }
}
