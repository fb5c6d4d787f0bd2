//! Cross-sell suggestions: candidates from several sources, one set of hard
//! filters every candidate passes through, diversity, and a reason per item.
//!
//! This module is pure (no I/O): it ranks over an in-memory model and a
//! customer's signals. `evaluate` measures it offline on real purchase
//! history; the service will feed it from precomputed tables.

pub mod evaluate;
pub mod experiment;
mod filters;
mod model;
mod rank;
mod service;
pub mod token;

use std::collections::HashMap;

pub use filters::{Blocked, Filters};
pub use model::{
    CoModel, ItemIx, MAX_BASKET_PAIRS, NEIGHBOURS, NEXT_CATEGORIES, category_transitions, cosine,
    count,
};
pub use rank::{Reason, Signals, Suggestion, Weights, next_categories, price_band, suggest};
pub use service::{
    FeedbackInput, FeedbackKind, ReasonCode, ReasonView, StatsOf, SuggestConfig, SuggestOutcome,
    SuggestQuery, SuggestService, SuggestedItem, SuggestionList, VariantReport, limits,
};

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
    /// Display name.
    pub name: String,
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
}

/// The catalog with its popularity lists.
#[derive(Debug, Clone, Default)]
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
    /// Builds the popularity lists from per-item popularity.
    pub fn new(items: Vec<ItemInfo>, categories: Vec<String>, popularity: &[u32]) -> Self {
        let max = popularity.iter().copied().max().unwrap_or(0);
        let denom = (1.0 + f64::from(max)).ln().max(1e-9);
        let popularity_score: Vec<f32> = (0..items.len())
            .map(|i| {
                ((1.0 + f64::from(popularity.get(i).copied().unwrap_or(0))).ln() / denom) as f32
            })
            .collect();
        let mut order: Vec<ItemIx> = (0..items.len() as ItemIx)
            .filter(|&i| {
                let it = &items[i as usize];
                it.merchandise && popularity.get(i as usize).copied().unwrap_or(0) > 0
            })
            .collect();
        order.sort_by(|&a, &b| {
            popularity[b as usize]
                .cmp(&popularity[a as usize])
                .then(a.cmp(&b))
        });
        let mut popular_in: Vec<Vec<ItemIx>> = vec![Vec::new(); categories.len()];
        for &i in &order {
            let list = &mut popular_in[items[i as usize].category as usize];
            if list.len() < POPULAR_PER_CATEGORY {
                list.push(i);
            }
        }
        let popular = order.iter().copied().take(POPULAR_OVERALL).collect();
        Self {
            items,
            categories,
            popular_in,
            popular,
            popularity_score,
            next_categories: Vec::new(),
        }
    }

    /// Index of items by product id.
    pub fn index(&self) -> HashMap<&str, ItemIx> {
        self.items
            .iter()
            .enumerate()
            .map(|(i, it)| (it.product_id.as_str(), i as ItemIx))
            .collect()
    }
}
