//! `bench --ingest`: ingestion throughput and live-update latency against
//! a running server.
//!
//! 1. `StreamEvents`: one stream per connection, each sending events (views
//!    of catalogue products by the drawn customers) as fast as the server
//!    takes them, 5,000 per stream call; an event counts when the stream's
//!    answer acknowledges it (acknowledged = committed).
//! 2. `RecordOrders`: batches of 100 orders of 1-3 lines per connection;
//!    lines acknowledged per second.
//! 3. Watch latency: `--watchers` customers are watched while background
//!    events arrive at `--ingest-rate` per second (for other customers);
//!    every 100 ms one watched customer views a product, and the time from
//!    sending it to the watcher receiving a context that shows it is
//!    recorded (p50, p99).

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tonic::transport::Channel;

use super::{BenchConfig, customer, percentile, with_key};
use crate::proto::{
    self as pb, customer_context_service_client::CustomerContextServiceClient,
    ingest_service_client::IngestServiceClient, watch_customer_context_response::Update,
};

/// Events per `StreamEvents` call.
const PER_STREAM: usize = 5_000;
/// Orders per `RecordOrders` call.
const ORDERS_PER_CALL: usize = 100;

/// What `bench --ingest` measured.
#[derive(Debug, Clone)]
pub struct IngestReport {
    /// Acknowledged events per second through `StreamEvents`.
    pub events_per_sec: f64,
    /// Acknowledged order lines per second through `RecordOrders`.
    pub lines_per_sec: f64,
    /// Background events per second actually sent during the watch phase.
    pub background_per_sec: f64,
    /// Watch latency, ms: p50, p99, max; and updates measured.
    pub watch_ms: (f64, f64, f64, usize),
    /// Markers whose update never arrived within 10 s.
    pub missed: usize,
}

