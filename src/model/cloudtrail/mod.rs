//! CloudTrail records and the envelopes they travel in: EventBridge events,
//! `{"Records":[...]}` log files (streamed in bounded memory by
//! [`RecordSplitter`]) and CloudWatch Logs subscription messages.

use super::json::{Ctx, Flag, RawSpan, Span, Texts, index_struct};
use super::json::{LenientBool, RawJson, wire_struct};
use crate::error::{Error, Result};
use compact_str::CompactString;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::io::{BufRead, BufReader, ErrorKind as IoErrorKind, Read};
use std::path::Path;

wire_struct! {
    /// The full typed view of a CloudTrail record ([`CloudTrailRecord::details`]).
    ///
    /// Every field is optional because CloudTrail omits what does not apply.
    /// The free-form payloads (`requestParameters`, `responseElements`,
    /// `additionalEventData`, `serviceEventDetails`, `insightDetails`,
    /// `edgeDeviceDetails`, `addendum`) and the subtrees rarely needed
    /// (`resources`, `tlsDetails`, parts of `userIdentity`) stay raw until an
    /// accessor parses them; strings are [`CompactString`]s, which keep short
    /// values (up to 24 bytes) inline instead of allocating.
    ///
    /// Parse from bytes or text (raw fields cannot be rebuilt from a
    /// [`serde_json::Value`]).
    #[derive(Clone, Debug, Default, PartialEq)]
    pub struct RecordDetails {
        /// `eventVersion`, e.g. `1.08`.
        "eventVersion" => event_version: CompactString,
        /// `userIdentity`: who made the request.
        "userIdentity" => user_identity: UserIdentity,
        /// `eventTime` (RFC 3339, UTC).
        "eventTime" => event_time: CompactString,
        /// `eventSource`, e.g. `iam.amazonaws.com`.
        "eventSource" => event_source: CompactString,
        /// `eventName`, the API action, e.g. `CreateUser`.
        "eventName" => event_name: CompactString,
        /// `awsRegion`.
        "awsRegion" => aws_region: CompactString,
        /// `sourceIPAddress` (an IP address, or a service name such as `AWS Internal`).
        "sourceIPAddress" => source_ip_address: CompactString,
        /// `userAgent`.
        "userAgent" => user_agent: CompactString,
        /// `errorCode`, when the request failed.
        "errorCode" => error_code: CompactString,
        /// `errorMessage`, when the request failed.
        "errorMessage" => error_message: CompactString,
        /// `requestParameters`, raw; see [`RecordDetails::request_parameters`].
        "requestParameters" => request_parameters: RawJson,
        /// `responseElements`, raw; see [`RecordDetails::response_elements`].
        "responseElements" => response_elements: RawJson,
        /// `additionalEventData`, raw; see [`RecordDetails::additional_event_data`].
        "additionalEventData" => additional_event_data: RawJson,
        /// `requestID`.
        "requestID" => request_id: CompactString,
        /// `eventID`: unique per event, the deduplication key.
        "eventID" => event_id: CompactString,
        /// `eventType`: `AwsApiCall`, `AwsServiceEvent`, `AwsConsoleAction`,
        /// `AwsConsoleSignIn`, `AwsCloudTrailInsight`...
        "eventType" => event_type: CompactString,
        /// `apiVersion`.
        "apiVersion" => api_version: CompactString,
        /// `managementEvent`.
        "managementEvent" => management_event: LenientBool,
        /// `readOnly`.
        "readOnly" => read_only: LenientBool,
        /// `resources`: the resources the event touched, raw; see
        /// [`RecordDetails::resources`].
        "resources" => resources: RawJson,
        /// `recipientAccountId`: the account that received the event.
        "recipientAccountId" => recipient_account_id: CompactString,
        /// `serviceEventDetails`, raw; see [`RecordDetails::service_event_details`].
        "serviceEventDetails" => service_event_details: RawJson,
        /// `sharedEventID`: shared by the copies of a cross-account event.
        "sharedEventID" => shared_event_id: CompactString,
        /// `vpcEndpointId`.
        "vpcEndpointId" => vpc_endpoint_id: CompactString,
        /// `vpcEndpointAccountId`.
        "vpcEndpointAccountId" => vpc_endpoint_account_id: CompactString,
        /// `eventCategory`: `Management`, `Data`, `NetworkActivity` or `Insight`.
        "eventCategory" => event_category: CompactString,
        /// `tlsDetails`, raw; see [`RecordDetails::tls_details`].
        "tlsDetails" => tls_details: RawJson,
        /// `sessionCredentialFromConsole` (sent as the string `"true"`).
        "sessionCredentialFromConsole" => session_credential_from_console: LenientBool,
        /// `insightDetails`, raw (Insights events only).
        "insightDetails" => insight_details: RawJson,
        /// `addendum`: why and what was updated for a late-delivered event,
        /// raw; see [`RecordDetails::addendum`].
        "addendum" => addendum: RawJson,
        /// `edgeDeviceDetails`, raw.
        "edgeDeviceDetails" => edge_device_details: RawJson,
        /// `errorDetails`.
        "errorDetails" => error_details: CompactString,
    }
}

