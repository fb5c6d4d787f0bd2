//! Assembles the agent's view of one customer from bounded store reads.
//! Knows nothing of gRPC: the API layer converts its output.

mod assemble;
mod brief;
/// A filled-in context for other modules' unit tests.
#[cfg(test)]
pub(crate) use brief::tests::context as sample;
pub mod policy;
mod read;
mod reading;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use crate::{
    domain::{AnonymousId, CustomerId, CustomerKey, Error, EventKind, Timestamp},
    reads::{ContextReads, ProductView, RecentSearch},
    store::{OrderRow, ProductRows, ProfileRow, ReturnRow, Store, Subject, TicketRow},
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

    /// The selected sections as bits, in [`Sections::NAMES`] order: a
    /// compact key (formatting the struct cost every call a long string).
    pub fn bits(self) -> u8 {
        [
            self.profile,
            self.recent_browsing,
            self.recent_searches,
            self.recent_orders,
            self.returns,
            self.open_tickets,
            self.agent_brief,
            self.suggestions,
        ]
        .iter()
        .enumerate()
        .fold(0, |bits, (i, on)| bits | (u8::from(*on) << i))
    }

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
#[derive(Debug, Clone, PartialEq)]
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
#[derive(Debug, Clone, PartialEq)]
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
#[derive(Debug, Clone, PartialEq)]
pub struct OrderView {
    /// The order.
    pub order: OrderRow,
    /// Its lines with products.
    pub lines: Vec<OrderLineView>,
}

/// A return with its products.
#[derive(Debug, Clone, PartialEq)]
pub struct ReturnView {
    /// The return.
    pub ret: ReturnRow,
    /// (product, units) returned.
    pub lines: Vec<(ProductView, i64)>,
}

/// The assembled view.
#[derive(Debug, Clone, PartialEq)]
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
    /// The caller's role may not see contact details: the profile's email
    /// and phone are masked (see [`policy::for_audience`]).
    pub contact_details_masked: bool,
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
    reading: reading::Reading,
}

impl ContextService {
    /// A service reading from `store`, with suggestions from `suggest`.
    pub fn new(store: Store, suggest: crate::suggest::SuggestService) -> Self {
        Self {
            store,
            suggest,
            reading: reading::Reading::new(),
        }
    }

    /// Whether an API key exists and is not revoked.
    pub async fn key_is_valid(&self, key_id: &str) -> Result<bool, crate::domain::Error> {
        Ok(self
            .store
            .find_key(key_id)
            .await?
            .is_some_and(|k| !k.revoked))
    }

    /// Assembles the context for `query`: read, assemble, apply the
    /// policy. `NotFound` when the identity leads to no customer and no
    /// browsing.
    #[tracing::instrument(skip_all)]
    pub async fn get(&self, query: &ContextQuery) -> Result<CustomerContext, Error> {
        let _counted = self.reading.start();
        let as_of = Timestamp::now();
        let live = self.suggest.live();
        let (subject, read) = match &query.key {
            // Nothing remembered of them: catching up with the feed (which
            // only forgets) cannot make this a remembered read, so their
            // read runs beside it; the ranking waits for both.
            CustomerKey::Id(c) if !live.memo().has_context(c.as_str()) => {
                let (_, read) = tokio::try_join!(
                    live.ensure_current(&self.store),
                    self.read_first(c, query, as_of)
                )?;
                read
            }
            // First the change feed, so what this replica remembers is
            // current: a customer whose context it remembers exists (an
            // erasure would have dropped it), and needs no lookup.
            key => {
                live.ensure_current(&self.store).await?;
                let subject = self.subject(key).await?;
                let read = self.read(&subject, query, as_of).await?;
                (subject, read)
            }
        };
        let read::Read {
            consents,
            sections: read,
            withheld: history_withheld,
            reads,
            rows,
        } = read;
        let customer = match &subject {
            Subject::Customer(c) => Some(c.clone()),
            Subject::Anonymous(_) => None,
        };
        let (suggestions, history) = match read.suggestions {
            true => {
                let (list, history) = self
                    .suggestions(&subject, &consents, &reads, rows, query, as_of)
                    .await?;
                (Some(list), Some(history))
            }
            false => (None, None),
        };
        // With suggestions, their history read brings the size evidence.
        let evidence = history
            .as_ref()
            .map_or(&reads.size_evidence, |h| &h.size_evidence);
        let sizes = self.sizes(&reads, evidence, as_of);
        let browsing = assemble::shown_browsing(&reads, query.browsing_limit as usize);
        let ids = assemble::shown_products(&browsing, &reads.orders, &reads.returns);
        let catalog = match ids.is_empty() {
            true => ProductRows::new(),
            false => self.suggest.product_rows(&ids).await?,
        };
        let context = assemble::assemble(assemble::Parts {
            customer_id: customer,
            anonymous_id: anonymous_id(&subject, &query.key),
            as_of,
            reads: &reads,
            browsing,
            catalog: &catalog,
            consents: &consents,
            history_withheld,
            suggestions,
            sizes: Vec::clone(&sizes),
        });
        Ok(policy::finish(
            context,
            query.sections,
            read,
            query.returns_limit,
            query.tickets_limit,
        ))
    }

