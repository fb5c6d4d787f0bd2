//! `bench --webhooks`: the receivers under the load a shop's systems make,
//! over plain HTTP/1.1 keep-alive connections as the senders use.
//!
//! 1. Shopify `orders/create` deliveries (3 lines each, signed) offered at
//!    a fixed rate (`--webhook-rate`, open loop: each delivery's time to
//!    acknowledge counts from when it was due, so a slow answer delays
//!    nobody's clock).
//! 2. The same deliveries as fast as `--concurrency` senders get answers
//!    (closed loop): the most deliveries per second.
//! 3. Segment batches of 100 `Product Viewed` events (with the static
//!    token), closed loop: events per second.
//!
//! The server needs `--webhook-secret shopify=SECRET` and `--webhook-token
//! segment=TOKEN` with the values given to the benchmark.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use base64::Engine as _;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
};

use super::{BenchConfig, percentile};

/// Events per Segment batch.
const BATCH: usize = 100;

/// One phase's answers.
#[derive(Debug, Clone, Default)]
pub struct Delivered {
    /// Deliveries (or batches) acknowledged with a 2xx.
    pub acknowledged: u64,
    /// Answers other than 2xx (and failed connections).
    pub refused: u64,
    /// Acknowledged per second.
    pub per_sec: f64,
    /// Time to acknowledge, ms: p50, p99.
    pub ack_ms: (f64, f64),
}

/// What `bench --webhooks` measured.
#[derive(Debug, Clone)]
pub struct WebhookReport {
    /// Health `Check` calls per second in the same run (the yardstick).
    pub check_per_sec: f64,
    /// The offered Shopify rate, per second.
    pub offered: f64,
    /// Shopify deliveries at the offered rate.
    pub at_rate: Delivered,
    /// Shopify deliveries as fast as answered.
    pub most: Delivered,
    /// Segment batches as fast as answered (`per_sec` counts events).
    pub segment: Delivered,
}

/// The secrets the server was given.
#[derive(Debug, Clone)]
pub struct WebhookSecrets {
    /// Shopify's signing secret.
    pub shopify: String,
    /// Segment's static token.
    pub segment_token: String,
}

/// One keep-alive HTTP/1.1 connection.
struct Conn {
    stream: BufReader<TcpStream>,
    host: String,
}

impl Conn {
    async fn open(host: &str) -> std::io::Result<Self> {
        let stream = TcpStream::connect(host).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream: BufReader::new(stream),
            host: host.to_owned(),
        })
    }

    /// POSTs `body` with `headers`; the answer's status.
    async fn post(
        &mut self,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<u16> {
        let mut head = format!(
            "POST {path} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
            self.host,
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let s = self.stream.get_mut();
        s.write_all(head.as_bytes()).await?;
        s.write_all(body).await?;
        let mut line = String::new();
        self.stream.read_line(&mut line).await?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| std::io::Error::other("not an HTTP answer"))?;
        let mut length = 0usize;
        loop {
            line.clear();
            if self.stream.read_line(&mut line).await? == 0 {
                return Err(std::io::Error::other("closed"));
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut sink = vec![0u8; length];
        self.stream.read_exact(&mut sink).await?;
        Ok(status)
    }
}

/// A signed Shopify order delivery: (headers, body).
fn shopify_order(
    secret: &str,
    run: &str,
    n: u64,
    customer_id: &str,
    products: &[String],
) -> (Vec<(&'static str, String)>, Vec<u8>) {
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let lines: Vec<serde_json::Value> = (0..3)
        .map(|i| {
            let p = &products[(n as usize * 3 + i) % products.len()];
            serde_json::json!({"id": n * 3 + i as u64, "variant_id": p, "title": "bench", "quantity": 1, "price": "10.00"})
        })
        .collect();
    let body = serde_json::json!({
        "id": format!("{run}-{n}"), "email": null, "created_at": now, "updated_at": now,
        "currency": "USD", "total_price": "30.00", "financial_status": "paid", "source_name": "web",
        "customer": {"id": customer_id}, "line_items": lines,
    })
    .to_string()
    .into_bytes();
    let sig = base64::engine::general_purpose::STANDARD
        .encode(crate::connect::hmac_sha256(secret.as_bytes(), &[&body]));
    let headers = vec![
        ("x-shopify-topic", "orders/create".to_owned()),
        ("x-shopify-hmac-sha256", sig),
        ("x-shopify-webhook-id", format!("{run}-{n}")),
    ];
    (headers, body)
}

/// A Segment batch of [`BATCH`] product views.
fn segment_batch(run: &str, n: u64, customers: &[String], products: &[String]) -> Vec<u8> {
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let events: Vec<serde_json::Value> = (0..BATCH as u64)
        .map(|i| {
            let k = n * BATCH as u64 + i;
            serde_json::json!({"type": "track", "event": "Product Viewed", "messageId": format!("{run}-v{k}"),
                "userId": customers[k as usize % customers.len()], "timestamp": now,
                "properties": {"product_id": products[k as usize % products.len()]}})
        })
        .collect();
    serde_json::Value::Array(events).to_string().into_bytes()
}

/// What a phase's senders share.
struct Phase {
    next: AtomicU64,
    latencies_us: Mutex<Vec<u32>>,
    refused: AtomicU64,
}

impl Phase {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            next: AtomicU64::new(0),
            latencies_us: Mutex::new(Vec::new()),
            refused: AtomicU64::new(0),
        })
    }

    fn report(&self, took: Duration, per_delivery: f64) -> Delivered {
        let mut lat = self
            .latencies_us
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        lat.sort_unstable();
        Delivered {
            acknowledged: lat.len() as u64,
            refused: self.refused.load(Ordering::Relaxed),
            per_sec: lat.len() as f64 * per_delivery / took.as_secs_f64(),
            ack_ms: (percentile(&lat, 0.5), percentile(&lat, 0.99)),
        }
    }
}

