//! Segment / RudderStack e-commerce v2 events (one JSON object per line)
//! mapped onto domain records.
//!
//! Supported: `track` events `Product Viewed`, `Product Added`, `Product
//! Removed`, `Products Searched`, `Product Added to Wishlist`, `Order
//! Completed`, `Order Cancelled`, `Order Refunded`, and two custom events,
//! `Return Requested` and `Ticket Updated` (documented in docs/import.md);
//! and `identify` calls (customer profiles). Anything else is rejected with
//! a reason, never skipped silently.

use serde_json::{Map, Value};

use crate::domain::*;

/// What one line became.
#[derive(Debug, Clone)]
pub enum Record {
    /// A customer profile (`identify`).
    Customer(Customer),
    /// A browsing event.
    Event(BrowsingEvent),
    /// An order.
    Order(Order),
    /// A return (`Order Refunded`, `Return Requested`).
    Return(Return),
    /// A ticket (`Ticket Updated`).
    Ticket(Ticket),
}

type Obj = Map<String, Value>;

fn s<'a>(o: &'a Obj, key: &str) -> Option<&'a str> {
    match o.get(key) {
        Some(Value::String(v)) if !v.trim().is_empty() => Some(v.as_str()),
        _ => None,
    }
}

/// A string or number field as text (ids are often numbers in exports).
fn id_text(o: &Obj, key: &str) -> Option<String> {
    match o.get(key) {
        Some(Value::String(v)) if !v.trim().is_empty() => Some(v.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

fn req<T>(
    o: &Obj,
    key: &str,
    path: &str,
    parse: fn(&str) -> Result<T, String>,
) -> Result<T, String> {
    let raw = id_text(o, key).ok_or_else(|| format!("{path}{key}: is required"))?;
    parse(&raw).map_err(|e| format!("{path}{key}: {e}"))
}

fn opt<T>(
    o: &Obj,
    key: &str,
    path: &str,
    parse: fn(&str) -> Result<T, String>,
) -> Result<Option<T>, String> {
    match id_text(o, key) {
        Some(raw) => parse(&raw)
            .map(Some)
            .map_err(|e| format!("{path}{key}: {e}")),
        None => Ok(None),
    }
}

fn bounded(o: &Obj, key: &str, path: &str, max: usize, required: bool) -> Result<String, String> {
    bounded_text(s(o, key).unwrap_or(""), max, required).map_err(|e| format!("{path}{key}: {e}"))
}

fn number(o: &Obj, key: &str) -> Option<f64> {
    match o.get(key) {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(t)) => t.trim().parse().ok(),
        _ => None,
    }
}

/// A category written as "A > B", "A/B" is not split (slashes occur inside
/// names), or as an array of levels.
pub fn category_of(v: Option<&Value>, path: &str) -> Result<CategoryPath, String> {
    let levels: Vec<String> = match v {
        Some(Value::String(t)) => t
            .split('>')
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|i| i.as_str())
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    CategoryPath::parse(&levels, false).map_err(|e| format!("{path}: {e}"))
}

fn currency(props: &Obj) -> Result<Currency, String> {
    Currency::parse(s(props, "currency").unwrap_or("USD"))
        .map_err(|e| format!("properties.currency: {e}"))
}

/// The call's time, at most [`MAX_CLAIMED_SKEW_MS`] ahead of `now`.
fn timestamp(root: &Obj, now: Timestamp) -> Result<Timestamp, String> {
    let raw = s(root, "timestamp")
        .or_else(|| s(root, "originalTimestamp"))
        .or_else(|| s(root, "sentAt"))
        .ok_or("timestamp: is required")?;
    Timestamp::parse_rfc3339(raw)
        .and_then(|t| t.claimed(now))
        .map_err(|e| format!("timestamp: {e}"))
}

fn actor(root: &Obj) -> Result<Actor, String> {
    let customer = opt(root, "userId", "", CustomerId::parse)?;
    let anonymous = opt(root, "anonymousId", "", AnonymousId::parse)?;
    Actor::new(customer, anonymous).map_err(|e| format!("userId: {e}"))
}

/// Maps one line. `now` bounds event times (no events from the future).
pub fn parse_line(line: &str, now: Timestamp) -> Result<Record, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not a JSON object: {e}"))?;
    parse_value(value, now)
}

/// One Segment/RudderStack call (a JSON object) as a record, or why not.
pub fn parse_value(value: Value, now: Timestamp) -> Result<Record, String> {
    let Value::Object(root) = value else {
        return Err("not a JSON object".into());
    };
    let kind = s(&root, "type").unwrap_or(if root.contains_key("event") {
        "track"
    } else {
        ""
    });
    match kind {
        "identify" => identify(&root, now),
        "track" => track(&root, now),
        other => Err(format!(
            "type: {other:?} is not supported (use track or identify)"
        )),
    }
}

fn identify(root: &Obj, now: Timestamp) -> Result<Record, String> {
    let empty = Obj::new();
    let traits = root
        .get("traits")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let customer_id = req(root, "userId", "", CustomerId::parse)?;
    let name = match (
        s(traits, "name"),
        s(traits, "firstName"),
        s(traits, "lastName"),
    ) {
        (Some(n), ..) => n.to_owned(),
        (None, Some(f), Some(l)) => format!("{f} {l}"),
        (None, Some(f), None) => f.to_owned(),
        (None, None, Some(l)) => l.to_owned(),
        _ => String::new(),
    };
    let display_name =
        bounded_text(&name, MAX_NAME_LEN, false).map_err(|e| format!("traits.name: {e}"))?;
    let loyalty = if traits.contains_key("loyalty_id") {
        "loyalty_id"
    } else {
        "loyaltyId"
    };
    let since = match s(traits, "createdAt").or_else(|| s(traits, "created_at")) {
        Some(raw) => Some(
            Timestamp::parse_rfc3339(raw)
                .and_then(|t| t.claimed(now))
                .map_err(|e| format!("traits.createdAt: {e}"))?,
        ),
        None => None,
    };
    Ok(Record::Customer(Customer {
        customer_id,
        display_name,
        email: opt(traits, "email", "traits.", Email::parse)?,
        phone: opt(traits, "phone", "traits.", Phone::parse)?,
        loyalty_id: opt(traits, loyalty, "traits.", LoyaltyId::parse)?,
        customer_since: since,
        anonymous_ids: opt(root, "anonymousId", "", AnonymousId::parse)?
            .into_iter()
            .collect(),
        consents: consents(root, traits, now)?,
    }))
}

/// `traits.consent`: `{"support_context": true, "personalised_suggestions": false}`,
/// recorded as of the call's timestamp (or `now`, when that lies ahead:
/// a clock running fast must not let a grant outrank a later withdrawal).
fn consents(root: &Obj, traits: &Obj, now: Timestamp) -> Result<Vec<ConsentRecord>, String> {
    let Some(given) = traits.get("consent").and_then(Value::as_object) else {
        return Ok(Vec::new());
    };
    let at = timestamp(root, now)?.min(now);
    let mut out = Vec::new();
    for (name, value) in given {
        let purpose = Purpose::from_stored(name).ok_or_else(|| {
            format!("traits.consent.{name}: is not a purpose (support_context, personalised_suggestions)")
        })?;
        let granted = value
            .as_bool()
            .ok_or_else(|| format!("traits.consent.{name}: must be true or false"))?;
        out.push(ConsentRecord {
            purpose,
            granted,
            source: "ingest".into(),
            updated_at: at,
        });
    }
    Ok(out)
}

fn track(root: &Obj, now: Timestamp) -> Result<Record, String> {
    let event = s(root, "event").ok_or("event: is required for a track call")?;
    let empty = Obj::new();
    let props = root
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let browse = |kind: EventKind| -> Result<Record, String> {
        let message_id = req(root, "messageId", "", MessageId::parse)?;
        let target = if kind == EventKind::Searched {
            EventTarget::Search(bounded(props, "query", "properties.", MAX_NAME_LEN, true)?)
        } else {
            let key = ["product_id", "sku", "id"]
                .into_iter()
                .find(|k| id_text(props, k).is_some())
                .unwrap_or("product_id");
            EventTarget::Product(req(props, key, "properties.", ProductId::parse)?)
        };
        let channel = bounded_text(
            s(root, "channel")
                .or_else(|| s(props, "channel"))
                .unwrap_or(""),
            MAX_ID_LEN,
            false,
        )
        .map_err(|e| format!("channel: {e}"))?;
        BrowsingEvent::new(
            message_id,
            actor(root)?,
            kind,
            target,
            channel,
            timestamp(root, now)?,
            now,
        )
        .map(Record::Event)
        .map_err(|(f, e)| format!("{f}: {e}"))
    };
    match event {
        "Product Viewed" => browse(EventKind::ProductViewed),
        "Product Added" => browse(EventKind::AddedToCart),
        "Product Removed" => browse(EventKind::RemovedFromCart),
        "Products Searched" => browse(EventKind::Searched),
        "Product Added to Wishlist" => browse(EventKind::AddedToWishlist),
        "Order Completed" => {
            // An optional `status` carries where the order is now (a
            // shop's order webhook does); the spec's event means placed.
            let status = match s(props, "status") {
                None => OrderStatus::Placed,
                Some(raw) => OrderStatus::from_stored(raw).ok_or_else(|| {
                    format!(
                        "properties.status: {:?} is not one of placed, shipped, delivered, cancelled, refunded",
                        clip(raw, 40)
                    )
                })?,
            };
            order(root, props, status, now)
        }
        "Order Cancelled" => order(root, props, OrderStatus::Cancelled, now),
        "Order Refunded" => refund(root, props, now),
        "Return Requested" => return_requested(root, props, now),
        "Ticket Updated" => ticket(root, props, now),
        other => Err(format!("event: {other:?} is not supported")),
    }
}

fn products(props: &Obj) -> Result<&Vec<Value>, String> {
    match props.get("products") {
        Some(Value::Array(items)) if !items.is_empty() => {
            if items.len() > MAX_LINES {
                return Err(format!(
                    "properties.products: has {} lines; at most {MAX_LINES} are allowed",
                    items.len()
                ));
            }
            Ok(items)
        }
        _ => Err("properties.products: needs at least one product".into()),
    }
}

fn quantity(p: &Obj, path: &str) -> Result<i64, String> {
    let q = match p.get("quantity") {
        None | Some(Value::Null) => 1,
        Some(v) => v
            .as_i64()
            .ok_or_else(|| format!("{path}quantity: must be a whole number"))?,
    };
    if !(1..=MAX_LINE_QUANTITY).contains(&q) {
        return Err(format!(
            "{path}quantity: must be between 1 and {MAX_LINE_QUANTITY}"
        ));
    }
    Ok(q)
}

fn order(root: &Obj, props: &Obj, status: OrderStatus, now: Timestamp) -> Result<Record, String> {
    let currency = currency(props)?;
    let mut lines = Vec::new();
    for (i, item) in products(props)?.iter().enumerate() {
        let path = format!("properties.products[{i}].");
        let p = item
            .as_object()
            .ok_or_else(|| format!("{path}: must be an object"))?;
        let price = number(p, "price").unwrap_or(0.0);
        let quantity = quantity(p, &path)?;
        let unit_price_minor = Money::from_decimal(currency, price)
            .map_err(|e| format!("{path}price: {e}"))?
            .minor;
        line_amount(quantity, unit_price_minor).map_err(|e| format!("{path}price: {e}"))?;
        lines.push(OrderLine {
            product_id: req(p, "product_id", &path, ProductId::parse)?,
            quantity,
            unit_price_minor,
            name: bounded(p, "name", &path, MAX_NAME_LEN, false)?,
            brand: bounded(p, "brand", &path, MAX_NAME_LEN, false)?,
            category: category_of(p.get("category"), &format!("{path}category"))?,
        });
    }
    let total = match number(props, "total").or_else(|| number(props, "revenue")) {
        Some(t) => {
            Money::from_decimal(currency, t)
                .map_err(|e| format!("properties.total: {e}"))?
                .minor
        }
        None => lines
            .iter()
            .map(|l| l.quantity * l.unit_price_minor)
            .try_fold(0i64, i64::checked_add)
            .ok_or_else(|| "properties.products: the order total is too large".to_string())
            .and_then(|t| {
                bounded_amount(t).map_err(|e| format!("properties.products: the total {e}"))
            })?,
    };
    let channel = s(props, "channel")
        .or_else(|| s(props, "affiliation"))
        .or_else(|| s(root, "channel"))
        .unwrap_or("");
    Ok(Record::Order(Order {
        order_id: req(props, "order_id", "properties.", OrderId::parse)?,
        actor: actor(root)?,
        status,
        placed_at: timestamp(root, now)?,
        currency,
        total_minor: total,
        channel: bounded_text(channel, MAX_ID_LEN, false)
            .map_err(|e| format!("properties.affiliation: {e}"))?,
        lines,
    }))
}

fn return_lines(props: &Obj) -> Result<Vec<ReturnLine>, String> {
    let mut lines = Vec::new();
    for (i, item) in products(props)?.iter().enumerate() {
        let path = format!("properties.products[{i}].");
        let p = item
            .as_object()
            .ok_or_else(|| format!("{path}: must be an object"))?;
        lines.push(ReturnLine {
            product_id: req(p, "product_id", &path, ProductId::parse)?,
            quantity: quantity(p, &path)?,
        });
    }
    Ok(lines)
}

fn refund(root: &Obj, props: &Obj, now: Timestamp) -> Result<Record, String> {
    let currency = currency(props)?;
    let message_id = req(root, "messageId", "", MessageId::parse)?;
    let refund = match number(props, "total").or_else(|| number(props, "revenue")) {
        Some(t) => {
            Some(Money::from_decimal(currency, t).map_err(|e| format!("properties.total: {e}"))?)
        }
        None => None,
    };
    let return_id = match id_text(props, "return_id") {
        Some(r) => r,
        None => format!("refund-{}", message_id.as_str()),
    };
    Ok(Record::Return(Return {
        return_id: ReturnId::parse(&return_id).map_err(|e| format!("properties.return_id: {e}"))?,
        order_id: req(props, "order_id", "properties.", OrderId::parse)?,
        customer_id: opt(root, "userId", "", CustomerId::parse)?,
        status: ReturnStatus::Refunded,
        reason_code: bounded_text(s(props, "reason_code").unwrap_or("refunded"), 64, true)
            .map_err(|e| format!("properties.reason_code: {e}"))?,
        reason_text: bounded(props, "reason", "properties.", MAX_TEXT_LEN, false)?,
        requested_at: timestamp(root, now)?,
        lines: return_lines(props)?,
        refund,
    }))
}

fn return_requested(root: &Obj, props: &Obj, now: Timestamp) -> Result<Record, String> {
    let status = match s(props, "status").unwrap_or("requested") {
        "requested" => ReturnStatus::Requested,
        "approved" => ReturnStatus::Approved,
        "received" => ReturnStatus::Received,
        "refunded" => ReturnStatus::Refunded,
        "rejected" => ReturnStatus::Rejected,
        other => {
            return Err(format!(
                "properties.status: {other:?} is not one of requested, approved, received, refunded, rejected"
            ));
        }
    };
    let refund = match number(props, "refund_amount") {
        Some(t) => Some(
            Money::from_decimal(currency(props)?, t)
                .map_err(|e| format!("properties.refund_amount: {e}"))?,
        ),
        None => None,
    };
    Ok(Record::Return(Return {
        return_id: req(props, "return_id", "properties.", ReturnId::parse)?,
        order_id: req(props, "order_id", "properties.", OrderId::parse)?,
        customer_id: opt(root, "userId", "", CustomerId::parse)?,
        status,
        reason_code: bounded(props, "reason_code", "properties.", 64, true)?,
        reason_text: bounded(props, "reason_text", "properties.", MAX_TEXT_LEN, false)?,
        requested_at: timestamp(root, now)?,
        lines: return_lines(props)?,
        refund,
    }))
}

fn ticket(root: &Obj, props: &Obj, now: Timestamp) -> Result<Record, String> {
    let status = match s(props, "status").unwrap_or("open") {
        "new" | "open" => TicketStatus::Open,
        "pending" | "hold" | "on-hold" => TicketStatus::Pending,
        "solved" => TicketStatus::Solved,
        "closed" => TicketStatus::Closed,
        other => {
            return Err(format!(
                "properties.status: {other:?} is not one of open, pending, solved, closed"
            ));
        }
    };
    let priority = match s(props, "priority").unwrap_or("normal") {
        "low" => TicketPriority::Low,
        "normal" => TicketPriority::Normal,
        "high" => TicketPriority::High,
        "urgent" => TicketPriority::Urgent,
        other => {
            return Err(format!(
                "properties.priority: {other:?} is not one of low, normal, high, urgent"
            ));
        }
    };
    let updated_at = timestamp(root, now)?;
    let created_at = match s(props, "created_at") {
        Some(raw) => {
            Timestamp::parse_rfc3339(raw).map_err(|e| format!("properties.created_at: {e}"))?
        }
        None => updated_at,
    };
    if created_at > updated_at {
        return Err("properties.created_at: is after the event's timestamp".into());
    }
    Ok(Record::Ticket(Ticket {
        ticket_id: req(props, "ticket_id", "properties.", TicketId::parse)?,
        customer_id: req(root, "userId", "", CustomerId::parse)?,
        subject: bounded(props, "subject", "properties.", MAX_NAME_LEN, true)?,
        status,
        priority,
        channel: bounded(props, "channel", "properties.", MAX_ID_LEN, false)?,
        order_id: opt(props, "order_id", "properties.", OrderId::parse)?,
        created_at,
        updated_at,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        Timestamp::parse_rfc3339("2026-01-01T00:00:00Z").unwrap()
    }

    #[test]
    fn order_completed_from_the_shared_data_set() {
        let line = r#"{"type": "track", "event": "Order Completed", "messageId": "cj-order-31198570044", "userId": "cj-900", "timestamp": "2017-01-01T11:53:26Z", "properties": {"order_id": "cj-31198570044", "affiliation": "store-330", "total": 0.5, "revenue": 0.5, "currency": "USD", "products": [{"product_id": "1095275", "quantity": 1, "price": 0.5}]}}"#;
        let Record::Order(o) = parse_line(line, now()).unwrap() else {
            panic!("not an order")
        };
        assert_eq!(o.order_id.as_str(), "cj-31198570044");
        assert_eq!(o.actor.customer_id().unwrap().as_str(), "cj-900");
        assert_eq!(o.total_minor, 50);
        assert_eq!(o.channel, "store-330");
        assert_eq!(o.lines[0].unit_price_minor, 50);
    }

    #[test]
    fn browsing_events_map_to_kinds() {
        let line = r#"{"type":"track","event":"Product Added","messageId":"m1","anonymousId":"a1","timestamp":"2025-05-01T10:00:00Z","properties":{"product_id":"p1"}}"#;
        let Record::Event(e) = parse_line(line, now()).unwrap() else {
            panic!("not an event")
        };
        assert_eq!(e.kind, EventKind::AddedToCart);
        let line = r#"{"event":"Products Searched","messageId":"m2","userId":"u1","timestamp":"2025-05-01T10:00:00Z","properties":{"query":"boots"}}"#;
        let Record::Event(e) = parse_line(line, now()).unwrap() else {
            panic!("not an event")
        };
        assert_eq!(e.target, EventTarget::Search("boots".into()));
    }

    #[test]
    fn bad_lines_say_why() {
        let cases = [
            ("not json", "not a JSON object"),
            (r#"{"type":"page"}"#, "type:"),
            (
                r#"{"event":"Checkout Started","messageId":"m"}"#,
                "not supported",
            ),
            (
                r#"{"event":"Product Viewed","messageId":"m","userId":"u","timestamp":"2025-01-01T00:00:00Z","properties":{}}"#,
                "properties.product_id: is required",
            ),
            (
                r#"{"event":"Product Viewed","messageId":"m","timestamp":"2025-01-01T00:00:00Z","properties":{"product_id":"p"}}"#,
                "userId",
            ),
            (
                r#"{"event":"Order Completed","messageId":"m","userId":"u","timestamp":"2025-01-01T00:00:00Z","properties":{"order_id":"o","products":[{"product_id":"p","quantity":0}]}}"#,
                "quantity",
            ),
            (
                r#"{"event":"Product Viewed","messageId":"m","userId":"u","timestamp":"2027-01-01T00:00:00Z","properties":{"product_id":"p"}}"#,
                "future",
            ),
        ];
        for (line, expected) in cases {
            let err = parse_line(line, now()).unwrap_err();
            assert!(err.contains(expected), "{line}: {err}");
        }
    }

    #[test]
    fn identify_and_custom_events() {
        let line = r#"{"type":"identify","userId":"u1","anonymousId":"a1","traits":{"firstName":"Ana","lastName":"Lima","email":"Ana@Example.com","createdAt":"2024-01-01T00:00:00Z"}}"#;
        let Record::Customer(c) = parse_line(line, now()).unwrap() else {
            panic!("not a customer")
        };
        assert_eq!(c.display_name, "Ana Lima");
        assert_eq!(c.email.unwrap().as_str(), "ana@example.com");
        assert_eq!(c.anonymous_ids.len(), 1);
        let line = r#"{"event":"Return Requested","messageId":"m","userId":"u1","timestamp":"2025-01-01T00:00:00Z","properties":{"return_id":"r1","order_id":"o1","reason_code":"too_small","products":[{"product_id":"p1"}]}}"#;
        let Record::Return(r) = parse_line(line, now()).unwrap() else {
            panic!("not a return")
        };
        assert_eq!(r.lines[0].quantity, 1);
        let line = r#"{"event":"Ticket Updated","messageId":"m","userId":"u1","timestamp":"2025-01-02T00:00:00Z","properties":{"ticket_id":"t1","subject":"Late","status":"pending","priority":"high","created_at":"2025-01-01T00:00:00Z"}}"#;
        let Record::Ticket(t) = parse_line(line, now()).unwrap() else {
            panic!("not a ticket")
        };
        assert_eq!(t.status, TicketStatus::Pending);
    }
}
