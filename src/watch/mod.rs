//! Live watchers of customers: which replica-local watcher wants to hear
//! of which change. The suggestion model's feed tail reports every applied
//! feed entry here; each watcher keeps the kinds of change seen since it
//! last read (a bitset, so a burst is one wake-up and nothing queues) and
//! the products in its last context (a product change wakes only the
//! watchers that show it). Notifying never waits: ingestion is never held
//! up by a watcher, however slow.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicU32, Ordering},
    },
};

use tokio::sync::Notify;

use crate::domain::{ChangeKind, FeedEntry};

/// What a watcher was woken for (bits of [`Triggers`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A browsing event.
    Browsing = 1,
    /// An order.
    Order = 2,
    /// A return.
    Return = 4,
    /// A ticket.
    Ticket = 8,
    /// The profile or identities.
    Profile = 16,
    /// Consent.
    Consent = 32,
    /// A product shown in the context.
    Catalog = 64,
    /// Feedback on a suggestion.
    Feedback = 128,
    /// Some customer was erased (perhaps this one: read again to know).
    Erasure = 256,
    /// Some API key was revoked (perhaps the watcher's: check it).
    Revocation = 512,
}

impl Trigger {
    /// Every trigger, in bit order.
    pub const ALL: [Trigger; 10] = [
        Trigger::Browsing,
        Trigger::Order,
        Trigger::Return,
        Trigger::Ticket,
        Trigger::Profile,
        Trigger::Consent,
        Trigger::Catalog,
        Trigger::Feedback,
        Trigger::Erasure,
        Trigger::Revocation,
    ];

    fn of(kind: ChangeKind) -> Option<Trigger> {
        Some(match kind {
            ChangeKind::Event => Trigger::Browsing,
            ChangeKind::Order => Trigger::Order,
            ChangeKind::Return => Trigger::Return,
            ChangeKind::Ticket => Trigger::Ticket,
            ChangeKind::Customer => Trigger::Profile,
            ChangeKind::Consent => Trigger::Consent,
            ChangeKind::Feedback => Trigger::Feedback,
            ChangeKind::Product => Trigger::Catalog,
            ChangeKind::Erasure => Trigger::Erasure,
            ChangeKind::Revocation => Trigger::Revocation,
            ChangeKind::Basket
            | ChangeKind::Experiment
            | ChangeKind::Model
            | ChangeKind::Curation => return None,
        })
    }
}

/// A set of triggers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Triggers(u32);

impl Triggers {
    /// Whether nothing is in the set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Both sets.
    pub fn union(self, other: Triggers) -> Triggers {
        Triggers(self.0 | other.0)
    }

    /// The set without `t`.
    pub fn without(self, t: Trigger) -> Triggers {
        Triggers(self.0 & !(t as u32))
    }

    /// Whether `t` is in the set.
    pub fn has(self, t: Trigger) -> bool {
        self.0 & t as u32 != 0
    }

    /// The triggers in the set, in bit order.
    pub fn iter(self) -> impl Iterator<Item = Trigger> {
        Trigger::ALL.into_iter().filter(move |t| self.has(*t))
    }
}

/// One watcher's mailbox.
#[derive(Debug, Default)]
struct Slot {
    pending: AtomicU32,
    wake: Notify,
    products: Mutex<HashSet<String>>,
}

impl Slot {
    fn post(&self, t: Trigger) {
        self.pending.fetch_or(t as u32, Ordering::AcqRel);
        // Stores a permit when the watcher is not waiting: never lost.
        self.wake.notify_one();
    }
}

/// Every watcher of this replica, by customer id.
#[derive(Debug, Default)]
pub struct Watchers {
    by_customer: Mutex<HashMap<String, Vec<Weak<Slot>>>>,
}

/// A registered watcher; dropping it unregisters it.
#[derive(Debug)]
pub struct Watch {
    slot: Arc<Slot>,
    customer_id: String,
    watchers: Arc<Watchers>,
}

impl Watchers {
    /// Registers a watcher of `customer_id`.
    pub fn watch(self: &Arc<Self>, customer_id: &str) -> Watch {
        let slot = Arc::new(Slot::default());
        let mut map = self.by_customer.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(customer_id.to_owned())
            .or_default()
            .push(Arc::downgrade(&slot));
        Watch {
            slot,
            customer_id: customer_id.to_owned(),
            watchers: self.clone(),
        }
    }

