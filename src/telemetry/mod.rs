//! Telemetry: the live counters every component of a worker adds to
//! ([`Stats`], read as a [`Summary`]), the typed [`ApiCall`] keys of the cloud
//! calls they count, and the retry [`Backoff`] schedule they share.
//!
//! The engine owns one [`Stats`] and hands it to the source, the planner and
//! the dedup store it is built with; a user wires it once
//! ([`EngineBuilder::stats`](crate::engine::EngineBuilder::stats)) and reads it
//! while the worker runs.

mod api;
mod backoff;
mod stats;

pub use api::ApiCall;
pub use backoff::Backoff;
pub use stats::{Counter, Stats, Summary};
