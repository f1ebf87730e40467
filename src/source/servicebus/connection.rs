//! Service Bus credentials: the [`ConnectionString`] the Azure portal shows,
//! namespace names, and the Shared Access Signature tokens every request is
//! signed with.

use super::NAMESPACE_SUFFIX;
use super::error::ServiceBusError;
use crate::error::{Error, Result};
use crate::redact::Secret;
use base64::Engine as _;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a SAS token signed for one request stays valid.
pub(super) const SAS_TTL: Duration = Duration::from_secs(3600);

/// The parts of a Service Bus connection string
/// (`Endpoint=sb://NS.servicebus.windows.net/;SharedAccessKeyName=...;SharedAccessKey=...[;EntityPath=...]`).
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionString {
    /// The namespace name (`NS` of `NS.servicebus.windows.net`).
    pub namespace: String,
    /// The shared access policy name.
    pub key_name: String,
    /// The shared access key.
    pub key: Secret,
    /// The entity (queue or topic) the string is scoped to, if any.
    pub entity_path: Option<String>,
}

impl fmt::Debug for ConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionString")
            .field("namespace", &self.namespace)
            .field("key_name", &self.key_name)
            .field("key", &self.key)
            .field("entity_path", &self.entity_path)
            .finish()
    }
}

impl ConnectionString {
    /// Parses a connection string as the Azure portal shows it. Keys are
    /// case-insensitive, values may contain `=` (base64 keys), unknown keys are
    /// ignored. Errors never repeat the string (it holds the key).
    pub fn parse(text: &str) -> Result<ConnectionString> {
        Self::parse_text(text).map_err(Error::Config)
    }

    /// [`parse`](Self::parse), with the problem as text naming
    /// `SERVICEBUS_CONNECTION_STRING` (never its value).
    pub(super) fn parse_text(text: &str) -> std::result::Result<ConnectionString, String> {
        let mut endpoint = None;
        let mut key_name = None;
        let mut key = None;
        let mut entity_path = None;
        for part in text.trim().split(';') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let Some((k, v)) = part.split_once('=') else {
                return Err("SERVICEBUS_CONNECTION_STRING: every part must be Key=Value".into());
            };
            let v = v.trim();
            match k.trim().to_ascii_lowercase().as_str() {
                "endpoint" => endpoint = Some(v.to_owned()),
                "sharedaccesskeyname" => key_name = Some(v.to_owned()),
                "sharedaccesskey" => key = Some(Secret::new(v)),
                "entitypath" if !v.is_empty() => entity_path = Some(v.to_owned()),
                "sharedaccesssignature" => {
                    return Err(
                        "SERVICEBUS_CONNECTION_STRING: SharedAccessSignature connection strings \
                         are not supported; give SharedAccessKeyName and SharedAccessKey"
                            .into(),
                    );
                }
                _ => {}
            }
        }
        let endpoint = endpoint.ok_or(
            "SERVICEBUS_CONNECTION_STRING has no Endpoint=sb://NAMESPACE.servicebus.windows.net/",
        )?;
        let host = endpoint
            .split_once("://")
            .map_or(endpoint.as_str(), |(_, rest)| rest)
            .trim_end_matches('/');
        let namespace = namespace_name(host)
            .map_err(|e| format!("SERVICEBUS_CONNECTION_STRING Endpoint: {e}"))?;
        Ok(ConnectionString {
            namespace,
            key_name: key_name.ok_or("SERVICEBUS_CONNECTION_STRING has no SharedAccessKeyName")?,
            key: key.ok_or("SERVICEBUS_CONNECTION_STRING has no SharedAccessKey")?,
            entity_path,
        })
    }
}

