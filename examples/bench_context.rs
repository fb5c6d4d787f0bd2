//! Load benchmark for `GetCustomerContext` against a running server.
//!
//! ```sh
//! cargo run --release -- serve --demo &
//! cargo run --release --example bench_context -- --ids 'demo-c{:04}' --from 1 --to 2001
//! ```
//!
//! Calls carry an API key (`--api-key`, or the bootstrap admin key of the
//! embedded database), so the numbers include authentication and the
//! access-log commit every read makes. Looks up customers `--ids` with `{:04}`/`{}` replaced by numbers in
//! `--from..=--to` (deterministic order), `--requests` calls spread over
//! `--concurrency` connections, and prints throughput and latency
//! percentiles. NOT_FOUND answers (gaps in the id range) are counted apart.

use std::time::{Duration, Instant};

use clap::Parser;
use customer_context::proto::{
    CustomerRef, GetCustomerContextRequest,
    customer_context_service_client::CustomerContextServiceClient, customer_ref::Identity,
};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    server: String,
    #[arg(long, default_value = "demo-c{:04}")]
    ids: String,
    #[arg(long, default_value_t = 1)]
    from: u64,
    #[arg(long, default_value_t = 2001)]
    to: u64,
    #[arg(long, default_value_t = 5000)]
    requests: u64,
    #[arg(long, default_value_t = 8)]
    concurrency: u64,
    /// API key (default: the embedded database's bootstrap admin key).
    #[arg(long, env = "CUSTOMER_CONTEXT_API_KEY")]
    api_key: Option<String>,
}

fn id_for(pattern: &str, n: u64) -> String {
    pattern
        .replace("{:04}", &format!("{n:04}"))
        .replace("{}", &n.to_string())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let key = args
        .api_key
        .clone()
        .or_else(|| std::fs::read_to_string(customer_context::cli::bootstrap_key_path()).ok())
        .map(|k| k.trim().to_owned())
        .ok_or_else(|| anyhow::anyhow!("pass --api-key"))?;
    let bearer: tonic::metadata::MetadataValue<tonic::metadata::Ascii> =
        format!("Bearer {key}").parse()?;
    let span = args.to.saturating_sub(args.from) + 1;
    let per_worker = args.requests / args.concurrency.max(1);
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..args.concurrency {
        let mut client = CustomerContextServiceClient::connect(args.server.clone()).await?;
        let pattern = args.ids.clone();
        let bearer = bearer.clone();
        let from = args.from;
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_worker as usize);
            let mut not_found = 0u64;
            for i in 0..per_worker {
                // A fixed stride walks the range in a scattered, repeatable order.
                let n = from + (w * per_worker + i).wrapping_mul(7919) % span;
                let mut request = tonic::Request::new(GetCustomerContextRequest {
                    customer: Some(CustomerRef {
                        identity: Some(Identity::CustomerId(id_for(&pattern, n))),
                    }),
                    ..Default::default()
                });
                request
                    .metadata_mut()
                    .insert("authorization", bearer.clone());
                let t = Instant::now();
                match client.get_customer_context(request).await {
                    Ok(_) => latencies.push(t.elapsed()),
                    Err(s) if s.code() == tonic::Code::NotFound => not_found += 1,
                    Err(s) => anyhow::bail!("call failed: {s}"),
                }
            }
            Ok((latencies, not_found))
        }));
    }
    let mut all: Vec<Duration> = Vec::new();
    let mut not_found = 0;
    for w in workers {
        let (l, nf) = w.await??;
        all.extend(l);
        not_found += nf;
    }
    let elapsed = started.elapsed();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or_default()
    };
    println!(
        "{} contexts ({} not found) in {:.2}s with {} connections: {:.0}/s; latency p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        all.len(),
        not_found,
        elapsed.as_secs_f64(),
        args.concurrency,
        all.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.90).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        all.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
    Ok(())
}
