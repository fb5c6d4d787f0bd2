//! Retention: how long each kind of record is kept, and the pass that
//! deletes what is older. Personal data is kept no longer than it is
//! useful, and no table grows without bound.
//!
//! A pass deletes one kind at a time in batches of [`BATCH`] rows, each its
//! own short transaction, and pauses between batches so ingestion (which
//! shares SQLite's single writer) goes first. It never touches a customer's
//! running totals: order count, units, spend, first seen and last activity
//! are lifetime figures kept on the customer and stay as they were.
//! Webhook deliveries have their own window (`--webhook-retention-days`),
//! applied by the connectors' minute task.

use std::time::Duration;

use crate::{
    domain::{Error, Timestamp},
    store::{Aged, Store},
};

/// Rows deleted per transaction.
pub const BATCH: i64 = 1_000;

/// The pause between two batches: a waiting write gets the writer first.
const PAUSE: Duration = Duration::from_millis(5);

/// Days each kind is kept; `None` keeps it for ever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Browsing events, by when they happened (default 180 days: a season
    /// of browsing, past what any conversation asks about).
    pub events: Option<u32>,
    /// Access-log entries (default 400 days: a year of "who read my data"
    /// answers, with a month's margin).
    pub access_log: Option<u32>,
    /// Orders with their lines and returns (kept by default: they are the
    /// history support answers from).
    pub purchases: Option<u32>,
    /// Solved and closed tickets (kept by default).
    pub tickets: Option<u32>,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            events: Some(180),
            access_log: Some(400),
            purchases: None,
            tickets: None,
        }
    }
}

impl Retention {
    /// How long `kind` is kept, in days.
    pub fn days(&self, kind: Aged) -> Option<u32> {
        match kind {
            Aged::Events => self.events,
            Aged::AccessLog => self.access_log,
            Aged::Purchases => self.purchases,
            Aged::Tickets => self.tickets,
        }
    }

    /// The instant before which `kind` is deleted, at `now`.
    pub fn cutoff(&self, kind: Aged, now: Timestamp) -> Option<Timestamp> {
        self.days(kind).map(|d| now.minus_days(d))
    }
}

/// What one pass deleted of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    /// The kind.
    pub kind: Aged,
    /// Rows (orders, returns, tickets, events, entries) deleted.
    pub deleted: u64,
}

/// Deletes every record older than its kind's window at `now`, a batch at
/// a time; `each` hears every batch as it is committed (for metrics).
pub async fn prune(
    store: &Store,
    policy: &Retention,
    now: Timestamp,
    mut each: impl FnMut(Aged, u64),
) -> Result<Vec<Pruned>, Error> {
    let mut out = Vec::new();
    for kind in Aged::ALL {
        let Some(before) = policy.cutoff(kind, now) else {
            continue;
        };
        let mut deleted = 0;
        loop {
            let n = store.prune(kind, before, BATCH).await?;
            each(kind, n);
            deleted += n;
            if n < BATCH as u64 {
                break;
            }
            tokio::time::sleep(PAUSE).await;
        }
        out.push(Pruned { kind, deleted });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_for_ever_has_no_cutoff_and_windows_count_back_from_now() {
        let policy = Retention::default();
        let now = Timestamp::from_millis(1_000 * 86_400_000).unwrap();
        assert_eq!(policy.cutoff(Aged::Purchases, now), None);
        assert_eq!(policy.cutoff(Aged::Tickets, now), None);
        assert_eq!(
            policy.cutoff(Aged::Events, now),
            Timestamp::from_millis(820 * 86_400_000).ok()
        );
        assert_eq!(
            policy.cutoff(Aged::AccessLog, now),
            Timestamp::from_millis(600 * 86_400_000).ok()
        );
    }
}
