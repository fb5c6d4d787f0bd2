//! One customer's reads and what is folded from them once, shared by the
//! context and the suggestions (both sit above it): the product as the
//! catalogue shows it, the browsing fold (one entry per product, cart state,
//! recent searches), and [`ContextReads`], the rows a context is assembled
//! from, which each replica remembers per customer.

use std::collections::HashMap;

use crate::{
    domain::{CategoryPath, EventKind, Size, Timestamp},
    fit::{Estimate, Evidence},
    store::{EventRow, OrderRow, ProductRow, ProfileRow, ReturnRow, TicketRow},
};

/// Most recent searches kept.
pub const SEARCHES: usize = 5;

/// A product as the catalog describes it now, or as an order recorded it
/// when the catalog does not know it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductView {
    /// Product id.
    pub product_id: String,
    /// Whether the catalog knows it.
    pub in_catalog: bool,
    /// Name.
    pub name: String,
    /// Brand.
    pub brand: String,
    /// Category path.
    pub category: CategoryPath,
    /// Current price as (currency, minor units), when in the catalog.
    pub price: Option<(String, i64)>,
    /// Active and in stock.
    pub available: bool,
    /// Tracked stock quantity.
    pub stock_quantity: Option<i64>,
    /// Style/group id.
    pub group_id: String,
    /// Page link.
    pub url: String,
    /// Image link.
    pub image_url: String,
    /// Its size, for a variant of a sized style.
    pub size: Option<Size>,
}

impl ProductView {
    /// The product as the catalog row describes it.
    pub fn from_catalog(p: &ProductRow) -> Self {
        Self {
            product_id: p.product_id.clone(),
            in_catalog: true,
            name: p.name.clone(),
            brand: p.brand.clone(),
            category: CategoryPath::from_stored(&p.category_path),
            price: Some((p.currency.clone(), p.price_minor)),
            available: p.active && p.in_stock,
            stock_quantity: p.stock_quantity,
            group_id: p.group_id.clone(),
            url: p.url.clone(),
            image_url: p.image_url.clone(),
            size: p.size.clone(),
        }
    }

    /// A product the catalogue does not know, named as an order recorded it.
    pub fn unknown(product_id: &str, name: &str, brand: &str, category_path: &str) -> Self {
        Self {
            product_id: product_id.to_owned(),
            in_catalog: false,
            name: name.to_owned(),
            brand: brand.to_owned(),
            category: CategoryPath::from_stored(category_path),
            price: None,
            available: false,
            stock_quantity: None,
            group_id: String::new(),
            url: String::new(),
            image_url: String::new(),
            size: None,
        }
    }

    /// The best name to say out loud.
    pub fn display_name(&self) -> &str {
        if self.name.is_empty() {
            &self.product_id
        } else {
            &self.name
        }
    }
}

/// A recent search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentSearch {
    /// The text.
    pub query: String,
    /// When.
    pub at: Timestamp,
}

/// What the store answered for one customer's context (the sections'
/// rows, before they are assembled with the catalogue and the clock), and
/// what is folded from them once: remembered per customer, so a repeated
/// context costs no reads and no re-folding until the customer changes.
#[derive(Debug, Default)]
pub struct ContextReads {
    /// The profile row.
    pub profile: Option<ProfileRow>,
    /// Browsing events scanned (newest first, at most `EVENT_SCAN`).
    pub scanned: u32,
    /// Every product browsed among them, newest first, cart state as the
    /// events left it.
    pub browsed: Vec<Browsed>,
    /// The same as suggestions take them: viewed and in-cart product ids.
    pub signals: (Vec<String>, Vec<String>),
    /// The distinct recent searches.
    pub searches: Vec<RecentSearch>,
    /// Products bought (with when) since the earliest cart addition among
    /// `browsed`, newest first, at most `PURCHASE_SCAN`: a cart item
    /// bought after it was added is no longer in the cart.
    pub bought: Vec<(String, Timestamp)>,
    /// Recent orders with their lines.
    pub orders: Vec<OrderRow>,
    /// Recent returns.
    pub returns: Vec<ReturnRow>,
    /// Open tickets.
    pub tickets: Vec<TicketRow>,
    /// What the customer kept and sent back for its size.
    pub size_evidence: Vec<Evidence>,
    /// The sizes inferred from the evidence, with the model generation
    /// whose catalogue sizes they used. The clock does not enter: as time
    /// passes every piece of evidence loses weight alike, so the same
    /// size wins with the same confidence.
    pub sizes: std::sync::Mutex<Option<(u64, std::sync::Arc<Vec<Estimate>>)>>,
}

impl ContextReads {
    /// The sizes for model `generation`, inferred by `infer` at most once.
    pub fn sizes(
        &self,
        generation: u64,
        infer: impl FnOnce() -> Vec<Estimate>,
    ) -> std::sync::Arc<Vec<Estimate>> {
        let mut slot = self.sizes.lock().unwrap_or_else(|e| e.into_inner());
        match slot.as_ref() {
            Some((g, sizes)) if *g == generation => sizes.clone(),
            _ => {
                let sizes = std::sync::Arc::new(infer());
                *slot = Some((generation, sizes.clone()));
                sizes
            }
        }
    }
}

