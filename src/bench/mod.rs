//! The `bench` subcommand: load against a running server, in one run, for
//! the calls a support desk makes, each beside the cheapest call (the
//! health `Check`) so the numbers read as a ratio that holds from machine
//! to machine.
//!
//! Phases run one after the other with the same connections and
//! concurrency: `Check`, then `GetCustomerContext` (default mask, so with
//! suggestions), the context without suggestions, and `SuggestCrossSells`,
//! each for one hot customer (the longest history) and for customers drawn
//! at random. Each phase reports calls/s, p50/p99/p99.9 latency, answers
//! other than OK by status code, and, when the server's process is given
//! (`--server-pid`), the server's CPU time per answer.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

mod cold;
mod history;
mod ingest;
pub mod relevance;
mod webhooks;

pub use cold::{ColdReport, run as cold, table as cold_table};
pub use history::prepare as prepare_histories;
pub use ingest::{IngestReport, run as ingest, table as ingest_table};
pub use webhooks::{WebhookReport, WebhookSecrets, run as webhooks, table as webhooks_table};

use anyhow::Context as _;
use tonic::{Code, transport::Channel};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::proto::{
    self as pb, customer_context_service_client::CustomerContextServiceClient,
    customer_ref::Identity,
};

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// `http://host:port`.
    pub server: String,
    /// API key for the customer calls.
    pub api_key: Option<String>,
    /// HTTP/2 connections.
    pub connections: usize,
    /// Calls in flight at once (spread over the connections).
    pub concurrency: usize,
    /// Measured time per phase.
    pub duration: Duration,
    /// Unmeasured time before each phase.
    pub warmup: Duration,
    /// The hot customer (the longest history).
    pub hot: String,
    /// Customers drawn at random, round-robin.
    pub random: Vec<String>,
    /// Customers of known history lengths, each asked for in a phase of
    /// its own (see `history`), with their labels.
    pub by_history: Vec<(&'static str, String)>,
    /// What SearchProducts phases search for, round-robin (see
    /// [`queries_from_names`]).
    pub queries: Vec<String>,
    /// Every search a question not asked before, so the server's word
    /// index computes each answer (a remembered answer never serves): a
    /// price ceiling in this currency above any price, different per call.
    pub uncached_currency: Option<String>,
    /// The server's process on this machine, when known: each phase then
    /// reports the server's CPU time per answer ([`cpu_time`]).
    pub server_pid: Option<u32>,
}

/// The price ceiling of an uncached search: above any price a product may
/// have (10^11 minor units), different for every call number `i`.
fn fresh_ceiling(currency: &str, i: usize) -> Option<pb::ProductFilter> {
    Some(pb::ProductFilter {
        max_price: Some(pb::Money {
            currency_code: currency.to_owned(),
            amount_minor: 100_000_000_000 + i as i64,
        }),
        ..Default::default()
    })
}

/// The calls a phase makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// grpc.health.v1.Health/Check.
    Check,
    /// GetCustomerContext with the default (empty) read mask.
    Context,
    /// GetCustomerContext with every section but suggestions.
    ContextWithoutSuggestions,
    /// SuggestCrossSells, 10 items.
    Suggest,
    /// SearchProducts, 10 results, without a customer.
    Search,
    /// SearchProducts, 10 results, for the phase's customer.
    SearchFor,
}

impl Call {
    fn name(self) -> &'static str {
        match self {
            Call::Check => "Health.Check",
            Call::Context => "GetCustomerContext",
            Call::ContextWithoutSuggestions => "GetCustomerContext -suggestions",
            Call::Suggest => "SuggestCrossSells",
            Call::Search => "SearchProducts",
            Call::SearchFor => "SearchProducts +customer",
        }
    }
}

