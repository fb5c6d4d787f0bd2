//! API keys, consent, erasure, export, suppression and the access log.

use std::collections::BTreeMap;

use anyhow::{Context as _, anyhow};
use sqlx::{AnyConnection, AssertSqlSafe, Column, Row, any::AnyRow};
use tracing::instrument;

use super::{Backend, Store, placeholders};
use crate::{
    domain::{
        Change, ChangeKind, ConsentRecord, CustomerId, Error, Identity, IdentityKind, Purpose,
        Timestamp,
    },
    domain::{Role, keys},
};

/// A key as stored (never the secret).
#[derive(Debug, Clone)]
pub struct StoredKey {
    /// Public id.
    pub key_id: String,
    /// Name given at creation.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Keyed hash of the secret.
    pub secret_hash: String,
    /// Created.
    pub created_at: Timestamp,
    /// Whether revoked.
    pub revoked: bool,
}

/// One access-log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessEntry {
    /// Unique id.
    pub entry_id: String,
    /// When.
    pub at: Timestamp,
    /// Key id.
    pub key_id: String,
    /// Key name.
    pub key_name: String,
    /// Role.
    pub role: String,
    /// Full RPC name.
    pub rpc: String,
    /// The customer read, if known.
    pub customer_id: Option<String>,
    /// The anonymous visitor read, for anonymous lookups.
    pub anonymous_id: Option<String>,
}

/// What an erasure removed, per table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErasureReceipt {
    /// Rows deleted per table.
    pub deleted: BTreeMap<String, u64>,
    /// Identities added to the suppression list.
    pub suppressed_identities: u64,
    /// What became of the deleted rows' bytes in the database files.
    pub storage: String,
}

/// The receipt's storage note on SQLite, once the log was truncated.
const SQLITE_ERASED: &str = "Deleted rows were overwritten with zeros in the database file     (secure_delete) and the write-ahead log was checkpointed and truncated: no erased value     remains in the database files.";
/// The receipt's storage note on SQLite when readers kept the log busy.
const SQLITE_LOG_BUSY: &str = "Deleted rows were overwritten with zeros in the database file     (secure_delete); the write-ahead log was busy and still holds their earlier versions until     the next checkpoint (run `customer-context scrub` to force it).";
/// The receipt's storage note on PostgreSQL.
const POSTGRES_ERASED: &str = "Rows deleted. PostgreSQL keeps the bytes of deleted rows in     the free space of its table files until they are reused; run `customer-context scrub`     (VACUUM FULL of the tables that hold personal data) to rewrite those files.";

/// A table that holds a customer's data, with its statements written out:
/// each binds the same values every time (a statement whose binds vary
/// with the customer breaks a connection's cached plan on PostgreSQL).
pub(super) struct PersonalTable {
    /// The table.
    pub(super) table: &'static str,
    /// Deletes the customer's rows (`$1` the customer id).
    erase: &'static str,
    /// Deletes the rows of one of their anonymous ids (`$1`) not already
    /// found by the customer id (`$2`), for tables that have them.
    pub(super) erase_anonymous: Option<&'static str>,
    /// Selects the customer's rows (`$1` the customer id).
    export: &'static str,
    /// Selects the rows of one of their anonymous ids, as `erase_anonymous`.
    export_anonymous: Option<&'static str>,
    /// Rewrites the table's storage on PostgreSQL.
    vacuum: &'static str,
}

