//! The access log: every read of a customer's data is recorded before it is
//! answered. Entries are written with group commit: concurrent reads share
//! one transaction (one disk sync), and each read waits for its entry to be
//! committed, so an answered read is always on record. A read waiting for
//! the commit gives its admission place to the next call (`crate::slot`).
//! A read may also hand its entry over first and wait for the commit once
//! it is done ([`AccessLog::submit`]).

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::{
    domain::{Caller, keys},
    domain::{Error, Timestamp},
    store::{AccessEntry, Store},
};

/// Most entries committed together.
const GROUP: usize = 256;

type Pending = (AccessEntry, oneshot::Sender<Result<(), Arc<Error>>>);

/// A handle to the access-log writer.
#[derive(Clone, Debug)]
pub struct AccessLog {
    tx: mpsc::Sender<Pending>,
}

impl AccessLog {
    /// Starts the writer task on the current runtime.
    pub fn spawn(store: Store) -> Self {
        let (tx, mut rx) = mpsc::channel::<Pending>(4096);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while batch.len() < GROUP {
                    match rx.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                let entries: Vec<AccessEntry> = batch.iter().map(|(e, _)| e.clone()).collect();
                let result = store.append_access(&entries).await.map_err(Arc::new);
                for (_, ack) in batch {
                    let _ = ack.send(result.clone());
                }
            }
        });
        Self { tx }
    }

    /// Records that `caller` read a customer (or an anonymous visitor)
    /// through `rpc`, and waits until the entry is committed.
    pub async fn record(
        &self,
        caller: &Caller,
        rpc: &str,
        customer_id: Option<&str>,
        anonymous_id: Option<&str>,
    ) -> Result<(), Error> {
        self.submit(caller, rpc, customer_id, anonymous_id)
            .await?
            .committed()
            .await
    }

    /// Hands the entry of [`AccessLog::record`] to the writer without
    /// waiting for its commit: the caller can read meanwhile, then wait
    /// with [`Committing::committed`] before it answers.
    pub async fn submit(
        &self,
        caller: &Caller,
        rpc: &str,
        customer_id: Option<&str>,
        anonymous_id: Option<&str>,
    ) -> Result<Committing, Error> {
        let random =
            keys::random_bytes::<6>().map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        let at = Timestamp::now();
        let entry = AccessEntry {
            entry_id: entry_id(at, random),
            at,
            key_id: caller.key_id.clone(),
            key_name: caller.key_name.clone(),
            role: caller.role.as_str().to_owned(),
            rpc: rpc.to_owned(),
            customer_id: customer_id.map(str::to_owned),
            anonymous_id: anonymous_id.map(str::to_owned),
        };
        let (ack, done) = oneshot::channel();
        self.tx
            .send((entry, ack))
            .await
            .map_err(|_| anyhow::anyhow!("the access-log writer stopped"))?;
        Ok(Committing(done))
    }
}

/// An entry handed to the writer, not yet known to be committed.
#[derive(Debug)]
#[must_use = "a read is answered only once its entry is committed"]
pub struct Committing(oneshot::Receiver<Result<(), Arc<Error>>>);

impl Committing {
    /// Waits until the entry is committed. Call it once the read is done:
    /// waiting needs no admission place, so the next call gets it.
    pub async fn committed(self) -> Result<(), Error> {
        crate::slot::give_up();
        match self.0.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(shared(&e)),
            Err(_) => Err(Error::Internal(anyhow::anyhow!(
                "the access-log writer stopped"
            ))),
        }
    }
}

/// The error of a group commit, for one of the reads it carried: a busy
/// or unreachable database stays retryable (RESOURCE_EXHAUSTED,
/// UNAVAILABLE), anything else is internal.
fn shared(e: &Error) -> Error {
    let cause = anyhow::anyhow!("writing the access log: {e:?}");
    match e {
        Error::Busy(_) => Error::Busy(cause),
        Error::Unavailable(_) => Error::Unavailable(cause),
        Error::InvalidArgument(_)
        | Error::NotFound(_)
        | Error::FailedPrecondition(_)
        | Error::Internal(_) => Error::Internal(cause),
    }
}

/// An entry's id: the time in milliseconds, then six random bytes, in 24
/// hex digits. Ids made later sort later, so the log's primary key grows at
/// its end (a commit of many entries writes few index pages).
fn entry_id(at: Timestamp, random: [u8; 6]) -> String {
    let mut id = format!("{:012x}", at.millis().clamp(0, 0xffff_ffff_ffff));
    id.extend(random.iter().map(|b| format!("{b:02x}")));
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_ids_are_24_hex_digits_in_time_order() {
        let t = |ms| Timestamp::from_millis(ms).unwrap();
        let a = entry_id(t(1_700_000_000_000), [0xff; 6]);
        let b = entry_id(t(1_700_000_000_001), [0; 6]);
        assert_eq!(a.len(), 24);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert!(a < b);
        assert_ne!(
            entry_id(t(1_700_000_000_000), [1; 6]),
            entry_id(t(1_700_000_000_000), [2; 6])
        );
    }

    #[test]
    fn a_retryable_commit_failure_stays_retryable_for_every_read_it_carried() {
        let busy = shared(&Error::Busy(anyhow::anyhow!("pool timed out")));
        assert!(matches!(busy, Error::Busy(_)), "{busy:?}");
        let down = shared(&Error::Unavailable(anyhow::anyhow!("connection refused")));
        assert!(matches!(down, Error::Unavailable(_)), "{down:?}");
        let bug = shared(&Error::Internal(anyhow::anyhow!("disk I/O error")));
        assert!(matches!(bug, Error::Internal(_)), "{bug:?}");
    }
}
