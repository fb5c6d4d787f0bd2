//! `import --shopify FILE`: a shop's history, one Admin REST resource per
//! line, mapped as the webhooks map it and written in batches.

use std::{path::Path, time::Instant};

use anyhow::Context as _;

use super::Connectors;
use crate::ingest::{ImportSummary, progress_bar, report, spawn_reader};

/// Lines written per batch.
const BATCH: usize = 500;
/// Problems printed (all are counted).
const PRINTED: usize = 20;

impl Connectors {
    /// Imports one file of Shopify resources and prints its summary.
    pub async fn import_shopify(&self, path: &Path) -> anyhow::Result<ImportSummary> {
        let started = Instant::now();
        let file = path.display().to_string();
        let bar = progress_bar(path);
        let (mut rx, reader) = spawn_reader(
            path.to_path_buf(),
            BATCH,
            bar.clone(),
            |l| Ok(l.to_owned()),
            None,
        );
        let mut summary = ImportSummary::default();
        let mut printed = 0;
        while let Some(chunk) = rx.recv().await {
            let lines: Vec<(u64, String)> = chunk
                .into_iter()
                .filter_map(|(n, l)| l.ok().map(|l| (n, l)))
                .collect();
            summary.lines += lines.len() as u64;
            let (applied, problems) = self
                .backfill_shopify(&lines)
                .await
                .map_err(|e| anyhow::anyhow!("writing to the database: {e:?}"))?;
            summary.updated += applied;
            summary.rejected += problems.len() as u64;
            for (line, why) in problems {
                if printed < PRINTED {
                    printed += 1;
                    match line {
                        0 => eprintln!("rejected in {file}: {why}"),
                        n => eprintln!("rejected {file}:{n}: {why}"),
                    }
                }
            }
        }
        reader.await.context("the file reader stopped")??;
        bar.finish_and_clear();
        report(&file, &summary, started);
        Ok(summary)
    }
}
