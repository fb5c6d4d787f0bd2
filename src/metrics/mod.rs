//! Prometheus metrics: what every call did (protocol, method, code,
//! latency), calls in flight and refused, ingested items by kind and
//! outcome. Gauges read at scrape time (database pools, the suggestion
//! model, the change feed) are added by the `/metrics` handler. Labels are
//! bounded: a method is a known RPC or HTTP route, or `other`.

mod layer;
mod render;

use std::{
    collections::BTreeMap,
    sync::{
        Mutex,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
    time::Duration,
};

pub use layer::MetricsLayer;
pub use render::Text;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A latency histogram (cumulative on output).
#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.counts[i] += 1;
        }
        self.count += 1;
        self.sum += secs;
    }

    /// Its `_bucket` (cumulative), `_sum` and `_count` samples of `name`.
    fn render(&self, out: &mut Text, name: &str, labels: &[(&str, &str)]) {
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0;
        for (bound, c) in BUCKETS.iter().zip(self.counts) {
            cumulative += c;
            let le = bound.to_string();
            let mut with_le = labels.to_vec();
            with_le.push(("le", &le));
            out.sample(&bucket, &with_le, cumulative as f64);
        }
        let mut inf = labels.to_vec();
        inf.push(("le", "+Inf"));
        out.sample(&bucket, &inf, self.count as f64);
        out.sample(&format!("{name}_sum"), labels, self.sum);
        out.sample(&format!("{name}_count"), labels, self.count as f64);
    }
}

/// Why the gate refused a call before it ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Refusal {
    /// No place among running or queued calls (or streams).
    Overloaded,
    /// The call's deadline passed while it waited.
    DeadlinePassed,
    /// The database is unreachable.
    DatabaseUnavailable,
    /// The key's rate limit was exceeded.
    RateLimited,
}

impl Refusal {
    fn label(self) -> &'static str {
        match self {
            Refusal::Overloaded => "overloaded",
            Refusal::DeadlinePassed => "deadline_passed",
            Refusal::DatabaseUnavailable => "database_unavailable",
            Refusal::RateLimited => "rate_limited",
        }
    }
}

/// One call's labels.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct CallKey {
    protocol: &'static str,
    method: String,
    code: String,
}

/// The counters of one server.
#[derive(Debug, Default)]
pub struct Metrics {
    calls: Mutex<BTreeMap<CallKey, Histogram>>,
    in_flight: AtomicI64,
    refused: Mutex<BTreeMap<Refusal, u64>>,
    ingested: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    deliveries: Mutex<BTreeMap<(&'static str, &'static str, &'static str), u64>>,
    acknowledged: Mutex<BTreeMap<&'static str, Histogram>>,
    pruned: Mutex<BTreeMap<&'static str, u64>>,
    started: AtomicU64,
}

impl Metrics {
    /// Empty counters.
    pub fn new() -> Self {
        let metrics = Self::default();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        metrics.started.store(now.as_secs(), Ordering::Relaxed);
        metrics
    }

    /// Records a finished call.
    pub fn call(&self, protocol: &'static str, method: String, code: String, took: Duration) {
        let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        calls
            .entry(CallKey {
                protocol,
                method,
                code,
            })
            .or_default()
            .observe(took.as_secs_f64());
    }

    /// Records a refusal by the gate.
    pub fn refused(&self, why: Refusal) {
        let mut refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        *refused.entry(why).or_default() += 1;
    }

    /// Records `n` ingested items of `kind` (`event`, `order`, ...) that
    /// ended as `outcome` (`created`, `duplicate`, `rejected`, ...).
    pub fn ingested(&self, kind: &'static str, outcome: &'static str, n: u64) {
        if n == 0 {
            return;
        }
        let mut ingested = self.ingested.lock().unwrap_or_else(|p| p.into_inner());
        *ingested.entry((kind, outcome)).or_default() += n;
    }

    /// Records a webhook delivery from `source` of `topic` (a known topic
    /// or `other`) that ended as `outcome`, answered after `took`.
    pub fn delivery(
        &self,
        source: &'static str,
        topic: &'static str,
        outcome: &'static str,
        took: Duration,
    ) {
        let mut deliveries = self.deliveries.lock().unwrap_or_else(|p| p.into_inner());
        *deliveries.entry((source, topic, outcome)).or_default() += 1;
        drop(deliveries);
        let mut acknowledged = self.acknowledged.lock().unwrap_or_else(|p| p.into_inner());
        acknowledged
            .entry(source)
            .or_default()
            .observe(took.as_secs_f64());
    }

    /// Records `n` rows of `kind` deleted by age (retention).
    pub fn pruned(&self, kind: &'static str, n: u64) {
        let mut pruned = self.pruned.lock().unwrap_or_else(|p| p.into_inner());
        *pruned.entry(kind).or_default() += n;
    }