/// A product's browsing, folded from the newest events down.
#[derive(Debug, Clone)]
pub struct Browsed {
    /// The product.
    pub product_id: String,
    /// Views among the scanned events.
    pub view_count: u32,
    /// Latest interaction.
    pub last_seen_at: Timestamp,
    /// Its kind.
    pub last_event: EventKind,
    /// Its channel.
    pub last_channel: String,
    /// Decided by the newest cart event: Some(true) added, Some(false) removed.
    pub cart: Option<bool>,
    /// Added and not removed (nor, once [`mark_bought`] ran, bought) since.
    pub in_cart: bool,
    /// When last added to the cart.
    pub added_to_cart_at: Option<Timestamp>,
    /// Wishlisted.
    pub wishlisted: bool,
}

/// Folds events (newest first) into one entry per product, newest first,
/// and the distinct recent searches.
pub fn summarise_browsing(events: &[EventRow], limit: usize) -> (Vec<Browsed>, Vec<RecentSearch>) {
    let mut order: Vec<String> = Vec::new();
    let mut by_product: HashMap<String, Browsed> = HashMap::new();
    let mut searches: Vec<RecentSearch> = Vec::new();
    for e in events {
        if e.kind == EventKind::Searched {
            if let Some(q) = &e.search_query {
                let seen = searches.iter().any(|s| s.query.eq_ignore_ascii_case(q));
                if !seen && searches.len() < SEARCHES {
                    searches.push(RecentSearch {
                        query: q.clone(),
                        at: e.occurred_at,
                    });
                }
            }
            continue;
        }
        let Some(product_id) = &e.product_id else {
            continue;
        };
        let entry = by_product.entry(product_id.clone()).or_insert_with(|| {
            order.push(product_id.clone());
            Browsed {
                product_id: product_id.clone(),
                view_count: 0,
                last_seen_at: e.occurred_at,
                last_event: e.kind,
                last_channel: e.channel.clone(),
                cart: None,
                in_cart: false,
                added_to_cart_at: None,
                wishlisted: false,
            }
        });
        match e.kind {
            EventKind::ProductViewed => entry.view_count += 1,
            EventKind::AddedToCart => {
                if entry.cart.is_none() {
                    entry.cart = Some(true);
                    entry.in_cart = true;
                    entry.added_to_cart_at = Some(e.occurred_at);
                }
            }
            EventKind::RemovedFromCart => {
                if entry.cart.is_none() {
                    entry.cart = Some(false);
                }
            }
            EventKind::AddedToWishlist => entry.wishlisted = true,
            EventKind::Searched => {}
        }
    }
    let browsed = order
        .into_iter()
        .take(limit)
        .filter_map(|id| by_product.remove(&id))
        .collect();
    (browsed, searches)
}

/// The products browsed (newest first) and those still in the cart, as
/// suggestions use them.
pub fn browsing_signals(browsed: &[Browsed]) -> (Vec<String>, Vec<String>) {
    let viewed = browsed.iter().map(|b| b.product_id.clone()).collect();
    let in_cart = browsed
        .iter()
        .filter(|b| b.in_cart)
        .map(|b| b.product_id.clone())
        .collect();
    (viewed, in_cart)
}

/// What suggestions need of a subject's browsing events (newest first):
/// every product browsed, newest first, and those still in the cart.
pub fn viewed_and_in_cart(events: &[EventRow]) -> (Vec<String>, Vec<String>) {
    browsing_signals(&summarise_browsing(events, usize::MAX).0)
}

/// Takes out of the cart what was bought after it was added.
pub fn mark_bought(bought: &[(String, Timestamp)], browsing: &mut [Browsed]) {
    for b in browsing.iter_mut().filter(|b| b.in_cart) {
        let added = b.added_to_cart_at.unwrap_or(Timestamp::MIN);
        if bought
            .iter()
            .any(|(p, at)| p == &b.product_id && *at >= added)
        {
            b.in_cart = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: EventKind, product: &str, at: i64) -> EventRow {
        EventRow {
            kind,
            product_id: Some(product.into()),
            search_query: None,
            channel: "web".into(),
            occurred_at: Timestamp::from_millis(at).unwrap(),
        }
    }

    #[test]
    fn browsing_folds_per_product_newest_first() {
        use EventKind::*;
        // newest first, as the store returns them
        let events = vec![
            ev(ProductViewed, "b", 90),
            ev(RemovedFromCart, "a", 80),
            ev(AddedToCart, "a", 70),
            ev(ProductViewed, "a", 60),
            ev(AddedToCart, "c", 50),
            ev(ProductViewed, "a", 40),
            EventRow {
                kind: Searched,
                product_id: None,
                search_query: Some("Boots".into()),
                channel: String::new(),
                occurred_at: Timestamp::from_millis(30).unwrap(),
            },
            EventRow {
                kind: Searched,
                product_id: None,
                search_query: Some("boots".into()),
                channel: String::new(),
                occurred_at: Timestamp::from_millis(20).unwrap(),
            },
            ev(AddedToWishlist, "b", 10),
        ];
        let (browsed, searches) = summarise_browsing(&events, 10);
        let ids: Vec<&str> = browsed.iter().map(|b| b.product_id.as_str()).collect();
        assert_eq!(ids, ["b", "a", "c"]);
        assert_eq!(browsed[1].view_count, 2);
        assert!(!browsed[1].in_cart, "removed after it was added");
        assert!(browsed[2].in_cart);
        assert!(browsed[0].wishlisted);
        assert_eq!(browsed[0].last_event, ProductViewed);
        assert_eq!(
            searches.len(),
            1,
            "same query differing in case is shown once"
        );
        let (limited, _) = summarise_browsing(&events, 2);
        assert_eq!(limited.len(), 2);
    }
}
