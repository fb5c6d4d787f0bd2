//! Assembles the agent's view of one customer from bounded store reads.
//! Knows nothing of gRPC: the API layer converts its output.

mod brief;

use std::collections::{HashMap, HashSet};

use crate::{
    domain::{AnonymousId, CustomerId, CustomerKey, Error, EventKind, Timestamp},
    reads::{
        Browsed, ContextReads, ProductView, RecentSearch, browsing_signals, mark_bought,
        summarise_browsing,
    },
    store::{OrderRow, ProfileRow, ReturnRow, Store, Subject, TicketRow},
};

pub use brief::agent_brief;

/// Defaults and maxima of the request's knobs. They are part of the API
/// contract (documented in `context.proto`).
pub mod limits {
    /// Default lookback for browsing, orders and returns, in days.
    pub const LOOKBACK_DAYS: (u32, u32) = (365, 3650);
    /// Default and maximum products in recent browsing.
    pub const BROWSING: (u32, u32) = (10, 50);
    /// Default and maximum recent orders.
    pub const ORDERS: (u32, u32) = (5, 50);
    /// Default and maximum returns.
    pub const RETURNS: (u32, u32) = (5, 50);
    /// Default and maximum open tickets.
    pub const TICKETS: (u32, u32) = (10, 50);
    /// Browsing events scanned per request, newest first.
    pub const EVENT_SCAN: u32 = 2000;
    /// Order lines scanned to tell a bought cart item from an abandoned one.
    pub const PURCHASE_SCAN: u32 = 1000;
}

/// The sections of a context, selectable by a read mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sections {
    /// Profile summary.
    pub profile: bool,
    /// Recent browsing.
    pub recent_browsing: bool,
    /// Recent searches.
    pub recent_searches: bool,
    /// Recent orders.
    pub recent_orders: bool,
    /// Returns.
    pub returns: bool,
    /// Open tickets.
    pub open_tickets: bool,
    /// The plain-language brief.
    pub agent_brief: bool,
    /// Cross-sell suggestions.
    pub suggestions: bool,
}

impl Sections {
    /// Every section.
    pub const ALL: Sections = Sections {
        profile: true,
        recent_browsing: true,
        recent_searches: true,
        recent_orders: true,
        returns: true,
        open_tickets: true,
        agent_brief: true,
        suggestions: true,
    };
    /// No section.
    pub const NONE: Sections = Sections {
        profile: false,
        recent_browsing: false,
        recent_searches: false,
        recent_orders: false,
        returns: false,
        open_tickets: false,
        agent_brief: false,
        suggestions: false,
    };
    /// The names accepted in a read mask.
    pub const NAMES: [&'static str; 8] = [
        "profile",
        "recent_browsing",
        "recent_searches",
        "recent_orders",
        "returns",
        "open_tickets",
        "agent_brief",
        "suggestions",
    ];

    /// Selects one section by its field name; `false` for an unknown name.
    pub fn select(&mut self, name: &str) -> bool {
        let slot = match name {
            "profile" => &mut self.profile,
            "recent_browsing" => &mut self.recent_browsing,
            "recent_searches" => &mut self.recent_searches,
            "recent_orders" => &mut self.recent_orders,
            "returns" => &mut self.returns,
            "open_tickets" => &mut self.open_tickets,
            "agent_brief" => &mut self.agent_brief,
            "suggestions" => &mut self.suggestions,
            _ => return false,
        };
        *slot = true;
        true
    }
}

/// A validated context request.
#[derive(Debug, Clone)]
pub struct ContextQuery {
    /// Who.
    pub key: CustomerKey,
    /// Which sections.
    pub sections: Sections,
    /// Lookback in days.
    pub lookback_days: u32,
    /// Most browsed products.
    pub browsing_limit: u32,
    /// Most orders.
    pub orders_limit: u32,
    /// Most returns.
    pub returns_limit: u32,
    /// Most tickets.
    pub tickets_limit: u32,
    /// Most suggestions.
    pub suggestions_limit: u32,
}

