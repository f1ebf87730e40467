//! How Pub/Sub failures become the crate's errors: [`PubSubError`], one
//! variant per way the source fails, and its one conversion into [`Error`]
//! (backend `pubsub`). A failed RPC is told by its gRPC status code:
//! `UNAUTHENTICATED` is [`Error::Unauthenticated`], `PERMISSION_DENIED`
//! [`Error::PermissionDenied`], anything else an [`Error::Backend`] that is
//! temporary as [`is_temporary`] says (for the stream) or always (an ack, a
//! dead-letter publish: retrying them is what brings the message back).

use super::BACKEND;
use crate::error::Error;
use google_cloud_gax::error::rpc::Code;
use google_cloud_pubsub::error::{AckError, PublishError};
use std::time::Duration;

/// A failure of the Pub/Sub source.
#[derive(Clone, Debug)]
pub(super) enum PubSubError {
    /// A client (the subscriber, the dead-letter publisher) could not be built.
    Client {
        /// Which client.
        what: &'static str,
        /// The client library's error.
        cause: String,
    },
    /// The streaming pull failed (the reader opens a new one).
    Stream {
        /// The subscription.
        subscription: String,
        /// The gRPC status code, if the service answered.
        code: Option<Code>,
        /// Whether retrying may succeed ([`is_temporary`]).
        temporary: bool,
        /// The client library's error.
        cause: String,
    },
    /// The streaming pull ended (the reader opens a new one).
    StreamEnded {
        /// The subscription.
        subscription: String,
    },
    /// An ack on an exactly-once subscription was not confirmed.
    Ack {
        /// The message acked.
        message_id: String,
        /// The gRPC status code of the failed RPC, if there was one.
        code: Option<Code>,
        /// The client library's error.
        cause: String,
    },
    /// Publishing a dead letter to the dead-letter topic failed.
    Publish {
        /// The message dead-lettered.
        message_id: String,
        /// The dead-letter topic.
        topic: String,
        /// The gRPC status code of the failed RPC, if there was one.
        code: Option<Code>,
        /// The client library's error.
        cause: String,
    },
    /// A lease past the subscriber's maximum lease was asked for.
    LeaseTooLong {
        /// The message.
        message_id: String,
        /// The subscriber's maximum lease.
        max_lease: Duration,
    },
}

impl PubSubError {
    /// The streaming pull on `subscription` failed with `e`.
    pub(super) fn stream(e: &google_cloud_pubsub::Error, subscription: &str) -> Self {
        PubSubError::Stream {
            subscription: subscription.to_owned(),
            code: e.status().map(|s| s.code),
            temporary: is_temporary(e),
            cause: e.to_string(),
        }
    }

    /// The confirmed ack of `message_id` failed with `e`.
    pub(super) fn ack(e: &AckError, message_id: &str) -> Self {
        let code = match e {
            AckError::Rpc { source, .. } => source.status().map(|s| s.code),
            _ => None,
        };
        PubSubError::Ack {
            message_id: message_id.to_owned(),
            code,
            cause: e.to_string(),
        }
    }

    /// Publishing `message_id` to the dead-letter `topic` failed with `e`.
    pub(super) fn publish(e: &PublishError, message_id: &str, topic: &str) -> Self {
        let code = match e {
            PublishError::Rpc(source) => source.status().map(|s| s.code),
            _ => None,
        };
        PubSubError::Publish {
            message_id: message_id.to_owned(),
            topic: topic.to_owned(),
            code,
            cause: e.to_string(),
        }
    }
}

/// Whether a client error is worth retrying (network, throttling, server side).
pub(super) fn is_temporary(e: &google_cloud_pubsub::Error) -> bool {
    match e.status() {
        Some(s) => matches!(
            s.code,
            Code::Unavailable
                | Code::DeadlineExceeded
                | Code::ResourceExhausted
                | Code::Aborted
                | Code::Internal
                | Code::Unknown
                | Code::Cancelled
        ),
        None => !e.is_authentication() && !e.is_binding() && !e.is_serialization(),
    }
}

/// The error of a failed RPC with gRPC status `code`: the credentials
/// refused, the operation refused, or else a backend failure.
fn rpc(code: Option<Code>, message: String, temporary: bool) -> Error {
    match code {
        Some(Code::Unauthenticated) => Error::Unauthenticated {
            backend: BACKEND,
            message,
            source: None,
        },
        Some(Code::PermissionDenied) => Error::PermissionDenied {
            backend: BACKEND,
            message,
            source: None,
        },
        _ => Error::Backend {
            backend: BACKEND,
            message,
            temporary,
            source: None,
        },
    }
}

