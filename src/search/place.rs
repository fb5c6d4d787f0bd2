//! From the index's hits to results (pure): one per style, each sized style
//! in the customer's size, what they own or returned marked, their
//! categories and brands leaning the order.

use std::collections::HashMap;

use crate::{
    suggest::{Fit, FitView, ItemIx, IxSet, Model, NO_ALIKE, Signals, fit_view},
    text_index::Hit,
};

/// How much a style of the customer's most bought category gains (its
/// share of their purchases times this), and of their most bought brand.
/// Small on purpose: the words decide; the customer's taste orders what
/// the words found about equally well.
const CATEGORY_LEAN: f32 = 0.3;
/// See [`CATEGORY_LEAN`].
const BRAND_LEAN: f32 = 0.2;

/// What the customer's own data adds, when they may be served personally.
#[derive(Debug, Default)]
pub struct Personal {
    /// Their sizes, brands and returns (signals as suggestions read them).
    pub signals: Signals,
    /// Styles they bought (any variant, ever).
    pub owned: IxSet,
    /// Share of their purchases per category.
    pub categories: HashMap<u32, f32>,
}

impl Personal {
    /// The personal part of `signals` and the styles in `bought_groups`.
    pub fn new(model: &Model, signals: Signals, bought_groups: &[&str]) -> Self {
        let owned = bought_groups
            .iter()
            .filter_map(|g| model.groups.get(g))
            .collect();
        let mut categories: HashMap<u32, f32> = HashMap::new();
        let mut total = 0.0;
        for (item, times) in &signals.bought {
            let c = model.catalog.items[*item as usize].category;
            *categories.entry(c).or_insert(0.0) += *times as f32;
            total += *times as f32;
        }
        for share in categories.values_mut() {
            *share /= total;
        }
        Self {
            signals,
            owned,
            categories,
        }
    }
}

/// One result before the catalogue read.
#[derive(Debug, Clone, PartialEq)]
pub struct Placed {
    /// The variant shown.
    pub product_id: String,
    /// Relevance with the customer's lean.
    pub score: f32,
    /// Its size.
    pub fit: FitView,
    /// Whether the variant shown can be sold now (by the model; the
    /// catalogue read has the last word).
    pub available: bool,
    /// Bought before.
    pub owned: bool,
    /// Returned within the window.
    pub returned: bool,
}

/// Results from `hits` (best first, as the index ranked them): merchandise
/// only, one per style and per look-alike (its best hit), at most `limit`. Products naming
/// every word stay ahead of the others; within each, the customer's lean
/// reorders. With `in_stock` only styles sold now in the size shown.
pub fn place(
    model: &Model,
    personal: Option<&Personal>,
    hits: &[Hit],
    in_stock: bool,
    limit: usize,
) -> Vec<Placed> {
    let catalog = &model.catalog;
    let sized_for = |n: usize| IxSet::with_capacity_and_hasher(n, Default::default());
    let (mut styles, mut alikes) = (sized_for(hits.len()), sized_for(hits.len()));
    let mut kept: Vec<(bool, f32, ItemIx)> = Vec::with_capacity(hits.len());
    for h in hits {
        let Some(item) = model.item(&h.product_id) else {
            continue;
        };
        let it = &catalog.items[item as usize];
        // One result per style and per look-alike (the same thing under
        // another id: "Chocolate Milk 1 GA" and "Chocolate Milk"), as in
        // suggestions.
        let alike = it.alike != NO_ALIKE && !alikes.insert(it.alike);
        if !it.merchandise || !styles.insert(it.group) || alike {
            continue;
        }
        let lean = personal.map_or(0.0, |p| {
            let category = p.categories.get(&it.category).copied().unwrap_or(0.0);
            let brand = it
                .brand
                .and_then(|b| p.signals.brands.iter().find(|x| x.0 == b))
                .map_or(0.0, |x| x.1);
            CATEGORY_LEAN * category + BRAND_LEAN * brand
        });
        kept.push((h.all_words, h.score * (1.0 + lean), item));
    }
    kept.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.total_cmp(&a.1)).then(a.2.cmp(&b.2)));
    let empty = Signals::default();
    let signals = personal.map_or(&empty, |p| &p.signals);
    let mut out = Vec::with_capacity(limit.min(kept.len()));
    for (_, score, item) in kept {
        let (shown, fit) = sized(model, signals, item);
        let available = catalog.items[shown as usize].available;
        if in_stock && !available {
            continue;
        }
        let group = catalog.items[item as usize].group;
        out.push(Placed {
            product_id: model.products.names[shown as usize].clone(),
            score,
            fit,
            available,
            owned: personal.is_some_and(|p| p.owned.contains(&group)),
            returned: personal.is_some_and(|p| p.signals.filters.returned_groups.contains(&group)),
        });
        if out.len() == limit {
            break;
        }
    }
    out
}

/// The variant of `item`'s style to show and its size: in the size the
/// customer keeps (in stock or not: the result says which); else — their
/// size unknown, or the style not made in it — `item` when it can be sold,
/// or the first size of it that can.
fn sized(model: &Model, signals: &Signals, item: ItemIx) -> (ItemIx, FitView) {
    let catalog = &model.catalog;
    let it = &catalog.items[item as usize];
    let Some(size) = it.size else {
        return (item, FitView::default());
    };
    let variants = model
        .variants
        .get(it.group as usize)
        .map_or(&[][..], Vec::as_slice);
    let in_stock = |v: &ItemIx| {
        let x = &catalog.items[*v as usize];
        x.available && x.size.is_some_and(|s| s.domain == size.domain)
    };
    // The hit itself when it can be sold, else a size of it that can.
    let any_size = if it.available {
        item
    } else {
        variants.iter().copied().find(in_stock).unwrap_or(item)
    };
    let Some(&label) = signals.sizes.get(&size.domain) else {
        return (any_size, fit_view(model, signals, any_size, Fit::Unknown));
    };
    let theirs = variants.iter().copied().find(|&v| {
        catalog.items[v as usize]
            .size
            .is_some_and(|s| s.domain == size.domain && s.label == label)
    });
    let fit = if signals.carried.contains(&size.domain) {
        Fit::Probable
    } else {
        Fit::CustomerSize
    };
    match theirs {
        Some(v) => (v, fit_view(model, signals, v, fit)),
        None => (any_size, not_made_in(model, signals, any_size)),
    }
}

/// The size of a style not made in the size the customer keeps: what is
/// in stock, and a sentence saying so.
fn not_made_in(model: &Model, signals: &Signals, item: ItemIx) -> FitView {
    let mut view = fit_view(model, signals, item, Fit::Unknown);
    if let Some((domain, _)) = model.size_of(item) {
        let theirs = signals
            .size_profile
            .get(&domain)
            .and_then(|e| e.size.as_ref())
            .map_or("", |s| s.label());
        view.text = format!(
            "Not made in {theirs}, their size in {}. In stock in {}.",
            domain.spoken(),
            view.sizes_in_stock.join(", ")
        );
    }
    view
}
