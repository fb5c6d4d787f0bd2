//! The cold-read test: each customer's first `GetCustomerContext` on a
//! server started for the run, so nothing about them is remembered yet.
//! A conversation usually opens on a customer nobody looked at recently:
//! this is the read agents wait for.
//!
//! Each customer is read exactly once: first one call in flight (the
//! latency an agent sees on a quiet server), then the configured
//! concurrency (first reads per second under saturation), the two phases
//! drawing from one list without repeats. `Check` runs first, beside them,
//! for the ratio (it warms no customer).

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Instant,
};

use tonic::{Code, transport::Channel};

use super::{BenchConfig, Call, PhaseReport, call_once, connect, phase_at};

/// The cold-read test's numbers.
#[derive(Debug, Clone)]
pub struct ColdReport {
    /// `Check` at the configured concurrency.
    pub check: PhaseReport,
    /// First reads, one call in flight.
    pub single: PhaseReport,
    /// First reads at the configured concurrency.
    pub saturated: PhaseReport,
    /// Customers read in each of the two phases.
    pub customers: (usize, usize),
}

/// Runs the cold-read test over `config.random`: one call in flight for
/// `config.duration` (or a third of the customers, whichever ends first),
/// then the configured concurrency until the customers or the duration run
/// out.
pub async fn run(config: &BenchConfig) -> anyhow::Result<ColdReport> {
    let channels = connect(config).await?;
    let check = phase_at(
        config,
        &channels,
        Call::Check,
        "-",
        Arc::new(vec![String::new()]),
        config.concurrency,
    )
    .await;
    let customers = Arc::new(config.random.clone());
    let next = Arc::new(AtomicUsize::new(0));
    let third = customers.len() / 3;
    let single = first_reads(config, &channels, &customers, &next, third, 1).await;
    let done_single = next.load(Ordering::Relaxed).min(customers.len());
    let saturated = first_reads(
        config,
        &channels,
        &customers,
        &next,
        customers.len(),
        config.concurrency,
    )
    .await;
    let done = next.load(Ordering::Relaxed).min(customers.len());
    Ok(ColdReport {
        check,
        single: single.labelled("first read, 1 in flight"),
        saturated: saturated.labelled("first read, saturated"),
        customers: (done_single, done - done_single),
    })
}

impl PhaseReport {
    fn labelled(mut self, who: &'static str) -> Self {
        self.who = who;
        self
    }
}

/// Reads customers `next..until` of `customers`, each once, with
/// `concurrency` calls in flight, for at most `config.duration`.
async fn first_reads(
    config: &BenchConfig,
    channels: &[Channel],
    customers: &Arc<Vec<String>>,
    next: &Arc<AtomicUsize>,
    until: usize,
    concurrency: usize,
) -> PhaseReport {
    let started = Instant::now();
    let stop_at = started + config.duration;
    let cpu = super::ServerCpu::start(config.server_pid);
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..concurrency.max(1) {
        let (channel, key) = (channels[n % channels.len()].clone(), config.api_key.clone());
        let (customers, next) = (customers.clone(), next.clone());
        tasks.spawn(async move {
            let (mut latencies, mut codes) = (Vec::new(), BTreeMap::<String, u64>::new());
            while Instant::now() < stop_at {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(who) = customers.get(i).filter(|_| i < until) else {
                    break;
                };
                let at = Instant::now();
                let code = call_once(channel.clone(), Call::Context, who, "", None, &key).await;
                *codes.entry(format!("{code:?}")).or_insert(0) += 1;
                if code == Code::Ok {
                    latencies.push(at.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                }
            }
            (latencies, codes)
        });
    }
    let (mut latencies, mut codes) = (Vec::new(), BTreeMap::<String, u64>::new());
    while let Some(Ok((l, c))) = tasks.join_next().await {
        latencies.extend(l);
        for (k, v) in c {
            *codes.entry(k).or_insert(0) += v;
        }
    }
    let mut report = PhaseReport::of(
        Call::Context,
        "",
        latencies,
        codes,
        started.elapsed().as_secs_f64(),
    );
    report.server_cpu_ms = cpu.per_answer(report.codes.values().sum());
    report
}

/// The cold-read test as a table (Markdown).
pub fn table(r: &ColdReport) -> String {
    let mut out = super::table(&[r.check.clone(), r.single.clone(), r.saturated.clone()]);
    out.push_str(&format!(
        "\ncustomers read once each: {} at 1 in flight, {} saturated\n",
        r.customers.0, r.customers.1
    ));
    out
}
