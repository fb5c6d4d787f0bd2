//! What a retailer sends: products, customers, browsing, orders, returns and
//! tickets, as validated domain records.

use std::hash::{Hash, Hasher};

use super::{size::ProductSize, values::*};

/// Whether a product can be sold, as the retailer tracks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stock {
    /// A tracked quantity; 0 or less is out of stock.
    Quantity(i64),
    /// A plain flag, for retailers that do not track quantities.
    Flag(bool),
}

impl Stock {
    /// Whether at least one unit can be sold.
    pub fn in_stock(self) -> bool {
        match self {
            Stock::Quantity(q) => q > 0,
            Stock::Flag(f) => f,
        }
    }

    /// The tracked quantity, if any.
    pub fn quantity(self) -> Option<i64> {
        match self {
            Stock::Quantity(q) => Some(q),
            Stock::Flag(_) => None,
        }
    }
}

/// A catalog product (one sellable variant).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Product {
    /// Product (variant) id.
    pub product_id: ProductId,
    /// Display name.
    pub name: String,
    /// Brand; may be empty.
    pub brand: String,
    /// Category path, most general first.
    pub category: CategoryPath,
    /// Current price.
    pub price: Money,
    /// Stock level or flag.
    pub stock: Stock,
    /// The style the variant belongs to (its own id when it has none).
    pub group_id: GroupId,
    /// Whether it is sold at all.
    pub active: bool,
    /// Product page link; may be empty.
    pub url: String,
    /// Image link; may be empty.
    pub image_url: String,
    /// Days after a purchase when it may be suggested again (consumables);
    /// `None` when a bought style never comes back.
    pub replenish_after_days: Option<u32>,
    /// Whether it is merchandise, when the retailer says so.
    pub merchandise: MerchandiseFlag,
    /// Its size, for a variant of a sized style.
    pub size: ProductSize,
}

/// Whether a product is merchandise a shopper may be offered, when the
/// retailer says so (`None`: the deployment's non-merchandise categories
/// decide). Absent, it adds nothing to a product's fingerprint, so
/// products stored before the flag existed are not seen as changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MerchandiseFlag(pub Option<bool>);

impl Hash for MerchandiseFlag {
    fn hash<H: Hasher>(&self, state: &mut H) {
        if let Some(b) = self.0 {
            b.hash(state);
        }
    }
}

/// Longest replenishment interval, in days.
pub const MAX_REPLENISH_DAYS: u32 = 3650;

/// A customer's profile as the retailer sends it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Customer {
    /// The retailer's customer id.
    pub customer_id: CustomerId,
    /// Name to greet them by; may be empty.
    pub display_name: String,
    /// Primary email.
    pub email: Option<Email>,
    /// Primary phone.
    pub phone: Option<Phone>,
    /// Loyalty id.
    pub loyalty_id: Option<LoyaltyId>,
    /// When the relationship began, when the retailer knows it.
    pub customer_since: Option<Timestamp>,
    /// Anonymous ids known to be theirs.
    pub anonymous_ids: Vec<AnonymousId>,
    /// Consents collected by the shop.
    pub consents: Vec<ConsentRecord>,
}

impl Customer {
    /// Every identity this profile links, in a fixed order.
    pub fn identities(&self) -> Vec<Identity> {
        let mut out = Vec::new();
        if let Some(e) = &self.email {
            out.push(e.clone().into());
        }
        if let Some(p) = &self.phone {
            out.push(p.clone().into());
        }
        if let Some(l) = &self.loyalty_id {
            out.push(l.clone().into());
        }
        out.extend(self.anonymous_ids.iter().cloned().map(Identity::from));
        out
    }
}

/// The kinds of browsing event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A product page view.
    ProductViewed,
    /// Added to the cart.
    AddedToCart,
    /// Removed from the cart.
    RemovedFromCart,
    /// A search on the shop.
    Searched,
    /// Added to a wishlist.
    AddedToWishlist,
}

impl EventKind {
    /// Every kind, for exhaustive tests and parsing.
    pub const ALL: [EventKind; 5] = [
        EventKind::ProductViewed,
        EventKind::AddedToCart,
        EventKind::RemovedFromCart,
        EventKind::Searched,
        EventKind::AddedToWishlist,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::ProductViewed => "product_viewed",
            EventKind::AddedToCart => "added_to_cart",
            EventKind::RemovedFromCart => "removed_from_cart",
            EventKind::Searched => "searched",
            EventKind::AddedToWishlist => "added_to_wishlist",
        }
    }

    /// Reads a stored name.
    pub fn from_stored(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// What a browsing event is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EventTarget {
    /// A product (views, cart and wishlist events).
    Product(ProductId),
    /// A search text.
    Search(String),
}