wire_struct! {
    /// `userIdentity`: the principal behind a CloudTrail event.
    #[derive(Clone, Debug, Default, PartialEq)]
    pub struct UserIdentity {
        /// `type`: `Root`, `IAMUser`, `AssumedRole`, `Role`, `FederatedUser`,
        /// `Directory`, `AWSAccount`, `AWSService`, `IdentityCenterUser`, `Unknown`...
        /// (absent on some service events).
        "type" => r#type: CompactString,
        /// `principalId`.
        "principalId" => principal_id: CompactString,
        /// `arn`.
        "arn" => arn: CompactString,
        /// `accountId`.
        "accountId" => account_id: CompactString,
        /// `accessKeyId`.
        "accessKeyId" => access_key_id: CompactString,
        /// `userName`.
        "userName" => user_name: CompactString,
        /// `sessionContext`, for temporary credentials, raw; see
        /// [`UserIdentity::session_context`].
        "sessionContext" => session_context: RawJson,
        /// `invokedBy`: the service that made the request on the principal's behalf.
        "invokedBy" => invoked_by: CompactString,
        /// `identityProvider` (federated and Identity Center users).
        "identityProvider" => identity_provider: CompactString,
        /// `credentialId`.
        "credentialId" => credential_id: CompactString,
        /// `onBehalfOf` (Identity Center users): `userId`, `identityStoreArn`;
        /// raw, see [`UserIdentity::on_behalf_of`].
        "onBehalfOf" => on_behalf_of: RawJson,
        /// `inScopeOf`, raw; see [`UserIdentity::in_scope_of`].
        "inScopeOf" => in_scope_of: RawJson,
    }
}

wire_struct! {
    /// `userIdentity.onBehalfOf`: the Identity Center user a request was made for.
    #[derive(Clone, Debug, Default, PartialEq)]
    pub struct OnBehalfOf {
        /// `userId`.
        "userId" => user_id: CompactString,
        /// `identityStoreArn`.
        "identityStoreArn" => identity_store_arn: CompactString,
    }
}

wire_struct! {
    /// `userIdentity.sessionContext`: how temporary credentials were obtained.
    #[derive(Clone, Debug, Default, PartialEq)]
    pub struct SessionContext {
        /// `attributes`: MFA and creation date.
        "attributes" => attributes: SessionAttributes,
        /// `sessionIssuer`: the role or user that issued the session.
        "sessionIssuer" => session_issuer: SessionIssuer,
        /// `webIdFederationData`, for web identity federation.
        "webIdFederationData" => web_id_federation_data: WebIdFederationData,
        /// `sourceIdentity`.
        "sourceIdentity" => source_identity: CompactString,
        /// `ec2RoleDelivery`: `1.0` (IMDSv1) or `2.0` (IMDSv2).
        "ec2RoleDelivery" => ec2_role_delivery: CompactString,
        /// `assumedRoot`.
        "assumedRoot" => assumed_root: LenientBool,
    }
}