/// One product the customer interacted with recently.
#[derive(Debug, Clone)]
pub struct BrowsedProduct {
    /// The product now.
    pub product: ProductView,
    /// Views among the scanned events.
    pub view_count: u32,
    /// Latest interaction.
    pub last_seen_at: Timestamp,
    /// Its kind.
    pub last_event: EventKind,
    /// Its channel.
    pub last_channel: String,
    /// Added and not removed or bought since.
    pub in_cart: bool,
    /// When last added to the cart.
    pub added_to_cart_at: Option<Timestamp>,
    /// Wishlisted.
    pub wishlisted: bool,
}

/// An order line with its product.
#[derive(Debug, Clone)]
pub struct OrderLineView {
    /// The product.
    pub product: ProductView,
    /// Units.
    pub quantity: i64,
    /// Unit price paid.
    pub unit_price_minor: i64,
    /// Units returned.
    pub returned_quantity: i64,
}

/// An order with its lines.
#[derive(Debug, Clone)]
pub struct OrderView {
    /// The order.
    pub order: OrderRow,
    /// Its lines with products.
    pub lines: Vec<OrderLineView>,
}

/// A return with its products.
#[derive(Debug, Clone)]
pub struct ReturnView {
    /// The return.
    pub ret: ReturnRow,
    /// (product, units) returned.
    pub lines: Vec<(ProductView, i64)>,
}

/// The assembled view.
#[derive(Debug, Clone)]
pub struct CustomerContext {
    /// The customer, when known.
    pub customer_id: Option<CustomerId>,
    /// The anonymous id looked up, for anonymous lookups.
    pub anonymous_id: Option<AnonymousId>,
    /// When assembled.
    pub as_of: Timestamp,
    /// Profile, when selected and the subject is a customer.
    pub profile: Option<ProfileRow>,
    /// Recent browsing, newest first.
    pub recent_browsing: Vec<BrowsedProduct>,
    /// Recent searches, newest first.
    pub recent_searches: Vec<RecentSearch>,
    /// Recent orders, newest first.
    pub recent_orders: Vec<OrderView>,
    /// Returns, newest first.
    pub returns: Vec<ReturnView>,
    /// Unresolved tickets.
    pub open_tickets: Vec<TicketRow>,
    /// The brief, when selected.
    pub agent_brief: Option<String>,
    /// Events scanned for browsing.
    pub browsing_events_scanned: u32,
    /// Consents on file.
    pub consents: Vec<crate::domain::ConsentRecord>,
    /// The customer withdrew consent for support context: history sections
    /// are empty.
    pub history_withheld: bool,
    /// Suggestions, when selected.
    pub suggestions: Option<crate::suggest::SuggestionList>,
    /// The sizes the customer keeps (with the profile), latest evidence
    /// first.
    pub sizes: Vec<crate::fit::Estimate>,
}

/// Builds customer contexts.
#[derive(Clone, Debug)]
pub struct ContextService {
    store: Store,
    suggest: crate::suggest::SuggestService,
}

impl ContextService {
    /// A service reading from `store`, with suggestions from `suggest`.
    pub fn new(store: Store, suggest: crate::suggest::SuggestService) -> Self {
        Self { store, suggest }
    }

