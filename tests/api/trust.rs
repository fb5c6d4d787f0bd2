//! Trust: every RPC × every role, erasure, masking, consent, the access
//! log, overload protection, TLS and mutual TLS.

use customer_context::{
    auth::GateConfig,
    domain::{Role, Timestamp},
    proto::{self as pb, ItemOutcome as O, customer_ref::Identity},
    startup::TlsFiles,
    store::AccessEntry,
};
use tonic::Code;

use crate::{
    fixtures::*,
    harness::{Backend, Key, TestApp, spawn_app, spawn_configured},
    on_both_backends,
};

on_both_backends!(
    every_rpc_answers_each_role_as_expected,
    erasure_removes_every_trace_and_suppresses_later_data,
    erasure_works_whatever_the_connection_erased_before,
    contact_details_are_masked_by_role,
    consent_is_checked_at_query_time,
    access_log_answers_who_looked,
    an_access_entry_being_written_does_not_outlive_an_erasure,
    an_order_racing_an_erasure_does_not_bring_the_customer_back,
    overload_and_rate_limits_answer_resource_exhausted,
    a_revocation_reaches_every_replica,
);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rpc {
    UpsertProducts,
    UpsertCustomers,
    LinkIdentity,
    RecordEvents,
    StreamEvents,
    RecordOrders,
    RecordReturns,
    UpsertTickets,
    GetCustomerContext,
    SuggestCrossSells,
    RecordSuggestionFeedback,
    GetSuggestionStats,
    SetExperiment,
    SetConsent,
    EraseCustomer,
    ExportCustomerData,
    ListAccessLog,
}

const RPCS: [Rpc; 17] = [
    Rpc::UpsertProducts,
    Rpc::UpsertCustomers,
    Rpc::LinkIdentity,
    Rpc::RecordEvents,
    Rpc::StreamEvents,
    Rpc::RecordOrders,
    Rpc::RecordReturns,
    Rpc::UpsertTickets,
    Rpc::GetCustomerContext,
    Rpc::SuggestCrossSells,
    Rpc::RecordSuggestionFeedback,
    Rpc::GetSuggestionStats,
    Rpc::SetExperiment,
    Rpc::SetConsent,
    Rpc::EraseCustomer,
    Rpc::ExportCustomerData,
    Rpc::ListAccessLog,
];

fn code<T>(r: Result<T, tonic::Status>) -> Code {
    match r {
        Ok(_) => Code::Ok,
        Err(s) => s.code(),
    }
}

/// Calls `rpc` with a fixed, valid request as `key` and returns the code.
async fn call(app: &TestApp, rpc: Rpc, key: Key) -> Code {
    let mut ingest = app.ingest_as(key.clone());
    let mut context = app.context_as(key.clone());
    let mut privacy = app.privacy_as(key);
    let c1 = || {
        Some(pb::CustomerRef {
            identity: Some(Identity::CustomerId("c1".into())),
        })
    };
    match rpc {
        Rpc::UpsertProducts => code(
            ingest
                .upsert_products(pb::UpsertProductsRequest {
                    products: vec![product("p9", "Hat", &["Accessories"], 900, 1)],
                })
                .await,
        ),
        Rpc::UpsertCustomers => code(
            ingest
                .upsert_customers(pb::UpsertCustomersRequest {
                    customers: vec![customer("c9", "Nine", "", "", "")],
                })
                .await,
        ),
        Rpc::LinkIdentity => code(
            ingest
                .link_identity(pb::LinkIdentityRequest {
                    customer_id: "c9".into(),
                    kind: pb::IdentityKind::LoyaltyId.into(),
                    value: "L-9".into(),
                })
                .await,
        ),
        Rpc::RecordEvents => code(
            ingest
                .record_events(pb::RecordEventsRequest {
                    events: vec![view("m9", "c9", "p9", 1)],
                })
                .await,
        ),
        Rpc::StreamEvents => code(
            ingest
                .stream_events(tokio_stream::iter(vec![view("m10", "c9", "p9", 1)]))
                .await,
        ),
        Rpc::RecordOrders => code(
            ingest
                .record_orders(pb::RecordOrdersRequest {
                    orders: vec![order("o9", "c9", 10, vec![line("p9", 1, 900)])],
                })
                .await,
        ),
        Rpc::RecordReturns => code(
            ingest
                .record_returns(pb::RecordReturnsRequest {
                    returns: vec![return_("r9", "o9", "c9", "p9", 5)],
                })
                .await,
        ),
        Rpc::UpsertTickets => code(
            ingest
                .upsert_tickets(pb::UpsertTicketsRequest {
                    tickets: vec![ticket("t9", "c9", pb::TicketStatus::Open, "", 5)],
                })
                .await,
        ),
        Rpc::GetCustomerContext => code(
            context
                .get_customer_context(by(Identity::CustomerId("c1".into())))
                .await,
        ),
        Rpc::SetConsent => code(
            privacy
                .set_consent(pb::SetConsentRequest {
                    customer_id: "c1".into(),
                    consents: vec![pb::Consent {
                        purpose: pb::ConsentPurpose::PersonalisedSuggestions.into(),
                        granted: true,
                        updated_at: Some(ago(1)),
                        source: String::new(),
                    }],
                })
                .await,
        ),
        Rpc::SuggestCrossSells => code(
            context
                .suggest_cross_sells(pb::SuggestCrossSellsRequest {
                    customer: c1(),
                    ..Default::default()
                })
                .await,
        ),
        Rpc::RecordSuggestionFeedback => code(
            context
                .record_suggestion_feedback(pb::RecordSuggestionFeedbackRequest {
                    feedback: vec![pb::SuggestionFeedback {
                        suggestion_id: "s1.unknown.id".into(),
                        kind: pb::FeedbackKind::Shown.into(),
                        occurred_at: None,
                    }],
                })
                .await,
        ),
        Rpc::GetSuggestionStats => code(
            context
                .get_suggestion_stats(pb::GetSuggestionStatsRequest::default())
                .await,
        ),
        Rpc::SetExperiment => code(
            context
                .set_experiment(pb::SetExperimentRequest {
                    experiment: Some(pb::Experiment {
                        name: "roles".into(),
                        variants: ["a", "b"]
                            .into_iter()
                            .map(|name| pb::Variant {
                                name: name.into(),
                                traffic_weight: 1,
                                weights: None,
                            })
                            .collect(),
                        running: false,
                        updated_at: None,
                    }),
                })
                .await,
        ),
        Rpc::EraseCustomer => code(
            privacy
                .erase_customer(pb::EraseCustomerRequest {
                    customer: Some(pb::CustomerRef {
                        identity: Some(Identity::CustomerId("nobody".into())),
                    }),
                })
                .await,
        ),
        Rpc::ExportCustomerData => code(
            privacy
                .export_customer_data(pb::ExportCustomerDataRequest { customer: c1() })
                .await,
        ),
        Rpc::ListAccessLog => code(
            privacy
                .list_access_log(pb::ListAccessLogRequest {
                    customer: c1(),
                    page_size: 0,
                    page_token: String::new(),
                })
                .await,
        ),
    }
}