/// One phase's numbers.
#[derive(Debug, Clone)]
pub struct PhaseReport {
    /// What was called.
    pub call: Call,
    /// For whom ("-", "hot", "random").
    pub who: &'static str,
    /// Answers per second (all codes).
    pub calls_per_sec: f64,
    /// OK answers per second.
    pub ok_per_sec: f64,
    /// Latency percentiles of OK answers, ms: p50, p99, p99.9.
    pub latency_ms: (f64, f64, f64),
    /// Answers by status code.
    pub codes: BTreeMap<String, u64>,
    /// The server's CPU time (user and system, every thread) per answer,
    /// ms, when its process is known: steadier than a rate on a machine
    /// whose speed varies by the hour.
    pub server_cpu_ms: Option<f64>,
}

/// Answers other than OK over `reports`.
pub fn not_ok<'a>(reports: impl IntoIterator<Item = &'a PhaseReport>) -> u64 {
    reports
        .into_iter()
        .flat_map(|r| r.codes.iter())
        .filter(|(code, _)| code.as_str() != "Ok")
        .map(|(_, n)| n)
        .sum()
}

/// Sorted latencies' percentile, in ms.
fn percentile(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let i = ((sorted_us.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted_us[i]) / 1000.0
}

fn with_key<T>(message: T, key: &Option<String>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(k) = key
        && let Ok(v) = format!("Bearer {k}").parse()
    {
        request.metadata_mut().insert("authorization", v);
    }
    request
}

fn customer(id: &str) -> Option<pb::CustomerRef> {
    Some(pb::CustomerRef {
        identity: Some(Identity::CustomerId(id.to_owned())),
    })
}

/// What to search for: from each product name, its first two words (a
/// typed request), and for every third name the first word and the start
/// of the second (a request still being typed). Deterministic.
pub fn queries_from_names(names: &[String]) -> Vec<String> {
    names
        .iter()
        .enumerate()
        .filter_map(|(i, name)| {
            let words: Vec<String> = name
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| w.chars().count() >= 3 && !w.chars().all(|c| c.is_ascii_digit()))
                .take(2)
                .map(str::to_lowercase)
                .collect();
            match words.as_slice() {
                [] => None,
                [one] => Some(format!("{one} ")),
                [a, b] if i % 3 == 2 => {
                    Some(format!("{a} {}", b.chars().take(3).collect::<String>()))
                }
                [a, b] => Some(format!("{a} {b} ")),
                _ => None,
            }
        })
        .collect()
}

/// Makes one call; its status code.
async fn call_once(
    channel: Channel,
    call: Call,
    who: &str,
    query: &str,
    filter: Option<pb::ProductFilter>,
    key: &Option<String>,
) -> Code {
    let context = |mask: &[&str]| pb::GetCustomerContextRequest {
        customer: customer(who),
        read_mask: (!mask.is_empty()).then(|| prost_types::FieldMask {
            paths: mask.iter().map(|s| (*s).to_owned()).collect(),
        }),
        ..Default::default()
    };
    let result = match call {
        Call::Check => HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map(|_| ()),
        Call::Context => CustomerContextServiceClient::new(channel)
            .get_customer_context(with_key(context(&[]), key))
            .await
            .map(|_| ()),
        Call::ContextWithoutSuggestions => CustomerContextServiceClient::new(channel)
            .get_customer_context(with_key(
                context(&crate::context::Sections::NAMES[..7]), // every section but suggestions
                key,
            ))
            .await
            .map(|_| ()),
        Call::Suggest => CustomerContextServiceClient::new(channel)
            .suggest_cross_sells(with_key(
                pb::SuggestCrossSellsRequest {
                    customer: customer(who),
                    limit: 10,
                    ..Default::default()
                },
                key,
            ))
            .await
            .map(|_| ()),
        Call::Search | Call::SearchFor => CustomerContextServiceClient::new(channel)
            .search_products(with_key(
                pb::SearchProductsRequest {
                    query: query.to_owned(),
                    customer: if call == Call::SearchFor {
                        customer(who)
                    } else {
                        None
                    },
                    limit: 10,
                    filter,
                },
                key,
            ))
            .await
            .map(|_| ()),
    };
    match result {
        Ok(()) => Code::Ok,
        Err(status) => status.code(),
    }
}

