//! What one replica remembers between requests: per customer, the reads
//! suggestions make of their history (and consents), the lists ranked
//! from them and the items last served from each; per product, its
//! catalogue row. Exact, not timed: an entry is dropped when the change
//! feed reports a change for its key (everything on an erasure); a read
//! that began before such a change is neither kept nor added to what was
//! read after it, nor kept once everything was forgotten after it began; a
//! ranked list is kept only beside the history it was ranked from, and
//! used only with the model state it was ranked on.
//! Bounded by a number of keys and by what their values weigh (an
//! estimate from lengths, [`weigh`]): when full, a cache is emptied and
//! refills with whoever asks next.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
};

use super::{SuggestedItem, reasons::Ranked, signals::History, weigh};
use crate::{domain::ConsentRecord, reads::ContextReads, store::ProductRow};

/// Customers remembered at most.
pub const CUSTOMERS: usize = 20_000;
/// What remembered customers may hold at most by default, in bytes (as
/// weighed by [`weigh::customer`]; `serve --customer-memory-mb`).
pub const CUSTOMER_BYTES: usize = 1 << 30;
/// Products remembered at most.
pub const PRODUCTS: usize = 100_000;
/// What remembered catalogue rows may hold at most, in bytes.
pub const PRODUCT_BYTES: usize = 256 << 20;
/// Ranked lists remembered per customer at most (one per distinct request).
const LISTS: usize = 4;

/// A ranked list as remembered.
pub type List = Arc<Ranking>;

/// A list ranked for one request, whether it was personalised, and the
/// items last served from it.
#[derive(Debug)]
pub struct Ranking {
    /// Best first, with spares for what the catalogue may have dropped.
    pub ranked: Vec<Ranked>,
    /// Whether the customer's own history shaped it.
    pub personalised: bool,
    /// The items served from it, with the limit they were cut to: they
    /// depend on nothing else that may change while the list is used (the
    /// catalogue rows and the customer's history change the model
    /// generation or drop the customer's memory; the day is in the list's
    /// key). Their signed ids are made again for every answer.
    served: Mutex<Option<(usize, Arc<Vec<SuggestedItem>>)>>,
}

impl Ranking {
    /// A list not served yet.
    pub fn new(ranked: Vec<Ranked>, personalised: bool) -> Self {
        Self {
            ranked,
            personalised,
            served: Mutex::new(None),
        }
    }

    /// The items served from this list cut to `limit`, when remembered.
    pub fn served(&self, limit: usize) -> Option<Arc<Vec<SuggestedItem>>> {
        let slot = self.served.lock().unwrap_or_else(|e| e.into_inner());
        slot.as_ref()
            .filter(|(l, _)| *l == limit)
            .map(|(_, items)| items.clone())
    }

    /// Remembers the items served from this list cut to `limit`.
    pub fn serve(&self, limit: usize, items: Arc<Vec<SuggestedItem>>) {
        *self.served.lock().unwrap_or_else(|e| e.into_inner()) = Some((limit, items));
    }
}

#[derive(Debug)]
enum Slot<V> {
    /// What was read, what it weighs, and the newest change of its key
    /// known when it was kept (a read that began before that is stale).
    Known { value: V, weight: usize, after: i64 },
    /// Changed at feed position `at`: a read that began before it is stale.
    Changed { at: i64 },
}

#[derive(Debug)]
struct Slots<V> {
    map: HashMap<String, Slot<V>>,
    /// What the known values weigh together.
    bytes: usize,
    /// Times emptied because full.
    emptied: u64,
    /// The newest change reported for any key.
    newest: i64,
    /// Reads that began before this position are not kept: the changes
    /// that would have refused them were forgotten with everything else.
    floor: i64,
}

impl<V> Slots<V> {
    /// Forgets everything, and with it every change it knew of: reads
    /// that began before the newest of them are stale from now on.
    fn forget_all(&mut self, at: i64) {
        self.map.clear();
        self.bytes = 0;
        self.floor = self.floor.max(self.newest).max(at);
    }

    /// Takes `key`'s weight out of the total (its slot is about to go).
    fn unweigh(&mut self, key: &str) {
        if let Some(Slot::Known { weight, .. }) = self.map.get(key) {
            self.bytes -= *weight;
        }
    }