fn ingest_rpc(rpc: Rpc) -> bool {
    matches!(
        rpc,
        Rpc::UpsertProducts
            | Rpc::UpsertCustomers
            | Rpc::LinkIdentity
            | Rpc::RecordEvents
            | Rpc::StreamEvents
            | Rpc::RecordOrders
            | Rpc::RecordReturns
            | Rpc::UpsertTickets
    )
}

fn privacy_rpc(rpc: Rpc) -> bool {
    matches!(
        rpc,
        Rpc::SetConsent | Rpc::EraseCustomer | Rpc::ExportCustomerData | Rpc::ListAccessLog
    )
}

/// The table: which role may call what (written out, not derived from the
/// code under test).
fn allowed(role: Role, rpc: Rpc) -> bool {
    match role {
        Role::Admin => true,
        Role::Agent => matches!(
            rpc,
            Rpc::GetCustomerContext | Rpc::SuggestCrossSells | Rpc::RecordSuggestionFeedback
        ),
        Role::Stylist => matches!(
            rpc,
            Rpc::GetCustomerContext
                | Rpc::SuggestCrossSells
                | Rpc::RecordSuggestionFeedback
                | Rpc::GetSuggestionStats
        ),
        Role::Crm => matches!(rpc, Rpc::SuggestCrossSells | Rpc::RecordSuggestionFeedback),
        Role::Ingest => ingest_rpc(rpc),
        Role::Privacy => privacy_rpc(rpc) || rpc == Rpc::GetCustomerContext,
    }
}

/// What an allowed call answers with the fixed requests.
fn when_allowed(rpc: Rpc) -> Code {
    if rpc == Rpc::EraseCustomer {
        Code::NotFound
    } else {
        Code::Ok
    }
}

