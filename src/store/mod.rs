//! Storage: the only module that speaks SQL.
//!
//! It depends on `domain` alone. One implementation serves both backends
//! through sqlx's `Any` driver: the SQL is portable (numbered `$n` parameters, `ON CONFLICT`, BIGINT instants
//! and money), so SQLite and PostgreSQL run the very same statements and the
//! same contract tests prove the same behaviour on each.
//!
//! SQLite runs in WAL mode with `synchronous=FULL`: a write is acknowledged
//! only after its commit reached the disk, so it survives a crash or a power
//! loss. Writes go through a single connection (SQLite allows one writer at a
//! time; queueing in the pool beats `SQLITE_BUSY` retries) and reads through
//! a pool of read-only connections that never wait for the writer. The
//! writer runs with `secure_delete`: what is deleted or overwritten is
//! zeroed in the file, so an erased customer leaves no readable residue.
//! Its page cache is 64 MiB (SQLite's default is 2 MiB), so the index pages
//! of a large events table stay in memory from one batch to the next.

mod backup;
mod batch;
mod catalog;
mod curations;
mod customer_read;
mod customers;
mod deliveries;
mod events;
mod feed;
mod model;
mod orders;
mod reads;
mod repair;
mod retention;
mod returns;
mod suggestions;
mod tickets;
mod totals;
mod trust;

use std::{path::PathBuf, str::FromStr, time::Duration};

use anyhow::Context as _;
use sqlx::{
    AnyPool, AssertSqlSafe, Executor, Row,
    any::{AnyConnectOptions, AnyPoolOptions},
    migrate::Migrator,
};

pub use backup::{Replayed, settle_sqlite_file};
pub use curations::{CurationCounts, CurationFilter, CurationQuery, LIVE_CURATIONS};
pub use customer_read::{CustomerRead, CustomerReadBounds};
pub use deliveries::{
    DeliveryState, Ended, Finish, NewDelivery, Saved, SourceStatus, StoredDelivery,
};
pub use feed::{ModelInputs, ModelRead, StoredSnapshot, ViewRow};
pub use reads::*;
pub use retention::Aged;
pub use suggestions::{
    ATTRIBUTION_DAYS, ExperimentRow, FeedbackRow, PurchasedLine, ReturnedLine, VariantCounts,
};
pub use trust::{AccessEntry, ErasureReceipt, StoredKey, identity_hash, suppression_keys};

use crate::domain;

/// The schema migrations in `migrations/`, embedded in the binary. Released
/// migrations are never edited; new ones are appended.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Which database engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default: one SQLite file.
    Sqlite,
    /// A PostgreSQL server, shared by any number of replicas.
    Postgres,
}

/// Connection settings beyond the URL.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Most connections in the read pool (and, on PostgreSQL, the one pool).
    pub max_connections: u32,
    /// How long a request waits for a connection (a free one, or a new one
    /// while the database is unreachable) before it fails: RESOURCE_EXHAUSTED
    /// when the pool was merely busy, UNAVAILABLE when the database does not
    /// answer. Short, so an outage fails fast.
    pub acquire_timeout: Duration,
}

/// How long SQLite writes may queue for the one writer connection: queueing
/// there is the design (SQLite has one writer), not a sign of an outage.
const SQLITE_WRITE_QUEUE: Duration = Duration::from_secs(5);

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            acquire_timeout: Duration::from_millis(250),
        }
    }
}

/// The default embedded database file: `$XDG_DATA_HOME/customer-context/
/// customer-context.db`, or `~/.local/share/customer-context/...` when
/// `XDG_DATA_HOME` is not set (or `./customer-context.db` without a home).
pub fn default_sqlite_path() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local").join("share"))
        });
    match base {
        Some(b) => b.join("customer-context").join("customer-context.db"),
        None => PathBuf::from("customer-context.db"),
    }
}

/// The sqlx URL of a SQLite file, created when missing.
pub fn sqlite_url(path: &std::path::Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

/// The database handle shared by every request.
#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
    reader: AnyPool,
    writer: AnyPool,
    /// One connection of its own for health checks.
    health: AnyPool,
    /// What the last health check found.
    reachable: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// The deployment's hashing key, read once from the database.
    hash_key: std::sync::Arc<tokio::sync::OnceCell<[u8; 32]>>,
}

