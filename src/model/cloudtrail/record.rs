//! [`CloudTrailRecord`]: one record as its JSON text plus a zero-copy index of
//! the fields the accessors read, so parsing one costs little more than
//! validating it.

use super::RecordDetails;
use crate::error::{Error, Result};
use crate::model::json::{Ctx, Flag, RawSpan, Span, Texts, index_struct};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

index_struct! {
    /// What the accessors of [`CloudTrailRecord`] need; everything else is skipped.
    struct RecordIndex {
        "eventID" => event_id: Span,
        "eventName" => event_name: Span,
        "eventSource" => event_source: Span,
        "awsRegion" => aws_region: Span,
        "recipientAccountId" => recipient_account_id: Span,
        "userIdentity" => user_identity: IdentityIndex,
        "requestParameters" => request_parameters: RawSpan,
        "responseElements" => response_elements: RawSpan,
        "additionalEventData" => additional_event_data: RawSpan,
        "serviceEventDetails" => service_event_details: RawSpan,
    }
}

index_struct! {
    struct IdentityIndex {
        "type" => r#type: Span,
        "arn" => arn: Span,
        "accountId" => account_id: Span,
        "sessionContext" => session_context: SessionIndex,
    }
}

index_struct! {
    struct SessionIndex {
        "attributes" => attributes: AttributesIndex,
        "sessionIssuer" => session_issuer: IssuerIndex,
    }
}

index_struct! {
    struct IssuerIndex {
        "arn" => arn: Span,
    }
}

index_struct! {
    struct AttributesIndex {
        "mfaAuthenticated" => mfa_authenticated: Flag,
    }
}

/// One CloudTrail record (an API call, a console sign-in, a service event or
/// an Insights event), as found in log files, EventBridge `detail` and
/// CloudWatch Logs messages.
///
/// It holds the record's JSON text and an index of the fields the accessors
/// read (as positions in the text, so parsing copies nothing but the text);
/// [`CloudTrailRecord::details`] parses the full typed view
/// ([`RecordDetails`]), unknown fields included. It serializes as the JSON
/// text it was parsed from, so nothing is ever lost. Two records are equal
/// when their text is equal.
///
/// Parsing checks that the text is one JSON object and that the fields the
/// accessors read have the right types; the other fields are checked by
/// [`CloudTrailRecord::details`].
#[derive(Clone, Debug)]
pub struct CloudTrailRecord {
    raw: Box<str>,
    /// Strings of the index that had escapes, unescaped (usually empty).
    extra: Box<str>,
    index: RecordIndex,
}

impl PartialEq for CloudTrailRecord {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl CloudTrailRecord {
    /// Parses one record from JSON bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        let text = std::str::from_utf8(bytes)
            .map_err(|e| Error::decode(format!("invalid CloudTrail record: not UTF-8: {e}")))?;
        Self::from_text(text)
    }

    /// Parses one record from JSON text.
    pub fn from_text(text: &str) -> Result<Self> {
        let invalid =
            |e: &dyn fmt::Display| Error::decode(format!("invalid CloudTrail record: {e}"));
        let trimmed = text.trim_matches(|c| matches!(c, ' ' | '\n' | '\r' | '\t'));
        let mut cx = Ctx::new(trimmed).map_err(|e| invalid(&e))?;
        // The spans are offsets into `trimmed`, which becomes `raw`.
        let mut out = CloudTrailRecord {
            raw: trimmed.into(),
            extra: Box::default(),
            index: RecordIndex::default(),
        };
        RecordIndex::read_text(text, &mut cx, &mut out.index).map_err(|e| invalid(&e))?;
        out.extra = cx.into_extra();
        Ok(out)
    }

    /// The record's JSON text, as received (without surrounding whitespace).
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The full typed view of the record, every field included.
    pub fn details(&self) -> Result<RecordDetails> {
        serde_json::from_str(&self.raw)
            .map_err(|e| Error::decode(format!("invalid CloudTrail record: {e}")))
    }

    /// The string an index span points at.
    fn s(&self, span: Span) -> Option<&str> {
        Texts {
            text: &self.raw,
            extra: &self.extra,
        }
        .get(span)
    }

    /// The raw value at `span` parsed into `T`; `None` when absent or `null`.
    fn parse_span<T: DeserializeOwned>(&self, span: RawSpan) -> Result<Option<T>> {
        match self.s(span.0) {
            Some(text) => serde_json::from_str(text)
                .map(Some)
                .map_err(|e| Error::decode(format!("invalid embedded JSON: {e}"))),
            None => Ok(None),
        }
    }

    /// `eventID`.
    pub fn event_id(&self) -> Option<&str> {
        self.s(self.index.event_id)
    }

