//! The index's answers remembered per query, for the state of the index
//! they were computed on: agents retype the same words, the sidebar asks
//! again for every letter typed, and AI agents repeat searches. Exact: an
//! answer serves only the index generation it came from, so the first
//! search after a change (the feed's upserts, a load) computes afresh.
//! Bounded by the hits held; when full it is emptied and refills with
//! whatever is asked next.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use super::{Filters, Hit, Words};

/// Hits held at most over all remembered answers (about 60 bytes each).
pub const HITS: usize = 200_000;

/// What one answer is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Question {
    /// The words.
    pub words: Words,
    /// The filters.
    pub filters: Filters,
    /// Most hits.
    pub limit: usize,
    /// Every word, or any.
    pub all_words: bool,
}

#[derive(Debug, Default)]
struct Held {
    /// The index generation the answers are for.
    generation: u64,
    answers: HashMap<Question, Arc<Vec<Hit>>>,
    hits: usize,
}

/// Remembered answers, and how often they served.
#[derive(Debug, Default)]
pub struct Answers {
    held: Mutex<Held>,
    /// Searches answered from memory.
    pub remembered: AtomicU64,
    /// Searches the index computed.
    pub computed: AtomicU64,
}

impl Answers {
    /// The answer to `q` on index generation `generation`, when
    /// remembered; `count` says whether to count a miss as computed (a
    /// look that falls back to computing counts once).
    pub fn get(&self, generation: u64, q: &Question, count: bool) -> Option<Arc<Vec<Hit>>> {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let found = (held.generation == generation)
            .then(|| held.answers.get(q).cloned())
            .flatten();
        drop(held);
        match (&found, count) {
            (Some(_), _) => self.remembered.fetch_add(1, Ordering::Relaxed),
            (None, true) => self.computed.fetch_add(1, Ordering::Relaxed),
            (None, false) => 0,
        };
        found
    }

    /// Remembers the answer to `q` computed on `generation`: answers of an
    /// older generation are dropped when a newer one arrives, and one
    /// computed on an older generation than those held is not kept.
    pub fn put(&self, generation: u64, q: Question, hits: Arc<Vec<Hit>>) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if generation < held.generation || hits.len() > HITS {
            return;
        }
        if generation > held.generation || held.hits + hits.len() > HITS {
            held.answers.clear();
            held.hits = 0;
            held.generation = generation;
        }
        held.hits += hits.len();
        if let Some(old) = held.answers.insert(q, hits) {
            held.hits -= old.len();
        }
    }
}
