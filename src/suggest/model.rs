//! Counting what goes together: pairs of items in the same baskets (or
//! sessions, or customers), cosine-normalised so that best-sellers do not
//! dominate, and the categories customers move into next.

use std::collections::HashMap;

/// Dense item index (position in the catalog).
pub type ItemIx = u32;

/// Neighbours kept per item.
pub const NEIGHBOURS: usize = 50;
/// Baskets larger than this contribute only their first items to pairs
/// (a stock-up basket of 200 items says little about what goes together,
/// and its pairs would cost 20,000 increments).
pub const MAX_BASKET_PAIRS: usize = 60;

/// Transitions kept per category.
pub const NEXT_CATEGORIES: usize = 20;
/// Buyers added to every category's count when computing the share that
/// moved on (a prior that keeps tiny categories from reading 100 %).
const TRANSITION_PRIOR: u32 = 5;

/// For each category, the categories its buyers moved into next: the share
/// of customers who, having bought from the category, later made a first
/// purchase in the other one (pairs seen for two customers or more; the
/// share shrunk by [`TRANSITION_PRIOR`]), strongest first. `customers` holds each customer's orders in time
/// order, each as the categories it touched.
pub fn category_transitions(
    n_categories: usize,
    customers: &[Vec<Vec<u32>>],
) -> Vec<Vec<(u32, f32)>> {
    let mut buyers = vec![0u32; n_categories];
    let mut moved: HashMap<(u32, u32), u32> = HashMap::new();
    for orders in customers {
        let mut seen: Vec<u32> = Vec::new();
        for (n, order) in orders.iter().enumerate() {
            let mut new: Vec<u32> = order
                .iter()
                .copied()
                .filter(|c| !seen.contains(c))
                .collect();
            new.sort_unstable();
            new.dedup();
            for &from in &seen {
                for &to in &new {
                    *moved.entry((from, to)).or_insert(0) += 1;
                }
            }
            // A buyer of a category counts once it had a later order in
            // which it could have moved on.
            if n + 1 < orders.len() {
                for &c in &new {
                    buyers[c as usize] += 1;
                }
            }
            seen.extend(new);
        }
    }
    let mut out: Vec<Vec<(u32, f32)>> = vec![Vec::new(); n_categories];
    for ((from, to), n) in moved {
        if n < 2 {
            continue;
        }
        // Shrunk towards 0 for small categories: 2 of 2 buyers is weaker
        // evidence than 60 of 100.
        let share = n as f32 / (buyers[from as usize].max(n) + TRANSITION_PRIOR) as f32;
        out[from as usize].push((to, share));
    }
    for list in &mut out {
        list.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        list.truncate(NEXT_CATEGORIES);
    }
    out
}

/// Baskets per item and per unordered pair (key `a << 32 | b`, `a < b`).
/// Each basket must hold distinct items; only its first
/// [`MAX_BASKET_PAIRS`] items form pairs.
pub fn count(n_items: usize, baskets: &[Vec<ItemIx>]) -> (Vec<u32>, HashMap<u64, u32>) {
    let mut popularity = vec![0u32; n_items];
    let mut pairs: HashMap<u64, u32> = HashMap::new();
    for basket in baskets {
        for &i in basket {
            popularity[i as usize] += 1;
        }
        let b = &basket[..basket.len().min(MAX_BASKET_PAIRS)];
        for (x, &i) in b.iter().enumerate() {
            for &j in &b[x + 1..] {
                let (a, c) = if i < j { (i, j) } else { (j, i) };
                *pairs
                    .entry((u64::from(a) << 32) | u64::from(c))
                    .or_insert(0) += 1;
            }
        }
    }
    (popularity, pairs)
}

/// The cosine similarity of two items from their counts.
pub fn cosine(together: u32, pop_a: u32, pop_b: u32) -> f32 {
    let norm = (f64::from(pop_a) * f64::from(pop_b)).sqrt();
    (f64::from(together) / norm.max(1.0)) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_count_first_purchases_in_a_new_category() {
        // Three customers buy shoes (0) then jackets (1); one buys jackets
        // first, then shoes; one buys shoes only once; two move on to hats
        // (2).
        let c = |orders: &[&[u32]]| orders.iter().map(|o| o.to_vec()).collect::<Vec<_>>();
        let customers = vec![
            c(&[&[0], &[1]]),
            c(&[&[0], &[0], &[1, 2]]),
            c(&[&[0], &[1]]),
            c(&[&[1], &[0]]),
            c(&[&[0]]),
            c(&[&[0], &[2]]),
        ];
        let t = category_transitions(3, &customers);
        // 4 shoe buyers had a later order; 3 moved into jackets, 2 into hats
        // (shares over 4 + 5 buyers, the prior).
        assert_eq!(t[0], vec![(1, 3.0 / 9.0), (2, 2.0 / 9.0)]);
        assert!(t[1].is_empty(), "jackets -> shoes was seen once: noise");
        assert!(t[2].is_empty());
    }
}