/// Runs `call` with `concurrency` loops over `channels` for `duration`
/// (after `warmup`); customers taken round-robin from `who`.
async fn phase(
    config: &BenchConfig,
    channels: &[Channel],
    call: Call,
    label: &'static str,
    who: Arc<Vec<String>>,
) -> PhaseReport {
    phase_at(config, channels, call, label, who, config.concurrency).await
}

/// [`phase`] with `concurrency` calls in flight.
async fn phase_at(
    config: &BenchConfig,
    channels: &[Channel],
    call: Call,
    label: &'static str,
    who: Arc<Vec<String>>,
    concurrency: usize,
) -> PhaseReport {
    let queries = Arc::new(config.queries.clone());
    let started = Instant::now();
    let measure_from = started + config.warmup;
    let stop_at = measure_from + config.duration;
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..concurrency.max(1) {
        let channel = channels[n % channels.len()].clone();
        let who = who.clone();
        let queries = queries.clone();
        let key = config.api_key.clone();
        let uncached = config.uncached_currency.clone();
        tasks.spawn(async move {
            let mut latencies: Vec<u32> = Vec::new();
            let mut codes: BTreeMap<String, u64> = BTreeMap::new();
            let mut i = n;
            loop {
                let at = Instant::now();
                if at >= stop_at {
                    break;
                }
                let id = who.get(i % who.len().max(1)).map_or("", String::as_str);
                let query = queries
                    .get(i % queries.len().max(1))
                    .map_or("", String::as_str);
                // Unique per call: tasks start at distinct n < 7919.
                let filter = uncached.as_deref().and_then(|c| fresh_ceiling(c, i));
                i += 7919;
                let code = call_once(channel.clone(), call, id, query, filter, &key).await;
                if at >= measure_from {
                    *codes.entry(format!("{code:?}")).or_insert(0) += 1;
                    if code == Code::Ok {
                        latencies.push(at.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                    }
                }
            }
            (latencies, codes)
        });
    }
    tokio::time::sleep_until(measure_from.into()).await;
    let cpu = ServerCpu::start(config.server_pid);
    let mut latencies = Vec::new();
    let mut codes: BTreeMap<String, u64> = BTreeMap::new();
    while let Some(done) = tasks.join_next().await {
        if let Ok((l, c)) = done {
            latencies.extend(l);
            for (k, v) in c {
                *codes.entry(k).or_insert(0) += v;
            }
        }
    }
    let mut report = PhaseReport::of(call, label, latencies, codes, config.duration.as_secs_f64());
    report.server_cpu_ms = cpu.per_answer(report.codes.values().sum());
    report
}

/// The server's CPU time at the start of a measured phase.
pub(crate) struct ServerCpu(Option<(u32, Duration)>);

impl ServerCpu {
    pub(crate) fn start(pid: Option<u32>) -> Self {
        Self(pid.and_then(|pid| Some((pid, cpu_time(pid)?))))
    }

    /// The server's CPU time since the start per answer, ms.
    pub(crate) fn per_answer(&self, answers: u64) -> Option<f64> {
        let (pid, start) = self.0?;
        let used = cpu_time(pid)?.checked_sub(start)?;
        (answers > 0).then(|| used.as_secs_f64() * 1000.0 / answers as f64)
    }
}

/// The CPU time process `pid` has used, user and system, over all its
/// threads (`/proc/PID/stat`); `None` where it cannot be read.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    cpu_time_of(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// [`cpu_time`] from the text of `/proc/PID/stat`: fields 14 and 15
/// (utime, stime) in clock ticks of 1/100 s (Linux's `USER_HZ` on x86 and
/// arm), counted after the command name, which may hold spaces and
/// parentheses.
fn cpu_time_of(stat: &str) -> Option<Duration> {
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<u64>().ok();
    Some(Duration::from_millis((ticks(11)? + ticks(12)?) * 10))
}

impl PhaseReport {
    /// A phase's numbers from its OK latencies (µs), its answers by code
    /// and how long it ran.
    fn of(
        call: Call,
        who: &'static str,
        mut latencies: Vec<u32>,
        codes: BTreeMap<String, u64>,
        secs: f64,
    ) -> Self {
        latencies.sort_unstable();
        let secs = secs.max(1e-9);
        PhaseReport {
            call,
            who,
            calls_per_sec: codes.values().sum::<u64>() as f64 / secs,
            ok_per_sec: latencies.len() as f64 / secs,
            latency_ms: (
                percentile(&latencies, 0.5),
                percentile(&latencies, 0.99),
                percentile(&latencies, 0.999),
            ),
            codes,
            server_cpu_ms: None,
        }
    }
}

/// The overload test's three phases of `GetCustomerContext` for random
/// customers: one call in flight (unloaded), the configured concurrency
/// (saturated), and five times it (overloaded).
#[derive(Debug, Clone)]
pub struct OverloadReport {
    /// One call in flight.
    pub unloaded: PhaseReport,
    /// The configured concurrency.
    pub saturated: PhaseReport,
    /// Five times the configured concurrency.
    pub overloaded: PhaseReport,
    /// The configured concurrency.
    pub concurrency: usize,
}

/// Runs the overload test.
pub async fn overload(config: &BenchConfig) -> anyhow::Result<OverloadReport> {
    let channels = connect(config).await?;
    let random = Arc::new(config.random.clone());
    let at = |label, n| phase_at(config, &channels, Call::Context, label, random.clone(), n);
    // Saturated first: it also warms every customer's cached reads, so
    // the unloaded phase measures serving, not first reads.
    let saturated = at("random, saturated", config.concurrency).await;
    let unloaded = at("random, 1 in flight", 1).await;
    let overloaded = at("random, 5x saturated", config.concurrency * 5).await;
    Ok(OverloadReport {
        unloaded,
        saturated,
        overloaded,
        concurrency: config.concurrency,
    })
}

/// The overload test as a table, with the two ratios it is judged by.
pub fn overload_table(r: &OverloadReport) -> String {
    let mut out = String::from(
        "| phase | in flight | OK/s | OK/s vs saturated | p50 ms | p99 ms (OK only) | answers by code |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | --- |\n",
    );
    let base = r.saturated.ok_per_sec.max(1e-9);
    for (p, n) in [
        (&r.unloaded, 1),
        (&r.saturated, r.concurrency),
        (&r.overloaded, r.concurrency * 5),
    ] {
        let codes: Vec<String> = p.codes.iter().map(|(k, v)| format!("{k} {v}")).collect();
        out.push_str(&format!(
            "| {} | {n} | {:.0} | {:.1} % | {:.2} | {:.2} | {} |\n",
            p.who,
            p.ok_per_sec,
            100.0 * p.ok_per_sec / base,
            p.latency_ms.0,
            p.latency_ms.1,
            codes.join(", ")
        ));
    }
    out.push_str(&format!(
        "\noverloaded OK rate: {:.1} % of saturated (target >= 80 %); admitted p99: {:.1}x the \
         unloaded p99, {:.1}x the saturated p99 (target <= 3x)\n",
        100.0 * r.overloaded.ok_per_sec / base,
        r.overloaded.latency_ms.1 / r.unloaded.latency_ms.1.max(1e-9),
        r.overloaded.latency_ms.1 / r.saturated.latency_ms.1.max(1e-9),
    ));
    out
}

async fn connect(config: &BenchConfig) -> anyhow::Result<Vec<Channel>> {
    let mut channels = Vec::new();
    for _ in 0..config.connections.max(1) {
        channels.push(
            Channel::from_shared(config.server.clone())
                .context("parsing the server address")?
                .tcp_nodelay(true)
                .connect()
                .await
                .with_context(|| format!("connecting to {}", config.server))?,
        );
    }
    Ok(channels)
}

/// The peak and current resident memory of process `pid` (Linux
/// `/proc/PID/status`: VmHWM, VmRSS), as a sentence.
pub fn peak_memory(pid: u32) -> anyhow::Result<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let kib = |field: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    let (Some(peak), Some(now)) = (kib("VmHWM:"), kib("VmRSS:")) else {
        anyhow::bail!("/proc/{pid}/status has no VmHWM/VmRSS");
    };
    Ok(format!(
        "server (pid {pid}) resident memory: peak {:.0} MiB, now {:.0} MiB",
        peak as f64 / 1024.0,
        now as f64 / 1024.0
    ))
}

