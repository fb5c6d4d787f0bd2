//! `evaluate` and `evaluate-fit`: the offline numbers.

use anyhow::Context as _;
use clap::Args;

use super::{DatabaseArgs, ModelArgs};

/// Arguments of `evaluate-fit`.
#[derive(Debug, Args)]
pub struct EvaluateFitArgs {
    /// Customers per generated shop.
    #[arg(long, default_value_t = 20_000)]
    pub customers: usize,
    /// Seeds: one generated shop each.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    pub seeds: Vec<u64>,
    /// Share of purchases made in a size one off the true size.
    #[arg(long, default_value_t = 0.25)]
    pub wrong_size_share: f64,
    /// Every other customer buys in one size domain per department only:
    /// the others are sized from it (a related domain), or not at all.
    #[arg(long)]
    pub one_domain_per_department: bool,
}

/// Arguments of `evaluate`.
#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// Items suggested per customer.
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Weight of complements (co-purchase neighbours of what was bought).
    #[arg(long, default_value_t = crate::suggest::Weights::default().complement)]
    pub complement: f32,
    /// Weight of popular items in the customer's categories.
    #[arg(long, default_value_t = crate::suggest::Weights::default().affinity)]
    pub affinity: f32,
    /// Weight of popular items overall.
    #[arg(long, default_value_t = crate::suggest::Weights::default().popular)]
    pub popular: f32,
    /// Most suggestions from one category.
    #[arg(long, default_value_t = crate::suggest::Weights::default().per_category)]
    pub per_category: usize,
    /// Extra weight of the last 3 orders' items as complement seeds.
    #[arg(long, default_value_t = crate::suggest::Weights::default().recent_boost)]
    pub recent_boost: f32,
    /// Weight of items bought by customers who bought the same products.
    #[arg(long, default_value_t = crate::suggest::Weights::default().also_bought)]
    pub also_bought: f32,
    /// Boost of category best-sellers by the customer's brand share.
    #[arg(long, default_value_t = crate::suggest::Weights::default().brand)]
    pub brand: f32,
    /// Weight of the new-category source.
    #[arg(long, default_value_t = crate::suggest::Weights::default().new_category)]
    pub new_category: f32,
    /// Score lost by items priced outside the customer's usual band (0-1).
    #[arg(long, default_value_t = crate::suggest::Weights::default().price_fit)]
    pub price_fit: f32,
    /// Seed decay per order back of the recency-weighted blend (0 to 1).
    #[arg(long, default_value_t = crate::suggest::validate::ORDER_DECAY)]
    pub order_decay: f32,
    /// Splits to run: all, even, odd (each household number's parity).
    #[arg(long, value_delimiter = ',', default_value = "all,even,odd")]
    pub splits: Vec<String>,
    /// Each split is also run moved back this many orders (every
    /// household's newest orders dropped from all data), e.g. `0,1,2`.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    pub moved_back: Vec<usize>,
    /// How the suggestion model is built.
    #[command(flatten)]
    pub model: ModelArgs,
    /// Which database.
    #[command(flatten)]
    pub db: DatabaseArgs,
}

/// Prints how often sized suggestions come in the true size.
pub(super) fn evaluate_fit(args: &EvaluateFitArgs) {
    use crate::generate::fit::{FitEvalConfig, evaluate_fit};
    println!(
        "{} customers per shop, {:.0}% of purchases in a wrong size; sized suggestions (10 per customer)",
        args.customers,
        args.wrong_size_share * 100.0
    );
    println!("seed  kept in domain  offered in a size  in the true size  share    size unknown");
    for &seed in &args.seeds {
        let started = std::time::Instant::now();
        let r = evaluate_fit(&FitEvalConfig {
            customers: args.customers,
            seed,
            wrong_size_share: args.wrong_size_share,
            one_domain_per_department: args.one_domain_per_department,
        });
        for (k, b) in r.by_kept.iter().enumerate() {
            let kept = ["0", "1", "2+"][k];
            let share = b.in_true_size as f64 / b.offered.max(1) as f64 * 100.0;
            println!(
                "{seed:<5} {kept:<15} {:<18} {:<17} {share:>5.1} %  {}",
                b.offered, b.in_true_size, b.unknown
            );
        }
        for (d, b) in r.carried.iter().enumerate().filter(|(_, b)| b.offered > 0) {
            let share = b.in_true_size as f64 / b.offered as f64 * 100.0;
            println!(
                "{seed:<5} probably, in {:<18} {:<9} {:<17} {share:>5.1} %",
                crate::generate::fit::domain_name(d),
                b.offered,
                b.in_true_size
            );
        }
        println!(
            "{seed:<5} (not sized: {}; {:.1}s)",
            r.not_sized,
            started.elapsed().as_secs_f64()
        );
    }
}

