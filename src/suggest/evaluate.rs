//! Offline evaluation through the served code path: each household's last
//! order is held out, a model is built from the rest with
//! [`Model::build`], each household's signals are made by
//! [`signals::signals`] from what the service would read (its newest
//! purchase lines), and the list is ranked by [`suggest`]. Scored against
//! the held-out order (items new to the household only, since bought items
//! are filtered), beside two baselines: all-time best-sellers and
//! recency-weighted best-sellers.
//!
//! Three splits, so a default is not tuned to one set of households:
//! every household; even-numbered households only, trained on their own
//! data; odd-numbered ones likewise.

use std::{
    collections::{HashMap, HashSet},
    time::Instant,
};

use super::{
    Filters, ItemIx, Model, ModelConfig, Weights,
    signals::{self, Ask, History},
    suggest,
};
use crate::{
    domain::Timestamp,
    store::{ModelInputs, PurchaseRow, PurchasedLine},
};

/// Which households a split holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// Every household.
    All,
    /// Households whose number is even.
    Even,
    /// Households whose number is odd.
    Odd,
}

impl Split {
    /// Name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Split::All => "all households",
            Split::Even => "even households",
            Split::Odd => "odd households",
        }
    }

    /// Whether a customer id belongs to the split: by the number at the
    /// end of the id (by a hash of the id when it has none).
    pub fn holds(self, customer_id: &str) -> bool {
        let digits: String = customer_id
            .chars()
            .rev()
            .take_while(char::is_ascii_digit)
            .collect();
        let n = match digits.chars().rev().collect::<String>().parse::<u64>() {
            Ok(n) => n,
            Err(_) => u64::from(blake3::hash(customer_id.as_bytes()).as_bytes()[0]),
        };
        match self {
            Split::All => true,
            Split::Even => n % 2 == 0,
            Split::Odd => n % 2 == 1,
        }
    }
}

/// Scores of one method.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scores {
    /// Share of evaluated customers with at least one hit in the top k.
    pub hit_rate: f64,
    /// The same, a hit also when the held-out order holds a look-alike of
    /// a suggestion (the same thing under another product id: "White Bread
    /// 20 OZ" suggested, "White Bread" bought). Lists hold one item per
    /// look-alike, so the product-id rate undercounts what an agent's
    /// suggestion achieves.
    pub alike_hit_rate: f64,
    /// Mean NDCG@k (binary relevance: held-out items new to the customer).
    pub ndcg: f64,
    /// Distinct suggested items / suggestable items.
    pub coverage: f64,
    /// Suggestions breaking a hard filter (bought, unavailable, not
    /// merchandise), checked independently of the ranker. Must be 0.
    pub violations: u64,
}

/// The report of one split.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The split.
    pub split: Split,
    /// Customers with at least two orders.
    pub with_two_orders: usize,
    /// Of those, customers whose held-out order holds an item new to them:
    /// the ones evaluated.
    pub customers: usize,
    /// Orders used for training.
    pub train_orders: usize,
    /// Items that may be suggested (merchandise, available).
    pub suggestable: usize,
    /// k.
    pub k: usize,
    /// The served ranker.
    pub ranker: Scores,
    /// All-time best-sellers.
    pub popularity: Scores,
    /// Recency-weighted best-sellers (the model's "popular now").
    pub popular_now: Scores,
    /// Seconds to build the model.
    pub train_secs: f64,
    /// Seconds to score every customer with the ranker.
    pub score_secs: f64,
}

/// One household's orders, oldest first.
struct Household<'a> {
    orders: Vec<Vec<&'a PurchaseRow>>,
}

/// Households in the purchase rows (ordered by customer, time, order).
fn households(purchases: &[PurchaseRow], split: Split) -> Vec<Household<'_>> {
    let mut out: Vec<Household<'_>> = Vec::new();
    let mut last: Option<(&str, &str)> = None;
    for p in purchases.iter().filter(|p| split.holds(&p.customer_id)) {
        let key = (p.customer_id.as_str(), p.order_id.as_str());
        match last {
            Some((c, o)) if c == key.0 && o == key.1 => {}
            Some((c, _)) if c == key.0 => {
                if let Some(h) = out.last_mut() {
                    h.orders.push(Vec::new());
                }
            }
            _ => out.push(Household {
                orders: vec![Vec::new()],
            }),
        }
        last = Some(key);
        if let Some(o) = out.last_mut().and_then(|h| h.orders.last_mut()) {
            o.push(p);
        }
    }
    out
}

