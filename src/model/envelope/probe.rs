//! The probe of a message body's top-level keys: one pass over the object
//! that notes which keys tell the shapes apart (and keeps the raw values of
//! the wrappers' keys), and a few unknown key names for the error message.

use super::{KEY_CHARS, KEYS_SHOWN};
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::fmt;

/// The top-level keys that tell shapes apart, with their raw values.
#[derive(Default)]
pub(super) struct Probe<'a> {
    pub(super) alert_id: bool,
    pub(super) id: bool,
    pub(super) prisma_hint: bool,
    pub(super) event_id: bool,
    pub(super) event_version: bool,
    pub(super) sns_type: Option<&'a RawValue>,
    pub(super) sns_message: Option<&'a RawValue>,
    pub(super) records: Option<&'a RawValue>,
    pub(super) detail_type: bool,
    pub(super) awslogs: Option<&'a RawValue>,
    pub(super) logs_hint: bool,
    pub(super) gcp_log: bool,
    pub(super) gcp_scc: bool,
    pub(super) pubsub_message: Option<&'a RawValue>,
    pub(super) pubsub_subscription: bool,
    pub(super) azure: bool,
    pub(super) azure_authorization: bool,
    pub(super) azure_caller: bool,
    pub(super) keys: Vec<String>,
}

enum ProbeKey {
    AlertId,
    Id,
    PrismaHint,
    EventId,
    EventVersion,
    Type,
    Message,
    Records,
    DetailType,
    Awslogs,
    LogsHint,
    GcpLog,
    GcpScc,
    PubsubMessage,
    PubsubSubscription,
    Azure,
    AzureAuthorization,
    AzureCaller,
    Other(String),
}

impl<'de> Deserialize<'de> for ProbeKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ProbeKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<ProbeKey, E> {
                Ok(match s {
                    "alertId" => ProbeKey::AlertId,
                    "id" => ProbeKey::Id,
                    "alertStatus"
                    | "alertRuleName"
                    | "alertRuleId"
                    | "alertRemediationCli"
                    | "policyName"
                    | "callbackUrl"
                    | "alertTs"
                    | "alertTime" => ProbeKey::PrismaHint,
                    "eventID" => ProbeKey::EventId,
                    "eventVersion" => ProbeKey::EventVersion,
                    "Type" => ProbeKey::Type,
                    "Message" => ProbeKey::Message,
                    "Records" => ProbeKey::Records,
                    "detail-type" => ProbeKey::DetailType,
                    "awslogs" => ProbeKey::Awslogs,
                    "logEvents" | "messageType" => ProbeKey::LogsHint,
                    "protoPayload" | "jsonPayload" | "textPayload" | "logName" => ProbeKey::GcpLog,
                    "finding" | "notificationConfigName" => ProbeKey::GcpScc,
                    "message" => ProbeKey::PubsubMessage,
                    "subscription" => ProbeKey::PubsubSubscription,
                    "records" | "eventDataId" | "value" => ProbeKey::Azure,
                    "authorization" => ProbeKey::AzureAuthorization,
                    "caller" => ProbeKey::AzureCaller,
                    other => ProbeKey::Other(other.chars().take(KEY_CHARS).collect()),
                })
            }
        }
        d.deserialize_identifier(V)
    }
}

impl<'de> Deserialize<'de> for Probe<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Probe<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Probe<'de>, A::Error> {
                let mut p = Probe::default();
                while let Some(key) = map.next_key::<ProbeKey>()? {
                    let mut ignore = true;
                    match key {
                        ProbeKey::AlertId => p.alert_id = true,
                        ProbeKey::Id => p.id = true,
                        ProbeKey::PrismaHint => p.prisma_hint = true,
                        ProbeKey::EventId => p.event_id = true,
                        ProbeKey::EventVersion => p.event_version = true,
                        ProbeKey::Type => {
                            p.sns_type = Some(map.next_value()?);
                            ignore = false;
                        }
                        ProbeKey::Message => {
                            p.sns_message = Some(map.next_value()?);
                            ignore = false;
                        }
                        ProbeKey::Records => {
                            p.records = Some(map.next_value()?);
                            ignore = false;
                        }
                        ProbeKey::DetailType => p.detail_type = true,
                        ProbeKey::Awslogs => {
                            p.awslogs = Some(map.next_value()?);
                            ignore = false;
                        }
                        ProbeKey::LogsHint => p.logs_hint = true,
                        ProbeKey::GcpLog => p.gcp_log = true,
                        ProbeKey::GcpScc => p.gcp_scc = true,
                        ProbeKey::PubsubMessage => {
                            p.pubsub_message = Some(map.next_value()?);
                            ignore = false;
                        }
                        ProbeKey::PubsubSubscription => p.pubsub_subscription = true,
                        ProbeKey::Azure => p.azure = true,
                        ProbeKey::AzureAuthorization => p.azure_authorization = true,
                        ProbeKey::AzureCaller => p.azure_caller = true,
                        ProbeKey::Other(k) => {
                            if p.keys.len() < KEYS_SHOWN {
                                p.keys.push(k);
                            }
                        }
                    }
                    if ignore {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(p)
            }
        }
        d.deserialize_map(V)
    }
}
