//! Importing files: a product catalog (CSV or JSON Lines) and Segment-style
//! event files (JSON Lines), plain or gzip-compressed. Lines are parsed on a
//! blocking thread and written in batches through the same store calls as
//! the gRPC API, so an import is idempotent: running it twice stores
//! everything once and reports the second run as duplicates.

mod catalog;
pub mod segment;

use std::{
    fs::File,
    io::{BufRead, BufReader, Read, Write},
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::Context as _;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::mpsc;

pub use catalog::{product_from_csv, product_from_json, product_from_line};
use segment::Record;

use crate::{
    domain::{ItemResult, Product, Timestamp, WriteOutcome},
    store::Store,
};

/// What `import` reads, and how it writes (the database and model
/// arguments are the command line's).
#[derive(Debug, Args)]
pub struct ImportFiles {
    /// Product catalog files: .csv or .jsonl, optionally .gz. Imported
    /// before the event files, so order lines can take names and
    /// categories from the catalog.
    #[arg(long = "catalog", value_name = "FILE")]
    pub catalogs: Vec<PathBuf>,
    /// Segment/RudderStack event files (.jsonl, optionally .gz): track
    /// events and identify calls.
    #[arg(long = "events", value_name = "FILE")]
    pub events: Vec<PathBuf>,
    /// Shopify history (.jsonl, optionally .gz): one Admin REST resource
    /// per line (orders, refunds, customers, products, inventory levels),
    /// mapped as the Shopify webhooks are (docs/connectors.md). Imported
    /// after the other files, in the order given.
    #[arg(long = "shopify", value_name = "FILE")]
    pub shopify: Vec<PathBuf>,
    /// Write every rejected line (file, line number, reason) to this file
    /// as JSON Lines. The first 20 are always printed.
    #[arg(long, value_name = "FILE")]
    pub rejects: Option<PathBuf>,
    /// Records written per transaction.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub batch_size: u32,
}

/// What an import did with a file's lines.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    /// Lines read (blank lines excluded).
    pub lines: u64,
    /// Stored for the first time.
    pub created: u64,
    /// Replaced a stored record.
    pub updated: u64,
    /// Already stored.
    pub duplicate: u64,
    /// Rejected, with a reason.
    pub rejected: u64,
    /// Dropped: they name an erased customer.
    pub suppressed: u64,
}

impl ImportSummary {
    fn add(&mut self, outcome: &ItemResult) {
        match outcome {
            Ok(WriteOutcome::Created) => self.created += 1,
            Ok(WriteOutcome::Updated) => self.updated += 1,
            Ok(WriteOutcome::Duplicate) => self.duplicate += 1,
            Ok(WriteOutcome::Suppressed) => self.suppressed += 1,
            Err(_) => self.rejected += 1,
        }
    }
}

/// One rejected line.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Rejected {
    /// The file.
    pub file: String,
    /// 1-based line number.
    pub line: u64,
    /// Why.
    pub reason: String,
}

/// Opens a file, transparently gunzipping it (by its magic bytes, not its
/// name), with a progress bar over the bytes read.
fn open(path: &Path, progress: &ProgressBar) -> anyhow::Result<Box<dyn BufRead + Send>> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut magic = [0u8; 2];
    let n = file.read(&mut magic)?;
    let file = File::open(path)?;
    progress.set_length(file.metadata()?.len());
    let raw = progress.wrap_read(file);
    if n == 2 && magic == [0x1f, 0x8b] {
        Ok(Box::new(BufReader::with_capacity(
            1 << 16,
            flate2::read::MultiGzDecoder::new(raw),
        )))
    } else {
        Ok(Box::new(BufReader::with_capacity(1 << 16, raw)))
    }
}

fn is_csv(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    name.ends_with(".csv") || name.ends_with(".csv.gz")
}

pub(crate) fn progress_bar(path: &Path) -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:30!} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    bar
}

