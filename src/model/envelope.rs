//! Envelope detection: tells what a message body is and unwraps it into events.
//!
//! STUB: the models helper replaces this file.

use super::{CloudTrailRecord, Event, PrismaAlert};
use crate::error::{Error, Result};

/// What shape a message body had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BodyFormat {
    /// A single Prisma Cloud alert notification.
    PrismaAlert,
    /// A bare CloudTrail record.
    CloudTrailRecord,
}

/// A decoded message body.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Decoded {
    /// The shape of the innermost payload.
    pub format: BodyFormat,
    /// Whether the body was wrapped in an SNS notification.
    pub sns: bool,
    /// The events the body carried (one for most shapes, many for log files).
    pub events: Vec<Event>,
}

/// Decodes a message body into events, or fails with a clear error.
pub fn decode(body: &[u8]) -> Result<Decoded> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| Error::decode(format!("not JSON: {e}")))?;
    if v.get("alertId").is_some() {
        return Ok(Decoded {
            format: BodyFormat::PrismaAlert,
            sns: false,
            events: vec![Event::PrismaAlert(Box::new(PrismaAlert::from_slice(body)?))],
        });
    }
    if v.get("eventID").is_some() {
        return Ok(Decoded {
            format: BodyFormat::CloudTrailRecord,
            sns: false,
            events: vec![Event::CloudTrail(Box::new(CloudTrailRecord::from_slice(
                body,
            )?))],
        });
    }
    Err(Error::decode("unrecognised body"))
}
