//! Tests of argv masking.

use super::{argv, r};
use crate::redact::{REDACTED, redact_argv};

#[test]
fn argv_secrets_are_masked_for_the_record() {
    let argv: Vec<String> = [
        "aws",
        "rds",
        "modify-db-instance",
        "--db-instance-identifier",
        "db1",
        "--master-user-password",
        "hunter22",
        "--client-secret=abc123",
        "--apply-immediately",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let shown = redact_argv(&argv);
    assert_eq!(shown[4], "db1");
    assert_eq!(shown[6], REDACTED);
    assert_eq!(shown[7], format!("--client-secret={REDACTED}"));
    assert_eq!(shown[8], "--apply-immediately");
    assert!(!shown.join(" ").contains("hunter22"));
}

#[test]
fn secret_options_in_argv() {
    for option in [
        "--master-user-password",
        "--secret-string",
        "--new-password",
        "--old-password",
        "--password",
        "--admin-password",
        "--client-secret",
        "--sas-token",
        "--account-key",
        "--connection-string",
        "--private-key",
        "--secret-binary",
        "--auth-token",
        "--db-password",
        "--credentials",
        "--token-code",
        "--storage-key",
    ] {
        let shown = argv(&[
            "aws",
            "x",
            "y",
            option,
            "hunter22Xy",
            "--region",
            "eu-west-1",
        ]);
        assert_eq!(shown[4], REDACTED, "{option}");
        assert_eq!(shown[6], "eu-west-1", "{option}");
        let shown = argv(&["aws", "x", &format!("{option}=hunter22Xy")]);
        assert_eq!(shown[2], format!("{option}={REDACTED}"), "{option}");
        // The same in a logged command line.
        assert_eq!(
            r(&format!("aws x {option} 'hunter22' --region eu")),
            format!("aws x {option} '{REDACTED}' --region eu"),
            "{option}"
        );
        assert_eq!(
            r(&format!("aws x {option}=hunter22Xy --region eu")),
            format!("aws x {option}={REDACTED} --region eu"),
            "{option}"
        );
    }
    assert_eq!(
        r("aws x --secret-string 'two words' --region eu"),
        "aws x --secret-string '[REDACTED]' --region eu"
    );
    // A JSON secret string is masked whole.
    let shown = argv(&[
        "aws",
        "secretsmanager",
        "put-secret-value",
        "--secret-id",
        "prod/db",
        "--secret-string",
        r#"{"password":"p"}"#,
    ]);
    assert_eq!(shown[4], "prod/db");
    assert_eq!(shown[6], REDACTED);
    // Debug-printed argv.
    assert_eq!(
        r(r#"["aws", "--master-user-password", "hunter22", "--region", "eu"]"#),
        r#"["aws", "--master-user-password", "[REDACTED]", "--region", "eu"]"#
    );
    // SSM SecureString values, and values named by --name.
    let shown = argv(&[
        "aws",
        "ssm",
        "put-parameter",
        "--name",
        "/app/url",
        "--type",
        "SecureString",
        "--value",
        "hunter22",
    ]);
    assert_eq!(shown[8], REDACTED);
    let shown = argv(&[
        "aws",
        "ssm",
        "put-parameter",
        "--name",
        "/prod/db/password",
        "--value",
        "hunter22",
    ]);
    assert_eq!(shown[6], REDACTED);
    let shown = argv(&[
        "aws",
        "ssm",
        "put-parameter",
        "--name",
        "/app/url",
        "--value",
        "https://x",
    ]);
    assert_eq!(shown[6], "https://x");
    assert_eq!(
        r("aws ssm put-parameter --name /app/url --type SecureString --value hunter22"),
        "aws ssm put-parameter --name /app/url --type SecureString --value [REDACTED]"
    );
    // --parameters / --attributes JSON: the JSON rules apply inside.
    let shown = argv(&[
        "az",
        "deployment",
        "group",
        "create",
        "--parameters",
        r#"{"adminPassword": {"value": "hunter22"}, "sku": {"value": "S1"}}"#,
    ]);
    assert_eq!(shown[4], "--parameters");
    assert_eq!(
        shown[5],
        r#"{"adminPassword": {"value": "[REDACTED]"}, "sku": {"value": "S1"}}"#
    );
    let shown = argv(&[
        "aws",
        "x",
        "--attributes",
        r#"{"KmsMasterKeyId": "alias/aws/sqs", "password": "p"}"#,
    ]);
    assert_eq!(
        shown[3],
        r#"{"KmsMasterKeyId": "alias/aws/sqs", "password": "[REDACTED]"}"#
    );
    let shown = argv(&[
        "az",
        "webapp",
        "config",
        "appsettings",
        "set",
        "--settings",
        "DB_PASSWORD=hunter22",
        "LANG=C",
    ]);
    assert_eq!(shown[6], format!("DB_PASSWORD={REDACTED}"));
    assert_eq!(shown[7], "LANG=C");
}

#[test]
fn identifier_options_stay() {
    for args in [
        &[
            "aws",
            "kms",
            "enable-key-rotation",
            "--key-id",
            "1234abcd-12ab-34cd-56ef-1234567890ab",
        ][..],
        &[
            "aws",
            "ec2",
            "create-key-pair",
            "--key-name",
            "prod",
            "--key-type",
            "ed25519",
        ],
        &[
            "aws",
            "kms",
            "create-key",
            "--key-spec",
            "SYMMETRIC_DEFAULT",
            "--key-usage",
            "ENCRYPT_DECRYPT",
        ],
        &[
            "aws",
            "ec2",
            "copy-snapshot",
            "--kms-key-id",
            "arn:aws:kms:us-east-1:123456789012:key/abcd",
            "--encrypted",
        ],
        &[
            "aws",
            "s3api",
            "copy-object",
            "--sse-kms-key-id",
            "alias/x",
            "--ssekms-key-id",
            "alias/y",
        ],
        &[
            "aws",
            "secretsmanager",
            "rotate-secret",
            "--secret-id",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf",
        ],
        &[
            "aws",
            "lambda",
            "update-function-code",
            "--s3-key",
            "builds/fn.zip",
            "--s3-bucket",
            "b",
        ],
        &[
            "aws",
            "dynamodb",
            "get-item",
            "--key",
            r#"{"id": {"S": "1"}}"#,
        ],
        &[
            "aws",
            "iam",
            "update-account-password-policy",
            "--minimum-password-length",
            "14",
            "--require-symbols",
            "--password-reuse-prevention",
            "24",
            "--max-password-age",
            "90",
        ],
        &[
            "aws",
            "iam",
            "create-login-profile",
            "--user-name",
            "u",
            "--password-reset-required",
        ],
        &[
            "aws",
            "ec2",
            "modify-instance-metadata-options",
            "--instance-id",
            "i-0abc",
            "--http-tokens",
            "required",
            "--http-endpoint",
            "enabled",
        ],
        &[
            "aws",
            "ec2",
            "describe-instances",
            "--starting-token",
            "eyJNYXJrZXIiOiBudWxsfQ==",
            "--max-items",
            "5",
        ],
        &[
            "aws",
            "cloudformation",
            "create-stack",
            "--client-request-token",
            "tok-1",
            "--stack-name",
            "s",
        ],
        &[
            "aws",
            "ec2",
            "revoke-security-group-ingress",
            "--group-id",
            "sg-0123456789abcdef0",
            "--protocol",
            "tcp",
            "--port",
            "22",
            "--cidr",
            "0.0.0.0/0",
        ],
        &[
            "aws",
            "s3api",
            "put-public-access-block",
            "--bucket",
            "my-bucket",
            "--public-access-block-configuration",
            "BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true",
        ],
        &[
            "aws",
            "apigateway",
            "put-integration",
            "--credentials",
            "arn:aws:iam::123456789012:role/apigw",
        ],
        &[
            "aws",
            "sns",
            "set-topic-attributes",
            "--topic-arn",
            "arn:aws:sns:us-east-1:123456789012:t",
            "--attribute-name",
            "KmsMasterKeyId",
            "--attribute-value",
            "alias/aws/sns",
        ],
        &[
            "az",
            "storage",
            "account",
            "update",
            "--name",
            "sa",
            "--resource-group",
            "rg",
            "--allow-blob-public-access",
            "false",
            "--min-tls-version",
            "TLS1_2",
        ],
        &[
            "az",
            "storage",
            "account",
            "keys",
            "renew",
            "--key",
            "primary",
            "--account-name",
            "sa",
        ],
        &[
            "az",
            "storage",
            "blob",
            "list",
            "--auth-mode",
            "login",
            "--account-name",
            "sa",
        ],
        &[
            "az",
            "keyvault",
            "secret",
            "set-attributes",
            "--vault-name",
            "v",
            "--name",
            "db-password",
            "--expires",
            "2030-01-01T00:00:00Z",
        ],
        &[
            "gcloud",
            "compute",
            "firewall-rules",
            "update",
            "allow-ssh",
            "--disabled",
            "--project",
            "p",
        ],
        &[
            "gcloud",
            "kms",
            "keys",
            "update",
            "k",
            "--keyring",
            "r",
            "--location",
            "global",
            "--rotation-period",
            "90d",
        ],
        &[
            "aws",
            "iam",
            "put-user-policy",
            "--user-name",
            "x",
            "--policy-name",
            "deny",
            "--policy-document",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":["secretsmanager:GetSecretValue","s3:*"],"Resource":"*","Condition":{"Bool":{"aws:MultiFactorAuthPresent":"false"}}}]}"#,
        ],
        &[
            "aws",
            "s3api",
            "put-bucket-encryption",
            "--bucket",
            "b",
            "--server-side-encryption-configuration",
            r#"{"Rules":[{"ApplyServerSideEncryptionByDefault":{"SSEAlgorithm":"aws:kms","KMSMasterKeyID":"arn:aws:kms:us-east-1:123456789012:key/abcd"}}]}"#,
        ],
        &[
            "aws",
            "iam",
            "put-role-policy",
            "--role-name",
            "r",
            "--policy-name",
            "p",
            "--policy-document",
            r#"{"Statement":[{"Effect":"Deny","Principal":{"Federated":"token.actions.githubusercontent.com"},"Condition":{"StringEquals":{"token.actions.githubusercontent.com:aud":"sts.amazonaws.com"}}}]}"#,
        ],
    ] {
        let shown = argv(args);
        assert_eq!(
            shown,
            args.iter().map(|s| s.to_string()).collect::<Vec<_>>()
        );
        let line = args.join(" ");
        assert_eq!(r(&line), line);
    }
}
