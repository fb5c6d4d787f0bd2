//! `WatchCustomerContext`: the first context, then a whole new one whenever
//! the feed reports a change for the customer (see `crate::watch`), at most
//! one per [`MIN_GAP`], heartbeats while idle. One task per stream; it
//! holds one unsent message at most (the channel's one place) and the
//! triggers seen since (a bitset), so a client that stops reading costs a
//! fixed amount of memory and never slows anything else.

use std::{collections::HashSet, pin::Pin, time::Duration};

use tokio::{sync::mpsc, time::Instant};
use tokio_stream::{Stream, wrappers::ReceiverStream};
use tonic::{Code, Status};

use super::{convert, invalid_argument};
use crate::{
    desk::{Desk, Operation},
    domain::Caller,
    domain::Violations,
    proto as pb,
    watch::{Trigger, Triggers},
};

/// The stream of a watch.
pub type ContextStream =
    Pin<Box<dyn Stream<Item = Result<pb::WatchCustomerContextResponse, Status>> + Send>>;

/// Least time between two contexts of one stream (bursts coalesce).
const MIN_GAP: Duration = Duration::from_millis(250);
/// Heartbeat period when the request leaves it at 0, and the longest.
const HEARTBEAT: (u32, u32) = (15, 300);

fn heartbeat(seconds: u32) -> Result<Duration, Status> {
    match seconds {
        0 => Ok(Duration::from_secs(u64::from(HEARTBEAT.0))),
        s if s <= HEARTBEAT.1 => Ok(Duration::from_secs(u64::from(s))),
        _ => Err(invalid_argument(&Violations::single(
            "heartbeat_seconds",
            format!("must be at most {}", HEARTBEAT.1),
        ))),
    }
}

fn trigger(t: Trigger) -> pb::WatchTrigger {
    match t {
        Trigger::Browsing => pb::WatchTrigger::Browsing,
        Trigger::Order => pb::WatchTrigger::Order,
        Trigger::Return => pb::WatchTrigger::Return,
        Trigger::Ticket => pb::WatchTrigger::Ticket,
        Trigger::Profile | Trigger::Erasure | Trigger::Revocation => pb::WatchTrigger::Profile,
        Trigger::Consent => pb::WatchTrigger::Consent,
        Trigger::Catalog => pb::WatchTrigger::Catalog,
        Trigger::Feedback => pb::WatchTrigger::Feedback,
    }
}

fn context_message(
    context: pb::CustomerContext,
    triggers: Vec<pb::WatchTrigger>,
) -> pb::WatchCustomerContextResponse {
    pb::WatchCustomerContextResponse {
        update: Some(pb::watch_customer_context_response::Update::Context(
            context,
        )),
        triggers: triggers.into_iter().map(Into::into).collect(),
    }
}

/// Every product a context shows (a change to one wakes the watcher).
fn products(c: &pb::CustomerContext) -> HashSet<String> {
    let ids = c
        .recent_browsing
        .iter()
        .filter_map(|b| b.product.as_ref())
        .chain(
            c.recent_orders
                .iter()
                .flat_map(|o| o.lines.iter().filter_map(|l| l.product.as_ref())),
        )
        .chain(
            c.returns
                .iter()
                .flat_map(|r| r.lines.iter().filter_map(|l| l.product.as_ref())),
        )
        .chain(
            c.suggestions
                .iter()
                .flat_map(|s| s.items.iter().filter_map(|i| i.product.as_ref())),
        );
    ids.map(|p| p.product_id.clone()).collect()
}

/// The same context but for when it was read.
fn same(a: &pb::CustomerContext, b: &pb::CustomerContext) -> bool {
    let mut b = b.clone();
    b.as_of = a.as_of;
    if let (Some(x), Some(y)) = (&a.suggestions, &mut b.suggestions) {
        // Suggestion ids carry the time they were issued.
        for (i, j) in x.items.iter().zip(y.items.iter_mut()) {
            j.suggestion_id.clone_from(&i.suggestion_id);
        }
    }
    *a == b
}

/// Whether `caller`'s key is still valid (checked when a key is revoked
/// anywhere, and at every heartbeat). A database that cannot say keeps the
/// stream open.
async fn still_valid(desk: &Desk, caller: &Caller) -> bool {
    desk.key_is_valid(caller).await.unwrap_or(true)
}

fn revoked() -> Status {
    Status::unauthenticated("the API key was revoked; open a new stream with a valid key")
}

/// Pauses before reading again after a transient failure: doubling from
/// the first, never longer than the second.
const RETRY: (Duration, Duration) = (Duration::from_millis(250), Duration::from_secs(5));