/// Who did something: a signed-in customer, an anonymous visitor, or both.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Actor {
    customer_id: Option<CustomerId>,
    anonymous_id: Option<AnonymousId>,
}

impl Actor {
    /// At least one of the two ids is required.
    pub fn new(
        customer_id: Option<CustomerId>,
        anonymous_id: Option<AnonymousId>,
    ) -> Result<Self, String> {
        if customer_id.is_none() && anonymous_id.is_none() {
            return Err("either a customer id or an anonymous id is required".into());
        }
        Ok(Self {
            customer_id,
            anonymous_id,
        })
    }

    /// The customer id, when signed in.
    pub fn customer_id(&self) -> Option<&CustomerId> {
        self.customer_id.as_ref()
    }

    /// The anonymous id, when known.
    pub fn anonymous_id(&self) -> Option<&AnonymousId> {
        self.anonymous_id.as_ref()
    }
}

/// One browsing event.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BrowsingEvent {
    /// The idempotency key.
    pub message_id: MessageId,
    /// Who.
    pub actor: Actor,
    /// What kind of event.
    pub kind: EventKind,
    /// About what.
    pub target: EventTarget,
    /// Channel; may be empty.
    pub channel: String,
    /// When.
    pub occurred_at: Timestamp,
}

/// How far in the future an event time may lie (clock skew between the
/// shop and this service).
pub const MAX_FUTURE_SKEW_MS: i64 = 5 * 60 * 1000;

impl BrowsingEvent {
    /// Builds an event, checking that the target suits the kind and the
    /// time is not in the future. Errors name the offending field.
    pub fn new(
        message_id: MessageId,
        actor: Actor,
        kind: EventKind,
        target: EventTarget,
        channel: String,
        occurred_at: Timestamp,
        now: Timestamp,
    ) -> Result<Self, (&'static str, String)> {
        match (&kind, &target) {
            (EventKind::Searched, EventTarget::Search(_)) => {}
            (EventKind::Searched, EventTarget::Product(_)) => {
                return Err(("search_query", "is required for a search event".into()));
            }
            (_, EventTarget::Search(_)) => {
                return Err(("product_id", "is required for this event type".into()));
            }
            (_, EventTarget::Product(_)) => {}
        }
        if occurred_at > now.plus_millis(MAX_FUTURE_SKEW_MS) {
            return Err((
                "occurred_at",
                "lies more than 5 minutes in the future".into(),
            ));
        }
        Ok(Self {
            message_id,
            actor,
            kind,
            target,
            channel,
            occurred_at,
        })
    }
}

/// Order status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    /// Placed.
    Placed,
    /// Shipped.
    Shipped,
    /// Delivered.
    Delivered,
    /// Cancelled; not counted in spend.
    Cancelled,
    /// Fully refunded.
    Refunded,
}

impl OrderStatus {
    /// Every status.
    pub const ALL: [OrderStatus; 5] = [
        OrderStatus::Placed,
        OrderStatus::Shipped,
        OrderStatus::Delivered,
        OrderStatus::Cancelled,
        OrderStatus::Refunded,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Placed => "placed",
            OrderStatus::Shipped => "shipped",
            OrderStatus::Delivered => "delivered",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Refunded => "refunded",
        }
    }

    /// Reads a stored name.
    pub fn from_stored(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether the order counts towards spend, order count and affinities.
    pub fn counts(self) -> bool {
        !matches!(self, OrderStatus::Cancelled)
    }
}

/// One line of an order, with what the product was at the time.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OrderLine {
    /// The product.
    pub product_id: ProductId,
    /// Units (1 to 100,000).
    pub quantity: i64,
    /// Price per unit, in the order's currency.
    pub unit_price_minor: i64,
    /// Name at the time; empty means "take it from the catalog".
    pub name: String,
    /// Brand at the time; empty means "take it from the catalog".
    pub brand: String,
    /// Category at the time; empty means "take it from the catalog".
    pub category: CategoryPath,
}

