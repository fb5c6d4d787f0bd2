//! Why an item is suggested, in words an agent can say out loud. The one
//! place where sentences are written.

use std::collections::HashMap;

use super::{Fit, ItemIx, Model, Reason, Signals, Suggestion};
use crate::{
    domain::{Curation, Size, Timestamp},
    fit::{Confidence, Estimate},
    store::ProductRows,
};

/// Machine-readable reason codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReasonCode {
    /// Bought together with a bought or asked-about product.
    BoughtTogether,
    /// Bought by many customers who bought a product this customer bought.
    AlsoBought,
    /// Viewed together with a viewed-not-bought or asked-about product.
    ViewedTogether,
    /// A category similar customers moved into next.
    NewCategory,
    /// A best-seller in a category the customer buys from.
    PopularInCategory,
    /// A best-seller overall.
    Popular,
    /// Picked by a stylist.
    Curated,
}

impl ReasonCode {
    /// Stored name (in suggestion ids and feedback rows).
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonCode::BoughtTogether => "bought_together",
            ReasonCode::AlsoBought => "also_bought",
            ReasonCode::ViewedTogether => "viewed_together",
            ReasonCode::NewCategory => "new_category",
            ReasonCode::PopularInCategory => "popular_in_category",
            ReasonCode::Popular => "popular",
            ReasonCode::Curated => "curated",
        }
    }
}

/// Why an item is suggested, ready to show.
#[derive(Debug, Clone, PartialEq)]
pub struct ReasonView {
    /// The code.
    pub code: ReasonCode,
    /// Products it refers to.
    pub product_ids: Vec<String>,
    /// The category the item was picked from.
    pub category: String,
    /// For a new category: the category the customer buys from.
    pub from_category: String,
    /// A sentence an agent can say.
    pub text: String,
}

/// The curation a curated item comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CuratedView {
    /// Its id.
    pub curation_id: String,
    /// Its title.
    pub title: String,
    /// Who curated it.
    pub stylist: String,
    /// The item's note, or the curation's.
    pub note: String,
}

/// How a suggested item's size was chosen, ready to show.
#[derive(Debug, Clone, PartialEq)]
pub struct FitView {
    /// How.
    pub fit: Fit,
    /// The item's size ("" when it has none).
    pub size: String,
    /// Its size domain's category ("" when it has no size).
    pub domain: String,
    /// How sure the customer's size is (for [`Fit::CustomerSize`]).
    pub confidence: Option<Confidence>,
    /// The style's sizes that pass the filters, smallest first.
    pub sizes_in_stock: Vec<String>,
    /// The sentence ("" when it has no size).
    pub text: String,
}

impl Default for FitView {
    fn default() -> Self {
        Self {
            fit: Fit::NotSized,
            size: String::new(),
            domain: String::new(),
            confidence: None,
            sizes_in_stock: Vec::new(),
            text: String::new(),
        }
    }
}

/// A ranked item in ids (outliving the model it was ranked on).
#[derive(Debug, Clone, PartialEq)]
pub struct Ranked {
    /// The product.
    pub product_id: String,
    /// Its score.
    pub score: f32,
    /// The reason's code.
    pub code: ReasonCode,
    /// The product the reason refers to, if any.
    pub with: Option<String>,
    /// The item's category.
    pub category: String,
    /// For a new category: where the customer buys.
    pub from_category: String,
    /// For a category best-seller: the customer's brand, when it is one.
    pub brand: Option<String>,
    /// Its size.
    pub fit: FitView,
    /// The curation, for a curated item.
    pub curated: Option<CuratedView>,
}

