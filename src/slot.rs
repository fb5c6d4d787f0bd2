//! A running call's place in the admission queue, as the code it runs sees
//! it. The gate admits a bounded number of calls at once so they share the
//! CPU and the database without thrashing; a call that has done its work
//! and only waits for something shared to finish (its entry in the access
//! log's next group commit) gives its place to the next call rather than
//! hold it idle. Without this, the running calls spent most of their time
//! waiting on one another's commit, and the limit, not the machine, set the
//! rate (docs/performance.md, "Admission places and the access log").
//!
//! Outside a call the gate admitted (tests, background tasks, streams), a
//! step that gives its place up does nothing.

use std::{any::Any, cell::RefCell, future::Future};

tokio::task_local! {
    static PLACE: RefCell<Option<Box<dyn Any + Send>>>;
}

/// Runs `call` holding `place` (dropping it releases the place): until
/// `call` ends or [`give_up`] is called inside it.
pub async fn holding<F: Future>(place: Box<dyn Any + Send>, call: F) -> F::Output {
    PLACE.scope(RefCell::new(Some(place)), call).await
}

/// Gives the current call's place to the next one: call only where what
/// is left to do is waiting, or a little work after it.
pub fn give_up() {
    let place = PLACE.try_with(|p| p.borrow_mut().take()).ok().flatten();
    drop(place);
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    };

    use super::*;

    struct Place(Arc<AtomicBool>);

    impl Drop for Place {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn a_place_is_released_when_given_up_or_when_the_call_ends() {
        let released = Arc::new(AtomicBool::new(false));
        let seen = released.clone();
        holding(Box::new(Place(released.clone())), async move {
            tokio::task::yield_now().await;
            assert!(!seen.load(Ordering::SeqCst), "held while the call runs");
            give_up();
            assert!(seen.load(Ordering::SeqCst), "released when given up");
            give_up();
        })
        .await;

        let released = Arc::new(AtomicBool::new(false));
        holding(Box::new(Place(released.clone())), async {}).await;
        assert!(
            released.load(Ordering::SeqCst),
            "released when the call ends"
        );
        give_up(); // outside any call: nothing to do
    }
}
