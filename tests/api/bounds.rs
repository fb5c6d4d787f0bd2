//! Every bound on input (money, quantities, claimed times, string lengths)
//! is a field violation through the gRPC API, and nothing is stored; a
//! record stored by an earlier version that overflowed is repaired.

use customer_context::proto::{self as pb, ItemOutcome as O, customer_ref::Identity};
use sqlx::Connection;
use tonic::Code;

use crate::{
    fixtures::*,
    harness::{Backend, TestApp, spawn_app},
    on_both_backends,
};

on_both_backends!(
    money_and_quantities_are_bounded,
    claimed_times_are_bounded_and_future_consents_do_not_outrank_withdrawals,
    strings_are_bounded_and_never_echoed_whole,
    overflowed_totals_are_repaired_on_upgrade,
);

/// A time `hours` from now.
fn ahead(hours: i64) -> prost_types::Timestamp {
    ago(-hours * 60)
}

/// The fields named by the violations of a rejected item.
fn rejected(r: &pb::ItemResult) -> Vec<String> {
    assert_eq!(r.outcome(), O::Rejected, "{r:?}");
    r.violations.iter().map(|v| v.field.clone()).collect()
}

/// The fields at fault when one return is sent alone (it must be refused).
async fn rejected_return(app: &TestApp, r: pb::Return) -> Vec<String> {
    let response = app
        .ingest
        .clone()
        .record_returns(pb::RecordReturnsRequest { returns: vec![r] })
        .await
        .expect("a batch")
        .into_inner();
    rejected(&response.results[0])
}

/// The fields at fault when one ticket is sent alone (it must be refused).
async fn rejected_ticket(app: &TestApp, t: pb::Ticket) -> Vec<String> {
    let response = app
        .ingest
        .clone()
        .upsert_tickets(pb::UpsertTicketsRequest { tickets: vec![t] })
        .await
        .expect("a batch")
        .into_inner();
    rejected(&response.results[0])
}

async fn orders_of(app: &TestApp, customer: &str) -> Option<pb::CustomerContext> {
    context(app, by(Identity::CustomerId(customer.into())))
        .await
        .ok()
}

async fn money_and_quantities_are_bounded(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    seed_catalog(&app).await;
    let mut ingest = app.ingest.clone();
    let max = 1_000_000_000_000i64;
    let mut over_total = order("o-total", "c-m", 5, vec![line("shell-m", 1, 100)]);
    over_total.total = usd(max + 1);
    let orders = vec![
        order("o-price", "c-m", 5, vec![line("shell-m", 1, max + 1)]),
        order("o-line", "c-m", 5, vec![line("shell-m", 100_000, max / 10)]),
        over_total,
        order(
            "o-sum",
            "c-m",
            5,
            vec![line("shell-m", 1, max), line("socks", 1, max)],
        ),
        order("o-qty", "c-m", 5, vec![line("shell-m", 100_001, 100)]),
        order("o-zero", "c-m", 5, vec![line("shell-m", 0, 100)]),
        order("o-2^62", "c-m", 5, vec![line("shell-m", 1, 1 << 62)]),
    ];
    let r = ingest
        .record_orders(pb::RecordOrdersRequest { orders })
        .await
        .expect("a batch")
        .into_inner();
    assert_eq!(
        rejected(&r.results[0]),
        ["lines[0].unit_price.amount_minor"]
    );
    assert_eq!(
        rejected(&r.results[1]),
        ["lines[0].unit_price.amount_minor"]
    );
    assert_eq!(rejected(&r.results[2]), ["total.amount_minor"]);
    assert_eq!(rejected(&r.results[3]), ["lines"]);
    assert_eq!(rejected(&r.results[4]), ["lines[0].quantity"]);
    assert_eq!(rejected(&r.results[5]), ["lines[0].quantity"]);
    assert_eq!(
        rejected(&r.results[6]),
        ["lines[0].unit_price.amount_minor"]
    );
    assert!(
        r.results[0].violations[0]
            .description
            .contains("1000000000000"),
        "the bound is stated: {:?}",
        r.results[0].violations[0]
    );

    let mut refund = return_("r-big", "o-none", "c-m", "shell-m", 5);
    refund.refund_amount = usd(max + 1);
    assert_eq!(
        rejected_return(&app, refund).await,
        ["refund_amount.amount_minor"]
    );

    let mut stock = product("p-stock", "Tee", &["Apparel"], 100, 1);
    stock.stock = Some(pb::product::Stock::StockQuantity(i64::MAX));
    let r = ingest
        .upsert_products(pb::UpsertProductsRequest {
            products: vec![stock, product("p-dear", "Tee", &["Apparel"], max + 1, 1)],
        })
        .await
        .expect("a batch")
        .into_inner();
    assert_eq!(rejected(&r.results[0]), ["stock_quantity"]);
    assert_eq!(rejected(&r.results[1]), ["price.amount_minor"]);
    assert!(orders_of(&app, "c-m").await.is_none(), "nothing was stored");

    // The largest order allowed, twice: the customer stays readable.
    let biggest = |id: &str| {
        let mut o = order(id, "c-m", 5, vec![line("shell-m", 1, max)]);
        o.total = usd(max);
        o
    };
    let r = ingest
        .record_orders(pb::RecordOrdersRequest {
            orders: vec![biggest("o-a"), biggest("o-b")],
        })
        .await
        .expect("a batch")
        .into_inner();
    assert_eq!(outcomes(&r.results), [O::Created, O::Created]);
    let ctx = orders_of(&app, "c-m").await.expect("readable");
    let profile = ctx.profile.expect("a profile");
    assert_eq!(
        profile.lifetime_spend,
        vec![pb::Money {
            currency_code: "USD".into(),
            amount_minor: 2 * max
        }]
    );
    assert_eq!(profile.order_count, 2);
}