wire_struct! {
    /// `sessionContext.attributes`.
    #[derive(Clone, Debug, Default, PartialEq)]
    pub struct SessionAttributes {
        /// `mfaAuthenticated`, sent as the string `"true"` or `"false"`;
        /// see [`SessionAttributes::mfa`].
        "mfaAuthenticated" => mfa_authenticated: LenientBool,
        /// `creationDate` (RFC 3339).
        "creationDate" => creation_date: CompactString,
    }
}

impl SessionAttributes {
    /// Whether the session was authenticated with MFA, if CloudTrail said so.
    pub fn mfa(&self) -> Option<bool> {
        self.mfa_authenticated
            .as_ref()
            .and_then(LenientBool::as_bool)
    }
}

wire_struct! {
    /// `sessionContext.sessionIssuer`.
    #[derive(Clone, Debug, Default, PartialEq)]
    pub struct SessionIssuer {
        /// `type`: `Root`, `IAMUser` or `Role`.
        "type" => r#type: CompactString,
        /// `principalId`.
        "principalId" => principal_id: CompactString,
        /// `arn`.
        "arn" => arn: CompactString,
        /// `accountId`.
        "accountId" => account_id: CompactString,
        /// `userName`.
        "userName" => user_name: CompactString,
    }
}

wire_struct! {
    /// `sessionContext.webIdFederationData`.
    #[derive(Clone, Debug, Default, PartialEq)]
    pub struct WebIdFederationData {
        /// `federatedProvider`.
        "federatedProvider" => federated_provider: CompactString,
        /// `attributes`.
        "attributes" => attributes: serde_json::Value,
    }
}

wire_struct! {
    /// One entry of `resources`.
    #[derive(Clone, Debug, Default, PartialEq)]
    pub struct Resource {
        /// `ARN`.
        "ARN" => arn: CompactString,
        /// `accountId`.
        "accountId" => account_id: CompactString,
        /// `type`, e.g. `AWS::IAM::Role`.
        "type" => r#type: CompactString,
    }
}

wire_struct! {
    /// `tlsDetails`.
    #[derive(Clone, Debug, Default, PartialEq)]
    pub struct TlsDetails {
        /// `tlsVersion`.
        "tlsVersion" => tls_version: CompactString,
        /// `cipherSuite`.
        "cipherSuite" => cipher_suite: CompactString,
        /// `clientProvidedHostHeader`.
        "clientProvidedHostHeader" => client_provided_host_header: CompactString,
    }
}

impl UserIdentity {
    /// `sessionContext` parsed; `None` when absent or `null`.
    pub fn session_context(&self) -> Result<Option<SessionContext>> {
        parse_raw(self.session_context.as_ref())
    }

    /// `onBehalfOf` parsed; `None` when absent or `null`.
    pub fn on_behalf_of(&self) -> Result<Option<OnBehalfOf>> {
        parse_raw(self.on_behalf_of.as_ref())
    }

    /// `inScopeOf` parsed into `T`; `None` when absent or `null`.
    pub fn in_scope_of<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        parse_raw(self.in_scope_of.as_ref())
    }
}

fn parse_raw<T: DeserializeOwned>(raw: Option<&RawJson>) -> Result<Option<T>> {
    match raw {
        Some(r) => r.parse_opt(),
        None => Ok(None),
    }
}

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
        "accountId" => account_id: Span,
        "sessionContext" => session_context: SessionIndex,
    }
}

