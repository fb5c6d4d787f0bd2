//! What one replica remembers per customer between requests: the reads
//! suggestions make of their history, and the lists ranked from them.
//! Exact, not timed: an entry is dropped when the change feed reports any
//! change for that customer (and everything on an erasure), and a ranked
//! list is used only with the model state it was ranked on. Bounded: when
//! full, it is emptied and refills with whoever asks next.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use super::{reasons::Ranked, signals::History};

/// Customers remembered at most.
pub const CUSTOMERS: usize = 20_000;
/// Ranked lists remembered per customer at most (one per distinct request).
const LISTS: usize = 4;

/// A ranked list as served from memory.
pub type List = Arc<(Vec<Ranked>, bool)>;

#[derive(Debug)]
enum Slot {
    /// What was read (from feed position `since`) and ranked for them.
    Known {
        history: Arc<History>,
        lists: Vec<(String, u64, List)>,
    },
    /// Changed at feed position `at`: a read that began before it is stale.
    Changed { at: i64 },
}

/// The per-customer memory of one replica.
#[derive(Debug, Default)]
pub struct Memo {
    slots: Mutex<HashMap<String, Slot>>,
}

impl Memo {
    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The remembered history of `customer`.
    pub fn history(&self, customer: &str) -> Option<Arc<History>> {
        match self.slots().get(customer) {
            Some(Slot::Known { history, .. }) => Some(history.clone()),
            _ => None,
        }
    }

    /// Remembers a history read that began when the feed was applied up to
    /// `since`, unless the customer changed after that.
    pub fn put_history(&self, customer: &str, history: Arc<History>, since: i64) {
        let mut slots = self.slots();
        if let Some(Slot::Changed { at }) = slots.get(customer)
            && *at > since
        {
            return;
        }
        if slots.len() >= CUSTOMERS {
            slots.clear();
        }
        slots.insert(
            customer.to_owned(),
            Slot::Known {
                history,
                lists: Vec::new(),
            },
        );
    }

    /// A list ranked for `customer` and request `key` on model state
    /// `generation`.
    pub fn list(&self, customer: &str, key: &str, generation: u64) -> Option<List> {
        match self.slots().get(customer) {
            Some(Slot::Known { lists, .. }) => lists
                .iter()
                .find(|(k, g, _)| k == key && *g == generation)
                .map(|(_, _, l)| l.clone()),
            _ => None,
        }
    }

    /// Remembers a ranked list (for a customer whose history is known).
    pub fn put_list(&self, customer: &str, key: String, generation: u64, list: List) {
        if let Some(Slot::Known { lists, .. }) = self.slots().get_mut(customer) {
            lists.retain(|(k, g, _)| *k != key && *g == generation);
            if lists.len() >= LISTS {
                lists.remove(0);
            }
            lists.push((key, generation, list));
        }
    }

    /// The feed reported a change for `customer` at position `at`.
    pub fn changed(&self, customer: &str, at: i64) {
        let mut slots = self.slots();
        if slots.len() >= CUSTOMERS {
            slots.clear();
        }
        slots.insert(customer.to_owned(), Slot::Changed { at });
    }

    /// Forgets everyone (an erasure, a new model).
    pub fn clear(&self) {
        self.slots().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_drops_what_was_read_before_it() {
        let memo = Memo::default();
        let h = Arc::new(History::default());
        memo.put_history("c1", h.clone(), 10);
        assert!(memo.history("c1").is_some());
        memo.put_list("c1", "k".into(), 1, Arc::new((Vec::new(), true)));
        assert!(memo.list("c1", "k", 1).is_some());
        assert!(memo.list("c1", "k", 2).is_none(), "another model state");
        memo.changed("c1", 12);
        assert!(memo.history("c1").is_none());
        // A read that began before the change is not remembered...
        memo.put_history("c1", h.clone(), 11);
        assert!(memo.history("c1").is_none());
        // ...one that began after it is.
        memo.put_history("c1", h, 12);
        assert!(memo.history("c1").is_some());
        memo.clear();
        assert!(memo.history("c1").is_none());
    }
}
