//! CloudTrail records and their envelopes.
//!
//! STUB: the models helper replaces this file; the accessor signatures below are the
//! contract the engine relies on.

use crate::error::{Error, Result};
use serde_json::Value;

/// One CloudTrail record.
#[derive(Clone, Debug, PartialEq)]
pub struct CloudTrailRecord {
    raw: Value,
}

impl CloudTrailRecord {
    /// Parses one record from JSON bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        let raw: Value = serde_json::from_slice(bytes).map_err(|e| Error::decode(e.to_string()))?;
        Ok(CloudTrailRecord { raw })
    }
    fn s(&self, k: &str) -> Option<&str> {
        self.raw.get(k).and_then(Value::as_str)
    }
    /// `eventID`.
    pub fn event_id(&self) -> Option<&str> {
        self.s("eventID")
    }
    /// `eventName`.
    pub fn event_name(&self) -> Option<&str> {
        self.s("eventName")
    }
    /// `eventSource`.
    pub fn event_source(&self) -> Option<&str> {
        self.s("eventSource")
    }
    /// `awsRegion`.
    pub fn aws_region(&self) -> Option<&str> {
        self.s("awsRegion")
    }
    /// The account the event happened in: `recipientAccountId`, else `userIdentity.accountId`.
    pub fn account_id(&self) -> Option<&str> {
        self.s("recipientAccountId")
    }
}

/// Splits a CloudTrail log file (`{"Records":[...]}`) into the raw bytes of each
/// record, reading in bounded memory.
#[derive(Debug)]
pub struct RecordSplitter<R> {
    reader: R,
}

impl<R: std::io::BufRead> RecordSplitter<R> {
    /// Streams records from `reader`.
    pub fn new(reader: R) -> Self {
        RecordSplitter { reader }
    }
}

impl<R: std::io::BufRead> Iterator for RecordSplitter<R> {
    type Item = Result<Vec<u8>>;
    fn next(&mut self) -> Option<Self::Item> {
        let _ = &mut self.reader;
        None
    }
}
