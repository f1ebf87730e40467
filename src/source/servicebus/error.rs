//! The Service Bus source's own errors: [`ServiceBusError`], one variant per
//! way a call fails, and the one conversion into the crate's [`Error`]
//! (backend `servicebus`; HTTP 401 is [`Error::Unauthenticated`], 403
//! [`Error::PermissionDenied`], 408, 429 and 5xx temporary).

use crate::error::Error;
use crate::redact::redact;
use std::time::Duration;

/// The backend name errors are tagged with.
pub(super) const BACKEND: &str = "servicebus";

/// Where a failed call was made: the operation and the entity it named.
#[derive(Debug, Clone)]
pub(super) struct Call {
    /// The operation (`peek-lock`, `complete`, `unlock`, `renew`).
    pub(super) what: String,
    /// The namespace name.
    pub(super) namespace: String,
    /// The entity path.
    pub(super) entity: String,
}

/// A failure of the Service Bus source. Never holds a key or a SAS token.
#[derive(Debug)]
pub(super) enum ServiceBusError {
    /// A request URL could not be parsed.
    BadUrl {
        /// The operation.
        what: String,
        /// Why the URL is not one.
        cause: String,
    },
    /// The server could not be reached.
    Unreachable {
        /// The call.
        call: Call,
        /// The transport's error, redacted.
        cause: String,
    },
    /// The server did not answer in time.
    NoAnswer {
        /// The call.
        call: Call,
        /// The time limit.
        limit: Duration,
    },
    /// The server answered with an unexpected HTTP status.
    Status {
        /// The call.
        call: Call,
        /// The HTTP status.
        status: u16,
        /// The shared access policy name the request was signed with.
        key_name: String,
        /// Whether the call acted on a message lock (complete, unlock, renew).
        on_lock: bool,
        /// The server's error detail, redacted (` (server: ...)` or empty).
        detail: String,
    },
    /// A message came without a lock to settle it by.
    NoLock {
        /// The message id.
        message_id: String,
        /// The namespace name.
        namespace: String,
        /// The entity path.
        entity: String,
    },
    /// Forwarding a dead letter to the dead-letter queue failed.
    Forward {
        /// The dead-letter queue.
        queue: String,
        /// The namespace name.
        namespace: String,
        /// The HTTP status, when the server answered.
        status: Option<u16>,
    },
    /// Forwarding a dead letter got no answer in time.
    ForwardNoAnswer {
        /// The dead-letter queue.
        queue: String,
        /// The namespace name.
        namespace: String,
        /// The time limit.
        limit: Duration,
    },
    /// The dead-letter queue client could not be built.
    ForwardClient,
    /// A SAS token could not be signed.
    Signing,
}

impl ServiceBusError {
    /// The error for an unexpected `status` answered to `call`, with the
    /// server's error detail read from `body`.
    pub(super) fn status(
        call: Call,
        status: u16,
        key_name: &str,
        on_lock: bool,
        body: &[u8],
    ) -> Self {
        ServiceBusError::Status {
            call,
            status,
            key_name: key_name.to_owned(),
            on_lock,
            detail: server_detail(body),
        }
    }
}

/// The message of an unexpected HTTP status.
fn status_message(call: &Call, code: u16, key_name: &str, on_lock: bool, detail: &str) -> String {
    let Call {
        what,
        namespace: ns,
        entity,
    } = call;
    match code {
        401 => format!(
            "{what}: 401 Unauthorized on namespace {ns} entity {entity}: the shared access \
             key name {key_name:?} or its key was refused (check SB_QUEUE_KEY_NAME / SB_QUEUE_KEY \
             or SERVICEBUS_CONNECTION_STRING){detail}"
        ),
        403 => format!(
            "{what}: 403 Forbidden on namespace {ns} entity {entity}: the shared access \
             policy {key_name:?} lacks the right (Listen to receive, Send to forward dead letters) \
             or a quota was exceeded{detail}"
        ),
        404 if on_lock => format!(
            "{what}: 404 on namespace {ns} entity {entity}: the message lock was lost (it \
             expired, or the message was settled already); Service Bus delivers the message \
             again{detail}"
        ),
        404 | 410 if !on_lock => {
            format!("{what}: {code} on namespace {ns}: the entity {entity} does not exist{detail}")
        }
        410 => format!(
            "{what}: 410 Gone on namespace {ns}: the lock was lost or the entity {entity} \
             no longer exists{detail}"
        ),
        408 | 429 | 500..=599 => {
            format!("{what}: {code} on namespace {ns} entity {entity}: try again{detail}")
        }
        _ => format!("{what}: unexpected {code} on namespace {ns} entity {entity}{detail}"),
    }
}

