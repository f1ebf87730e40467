//! Tests of the redaction as a whole: `Secret`, ordinary text left alone and
//! borrowed, idempotence; one file per submodule for the rest.

mod argv;
mod json;
mod names;
mod scan;
mod shapes;

use super::{Secret, redact, redact_argv, redact_cow};
use std::borrow::Cow;

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

/// `text` redacted, checked to be a fixed point of [`redact`].
fn r(text: &str) -> String {
    let once = redact(text);
    assert_eq!(redact(&once), once, "not idempotent for {text:?}");
    once
}

fn argv(args: &[&str]) -> Vec<String> {
    let shown = redact_argv(args);
    assert_eq!(redact_argv(&shown), shown, "argv not idempotent");
    shown
}

#[test]
fn secret_never_prints() {
    let s = Secret::new("hunter2");
    assert_eq!(format!("{s:?} {s}"), "[REDACTED] [REDACTED]");
    assert_eq!(s.expose(), "hunter2");
}

#[test]
fn ordinary_text_is_unchanged() {
    for text in [
        "",
        "An error occurred (NoSuchEntity) when calling the GetUser operation: The user with name bob cannot be found.",
        "The security token included in the request is invalid.",
        "arn:aws:iam::123456789012:policy/X attached to user U",
        "usage: aws [options] <command> <subcommand> [<subcommand> ...]",
        "ünïcode text, signature ok, password policy updated",
        "An error occurred (AccessDenied) when calling the PutUserPolicy operation: User: arn:aws:iam::123456789012:user/x is not authorized to perform: iam:PutUserPolicy on resource: user x because no identity-based policy allows the iam:PutUserPolicy action",
        "An error occurred (InvalidClientTokenId) when calling the GetCallerIdentity operation: The security token included in the request is invalid.",
        "An error occurred (ExpiredToken) when calling the GetCallerIdentity operation: The security token included in the request is expired",
        "An error occurred (SignatureDoesNotMatch) when calling the ListBuckets operation: The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.",
        "An error occurred (ResourceNotFoundException) when calling the RotateSecret operation: Secrets Manager can't find the specified secret.",
        "An error occurred (NotFoundException) when calling the DescribeKey operation: Key 'arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab' does not exist",
        "Unable to locate credentials. You can configure credentials by running \"aws configure\".",
        "Partial credentials found in env, missing: AWS_SECRET_ACCESS_KEY",
        "ERROR: (gcloud.compute.firewall-rules.update) Could not fetch resource:\n - The resource 'projects/p/global/firewalls/x' was not found",
        "ERROR: (gcloud.secrets.versions.access) PERMISSION_DENIED: Permission 'secretmanager.versions.access' denied on resource 'projects/p/secrets/s'",
        "(AuthorizationFailed) The client 'abc' with object id 'def' does not have authorization to perform action 'Microsoft.Storage/storageAccounts/listKeys/action' over scope '/subscriptions/0000/resourceGroups/rg' or the scope is invalid.\nCode: AuthorizationFailed",
        r#"{"KeyMetadata": {"KeyId": "1234abcd-12ab-34cd-56ef-1234567890ab", "Arn": "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab", "KeyState": "Enabled", "KeyUsage": "ENCRYPT_DECRYPT", "KeySpec": "SYMMETRIC_DEFAULT"}}"#,
        r#"{"PasswordPolicy": {"MinimumPasswordLength": 14, "RequireSymbols": true, "AllowUsersToChangePassword": true, "ExpirePasswords": true, "MaxPasswordAge": 90, "PasswordReusePrevention": 24, "HardExpiry": false}}"#,
        r#"{"AccessKeyMetadata": [{"UserName": "bob", "Status": "Active", "CreateDate": "2024-01-01T00:00:00Z"}], "IsTruncated": false}"#,
        r#"{"ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf", "Name": "prod/db", "SecretVersionsToStages": {"v1": ["AWSCURRENT"]}, "RotationEnabled": true, "NextRotationDate": "2025-01-01"}"#,
        r#"{"MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 2}, "KeyName": "prod", "SecurityGroups": [{"GroupId": "sg-0123456789abcdef0", "GroupName": "web"}]}"#,
        r#"{"authorizationType": "NONE", "apiKeyRequired": false, "token_type": "Bearer", "expires_in": 3600}"#,
        "Value null at 'password' failed to satisfy constraint",
    ] {
        assert_eq!(r(text), text);
        assert!(matches!(redact_cow(text), Cow::Borrowed(_)), "{text}");
    }
}

#[test]
fn a_mask_that_splits_a_token_is_still_idempotent() {
    // The first pass reads `KEY-----Bearer` as one token.
    let out = r("-----END PRIVATE KEY-----Bearer abcdefgh1");
    assert!(!out.contains("abcdefgh1"), "{out}");
}

#[test]
fn redaction_is_idempotent() {
    let once = redact(&format!("SecretAccessKey={SECRET} AKIAIOSFODNN7EXAMPLE"));
    assert_eq!(redact(&once), once);
}

#[test]
fn large_output_without_secrets_is_borrowed() {
    let mut big = String::new();
    for i in 0..2000 {
        big.push_str(&format!(
            "{{\"InstanceId\": \"i-{i:08x}\", \"KeyName\": \"prod\", \"Tags\": [{{\"Key\": \"Name\", \"Value\": \"web {i}\"}}]}},\n"
        ));
    }
    assert!(matches!(redact_cow(&big), Cow::Borrowed(_)));
}

proptest::proptest! {
    #[test]
    fn redact_is_idempotent_and_total(parts in proptest::collection::vec(
        proptest::sample::select(vec![
            "PRISMA_SECRET_KEY=", "\"password\": ", "'", "\"", "\\\"", "\\n", "\n", " ", ":", "=",
            "--secret-string ", "https://", "u:p@h", "-----BEGIN PRIVATE KEY-----", "-----END PRIVATE KEY-----",
            "AKIAIOSFODNN7EXAMPLE", "eyJa.eyJb.c", "Bearer abcdefgh1", "sig=x&", "Key=Password,Value=", "{", "}",
            "[REDACTED]", "abc", "ü", "Value 'x' at 'password'", "SharedAccessKey=", ";", ",",
            "\0", "export ", "<Password>", "</Password>", "docker login ", "-p ", "SecureString ", "--value ",
            "\"keyName\": \"key1\", ", "\"value\": ", "Authorization: ", "AWS4-HMAC-SHA256 ", "b'",
            "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0NTY3ODk=",
            "SB_QUEUE_KEY=", "PWD=/x", "Ab1+Ab1+Ab1+Ab1+Ab1+Ab1+Ab1+Ab1+Ab1+Ab1+Ab1+Ab1+Ab1+Ab1+Ab1+Ab1+Ab1+Ab1+Ab1+Ab1+Ab1+Cd==",
        ]), 0..24)) {
        let text: String = parts.concat();
        let once = redact(&text);
        proptest::prop_assert_eq!(redact(&once), once);
        let argv_once = redact_argv(&parts);
        proptest::prop_assert_eq!(redact_argv(&argv_once), argv_once);
    }
}