pub(super) fn now_ts() -> prost_types::Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    prost_types::Timestamp {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

pub(super) fn view(id: String, customer_id: &str, product: &str) -> pb::BrowsingEvent {
    pb::BrowsingEvent {
        message_id: id,
        customer_id: customer_id.to_owned(),
        anonymous_id: String::new(),
        r#type: pb::BrowsingEventType::ProductViewed.into(),
        product_id: product.to_owned(),
        search_query: String::new(),
        channel: "bench".into(),
        occurred_at: Some(now_ts()),
    }
}

/// A run-unique prefix for message and order ids.
fn run_id() -> String {
    format!("bench-{}", now_ts().seconds)
}

async fn stream_events(
    config: &BenchConfig,
    channels: &[Channel],
    products: &[String],
) -> anyhow::Result<f64> {
    let acked = Arc::new(AtomicU64::new(0));
    let run = run_id();
    let started = Instant::now();
    let stop = started + config.duration;
    let mut tasks = Vec::new();
    for (c, channel) in channels.iter().enumerate() {
        let (channel, acked, key) = (channel.clone(), acked.clone(), config.api_key.clone());
        let (customers, products, run) = (config.random.clone(), products.to_vec(), run.clone());
        tasks.push(tokio::spawn(async move {
            let mut client = IngestServiceClient::new(channel);
            let mut n = 0usize;
            while Instant::now() < stop {
                let batch: Vec<pb::BrowsingEvent> = (0..PER_STREAM)
                    .map(|i| {
                        let k = n + i;
                        view(
                            format!("{run}-{c}-{k}"),
                            &customers[k % customers.len()],
                            &products[(k * 7 + c) % products.len()],
                        )
                    })
                    .collect();
                n += PER_STREAM;
                let stream = tokio_stream::iter(batch);
                let answer = client.stream_events(with_key(stream, &key)).await?;
                let s = answer.into_inner().summary.unwrap_or_default();
                acked.fetch_add(u64::from(s.created + s.duplicate), Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(acked.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

async fn record_orders(
    config: &BenchConfig,
    channels: &[Channel],
    products: &[String],
) -> anyhow::Result<f64> {
    let lines = Arc::new(AtomicU64::new(0));
    let run = run_id();
    let started = Instant::now();
    let stop = started + config.duration;
    let mut tasks = Vec::new();
    for (c, channel) in channels.iter().enumerate() {
        let (channel, lines, key) = (channel.clone(), lines.clone(), config.api_key.clone());
        let (customers, products, run) = (config.random.clone(), products.to_vec(), run.clone());
        tasks.push(tokio::spawn(async move {
            let mut client = IngestServiceClient::new(channel);
            let mut n = 0usize;
            while Instant::now() < stop {
                let orders: Vec<pb::Order> = (0..ORDERS_PER_CALL)
                    .map(|i| {
                        let k = n + i;
                        let count = 1 + k % 3;
                        pb::Order {
                            order_id: format!("{run}-o{c}-{k}"),
                            customer_id: customers[k % customers.len()].clone(),
                            status: pb::OrderStatus::Placed.into(),
                            placed_at: Some(now_ts()),
                            channel: "bench".into(),
                            lines: (0..count)
                                .map(|j| pb::OrderLine {
                                    product_id: products[(k * 13 + j * 7) % products.len()].clone(),
                                    quantity: 1,
                                    unit_price: Some(pb::Money {
                                        currency_code: "USD".into(),
                                        amount_minor: 1999,
                                    }),
                                    ..Default::default()
                                })
                                .collect(),
                            total: Some(pb::Money {
                                currency_code: "USD".into(),
                                amount_minor: 1999 * count as i64,
                            }),
                            ..Default::default()
                        }
                    })
                    .collect();
                n += ORDERS_PER_CALL;
                let sent: u64 = orders.iter().map(|o| o.lines.len() as u64).sum();
                let request = pb::RecordOrdersRequest { orders };
                let answer = client.record_orders(with_key(request, &key)).await?;
                let s = answer.into_inner().summary.unwrap_or_default();
                if s.rejected == 0 {
                    lines.fetch_add(sent, Ordering::Relaxed);
                }
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(lines.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

/// Per watched customer: the marker product sent and when.
type Markers = Arc<Mutex<Vec<Option<(String, Instant)>>>>;

/// One watch per customer; each records how long its marker took to show.
async fn spawn_watchers(
    config: &BenchConfig,
    channels: &[Channel],
    watched: &[String],
    markers: &Markers,
    latencies: &Arc<Mutex<Vec<u32>>>,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut tasks = Vec::new();
    for (w, who) in watched.iter().enumerate() {
        let mut client = CustomerContextServiceClient::new(channels[w % channels.len()].clone());
        let request = pb::WatchCustomerContextRequest {
            context: Some(pb::GetCustomerContextRequest {
                customer: customer(who),
                read_mask: Some(prost_types::FieldMask {
                    paths: vec!["recent_browsing".into()],
                }),
                browsing_limit: 1,
                ..Default::default()
            }),
            heartbeat_seconds: 0,
        };
        let mut stream = client
            .watch_customer_context(with_key(request, &config.api_key))
            .await?
            .into_inner();
        let (markers, latencies) = (markers.clone(), latencies.clone());
        tasks.push(tokio::spawn(async move {
            while let Ok(Some(m)) = stream.message().await {
                let Some(Update::Context(c)) = m.update else {
                    continue;
                };
                let shown = c.recent_browsing.first().and_then(|b| b.product.as_ref());
                let mut markers = markers.lock().unwrap_or_else(|p| p.into_inner());
                if let (Some((product, sent)), Some(shown)) = (&markers[w], shown)
                    && *product == shown.product_id
                {
                    let us = sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                    latencies.lock().unwrap_or_else(|p| p.into_inner()).push(us);
                    markers[w] = None;
                }
            }
        }));
    }
    Ok(tasks)
}

/// Concurrent senders of background events: one sequential client waits
/// for each batch's commit and falls short of the rate asked.
const BACKGROUND_SENDERS: usize = 4;

/// Background views for `others` at about `rate` per second until `stop`,
/// from `BACKGROUND_SENDERS` clients spread over `channels`; the count sent.
fn spawn_background(
    config: &BenchConfig,
    channels: &[Channel],
    others: Vec<String>,
    products: Vec<String>,
    rate: f64,
    stop: Instant,
) -> tokio::task::JoinHandle<u64> {
    let run = run_id();
    let per_tick = (rate / 10.0 / BACKGROUND_SENDERS as f64).ceil().max(1.0) as usize;
    let (others, products) = (Arc::new(others), Arc::new(products));
    let senders: Vec<_> = (0..BACKGROUND_SENDERS)
        .map(|s| {
            let key = config.api_key.clone();
            let mut client = IngestServiceClient::new(channels[s % channels.len()].clone());
            let (others, products, run) = (others.clone(), products.clone(), run.clone());
            tokio::spawn(async move {
                let (mut n, mut sent) = (s * per_tick, 0u64);
                let mut tick = tokio::time::interval(Duration::from_millis(100));
                while Instant::now() < stop {
                    tick.tick().await;
                    let events = (n..n + per_tick)
                        .map(|k| {
                            let (who, what) =
                                (&others[k % others.len()], &products[k % products.len()]);
                            view(format!("{run}-bg-{k}"), who, what)
                        })
                        .collect();
                    // Each sender takes every BACKGROUND_SENDERS-th block of ids.
                    n += per_tick * BACKGROUND_SENDERS;
                    let request = pb::RecordEventsRequest { events };
                    if client.record_events(with_key(request, &key)).await.is_ok() {
                        sent += per_tick as u64;
                    }
                }
                sent
            })
        })
        .collect();
    tokio::spawn(async move {
        let mut sent = 0;
        for s in senders {
            sent += s.await.unwrap_or(0);
        }
        sent
    })
}

/// Sends marker views for the watched customers and measures when each
/// shows up in a pushed context, while background events arrive at `rate`.
async fn watch_latency(
    config: &BenchConfig,
    channels: &[Channel],
    products: &[String],
    watchers: usize,
    rate: f64,
) -> anyhow::Result<(f64, (f64, f64, f64, usize), usize)> {
    let watched: Vec<String> = config
        .random
        .iter()
        .take(watchers.max(1))
        .cloned()
        .collect();
    let others: Vec<String> = config.random.iter().skip(watched.len()).cloned().collect();
    anyhow::ensure!(!others.is_empty(), "--random must exceed --watchers");
    let markers: Markers = Arc::new(Mutex::new(vec![None; watched.len()]));
    let latencies = Arc::new(Mutex::new(Vec::<u32>::new()));
    let tasks = spawn_watchers(config, channels, &watched, &markers, &latencies).await?;
    let started = Instant::now();
    let stop = started + config.duration;
    let background = spawn_background(config, channels, others, products.to_vec(), rate, stop);
    // Every 100 ms the next watched customer views a product.
    let mut client = IngestServiceClient::new(channels[channels.len() - 1].clone());
    let (run, mut missed, mut k) = (run_id(), 0, 0usize);
    while Instant::now() < stop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let w = k % watched.len();
        let product = products[(k * 31 + 5) % products.len()].clone();
        {
            let mut markers = markers.lock().unwrap_or_else(|p| p.into_inner());
            if markers[w]
                .as_ref()
                .is_some_and(|(_, sent)| sent.elapsed() > Duration::from_secs(10))
            {
                missed += 1;
            }
            markers[w] = Some((product.clone(), Instant::now()));
        }
        let request = pb::RecordEventsRequest {
            events: vec![view(format!("{run}-mark-{k}"), &watched[w], &product)],
        };
        client
            .record_events(with_key(request, &config.api_key))
            .await?;
        k += 1;
    }
    let bg = background.await? as f64 / started.elapsed().as_secs_f64();
    // The last markers' updates may still be on their way.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for t in &tasks {
        t.abort();
    }
    let mut l = latencies.lock().unwrap_or_else(|p| p.into_inner()).clone();
    l.sort_unstable();
    let max = l.last().map_or(0.0, |v| f64::from(*v) / 1000.0);
    Ok((
        bg,
        (percentile(&l, 0.5), percentile(&l, 0.99), max, l.len()),
        missed,
    ))
}

/// Runs the three phases.
pub async fn run(
    config: &BenchConfig,
    products: &[String],
    watchers: usize,
    rate: f64,
) -> anyhow::Result<IngestReport> {
    anyhow::ensure!(
        !products.is_empty() && !config.random.is_empty(),
        "no products or customers to use"
    );
    let channels = super::connect(config).await?;
    let events_per_sec = stream_events(config, &channels, products).await?;
    let lines_per_sec = record_orders(config, &channels, products).await?;
    let (background_per_sec, watch_ms, missed) =
        watch_latency(config, &channels, products, watchers, rate).await?;
    Ok(IngestReport {
        events_per_sec,
        lines_per_sec,
        background_per_sec,
        watch_ms,
        missed,
    })
}

/// The report as a table (Markdown).
pub fn table(r: &IngestReport) -> String {
    format!(
        "| measure | value |\n| --- | ---: |\n\
         | StreamEvents, events acknowledged/s | {:.0} |\n\
         | RecordOrders, lines acknowledged/s | {:.0} |\n\
         | Watch: background events/s during the phase | {:.0} |\n\
         | Watch: updates measured | {} |\n\
         | Watch latency p50 ms | {:.1} |\n\
         | Watch latency p99 ms | {:.1} |\n\
         | Watch latency max ms | {:.1} |\n\
         | Watch: markers never shown within 10 s | {} |\n",
        r.events_per_sec,
        r.lines_per_sec,
        r.background_per_sec,
        r.watch_ms.3,
        r.watch_ms.0,
        r.watch_ms.1,
        r.watch_ms.2,
        r.missed
    )
}
