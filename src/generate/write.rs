//! Storing a generated shop through the store's own writes (the same
//! calls as ingestion: running totals, identity links and the change feed
//! come out as they would in production). Idempotent: writing the same
//! plan again stores nothing new.

use std::time::Instant;

use super::{Plan, catalog, history};
use crate::{
    domain::{Error, ItemResult, Timestamp},
    store::Store,
};

/// Customers generated and written together.
const CHUNK: usize = 500;
/// Items per store call.
const BATCH: usize = 1000;

/// What was written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    /// Products.
    pub products: usize,
    /// Customers.
    pub customers: usize,
    /// Browsing events.
    pub events: usize,
    /// Orders.
    pub orders: usize,
    /// Returns.
    pub returns: usize,
    /// Tickets.
    pub tickets: usize,
    /// Items the store rejected (a generator bug if ever non-zero).
    pub rejected: usize,
}

fn rejected(results: &[ItemResult]) -> usize {
    results.iter().filter(|r| r.is_err()).count()
}

/// Writes the shop of `plan`, with times relative to `now`; `progress` is
/// called after each chunk of customers with the totals so far.
pub async fn write(
    store: &Store,
    plan: &Plan,
    now: Timestamp,
    mut progress: impl FnMut(&Written, f64),
) -> Result<Written, Error> {
    let started = Instant::now();
    let catalog = catalog(plan.seed, plan.products);
    let mut w = Written::default();
    for chunk in catalog.products.chunks(BATCH) {
        store.upsert_products(chunk).await?;
        w.products += chunk.len();
    }
    let mut first = 0;
    while first < plan.customers {
        let last = (first + CHUNK).min(plan.customers);
        let histories: Vec<_> = (first..last)
            .map(|i| history(plan, &catalog, i, now))
            .collect();
        let customers: Vec<_> = histories
            .iter()
            .filter_map(|h| h.customer.clone())
            .collect();
        for c in customers.chunks(BATCH) {
            w.rejected += rejected(&store.upsert_customers(c).await?);
        }
        w.customers += customers.len();
        let orders: Vec<_> = histories
            .iter()
            .flat_map(|h| h.orders.iter().cloned())
            .collect();
        for o in orders.chunks(BATCH) {
            w.rejected += rejected(&store.record_orders(o).await?);
        }
        w.orders += orders.len();
        let returns: Vec<_> = histories
            .iter()
            .flat_map(|h| h.returns.iter().cloned())
            .collect();
        for r in returns.chunks(BATCH) {
            w.rejected += rejected(&store.record_returns(r).await?);
        }
        w.returns += returns.len();
        let tickets: Vec<_> = histories
            .iter()
            .flat_map(|h| h.tickets.iter().cloned())
            .collect();
        for t in tickets.chunks(BATCH) {
            store.upsert_tickets(t).await?;
        }
        w.tickets += tickets.len();
        // Whole batches across customers: one transaction per thousand
        // events, not one per customer.
        let events: Vec<_> = histories.into_iter().flat_map(|h| h.events).collect();
        for e in events.chunks(BATCH) {
            store.record_events(e).await?;
        }
        w.events += events.len();
        first = last;
        progress(&w, started.elapsed().as_secs_f64());
    }
    Ok(w)
}
