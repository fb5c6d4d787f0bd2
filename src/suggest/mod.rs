//! Cross-sell suggestions: candidates from several sources, one set of hard
//! filters every candidate passes through, diversity, and a reason per item.
//!
//! The layers, each in its own file:
//! * [`snapshot`]: the in-memory model (built off the request path, stored
//!   as a versioned artifact, kept current by the change feed);
//! * [`live`]: each replica's copy of it, swapped and updated from the
//!   database;
//! * [`rank`](suggest): the pure ranking core, (model, customer signals,
//!   strategy) to ranked items with reasons; no I/O;
//! * [`signals`]: the customer's own bounded reads, turned into signals;
//! * [`reasons`]: the sentences an agent can say;
//! * [`service`]: the RPCs' core (suggest, feedback, experiments);
//! * [`evaluate`]: the held-out numbers, through the same model and core
//!   (every model build runs it, through [`validate`]; the `evaluate`
//!   command prints it for the shared data's splits);
//! * [`validate`]: which ranker each build serves, from its numbers on
//!   the shop's own latest orders.
//!
//! How often sized suggestions come in the true size is scored on a
//! generated shop, a tool: `crate::generate::fit`.

mod codec;
pub mod curated;
pub mod evaluate;
pub mod experiment;
mod filters;
pub mod learned;
pub mod live;
pub mod memo;
mod model;
pub mod preview;
mod rank;
mod reasons;
mod service;
pub mod signals;
pub mod snapshot;
pub mod token;
pub mod validate;
mod weigh;

pub use filters::{Blocked, Filters};
pub use live::LiveModel;
pub use model::{
    ItemIx, MAX_BASKET_PAIRS, NEIGHBOURS, NEXT_CATEGORIES, category_transitions, cosine, count,
};
pub use rank::{
    Fit, NO_SUCH_SIZE, Reason, Signals, Suggestion, Weights, next_categories, price_band, suggest,
};
pub use reasons::{FitView, ReasonCode, ReasonView, fit_view};
pub use service::HistoryRows;
pub use service::{
    FeedbackInput, FeedbackKind, StatsOf, SuggestConfig, SuggestOutcome, SuggestQuery,
    SuggestService, SuggestedItem, SuggestionList, VariantReport, limits,
};
pub(crate) use service::{Request, recipient, unknown_subject};
pub use snapshot::{Model, ModelConfig};

/// Sets and maps keyed by the model's own dense indexes (items, styles,
/// categories), never by anything a caller sends: a fast multiplicative
/// hash instead of SipHash, which ranking spent a tenth of its time in.
pub type IxSet = std::collections::HashSet<u32, std::hash::BuildHasherDefault<IxHasher>>;
/// See [`IxSet`].
pub type IxMap<V> = std::collections::HashMap<u32, V, std::hash::BuildHasherDefault<IxHasher>>;

/// The hasher of [`IxSet`] and [`IxMap`] (the Fx hash of rustc).
#[derive(Debug, Default, Clone, Copy)]
pub struct IxHasher(u64);

impl IxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl std::hash::Hasher for IxHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.add(u64::from(*b));
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }
}

/// The category suggestions are diversified and ranked by: the first two
/// levels of the stored category path ("Footwear > Running").
pub fn category_key(stored_path: &str) -> String {
    let path = crate::domain::CategoryPath::from_stored(stored_path);
    path.levels()
        .iter()
        .take(2)
        .cloned()
        .collect::<Vec<_>>()
        .join(" > ")
}

/// What the ranker knows about one catalog item.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemInfo {
    /// Product id.
    pub product_id: String,
    /// Style group (index): "already bought" and "returned" apply to it.
    pub group: u32,
    /// Category (index) used for affinity and diversity.
    pub category: u32,
    /// Price in minor units (0 when unknown).
    pub price_minor: i64,
    /// Active and in stock.
    pub available: bool,
    /// Merchandise a shopper may be offered (not coupons, fees, ...).
    pub merchandise: bool,
    /// Brand (index), when known.
    pub brand: Option<u32>,
    /// Days after which a bought product may be suggested again
    /// (consumables); `None` when it never comes back.
    pub replenish_days: Option<u32>,
    /// Its size, for a variant of a sized style.
    pub size: Option<ItemSize>,
    /// What it is to a customer (index into [`Model::alikes`]: brand and
    /// name without size or pack words); [`NO_ALIKE`] when unknown. A list
    /// holds at most one item per value.
    pub alike: u32,
}

