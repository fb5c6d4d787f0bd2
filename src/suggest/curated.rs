//! Stylists' curations in ranking: which active curations match a
//! customer (pure, in the model's indexes), and the curated-first list of
//! GetCuratedCrossSells. Curated items are candidates like any other: they
//! pass the same hard filters and come in the customer's size.

use super::{ItemIx, IxSet, Model, Reason, Signals, Suggestion, Weights, rank::in_their_size};
use crate::domain::{Anchor, CategoryPath, Curation};

/// Why a curation matches, most specific first (the order curated items
/// are offered in).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Match {
    /// It names the customer.
    Customer,
    /// It is anchored on a product they ask about now.
    Asked,
    /// On a product they browsed and did not buy.
    Browsed,
    /// On a product they bought.
    Bought,
    /// On a category of what they ask about, browse or bought.
    Category,
}

/// One curated item offered to this customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CuratedCandidate {
    /// A variant of the style that passes the filters (the customer's size
    /// is chosen later).
    pub item: ItemIx,
    /// Index of the curation in the request's list.
    pub curation: u32,
    /// Position of the item in the curation.
    pub position: u32,
    /// Why the curation matched.
    pub matched: Match,
    /// The anchor item it matched, for a product anchor.
    pub anchor: Option<ItemIx>,
}

/// What the customer is known to be interested in, for matching.
pub struct Interest<'a> {
    /// The customer, when known and their history may shape suggestions.
    pub customer: Option<&'a str>,
    /// Items asked about now.
    pub asked: &'a [ItemIx],
    /// Items browsed and not bought.
    pub browsed: &'a [ItemIx],
    /// Items bought.
    pub bought: &'a [ItemIx],
    /// Category paths (stored form) of what they bought.
    pub bought_categories: &'a [String],
}

/// The first of `sets` (in order) holding an item of an anchor's style,
/// with the anchor.
fn first_match(
    model: &Model,
    anchors: &[ItemIx],
    sets: [(&[ItemIx], Match); 3],
) -> Option<(Match, ItemIx)> {
    let group = |i: ItemIx| model.catalog.items.get(i as usize).map(|it| it.group);
    for (items, how) in sets {
        for &i in items {
            if let Some(a) = anchors.iter().find(|&&a| group(a) == group(i)) {
                return Some((how, *a));
            }
        }
    }
    None
}

/// Whether a stored category path starts with `prefix`'s levels.
fn under(path: &CategoryPath, prefix: &CategoryPath) -> bool {
    let (p, q) = (path.levels(), prefix.levels());
    !q.is_empty() && p.len() >= q.len() && p.iter().zip(q).all(|(a, b)| a.eq_ignore_ascii_case(b))
}

/// The curated candidates for a customer: every item of every matching
/// curation (`curations` are the active ones, newest first; `matched` says
/// how each matches the customer, see [`matches`]), most specific
/// match first, in each curation's order; each style once, as a variant
/// that passes the filters.
pub fn candidates(
    model: &Model,
    curations: &[&Curation],
    matched: &[Option<(Match, Option<ItemIx>)>],
    filters: &super::Filters,
) -> Vec<CuratedCandidate> {
    let mut matched: Vec<(Match, usize, Option<ItemIx>)> = matched
        .iter()
        .enumerate()
        .filter_map(|(k, m)| m.map(|(how, anchor)| (how, k, anchor)))
        .collect();
    matched.sort_by_key(|m| (m.0, m.1));
    let mut styles = IxSet::default();
    let mut out = Vec::new();
    for (how, k, anchor) in matched {
        for (position, group) in curations[k].item_groups.iter().enumerate() {
            let Some(g) = model.groups.get(group) else {
                continue;
            };
            if styles.contains(&g) {
                continue;
            }
            // The variant the stylist named when it can be sold, else any
            // that can (the customer's size is chosen later).
            let named = model.item(curations[k].draft.items[position].product_id.as_str());
            let variants = model
                .variants
                .get(g as usize)
                .map_or(&[][..], Vec::as_slice);
            let item = named
                .into_iter()
                .chain(variants.iter().copied())
                .find(|&v| filters.check(&model.catalog, v).is_ok());
            if let Some(item) = item {
                styles.insert(g);
                out.push(CuratedCandidate {
                    item,
                    curation: k as u32,
                    position: position as u32,
                    matched: how,
                    anchor,
                });
            }
        }
    }
    out
}

