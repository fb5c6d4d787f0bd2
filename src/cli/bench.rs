//! `bench`: load against a running server (see [`crate::bench`]).

use clap::Args;

use super::{DatabaseArgs, bootstrap_key_path};

/// Arguments of `bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Server address.
    #[arg(
        long,
        default_value = "http://127.0.0.1:50051",
        env = "CUSTOMER_CONTEXT_SERVER"
    )]
    pub server: String,
    /// API key (serve it with `--rate-limit-per-key 0`, or the per-key
    /// limit is what gets measured). Default: the embedded database's
    /// bootstrap admin key.
    #[arg(long, env = "CUSTOMER_CONTEXT_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// HTTP/2 connections.
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// Calls in flight at once, spread over the connections.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// Seconds measured per phase.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds of unmeasured load before each phase.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// The hot customer (default: the one with the most orders).
    #[arg(long)]
    pub hot: Option<String>,
    /// Customers drawn for the random phases (read from the database).
    #[arg(long, default_value_t = 1000)]
    pub random: usize,
    /// Exit with an error when any answer is not OK (for smoke runs).
    #[arg(long)]
    pub fail_on_errors: bool,
    /// Run the overload test instead: GetCustomerContext for random
    /// customers with 1 call in flight, with `--concurrency` (choose the
    /// saturating one) and with five times it.
    #[arg(long)]
    pub overload: bool,
    /// Run the ingestion test instead: StreamEvents events/s, RecordOrders
    /// lines/s, and live-update latency of WatchCustomerContext while
    /// events arrive at `--ingest-rate` per second.
    #[arg(long)]
    pub ingest: bool,
    /// Background events per second during the watch-latency phase.
    #[arg(long, default_value_t = 10_000.0)]
    pub ingest_rate: f64,
    /// Customers watched during the watch-latency phase.
    #[arg(long, default_value_t = 20)]
    pub watchers: usize,
    /// Run the cold-read test instead: each of the `--random` customers'
    /// first GetCustomerContext, read exactly once, at 1 call in flight and
    /// at `--concurrency` (start the server for the run: a customer read
    /// before is remembered).
    #[arg(long)]
    pub cold: bool,
    /// Run the webhook test instead: signed Shopify order deliveries at
    /// `--webhook-rate` per second and as fast as answered, then Segment
    /// batches of 100 events (serve with `--webhook-secret
    /// shopify=SECRET --webhook-token segment=TOKEN` and the same values
    /// here).
    #[arg(long)]
    pub webhooks: bool,
    /// Shopify deliveries offered per second in the fixed-rate phase.
    #[arg(long, default_value_t = 500.0)]
    pub webhook_rate: f64,
    /// The Shopify signing secret the server was given.
    #[arg(
        long,
        env = "BENCH_SHOPIFY_SECRET",
        hide_env_values = true,
        default_value = "bench-shopify-secret"
    )]
    pub shopify_secret: String,
    /// The Segment token the server was given.
    #[arg(
        long,
        env = "BENCH_SEGMENT_TOKEN",
        hide_env_values = true,
        default_value = "bench-segment-token"
    )]
    pub segment_token: String,
    /// Also measure GetCustomerContext for customers with 10, 1,000 and
    /// 100,000 browsing events (written first through RecordEvents as
    /// `bench-history-N`; the key needs the ingest right).
    #[arg(long)]
    pub history: bool,
    /// Run the search test instead: SearchProducts without a customer,
    /// for the hot customer and for random customers, beside `Check`, with
    /// queries made from 1,000 product names of the database.
    #[arg(long)]
    pub search: bool,
    /// With `--search`: make every search a question the server has not
    /// answered before (a price ceiling above any price, different per
    /// call), so each answer is computed by the word index: the cost when
    /// no remembered answer serves.
    #[arg(long, requires = "search")]
    pub uncached: bool,
    /// The server's process id (same machine): its peak resident memory
    /// (VmHWM) is printed after the run.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// The server's database, read for customer (and product) ids only.
    #[command(flatten)]
    pub db: DatabaseArgs,
}

