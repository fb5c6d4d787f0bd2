//! Offline evaluation: hold out each customer's last order, train on the
//! rest, suggest 10 items per customer and score them against the held-out
//! order (items new to the customer only, since bought items are filtered).
//! The same is done for a plain popularity baseline.

use std::{
    collections::{HashMap, HashSet},
    time::Instant,
};

use super::{
    Catalog, CoModel, Filters, ItemInfo, ItemIx, Signals, Weights, category_transitions,
    price_band, suggest,
};
use crate::{
    domain::CategoryPath,
    store::{CatalogRow, PurchaseRow},
};

/// Top-level categories that are not merchandise a shopper would be offered
/// (in the shared data set: coupons, fuel, fees, postage).
pub const NOT_MERCHANDISE: &[&str] = &[
    "COUPON",
    "MISCELLANEOUS",
    "FUEL",
    "CHARITABLE CONT",
    "POSTAL CENTER",
    "CNTRL/STORE SUP",
    "PROD-WHS SALES",
];

/// Orders counted as "recent" for seed weighting.
const RECENT_ORDERS: usize = 3;

/// Scores of one method.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scores {
    /// Share of evaluated customers with at least one hit in the top k.
    pub hit_rate: f64,
    /// Mean NDCG@k (binary relevance: held-out items new to the customer).
    pub ndcg: f64,
    /// Distinct suggested items / suggestable items.
    pub coverage: f64,
    /// Suggestions breaking a hard filter (bought, unavailable, not
    /// merchandise), checked independently of the ranker. Must be 0.
    pub violations: u64,
}

/// The evaluation report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// Customers with at least two orders.
    pub with_two_orders: usize,
    /// Of those, customers whose held-out order holds an item new to them:
    /// the ones evaluated.
    pub customers: usize,
    /// Orders used for training.
    pub train_orders: usize,
    /// Catalog items.
    pub items: usize,
    /// Items that may be suggested (merchandise, available).
    pub suggestable: usize,
    /// k.
    pub k: usize,
    /// The ranker.
    pub ranker: Scores,
    /// The plain popularity baseline (all-time best-sellers).
    pub popularity: Scores,
    /// A stronger baseline: best-sellers of the last `recent_days`.
    pub popular_now: Scores,
    /// Seconds to build the model.
    pub train_secs: f64,
    /// Seconds to score every customer with the ranker.
    pub score_secs: f64,
}

/// Builds the catalog indexes from stored rows (category = the first two
/// levels of the path).
fn catalog_items(rows: &[CatalogRow]) -> (Vec<ItemInfo>, Vec<String>) {
    let mut groups: HashMap<&str, u32> = HashMap::new();
    let mut brands: HashMap<&str, u32> = HashMap::new();
    let mut categories: HashMap<String, u32> = HashMap::new();
    let mut names = Vec::new();
    let mut items = Vec::with_capacity(rows.len());
    for r in rows {
        let n = groups.len() as u32;
        let group = *groups.entry(r.group_id.as_str()).or_insert(n);
        let path = CategoryPath::from_stored(&r.category_path);
        let key = super::category_key(&r.category_path);
        let category = match categories.get(&key) {
            Some(c) => *c,
            None => {
                let c = names.len() as u32;
                categories.insert(key.clone(), c);
                names.push(key);
                c
            }
        };
        items.push(ItemInfo {
            product_id: r.product_id.clone(),
            name: r.name.clone(),
            group,
            category,
            price_minor: r.price_minor,
            available: r.available,
            merchandise: !path.is_empty() && !NOT_MERCHANDISE.contains(&path.top()),
            brand: (!r.brand.is_empty()).then(|| {
                let n = brands.len() as u32;
                *brands.entry(r.brand.as_str()).or_insert(n)
            }),
        });
    }
    (items, names)
}

fn dcg(hits: &[bool]) -> f64 {
    hits.iter()
        .enumerate()
        .filter(|(_, h)| **h)
        .map(|(i, _)| 1.0 / ((i + 2) as f64).log2())
        .sum()
}