/// A parsed chunk of lines: (line number, record or reason).
pub(crate) type Chunk<T> = Vec<(u64, Result<T, String>)>;

/// Reads and parses a file on a blocking thread, sending chunks of parsed
/// lines. Parsing never blocks the async runtime.
pub(crate) fn spawn_reader<T: Send + 'static>(
    path: PathBuf,
    chunk: usize,
    progress: ProgressBar,
    parse: impl Fn(&str) -> Result<T, String> + Send + 'static,
    csv_parse: Option<CsvParser<T>>,
) -> (
    mpsc::Receiver<Chunk<T>>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let (tx, rx) = mpsc::channel::<Chunk<T>>(4);
    let handle = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let reader = open(&path, &progress)?;
        let mut buf: Chunk<T> = Vec::with_capacity(chunk);
        if let Some(csv_parse) = csv_parse {
            let mut csv = csv::ReaderBuilder::new().flexible(true).from_reader(reader);
            let header = csv.headers().context("reading the CSV header")?.clone();
            for (i, record) in csv.records().enumerate() {
                let line = i as u64 + 2;
                let parsed = match record {
                    Ok(r) => csv_parse(&header, &r),
                    Err(e) => Err(format!("unreadable CSV record: {e}")),
                };
                buf.push((line, parsed));
                if buf.len() >= chunk && tx.blocking_send(std::mem::take(&mut buf)).is_err() {
                    return Ok(());
                }
            }
        } else {
            for (i, line) in reader.lines().enumerate() {
                let line_no = i as u64 + 1;
                let line = line.with_context(|| format!("reading line {line_no}"))?;
                if line.trim().is_empty() {
                    continue;
                }
                buf.push((line_no, parse(&line)));
                if buf.len() >= chunk && tx.blocking_send(std::mem::take(&mut buf)).is_err() {
                    return Ok(());
                }
            }
        }
        if !buf.is_empty() {
            let _ = tx.blocking_send(buf);
        }
        Ok(())
    });
    (rx, handle)
}

/// Parses one CSV record given the header.
pub(crate) type CsvParser<T> = fn(&csv::StringRecord, &csv::StringRecord) -> Result<T, String>;

/// Records of each kind waiting to be written, with their line numbers.
#[derive(Default)]
struct Pending {
    customers: Vec<(u64, crate::domain::Customer)>,
    events: Vec<(u64, crate::domain::BrowsingEvent)>,
    orders: Vec<(u64, crate::domain::Order)>,
    returns: Vec<(u64, crate::domain::Return)>,
    tickets: Vec<(u64, crate::domain::Ticket)>,
}

impl Pending {
    fn len(&self) -> usize {
        self.customers.len()
            + self.events.len()
            + self.orders.len()
            + self.returns.len()
            + self.tickets.len()
    }

    /// Writes everything pending, in dependency order: customers, events,
    /// orders, then returns and tickets (which refer to orders).
    async fn flush(
        &mut self,
        store: &Store,
        file: &str,
        summary: &mut ImportSummary,
        rejects: &mut Rejects,
    ) -> anyhow::Result<()> {
        async fn write<T>(
            items: &mut Vec<(u64, T)>,
            file: &str,
            summary: &mut ImportSummary,
            rejects: &mut Rejects,
            call: impl AsyncFnOnce(&[T]) -> Result<Vec<ItemResult>, crate::domain::Error>,
        ) -> anyhow::Result<()> {
            if items.is_empty() {
                return Ok(());
            }
            let (lines, records): (Vec<u64>, Vec<T>) = std::mem::take(items).into_iter().unzip();
            let outcomes = call(&records)
                .await
                .map_err(|e| anyhow::anyhow!("writing to the database: {e:?}"))?;
            for (line, outcome) in lines.into_iter().zip(outcomes) {
                summary.add(&outcome);
                if let Err(v) = outcome {
                    rejects.push(Rejected {
                        file: file.to_owned(),
                        line,
                        reason: v.to_string(),
                    })?;
                }
            }
            Ok(())
        }
        let ok = |v: Vec<WriteOutcome>| v.into_iter().map(Ok).collect::<Vec<ItemResult>>();
        write(&mut self.customers, file, summary, rejects, async |r| {
            store.upsert_customers(r).await
        })
        .await?;
        write(&mut self.events, file, summary, rejects, async |r| {
            store.record_events(r).await.map(ok)
        })
        .await?;
        write(&mut self.orders, file, summary, rejects, async |r| {
            store.record_orders(r).await
        })
        .await?;
        write(&mut self.returns, file, summary, rejects, async |r| {
            store.record_returns(r).await
        })
        .await?;
        write(&mut self.tickets, file, summary, rejects, async |r| {
            store.upsert_tickets(r).await.map(ok)
        })
        .await?;
        Ok(())
    }
}

