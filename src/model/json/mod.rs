//! The JSON readers the models are built on: the lenient value types and the
//! `wire_struct!` macro of the full typed views ([`lenient`]), and the
//! zero-copy indexes of the fields the accessors read (`index_struct!`,
//! [`index`]) with their validating fast path ([`scan`]).
//!
//! Only the lenient value types are public (as `remediation::model::…`);
//! the rest is the models' machinery.

mod index;
mod lenient;
mod scan;
#[cfg(test)]
mod testing;

pub use lenient::{LenientBool, RawJson, StringList, Timestamp};

pub(crate) use index::{
    Ctx, Flag, Indexed, ListSpan, Millis, Present, RawSpan, Seed, Span, SpanVisitor, Texts,
    index_struct,
};
pub(crate) use lenient::{parse_raw, string_or_map, wire_struct};
pub(crate) use scan::{Miss, Scan, Scanned};
#[cfg(test)]
pub(crate) use testing::{fixture_objects, mutants};
