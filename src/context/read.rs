//! The context's one read step: from this replica's memory for a customer
//! it remembers (kept exact by the change feed; the window moves by the
//! hour), else one read of the customer's rows
//! ([`Store::customer_read`]) beside one for their browsing. What the
//! suggestions need of the same rows is handed on, not read again.

use std::sync::Arc;

use super::{ContextQuery, ContextService, Sections, limits, policy};
use crate::{
    domain::{ConsentRecord, CustomerId, Error, Timestamp},
    reads::{ContextReads, browsing_signals, summarise_browsing, viewed_and_in_cart},
    store::{CustomerRead, CustomerReadBounds, EventRow, PurchasedLine, Subject},
    suggest::HistoryRows,
};

/// What the read step found.
#[derive(Debug)]
pub(super) struct Read {
    /// The customer's consents (none for a visitor).
    pub consents: Arc<Vec<ConsentRecord>>,
    /// The sections consent lets us read (see [`policy::readable`]).
    pub sections: Sections,
    /// The customer withdrew consent for support context.
    pub withheld: bool,
    /// The sections' rows.
    pub reads: Arc<ContextReads>,
    /// The suggestion history's rows, when they were read with these.
    pub rows: Option<HistoryRows>,
}

// The suggestions' browsing is a prefix of the context's scan.
const _: () = assert!(crate::suggest::limits::EVENTS <= limits::EVENT_SCAN as i64);

impl ContextService {
    /// The subject's rows for `query`, remembered or read.
    pub(super) async fn read(
        &self,
        subject: &Subject,
        query: &ContextQuery,
        as_of: Timestamp,
    ) -> Result<Read, Error> {
        let since = window_start(query, as_of);
        match subject {
            Subject::Customer(c) => match self.remembered(c, query, since) {
                Some(read) => Ok(read),
                None => self.read_customer(subject, c, query, since, as_of).await,
            },
            Subject::Anonymous(_) => self.read_visitor(subject, query, since).await,
        }
    }

    /// Customer `c`'s rows for `query` from the database, never from
    /// memory: the read of a customer this replica remembered nothing
    /// about, which may run before it has caught up with the change feed
    /// (a read is as new as the database; what it keeps in memory is kept
    /// under the feed position it began at).
    pub(super) async fn read_first(
        &self,
        c: &CustomerId,
        query: &ContextQuery,
        as_of: Timestamp,
    ) -> Result<(Subject, Read), Error> {
        let subject = Subject::Customer(c.clone());
        let since = window_start(query, as_of);
        let read = self.read_customer(&subject, c, query, since, as_of).await?;
        Ok((subject, read))
    }

    /// The reads this replica remembers for the customer under the
    /// sections their consents (also remembered) allow.
    fn remembered(&self, c: &CustomerId, query: &ContextQuery, since: Timestamp) -> Option<Read> {
        let memo = self.suggest.live().memo();
        let consents = memo.consents(c.as_str())?;
        let (sections, withheld) = policy::readable(query.sections, &consents);
        let reads = memo.context(c.as_str(), &memo_key(sections, since, query))?;
        Some(Read {
            consents,
            sections,
            withheld,
            reads,
            rows: None,
        })
    }

    /// A customer's first read: their rows in one statement and their
    /// browsing in another, concurrently. `NotFound` when no such
    /// customer is stored.
    async fn read_customer(
        &self,
        subject: &Subject,
        c: &CustomerId,
        query: &ContextQuery,
        since: Timestamp,
        as_of: Timestamp,
    ) -> Result<Read, Error> {
        let live = self.suggest.live();
        let from = live.applied();
        let bounds = CustomerReadBounds {
            since,
            orders: i64::from(query.orders_limit),
            returns: i64::from(query.returns_limit.max(1)),
            tickets: i64::from(query.tickets_limit.max(1)),
            purchase_lines: crate::suggest::limits::PURCHASE_LINES,
            returned_since: self.suggest.returned_since(as_of),
        };
        let (read, events) = tokio::try_join!(
            self.store.customer_read(c, &bounds),
            self.events(subject, query.sections)
        )?;
        let mut read = read.ok_or_else(not_found)?;
        let consents = Arc::new(std::mem::take(&mut read.consents));
        live.memo().put_consents(c.as_str(), consents.clone(), from);
        let (sections, withheld) = policy::readable(query.sections, &consents);
        let (reads, rows) = self
            .context_reads(c, read, &events, sections, since)
            .await?;
        let reads = Arc::new(reads);
        live.memo().put_context(
            c.as_str(),
            memo_key(sections, since, query),
            reads.clone(),
            from,
        );
        let rows = HistoryRows {
            browsing: suggestion_browsing(&events),
            from,
            ..rows
        };
        Ok(Read {
            consents,
            sections,
            withheld,
            reads,
            rows: Some(rows),
        })
    }