/// The search test: `Check`, then SearchProducts without a customer, for
/// the hot customer and for random customers, the queries taken
/// round-robin from [`BenchConfig::queries`].
pub async fn search(config: &BenchConfig) -> anyhow::Result<Vec<PhaseReport>> {
    let channels = connect(config).await?;
    let hot = Arc::new(vec![config.hot.clone()]);
    let random = Arc::new(config.random.clone());
    Ok(vec![
        phase(config, &channels, Call::Check, "-", hot.clone()).await,
        phase(config, &channels, Call::Search, "-", hot.clone()).await,
        phase(config, &channels, Call::SearchFor, "hot", hot).await,
        phase(config, &channels, Call::SearchFor, "random", random).await,
    ])
}

/// Runs every phase and returns their reports, `Check` first.
pub async fn run(config: &BenchConfig) -> anyhow::Result<Vec<PhaseReport>> {
    let channels = connect(config).await?;
    let hot = Arc::new(vec![config.hot.clone()]);
    let random = Arc::new(config.random.clone());
    let mut reports = vec![phase(config, &channels, Call::Check, "-", hot.clone()).await];
    for call in [
        Call::Context,
        Call::ContextWithoutSuggestions,
        Call::Suggest,
    ] {
        reports.push(phase(config, &channels, call, "hot", hot.clone()).await);
        reports.push(phase(config, &channels, call, "random", random.clone()).await);
    }
    for (label, customer) in &config.by_history {
        let who = Arc::new(vec![customer.clone()]);
        reports.push(phase(config, &channels, Call::Context, label, who).await);
    }
    Ok(reports)
}

