//! Customers and their identities.

use sqlx::{AnyConnection, Row};
use tracing::instrument;

use super::{Store, in_request_order, lock_order};
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
        self.retrying(|| self.upsert_customers_once(customers))
            .await
    }

    async fn upsert_customers_once(
        &self,
        customers: &[Customer],
    ) -> Result<Vec<ItemResult>, Error> {
        let hash_key = self.hash_key().await?;
        let mut tx = self.begin_write().await?;
        let suppression = super::trust::Suppression::load(&mut tx, hash_key).await?;
        let mut results = Vec::with_capacity(customers.len());
        let mut changes = Vec::new();
        let order = lock_order(customers, |c| c.customer_id.as_str());
        for c in order.iter().map(|&i| &customers[i]) {
            let keys = super::trust::suppression_keys(Some(&c.customer_id), &c.identities());
            if suppression.check(&mut tx, &keys).await? {
                results.push(Ok(WriteOutcome::Suppressed));
                continue;
            }
            let result = upsert_customer(&mut tx, c, &mut changes).await?;
            if matches!(result, Ok(WriteOutcome::Created | WriteOutcome::Updated)) {
                changes.push(Change::customer(
                    ChangeKind::Customer,
                    c.customer_id.as_str(),
                ));
            }
            results.push(result);
        }
        super::feed::append(&mut tx, &changes).await?;
        tx.commit().await?;
        Ok(in_request_order(&order, results))
    }

    /// Links one identity to a customer, creating the customer if needed.
    /// Returns the outcome and how many records an anonymous id brought.
    #[instrument(skip_all, fields(kind = identity.kind().as_str()))]
    pub async fn link_identity(
        &self,
        customer_id: &CustomerId,
        identity: &Identity,
    ) -> Result<(WriteOutcome, u64), Error> {
        let hash_key = self.hash_key().await?;
        let mut tx = self.begin_write().await?;
        let suppression = super::trust::Suppression::load(&mut tx, hash_key).await?;
        let keys =
            super::trust::suppression_keys(Some(customer_id), std::slice::from_ref(identity));
        if suppression.check(&mut tx, &keys).await? {
            return Ok((WriteOutcome::Suppressed, 0));
        }
        let now = Timestamp::now();
        // Check before creating anything, so a refused link leaves no trace.
        if let Some(owner) = customer_of(&mut tx, identity).await? {
            if &owner != customer_id {
                return Err(Error::FailedPrecondition(format!(
                    "this {} is already linked to another customer",
                    identity.kind().as_str()
                )));
            }
            return Ok((WriteOutcome::Duplicate, 0));
        }
        touch_customer(&mut tx, customer_id, now, Timestamp::MIN).await?;
        let mut changes = Vec::new();
        let outcome = match link(&mut tx, customer_id, identity, &mut changes).await? {
            Link::Created { attached } => (WriteOutcome::Created, attached),
            Link::AlreadyLinked => (WriteOutcome::Duplicate, 0),
            Link::Conflict => {
                return Err(Error::FailedPrecondition(
                    "identity is linked to another customer".into(),
                ));
            }
        };
        changes.push(Change::customer(ChangeKind::Customer, customer_id.as_str()));
        super::feed::append(&mut tx, &changes).await?;
        tx.commit().await?;
        Ok(outcome)
    }
}

async fn upsert_customer(
    conn: &mut AnyConnection,
    c: &Customer,
    changes: &mut Vec<Change>,
) -> Result<ItemResult, Error> {
    let identities = c.identities();
    let mut violations = Violations::new();
    for identity in &identities {
        if let Some(owner) = customer_of(conn, identity).await?
            && owner != c.customer_id
        {
            violations.add(field_of(identity), "is already linked to another customer");
        }
    }
    if !violations.is_empty() {
        return Ok(Err(violations));
    }
    let hash = fingerprint(c);
    let stored = sqlx::query("SELECT profile_hash FROM customers WHERE customer_id = $1")
        .bind(c.customer_id.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    let existed = stored.is_some();
    if let Some(row) = stored
        && row.try_get::<i64, _>(0)? == hash
    {
        return Ok(Ok(WriteOutcome::Duplicate));
    }
    let now = Timestamp::now();
    let since = c.customer_since.unwrap_or(now);
    touch_customer(conn, &c.customer_id, since, Timestamp::MIN).await?;
    // A merge: empty fields keep what was stored.
    sqlx::query(
        "UPDATE customers SET \
         display_name = CASE WHEN $2 = '' THEN display_name ELSE $2 END, \
         email = CASE WHEN $3 = '' THEN email ELSE $3 END, \
         phone = CASE WHEN $4 = '' THEN phone ELSE $4 END, \
         loyalty_id = CASE WHEN $5 = '' THEN loyalty_id ELSE $5 END, \
         customer_since = COALESCE($6, customer_since), \
         profile_hash = $7, updated_at = $8 \
         WHERE customer_id = $1",
    )
    .bind(c.customer_id.as_str())
    .bind(&c.display_name)
    .bind(c.email.as_ref().map_or("", |e| e.as_str()))
    .bind(c.phone.as_ref().map_or("", |p| p.as_str()))
    .bind(c.loyalty_id.as_ref().map_or("", |l| l.as_str()))
    .bind(c.customer_since.map(Timestamp::millis))
    .bind(hash)
    .bind(now.millis())
    .execute(&mut *conn)
    .await?;
    for identity in &identities {
        // Conflicts were ruled out above, inside the same transaction.
        link(conn, &c.customer_id, identity, changes).await?;
    }
    super::trust::write_consents(conn, &c.customer_id, &c.consents).await?;
    Ok(Ok(if existed {
        WriteOutcome::Updated
    } else {
        WriteOutcome::Created
    }))
}

fn field_of(identity: &Identity) -> &'static str {
    match identity.kind() {
        IdentityKind::Email => "email",
        IdentityKind::Phone => "phone",
        IdentityKind::LoyaltyId => "loyalty_id",
        IdentityKind::AnonymousId => "anonymous_ids",
    }
}
