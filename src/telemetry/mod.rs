//! Telemetry: the live counters every component of a worker adds to
//! ([`Stats`], read as a [`Summary`]), the typed [`ApiCall`] keys of the cloud
//! calls they count, and the retry [`Backoff`] schedule they share.
//!
//! The engine owns one [`Stats`] and hands it to the source, the planner, the
//! executor and the dedup store it is built with (their `attach_stats`), so
//! a user wires it once
//! ([`EngineBuilder::stats`](crate::engine::EngineBuilder::stats)), or not
//! at all, and reads it while the worker runs
//! ([`Engine::stats`](crate::engine::Engine::stats)).

mod api;
mod backoff;
mod slot;
mod stats;

pub use api::ApiCall;
pub use backoff::Backoff;
#[cfg_attr(not(feature = "servicebus"), allow(unused_imports))]
// the other backends adopt it next
pub(crate) use slot::StatsSlot;
pub use stats::{Counter, Stats, Summary};
