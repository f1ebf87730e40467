//! The reader agrees with the real aws CLI (placeholder until the agreement
//! tests land).