    /// The newest change of `key` a read must have begun after to be
    /// kept; `None` when a read from `since` began before it.
    fn fresh_after(&self, key: &str, since: i64) -> Option<i64> {
        let after = match self.map.get(key) {
            Some(Slot::Known { after, .. }) => *after,
            Some(Slot::Changed { at }) => *at,
            None => self.floor,
        };
        (since >= after.max(self.floor)).then_some(after)
    }
}

/// How full a cache is: keys, bytes their values weigh, times emptied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fill {
    /// Keys held (known values and changes).
    pub keys: usize,
    /// What the known values weigh, in bytes (an estimate).
    pub bytes: usize,
    /// Times it was emptied because it was full.
    pub emptied: u64,
}

/// Values by key, kept exact by the change feed, bounded by a number of
/// keys and by what their values weigh.
#[derive(Debug)]
pub struct Exact<V> {
    slots: Mutex<Slots<V>>,
    capacity: usize,
    budget: usize,
    weigh: fn(&V) -> usize,
}

impl<V> Exact<V> {
    /// An empty cache of at most `capacity` keys whose values, weighed by
    /// `weigh`, hold at most `budget` bytes.
    pub fn new(capacity: usize, budget: usize, weigh: fn(&V) -> usize) -> Self {
        Self {
            slots: Mutex::new(Slots {
                map: HashMap::new(),
                bytes: 0,
                emptied: 0,
                newest: i64::MIN,
                floor: i64::MIN,
            }),
            capacity,
            budget,
            weigh,
        }
    }

    fn slots(&self) -> MutexGuard<'_, Slots<V>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How full it is now.
    pub fn fill(&self) -> Fill {
        let s = self.slots();
        Fill {
            keys: s.map.len(),
            bytes: s.bytes,
            emptied: s.emptied,
        }
    }

    /// Runs `f` on the value of `key`, when known.
    pub fn with<R>(&self, key: &str, f: impl FnOnce(&V) -> R) -> Option<R> {
        match self.slots().map.get(key) {
            Some(Slot::Known { value, .. }) => Some(f(value)),
            _ => None,
        }
    }

    /// Changes the value of `key` with `f`, for a read that began at feed
    /// position `since`: when the value is known and no change of the key
    /// came after `since`. It is weighed again; when that passes the
    /// budget, everything is forgotten.
    pub fn update<R>(&self, key: &str, since: i64, f: impl FnOnce(&mut V) -> R) -> Option<R> {
        let mut slots = self.slots();
        slots.fresh_after(key, since)?;
        let Some(Slot::Known { value, weight, .. }) = slots.map.get_mut(key) else {
            return None;
        };
        let r = f(value);
        let (old, new) = (*weight, (self.weigh)(value) + key.len());
        *weight = new;
        slots.bytes = slots.bytes - old + new;
        if slots.bytes > self.budget {
            slots.emptied += 1;
            slots.forget_all(i64::MIN);
        }
        Some(r)
    }

    /// Remembers a value read when the feed was applied up to `since`,
    /// unless the key changed after that or the value alone weighs more
    /// than the budget.
    pub fn put(&self, key: &str, value: V, since: i64) {
        let mut slots = self.slots();
        let Some(after) = slots.fresh_after(key, since) else {
            return;
        };
        let weight = (self.weigh)(&value) + key.len();
        if weight > self.budget {
            // Too heavy to keep: what is there (a value the feed keeps
            // exact, or a change) stays.
            return;
        }
        slots.unweigh(key);
        if slots.map.len() >= self.capacity || slots.bytes + weight > self.budget {
            slots.emptied += 1;
            slots.forget_all(i64::MIN);
        }
        slots.bytes += weight;
        let known = Slot::Known {
            value,
            weight,
            after,
        };
        slots.map.insert(key.to_owned(), known);
    }

    /// The feed reported a change for `key` at position `at`.
    pub fn changed(&self, key: &str, at: i64) {
        let mut slots = self.slots();
        slots.newest = slots.newest.max(at);
        slots.unweigh(key);
        if slots.map.len() >= self.capacity {
            slots.emptied += 1;
            slots.forget_all(at);
        }
        slots.map.insert(key.to_owned(), Slot::Changed { at });
    }

