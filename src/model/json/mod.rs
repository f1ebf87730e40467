//! The JSON readers the models are built on.

pub(super) mod index;
pub(super) mod lenient;
pub(super) mod scan;
