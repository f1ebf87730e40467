//! The full typed view of a CloudTrail record ([`RecordDetails`], from
//! [`CloudTrailRecord::details`]) and its parts: the principal
//! ([`UserIdentity`], [`SessionContext`]...), the resources touched, the TLS
//! details. Rarely needed subtrees stay raw JSON until an accessor parses them.
//!
//! [`CloudTrailRecord::details`]: crate::model::CloudTrailRecord::details

use crate::error::Result;
use crate::model::json::{LenientBool, RawJson, parse_raw, wire_struct};
use compact_str::CompactString;
use serde::de::DeserializeOwned;

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
    ///
    /// [`CloudTrailRecord::details`]: crate::model::CloudTrailRecord::details
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