    fn enter(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    fn leave(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// The counters in Prometheus text.
    pub fn render(&self, out: &mut Text) {
        out.family(
            "cc_calls_total",
            "counter",
            "Calls answered, by protocol (grpc, grpc-web, http), method (RPC or HTTP route) and code (gRPC code name, or HTTP status).",
        );
        let calls = self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for (k, h) in &calls {
            let labels = [
                ("protocol", k.protocol),
                ("method", &k.method),
                ("code", &k.code),
            ];
            out.sample("cc_calls_total", &labels, h.count as f64);
        }
        out.family(
            "cc_call_duration_seconds",
            "histogram",
            "Time from a call's arrival to the end of its answer, by protocol and method (every code).",
        );
        let mut by_method: BTreeMap<(&str, &str), Histogram> = BTreeMap::new();
        for (k, h) in &calls {
            let sum = by_method.entry((k.protocol, &k.method)).or_default();
            for (total, c) in sum.counts.iter_mut().zip(h.counts) {
                *total += c;
            }
            sum.count += h.count;
            sum.sum += h.sum;
        }
        for ((protocol, method), h) in &by_method {
            let labels = [("protocol", *protocol), ("method", *method)];
            h.render(out, "cc_call_duration_seconds", &labels);
        }
        out.family(
            "cc_calls_in_flight",
            "gauge",
            "Calls (and open streams) being answered now.",
        );
        out.sample(
            "cc_calls_in_flight",
            &[],
            self.in_flight.load(Ordering::Relaxed) as f64,
        );
        out.family(
            "cc_refused_calls_total",
            "counter",
            "Calls the gate refused before they ran, by reason.",
        );
        let refused = self
            .refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for why in [
            Refusal::Overloaded,
            Refusal::DeadlinePassed,
            Refusal::DatabaseUnavailable,
            Refusal::RateLimited,
        ] {
            let n = refused.get(&why).copied().unwrap_or(0);
            out.sample(
                "cc_refused_calls_total",
                &[("reason", why.label())],
                n as f64,
            );
        }
        out.family(
            "cc_ingested_items_total",
            "counter",
            "Items written through IngestService (and imports through it), by kind and outcome.",
        );
        let ingested = self
            .ingested
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for ((kind, outcome), n) in &ingested {
            let labels = [("kind", *kind), ("outcome", *outcome)];
            out.sample("cc_ingested_items_total", &labels, *n as f64);
        }
        self.render_deliveries(out);
        out.family(
            "cc_retention_deleted_total",
            "counter",
            "Rows deleted by age by this replica's retention passes, by kind (events, access_log, purchases, tickets, webhook_deliveries).",
        );
        let pruned = self
            .pruned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for (kind, n) in &pruned {
            out.sample("cc_retention_deleted_total", &[("kind", *kind)], *n as f64);
        }
        out.family(
            "cc_process_start_time_seconds",
            "gauge",
            "When this server started, in seconds since the Unix epoch.",
        );
        let started = self.started.load(Ordering::Relaxed) as f64;
        out.sample("cc_process_start_time_seconds", &[], started);
    }
}

impl Metrics {
    fn render_deliveries(&self, out: &mut Text) {
        out.family(
            "cc_webhook_deliveries_total",
            "counter",
            "Webhook deliveries by source, topic and outcome (applied, duplicate, superseded, waiting, failed; unauthorized, malformed, too_large, unavailable, not_configured).",
        );
        let deliveries = self
            .deliveries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for ((source, topic, outcome), n) in &deliveries {
            let labels = [
                ("source", *source),
                ("topic", *topic),
                ("outcome", *outcome),
            ];
            out.sample("cc_webhook_deliveries_total", &labels, *n as f64);
        }
        out.family(
            "cc_webhook_ack_seconds",
            "histogram",
            "Time from a delivery's arrival to our answer, by source.",
        );
        let acknowledged = self
            .acknowledged
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for (source, h) in &acknowledged {
            h.render(out, "cc_webhook_ack_seconds", &[("source", *source)]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_buckets_render_as_prometheus_text() {
        let m = Metrics::new();
        m.call(
            "grpc",
            "a.B/C".into(),
            "OK".into(),
            Duration::from_millis(3),
        );
        m.call(
            "grpc",
            "a.B/C".into(),
            "OK".into(),
            Duration::from_millis(30),
        );
        m.call(
            "grpc",
            "a.B/C".into(),
            "NOT_FOUND".into(),
            Duration::from_secs(60),
        );
        m.refused(Refusal::Overloaded);
        m.ingested("event", "created", 5);
        m.delivery(
            "shopify",
            "orders/create",
            "applied",
            Duration::from_millis(4),
        );
        let mut text = Text::default();
        m.render(&mut text);
        let text = text.finish();
        for line in [
            r#"cc_calls_total{protocol="grpc",method="a.B/C",code="OK"} 2"#,
            r#"cc_calls_total{protocol="grpc",method="a.B/C",code="NOT_FOUND"} 1"#,
            r#"cc_call_duration_seconds_bucket{protocol="grpc",method="a.B/C",le="0.005"} 1"#,
            r#"cc_call_duration_seconds_bucket{protocol="grpc",method="a.B/C",le="0.05"} 2"#,
            r#"cc_call_duration_seconds_bucket{protocol="grpc",method="a.B/C",le="10"} 2"#,
            r#"cc_call_duration_seconds_bucket{protocol="grpc",method="a.B/C",le="+Inf"} 3"#,
            r#"cc_call_duration_seconds_count{protocol="grpc",method="a.B/C"} 3"#,
            r#"cc_refused_calls_total{reason="overloaded"} 1"#,
            r#"cc_refused_calls_total{reason="rate_limited"} 0"#,
            r#"cc_ingested_items_total{kind="event",outcome="created"} 5"#,
            "# TYPE cc_calls_total counter",
            r#"cc_webhook_deliveries_total{source="shopify",topic="orders/create",outcome="applied"} 1"#,
            r#"cc_webhook_ack_seconds_bucket{source="shopify",le="0.005"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
}