/// The size sentence and facts of `item` offered as `fit` (suggestions
/// and search results alike).
pub fn fit_view(model: &Model, signals: &Signals, item: ItemIx, fit: Fit) -> FitView {
    let Some((domain, size)) = model.size_of(item) else {
        return FitView::default();
    };
    let group = model.catalog.items[item as usize].group;
    let sizes_in_stock: Vec<String> = model
        .variants
        .get(group as usize)
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .filter(|&&v| signals.filters.check(&model.catalog, v).is_ok())
        .filter_map(|&v| model.size_of(v))
        .filter(|(d, _)| *d == domain)
        .map(|(_, size)| size.label().to_owned())
        .fold(Vec::new(), |mut v, l| {
            if !v.contains(&l) {
                v.push(l);
            }
            v
        });
    let estimate = signals.size_profile.get(&domain);
    let (confidence, text) = match (fit, estimate) {
        (Fit::CustomerSize, Some(e)) => (Some(e.confidence), in_size(&size, e)),
        (Fit::Probable, _) => match model.carried_size(&signals.size_profile, &domain) {
            Some(from) => (
                Some(crate::fit::Confidence::Low),
                format!(
                    "Probably {}: the size you keep in {}.",
                    size.label(),
                    from.domain.spoken()
                ),
            ),
            None => (None, String::new()),
        },
        _ => (
            None,
            format!(
                "Their size in {} is not known yet: ask. In stock in {}.",
                domain.spoken(),
                sizes_in_stock.join(", ")
            ),
        ),
    };
    FitView {
        fit,
        size: if matches!(fit, Fit::CustomerSize | Fit::Probable) {
            size.label().to_owned()
        } else {
            String::new()
        },
        domain: domain.category,
        confidence,
        sizes_in_stock,
        text,
    }
}

/// "In L, the size you kept in jackets."
fn in_size(size: &Size, e: &Estimate) -> String {
    let label = size.label();
    let spoken = e.domain.spoken();
    if e.kept_in_size > 0 {
        return format!("In {label}, the size you kept in {spoken}.");
    }
    match (e.too_small.first(), e.too_large.first()) {
        (Some(back), _) => format!(
            "In {label}, one size up from the {} you sent back as too small.",
            back.label()
        ),
        (None, Some(back)) => format!(
            "In {label}, one size down from the {} you sent back as too large.",
            back.label()
        ),
        (None, None) => format!("In {label}, your size in {spoken}."),
    }
}

/// The curation of a curated item, with the note for this item.
fn curated_view(curation: &Curation, item: &str, group: &str) -> CuratedView {
    let note = curation
        .draft
        .items
        .iter()
        .zip(&curation.item_groups)
        .find(|(i, g)| i.product_id.as_str() == item || g.as_str() == group)
        .map(|(i, _)| i.note.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| curation.draft.note.clone());
    CuratedView {
        curation_id: curation.curation_id.clone(),
        title: curation.draft.title.clone(),
        stylist: curation.draft.stylist.clone(),
        note,
    }
}

/// Translates a ranked list out of the model's indexes; `curations` are
/// the request's (curated reasons index into them).
pub fn to_ids(
    model: &Model,
    ranked: &[Suggestion],
    signals: &Signals,
    curations: &[&Curation],
) -> Vec<Ranked> {
    let customer_brands = &signals.brands;
    let id = |i: u32| model.catalog.items[i as usize].product_id.clone();
    let category = |c: u32| {
        model
            .catalog
            .categories
            .get(c as usize)
            .cloned()
            .unwrap_or_default()
    };
    ranked
        .iter()
        .map(|s| {
            let item = &model.catalog.items[s.item as usize];
            let (code, with, from_category) = match s.reason {
                Reason::Complement { with } => {
                    (ReasonCode::BoughtTogether, Some(id(with)), String::new())
                }
                Reason::AlsoBought { with } => {
                    (ReasonCode::AlsoBought, Some(id(with)), String::new())
                }
                Reason::CoViewed { with } => {
                    (ReasonCode::ViewedTogether, Some(id(with)), String::new())
                }
                Reason::NewCategory { from, .. } => (ReasonCode::NewCategory, None, category(from)),
                Reason::PopularInCategory { .. } => {
                    (ReasonCode::PopularInCategory, None, String::new())
                }
                Reason::Popular => (ReasonCode::Popular, None, String::new()),
                Reason::Curated { anchor, .. } => {
                    (ReasonCode::Curated, anchor.map(id), String::new())
                }
            };
            let curated = match s.reason {
                Reason::Curated { curation, .. } => curations.get(curation as usize).map(|c| {
                    curated_view(
                        c,
                        &item.product_id,
                        &model.groups.names[item.group as usize],
                    )
                }),
                _ => None,
            };
            let brand = item
                .brand
                .filter(|b| {
                    code == ReasonCode::PopularInCategory
                        && customer_brands.iter().any(|(x, _)| x == b)
                })
                .map(|b| model.brands.names[b as usize].clone());
            Ranked {
                product_id: id(s.item),
                score: s.score,
                code,
                with,
                category: category(item.category),
                from_category,
                brand,
                fit: fit_view(model, signals, s.item, s.fit),
                curated,
            }
        })
        .collect()
}

