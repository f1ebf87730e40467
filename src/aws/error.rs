//! One classifier of AWS SDK errors for every AWS client of the crate, on the
//! SDK's structured error codes and HTTP status: [`classify`] gives an
//! [`AwsError`], which converts into the crate's [`Error`].

use crate::error::Error;

#[cfg(all(feature = "dynamodb", not(feature = "sqs")))]
use aws_sdk_dynamodb::config::http::HttpResponse;
#[cfg(all(feature = "dynamodb", not(feature = "sqs")))]
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
#[cfg(feature = "sqs")]
use aws_sdk_sqs::config::http::HttpResponse;
#[cfg(feature = "sqs")]
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// How a failed AWS call is to be treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// Retrying later may succeed (throttling, 5xx, timeouts, connections).
    Temporary,
    /// The credentials were refused.
    Unauthenticated,
    /// The identity may not do this.
    PermissionDenied,
    /// Retrying the same request cannot succeed.
    Permanent,
}

/// A failed AWS SDK call, classified; the backend's own code can look at
/// its [`code`](Self::code) before it becomes the crate's [`Error`].
#[derive(Debug)]
pub(crate) struct AwsError {
    backend: &'static str,
    class: Class,
    code: Option<String>,
    message: String,
    source: Box<dyn std::error::Error + Send + Sync + 'static>,
}

impl AwsError {
    /// The service's error code (`AccessDenied`, `ReceiptHandleIsInvalid`), if it sent one.
    pub(crate) fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }
}

impl From<AwsError> for Error {
    fn from(e: AwsError) -> Self {
        let AwsError {
            backend,
            class,
            message,
            source,
            ..
        } = e;
        let source = Some(source);
        match class {
            Class::Unauthenticated => Error::Unauthenticated {
                backend,
                message,
                source,
            },
            Class::PermissionDenied => Error::PermissionDenied {
                backend,
                message,
                source,
            },
            Class::Temporary | Class::Permanent => Error::Backend {
                backend,
                message,
                temporary: class == Class::Temporary,
                source,
            },
        }
    }
}

/// Codes that mean the credentials themselves were refused.
const UNAUTHENTICATED: &[&str] = &[
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidSignatureException",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "MissingAuthenticationTokenException",
    "ExpiredToken",
    "ExpiredTokenException",
    "RequestExpired",
    "AuthFailure",
    "InvalidSecurity",
];

/// Codes that mean the identity may not do this.
const PERMISSION_DENIED: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "KMS.AccessDeniedException",
];

/// Codes retrying may fix, besides every code naming throttling.
const TEMPORARY: &[&str] = &[
    "RequestThrottled",
    "RequestLimitExceeded",
    "ProvisionedThroughputExceededException",
    "TooManyRequestsException",
    "SlowDown",
    "KmsThrottled",
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionConflictException",
];

/// The class of a service error with `code` (if the service sent one) and HTTP `status`.
pub(crate) fn class_of(code: Option<&str>, status: u16) -> Class {
    match code {
        Some(code) if UNAUTHENTICATED.contains(&code) => Class::Unauthenticated,
        Some(code) if PERMISSION_DENIED.contains(&code) => Class::PermissionDenied,
        Some(code) if code.contains("Throttl") || TEMPORARY.contains(&code) => Class::Temporary,
        _ if status >= 500 || status == 429 => Class::Temporary,
        _ if status == 401 => Class::Unauthenticated,
        _ if status == 403 => Class::PermissionDenied,
        // An answer without a code is not the service speaking (a proxy, a
        // gateway, a truncated body): worth another try.
        None => Class::Temporary,
        Some(_) => Class::Permanent,
    }
}

/// Classifies the failure of the operation `op` of `backend` (`sqs`,
/// `dynamodb`). Credentials never appear in SDK error messages.
pub(crate) fn classify<E>(
    backend: &'static str,
    op: &str,
    err: SdkError<E, HttpResponse>,
) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let (class, code, message) = match &err {
        SdkError::ServiceError(s) => {
            let e = s.err();
            let status = s.raw().status().as_u16();
            let code = e.code().map(str::to_owned);
            (
                class_of(e.code(), status),
                code,
                format!(
                    "{op}: {}: {}",
                    e.code().unwrap_or("Unknown"),
                    e.message().unwrap_or("")
                ),
            )
        }
        SdkError::ConstructionFailure(_) => (
            Class::Permanent,
            None,
            format!("{op}: request could not be built"),
        ),
        SdkError::TimeoutError(_) => (Class::Temporary, None, format!("{op}: timed out")),
        SdkError::DispatchFailure(d) => (
            if d.is_user() {
                Class::Permanent
            } else {
                Class::Temporary
            },
            None,
            format!(
                "{op}: could not reach {backend}: {}",
                DisplayErrorContext(&err)
            ),
        ),
        SdkError::ResponseError(_) => {
            (Class::Temporary, None, format!("{op}: unreadable response"))
        }
        _ => (
            Class::Temporary,
            None,
            format!("{op}: {}", DisplayErrorContext(&err)),
        ),
    };
    AwsError {
        backend,
        class,
        code,
        message,
        source: Box::new(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_before_statuses() {
        assert_eq!(class_of(Some("AccessDenied"), 400), Class::PermissionDenied);
        assert_eq!(
            class_of(Some("AccessDeniedException"), 400),
            Class::PermissionDenied
        );
        assert_eq!(
            class_of(Some("SignatureDoesNotMatch"), 403),
            Class::Unauthenticated
        );
        assert_eq!(
            class_of(Some("InvalidClientTokenId"), 403),
            Class::Unauthenticated
        );
        assert_eq!(class_of(Some("ThrottlingException"), 400), Class::Temporary);
        assert_eq!(
            class_of(Some("ProvisionedThroughputExceededException"), 400),
            Class::Temporary
        );
        assert_eq!(
            class_of(Some("ReceiptHandleIsInvalid"), 400),
            Class::Permanent
        );
        assert_eq!(
            class_of(Some("ResourceNotFoundException"), 400),
            Class::Permanent
        );
        assert_eq!(class_of(Some("Whatever"), 503), Class::Temporary);
        assert_eq!(class_of(None, 401), Class::Unauthenticated);
        assert_eq!(class_of(None, 403), Class::PermissionDenied);
        assert_eq!(class_of(None, 400), Class::Temporary);
    }
}
