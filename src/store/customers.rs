//! Customers and their identities.

use std::collections::{BTreeMap, HashMap, HashSet};

use sqlx::{AnyConnection, AssertSqlSafe, Row};
use tracing::instrument;

use super::batch::{BatchWrite, Names, Writing};
use super::{IN_CHUNK, Store};
use crate::domain::{
    AnonymousId, Change, ChangeKind, Customer, CustomerId, Error, Identity, IdentityKind,
    ItemResult, Timestamp, Violations, WriteOutcome, fingerprint,
};

/// The customer an identity is linked to, if any.
pub(super) async fn customer_of(
    conn: &mut AnyConnection,
    identity: &Identity,
) -> Result<Option<CustomerId>, Error> {
    let row = sqlx::query("SELECT customer_id FROM identities WHERE kind = $1 AND value = $2")
        .bind(identity.kind().as_str())
        .bind(identity.value())
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        Some(row) => {
            let id: String = row.try_get(0)?;
            Ok(Some(
                CustomerId::parse(&id).map_err(|e| anyhow::anyhow!("stored customer id {e}"))?,
            ))
        }
        None => Ok(None),
    }
}

/// The customer behind an anonymous id, if it has been linked.
pub(super) async fn customer_of_anonymous(
    conn: &mut AnyConnection,
    anonymous_id: &AnonymousId,
) -> Result<Option<CustomerId>, Error> {
    customer_of(conn, &Identity::from(anonymous_id.clone())).await
}

