//! The one public error type of the crate, with a coarse [`ErrorKind`] and a
//! temporary/permanent classification that drives retry decisions.
//!
//! Each backend (SQS, DynamoDB, Service Bus, Pub/Sub, Prisma Cloud) has a
//! private error of its own and one `From` conversion into [`Error`], tagged
//! with the backend's name; HTTP 401 becomes [`ErrorKind::Unauthenticated`]
//! and 403 [`ErrorKind::PermissionDenied`] for every one of them.
//!
//! # What the engine does with each kind
//!
//! | kind | from `receive` | from planning | from a step |
//! |------|----------------|---------------|-------------|
//! | `Decode` | — | rejected, dead-lettered (`undecodable`) | — |
//! | `UnsafeCommand` | — | rejected, dead-lettered (`unsafe_command`) | rejected, dead-lettered |
//! | `UnmappedAccount` | — | rejected, dead-lettered (`unmapped_account`) | rejected, dead-lettered |
//! | `Config`, `Unauthenticated`, `PermissionDenied` | the worker stops with the error | failed (`planner_error`), nacked, never parked: refused credentials say nothing about the message | failed (`step_failed`), retried, dead-lettered after the source's attempts |
//! | `Backend`, temporary | retried with backoff | failed (`planner_unavailable`), nacked, never parked | failed, retried |
//! | `Backend`, permanent | the worker stops with the error | failed (`planner_error`), retried, dead-lettered after the source's attempts | failed, retried |
//! | `Timeout`, `Io` | retried with backoff | failed (`planner_unavailable`), nacked, never parked | failed, retried |
//! | `Cancelled` | the worker stops | nacked (`cancelled`) | nacked (`cancelled`) |

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
    /// A remote service refused the worker's credentials (HTTP 401, an
    /// expired or unknown token or key, a bad signature).
    Unauthenticated,
    /// A remote service accepted the credentials but refused the operation
    /// (HTTP 403, `AccessDenied`).
    PermissionDenied,
    /// A delivery was settled twice.
    AlreadySettled,
    /// The operation is not supported by this source or executor.
    NotSupported,
    /// The operation was abandoned because the worker is shutting down.
    Cancelled,
}

/// Why a command was refused: the stable reason codes of
/// [`Error::UnsafeCommand`], shown in logs and audit records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Refusal {
    /// Shell syntax, or text the script parser cannot read as plain words.
    ShellSyntax,
    /// More commands in one script than the policy allows.
    TooManyCommands,
    /// A program outside the allowlist, or given as a path.
    ProgramNotAllowed,
    /// An option that picks credentials, endpoint, TLS trust, logging, an
    /// input file of parameters, a pass-through or ssh behaviour.
    DeniedOption,
    /// An operation outside the catalog of remediation operations.
    OperationNotAllowed,
    /// A local path (`/`, `~`, `./`, `../`) where the CLI would read or write a file.
    LocalPath,
    /// A file reference (`file://`, `fileb://`, az `@file`, a `--*-file`
    /// value) that names no file attached to the step.
    FileReference,
    /// A URL the CLI would fetch.
    Url,
    /// A command acting outside its finding's account, subscription, project
    /// or region, or naming its context twice.
    ContextMismatch,
    /// A policy document that grants (identity policies may only deny;
    /// resource policies may not grant to everyone or another account).
    PolicyDocument,
    /// A catalog operation used to make something less safe, set a
    /// credential, run code or set arbitrary properties.
    Weakens,
    /// A step file that is malformed, unused or ambiguous.
    StepFile,
    /// The command could not be started (program missing, argument list too long).
    CannotStart,
    /// An option the operation does not have, as its CLI reads it (an
    /// abbreviation, a misspelling, a value given to a switch).
    UnknownOption,
    /// An option given twice (under any spelling: `--x` and `--no-x`, or
    /// `--x a` and `--x=b`): the CLI keeps one, a check might read the other.
    RepeatedOption,
    /// An option the operation has but its positive spec does not allow.
    ParameterNotAllowed,
    /// A value outside the operation's positive spec: it would not move the
    /// resource toward safety (a setting turned off, a grant, a wider range).
    Weakening,
    /// A remediating command whose target is not the finding's resource (or
    /// that names none, or whose finding names none).
    UnboundTarget,
    /// A finding field that reaches a command's arguments or environment
    /// (its region, account, subscription or project) is not of its format.
    InvalidContext,
}