/// Largest stock quantity accepted (either sign; below zero is a backlog).
pub const MAX_STOCK_QUANTITY: i64 = 1_000_000_000;
/// Largest quantity accepted on one line.
pub const MAX_LINE_QUANTITY: i64 = 100_000;
/// Most lines accepted on one order or return.
pub const MAX_LINES: usize = 1000;

/// An order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Order {
    /// The idempotency key.
    pub order_id: OrderId,
    /// Who placed it.
    pub actor: Actor,
    /// Current status.
    pub status: OrderStatus,
    /// When it was placed.
    pub placed_at: Timestamp,
    /// Currency of every amount on the order.
    pub currency: Currency,
    /// Total charged, in minor units.
    pub total_minor: i64,
    /// Channel; may be empty.
    pub channel: String,
    /// The lines (1 to 1,000).
    pub lines: Vec<OrderLine>,
}

impl Order {
    /// Units on the order.
    pub fn units(&self) -> i64 {
        self.lines.iter().map(|l| l.quantity).sum()
    }
}

/// Return status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReturnStatus {
    /// Requested by the customer.
    Requested,
    /// Accepted by the retailer.
    Approved,
    /// Goods received.
    Received,
    /// Money refunded.
    Refunded,
    /// Refused; not counted.
    Rejected,
}

impl ReturnStatus {
    /// Every status.
    pub const ALL: [ReturnStatus; 5] = [
        ReturnStatus::Requested,
        ReturnStatus::Approved,
        ReturnStatus::Received,
        ReturnStatus::Refunded,
        ReturnStatus::Rejected,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ReturnStatus::Requested => "requested",
            ReturnStatus::Approved => "approved",
            ReturnStatus::Received => "received",
            ReturnStatus::Refunded => "refunded",
            ReturnStatus::Rejected => "rejected",
        }
    }

    /// Reads a stored name.
    pub fn from_stored(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether the return counts towards the return rate.
    pub fn counts(self) -> bool {
        !matches!(self, ReturnStatus::Rejected)
    }
}

/// One returned product.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReturnLine {
    /// The product.
    pub product_id: ProductId,
    /// Units (1 to 100,000).
    pub quantity: i64,
}

/// A return.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Return {
    /// The idempotency key.
    pub return_id: ReturnId,
    /// The order the goods came from.
    pub order_id: OrderId,
    /// The customer; `None` means "the order's customer".
    pub customer_id: Option<CustomerId>,
    /// Current status.
    pub status: ReturnStatus,
    /// Machine-readable reason.
    pub reason_code: String,
    /// The customer's words; may be empty.
    pub reason_text: String,
    /// When it was requested.
    pub requested_at: Timestamp,
    /// What came back (1 to 1,000 lines).
    pub lines: Vec<ReturnLine>,
    /// Refunded so far, if known.
    pub refund: Option<Money>,
}

impl Return {
    /// Units returned.
    pub fn units(&self) -> i64 {
        self.lines.iter().map(|l| l.quantity).sum()
    }
}

/// Ticket status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TicketStatus {
    /// Waiting for support.
    Open,
    /// Waiting for the customer; unresolved.
    Pending,
    /// Resolved.
    Solved,
    /// Closed.
    Closed,
}