/// `NS`, `NS.servicebus.windows.net` or `sb://NS.servicebus.windows.net/` → `NS`.
pub(super) fn namespace_name(text: &str) -> std::result::Result<String, String> {
    let host = text
        .trim()
        .split_once("://")
        .map_or(text.trim(), |(_, rest)| rest)
        .trim_end_matches('/')
        .to_ascii_lowercase();
    let name = host.strip_suffix(NAMESPACE_SUFFIX).unwrap_or(&host);
    let valid = !name.is_empty()
        && name.len() <= 50
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && name.starts_with(|c: char| c.is_ascii_alphabetic());
    if valid {
        Ok(name.to_owned())
    } else {
        Err(format!(
            "{host:?} is not a Service Bus namespace (NAME or NAME{NAMESPACE_SUFFIX})"
        ))
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub(super) fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3 / 2);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A SAS token for `resource` (a URI), valid until `expiry` (Unix seconds):
/// `SharedAccessSignature sr={urlencoded resource}&sig={urlencoded
/// base64(HMAC-SHA256(key, sr + "\n" + expiry))}&se={expiry}&skn={key name}`.
pub(super) fn sas_token(
    resource: &str,
    key_name: &str,
    key: &Secret,
    expiry: u64,
) -> std::result::Result<String, ServiceBusError> {
    let sr = url_encode(resource);
    let to_sign = format!("{sr}\n{expiry}");
    // azure_core's hmac takes a base64 key and decodes it; Service Bus signs
    // with the key's text as bytes.
    let encoded_key = azure_core::auth::Secret::new(
        base64::engine::general_purpose::STANDARD.encode(key.expose()),
    );
    let sig = azure_core::hmac::hmac_sha256(&to_sign, &encoded_key)
        .map_err(|_| ServiceBusError::Signing)?;
    Ok(format!(
        "SharedAccessSignature sr={sr}&sig={}&se={expiry}&skn={}",
        url_encode(&sig),
        url_encode(key_name)
    ))
}

/// Seconds since the Unix epoch, by the local clock.
pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "c2VjcmV0LWtleS12YWx1ZS1mb3ItdGVzdHM9PQ==";

    #[test]
    fn connection_strings_parse_with_and_without_entity() {
        let cs = ConnectionString::parse(&format!(
            "Endpoint=sb://Contoso-Alerts.servicebus.windows.net/;SharedAccessKeyName=Listen;SharedAccessKey={KEY};EntityPath=prisma"
        ))
        .unwrap();
        assert_eq!(cs.namespace, "contoso-alerts");
        assert_eq!(cs.key_name, "Listen");
        assert_eq!(cs.key.expose(), KEY);
        assert_eq!(cs.entity_path.as_deref(), Some("prisma"));
        let text = format!("{cs:?}");
        assert!(!text.contains(KEY), "{text}");
        let cs = ConnectionString::parse(&format!(
            " endpoint=sb://ns1.servicebus.windows.net ; sharedaccesskeyname=r ; sharedaccesskey={KEY} ; "
        ))
        .unwrap();
        assert_eq!((cs.namespace.as_str(), cs.entity_path), ("ns1", None));
    }

    #[test]
    fn bad_connection_strings_are_clear_and_keep_the_key_out() {
        for bad in [
            format!("SharedAccessKeyName=r;SharedAccessKey={KEY}"),
            format!("Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKey={KEY}"),
            "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=r".to_owned(),
            format!("Endpoint=sb://bad_ns!/;SharedAccessKeyName=r;SharedAccessKey={KEY}"),
            format!("garbage;SharedAccessKey={KEY}"),
            "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessSignature=SharedAccessSignature sr=x&sig=abc".to_owned(),
        ] {
            let e = ConnectionString::parse(&bad).expect_err(&bad);
            let text = e.to_string();
            assert!(!text.contains(KEY) && !text.contains("sig=abc"), "{text}");
            assert!(text.contains("SERVICEBUS_CONNECTION_STRING"), "{text}");
        }
    }

    #[test]
    fn sas_tokens_follow_the_documented_scheme() {
        // HMAC-SHA256 over "urlencoded(resource)\nexpiry", keyed by the key's text.
        let token = sas_token(
            "https://ns.servicebus.windows.net/q",
            "RootManageSharedAccessKey",
            &Secret::new("key"),
            1_700_000_000,
        )
        .unwrap();
        let sr = "https%3A%2F%2Fns.servicebus.windows.net%2Fq";
        assert!(
            token.starts_with(&format!("SharedAccessSignature sr={sr}&sig=")),
            "{token}"
        );
        assert!(token.ends_with("&se=1700000000&skn=RootManageSharedAccessKey"));
        // Reference value computed independently (Python hmac/hashlib).
        let sig = token
            .split("&sig=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap();
        assert_eq!(sig, "qBPJfuerbE2MYvoiKuCb4gatEDtkALQzqq85wqO3aEE%3D");
    }
}