/// The reports as a table (Markdown), each phase's OK rate beside the
/// health `Check`'s.
pub fn table(reports: &[PhaseReport]) -> String {
    let base = reports
        .iter()
        .find(|r| r.call == Call::Check)
        .map_or(1.0, |r| r.ok_per_sec.max(1e-9));
    let mut out = String::from(
        "| call | customer | OK/s | vs Check | p50 ms | p99 ms | p99.9 ms | server CPU ms/answer | answers by code |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n",
    );
    for r in reports {
        let codes: Vec<String> = r.codes.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let cpu = r
            .server_cpu_ms
            .map_or_else(|| "-".to_owned(), |ms| format!("{ms:.3}"));
        out.push_str(&format!(
            "| {} | {} | {:.0} | {:.1} % | {:.2} | {:.2} | {:.2} | {cpu} | {} |\n",
            r.call.name(),
            r.who,
            r.ok_per_sec,
            100.0 * r.ok_per_sec / base,
            r.latency_ms.0,
            r.latency_ms.1,
            r.latency_ms.2,
            codes.join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_user_and_system_ticks_after_the_command_name() {
        // A command name with spaces and a parenthesis; utime 250 ticks,
        // stime 50 (fields 14 and 15), then cutime 7 and cstime 9 (children's,
        // not counted).
        let stat = "4242 (tokio (rt) x) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 50 7 9 20 0 5";
        assert_eq!(cpu_time_of(stat), Some(Duration::from_millis(3000)));
        assert_eq!(cpu_time_of("4242 (short) S 1 2"), None);
        assert_eq!(cpu_time_of("no parenthesis"), None);
        // The running test's own process reads, and its time only grows.
        let me = std::process::id();
        let before = cpu_time(me).expect("this process's stat");
        assert!(cpu_time(me).expect("this process's stat") >= before);
    }

    #[test]
    fn queries_are_the_first_words_of_names_some_still_being_typed() {
        let names = [
            "Waterproof Shell Jacket (M)".to_owned(),
            "Fluid Milk White Only 1 GA".to_owned(),
            "Polar Fleece".to_owned(),
            "XL".to_owned(),
            "Gasoline-Reg Unleaded".to_owned(),
        ];
        assert_eq!(
            queries_from_names(&names),
            [
                "waterproof shell ",
                "fluid milk ",
                "polar fle",
                "gasoline reg "
            ]
        );
    }
}