index_struct! {
    struct SessionIndex {
        "attributes" => attributes: AttributesIndex,
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

impl RecordDetails {
    /// `eventID`.
    pub fn event_id(&self) -> Option<&str> {
        self.event_id.as_deref()
    }

    /// `eventName`.
    pub fn event_name(&self) -> Option<&str> {
        self.event_name.as_deref()
    }

    /// `eventSource`.
    pub fn event_source(&self) -> Option<&str> {
        self.event_source.as_deref()
    }

    /// `awsRegion`.
    pub fn aws_region(&self) -> Option<&str> {
        self.aws_region.as_deref()
    }

    /// The account the event happened in: `recipientAccountId`, else `userIdentity.accountId`.
    pub fn account_id(&self) -> Option<&str> {
        self.recipient_account_id.as_deref().or_else(|| {
            self.user_identity
                .as_ref()
                .and_then(|u| u.account_id.as_deref())
        })
    }

    /// `userIdentity.type`.
    pub fn identity_type(&self) -> Option<&str> {
        self.user_identity
            .as_ref()
            .and_then(|u| u.r#type.as_deref())
    }

    /// Whether the session was MFA-authenticated
    /// (`userIdentity.sessionContext.attributes.mfaAuthenticated`); `None`
    /// when not sent (or when `sessionContext` is not a valid session context).
    pub fn mfa_authenticated(&self) -> Option<bool> {
        self.user_identity
            .as_ref()?
            .session_context()
            .ok()??
            .attributes?
            .mfa()
    }

    /// `resources` parsed; `None` when absent or `null`.
    pub fn resources(&self) -> Result<Option<Vec<Resource>>> {
        parse_raw(self.resources.as_ref())
    }

    /// `tlsDetails` parsed; `None` when absent or `null`.
    pub fn tls_details(&self) -> Result<Option<TlsDetails>> {
        parse_raw(self.tls_details.as_ref())
    }

    /// `addendum` parsed into `T`; `None` when absent or `null`.
    pub fn addendum<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        parse_raw(self.addendum.as_ref())
    }

    /// `requestParameters` parsed into `T`; `None` when absent or `null`.
    pub fn request_parameters<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        parse_raw(self.request_parameters.as_ref())
    }

    /// `responseElements` parsed into `T`; `None` when absent or `null`.
    pub fn response_elements<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        parse_raw(self.response_elements.as_ref())
    }

    /// `additionalEventData` parsed into `T`; `None` when absent or `null`.
    pub fn additional_event_data<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        parse_raw(self.additional_event_data.as_ref())
    }

    /// `serviceEventDetails` parsed into `T`; `None` when absent or `null`.
    pub fn service_event_details<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        parse_raw(self.service_event_details.as_ref())
    }
}

/// An EventBridge event (`detail` is the CloudTrail record for the
/// `... via CloudTrail` detail types).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventBridgeEvent {
    /// `version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `detail-type`, e.g. `AWS API Call via CloudTrail`.
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    /// `source`, e.g. `aws.iam`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// `account`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// `time`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// `region`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// `resources`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Vec<String>>,
    /// `detail`, raw.
    pub detail: RawJson,
}

impl EventBridgeEvent {
    /// Whether the `detail-type` says the detail is a CloudTrail record
    /// (`AWS API Call via CloudTrail`, `AWS Console Sign In via CloudTrail`,
    /// `AWS Service Event via CloudTrail`...).
    pub fn is_cloudtrail(&self) -> bool {
        is_cloudtrail_detail_type(&self.detail_type)
    }

    /// The `detail` parsed as a CloudTrail record.
    pub fn record(&self) -> Result<CloudTrailRecord> {
        CloudTrailRecord::from_slice(self.detail.get().as_bytes())
    }
}

/// Whether an EventBridge `detail-type` carries a CloudTrail record.
pub fn is_cloudtrail_detail_type(detail_type: &str) -> bool {
    detail_type.trim_end().ends_with("via CloudTrail")
}

/// A CloudWatch Logs subscription message, decoded (what `awslogs.data`
/// holds once base64-decoded and gunzipped).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogsSubscription {
    /// `messageType`: `DATA_MESSAGE` or `CONTROL_MESSAGE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_type: Option<String>,
    /// `owner`: the account that owns the log group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// `logGroup`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_group: Option<String>,
    /// `logStream`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_stream: Option<String>,
    /// `subscriptionFilters`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_filters: Option<Vec<String>>,
    /// `logEvents`.
    #[serde(default)]
    pub log_events: Vec<LogEvent>,
}

impl LogsSubscription {
    /// Whether this is a control message (sent to check the destination; no events).
    pub fn is_control(&self) -> bool {
        self.message_type.as_deref() == Some("CONTROL_MESSAGE")
    }
}

/// One event of a CloudWatch Logs subscription message.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LogEvent {
    /// `id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `timestamp` (epoch milliseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
    /// `message`: for a CloudTrail log group, one record as JSON text.
    pub message: String,
}