    /// `eventName`.
    pub fn event_name(&self) -> Option<&str> {
        self.s(self.index.event_name)
    }

    /// `eventSource`.
    pub fn event_source(&self) -> Option<&str> {
        self.s(self.index.event_source)
    }

    /// `awsRegion`.
    pub fn aws_region(&self) -> Option<&str> {
        self.s(self.index.aws_region)
    }

    /// The account the event happened in: `recipientAccountId`, else `userIdentity.accountId`.
    pub fn account_id(&self) -> Option<&str> {
        self.s(self.index.recipient_account_id)
            .or_else(|| self.s(self.index.user_identity.account_id))
    }

    /// `userIdentity.type`.
    pub fn identity_type(&self) -> Option<&str> {
        self.s(self.index.user_identity.r#type)
    }

    /// `userIdentity.arn`: the caller (for an assumed role,
    /// `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`).
    pub fn principal_arn(&self) -> Option<&str> {
        self.s(self.index.user_identity.arn)
    }

    /// `userIdentity.sessionContext.sessionIssuer.arn`: the role or user
    /// that issued the caller's session (a role's ARN with its path).
    pub fn session_issuer_arn(&self) -> Option<&str> {
        self.s(self.index.user_identity.session_context.session_issuer.arn)
    }

    /// Whether the session was MFA-authenticated
    /// (`userIdentity.sessionContext.attributes.mfaAuthenticated`).
    pub fn mfa_authenticated(&self) -> Option<bool> {
        self.index
            .user_identity
            .session_context
            .attributes
            .mfa_authenticated
            .as_bool()
    }

    /// `requestParameters` parsed into `T`; `None` when absent or `null`.
    pub fn request_parameters<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        self.parse_span(self.index.request_parameters)
    }

    /// `responseElements` parsed into `T`; `None` when absent or `null`.
    pub fn response_elements<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        self.parse_span(self.index.response_elements)
    }

    /// `additionalEventData` parsed into `T`; `None` when absent or `null`.
    pub fn additional_event_data<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        self.parse_span(self.index.additional_event_data)
    }

    /// `serviceEventDetails` parsed into `T`; `None` when absent or `null`.
    pub fn service_event_details<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        self.parse_span(self.index.service_event_details)
    }
}

impl Serialize for CloudTrailRecord {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let raw = serde_json::value::RawValue::from_string(self.raw.to_string())
            .map_err(serde::ser::Error::custom)?;
        raw.serialize(s)
    }
}