/// The history the service would read for a household: its newest
/// purchase lines (at most what the service reads), newest first.
fn history_of(model: &Model, orders: &[Vec<&PurchaseRow>], max_lines: usize) -> History {
    let mut lines = Vec::new();
    for order in orders.iter().rev() {
        for p in order {
            let price = model
                .item(&p.product_id)
                .map_or(0, |i| model.catalog.items[i as usize].price_minor);
            lines.push(PurchasedLine {
                order_id: p.order_id.clone(),
                quantity: 1,
                product_id: p.product_id.clone(),
                category_path: String::new(),
                unit_price_minor: price,
                placed_at: Timestamp::from_millis(p.placed_at).unwrap_or(Timestamp::MIN),
            });
        }
    }
    lines.truncate(max_lines);
    History {
        lines,
        ..History::default()
    }
}

fn dcg(hits: &[bool]) -> f64 {
    hits.iter()
        .enumerate()
        .filter(|(_, h)| **h)
        .map(|(i, _)| 1.0 / ((i + 2) as f64).log2())
        .sum()
}

/// Per method: hits, summed NDCG, items ever suggested, violations.
#[derive(Default)]
struct Tally {
    hits: usize,
    alike_hits: usize,
    ndcg: f64,
    seen: HashSet<ItemIx>,
    violations: u64,
}

impl Tally {
    fn add(
        &mut self,
        list: &[ItemIx],
        relevant: (&HashSet<ItemIx>, &HashSet<u32>),
        k: usize,
        alike: impl Fn(ItemIx) -> u32,
        bad: impl Fn(ItemIx) -> bool,
    ) {
        let (relevant, relevant_alikes) = relevant;
        let marks: Vec<bool> = list.iter().map(|i| relevant.contains(i)).collect();
        if marks.iter().any(|m| *m) {
            self.hits += 1;
        }
        if list
            .iter()
            .any(|&i| relevant.contains(&i) || relevant_alikes.contains(&alike(i)))
        {
            self.alike_hits += 1;
        }
        let ideal = dcg(&vec![true; relevant.len().min(k)]);
        if ideal > 0.0 {
            self.ndcg += dcg(&marks) / ideal;
        }
        self.seen.extend(list.iter().copied());
        self.violations += list.iter().filter(|i| bad(**i)).count() as u64;
    }

    fn scores(&self, n: usize, suggestable: usize) -> Scores {
        Scores {
            hit_rate: self.hits as f64 / n.max(1) as f64,
            alike_hit_rate: self.alike_hits as f64 / n.max(1) as f64,
            ndcg: self.ndcg / n.max(1) as f64,
            coverage: self.seen.len() as f64 / suggestable.max(1) as f64,
            violations: self.violations,
        }
    }
}

