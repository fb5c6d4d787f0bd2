//! Context reads in progress on this replica, against its cores: while
//! cores are to spare, a first read spends them on a shorter wait (its
//! access-log entry committed while it reads); under load it does the
//! least work per read.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

/// Context reads in progress on this replica, against its cores.
#[derive(Clone, Debug)]
pub(super) struct Reading {
    now: Arc<AtomicUsize>,
    cores: usize,
}

/// One context read counted in [`Reading`] until dropped.
pub(super) struct Counted<'a>(&'a AtomicUsize);

impl Reading {
    /// No read in progress, on the machine's cores.
    pub(super) fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self {
            now: Arc::default(),
            cores,
        }
    }

    /// Counts a read in; the read counted out when the guard is dropped
    /// (also when the call is cancelled).
    pub(super) fn start(&self) -> Counted<'_> {
        self.now.fetch_add(1, Ordering::Relaxed);
        Counted(&self.now)
    }

    /// Whether the reads in progress and `more` reads besides them have
    /// a core each.
    pub(super) fn cores_to_spare(&self, more: usize) -> bool {
        self.now.load(Ordering::Relaxed) + more <= self.cores
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use super::*;

    #[test]
    fn a_read_is_counted_until_its_guard_drops_and_spares_cores_up_to_their_number() {
        let reading = Reading {
            now: Arc::default(),
            cores: 2,
        };
        let (a, b) = (reading.start(), reading.start());
        assert!(reading.cores_to_spare(0), "two reads on two cores");
        assert!(!reading.cores_to_spare(1), "no core for a third");
        let c = reading.start();
        assert!(!reading.cores_to_spare(0), "a third read waits for a core");
        drop(c);
        assert!(reading.cores_to_spare(0));
        // A call cancelled while it waits drops its guard like a finished one.
        let mut call = Box::pin(async {
            let _counted = reading.start();
            std::future::pending::<()>().await;
        });
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(call.as_mut().poll(&mut cx).is_pending());
        assert!(!reading.cores_to_spare(0), "the waiting call is counted");
        drop(call);
        drop((a, b));
        assert_eq!(reading.now.load(Ordering::Relaxed), 0);
    }
}