impl From<ServiceBusError> for Error {
    fn from(e: ServiceBusError) -> Self {
        let backend =
            |message: String, temporary: bool| Error::backend(BACKEND, message, temporary);
        match e {
            ServiceBusError::BadUrl { what, cause } => {
                backend(format!("{what}: bad URL: {cause}"), false)
            }
            ServiceBusError::Unreachable { call, cause } => backend(
                format!(
                    "{} on namespace {} entity {}: could not reach Service Bus: {cause}",
                    call.what, call.namespace, call.entity
                ),
                true,
            ),
            ServiceBusError::NoAnswer { call, limit } => backend(
                format!(
                    "{} on namespace {} entity {}: no answer within {limit:?}",
                    call.what, call.namespace, call.entity
                ),
                true,
            ),
            ServiceBusError::Status {
                call,
                status,
                key_name,
                on_lock,
                detail,
            } => Error::http_status(
                BACKEND,
                status,
                status_message(&call, status, &key_name, on_lock, &detail),
            ),
            ServiceBusError::NoLock {
                message_id,
                namespace,
                entity,
            } => backend(
                format!(
                    "message {message_id} on namespace {namespace} entity {entity}: peek-lock \
                     returned no Location or LockToken, so it cannot be settled; it returns when \
                     its lock expires"
                ),
                false,
            ),
            ServiceBusError::Forward {
                queue,
                namespace,
                status,
            } => {
                let message = format!(
                    "forwarding to the dead-letter queue {queue} on namespace {namespace} failed{}",
                    status.map(|s| format!(": HTTP {s}")).unwrap_or_default()
                );
                match status {
                    Some(status) => Error::http_status(BACKEND, status, message),
                    None => backend(message, true),
                }
            }
            ServiceBusError::ForwardNoAnswer {
                queue,
                namespace,
                limit,
            } => backend(
                format!(
                    "forwarding to the dead-letter queue {queue} on namespace {namespace}: no \
                     answer within {limit:?}"
                ),
                true,
            ),
            ServiceBusError::ForwardClient => {
                Error::Config("could not build the dead-letter queue client".into())
            }
            ServiceBusError::Signing => {
                Error::Config("could not sign a Service Bus SAS token".into())
            }
        }
    }
}

/// The server's error detail (`<Detail>` of the XML body, or the text),
/// short and redacted, for an error message.
fn server_detail(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = match (text.find("<Detail>"), text.find("</Detail>")) {
        (Some(a), Some(b)) if b > a => text[a + 8..b].to_owned(),
        _ => text.trim().to_owned(),
    };
    if text.is_empty() {
        return String::new();
    }
    let short: String = text.chars().take(200).collect();
    format!(" (server: {})", redact(&short))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn call() -> Call {
        Call {
            what: "peek-lock".into(),
            namespace: "ns".into(),
            entity: "q".into(),
        }
    }

    #[test]
    fn statuses_map_to_kinds() {
        let kind = |status: u16, on_lock: bool| {
            let e = Error::from(ServiceBusError::status(call(), status, "r", on_lock, b""));
            (e.kind(), e.is_temporary())
        };
        assert_eq!(kind(401, false), (ErrorKind::Unauthenticated, false));
        assert_eq!(kind(403, true), (ErrorKind::PermissionDenied, false));
        assert_eq!(kind(404, true), (ErrorKind::Backend, false));
        assert_eq!(kind(410, false), (ErrorKind::Backend, false));
        for temporary in [408, 429, 500, 503] {
            assert_eq!(kind(temporary, false), (ErrorKind::Backend, true));
        }
        let e = Error::from(ServiceBusError::Forward {
            queue: "parked".into(),
            namespace: "ns".into(),
            status: Some(403),
        });
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
        let e = Error::from(ServiceBusError::Forward {
            queue: "parked".into(),
            namespace: "ns".into(),
            status: None,
        });
        assert!(e.is_temporary(), "{e}");
    }

    #[test]
    fn the_server_detail_is_short_and_taken_from_the_xml() {
        let body = b"<Error><Code>401</Code><Detail>bad token</Detail></Error>";
        assert_eq!(server_detail(body), " (server: bad token)");
        assert_eq!(server_detail(b"  "), "");
        let e = Error::from(ServiceBusError::status(call(), 401, "r", false, body));
        let text = e.to_string();
        assert!(
            text.starts_with("servicebus: unauthenticated: peek-lock: 401 Unauthorized"),
            "{text}"
        );
        assert!(text.ends_with("(server: bad token)"), "{text}");
    }
}
