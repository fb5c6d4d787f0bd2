//! Assembles the agent's view of one customer from bounded store reads.
//! Knows nothing of gRPC: the API layer converts its output.

mod brief;

use std::collections::{HashMap, HashSet};

use crate::{
    domain::{AnonymousId, CategoryPath, CustomerId, CustomerKey, Error, EventKind, Timestamp},
    store::{EventRow, OrderRow, ProductRow, ProfileRow, ReturnRow, Store, Subject, TicketRow},
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
    /// Most recent searches returned.
    pub const SEARCHES: usize = 5;
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

/// A product as the catalog describes it now, or as an order recorded it
/// when the catalog does not know it.
#[derive(Debug, Clone)]
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
    pub size: Option<crate::domain::Size>,
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

    fn unknown(product_id: &str, name: &str, brand: &str, category_path: &str) -> Self {
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

/// A recent search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentSearch {
    /// The text.
    pub query: String,
    /// When.
    pub at: Timestamp,
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
    browsed: Vec<Browsed>,
    /// The same as suggestions take them: viewed and in-cart product ids.
    signals: (Vec<String>, Vec<String>),
    /// The distinct recent searches.
    pub searches: Vec<RecentSearch>,
    /// Products bought (with when) since the earliest cart addition among
    /// `browsed`, newest first, at most `PURCHASE_SCAN`: a cart item
    /// bought after it was added is no longer in the cart.
    bought: Vec<(String, Timestamp)>,
    /// Recent orders with their lines.
    pub orders: Vec<OrderRow>,
    /// Recent returns.
    pub returns: Vec<ReturnRow>,
    /// Open tickets.
    pub tickets: Vec<TicketRow>,
    /// What the customer kept and sent back for its size.
    pub size_evidence: Vec<crate::fit::Evidence>,
    /// The sizes inferred from the evidence, with the model generation
    /// whose catalogue sizes they used. The clock does not enter: as time
    /// passes every piece of evidence loses weight alike, so the same
    /// size wins with the same confidence.
    sizes: std::sync::Mutex<Option<(u64, std::sync::Arc<Vec<crate::fit::Estimate>>)>>,
}

impl ContextReads {
    /// The sizes for model `generation`, inferred by `infer` at most once.
    fn sizes(
        &self,
        generation: u64,
        infer: impl FnOnce() -> Vec<crate::fit::Estimate>,
    ) -> std::sync::Arc<Vec<crate::fit::Estimate>> {
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

/// A product's browsing, folded from the newest events down.
#[derive(Debug, Clone)]
struct Browsed {
    product_id: String,
    view_count: u32,
    last_seen_at: Timestamp,
    last_event: EventKind,
    last_channel: String,
    /// Decided by the newest cart event: Some(true) added, Some(false) removed.
    cart: Option<bool>,
    in_cart: bool,
    added_to_cart_at: Option<Timestamp>,
    wishlisted: bool,
}

/// Folds events (newest first) into one entry per product, newest first,
/// and the distinct recent searches.
fn summarise_browsing(events: &[EventRow], limit: usize) -> (Vec<Browsed>, Vec<RecentSearch>) {
    let mut order: Vec<String> = Vec::new();
    let mut by_product: HashMap<String, Browsed> = HashMap::new();
    let mut searches: Vec<RecentSearch> = Vec::new();
    for e in events {
        if e.kind == EventKind::Searched {
            if let Some(q) = &e.search_query {
                let seen = searches.iter().any(|s| s.query.eq_ignore_ascii_case(q));
                if !seen && searches.len() < limits::SEARCHES {
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
fn browsing_signals(browsed: &[Browsed]) -> (Vec<String>, Vec<String>) {
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
pub(crate) fn viewed_and_in_cart(events: &[EventRow]) -> (Vec<String>, Vec<String>) {
    browsing_signals(&summarise_browsing(events, usize::MAX).0)
}

/// Clears `in_cart` for products bought after they were added.
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

/// Takes out of the cart what was bought after it was added.
fn mark_bought(bought: &[(String, Timestamp)], browsing: &mut [Browsed]) {
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