/// Runs the benchmark the arguments ask for against a running server.
pub(super) async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let store = args.db.open().await?;
    let (hot, random) = store
        .bench_customers(args.random)
        .await
        .map_err(|e| anyhow::anyhow!("reading customer ids: {e:?}"))?;
    let products = if args.ingest || args.history || args.webhooks {
        store
            .bench_products(1000)
            .await
            .map_err(|e| anyhow::anyhow!("reading product ids: {e:?}"))?
    } else {
        Vec::new()
    };
    let queries = if args.search {
        let names = store
            .bench_product_names(1000)
            .await
            .map_err(|e| anyhow::anyhow!("reading product names: {e:?}"))?;
        crate::bench::queries_from_names(&names)
    } else {
        Vec::new()
    };
    let uncached_currency = if args.uncached {
        let ids = store
            .bench_products(1)
            .await
            .map_err(|e| anyhow::anyhow!("reading a product id: {e:?}"))?;
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let rows = store
            .products(&ids)
            .await
            .map_err(|e| anyhow::anyhow!("reading a product: {e:?}"))?;
        let row = rows
            .into_values()
            .next()
            .ok_or_else(|| anyhow::anyhow!("the database has no products to search"))?;
        Some(row.currency)
    } else {
        None
    };
    store.close().await;
    let hot = args
        .hot
        .or(hot)
        .ok_or_else(|| anyhow::anyhow!("the database has no customers to ask about"))?;
    let api_key = args.api_key.or_else(|| {
        std::fs::read_to_string(bootstrap_key_path())
            .ok()
            .map(|k| k.trim().to_owned())
    });
    let mut config = crate::bench::BenchConfig {
        server: args.server,
        api_key,
        connections: args.connections,
        concurrency: args.concurrency,
        duration: std::time::Duration::from_secs_f64(args.duration.max(0.1)),
        warmup: std::time::Duration::from_secs_f64(args.warmup.max(0.0)),
        hot,
        random: if random.is_empty() { vec![] } else { random },
        by_history: Vec::new(),
        queries,
        uncached_currency,
        server_pid: args.server_pid,
    };
    if args.history {
        config.by_history = crate::bench::prepare_histories(&config, &products).await?;
    }
    println!(
        "{} connections, {} calls in flight, {:.0} s per phase after {:.0} s warm-up; {} random customers",
        config.connections,
        config.concurrency,
        config.duration.as_secs_f64(),
        config.warmup.as_secs_f64(),
        config.random.len()
    );
    if args.ingest {
        let report =
            crate::bench::ingest(&config, &products, args.watchers, args.ingest_rate).await?;
        print!("{}", crate::bench::ingest_table(&report));
        if let Some(pid) = args.server_pid {
            println!("{}", crate::bench::peak_memory(pid)?);
        }
        if args.fail_on_errors && (report.missed > 0 || report.watch_ms.3 == 0) {
            anyhow::bail!("{} live updates never arrived", report.missed);
        }
        return Ok(());
    }
    if args.webhooks {
        let secrets = crate::bench::WebhookSecrets {
            shopify: args.shopify_secret.clone(),
            segment_token: args.segment_token.clone(),
        };
        let report =
            crate::bench::webhooks(&config, &secrets, &products, args.webhook_rate).await?;
        print!("{}", crate::bench::webhooks_table(&report));
        if let Some(pid) = args.server_pid {
            println!("{}", crate::bench::peak_memory(pid)?);
        }
        let refused = report.at_rate.refused + report.most.refused + report.segment.refused;
        if args.fail_on_errors && refused > 0 {
            anyhow::bail!("{refused} deliveries were not acknowledged");
        }
        return Ok(());
    }
    if args.search {
        let reports = crate::bench::search(&config).await?;
        print!("{}", crate::bench::table(&reports));
        if let Some(pid) = args.server_pid {
            println!("{}", crate::bench::peak_memory(pid)?);
        }
        let failed = crate::bench::not_ok(&reports);
        if args.fail_on_errors && failed > 0 {
            anyhow::bail!("{failed} searches were not answered OK");
        }
        return Ok(());
    }
    if args.cold {
        let report = crate::bench::cold(&config).await?;
        print!("{}", crate::bench::cold_table(&report));
        if let Some(pid) = args.server_pid {
            println!("{}", crate::bench::peak_memory(pid)?);
        }
        let failed = crate::bench::not_ok([&report.single, &report.saturated]);
        if args.fail_on_errors && failed > 0 {
            anyhow::bail!("{failed} first reads were not answered OK");
        }
        return Ok(());
    }
    if args.overload {
        let report = crate::bench::overload(&config).await?;
        print!("{}", crate::bench::overload_table(&report));
        if let Some(pid) = args.server_pid {
            println!("{}", crate::bench::peak_memory(pid)?);
        }
        return Ok(());
    }
    let reports = crate::bench::run(&config).await?;
    print!("{}", crate::bench::table(&reports));
    if let Some(pid) = args.server_pid {
        println!("{}", crate::bench::peak_memory(pid)?);
    }
    let failed = crate::bench::not_ok(&reports);
    if args.fail_on_errors && failed > 0 {
        anyhow::bail!("{failed} calls were not answered OK");
    }
    Ok(())
}
