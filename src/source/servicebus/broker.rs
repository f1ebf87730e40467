//! What a peek-locked message says about itself: its `BrokerProperties`
//! header, read leniently, and the HTTP dates in it.

/// Parses an RFC 1123 date (`Sun, 06 Nov 1994 08:49:37 GMT`) to Unix seconds.
pub(super) fn parse_http_date(text: &str) -> Option<i64> {
    azure_core::date::parse_rfc1123(text.trim())
        .ok()
        .map(|t| t.unix_timestamp())
}

/// `BrokerProperties`, read leniently: every field optional, numbers as
/// numbers or strings, unknown fields ignored.
#[derive(Debug, Default)]
pub(super) struct BrokerProperties {
    pub(super) delivery_count: Option<u32>,
    pub(super) lock_token: Option<String>,
    pub(super) locked_until: Option<String>,
    pub(super) message_id: Option<String>,
    pub(super) sequence_number: Option<i64>,
    pub(super) enqueued_time: Option<String>,
    pub(super) label: Option<String>,
    pub(super) correlation_id: Option<String>,
    pub(super) dead_letter_source: Option<String>,
}

impl BrokerProperties {
    /// Reads the header's JSON; anything unreadable gives the defaults.
    pub(super) fn parse(text: &str) -> BrokerProperties {
        let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(text)
        else {
            tracing::warn!("unparsable BrokerProperties header; using defaults");
            return BrokerProperties::default();
        };
        let string = |k: &str| match map.get(k) {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        let number = |k: &str| match map.get(k) {
            Some(serde_json::Value::Number(n)) => n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64)),
            Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        };
        BrokerProperties {
            delivery_count: number("DeliveryCount").and_then(|n| u32::try_from(n).ok()),
            lock_token: string("LockToken"),
            locked_until: string("LockedUntilUtc"),
            message_id: string("MessageId"),
            sequence_number: number("SequenceNumber"),
            enqueued_time: string("EnqueuedTimeUtc"),
            label: string("Label"),
            correlation_id: string("CorrelationId"),
            dead_letter_source: string("DeadLetterSource"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_properties_are_read_leniently() {
        let p = BrokerProperties::parse(
            r#"{"DeliveryCount":3,"EnqueuedSequenceNumber":56294995342131200,"LockToken":"7da9cfd5","LockedUntilUtc":"Fri, 18 Jun 2021 20:28:42 GMT","MessageId":"m1","SequenceNumber":"56294995342131201","State":"Active","Extra":{"x":1}}"#,
        );
        assert_eq!(p.delivery_count, Some(3));
        assert_eq!(p.sequence_number, Some(56_294_995_342_131_201));
        assert_eq!(p.lock_token.as_deref(), Some("7da9cfd5"));
        assert_eq!(
            parse_http_date(p.locked_until.as_deref().unwrap()),
            Some(1_624_048_122)
        );
        let p = BrokerProperties::parse("not json");
        assert_eq!(p.delivery_count, None);
    }
}
