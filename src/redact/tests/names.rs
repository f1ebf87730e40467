//! Tests of the secret-name table.

use crate::redact::is_secret_name;

#[test]
fn secret_names_table() {
    for name in [
        "PRISMA_SECRET_KEY",
        "AUTH_KEY",
        "SB_QUEUE_KEY",
        "AZURE_CLIENT_SECRET",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "--master-user-password",
        "clientSecret",
        "SharedAccessKey",
        "x-redlock-auth",
    ] {
        assert!(is_secret_name(name), "{name}");
    }
    for name in [
        "KeyId",
        "KeyName",
        "SecretId",
        "SecretARN",
        "--kms-key-id",
        "--key-name",
        "--key-spec",
        "--sse-kms-key-id",
        "SharedAccessKeyName",
        "NextToken",
        "HttpTokens",
        "MinimumPasswordLength",
        "PasswordLastUsed",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "Key",
        "S3Key",
        "PublicKey",
        "PublicKeyMaterial",
        "SSH_AUTH_SOCK",
        "secretsmanager",
    ] {
        assert!(!is_secret_name(name), "{name}");
    }
}