/// Collects rejected lines: prints the first few, writes all to a file.
struct Rejects {
    printed: usize,
    out: Option<std::io::BufWriter<File>>,
}

impl Rejects {
    const PRINTED: usize = 20;

    fn push(&mut self, r: Rejected) -> anyhow::Result<()> {
        if self.printed < Self::PRINTED {
            eprintln!("rejected {}:{}: {}", r.file, r.line, r.reason);
            self.printed += 1;
        }
        if let Some(out) = &mut self.out {
            serde_json::to_writer(&mut *out, &r)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    }
}

/// Imports the catalog files, then the event files; prints a summary per
/// file. Fails only on I/O or database errors: bad lines are reported and
/// counted, never fatal and never silent.
pub async fn run_import(store: &Store, args: &ImportFiles) -> anyhow::Result<()> {
    if args.catalogs.is_empty() && args.events.is_empty() && args.shopify.is_empty() {
        anyhow::bail!(
            "nothing to import: pass --catalog FILE, --events FILE and/or --shopify FILE"
        );
    }
    let mut rejects = Rejects {
        printed: 0,
        out: match &args.rejects {
            Some(p) => Some(std::io::BufWriter::new(
                File::create(p).with_context(|| format!("creating {}", p.display()))?,
            )),
            None => None,
        },
    };
    let batch = args.batch_size as usize;
    for path in &args.catalogs {
        let started = Instant::now();
        let file = path.display().to_string();
        let bar = progress_bar(path);
        let csv_parse: Option<CsvParser<Product>> = if is_csv(path) {
            Some(product_from_csv)
        } else {
            None
        };
        let (mut rx, reader) = spawn_reader(
            path.clone(),
            batch,
            bar.clone(),
            product_from_line,
            csv_parse,
        );
        let mut summary = ImportSummary::default();
        while let Some(chunk) = rx.recv().await {
            let mut lines = Vec::new();
            let mut products = Vec::new();
            for (line, parsed) in chunk {
                summary.lines += 1;
                match parsed {
                    Ok(p) => {
                        lines.push(line);
                        products.push(p);
                    }
                    Err(reason) => {
                        summary.rejected += 1;
                        rejects.push(Rejected {
                            file: file.clone(),
                            line,
                            reason,
                        })?;
                    }
                }
            }
            for o in store
                .upsert_products(&products)
                .await
                .map_err(|e| anyhow::anyhow!("writing products: {e:?}"))?
            {
                summary.add(&Ok(o));
            }
        }
        reader.await.context("the file reader stopped")??;
        bar.finish_and_clear();
        report(&file, &summary, started);
    }
    for path in &args.events {
        let started = Instant::now();
        let file = path.display().to_string();
        let bar = progress_bar(path);
        let now = Timestamp::now();
        let (mut rx, reader) = spawn_reader(
            path.clone(),
            batch,
            bar.clone(),
            move |l| segment::parse_line(l, now),
            None,
        );
        let mut summary = ImportSummary::default();
        let mut pending = Pending::default();
        while let Some(chunk) = rx.recv().await {
            for (line, parsed) in chunk {
                summary.lines += 1;
                match parsed {
                    Ok(Record::Customer(c)) => pending.customers.push((line, c)),
                    Ok(Record::Event(e)) => pending.events.push((line, e)),
                    Ok(Record::Order(o)) => pending.orders.push((line, o)),
                    Ok(Record::Return(r)) => pending.returns.push((line, r)),
                    Ok(Record::Ticket(t)) => pending.tickets.push((line, t)),
                    Err(reason) => {
                        summary.rejected += 1;
                        rejects.push(Rejected {
                            file: file.clone(),
                            line,
                            reason,
                        })?;
                    }
                }
            }
            if pending.len() >= batch {
                pending
                    .flush(store, &file, &mut summary, &mut rejects)
                    .await?;
            }
        }
        pending
            .flush(store, &file, &mut summary, &mut rejects)
            .await?;
        reader.await.context("the file reader stopped")??;
        bar.finish_and_clear();
        report(&file, &summary, started);
    }
    if let Some(out) = &mut rejects.out {
        out.flush()?;
    }
    Ok(())
}

pub(crate) fn report(file: &str, s: &ImportSummary, started: Instant) {
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{file}: {} lines in {secs:.1}s ({:.0}/s): {} accepted ({} new, {} updated), {} duplicate, {} rejected, {} suppressed (erased customers)",
        s.lines,
        s.lines as f64 / secs.max(0.001),
        s.created + s.updated,
        s.created,
        s.updated,
        s.duplicate,
        s.rejected,
        s.suppressed
    );
}