/// [`ItemInfo::alike`] of an item known only from history.
pub const NO_ALIKE: u32 = u32::MAX;

/// A variant's size in the model's indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ItemSize {
    /// Its size domain (index into [`Model::size_domains`]).
    pub domain: u32,
    /// Its label (index into [`Model::size_labels`]).
    pub label: u32,
}

/// The catalog with its popularity lists.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    /// Items by index.
    pub items: Vec<ItemInfo>,
    /// Category names by index.
    pub categories: Vec<String>,
    /// Most popular suggestable items per category, most first.
    pub popular_in: Vec<Vec<ItemIx>>,
    /// Most popular suggestable items overall, most first.
    pub popular: Vec<ItemIx>,
    /// ln(1 + popularity) / ln(1 + max popularity), per item.
    pub popularity_score: Vec<f32>,
    /// Per category: the categories its buyers moved into next, with the
    /// share who did, strongest first (see [`category_transitions`]).
    pub next_categories: Vec<Vec<(u32, f32)>>,
}

/// Items kept per category popularity list.
const POPULAR_PER_CATEGORY: usize = 50;
/// Items kept in the global popularity list.
const POPULAR_OVERALL: usize = 300;

impl Catalog {
    /// Builds the popularity lists from per-item popularity (order
    /// counts, possibly weighted by recency).
    pub fn new(items: Vec<ItemInfo>, categories: Vec<String>, popularity: &[f32]) -> Self {
        let mut catalog = Self {
            items,
            categories,
            ..Self::default()
        };
        catalog.rank_popular(popularity);
        catalog
    }

    /// (Re)computes the popularity scores and best-seller lists.
    pub fn rank_popular(&mut self, popularity: &[f32]) {
        self.install(self.popular_lists(popularity));
    }

    /// The popularity scores and best-seller lists for `popularity`
    /// (computed without changing the catalog, see [`Catalog::install`]).
    pub fn popular_lists(&self, popularity: &[f32]) -> PopularLists {
        let items = &self.items;
        let pop = |i: usize| f64::from(popularity.get(i).copied().unwrap_or(0.0).max(0.0));
        let max = (0..items.len()).map(pop).fold(0.0, f64::max);
        let denom = (1.0 + max).ln().max(1e-9);
        let scores = (0..items.len())
            .map(|i| ((1.0 + pop(i)).ln() / denom) as f32)
            .collect();
        let mut order: Vec<ItemIx> = (0..items.len() as ItemIx)
            .filter(|&i| items[i as usize].merchandise && pop(i as usize) > 0.0)
            .collect();
        order.sort_by(|&a, &b| pop(b as usize).total_cmp(&pop(a as usize)).then(a.cmp(&b)));
        let mut popular_in: Vec<Vec<ItemIx>> = vec![Vec::new(); self.categories.len()];
        for &i in &order {
            if let Some(list) = popular_in.get_mut(items[i as usize].category as usize)
                && list.len() < POPULAR_PER_CATEGORY
            {
                list.push(i);
            }
        }
        PopularLists {
            scores,
            popular: order.iter().copied().take(POPULAR_OVERALL).collect(),
            popular_in,
        }
    }

    /// Puts lists from [`Catalog::popular_lists`] in place.
    pub fn install(&mut self, lists: PopularLists) {
        self.popularity_score = lists.scores;
        self.popular = lists.popular;
        self.popular_in = lists.popular_in;
    }
}

/// Popularity scores and best-seller lists of a catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct PopularLists {
    scores: Vec<f32>,
    popular: Vec<ItemIx>,
    popular_in: Vec<Vec<ItemIx>>,
}
