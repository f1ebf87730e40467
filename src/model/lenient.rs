//! Small shared lenient deserializers (string-or-number, string-or-list...).
//!
//! STUB: the models helper fills this in.