/// Writes records of any kind through the store's batch calls, in
/// dependency order (customers, events, orders, returns, tickets), as one
/// call per kind; the results come back in the records' order. The import
/// and the webhook connectors write through it.
pub async fn write_records(
    store: &Store,
    records: Vec<Record>,
) -> Result<Vec<ItemResult>, crate::domain::Error> {
    let n = records.len();
    let mut by_kind = Pending::default();
    for (i, r) in records.into_iter().enumerate() {
        let i = i as u64;
        match r {
            Record::Customer(c) => by_kind.customers.push((i, c)),
            Record::Event(e) => by_kind.events.push((i, e)),
            Record::Order(o) => by_kind.orders.push((i, o)),
            Record::Return(r) => by_kind.returns.push((i, r)),
            Record::Ticket(t) => by_kind.tickets.push((i, t)),
        }
    }
    let mut out: Vec<Option<ItemResult>> = vec![None; n];
    fn place(out: &mut [Option<ItemResult>], at: Vec<u64>, results: Vec<ItemResult>) {
        for (i, r) in at.into_iter().zip(results) {
            out[i as usize] = Some(r);
        }
    }
    let ok = |v: Vec<WriteOutcome>| v.into_iter().map(Ok).collect::<Vec<ItemResult>>();
    let (at, items): (Vec<u64>, Vec<_>) = by_kind.customers.into_iter().unzip();
    if !items.is_empty() {
        place(&mut out, at, store.upsert_customers(&items).await?);
    }
    let (at, items): (Vec<u64>, Vec<_>) = by_kind.events.into_iter().unzip();
    if !items.is_empty() {
        place(&mut out, at, ok(store.record_events(&items).await?));
    }
    let (at, items): (Vec<u64>, Vec<_>) = by_kind.orders.into_iter().unzip();
    if !items.is_empty() {
        place(&mut out, at, store.record_orders(&items).await?);
    }
    let (at, items): (Vec<u64>, Vec<_>) = by_kind.returns.into_iter().unzip();
    if !items.is_empty() {
        place(&mut out, at, store.record_returns(&items).await?);
    }
    let (at, items): (Vec<u64>, Vec<_>) = by_kind.tickets.into_iter().unzip();
    if !items.is_empty() {
        place(&mut out, at, ok(store.upsert_tickets(&items).await?));
    }
    Ok(out
        .into_iter()
        .map(|r| r.unwrap_or(Ok(WriteOutcome::Duplicate)))
        .collect())
}