impl TicketStatus {
    /// Every status.
    pub const ALL: [TicketStatus; 4] = [
        TicketStatus::Open,
        TicketStatus::Pending,
        TicketStatus::Solved,
        TicketStatus::Closed,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            TicketStatus::Open => "open",
            TicketStatus::Pending => "pending",
            TicketStatus::Solved => "solved",
            TicketStatus::Closed => "closed",
        }
    }

    /// Reads a stored name.
    pub fn from_stored(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Ticket priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TicketPriority {
    /// Low.
    Low,
    /// Normal.
    Normal,
    /// High.
    High,
    /// Urgent.
    Urgent,
}

impl TicketPriority {
    /// Every priority.
    pub const ALL: [TicketPriority; 4] = [
        TicketPriority::Low,
        TicketPriority::Normal,
        TicketPriority::High,
        TicketPriority::Urgent,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            TicketPriority::Low => "low",
            TicketPriority::Normal => "normal",
            TicketPriority::High => "high",
            TicketPriority::Urgent => "urgent",
        }
    }

    /// Reads a stored name.
    pub fn from_stored(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A support ticket.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ticket {
    /// The idempotency key.
    pub ticket_id: TicketId,
    /// Who raised it.
    pub customer_id: CustomerId,
    /// Subject line.
    pub subject: String,
    /// Status.
    pub status: TicketStatus,
    /// Priority.
    pub priority: TicketPriority,
    /// Channel; may be empty.
    pub channel: String,
    /// The order it is about.
    pub order_id: Option<OrderId>,
    /// When it was opened.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// A stable 64-bit fingerprint of a record's content (FNV-1a over the
/// derived `Hash` stream). Stored beside each record, it tells an identical
/// resend (DUPLICATE) from a change (UPDATED). If a Rust upgrade ever
/// changed the `Hash` stream, the only effect would be one UPDATED where a
/// DUPLICATE was due; the data stays right.
pub fn fingerprint<T: Hash>(value: &T) -> i64 {
    struct Fnv(u64);
    impl Hasher for Fnv {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, bytes: &[u8]) {
            for b in bytes {
                self.0 ^= u64::from(*b);
                self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
            }
        }
    }
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    value.hash(&mut h);
    h.finish() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_tells_content_apart() {
        let a = (String::from("order-1"), 3_i64);
        let b = (String::from("order-1"), 4_i64);
        assert_eq!(fingerprint(&a), fingerprint(&a.clone()));
        assert_ne!(fingerprint(&a), fingerprint(&b));
    }

    #[test]
    fn search_events_need_a_query_and_product_events_a_product() {
        let now = Timestamp::from_millis(1_700_000_000_000).unwrap();
        let actor = Actor::new(None, Some(AnonymousId::parse("anon-1").unwrap())).unwrap();
        let id = MessageId::parse("m1").unwrap();
        let product = EventTarget::Product(ProductId::parse("p1").unwrap());
        let search = EventTarget::Search("boots".into());
        let ok = |kind, target: &EventTarget| {
            BrowsingEvent::new(
                id.clone(),
                actor.clone(),
                kind,
                target.clone(),
                String::new(),
                now,
                now,
            )
        };
        assert!(ok(EventKind::Searched, &search).is_ok());
        assert_eq!(
            ok(EventKind::Searched, &product).unwrap_err().0,
            "search_query"
        );
        assert_eq!(
            ok(EventKind::ProductViewed, &search).unwrap_err().0,
            "product_id"
        );
        let future = now.plus_millis(MAX_FUTURE_SKEW_MS + 1);
        let err = BrowsingEvent::new(
            id,
            actor,
            EventKind::ProductViewed,
            product,
            String::new(),
            future,
            now,
        );
        assert_eq!(err.unwrap_err().0, "occurred_at");
    }

    #[test]
    fn actor_needs_an_id() {
        assert!(Actor::new(None, None).is_err());
    }
}

/// What a write did with one item that was valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Stored for the first time.
    Created,
    /// Replaced a stored item with the same id.
    Updated,
    /// Identical to what was stored; nothing changed.
    Duplicate,
    /// Names an erased customer: dropped, nothing stored.
    Suppressed,
}

/// The result of one item of a batch write: stored, or rejected with the
/// fields at fault (for checks that need the database, such as an identity
/// that belongs to another customer).
pub type ItemResult = Result<WriteOutcome, super::Violations>;

/// The purposes consent is recorded for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Purpose {
    /// Using the customer's history to assist them in support.
    SupportContext,
    /// Computing suggestions from the customer's history.
    PersonalisedSuggestions,
}

impl Purpose {
    /// Every purpose.
    pub const ALL: [Purpose; 2] = [Purpose::SupportContext, Purpose::PersonalisedSuggestions];

    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::SupportContext => "support_context",
            Purpose::PersonalisedSuggestions => "personalised_suggestions",
        }
    }

    /// Reads a stored name.
    pub fn from_stored(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// One recorded consent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConsentRecord {
    /// The purpose.
    pub purpose: Purpose,
    /// Granted or withdrawn.
    pub granted: bool,
    /// Who recorded it ("api", "ingest", ...).
    pub source: String,
    /// When it was recorded (as given by the sender).
    pub updated_at: Timestamp,
}

/// Whether the consents on file withdraw `purpose` (no record counts as
/// not withdrawn).
pub fn withdrawn(consents: &[ConsentRecord], purpose: Purpose) -> bool {
    consents.iter().any(|c| c.purpose == purpose && !c.granted)
}