/// The sentence for one item. `rows` holds the catalog rows of the products
/// reasons refer to; `bought_on` when the customer bought them; `anchors`
/// what they ask about now.
pub fn explain(
    r: &Ranked,
    rows: &ProductRows,
    bought_on: &HashMap<String, Timestamp>,
    anchors: &[&str],
    now: Timestamp,
) -> ReasonView {
    let name = |id: &str| {
        rows.get(id)
            .map(|row| row.name.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| id.to_owned())
    };
    let with = r.with.as_deref().unwrap_or_default();
    let asked = anchors.contains(&with);
    let text = match r.code {
        ReasonCode::BoughtTogether if asked => {
            format!("Often bought together with the {}.", name(with))
        }
        ReasonCode::BoughtTogether => match bought_on.get(with) {
            Some(d) => format!(
                "Goes with the {} you bought on {}.",
                name(with),
                d.short_date(now)
            ),
            None => format!("Goes with the {} you bought.", name(with)),
        },
        ReasonCode::AlsoBought if asked => {
            format!("Customers who buy the {} often buy this too.", name(with))
        }
        ReasonCode::AlsoBought => format!(
            "Customers who bought the {} you have often buy this too.",
            name(with)
        ),
        ReasonCode::ViewedTogether if asked => {
            format!("Shoppers looking at the {} also consider this.", name(with))
        }
        ReasonCode::ViewedTogether => format!(
            "You looked at the {}; shoppers who did often chose this instead.",
            name(with)
        ),
        ReasonCode::NewCategory => format!(
            "Customers who buy {} often add {} next; you have none yet.",
            spoken(&r.from_category),
            spoken(&r.category)
        ),
        ReasonCode::PopularInCategory => match &r.brand {
            Some(b) => format!(
                "A best-seller in {} from {b}, a brand you buy.",
                spoken(&r.category)
            ),
            None => format!(
                "A best-seller in {}, a category you buy from.",
                spoken(&r.category)
            ),
        },
        ReasonCode::Popular => "One of the shop's best-sellers right now.".into(),
        ReasonCode::Curated => curated_sentence(r, &name(with), asked),
    };
    let text = match r.fit.fit {
        Fit::CustomerSize | Fit::Unknown | Fit::Probable => format!("{text} {}", r.fit.text),
        Fit::NotSized => text,
    };
    ReasonView {
        code: r.code,
        product_ids: r.with.iter().cloned().collect(),
        category: r.category.clone(),
        from_category: r.from_category.clone(),
        text,
    }
}

/// "Picked by Ana to go with the Trail Runner 2: “Keeps feet dry.”"
fn curated_sentence(r: &Ranked, anchor_name: &str, asked: bool) -> String {
    let Some(c) = &r.curated else {
        return "Picked by the shop's stylists.".into();
    };
    let with = match (&r.with, asked) {
        (Some(_), _) => format!(" to go with the {anchor_name}"),
        (None, _) => format!(" ({})", c.title),
    };
    if c.note.is_empty() {
        format!("Picked by {}{with}.", c.stylist)
    } else {
        format!("Picked by {}{with}: \u{201c}{}\u{201d}", c.stylist, c.note)
    }
}

/// "Footwear > Running" as said in a sentence: "running".
fn spoken(category: &str) -> String {
    let leaf = category.rsplit(" > ").next().unwrap_or(category);
    leaf.to_lowercase()
}
