//! How SQS failures become the crate's errors.

use super::BACKEND;
use crate::error::Error;
use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};

/// Error codes that retrying the same request cannot fix.
pub(super) fn is_permanent_code(code: &str) -> bool {
    matches!(
        code,
        "ReceiptHandleIsInvalid"
            | "MessageNotInflight"
            | "AWS.SimpleQueueService.NonExistentQueue"
            | "QueueDoesNotExist"
            | "AccessDenied"
            | "AccessDeniedException"
            | "InvalidClientTokenId"
            | "InvalidParameterValue"
            | "InvalidAddress"
            | "InvalidSecurity"
            | "UnsupportedOperation"
            | "InvalidIdFormat"
    )
}

pub(super) fn is_invalid_receipt(e: &Error) -> bool {
    let text = e.to_string();
    text.contains("ReceiptHandleIsInvalid") || text.contains("MessageNotInflight")
}

/// Converts an SDK error into the crate's error, classifying it as temporary
/// (network, throttling, server side) or permanent. Credentials never appear
/// in SDK error messages.
pub(super) fn sdk_error<E>(op: &str, err: SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let (message, temporary) = match &err {
        SdkError::ServiceError(s) => {
            let e = s.err();
            let code = e.code().unwrap_or("Unknown");
            let status = s.raw().status().as_u16();
            let temporary = !is_permanent_code(code)
                && (code.contains("Throttl")
                    || matches!(
                        code,
                        "RequestThrottled"
                            | "InternalError"
                            | "ServiceUnavailable"
                            | "KmsThrottled"
                    )
                    || status >= 500
                    || status == 429
                    || e.code().is_none());
            (
                format!("{op}: {code}: {}", e.message().unwrap_or("")),
                temporary,
            )
        }
        SdkError::ConstructionFailure(_) => (format!("{op}: request could not be built"), false),
        SdkError::TimeoutError(_) => (format!("{op}: timed out"), true),
        SdkError::DispatchFailure(d) => (
            format!(
                "{op}: could not reach SQS: {}",
                aws_sdk_sqs::error::DisplayErrorContext(&err)
            ),
            !d.is_user(),
        ),
        SdkError::ResponseError(_) => (format!("{op}: unreadable response"), true),
        _ => (
            format!("{op}: {}", aws_sdk_sqs::error::DisplayErrorContext(&err)),
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