async fn claimed_times_are_bounded_and_future_consents_do_not_outrank_withdrawals(
    backend: Backend,
) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    seed_catalog(&app).await;
    let mut ingest = app.ingest.clone();
    let year_9999 = prost_types::Timestamp {
        seconds: 253_402_300_000,
        nanos: 0,
    };
    let before_1970 = prost_types::Timestamp {
        seconds: -86_400,
        nanos: 0,
    };
    let mut in_9999 = order("o-9999", "c-t", 0, vec![line("shell-m", 1, 100)]);
    in_9999.placed_at = Some(year_9999);
    let mut in_two_days = order("o-2d", "c-t", 0, vec![line("shell-m", 1, 100)]);
    in_two_days.placed_at = Some(ahead(48));
    let mut ancient = order("o-old", "c-t", 0, vec![line("shell-m", 1, 100)]);
    ancient.placed_at = Some(before_1970);
    let r = ingest
        .record_orders(pb::RecordOrdersRequest {
            orders: vec![in_9999, in_two_days, ancient],
        })
        .await
        .expect("a batch")
        .into_inner();
    for result in &r.results {
        assert_eq!(rejected(result), ["placed_at"]);
    }
    assert!(
        r.results[1].violations[0].description.contains("24 hours"),
        "the skew is stated"
    );

    let mut ret = return_("r-9999", "o-x", "c-t", "shell-m", 0);
    ret.requested_at = Some(year_9999);
    assert_eq!(rejected_return(&app, ret).await, ["requested_at"]);

    let mut t = ticket("t-9999", "c-t", pb::TicketStatus::Open, "", 0);
    t.created_at = Some(year_9999);
    t.updated_at = Some(year_9999);
    assert_eq!(rejected_ticket(&app, t).await, ["created_at", "updated_at"]);

    let mut c = customer("c-t", "Tess", "tess@example.com", "", "");
    c.customer_since = Some(year_9999);
    c.consents = vec![pb::Consent {
        purpose: pb::ConsentPurpose::SupportContext.into(),
        granted: true,
        updated_at: Some(year_9999),
        source: String::new(),
    }];
    let r = ingest
        .upsert_customers(pb::UpsertCustomersRequest { customers: vec![c] })
        .await
        .expect("a batch")
        .into_inner();
    assert_eq!(
        rejected(&r.results[0]),
        ["customer_since", "consents[0].updated_at"]
    );
    assert!(orders_of(&app, "c-t").await.is_none(), "nothing was stored");

    // A grant dated 23 hours ahead (a clock running fast) is accepted, but
    // counts as recorded now: the withdrawal sent a minute later wins.
    let mut c = customer("c-t", "Tess", "tess@example.com", "", "");
    c.consents = vec![pb::Consent {
        purpose: pb::ConsentPurpose::SupportContext.into(),
        granted: true,
        updated_at: Some(ahead(23)),
        source: String::new(),
    }];
    let r = ingest
        .upsert_customers(pb::UpsertCustomersRequest { customers: vec![c] })
        .await
        .expect("a batch")
        .into_inner();
    assert_eq!(outcomes(&r.results), [O::Created]);
    let mut later = ago(0);
    later.seconds += 60;
    app.privacy
        .clone()
        .set_consent(pb::SetConsentRequest {
            customer_id: "c-t".into(),
            consents: vec![pb::Consent {
                purpose: pb::ConsentPurpose::SupportContext.into(),
                granted: false,
                updated_at: Some(later),
                source: String::new(),
            }],
        })
        .await
        .expect("recorded");
    let ctx = context_of(&app, Identity::CustomerId("c-t".into())).await;
    assert!(ctx.history_withheld, "the withdrawal is in effect");
}

