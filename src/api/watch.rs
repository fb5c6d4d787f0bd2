//! `WatchCustomerContext`: the request checked and the core's watch
//! (`crate::desk::watch`: triggers, coalescing, key re-checks, the access
//! log) converted to messages. The stream holds no message of its own: a
//! client that stops reading leaves the core's one unsent update waiting.

use std::{pin::Pin, time::Duration};

use tokio_stream::{Stream, StreamExt, wrappers::ReceiverStream};
use tonic::Status;

use super::{convert, invalid_argument};
use crate::{
    desk::{Desk, watch::Update},
    domain::{Caller, Violations},
    proto as pb,
    watch::Trigger,
};

/// The stream of a watch.
pub type ContextStream =
    Pin<Box<dyn Stream<Item = Result<pb::WatchCustomerContextResponse, Status>> + Send>>;

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

fn message(update: Update) -> Result<pb::WatchCustomerContextResponse, Status> {
    use pb::watch_customer_context_response::Update as Sent;
    let (update, triggers) = match update {
        Update::First(context) => (
            Sent::Context(convert::context_response(context)),
            vec![pb::WatchTrigger::Initial],
        ),
        Update::Changed { context, triggers } => (
            Sent::Context(convert::context_response(context)),
            triggers.iter().map(trigger).collect(),
        ),
        Update::Heartbeat(at) => (Sent::Heartbeat(convert::ts(at)), vec![]),
        Update::Revoked => {
            return Err(Status::unauthenticated(
                "the API key was revoked; open a new stream with a valid key",
            ));
        }
    };
    Ok(pb::WatchCustomerContextResponse {
        update: Some(update),
        triggers: triggers.into_iter().map(Into::into).collect(),
    })
}

/// Opens a watch (`Desk::watch`): the first context is read (and its
/// errors returned) before the stream starts.
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
    let updates = desk.watch(caller, query, every).await?;
    let stream = ReceiverStream::new(updates).map(|u| u.map_err(Status::from).and_then(message));
    Ok(Box::pin(stream))
}
