//! Group commit of deliveries' end states: the deliveries answered at the
//! same moment record their states in one transaction, so a busy receiver
//! pays one commit for many (on SQLite each commit is an `fsync`). Each
//! caller still waits for its own state to be committed before it answers.

use tokio::sync::{mpsc, oneshot};

use crate::{
    domain::Error,
    store::{Ended, Store},
};

/// Most states recorded in one transaction.
const MAX_GROUP: usize = 256;

type Request = (Ended, oneshot::Sender<bool>);

/// The handle to the task that records end states.
#[derive(Clone)]
pub(super) struct Finisher {
    tx: mpsc::Sender<Request>,
}

impl Finisher {
    /// Starts the task (it ends when the last handle is dropped).
    pub(super) fn spawn(store: Store) -> Self {
        let (tx, mut rx) = mpsc::channel::<Request>(4 * MAX_GROUP);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut group = vec![first];
                while group.len() < MAX_GROUP {
                    match rx.try_recv() {
                        Ok(next) => group.push(next),
                        Err(_) => break,
                    }
                }
                let (ended, replies): (Vec<Ended>, Vec<oneshot::Sender<bool>>) =
                    group.into_iter().unzip();
                let stored = match store.finish_deliveries(&ended).await {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!(error = ?e, deliveries = ended.len(), "recording webhook deliveries' states failed");
                        false
                    }
                };
                for reply in replies {
                    let _ = reply.send(stored);
                }
            }
        });
        Self { tx }
    }

    /// Records one delivery's end state; returns once it is committed.
    pub(super) async fn finish(&self, ended: Ended) -> Result<(), Error> {
        let unavailable =
            || Error::Unavailable(anyhow::anyhow!("recording a delivery's state failed"));
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((ended, reply))
            .await
            .map_err(|_| unavailable())?;
        match answer.await {
            Ok(true) => Ok(()),
            _ => Err(unavailable()),
        }
    }
}
