//! The change feed: what every write tells the serving replicas.
//!
//! Each writing transaction appends its changes to one ordered feed in the
//! database, in the same transaction; replicas tail it and apply what they
//! keep in memory (co-purchase counts, stock), and live watchers will learn
//! from it which customer changed.

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// A counted order's products entered (or left) the co-purchase counts.
    Basket,
    /// A catalog product was created or changed (stock, price, active).
    Product,
    /// A browsing event of a customer or visitor.
    Event,
    /// An order of a customer.
    Order,
    /// A return of a customer.
    Return,
    /// A support ticket of a customer.
    Ticket,
    /// A customer's profile or identities.
    Customer,
    /// A customer's consent.
    Consent,
    /// Feedback on a suggestion.
    Feedback,
    /// A customer was erased (the entry names nobody).
    Erasure,
    /// An A/B experiment was created, changed, started or stopped.
    Experiment,
    /// A new suggestion model was stored: replicas load it before their
    /// next answer.
    Model,
    /// A stylist's curation was created, changed or archived.
    Curation,
    /// An API key was revoked (the entry names no key): open streams
    /// check whether theirs is still valid.
    Revocation,
}

impl ChangeKind {
    /// Every kind, for parsing.
    pub const ALL: [ChangeKind; 14] = [
        ChangeKind::Basket,
        ChangeKind::Product,
        ChangeKind::Event,
        ChangeKind::Order,
        ChangeKind::Return,
        ChangeKind::Ticket,
        ChangeKind::Customer,
        ChangeKind::Consent,
        ChangeKind::Feedback,
        ChangeKind::Erasure,
        ChangeKind::Experiment,
        ChangeKind::Model,
        ChangeKind::Curation,
        ChangeKind::Revocation,
    ];

    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Basket => "basket",
            ChangeKind::Product => "product",
            ChangeKind::Event => "event",
            ChangeKind::Order => "order",
            ChangeKind::Return => "return",
            ChangeKind::Ticket => "ticket",
            ChangeKind::Customer => "customer",
            ChangeKind::Consent => "consent",
            ChangeKind::Feedback => "feedback",
            ChangeKind::Erasure => "erasure",
            ChangeKind::Experiment => "experiment",
            ChangeKind::Model => "model",
            ChangeKind::Curation => "curation",
            ChangeKind::Revocation => "revocation",
        }
    }

    /// The kind of a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One order's distinct products entering (`added`) or leaving the
/// co-purchase counts (a cancellation, an erasure, a changed order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasketChange {
    /// Whether the products are counted in (true) or taken out.
    pub added: bool,
    /// When the order was placed (ms): recent orders weigh more in "popular
    /// now".
    pub placed_at: i64,
    /// Distinct products, in line order.
    pub products: Vec<String>,
}

/// One change, as appended by a writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// What changed.
    pub kind: ChangeKind,
    /// The customer it concerns, when one.
    pub customer_id: Option<String>,
    /// The product it concerns, when one.
    pub product_id: Option<String>,
    /// For [`ChangeKind::Basket`]: the products.
    pub basket: Option<BasketChange>,
}

impl Change {
    /// A change about a customer.
    pub fn customer(kind: ChangeKind, customer_id: &str) -> Self {
        Self {
            kind,
            customer_id: Some(customer_id.to_owned()),
            product_id: None,
            basket: None,
        }
    }

    /// A catalog product changed.
    pub fn product(product_id: &str) -> Self {
        Self {
            kind: ChangeKind::Product,
            customer_id: None,
            product_id: Some(product_id.to_owned()),
            basket: None,
        }
    }

    /// A change that names neither a customer nor a product.
    pub fn of(kind: ChangeKind) -> Self {
        Self {
            kind,
            customer_id: None,
            product_id: None,
            basket: None,
        }
    }

    /// Someone was erased: replicas forget whatever they hold per
    /// customer (the entry cannot say whom without keeping their id).
    pub fn erasure() -> Self {
        Self {
            kind: ChangeKind::Erasure,
            customer_id: None,
            product_id: None,
            basket: None,
        }
    }

    /// An order's products counted in or out. Carries no customer: the
    /// counts are anonymous, and the entry outlives an erasure.
    pub fn basket(added: bool, placed_at: i64, products: Vec<String>) -> Self {
        Self {
            kind: ChangeKind::Basket,
            customer_id: None,
            product_id: None,
            basket: Some(BasketChange {
                added,
                placed_at,
                products,
            }),
        }
    }
}

/// One entry read back from the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEntry {
    /// Position in the feed (gap-free, increasing).
    pub seq: i64,
    /// The change.
    pub change: Change,
}
