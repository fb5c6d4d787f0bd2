//! `import` and `generate`: data into the store.

use clap::Args;

use super::{DatabaseArgs, ModelArgs};
use crate::store::Store;

/// Arguments of `import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    files: crate::ingest::ImportFiles,
    #[command(flatten)]
    db: DatabaseArgs,
    #[command(flatten)]
    model: ModelArgs,
    /// The shop's currency (Shopify product prices do not carry one).
    #[command(flatten)]
    connectors: ShopArgs,
}

/// What mapping Shopify resources needs.
#[derive(Debug, Args)]
pub struct ShopArgs {
    /// The shop's currency, for Shopify product prices.
    #[arg(long, default_value = "USD", env = "SHOP_CURRENCY")]
    pub shop_currency: String,
}

impl ShopArgs {
    fn config(&self) -> anyhow::Result<crate::connect::ConnectorConfig> {
        let currency = crate::domain::Currency::parse(&self.shop_currency)
            .map_err(|e| anyhow::anyhow!("--shop-currency: {e}"))?;
        let mut config = crate::connect::ConnectorConfig::default();
        config.shop_currency = currency.as_str().to_owned();
        Ok(config)
    }
}

/// Arguments of `generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Customers with accounts.
    #[arg(long, default_value_t = 10_000)]
    pub customers: usize,
    /// Catalogue products (variants; rounded to whole styles).
    #[arg(long, default_value_t = 10_000)]
    pub products: usize,
    /// Browsing events, about (the total lands within a few percent).
    #[arg(long, default_value_t = 200_000)]
    pub events: usize,
    /// Same seed, same shop.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Customers with a very long history; default one per 200,000
    /// customers (at least one) when the events allow it.
    #[arg(long)]
    pub long_customers: Option<usize>,
    /// Events of each long history.
    #[arg(long, default_value_t = 100_000)]
    pub long_events: usize,
    /// Which database.
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// How the suggestion model is built.
    #[command(flatten)]
    pub model: ModelArgs,
}

/// Imports catalogue and event files, then refreshes the planner's
/// statistics and rebuilds the suggestion model.
pub(super) async fn import(args: ImportArgs) -> anyhow::Result<()> {
    let store = Store::connect(&args.db.url(), &args.db.options()).await?;
    store.migrate().await?;
    let files = &args.files;
    let only_shopify = files.catalogs.is_empty() && files.events.is_empty();
    let mut result = if only_shopify && !files.shopify.is_empty() {
        Ok(())
    } else {
        crate::ingest::run_import(&store, files).await
    };
    if result.is_ok() && !args.files.shopify.is_empty() {
        let connectors = crate::connect::Connectors::new(store.clone(), args.connectors.config()?);
        for path in &args.files.shopify {
            if let Err(e) = connectors.import_shopify(path).await {
                result = Err(e);
                break;
            }
        }
    }
    if result.is_ok() {
        result = super::refresh_statistics(&store).await;
    }
    if result.is_ok() && !(args.files.events.is_empty() && args.files.shopify.is_empty()) {
        result = super::rebuild_model(&store, &args.model.config()).await;
    }
    store.close().await;
    result
}

/// Writes a generated shop, then refreshes the planner's statistics and
/// builds the suggestion model.
pub(super) async fn generate(args: GenerateArgs) -> anyhow::Result<()> {
    let store = args.db.open().await?;
    let mut plan =
        crate::generate::Plan::new(args.seed, args.customers, args.products, args.events);
    plan.long_events = args.long_events;
    if let Some(n) = args.long_customers {
        plan.long_customers = n.min(args.customers);
    }
    let mut result = write_shop(&store, &plan).await;
    if result.is_ok() {
        result = super::refresh_statistics(&store).await;
    }
    if result.is_ok() {
        result = super::rebuild_model(&store, &args.model.config()).await;
    }
    store.close().await;
    result
}

async fn write_shop(store: &Store, plan: &crate::generate::Plan) -> anyhow::Result<()> {
    let total = plan.customers.max(1);
    let w = crate::generate::write(store, plan, crate::domain::Timestamp::now(), |w, secs| {
        if w.customers % 50_000 < 500 || w.customers == total {
            eprintln!(
                "{} of {total} customers, {} events, {} orders in {secs:.0} s",
                w.customers, w.events, w.orders
            );
        }
    })
    .await
    .map_err(|e| anyhow::anyhow!("writing the generated shop: {e:?}"))?;
    println!(
        "generated (seed {}): {} products, {} customers, {} events, {} orders, {} returns, {} tickets; {} rejected",
        plan.seed, w.products, w.customers, w.events, w.orders, w.returns, w.tickets, w.rejected
    );
    anyhow::ensure!(
        w.rejected == 0,
        "the store rejected {} generated items",
        w.rejected
    );
    Ok(())
}
