//! Tests of JSON masking in place.

use crate::redact::{REDACTED, redact_json};

#[test]
fn redact_json_masks_fields_in_place() {
    let mut body = serde_json::json!({
        "SecretString": "{\"password\":\"p\"}",
        "KeyId": "1234abcd-12ab-34cd-56ef-1234567890ab",
        "SecretId": "prod/db",
        "password": 123456,
        "passwords": ["a", "b"],
        "adminPassword": {"value": "hunter22"},
        "Credentials": {"AccessKeyId": "ASIAY34FZKBOKMUTVV7A", "SecretAccessKey": "x", "Expiration": "2026"},
        "Tags": [{"Key": "Password", "Value": "hunter22"}, {"Key": "env", "Value": "prod"}],
        "keys": [{"keyName": "key1", "value": "abc"}],
        "log": "PRISMA_SECRET_KEY=abc",
        "url": "https://u:p@h/x",
        "MinimumPasswordLength": 14,
        "RequireSymbols": true,
        "token=abc": true,
        "private_key": "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n",
    });
    redact_json(&mut body);
    let again = {
        let mut b = body.clone();
        redact_json(&mut b);
        b
    };
    assert_eq!(again, body, "not idempotent");
    assert_eq!(
        body,
        serde_json::json!({
            "SecretString": REDACTED,
            "KeyId": "1234abcd-12ab-34cd-56ef-1234567890ab",
            "SecretId": "prod/db",
            "password": REDACTED,
            "passwords": [REDACTED, REDACTED],
            "adminPassword": {"value": REDACTED},
            "Credentials": {"AccessKeyId": "ASIA[REDACTED]", "SecretAccessKey": REDACTED, "Expiration": "2026"},
            "Tags": [{"Key": "Password", "Value": REDACTED}, {"Key": "env", "Value": "prod"}],
            "keys": [{"keyName": "key1", "value": REDACTED}],
            "log": "PRISMA_SECRET_KEY=[REDACTED]",
            "url": "https://u:[REDACTED]@h/x",
            "MinimumPasswordLength": 14,
            "RequireSymbols": true,
            "token=[REDACTED]": true,
            "private_key": REDACTED,
        })
    );
}