    /// A visitor's read: their browsing, and their thumbs down when
    /// suggestions are asked for.
    async fn read_visitor(
        &self,
        subject: &Subject,
        query: &ContextQuery,
        since: Timestamp,
    ) -> Result<Read, Error> {
        let from = self.suggest.live().applied();
        let (events, rejected_groups) =
            tokio::try_join!(self.events(subject, query.sections), async {
                match query.sections.suggestions {
                    true => self.store.rejected_groups(subject).await,
                    false => Ok(Default::default()),
                }
            })?;
        let (browsed, searches, scanned) = browsing_since(&events, since);
        let reads = ContextReads {
            scanned,
            signals: browsing_signals(&browsed),
            browsed,
            searches,
            ..ContextReads::default()
        };
        let rows = HistoryRows {
            rejected_groups,
            browsing: suggestion_browsing(&events),
            from,
            ..HistoryRows::default()
        };
        Ok(Read {
            consents: Arc::default(),
            sections: query.sections,
            withheld: false,
            reads: Arc::new(reads),
            rows: Some(rows),
        })
    }

    /// The subject's newest browsing events (of all time: the context
    /// keeps those of its window, suggestions the newest of them), when
    /// any section asked for needs them.
    async fn events(&self, subject: &Subject, s: Sections) -> Result<Vec<EventRow>, Error> {
        if s.recent_browsing || s.recent_searches || s.agent_brief || s.suggestions {
            let scan = i64::from(limits::EVENT_SCAN);
            self.store
                .recent_events(subject, Timestamp::MIN, scan)
                .await
        } else {
            Ok(Vec::new())
        }
    }

    /// A customer read split into the sections' rows, as consent lets us
    /// keep them (`s`), and the suggestion history's rows (their browsing
    /// and feed position left for the caller).
    async fn context_reads(
        &self,
        c: &CustomerId,
        read: CustomerRead,
        events: &[EventRow],
        s: Sections,
        since: Timestamp,
    ) -> Result<(ContextReads, HistoryRows), Error> {
        let CustomerRead {
            profile,
            consents: _,
            tickets,
            orders,
            returns,
            purchase_lines,
            returned_lines,
            bought_groups,
            rejected_groups,
        } = read;
        let brief = s.agent_brief;
        let browsing = s.recent_browsing || s.recent_searches || brief || s.suggestions;
        let (browsed, searches, scanned) = match browsing {
            true => browsing_since(events, since),
            false => Default::default(),
        };
        let earliest_cart = browsed
            .iter()
            .filter(|b| b.in_cart)
            .filter_map(|b| b.added_to_cart_at)
            .min();
        // A cart item bought after it was added is no longer in the cart.
        let bought = match earliest_cart {
            Some(earliest) => match bought_since(&purchase_lines, earliest) {
                Some(bought) => bought,
                None => {
                    let scan = i64::from(limits::PURCHASE_SCAN);
                    self.store.purchases_since(c, earliest, scan).await?
                }
            },
            None => Vec::new(),
        };
        let reads = ContextReads {
            profile: (s.profile || brief).then_some(profile),
            scanned,
            signals: browsing_signals(&browsed),
            browsed,
            searches,
            bought,
            orders: keep(s.recent_orders, orders),
            returns: keep(s.returns || brief, returns),
            tickets: keep(s.open_tickets || brief, tickets),
            size_evidence: match s.profile || brief {
                true => self
                    .suggest
                    .size_evidence_of(&purchase_lines, &returned_lines),
                false => Vec::new(),
            },
            sizes: Default::default(),
        };
        let rows = HistoryRows {
            lines: purchase_lines,
            returned: returned_lines,
            bought_groups,
            rejected_groups,
            ..HistoryRows::default()
        };
        Ok((reads, rows))
    }
}

