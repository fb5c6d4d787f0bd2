//! Builders for proto messages, with times relative to now.

use customer_context::proto::{self as pb, customer_ref::Identity};
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::harness::TestApp;

pub fn ago(minutes: i64) -> prost_types::Timestamp {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock")
        .as_secs() as i64;
    prost_types::Timestamp {
        seconds: now - minutes * 60,
        nanos: 0,
    }
}

pub fn usd(minor: i64) -> Option<pb::Money> {
    Some(pb::Money {
        currency_code: "USD".into(),
        amount_minor: minor,
    })
}

pub fn product(id: &str, name: &str, category: &[&str], price: i64, stock: i64) -> pb::Product {
    pb::Product {
        product_id: id.into(),
        name: name.into(),
        brand: "Northpeak".into(),
        category_path: category.iter().map(|c| c.to_string()).collect(),
        price: usd(price),
        stock: Some(pb::product::Stock::StockQuantity(stock)),
        group_id: String::new(),
        active: None,
        url: String::new(),
        image_url: String::new(),
        replenish_after_days: 0,
        merchandise: None,
        size: String::new(),
        size_system: 0,
    }
}

/// A variant of style `group` in `size` (the system recognised from it).
pub fn sized(
    id: &str,
    group: &str,
    name: &str,
    category: &[&str],
    size: &str,
    stock: i64,
) -> pb::Product {
    pb::Product {
        group_id: group.into(),
        size: size.into(),
        ..product(id, &format!("{name} ({size})"), category, 5000, stock)
    }
}

pub fn customer(id: &str, name: &str, email: &str, phone: &str, loyalty: &str) -> pb::Customer {
    pb::Customer {
        customer_id: id.into(),
        display_name: name.into(),
        email: email.into(),
        phone: phone.into(),
        loyalty_id: loyalty.into(),
        customer_since: Some(ago(60 * 24 * 400)),
        anonymous_ids: vec![],
        consents: vec![],
    }
}

pub fn event(
    message_id: &str,
    customer: &str,
    anonymous: &str,
    kind: pb::BrowsingEventType,
    product: &str,
    minutes_ago: i64,
) -> pb::BrowsingEvent {
    pb::BrowsingEvent {
        message_id: message_id.into(),
        customer_id: customer.into(),
        anonymous_id: anonymous.into(),
        r#type: kind.into(),
        product_id: product.into(),
        search_query: String::new(),
        channel: "web".into(),
        occurred_at: Some(ago(minutes_ago)),
    }
}

pub fn view(
    message_id: &str,
    customer: &str,
    product: &str,
    minutes_ago: i64,
) -> pb::BrowsingEvent {
    event(
        message_id,
        customer,
        "",
        pb::BrowsingEventType::ProductViewed,
        product,
        minutes_ago,
    )
}

pub fn line(product: &str, quantity: i64, price: i64) -> pb::OrderLine {
    pb::OrderLine {
        product_id: product.into(),
        quantity,
        unit_price: usd(price),
        name: String::new(),
        brand: String::new(),
        category_path: vec![],
    }
}

pub fn order(id: &str, customer: &str, minutes_ago: i64, lines: Vec<pb::OrderLine>) -> pb::Order {
    pb::Order {
        order_id: id.into(),
        customer_id: customer.into(),
        anonymous_id: String::new(),
        status: pb::OrderStatus::Delivered.into(),
        placed_at: Some(ago(minutes_ago)),
        lines,
        total: None,
        channel: "web".into(),
    }
}

pub fn return_(
    id: &str,
    order: &str,
    customer: &str,
    product: &str,
    minutes_ago: i64,
) -> pb::Return {
    pb::Return {
        return_id: id.into(),
        order_id: order.into(),
        customer_id: customer.into(),
        status: pb::ReturnStatus::Received.into(),
        reason_code: "too_small".into(),
        reason_text: "Sleeves too short".into(),
        requested_at: Some(ago(minutes_ago)),
        lines: vec![pb::ReturnLine {
            product_id: product.into(),
            quantity: 1,
        }],
        refund_amount: None,
    }
}

pub fn ticket(
    id: &str,
    customer: &str,
    status: pb::TicketStatus,
    order: &str,
    minutes_ago: i64,
) -> pb::Ticket {
    pb::Ticket {
        ticket_id: id.into(),
        customer_id: customer.into(),
        subject: format!("Question {id}"),
        status: status.into(),
        priority: pb::TicketPriority::High.into(),
        channel: "email".into(),
        order_id: order.into(),
        created_at: Some(ago(minutes_ago + 10)),
        updated_at: Some(ago(minutes_ago)),
    }
}

pub fn by(identity: Identity) -> pb::GetCustomerContextRequest {
    pb::GetCustomerContextRequest {
        customer: Some(pb::CustomerRef {
            identity: Some(identity),
        }),
        ..Default::default()
    }
}

pub async fn context(
    app: &TestApp,
    request: pb::GetCustomerContextRequest,
) -> Result<pb::CustomerContext, Status> {
    app.context
        .clone()
        .get_customer_context(request)
        .await
        .map(|r| r.into_inner())
}

pub async fn context_of(app: &TestApp, identity: Identity) -> pb::CustomerContext {
    context(app, by(identity)).await.expect("a context")
}

/// The fields named by the status's BadRequest details.
pub fn violated_fields(status: &Status) -> Vec<String> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

pub fn outcomes(results: &[pb::ItemResult]) -> Vec<pb::ItemOutcome> {
    results.iter().map(|r| r.outcome()).collect()
}

pub async fn seed_catalog(app: &TestApp) {
    let products = vec![
        product(
            "shell-m",
            "Rain Shell (M)",
            &["Apparel", "Jackets"],
            12900,
            5,
        ),
        product(
            "shell-l",
            "Rain Shell (L)",
            &["Apparel", "Jackets"],
            12900,
            3,
        ),
        product(
            "runner-9",
            "Trail Runner 2 (9)",
            &["Footwear", "Running"],
            13900,
            0,
        ),
        product("socks", "Merino Socks", &["Accessories", "Socks"], 1900, 40),
        product(
            "mouse",
            "Wireless Mouse",
            &["Electronics", "Accessories"],
            3900,
            12,
        ),
    ];
    let r = app
        .ingest
        .clone()
        .upsert_products(pb::UpsertProductsRequest { products })
        .await
        .expect("catalog");
    assert_eq!(r.into_inner().summary.expect("a summary").rejected, 0);
}

/// `customer` withdraws consent to personalised suggestions (a minute ago).
pub async fn withdraw_personalisation(app: &TestApp, customer: &str) {
    app.privacy
        .clone()
        .set_consent(pb::SetConsentRequest {
            customer_id: customer.into(),
            consents: vec![pb::Consent {
                purpose: pb::ConsentPurpose::PersonalisedSuggestions.into(),
                granted: false,
                updated_at: Some(ago(1)),
                source: String::new(),
            }],
        })
        .await
        .expect("consent");
}

/// Erases the customer found by `identity` (admin privacy client).
pub async fn erase(app: &TestApp, identity: Identity) -> pb::EraseCustomerResponse {
    app.privacy
        .clone()
        .erase_customer(pb::EraseCustomerRequest {
            customer: Some(pb::CustomerRef {
                identity: Some(identity),
            }),
        })
        .await
        .expect("erased")
        .into_inner()
}
