//! Browsing events.

use std::collections::{BTreeMap, HashMap, HashSet};

use sqlx::AnyConnection;
use tracing::instrument;

use super::{
    Store, actor_key,
    batch::{BatchWrite, Names, Writing},
    customers::{customer_of_anonymous, link, touch_customer, touch_customers},
};
use crate::domain::{
    AnonymousId, BrowsingEvent, Change, ChangeKind, CustomerId, Error, EventTarget, Identity,
    Timestamp, WriteOutcome,
};

impl Store {
    /// Records browsing events in one transaction, deduplicated by message
    /// id. An event with both a customer id and an anonymous id that is not
    /// linked yet links it, as the shop's own identify call would.
    #[instrument(skip_all, fields(count = events.len()))]
    pub async fn record_events(
        &self,
        events: &[BrowsingEvent],
    ) -> Result<Vec<WriteOutcome>, Error> {
        self.write_batch(&Events, events).await
    }
}

/// Browsing events, written in a batch.
struct Events;

impl BatchWrite for Events {
    type Item = BrowsingEvent;
    type Answer = WriteOutcome;
    const NAMES: Names = Names::People;

    fn key(e: &BrowsingEvent) -> impl Ord + '_ {
        (actor_key(&e.actor), e.message_id.as_str())
    }

    fn names(e: &BrowsingEvent) -> Vec<String> {
        super::trust::actor_keys(&e.actor)
    }

    async fn write(
        &self,
        w: &mut Writing<'_>,
        events: Vec<&BrowsingEvent>,
    ) -> Result<Vec<WriteOutcome>, Error> {
        record_events_in(w, events).await
    }
}

/// Records `events` (in lock order), answering each in that order.
async fn record_events_in(
    w: &mut Writing<'_>,
    events: Vec<&BrowsingEvent>,
) -> Result<Vec<WriteOutcome>, Error> {
    let received_at = Timestamp::now().millis();
    let mut owners: HashMap<AnonymousId, Option<CustomerId>> = HashMap::new();
    // Customers are touched in key order at the end (see `lock_order`).
    let mut spans: BTreeMap<CustomerId, (Timestamp, Timestamp)> = BTreeMap::new();
    let mut outcomes: Vec<Option<WriteOutcome>> = Vec::with_capacity(events.len());
    let mut rows = Vec::with_capacity(events.len());
    let mut seen: HashSet<&str> = HashSet::with_capacity(events.len());
    let mut suppressed: HashMap<(Option<CustomerId>, Option<AnonymousId>), bool> = HashMap::new();
    for e in events {
        let who = (
            e.actor.customer_id().cloned(),
            e.actor.anonymous_id().cloned(),
        );
        let dropped = match suppressed.get(&who) {
            Some(d) => *d,
            None => {
                let d = w.suppressed(&Events::names(e)).await?;
                suppressed.insert(who, d);
                d
            }
        };
        if dropped {
            outcomes.push(Some(WriteOutcome::Suppressed));
            continue;
        }
        let customer = match (e.actor.customer_id(), e.actor.anonymous_id()) {
            (Some(c), Some(a)) => {
                let owner = match owners.get(a) {
                    Some(o) => o.clone(),
                    None => customer_of_anonymous(w.tx, a).await?,
                };
                if owner.is_none() {
                    // Linking happens once per anonymous id; later events in
                    // the batch see it through the cache.
                    touch_customer(w.tx, c, e.occurred_at, e.occurred_at).await?;
                    link(w.tx, c, &Identity::from(a.clone()), &mut w.changes).await?;
                    owners.insert(a.clone(), Some(c.clone()));
                } else {
                    owners.insert(a.clone(), owner);
                }
                Some(c.clone())
            }
            (Some(c), None) => Some(c.clone()),
            (None, Some(a)) => match owners.get(a) {
                Some(owner) => owner.clone(),
                None => {
                    let owner = customer_of_anonymous(w.tx, a).await?;
                    owners.insert(a.clone(), owner.clone());
                    owner
                }
            },
            (None, None) => None,
        };
        if !seen.insert(e.message_id.as_str()) {
            // The same message twice in one batch: the first one counts.
            outcomes.push(Some(WriteOutcome::Duplicate));
            continue;
        }
        rows.push((outcomes.len(), e, customer));
        outcomes.push(None);
    }
    // The rows in few statements (each statement is a round trip to the
    // database, or to SQLite's worker thread): the new ones come back.
    let mut created: HashSet<String> = HashSet::with_capacity(rows.len());
    for chunk in rows.chunks(super::ROWS_PER_STATEMENT) {
        created.extend(insert_events(w.tx, chunk, received_at).await?);
    }
    for (slot, e, customer) in rows {
        if !created.contains(e.message_id.as_str()) {
            outcomes[slot] = Some(WriteOutcome::Duplicate);
            continue;
        }
        if let Some(c) = customer {
            let span = spans.entry(c).or_insert((e.occurred_at, e.occurred_at));
            span.0 = span.0.min(e.occurred_at);
            span.1 = span.1.max(e.occurred_at);
        }
        outcomes[slot] = Some(WriteOutcome::Created);
    }
    // One row update per customer per batch, not per event.
    let touched: Vec<_> = spans.iter().map(|(c, (f, l))| (c, *f, *l)).collect();
    touch_customers(w.tx, &touched).await?;
    for customer in spans.keys() {
        w.changes
            .push(Change::customer(ChangeKind::Event, customer.as_str()));
    }
    let outcomes = outcomes
        .into_iter()
        .map(|o| o.expect("every event has an outcome"));
    Ok(outcomes.collect())
}

/// Inserts `rows` in one statement; returns the message ids that were new.
async fn insert_events(
    conn: &mut AnyConnection,
    rows: &[(usize, &BrowsingEvent, Option<CustomerId>)],
    received_at: i64,
) -> Result<Vec<String>, Error> {
    let mut sql = String::from(
        "INSERT INTO events (message_id, customer_id, anonymous_id, event_type, product_id, \
         search_query, channel, occurred_at, received_at) VALUES ",
    );
    sql.push_str(&super::values_rows(conn, rows.len(), 9));
    sql.push_str(" ON CONFLICT (message_id) DO NOTHING RETURNING message_id");
    let mut query = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql));
    for (_, e, customer) in rows {
        let (product_id, search) = match &e.target {
            EventTarget::Product(p) => (Some(p.as_str()), None),
            EventTarget::Search(q) => (None, Some(q.as_str())),
        };
        query = query
            .bind(e.message_id.as_str())
            .bind(customer.as_ref().map(CustomerId::as_str))
            .bind(e.actor.anonymous_id().map(AnonymousId::as_str))
            .bind(e.kind.as_str())
            .bind(product_id)
            .bind(search)
            .bind(e.channel.as_str())
            .bind(e.occurred_at.millis())
            .bind(received_at);
    }
    Ok(query.fetch_all(&mut *conn).await?)
}
