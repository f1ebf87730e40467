//! CloudTrail records and the envelopes they travel in: EventBridge events,
//! `{"Records":[...]}` log files (streamed in bounded memory by
//! [`RecordSplitter`]) and CloudWatch Logs subscription messages.
//!
//! The record itself is [`model::CloudTrailRecord`](crate::model::CloudTrailRecord);
//! this module holds its full typed view ([`RecordDetails`] and its parts),
//! the envelopes ([`EventBridgeEvent`], [`LogsSubscription`]) and the log
//! file splitter.

mod compression;
mod details;
mod envelope;
pub(super) mod record;
mod splitter;

pub use details::{
    OnBehalfOf, RecordDetails, Resource, SessionAttributes, SessionContext, SessionIssuer,
    TlsDetails, UserIdentity, WebIdFederationData,
};
pub use envelope::{EventBridgeEvent, LogEvent, LogsSubscription, is_cloudtrail_detail_type};
pub use splitter::{MAX_RECORD_BYTES, RecordSplitter};

pub(crate) use compression::{is_gzip, maybe_gunzip, read_limited};
