//! Secret handling: a [`Secret`] newtype that never prints, and redaction of
//! secrets in free text (stderr tails). STUB: the executor helper replaces this file.

/// Replaces anything that looks like a secret in `text`.
pub fn redact(text: &str) -> String {
    text.to_owned()
}
