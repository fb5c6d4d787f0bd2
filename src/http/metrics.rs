//! `GET /metrics`: the counters, and gauges read now (database pools, the
//! suggestion model, the change feed), in Prometheus text.

use axum::{extract::State, response::IntoResponse};

use super::Faces;
use crate::{domain::Timestamp, metrics::Text};

/// The scrape.
pub async fn scrape(State(a): State<Faces>) -> impl IntoResponse {
    let mut out = Text::default();
    a.metrics.render(&mut out);
    out.family(
        "cc_db_pool_connections",
        "gauge",
        "Database connections by pool (reader, writer; shared on PostgreSQL) and state (open, idle, max).",
    );
    for (pool, open, idle, max) in a.store.pool_use() {
        for (state, n) in [("open", open), ("idle", idle), ("max", max)] {
            out.sample(
                "cc_db_pool_connections",
                &[("pool", pool), ("state", state)],
                f64::from(n),
            );
        }
    }
    let (version, built_at) = (a.live.version(), a.live.read(|m| m.built_at));
    out.gauge(
        "cc_model_version",
        "The suggestion model snapshot this replica serves (0: none built yet).",
        version as f64,
    );
    let age = if version > 0 {
        (Timestamp::now().millis() - built_at).max(0) as f64 / 1000.0
    } else {
        0.0
    };
    out.gauge(
        "cc_model_age_seconds",
        "Seconds since the served model snapshot was built (0 with none).",
        age,
    );
    ranking(&mut out, &a.live.read(|m| m.ranking.clone()));
    let applied = a.live.applied();
    out.gauge(
        "cc_change_feed_applied",
        "The last change-feed entry this replica applied to its model.",
        applied as f64,
    );
    if let Ok(head) = a.store.feed_head().await {
        out.gauge(
            "cc_change_feed_lag_entries",
            "Change-feed entries written (by any replica) that this replica has not applied yet.",
            (head - applied).max(0) as f64,
        );
    }
    out.family(
        "cc_retention_oldest_age_seconds",
        "gauge",
        "Age of the oldest stored record of each kind kept for a bounded time (events, access_log, purchases, solved tickets); absent when none is stored.",
    );
    for kind in crate::store::Aged::ALL {
        if let Ok(Some(oldest)) = a.store.oldest(kind).await {
            let age = (Timestamp::now().millis() - oldest.millis()).max(0) as f64 / 1000.0;
            out.sample(
                "cc_retention_oldest_age_seconds",
                &[("kind", kind.as_str())],
                age,
            );
        }
    }
    memory(&mut out, a.live.memo());
    let text = a.live.text();
    out.gauge(
        "cc_search_index_products",
        "Products in this replica's catalogue word index (search).",
        text.len() as f64,
    );
    out.family(
        "cc_search_index_answers_total",
        "counter",
        "Word-index answers since start: remembered (the same words and filters on an unchanged index) or computed.",
    );
    let (remembered, computed) = text.answered();
    for (from, n) in [("remembered", remembered), ("computed", computed)] {
        out.sample("cc_search_index_answers_total", &[("from", from)], n as f64);
    }
    out.gauge(
        "cc_database_up",
        "1 while the database answers health pings, 0 during an outage.",
        if a.store.reachable() { 1.0 } else { 0.0 },
    );
    (
        [(
            http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out.finish(),
    )
}

/// How full this replica's memory of customers and catalogue rows is.
fn memory(out: &mut Text, memo: &crate::suggest::memo::Memo) {
    let kinds = [
        ("customers", memo.customers.fill()),
        ("products", memo.products.fill()),
    ];
    for (name, kind, help, value) in [
        (
            "cc_replica_memory_bytes",
            "gauge",
            "What this replica keeps in memory of customers read and of catalogue rows, in bytes as weighed when kept (bounded by serve --customer-memory-mb for customers).",
            (|f: &crate::suggest::memo::Fill| f.bytes as f64) as fn(&_) -> f64,
        ),
        (
            "cc_replica_memory_keys",
            "gauge",
            "Customers and products this replica keeps in memory (read, or marked changed by the feed).",
            |f| f.keys as f64,
        ),
        (
            "cc_replica_memory_emptied_total",
            "counter",
            "Times this replica's memory of customers or products was full and forgotten at once (often: raise --customer-memory-mb).",
            |f| f.emptied as f64,
        ),
    ] {
        out.family(name, kind, help);
        for (k, fill) in &kinds {
            out.sample(name, &[("kind", k)], value(fill));
        }
    }
}

/// The served model's ranker and the validation numbers that chose it.
fn ranking(out: &mut Text, r: &crate::suggest::validate::Ranking) {
    use crate::suggest::validate::Ranker;
    out.family(
        "cc_model_ranker_served",
        "gauge",
        "1 for the ranker the served model picked on the shop's own latest orders (the blend when none beat it).",
    );
    for ranker in Ranker::ALL {
        let served = if ranker == r.served { 1.0 } else { 0.0 };
        out.sample(
            "cc_model_ranker_served",
            &[("ranker", ranker.name())],
            served,
        );
    }
    out.gauge(
        "cc_model_learned_trees",
        "Trees of the learned re-ranker the served model's build trained on the shop's earlier orders (0: too little history to train one; it was not a candidate).",
        r.learned.as_ref().map_or(0.0, |f| f.trees() as f64),
    );
    out.gauge(
        "cc_model_validation_customers",
        "Customers whose latest order the served model's build validated its rankers on (0: too little history; the blend is served).",
        f64::from(r.customers),
    );
    for (name, help, value) in [
        (
            "cc_model_validation_hit_rate",
            "Share of validation customers whose held-out latest order holds one of the ranker's 10 suggestions.",
            (|v: &crate::suggest::validate::Validation| v.hit_rate) as fn(&_) -> f64,
        ),
        (
            "cc_model_validation_previous_hit_rate",
            "The same on the order before each validation customer's latest (a model built without the latest two).",
            |v| v.previous_hit_rate,
        ),
        (
            "cc_model_validation_ndcg",
            "Mean NDCG@10 of the ranker on the validation customers' held-out latest orders.",
            |v| v.ndcg,
        ),
    ] {
        out.family(name, "gauge", help);
        for v in &r.validations {
            out.sample(name, &[("ranker", v.ranker.name())], value(v));
        }
    }
}
