//! How the Prisma Cloud planner's failures become the crate's errors:
//! [`PrismaError`], clonable so one failed request can answer every alert
//! that waited on it, and converted in one place, tagged `prisma`. An HTTP
//! status the API answered for good goes through [`Error::http_status`]:
//! 401 is [`Unauthenticated`](crate::ErrorKind::Unauthenticated), 403
//! [`PermissionDenied`](crate::ErrorKind::PermissionDenied).

use super::BACKEND;
use crate::error::Error;

/// A failure of the Prisma Cloud planner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum PrismaError {
    /// The configuration cannot work (a login refused with 400, an
    /// endpoint that is not there, a URL that cannot be built): asking again
    /// will not help until it is fixed.
    Config(String),
    /// The API answered `status` and that answer is final (401 after a fresh
    /// login, 403, a 400 for one alert, an unexpected status).
    Status {
        /// The HTTP status.
        status: u16,
        /// What was refused, with a redacted snippet of the answer.
        message: String,
    },
    /// A passing failure: retries spent, a wait longer than allowed, an
    /// unreadable answer, the batcher gone.
    Unavailable(String),
    /// The API answered success without a token.
    NoToken {
        /// Which answer (`login`, `token extension`).
        answer: &'static str,
        /// Its HTTP status.
        status: u16,
    },
    /// The API base URL cannot carry the path of a v2 request.
    NoPath,
}

impl PrismaError {
    /// Whether retrying later may succeed.
    pub(super) fn is_temporary(&self) -> bool {
        Error::from(self.clone()).is_temporary()
    }

    /// The same failure with `note` added to its message.
    pub(super) fn with_note(self, note: &str) -> PrismaError {
        match self {
            PrismaError::Config(m) => PrismaError::Config(format!("{m} {note}")),
            PrismaError::Status { status, message } => PrismaError::Status {
                status,
                message: format!("{message} {note}"),
            },
            PrismaError::Unavailable(m) => PrismaError::Unavailable(format!("{m} {note}")),
            other => other,
        }
    }
}

impl std::fmt::Display for PrismaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PrismaError::Config(m) | PrismaError::Unavailable(m) => f.write_str(m),
            PrismaError::Status { message, .. } => f.write_str(message),
            PrismaError::NoToken { answer, status } => {
                write!(f, "the {answer} answer (HTTP {status}) carries no token")
            }
            PrismaError::NoPath => f.write_str("the API base URL cannot carry a path"),
        }
    }
}

impl From<PrismaError> for Error {
    fn from(e: PrismaError) -> Self {
        let message = e.to_string();
        match e {
            PrismaError::Config(_) => Error::Config(format!("{BACKEND}: {message}")),
            PrismaError::Status { status, .. } => Error::http_status(BACKEND, status, message),
            PrismaError::Unavailable(_) => Error::Backend {
                backend: BACKEND,
                message,
                temporary: true,
                source: None,
            },
            PrismaError::NoToken { .. } | PrismaError::NoPath => Error::Backend {
                backend: BACKEND,
                message,
                temporary: false,
                source: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn statuses_map_to_kinds_and_every_error_is_tagged() {
        let status = |status| {
            Error::from(PrismaError::Status {
                status,
                message: format!("HTTP {status}"),
            })
        };
        assert_eq!(status(401).kind(), ErrorKind::Unauthenticated);
        assert_eq!(status(403).kind(), ErrorKind::PermissionDenied);
        let refused = status(400);
        assert_eq!(refused.kind(), ErrorKind::Backend);
        assert!(!refused.is_temporary());
        let config = Error::from(PrismaError::Config("no login endpoint".into()));
        assert_eq!(config.kind(), ErrorKind::Config);
        assert!(PrismaError::Unavailable("retries spent".into()).is_temporary());
        assert!(
            !PrismaError::NoToken {
                answer: "login",
                status: 200
            }
            .is_temporary()
        );
        assert!(!PrismaError::NoPath.is_temporary());
        for e in [status(401), status(403), refused, config] {
            assert!(e.to_string().contains("prisma: "), "{e}");
        }
        let noted = PrismaError::Status {
            status: 401,
            message: "HTTP 401".into(),
        }
        .with_note("(later)");
        assert_eq!(noted.to_string(), "HTTP 401 (later)");
    }
}
