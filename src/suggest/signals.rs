//! A customer's own data turned into ranking signals. The reads are
//! bounded and happen before ranking ([`History`]); the translation into the
//! model's indexes is pure ([`signals`]) and runs inside one read of the
//! live model, so indexes never outlive the model they point into.

use std::collections::{HashMap, HashSet};

use super::{Filters, IxSet, Model, Signals, price_band};
use crate::{
    domain::Timestamp,
    fit::{SizedPurchase, SizedReturn},
    store::{PurchasedLine, ReturnedLine},
};

/// Distinct purchased products used as item-to-item seeds (the most
/// recent).
pub const SEEDS: usize = 200;
/// Viewed-not-bought products used as co-view seeds.
pub const VIEWED: usize = 20;
/// Purchases within this many days weigh more as seeds.
const RECENT_SEED_DAYS: u32 = 30;

/// What the store holds about the customer, as ids (read before ranking).
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Purchased lines, newest first.
    pub lines: Vec<PurchasedLine>,
    /// Viewed (or carted) and not bought, newest first.
    pub viewed: Vec<String>,
    /// In the cart now (never suggested).
    pub in_cart: Vec<String>,
    /// Styles returned within the window.
    pub returned_groups: HashSet<String>,
    /// Styles thumbed down.
    pub rejected_groups: HashSet<String>,
    /// Styles bought over the whole history, with when last.
    pub bought_groups: HashMap<String, Timestamp>,
    /// What the customer kept and sent back for its size.
    pub size_evidence: Vec<crate::fit::Evidence>,
}

/// The size evidence in the purchase lines and returns already read for
/// suggestions: the sized products among them, by the model's catalogue
/// (so no read of its own).
pub fn size_evidence(
    model: &Model,
    lines: &[PurchasedLine],
    returned: &[ReturnedLine],
) -> Vec<crate::fit::Evidence> {
    if !model.has_sizes() {
        return Vec::new();
    }
    let size = |p: &str| model.item(p).and_then(|i| model.size_of(i));
    let purchases: Vec<SizedPurchase> = lines
        .iter()
        .filter_map(|l| {
            let (domain, size) = size(&l.product_id)?;
            Some(SizedPurchase {
                order_id: l.order_id.clone(),
                product_id: l.product_id.clone(),
                quantity: l.quantity,
                size,
                category_path: domain.category,
                placed_at: l.placed_at,
            })
        })
        .collect();
    let returns: Vec<SizedReturn> = returned
        .iter()
        .filter_map(|r| {
            let (domain, size) = size(&r.product_id)?;
            Some(SizedReturn {
                order_id: r.order_id.clone(),
                product_id: r.product_id.clone(),
                quantity: r.quantity,
                size,
                category_path: domain.category,
                reason_code: r.reason_code.clone(),
                requested_at: r.requested_at,
            })
        })
        .collect();
    crate::fit::evidence(&purchases, &returns)
}

/// One distinct purchased product.
#[derive(Debug, Clone, PartialEq)]
pub struct Bought<'a> {
    /// The product.
    pub product_id: &'a str,
    /// Lines bought.
    pub times: u32,
    /// Last bought.
    pub last: Timestamp,
    /// Unit price last paid.
    pub unit_price_minor: i64,
}

/// Distinct products of the lines, most recently bought first.
pub fn distinct_purchases(lines: &[PurchasedLine]) -> Vec<Bought<'_>> {
    let mut out: Vec<Bought> = Vec::new();
    let mut at: foldhash::HashMap<&str, usize> = HashMap::default();
    for l in lines {
        match at.get(l.product_id.as_str()) {
            Some(&k) => out[k].times += 1,
            None => {
                at.insert(l.product_id.as_str(), out.len());
                out.push(Bought {
                    product_id: &l.product_id,
                    times: 1,
                    last: l.placed_at,
                    unit_price_minor: l.unit_price_minor,
                });
            }
        }
    }
    out
}

