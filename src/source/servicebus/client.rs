//! The Service Bus REST calls: [`Shared`] (what every clone of a source and
//! every delivery's settle share) sends signed requests with a time limit —
//! peek-lock, complete / unlock / renew on a lock URI — turns a locked
//! message into a [`Delivery`], and forwards dead letters with the crate's
//! `QueueClient`.

use super::broker::{BrokerProperties, parse_http_date};
use super::connection::{SAS_TTL, sas_token, unix_now, url_encode};
use super::error::{Call, ServiceBusError};
use super::settle::ServiceBusSettle;
use super::{BODY_ENCODING_PROPERTY, MAX_LOCK, REASON_PROPERTY, SOURCE_MESSAGE_ID_PROPERTY};
use crate::error::Result;
use crate::redact::{Secret, redact};
use crate::source::Delivery;
use crate::telemetry::{ApiCall, StatsSlot};
use azure_core::headers::{HeaderName, Headers};
use azure_core::{HttpClient, Method, Request, StatusCode, Url};
use azure_messaging_servicebus::service_bus::{
    QueueClient, SendMessageOptions, SettableBrokerProperties,
};
use base64::Engine as _;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};

/// Slack on top of a request's own server-side timeout.
const REQUEST_SLACK: Duration = Duration::from_secs(20);
/// The timeout of settle calls.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A source's connection and settings, shared by its clones and deliveries.
pub(super) struct Shared {
    pub(super) http: Arc<dyn HttpClient>,
    /// `https://NS.servicebus.windows.net` (requests are routed by `http`).
    pub(super) base: String,
    pub(super) namespace: String,
    pub(super) entity: String,
    pub(super) key_name: String,
    pub(super) key: Secret,
    pub(super) endpoint: Option<String>,
    pub(super) dead_letter_queue: Option<String>,
    pub(super) wait: Duration,
    pub(super) configured_lock: Duration,
    pub(super) observed_lock: Mutex<Option<Duration>>,
    pub(super) receives_in_flight: usize,
    /// Where Service Bus calls are counted.
    pub(super) slot: StatsSlot,
}

/// What one HTTP exchange returned.
struct Reply {
    status: StatusCode,
    headers: Headers,
    body: Bytes,
}

impl Shared {
    /// The lock duration observed on received messages, or the configured one.
    pub(super) fn lock_duration(&self) -> Duration {
        self.observed_lock
            .lock()
            .ok()
            .and_then(|l| *l)
            .unwrap_or(self.configured_lock)
    }

    fn entity_uri(&self, entity: &str) -> String {
        format!("{}/{entity}", self.base)
    }

    fn at(&self, what: &str, entity: &str) -> Call {
        Call {
            what: what.to_owned(),
            namespace: self.namespace.clone(),
            entity: entity.to_owned(),
        }
    }