impl Store {
    /// Connects to `url` (`sqlite://...` or `postgres://...`). For SQLite the
    /// parent directory of the file is created when missing.
    pub async fn connect(url: &str, options: &StoreOptions) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            anyhow::bail!("unsupported database URL scheme: use sqlite://PATH or postgres://...");
        };
        let connect_options =
            AnyConnectOptions::from_str(url).context("parsing the database URL")?;
        match backend {
            Backend::Sqlite => {
                if let Some(path) = sqlite_file_of(url) {
                    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                        std::fs::create_dir_all(dir).with_context(|| {
                            format!("creating the data directory {}", dir.display())
                        })?;
                    }
                    create_private(&path)?;
                }
                // Connections of an embedded database do not go away: no
                // round trip to the worker thread to test one before use.
                let writer = AnyPoolOptions::new()
                    .max_connections(1)
                    .test_before_acquire(false)
                    .acquire_timeout(options.acquire_timeout.max(SQLITE_WRITE_QUEUE))
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute(
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                                 PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; \
                                 PRAGMA secure_delete = ON; PRAGMA cache_size = -65536;",
                            )
                            .await?;
                            Ok(())
                        })
                    })
                    .connect_with(connect_options.clone())
                    .await
                    .context("opening the SQLite database")?;
                // The writer must exist first: it switches the file to WAL.
                writer
                    .acquire()
                    .await
                    .context("opening the SQLite database")?;
                let reader_options = |max: u32| {
                    AnyPoolOptions::new()
                        .max_connections(max)
                        .test_before_acquire(false)
                        .acquire_timeout(options.acquire_timeout)
                        .after_connect(|conn, _| {
                            Box::pin(async move {
                                conn.execute("PRAGMA query_only = ON; PRAGMA busy_timeout = 10000; PRAGMA mmap_size = 0; PRAGMA cache_size = -32768;")
                                    .await?;
                                Ok(())
                            })
                        })
                };
                let reader = reader_options(options.max_connections.max(1))
                    .connect_lazy_with(connect_options.clone());
                let health = reader_options(1).connect_lazy_with(connect_options);
                Ok(Self {
                    backend,
                    reader,
                    writer,
                    health,
                    reachable: std::sync::Arc::new(true.into()),
                    hash_key: Default::default(),
                })
            }
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(options.max_connections.max(2))
                    .acquire_timeout(options.acquire_timeout)
                    .connect_with(connect_options.clone())
                    .await
                    .context("connecting to PostgreSQL")?;
                // Opened now, so the first health check does not have to
                // open it within its own short timeout on a loaded machine.
                let health = AnyPoolOptions::new()
                    .max_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .connect_with(connect_options)
                    .await
                    .context("connecting to PostgreSQL")?;
                Ok(Self {
                    backend,
                    reader: pool.clone(),
                    writer: pool,
                    health,
                    reachable: std::sync::Arc::new(true.into()),
                    hash_key: Default::default(),
                })
            }
        }
    }

    /// Applies pending migrations. Safe to run from several replicas at once
    /// on PostgreSQL (sqlx takes an advisory lock).
    pub async fn migrate(&self) -> anyhow::Result<()> {
        MIGRATOR
            .run(&self.writer)
            .await
            .context("applying database migrations")?;
        self.repair()
            .await
            .map_err(|e| anyhow::anyhow!("repairing stored records: {e:?}"))?;
        // Create (or load) the hashing key now, so no later request has to
        // write it while holding a transaction.
        self.hash_key()
            .await
            .map_err(|e| anyhow::anyhow!("loading the hashing key: {e:?}"))?;
        Ok(())
    }

    /// Each connection pool's use now: (pool, open, idle, most allowed).
    /// On PostgreSQL the reader and the writer are one pool (`shared`).
    pub fn pool_use(&self) -> Vec<(&'static str, u32, u32, u32)> {
        let one = |pool: &sqlx::AnyPool| {
            (
                pool.size(),
                pool.num_idle() as u32,
                pool.options().get_max_connections(),
            )
        };
        let mut out = Vec::new();
        let (open, idle, max) = one(&self.reader);
        match self.backend {
            Backend::Postgres => out.push(("shared", open, idle, max)),
            Backend::Sqlite => {
                out.push(("reader", open, idle, max));
                let (open, idle, max) = one(&self.writer);
                out.push(("writer", open, idle, max));
            }
        }
        out
    }

    /// The engine this store runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether the database answers within `within`, through a connection
    /// of its own (so a pool busy with requests does not read as an
    /// outage).
    pub async fn ping(&self, within: Duration) -> bool {
        tokio::time::timeout(within, async {
            let mut conn = self.health.acquire().await?;
            sqlx::query("SELECT 1").execute(&mut *conn).await
        })
        .await
        .is_ok_and(|r| r.is_ok())
    }

    /// Records what the health watch concluded (see [`Store::reachable`]).
    pub fn set_reachable(&self, reachable: bool) {
        self.reachable
            .store(reachable, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the health watch last found the database reachable (true
    /// until it finds otherwise). While it is not, calls are refused at
    /// once instead of waiting for a connection.
    pub fn reachable(&self) -> bool {
        self.reachable.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Refreshes the planner's statistics after a bulk load (`generate`,
    /// `import`). PostgreSQL plans from them, and until autovacuum gets to
    /// a freshly loaded table it may pick scans over index probes: on a
    /// just-generated 1,000,000-customer shop a first context took seconds
    /// until `ANALYZE` (6 s) ran. SQLite here plans from its indexes alone
    /// (no `sqlite_stat1` is ever written), so nothing is done there.
    pub async fn refresh_statistics(&self) -> Result<(), domain::Error> {
        if self.backend == Backend::Postgres {
            // The tables a load fills, in this schema only.
            sqlx::query(
                "ANALYZE products, customers, identities, customer_spend, customer_affinities, \
                 customer_groups, events, orders, order_lines, returns, return_lines, tickets, \
                 change_feed",
            )
            .execute(&self.writer)
            .await?;
        }
        Ok(())
    }

    /// Closes every connection, waiting for the ones in use.
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
        self.health.close().await;
    }

    /// Starts a write transaction. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so a read-then-write transaction never fails
    /// half-way on a lock held by another process (such as an `import`).
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.writer.begin().await,
        }
    }
}

