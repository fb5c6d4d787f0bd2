//! Load benchmark for `GetCustomerContext` (or, with `--rpc suggest`,
//! `SuggestCrossSells`) against a running server.
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
    CustomerRef, GetCustomerContextRequest, SuggestCrossSellsRequest,
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
    /// `context` (GetCustomerContext, all sections) or `suggest`
    /// (SuggestCrossSells, 10 items).
    #[arg(long, default_value = "context")]
    rpc: String,
    /// Read mask paths for `context`, comma separated (default: all).
    #[arg(long, default_value = "")]
    sections: String,
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
        let suggest = args.rpc == "suggest";
        let paths: Vec<String> = args
            .sections
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_worker as usize);
            let mut not_found = 0u64;
            for i in 0..per_worker {
                // A fixed stride walks the range in a scattered, repeatable order.
                let n = from + (w * per_worker + i).wrapping_mul(7919) % span;
                let customer = Some(CustomerRef {
                    identity: Some(Identity::CustomerId(id_for(&pattern, n))),
                });
                let t = Instant::now();
                let answer = if suggest {
                    let mut request = tonic::Request::new(SuggestCrossSellsRequest {
                        customer,
                        ..Default::default()
                    });
                    request
                        .metadata_mut()
                        .insert("authorization", bearer.clone());
                    client.suggest_cross_sells(request).await.map(|_| ())
                } else {
                    let mut request = tonic::Request::new(GetCustomerContextRequest {
                        customer,
                        read_mask: (!paths.is_empty()).then(|| prost_types::FieldMask {
                            paths: paths.clone(),
                        }),
                        ..Default::default()
                    });
                    request
                        .metadata_mut()
                        .insert("authorization", bearer.clone());
                    client.get_customer_context(request).await.map(|_| ())
                };
                match answer {
                    Ok(()) => latencies.push(t.elapsed()),
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
        "{} {} calls ({} not found) in {:.2}s with {} connections: {:.0}/s; latency p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        all.len(),
        args.rpc,
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
