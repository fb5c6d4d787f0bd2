//! Latency by history length: customers `bench-history-10`, `-1000` and
//! `-100000` get that many product views, spread over two years, written
//! through `RecordEvents` before the phases (fixed message ids: a second
//! run stores nothing new). Their contexts are then asked for like the
//! other phases, so the p99 of a 100,000-event customer reads beside a
//! 10-event one's in the same run.

use super::{BenchConfig, with_key};
use crate::proto::{self as pb, ingest_service_client::IngestServiceClient};

/// History lengths measured, with their labels in the table.
pub const LENGTHS: [(usize, &str); 3] = [
    (10, "10 events"),
    (1_000, "1,000 events"),
    (100_000, "100,000 events"),
];

/// Events per `RecordEvents` call.
const PER_CALL: usize = 1_000;
/// How far back the oldest view is.
const SPAN_SECS: i64 = 730 * 86_400;

/// Writes the histories (views of `products`, round-robin) and returns
/// each length's label and customer id.
pub async fn prepare(
    config: &BenchConfig,
    products: &[String],
) -> anyhow::Result<Vec<(&'static str, String)>> {
    anyhow::ensure!(
        !products.is_empty(),
        "the catalogue has no products to view"
    );
    let channel = super::connect(config)
        .await?
        .into_iter()
        .next()
        .expect("at least one connection");
    let mut client = IngestServiceClient::new(channel);
    let now = super::ingest::now_ts().seconds;
    let mut out = Vec::new();
    for (n, label) in LENGTHS {
        let customer = format!("bench-history-{n}");
        for start in (0..n).step_by(PER_CALL) {
            let events = (start..(start + PER_CALL).min(n))
                .map(|i| {
                    let back = SPAN_SECS * (n - i) as i64 / n as i64;
                    let mut e = super::ingest::view(
                        format!("{customer}-{i}"),
                        &customer,
                        &products[i % products.len()],
                    );
                    e.occurred_at = Some(prost_types::Timestamp {
                        seconds: now - back,
                        nanos: 0,
                    });
                    e
                })
                .collect();
            client
                .record_events(with_key(
                    pb::RecordEventsRequest { events },
                    &config.api_key,
                ))
                .await
                .map_err(|s| anyhow::anyhow!("writing {customer}'s history: {}", s.message()))?;
        }
        out.push((label, customer));
    }
    Ok(out)
}