    /// The customer `key` names when it names one by id, this replica
    /// remembers no context read of them (their read goes to the
    /// database), and a read started now would have a core of its own.
    /// (A customer found by another identity is known only once the
    /// identity is resolved.)
    pub fn first_read<'k>(&self, key: &'k CustomerKey) -> Option<&'k CustomerId> {
        match key {
            CustomerKey::Id(c)
                if self.reading.cores_to_spare(1)
                    && !self.suggest.live().memo().has_context(c.as_str()) =>
            {
                Some(c)
            }
            _ => None,
        }
    }

    /// Whom the key leads to. A customer id needs no lookup: the read
    /// that follows finds the customer or answers `NotFound`.
    async fn subject(&self, key: &CustomerKey) -> Result<Subject, Error> {
        match key {
            CustomerKey::Id(c) => Ok(Subject::Customer(c.clone())),
            key => self.store.resolve(key).await?.ok_or_else(read::not_found),
        }
    }

    /// The suggestions for the subject, with the browsing already read,
    /// and the history they were ranked from.
    async fn suggestions(
        &self,
        subject: &Subject,
        consents: &[crate::domain::ConsentRecord],
        reads: &ContextReads,
        rows: Option<crate::suggest::HistoryRows>,
        query: &ContextQuery,
        as_of: Timestamp,
    ) -> Result<
        (
            crate::suggest::SuggestionList,
            Arc<crate::suggest::signals::History>,
        ),
        Error,
    > {
        let who = match subject {
            Subject::Customer(c) => c.as_str(),
            Subject::Anonymous(a) => a.as_str(),
        };
        self.suggest
            .with_history(crate::suggest::Request {
                subject: Some(subject),
                who,
                consents,
                anchors: &[],
                exclude: &[],
                browsing: Some(&reads.signals),
                limit: query.suggestions_limit as usize,
                now: as_of,
                caught_up: true,
                curated_first: false,
                rows,
            })
            .await
    }

    /// The sizes the customer keeps, latest evidence first: inferred once
    /// per remembered reads and model generation.
    fn sizes(
        &self,
        reads: &ContextReads,
        evidence: &[crate::fit::Evidence],
        as_of: Timestamp,
    ) -> Arc<Vec<crate::fit::Estimate>> {
        let live = self.suggest.live();
        reads.sizes(live.generation(), || {
            let mut profile =
                live.read(|m| crate::fit::infer(evidence, &|d| m.catalogue_sizes(d), as_of));
            profile
                .estimates
                .sort_by(|a, b| b.last_at.cmp(&a.last_at).then(a.domain.cmp(&b.domain)));
            profile.estimates
        })
    }
}

/// The anonymous id a context answers for: the subject's own, or the one
/// the caller looked a customer up by.
fn anonymous_id(subject: &Subject, key: &CustomerKey) -> Option<AnonymousId> {
    match (subject, key) {
        (Subject::Anonymous(a), _) => Some(a.clone()),
        (Subject::Customer(_), CustomerKey::Identity(i))
            if i.kind() == crate::domain::IdentityKind::AnonymousId =>
        {
            AnonymousId::parse(i.value()).ok()
        }
        _ => None,
    }
}