/// Runs `senders` tasks, each sending what `make(n)` builds until
/// `duration` passes; with `rate`, delivery n is due at n / rate seconds.
async fn phase<F>(
    host: &str,
    path: &'static str,
    senders: usize,
    duration: Duration,
    rate: Option<f64>,
    make: F,
) -> anyhow::Result<(Arc<Phase>, Duration)>
where
    F: Fn(u64) -> (Vec<(&'static str, String)>, Vec<u8>) + Send + Sync + 'static,
{
    let state = Phase::new();
    let make = Arc::new(make);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..senders {
        let (state, make, host) = (state.clone(), make.clone(), host.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(&host).await.ok();
            loop {
                let n = state.next.fetch_add(1, Ordering::Relaxed);
                let due = match rate {
                    Some(r) => started + Duration::from_secs_f64(n as f64 / r),
                    None => Instant::now(),
                };
                if due.duration_since(started) >= duration {
                    return;
                }
                tokio::time::sleep_until(due.into()).await;
                let (headers, body) = make(n);
                let headers: Vec<(&str, &str)> =
                    headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
                if conn.is_none() {
                    conn = Conn::open(&host).await.ok();
                }
                let answered = match conn.as_mut() {
                    Some(c) => c.post(path, &headers, &body).await,
                    None => Err(std::io::Error::other("no connection")),
                };
                match answered {
                    Ok(s) if (200..300).contains(&s) => {
                        let us = due.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                        state
                            .latencies_us
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(us);
                    }
                    Ok(_) => {
                        state.refused.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        state.refused.fetch_add(1, Ordering::Relaxed);
                        conn = None;
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    Ok((state, started.elapsed()))
}

/// Runs the three phases.
pub async fn run(
    config: &BenchConfig,
    secrets: &WebhookSecrets,
    products: &[String],
    rate: f64,
) -> anyhow::Result<WebhookReport> {
    anyhow::ensure!(
        !products.is_empty(),
        "the database has no products to order"
    );
    let channels = super::connect(config).await?;
    let who = Arc::new(vec![config.hot.clone()]);
    let check = super::phase(config, &channels, super::Call::Check, "-", who).await;
    drop(channels);
    let host = config
        .server
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let run_id = format!("whb-{}", super::ingest::now_ts().seconds);
    let mut customers = config.random.clone();
    if customers.is_empty() {
        customers.push(config.hot.clone());
    }
    let customers = Arc::new(customers);
    let products = Arc::new(products.to_vec());
    let order_maker = |run: String, offset: u64| {
        let (secret, customers, products) =
            (secrets.shopify.clone(), customers.clone(), products.clone());
        move |n: u64| {
            let n = n + offset;
            let c = &customers[n as usize % customers.len()];
            shopify_order(&secret, &run, n, c, &products)
        }
    };
    let senders = (rate / 10.0).ceil().clamp(8.0, 256.0) as usize;
    let (at_rate, took) = phase(
        &host,
        "/webhooks/shopify",
        senders,
        config.duration,
        Some(rate),
        order_maker(run_id.clone(), 0),
    )
    .await?;
    let at_rate = at_rate.report(took, 1.0);
    let (most, took) = phase(
        &host,
        "/webhooks/shopify",
        config.concurrency,
        config.duration,
        None,
        order_maker(run_id.clone(), 1 << 40),
    )
    .await?;
    let most = most.report(took, 1.0);
    let token = secrets.segment_token.clone();
    let (customers2, products2, run2) = (customers.clone(), products.clone(), run_id.clone());
    let (segment, took) = phase(
        &host,
        "/webhooks/segment",
        config.concurrency.min(64),
        config.duration,
        None,
        move |n| {
            let body = segment_batch(&run2, n, &customers2, &products2);
            (vec![("x-webhook-token", token.clone())], body)
        },
    )
    .await?;
    let segment = segment.report(took, BATCH as f64);
    Ok(WebhookReport {
        check_per_sec: check.ok_per_sec,
        offered: rate,
        at_rate,
        most,
        segment,
    })
}

/// The report as a table.
pub fn table(r: &WebhookReport) -> String {
    let row = |name: &str, d: &Delivered, unit: &str| {
        format!(
            "{name:<44} {:>10.0} {unit:<12} ({:>5.1}% of Check)  p50 {:>7.1} ms  p99 {:>7.1} ms  acknowledged {:>7}  refused {:>5}\n",
            d.per_sec,
            100.0 * d.per_sec / r.check_per_sec.max(1.0),
            d.ack_ms.0,
            d.ack_ms.1,
            d.acknowledged,
            d.refused
        )
    };
    let mut out = format!(
        "{:<44} {:>10.0} calls/s\n",
        "Health.Check (gRPC)", r.check_per_sec
    );
    out.push_str(&row(
        &format!("Shopify orders/create at {:.0}/s offered", r.offered),
        &r.at_rate,
        "deliveries/s",
    ));
    out.push_str(&row("Shopify orders/create, most", &r.most, "deliveries/s"));
    out.push_str(&row(
        "Segment batches of 100 Product Viewed",
        &r.segment,
        "events/s",
    ));
    out
}
