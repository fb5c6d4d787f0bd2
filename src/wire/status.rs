//! The one mapping from core errors to gRPC statuses.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::{Error, Violations, clip};

/// Longest message a caller is sent (messages may quote their input).
const MAX_MESSAGE: usize = 500;

/// Converts a core error into a status. Client errors carry a message for
/// the caller (and field violations as `google.rpc.BadRequest`); server
/// errors are logged here and the caller gets a generic message only.
pub fn to_status(error: Error) -> Status {
    match error {
        Error::InvalidArgument(violations) => invalid_argument(&violations),
        Error::NotFound(message) => {
            let message = clip(&message, MAX_MESSAGE).into_owned();
            tracing::info!(%message, "not found");
            Status::not_found(message)
        }
        Error::FailedPrecondition(message) => {
            let message = clip(&message, MAX_MESSAGE).into_owned();
            tracing::info!(%message, "failed precondition");
            Status::failed_precondition(message)
        }
        Error::Unavailable(source) => {
            tracing::error!(error = format!("{source:#}"), "database unavailable");
            Status::unavailable("the service's database is unavailable; retry later")
        }
        Error::Busy(_) => Status::resource_exhausted("the service is busy; retry with backoff"),
        Error::Internal(source) => {
            tracing::error!(error = format!("{source:#}"), "internal error");
            Status::internal("internal error")
        }
    }
}

/// An `INVALID_ARGUMENT` naming every bad field, in the message and as
/// `google.rpc.BadRequest` field violations.
pub fn invalid_argument(violations: &Violations) -> Status {
    let mut details = ErrorDetails::new();
    for v in violations.iter() {
        details.add_bad_request_violation(v.field.clone(), v.description.clone());
    }
    tracing::info!(%violations, "invalid argument");
    Status::with_error_details(
        Code::InvalidArgument,
        format!("invalid request: {violations}"),
        details,
    )
}

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        to_status(e)
    }
}
