//! The PostgreSQL side: the same segments in a table with a generated
//! `tsvector` (english configuration) and a GIN index, in a scratch database
//! created for the run and dropped at its end.

use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection, Row};

use crate::corpus::Corpus;
use crate::latency::Counted;
use crate::query_mix::BenchQuery;

pub(crate) struct Scratch {
    admin: PgConnection,
    name: String,
    pub(crate) conn: PgConnection,
}

pub(crate) struct LoadReport {
    pub(crate) copy: Duration,
    pub(crate) gin: Duration,
    pub(crate) btree: Duration,
    pub(crate) table_bytes: i64,
    pub(crate) gin_bytes: i64,
    pub(crate) btree_bytes: i64,
    pub(crate) total_bytes: i64,
}

const SEARCH: &str = "SELECT replay_id, session_id, start_ms, end_ms, kind, text, ts_rank(tsv, q) AS rank \
     FROM segments, websearch_to_tsquery('english', $1) AS q \
     WHERE tenant_id = $2 AND tsv @@ q \
     ORDER BY rank DESC LIMIT 20";
const SEARCH_REPLAY: &str = "SELECT replay_id, session_id, start_ms, end_ms, kind, text, ts_rank(tsv, q) AS rank \
     FROM segments, websearch_to_tsquery('english', $1) AS q \
     WHERE tenant_id = $2 AND replay_id = $3 AND tsv @@ q \
     ORDER BY rank DESC LIMIT 20";

impl Scratch {
    pub(crate) async fn create(url: &str, name: &str) -> anyhow::Result<Scratch> {
        let options = PgConnectOptions::from_str(url).context("database url")?;
        let mut admin = options
            .connect()
            .await
            .with_context(|| format!("connect to {url}"))?;
        // A run killed midway leaves its database behind.
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
            .execute(&mut admin)
            .await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .context("create the scratch database")?;
        let conn = options.database(name).connect().await?;
        Ok(Scratch {
            admin,
            name: name.to_string(),
            conn,
        })
    }

    pub(crate) async fn load(&mut self, corpus: &Corpus) -> anyhow::Result<LoadReport> {
        sqlx::query(
            "CREATE TABLE segments (
                tenant_id uuid NOT NULL,
                replay_id uuid NOT NULL,
                session_id uuid NOT NULL,
                course_id uuid,
                teacher_id uuid,
                date timestamptz NOT NULL,
                start_ms bigint NOT NULL,
                end_ms bigint NOT NULL,
                kind text NOT NULL,
                text text NOT NULL,
                tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED
            )",
        )
        .execute(&mut self.conn)
        .await?;

        let started = Instant::now();
        let mut copy = self
            .conn
            .copy_in_raw(
                "COPY segments (tenant_id, replay_id, session_id, course_id, teacher_id, \
                 date, start_ms, end_ms, kind, text) FROM STDIN",
            )
            .await?;
        let mut buf = String::with_capacity(1 << 20);
        for (i, replay) in corpus.replays.iter().enumerate() {
            for d in &replay.docs {
                let opt =
                    |id: Option<uuid::Uuid>| id.map_or("\\N".to_string(), |id| id.to_string());
                buf.push_str(&format!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
                    d.tenant_id,
                    d.replay_id,
                    d.session_id,
                    opt(d.course_id),
                    opt(d.teacher_id),
                    d.date.to_rfc3339(),
                    d.start_ms,
                    d.end_ms,
                    escape(&d.kind),
                    escape(&d.text),
                ));
            }
            if buf.len() >= 1 << 20 {
                copy.send(std::mem::take(&mut buf).into_bytes()).await?;
            }
            if (i + 1) % 100 == 0 {
                println!(
                    "  postgres: copied {} of {} replays ({:.0} s)",
                    i + 1,
                    corpus.replays.len(),
                    started.elapsed().as_secs_f64()
                );
            }
        }
        copy.send(buf.into_bytes()).await?;
        copy.finish().await?;
        let copy_took = started.elapsed();
        println!("  postgres: COPY done in {:.1} s", copy_took.as_secs_f64());

        // What one would do for a bulk build; the default (64 MB) makes the
        // GIN build spill and merge.
        sqlx::query("SET maintenance_work_mem = '512MB'")
            .execute(&mut self.conn)
            .await?;
        let started = Instant::now();
        sqlx::query("CREATE INDEX segments_tsv ON segments USING gin (tsv)")
            .execute(&mut self.conn)
            .await?;
        let gin = started.elapsed();
        println!("  postgres: GIN index in {:.1} s", gin.as_secs_f64());
        let started = Instant::now();
        sqlx::query("CREATE INDEX segments_tenant ON segments (tenant_id)")
            .execute(&mut self.conn)
            .await?;
        sqlx::query("CREATE INDEX segments_replay ON segments (replay_id)")
            .execute(&mut self.conn)
            .await?;
        sqlx::query("ANALYZE segments")
            .execute(&mut self.conn)
            .await?;
        let btree = started.elapsed();

        let size = |sql: &'static str| sqlx::query_scalar::<_, i64>(sql);
        let table_bytes = size("SELECT pg_table_size('segments')")
            .fetch_one(&mut self.conn)
            .await?;
        let gin_bytes = size("SELECT pg_relation_size('segments_tsv')")
            .fetch_one(&mut self.conn)
            .await?;
        let btree_bytes = size(
            "SELECT pg_relation_size('segments_tenant') + pg_relation_size('segments_replay')",
        )
        .fetch_one(&mut self.conn)
        .await?;
        let total_bytes = size("SELECT pg_total_relation_size('segments')")
            .fetch_one(&mut self.conn)
            .await?;
        Ok(LoadReport {
            copy: copy_took,
            gin,
            btree,
            table_bytes,
            gin_bytes,
            btree_bytes,
            total_bytes,
        })
    }

    /// Hits of one query, fetched whole (text included, as the API returns).
    pub(crate) async fn search(&mut self, q: &BenchQuery) -> anyhow::Result<Counted> {
        let rows = match q.replay_id {
            None => {
                sqlx::query(SEARCH)
                    .bind(&q.text)
                    .bind(q.tenant_id)
                    .fetch_all(&mut self.conn)
                    .await?
            }
            Some(replay) => {
                sqlx::query(SEARCH_REPLAY)
                    .bind(&q.text)
                    .bind(q.tenant_id)
                    .bind(replay)
                    .fetch_all(&mut self.conn)
                    .await?
            }
        };
        for row in &rows {
            // Decode as a caller would.
            let _: (uuid::Uuid, i64, String, f32) = (
                row.try_get("replay_id")?,
                row.try_get("start_ms")?,
                row.try_get("text")?,
                row.try_get("rank")?,
            );
        }
        // websearch_to_tsquery: every word (and phrase) is required.
        Ok(Counted {
            hits: rows.len(),
            every: rows.len(),
        })
    }

    pub(crate) async fn drop_database(self) -> anyhow::Result<()> {
        let Scratch {
            mut admin,
            name,
            conn,
        } = self;
        conn.close().await?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
            .execute(&mut admin)
            .await?;
        Ok(())
    }
}

/// COPY's text format: backslash escapes for the separators.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}
