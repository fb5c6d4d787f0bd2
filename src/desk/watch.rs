//! A watch of one customer's context: the first context, then a whole new
//! one whenever the feed reports a change for the customer (see
//! `crate::watch`), at most one per [`MIN_GAP`], heartbeats while idle,
//! each context sent put on record. One task per watch; it holds one
//! unsent update at most (the channel's one place) and the triggers seen
//! since (a bitset), so a client that stops reading costs a fixed amount
//! of memory and never slows anything else. A revoked key ends the watch
//! at once, on every replica. Faces only convert the updates.

use std::{collections::HashSet, time::Duration};

use tokio::{sync::mpsc, time::Instant};

use super::{Desk, Operation};
use crate::{
    context::{ContextQuery, CustomerContext},
    domain::{Caller, Error, Timestamp},
    watch::{Trigger, Triggers, Watch},
};

/// Least time between two contexts of one watch (bursts coalesce).
pub const MIN_GAP: Duration = Duration::from_millis(250);

/// Pauses before reading again after a transient failure: doubling from
/// the first, never longer than the second.
const RETRY: (Duration, Duration) = (Duration::from_millis(250), Duration::from_secs(5));

/// What a watch sends.
#[derive(Debug, Clone)]
pub enum Update {
    /// The context when the watch opened.
    First(CustomerContext),
    /// A new context after the changes `triggers` name (never equal to
    /// the one sent before it, the time it was read and suggestion ids
    /// aside).
    Changed {
        /// The context now.
        context: CustomerContext,
        /// What changed since the context before.
        triggers: Triggers,
    },
    /// Nothing changed for a heartbeat period.
    Heartbeat(Timestamp),
    /// The caller's key was revoked: the last update of the watch.
    Revoked,
}

/// The updates of one watch, in order; an error is the last.
pub type Updates = mpsc::Receiver<Result<Update, Error>>;

/// Every product a context shows (a change to one wakes the watcher).
pub fn products(c: &CustomerContext) -> HashSet<String> {
    let browsed = c.recent_browsing.iter().map(|b| &b.product);
    let ordered = c
        .recent_orders
        .iter()
        .flat_map(|o| &o.lines)
        .map(|l| &l.product);
    let returned = c.returns.iter().flat_map(|r| &r.lines).map(|(p, _)| p);
    let suggested = c
        .suggestions
        .iter()
        .flat_map(|s| &s.items)
        .map(|i| &i.product);
    browsed
        .chain(ordered)
        .chain(returned)
        .chain(suggested)
        .map(|p| p.product_id.clone())
        .collect()
}

/// Whether `b` shows what `a` shows: the time each was read and the
/// suggestion ids (which carry the time they were issued) aside.
pub fn same(a: &CustomerContext, b: &CustomerContext) -> bool {
    let mut b = b.clone();
    b.as_of = a.as_of;
    if let (Some(x), Some(y)) = (&a.suggestions, &mut b.suggestions) {
        for (i, j) in x.items.iter().zip(y.items.iter_mut()) {
            j.suggestion_id.clone_from(&i.suggestion_id);
        }
    }
    *a == b
}

impl Desk {
    /// Opens a watch of the customer `query` names, with a heartbeat
    /// every `every` while nothing changes. The first context is read (and
    /// its errors returned) before the watch starts.
    pub async fn watch(
        &self,
        caller: Caller,
        query: ContextQuery,
        every: Duration,
    ) -> Result<Updates, Error> {
        let first = self.unrecorded_context(&caller, &query).await?;
        let key = first
            .customer_id
            .as_ref()
            .map(|c| c.as_str().to_owned())
            .or_else(|| first.anonymous_id.as_ref().map(|a| a.as_str().to_owned()))
            .unwrap_or_default();
        let watch = self.suggest().live().watchers().watch(&key);
        self.record_context(&caller, Operation::WatchCustomerContext, &first)
            .await?;
        watch.show(products(&first));
        let (tx, rx) = mpsc::channel(1);
        let last = first.clone();
        // The channel is new and its receiver still here: this cannot fail.
        let _ = tx.try_send(Ok(Update::First(first)));
        let task = Task {
            desk: self.clone(),
            caller,
            query,
            every,
            watch,
            tx,
        };
        tokio::spawn(task.run(last));
        Ok(rx)
    }
}

/// One open watch.
struct Task {
    desk: Desk,
    caller: Caller,
    query: ContextQuery,
    every: Duration,
    watch: Watch,
    tx: mpsc::Sender<Result<Update, Error>>,
}

/// What the task does next.
enum Step {
    /// Wait for the next change.
    Wait,
    /// The watch is over (the client left, or its last update is sent).
    End,
}

/// What a change came to.
enum Reread {
    /// A new context, sent.
    Sent(Box<CustomerContext>),
    /// The context shows what the one before showed: nothing sent.
    Same,
    /// The watch is over.
    End,
}