/// The tables that hold a customer's data. Order matters for erasure
/// (children first); export goes the other way.
pub(super) const PERSONAL_TABLES: &[PersonalTable] = &[
    PersonalTable {
        table: "access_log",
        erase: "DELETE FROM access_log WHERE customer_id = $1",
        erase_anonymous: Some(
            "DELETE FROM access_log WHERE anonymous_id = $1 AND (customer_id IS NULL OR customer_id <> $2)",
        ),
        export: "SELECT * FROM access_log WHERE customer_id = $1",
        export_anonymous: Some(
            "SELECT * FROM access_log WHERE anonymous_id = $1 AND (customer_id IS NULL OR customer_id <> $2)",
        ),
        vacuum: "VACUUM FULL access_log",
    },
    PersonalTable {
        table: "consents",
        erase: "DELETE FROM consents WHERE customer_id = $1",
        erase_anonymous: None,
        export: "SELECT * FROM consents WHERE customer_id = $1",
        export_anonymous: None,
        vacuum: "VACUUM FULL consents",
    },
    PersonalTable {
        table: "customer_affinities",
        erase: "DELETE FROM customer_affinities WHERE customer_id = $1",
        erase_anonymous: None,
        export: "SELECT * FROM customer_affinities WHERE customer_id = $1",
        export_anonymous: None,
        vacuum: "VACUUM FULL customer_affinities",
    },
    PersonalTable {
        table: "customer_spend",
        erase: "DELETE FROM customer_spend WHERE customer_id = $1",
        erase_anonymous: None,
        export: "SELECT * FROM customer_spend WHERE customer_id = $1",
        export_anonymous: None,
        vacuum: "VACUUM FULL customer_spend",
    },
    PersonalTable {
        table: "events",
        erase: "DELETE FROM events WHERE customer_id = $1",
        erase_anonymous: Some(
            "DELETE FROM events WHERE anonymous_id = $1 AND (customer_id IS NULL OR customer_id <> $2)",
        ),
        export: "SELECT * FROM events WHERE customer_id = $1",
        export_anonymous: Some(
            "SELECT * FROM events WHERE anonymous_id = $1 AND (customer_id IS NULL OR customer_id <> $2)",
        ),
        vacuum: "VACUUM FULL events",
    },
    PersonalTable {
        table: "order_lines",
        erase: "DELETE FROM order_lines WHERE order_id IN (SELECT order_id FROM orders WHERE customer_id = $1)",
        erase_anonymous: Some(
            "DELETE FROM order_lines WHERE order_id IN (SELECT order_id FROM orders WHERE anonymous_id = $1 AND (customer_id IS NULL OR customer_id <> $2))",
        ),
        export: "SELECT * FROM order_lines WHERE order_id IN (SELECT order_id FROM orders WHERE customer_id = $1)",
        export_anonymous: Some(
            "SELECT * FROM order_lines WHERE order_id IN (SELECT order_id FROM orders WHERE anonymous_id = $1 AND (customer_id IS NULL OR customer_id <> $2))",
        ),
        vacuum: "VACUUM FULL order_lines",
    },
    PersonalTable {
        table: "orders",
        erase: "DELETE FROM orders WHERE customer_id = $1",
        erase_anonymous: Some(
            "DELETE FROM orders WHERE anonymous_id = $1 AND (customer_id IS NULL OR customer_id <> $2)",
        ),
        export: "SELECT * FROM orders WHERE customer_id = $1",
        export_anonymous: Some(
            "SELECT * FROM orders WHERE anonymous_id = $1 AND (customer_id IS NULL OR customer_id <> $2)",
        ),
        vacuum: "VACUUM FULL orders",
    },
    PersonalTable {
        table: "return_lines",
        erase: "DELETE FROM return_lines WHERE return_id IN (SELECT return_id FROM returns WHERE customer_id = $1)",
        erase_anonymous: None,
        export: "SELECT * FROM return_lines WHERE return_id IN (SELECT return_id FROM returns WHERE customer_id = $1)",
        export_anonymous: None,
        vacuum: "VACUUM FULL return_lines",
    },
    PersonalTable {
        table: "returns",
        erase: "DELETE FROM returns WHERE customer_id = $1",
        erase_anonymous: None,
        export: "SELECT * FROM returns WHERE customer_id = $1",
        export_anonymous: None,
        vacuum: "VACUUM FULL returns",
    },
    PersonalTable {
        table: "tickets",
        erase: "DELETE FROM tickets WHERE customer_id = $1",
        erase_anonymous: None,
        export: "SELECT * FROM tickets WHERE customer_id = $1",
        export_anonymous: None,
        vacuum: "VACUUM FULL tickets",
    },
    PersonalTable {
        table: "customer_groups",
        erase: "DELETE FROM customer_groups WHERE customer_id = $1",
        erase_anonymous: None,
        export: "SELECT * FROM customer_groups WHERE customer_id = $1",
        export_anonymous: None,
        vacuum: "VACUUM FULL customer_groups",
    },
    PersonalTable {
        table: "change_feed",
        erase: "DELETE FROM change_feed WHERE customer_id = $1",
        erase_anonymous: None,
        export: "SELECT * FROM change_feed WHERE customer_id = $1",
        export_anonymous: None,
        vacuum: "VACUUM FULL change_feed",
    },
    PersonalTable {
        table: "suggestion_feedback",
        erase: "DELETE FROM suggestion_feedback WHERE customer_id = $1",
        erase_anonymous: Some(
            "DELETE FROM suggestion_feedback WHERE anonymous_id = $1 AND (customer_id IS NULL OR customer_id <> $2)",
        ),
        export: "SELECT * FROM suggestion_feedback WHERE customer_id = $1",
        export_anonymous: Some(
            "SELECT * FROM suggestion_feedback WHERE anonymous_id = $1 AND (customer_id IS NULL OR customer_id <> $2)",
        ),
        vacuum: "VACUUM FULL suggestion_feedback",
    },
    PersonalTable {
        table: "identities",
        erase: "DELETE FROM identities WHERE customer_id = $1",
        erase_anonymous: None,
        export: "SELECT * FROM identities WHERE customer_id = $1",
        export_anonymous: None,
        vacuum: "VACUUM FULL identities",
    },
    PersonalTable {
        table: "curation_customers",
        erase: "DELETE FROM curation_customers WHERE customer_id = $1",
        erase_anonymous: None,
        export: "SELECT * FROM curation_customers WHERE customer_id = $1",
        export_anonymous: None,
        vacuum: "VACUUM FULL curation_customers",
    },
    PersonalTable {
        table: "webhook_deliveries",
        erase: "DELETE FROM webhook_deliveries WHERE customer_id = $1",
        erase_anonymous: None,
        export: "SELECT * FROM webhook_deliveries WHERE customer_id = $1",
        export_anonymous: None,
        vacuum: "VACUUM FULL webhook_deliveries",
    },
    PersonalTable {
        table: "webhook_links",
        erase: "DELETE FROM webhook_links WHERE customer_id = $1",
        erase_anonymous: None,
        export: "SELECT * FROM webhook_links WHERE customer_id = $1",
        export_anonymous: None,
        vacuum: "VACUUM FULL webhook_links",
    },
    PersonalTable {
        table: "customers",
        erase: "DELETE FROM customers WHERE customer_id = $1",
        erase_anonymous: None,
        export: "SELECT * FROM customers WHERE customer_id = $1",
        export_anonymous: None,
        vacuum: "VACUUM FULL customers",
    },
];