    /// Watchers registered now.
    pub fn len(&self) -> usize {
        let map = self.by_customer.lock().unwrap_or_else(|p| p.into_inner());
        map.values().map(Vec::len).sum()
    }

    /// Whether no watcher is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Wakes the watchers that `entries` concern. Never waits on them.
    pub fn notify(&self, entries: &[FeedEntry]) {
        let map = self.by_customer.lock().unwrap_or_else(|p| p.into_inner());
        if map.is_empty() {
            return;
        }
        for e in entries {
            let Some(trigger) = Trigger::of(e.change.kind) else {
                continue;
            };
            match (trigger, &e.change.customer_id, &e.change.product_id) {
                (Trigger::Erasure | Trigger::Revocation, _, _) => {
                    for slot in map.values().flatten().filter_map(Weak::upgrade) {
                        slot.post(trigger);
                    }
                }
                (Trigger::Catalog, _, Some(product)) => {
                    for slot in map.values().flatten().filter_map(Weak::upgrade) {
                        let shows = slot
                            .products
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .contains(product);
                        if shows {
                            slot.post(Trigger::Catalog);
                        }
                    }
                }
                (_, Some(customer), _) => {
                    for slot in map.get(customer).into_iter().flatten() {
                        if let Some(slot) = slot.upgrade() {
                            slot.post(trigger);
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

impl Watch {
    /// Waits until something is posted, then takes everything posted so far.
    pub async fn changed(&self) -> Triggers {
        loop {
            let taken = self.slot.pending.swap(0, Ordering::AcqRel);
            if taken != 0 {
                return Triggers(taken);
            }
            self.slot.wake.notified().await;
        }
    }

    /// Takes what was posted so far without waiting (a burst's tail).
    pub fn take(&self) -> Triggers {
        Triggers(self.slot.pending.swap(0, Ordering::AcqRel))
    }

    /// The products the watcher's last context showed.
    pub fn show(&self, products: HashSet<String>) {
        *self.slot.products.lock().unwrap_or_else(|p| p.into_inner()) = products;
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut map = self
            .watchers
            .by_customer
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(slots) = map.get_mut(&self.customer_id) {
            slots.retain(|w| w.strong_count() > 0 && !std::ptr::eq(w.as_ptr(), &*self.slot));
            if slots.is_empty() {
                map.remove(&self.customer_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Change;

    fn entry(seq: i64, change: Change) -> FeedEntry {
        FeedEntry { seq, change }
    }

    #[tokio::test]
    async fn a_burst_is_one_wake_up_and_only_the_customer_is_woken() {
        let watchers = Arc::new(Watchers::default());
        let maya = watchers.watch("maya");
        let erin = watchers.watch("erin");
        assert_eq!(watchers.len(), 2);
        watchers.notify(&[
            entry(1, Change::customer(ChangeKind::Event, "maya")),
            entry(2, Change::customer(ChangeKind::Event, "maya")),
            entry(3, Change::customer(ChangeKind::Return, "maya")),
        ]);
        let t = maya.changed().await;
        assert!(t.has(Trigger::Browsing) && t.has(Trigger::Return) && !t.has(Trigger::Order));
        assert!(maya.take().is_empty(), "the burst was taken at once");
        assert!(erin.take().is_empty());
        drop(maya);
        assert_eq!(watchers.len(), 1);
    }

    #[tokio::test]
    async fn products_wake_the_watchers_that_show_them_and_erasure_wakes_all() {
        let watchers = Arc::new(Watchers::default());
        let maya = watchers.watch("maya");
        let erin = watchers.watch("erin");
        maya.show(["shell-l".to_owned()].into());
        watchers.notify(&[entry(1, Change::product("shell-l"))]);
        assert_eq!(maya.take().iter().collect::<Vec<_>>(), [Trigger::Catalog]);
        assert!(erin.take().is_empty());
        watchers.notify(&[entry(2, Change::erasure())]);
        assert!(maya.changed().await.has(Trigger::Erasure));
        assert!(erin.changed().await.has(Trigger::Erasure));
    }
}