/// Most attempts at one write transaction when the database aborts it as a
/// deadlock victim or a serialization failure (nothing of it was kept).
const WRITE_ATTEMPTS: u32 = 6;

impl Store {
    /// Runs `write` (one whole transaction) again when PostgreSQL aborted
    /// it to break a deadlock or a serialization conflict, or SQLite found
    /// the file locked: up to [`WRITE_ATTEMPTS`] times with a short,
    /// randomised, growing pause, before the caller hears UNAVAILABLE.
    async fn retrying<T, F, Fut>(&self, mut write: F) -> Result<T, domain::Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, domain::Error>>,
    {
        let mut attempt = 1;
        loop {
            match write().await {
                Err(e) if attempt < WRITE_ATTEMPTS && is_conflict(&e) => {
                    tracing::debug!(attempt, "write aborted by a conflict; retrying");
                    tokio::time::sleep(retry_pause(attempt)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

/// Whether an error is a transaction aborted by a lock conflict.
fn is_conflict(e: &domain::Error) -> bool {
    let domain::Error::Unavailable(source) = e else {
        return false;
    };
    source
        .downcast_ref::<sqlx::Error>()
        .is_some_and(aborted_by_conflict)
}

/// A deadlock victim or serialization failure (PostgreSQL), a busy
/// database (SQLite), or a unique key another transaction inserted
/// between this one's check and its insert (both): nothing was written; a
/// retry sees the other's row and takes the update path.
fn aborted_by_conflict(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db.code().is_some_and(|c| {
            matches!(
                c.as_ref(),
                "40P01" | "40001" | "23505" | "5" | "517" | "1555" | "2067"
            )
        }),
        _ => false,
    }
}

/// 2^attempt × (2..4) ms: a few milliseconds, spread so that the two
/// writers that collided do not collide again.
fn retry_pause(attempt: u32) -> Duration {
    let mut byte = [0u8; 1];
    let _ = getrandom::fill(&mut byte);
    let base = 2u64 << attempt.min(8);
    Duration::from_micros(base * 1000 + base * 1000 * u64::from(byte[0]) / 255)
}

/// The order in which a batch's items are written: by `key` (customer
/// first, then the item's own id), so that concurrent batches lock the rows
/// they share in one global order and cannot deadlock each other. The sort
/// is stable: two versions of one item keep their request order.
fn lock_order<'a, T, K: Ord>(items: &'a [T], key: impl Fn(&'a T) -> K) -> Vec<usize> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|a, b| key(&items[*a]).cmp(&key(&items[*b])));
    order
}

/// The lock-order key of whoever did something: the customer when known,
/// else the anonymous id (customers sort before anonymous visitors).
fn actor_key(actor: &domain::Actor) -> (u8, &str) {
    match (actor.customer_id(), actor.anonymous_id()) {
        (Some(c), _) => (0, c.as_str()),
        (None, Some(a)) => (1, a.as_str()),
        (None, None) => (2, ""),
    }
}

/// Results computed in `order` (from [`lock_order`]), put back in request
/// order.
fn in_request_order<R>(order: &[usize], results: Vec<R>) -> Vec<R> {
    let mut slots: Vec<Option<R>> = std::iter::repeat_with(|| None).take(order.len()).collect();
    for (&i, r) in order.iter().zip(results) {
        slots[i] = Some(r);
    }
    slots.into_iter().flatten().collect()
}

/// Creates the database file readable and writable by its owner only (it
/// holds personal data), when it does not exist yet. SQLite gives its WAL
/// and shared-memory files the database file's permissions.
fn create_private(path: &std::path::Path) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e).with_context(|| format!("creating the database file {}", path.display())),
    }
}

/// The file path inside a `sqlite://PATH?...` URL, if it names a file.
pub fn sqlite_file_of(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

/// `rows` rows of `columns` parameters for a multi-row `VALUES`: anonymous
/// `?` on SQLite (it finds a numbered parameter by a linear scan, so
/// binding thousands of them costs their square), `$1…` on PostgreSQL.
fn values_rows(conn: &sqlx::AnyConnection, rows: usize, columns: usize) -> String {
    values_sql(conn.backend_name() == "SQLite", rows, columns)
}

fn values_sql(sqlite: bool, rows: usize, columns: usize) -> String {
    let mut out = String::with_capacity(rows * columns * 5);
    for r in 0..rows {
        if r > 0 {
            out.push(',');
        }
        out.push('(');
        for c in 0..columns {
            if c > 0 {
                out.push_str(", ");
            }
            if sqlite {
                out.push('?');
            } else {
                out.push_str(&format!("${}", r * columns + c + 1));
            }
        }
        out.push(')');
    }
    out
}

/// Rows per multi-row statement (at most 9 parameters each: well under
/// SQLite's 32,766 and PostgreSQL's 65,535 parameters per statement).
const ROWS_PER_STATEMENT: usize = 500;

/// `$start, $start+1, ...` for `n` parameters: dynamic SQL text made of
/// placeholders alone, never of values.
fn placeholders(start: usize, n: usize) -> String {
    (start..start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An instant read back from the database (stored values are always in
/// range; anything else is a bug, reported as internal).
fn instant(ms: i64) -> Result<crate::domain::Timestamp, domain::Error> {
    crate::domain::Timestamp::from_millis(ms)
        .map_err(|e| domain::Error::Internal(anyhow::anyhow!("stored instant {e}")))
}

/// The ceiling of every running total (spend, units): far above anything
/// bounded input can reach, and far enough below `i64::MAX` that adding one
/// more bounded order can never overflow.
const MAX_TOTAL: i64 = 4_000_000_000_000_000_000;

/// Longest list bound into one `IN (...)`; longer lists are split.
const IN_CHUNK: usize = 500;

/// Where a batch finds what it stored before: the content hash of each
/// stored row, by primary key.
#[derive(Debug, Clone, Copy)]
enum Hashes {
    /// `customers.profile_hash`.
    Profiles,
    /// `orders.content_hash`.
    Orders,
}

/// The stored content hash of each of `ids` that exists (by primary key,
/// `IN_CHUNK` ids per query).
async fn stored_hashes(
    conn: &mut sqlx::AnyConnection,
    of: Hashes,
    ids: &[&str],
) -> Result<std::collections::HashMap<String, i64>, domain::Error> {
    // Fixed table and column names, never input.
    let select = match of {
        Hashes::Profiles => "SELECT customer_id, profile_hash FROM customers WHERE customer_id",
        Hashes::Orders => "SELECT order_id, content_hash FROM orders WHERE order_id",
    };
    let mut stored = std::collections::HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(IN_CHUNK) {
        let sql = format!("{select} IN ({})", placeholders(1, chunk.len()));
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for id in chunk {
            q = q.bind(*id);
        }
        for row in q.fetch_all(&mut *conn).await? {
            stored.insert(row.try_get(0)?, row.try_get(1)?);
        }
    }
    Ok(stored)
}

/// A flag as stored (BIGINT 0/1 on both backends).
fn flag(b: bool) -> i64 {
    i64::from(b)
}

impl From<sqlx::Error> for domain::Error {
    fn from(e: sqlx::Error) -> Self {
        match e {
            // Every connection stayed busy (or none could be opened: while
            // the database is down, the health check turns the service
            // NOT_SERVING and the gate answers UNAVAILABLE before this).
            sqlx::Error::PoolTimedOut => domain::Error::Busy(e.into()),
            sqlx::Error::PoolClosed | sqlx::Error::Io(_) => domain::Error::Unavailable(e.into()),
            ref conflict if aborted_by_conflict(conflict) => domain::Error::Unavailable(e.into()),
            other => domain::Error::Internal(other.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database error with just a code.
    #[derive(Debug)]
    struct Coded(&'static str);

    impl std::fmt::Display for Coded {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "error {}", self.0)
        }
    }

    impl std::error::Error for Coded {}

    impl sqlx::error::DatabaseError for Coded {
        fn message(&self) -> &str {
            self.0
        }
        fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
            Some(self.0.into())
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    #[test]
    fn conflicts_and_unique_races_are_retried_other_errors_are_internal() {
        let class = |code: &'static str| match domain::Error::from(sqlx::Error::Database(Box::new(
            Coded(code),
        ))) {
            domain::Error::Unavailable(_) => "retryable",
            domain::Error::Internal(_) => "internal",
            _ => "other",
        };
        // Deadlock, serialization, unique race (PostgreSQL); busy, unique
        // and primary-key races (SQLite).
        for code in ["40P01", "40001", "23505", "5", "2067", "1555"] {
            assert_eq!(class(code), "retryable", "{code}");
        }
        // A check constraint or a syntax error is a bug.
        assert_eq!(class("23514"), "internal");
        assert_eq!(class("42601"), "internal");
    }

    #[test]
    fn batches_are_written_in_key_order_and_answered_in_request_order() {
        let items = ["c", "a", "b", "a"];
        let order = lock_order(&items, |s| *s);
        assert_eq!(order, [1, 3, 2, 0]);
        let results: Vec<String> = order.iter().map(|&i| format!("{}{i}", items[i])).collect();
        assert_eq!(in_request_order(&order, results), ["c0", "a1", "b2", "a3"]);
    }

    #[test]
    fn multi_row_values_are_anonymous_on_sqlite_and_numbered_on_postgres() {
        assert_eq!(values_sql(true, 2, 2), "(?, ?),(?, ?)");
        assert_eq!(values_sql(false, 2, 3), "($1, $2, $3),($4, $5, $6)");
    }

    #[test]
    fn placeholders_are_numbered() {
        assert_eq!(placeholders(3, 3), "$3, $4, $5");
        assert_eq!(placeholders(1, 0), "");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn the_database_files_are_private_to_their_owner() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("data").join("cc.db");
        let store = Store::connect(&sqlite_url(&path), &StoreOptions::default())
            .await
            .expect("opened");
        store.migrate().await.expect("migrated");
        for name in ["cc.db", "cc.db-wal", "cc.db-shm"] {
            let mode = std::fs::metadata(path.with_file_name(name))
                .expect("the file exists")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
        store.close().await;
    }

    /// Built with the flags `.cargo/config.toml` sets: SQLite's query
    /// planner stability guarantee (a statement binding `LIMIT $n` is
    /// planned once, not parsed again at every execution), no memory
    /// counting behind a process-wide lock, and a page cache per
    /// connection rather than one shared behind a lock.
    #[tokio::test]
    async fn sqlite_is_built_with_the_repositorys_flags() {
        let store = Store::connect("sqlite::memory:", &StoreOptions::default())
            .await
            .expect("opened");
        let options: Vec<String> = sqlx::query_scalar("PRAGMA compile_options")
            .fetch_all(&store.reader)
            .await
            .expect("read");
        let hint = "build from the repository, which sets LIBSQLITE3_FLAGS in .cargo/config.toml";
        for wanted in ["ENABLE_QPSG", "DEFAULT_MEMSTATUS=0"] {
            assert!(
                options.iter().any(|o| o == wanted),
                "SQLite was built without {wanted} ({hint}): {options:?}"
            );
        }
        assert!(
            !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
            "SQLite was built with ENABLE_MEMORY_MANAGEMENT ({hint}): {options:?}"
        );
        store.close().await;
    }

    #[test]
    fn sqlite_file_is_found_in_the_url() {
        assert_eq!(
            sqlite_file_of("sqlite:///tmp/x/a.db?mode=rwc"),
            Some(PathBuf::from("/tmp/x/a.db"))
        );
        assert_eq!(
            sqlite_file_of("sqlite://data/a.db"),
            Some(PathBuf::from("data/a.db"))
        );
        assert_eq!(sqlite_file_of("sqlite::memory:"), None);
    }
}
