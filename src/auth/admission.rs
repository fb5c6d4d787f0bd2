//! Admission by waiting time: a bounded number of calls run at once; more
//! wait for a bounded time, never past their own deadline, and beyond a
//! bounded queue they are refused at once. While the queue is short it is
//! served first come, first served; once it holds more than
//! [`LIFO_AFTER`] times the running calls (an overload, not a burst) the
//! newest waiter is served
//! first ("adaptive LIFO"): the calls that are admitted start at once and
//! keep their latency, and the ones that waited longest, whose callers are
//! the likeliest to have given up, are the ones that time out. Under
//! overload the server keeps running at its saturated rate.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::sync::oneshot;

/// Waiting calls, per running call, beyond which the newest waiter goes
/// first.
pub const LIFO_AFTER: usize = 4;

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

struct Waiter {
    id: u64,
    wake: oneshot::Sender<()>,
}

#[derive(Default)]
struct Queue {
    running: usize,
    waiting: VecDeque<Waiter>,
    next_id: u64,
}

/// The admission queue.
pub struct Admission {
    limits: Limits,
    queue: Mutex<Queue>,
}

/// A place to run; given to the next waiter (or freed) when dropped.
pub struct Place(Arc<Admission>);

impl Drop for Place {
    fn drop(&mut self) {
        self.0.release();
    }
}

impl Admission {
    /// An empty queue with `limits`.
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            queue: Mutex::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hands a finished call's place to a waiter, or frees it.
    fn release(&self) {
        let mut q = self.lock();
        loop {
            let lifo = q.waiting.len() > LIFO_AFTER * self.limits.running.max(1);
            let next = if lifo {
                q.waiting.pop_back()
            } else {
                q.waiting.pop_front()
            };
            match next {
                // The place moves to the waiter: `running` is unchanged.
                Some(w) => {
                    if w.wake.send(()).is_ok() {
                        return;
                    }
                }
                None => {
                    q.running = q.running.saturating_sub(1);
                    return;
                }
            }
        }
    }

    /// A place to run, or why not. `deadline` is the caller's own (from
    /// `grpc-timeout`), if any.
    pub async fn admit(self: &Arc<Self>, deadline: Option<Instant>) -> Result<Place, Refusal> {
        let now = Instant::now();
        if deadline.is_some_and(|d| d <= now) {
            return Err(Refusal::DeadlinePassed);
        }
        let budget = deadline.map_or(self.limits.max_wait, |d| {
            (d - now).min(self.limits.max_wait)
        });
        let (id, woken) = {
            let mut q = self.lock();
            if q.running < self.limits.running {
                q.running += 1;
                return Ok(Place(self.clone()));
            }
            if q.waiting.len() >= self.limits.queued {
                q.waiting.retain(|w| !w.wake.is_closed());
                if q.waiting.len() >= self.limits.queued {
                    return Err(Refusal::Overloaded);
                }
            }
            let (wake, woken) = oneshot::channel();
            let id = q.next_id;
            q.next_id += 1;
            q.waiting.push_back(Waiter { id, wake });
            (id, woken)
        };
        let mut waiting = Waiting {
            admission: self.clone(),
            id,
            woken,
            settled: false,
        };
        let handed = tokio::time::timeout(budget, &mut waiting.woken).await;
        waiting.settled = true;
        if let Ok(Ok(())) = handed {
            return Ok(Place(self.clone()));
        }
        // Timed out; a place may have been handed over meanwhile (under the
        // lock, so it is seen here).
        let mut q = self.lock();
        if waiting.woken.try_recv().is_ok() {
            return Ok(Place(self.clone()));
        }
        q.waiting.retain(|w| w.id != id);
        Err(if deadline.is_some_and(|d| d <= Instant::now()) {
            Refusal::DeadlinePassed
        } else {
            Refusal::Overloaded
        })
    }
}