/// Whether curation `c` matches a customer of this interest, how, and the
/// anchor item it matched (for a product anchor).
pub fn matches(
    model: &Model,
    c: &Curation,
    interest: &Interest<'_>,
) -> Option<(Match, Option<ItemIx>)> {
    match &c.draft.anchor {
        Anchor::Customers(ids) => interest
            .customer
            .filter(|me| ids.iter().any(|c| c.as_str() == *me))
            .map(|_| (Match::Customer, None)),
        Anchor::Products(ids) => {
            let anchors: Vec<ItemIx> = ids.iter().filter_map(|p| model.item(p.as_str())).collect();
            first_match(
                model,
                &anchors,
                [
                    (interest.asked, Match::Asked),
                    (interest.browsed, Match::Browsed),
                    (interest.bought, Match::Bought),
                ],
            )
            .map(|(how, a)| (how, Some(a)))
        }
        Anchor::Category(prefix) => {
            let key_of = |i: &ItemIx| {
                let it = model.catalog.items.get(*i as usize)?;
                model.catalog.categories.get(it.category as usize)
            };
            let seen = interest
                .asked
                .iter()
                .chain(interest.browsed)
                .chain(interest.bought)
                .filter_map(key_of)
                .map(|k| CategoryPath::from_stored(k))
                .chain(
                    interest
                        .bought_categories
                        .iter()
                        .map(|p| CategoryPath::from_stored(p)),
                )
                .any(|p| under(&p, prefix));
            seen.then_some((Match::Category, None))
        }
    }
}

/// What a customer would be shown of one curated item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Offered: this variant (in their size when sized), sized so.
    Shown(ItemIx, super::Fit),
    /// Left out by a hard filter.
    Blocked(super::Blocked),
    /// In stock, but not in the size they keep.
    NotInTheirSize,
    /// Not in the catalogue any more.
    Unknown,
}

/// Each item of `curation` as the customer of `signals` would see it (the
/// stylist's preview): the variant offered in their size, or why it is
/// left out, in the stylist's order.
pub fn preview(model: &Model, signals: &Signals, curation: &Curation) -> Vec<Verdict> {
    curation
        .item_groups
        .iter()
        .zip(&curation.draft.items)
        .map(|(group, item)| {
            let Some(g) = model.groups.get(group) else {
                return Verdict::Unknown;
            };
            let named = model.item(item.product_id.as_str());
            let variants = model
                .variants
                .get(g as usize)
                .map_or(&[][..], Vec::as_slice);
            let mut all = named.into_iter().chain(variants.iter().copied());
            let passing = all
                .clone()
                .find(|&v| signals.filters.check(&model.catalog, v).is_ok());
            match passing {
                Some(v) => match in_their_size(model, signals, v) {
                    Some((shown, fit)) => Verdict::Shown(shown, fit),
                    None => Verdict::NotInTheirSize,
                },
                // A style bought and sent back: "returned" says more.
                None if signals.filters.returned_groups.contains(&g) => {
                    Verdict::Blocked(super::Blocked::Returned)
                }
                None => match all.next().map(|v| signals.filters.check(&model.catalog, v)) {
                    Some(Err(why)) => Verdict::Blocked(why),
                    _ => Verdict::Unknown,
                },
            }
        })
        .collect()
}