    /// Forgets everything because of a change at feed position `at` (an
    /// erasure): no read that began before it is kept afterwards.
    pub fn forget(&self, at: i64) {
        let mut slots = self.slots();
        slots.newest = slots.newest.max(at);
        slots.forget_all(at);
    }
}

/// What is remembered of one customer.
#[derive(Debug, Default)]
pub struct Customer {
    /// Their context's reads, per request shape (sections, limits, window).
    pub context: Vec<(String, Arc<ContextReads>)>,
    /// Their consents.
    pub consents: Option<Arc<Vec<ConsentRecord>>>,
    /// What suggestions read of their history.
    pub history: Option<Arc<History>>,
    /// Lists ranked for them: (request key, model generation, list).
    pub lists: Vec<(String, u64, List)>,
    /// Their customer id was found in the store (an entry names it).
    pub known: bool,
}

/// One replica's memory.
#[derive(Debug)]
pub struct Memo {
    /// Per customer id.
    pub customers: Exact<Customer>,
    /// Catalogue rows per product id.
    pub products: Exact<Arc<ProductRow>>,
}

impl Default for Memo {
    fn default() -> Self {
        Self::new(CUSTOMER_BYTES)
    }
}

impl Memo {
    /// An empty memory whose customers may hold `customer_bytes` (as
    /// weighed by [`weigh::customer`]).
    pub fn new(customer_bytes: usize) -> Self {
        Self {
            customers: Exact::new(CUSTOMERS, customer_bytes, weigh::customer),
            products: Exact::new(PRODUCTS, PRODUCT_BYTES, |p| weigh::product(p)),
        }
    }
}

impl Memo {
    /// The remembered consents of `customer`.
    pub fn consents(&self, customer: &str) -> Option<Arc<Vec<ConsentRecord>>> {
        self.customers
            .with(customer, |c| c.consents.clone())
            .flatten()
    }

    /// Remembers consents read from feed position `since`.
    pub fn put_consents(&self, customer: &str, consents: Arc<Vec<ConsentRecord>>, since: i64) {
        let kept = self
            .customers
            .update(customer, since, |c| c.consents = Some(consents.clone()));
        if kept.is_none() {
            let entry = Customer {
                consents: Some(consents),
                ..Customer::default()
            };
            self.customers.put(customer, entry, since);
        }
    }

    /// Whether `customer` was found in the store since its last change.
    pub fn known(&self, customer: &str) -> bool {
        self.customers.with(customer, |c| c.known).unwrap_or(false)
    }

    /// Remembers that `customer` was found by a read from feed position
    /// `since`.
    pub fn put_known(&self, customer: &str, since: i64) {
        if self
            .customers
            .update(customer, since, |c| c.known = true)
            .is_none()
        {
            let entry = Customer {
                known: true,
                ..Customer::default()
            };
            self.customers.put(customer, entry, since);
        }
    }

    /// The remembered history of `customer`.
    pub fn history(&self, customer: &str) -> Option<Arc<History>> {
        self.customers
            .with(customer, |c| c.history.clone())
            .flatten()
    }

    /// Remembers a history read from feed position `since`.
    pub fn put_history(&self, customer: &str, history: Arc<History>, since: i64) {
        let kept = self
            .customers
            .update(customer, since, |c| c.history = Some(history.clone()));
        if kept.is_none() {
            let entry = Customer {
                history: Some(history),
                ..Customer::default()
            };
            self.customers.put(customer, entry, since);
        }
    }

    /// A list ranked for `customer` and request `key` on model state
    /// `generation`.
    pub fn list(&self, customer: &str, key: &str, generation: u64) -> Option<List> {
        self.customers
            .with(customer, |c| {
                c.lists
                    .iter()
                    .find(|(k, g, _)| k == key && *g == generation)
                    .map(|(_, _, l)| l.clone())
            })
            .flatten()
    }