/// What the request adds to the history.
#[derive(Debug, Clone)]
pub struct Ask<'a> {
    /// Products asked about now.
    pub anchors: Vec<&'a str>,
    /// Products not to suggest (with every variant of their style).
    pub exclude: Vec<&'a str>,
    /// Whether the customer's own history may shape the list.
    pub personal: bool,
    /// Now.
    pub now: Timestamp,
    /// The customer (for curations that name them).
    pub customer: Option<&'a str>,
    /// The stylists' curations active now, newest first.
    pub curations: Vec<&'a crate::domain::Curation>,
    /// Browsing the caller already read (viewed, in cart), in place of the
    /// history's: newer, and no copy of the history is made to say so.
    pub browsing: Option<(&'a [String], &'a [String])>,
}

impl Ask<'_> {
    /// The browsing to rank from (viewed, in cart): the caller's, else the
    /// history's.
    pub fn browsing_of<'h>(&'h self, history: &'h History) -> (&'h [String], &'h [String]) {
        self.browsing
            .unwrap_or((history.viewed.as_slice(), history.in_cart.as_slice()))
    }
}

impl Default for Ask<'_> {
    fn default() -> Self {
        Self {
            anchors: Vec::new(),
            exclude: Vec::new(),
            personal: false,
            now: Timestamp::MIN,
            customer: None,
            curations: Vec::new(),
            browsing: None,
        }
    }
}

/// The signals of one request in `model`'s indexes. Products the model does
/// not know carry no signal (they have no partners) and are left out.
pub fn signals(model: &Model, history: &History, ask: &Ask<'_>) -> Signals {
    let mut s = Signals::default();
    let (viewed, in_cart) = ask.browsing_of(history);
    let group_of = |id: &str| {
        model
            .item(id)
            .map(|i| model.catalog.items[i as usize].group)
    };
    let groups = |set: &HashSet<String>| -> IxSet {
        set.iter().filter_map(|g| model.groups.get(g)).collect()
    };
    if ask.personal {
        let recent_since = ask.now.minus_days(RECENT_SEED_DAYS);
        let mut prices = Vec::new();
        let mut by_brand: HashMap<u32, f32> = HashMap::new();
        let mut units = 0f32;
        let distinct = distinct_purchases(&history.lines);
        // The seeds by id: a small map, where each line's product is then
        // found (not the model's, of every product).
        let mut seeds: foldhash::HashMap<&str, super::ItemIx> = HashMap::default();
        for b in distinct.iter().take(SEEDS) {
            prices.push(b.unit_price_minor);
            let Some(i) = model.item(b.product_id) else {
                continue;
            };
            seeds.insert(b.product_id, i);
            s.bought.push((i, b.times));
            if b.last >= recent_since {
                s.recent.push(i);
            }
            if let Some(brand) = model.catalog.items[i as usize].brand {
                *by_brand.entry(brand).or_insert(0.0) += b.times as f32;
                units += b.times as f32;
            }
        }
        s.price_band = price_band(&prices);
        s.bought_orders = orders_back(&history.lines, &seeds);
        s.brands = by_brand
            .into_iter()
            .map(|(b, n)| (b, n / units.max(1.0)))
            .collect();
        s.brands.sort_by_key(|b| b.0);
        let bought: foldhash::HashSet<&str> = distinct.iter().map(|b| b.product_id).collect();
        s.viewed = viewed
            .iter()
            .filter(|v| !bought.contains(v.as_str()))
            .take(VIEWED)
            .filter_map(|v| model.item(v))
            .collect();
    }
    s.anchors = ask.anchors.iter().filter_map(|a| model.item(a)).collect();
    let browsed = s.viewed.clone();
    s.viewed.extend(s.anchors.iter().copied());
    s.filters = Filters {
        returned_groups: groups(&history.returned_groups),
        rejected_groups: groups(&history.rejected_groups),
        excluded_groups: ask
            .exclude
            .iter()
            .chain(&ask.anchors)
            .copied()
            .chain(in_cart.iter().map(String::as_str))
            .filter_map(group_of)
            .collect(),
        ..Filters::default()
    };
    s.filters.bought_groups = bought_and_not_due(model, &history.bought_groups, ask.now);
    s.size_profile = crate::fit::infer(
        &history.size_evidence,
        &|d| model.catalogue_sizes(d),
        ask.now,
    );
    (s.sizes, s.carried) = sizes_in_model(model, &s.size_profile);
    if !ask.curations.is_empty() {
        let bought: Vec<super::ItemIx> = s.bought.iter().map(|b| b.0).collect();
        let mut categories: Vec<String> = Vec::new();
        if ask.personal {
            for l in history.lines.iter().take(SEEDS) {
                if !categories.contains(&l.category_path) {
                    categories.push(l.category_path.clone());
                }
            }
        }
        let interest = super::curated::Interest {
            customer: ask.customer.filter(|_| ask.personal),
            asked: &s.anchors,
            browsed: &browsed,
            bought: &bought,
            bought_categories: &categories,
        };
        s.matched = ask
            .curations
            .iter()
            .map(|c| super::curated::matches(model, c, &interest))
            .collect();
        s.curated = super::curated::candidates(model, &ask.curations, &s.matched, &s.filters);
    }
    s
}