impl Task {
    async fn run(self, mut last: CustomerContext) {
        let mut sent_at = Instant::now();
        loop {
            let triggers = tokio::select! {
                () = self.tx.closed() => return,
                t = self.watch.changed() => t,
                () = tokio::time::sleep(self.every) => match self.heartbeat().await {
                    Step::Wait => continue,
                    Step::End => return,
                },
            };
            // A revoked key ends its watches at once, on every replica.
            if self.revoked(triggers).await {
                return;
            }
            // Coalesce: no two contexts closer than MIN_GAP.
            tokio::time::sleep_until(sent_at + MIN_GAP).await;
            let triggers = triggers.union(self.watch.take());
            if self.revoked(triggers).await {
                return;
            }
            let triggers = triggers.without(Trigger::Revocation);
            if triggers.is_empty() {
                continue;
            }
            match self.changed(&last, triggers).await {
                Reread::Sent(context) => last = *context,
                Reread::Same => continue,
                Reread::End => return,
            }
            sent_at = Instant::now();
        }
    }

    /// Whether `caller`'s key is still valid (checked when a key is
    /// revoked anywhere, and at every heartbeat). A database that cannot
    /// say keeps the watch open.
    async fn still_valid(&self) -> bool {
        self.desk.key_is_valid(&self.caller).await.unwrap_or(true)
    }

    /// When `triggers` say a key was revoked and it is this one: the last
    /// update sent, `true`.
    async fn revoked(&self, triggers: Triggers) -> bool {
        if !triggers.has(Trigger::Revocation) || self.still_valid().await {
            return false;
        }
        let _ = self.tx.send(Ok(Update::Revoked)).await;
        true
    }

    async fn heartbeat(&self) -> Step {
        if !self.still_valid().await {
            let _ = self.tx.send(Ok(Update::Revoked)).await;
            return Step::End;
        }
        match self.tx.send(Ok(Update::Heartbeat(Timestamp::now()))).await {
            Ok(()) => Step::Wait,
            Err(_) => Step::End,
        }
    }

    /// The context after `triggers`, sent and on record unless it shows
    /// what `last` showed.
    async fn changed(&self, last: &CustomerContext, triggers: Triggers) -> Reread {
        let context = match self.reread().await {
            Some(Ok(c)) => c,
            Some(Err(e)) => {
                let _ = self.tx.send(Err(e)).await;
                return Reread::End;
            }
            None => return Reread::End,
        };
        if same(last, &context) {
            return Reread::Same;
        }
        let recorded = self
            .desk
            .record_context(&self.caller, Operation::WatchCustomerContext, &context)
            .await;
        if let Err(e) = recorded {
            let _ = self.tx.send(Err(e)).await;
            return Reread::End;
        }
        self.watch.show(products(&context));
        let update = Update::Changed {
            context: context.clone(),
            triggers,
        };
        match self.tx.send(Ok(update)).await {
            Ok(()) => Reread::Sent(Box::new(context)),
            Err(_) => Reread::End,
        }
    }

    /// The context again after a change. A busy or unreachable database
    /// does not end the watch (that would free its place for another
    /// stream while the client reconnects, and lose its place in line):
    /// the read is retried with a growing pause until it succeeds or the
    /// client leaves (`None`). Other errors end it; an unknown customer
    /// was erased.
    async fn reread(&self) -> Option<Result<CustomerContext, Error>> {
        let mut pause = RETRY.0;
        loop {
            match self
                .desk
                .unrecorded_context(&self.caller, &self.query)
                .await
            {
                Ok(c) => return Some(Ok(c)),
                Err(Error::Unavailable(_) | Error::Busy(_)) => {
                    tokio::select! {
                        () = self.tx.closed() => return None,
                        () = tokio::time::sleep(pause) => {}
                    }
                    pause = (pause * 2).min(RETRY.1);
                }
                Err(Error::NotFound(_)) => {
                    let erased = "the customer is no longer known (erased)";
                    return Some(Err(Error::NotFound(erased.into())));
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::sample as context;

    #[test]
    fn a_context_read_later_is_the_same_and_a_changed_one_is_not() {
        let a = context();
        let mut later = a.clone();
        later.as_of = a.as_of.plus_millis(60_000);
        assert!(same(&a, &later), "only the time it was read differs");
        let mut changed = later.clone();
        changed.recent_browsing[0].view_count += 1;
        assert!(!same(&a, &changed), "one more view is news");
        changed.recent_browsing.clear();
        assert!(!same(&a, &changed));
    }

    #[test]
    fn every_product_shown_wakes_the_watch() {
        let c = context();
        let mut expected = HashSet::new();
        for b in &c.recent_browsing {
            expected.insert(b.product.product_id.clone());
        }
        for l in c.recent_orders.iter().flat_map(|o| &o.lines) {
            expected.insert(l.product.product_id.clone());
        }
        for (p, _) in c.returns.iter().flat_map(|r| &r.lines) {
            expected.insert(p.product_id.clone());
        }
        assert!(
            expected.len() >= 2,
            "the sample shows browsing and a return"
        );
        assert_eq!(products(&c), expected);
    }
}
