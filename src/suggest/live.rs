//! Each replica's copy of the model: the newest stored snapshot plus every
//! change-feed entry after it, applied in order.
//!
//! A background task ([`tail`]) keeps it current, and every request first
//! checks the feed's head (one primary-key read) and catches up when it is
//! behind, so a change committed through any replica is in the model that
//! answers the next request. The model sits behind a `RwLock`: requests
//! hold the read side only inside synchronous ranking (microseconds to a
//! millisecond, never across an await), and applying a feed batch or
//! swapping in a new snapshot takes the write side for as long as a memory
//! update takes.

use std::{
    collections::HashSet,
    sync::{
        Arc, RwLock,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use super::{
    memo::Memo,
    snapshot::{FORMAT, Model, ModelConfig},
};
use crate::{
    domain::{ChangeKind, Error, FeedEntry, Timestamp},
    store::{ModelInputs, Store},
    text_index::TextIndex,
    watch::Watchers,
};

/// Catalogue rows read per page when the word index is loaded.
const TEXT_PAGE: i64 = 5_000;

/// Feed entries read per round trip.
const FEED_BATCH: i64 = 1000;
/// How often the background task looks at the feed.
const TAIL_EVERY: Duration = Duration::from_millis(200);
/// How often a replica records its feed position (for trimming).
const REPORT_EVERY: Duration = Duration::from_secs(10);
/// A replica not seen for this long no longer holds back trimming.
const READER_LIVE_MS: i64 = 10 * 60_000;
/// Product views of this many recent days feed the co-view model.
pub const VIEW_DAYS: u32 = 90;

/// What a build produced.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildSummary {
    /// The stored version.
    pub version: i64,
    /// Items in the model.
    pub items: usize,
    /// Orders read.
    pub orders: usize,
    /// Bought-together partner entries.
    pub partners: usize,
    /// Browsing sessions read (co-views).
    pub sessions: usize,
    /// Category transitions ("next best category").
    pub transitions: usize,
    /// Compressed size in bytes.
    pub bytes: usize,
    /// Seconds spent reading the inputs.
    pub read_secs: f64,
    /// Seconds spent building the model.
    pub build_secs: f64,
    /// Seconds spent storing the snapshot.
    pub store_secs: f64,
    /// The ranker it serves, and each candidate's validation numbers.
    pub ranking: super::validate::Ranking,
}

/// A replica's model, current as of `applied` in the feed.
#[derive(Debug)]
pub struct LiveModel {
    model: RwLock<Model>,
    config: ModelConfig,
    version: AtomicI64,
    applied: AtomicI64,
    /// Moves on whenever the model changes (a batch of counts or products,
    /// a new snapshot): lists ranked before are not reused.
    generation: AtomicU64,
    /// Moves on whenever an experiment changes.
    experiments: AtomicU64,
    /// Moves on whenever a curation changes.
    curations: AtomicU64,
    catching_up: tokio::sync::Mutex<()>,
    /// The feed head as last read: one read answers the requests that
    /// arrived before it started.
    head: crate::coalesce::Latest<i64>,
    memo: Memo,
    /// Live watchers of customers, woken by the entries applied here.
    watchers: Arc<Watchers>,
    /// The catalogue's word index, kept current by the same feed entries.
    text: Arc<TextIndex>,
}

impl LiveModel {
    /// An empty model (nothing loaded yet).
    pub fn new(config: ModelConfig) -> Self {
        Self {
            model: RwLock::new(Model::build(&Default::default(), &config, 0)),
            config,
            version: AtomicI64::new(0),
            applied: AtomicI64::new(0),
            generation: AtomicU64::new(0),
            experiments: AtomicU64::new(0),
            curations: AtomicU64::new(0),
            catching_up: tokio::sync::Mutex::new(()),
            head: crate::coalesce::Latest::new(),
            memo: Memo::default(),
            watchers: Arc::default(),
            // An in-memory index with a valid budget: tantivy's only
            // failures here are a directory lock or a budget out of range.
            text: Arc::new(TextIndex::new().expect("an in-memory index with a valid budget")),
        }
    }

    /// The same, its customer memory holding at most `bytes` (as weighed
    /// by the memo; [`crate::suggest::memo::CUSTOMER_BYTES`] by default).
    pub fn with_customer_memory(mut self, bytes: usize) -> Self {
        self.memo = Memo::new(bytes);
        self
    }

    /// The catalogue's word index.
    pub fn text(&self) -> &Arc<TextIndex> {
        &self.text
    }

    /// Fills the word index from the whole catalogue, a page at a time
    /// (products the feed changes meanwhile keep their newer rows), and
    /// marks it ready.
    pub async fn load_text_index(&self, store: &Store) -> Result<(), Error> {
        let started = Instant::now();
        self.text.start_load();
        let mut after = String::new();
        loop {
            let page = store.catalog_page(&after, TEXT_PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.product_id.clone();
            let text = self.text.clone();
            let full = page.len() as i64 == TEXT_PAGE;
            blocking(move || text.load(&page)).await?;
            if !full {
                break;
            }
        }
        let text = self.text.clone();
        blocking(move || text.finish_load()).await?;
        tracing::info!(
            products = self.text.len(),
            bytes = self.text.bytes(),
            secs = started.elapsed().as_secs_f64(),
            "catalogue word index loaded"
        );
        Ok(())
    }

    /// Runs `f` over the current model (synchronously: never hold it across
    /// an await).
    pub fn read<R>(&self, f: impl FnOnce(&Model) -> R) -> R {
        let guard = self.model.read().unwrap_or_else(|e| e.into_inner());
        f(&guard)
    }

    /// The snapshot version loaded (0 for none).
    pub fn version(&self) -> i64 {
        self.version.load(Ordering::Acquire)
    }

    /// The last feed entry applied.
    pub fn applied(&self) -> i64 {
        self.applied.load(Ordering::Acquire)
    }

    /// The model state's generation (see the field).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Moves on whenever the feed reports an experiment change.
    pub fn experiments_epoch(&self) -> u64 {
        self.experiments.load(Ordering::Acquire)
    }

    /// Moves on whenever the feed reports a curation change.
    pub fn curations_epoch(&self) -> u64 {
        self.curations.load(Ordering::Acquire)
    }

    /// The live watchers of customers on this replica.
    pub fn watchers(&self) -> &Arc<Watchers> {
        &self.watchers
    }

    /// What this replica remembers per customer.
    pub fn memo(&self) -> &Memo {
        &self.memo
    }

    /// The configuration the model is built and updated with.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Catches up when the feed has moved past what was applied: the
    /// check every request makes before ranking. The catching up runs on
    /// a task of its own, so a caller that stops waiting (a client gone,
    /// a read beside it that failed) never stops it between changing the
    /// model and recording how far it got, which would apply the same
    /// entries twice.
    pub async fn ensure_current(self: &Arc<Self>, store: &Store) -> Result<(), Error> {
        let head = self.head.get(|| store.feed_head()).await?;
        if head > self.applied() {
            let (live, store) = (self.clone(), store.clone());
            tokio::spawn(async move { live.catch_up(&store).await })
                .await
                .map_err(|e| Error::Internal(anyhow::anyhow!("catching up stopped: {e}")))??;
        }
        Ok(())
    }

    /// Loads a newer snapshot when one was stored, then applies every feed
    /// entry after what was applied.
    pub async fn catch_up(&self, store: &Store) -> Result<(), Error> {
        {
            let _one_at_a_time = self.catching_up.lock().await;
            if store.snapshot_version().await? > self.version() {
                self.load_newest(store).await?;
            }
        }
        self.follow_feed(store).await
    }

    /// Applies every feed entry after what was applied; a model stored
    /// meanwhile (announced by a feed entry) is loaded, not stepped over.
    pub async fn follow_feed(&self, store: &Store) -> Result<(), Error> {
        let _one_at_a_time = self.catching_up.lock().await;
        loop {
            let entries = store.changes_since(self.applied(), FEED_BATCH).await?;
            let Some(last) = entries.last().map(|e| e.seq) else {
                return Ok(());
            };
            // A model stored after the check above: load it (it rewinds to
            // the feed position it was built at) and read on from there,
            // rather than step over it.
            if entries.iter().any(|e| e.change.kind == ChangeKind::Model)
                && store.snapshot_version().await? > self.version()
            {
                self.load_newest(store).await?;
                continue;
            }
            self.apply(store, &entries).await?;
            self.applied.store(last, Ordering::Release);
        }
    }

    /// Swaps in the newest stored snapshot (decoded off the runtime).
    async fn load_newest(&self, store: &Store) -> Result<(), Error> {
        let Some(stored) = store.newest_snapshot(self.version()).await? else {
            return Ok(());
        };
        let body = stored.body;
        let decoded = if stored.format == FORMAT {
            tokio::task::spawn_blocking(move || Model::decode(&body))
                .await
                .map_err(|e| Error::Internal(e.into()))?
        } else {
            Err(format!("format {} is not {FORMAT}", stored.format))
        };
        let model = match decoded {
            Ok(model) => model,
            Err(why) => {
                // Serve on with what we have; the next build replaces it.
                // The version is marked seen so it is not decoded again.
                tracing::error!(version = stored.version, error = %why, "the stored suggestion model cannot be read by this version; serving the previous one until the next build");
                self.version.store(stored.version, Ordering::Release);
                return Ok(());
            }
        };
        let as_of = model.as_of_seq;
        *self.model.write().unwrap_or_else(|e| e.into_inner()) = model;
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.version.store(stored.version, Ordering::Release);
        self.applied.store(as_of, Ordering::Release);
        tracing::info!(
            version = stored.version,
            as_of_seq = as_of,
            "suggestion model loaded"
        );
        Ok(())
    }

    /// Applies feed entries in order: baskets change co-purchase counts,
    /// products get their current catalog facts.
    async fn apply(&self, store: &Store, entries: &[FeedEntry]) -> Result<(), Error> {
        let products: HashSet<&str> = entries
            .iter()
            .filter(|e| e.change.kind == ChangeKind::Product)
            .filter_map(|e| e.change.product_id.as_deref())
            .collect();
        let ids: Vec<&str> = products.into_iter().collect();
        let rows = if ids.is_empty() {
            Vec::new()
        } else {
            store.catalog_rows_of(&ids).await?
        };
        // An order stamped in the future counts as placed now (it must not
        // age every other order).
        let now = Timestamp::now().millis();
        {
            let mut model = self.model.write().unwrap_or_else(|e| e.into_inner());
            for e in entries {
                if let Some(b) = &e.change.basket {
                    model.apply_basket(b.added, b.placed_at.min(now), &b.products);
                }
            }
            for row in &rows {
                model.upsert_product(row, &self.config);
            }
        }
        if !rows.is_empty() {
            let text = self.text.clone();
            blocking(move || text.upsert(&rows)).await?;
        }
        // What is remembered from before these entries goes before the
        // generation moves: an answer made between the two would be kept
        // with the new generation.
        for e in entries {
            match (&e.change.customer_id, e.change.kind) {
                (_, ChangeKind::Erasure) => self.memo.forget(e.seq),
                (_, ChangeKind::Experiment) => {
                    self.experiments.fetch_add(1, Ordering::AcqRel);
                }
                (_, ChangeKind::Curation) => {
                    self.curations.fetch_add(1, Ordering::AcqRel);
                }
                (Some(c), _) => self.memo.customers.changed(c, e.seq),
                (None, _) => {}
            }
            if let Some(p) = &e.change.product_id {
                self.memo.products.changed(p, e.seq);
            }
        }
        if entries
            .iter()
            .any(|e| matches!(e.change.kind, ChangeKind::Basket | ChangeKind::Product))
        {
            // Sorting the best-sellers takes milliseconds on a large
            // catalogue: done under the read lock (only this task, holding
            // `catching_up`, changes the model), then put in place.
            let derived = self.read(Model::derived);
            self.model
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .install(derived);
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        self.watchers.notify(entries);
        Ok(())
    }
}

/// Runs a word-index step on a blocking thread; its failure is internal.
async fn blocking(
    f: impl FnOnce() -> Result<(), crate::text_index::IndexError> + Send + 'static,
) -> Result<(), Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(e.into()))?
        .map_err(|e| Error::Internal(e.into()))
}

/// Builds a model from the whole history and stores it as the next
/// version. The read is one consistent snapshot of the database (no write
/// lock is held, so ingestion goes on), the build runs on a blocking
/// thread, and the write is one short insert.
pub async fn build_and_save(store: &Store, config: &ModelConfig) -> Result<BuildSummary, Error> {
    let started = Instant::now();
    let now = Timestamp::now();
    let inputs = store
        .begin_model_read()
        .await?
        .finish(now.minus_days(VIEW_DAYS))
        .await?;
    save_built(store, inputs, config, started.elapsed().as_secs_f64()).await
}

/// Builds a model from `inputs` (read by [`Store::begin_model_read`]) and
/// stores it as the next version.
pub async fn save_built(
    store: &Store,
    inputs: ModelInputs,
    config: &ModelConfig,
    read_secs: f64,
) -> Result<BuildSummary, Error> {
    let now = Timestamp::now();
    let orders = {
        let mut ids: Vec<&str> = inputs
            .purchases
            .iter()
            .map(|p| p.order_id.as_str())
            .collect();
        ids.dedup();
        ids.len()
    };
    let sessions = super::snapshot::sessions(&inputs.views).len();
    let config = config.clone();
    let started = Instant::now();
    let (body, items, partners, transitions, as_of, ranking) =
        tokio::task::spawn_blocking(move || {
            let model = Model::build_validated(&inputs, &config, now.millis());
            let partners = model.partners.iter().map(Vec::len).sum::<usize>();
            let transitions = model
                .catalog
                .next_categories
                .iter()
                .map(Vec::len)
                .sum::<usize>();
            (
                model.encode(),
                model.catalog.items.len(),
                partners,
                transitions,
                model.as_of_seq,
                model.ranking,
            )
        })
        .await
        .map_err(|e| Error::Internal(e.into()))?;
    let build_secs = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let version = store.save_snapshot(now, as_of, FORMAT, &body).await?;
    Ok(BuildSummary {
        version,
        items,
        orders,
        partners,
        sessions,
        transitions,
        bytes: body.len(),
        read_secs,
        build_secs,
        store_secs: started.elapsed().as_secs_f64(),
        ranking,
    })
}

/// Keeps `live` current until the task is dropped: applies the feed every
/// [`TAIL_EVERY`], records this replica's position every
/// [`REPORT_EVERY`], and trims what every replica has applied.
pub async fn tail(live: Arc<LiveModel>, store: Store, reader_id: String) {
    let mut last_report = Instant::now() - REPORT_EVERY;
    loop {
        if let Err(e) = live.catch_up(&store).await {
            tracing::warn!(error = ?e, "could not apply the change feed");
        }
        if last_report.elapsed() >= REPORT_EVERY {
            last_report = Instant::now();
            let reported = store.report_reader(&reader_id, live.applied()).await;
            if let Err(e) = reported.and(store.trim_feed(READER_LIVE_MS).await.map(|_| ())) {
                tracing::warn!(error = ?e, "could not record the feed position");
            }
        }
        tokio::time::sleep(TAIL_EVERY).await;
    }
}