    /// The sections' rows: from this replica's memory for a known customer
    /// (kept exact by the change feed; the window moves by the hour), else
    /// read concurrently, each on its own pooled connection.
    async fn reads(
        &self,
        subject: &Subject,
        customer: Option<&CustomerId>,
        s: Sections,
        since: Timestamp,
        query: &ContextQuery,
    ) -> Result<std::sync::Arc<ContextReads>, Error> {
        let memo = self.suggest.live().memo();
        let key = format!(
            "{s:?}|{}|{}|{}|{}",
            since.millis() / 3_600_000,
            query.orders_limit,
            query.returns_limit,
            query.tickets_limit
        );
        if let Some(c) = customer
            && let Some(r) = memo.context(c.as_str(), &key)
        {
            return Ok(r);
        }
        let from = self.suggest.live().applied();
        // Start of the window, by the hour, as remembered reads use it.
        let since = Timestamp::from_millis(since.millis() / 3_600_000 * 3_600_000).unwrap_or(since);
        let brief = s.agent_brief;
        let need_browsing = s.recent_browsing || s.recent_searches || brief || s.suggestions;
        let store = &self.store;
        let sized = self.suggest.live().read(crate::suggest::Model::has_sizes);
        let (profile, events, orders, returns, tickets, sizes) = tokio::try_join!(
            async {
                match (customer, s.profile || brief) {
                    (Some(c), true) => store.profile(c).await,
                    _ => Ok(None),
                }
            },
            async {
                if need_browsing {
                    store
                        .recent_events(subject, since, i64::from(limits::EVENT_SCAN))
                        .await
                } else {
                    Ok(Vec::new())
                }
            },
            async {
                match (customer, s.recent_orders) {
                    (Some(c), true) => {
                        store
                            .recent_orders(c, since, i64::from(query.orders_limit))
                            .await
                    }
                    _ => Ok(Vec::new()),
                }
            },
            async {
                match (customer, s.returns || brief) {
                    (Some(c), true) => {
                        store
                            .recent_returns(c, since, i64::from(query.returns_limit.max(1)))
                            .await
                    }
                    _ => Ok(Vec::new()),
                }
            },
            async {
                match (customer, s.open_tickets || brief) {
                    (Some(c), true) => {
                        store
                            .open_tickets(c, i64::from(query.tickets_limit.max(1)))
                            .await
                    }
                    _ => Ok(Vec::new()),
                }
            },
            async {
                // With suggestions, their history read brings the sizes.
                match (customer, (s.profile || brief) && sized && !s.suggestions) {
                    (Some(c), true) => self.suggest.size_evidence(c, Timestamp::now()).await,
                    _ => Ok(Vec::new()),
                }
            },
        )?;
        let (browsed, searches) = summarise_browsing(&events, usize::MAX);
        let bought = match customer {
            Some(c) => bought_since_cart(store, c, &browsed).await?,
            None => Vec::new(),
        };
        let reads = std::sync::Arc::new(ContextReads {
            profile,
            scanned: events.len() as u32,
            signals: browsing_signals(&browsed),
            browsed,
            searches,
            bought,
            orders,
            returns,
            tickets,
            size_evidence: sizes,
            sizes: Default::default(),
        });
        if let Some(c) = customer {
            memo.put_context(c.as_str(), key, reads.clone(), from);
        }
        Ok(reads)
    }

