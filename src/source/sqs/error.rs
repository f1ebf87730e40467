//! How SQS failures become the crate's errors: a failed SDK call through the
//! shared AWS classifier ([`crate::aws::classify`], on the structured error
//! code), everything else through [`SqsError`], whose one conversion tags it
//! with the backend's name.

use super::BACKEND;
use crate::aws::AwsError;
use crate::error::{Error, ErrorKind};

/// Whether SQS refused a settle call because the receipt handle is no longer
/// valid (the message was redelivered, or deleted), by its error `code`.
pub(super) fn is_invalid_receipt(code: Option<&str>) -> bool {
    // The code may come namespaced (`AWS.SimpleQueueService.MessageNotInflight`).
    code.and_then(|c| c.rsplit(['.', '#']).next())
        .is_some_and(|c| matches!(c, "ReceiptHandleIsInvalid" | "MessageNotInflight"))
}

/// A failure of the SQS source that is not one SDK call failing on its own.
#[derive(Clone, Debug)]
pub(super) enum SqsError {
    /// `GetQueueUrl` answered without a URL.
    NoQueueUrl {
        /// The queue name asked for.
        name: String,
    },
    /// `DeleteMessageBatch` refused one entry (one ack).
    EntryRefused {
        /// The entry's error code.
        code: String,
        /// The entry's error message.
        message: String,
        /// Whether SQS blames the request (retrying it cannot help).
        sender_fault: bool,
    },
    /// `DeleteMessageBatch` answered without a result for an entry.
    EntryMissing,
    /// The `DeleteMessageBatch` call carrying an ack failed as a whole: what
    /// each of its acks is told.
    BatchFailed {
        /// The classified error's kind.
        kind: ErrorKind,
        /// Whether retrying may succeed.
        temporary: bool,
        /// The classified error's message.
        message: String,
        /// The service's error code, if it sent one.
        code: Option<String>,
    },
    /// The ack batcher task is gone.
    BatcherStopped,
}

impl SqsError {
    /// The failure of a whole `DeleteMessageBatch` call, to be told to each of its acks.
    pub(super) fn batch_failed(e: AwsError) -> SqsError {
        let code = e.code().map(str::to_owned);
        let e = Error::from(e);
        let (kind, temporary) = (e.kind(), e.is_temporary());
        let message = match e {
            Error::Backend { message, .. }
            | Error::Unauthenticated { message, .. }
            | Error::PermissionDenied { message, .. } => message,
            other => other.to_string(),
        };
        SqsError::BatchFailed {
            kind,
            temporary,
            message,
            code,
        }
    }

    /// Whether SQS refused the receipt handle.
    pub(super) fn is_invalid_receipt(&self) -> bool {
        match self {
            SqsError::EntryRefused { code, .. } => is_invalid_receipt(Some(code)),
            SqsError::BatchFailed { code, .. } => is_invalid_receipt(code.as_deref()),
            _ => false,
        }
    }
}

impl From<SqsError> for Error {
    fn from(e: SqsError) -> Self {
        let backend =
            |message: String, temporary: bool| Error::backend(BACKEND, message, temporary);
        match e {
            SqsError::NoQueueUrl { name } => {
                backend(format!("GetQueueUrl for {name:?} returned no URL"), false)
            }
            SqsError::EntryRefused {
                code,
                message,
                sender_fault,
            } => {
                let temporary = !sender_fault && !is_invalid_receipt(Some(&code));
                backend(
                    format!("DeleteMessageBatch entry: {code}: {message}"),
                    temporary,
                )
            }
            SqsError::EntryMissing => backend(
                "DeleteMessageBatch returned no result for the entry".into(),
                true,
            ),
            SqsError::BatchFailed {
                kind: ErrorKind::Unauthenticated,
                message,
                ..
            } => Error::Unauthenticated {
                backend: BACKEND,
                message,
                source: None,
            },
            SqsError::BatchFailed {
                kind: ErrorKind::PermissionDenied,
                message,
                ..
            } => Error::PermissionDenied {
                backend: BACKEND,
                message,
                source: None,
            },
            SqsError::BatchFailed {
                temporary, message, ..
            } => backend(message, temporary),
            SqsError::BatcherStopped => backend("the ack batcher stopped".into(), true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_receipts_are_told_by_their_code() {
        assert!(is_invalid_receipt(Some("ReceiptHandleIsInvalid")));
        assert!(is_invalid_receipt(Some(
            "AWS.SimpleQueueService.MessageNotInflight"
        )));
        assert!(!is_invalid_receipt(Some("AccessDenied")));
        assert!(!is_invalid_receipt(None));
        let refused = SqsError::EntryRefused {
            code: "ReceiptHandleIsInvalid".into(),
            message: "gone".into(),
            sender_fault: true,
        };
        assert!(refused.is_invalid_receipt());
        let e = Error::from(refused);
        assert!(!e.is_temporary(), "{e}");
        assert!(e.to_string().contains("ReceiptHandleIsInvalid"), "{e}");
        let e = Error::from(SqsError::BatchFailed {
            kind: ErrorKind::PermissionDenied,
            temporary: false,
            message: "DeleteMessageBatch: AccessDenied: no".into(),
            code: Some("AccessDenied".into()),
        });
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
        assert!(Error::from(SqsError::BatcherStopped).is_temporary());
    }
}