/// Maximum size of one record yielded by [`RecordSplitter`] (CloudTrail's own
/// limit is 256 KB per event; this leaves room while keeping memory bounded).
pub const MAX_RECORD_BYTES: usize = 16 * 1024 * 1024;

/// Maximum nesting depth inside one record.
const MAX_DEPTH: usize = 256;

/// Maximum length of a top-level key we care to read (longer keys are still
/// skipped correctly, just not remembered).
const KEY_PREFIX: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing read yet.
    Start,
    /// Inside the top-level object, before a key (or the closing brace).
    TopLevel { first: bool },
    /// Inside the `Records` array, before an element (or the closing bracket).
    InRecords { first: bool },
    /// Finished (successfully or after an error).
    Done,
}

/// Splits a CloudTrail log file (`{"Records":[...]}`) into the raw JSON bytes
/// of each record, reading in bounded memory.
///
/// Other top-level keys, before or after `Records`, are skipped. The
/// splitter checks structure (brackets, strings, separators) but not the
/// contents of each record: parse them with [`CloudTrailRecord::from_slice`].
/// After the first error the iterator ends.
///
/// ```
/// use remediation::model::cloudtrail::RecordSplitter;
/// let log = br#"{"Records":[{"eventID":"a"},{"eventID":"b"}],"x":1}"#;
/// let records: Vec<Vec<u8>> = RecordSplitter::new(&log[..]).collect::<Result<_, _>>()?;
/// assert_eq!(records, vec![br#"{"eventID":"a"}"#.to_vec(), br#"{"eventID":"b"}"#.to_vec()]);
/// # Ok::<(), remediation::Error>(())
/// ```
#[derive(Debug)]
pub struct RecordSplitter<R> {
    reader: R,
    state: State,
    /// Bytes consumed so far, for error messages.
    offset: u64,
    seen_records: bool,
    /// Expected closing brackets of the element being captured.
    stack: Vec<u8>,
    /// Size of the last record, to size the next buffer.
    last_len: usize,
}

/// Finds the end of a JSON string in `buf`, scanning from `i` (inside the
/// string): the index just after its closing quote, or `None` if the buffer
/// ends first. Sets `escaped` when the buffer ends right after a backslash,
/// so the next buffer's first byte is skipped.
fn string_end(buf: &[u8], mut i: usize, escaped: &mut bool) -> Option<usize> {
    while i < buf.len() {
        let j = i + memchr::memchr2(b'"', b'\\', &buf[i..])?;
        if buf[j] == b'"' {
            return Some(j + 1);
        }
        if j + 1 < buf.len() {
            i = j + 2;
        } else {
            *escaped = true;
            return None;
        }
    }
    None
}

impl<R: BufRead> RecordSplitter<R> {
    /// Streams records from `reader`.
    pub fn new(reader: R) -> Self {
        RecordSplitter {
            reader,
            state: State::Start,
            offset: 0,
            seen_records: false,
            stack: Vec::new(),
            last_len: 1024,
        }
    }

