//! What a customer's searches share, remembered per replica: their
//! sizes, brands, categories and owned styles ([`Personal`]) computed once
//! from their remembered history, not at every search. Exact: an entry
//! serves only the same history (the replica's memory replaces it when the
//! change feed reports a change for the customer) on the same model state,
//! and for at most a minute (the signals' recency windows move with time).
//! Bounded: when full it is emptied and refills with whoever searches next.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use super::Personal;
use crate::{domain::Timestamp, suggest::signals::History};

/// Customers remembered at most: those in live conversations, far fewer
/// than the replica's memory of histories (each entry holds sets of the
/// styles the customer bought and returned).
pub const CUSTOMERS: usize = 5_000;
/// How long one computation serves, in milliseconds.
const FRESH_MS: i64 = 60_000;

#[derive(Debug)]
struct Entry {
    history: Arc<History>,
    generation: u64,
    at: Timestamp,
    personal: Arc<Personal>,
}

/// Per customer id.
#[derive(Debug, Default)]
pub struct PersonalMemo {
    entries: Mutex<HashMap<String, Entry>>,
}

impl PersonalMemo {
    /// The customer's [`Personal`] for `history` on model state
    /// `generation`: remembered, or made by `make` (and remembered).
    pub fn get_or(
        &self,
        customer: &str,
        history: &Arc<History>,
        generation: u64,
        now: Timestamp,
        make: impl FnOnce() -> Personal,
    ) -> Arc<Personal> {
        let lock = || self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = lock().get(customer)
            && Arc::ptr_eq(&e.history, history)
            && e.generation == generation
            && (now.millis() - e.at.millis()).abs() < FRESH_MS
        {
            return e.personal.clone();
        }
        let personal = Arc::new(make());
        let mut entries = lock();
        if entries.len() >= CUSTOMERS {
            entries.clear();
        }
        entries.insert(
            customer.to_owned(),
            Entry {
                history: history.clone(),
                generation,
                at: now,
                personal: personal.clone(),
            },
        );
        personal
    }
}
