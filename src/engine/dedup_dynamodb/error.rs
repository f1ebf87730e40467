//! How DynamoDB failures become the crate's errors.

use super::BACKEND;
use crate::error::Error;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

/// Maps an SDK error to the crate's error: throttling, 5xx, timeouts and
/// connection failures are temporary; a missing table or refused access is not.
pub(super) fn sdk_error<E>(op: &str, err: SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let (message, temporary) = match &err {
        SdkError::ServiceError(s) => {
            let e = s.err();
            let code = e.code().unwrap_or("Unknown");
            let status = s.raw().status().as_u16();
            let temporary = code.contains("Throttl")
                || matches!(
                    code,
                    "ProvisionedThroughputExceededException"
                        | "RequestLimitExceeded"
                        | "InternalServerError"
                        | "ServiceUnavailable"
                        | "TransactionConflictException"
                )
                || status >= 500
                || status == 429;
            (
                format!("{op}: {code}: {}", e.message().unwrap_or("")),
                temporary,
            )
        }
        SdkError::ConstructionFailure(_) => (format!("{op}: request could not be built"), false),
        SdkError::TimeoutError(_) => (format!("{op}: timed out"), true),
        SdkError::DispatchFailure(d) => (
            format!(
                "{op}: could not reach DynamoDB: {}",
                aws_sdk_dynamodb::error::DisplayErrorContext(&err)
            ),
            !d.is_user(),
        ),
        SdkError::ResponseError(_) => (format!("{op}: unreadable response"), true),
        _ => (
            format!(
                "{op}: {}",
                aws_sdk_dynamodb::error::DisplayErrorContext(&err)
            ),
            true,
        ),
    };
    Error::Backend {
        backend: BACKEND,
        message,
        temporary,
        source: Some(Box::new(err)),
    }
}