    /// Bytes consumed from the reader so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    fn err(&self, what: &str) -> Error {
        Error::decode(format!(
            "CloudTrail log file: {what} at byte {}",
            self.offset
        ))
    }

    fn fill(&mut self) -> Result<&[u8]> {
        loop {
            match self.reader.fill_buf() {
                Ok(_) => break,
                Err(e) if e.kind() == IoErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io("reading CloudTrail log file", e)),
            }
        }
        self.reader
            .fill_buf()
            .map_err(|e| Error::io("reading CloudTrail log file", e))
    }

    fn consume(&mut self, n: usize) {
        self.reader.consume(n);
        self.offset += n as u64;
    }

    /// The next byte that is not JSON whitespace, without consuming it.
    fn peek_non_ws(&mut self) -> Result<Option<u8>> {
        loop {
            let buf = self.fill()?;
            if buf.is_empty() {
                return Ok(None);
            }
            match buf.iter().position(|b| !is_ws(*b)) {
                Some(i) => {
                    let b = buf[i];
                    self.consume(i);
                    return Ok(Some(b));
                }
                None => {
                    let n = buf.len();
                    self.consume(n);
                }
            }
        }
    }

    fn expect_non_ws(&mut self, what: &str) -> Result<u8> {
        match self.peek_non_ws()? {
            Some(b) => Ok(b),
            None => Err(self.err(&format!("unexpected end of input, expected {what}"))),
        }
    }

    /// Reads a string (the opening quote already peeked), returning up to
    /// `KEY_PREFIX` bytes of its raw content and whether it was longer or held escapes.
    fn read_key(&mut self) -> Result<(Vec<u8>, bool)> {
        self.consume(1);
        let mut prefix = Vec::with_capacity(KEY_PREFIX);
        let mut unusual = false;
        let mut escaped = false;
        loop {
            let buf = self.fill()?;
            if buf.is_empty() {
                return Err(self.err("unexpected end of input inside a key"));
            }
            let mut end = None;
            let mut i = 0;
            if escaped {
                i = 1;
                escaped = false;
            }
            while i < buf.len() {
                match memchr::memchr2(b'"', b'\\', &buf[i..]) {
                    None => {
                        i = buf.len();
                    }
                    Some(p) => {
                        let j = i + p;
                        if buf[j] == b'\\' {
                            unusual = true;
                            if j + 1 < buf.len() {
                                i = j + 2;
                            } else {
                                escaped = true;
                                i = buf.len();
                            }
                        } else {
                            end = Some(j);
                            break;
                        }
                    }
                }
            }
            let take = end.unwrap_or(buf.len());
            let room = KEY_PREFIX.saturating_sub(prefix.len());
            if take > room {
                unusual = true;
            }
            prefix.extend_from_slice(&buf[..take.min(room)]);
            let n = buf.len();
            match end {
                Some(j) => {
                    self.consume(j + 1);
                    return Ok((prefix, unusual));
                }
                None => self.consume(n),
            }
        }
    }

    /// Captures (or, with `out = None`, skips) one JSON value starting at the
    /// next non-whitespace byte.
    fn value(&mut self, mut out: Option<&mut Vec<u8>>) -> Result<()> {
        let first = self.expect_non_ws("a value")?;
        match first {
            b'{' | b'[' => self.container(out),
            b'"' => {
                self.consume(1);
                if let Some(o) = out.as_deref_mut() {
                    o.push(b'"');
                }
                self.string_tail(out)
            }
            b'-' | b'0'..=b'9' | b't' | b'f' | b'n' => self.scalar(out),
            _ => Err(self.err(&format!("unexpected byte 0x{first:02x}"))),
        }
    }

    /// Scans a number or literal up to the next delimiter; the consumer's parser
    /// validates it.
    fn scalar(&mut self, mut out: Option<&mut Vec<u8>>) -> Result<()> {
        let mut len = 0usize;
        loop {
            let buf = self.fill()?;
            if buf.is_empty() {
                return Ok(());
            }
            let end = buf
                .iter()
                .position(|b| matches!(b, b',' | b']' | b'}') || is_ws(*b));
            let take = end.unwrap_or(buf.len());
            if let Some(o) = out.as_deref_mut() {
                o.extend_from_slice(&buf[..take]);
            }
            len += take;
            self.consume(take);
            if len > 4096 {
                return Err(self.err("number or literal too long"));
            }
            if end.is_some() {
                return Ok(());
            }
        }
    }

    /// Scans the rest of a string whose opening quote was consumed.
    fn string_tail(&mut self, mut out: Option<&mut Vec<u8>>) -> Result<()> {
        let mut escaped = false;
        let mut len = 0usize;
        loop {
            let buf = self.fill()?;
            if buf.is_empty() {
                return Err(self.err("unexpected end of input inside a string"));
            }
            let mut i = 0;
            if escaped {
                i = 1;
                escaped = false;
            }
            let end = string_end(buf, i, &mut escaped);
            let take = end.unwrap_or(buf.len());
            if let Some(o) = out.as_deref_mut() {
                o.extend_from_slice(&buf[..take]);
            }
            len += take;
            self.consume(take);
            if len > MAX_RECORD_BYTES {
                return Err(self.err("string larger than the record limit"));
            }
            if end.is_some() {
                return Ok(());
            }
        }
    }

    /// Scans an object or array (first byte not yet consumed) to its matching
    /// closing bracket. This is the hot loop: strings are skipped with `memchr`,
    /// structure is tracked with a small stack.
    fn container(&mut self, mut out: Option<&mut Vec<u8>>) -> Result<()> {
        self.stack.clear();
        let mut in_string = false;
        let mut escaped = false;
        let mut len = 0usize;
        loop {
            let buf = match self.reader.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == IoErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io("reading CloudTrail log file", e)),
            };
            if buf.is_empty() {
                return Err(self.err("unexpected end of input inside a record"));
            }
            let mut i = 0;
            if escaped {
                i = 1;
                escaped = false;
            }
            let mut done = None;
            let mut bad = None;
            while i < buf.len() {
                if in_string {
                    match string_end(buf, i, &mut escaped) {
                        Some(end) => {
                            in_string = false;
                            i = end;
                        }
                        None => i = buf.len(),
                    }
                } else {
                    let b = buf[i];
                    i += 1;
                    match b {
                        b'"' => in_string = true,
                        b'{' => self.stack.push(b'}'),
                        b'[' => self.stack.push(b']'),
                        b'}' | b']' => {
                            if self.stack.pop() != Some(b) {
                                bad = Some("mismatched bracket");
                                break;
                            }
                            if self.stack.is_empty() {
                                done = Some(i);
                                break;
                            }
                        }
                        _ => {}
                    }
                    if self.stack.len() > MAX_DEPTH {
                        bad = Some("record nested too deeply");
                        break;
                    }
                }
            }
            if let Some(what) = bad {
                self.offset += i as u64;
                return Err(self.err(what));
            }
            let take = done.unwrap_or(buf.len());
            if let Some(o) = out.as_deref_mut() {
                o.extend_from_slice(&buf[..take]);
            }
            len += take;
            self.consume(take);
            if done.is_some() {
                return Ok(());
            }
            if len > MAX_RECORD_BYTES {
                return Err(self.err("record larger than the record limit"));
            }
        }
    }

    fn step(&mut self) -> Result<Option<Vec<u8>>> {
        loop {
            match self.state {
                State::Done => return Ok(None),
                State::Start => {
                    // Tolerate a UTF-8 byte order mark.
                    if self.fill()?.first() == Some(&0xEF) {
                        for expected in [0xEF, 0xBB, 0xBF] {
                            if self.fill()?.first() != Some(&expected) {
                                return Err(self.err("invalid byte order mark"));
                            }
                            self.consume(1);
                        }
                    }
                    match self.peek_non_ws()? {
                        Some(b'{') => {
                            self.consume(1);
                            self.state = State::TopLevel { first: true };
                        }
                        Some(b) => {
                            return Err(
                                self.err(&format!("expected a JSON object, found byte 0x{b:02x}"))
                            );
                        }
                        None => return Err(self.err("empty input")),
                    }
                }
                State::TopLevel { first } => {
                    let mut b = self.expect_non_ws("a key or '}'")?;
                    if b == b'}' {
                        self.consume(1);
                        if self.peek_non_ws()?.is_some() {
                            return Err(self.err("trailing data after the top-level object"));
                        }
                        self.state = State::Done;
                        if !self.seen_records {
                            return Err(self.err("no \"Records\" array"));
                        }
                        return Ok(None);
                    }
                    if !first {
                        if b != b',' {
                            return Err(self.err("expected ',' or '}' after a top-level value"));
                        }
                        self.consume(1);
                        b = self.expect_non_ws("a key")?;
                    }
                    if b != b'"' {
                        return Err(self.err("expected a key"));
                    }
                    let (key, unusual) = self.read_key()?;
                    if self.expect_non_ws("':'")? != b':' {
                        return Err(self.err("expected ':' after a key"));
                    }
                    self.consume(1);
                    if !unusual && key == b"Records" {
                        if self.seen_records {
                            return Err(self.err("duplicate \"Records\" key"));
                        }
                        self.seen_records = true;
                        if self.expect_non_ws("'['")? != b'[' {
                            return Err(self.err("\"Records\" is not an array"));
                        }
                        self.consume(1);
                        self.state = State::InRecords { first: true };
                    } else {
                        self.value(None)?;
                        self.state = State::TopLevel { first: false };
                    }
                }
                State::InRecords { first } => {
                    let mut b = self.expect_non_ws("a record or ']'")?;
                    if b == b']' {
                        self.consume(1);
                        self.state = State::TopLevel { first: false };
                        continue;
                    }
                    if !first {
                        if b != b',' {
                            return Err(self.err("expected ',' or ']' after a record"));
                        }
                        self.consume(1);
                        b = self.expect_non_ws("a record")?;
                    }
                    if b != b'{' {
                        return Err(self.err("a record is not a JSON object"));
                    }
                    let mut out = Vec::with_capacity(self.last_len.min(MAX_RECORD_BYTES) + 64);
                    self.container(Some(&mut out))?;
                    self.last_len = out.len();
                    self.state = State::InRecords { first: false };
                    return Ok(Some(out));
                }
            }
        }
    }
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t')
}