    /// Remembers a list ranked from `history`, while that is still the
    /// history remembered for `customer` (a list ranked from one read
    /// before a change is never kept beside the one read after it).
    pub fn put_list(
        &self,
        customer: &str,
        key: String,
        generation: u64,
        list: List,
        history: &Arc<History>,
    ) {
        // The history's own read was checked against the feed when kept.
        self.customers.update(customer, i64::MAX, |c| {
            if !c.history.as_ref().is_some_and(|h| Arc::ptr_eq(h, history)) {
                return;
            }
            c.lists.retain(|(k, g, _)| *k != key && *g == generation);
            if c.lists.len() >= LISTS {
                c.lists.remove(0);
            }
            c.lists.push((key, generation, list));
        });
    }

    /// The remembered context reads of `customer` for request shape `key`.
    pub fn context(&self, customer: &str, key: &str) -> Option<Arc<ContextReads>> {
        self.customers
            .with(customer, |c| {
                c.context
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, r)| r.clone())
            })
            .flatten()
    }

    /// Whether context reads of `customer` are remembered: they were read
    /// for a stored customer, and an erasure would have dropped them, so
    /// the customer still exists.
    pub fn has_context(&self, customer: &str) -> bool {
        self.customers
            .with(customer, |c| !c.context.is_empty())
            .unwrap_or(false)
    }

    /// Remembers context reads made from feed position `since`.
    pub fn put_context(&self, customer: &str, key: String, reads: Arc<ContextReads>, since: i64) {
        let kept = self.customers.update(customer, since, |c| {
            c.context.retain(|(k, _)| *k != key);
            if c.context.len() >= LISTS {
                c.context.remove(0);
            }
            c.context.push((key.clone(), reads.clone()));
        });
        if kept.is_none() {
            let entry = Customer {
                context: vec![(key, reads)],
                ..Customer::default()
            };
            self.customers.put(customer, entry, since);
        }
    }

    /// Forgets everyone because of an erasure at feed position `at`; a
    /// read that began before it is not kept afterwards.
    pub fn forget(&self, at: i64) {
        self.customers.forget(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> List {
        Arc::new(Ranking::new(Vec::new(), true))
    }

    #[test]
    fn a_change_drops_what_was_read_before_it() {
        let memo = Memo::default();
        let h = Arc::new(History::default());
        memo.put_history("c1", h.clone(), 10);
        assert!(memo.history("c1").is_some());
        memo.put_list("c1", "k".into(), 1, list(), &h);
        assert!(memo.list("c1", "k", 1).is_some());
        assert!(memo.list("c1", "k", 2).is_none(), "another model state");
        memo.put_consents("c1", Arc::new(Vec::new()), 10);
        assert!(memo.consents("c1").is_some() && memo.history("c1").is_some());
        memo.customers.changed("c1", 12);
        assert!(memo.history("c1").is_none() && memo.consents("c1").is_none());
        // A read that began before the change is not remembered...
        memo.put_history("c1", h.clone(), 11);
        assert!(memo.history("c1").is_none());
        // ...one that began after it is...
        let fresh = Arc::new(History::default());
        memo.put_history("c1", fresh.clone(), 12);
        assert!(memo.history("c1").is_some());
        // ...and reads older than the change do not join it: not its
        // consents, nor a list ranked from the history read before.
        memo.put_consents("c1", Arc::new(Vec::new()), 11);
        assert!(memo.consents("c1").is_none());
        memo.put_list("c1", "k".into(), 1, list(), &h);
        assert!(memo.list("c1", "k", 1).is_none());
        memo.put_list("c1", "k".into(), 1, list(), &fresh);
        assert!(memo.list("c1", "k", 1).is_some());
        memo.forget(13);
        assert!(memo.history("c1").is_none());
    }

    #[test]
    fn a_read_from_before_everything_was_forgotten_is_not_kept() {
        // An erasure forgets everyone: a read of the erased customer that
        // began before it must not come back into memory.
        let memo = Memo::default();
        memo.put_history("c1", Arc::new(History::default()), 10);
        memo.forget(20);
        memo.put_history("c1", Arc::new(History::default()), 19);
        memo.put_consents("c2", Arc::new(Vec::new()), 15);
        assert!(memo.history("c1").is_none() && memo.consents("c2").is_none());
        memo.put_history("c1", Arc::new(History::default()), 20);
        assert!(memo.history("c1").is_some());
        // A cache emptied because full forgets the changes it knew of: the
        // reads that began before the newest of them are refused too.
        let cache: Exact<u32> = Exact::new(2, usize::MAX, |_| 0);
        cache.put("a", 1, 0);
        cache.changed("b", 7);
        cache.put("c", 3, 8);
        assert_eq!(cache.fill().emptied, 1);
        cache.put("b", 2, 6);
        assert_eq!(cache.with("b", |v| *v), None, "read before b's change");
        cache.put("b", 2, 7);
        assert_eq!(cache.with("b", |v| *v), Some(2));
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache: Exact<u32> = Exact::new(3, usize::MAX, |_| 0);
        for (i, k) in ["a", "b", "c", "d"].iter().enumerate() {
            cache.put(k, i as u32, 0);
        }
        assert_eq!(cache.with("d", |v| *v), Some(3));
        assert_eq!(cache.with("a", |v| *v), None, "emptied when full");
    }

    #[test]
    fn a_cache_over_its_byte_budget_is_emptied_and_a_value_over_it_is_never_kept() {
        let cache: Exact<String> = Exact::new(100, 100, |s| s.len());
        cache.put("a", "x".repeat(40), 0);
        cache.put("b", "x".repeat(40), 0);
        let fill = cache.fill();
        assert_eq!((fill.keys, fill.bytes, fill.emptied), (2, 82, 0));
        cache.put("c", "x".repeat(40), 0);
        assert_eq!(
            cache.with("a", |v| v.len()),
            None,
            "emptied: 123 bytes > 100"
        );
        let fill = cache.fill();
        assert_eq!((fill.keys, fill.bytes, fill.emptied), (1, 41, 1));
        // Replacing a value counts only the new one.
        cache.put("c", "x".repeat(10), 0);
        assert_eq!(cache.fill().bytes, 11);
        // Growing one in place past the budget forgets everything.
        cache.put("d", "x".repeat(30), 0);
        assert_eq!(
            cache.update("d", 0, |v| v.push_str(&"y".repeat(70))),
            Some(())
        );
        let fill = cache.fill();
        assert_eq!((fill.keys, fill.bytes, fill.emptied), (0, 0, 2));
        // A value heavier than the whole budget is not kept; the value
        // already there (kept exact by the feed) stays...
        cache.put("e", "x".repeat(20), 0);
        cache.put("e", "x".repeat(200), 0);
        assert_eq!(cache.with("e", |v| v.len()), Some(20));
        assert_eq!(cache.fill().bytes, 21);
        // ...and so does a change, so a read older than it is still refused.
        cache.changed("e", 9);
        cache.put("e", "x".repeat(200), 10);
        cache.put("e", "x".repeat(20), 8);
        assert_eq!(cache.with("e", |v| v.len()), None, "read before the change");
        assert_eq!(cache.fill().bytes, 0);
        // A change drops the value's weight with it.
        cache.put("f", "x".repeat(20), 0);
        cache.changed("f", 5);
        let fill = cache.fill();
        assert_eq!((fill.keys, fill.bytes), (2, 0), "two changes, no values");
    }

    #[test]
    fn a_customer_weighs_what_their_history_holds() {
        let history = |groups: usize| {
            let mut h = History::default();
            for g in 0..groups {
                h.bought_groups
                    .insert(format!("style-{g:06}"), crate::domain::Timestamp::MIN);
            }
            Arc::new(h)
        };
        let memo = Memo::new(usize::MAX);
        memo.put_history("small", history(10), 0);
        memo.put_history("large", history(1_010), 0);
        let small = memo.customers.with("small", weigh::customer).unwrap();
        let large = memo.customers.with("large", weigh::customer).unwrap();
        // Each of the thousand more styles holds at least its 12-byte id.
        assert!(large - small >= 1_000 * 12, "{small} -> {large}");
        assert_eq!(memo.customers.fill().bytes, small + large + 10);
        // A memory too small for the large one keeps the small one only.
        let tight = Memo::new(small + 5 + (large - small) / 2);
        tight.put_history("small", history(10), 0);
        tight.put_history("large", history(1_010), 0);
        assert!(tight.history("small").is_some() && tight.history("large").is_none());
    }
}