/// The suppression-list key of an identity.
pub(super) fn identity_key(kind: &str, value: &str) -> String {
    format!("{kind}:{value}")
}

/// The keyed hash under which an identity is suppressed once its customer
/// is erased; deliveries not yet tied to a customer carry it too, so the
/// erasure finds them without storing the identity in clear.
pub fn identity_hash(hash_key: &[u8; 32], identity: &Identity) -> String {
    keys::hash_secret(
        hash_key,
        &identity_key(identity.kind().as_str(), identity.value()),
    )
}

/// Suppression-list keys for whoever did something: the customer and
/// the anonymous id, as far as each is known.
pub(super) fn actor_keys(actor: &crate::domain::Actor) -> Vec<String> {
    let visitor: Vec<Identity> = actor
        .anonymous_id()
        .cloned()
        .map(Identity::from)
        .into_iter()
        .collect();
    suppression_keys(actor.customer_id(), &visitor)
}

/// Suppression-list keys for a customer id and identities.
pub fn suppression_keys(customer: Option<&CustomerId>, identities: &[Identity]) -> Vec<String> {
    let mut keys: Vec<String> = customer
        .map(|c| identity_key("customer_id", c.as_str()))
        .into_iter()
        .collect();
    keys.extend(
        identities
            .iter()
            .map(|i| identity_key(i.kind().as_str(), i.value())),
    );
    keys
}

/// A row as a JSON object, column by column.
fn row_json(row: &AnyRow) -> serde_json::Value {
    let mut o = serde_json::Map::new();
    for (i, col) in row.columns().iter().enumerate() {
        let v = if let Ok(Some(n)) = row.try_get::<Option<i64>, _>(i) {
            serde_json::Value::from(n)
        } else if let Ok(Some(s)) = row.try_get::<Option<String>, _>(i) {
            serde_json::Value::from(s)
        } else {
            serde_json::Value::Null
        };
        o.insert(col.name().to_owned(), v);
    }
    serde_json::Value::Object(o)
}

impl Store {
    /// The deployment's hashing key (created on first use, shared by every
    /// replica through the database).
    pub async fn hash_key(&self) -> Result<[u8; 32], Error> {
        let key = self
            .hash_key
            .get_or_try_init(|| async {
                let fresh: String = keys::random_bytes::<32>()
                    .map_err(|e| anyhow!("no randomness: {e}"))?
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                sqlx::query("INSERT INTO settings (name, value) VALUES ('hash_key', $1) ON CONFLICT (name) DO NOTHING")
                    .bind(fresh)
                    .execute(&self.writer)
                    .await?;
                let stored: String = sqlx::query("SELECT value FROM settings WHERE name = 'hash_key'")
                    .fetch_one(&self.writer)
                    .await?
                    .try_get(0)?;
                let mut out = [0u8; 32];
                for (i, slot) in out.iter_mut().enumerate() {
                    *slot = u8::from_str_radix(stored.get(i * 2..i * 2 + 2).context("short hash key")?, 16)
                        .context("malformed hash key")?;
                }
                Ok::<_, Error>(out)
            })
            .await?;
        Ok(*key)
    }