impl From<PubSubError> for Error {
    fn from(e: PubSubError) -> Self {
        match e {
            PubSubError::Client { what, cause } => rpc(None, format!("{what}: {cause}"), false),
            PubSubError::Stream {
                subscription,
                code,
                temporary,
                cause,
            } => rpc(
                code,
                format!("streaming pull on {subscription}: {cause}"),
                temporary,
            ),
            PubSubError::StreamEnded { subscription } => rpc(
                None,
                format!("streaming pull on {subscription} ended"),
                true,
            ),
            PubSubError::Ack {
                message_id,
                code,
                cause,
            } => rpc(code, format!("ack of {message_id}: {cause}"), true),
            PubSubError::Publish {
                message_id,
                topic,
                code,
                cause,
            } => rpc(
                code,
                format!("publishing {message_id} to the dead-letter topic {topic}: {cause}"),
                true,
            ),
            PubSubError::LeaseTooLong {
                message_id,
                max_lease,
            } => rpc(
                None,
                format!(
                    "message {message_id}: a lease past the subscriber's maximum lease \
                     ({max_lease:?}) is not kept; Pub/Sub will redeliver it"
                ),
                false,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use google_cloud_gax::error::CredentialsError;
    use google_cloud_gax::error::rpc::Status;
    use std::sync::Arc;

    fn status(code: Code) -> google_cloud_pubsub::Error {
        google_cloud_pubsub::Error::service(Status::default().set_code(code).set_message("no"))
    }

    #[test]
    fn grpc_statuses_map_to_kinds() {
        let stream = |code: Code| {
            let e = Error::from(PubSubError::stream(
                &status(code),
                "projects/p/subscriptions/s",
            ));
            (e.kind(), e.is_temporary())
        };
        assert_eq!(
            stream(Code::Unauthenticated),
            (ErrorKind::Unauthenticated, false)
        );
        assert_eq!(
            stream(Code::PermissionDenied),
            (ErrorKind::PermissionDenied, false)
        );
        for temporary in [
            Code::Unavailable,
            Code::DeadlineExceeded,
            Code::ResourceExhausted,
            Code::Aborted,
            Code::Internal,
            Code::Unknown,
            Code::Cancelled,
        ] {
            assert_eq!(
                stream(temporary),
                (ErrorKind::Backend, true),
                "{temporary:?}"
            );
        }
        for permanent in [
            Code::NotFound,
            Code::InvalidArgument,
            Code::FailedPrecondition,
        ] {
            assert_eq!(
                stream(permanent),
                (ErrorKind::Backend, false),
                "{permanent:?}"
            );
        }
        let e = Error::from(PubSubError::stream(
            &status(Code::Unauthenticated),
            "projects/p/subscriptions/s",
        ));
        assert!(
            e.to_string().starts_with(
                "pubsub: unauthenticated: streaming pull on projects/p/subscriptions/s"
            ),
            "{e}"
        );
    }

    #[test]
    fn failures_without_a_status_are_temporary_unless_about_credentials_or_encoding() {
        assert!(is_temporary(&google_cloud_pubsub::Error::io("reset")));
        assert!(!is_temporary(&google_cloud_pubsub::Error::binding("bad")));
        assert!(!is_temporary(&google_cloud_pubsub::Error::authentication(
            CredentialsError::from_msg(true, "no token")
        )));
    }

    #[test]
    fn acks_and_publishes_are_temporary_unless_the_credentials_or_rights_were_refused() {
        let rpc_error = |code: Code| Arc::new(status(code));
        let ack = |e: AckError| Error::from(PubSubError::ack(&e, "m-1"));
        let e = ack(AckError::LeaseExpired);
        assert_eq!((e.kind(), e.is_temporary()), (ErrorKind::Backend, true));
        assert!(e.to_string().starts_with("pubsub: ack of m-1: "), "{e}");
        let e = ack(AckError::ShutdownBeforeAck);
        assert!(e.is_temporary(), "{e}");
        let publish =
            |e: PublishError| Error::from(PubSubError::publish(&e, "m-1", "projects/p/topics/dlt"));
        let e = publish(PublishError::Rpc(rpc_error(Code::PermissionDenied)));
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
        assert!(e.to_string().contains("projects/p/topics/dlt"), "{e}");
        let e = publish(PublishError::Rpc(rpc_error(Code::Unauthenticated)));
        assert_eq!(e.kind(), ErrorKind::Unauthenticated);
        let e = publish(PublishError::Rpc(rpc_error(Code::NotFound)));
        assert_eq!((e.kind(), e.is_temporary()), (ErrorKind::Backend, true));
        let e = publish(PublishError::Shutdown);
        assert!(e.is_temporary(), "{e}");
        let e = Error::from(PubSubError::LeaseTooLong {
            message_id: "m-1".into(),
            max_lease: Duration::from_secs(60),
        });
        assert!(!e.is_temporary(), "{e}");
        let e = Error::from(PubSubError::Client {
            what: "building the subscriber client",
            cause: "no".into(),
        });
        assert!(!e.is_temporary() && e.kind() == ErrorKind::Backend, "{e}");
        assert!(
            Error::from(PubSubError::StreamEnded {
                subscription: "projects/p/subscriptions/s".into()
            })
            .is_temporary()
        );
    }
}