    /// Sends one signed request (SAS scoped to `entity`), with a time limit.
    async fn call(
        &self,
        what: &str,
        method: Method,
        url: &str,
        entity: &str,
        body: Option<Bytes>,
        limit: Duration,
    ) -> Result<Reply> {
        let url = Url::parse(url).map_err(|e| ServiceBusError::BadUrl {
            what: what.to_owned(),
            cause: e.to_string(),
        })?;
        let token = sas_token(
            &self.entity_uri(entity),
            &self.key_name,
            &self.key,
            unix_now() + SAS_TTL.as_secs(),
        )?;
        let mut request = Request::new(url, method);
        request.insert_header(azure_core::headers::AUTHORIZATION, token);
        match body {
            Some(b) => {
                request.insert_header(azure_core::headers::CONTENT_LENGTH, b.len().to_string());
                request.set_body(b);
            }
            None => {
                request.insert_header(azure_core::headers::CONTENT_LENGTH, "0");
                request.set_body(azure_core::EMPTY_BODY);
            }
        }
        let exchange = async {
            let response = self.http.execute_request(&request).await?;
            let (status, headers, body) = response.deconstruct();
            let body = body.collect().await?;
            azure_core::Result::Ok(Reply {
                status,
                headers,
                body,
            })
        };
        match tokio::time::timeout(limit, exchange).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => Err(ServiceBusError::Unreachable {
                call: self.at(what, entity),
                cause: redact(&e.to_string()),
            }
            .into()),
            Err(_) => Err(ServiceBusError::NoAnswer {
                call: self.at(what, entity),
                limit,
            }
            .into()),
        }
    }

    /// The one place an unexpected HTTP status becomes an error.
    fn status_error(
        &self,
        what: &str,
        entity: &str,
        reply: &Reply,
        on_lock: bool,
    ) -> ServiceBusError {
        ServiceBusError::status(
            self.at(what, entity),
            u16::from(reply.status),
            &self.key_name,
            on_lock,
            &reply.body,
        )
    }

    /// One peek-lock; `None` when nothing arrived within `timeout_secs`.
    pub(super) async fn peek_lock(self: &Arc<Self>, timeout_secs: u64) -> Result<Option<Delivery>> {
        let url = format!(
            "{}/messages/head?timeout={timeout_secs}",
            self.entity_uri(&self.entity)
        );
        self.slot.count_api_call(ApiCall::ServiceBusPeekLock);
        let reply = self
            .call(
                "peek-lock",
                Method::Post,
                &url,
                &self.entity,
                None,
                Duration::from_secs(timeout_secs) + REQUEST_SLACK,
            )
            .await?;
        let received_at = Instant::now();
        match u16::from(reply.status) {
            204 => Ok(None),
            200 | 201 => Ok(Some(self.delivery(reply, received_at))),
            _ => Err(self
                .status_error("peek-lock", &self.entity, &reply, false)
                .into()),
        }
    }

    /// Turns a peek-locked message into a delivery. Never fails: a message
    /// whose lock cannot be located is still handed out (its body reaches the
    /// audit), and its settle calls report why they cannot work.
    fn delivery(self: &Arc<Self>, reply: Reply, received_at: Instant) -> Delivery {
        let header = |name: &'static str| {
            reply
                .headers
                .get_optional_str(&HeaderName::from_static(name))
        };
        let props = header("brokerproperties")
            .map(BrokerProperties::parse)
            .unwrap_or_default();
        // Lock duration from the server's own clock: LockedUntilUtc - Date.
        // Both have whole seconds, so this may come out a second short when a
        // second boundary passed between locking and answering: renewals then
        // come early, never late.
        let lock_for = match (
            props.locked_until.as_deref().and_then(parse_http_date),
            header("date").and_then(parse_http_date),
        ) {
            (Some(until), Some(now)) if until > now => {
                let observed = Duration::from_secs((until - now) as u64).min(MAX_LOCK);
                if let Ok(mut o) = self.observed_lock.lock() {
                    if *o != Some(observed) {
                        if observed < self.configured_lock {
                            tracing::info!(
                                namespace = %self.namespace,
                                entity = %self.entity,
                                ?observed,
                                "the entity's lock duration is shorter than configured; using it"
                            );
                        }
                        *o = Some(observed);
                    }
                }
                observed
            }
            _ => self.lock_duration(),
        };
        let lock_url = self.lock_url(header("location"), &props);
        if lock_url.is_none() {
            tracing::error!(
                namespace = %self.namespace,
                entity = %self.entity,
                message_id = ?props.message_id,
                "peek-lock returned a message without a usable Location or LockToken; it cannot be \
                 settled and returns when its lock expires"
            );
        }
        let message_id = props
            .message_id
            .clone()
            .or_else(|| props.sequence_number.map(|n| n.to_string()))
            .unwrap_or_default();
        // A little early: the lock started before the response arrived.
        let deadline = received_at + lock_for.saturating_sub(Duration::from_millis(50));
        let body = reply.body;
        let settle = ServiceBusSettle {
            shared: Arc::clone(self),
            lock_url,
            message_id: message_id.clone(),
            body: self.dead_letter_queue.as_ref().map(|_| body.clone()),
            lock_for,
            deadline: Mutex::new(deadline),
            keeper: Mutex::new(None),
        };
        let mut d = Delivery::new(message_id, body, Arc::new(settle))
            .with_delivery_count(props.delivery_count.unwrap_or(1))
            .with_lease_deadline(deadline);
        if let Some(at) = props.enqueued_time.as_deref().and_then(parse_http_date) {
            if let Ok(secs) = u64::try_from(at) {
                d = d.with_first_seen(UNIX_EPOCH + Duration::from_secs(secs));
            }
        }
        if let Some(n) = props.sequence_number {
            d = d.with_attribute("SequenceNumber", n.to_string());
        }
        for (name, value) in [
            ("LockedUntilUtc", &props.locked_until),
            ("EnqueuedTimeUtc", &props.enqueued_time),
            ("Label", &props.label),
            ("CorrelationId", &props.correlation_id),
            ("DeadLetterSource", &props.dead_letter_source),
        ] {
            if let Some(v) = value {
                d = d.with_attribute(name, v.clone());
            }
        }
        for name in ["deadletterreason", "deadlettererrordescription"] {
            if let Some(v) = header(name) {
                let v = v.trim().trim_matches('"');
                let key = if name == "deadletterreason" {
                    "DeadLetterReason"
                } else {
                    "DeadLetterErrorDescription"
                };
                d = d.with_attribute(key, v);
            }
        }
        d
    }

    /// The lock URI: the `Location` header's path (which must lie under this
    /// entity; the host is always the namespace's, so a SAS token never goes
    /// elsewhere), or, without one, built from the documented parts
    /// `{entity}/messages/{SequenceNumber|MessageId}/{LockToken}`.
    fn lock_url(&self, location: Option<&str>, props: &BrokerProperties) -> Option<String> {
        let prefix = format!("/{}/messages/", self.entity);
        if let Some(path) = location
            .and_then(|l| Url::parse(l).ok())
            .map(|u| u.path().to_owned())
            .filter(|p| p.starts_with(&prefix) && p.len() > prefix.len())
        {
            return Some(format!("{}{path}", self.base));
        }
        let token = props.lock_token.as_deref().filter(|t| !t.is_empty())?;
        let reference = props
            .sequence_number
            .map(|n| n.to_string())
            .or_else(|| props.message_id.clone())?;
        Some(format!(
            "{}{prefix}{}/{}",
            self.base,
            url_encode(&reference),
            url_encode(token)
        ))
    }

    /// Complete, unlock or renew on a lock URI.
    pub(super) async fn on_lock(
        &self,
        what: &'static str,
        method: Method,
        url: &str,
    ) -> Result<()> {
        self.slot.count_api_call(match what {
            "complete" => ApiCall::ServiceBusComplete,
            "unlock" => ApiCall::ServiceBusUnlock,
            _ => ApiCall::ServiceBusRenewLock,
        });
        let reply = self
            .call(what, method, url, &self.entity, None, SETTLE_TIMEOUT)
            .await?;
        if reply.status.is_success() {
            Ok(())
        } else {
            Err(self.status_error(what, &self.entity, &reply, true).into())
        }
    }

    /// Sends `body` to the dead-letter `queue` with the reason and the
    /// original message id as custom properties.
    pub(super) async fn forward(
        &self,
        queue: &str,
        message_id: &str,
        body: &Bytes,
        reason: &str,
    ) -> Result<()> {
        self.slot.count_api_call(ApiCall::ServiceBusSend);
        let client = QueueClient::new(
            Arc::clone(&self.http),
            self.namespace.clone(),
            queue.to_owned(),
            self.key_name.clone(),
            azure_core::auth::Secret::new(self.key.expose().to_owned()),
        )
        .map_err(|_| ServiceBusError::ForwardClient)?;
        let mut properties = HashMap::new();
        properties.insert(REASON_PROPERTY.to_owned(), header_string(reason));
        properties.insert(
            SOURCE_MESSAGE_ID_PROPERTY.to_owned(),
            header_string(message_id),
        );
        let text = match std::str::from_utf8(body) {
            Ok(text) => text.to_owned(),
            Err(_) => {
                properties.insert(BODY_ENCODING_PROPERTY.to_owned(), header_string("base64"));
                base64::engine::general_purpose::STANDARD.encode(body)
            }
        };
        let options = SendMessageOptions {
            content_type: None,
            broker_properties: Some(SettableBrokerProperties {
                message_id: Some(message_id.to_owned()).filter(|m| !m.is_empty()),
                ..Default::default()
            }),
            custom_properties: Some(properties),
        };
        let sent =
            tokio::time::timeout(SETTLE_TIMEOUT, client.send_message(&text, Some(options))).await;
        match sent {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(ServiceBusError::Forward {
                queue: queue.to_owned(),
                namespace: self.namespace.clone(),
                status: e.as_http_error().map(|h| u16::from(h.status())),
            }
            .into()),
            Err(_) => Err(ServiceBusError::ForwardNoAnswer {
                queue: queue.to_owned(),
                namespace: self.namespace.clone(),
                limit: SETTLE_TIMEOUT,
            }
            .into()),
        }
    }
}

