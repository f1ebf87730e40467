//! Tests of the shape scanners: PEM keys, URL userinfo, base64 blobs, AWS
//! validation errors.

use super::{argv, r};
use crate::redact::REDACTED;

#[test]
fn gcp_service_account_json() {
    let sa = r#"{"type": "service_account", "project_id": "p", "private_key_id": "0123abcd", "private_key": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----\n", "client_email": "sa@p.iam.gserviceaccount.com"}"#;
    assert_eq!(
        r(sa),
        r#"{"type": "service_account", "project_id": "p", "private_key_id": "0123abcd", "private_key": "[REDACTED]", "client_email": "sa@p.iam.gserviceaccount.com"}"#
    );
}

#[test]
fn pem_blocks() {
    let raw = "key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA0Z3VS5JJcds3\nxfn/ygWyF8PbnGy0AHB7MhgHcTz6\n-----END RSA PRIVATE KEY-----\ndone";
    assert_eq!(r(raw), "key:\n[REDACTED]\ndone");
    let escaped = r"x -----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY----- y";
    assert_eq!(r(escaped), "x [REDACTED] y");
    // Cut at the end (a tail limit) or at the front.
    assert_eq!(
        r("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg4LVWM9nuwNSk"),
        REDACTED
    );
    assert_eq!(
        r("[…truncated…]\nMHcCAQEEIBkg4LVWM9nuwNSk\nAoGBAKt\n-----END PRIVATE KEY-----\nok"),
        "[…truncated…]\n[REDACTED]\nok"
    );
    // Certificates and public keys are not secrets.
    let cert = "-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIE\n-----END CERTIFICATE-----";
    assert_eq!(r(cert), cert);
}

#[test]
fn url_userinfo() {
    assert_eq!(
        r("cloning https://user:pa55@github.com/o/r.git"),
        "cloning https://user:[REDACTED]@github.com/o/r.git"
    );
    assert_eq!(
        r("redis://:pa55@cache:6379/0"),
        "redis://:[REDACTED]@cache:6379/0"
    );
    assert_eq!(
        r("mongodb+srv://u:p@ss@c.mongodb.net/db"),
        "mongodb+srv://u:[REDACTED]@c.mongodb.net/db"
    );
    assert_eq!(
        r("https://ghp_abcdefghijklmnop1234@github.com/o/r"),
        "https://[REDACTED]@github.com/o/r"
    );
    for plain in [
        "https://host:443/path?a=b@c",
        "ssh://git@github.com/o/r",
        "mail bob@example.com about https://example.com",
        "s3://bucket/a:b@c",
    ] {
        assert_eq!(r(plain), plain);
    }
}

#[test]
fn ecr_login_passwords() {
    let blob: String = "eyJwYXlsb2FkIjoiQ2tBNW".repeat(20);
    assert!(blob.len() >= 200);
    assert_eq!(r(&format!("{blob}\n")), format!("{REDACTED}\n"));
    let shown = argv(&[
        "docker",
        "login",
        "--username",
        "AWS",
        "-p",
        "hunter22",
        "1.dkr.ecr.us-east-1.amazonaws.com",
    ]);
    assert_eq!(shown[5], REDACTED);
    assert_eq!(shown[6], "1.dkr.ecr.us-east-1.amazonaws.com");
    assert_eq!(
        argv(&["docker", "login", "-phunter22"])[2],
        format!("-p{REDACTED}")
    );
    assert_eq!(
        argv(&["docker", "login", "--password", "hunter22", "r"])[3],
        REDACTED
    );
    // --password-stdin is a flag: the registry after it stays.
    assert_eq!(
        argv(&["docker", "login", "--password-stdin", "r.example"])[3],
        "r.example"
    );
    assert_eq!(
        r("docker login -u AWS -p hunter22 1.dkr.ecr.us-east-1.amazonaws.com"),
        "docker login -u AWS -p [REDACTED] 1.dkr.ecr.us-east-1.amazonaws.com"
    );
    // `-p` elsewhere is a port or a profile.
    assert_eq!(
        argv(&["docker", "run", "-p", "8080:80", "img"])[3],
        "8080:80"
    );
    // An Azure account key in table output.
    let key = format!("{}==", "Ab1+".repeat(21) + "Cd");
    assert_eq!(key.len(), 88);
    assert_eq!(
        r(&format!("key1  FULL  {key}")),
        format!("key1  FULL  {REDACTED}")
    );
}

#[test]
fn aws_validation_errors_quoting_a_value() {
    assert_eq!(
        r(
            "An error occurred (ValidationException): 1 validation error detected: Value 'hunter 22' at 'masterUserPassword' failed to satisfy constraint"
        ),
        "An error occurred (ValidationException): 1 validation error detected: Value '[REDACTED]' at 'masterUserPassword' failed to satisfy constraint"
    );
    let plain = "Value 'x y' at 'dBInstanceIdentifier' failed to satisfy constraint";
    assert_eq!(r(plain), plain);
}