impl<'de> Deserialize<'de> for CloudTrailRecord {
    /// Reads the record as raw JSON (so it needs a JSON deserializer reading
    /// bytes or text, not a [`serde_json::Value`]) and indexes it.
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let raw = Box::<serde_json::value::RawValue>::deserialize(d)?;
        CloudTrailRecord::from_text(raw.get()).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scanner's fast path reads every fixture, and reads it exactly as
    /// serde_json does.
    #[test]
    fn scanner_reads_fixtures_as_serde_json_does() {
        for text in crate::model::json::fixture_objects("cloudtrail") {
            RecordIndex::scan_agrees(&text, true).unwrap();
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]
        /// On hostile edits of real records, the scanner never accepts what
        /// serde_json rejects, and never indexes differently.
        #[test]
        fn scanner_agrees_with_serde_json_on_mutants(
            text in proptest::prelude::prop_oneof![
                crate::model::json::mutants(include_str!("../../../tests/fixtures/cloudtrail/awsdocs-iam-record-sts-AssumeRole-role-chaining.json")),
                crate::model::json::mutants(include_str!("../../../tests/fixtures/cloudtrail/custodian-event-cloud-trail-run-instances.json")),
                crate::model::json::mutants(r#"{"eventID":"e\u0041","userIdentity":{"type":"AssumedRole","sessionContext":{"attributes":{"mfaAuthenticated":"false"}}},"requestParameters":{"a":[1.5e3,-0,"x\\"]},"responseElements":null}"#),
            ]
        ) {
            if let Err(e) = RecordIndex::scan_agrees(&text, false) {
                return Err(proptest::test_runner::TestCaseError::fail(e));
            }
        }
    }

    #[test]
    fn record_accessors() {
        let r = CloudTrailRecord::from_slice(
            br#"{"eventID":"e1","eventName":"CreateUser","userIdentity":{"accountId":"1",
                "sessionContext":{"attributes":{"mfaAuthenticated":"true"}}},
                "requestParameters":{"userName":"bob"},"responseElements":null}"#,
        )
        .unwrap();
        assert_eq!(r.event_id(), Some("e1"));
        assert_eq!(r.account_id(), Some("1"));
        assert_eq!(r.mfa_authenticated(), Some(true));
        let p: serde_json::Value = r.request_parameters().unwrap().unwrap();
        assert_eq!(p["userName"], "bob");
        assert_eq!(r.response_elements::<serde_json::Value>().unwrap(), None);
        assert_eq!(r.principal_arn(), None);
        let assumed = CloudTrailRecord::from_slice(
            br#"{"userIdentity":{"type":"AssumedRole",
                "arn":"arn:aws:sts::1:assumed-role/r/s","sessionContext":
                {"sessionIssuer":{"type":"Role","arn":"arn:aws:iam::1:role/p/r"}}}}"#,
        )
        .unwrap();
        assert_eq!(
            assumed.principal_arn(),
            Some("arn:aws:sts::1:assumed-role/r/s")
        );
        assert_eq!(
            assumed.session_issuer_arn(),
            Some("arn:aws:iam::1:role/p/r")
        );
    }

    #[test]
    fn raw_subtrees_parse_on_demand() {
        let r = CloudTrailRecord::from_slice(
            br#"{"eventID":"e","userIdentity":{"type":"AssumedRole","sessionContext":
                {"attributes":{"creationDate":"2024-01-01T00:00:00Z"},
                 "sessionIssuer":{"type":"Role","userName":"Admin"}},
                "onBehalfOf":{"userId":"u"},"inScopeOf":{"x":1}},
                "resources":[{"ARN":"arn:aws:iam::1:role/r","type":"AWS::IAM::Role"}],
                "tlsDetails":{"tlsVersion":"TLSv1.3"},"addendum":{"reason":"DELIVERY_DELAY"},
                "even\u0074Name":"CreateRole","aVeryLongUnknownFieldNameIndeed":null}"#,
        )
        .unwrap();
        assert_eq!(r.event_name(), Some("CreateRole"));
        assert_eq!(r.identity_type(), Some("AssumedRole"));
        assert_eq!(r.mfa_authenticated(), None);
        let r = r.details().unwrap();
        assert_eq!(r.event_name.as_deref(), Some("CreateRole"));
        let u = r.user_identity.as_ref().unwrap();
        assert_eq!(u.r#type.as_deref(), Some("AssumedRole"));
        let sc = u.session_context().unwrap().unwrap();
        assert_eq!(
            sc.session_issuer.unwrap().user_name.as_deref(),
            Some("Admin")
        );
        assert_eq!(
            u.on_behalf_of().unwrap().unwrap().user_id.as_deref(),
            Some("u")
        );
        assert_eq!(
            u.in_scope_of::<serde_json::Value>().unwrap().unwrap()["x"],
            1
        );
        let res = r.resources().unwrap().unwrap();
        assert_eq!(res[0].r#type.as_deref(), Some("AWS::IAM::Role"));
        assert_eq!(
            r.tls_details().unwrap().unwrap().tls_version.as_deref(),
            Some("TLSv1.3")
        );
        let add: serde_json::Value = r.addendum().unwrap().unwrap();
        assert_eq!(add["reason"], "DELIVERY_DELAY");
        assert!(r.other.contains_key("aVeryLongUnknownFieldNameIndeed"));
        assert!(CloudTrailRecord::from_slice(b"{\"eventID\":\"\xff\"}").is_err());

        // The index: escapes, duplicates, wrong types of indexed fields.
        let r = CloudTrailRecord::from_slice(
            br#" {"eventID":"a\"b","awsRegion":"us-east-1","eventName":null,"eventName":"X",
                 "userIdentity":{"accountId":"9","sessionContext":{"attributes":
                 {"mfaAuthenticated":"TRUE"}}},"requestParameters":null} "#,
        )
        .unwrap();
        assert_eq!(r.event_id(), Some("a\"b"));
        assert_eq!(r.event_name(), Some("X"));
        assert_eq!(r.account_id(), Some("9"));
        assert_eq!(r.mfa_authenticated(), Some(true));
        assert_eq!(r.request_parameters::<serde_json::Value>().unwrap(), None);
        assert!(r.raw().starts_with('{') && r.raw().ends_with('}'));
        assert_eq!(
            serde_json::from_str::<CloudTrailRecord>(r.raw()).unwrap(),
            r
        );
        for bad in [
            r#"{"eventID":"a","eventID":"b"}"#,
            r#"{"eventID":1}"#,
            r#"{"userIdentity":"x"}"#,
            r#"{"userIdentity":{"sessionContext":{"attributes":{"mfaAuthenticated":2}}}}"#,
            r#"{"eventID":"a"} x"#,
            "[]",
        ] {
            assert!(
                CloudTrailRecord::from_slice(bad.as_bytes()).is_err(),
                "{bad}"
            );
        }
    }
}
