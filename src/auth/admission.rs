//! Admission by waiting time: a bounded number of calls run at once; a few
//! more wait (first come, first served) for a bounded time and never past
//! their own deadline; the rest are refused at once. Under overload the
//! server keeps running at its saturated rate and admitted calls keep
//! their latency, instead of every call slowing down together.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why a call was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Too many calls running and waiting; the call would not start soon.
    Overloaded,
    /// The caller's deadline passed (or would pass) before it could start.
    DeadlinePassed,
}

/// The limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Calls running at once.
    pub running: usize,
    /// Calls waiting for a place at once; more are refused without waiting.
    pub queued: usize,
    /// Longest a call waits for a place.
    pub max_wait: Duration,
}

/// The admission queue.
pub struct Admission {
    limits: Limits,
    places: Arc<Semaphore>,
    waiting: AtomicUsize,
}

/// Decrements the waiting count however the wait ends.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Admission {
    /// An empty queue with `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            places: Arc::new(Semaphore::new(limits.running)),
            waiting: AtomicUsize::new(0),
        }
    }

    /// A place to run, or why not. `deadline` is the caller's own (from
    /// `grpc-timeout`), if any.
    pub async fn admit(&self, deadline: Option<Instant>) -> Result<OwnedSemaphorePermit, Refusal> {
        if let Ok(place) = self.places.clone().try_acquire_owned() {
            return Ok(place);
        }
        let now = Instant::now();
        let budget = match deadline {
            Some(d) => d.saturating_duration_since(now).min(self.limits.max_wait),
            None => self.limits.max_wait,
        };
        if budget.is_zero() {
            return Err(if deadline.is_some_and(|d| d <= now) {
                Refusal::DeadlinePassed
            } else {
                Refusal::Overloaded
            });
        }
        if self.waiting.fetch_add(1, Ordering::Relaxed) >= self.limits.queued {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            return Err(Refusal::Overloaded);
        }
        let _waiting = Waiting(&self.waiting);
        match tokio::time::timeout(budget, self.places.clone().acquire_owned()).await {
            Ok(Ok(place)) => Ok(place),
            Ok(Err(_)) => Err(Refusal::Overloaded),
            Err(_) if deadline.is_some_and(|d| d <= Instant::now()) => Err(Refusal::DeadlinePassed),
            Err(_) => Err(Refusal::Overloaded),
        }
    }
}

/// Counts refusals and logs them as at most one summary line per second,
/// so an overload does not also flood the logs.
#[derive(Default)]
pub struct RefusalLog {
    started: OnceInstant,
    last_logged_ms: AtomicU64,
    overloaded: AtomicU64,
    deadline_passed: AtomicU64,
    unavailable: AtomicU64,
    /// Every refusal since start, for metrics.
    pub total: AtomicU64,
}

/// The process's start, for millisecond clocks in atomics.
struct OnceInstant(Instant);

impl Default for OnceInstant {
    fn default() -> Self {
        Self(Instant::now())
    }
}

/// What a refusal was, for the log.
#[derive(Debug, Clone, Copy)]
pub enum Refused {
    /// See [`Refusal::Overloaded`].
    Overloaded,
    /// See [`Refusal::DeadlinePassed`].
    DeadlinePassed,
    /// The database is unreachable.
    Unavailable,
}

impl RefusalLog {
    /// Counts one refusal; logs the counts of the last second or more when
    /// no line was written for a second.
    pub fn note(&self, what: Refused) {
        self.total.fetch_add(1, Ordering::Relaxed);
        let counter = match what {
            Refused::Overloaded => &self.overloaded,
            Refused::DeadlinePassed => &self.deadline_passed,
            Refused::Unavailable => &self.unavailable,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let now = self.started.0.elapsed().as_millis() as u64 + 1000;
        let last = self.last_logged_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= 1000
            && self
                .last_logged_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                overloaded = self.overloaded.swap(0, Ordering::Relaxed),
                deadline_passed = self.deadline_passed.swap(0, Ordering::Relaxed),
                database_unavailable = self.unavailable.swap(0, Ordering::Relaxed),
                refused_since_start = self.total.load(Ordering::Relaxed),
                "calls refused (one summary line per second at most)"
            );
        }
    }
}

/// Reads a `grpc-timeout` header value ("100m", "5S", ...) as a duration.
pub fn grpc_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(running: usize, queued: usize) -> Limits {
        Limits {
            running,
            queued,
            max_wait: Duration::from_secs(3600),
        }
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_and_a_freed_place_goes_to_the_first_waiter() {
        let admission = Arc::new(Admission::new(limits(1, 1)));
        let running = admission.admit(None).await.expect("a free place");
        let waiter = {
            let admission = admission.clone();
            tokio::spawn(async move { admission.admit(None).await.map(drop) })
        };
        while admission.waiting.load(Ordering::Relaxed) == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            admission.admit(None).await.map(drop),
            Err(Refusal::Overloaded),
            "one running and one waiting: the third is refused without waiting"
        );
        drop(running);
        assert_eq!(waiter.await.expect("joined"), Ok(()));
        assert_eq!(admission.waiting.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_call_whose_deadline_has_passed_never_starts() {
        let admission = Admission::new(limits(1, 10));
        let _running = admission.admit(None).await.expect("a free place");
        let past = Instant::now() - Duration::from_millis(1);
        assert_eq!(
            admission.admit(Some(past)).await.map(drop),
            Err(Refusal::DeadlinePassed)
        );
        let no_queue = Admission::new(limits(0, 0));
        assert_eq!(
            no_queue.admit(None).await.map(drop),
            Err(Refusal::Overloaded)
        );
    }

    #[test]
    fn grpc_timeouts_are_read() {
        assert_eq!(grpc_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(grpc_timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(grpc_timeout("m"), None);
        assert_eq!(grpc_timeout("123456789m"), None);
        assert_eq!(grpc_timeout("10x"), None);
        assert_eq!(grpc_timeout(""), None);
    }
}
