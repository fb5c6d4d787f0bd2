//! The context as a pure function of what was read: the sections' rows,
//! the catalogue rows of the products they show, the suggestions and the
//! sizes. No I/O and no clock: unit-tested on plain values.

use std::collections::{HashMap, HashSet};

use super::{BrowsedProduct, CustomerContext, OrderLineView, OrderView, ReturnView};
use crate::{
    domain::{AnonymousId, ConsentRecord, CustomerId, Timestamp},
    fit::Estimate,
    reads::{Browsed, ContextReads, ProductView, mark_bought},
    store::{OrderLineRow, OrderRow, ProductRows, ReturnRow},
    suggest::SuggestionList,
};

/// Everything a context is assembled from.
#[derive(Debug)]
pub struct Parts<'a> {
    /// The customer, when the subject is one.
    pub customer_id: Option<CustomerId>,
    /// The anonymous id looked up, for anonymous lookups.
    pub anonymous_id: Option<AnonymousId>,
    /// When the context is assembled.
    pub as_of: Timestamp,
    /// The sections' rows.
    pub reads: &'a ContextReads,
    /// The browsed products shown (see [`shown_browsing`]).
    pub browsing: Vec<Browsed>,
    /// Catalogue rows of the products shown (see [`shown_products`]).
    pub catalog: &'a ProductRows,
    /// The consents on file.
    pub consents: &'a [ConsentRecord],
    /// The customer withdrew consent for support context.
    pub history_withheld: bool,
    /// The suggestions, when asked for.
    pub suggestions: Option<SuggestionList>,
    /// The sizes the customer keeps, latest evidence first.
    pub sizes: Vec<Estimate>,
}

/// The browsed products shown, newest first, with what was bought since
/// it was added taken out of the cart.
pub fn shown_browsing(reads: &ContextReads, limit: usize) -> Vec<Browsed> {
    let mut shown: Vec<Browsed> = reads.browsed.iter().take(limit).cloned().collect();
    mark_bought(&reads.bought, &mut shown);
    shown
}

/// Every product any section shows, once: the catalogue is read for
/// these only.
pub fn shown_products<'a>(
    browsing: &'a [Browsed],
    orders: &'a [OrderRow],
    returns: &'a [ReturnRow],
) -> Vec<&'a str> {
    let mut ids: HashSet<&str> = HashSet::new();
    ids.extend(browsing.iter().map(|b| b.product_id.as_str()));
    for o in orders {
        ids.extend(o.lines.iter().map(|l| l.product_id.as_str()));
    }
    for r in returns {
        ids.extend(r.lines.iter().map(|(p, _)| p.as_str()));
    }
    let mut ids: Vec<&str> = ids.into_iter().collect();
    ids.sort_unstable();
    ids
}

/// The context from its parts (before the policy's last word: see
/// [`super::policy::finish`]).
pub fn assemble(parts: Parts<'_>) -> CustomerContext {
    let Parts {
        customer_id,
        anonymous_id,
        as_of,
        reads,
        browsing,
        catalog,
        consents,
        history_withheld,
        suggestions,
        sizes,
    } = parts;
    let product = |id: &str, named: Option<&OrderLineRow>| match (catalog.get(id), named) {
        (Some(p), _) => ProductView::from_catalog(p),
        (None, Some(l)) => ProductView::unknown(id, &l.name, &l.brand, &l.category_path),
        (None, None) => ProductView::unknown(id, "", "", ""),
    };
    // A returned product is named by what its order said when the
    // catalogue no longer knows it.
    let ordered: HashMap<&str, &OrderLineRow> = reads
        .orders
        .iter()
        .flat_map(|o| o.lines.iter().map(|l| (l.product_id.as_str(), l)))
        .collect();
    let recent_browsing = browsing
        .into_iter()
        .map(|b| BrowsedProduct {
            product: product(&b.product_id, None),
            view_count: b.view_count,
            last_seen_at: b.last_seen_at,
            last_event: b.last_event,
            last_channel: b.last_channel,
            in_cart: b.in_cart,
            added_to_cart_at: b.added_to_cart_at,
            wishlisted: b.wishlisted,
        })
        .collect();
    let recent_orders = reads
        .orders
        .iter()
        .map(|o| OrderView {
            lines: o
                .lines
                .iter()
                .map(|l| OrderLineView {
                    product: product(&l.product_id, Some(l)),
                    quantity: l.quantity,
                    unit_price_minor: l.unit_price_minor,
                    returned_quantity: l.returned_quantity,
                })
                .collect(),
            order: OrderRow {
                lines: Vec::new(),
                ..o.clone()
            },
        })
        .collect();
    let returns = reads
        .returns
        .iter()
        .map(|r| ReturnView {
            lines: r
                .lines
                .iter()
                .map(|(id, q)| (product(id, ordered.get(id.as_str()).copied()), *q))
                .collect(),
            ret: ReturnRow {
                lines: Vec::new(),
                ..r.clone()
            },
        })
        .collect();
    CustomerContext {
        customer_id,
        anonymous_id,
        as_of,
        profile: reads.profile.clone(),
        recent_browsing,
        recent_searches: reads.searches.clone(),
        recent_orders,
        returns,
        open_tickets: reads.tickets.clone(),
        agent_brief: None,
        browsing_events_scanned: reads.scanned,
        consents: consents.to_vec(),
        history_withheld,
        contact_details_masked: false,
        suggestions,
        sizes,
    }
}
