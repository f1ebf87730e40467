//! JSON masking in place: secret-named fields and values named by a sibling
//! field are masked, every other string and key goes through [`redact`].

use super::names::{
    Class, SIBLING_KEYS, SIBLING_VALUES, classify, inert, masks, norm_in, sibling_names_secret,
};
use super::{REDACTED, redact, redact_cow};
use serde_json::{Map, Value};
use std::borrow::Cow;

/// Masks `value` in place for a log or audit record (a dead-letter body, an
/// audit field, a CLI's JSON output): every string field whose name is
/// secret by the table of [`is_secret_name`](super::is_secret_name) becomes
/// `"[REDACTED]"` (also numbers under such names, the strings of an array
/// under one, and the `"value"` of an ARM parameter
/// `{"adminPassword": {"value": "x"}}`); a
/// `"Value"`/`"ParameterValue"`/`"value"` named secret by its sibling
/// (`{"Key": "Password", "Value": "x"}`, `{"keyName": "key1", "value": "x"}`)
/// too; every other string, and every object key, goes through [`redact`],
/// which also catches secrets inside strings holding JSON or an env dump.
/// Identifiers (`KeyId`, `SecretId`, ARNs) are kept.
pub fn redact_json(value: &mut Value) {
    match value {
        Value::String(s) => redact_string(s),
        Value::Array(items) => items.iter_mut().for_each(redact_json),
        Value::Object(map) => redact_object(map),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// [`redact`] in place, without a copy when nothing is masked.
fn redact_string(s: &mut String) {
    let masked = match redact_cow(s) {
        Cow::Owned(masked) => masked,
        Cow::Borrowed(_) => return,
    };
    *s = masked;
}

/// Masks a string unless it is [`inert`].
fn mask_string(s: &mut String) {
    if !inert(s) {
        REDACTED.clone_into(s);
    }
}

fn redact_object(map: &mut Map<String, Value>) {
    let sibling = map.iter().any(|(k, v)| {
        norm_in(k.as_bytes(), SIBLING_KEYS)
            && v.as_str()
                .is_some_and(|s| sibling_names_secret(k.as_bytes(), s))
    });
    for (key, v) in map.iter_mut() {
        let class = classify(key);
        let named_by_sibling = sibling && norm_in(key.as_bytes(), SIBLING_VALUES);
        match v {
            Value::String(s) => {
                if masks(key, class, s) || named_by_sibling {
                    mask_string(s);
                } else {
                    redact_string(s);
                }
            }
            Value::Number(_) if class == Class::Secret || named_by_sibling => {
                *v = Value::String(REDACTED.to_owned());
            }
            Value::Array(items) if class == Class::Secret => {
                for item in items {
                    match item {
                        Value::String(s) => mask_string(s),
                        other => redact_json(other),
                    }
                }
            }
            Value::Object(inner) if class == Class::Secret => {
                for (k, inner_value) in inner.iter_mut() {
                    if let (true, Value::String(s)) =
                        (k.eq_ignore_ascii_case("value"), &mut *inner_value)
                    {
                        mask_string(s);
                    }
                }
                redact_object(inner);
            }
            other => redact_json(other),
        }
    }
    if map.keys().any(|k| matches!(redact_cow(k), Cow::Owned(_))) {
        let old = std::mem::take(map);
        for (k, v) in old {
            map.insert(redact(&k), v);
        }
    }
}