    /// Creates a key; returns it with its token (shown once).
    pub async fn create_key(&self, name: &str, role: Role) -> Result<(StoredKey, String), Error> {
        let hash_key = self.hash_key().await?;
        let new = keys::generate(&hash_key).map_err(|e| anyhow!("no randomness: {e}"))?;
        let now = Timestamp::now();
        sqlx::query(
            "INSERT INTO api_keys (key_id, name, role, secret_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&new.key_id)
        .bind(name)
        .bind(role.as_str())
        .bind(&new.secret_hash)
        .bind(now.millis())
        .execute(&self.writer)
        .await?;
        let stored = StoredKey {
            key_id: new.key_id,
            name: name.to_owned(),
            role,
            secret_hash: new.secret_hash,
            created_at: now,
            revoked: false,
        };
        Ok((stored, new.token))
    }

    fn key_from_row(row: &AnyRow) -> Result<StoredKey, Error> {
        let role: String = row.try_get(2)?;
        Ok(StoredKey {
            key_id: row.try_get(0)?,
            name: row.try_get(1)?,
            role: Role::parse(&role).map_err(|e| anyhow!("stored role {e}"))?,
            secret_hash: row.try_get(3)?,
            created_at: super::instant(row.try_get(4)?)?,
            revoked: row.try_get::<Option<i64>, _>(5)?.is_some(),
        })
    }

    /// A key by id.
    pub async fn find_key(&self, key_id: &str) -> Result<Option<StoredKey>, Error> {
        let row = sqlx::query(
            "SELECT key_id, name, role, secret_hash, created_at, revoked_at FROM api_keys WHERE key_id = $1",
        )
        .bind(key_id)
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(Self::key_from_row).transpose()
    }

    /// Every key, oldest first.
    pub async fn list_keys(&self) -> Result<Vec<StoredKey>, Error> {
        let rows = sqlx::query(
            "SELECT key_id, name, role, secret_hash, created_at, revoked_at FROM api_keys ORDER BY created_at, key_id",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(Self::key_from_row).collect()
    }

    /// Revokes a key; `false` when no such key exists or it was revoked.
    pub async fn revoke_key(&self, key_id: &str) -> Result<bool, Error> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE api_keys SET revoked_at = $2 WHERE key_id = $1 AND revoked_at IS NULL",
        )
        .bind(key_id)
        .bind(Timestamp::now().millis())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n > 0 {
            // Every replica's open streams check their key on this entry.
            super::feed::append(&mut tx, &[Change::of(ChangeKind::Revocation)]).await?;
        }
        tx.commit().await?;
        Ok(n > 0)
    }