/// A call waiting in the queue. If the call is dropped while it waits (its
/// client went away), a place already handed to it is passed on and its
/// entry leaves the queue: without this, every such call would keep a
/// place forever, until no call could run.
struct Waiting {
    admission: Arc<Admission>,
    id: u64,
    woken: oneshot::Receiver<()>,
    /// The wait ended normally (the place, if any, was taken).
    settled: bool,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let handed = {
            let mut q = self.admission.lock();
            q.waiting.retain(|w| w.id != self.id);
            // `release` hands places over under the lock: seen here if sent.
            self.woken.try_recv().is_ok()
        };
        if handed {
            self.admission.release();
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

impl From<Refusal> for Refused {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Overloaded => Refused::Overloaded,
            Refusal::DeadlinePassed => Refused::DeadlinePassed,
        }
    }
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

    fn waiting(a: &Admission) -> usize {
        a.lock().waiting.len()
    }

    /// Starts a waiter and returns once it is queued.
    async fn queued_waiter(
        admission: &Arc<Admission>,
        tag: usize,
    ) -> tokio::task::JoinHandle<(usize, Place)> {
        let before = waiting(admission);
        let a = admission.clone();
        let task = tokio::spawn(async move {
            let place = a.admit(None).await.expect("admitted");
            (tag, place)
        });
        while waiting(admission) == before {
            tokio::task::yield_now().await;
        }
        task
    }

    #[tokio::test]
    async fn a_waiter_that_goes_away_keeps_no_place() {
        let admission = Admission::new(limits(1, 8));
        let running = admission.admit(None).await.expect("a free place");
        // Gone while queued: its entry leaves the queue.
        let gone = queued_waiter(&admission, 1).await;
        gone.abort();
        let _ = gone.await;
        assert_eq!(waiting(&admission), 0);
        // Handed the place, then gone before it ran: the place is passed on.
        let mut late = Box::pin(admission.admit(None));
        tokio::select! {
            biased;
            _ = &mut late => panic!("no place is free yet"),
            () = tokio::task::yield_now() => {}
        }
        assert_eq!(waiting(&admission), 1);
        drop(running);
        assert_eq!(admission.lock().running, 1, "handed to the waiter");
        drop(late);
        assert_eq!(admission.lock().running, 0, "and freed when it went away");
        assert!(admission.admit(None).await.is_ok());
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_and_a_freed_place_goes_to_a_waiter() {
        let admission = Admission::new(limits(1, 1));
        let running = admission.admit(None).await.expect("a free place");
        let waiter = queued_waiter(&admission, 1).await;
        assert_eq!(
            admission.admit(None).await.map(drop),
            Err(Refusal::Overloaded),
            "one running and one waiting: the third is refused without waiting"
        );
        drop(running);
        let (tag, place) = waiter.await.expect("joined");
        assert_eq!(tag, 1);
        assert_eq!(waiting(&admission), 0);
        assert_eq!(admission.lock().running, 1, "the place moved to the waiter");
        drop(place);
        assert_eq!(admission.lock().running, 0, "and was freed");
    }

    #[tokio::test]
    async fn a_short_queue_is_first_come_first_served_a_long_one_newest_first() {
        let admission = Admission::new(limits(1, 10));
        let running = admission.admit(None).await.expect("a free place");
        let mut waiters = Vec::new();
        for tag in 0..LIFO_AFTER {
            waiters.push(queued_waiter(&admission, tag).await);
        }
        // As many waiting as LIFO_AFTER allows: first come, first served.
        drop(running);
        let (tag, running) = waiters.remove(0).await.expect("joined");
        assert_eq!(tag, 0);

        for tag in LIFO_AFTER..LIFO_AFTER + 2 {
            waiters.push(queued_waiter(&admission, tag).await);
        }
        // More than that: an overload, so the newest goes first.
        drop(running);
        let (tag, _held) = waiters.pop().expect("a waiter").await.expect("joined");
        assert_eq!(tag, LIFO_AFTER + 1);
        assert!(waiters.iter().all(|w| !w.is_finished()));
        assert_eq!(waiting(&admission), LIFO_AFTER);
        waiters.iter().for_each(|w| w.abort());
    }

    #[tokio::test]
    async fn a_call_whose_deadline_has_passed_never_starts() {
        let admission = Admission::new(limits(1, 10));
        let past = Instant::now() - Duration::from_millis(1);
        assert_eq!(
            admission.admit(Some(past)).await.map(drop),
            Err(Refusal::DeadlinePassed)
        );
        let no_room = Admission::new(limits(0, 0));
        assert_eq!(
            no_room.admit(None).await.map(drop),
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