/// The context again after a change. A busy or unreachable database does
/// not end the watch (that would free its place for another stream while
/// the client reconnects, and lose its place in line): the read is retried
/// with a growing pause until it succeeds or the client leaves (`None`).
/// Other errors end it; an unknown customer was erased.
async fn reread(
    desk: &Desk,
    caller: &Caller,
    query: &crate::context::ContextQuery,
    tx: &mpsc::Sender<Result<pb::WatchCustomerContextResponse, Status>>,
) -> Option<Result<crate::context::CustomerContext, Status>> {
    let mut pause = RETRY.0;
    loop {
        let status = match desk.unrecorded_context(caller, query).await {
            Ok(c) => return Some(Ok(c)),
            Err(e) => Status::from(e),
        };
        match status.code() {
            Code::Unavailable | Code::ResourceExhausted => {
                tokio::select! {
                    () = tx.closed() => return None,
                    () = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(RETRY.1);
            }
            Code::NotFound => {
                return Some(Err(Status::not_found(
                    "the customer is no longer known (erased)",
                )));
            }
            _ => return Some(Err(status)),
        }
    }
}

/// Opens a watch: the first context is read (and its errors returned)
/// before the stream starts.
pub async fn start(
    desk: Desk,
    caller: Caller,
    request: pb::WatchCustomerContextRequest,
) -> Result<ContextStream, Status> {
    let every = heartbeat(request.heartbeat_seconds)?;
    let query = convert::context_query(request.context.unwrap_or_default()).map_err(|v| {
        let mut nested = Violations::new();
        nested.absorb("context", v);
        invalid_argument(&nested)
    })?;
    let first = desk.unrecorded_context(&caller, &query).await?;
    let key = first
        .customer_id
        .as_ref()
        .map(|c| c.as_str().to_owned())
        .or_else(|| first.anonymous_id.as_ref().map(|a| a.as_str().to_owned()))
        .unwrap_or_default();
    let watch = desk.suggest().live().watchers().watch(&key);
    desk.record_context(&caller, Operation::WatchCustomerContext, &first)
        .await?;
    let first = convert::context_response(first);
    watch.show(products(&first));
    let (tx, rx) = mpsc::channel(1);
    tx.send(Ok(context_message(
        first.clone(),
        vec![pb::WatchTrigger::Initial],
    )))
    .await
    .map_err(|_| Status::cancelled("the client went away"))?;
    tokio::spawn(async move {
        let mut last = first;
        let mut sent_at = Instant::now();
        loop {
            let triggers = tokio::select! {
                () = tx.closed() => return,
                t = watch.changed() => t,
                () = tokio::time::sleep(every) => {
                    if !still_valid(&desk, &caller).await {
                        let _ = tx.send(Err(revoked())).await;
                        return;
                    }
                    let beat = pb::WatchCustomerContextResponse {
                        update: Some(pb::watch_customer_context_response::Update::Heartbeat(
                            convert::ts(crate::domain::Timestamp::now()),
                        )),
                        triggers: vec![],
                    };
                    if tx.send(Ok(beat)).await.is_err() {
                        return;
                    }
                    continue;
                }
            };
            // A revoked key ends its streams at once, on every replica.
            if triggers.has(Trigger::Revocation) && !still_valid(&desk, &caller).await {
                let _ = tx.send(Err(revoked())).await;
                return;
            }
            // Coalesce: no two contexts closer than MIN_GAP.
            tokio::time::sleep_until(sent_at + MIN_GAP).await;
            let triggers = triggers.union(watch.take());
            if triggers.has(Trigger::Revocation) && !still_valid(&desk, &caller).await {
                let _ = tx.send(Err(revoked())).await;
                return;
            }
            let triggers = Triggers::without(triggers, Trigger::Revocation);
            if triggers.is_empty() {
                continue;
            }
            let context = match reread(&desk, &caller, &query, &tx).await {
                Some(Ok(c)) => c,
                Some(Err(status)) => {
                    let _ = tx.send(Err(status)).await;
                    return;
                }
                None => return,
            };
            let shown = convert::context_response(context.clone());
            if same(&last, &shown) {
                continue;
            }
            let recorded = desk
                .record_context(&caller, Operation::WatchCustomerContext, &context)
                .await;
            if let Err(e) = recorded {
                let _ = tx.send(Err(e.into())).await;
                return;
            }
            let context = shown;
            watch.show(products(&context));
            let kinds = triggers.iter().map(trigger).collect::<Vec<_>>();
            if tx
                .send(Ok(context_message(context.clone(), kinds)))
                .await
                .is_err()
            {
                return;
            }
            last = context;
            sent_at = Instant::now();
        }
    });
    Ok(Box::pin(ReceiverStream::new(rx)))
}