/// Prints the offline evaluation of the stored history.
pub(super) async fn evaluate(args: EvaluateArgs) -> anyhow::Result<()> {
    use crate::suggest::evaluate::{Split, evaluate};
    let splits = args
        .splits
        .iter()
        .map(|s| match s.trim() {
            "all" => Ok(Split::All),
            "even" => Ok(Split::Even),
            "odd" => Ok(Split::Odd),
            other => Err(anyhow::anyhow!(
                "unknown split {other:?}: use all, even or odd"
            )),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let store = args.db.open().await?;
    let started = std::time::Instant::now();
    let inputs = std::sync::Arc::new(
        store
            .model_inputs(crate::domain::Timestamp::MIN)
            .await
            .map_err(|e| anyhow::anyhow!("reading the history: {e:?}"))?,
    );
    store.close().await;
    println!("history read in {:.1}s", started.elapsed().as_secs_f64());
    let weights = crate::suggest::Weights {
        complement: args.complement,
        also_bought: args.also_bought,
        affinity: args.affinity,
        popular: args.popular,
        per_category: args.per_category,
        recent_boost: args.recent_boost,
        new_category: args.new_category,
        brand: args.brand,
        price_fit: args.price_fit,
        order_decay: args.order_decay.clamp(0.0, 1.0),
        ..crate::suggest::Weights::default()
    };
    let k = args.k;
    println!(
        "{:<22} {:>9} {:>16} {:>10} {:>10} {:>10} {:>8} {:>10} {:>13}",
        "split",
        "evaluated",
        "method",
        format!("HitRate@{k}"),
        "alike hits",
        format!("NDCG@{k}"),
        "coverage",
        "violations",
        "vs stronger pop."
    );
    let mut violations = 0;
    for back in args.moved_back.iter().copied() {
        for &split in &splits {
            let (inputs, config, weights) = (inputs.clone(), args.model.config(), weights.clone());
            let r = tokio::task::spawn_blocking(move || {
                evaluate(&inputs, &config, &weights, k, split, back)
            })
            .await?;
            violations += print_split(&r);
        }
    }
    if violations > 0 {
        anyhow::bail!("suggestions broke a hard filter");
    }
    Ok(())
}

/// Prints one split's rows; returns its violations.
fn print_split(r: &crate::suggest::evaluate::Report) -> u64 {
    let name = match r.moved_back {
        0 => r.split.name().to_string(),
        n => format!("{}, -{n}", r.split.name()),
    };
    let base = r.stronger_popularity().hit_rate.max(1e-9);
    let picked = format!("picked: {}", r.picked.name());
    let mut rows: Vec<(&str, &crate::suggest::evaluate::Scores)> = r
        .rankers
        .iter()
        .map(|(ranker, s)| (ranker.name(), s))
        .collect();
    rows.push((&picked, r.of(r.picked)));
    rows.push(("popularity", &r.popularity));
    rows.push(("by households", &r.by_households));
    rows.push(("popular now", &r.popular_now));
    let mut violations = 0;
    for (method, s) in rows {
        println!(
            "{name:<22} {:>9} {method:>16} {:>10.4} {:>10.4} {:>10.4} {:>8.4} {:>10} {:>12.2}x",
            r.customers,
            s.hit_rate,
            s.alike_hit_rate,
            s.ndcg,
            s.coverage,
            s.violations,
            s.hit_rate / base
        );
        violations += s.violations;
    }
    println!(
        "{:<22} ({} with 2+ orders, {} training orders, {} suggestable items; build {:.1}s, validate {:.1}s, score {:.1}s)",
        "",
        r.with_two_orders,
        r.train_orders,
        r.suggestable,
        r.train_secs,
        r.validate_secs,
        r.score_secs
    );
    violations
}

/// Arguments of `evaluate-search`.
#[derive(Debug, Args)]
pub struct EvaluateSearchArgs {
    /// Judged query files (JSON lines; see eval/search/).
    #[arg(long, value_delimiter = ',', required = true)]
    pub judged: Vec<std::path::PathBuf>,
    /// Search the demo retailer, loaded into a fresh temporary database,
    /// instead of `--database-url`.
    #[arg(long)]
    pub demo: bool,
    /// The database (unless `--demo`).
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// How the model is built (which categories are not merchandise).
    #[command(flatten)]
    pub model: ModelArgs,
}

/// Runs `evaluate-search`.
pub(super) async fn evaluate_search(args: EvaluateSearchArgs) -> anyhow::Result<()> {
    use std::sync::Arc;

    use crate::{bench::relevance, search::SearchService, suggest, suggest::LiveModel};
    let config = args.model.config();
    let scratch = scratch_dir()?;
    let store = if args.demo {
        let url = crate::store::sqlite_url(&scratch.join("demo.db"));
        let store = crate::store::Store::connect(&url, &args.db.options()).await?;
        store.migrate().await?;
        crate::demo::load(&store, &config).await?;
        suggest::live::build_and_save(&store, &config)
            .await
            .map_err(|e| anyhow::anyhow!("building the model: {e:?}"))?;
        store
    } else {
        args.db.open().await?
    };
    let live = Arc::new(LiveModel::new(config.clone()));
    live.catch_up(&store)
        .await
        .map_err(|e| anyhow::anyhow!("loading the model: {e:?}"))?;
    let started = std::time::Instant::now();
    live.load_text_index(&store)
        .await
        .map_err(|e| anyhow::anyhow!("loading the word index: {e:?}"))?;
    println!(
        "word index: {} products loaded in {:.1} s, {:.1} MiB of segments",
        live.text().len(),
        started.elapsed().as_secs_f64(),
        live.text().bytes() as f64 / 1_048_576.0
    );
    let catalogue = merchandise_styles(&store, &config, &live).await?;
    let suggest = suggest::SuggestService::new(store.clone(), Default::default(), live);
    let search = SearchService::new(store.clone(), suggest);
    for file in &args.judged {
        let judged = relevance::read(file)?;
        // What a perfect first five could hold: relevant results that are
        // not the same thing (results hold one per style and look-alike).
        let styles = |j: &relevance::Judged| {
            let mut things: Vec<&str> = catalogue
                .iter()
                .filter(|(path, group, _)| relevance::relevant(j, path, group))
                .map(|(_, _, thing)| thing.as_str())
                .collect();
            things.sort_unstable();
            things.dedup();
            things.len()
        };
        let outcomes = relevance::run(&search, &judged, styles).await?;
        print!(
            "{}",
            relevance::table(&file.display().to_string(), &outcomes)
        );
        println!();
    }
    store.close().await;
    drop(scratch);
    Ok(())
}

/// (category path, style, what it is to a customer) of every merchandise
/// product of the catalogue; the last is its look-alike key, or its style
/// when it has none.
async fn merchandise_styles(
    store: &crate::store::Store,
    config: &crate::suggest::ModelConfig,
    live: &crate::suggest::LiveModel,
) -> anyhow::Result<Vec<(crate::domain::CategoryPath, String, String)>> {
    let mut out = Vec::new();
    let mut after = String::new();
    loop {
        let page = store
            .catalog_page(&after, 10_000)
            .await
            .map_err(|e| anyhow::anyhow!("reading the catalogue: {e:?}"))?;
        let Some(last) = page.last() else {
            return Ok(out);
        };
        after = last.product_id.clone();
        for row in page {
            if row
                .merchandise
                .unwrap_or_else(|| config.is_merchandise(&row.category_path))
            {
                let path = crate::domain::CategoryPath::from_stored(&row.category_path);
                let thing = live.read(|m| {
                    m.item(&row.product_id)
                        .map(|i| m.catalog.items[i as usize].alike)
                        .filter(|a| *a != crate::suggest::NO_ALIKE)
                        .map(|a| format!("alike:{a}"))
                });
                let thing = thing.unwrap_or_else(|| format!("style:{}", row.group_id));
                out.push((path, row.group_id, thing));
            }
        }
    }
}

/// A fresh directory removed on drop.
fn scratch_dir() -> anyhow::Result<ScratchDir> {
    let dir = std::env::temp_dir().join(format!(
        "customer-context-evaluate-{}-{}",
        std::process::id(),
        crate::domain::Timestamp::now().millis()
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {dir:?}"))?;
    Ok(ScratchDir(dir))
}

/// A directory removed with everything in it when dropped.
struct ScratchDir(std::path::PathBuf);

impl std::ops::Deref for ScratchDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