/// The key a customer's reads are remembered under.
fn memo_key(s: Sections, since: Timestamp, query: &ContextQuery) -> String {
    format!(
        "{}|{}|{}|{}|{}",
        s.bits(),
        since.millis() / 3_600_000,
        query.orders_limit,
        query.returns_limit,
        query.tickets_limit
    )
}

/// `rows` when their section is kept, else nothing.
fn keep<T>(on: bool, rows: Vec<T>) -> Vec<T> {
    if on { rows } else { Vec::new() }
}

/// The answer for an identity that leads nowhere.
pub(super) fn not_found() -> Error {
    Error::NotFound("no customer or browsing is known under this identity".into())
}

/// The browsing of the window: the events since `since` (a prefix of the
/// newest-first scan) folded, with how many there were.
fn browsing_since(
    events: &[EventRow],
    since: Timestamp,
) -> (
    Vec<crate::reads::Browsed>,
    Vec<crate::reads::RecentSearch>,
    u32,
) {
    let window = events.partition_point(|e| e.occurred_at >= since);
    let (browsed, searches) = summarise_browsing(&events[..window], usize::MAX);
    (browsed, searches, window as u32)
}

/// What suggestions take of the browsing: the newest
/// [`crate::suggest::limits::EVENTS`] events, whatever their age.
fn suggestion_browsing(events: &[EventRow]) -> (Vec<String>, Vec<String>) {
    let n = (crate::suggest::limits::EVENTS as usize).min(events.len());
    viewed_and_in_cart(&events[..n])
}

/// What was bought (with when) since `earliest`, newest first, from the
/// newest purchase lines: `None` when they may not reach back that far
/// (then it is read on its own).
pub(super) fn bought_since(
    lines: &[PurchasedLine],
    earliest: Timestamp,
) -> Option<Vec<(String, Timestamp)>> {
    let complete = (lines.len() as i64) < crate::suggest::limits::PURCHASE_LINES
        || lines.last().is_some_and(|l| l.placed_at < earliest);
    complete.then(|| {
        lines
            .iter()
            .take_while(|l| l.placed_at >= earliest)
            .take(limits::PURCHASE_SCAN as usize)
            .map(|l| (l.product_id.clone(), l.placed_at))
            .collect()
    })
}

/// Start of the context's window, by the hour, as remembered reads use it.
fn window_start(query: &ContextQuery, as_of: Timestamp) -> Timestamp {
    let since = as_of.minus_days(query.lookback_days);
    Timestamp::from_millis(since.millis() / 3_600_000 * 3_600_000).unwrap_or(since)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(product: &str, at_ms: i64) -> PurchasedLine {
        PurchasedLine {
            product_id: product.into(),
            category_path: String::new(),
            unit_price_minor: 100,
            placed_at: Timestamp::from_millis(at_ms).expect("an instant"),
            order_id: format!("o-{at_ms}"),
            quantity: 1,
        }
    }

    #[test]
    fn purchases_since_the_cart_come_from_the_lines_read_only_when_they_reach_back() {
        let at = |ms| Timestamp::from_millis(ms).expect("an instant");
        // Fewer lines than the bound: every purchase is among them.
        let few = vec![line("b", 300), line("a", 200), line("z", 100)];
        let bought = bought_since(&few, at(200)).expect("complete");
        assert_eq!(
            bought,
            [("b".to_owned(), at(300)), ("a".to_owned(), at(200))]
        );
        // As many lines as the bound, all after the cart addition: older
        // purchases may be missing, so they are read on their own.
        let n = crate::suggest::limits::PURCHASE_LINES;
        let full: Vec<PurchasedLine> = (0..n).map(|i| line("x", 10_000 - i)).collect();
        assert!(bought_since(&full, at(1)).is_none());
        // The same lines reaching back past the addition are enough.
        let bought = bought_since(&full, at(10_000 - n + 2)).expect("reaches back");
        assert_eq!(bought.len() as i64, n - 1);
    }
}