/// A custom property value as Service Bus REST expects it in a header: a
/// quoted string, printable ASCII only, bounded.
fn header_string(text: &str) -> String {
    let clean: String = text
        .chars()
        .take(1024)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                if c == '"' || c == '\\' { '\'' } else { c }
            } else {
                '?'
            }
        })
        .collect();
    format!("\"{clean}\"")
}

#[cfg(test)]
mod tests {
    use super::super::ServiceBusSourceBuilder;
    use super::*;

    #[test]
    fn the_lock_uri_stays_on_the_namespace_and_under_the_entity() {
        let source = ServiceBusSourceBuilder::new()
            .with_namespace("ns")
            .with_shared_access_key("r", Secret::new("k"))
            .with_subscription("t", "s")
            .build()
            .unwrap();
        let props = BrokerProperties::parse(
            r#"{"LockToken":"lt-1","SequenceNumber":42,"MessageId":"m/1"}"#,
        );
        let lock = |location: Option<&str>| source.shared.lock_url(location, &props);
        let base = "https://ns.servicebus.windows.net/t/subscriptions/s/messages";
        // The Location header's path, on the namespace's own host.
        assert_eq!(
            lock(Some(
                "https://elsewhere.example/t/subscriptions/s/messages/m1/lt-1"
            )),
            Some(format!("{base}/m1/lt-1"))
        );
        // A Location outside the entity is ignored: built from the documented parts.
        for bad in [
            Some("https://ns.servicebus.windows.net/other/messages/m1/lt-1"),
            Some("not a url"),
            None,
        ] {
            assert_eq!(lock(bad), Some(format!("{base}/42/lt-1")), "{bad:?}");
        }
        let no_token = BrokerProperties::parse(r#"{"MessageId":"m1"}"#);
        assert_eq!(source.shared.lock_url(None, &no_token), None);
    }
}