/// What the service reads per request, applied here too so the offline
/// numbers describe the served ranker: the most recent distinct products
/// used as seeds, and partners read per seed (0: no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most recent distinct purchased products used as seeds.
    pub seeds: usize,
    /// Partners per seed.
    pub partners: usize,
}

/// Runs the evaluation over stored history. CPU-bound: call it on a
/// blocking thread.
pub fn evaluate(
    catalog_rows: &[CatalogRow],
    purchases: &[PurchaseRow],
    weights: &Weights,
    k: usize,
    recent_days: u32,
    limits: Limits,
) -> Report {
    let (mut items, categories) = catalog_items(catalog_rows);
    let mut index: HashMap<String, ItemIx> = items
        .iter()
        .enumerate()
        .map(|(i, it)| (it.product_id.clone(), i as ItemIx))
        .collect();

    // Orders per customer, in time order (the rows come sorted).
    let mut customers: Vec<Vec<Vec<ItemIx>>> = Vec::new();
    let mut times: Vec<Vec<i64>> = Vec::new();
    let mut last: Option<(&str, &str)> = None;
    for p in purchases {
        let item = match index.get(&p.product_id) {
            Some(i) => *i,
            None => {
                // Bought but not in the catalog: learn from it, never suggest it.
                let i = items.len() as ItemIx;
                let group = u32::MAX - i;
                items.push(ItemInfo {
                    product_id: p.product_id.clone(),
                    name: String::new(),
                    group,
                    category: 0,
                    price_minor: 0,
                    available: false,
                    merchandise: false,
                    brand: None,
                });
                index.insert(p.product_id.clone(), i);
                i
            }
        };
        match last {
            Some((c, o)) if c == p.customer_id && o == p.order_id => {}
            Some((c, _)) if c == p.customer_id => {
                if let Some(orders) = customers.last_mut() {
                    orders.push(Vec::new());
                }
                if let Some(t) = times.last_mut() {
                    t.push(p.placed_at);
                }
            }
            _ => {
                customers.push(vec![Vec::new()]);
                times.push(vec![p.placed_at]);
            }
        }
        last = Some((p.customer_id.as_str(), p.order_id.as_str()));
        if let Some(order) = customers.last_mut().and_then(|o| o.last_mut())
            && !order.contains(&item)
        {
            order.push(item);
        }
    }

    let started = Instant::now();
    let mut train: Vec<Vec<ItemIx>> = Vec::new();
    let mut train_times: Vec<i64> = Vec::new();
    for (orders, t) in customers.iter().zip(&times) {
        let n = if orders.len() >= 2 {
            orders.len() - 1
        } else {
            orders.len()
        };
        train.extend(orders[..n].iter().cloned());
        train_times.extend(&t[..n]);
    }
    let mut model = CoModel::build(items.len(), &train);
    if limits.partners > 0 {
        for list in &mut model.neighbours {
            list.truncate(limits.partners);
        }
    }
    // "Popular now": baskets of the last `recent_days` of the training data.
    let newest = train_times.iter().copied().max().unwrap_or(0);
    let since = newest - i64::from(recent_days) * 86_400_000;
    let mut recent = vec![0u32; items.len()];
    for (basket, t) in train.iter().zip(&train_times) {
        if recent_days == 0 || *t >= since {
            for &i in basket {
                recent[i as usize] += 1;
            }
        }
    }
    let mut catalog = Catalog::new(items, categories, &recent);
    let histories: Vec<Vec<Vec<u32>>> = customers
        .iter()
        .map(|orders| {
            let n = if orders.len() >= 2 {
                orders.len() - 1
            } else {
                orders.len()
            };
            orders[..n]
                .iter()
                .map(|o| {
                    o.iter()
                        .filter(|&&i| catalog.items[i as usize].merchandise)
                        .map(|&i| catalog.items[i as usize].category)
                        .collect()
                })
                .collect()
        })
        .collect();
    catalog.next_categories = category_transitions(catalog.categories.len(), &histories);
    let mut all_time: Vec<ItemIx> = (0..catalog.items.len() as ItemIx)
        .filter(|&i| catalog.items[i as usize].merchandise && model.popularity[i as usize] > 0)
        .collect();
    all_time.sort_by(|&a, &b| {
        model.popularity[b as usize]
            .cmp(&model.popularity[a as usize])
            .then(a.cmp(&b))
    });
    all_time.truncate(1000);
    let train_secs = started.elapsed().as_secs_f64();
    let suggestable = catalog
        .items
        .iter()
        .filter(|i| i.merchandise && i.available)
        .count();

    let mut report = Report {
        train_orders: train.len(),
        items: catalog.items.len(),
        suggestable,
        k,
        train_secs,
        ..Report::default()
    };
    let started = Instant::now();
    // Per method: hits, summed NDCG, items ever suggested.
    let mut tallies: [(usize, f64, HashSet<ItemIx>); 3] = Default::default();
    for orders in customers.iter().filter(|o| o.len() >= 2) {
        report.with_two_orders += 1;
        let (history, held_out) = orders.split_at(orders.len() - 1);
        // (times bought, last order index) per item.
        let mut counts: HashMap<ItemIx, (u32, usize)> = HashMap::new();
        for (n, o) in history.iter().enumerate() {
            for &i in o {
                let e = counts.entry(i).or_insert((0, n));
                e.0 += 1;
                e.1 = n;
            }
        }
        let bought_groups: HashSet<u32> = counts
            .keys()
            .map(|i| catalog.items[*i as usize].group)
            .collect();
        let mut by_recency: Vec<(ItemIx, (u32, usize))> = counts.into_iter().collect();
        by_recency.sort_by(|a, b| b.1.1.cmp(&a.1.1).then(a.0.cmp(&b.0)));
        if limits.seeds > 0 {
            by_recency.truncate(limits.seeds);
        }
        let mut bought: Vec<(ItemIx, u32)> =
            by_recency.iter().map(|(i, (n, _))| (*i, *n)).collect();
        bought.sort_unstable();
        let relevant: HashSet<ItemIx> = held_out[0]
            .iter()
            .copied()
            .filter(|i| !bought_groups.contains(&catalog.items[*i as usize].group))
            .collect();
        // Only customers whose held-out order has something new to find
        // are evaluated (a perfect ranker could not hit otherwise).
        if relevant.is_empty() {
            continue;
        }
        report.customers += 1;
        let filters = Filters {
            bought_groups: bought_groups.clone(),
            ..Filters::default()
        };
        let violates = |i: ItemIx| {
            let it = &catalog.items[i as usize];
            bought_groups.contains(&it.group) || !it.available || !it.merchandise
        };
        let ideal = dcg(&vec![true; relevant.len().min(k)]);

        let recent: Vec<ItemIx> = {
            let mut r: Vec<ItemIx> = history
                .iter()
                .rev()
                .take(RECENT_ORDERS)
                .flatten()
                .copied()
                .collect();
            r.sort_unstable();
            r.dedup();
            r
        };
        let prices: Vec<i64> = bought
            .iter()
            .map(|(i, _)| catalog.items[*i as usize].price_minor)
            .collect();
        let mut by_brand: HashMap<u32, f32> = HashMap::new();
        let mut units = 0f32;
        for &(i, times) in &bought {
            if let Some(b) = catalog.items[i as usize].brand {
                *by_brand.entry(b).or_insert(0.0) += times as f32;
                units += times as f32;
            }
        }
        let mut brands: Vec<(u32, f32)> = by_brand
            .into_iter()
            .map(|(b, n)| (b, n / units.max(1.0)))
            .collect();
        brands.sort_by_key(|b| b.0);
        let signals = Signals {
            bought,
            recent,
            brands,
            price_band: price_band(&prices),
            filters: filters.clone(),
            ..Signals::default()
        };
        let ranked: Vec<ItemIx> = suggest(&model, &catalog, &signals, weights, k)
            .into_iter()
            .map(|s| s.item)
            .collect();
        let top = |list: &[ItemIx]| -> Vec<ItemIx> {
            list.iter()
                .copied()
                .filter(|&i| filters.check(&catalog, i).is_ok())
                .take(k)
                .collect()
        };
        let lists = [ranked, top(&all_time), top(&catalog.popular)];
        let scores = [
            &mut report.ranker,
            &mut report.popularity,
            &mut report.popular_now,
        ];
        for ((list, (hits, ndcg, seen)), score) in lists.iter().zip(tallies.iter_mut()).zip(scores)
        {
            let marks: Vec<bool> = list.iter().map(|i| relevant.contains(i)).collect();
            if marks.iter().any(|m| *m) {
                *hits += 1;
            }
            if ideal > 0.0 {
                *ndcg += dcg(&marks) / ideal;
            }
            seen.extend(list.iter().copied());
            score.violations += list.iter().filter(|i| violates(**i)).count() as u64;
        }
    }
    report.score_secs = started.elapsed().as_secs_f64();
    let n = report.customers.max(1) as f64;
    let scores = [
        &mut report.ranker,
        &mut report.popularity,
        &mut report.popular_now,
    ];
    for ((hits, ndcg, seen), score) in tallies.iter().zip(scores) {
        score.hit_rate = *hits as f64 / n;
        score.ndcg = ndcg / n;
        score.coverage = seen.len() as f64 / suggestable.max(1) as f64;
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(id: &str, category: &str) -> CatalogRow {
        CatalogRow {
            product_id: id.into(),
            name: id.into(),
            group_id: id.into(),
            category_path: category.into(),
            price_minor: 100,
            available: true,
            brand: String::new(),
        }
    }

    fn line(customer: &str, order: &str, at: i64, product: &str) -> PurchaseRow {
        PurchaseRow {
            customer_id: customer.into(),
            order_id: order.into(),
            placed_at: at,
            product_id: product.into(),
        }
    }

    #[test]
    fn holds_out_the_last_order_and_scores_new_items_only() {
        let catalog = vec![
            product("bread", "BAKERY > BREAD"),
            product("butter", "DAIRY > BUTTER"),
            product("jam", "GROCERY > JAM"),
            product("coupon", "COUPON > STORE"),
        ];
        // Many households buy bread with butter; "a" bought bread before and
        // butter in its last order; "b" has only repeats in its last order.
        let mut rows = Vec::new();
        for h in 0..5 {
            let c = format!("h{h}");
            rows.push(line(&c, &format!("{c}-1"), 1, "bread"));
            rows.push(line(&c, &format!("{c}-1"), 1, "butter"));
            rows.push(line(&c, &format!("{c}-1"), 1, "coupon"));
        }
        rows.extend([
            line("a", "a-1", 1, "bread"),
            line("a", "a-2", 2, "butter"),
            line("b", "b-1", 1, "jam"),
            line("b", "b-2", 2, "jam"),
        ]);
        rows.sort_by(|x, y| {
            (&x.customer_id, x.placed_at, &x.order_id).cmp(&(
                &y.customer_id,
                y.placed_at,
                &y.order_id,
            ))
        });
        let report = evaluate(
            &catalog,
            &rows,
            &Weights::default(),
            10,
            0,
            Limits {
                seeds: 0,
                partners: 0,
            },
        );
        assert_eq!(report.with_two_orders, 2);
        assert_eq!(report.customers, 1, "b's held-out order has nothing new");
        assert_eq!(report.ranker.hit_rate, 1.0, "butter goes with bread");
        assert_eq!(report.ranker.violations, 0);
        assert_eq!(report.suggestable, 3, "the coupon is not merchandise");
    }
}
