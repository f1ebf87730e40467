//! The one public error type of the crate, with a coarse [`ErrorKind`] and a
//! temporary/permanent classification that drives retry decisions.

use std::time::Duration;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, coarsely: callers branch on this, humans read the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A message body could not be decoded into any known shape.
    Decode,
    /// A command was refused by the parser or the allowlist.
    UnsafeCommand,
    /// No execution context (profile, subscription, project) is mapped for the target account.
    UnmappedAccount,
    /// The library was configured inconsistently.
    Config,
    /// Reading or writing a local file or stream failed.
    Io,
    /// An operation took longer than its limit.
    Timeout,
    /// A remote service (queue, API) failed.
    Backend,
    /// A delivery was settled twice.
    AlreadySettled,
    /// The operation is not supported by this source or executor.
    NotSupported,
    /// The operation was abandoned because the worker is shutting down.
    Cancelled,
}

/// The crate's error.
///
/// Every variant knows whether it is [temporary](Error::is_temporary): only
/// temporary errors are worth retrying. Messages never contain secrets.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A message body could not be decoded.
    #[error("undecodable message: {message}")]
    Decode {
        /// What was wrong with the body.
        message: String,
    },
    /// A command script was rejected before anything ran.
    #[error("unsafe command: {reason}")]
    UnsafeCommand {
        /// Why the script was rejected.
        reason: String,
    },
    /// The target account has no mapped execution context.
    #[error("no execution context is mapped for {cloud} account {account}")]
    UnmappedAccount {
        /// The cloud the account belongs to (`aws`, `azure`, `gcp`).
        cloud: String,
        /// The account, subscription or project id (or `<none>`).
        account: String,
    },
    /// Invalid configuration.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A local I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An operation exceeded its time limit.
    #[error("{what} timed out after {after:?}")]
    Timeout {
        /// What timed out.
        what: String,
        /// The limit that was exceeded.
        after: Duration,
    },
    /// A remote backend (queue service, HTTP API) failed.
    #[error("{backend}: {message}")]
    Backend {
        /// Which backend (`sqs`, `prisma`, `memory`...).
        backend: &'static str,
        /// What failed, without secrets.
        message: String,
        /// Whether retrying later may succeed.
        temporary: bool,
        /// The underlying error, if any.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    },
    /// A delivery was already settled; the second settle did nothing.
    #[error("delivery {message_id} was already settled")]
    AlreadySettled {
        /// The message id of the delivery.
        message_id: String,
    },
    /// The operation is not supported.
    #[error("not supported: {0}")]
    NotSupported(String),
    /// The operation was abandoned because of shutdown.
    #[error("cancelled: {0}")]
    Cancelled(String),
}

impl Error {
    /// The coarse kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Decode { .. } => ErrorKind::Decode,
            Error::UnsafeCommand { .. } => ErrorKind::UnsafeCommand,
            Error::UnmappedAccount { .. } => ErrorKind::UnmappedAccount,
            Error::Config(_) => ErrorKind::Config,
            Error::Io { .. } => ErrorKind::Io,
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::Backend { .. } => ErrorKind::Backend,
            Error::AlreadySettled { .. } => ErrorKind::AlreadySettled,
            Error::NotSupported(_) => ErrorKind::NotSupported,
            Error::Cancelled(_) => ErrorKind::Cancelled,
        }
    }

    /// Whether retrying the same operation later may succeed.
    ///
    /// Timeouts, I/O errors, cancellations and backend errors marked temporary are;
    /// decode errors, unsafe commands and configuration errors are not.
    pub fn is_temporary(&self) -> bool {
        match self {
            Error::Backend { temporary, .. } => *temporary,
            Error::Timeout { .. } | Error::Io { .. } | Error::Cancelled(_) => true,
            _ => false,
        }
    }

    /// Shorthand for a [`Error::Decode`].
    pub fn decode(message: impl Into<String>) -> Self {
        Error::Decode {
            message: message.into(),
        }
    }

    /// Shorthand for an [`Error::UnsafeCommand`].
    pub fn unsafe_command(reason: impl Into<String>) -> Self {
        Error::UnsafeCommand {
            reason: reason.into(),
        }
    }

    /// Shorthand for an [`Error::Io`] with context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_classification() {
        assert!(!Error::decode("x").is_temporary());
        assert!(!Error::unsafe_command("pipe").is_temporary());
        assert!(
            Error::Timeout {
                what: "step".into(),
                after: Duration::from_secs(1)
            }
            .is_temporary()
        );
        let e = Error::Backend {
            backend: "memory",
            message: "gone".into(),
            temporary: false,
            source: None,
        };
        assert!(!e.is_temporary());
        assert_eq!(e.kind(), ErrorKind::Backend);
    }
}