/// Runs one split. CPU-bound: call it on a blocking thread.
pub fn evaluate(
    inputs: &ModelInputs,
    config: &ModelConfig,
    weights: &Weights,
    k: usize,
    split: Split,
) -> Report {
    let started = Instant::now();
    let homes = households(&inputs.purchases, split);
    let mut train = ModelInputs {
        as_of_seq: inputs.as_of_seq,
        catalog: inputs.catalog.clone(),
        purchases: Vec::new(),
        views: Vec::new(),
    };
    for h in &homes {
        let n = h.orders.len() - usize::from(h.orders.len() >= 2);
        train
            .purchases
            .extend(h.orders[..n].iter().flatten().map(|p| (*p).clone()));
    }
    let train_orders = homes
        .iter()
        .map(|h| h.orders.len() - usize::from(h.orders.len() >= 2))
        .sum();
    let model = Model::build(&train, config, 0);
    let catalog = &model.catalog;
    let mut all_time: Vec<ItemIx> = (0..catalog.items.len() as ItemIx)
        .filter(|&i| catalog.items[i as usize].merchandise && model.baskets[i as usize] > 0)
        .collect();
    all_time.sort_by(|&a, &b| {
        model.baskets[b as usize]
            .cmp(&model.baskets[a as usize])
            .then(a.cmp(&b))
    });
    all_time.truncate(1000);
    let train_secs = started.elapsed().as_secs_f64();
    let suggestable = catalog
        .items
        .iter()
        .filter(|i| i.merchandise && i.available)
        .count();

    let started = Instant::now();
    let mut tallies: [Tally; 3] = Default::default();
    let (mut with_two, mut evaluated) = (0, 0);
    for h in homes.iter().filter(|h| h.orders.len() >= 2) {
        with_two += 1;
        let (history, held_out) = h.orders.split_at(h.orders.len() - 1);
        let mut bought: HashMap<String, Timestamp> = HashMap::new();
        let mut bought_groups = super::IxSet::default();
        for p in history.iter().flatten() {
            if let Some(i) = model.item(&p.product_id) {
                let g = catalog.items[i as usize].group;
                bought_groups.insert(g);
                bought.insert(
                    model.groups.names[g as usize].clone(),
                    Timestamp::from_millis(p.placed_at).unwrap_or(Timestamp::MIN),
                );
            }
        }
        let relevant: HashSet<ItemIx> = held_out[0]
            .iter()
            .filter_map(|p| model.item(&p.product_id))
            .filter(|i| !bought_groups.contains(&catalog.items[*i as usize].group))
            .collect();
        // Only customers whose held-out order has something new to find
        // are evaluated (a perfect ranker could not hit otherwise).
        if relevant.is_empty() {
            continue;
        }
        evaluated += 1;
        let mut lines = history_of(&model, history, super::limits::PURCHASE_LINES as usize);
        lines.bought_groups = bought;
        let now = lines.lines.first().map_or(Timestamp::MIN, |l| l.placed_at);
        let ask = Ask {
            personal: true,
            now,
            ..Ask::default()
        };
        let s = signals::signals(&model, &lines, &ask);
        let ranked: Vec<ItemIx> = suggest(&model, &s, weights, k)
            .into_iter()
            .map(|x| x.item)
            .collect();
        let filters = Filters {
            bought_groups: bought_groups.clone(),
            ..Filters::default()
        };
        let top = |list: &[ItemIx]| -> Vec<ItemIx> {
            list.iter()
                .copied()
                .filter(|&i| filters.check(catalog, i).is_ok())
                .take(k)
                .collect()
        };
        let bad = |i: ItemIx| {
            let it = &catalog.items[i as usize];
            bought_groups.contains(&it.group) || !it.available || !it.merchandise
        };
        let alike = |i: ItemIx| catalog.items[i as usize].alike;
        let relevant_alikes: HashSet<u32> = relevant
            .iter()
            .map(|&i| alike(i))
            .filter(|&a| a != super::NO_ALIKE)
            .collect();
        let lists = [ranked, top(&all_time), top(&catalog.popular)];
        for (list, tally) in lists.iter().zip(tallies.iter_mut()) {
            tally.add(list, (&relevant, &relevant_alikes), k, alike, bad);
        }
    }
    Report {
        split,
        with_two_orders: with_two,
        customers: evaluated,
        train_orders,
        suggestable,
        k,
        ranker: tallies[0].scores(evaluated, suggestable),
        popularity: tallies[1].scores(evaluated, suggestable),
        popular_now: tallies[2].scores(evaluated, suggestable),
        train_secs,
        score_secs: started.elapsed().as_secs_f64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::CatalogRow;

    fn product(id: &str, category: &str) -> CatalogRow {
        CatalogRow {
            product_id: id.into(),
            name: id.into(),
            group_id: id.into(),
            category_path: category.into(),
            price_minor: 100,
            available: true,
            brand: String::new(),
            replenish_days: None,
            merchandise: None,
            size: None,
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
    fn splits_follow_the_household_number() {
        assert!(Split::Even.holds("cj-900") && !Split::Odd.holds("cj-900"));
        assert!(Split::Odd.holds("h7") && Split::All.holds("h7"));
        assert!(Split::Even.holds("x") != Split::Odd.holds("x"));
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
            rows.push(line(&c, &format!("{c}-2"), 2, "bread"));
            rows.push(line(&c, &format!("{c}-2"), 2, "butter"));
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
        let inputs = ModelInputs {
            catalog,
            purchases: rows,
            ..ModelInputs::default()
        };
        let report = evaluate(
            &inputs,
            &ModelConfig::default(),
            &Weights::default(),
            10,
            Split::All,
        );
        assert_eq!(report.with_two_orders, 7);
        assert_eq!(
            report.customers, 1,
            "only a's held-out order has something new"
        );
        assert_eq!(report.ranker.hit_rate, 1.0, "butter goes with bread");
        assert_eq!(report.ranker.violations, 0);
        assert_eq!(report.suggestable, 3, "the coupon is not merchandise");
    }
}