impl<R: BufRead> Iterator for RecordSplitter<R> {
    type Item = Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.step() {
            Ok(Some(record)) => Some(Ok(record)),
            Ok(None) => {
                self.state = State::Done;
                None
            }
            Err(e) => {
                self.state = State::Done;
                Some(Err(e))
            }
        }
    }
}

impl<R: BufRead> std::iter::FusedIterator for RecordSplitter<R> {}

/// Whether `bytes` start with the gzip magic number (`1f 8b`).
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// Wraps `reader` in a gzip decoder (multi-member, as S3 objects may be) if
/// its first bytes are the gzip magic number.
pub fn maybe_gunzip<'a, R: BufRead + Send + 'a>(
    mut reader: R,
) -> Result<Box<dyn BufRead + Send + 'a>> {
    let head = loop {
        match reader.fill_buf() {
            Ok(b) => break b,
            Err(e) if e.kind() == IoErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("reading input", e)),
        }
    };
    // A one-byte buffer could hide the second magic byte; gzip files from
    // CloudTrail are never that short, and a real BufReader holds more.
    if is_gzip(head) {
        Ok(Box::new(BufReader::with_capacity(
            64 * 1024,
            flate2::bufread::MultiGzDecoder::new(reader),
        )))
    } else {
        Ok(Box::new(reader))
    }
}

