//! # remediation
//!
//! Turn cloud security findings into safe, automatic fixes.
//!
//! (crate docs: written with the engine)

#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms,
    rustdoc::broken_intra_doc_links
)]

pub mod engine;
mod error;
pub mod executor;
pub mod model;
pub mod planner;
pub mod redact;
pub mod source;

pub use error::{Error, ErrorKind, Result};