    /// Assembles the context for `query`. `NotFound` when the identity leads
    /// to no customer and no browsing.
    #[tracing::instrument(skip_all)]
    pub async fn get(&self, query: &ContextQuery) -> Result<CustomerContext, Error> {
        let as_of = Timestamp::now();
        // First the change feed, so what this replica remembers is current:
        // a customer whose context it remembers exists (an erasure would
        // have dropped it), and needs no lookup.
        self.suggest.live().ensure_current(&self.store).await?;
        let subject = match &query.key {
            CustomerKey::Id(c) if self.suggest.live().memo().has_context(c.as_str()) => {
                Some(Subject::Customer(c.clone()))
            }
            key => self.store.resolve(key).await?,
        };
        let subject = subject.ok_or_else(|| {
            Error::NotFound("no customer or browsing is known under this identity".into())
        })?;
        let since = as_of.minus_days(query.lookback_days);
        let mut s = query.sections;
        // Consent is checked now, for this request.
        let consents = match &subject {
            Subject::Customer(c) => self.suggest.consents(c).await?,
            Subject::Anonymous(_) => Default::default(),
        };
        let history_withheld =
            crate::domain::withdrawn(&consents, crate::domain::Purpose::SupportContext);
        if history_withheld {
            let keep_profile = s.profile;
            let keep_brief = s.agent_brief;
            s = Sections::NONE;
            s.profile = keep_profile || keep_brief;
        }
        let customer = match &subject {
            Subject::Customer(c) => Some(c.clone()),
            Subject::Anonymous(_) => None,
        };
        let reads = self
            .reads(&subject, customer.as_ref(), s, since, query)
            .await?;
        let profile = reads.profile.clone();
        let scanned = reads.scanned;
        let shown = query.browsing_limit as usize;
        let mut browsing: Vec<Browsed> = reads.browsed.iter().take(shown).cloned().collect();
        let mut history = None;
        let suggestions = if s.suggestions {
            let who = match &subject {
                Subject::Customer(c) => c.as_str(),
                Subject::Anonymous(a) => a.as_str(),
            };
            let (list, with) = self
                .suggest
                .with_history(crate::suggest::Request {
                    subject: Some(&subject),
                    who,
                    consents: &consents,
                    anchors: &[],
                    exclude: &[],
                    browsing: Some(&reads.signals),
                    limit: query.suggestions_limit as usize,
                    now: as_of,
                    caught_up: true,
                    curated_first: false,
                })
                .await?;
            history = Some(with);
            Some(list)
        } else {
            None
        };
        mark_bought(&reads.bought, &mut browsing);
        let (orders, returns, tickets) = (
            reads.orders.clone(),
            reads.returns.clone(),
            reads.tickets.clone(),
        );
        let searches = reads.searches.clone();

        // With suggestions, their history read brings the size evidence.
        let evidence = history
            .as_ref()
            .map_or(&reads.size_evidence, |h| &h.size_evidence);
        let sizes = reads.sizes(self.suggest.live().generation(), || {
            let mut profile = self
                .suggest
                .live()
                .read(|m| crate::fit::infer(evidence, &|d| m.catalogue_sizes(d), as_of));
            profile
                .estimates
                .sort_by(|a, b| b.last_at.cmp(&a.last_at).then(a.domain.cmp(&b.domain)));
            profile.estimates
        });

        // One catalog read for every product any section shows.
        let mut ids: HashSet<&str> = HashSet::new();
        ids.extend(browsing.iter().map(|b| b.product_id.as_str()));
        for o in &orders {
            ids.extend(o.lines.iter().map(|l| l.product_id.as_str()));
        }
        for r in &returns {
            ids.extend(r.lines.iter().map(|(p, _)| p.as_str()));
        }
        let ids: Vec<&str> = ids.into_iter().collect();
        let catalog = if ids.is_empty() {
            HashMap::new()
        } else {
            self.suggest.product_rows(&ids).await?
        };
        let product = |id: &str| {
            catalog.get(id).map_or_else(
                || ProductView::unknown(id, "", "", ""),
                ProductView::from_catalog,
            )
        };

        // A returned product is named by what its order said when the
        // catalog no longer knows it.
        let ordered_names: HashMap<String, crate::store::OrderLineRow> = orders
            .iter()
            .flat_map(|o| o.lines.iter().map(|l| (l.product_id.clone(), l.clone())))
            .collect();

        let recent_browsing: Vec<BrowsedProduct> = browsing
            .into_iter()
            .map(|b| BrowsedProduct {
                product: product(&b.product_id),
                view_count: b.view_count,
                last_seen_at: b.last_seen_at,
                last_event: b.last_event,
                last_channel: b.last_channel,
                in_cart: b.in_cart,
                added_to_cart_at: b.added_to_cart_at,
                wishlisted: b.wishlisted,
            })
            .collect();
        let recent_orders: Vec<OrderView> = orders
            .into_iter()
            .map(|mut o| {
                let lines = std::mem::take(&mut o.lines)
                    .into_iter()
                    .map(|l| OrderLineView {
                        product: catalog.get(&l.product_id).map_or_else(
                            || {
                                ProductView::unknown(
                                    &l.product_id,
                                    &l.name,
                                    &l.brand,
                                    &l.category_path,
                                )
                            },
                            ProductView::from_catalog,
                        ),
                        quantity: l.quantity,
                        unit_price_minor: l.unit_price_minor,
                        returned_quantity: l.returned_quantity,
                    })
                    .collect();
                OrderView { order: o, lines }
            })
            .collect();
        let returns: Vec<ReturnView> = returns
            .into_iter()
            .map(|mut r| {
                let lines = std::mem::take(&mut r.lines)
                    .into_iter()
                    .map(|(id, q)| {
                        let view = match (catalog.get(&id), ordered_names.get(id.as_str())) {
                            (Some(p), _) => ProductView::from_catalog(p),
                            (None, Some(l)) => {
                                ProductView::unknown(&id, &l.name, &l.brand, &l.category_path)
                            }
                            (None, None) => product(&id),
                        };
                        (view, q)
                    })
                    .collect();
                ReturnView { ret: r, lines }
            })
            .collect();

        let mut ctx = CustomerContext {
            customer_id: customer,
            anonymous_id: match subject {
                Subject::Anonymous(a) => Some(a),
                Subject::Customer(_) => match &query.key {
                    CustomerKey::Identity(i)
                        if i.kind() == crate::domain::IdentityKind::AnonymousId =>
                    {
                        AnonymousId::parse(i.value()).ok()
                    }
                    _ => None,
                },
            },
            as_of,
            profile,
            recent_browsing,
            recent_searches: searches,
            recent_orders,
            returns,
            open_tickets: tickets,
            agent_brief: None,
            browsing_events_scanned: scanned,
            consents: consents.to_vec(),
            history_withheld,
            suggestions,
            sizes: Vec::clone(&sizes),
        };
        if history_withheld {
            // Account details stay; numbers drawn from the history go.
            if let Some(p) = ctx.profile.as_mut() {
                p.order_count = 0;
                p.units_purchased = 0;
                p.units_returned = 0;
                p.spend.clear();
                p.top_categories.clear();
                p.top_brands.clear();
                p.last_order_at = None;
                p.last_activity_at = None;
            }
            ctx.sizes.clear();
        }
        if query.sections.agent_brief {
            ctx.agent_brief = Some(agent_brief(&ctx));
        }
        if history_withheld && !query.sections.profile {
            ctx.profile = None;
        }
        // Sections read only for the brief are not returned.
        if !s.profile {
            ctx.profile = None;
        }
        if !s.recent_browsing {
            ctx.recent_browsing.clear();
        }
        if !s.recent_searches {
            ctx.recent_searches.clear();
        }
        if !s.returns {
            ctx.returns.clear();
        }
        if !s.open_tickets {
            ctx.open_tickets.clear();
        }
        ctx.returns.truncate(query.returns_limit as usize);
        ctx.open_tickets.truncate(query.tickets_limit as usize);
        Ok(ctx)
    }
}

/// What the customer bought since the earliest cart addition among
/// `browsed` (newest first): read once with the rest of the context, so
/// that `mark_bought` needs no read of its own. Any later window shown
/// (the newest `browsing_limit` products) starts no earlier, and its
/// purchases are the newest ones, so they are the same rows.
async fn bought_since_cart(
    store: &Store,
    customer: &CustomerId,
    browsed: &[Browsed],
) -> Result<Vec<(String, Timestamp)>, Error> {
    let earliest = browsed
        .iter()
        .filter(|b| b.in_cart)
        .filter_map(|b| b.added_to_cart_at)
        .min();
    match earliest {
        Some(earliest) => {
            store
                .purchases_since(customer, earliest, i64::from(limits::PURCHASE_SCAN))
                .await
        }
        None => Ok(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_mask_names_select_sections() {
        let mut s = Sections::NONE;
        for name in Sections::NAMES {
            assert!(s.select(name), "{name}");
        }
        assert_eq!(s, Sections::ALL);
        assert!(!s.select("orders"));
    }
}
