//! The one skeleton of every batch write: a write transaction (retried
//! whole when the database aborts it as a conflict), the suppression list
//! read in it where the kind names people, the items visited in lock order
//! (two writers lock rows in the same order, so they cannot deadlock), the
//! change-feed entries appended as its last statements, the commit, and
//! the answers put back in request order. Each kind says only how it
//! orders and writes its items ([`BatchWrite`]).

use std::future::Future;

use sqlx::AnyConnection;

use super::{Store, in_request_order, lock_order, trust::Suppression};
use crate::domain::{Change, Error};

/// Whether a batch's items name people (and so are checked against the
/// erased customers' suppression list).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Names {
    /// Items name customers or visitors.
    People,
    /// Items name no one (products, suggestion feedback).
    NoOne,
}

/// What one batch write works with.
pub(super) struct Writing<'t> {
    /// The open write transaction.
    pub(super) tx: &'t mut AnyConnection,
    suppression: Option<Suppression>,
    /// Change-feed entries, appended before the commit.
    pub(super) changes: Vec<Change>,
}

impl Writing<'_> {
    /// Whether any of these identities belongs to an erased customer
    /// (never, for a batch that names no one).
    pub(super) async fn suppressed(&mut self, keys: &[String]) -> Result<bool, Error> {
        match &self.suppression {
            Some(s) => s.check(self.tx, keys).await,
            None => Ok(false),
        }
    }
}

/// How one kind is written in a batch.
pub(super) trait BatchWrite: Sync {
    /// One item of a request.
    type Item: Sync;
    /// The answer for one item.
    type Answer: Send;
    /// Whether items name people.
    const NAMES: Names;
    /// The lock-order key of an item.
    fn key(item: &Self::Item) -> impl Ord + '_;
    /// The suppression-list keys of whom an item names (none for a kind
    /// that names no one); the batch looks them up together before
    /// [`BatchWrite::write`] checks each item.
    fn names(_item: &Self::Item) -> Vec<String> {
        Vec::new()
    }
    /// Writes `items` (in key order) inside `w`, answering each in that
    /// order. Runs again from nothing when the transaction is retried.
    fn write(
        &self,
        w: &mut Writing<'_>,
        items: Vec<&Self::Item>,
    ) -> impl Future<Output = Result<Vec<Self::Answer>, Error>> + Send;
}

impl Store {
    /// Writes `items` in one transaction as `kind` says; the answers come
    /// back in request order.
    pub(super) async fn write_batch<W: BatchWrite>(
        &self,
        kind: &W,
        items: &[W::Item],
    ) -> Result<Vec<W::Answer>, Error> {
        let order = lock_order(items, W::key);
        self.retrying(|| self.write_batch_once(kind, items, &order))
            .await
    }

    async fn write_batch_once<W: BatchWrite>(
        &self,
        kind: &W,
        items: &[W::Item],
        order: &[usize],
    ) -> Result<Vec<W::Answer>, Error> {
        // Read before the transaction: it may need a connection.
        let hash_key = match W::NAMES {
            Names::People => Some(self.hash_key().await?),
            Names::NoOne => None,
        };
        let mut tx = self.begin_write().await?;
        let suppression = match hash_key {
            Some(key) => {
                let mut s = Suppression::load(&mut tx, self.backend, key).await?;
                s.preload(&mut tx, items.iter().flat_map(W::names)).await?;
                Some(s)
            }
            None => None,
        };
        let mut w = Writing {
            tx: &mut tx,
            suppression,
            changes: Vec::new(),
        };
        let answers = kind
            .write(&mut w, order.iter().map(|&i| &items[i]).collect())
            .await?;
        let changes = w.changes;
        super::feed::append(&mut tx, &changes).await?;
        tx.commit().await?;
        Ok(in_request_order(order, answers))
    }
}