impl Refusal {
    /// The reason code as written in logs and audit records.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::ShellSyntax => "shell_syntax",
            Refusal::TooManyCommands => "too_many_commands",
            Refusal::ProgramNotAllowed => "program_not_allowed",
            Refusal::DeniedOption => "denied_option",
            Refusal::OperationNotAllowed => "operation_not_allowed",
            Refusal::LocalPath => "local_path",
            Refusal::FileReference => "file_reference",
            Refusal::Url => "url",
            Refusal::ContextMismatch => "context_mismatch",
            Refusal::PolicyDocument => "policy_document",
            Refusal::Weakens => "weakens",
            Refusal::StepFile => "step_file",
            Refusal::CannotStart => "cannot_start",
            Refusal::UnknownOption => "unknown_option",
            Refusal::RepeatedOption => "repeated_option",
            Refusal::ParameterNotAllowed => "parameter_not_allowed",
            Refusal::Weakening => "weakening",
            Refusal::UnboundTarget => "unbound_target",
            Refusal::InvalidContext => "invalid_context",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
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
    ///
    /// Displayed as `unsafe_command: CODE: reason`, so a log or audit line
    /// names the class of refusal first.
    #[error("unsafe_command: {code}: {reason}")]
    UnsafeCommand {
        /// The class of refusal (`operation_not_allowed`, `local_path`...).
        code: Refusal,
        /// Why the script was rejected, naming the argument at fault.
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
    /// A remote backend refused the worker's credentials.
    #[error("{backend}: unauthenticated: {message}")]
    Unauthenticated {
        /// Which backend (`sqs`, `prisma`...).
        backend: &'static str,
        /// What was refused, without secrets.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    },
    /// A remote backend refused an operation to the worker's identity.
    #[error("{backend}: permission denied: {message}")]
    PermissionDenied {
        /// Which backend (`sqs`, `prisma`...).
        backend: &'static str,
        /// What was refused, without secrets.
        message: String,
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
            Error::Unauthenticated { .. } => ErrorKind::Unauthenticated,
            Error::PermissionDenied { .. } => ErrorKind::PermissionDenied,
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

    /// Shorthand for an [`Error::UnsafeCommand`] of the class `code`.
    pub fn refused(code: Refusal, reason: impl Into<String>) -> Self {
        Error::UnsafeCommand {
            code,
            reason: reason.into(),
        }
    }

    /// Shorthand for an [`Error::UnsafeCommand`] refused by the script
    /// parser ([`Refusal::ShellSyntax`]).
    pub fn unsafe_command(reason: impl Into<String>) -> Self {
        Self::refused(Refusal::ShellSyntax, reason)
    }

    /// The class of refusal, for an [`Error::UnsafeCommand`].
    pub fn refusal(&self) -> Option<Refusal> {
        match self {
            Error::UnsafeCommand { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether the error says the worker's credentials or permissions are
    /// wrong ([`ErrorKind::Config`], [`ErrorKind::Unauthenticated`],
    /// [`ErrorKind::PermissionDenied`]): nothing about the message at hand.
    pub fn is_setup_problem(&self) -> bool {
        matches!(
            self.kind(),
            ErrorKind::Config | ErrorKind::Unauthenticated | ErrorKind::PermissionDenied
        )
    }

    /// A [`Error::Backend`] of `backend` without an underlying error.
    #[cfg_attr(not(any(feature = "sqs", feature = "servicebus")), allow(dead_code))]
    pub(crate) fn backend(backend: &'static str, message: String, temporary: bool) -> Self {
        Error::Backend {
            backend,
            message,
            temporary,
            source: None,
        }
    }

    /// The error for an HTTP answer with `status` from `backend`: 401 is
    /// [`Error::Unauthenticated`], 403 [`Error::PermissionDenied`], 408, 429
    /// and 5xx a temporary [`Error::Backend`], anything else a permanent one.
    #[cfg_attr(not(any(feature = "servicebus", feature = "prisma")), allow(dead_code))]
    pub(crate) fn http_status(backend: &'static str, status: u16, message: String) -> Self {
        match status {
            401 => Error::Unauthenticated {
                backend,
                message,
                source: None,
            },
            403 => Error::PermissionDenied {
                backend,
                message,
                source: None,
            },
            _ => Error::Backend {
                backend,
                message,
                temporary: status == 408 || status == 429 || status >= 500,
                source: None,
            },
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
