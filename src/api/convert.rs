//! Conversions between protobuf messages and domain types. Requests are
//! destructured field by field, so a new proto field does not compile until
//! it is handled here.

use crate::{
    context::{
        self, BrowsedProduct, ContextQuery, CustomerContext, OrderView, ReturnView, Sections,
    },
    domain::{self as d, CategoryPath, Violations},
    proto as pb,
    reads::ProductView,
    store::{AffinityRow, ProfileRow, TicketRow},
};

// ---------- small parsers that record violations ----------

/// A required field: its parsed value, or `None` with a violation.
pub(crate) fn required<T>(
    v: &mut Violations,
    field: &str,
    raw: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Option<T> {
    if raw.trim().is_empty() {
        v.add(field, "is required");
        return None;
    }
    v.check(field, parse(raw))
}

/// An optional field: `None` when empty; a violation when malformed.
pub(crate) fn optional<T>(
    v: &mut Violations,
    field: &str,
    raw: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Option<T> {
    if raw.trim().is_empty() {
        return None;
    }
    v.check(field, parse(raw))
}

/// Free text within a length bound.
pub(crate) fn text(
    v: &mut Violations,
    field: &str,
    raw: &str,
    max: usize,
    is_required: bool,
) -> String {
    v.check(field, d::bounded_text(raw, max, is_required))
        .unwrap_or_default()
}

pub(crate) fn timestamp(
    v: &mut Violations,
    field: &str,
    t: Option<prost_types::Timestamp>,
    is_required: bool,
) -> Option<d::Timestamp> {
    match t {
        Some(prost_types::Timestamp { seconds, nanos }) => {
            v.check(field, d::Timestamp::from_parts(seconds, nanos))
        }
        None => {
            if is_required {
                v.add(field, "is required");
            }
            None
        }
    }
}

/// A time claimed by the sender: within the years the service accepts and
/// at most [`d::MAX_CLAIMED_SKEW_MS`] ahead of `now`.
fn claimed_time(
    v: &mut Violations,
    field: &str,
    t: Option<prost_types::Timestamp>,
    is_required: bool,
    now: d::Timestamp,
) -> Option<d::Timestamp> {
    let t = timestamp(v, field, t, is_required)?;
    v.check(field, t.claimed(now))
}

pub(crate) fn money(
    v: &mut Violations,
    field: &str,
    m: Option<pb::Money>,
    is_required: bool,
) -> Option<d::Money> {
    let Some(pb::Money {
        currency_code,
        amount_minor,
    }) = m
    else {
        if is_required {
            v.add(field, "is required");
        }
        return None;
    };
    let currency = v.check(
        format!("{field}.currency_code"),
        d::Currency::parse(&currency_code),
    )?;
    v.check(
        format!("{field}.amount_minor"),
        d::Money::non_negative(currency, amount_minor),
    )
}

fn category(v: &mut Violations, field: &str, levels: &[String], is_required: bool) -> CategoryPath {
    v.check(field, CategoryPath::parse(levels, is_required))
        .unwrap_or_default()
}

fn quantity(v: &mut Violations, field: &str, q: i64) -> i64 {
    if !(1..=d::MAX_LINE_QUANTITY).contains(&q) {
        v.add(
            field,
            format!("must be between 1 and {}", d::MAX_LINE_QUANTITY),
        );
    }
    q
}

fn enum_value<T: TryFrom<i32>>(v: &mut Violations, field: &str, raw: i32) -> Option<T> {
    match T::try_from(raw) {
        Ok(value) => Some(value),
        Err(_) => {
            v.add(field, format!("{raw} is not a known value"));
            None
        }
    }
}

fn line_count(v: &mut Violations, field: &str, n: usize) {
    if n == 0 {
        v.add(field, "needs at least one line");
    } else if n > d::MAX_LINES {
        v.add(
            field,
            format!("has {n} lines; at most {} are allowed", d::MAX_LINES),
        );
    }
}

// ---------- requests ----------

/// A customer reference with the field path it came from.
pub fn customer_key(field: &str, r: Option<pb::CustomerRef>) -> Result<d::CustomerKey, Violations> {
    use pb::customer_ref::Identity as I;
    let mut v = Violations::new();
    let key = match r.and_then(|r| r.identity) {
        None => {
            v.add(
                field,
                "is required: set one of customer_id, email, phone, loyalty_id, anonymous_id",
            );
            None
        }
        Some(I::CustomerId(s)) => required(
            &mut v,
            &format!("{field}.customer_id"),
            &s,
            d::CustomerId::parse,
        )
        .map(d::CustomerKey::Id),
        Some(I::Email(s)) => identity(
            &mut v,
            &format!("{field}.email"),
            d::IdentityKind::Email,
            &s,
        ),
        Some(I::Phone(s)) => identity(
            &mut v,
            &format!("{field}.phone"),
            d::IdentityKind::Phone,
            &s,
        ),
        Some(I::LoyaltyId(s)) => identity(
            &mut v,
            &format!("{field}.loyalty_id"),
            d::IdentityKind::LoyaltyId,
            &s,
        ),
        Some(I::AnonymousId(s)) => identity(
            &mut v,
            &format!("{field}.anonymous_id"),
            d::IdentityKind::AnonymousId,
            &s,
        ),
    };
    v.build(|| key)
}

fn identity(
    v: &mut Violations,
    field: &str,
    kind: d::IdentityKind,
    raw: &str,
) -> Option<d::CustomerKey> {
    required(v, field, raw, |s| d::Identity::parse(kind, s)).map(d::CustomerKey::Identity)
}

/// A product from the catalog feed.
pub fn product(p: pb::Product) -> Result<d::Product, Violations> {
    let pb::Product {
        product_id,
        name,
        brand,
        category_path,
        price,
        stock,
        group_id,
        active,
        url,
        image_url,
        replenish_after_days,
        merchandise,
        size,
        size_system,
    } = p;
    let mut v = Violations::new();
    let size = product_size(&mut v, &size, size_system);
    if replenish_after_days > d::MAX_REPLENISH_DAYS {
        v.add(
            "replenish_after_days",
            format!(
                "is {replenish_after_days}; at most {} days",
                d::MAX_REPLENISH_DAYS
            ),
        );
    }
    let product_id = required(&mut v, "product_id", &product_id, d::ProductId::parse);
    let name = text(&mut v, "name", &name, d::MAX_NAME_LEN, true);
    let brand = text(&mut v, "brand", &brand, d::MAX_NAME_LEN, false);
    let category = category(&mut v, "category_path", &category_path, true);
    let price = money(&mut v, "price", price, true);
    let stock = match stock {
        Some(pb::product::Stock::StockQuantity(q)) => {
            if q.abs() > d::MAX_STOCK_QUANTITY {
                v.add(
                    "stock_quantity",
                    format!("must be between -{0} and {0}", d::MAX_STOCK_QUANTITY),
                );
            }
            d::Stock::Quantity(q)
        }
        Some(pb::product::Stock::InStock(f)) => d::Stock::Flag(f),
        None => {
            v.add("stock", "is required: set stock_quantity or in_stock");
            d::Stock::Flag(false)
        }
    };
    let group_id = optional(&mut v, "group_id", &group_id, d::GroupId::parse);
    let url = text(&mut v, "url", &url, d::MAX_URL_LEN, false);
    let image_url = text(&mut v, "image_url", &image_url, d::MAX_URL_LEN, false);
    v.build(|| {
        let product_id = product_id?;
        Some(d::Product {
            group_id: match group_id {
                Some(g) => g,
                None => d::GroupId::parse(product_id.as_str()).ok()?,
            },
            product_id,
            name,
            brand,
            category,
            price: price?,
            stock,
            active: active.unwrap_or(true),
            url,
            image_url,
            replenish_after_days: (replenish_after_days > 0).then_some(replenish_after_days),
            merchandise: d::MerchandiseFlag(merchandise),
            size,
        })
    })
}

/// A product's size from its label and system (violations name `size` or
/// `size_system`).
fn product_size(v: &mut Violations, label: &str, system: i32) -> d::ProductSize {
    let system = match pb::SizeSystem::try_from(system) {
        Ok(pb::SizeSystem::Unspecified) => None,
        Ok(pb::SizeSystem::Alpha) => Some(d::SizeSystem::Alpha),
        Ok(pb::SizeSystem::Numeric) => Some(d::SizeSystem::Numeric),
        Ok(pb::SizeSystem::WaistLength) => Some(d::SizeSystem::WaistLength),
        Ok(pb::SizeSystem::Other) => Some(d::SizeSystem::Other),
        Err(_) => {
            v.add(
                "size_system",
                format!("{system} is not a known size system"),
            );
            return d::ProductSize(None);
        }
    };
    match d::Size::parse_optional(label, system) {
        Ok(size) => d::ProductSize(size),
        Err(e) => {
            v.add("size", e);
            d::ProductSize(None)
        }
    }
}

/// The proto form of a size system.
pub fn size_system_to_proto(system: d::SizeSystem) -> pb::SizeSystem {
    match system {
        d::SizeSystem::Alpha => pb::SizeSystem::Alpha,
        d::SizeSystem::Numeric => pb::SizeSystem::Numeric,
        d::SizeSystem::WaistLength => pb::SizeSystem::WaistLength,
        d::SizeSystem::Other => pb::SizeSystem::Other,
    }
}

/// A customer profile.
pub fn customer(c: pb::Customer, now: d::Timestamp) -> Result<d::Customer, Violations> {
    let pb::Customer {
        customer_id,
        display_name,
        email,
        phone,
        loyalty_id,
        customer_since,
        anonymous_ids,
        consents,
    } = c;
    let mut v = Violations::new();
    let customer_id = required(&mut v, "customer_id", &customer_id, d::CustomerId::parse);
    let display_name = text(
        &mut v,
        "display_name",
        &display_name,
        d::MAX_NAME_LEN,
        false,
    );
    let email = optional(&mut v, "email", &email, d::Email::parse);
    let phone = optional(&mut v, "phone", &phone, d::Phone::parse);
    let loyalty_id = optional(&mut v, "loyalty_id", &loyalty_id, d::LoyaltyId::parse);
    let customer_since = claimed_time(&mut v, "customer_since", customer_since, false, now);
    if anonymous_ids.len() > 100 {
        v.add("anonymous_ids", "at most 100 are allowed per request");
    }
    let anonymous_ids: Vec<d::AnonymousId> = anonymous_ids
        .iter()
        .enumerate()
        .filter_map(|(i, a)| {
            required(
                &mut v,
                &format!("anonymous_ids[{i}]"),
                a,
                d::AnonymousId::parse,
            )
        })
        .collect();
    let consents = consent_list(&mut v, "consents", consents, "ingest", now);
    v.build(|| {
        Some(d::Customer {
            customer_id: customer_id?,
            display_name,
            email,
            phone,
            loyalty_id,
            customer_since,
            anonymous_ids,
            consents,
        })
    })
}

/// Consents sent by a caller (purpose and time required). A consent dated
/// ahead of `now` (within the allowed skew) counts as recorded `now`: a
/// later-dated record wins, so a clock running ahead must not let a grant
/// outrank a withdrawal sent after it.
pub fn consent_list(
    v: &mut Violations,
    field: &str,
    consents: Vec<pb::Consent>,
    source: &str,
    now: d::Timestamp,
) -> Vec<d::ConsentRecord> {
    if consents.len() > 10 {
        v.add(field, "at most 10 are allowed");
    }
    let mut out = Vec::new();
    for (
        i,
        pb::Consent {
            purpose,
            granted,
            updated_at,
            source: _,
        },
    ) in consents.into_iter().enumerate()
    {
        let purpose =
            match enum_value::<pb::ConsentPurpose>(v, &format!("{field}[{i}].purpose"), purpose) {
                Some(pb::ConsentPurpose::SupportContext) => Some(d::Purpose::SupportContext),
                Some(pb::ConsentPurpose::PersonalisedSuggestions) => {
                    Some(d::Purpose::PersonalisedSuggestions)
                }
                Some(pb::ConsentPurpose::Unspecified) => {
                    v.add(format!("{field}[{i}].purpose"), "is required");
                    None
                }
                None => None,
            };
        let at = claimed_time(
            v,
            &format!("{field}[{i}].updated_at"),
            updated_at,
            true,
            now,
        );
        if let (Some(purpose), Some(updated_at)) = (purpose, at) {
            out.push(d::ConsentRecord {
                purpose,
                granted,
                source: source.to_owned(),
                updated_at: updated_at.min(now),
            });
        }
    }
    out
}

/// The proto form of a consent.
pub fn consent(c: d::ConsentRecord) -> pb::Consent {
    let purpose = match c.purpose {
        d::Purpose::SupportContext => pb::ConsentPurpose::SupportContext,
        d::Purpose::PersonalisedSuggestions => pb::ConsentPurpose::PersonalisedSuggestions,
    };
    pb::Consent {
        purpose: purpose.into(),
        granted: c.granted,
        updated_at: Some(ts(c.updated_at)),
        source: c.source,
    }
}

/// A link request.
pub fn link(r: pb::LinkIdentityRequest) -> Result<(d::CustomerId, d::Identity), Violations> {
    let pb::LinkIdentityRequest {
        customer_id,
        kind,
        value,
    } = r;
    let mut v = Violations::new();
    let customer_id = required(&mut v, "customer_id", &customer_id, d::CustomerId::parse);
    let kind = match enum_value::<pb::IdentityKind>(&mut v, "kind", kind) {
        Some(pb::IdentityKind::Email) => Some(d::IdentityKind::Email),
        Some(pb::IdentityKind::Phone) => Some(d::IdentityKind::Phone),
        Some(pb::IdentityKind::LoyaltyId) => Some(d::IdentityKind::LoyaltyId),
        Some(pb::IdentityKind::AnonymousId) => Some(d::IdentityKind::AnonymousId),
        Some(pb::IdentityKind::Unspecified) => {
            v.add("kind", "is required");
            None
        }
        None => None,
    };
    let identity =
        kind.and_then(|k| required(&mut v, "value", &value, |s| d::Identity::parse(k, s)));
    v.build(|| Some((customer_id?, identity?)))
}

/// Who did it: a customer id and/or an anonymous id, at least one.
fn actor(v: &mut Violations, customer_id: &str, anonymous_id: &str) -> Option<d::Actor> {
    let mut local = Violations::new();
    let customer_id = optional(&mut local, "customer_id", customer_id, d::CustomerId::parse);
    let anonymous_id = optional(
        &mut local,
        "anonymous_id",
        anonymous_id,
        d::AnonymousId::parse,
    );
    let actor = if local.is_empty() {
        local.check("customer_id", d::Actor::new(customer_id, anonymous_id))
    } else {
        None
    };
    for fv in local.into_vec() {
        v.add(fv.field, fv.description);
    }
    actor
}

/// A browsing event.
pub fn event(e: pb::BrowsingEvent, now: d::Timestamp) -> Result<d::BrowsingEvent, Violations> {
    let pb::BrowsingEvent {
        message_id,
        customer_id,
        anonymous_id,
        r#type,
        product_id,
        search_query,
        channel,
        occurred_at,
    } = e;
    let mut v = Violations::new();
    let message_id = required(&mut v, "message_id", &message_id, d::MessageId::parse);
    let actor = actor(&mut v, &customer_id, &anonymous_id);
    let kind = match enum_value::<pb::BrowsingEventType>(&mut v, "type", r#type) {
        Some(pb::BrowsingEventType::Unspecified) => {
            v.add("type", "is required");
            None
        }
        Some(pb::BrowsingEventType::ProductViewed) => Some(d::EventKind::ProductViewed),
        Some(pb::BrowsingEventType::ProductAddedToCart) => Some(d::EventKind::AddedToCart),
        Some(pb::BrowsingEventType::ProductRemovedFromCart) => Some(d::EventKind::RemovedFromCart),
        Some(pb::BrowsingEventType::ProductsSearched) => Some(d::EventKind::Searched),
        Some(pb::BrowsingEventType::ProductAddedToWishlist) => Some(d::EventKind::AddedToWishlist),
        None => None,
    };
    let target = match kind {
        Some(d::EventKind::Searched) => Some(d::EventTarget::Search(text(
            &mut v,
            "search_query",
            &search_query,
            d::MAX_NAME_LEN,
            true,
        ))),
        Some(_) => required(&mut v, "product_id", &product_id, d::ProductId::parse)
            .map(d::EventTarget::Product),
        None => None,
    };
    let channel = text(&mut v, "channel", &channel, d::MAX_ID_LEN, false);
    let occurred_at = timestamp(&mut v, "occurred_at", occurred_at, true);
    if !v.is_empty() {
        return Err(v);
    }
    let (Some(message_id), Some(actor), Some(kind), Some(target), Some(occurred_at)) =
        (message_id, actor, kind, target, occurred_at)
    else {
        return Err(Violations::single("event", "is incomplete"));
    };
    d::BrowsingEvent::new(message_id, actor, kind, target, channel, occurred_at, now)
        .map_err(|(field, reason)| Violations::single(field, reason))
}

/// An order.
pub fn order(o: pb::Order, now: d::Timestamp) -> Result<d::Order, Violations> {
    let pb::Order {
        order_id,
        customer_id,
        anonymous_id,
        status,
        placed_at,
        lines,
        total,
        channel,
    } = o;
    let mut v = Violations::new();
    let order_id = required(&mut v, "order_id", &order_id, d::OrderId::parse);
    let actor = actor(&mut v, &customer_id, &anonymous_id);
    let status = match enum_value::<pb::OrderStatus>(&mut v, "status", status) {
        Some(pb::OrderStatus::Unspecified | pb::OrderStatus::Placed) => {
            Some(d::OrderStatus::Placed)
        }
        Some(pb::OrderStatus::Shipped) => Some(d::OrderStatus::Shipped),
        Some(pb::OrderStatus::Delivered) => Some(d::OrderStatus::Delivered),
        Some(pb::OrderStatus::Cancelled) => Some(d::OrderStatus::Cancelled),
        Some(pb::OrderStatus::Refunded) => Some(d::OrderStatus::Refunded),
        None => None,
    };
    let placed_at = claimed_time(&mut v, "placed_at", placed_at, true, now);
    line_count(&mut v, "lines", lines.len());
    let mut currency: Option<d::Currency> = None;
    let mut parsed_lines = Vec::with_capacity(lines.len());
    for (i, line) in lines.into_iter().take(d::MAX_LINES).enumerate() {
        let pb::OrderLine {
            product_id,
            quantity: q,
            unit_price,
            name,
            brand,
            category_path,
        } = line;
        let f = |name: &str| format!("lines[{i}].{name}");
        let product_id = required(&mut v, &f("product_id"), &product_id, d::ProductId::parse);
        let q = quantity(&mut v, &f("quantity"), q);
        let price = money(&mut v, &f("unit_price"), unit_price, true);
        if let Some(p) = price {
            match currency {
                None => currency = Some(p.currency),
                Some(c) if c != p.currency => v.add(
                    f("unit_price.currency_code"),
                    "differs from the order's currency",
                ),
                Some(_) => {}
            }
        }
        let name = text(&mut v, &f("name"), &name, d::MAX_NAME_LEN, false);
        let brand = text(&mut v, &f("brand"), &brand, d::MAX_NAME_LEN, false);
        let category = category(&mut v, &f("category_path"), &category_path, false);
        if let Some(p) = price {
            v.check(f("unit_price.amount_minor"), d::line_amount(q, p.minor));
        }
        if let (Some(product_id), Some(price)) = (product_id, price) {
            parsed_lines.push(d::OrderLine {
                product_id,
                quantity: q,
                unit_price_minor: price.minor,
                name,
                brand,
                category,
            });
        }
    }
    let total = money(&mut v, "total", total, false);
    if let (Some(t), Some(c)) = (total, currency)
        && t.currency != c
    {
        v.add("total.currency_code", "differs from the lines' currency");
    }
    let total_minor = match total {
        Some(t) => t.minor,
        // Each line was refused on its own already.
        None if !v.is_empty() => 0,
        None => {
            let sum = parsed_lines.iter().try_fold(0i64, |sum, l| {
                sum.checked_add(l.quantity.checked_mul(l.unit_price_minor)?)
            });
            let checked = sum
                .ok_or_else(|| "is too large".to_string())
                .and_then(d::bounded_amount)
                .map_err(|_| {
                    format!(
                        "the lines add up to more than the {} minor units an order may total",
                        d::MAX_AMOUNT_MINOR
                    )
                });
            v.check("lines", checked).unwrap_or_default()
        }
    };
    let channel = text(&mut v, "channel", &channel, d::MAX_ID_LEN, false);
    v.build(|| {
        Some(d::Order {
            order_id: order_id?,
            actor: actor?,
            status: status?,
            placed_at: placed_at?,
            currency: currency?,
            total_minor,
            channel,
            lines: parsed_lines,
        })
    })
}

/// A return.
pub fn return_(r: pb::Return, now: d::Timestamp) -> Result<d::Return, Violations> {
    let pb::Return {
        return_id,
        order_id,
        customer_id,
        status,
        reason_code,
        reason_text,
        requested_at,
        lines,
        refund_amount,
    } = r;
    let mut v = Violations::new();
    let return_id = required(&mut v, "return_id", &return_id, d::ReturnId::parse);
    let order_id = required(&mut v, "order_id", &order_id, d::OrderId::parse);
    let customer_id = optional(&mut v, "customer_id", &customer_id, d::CustomerId::parse);
    let status = match enum_value::<pb::ReturnStatus>(&mut v, "status", status) {
        Some(pb::ReturnStatus::Unspecified | pb::ReturnStatus::Requested) => {
            Some(d::ReturnStatus::Requested)
        }
        Some(pb::ReturnStatus::Approved) => Some(d::ReturnStatus::Approved),
        Some(pb::ReturnStatus::Received) => Some(d::ReturnStatus::Received),
        Some(pb::ReturnStatus::Refunded) => Some(d::ReturnStatus::Refunded),
        Some(pb::ReturnStatus::Rejected) => Some(d::ReturnStatus::Rejected),
        None => None,
    };
    let reason_code = text(&mut v, "reason_code", &reason_code, 64, true);
    let reason_text = text(&mut v, "reason_text", &reason_text, d::MAX_TEXT_LEN, false);
    let requested_at = claimed_time(&mut v, "requested_at", requested_at, true, now);
    line_count(&mut v, "lines", lines.len());
    let mut parsed = Vec::with_capacity(lines.len());
    for (
        i,
        pb::ReturnLine {
            product_id,
            quantity: q,
        },
    ) in lines.into_iter().take(d::MAX_LINES).enumerate()
    {
        let product_id = required(
            &mut v,
            &format!("lines[{i}].product_id"),
            &product_id,
            d::ProductId::parse,
        );
        let q = quantity(&mut v, &format!("lines[{i}].quantity"), q);
        if let Some(product_id) = product_id {
            parsed.push(d::ReturnLine {
                product_id,
                quantity: q,
            });
        }
    }
    let refund = money(&mut v, "refund_amount", refund_amount, false);
    v.build(|| {
        Some(d::Return {
            return_id: return_id?,
            order_id: order_id?,
            customer_id,
            status: status?,
            reason_code,
            reason_text,
            requested_at: requested_at?,
            lines: parsed,
            refund,
        })
    })
}

/// A ticket.
pub fn ticket(t: pb::Ticket, now: d::Timestamp) -> Result<d::Ticket, Violations> {
    let pb::Ticket {
        ticket_id,
        customer_id,
        subject,
        status,
        priority,
        channel,
        order_id,
        created_at,
        updated_at,
    } = t;
    let mut v = Violations::new();
    let ticket_id = required(&mut v, "ticket_id", &ticket_id, d::TicketId::parse);
    let customer_id = required(&mut v, "customer_id", &customer_id, d::CustomerId::parse);
    let subject = text(&mut v, "subject", &subject, d::MAX_NAME_LEN, true);
    let status = match enum_value::<pb::TicketStatus>(&mut v, "status", status) {
        Some(pb::TicketStatus::Unspecified | pb::TicketStatus::Open) => Some(d::TicketStatus::Open),
        Some(pb::TicketStatus::Pending) => Some(d::TicketStatus::Pending),
        Some(pb::TicketStatus::Solved) => Some(d::TicketStatus::Solved),
        Some(pb::TicketStatus::Closed) => Some(d::TicketStatus::Closed),
        None => None,
    };
    let priority = match enum_value::<pb::TicketPriority>(&mut v, "priority", priority) {
        Some(pb::TicketPriority::Unspecified | pb::TicketPriority::Normal) => {
            Some(d::TicketPriority::Normal)
        }
        Some(pb::TicketPriority::Low) => Some(d::TicketPriority::Low),
        Some(pb::TicketPriority::High) => Some(d::TicketPriority::High),
        Some(pb::TicketPriority::Urgent) => Some(d::TicketPriority::Urgent),
        None => None,
    };
    let channel = text(&mut v, "channel", &channel, d::MAX_ID_LEN, false);
    let order_id = optional(&mut v, "order_id", &order_id, d::OrderId::parse);
    let created_at = claimed_time(&mut v, "created_at", created_at, true, now);
    let updated_at = claimed_time(&mut v, "updated_at", updated_at, false, now);
    if let (Some(c), Some(u)) = (created_at, updated_at)
        && u < c
    {
        v.add("updated_at", "is before created_at");
    }
    v.build(|| {
        let created_at = created_at?;
        Some(d::Ticket {
            ticket_id: ticket_id?,
            customer_id: customer_id?,
            subject,
            status: status?,
            priority: priority?,
            channel,
            order_id,
            created_at,
            updated_at: updated_at.unwrap_or(created_at),
        })
    })
}

/// The customer a request names, its violations added to `v`.
pub(crate) fn customer_in(
    v: &mut Violations,
    field: &str,
    r: Option<pb::CustomerRef>,
) -> Option<d::CustomerKey> {
    match customer_key(field, r) {
        Ok(k) => Some(k),
        Err(e) => {
            for fv in e.into_vec() {
                v.add(fv.field, fv.description);
            }
            None
        }
    }
}

/// A count knob: 0 means `default`; above `max` is a violation.
pub(crate) fn bounded(
    v: &mut Violations,
    field: &str,
    value: u32,
    (default, max): (u32, u32),
) -> u32 {
    if value > max {
        v.add(field, format!("is {value}; at most {max} is allowed"));
    }
    if value == 0 { default } else { value.min(max) }
}

/// A context request, with defaults applied and limits checked.
pub fn context_query(r: pb::GetCustomerContextRequest) -> Result<ContextQuery, Violations> {
    let pb::GetCustomerContextRequest {
        customer,
        read_mask,
        lookback_days,
        browsing_limit,
        orders_limit,
        returns_limit,
        tickets_limit,
        suggestions_limit,
    } = r;
    let mut v = Violations::new();
    let key = customer_in(&mut v, "customer", customer);
    let sections = match read_mask {
        Some(mask) if !mask.paths.is_empty() => {
            let mut s = Sections::NONE;
            for (i, path) in mask.paths.iter().enumerate() {
                if !s.select(path.trim()) {
                    v.add(
                        format!("read_mask.paths[{i}]"),
                        format!(
                            "{path:?} is not a section; use one of {}",
                            Sections::NAMES.join(", ")
                        ),
                    );
                }
            }
            s
        }
        _ => Sections::ALL,
    };
    let mut bounded =
        |field: &str, value: u32, limits: (u32, u32)| bounded(&mut v, field, value, limits);
    let lookback_days = bounded(
        "lookback_days",
        lookback_days,
        context::limits::LOOKBACK_DAYS,
    );
    let browsing_limit = bounded("browsing_limit", browsing_limit, context::limits::BROWSING);
    let orders_limit = bounded("orders_limit", orders_limit, context::limits::ORDERS);
    let returns_limit = bounded("returns_limit", returns_limit, context::limits::RETURNS);
    let tickets_limit = bounded("tickets_limit", tickets_limit, context::limits::TICKETS);
    let suggestions_limit = bounded(
        "suggestions_limit",
        suggestions_limit,
        crate::suggest::limits::CONTEXT_ITEMS,
    );
    v.build(|| {
        Some(ContextQuery {
            key: key?,
            sections,
            lookback_days,
            browsing_limit,
            orders_limit,
            returns_limit,
            tickets_limit,
            suggestions_limit,
        })
    })
}

// ---------- responses ----------

pub(crate) fn ts(t: d::Timestamp) -> prost_types::Timestamp {
    let (seconds, nanos) = t.to_parts();
    prost_types::Timestamp { seconds, nanos }
}

fn pb_money(currency: &str, minor: i64) -> pb::Money {
    pb::Money {
        currency_code: currency.to_owned(),
        amount_minor: minor,
    }
}

/// The proto form of a domain outcome.
pub fn outcome(o: d::WriteOutcome) -> pb::ItemOutcome {
    match o {
        d::WriteOutcome::Created => pb::ItemOutcome::Created,
        d::WriteOutcome::Updated => pb::ItemOutcome::Updated,
        d::WriteOutcome::Duplicate => pb::ItemOutcome::Duplicate,
        d::WriteOutcome::Suppressed => pb::ItemOutcome::Suppressed,
    }
}

/// The proto form of field violations.
pub fn violations(v: Violations) -> Vec<pb::FieldViolation> {
    v.into_vec()
        .into_iter()
        .map(|f| pb::FieldViolation {
            field: f.field,
            description: f.description,
        })
        .collect()
}

fn event_type(k: d::EventKind) -> pb::BrowsingEventType {
    match k {
        d::EventKind::ProductViewed => pb::BrowsingEventType::ProductViewed,
        d::EventKind::AddedToCart => pb::BrowsingEventType::ProductAddedToCart,
        d::EventKind::RemovedFromCart => pb::BrowsingEventType::ProductRemovedFromCart,
        d::EventKind::Searched => pb::BrowsingEventType::ProductsSearched,
        d::EventKind::AddedToWishlist => pb::BrowsingEventType::ProductAddedToWishlist,
    }
}

fn order_status(s: d::OrderStatus) -> pb::OrderStatus {
    match s {
        d::OrderStatus::Placed => pb::OrderStatus::Placed,
        d::OrderStatus::Shipped => pb::OrderStatus::Shipped,
        d::OrderStatus::Delivered => pb::OrderStatus::Delivered,
        d::OrderStatus::Cancelled => pb::OrderStatus::Cancelled,
        d::OrderStatus::Refunded => pb::OrderStatus::Refunded,
    }
}

fn return_status(s: d::ReturnStatus) -> pb::ReturnStatus {
    match s {
        d::ReturnStatus::Requested => pb::ReturnStatus::Requested,
        d::ReturnStatus::Approved => pb::ReturnStatus::Approved,
        d::ReturnStatus::Received => pb::ReturnStatus::Received,
        d::ReturnStatus::Refunded => pb::ReturnStatus::Refunded,
        d::ReturnStatus::Rejected => pb::ReturnStatus::Rejected,
    }
}

fn ticket_status(s: d::TicketStatus) -> pb::TicketStatus {
    match s {
        d::TicketStatus::Open => pb::TicketStatus::Open,
        d::TicketStatus::Pending => pb::TicketStatus::Pending,
        d::TicketStatus::Solved => pb::TicketStatus::Solved,
        d::TicketStatus::Closed => pb::TicketStatus::Closed,
    }
}

fn ticket_priority(p: d::TicketPriority) -> pb::TicketPriority {
    match p {
        d::TicketPriority::Low => pb::TicketPriority::Low,
        d::TicketPriority::Normal => pb::TicketPriority::Normal,
        d::TicketPriority::High => pb::TicketPriority::High,
        d::TicketPriority::Urgent => pb::TicketPriority::Urgent,
    }
}

pub(crate) fn product_snapshot(p: ProductView) -> pb::ProductSnapshot {
    let ProductView {
        product_id,
        in_catalog,
        name,
        brand,
        category,
        price,
        available,
        stock_quantity,
        group_id,
        url,
        image_url,
        size,
    } = p;
    pb::ProductSnapshot {
        product_id,
        in_catalog,
        name,
        brand,
        category_path: category.levels().to_vec(),
        price: price.map(|(c, m)| pb_money(&c, m)),
        available,
        stock_quantity,
        group_id,
        url,
        image_url,
        size: size
            .as_ref()
            .map_or_else(String::new, |s| s.label().to_owned()),
        size_system: size.map_or(pb::SizeSystem::Unspecified, |s| {
            size_system_to_proto(s.system())
        }) as i32,
    }
}

fn affinity(a: AffinityRow) -> pb::Affinity {
    pb::Affinity {
        name: a.name,
        units: a.units.max(0) as u64,
        orders: a.orders.max(0) as u64,
    }
}

/// The profile without its sizes (see [`context_response`]).
fn profile(p: ProfileRow) -> pb::Profile {
    let ProfileRow {
        display_name,
        email,
        phone,
        loyalty_id,
        customer_since,
        last_activity_at,
        order_count,
        units_purchased,
        units_returned,
        last_order_at,
        spend,
        top_categories,
        top_brands,
    } = p;
    let return_rate = if units_purchased > 0 {
        units_returned as f64 / units_purchased as f64
    } else {
        0.0
    };
    pb::Profile {
        display_name,
        email,
        phone,
        loyalty_id,
        customer_since: Some(ts(customer_since)),
        order_count: order_count.max(0) as u64,
        lifetime_spend: spend.into_iter().map(|(c, m)| pb_money(&c, m)).collect(),
        units_purchased: units_purchased.max(0) as u64,
        units_returned: units_returned.max(0) as u64,
        return_rate,
        top_categories: top_categories.into_iter().map(affinity).collect(),
        top_brands: top_brands.into_iter().map(affinity).collect(),
        last_activity_at: last_activity_at.map(ts),
        last_order_at: last_order_at.map(ts),
        sizes: Vec::new(),
    }
}

fn size_estimate(e: crate::fit::Estimate) -> pb::SizeEstimate {
    let summary = e.summary();
    let crate::fit::Estimate {
        domain,
        size,
        confidence,
        kept,
        kept_in_size,
        too_small,
        too_large,
        last_at,
    } = e;
    let labels = |v: Vec<d::Size>| v.iter().map(|s| s.label().to_owned()).collect();
    pb::SizeEstimate {
        category: domain.category,
        size_system: size_system_to_proto(domain.system).into(),
        size: size.map(|s| s.label().to_owned()).unwrap_or_default(),
        confidence: super::suggestions::size_confidence(confidence).into(),
        kept_items: kept,
        kept_in_size,
        returned_too_small: labels(too_small),
        returned_too_large: labels(too_large),
        summary,
        last_evidence_at: Some(ts(last_at)),
    }
}

fn browsed(b: BrowsedProduct) -> pb::BrowsedProduct {
    let BrowsedProduct {
        product,
        view_count,
        last_seen_at,
        last_event,
        last_channel,
        in_cart,
        added_to_cart_at,
        wishlisted,
    } = b;
    pb::BrowsedProduct {
        product: Some(product_snapshot(product)),
        view_count,
        last_seen_at: Some(ts(last_seen_at)),
        last_event: event_type(last_event).into(),
        last_channel,
        in_cart,
        abandoned_cart: in_cart,
        added_to_cart_at: added_to_cart_at.map(ts),
        wishlisted,
    }
}

fn order_summary(o: OrderView) -> pb::OrderSummary {
    let OrderView { order, lines } = o;
    let currency = order.currency.clone();
    pb::OrderSummary {
        order_id: order.order_id,
        status: order_status(order.status).into(),
        placed_at: Some(ts(order.placed_at)),
        total: Some(pb_money(&currency, order.total_minor)),
        channel: order.channel,
        line_count: order.line_count.max(0) as u32,
        lines: lines
            .into_iter()
            .map(|l| pb::OrderLineSummary {
                product: Some(product_snapshot(l.product)),
                quantity: l.quantity,
                unit_price: Some(pb_money(&currency, l.unit_price_minor)),
                returned_quantity: l.returned_quantity,
            })
            .collect(),
    }
}

fn return_summary(r: ReturnView) -> pb::ReturnSummary {
    let ReturnView { ret, lines } = r;
    pb::ReturnSummary {
        return_id: ret.return_id,
        order_id: ret.order_id,
        status: return_status(ret.status).into(),
        reason_code: ret.reason_code,
        reason_text: ret.reason_text,
        requested_at: Some(ts(ret.requested_at)),
        lines: lines
            .into_iter()
            .map(|(p, q)| pb::ReturnLineSummary {
                product: Some(product_snapshot(p)),
                quantity: q,
            })
            .collect(),
        refund_amount: ret.refund.map(|(c, m)| pb_money(&c, m)),
    }
}

fn ticket_summary(t: TicketRow) -> pb::TicketSummary {
    let TicketRow {
        ticket_id,
        subject,
        status,
        priority,
        channel,
        order_id,
        order,
        created_at,
        updated_at,
    } = t;
    pb::TicketSummary {
        ticket_id,
        subject,
        status: ticket_status(status).into(),
        priority: ticket_priority(priority).into(),
        channel,
        order_id: order_id.unwrap_or_default(),
        order_status: order
            .map_or(pb::OrderStatus::Unspecified, |(s, _)| order_status(s))
            .into(),
        order_placed_at: order.map(|(_, at)| ts(at)),
        created_at: Some(ts(created_at)),
        updated_at: Some(ts(updated_at)),
    }
}

/// The proto form of a context (already shaped for its audience by
/// `context::policy::for_audience`).
pub fn context_response(c: CustomerContext) -> pb::CustomerContext {
    {
        let CustomerContext {
            customer_id,
            anonymous_id,
            as_of,
            profile: p,
            recent_browsing,
            recent_searches,
            recent_orders,
            returns,
            open_tickets,
            agent_brief,
            browsing_events_scanned,
            consents,
            history_withheld,
            contact_details_masked,
            suggestions,
            sizes,
        } = c;
        let profile_pb = p.map(|p| pb::Profile {
            sizes: sizes.into_iter().map(size_estimate).collect(),
            ..profile(p)
        });
        pb::CustomerContext {
            customer_id: customer_id
                .map(|c| c.as_str().to_owned())
                .unwrap_or_default(),
            anonymous_id: anonymous_id
                .map(|a| a.as_str().to_owned())
                .unwrap_or_default(),
            as_of: Some(ts(as_of)),
            profile: profile_pb,
            recent_browsing: recent_browsing.into_iter().map(browsed).collect(),
            recent_searches: recent_searches
                .into_iter()
                .map(|s| pb::RecentSearch {
                    query: s.query,
                    searched_at: Some(ts(s.at)),
                })
                .collect(),
            recent_orders: recent_orders.into_iter().map(order_summary).collect(),
            returns: returns.into_iter().map(return_summary).collect(),
            open_tickets: open_tickets.into_iter().map(ticket_summary).collect(),
            agent_brief: agent_brief.unwrap_or_default(),
            browsing_events_scanned,
            consents: consents.into_iter().map(consent).collect(),
            history_withheld,
            contact_details_masked,
            suggestions: suggestions.map(super::suggestions::suggestions),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Amounts from the ordinary to the hostile.
    fn amount() -> impl Strategy<Value = i64> {
        prop_oneof![
            0i64..100_000,
            Just(d::MAX_AMOUNT_MINOR),
            Just(d::MAX_AMOUNT_MINOR + 1),
            Just(1i64 << 62),
            Just(i64::MAX),
            Just(i64::MIN),
            any::<i64>(),
        ]
    }

    fn quantity() -> impl Strategy<Value = i64> {
        prop_oneof![1i64..10, Just(d::MAX_LINE_QUANTITY), Just(0), any::<i64>()]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

        /// Whatever a sender puts in an order, an accepted one has every
        /// line and its total within the bound, so no number of accepted
        /// orders can overflow a customer's running totals (their ceiling
        /// is 4×10^18; each order adds at most 10^12 and 10^8 units).
        #[test]
        fn an_accepted_order_is_bounded(
            lines in prop::collection::vec((quantity(), amount()), 1..5),
            total in prop::option::of(amount()),
        ) {
            let order = pb::Order {
                order_id: "o1".into(),
                customer_id: "c1".into(),
                anonymous_id: String::new(),
                status: pb::OrderStatus::Placed.into(),
                placed_at: Some(ts(d::Timestamp::now())),
                lines: lines
                    .iter()
                    .map(|(q, p)| pb::OrderLine {
                        product_id: "p1".into(),
                        quantity: *q,
                        unit_price: Some(pb_money("USD", *p)),
                        name: String::new(),
                        brand: String::new(),
                        category_path: vec![],
                    })
                    .collect(),
                total: total.map(|t| pb_money("USD", t)),
                channel: String::new(),
            };
            if let Ok(o) = super::order(order, d::Timestamp::now()) {
                prop_assert!((0..=d::MAX_AMOUNT_MINOR).contains(&o.total_minor));
                for l in &o.lines {
                    prop_assert!((1..=d::MAX_LINE_QUANTITY).contains(&l.quantity));
                    let amount = l.quantity.checked_mul(l.unit_price_minor);
                    prop_assert!(amount.is_some_and(|a| (0..=d::MAX_AMOUNT_MINOR).contains(&a)));
                }
            }
        }
    }
}
