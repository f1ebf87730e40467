//! The Google Cloud wrapper: a Pub/Sub push request, whose `message.data`
//! (base64) holds the body.

use super::{Decoded, decode_at, in_context, nest};
use crate::error::{Error, Result};
use serde::Deserialize;
use serde_json::value::RawValue;

/// The `message` of a Pub/Sub push request.
#[derive(Deserialize)]
struct PushMessage {
    #[serde(default)]
    data: Option<String>,
}

pub(super) fn decode_pubsub_push(message: &RawValue, depth: usize) -> Result<Decoded> {
    use base64::Engine as _;
    let message: PushMessage = serde_json::from_str(message.get())
        .map_err(|e| Error::decode(format!("Pub/Sub push message is not an object: {e}")))?;
    let data = message
        .data
        .ok_or_else(|| Error::decode("Pub/Sub push message without data"))?;
    let next = nest(depth, "Pub/Sub push message")?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| Error::decode(format!("Pub/Sub push message.data is not base64: {e}")))?;
    decode_at(&bytes, next).map_err(|e| in_context(e, "Pub/Sub push message.data"))
}