async fn every_rpc_answers_each_role_as_expected(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    seed_catalog(&app).await;
    app.ingest
        .clone()
        .upsert_customers(pb::UpsertCustomersRequest {
            customers: vec![customer("c1", "Maya", "maya@example.com", "", "")],
        })
        .await
        .expect("seeded");
    let revoked = app
        .store
        .create_key("revoked", Role::Admin)
        .await
        .expect("key");
    assert!(
        app.store
            .revoke_key(&revoked.0.key_id)
            .await
            .expect("revoke")
    );
    let good = app.key(Role::Admin).await;
    let (id, _) = good
        .trim_start_matches("cck_")
        .split_once('_')
        .expect("shape");
    let wrong_secret = format!("cck_{id}_{}", "0".repeat(64));

    let mut checked = 0;
    for rpc in RPCS {
        for role in Role::ALL {
            let key = Key::bearer(&app.key(role).await);
            let expected = if allowed(role, rpc) {
                when_allowed(rpc)
            } else {
                Code::PermissionDenied
            };
            assert_eq!(call(&app, rpc, key).await, expected, "{rpc:?} as {role}");
            checked += 1;
        }
        for (what, key) in [
            ("no key", Key::none()),
            ("revoked key", Key::bearer(&revoked.1)),
            ("malformed key", Key::bearer("not-a-key")),
            (
                "unknown key",
                Key::bearer(&format!("cck_{}_{}", "a".repeat(12), "b".repeat(64))),
            ),
            ("wrong secret", Key::bearer(&wrong_secret)),
        ] {
            assert_eq!(
                call(&app, rpc, key).await,
                Code::Unauthenticated,
                "{rpc:?} with {what}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 17 * 11);
    // "Not allowed" does not reveal whether a customer exists.
    let agent = Key::bearer(&app.key(Role::Agent).await);
    let mut privacy = app.privacy_as(agent);
    for who in ["c1", "nobody"] {
        let r = privacy
            .erase_customer(pb::EraseCustomerRequest {
                customer: Some(pb::CustomerRef {
                    identity: Some(Identity::CustomerId(who.into())),
                }),
            })
            .await;
        assert_eq!(code(r), Code::PermissionDenied, "{who}");
    }
}

async fn seed_two_customers(app: &TestApp) {
    seed_catalog(app).await;
    let mut ingest = app.ingest.clone();
    let consent = |granted| pb::Consent {
        purpose: pb::ConsentPurpose::PersonalisedSuggestions.into(),
        granted,
        updated_at: Some(ago(100)),
        source: String::new(),
    };
    let mut erin = customer(
        "c-erin",
        "Erin Example",
        "erin@example.com",
        "+1 555 010 9999",
        "l-erin",
    );
    erin.anonymous_ids = vec!["anon-erin".into()];
    erin.consents = vec![consent(false)];
    let mut kim = customer(
        "c-kim",
        "Kim Kept",
        "kim@example.com",
        "+1 555 010 7777",
        "l-kim",
    );
    kim.anonymous_ids = vec!["anon-kim".into()];
    kim.consents = vec![consent(true)];
    let r = ingest
        .upsert_customers(pb::UpsertCustomersRequest {
            customers: vec![erin, kim],
        })
        .await
        .expect("ok");
    assert_eq!(outcomes(&r.into_inner().results), [O::Created, O::Created]);
    for who in ["erin", "kim"] {
        let c = format!("c-{who}");
        let anon = format!("anon-{who}");
        let events = vec![
            view(&format!("m-{who}-1"), &c, "shell-m", 30),
            event(
                &format!("m-{who}-2"),
                "",
                &anon,
                pb::BrowsingEventType::ProductAddedToCart,
                "socks",
                20,
            ),
            {
                let mut s = event(
                    &format!("m-{who}-3"),
                    &c,
                    "",
                    pb::BrowsingEventType::ProductsSearched,
                    "",
                    10,
                );
                s.search_query = format!("gift for {who}");
                s
            },
        ];
        ingest
            .record_events(pb::RecordEventsRequest { events })
            .await
            .expect("ok");
        let o = order(
            &format!("o-{who}"),
            &c,
            600,
            vec![line("shell-m", 1, 12900), line("socks", 1, 1900)],
        );
        ingest
            .record_orders(pb::RecordOrdersRequest { orders: vec![o] })
            .await
            .expect("ok");
        let r = return_(&format!("r-{who}"), &format!("o-{who}"), &c, "shell-m", 100);
        ingest
            .record_returns(pb::RecordReturnsRequest { returns: vec![r] })
            .await
            .expect("ok");
        let t = ticket(
            &format!("t-{who}"),
            &c,
            pb::TicketStatus::Open,
            &format!("o-{who}"),
            50,
        );
        ingest
            .upsert_tickets(pb::UpsertTicketsRequest { tickets: vec![t] })
            .await
            .expect("ok");
        // An agent reads the context: an access-log entry.
        let agent = Key::bearer(&app.key(Role::Agent).await);
        app.context_as(agent)
            .get_customer_context(by(Identity::CustomerId(c.clone())))
            .await
            .expect("read");
    }
}

/// Rows anywhere in the database (every table, every text column, found
/// from the schema) that mention any needle.
async fn traces(app: &TestApp, needles: &[&str]) -> Vec<(String, u64)> {
    let needles: Vec<String> = needles.iter().map(|n| n.to_string()).collect();
    let mut found = Vec::new();
    let tables = app.store.text_columns().await.expect("schema");
    assert!(
        tables.len() >= 15,
        "the sweep sees the whole schema: {tables:?}"
    );
    for (table, columns) in tables {
        let n = app
            .store
            .rows_mentioning(&table, &columns, &needles)
            .await
            .expect("sweep");
        if n > 0 {
            found.push((table, n));
        }
    }
    found
}

/// Customers with 0, 1, 0, 2, 1 and 0 anonymous ids erased in turn over
/// one database connection (so each statement meets the plans the
/// connection cached for the ones before), then exported and erased
/// again: every erasure succeeds and leaves nothing.
async fn erasure_works_whatever_the_connection_erased_before(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let anonymous_counts = [0usize, 1, 0, 2, 1, 0];
    let mut customers = Vec::new();
    let mut events = Vec::new();
    for (i, n) in anonymous_counts.iter().enumerate() {
        let id = format!("c-one-conn-{i}");
        let mut c = customer(&id, "Erasable", &format!("e{i}@example.com"), "", "");
        for a in 0..*n {
            let anon = format!("anon-one-conn-{i}-{a}");
            events.push(event(
                &format!("m-{i}-{a}"),
                "",
                &anon,
                pb::BrowsingEventType::ProductViewed,
                "shell-m",
                5,
            ));
            c.anonymous_ids.push(anon);
        }
        events.push(view(&format!("m-{i}"), &id, "shell-m", 4));
        customers.push(c);
    }
    let mut ingest = app.ingest.clone();
    ingest
        .upsert_customers(pb::UpsertCustomersRequest { customers })
        .await
        .expect("customers stored");
    ingest
        .record_events(pb::RecordEventsRequest { events })
        .await
        .expect("events stored");
    let one = customer_context::store::Store::connect(
        &app.database_url,
        &customer_context::store::StoreOptions {
            max_connections: 1,
            ..Default::default()
        },
    )
    .await
    .expect("a one-connection store");
    for (i, n) in anonymous_counts.iter().enumerate() {
        let id =
            customer_context::domain::CustomerId::parse(&format!("c-one-conn-{i}")).expect("an id");
        let exported = one.export_customer(&id).await.expect("exported");
        let events = exported
            .iter()
            .find(|(t, _)| t == "events")
            .map_or(0, |(_, rows)| rows.len());
        assert_eq!(
            events,
            1 + n,
            "customer {i}: their own and their visits' events, once each"
        );
        let receipt = one.erase_customer(&id).await.expect("erased");
        assert_eq!(
            receipt.deleted.get("events"),
            Some(&(1 + *n as u64)),
            "customer {i}"
        );
        assert_eq!(receipt.deleted.get("customers"), Some(&1), "customer {i}");
        let left = one.export_customer(&id).await.expect("exported again");
        assert!(
            left.iter().all(|(_, rows)| rows.is_empty()),
            "customer {i}: {left:?}"
        );
    }
    one.close().await;
}

async fn erasure_removes_every_trace_and_suppresses_later_data(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    seed_two_customers(&app).await;
    // Every identifier of Erin's (ids are chosen to be unmistakable).
    let erin_needles = [
        "c-erin",
        "erin@",
        "anon-erin",
        "l-erin",
        "o-erin",
        "r-erin",
        "t-erin",
        "m-erin",
        "Erin Example",
        "5550109999",
        "gift for erin",
    ];
    let before = traces(&app, &erin_needles).await;
    for table in [
        "customers",
        "identities",
        "events",
        "orders",
        "returns",
        "tickets",
        "access_log",
    ] {
        assert!(
            before.iter().any(|(t, _)| t == table),
            "{table} holds Erin's data before: {before:?}"
        );
    }
    let kim_before = context_of(&app, Identity::CustomerId("c-kim".into())).await;

    // Export first: a data-subject access request sees everything.
    let mut export = app
        .privacy
        .clone()
        .export_customer_data(pb::ExportCustomerDataRequest {
            customer: Some(pb::CustomerRef {
                identity: Some(Identity::Email("erin@example.com".into())),
            }),
        })
        .await
        .expect("export")
        .into_inner();
    let mut exported = std::collections::BTreeMap::new();
    while let Some(chunk) = export.message().await.expect("chunk") {
        *exported.entry(chunk.table.clone()).or_insert(0) += chunk.rows_json.len();
        for row in &chunk.rows_json {
            let v: serde_json::Value = serde_json::from_str(row).expect("json row");
            assert!(v.is_object());
        }
    }
    assert_eq!(exported.get("events"), Some(&3));
    assert_eq!(exported.get("orders"), Some(&1));
    assert_eq!(exported.get("order_lines"), Some(&2));
    assert_eq!(exported.get("consents"), Some(&1));
    assert_eq!(exported.get("identities"), Some(&4));

    let receipt = app
        .privacy
        .clone()
        .erase_customer(pb::EraseCustomerRequest {
            customer: Some(pb::CustomerRef {
                identity: Some(Identity::Phone("+15550109999".into())),
            }),
        })
        .await
        .expect("erased")
        .into_inner();
    assert_eq!(receipt.customer_id, "c-erin");
    let deleted: std::collections::BTreeMap<String, u64> = receipt
        .deleted
        .iter()
        .map(|t| (t.table.clone(), t.rows))
        .collect();
    assert_eq!(deleted.get("events"), Some(&3));
    assert_eq!(deleted.get("order_lines"), Some(&2));
    assert_eq!(deleted.get("customers"), Some(&1));
    assert_eq!(
        receipt.suppressed_identities, 5,
        "customer id, email, phone, loyalty id, anonymous id"
    );

    assert_eq!(
        traces(&app, &erin_needles).await,
        Vec::<(String, u64)>::new(),
        "no trace of Erin anywhere"
    );
    let kim_after = context_of(&app, Identity::CustomerId("c-kim".into())).await;
    assert_eq!(kim_after.profile, kim_before.profile, "Kim is untouched");
    assert_eq!(kim_after.recent_orders, kim_before.recent_orders);
    assert_eq!(kim_after.returns, kim_before.returns);
    assert_eq!(kim_after.open_tickets, kim_before.open_tickets);
    assert_eq!(
        kim_after.recent_browsing.len(),
        kim_before.recent_browsing.len()
    );
    assert!(!traces(&app, &["c-kim"]).await.is_empty());

    for identity in [
        Identity::CustomerId("c-erin".into()),
        Identity::Email("erin@example.com".into()),
        Identity::AnonymousId("anon-erin".into()),
    ] {
        assert_eq!(
            code(context(&app, by(identity.clone())).await),
            Code::NotFound,
            "{identity:?}"
        );
    }

    // Anything naming Erin again is dropped.
    let mut ingest = app.ingest.clone();
    let resent = ingest
        .record_events(pb::RecordEventsRequest {
            events: vec![
                view("m-erin-1", "c-erin", "shell-m", 30),
                event(
                    "m-erin-new",
                    "",
                    "anon-erin",
                    pb::BrowsingEventType::ProductViewed,
                    "socks",
                    1,
                ),
                view("m-kim-new", "c-kim", "socks", 1),
            ],
        })
        .await
        .expect("ok")
        .into_inner();
    assert_eq!(
        outcomes(&resent.results),
        [O::Suppressed, O::Suppressed, O::Created]
    );
    assert_eq!(resent.summary.expect("summary").suppressed, 2);
    // One batch naming her and Kim: only hers is dropped.
    let o = order("o-erin-2", "c-erin", 1, vec![line("socks", 1, 1900)]);
    let kims = order("o-kim-2", "c-kim", 1, vec![line("socks", 1, 1900)]);
    let r = ingest
        .record_orders(pb::RecordOrdersRequest {
            orders: vec![kims, o],
        })
        .await
        .expect("ok")
        .into_inner();
    assert_eq!(outcomes(&r.results), [O::Created, O::Suppressed]);
    let c = customer("c-erin-2", "Erin Again", "erin@example.com", "", "");
    let r = ingest
        .upsert_customers(pb::UpsertCustomersRequest { customers: vec![c] })
        .await
        .expect("ok")
        .into_inner();
    assert_eq!(
        outcomes(&r.results),
        [O::Suppressed],
        "a new id with an erased email is dropped too"
    );
    let t = ticket("t-erin-2", "c-erin", pb::TicketStatus::Open, "", 1);
    let r = ingest
        .upsert_tickets(pb::UpsertTicketsRequest { tickets: vec![t] })
        .await
        .expect("ok")
        .into_inner();
    assert_eq!(outcomes(&r.results), [O::Suppressed]);
    let link = pb::LinkIdentityRequest {
        customer_id: "c-kim".into(),
        kind: pb::IdentityKind::AnonymousId.into(),
        value: "anon-erin".into(),
    };
    assert_eq!(
        ingest
            .link_identity(link)
            .await
            .expect("ok")
            .into_inner()
            .outcome(),
        O::Suppressed
    );
    // A helpdesk's user resolved to her while she was being erased: the
    // link is not kept (Kim's, in the same call, is).
    app.store
        .save_links(
            "helpdesk",
            "user",
            &[
                ("ext-erin".into(), "c-erin".into(), Some("c-erin".into())),
                ("ext-kim".into(), "c-kim".into(), Some("c-kim".into())),
            ],
        )
        .await
        .expect("saved");
    assert_eq!(
        traces(&app, &["ext-erin", "ext-kim"]).await,
        [("webhook_links".to_owned(), 1)]
    );
    assert_eq!(
        traces(&app, &erin_needles).await,
        Vec::<(String, u64)>::new(),
        "still no trace"
    );

    let again = app
        .privacy
        .clone()
        .erase_customer(pb::EraseCustomerRequest {
            customer: Some(pb::CustomerRef {
                identity: Some(Identity::CustomerId("c-erin".into())),
            }),
        })
        .await;
    assert_eq!(code(again), Code::NotFound);
}

async fn contact_details_are_masked_by_role(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.ingest
        .clone()
        .upsert_customers(pb::UpsertCustomersRequest {
            customers: vec![customer(
                "c1",
                "Jane Doe",
                "jane.doe@example.com",
                "+1 555 010 2001",
                "",
            )],
        })
        .await
        .expect("ok");
    for (role, masked) in [
        (Role::Agent, true),
        (Role::Stylist, true),
        (Role::Privacy, false),
        (Role::Admin, false),
    ] {
        let key = Key::bearer(&app.key(role).await);
        let ctx = app
            .context_as(key)
            .get_customer_context(by(Identity::Email("jane.doe@example.com".into())))
            .await
            .expect("read")
            .into_inner();
        let p = ctx.profile.expect("profile");
        assert_eq!(ctx.contact_details_masked, masked, "{role}");
        if masked {
            assert_eq!(
                (p.email.as_str(), p.phone.as_str()),
                ("j•••@example.com", "•••••••2001"),
                "{role}"
            );
        } else {
            assert_eq!(
                (p.email.as_str(), p.phone.as_str()),
                ("jane.doe@example.com", "+15550102001"),
                "{role}"
            );
        }
        assert_eq!(p.display_name, "Jane Doe");
    }
    let crm = Key::bearer(&app.key(Role::Crm).await);
    let denied = app
        .context_as(crm)
        .get_customer_context(by(Identity::CustomerId("c1".into())))
        .await;
    assert_eq!(code(denied), Code::PermissionDenied);
}

async fn consent_is_checked_at_query_time(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    seed_two_customers(&app).await;
    let ctx = context_of(&app, Identity::CustomerId("c-erin".into())).await;
    assert!(!ctx.history_withheld);
    assert_eq!(ctx.consents.len(), 1);
    assert_eq!(
        ctx.consents[0].purpose(),
        pb::ConsentPurpose::PersonalisedSuggestions
    );
    assert!(!ctx.consents[0].granted);
    assert_eq!(ctx.consents[0].source, "ingest");

    let set = |granted: bool, minutes_ago: i64| pb::SetConsentRequest {
        customer_id: "c-erin".into(),
        consents: vec![pb::Consent {
            purpose: pb::ConsentPurpose::SupportContext.into(),
            granted,
            updated_at: Some(ago(minutes_ago)),
            source: String::new(),
        }],
    };
    let r = app
        .privacy
        .clone()
        .set_consent(set(false, 5))
        .await
        .expect("ok")
        .into_inner();
    assert_eq!(r.consents.len(), 2);
    let ctx = context_of(&app, Identity::CustomerId("c-erin".into())).await;
    assert!(ctx.history_withheld);
    assert!(
        ctx.recent_browsing.is_empty() && ctx.recent_orders.is_empty() && ctx.returns.is_empty()
    );
    assert!(ctx.open_tickets.is_empty() && ctx.recent_searches.is_empty());
    assert_eq!(ctx.profile.as_ref().expect("profile").order_count, 0);
    assert!(
        ctx.agent_brief.contains("withdrew consent"),
        "{}",
        ctx.agent_brief
    );

    // An older grant arriving late does not override the withdrawal.
    app.privacy
        .clone()
        .set_consent(set(true, 60))
        .await
        .expect("ok");
    assert!(
        context_of(&app, Identity::CustomerId("c-erin".into()))
            .await
            .history_withheld
    );
    // A newer grant does.
    app.privacy
        .clone()
        .set_consent(set(true, 1))
        .await
        .expect("ok");
    let ctx = context_of(&app, Identity::CustomerId("c-erin".into())).await;
    assert!(!ctx.history_withheld);
    assert_eq!(ctx.recent_orders.len(), 1);

    let bad = pb::SetConsentRequest {
        customer_id: String::new(),
        consents: vec![pb::Consent {
            purpose: 0,
            granted: true,
            updated_at: None,
            source: String::new(),
        }],
    };
    let status = app.privacy.clone().set_consent(bad).await.expect_err("bad");
    assert_eq!(
        violated_fields(&status),
        [
            "customer_id",
            "consents[0].purpose",
            "consents[0].updated_at"
        ]
    );
}

async fn access_log_answers_who_looked(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.ingest
        .clone()
        .upsert_customers(pb::UpsertCustomersRequest {
            customers: vec![customer("c1", "Maya", "", "", "")],
        })
        .await
        .expect("ok");
    let agent = app.key(Role::Agent).await;
    let stylist = app.key(Role::Stylist).await;
    for key in [&agent, &agent, &stylist] {
        app.context_as(Key::bearer(key))
            .get_customer_context(by(Identity::CustomerId("c1".into())))
            .await
            .expect("read");
    }
    // A NOT_FOUND lookup read nothing and is not logged against anyone:
    // an id that names no one stored leaves no trace anywhere.
    let nobody = [
        Identity::CustomerId("c-nobody".into()),
        Identity::AnonymousId("v-nobody".into()),
    ];
    for key in nobody {
        let missing = app
            .context_as(Key::bearer(&agent))
            .get_customer_context(by(key))
            .await;
        assert_eq!(code(missing), Code::NotFound);
    }
    assert_eq!(
        traces(&app, &["c-nobody", "v-nobody"]).await,
        Vec::<(String, u64)>::new()
    );

    let list = |token: String| pb::ListAccessLogRequest {
        customer: Some(pb::CustomerRef {
            identity: Some(Identity::CustomerId("c1".into())),
        }),
        page_size: 2,
        page_token: token,
    };
    let first = app
        .privacy
        .clone()
        .list_access_log(list(String::new()))
        .await
        .expect("ok")
        .into_inner();
    assert_eq!(first.entries.len(), 2);
    assert_eq!(first.entries[0].key_name, "test stylist", "newest first");
    assert_eq!(first.entries[0].role, "stylist");
    assert_eq!(
        first.entries[0].rpc,
        "/customer_context.v1.CustomerContextService/GetCustomerContext"
    );
    assert_eq!(first.entries[0].customer_id, "c1");
    assert!(!first.next_page_token.is_empty());
    let second = app
        .privacy
        .clone()
        .list_access_log(list(first.next_page_token))
        .await
        .expect("ok")
        .into_inner();
    assert_eq!(second.entries.len(), 1);
    assert_eq!(second.entries[0].key_name, "test agent");
    assert!(second.next_page_token.is_empty());
    let ids: std::collections::HashSet<String> = first
        .entries
        .iter()
        .chain(&second.entries)
        .map(|e| e.key_id.clone())
        .collect();
    assert_eq!(ids.len(), 2, "two keys read the customer");

    let bad = app
        .privacy
        .clone()
        .list_access_log(list("garbage".into()))
        .await
        .expect_err("bad token");
    assert_eq!(violated_fields(&bad), ["page_token"]);
    let mut too_big = list(String::new());
    too_big.page_size = 501;
    assert_eq!(
        violated_fields(
            &app.privacy
                .clone()
                .list_access_log(too_big)
                .await
                .expect_err("bad")
        ),
        ["page_size"]
    );

    // An export reads everything about the customer: it is on record too.
    let mut export = app
        .privacy
        .clone()
        .export_customer_data(pb::ExportCustomerDataRequest {
            customer: Some(pb::CustomerRef {
                identity: Some(Identity::CustomerId("c1".into())),
            }),
        })
        .await
        .expect("export")
        .into_inner();
    while export.message().await.expect("chunk").is_some() {}
    let mut newest = list(String::new());
    newest.page_size = 1;
    let newest = app
        .privacy
        .clone()
        .list_access_log(newest)
        .await
        .expect("ok")
        .into_inner();
    assert_eq!(
        newest.entries[0].rpc,
        "/customer_context.v1.PrivacyService/ExportCustomerData"
    );
    assert_eq!(newest.entries[0].customer_id, "c1");

    // The writer keeps an entry only for someone stored when it commits:
    // a read that raced an erasure (its entry written after the customer
    // was gone) leaves no trace of them.
    let entry = |n: u8, customer: Option<&str>, anonymous: Option<&str>| AccessEntry {
        entry_id: format!("{n:024x}"),
        at: Timestamp::now(),
        key_id: "raced-key".into(),
        key_name: "raced".into(),
        role: "agent".into(),
        rpc: "/customer_context.v1.CustomerContextService/GetCustomerContext".into(),
        customer_id: customer.map(str::to_owned),
        anonymous_id: anonymous.map(str::to_owned),
    };
    app.store
        .append_access(&[
            entry(1, Some("c-gone"), None),
            entry(2, None, Some("v-gone")),
            entry(3, Some("c1"), None),
        ])
        .await
        .expect("appended");
    assert_eq!(
        traces(&app, &["c-gone", "v-gone"]).await,
        Vec::<(String, u64)>::new()
    );
    assert_eq!(
        traces(&app, &["raced-key"]).await,
        [("access_log".to_owned(), 1)],
        "the entry of a stored customer is kept"
    );
}

/// An access-log entry whose writer checked the customer before an
/// erasure began, and commits while the erasure runs: the erasure waits
/// for it and deletes it too. (On PostgreSQL each statement reads a
/// snapshot of its own, so without the wait the entry would land after
/// the log's rows were deleted; SQLite writes one transaction at a time.)
async fn an_access_entry_being_written_does_not_outlive_an_erasure(backend: Backend) {
    use sqlx::Connection as _;
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    app.ingest
        .clone()
        .upsert_customers(pb::UpsertCustomersRequest {
            customers: vec![customer("c-raced", "Maya", "", "", "")],
        })
        .await
        .expect("ok");
    // The writer, between its check and its commit.
    let mut writer = sqlx::AnyConnection::connect(&app.database_url)
        .await
        .expect("a second connection");
    let begin = match backend {
        Backend::Sqlite => "BEGIN IMMEDIATE",
        Backend::Postgres => "BEGIN",
    };
    sqlx::raw_sql(begin)
        .execute(&mut writer)
        .await
        .expect("begun");
    sqlx::raw_sql(
        "INSERT INTO access_log (entry_id, at, key_id, key_name, role, rpc, customer_id, anonymous_id) \
         VALUES ('0000000000000000000raced', 1, 'raced-key', 'raced', 'agent', '/x', 'c-raced', NULL)",
    )
    .execute(&mut writer)
    .await
    .expect("entry written");
    let store = app.store.clone();
    let erasure = tokio::spawn(async move {
        let id = customer_context::domain::CustomerId::parse("c-raced").expect("an id");
        store.erase_customer(&id).await
    });
    // Commit once the erasure waits for the writer (or, were it not to
    // wait, once it is done: then the entry outlives it and the test
    // fails below). SQLite's erasure cannot start before the commit.
    if backend == Backend::Postgres {
        assert!(
            until_waiting(&app, 1, || erasure.is_finished()).await,
            "the erasure waits for the access-log writer"
        );
    }
    sqlx::raw_sql("COMMIT")
        .execute(&mut writer)
        .await
        .expect("committed");
    erasure.await.expect("joined").expect("erased");
    assert_eq!(
        traces(&app, &["c-raced"]).await,
        Vec::<(String, u64)>::new(),
        "nothing of the erased customer is left"
    );
}

/// Waits until `n` sessions of the test's PostgreSQL database wait for a
/// lock, or `done()` says the awaited work ended without waiting (then
/// `false`). Polls a state; no timing is assumed.
async fn until_waiting(app: &TestApp, n: i64, done: impl Fn() -> bool) -> bool {
    use sqlx::Connection as _;
    let mut observer = sqlx::AnyConnection::connect(&app.database_url)
        .await
        .expect("an observer");
    for _ in 0..3000 {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut observer)
        .await
        .expect("activity");
        if waiting >= n {
            return true;
        }
        if done() {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("no session came to wait for a lock, and the work did not end");
}

/// An order recorded while an erasure of its customer runs: either it is
/// stored before and erased with the rest, or it is answered SUPPRESSED.
/// Never does it bring the erased customer back. (On PostgreSQL the
/// order's suppression check reads a snapshot of its own: the erasure is
/// held at the customer's row, the order sent meanwhile, then both let
/// go. SQLite writes one transaction at a time.)
async fn an_order_racing_an_erasure_does_not_bring_the_customer_back(backend: Backend) {
    use sqlx::Connection as _;
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    seed_catalog(&app).await;
    let mut ingest = app.ingest.clone();
    ingest
        .upsert_customers(pb::UpsertCustomersRequest {
            customers: vec![customer("c-racer", "Rae", "", "", "")],
        })
        .await
        .expect("ok");
    ingest
        .record_orders(pb::RecordOrdersRequest {
            orders: vec![order(
                "o-racer-1",
                "c-racer",
                60,
                vec![line("shell-m", 1, 100)],
            )],
        })
        .await
        .expect("ok");
    // Something else holds the customer's row for a moment.
    let mut holder = sqlx::AnyConnection::connect(&app.database_url)
        .await
        .expect("a second connection");
    let hold = match backend {
        Backend::Sqlite => "BEGIN IMMEDIATE",
        Backend::Postgres => {
            "BEGIN; SELECT 1 FROM customers WHERE customer_id = 'c-racer' FOR UPDATE"
        }
    };
    sqlx::raw_sql(hold)
        .execute(&mut holder)
        .await
        .expect("held");
    let store = app.store.clone();
    let erasure = tokio::spawn(async move {
        let id = customer_context::domain::CustomerId::parse("c-racer").expect("an id");
        store.erase_customer(&id).await
    });
    if backend == Backend::Postgres {
        assert!(
            until_waiting(&app, 1, || erasure.is_finished()).await,
            "the erasure reaches the customer's row"
        );
    }
    let mut late = app.ingest.clone();
    let order = tokio::spawn(async move {
        late.record_orders(pb::RecordOrdersRequest {
            orders: vec![order(
                "o-racer-2",
                "c-racer",
                1,
                vec![line("shell-m", 1, 100)],
            )],
        })
        .await
    });
    if backend == Backend::Postgres {
        assert!(
            until_waiting(&app, 2, || order.is_finished()).await,
            "the order waits too"
        );
    }
    sqlx::raw_sql("COMMIT")
        .execute(&mut holder)
        .await
        .expect("let go");
    erasure.await.expect("joined").expect("erased");
    let answer = order.await.expect("joined").expect("answered").into_inner();
    let outcome = outcomes(&answer.results);
    assert!(
        outcome == [O::Suppressed] || outcome == [O::Created],
        "{outcome:?}"
    );
    if backend == Backend::Postgres {
        assert_eq!(outcome, [O::Suppressed], "the order came second");
    }
    assert_eq!(
        traces(&app, &["c-racer", "o-racer"]).await,
        Vec::<(String, u64)>::new(),
        "nothing of the erased customer is left"
    );
}

async fn overload_and_rate_limits_answer_resource_exhausted(backend: Backend) {
    // One stream open at most: a client stream held open fills it.
    let gate = GateConfig {
        max_streams: 1,
        ..GateConfig::default()
    };
    let Some(app) = spawn_configured(backend, false, gate, None).await else {
        return;
    };
    seed_catalog(&app).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::BrowsingEvent>(4000);
    let mut ingest = app.ingest.clone();
    let held = tokio::spawn(async move {
        ingest
            .stream_events(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    for i in 0..customer_context::api::STREAM_FLUSH {
        tx.send(view(&format!("h{i}"), "c1", "socks", 10))
            .await
            .expect("send");
    }
    // The server commits every STREAM_FLUSH events: once they are visible,
    // the stream has been admitted and is still in flight.
    let mut admitted = false;
    for _ in 0..600 {
        if app
            .store
            .resolve(&customer_context::domain::CustomerKey::Id(
                customer_context::domain::CustomerId::parse("c1").expect("id"),
            ))
            .await
            .expect("resolve")
            .is_some()
        {
            admitted = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(admitted, "the stream's first batch was committed");
    let (_tx2, rx2) = tokio::sync::mpsc::channel::<pb::BrowsingEvent>(1);
    let shed = app
        .ingest
        .clone()
        .stream_events(tokio_stream::wrappers::ReceiverStream::new(rx2))
        .await
        .expect_err("shed");
    assert_eq!(shed.code(), Code::ResourceExhausted);
    assert!(shed.message().contains("overloaded"), "{}", shed.message());
    // An open stream does not take a unary call's place.
    assert_eq!(
        code(
            app.context
                .clone()
                .get_customer_context(by(Identity::CustomerId("c1".into())))
                .await
        ),
        Code::Ok
    );
    drop(tx);
    let done = held
        .await
        .expect("joined")
        .expect("the stream completes")
        .into_inner();
    assert_eq!(
        done.summary.expect("summary").created,
        customer_context::api::STREAM_FLUSH as u32
    );
    // Its place is free again.
    let again = app
        .ingest
        .clone()
        .stream_events(tokio_stream::iter(vec![view("h-again", "c1", "socks", 1)]))
        .await
        .expect("a new stream is admitted")
        .into_inner();
    assert_eq!(again.summary.expect("summary").created, 1);
    drop(app);

    // Two calls per key, then refused; another key is unaffected.
    let gate = GateConfig {
        rate_per_key: 0.0001,
        burst_per_key: 2.0,
        ..GateConfig::default()
    };
    let Some(app) = spawn_configured(backend, false, gate, None).await else {
        return;
    };
    let key = Key::bearer(&app.key(Role::Ingest).await);
    let mut limited = app.ingest_as(key);
    let req = || pb::UpsertProductsRequest {
        products: vec![product("p1", "Hat", &["Accessories"], 900, 1)],
    };
    assert_eq!(code(limited.upsert_products(req()).await), Code::Ok);
    assert_eq!(code(limited.upsert_products(req()).await), Code::Ok);
    let refused = limited.upsert_products(req()).await.expect_err("limited");
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert!(
        refused.message().contains("rate limit"),
        "{}",
        refused.message()
    );
    let other = Key::bearer(&app.key(Role::Ingest).await);
    assert_eq!(
        code(app.ingest_as(other).upsert_products(req()).await),
        Code::Ok
    );
}

struct Pki {
    dir: tempfile::TempDir,
    ca: String,
    client_cert: String,
    client_key: String,
}

fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let dir = tempfile::tempdir().expect("dir");
    let ca_key = KeyPair::generate().expect("key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).expect("ca");
    let issuer = Issuer::from_params(&ca_params, &ca_key);
    let server_key = KeyPair::generate().expect("key");
    let server = CertificateParams::new(vec!["localhost".to_string()])
        .expect("params")
        .signed_by(&server_key, &issuer)
        .expect("server cert");
    let client_key = KeyPair::generate().expect("key");
    let client = CertificateParams::new(vec!["crm-plugin".to_string()])
        .expect("params")
        .signed_by(&client_key, &issuer)
        .expect("client cert");
    std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).expect("write");
    std::fs::write(dir.path().join("server.pem"), server.pem()).expect("write");
    std::fs::write(dir.path().join("server.key"), server_key.serialize_pem()).expect("write");
    Pki {
        ca: ca_cert.pem(),
        client_cert: client.pem(),
        client_key: client_key.serialize_pem(),
        dir,
    }
}

async fn tls_channel(
    app: &TestApp,
    pki: &Pki,
    with_client_cert: bool,
) -> Result<tonic::transport::Channel, String> {
    use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity as TlsIdentity};
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&pki.ca))
        .domain_name("localhost");
    if with_client_cert {
        tls = tls.identity(TlsIdentity::from_pem(&pki.client_cert, &pki.client_key));
    }
    Channel::from_shared(format!("https://127.0.0.1:{}", app.addr.port()))
        .expect("uri")
        .tls_config(tls)
        .expect("tls")
        .connect()
        .await
        .map_err(|e| format!("{e:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_mutual_tls() {
    let pki = pki();
    let files = |client_ca: bool| TlsFiles {
        cert: pki.dir.path().join("server.pem"),
        key: pki.dir.path().join("server.key"),
        client_ca: client_ca.then(|| pki.dir.path().join("ca.pem")),
    };

    // TLS: a client trusting the CA gets in; plaintext does not.
    let Some(app) = spawn_configured(
        Backend::Sqlite,
        false,
        GateConfig::default(),
        Some(files(false)),
    )
    .await
    else {
        return;
    };
    let admin = Key::bearer(&app.key(Role::Admin).await);
    let channel = tls_channel(&app, &pki, false)
        .await
        .expect("a TLS connection");
    let mut client = customer_context::proto::customer_context_service_client::CustomerContextServiceClient::with_interceptor(
        channel, admin.clone(),
    );
    let r = client
        .get_customer_context(by(Identity::CustomerId("nobody".into())))
        .await;
    assert_eq!(code(r), Code::NotFound, "served over TLS");
    let plain = tonic::transport::Channel::from_shared(format!("http://{}", app.addr))
        .expect("uri")
        .connect()
        .await;
    if let Ok(plain) = plain {
        let mut client =
            customer_context::proto::customer_context_service_client::CustomerContextServiceClient::new(plain);
        assert!(
            client
                .get_customer_context(by(Identity::CustomerId("x".into())))
                .await
                .is_err()
        );
    }
    drop(app);

    // mTLS: without a client certificate the handshake fails.
    let Some(app) = spawn_configured(
        Backend::Sqlite,
        false,
        GateConfig::default(),
        Some(files(true)),
    )
    .await
    else {
        return;
    };
    let admin = Key::bearer(&app.key(Role::Admin).await);
    let refused = match tls_channel(&app, &pki, false).await {
        Err(_) => true,
        Ok(channel) => {
            let mut client = customer_context::proto::customer_context_service_client::CustomerContextServiceClient::with_interceptor(
                channel,
                admin.clone(),
            );
            client
                .get_customer_context(by(Identity::CustomerId("x".into())))
                .await
                .is_err_and(|s| s.code() != Code::NotFound)
        }
    };
    assert!(refused, "a client without a certificate is refused");
    let channel = tls_channel(&app, &pki, true)
        .await
        .expect("an mTLS connection");
    let mut client =
        customer_context::proto::customer_context_service_client::CustomerContextServiceClient::with_interceptor(channel, admin);
    assert_eq!(
        code(
            client
                .get_customer_context(by(Identity::CustomerId("nobody".into())))
                .await
        ),
        Code::NotFound
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_can_be_disabled_only_on_loopback() {
    use customer_context::{
        startup::{Application, ServeConfig},
        store::{StoreOptions, sqlite_url},
    };
    let dir = tempfile::tempdir().expect("dir");
    let config = |listen: &str| ServeConfig {
        listen: listen.parse().expect("addr"),
        database_url: sqlite_url(&dir.path().join("db.sqlite")),
        store: StoreOptions::default(),
        gate: GateConfig {
            auth: false,
            ..GateConfig::default()
        },
        tls: None,
        suggest: Default::default(),
        model_rebuild_every: None,
        model: customer_context::suggest::ModelConfig::default(),
        customer_memory: customer_context::suggest::memo::CUSTOMER_BYTES,
        connectors: Default::default(),
        frame_origins: Vec::new(),
        retention: Default::default(),
    };
    let err = Application::build(&config("0.0.0.0:0"))
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("loopback"), "{err}");
    let app = Application::build(&config("127.0.0.1:0"))
        .await
        .expect("allowed on loopback");
    let addr = app.local_addr();
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    let mut client =
        customer_context::proto::customer_context_service_client::CustomerContextServiceClient::connect(format!("http://{addr}"))
            .await
            .expect("connect");
    let r = client
        .get_customer_context(by(Identity::CustomerId("nobody".into())))
        .await;
    assert_eq!(code(r), Code::NotFound, "no key needed in development mode");
}

/// Two replicas on one database: a key revoked through one is refused by
/// the other on its very next call (keys are read per call, not cached).
async fn a_revocation_reaches_every_replica(backend: Backend) {
    use customer_context::startup::{Application, ServeConfig};
    let Some(first) = spawn_app(backend).await else {
        return;
    };
    let config = ServeConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        database_url: first.database_url.clone(),
        store: customer_context::store::StoreOptions::default(),
        gate: GateConfig::default(),
        tls: None,
        suggest: Default::default(),
        model_rebuild_every: None,
        model: customer_context::suggest::ModelConfig::default(),
        customer_memory: customer_context::suggest::memo::CUSTOMER_BYTES,
        connectors: Default::default(),
        frame_origins: Vec::new(),
        retention: Default::default(),
    };
    let second = Application::build(&config).await.expect("a second replica");
    let second_addr = second.local_addr();
    tokio::spawn(second.run_until_stopped(std::future::pending()));
    let channel = tonic::transport::Channel::from_shared(format!("http://{second_addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");

    let (key, token) = first
        .store
        .create_key("replicated", Role::Agent)
        .await
        .expect("key");
    let mut client = customer_context::proto::customer_context_service_client::CustomerContextServiceClient::with_interceptor(
        channel,
        Key::bearer(&token),
    );
    let read = by(Identity::CustomerId("nobody".into()));
    assert_eq!(
        code(client.get_customer_context(read.clone()).await),
        Code::NotFound,
        "the key works on replica 2"
    );
    assert!(first.store.revoke_key(&key.key_id).await.expect("revoked"));
    assert_eq!(
        code(client.get_customer_context(read).await),
        Code::Unauthenticated,
        "and is refused right after"
    );
}