/// Opens a CloudTrail log file, gunzipping it on the fly if it is gzip
/// (detected by its magic bytes, not its name).
pub fn open_maybe_gzip(path: &Path) -> Result<Box<dyn BufRead + Send>> {
    let file = std::fs::File::open(path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    maybe_gunzip(BufReader::with_capacity(64 * 1024, file))
}

/// Reads all of `reader` into memory, failing if it exceeds `limit` bytes
/// (guards against decompression bombs).
pub(crate) fn read_limited<R: Read>(reader: R, limit: usize, what: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| Error::decode(format!("{what}: {e}")))?;
    if out.len() > limit {
        return Err(Error::decode(format!(
            "{what}: larger than {limit} bytes once decompressed"
        )));
    }
    Ok(out)
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

    fn split(input: &[u8], cap: usize) -> Vec<Result<Vec<u8>>> {
        RecordSplitter::new(BufReader::with_capacity(cap, input)).collect()
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

    #[test]
    fn splitter_boundaries() {
        let input =
            br#" {"a":{"Records":[1]},"Records" : [ {"x":"]}\"{"} , {"y":[{}]} ],"z":"}"} "#;
        for cap in [1, 2, 3, 7, 64] {
            let got: Vec<Vec<u8>> = split(input, cap).into_iter().map(|r| r.unwrap()).collect();
            assert_eq!(
                got,
                vec![br#"{"x":"]}\"{"}"#.to_vec(), br#"{"y":[{}]}"#.to_vec()],
                "cap {cap}"
            );
        }
    }

    #[test]
    fn splitter_errors_end_the_iterator() {
        let got = split(br#"{"Records":[{"a":1}, {"b":"#, 4);
        assert_eq!(got.len(), 2);
        assert!(got[0].is_ok());
        assert!(got[1].is_err());
    }
}