/// Makes sure a customer row exists, and widens its first-seen and
/// last-activity instants to cover `[first, last]`.
pub(super) async fn touch_customer(
    conn: &mut AnyConnection,
    customer_id: &CustomerId,
    first: Timestamp,
    last: Timestamp,
) -> Result<(), Error> {
    let now = Timestamp::now().millis();
    sqlx::query(
        "INSERT INTO customers (customer_id, first_seen_at, last_activity_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $4) \
         ON CONFLICT (customer_id) DO UPDATE SET \
         first_seen_at = CASE WHEN excluded.first_seen_at < customers.first_seen_at \
             THEN excluded.first_seen_at ELSE customers.first_seen_at END, \
         last_activity_at = CASE WHEN excluded.last_activity_at > customers.last_activity_at \
             THEN excluded.last_activity_at ELSE customers.last_activity_at END",
    )
    .bind(customer_id.as_str())
    .bind(first.millis())
    .bind(last.millis())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// [`touch_customer`] for many customers (each once) in few statements,
/// in the order given (callers pass key order: see `lock_order`).
pub(super) async fn touch_customers(
    conn: &mut AnyConnection,
    spans: &[(&CustomerId, Timestamp, Timestamp)],
) -> Result<(), Error> {
    let now = Timestamp::now().millis();
    for chunk in spans.chunks(super::ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO customers (customer_id, first_seen_at, last_activity_at, created_at, updated_at) \
             VALUES {} \
             ON CONFLICT (customer_id) DO UPDATE SET \
             first_seen_at = CASE WHEN excluded.first_seen_at < customers.first_seen_at \
                 THEN excluded.first_seen_at ELSE customers.first_seen_at END, \
             last_activity_at = CASE WHEN excluded.last_activity_at > customers.last_activity_at \
                 THEN excluded.last_activity_at ELSE customers.last_activity_at END",
            super::values_rows(conn, chunk.len(), 5)
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (customer_id, first, last) in chunk {
            q = q
                .bind(customer_id.as_str())
                .bind(first.millis())
                .bind(last.millis())
                .bind(now)
                .bind(now);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// What linking one identity did.
pub(super) enum Link {
    Created { attached: u64 },
    AlreadyLinked,
    Conflict,
}

/// Links `identity` to `customer_id` (which must exist). An anonymous id
/// brings its browsing and guest orders along.
pub(super) async fn link(
    conn: &mut AnyConnection,
    customer_id: &CustomerId,
    identity: &Identity,
    changes: &mut Vec<Change>,
) -> Result<Link, Error> {
    match customer_of(conn, identity).await? {
        Some(owner) if &owner == customer_id => return Ok(Link::AlreadyLinked),
        Some(_) => return Ok(Link::Conflict),
        None => {}
    }
    sqlx::query(
        "INSERT INTO identities (kind, value, customer_id, linked_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(identity.kind().as_str())
    .bind(identity.value())
    .bind(customer_id.as_str())
    .bind(Timestamp::now().millis())
    .execute(&mut *conn)
    .await?;
    let attached = if identity.kind() == IdentityKind::AnonymousId {
        attach_anonymous(conn, customer_id, identity.value(), changes).await?
    } else {
        0
    };
    Ok(Link::Created { attached })
}

/// Gives a customer the history recorded under one of their anonymous ids:
/// browsing events and guest orders (whose totals then count for them).
async fn attach_anonymous(
    conn: &mut AnyConnection,
    customer_id: &CustomerId,
    anonymous_id: &str,
    changes: &mut Vec<Change>,
) -> Result<u64, Error> {
    let events = sqlx::query(
        "UPDATE events SET customer_id = $1 WHERE anonymous_id = $2 AND customer_id IS NULL",
    )
    .bind(customer_id.as_str())
    .bind(anonymous_id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let span = sqlx::query(
        "SELECT MIN(occurred_at), MAX(occurred_at) FROM events WHERE customer_id = $1 AND anonymous_id = $2",
    )
    .bind(customer_id.as_str())
    .bind(anonymous_id)
    .fetch_one(&mut *conn)
    .await?;
    if let (Some(first), Some(last)) = (
        span.try_get::<Option<i64>, _>(0)?,
        span.try_get::<Option<i64>, _>(1)?,
    ) {
        let first = super::instant(first)?;
        let last = super::instant(last)?;
        touch_customer(conn, customer_id, first, last).await?;
    }
    // What the visitor said about suggestions (a thumbs down) now holds for
    // the customer.
    sqlx::query(
        "UPDATE suggestion_feedback SET customer_id = $1 WHERE anonymous_id = $2 AND customer_id IS NULL",
    )
    .bind(customer_id.as_str())
    .bind(anonymous_id)
    .execute(&mut *conn)
    .await?;
    let orders =
        super::orders::attach_guest_orders(conn, customer_id, anonymous_id, changes).await?;
    Ok(events + orders)
}

impl Store {
    /// Creates or merges customers and links their identities. A customer
    /// whose identity belongs to someone else is rejected whole.
    #[instrument(skip_all, fields(count = customers.len()))]
    pub async fn upsert_customers(&self, customers: &[Customer]) -> Result<Vec<ItemResult>, Error> {
        self.write_batch(&Customers, customers).await
    }

    /// Links one identity to a customer, creating the customer if needed.
    /// Returns the outcome and how many records an anonymous id brought.
    #[instrument(skip_all, fields(kind = identity.kind().as_str()))]
    pub async fn link_identity(
        &self,
        customer_id: &CustomerId,
        identity: &Identity,
    ) -> Result<(WriteOutcome, u64), Error> {
        let item = (customer_id.clone(), identity.clone());
        let mut answers = self
            .write_batch(&IdentityLink, std::slice::from_ref(&item))
            .await?;
        answers
            .pop()
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("a link without an answer")))
    }
}

/// Identities linked one at a time (`LinkIdentity`): a link to another
/// customer is refused whole, before anything is written.
struct IdentityLink;

impl BatchWrite for IdentityLink {
    type Item = (CustomerId, Identity);
    type Answer = (WriteOutcome, u64);
    const NAMES: Names = Names::People;

    fn key((customer_id, _): &Self::Item) -> impl Ord + '_ {
        customer_id.as_str()
    }

    fn names((customer_id, identity): &Self::Item) -> Vec<String> {
        super::trust::suppression_keys(Some(customer_id), std::slice::from_ref(identity))
    }

    async fn write(
        &self,
        w: &mut Writing<'_>,
        links: Vec<&Self::Item>,
    ) -> Result<Vec<Self::Answer>, Error> {
        let mut answers = Vec::with_capacity(links.len());
        for link in links {
            if w.suppressed(&Self::names(link)).await? {
                answers.push((WriteOutcome::Suppressed, 0));
                continue;
            }
            let (customer_id, identity) = link;
            answers.push(link_one(w, customer_id, identity).await?);
        }
        Ok(answers)
    }
}

/// Links `identity` to `customer_id` inside `w`; a refused link returns
/// the error before anything is written, so it leaves no trace.
async fn link_one(
    w: &mut Writing<'_>,
    customer_id: &CustomerId,
    identity: &Identity,
) -> Result<(WriteOutcome, u64), Error> {
    if let Some(owner) = customer_of(w.tx, identity).await? {
        if &owner != customer_id {
            return Err(Error::FailedPrecondition(format!(
                "this {} is already linked to another customer",
                identity.kind().as_str()
            )));
        }
        return Ok((WriteOutcome::Duplicate, 0));
    }
    touch_customer(w.tx, customer_id, Timestamp::now(), Timestamp::MIN).await?;
    let outcome = match link(w.tx, customer_id, identity, &mut w.changes).await? {
        Link::Created { attached } => (WriteOutcome::Created, attached),
        Link::AlreadyLinked => (WriteOutcome::Duplicate, 0),
        Link::Conflict => {
            return Err(Error::FailedPrecondition(
                "identity is linked to another customer".into(),
            ));
        }
    };
    w.changes
        .push(Change::customer(ChangeKind::Customer, customer_id.as_str()));
    Ok(outcome)
}

/// A batch of customer profiles being written: who owns each identity and
/// each stored profile's hash, read for the whole batch up front, and the
/// profile rows, identity links and consents written together at the end.
struct Profiles<'a> {
    /// (kind, value) → owning customer, kept current as the batch links.
    owners: HashMap<(&'static str, String), CustomerId>,
    /// Profile hash of each stored customer (or written earlier in the batch).
    stored: HashMap<String, i64>,
    rows: Vec<&'a Customer>,
    links: Vec<(&'a CustomerId, Identity)>,
}

impl<'a> Profiles<'a> {
    async fn read(conn: &mut AnyConnection, customers: &[&'a Customer]) -> Result<Self, Error> {
        let mut by_kind: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
        for c in customers {
            for identity in c.identities() {
                by_kind
                    .entry(identity.kind().as_str())
                    .or_default()
                    .push(identity.value().to_owned());
            }
        }
        let mut owners = HashMap::new();
        for (kind, values) in &by_kind {
            for chunk in values.chunks(IN_CHUNK) {
                // `kind` is one of four fixed names, never input. A join
                // on a list of values is one index probe per value on
                // either backend, whatever the statistics say.
                let sql = format!(
                    "SELECT i.value, i.customer_id FROM (VALUES {}) AS v \
                     JOIN identities i ON i.kind = '{kind}' AND i.value = v.column1",
                    super::values_rows(conn, chunk.len(), 1)
                );
                let mut q = sqlx::query(AssertSqlSafe(sql));
                for v in chunk {
                    q = q.bind(v.as_str());
                }
                for row in q.fetch_all(&mut *conn).await? {
                    let owner: String = row.try_get(1)?;
                    let owner = CustomerId::parse(&owner)
                        .map_err(|e| anyhow::anyhow!("stored customer id {e}"))?;
                    owners.insert((*kind, row.try_get(0)?), owner);
                }
            }
        }
        let ids: Vec<&str> = customers.iter().map(|c| c.customer_id.as_str()).collect();
        let stored = super::stored_hashes(conn, super::Hashes::Profiles, &ids).await?;
        Ok(Self {
            owners,
            stored,
            rows: Vec::new(),
            links: Vec::new(),
        })
    }

    /// Checks one profile and queues its writes. A customer whose identity
    /// belongs to someone else is rejected whole.
    async fn upsert(
        &mut self,
        conn: &mut AnyConnection,
        c: &'a Customer,
        changes: &mut Vec<Change>,
    ) -> Result<ItemResult, Error> {
        let identities = c.identities();
        let mut violations = Violations::new();
        for identity in &identities {
            let key = (identity.kind().as_str(), identity.value().to_owned());
            if self.owners.get(&key).is_some_and(|o| o != &c.customer_id) {
                violations.add(field_of(identity), "is already linked to another customer");
            }
        }
        if !violations.is_empty() {
            return Ok(Err(violations));
        }
        let hash = fingerprint(c);
        let stored = self.stored.insert(c.customer_id.as_str().to_owned(), hash);
        if stored == Some(hash) {
            return Ok(Ok(WriteOutcome::Duplicate));
        }
        if self.rows.iter().any(|r| r.customer_id == c.customer_id) {
            // The same customer twice: the second merges into the first.
            self.flush(conn, changes).await?;
        }
        self.rows.push(c);
        for identity in identities {
            let key = (identity.kind().as_str(), identity.value().to_owned());
            if let std::collections::hash_map::Entry::Vacant(slot) = self.owners.entry(key) {
                slot.insert(c.customer_id.clone());
                self.links.push((&c.customer_id, identity));
            }
        }
        Ok(Ok(if stored.is_some() {
            WriteOutcome::Updated
        } else {
            WriteOutcome::Created
        }))
    }

    /// Writes the queued profiles (a merge: empty fields keep what was
    /// stored), their new identity links (an anonymous id brings its
    /// history along) and consents.
    async fn flush(
        &mut self,
        conn: &mut AnyConnection,
        changes: &mut Vec<Change>,
    ) -> Result<(), Error> {
        let now = Timestamp::now().millis();
        self.write_profiles(conn, now).await?;
        self.write_links(conn, now).await?;
        let anonymous: Vec<&str> = self
            .links
            .iter()
            .filter(|(_, i)| i.kind() == IdentityKind::AnonymousId)
            .map(|(_, i)| i.value())
            .collect();
        let with_history = with_history(conn, &anonymous).await?;
        for (customer, identity) in &self.links {
            if with_history.contains(identity.value())
                && identity.kind() == IdentityKind::AnonymousId
            {
                attach_anonymous(conn, customer, identity.value(), changes).await?;
            }
        }
        for c in &self.rows {
            super::trust::write_consents(conn, &c.customer_id, &c.consents).await?;
        }
        self.rows.clear();
        self.links.clear();
        Ok(())
    }

    async fn write_profiles(&mut self, conn: &mut AnyConnection, now: i64) -> Result<(), Error> {
        self.rows.sort_by(|a, b| a.customer_id.cmp(&b.customer_id));
        for chunk in self.rows.chunks(super::ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO customers (customer_id, display_name, email, phone, loyalty_id, customer_since, \
                 first_seen_at, last_activity_at, profile_hash, created_at, updated_at) VALUES {} \
                 ON CONFLICT (customer_id) DO UPDATE SET \
                 display_name = CASE WHEN excluded.display_name = '' THEN customers.display_name ELSE excluded.display_name END, \
                 email = CASE WHEN excluded.email = '' THEN customers.email ELSE excluded.email END, \
                 phone = CASE WHEN excluded.phone = '' THEN customers.phone ELSE excluded.phone END, \
                 loyalty_id = CASE WHEN excluded.loyalty_id = '' THEN customers.loyalty_id ELSE excluded.loyalty_id END, \
                 customer_since = COALESCE(excluded.customer_since, customers.customer_since), \
                 first_seen_at = CASE WHEN excluded.first_seen_at < customers.first_seen_at \
                     THEN excluded.first_seen_at ELSE customers.first_seen_at END, \
                 profile_hash = excluded.profile_hash, updated_at = excluded.updated_at",
                super::values_rows(conn, chunk.len(), 11)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for c in chunk {
                q = q
                    .bind(c.customer_id.as_str())
                    .bind(c.display_name.as_str())
                    .bind(c.email.as_ref().map_or("", |e| e.as_str()))
                    .bind(c.phone.as_ref().map_or("", |p| p.as_str()))
                    .bind(c.loyalty_id.as_ref().map_or("", |l| l.as_str()))
                    .bind(c.customer_since.map(Timestamp::millis))
                    .bind(c.customer_since.map_or(now, Timestamp::millis))
                    .bind(Timestamp::MIN.millis())
                    .bind(fingerprint(*c))
                    .bind(now)
                    .bind(now);
            }
            q.execute(&mut *conn).await?;
        }
        Ok(())
    }

    async fn write_links(&mut self, conn: &mut AnyConnection, now: i64) -> Result<(), Error> {
        self.links.sort_by(|a, b| {
            (a.1.kind().as_str(), a.1.value()).cmp(&(b.1.kind().as_str(), b.1.value()))
        });
        for chunk in self.links.chunks(super::ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO identities (kind, value, customer_id, linked_at) VALUES {}",
                super::values_rows(conn, chunk.len(), 4)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (customer, identity) in chunk {
                q = q
                    .bind(identity.kind().as_str())
                    .bind(identity.value())
                    .bind(customer.as_str())
                    .bind(now);
            }
            q.execute(&mut *conn).await?;
        }
        Ok(())
    }
}

/// Which of these anonymous ids have history not yet given to a customer
/// (browsing, guest orders, feedback): only those need attaching.
async fn with_history(
    conn: &mut AnyConnection,
    anonymous: &[&str],
) -> Result<HashSet<String>, Error> {
    let mut out = HashSet::new();
    for chunk in anonymous.chunks(IN_CHUNK) {
        for table in ["events", "orders", "suggestion_feedback"] {
            // One index probe per id (a semi-join on a list of values):
            // `IN (...)` over a table whose statistics lag a bulk load got
            // PostgreSQL's generic plan a parallel scan, seconds a batch.
            let sql = format!(
                "SELECT v.column1 FROM (VALUES {}) AS v WHERE EXISTS (SELECT 1 FROM {table} t \
                 WHERE t.anonymous_id = v.column1 AND t.customer_id IS NULL)",
                super::values_rows(conn, chunk.len(), 1)
            );
            let mut q = sqlx::query_scalar::<_, String>(AssertSqlSafe(sql));
            for a in chunk {
                q = q.bind(*a);
            }
            out.extend(q.fetch_all(&mut *conn).await?);
        }
    }
    Ok(out)
}

fn field_of(identity: &Identity) -> &'static str {
    match identity.kind() {
        IdentityKind::Email => "email",
        IdentityKind::Phone => "phone",
        IdentityKind::LoyaltyId => "loyalty_id",
        IdentityKind::AnonymousId => "anonymous_ids",
    }
}

/// Customer profiles, written in a batch.
struct Customers;

impl BatchWrite for Customers {
    type Item = Customer;
    type Answer = ItemResult;
    const NAMES: Names = Names::People;

    fn key(c: &Customer) -> impl Ord + '_ {
        c.customer_id.as_str()
    }

    fn names(c: &Customer) -> Vec<String> {
        super::trust::suppression_keys(Some(&c.customer_id), &c.identities())
    }

    async fn write(
        &self,
        w: &mut Writing<'_>,
        customers: Vec<&Customer>,
    ) -> Result<Vec<ItemResult>, Error> {
        let mut results = Vec::with_capacity(customers.len());
        let mut batch = Profiles::read(w.tx, &customers).await?;
        for c in customers {
            if w.suppressed(&Self::names(c)).await? {
                results.push(Ok(WriteOutcome::Suppressed));
                continue;
            }
            let result = batch.upsert(w.tx, c, &mut w.changes).await?;
            if matches!(result, Ok(WriteOutcome::Created | WriteOutcome::Updated)) {
                w.changes.push(Change::customer(
                    ChangeKind::Customer,
                    c.customer_id.as_str(),
                ));
            }
            results.push(result);
        }
        batch.flush(w.tx, &mut w.changes).await?;
        Ok(results)
    }
}
