//! Latency samples per query class and their summary.

use std::time::Duration;

/// What one query returned.
pub(crate) struct Counted {
    pub(crate) hits: usize,
    /// Of which hold every word of the query.
    pub(crate) every: usize,
}

#[derive(Default)]
pub(crate) struct Samples {
    took: Vec<Duration>,
    hits: Vec<usize>,
    every: Vec<usize>,
}

pub(crate) struct Summary {
    pub(crate) n: usize,
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
    pub(crate) mean: Duration,
    /// Share of queries with at least one hit.
    pub(crate) found: f64,
    pub(crate) mean_hits: f64,
    /// Mean hits holding every word of the query.
    pub(crate) mean_every: f64,
}

impl Samples {
    pub(crate) fn push(&mut self, took: Duration, hits: Counted) {
        self.took.push(took);
        self.hits.push(hits.hits);
        self.every.push(hits.every);
    }

    pub(crate) fn extend(&mut self, other: &Samples) {
        self.took.extend_from_slice(&other.took);
        self.hits.extend_from_slice(&other.hits);
        self.every.extend_from_slice(&other.every);
    }

    pub(crate) fn summary(&self) -> Option<Summary> {
        if self.took.is_empty() {
            return None;
        }
        let mut sorted = self.took.clone();
        sorted.sort_unstable();
        let n = sorted.len();
        // Nearest rank.
        let at = |p: f64| sorted[((p * n as f64).ceil() as usize).clamp(1, n) - 1];
        let total: Duration = sorted.iter().sum();
        Some(Summary {
            n,
            p50: at(0.50),
            p99: at(0.99),
            mean: total / n as u32,
            found: self.hits.iter().filter(|&&h| h > 0).count() as f64 / n as f64,
            mean_hits: self.hits.iter().sum::<usize>() as f64 / n as f64,
            mean_every: self.every.iter().sum::<usize>() as f64 / n as f64,
        })
    }
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}