/// (item, orders back) for each order of the `seeds` (by product id) among
/// `lines` (newest first).
fn orders_back(
    lines: &[crate::store::PurchasedLine],
    seeds: &foldhash::HashMap<&str, super::ItemIx>,
) -> Vec<(super::ItemIx, u16)> {
    let mut orders: foldhash::HashMap<&str, u16> = HashMap::default();
    let mut out: HashSet<(super::ItemIx, u16)> = HashSet::new();
    for l in lines {
        let next = orders.len().min(usize::from(u16::MAX)) as u16;
        let back = *orders.entry(l.order_id.as_str()).or_insert(next);
        if let Some(&i) = seeds.get(l.product_id.as_str()) {
            out.insert((i, back));
        }
    }
    let mut out: Vec<(super::ItemIx, u16)> = out.into_iter().collect();
    out.sort_unstable();
    out
}

/// The profile's sizes in the model's indexes: per domain the catalogue
/// has, the label of the customer's size ([`super::rank::NO_SUCH_SIZE`]
/// when no product has it); then, per domain with no evidence, the size of
/// a related one ([`Model::carried_size`]), those domains
/// returned apart.
fn sizes_in_model(model: &Model, profile: &crate::fit::SizeProfile) -> (super::IxMap<u32>, IxSet) {
    let label = |e: &crate::fit::Estimate| {
        let size = e.size.as_ref()?;
        Some(
            model
                .size_labels
                .get(size.label())
                .unwrap_or(super::rank::NO_SUCH_SIZE),
        )
    };
    let mut sizes: super::IxMap<u32> = profile
        .estimates
        .iter()
        .filter_map(|e| Some((model.size_domains.get(&e.domain.key())?, label(e)?)))
        .collect();
    let mut carried = IxSet::default();
    if profile.estimates.is_empty() {
        return (sizes, carried);
    }
    for (d, key) in model.size_domains.names.iter().enumerate() {
        let d = d as u32;
        let domain = crate::domain::SizeDomain::from_key(key);
        if let Some(l) = model.carried_size(profile, &domain).and_then(label) {
            sizes.insert(d, l);
            carried.insert(d);
        }
    }
    (sizes, carried)
}

/// The bought styles that may not come back yet: all but those whose
/// every product is replenishable and whose interval since the last
/// purchase has passed.
fn bought_and_not_due(model: &Model, bought: &HashMap<String, Timestamp>, now: Timestamp) -> IxSet {
    bought
        .iter()
        .filter_map(|(g, last)| {
            let gi = model.groups.get(g)?;
            let interval = model.group_replenish.get(gi as usize).copied().flatten();
            let due = interval
                .is_some_and(|days| last.millis() + i64::from(days) * 86_400_000 <= now.millis());
            (!due).then_some(gi)
        })
        .collect()
}
