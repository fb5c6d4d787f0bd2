//! Reads shared by the requests that wait for them. Under load many
//! requests ask the database the same small question at once (where the
//! change feed's head is, what an API key's row says); one read answers
//! every request that arrived before it started, so the answer is as fresh
//! as each request's own read would have been: a write acknowledged before
//! a request arrived is always seen. Nothing is kept by time.

use std::{collections::HashMap, future::Future, sync::Arc, time::Instant};

use tokio::sync::Mutex;

/// The latest answer to one read, and when that read started.
#[derive(Debug, Default)]
pub struct Latest<V> {
    last: Mutex<Option<(Instant, V)>>,
}

impl<V: Clone> Latest<V> {
    /// An empty slot.
    pub fn new() -> Self {
        Self {
            last: Mutex::new(None),
        }
    }

    /// The answer of a read that started after this call: the one under
    /// way when it finishes after this call arrived, else a new one made
    /// here. One read at a time; waiting callers queue in order.
    pub async fn get<E, F>(&self, read: impl FnOnce() -> F) -> Result<V, E>
    where
        F: Future<Output = Result<V, E>>,
    {
        let arrived = Instant::now();
        let mut last = self.last.lock().await;
        if let Some((started, value)) = last.as_ref()
            && *started > arrived
        {
            return Ok(value.clone());
        }
        let started = Instant::now();
        let value = read().await?;
        *last = Some((started, value.clone()));
        Ok(value)
    }
}

/// One [`Latest`] per key, for at most `capacity` keys: when full, the
/// slots are dropped and refill with whoever asks next (keys come from
/// callers, so their number must not grow without bound).
#[derive(Debug)]
pub struct Keyed<V> {
    slots: std::sync::Mutex<HashMap<String, Arc<Latest<V>>>>,
    capacity: usize,
}

impl<V: Clone> Keyed<V> {
    /// Room for `capacity` keys.
    pub fn new(capacity: usize) -> Self {
        Self {
            slots: std::sync::Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// [`Latest::get`] for `key`.
    pub async fn get<E, F>(&self, key: &str, read: impl FnOnce() -> F) -> Result<V, E>
    where
        F: Future<Output = Result<V, E>>,
    {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            match slots.get(key) {
                Some(slot) => slot.clone(),
                None => {
                    if slots.len() >= self.capacity {
                        slots.clear();
                    }
                    let slot = Arc::new(Latest::new());
                    slots.insert(key.to_owned(), slot.clone());
                    slot
                }
            }
        };
        slot.get(read).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn a_call_never_gets_an_answer_read_before_it_arrived() {
        let latest = Latest::new();
        let reads = AtomicUsize::new(0);
        let read = || async { Ok::<_, ()>(reads.fetch_add(1, Ordering::SeqCst) + 1) };
        // One after the other: each call arrives after the previous read
        // started, so each makes its own.
        assert_eq!(latest.get(read).await, Ok(1));
        assert_eq!(latest.get(read).await, Ok(2));
        assert_eq!(reads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn callers_waiting_during_a_read_share_the_next_one() {
        let latest = Arc::new(Latest::new());
        let reads = Arc::new(AtomicUsize::new(0));
        let (release, held) = tokio::sync::oneshot::channel::<()>();
        // The first read waits until released, so the others arrive while
        // it is under way.
        let first = {
            let (latest, reads) = (latest.clone(), reads.clone());
            tokio::spawn(async move {
                latest
                    .get(|| async move {
                        held.await.ok();
                        Ok::<_, ()>(reads.fetch_add(1, Ordering::SeqCst) + 1)
                    })
                    .await
            })
        };
        tokio::task::yield_now().await;
        while latest.last.try_lock().is_ok() {
            tokio::task::yield_now().await;
        }
        let waiting: Vec<_> = (0..5)
            .map(|_| {
                let (latest, reads) = (latest.clone(), reads.clone());
                tokio::spawn(async move {
                    latest
                        .get(
                            || async move { Ok::<_, ()>(reads.fetch_add(1, Ordering::SeqCst) + 1) },
                        )
                        .await
                })
            })
            .collect();
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        release.send(()).unwrap();
        assert_eq!(first.await.unwrap(), Ok(1));
        let mut answers = Vec::new();
        for w in waiting {
            answers.push(w.await.unwrap());
        }
        // They arrived during read 1, so none may use it; one new read
        // (started after all of them arrived) answers them all.
        assert_eq!(answers, vec![Ok(2); 5]);
        assert_eq!(reads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn keys_are_bounded() {
        let keyed = Keyed::new(2);
        for k in ["a", "b", "c"] {
            assert_eq!(keyed.get(k, || async { Ok::<_, ()>(k.len()) }).await, Ok(1));
        }
        assert!(keyed.slots.lock().unwrap().len() <= 2);
    }
}