    /// Records consents for a customer (created when unknown).
    #[instrument(skip_all)]
    pub async fn set_consents(
        &self,
        customer: &CustomerId,
        consents: &[ConsentRecord],
    ) -> Result<bool, Error> {
        // The hash key first: it may need the (single) writer connection.
        let hash_key = self.hash_key().await?;
        let mut tx = self.begin_write().await?;
        self.hold_off_erasures(&mut tx).await?;
        if is_suppressed(&mut tx, &hash_key, &suppression_keys(Some(customer), &[])).await? {
            return Ok(false);
        }
        super::customers::touch_customer(&mut tx, customer, Timestamp::now(), Timestamp::MIN)
            .await?;
        write_consents(&mut tx, customer, consents).await?;
        super::feed::append(
            &mut tx,
            &[Change::customer(ChangeKind::Consent, customer.as_str())],
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The consents on file for a customer.
    pub async fn consents(&self, customer: &CustomerId) -> Result<Vec<ConsentRecord>, Error> {
        let rows = sqlx::query(
            "SELECT purpose, granted, source, updated_at FROM consents WHERE customer_id = $1 ORDER BY purpose",
        )
        .bind(customer.as_str())
        .fetch_all(&self.reader)
        .await?;
        let mut out = Vec::new();
        for r in rows {
            let purpose: String = r.try_get(0)?;
            let Some(purpose) = Purpose::from_stored(&purpose) else {
                continue;
            };
            out.push(ConsentRecord {
                purpose,
                granted: r.try_get::<i64, _>(1)? != 0,
                source: r.try_get(2)?,
                updated_at: super::instant(r.try_get(3)?)?,
            });
        }
        Ok(out)
    }

    /// Whether any of these identities belongs to an erased customer.
    pub async fn suppressed(&self, keys: &[String]) -> Result<bool, Error> {
        let hash_key = self.hash_key().await?;
        let mut conn = self.reader.acquire().await?;
        is_suppressed(&mut conn, &hash_key, keys).await
    }

    /// Erases a customer: every row about them in every table, their
    /// contribution to the running totals (which are their own rows), and
    /// puts their identities on the suppression list (as keyed hashes).
    /// Run again when PostgreSQL aborts it for a deadlock (nothing of an
    /// aborted attempt was kept).
    #[instrument(skip_all)]
    pub async fn erase_customer(&self, customer: &CustomerId) -> Result<ErasureReceipt, Error> {
        let mut receipt = self.retrying(|| self.erase_once(customer)).await?;
        receipt.storage = match self.backend {
            Backend::Sqlite if self.checkpoint_sqlite().await? => SQLITE_ERASED,
            Backend::Sqlite => SQLITE_LOG_BUSY,
            Backend::Postgres => POSTGRES_ERASED,
        }
        .to_owned();
        Ok(receipt)
    }

    /// One attempt at [`Store::erase_customer`]'s transaction.
    async fn erase_once(&self, customer: &CustomerId) -> Result<ErasureReceipt, Error> {
        let hash_key = self.hash_key().await?;
        let mut tx = self.begin_write().await?;
        // On PostgreSQL a write naming people checks the suppression list,
        // and an access-log entry that its customer is stored, each in a
        // snapshot of its own: one running beside this erasure would see
        // the customer not yet erased and land after their rows are
        // deleted, bringing them back. So those writes wait while an
        // erasure runs (these locks keep out writes, not reads), and one
        // under way finishes first, its rows then seen and deleted here.
        // This is the erasure's first lock, and those writers take it
        // before any other, so no order can deadlock. (SQLite writes one
        // transaction at a time.)
        if self.backend == Backend::Postgres {
            sqlx::query("LOCK TABLE suppressions, access_log IN SHARE ROW EXCLUSIVE MODE")
                .execute(&mut *tx)
                .await?;
        }
        let identities = sqlx::query("SELECT kind, value FROM identities WHERE customer_id = $1")
            .bind(customer.as_str())
            .fetch_all(&mut *tx)
            .await?;
        let mut keys = vec![identity_key("customer_id", customer.as_str())];
        let mut anonymous = Vec::new();
        for r in &identities {
            let kind: String = r.try_get(0)?;
            let value: String = r.try_get(1)?;
            if kind == IdentityKind::AnonymousId.as_str() {
                anonymous.push(value.clone());
            }
            keys.push(identity_key(&kind, &value));
        }
        // Their orders' share of the suggestion model goes first.
        let lines = sqlx::query(
            "SELECT o.order_id, o.placed_at, l.product_id FROM orders o JOIN order_lines l ON l.order_id = o.order_id \
             WHERE o.customer_id = $1 AND o.status <> 'cancelled' ORDER BY o.order_id, l.line_no",
        )
        .bind(customer.as_str())
        .fetch_all(&mut *tx)
        .await?;
        let mut orders: Vec<(String, i64, Vec<String>)> = Vec::new();
        for r in &lines {
            let (order_id, placed_at, product): (String, i64, String) =
                (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
            match orders.last_mut() {
                Some((id, _, products)) if *id == order_id => {
                    if !products.contains(&product) {
                        products.push(product);
                    }
                }
                _ => orders.push((order_id, placed_at, vec![product])),
            }
        }
        let mut changes: Vec<Change> = orders
            .into_iter()
            .map(|(_, placed_at, products)| Change::basket(false, placed_at, products))
            .collect();
        changes.push(Change::erasure());
        let mut receipt = ErasureReceipt::default();
        for t in PERSONAL_TABLES {
            let mut n = sqlx::query(t.erase)
                .bind(customer.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if let Some(q) = t.erase_anonymous {
                for a in &anonymous {
                    n += sqlx::query(q)
                        .bind(a.as_str())
                        .bind(customer.as_str())
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                }
            }
            receipt.deleted.insert(t.table.to_owned(), n);
        }
        // Deliveries not tied to the customer yet (a guest order, a ticket
        // waiting for its requester) are found by their identities' hashes.
        let mut held = 0;
        for key in &keys {
            let hash = keys::hash_secret(&hash_key, key);
            held +=
                sqlx::query("DELETE FROM webhook_deliveries WHERE subject = $1 OR awaiting = $1")
                    .bind(&hash)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
        }
        *receipt
            .deleted
            .entry("webhook_deliveries".to_owned())
            .or_default() += held;
        let now = Timestamp::now().millis();
        for key in &keys {
            let n = sqlx::query(
                "INSERT INTO suppressions (identity_hash, created_at) VALUES ($1, $2) ON CONFLICT (identity_hash) DO NOTHING",
            )
            .bind(keys::hash_secret(&hash_key, key))
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            receipt.suppressed_identities += n;
        }
        super::feed::append(&mut tx, &changes).await?;
        tx.commit().await?;
        Ok(receipt)
    }

    /// Copies SQLite's write-ahead log into the database file and truncates
    /// it, so earlier versions of erased rows leave the log. `false` when
    /// readers kept it busy through every attempt.
    async fn checkpoint_sqlite(&self) -> Result<bool, Error> {
        for _ in 0..5 {
            let busy: i64 = sqlx::query_scalar("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_one(&self.writer)
                .await?;
            if busy == 0 {
                return Ok(true);
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        Ok(false)
    }

    /// Waits (up to a minute) until every transaction that was running
    /// when the scrub began has ended, and no session of this database
    /// holds a snapshot from before it: a rewrite keeps every deleted row
    /// that such a snapshot could still see. (A snapshot's horizon is the
    /// oldest transaction running anywhere in the cluster, hence the first
    /// condition.)
    async fn wait_for_older_transactions(&self) -> Result<(), Error> {
        let began: i64 = sqlx::query_scalar("SELECT txid_current()")
            .fetch_one(&self.writer)
            .await?;
        for _ in 0..1200 {
            let clear: bool = sqlx::query_scalar(
                "SELECT txid_snapshot_xmin(txid_current_snapshot()) > $1 AND NOT EXISTS ( \
                 SELECT 1 FROM pg_stat_activity WHERE datname = current_database() \
                 AND pid <> pg_backend_pid() \
                 AND age(backend_xmin) >= age((($1::bigint) % 4294967296)::text::xid))",
            )
            .bind(began)
            .fetch_one(&self.writer)
            .await?;
            if clear {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        tracing::warn!("transactions older than the scrub kept running; their rows may survive it");
        Ok(())
    }

    /// Rewrites the storage of every table that holds personal data, so no
    /// erased value survives in free space: `VACUUM` on SQLite (the whole
    /// file, then the log is truncated), `VACUUM FULL` of those tables on
    /// PostgreSQL (each is locked while it is rewritten). A maintenance
    /// task for a quiet hour (`customer-context scrub`).
    pub async fn scrub(&self) -> Result<Vec<&'static str>, Error> {
        let tables: Vec<&'static str> = PERSONAL_TABLES.iter().map(|t| t.table).collect();
        match self.backend {
            Backend::Sqlite => {
                sqlx::query("VACUUM").execute(&self.writer).await?;
                self.checkpoint_sqlite().await?;
            }
            Backend::Postgres => {
                self.wait_for_older_transactions().await?;
                for t in PERSONAL_TABLES {
                    sqlx::query(t.vacuum).execute(&self.writer).await?;
                }
            }
        }
        Ok(tables)
    }

    /// Everything stored about a customer, table by table, as JSON rows.
    #[instrument(skip_all)]
    pub async fn export_customer(
        &self,
        customer: &CustomerId,
    ) -> Result<Vec<(String, Vec<serde_json::Value>)>, Error> {
        let mut conn = self.reader.acquire().await?;
        let anonymous: Vec<String> = sqlx::query(
            "SELECT value FROM identities WHERE customer_id = $1 AND kind = 'anonymous_id'",
        )
        .bind(customer.as_str())
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
        let mut out = Vec::new();
        for t in PERSONAL_TABLES.iter().rev() {
            let mut rows = sqlx::query(t.export)
                .bind(customer.as_str())
                .fetch_all(&mut *conn)
                .await?;
            if let Some(q) = t.export_anonymous {
                for a in &anonymous {
                    let more = sqlx::query(q)
                        .bind(a.as_str())
                        .bind(customer.as_str())
                        .fetch_all(&mut *conn)
                        .await?;
                    rows.extend(more);
                }
            }
            out.push((t.table.to_owned(), rows.iter().map(row_json).collect()));
        }
        Ok(out)
    }

    /// Appends access-log entries in one transaction, each only when the
    /// customer (or the visitor's browsing) it names is stored.
    pub async fn append_access(&self, entries: &[AccessEntry]) -> Result<(), Error> {
        let mut tx = self.begin_write().await?;
        // Few statements: each is a round trip (to SQLite's worker thread).
        for chunk in entries.chunks(super::ROWS_PER_STATEMENT) {
            // Only reads of someone stored: the entry of an attempt at an
            // unknown or erased customer (or a visitor without browsing) is
            // not kept, so it leaves no trace of an erased one.
            let sql = format!(
                "WITH v (entry_id, at, key_id, key_name, role, rpc, customer_id, anonymous_id) AS (VALUES {}) \
                 INSERT INTO access_log (entry_id, at, key_id, key_name, role, rpc, customer_id, anonymous_id) \
                 SELECT v.entry_id, v.at, v.key_id, v.key_name, v.role, v.rpc, v.customer_id, v.anonymous_id \
                 FROM v WHERE (v.customer_id IS NULL \
                 OR EXISTS (SELECT 1 FROM customers c WHERE c.customer_id = v.customer_id)) \
                 AND (v.anonymous_id IS NULL OR v.customer_id IS NOT NULL \
                 OR EXISTS (SELECT 1 FROM events e WHERE e.anonymous_id = v.anonymous_id))",
                super::values_rows(&tx, chunk.len(), 8)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for e in chunk {
                q = q
                    .bind(e.entry_id.as_str())
                    .bind(e.at.millis())
                    .bind(e.key_id.as_str())
                    .bind(e.key_name.as_str())
                    .bind(e.role.as_str())
                    .bind(e.rpc.as_str())
                    .bind(e.customer_id.as_deref())
                    .bind(e.anonymous_id.as_deref());
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Access-log entries about a customer (or an anonymous id), newest
    /// first, strictly before the cursor `(at, entry_id)` when given.
    pub async fn list_access(
        &self,
        customer: Option<&str>,
        anonymous: Option<&str>,
        before: Option<(i64, String)>,
        limit: i64,
    ) -> Result<Vec<AccessEntry>, Error> {
        let (column, id) = match (customer, anonymous) {
            (Some(c), _) => ("customer_id", c),
            (None, Some(a)) => ("anonymous_id", a),
            (None, None) => return Ok(Vec::new()),
        };
        let (at, entry) = before.unwrap_or((i64::MAX, String::new()));
        let sql = format!(
            "SELECT entry_id, at, key_id, key_name, role, rpc, customer_id, anonymous_id FROM access_log \
             WHERE {column} = $1 AND (at < $2 OR (at = $2 AND entry_id < $3) OR $4 = 1) \
             ORDER BY at DESC, entry_id DESC LIMIT $5"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .bind(at)
            .bind(entry)
            .bind(i64::from(before_is_none(at)))
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(AccessEntry {
                    entry_id: r.try_get(0)?,
                    at: super::instant(r.try_get(1)?)?,
                    key_id: r.try_get(2)?,
                    key_name: r.try_get(3)?,
                    role: r.try_get(4)?,
                    rpc: r.try_get(5)?,
                    customer_id: r.try_get(6)?,
                    anonymous_id: r.try_get(7)?,
                })
            })
            .collect()
    }

    /// Every table in the schema with its text columns (for the erasure
    /// sweep in tests and for operators auditing an erasure).
    pub async fn text_columns(&self) -> Result<Vec<(String, Vec<String>)>, Error> {
        let sql = match self.backend {
            super::Backend::Sqlite => {
                "SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p \
                 WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name NOT LIKE '_sqlx%' \
                 AND upper(p.type) = 'TEXT' ORDER BY m.name, p.cid"
            }
            super::Backend::Postgres => {
                "SELECT table_name::TEXT, column_name::TEXT FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name NOT LIKE '_sqlx%' AND data_type = 'text' \
                 ORDER BY table_name, ordinal_position"
            }
        };
        let rows = sqlx::query(sql).fetch_all(&self.reader).await?;
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for r in rows {
            let (t, c): (String, String) = (r.try_get(0)?, r.try_get(1)?);
            match out.last_mut() {
                Some((last, cols)) if *last == t => cols.push(c),
                _ => out.push((t, vec![c])),
            }
        }
        Ok(out)
    }

    /// Rows of `table` whose text columns contain any of `needles` (a
    /// sweep for traces of erased data).
    pub async fn rows_mentioning(
        &self,
        table: &str,
        columns: &[String],
        needles: &[String],
    ) -> Result<u64, Error> {
        let mut conds = Vec::new();
        let mut n = 1;
        for c in columns {
            for _ in needles {
                conds.push(format!("{c} LIKE ${n}"));
                n += 1;
            }
        }
        if conds.is_empty() {
            return Ok(0);
        }
        let sql = format!("SELECT COUNT(*) FROM {table} WHERE {}", conds.join(" OR "));
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for _ in columns {
            for needle in needles {
                q = q.bind(format!("%{needle}%"));
            }
        }
        let count: i64 = q.fetch_one(&self.reader).await?.try_get(0)?;
        Ok(count as u64)
    }
}

fn before_is_none(at: i64) -> bool {
    at == i64::MAX
}

pub(super) async fn write_consents(
    conn: &mut AnyConnection,
    customer: &CustomerId,
    consents: &[ConsentRecord],
) -> Result<(), Error> {
    for c in consents {
        // A consent older than the one on file does not overwrite it.
        sqlx::query(
            "INSERT INTO consents (customer_id, purpose, granted, source, updated_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (customer_id, purpose) DO UPDATE SET granted = excluded.granted, source = excluded.source, \
             updated_at = excluded.updated_at WHERE excluded.updated_at >= consents.updated_at",
        )
        .bind(customer.as_str())
        .bind(c.purpose.as_str())
        .bind(i64::from(c.granted))
        .bind(&c.source)
        .bind(c.updated_at.millis())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The suppression list as one batch sees it: when nobody was ever
/// erased, items are not checked at all; else the keys the batch names
/// are looked up together ([`Suppression::preload`]), not item by item.
pub(super) struct Suppression {
    hash_key: [u8; 32],
    active: bool,
    /// Whether each key looked up so far is on the list.
    known: std::collections::HashMap<String, bool>,
}

impl Store {
    /// On PostgreSQL, makes an erasure wait for this transaction, and this
    /// transaction (from here on) for an erasure under way, so that a
    /// write naming people sees the suppression list as the erasure left
    /// it (see [`Store::erase_customer`]). Call it first in the
    /// transaction, before the list is read. Writes naming people run
    /// side by side as before: the lock conflicts only with an erasure's.
    pub(super) async fn hold_off_erasures(&self, conn: &mut AnyConnection) -> Result<(), Error> {
        if self.backend == Backend::Postgres {
            sqlx::query("LOCK TABLE suppressions IN ROW EXCLUSIVE MODE")
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }
}

impl Suppression {
    /// Looks once whether the list has any entry. On PostgreSQL it first
    /// holds off erasures, in the same round trip (see
    /// [`Store::hold_off_erasures`]): call it first in the transaction.
    pub(super) async fn load(
        conn: &mut AnyConnection,
        backend: Backend,
        hash_key: [u8; 32],
    ) -> Result<Self, Error> {
        let found = match backend {
            Backend::Postgres => {
                sqlx::raw_sql(
                    "LOCK TABLE suppressions IN ROW EXCLUSIVE MODE; \
                     SELECT 1 FROM suppressions LIMIT 1",
                )
                // (`fetch_optional` would stop at the LOCK, which has
                // no rows.)
                .fetch_all(&mut *conn)
                .await?
                .pop()
            }
            Backend::Sqlite => {
                sqlx::query("SELECT 1 FROM suppressions LIMIT 1")
                    .fetch_optional(&mut *conn)
                    .await?
            }
        };
        Ok(Self {
            hash_key,
            active: found.is_some(),
            known: Default::default(),
        })
    }

    /// Looks `keys` up in few statements, so that [`Suppression::check`]
    /// answers for them without the database.
    pub(super) async fn preload(
        &mut self,
        conn: &mut AnyConnection,
        keys: impl IntoIterator<Item = String>,
    ) -> Result<(), Error> {
        if !self.active {
            return Ok(());
        }
        let mut keys: Vec<String> = keys
            .into_iter()
            .filter(|k| !self.known.contains_key(k))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let hashes: Vec<String> = keys
            .iter()
            .map(|k| keys::hash_secret(&self.hash_key, k))
            .collect();
        let listed = listed(conn, &hashes).await?;
        for (k, h) in keys.into_iter().zip(&hashes) {
            self.known.insert(k, listed.contains(h));
        }
        Ok(())
    }

    /// Whether any of these identities belongs to an erased customer: from
    /// what was preloaded when it covers them all, else from the database.
    pub(super) async fn check(
        &self,
        conn: &mut AnyConnection,
        keys: &[String],
    ) -> Result<bool, Error> {
        if !self.active {
            return Ok(false);
        }
        let known: Option<Vec<bool>> = keys.iter().map(|k| self.known.get(k).copied()).collect();
        match known {
            Some(listed) => Ok(listed.contains(&true)),
            None => is_suppressed(conn, &self.hash_key, keys).await,
        }
    }
}

/// Which of `hashes` are on the suppression list, in few statements.
async fn listed(
    conn: &mut AnyConnection,
    hashes: &[String],
) -> Result<std::collections::HashSet<String>, Error> {
    let mut listed = std::collections::HashSet::new();
    for chunk in hashes.chunks(super::IN_CHUNK) {
        let sql = format!(
            "SELECT identity_hash FROM suppressions WHERE identity_hash IN ({})",
            placeholders(1, chunk.len())
        );
        let mut q = sqlx::query_scalar::<_, String>(AssertSqlSafe(sql));
        for h in chunk {
            q = q.bind(h.as_str());
        }
        listed.extend(q.fetch_all(&mut *conn).await?);
    }
    Ok(listed)
}

/// The positions of the customers among `ids` who were erased (their
/// customer id is on the suppression list), in order.
pub(super) async fn erased_among(
    conn: &mut AnyConnection,
    hash_key: &[u8; 32],
    ids: &[CustomerId],
) -> Result<Vec<usize>, Error> {
    let hashes: Vec<String> = ids
        .iter()
        .map(|c| keys::hash_secret(hash_key, &identity_key("customer_id", c.as_str())))
        .collect();
    let listed = listed(conn, &hashes).await?;
    Ok((0..ids.len())
        .filter(|&i| listed.contains(&hashes[i]))
        .collect())
}

/// Whether any key is on the suppression list.
pub(super) async fn is_suppressed(
    conn: &mut AnyConnection,
    hash_key: &[u8; 32],
    keys: &[String],
) -> Result<bool, Error> {
    if keys.is_empty() {
        return Ok(false);
    }
    let sql = format!(
        "SELECT 1 FROM suppressions WHERE identity_hash IN ({}) LIMIT 1",
        placeholders(1, keys.len())
    );
    let mut q = sqlx::query(AssertSqlSafe(sql));
    for k in keys {
        q = q.bind(keys::hash_secret(hash_key, k));
    }
    Ok(q.fetch_optional(&mut *conn).await?.is_some())
}