/// GetCuratedCrossSells: the curated items first, in order (each in the
/// customer's size, or left out when not in stock in it), then the ranked
/// suggestions to fill up to `limit`.
pub fn curated_first(
    model: &Model,
    signals: &Signals,
    weights: &Weights,
    limit: usize,
) -> Vec<Suggestion> {
    let mut styles = IxSet::default();
    let mut out: Vec<Suggestion> = Vec::with_capacity(limit);
    for (k, c) in signals.curated.iter().enumerate() {
        if out.len() == limit {
            break;
        }
        let group = model.catalog.items.get(c.item as usize).map(|it| it.group);
        if group.is_none_or(|g| styles.contains(&g))
            || signals.filters.check(&model.catalog, c.item).is_err()
        {
            continue;
        }
        let Some((item, fit)) = in_their_size(model, signals, c.item) else {
            continue;
        };
        styles.insert(model.catalog.items[item as usize].group);
        out.push(Suggestion {
            item,
            // Stylist's order: strictly decreasing, above computed items.
            score: 2.0 - k as f32 / (signals.curated.len() + 1) as f32,
            reason: Reason::Curated {
                curation: c.curation,
                anchor: c.anchor,
            },
            fit,
        });
    }
    let want = limit.saturating_sub(out.len());
    let fill = super::suggest(model, signals, weights, limit)
        .into_iter()
        .filter(|s| !styles.contains(&model.catalog.items[s.item as usize].group))
        .take(want);
    out.extend(fill);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        domain::{CuratedItem, CurationDraft, ProductId, Size, Timestamp},
        store::{CatalogRow, ModelInputs},
        suggest::{Blocked, Fit, ModelConfig},
    };

    fn row(id: &str, group: &str, size: Option<&str>, available: bool) -> CatalogRow {
        CatalogRow {
            product_id: id.into(),
            name: id.into(),
            group_id: group.into(),
            category_path: "Apparel > Jackets".into(),
            price_minor: 5_000,
            available,
            brand: String::new(),
            replenish_days: None,
            merchandise: None,
            size: size.map(|s| Size::parse(s, None).expect("a size")),
        }
    }

    /// A shell in S and M, a parka in S and M (M sold out), a vest, a
    /// windbreaker, a hat sold out.
    fn model() -> Model {
        let catalog = vec![
            row("shell-s", "shell", Some("S"), true),
            row("shell-m", "shell", Some("M"), true),
            row("parka-s", "parka", Some("S"), true),
            row("parka-m", "parka", Some("M"), false),
            row("vest", "vest", None, true),
            row("windbreaker", "windbreaker", None, true),
            row("hat", "hat", None, false),
        ];
        let inputs = ModelInputs {
            as_of_seq: 0,
            catalog,
            purchases: Vec::new(),
            views: Vec::new(),
        };
        Model::build(&inputs, &ModelConfig::default(), 0)
    }

    fn curation(items: &[(&str, &str)]) -> Curation {
        Curation {
            curation_id: "cur_1".into(),
            draft: CurationDraft {
                title: "Layers".into(),
                stylist: "Ana".into(),
                note: String::new(),
                anchor: Anchor::Category(CategoryPath::from_stored("Apparel")),
                items: items
                    .iter()
                    .map(|(p, _)| CuratedItem {
                        product_id: ProductId::parse(p).expect("an id"),
                        note: String::new(),
                    })
                    .collect(),
                starts_at: None,
                ends_at: None,
            },
            item_groups: items.iter().map(|(_, g)| (*g).to_owned()).collect(),
            archived: false,
            created_at: Timestamp::from_millis(0).expect("a time"),
            updated_at: Timestamp::from_millis(0).expect("a time"),
        }
    }

    #[test]
    fn a_preview_says_for_each_item_what_the_customer_gets_or_why_not() {
        let m = model();
        let mut s = Signals::default();
        let (domain, _) = m.size_of(m.item("shell-m").unwrap()).unwrap();
        s.sizes.insert(
            m.size_domains.get(&domain.key()).unwrap(),
            m.size_labels.get("M").unwrap(),
        );
        let group = |g: &str| m.groups.get(g).unwrap();
        // The vest bought and sent back; the windbreaker bought and kept.
        s.filters
            .bought_groups
            .extend([group("vest"), group("windbreaker")]);
        s.filters.returned_groups.insert(group("vest"));
        let c = curation(&[
            ("shell-s", "shell"),
            ("parka-s", "parka"),
            ("vest", "vest"),
            ("windbreaker", "windbreaker"),
            ("hat", "hat"),
            ("gone", "gone"),
        ]);
        let shell_m = m.item("shell-m").unwrap();
        assert_eq!(
            preview(&m, &s, &c),
            [
                Verdict::Shown(shell_m, Fit::CustomerSize),
                Verdict::NotInTheirSize,
                Verdict::Blocked(Blocked::Returned),
                Verdict::Blocked(Blocked::AlreadyBought),
                Verdict::Blocked(Blocked::Unavailable),
                Verdict::Unknown,
            ]
        );
    }
}
