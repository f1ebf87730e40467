//! Benchmarks (written later).
fn main() {}