async fn strings_are_bounded_and_never_echoed_whole(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    seed_catalog(&app).await;
    let mut ingest = app.ingest.clone();
    let huge = "x".repeat(1 << 20);

    let status = app
        .context
        .clone()
        .get_suggestion_stats(pb::GetSuggestionStatsRequest {
            experiment: huge.clone(),
            outside_experiments: false,
        })
        .await
        .expect_err("refused");
    assert_eq!(violated_fields(&status), ["experiment"]);
    assert!(
        status.message().len() < 1000,
        "{} bytes",
        status.message().len()
    );

    let status = app
        .context
        .clone()
        .get_customer_context(by(Identity::Email(format!("{huge}@example.com"))))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().len() < 1000,
        "{} bytes",
        status.message().len()
    );

    let mut long_subject = ticket("t-long", "c-s", pb::TicketStatus::Open, "", 5);
    long_subject.subject = "s".repeat(513);
    assert_eq!(rejected_ticket(&app, long_subject).await, ["subject"]);

    let mut long_reason = return_("r-long", "o-x", "c-s", "shell-m", 5);
    long_reason.reason_text = "r".repeat(4001);
    assert_eq!(rejected_return(&app, long_reason).await, ["reason_text"]);

    let r = ingest
        .upsert_customers(pb::UpsertCustomersRequest {
            customers: vec![
                customer(&"c".repeat(129), "Sam", "", "", ""),
                customer("c-s", &"n".repeat(513), "", "", ""),
            ],
        })
        .await
        .expect("a batch")
        .into_inner();
    assert_eq!(rejected(&r.results[0]), ["customer_id"]);
    assert_eq!(rejected(&r.results[1]), ["display_name"]);

    let mut long_query = event(
        "m-long",
        "c-s",
        "",
        pb::BrowsingEventType::ProductsSearched,
        "",
        1,
    );
    long_query.search_query = huge.clone();
    let r = ingest
        .record_events(pb::RecordEventsRequest {
            events: vec![long_query],
        })
        .await
        .expect("a batch")
        .into_inner();
    assert_eq!(rejected(&r.results[0]), ["search_query"]);
    let echoed: usize = r.results[0]
        .violations
        .iter()
        .map(|v| v.description.len() + v.field.len())
        .sum();
    assert!(echoed < 1000, "{echoed} bytes echoed");
    assert!(orders_of(&app, "c-s").await.is_none(), "nothing was stored");

    let status = app
        .privacy
        .clone()
        .list_access_log(pb::ListAccessLogRequest {
            customer: Some(pb::CustomerRef {
                identity: Some(Identity::CustomerId("c-s".into())),
            }),
            page_size: 10,
            page_token: format!("1.{}", "a".repeat(1 << 20)),
        })
        .await
        .expect_err("refused");
    assert_eq!(violated_fields(&status), ["page_token"]);
    assert!(status.message().len() < 1000);
}

async fn overflowed_totals_are_repaired_on_upgrade(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    seed_catalog(&app).await;
    let r = app
        .ingest
        .clone()
        .record_orders(pb::RecordOrdersRequest {
            orders: vec![
                order("o-1", "c-r", 50, vec![line("shell-m", 2, 12_900)]),
                order("o-2", "c-r", 40, vec![line("socks", 1, 2_500)]),
            ],
        })
        .await
        .expect("a batch")
        .into_inner();
    assert_eq!(outcomes(&r.results), [O::Created, O::Created]);

    // What an earlier version left behind: SQLite stored a float once the
    // sum overflowed; PostgreSQL held the saturated value.
    let mut conn = sqlx::AnyConnection::connect(&app.database_url)
        .await
        .expect("a raw connection");
    let damage = match backend {
        Backend::Sqlite => {
            "UPDATE customer_spend SET spend_minor = 9.22337203685478e18 WHERE customer_id = 'c-r'"
        }
        Backend::Postgres => {
            "UPDATE customer_spend SET spend_minor = 9223372036854775807 WHERE customer_id = 'c-r'"
        }
    };
    sqlx::raw_sql(damage)
        .execute(&mut conn)
        .await
        .expect("damaged");
    sqlx::raw_sql("UPDATE customers SET units_purchased = -7 WHERE customer_id = 'c-r'")
        .execute(&mut conn)
        .await
        .expect("damaged");
    conn.close().await.expect("closed");

    // An upgraded replica starts on the same database and repairs it.
    let (_, mut upgraded) = app.replica().await;
    let ctx = upgraded
        .get_customer_context(by(Identity::CustomerId("c-r".into())))
        .await
        .expect("readable again")
        .into_inner();
    let profile = ctx.profile.expect("a profile");
    assert_eq!(
        profile.lifetime_spend,
        vec![pb::Money {
            currency_code: "USD".into(),
            amount_minor: 2 * 12_900 + 2_500
        }]
    );
    assert_eq!(profile.units_purchased, 3);
    assert_eq!(profile.order_count, 2);
}
