//! Tests of the free-text scanner: named values in every syntax, bearer
//! tokens, JWTs, access key ids, connection strings.

use super::{SECRET, r};
use crate::redact::REDACTED;

#[test]
fn botocore_debug_headers_are_masked() {
    let line = "2026-11-22 DEBUG - Sending http request: <AWSPreparedRequest headers={'X-Amz-Security-Token': b'IQoJb3JpZ2luX2VjEXAMPLETOKENvalue123', 'Authorization': b'AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE/20261122'}>";
    let out = r(line);
    assert!(!out.contains("IQoJb3JpZ2lu"), "{out}");
    assert!(!out.contains("AWS4-HMAC-SHA256 Credential"), "{out}");
    // A value that merely starts with `b` keeps nothing of itself.
    assert!(!r("password: bob123").contains("ob123"));
}

#[test]
fn aws_secret_access_keys() {
    for text in [
        format!(r#""SecretAccessKey": "{SECRET}","#),
        format!("aws_secret_access_key = {SECRET}"),
        format!("AWS_SECRET_ACCESS_KEY={SECRET}"),
        format!("<SecretAccessKey>{SECRET}</SecretAccessKey>"),
    ] {
        let out = r(&text);
        assert!(!out.contains(SECRET), "{out}");
        assert!(out.contains(REDACTED), "{out}");
    }
}

#[test]
fn session_tokens() {
    let out = r(r#"{"SessionToken": "IQoJb3JpZ2luX2VjEJr//////////wEaCXVz+abc=="}"#);
    assert_eq!(out, r#"{"SessionToken": "[REDACTED]"}"#);
    let out = r("aws_session_token=FwoGZXIvYXdzEJr");
    assert_eq!(out, "aws_session_token=[REDACTED]");
}

#[test]
fn access_key_ids_keep_their_prefix() {
    assert_eq!(
        r("key AKIAIOSFODNN7EXAMPLE and ASIAY34FZKBOKMUTVV7A."),
        "key AKIA[REDACTED] and ASIA[REDACTED]."
    );
}

#[test]
fn auth_headers_and_jwts() {
    assert_eq!(r("x-redlock-auth: abc.def"), "x-redlock-auth: [REDACTED]");
    assert_eq!(
        r("Authorization: Bearer abcdefgh12345"),
        "Authorization: Bearer [REDACTED]"
    );
    assert_eq!(
        r("curl -H 'Bearer abcdefgh12345'"),
        "curl -H 'Bearer [REDACTED]'"
    );
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl";
    assert_eq!(r(&format!("got {jwt} back")), "got [REDACTED] back");
    assert_eq!(
        r("Authorization: SharedKey acct:ctzMq410TV3wS7upTBcunJTDLEJwMAZuFPfr0mrrA08="),
        "Authorization: SharedKey [REDACTED]"
    );
}

#[test]
fn passwords_tokens_and_azure_keys() {
    assert_eq!(r(r#"{"password":"p@ss"}"#), r#"{"password":"[REDACTED]"}"#);
    assert_eq!(r("token=abc123"), "token=[REDACTED]");
    assert_eq!(
        r("az x --admin-password Sup3r!"),
        "az x --admin-password [REDACTED]"
    );
    assert_eq!(
        r("Endpoint=sb://ns/;SharedAccessKeyName=Root;SharedAccessKey=abc+/=;"),
        "Endpoint=sb://ns/;SharedAccessKeyName=Root;SharedAccessKey=[REDACTED];"
    );
    assert_eq!(
        r("https://a.blob.core.windows.net/c?sv=2022&sig=AbC%2Bd%3D&se=1"),
        "https://a.blob.core.windows.net/c?sv=2022&sig=[REDACTED]&se=1"
    );
}

#[test]
fn environment_dumps() {
    for (line, kept) in [
        ("PRISMA_SECRET_KEY=abc", "PRISMA_SECRET_KEY="),
        ("AUTH_KEY=k3y-value", "AUTH_KEY="),
        (
            "SB_QUEUE_KEY=Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA==",
            "SB_QUEUE_KEY=",
        ),
        (
            "AZURE_CLIENT_SECRET=Qx8Q~abc.def_ghi",
            "AZURE_CLIENT_SECRET=",
        ),
        (
            "AWS_CONTAINER_AUTHORIZATION_TOKEN=Basic dXNlcjpwYXNz",
            "AWS_CONTAINER_AUTHORIZATION_TOKEN=",
        ),
        (
            "GOOGLE_APPLICATION_CREDENTIALS=/var/run/gcp/key.json",
            "GOOGLE_APPLICATION_CREDENTIALS=",
        ),
        ("DB_PASSWORD=correct horse battery", "DB_PASSWORD="),
        (
            "export ARM_CLIENT_SECRET=\"s3cr3t value\"",
            "export ARM_CLIENT_SECRET=\"",
        ),
        (
            "GITHUB_TOKEN=ghp_abcdefghijklmnopqrstuvwxyz0123456789",
            "GITHUB_TOKEN=",
        ),
        ("DD_API_KEY=0123456789abcdef", "DD_API_KEY="),
        ("STORAGE_ACCOUNT_KEY=abc", "STORAGE_ACCOUNT_KEY="),
        ("MY_PRIVATE_KEY=abc", "MY_PRIVATE_KEY="),
        ("SAS_KEY=abc", "SAS_KEY="),
        ("X_CREDENTIAL=abc", "X_CREDENTIAL="),
        ("LDAP_PASSWD=abc", "LDAP_PASSWD="),
    ] {
        let dump = format!("HOME=/home/w\n{line}\nPATH=/usr/bin\n");
        let out = r(&dump);
        assert_eq!(
            out,
            format!(
                "HOME=/home/w\n{kept}{REDACTED}{}\nPATH=/usr/bin\n",
                if kept.ends_with('"') { "\"" } else { "" }
            ),
            "{line}"
        );
    }
    // `/proc/self/environ` is NUL-separated; an env dump inside a JSON string uses `\n`.
    assert_eq!(
        r("A=1\0PRISMA_SECRET_KEY=abc def\0B=2"),
        "A=1\0PRISMA_SECRET_KEY=[REDACTED]\0B=2"
    );
    assert_eq!(
        r(r#"{"out": "A=1\nAZURE_CLIENT_SECRET=abc\nB=2"}"#),
        r#"{"out": "A=1\nAZURE_CLIENT_SECRET=[REDACTED]\nB=2"}"#
    );
    // JSON and Python repr forms.
    assert_eq!(
        r(r#"{"PRISMA_SECRET_KEY": "abc", "REGION": "eu"}"#),
        r#"{"PRISMA_SECRET_KEY": "[REDACTED]", "REGION": "eu"}"#
    );
    assert_eq!(
        r("environ({'AZURE_CLIENT_SECRET': 'abc', 'LANG': 'C'})"),
        "environ({'AZURE_CLIENT_SECRET': '[REDACTED]', 'LANG': 'C'})"
    );
    // Names about a secret, and the working directory, stay.
    for plain in [
        "PWD=/home/w",
        "AWS_WEB_IDENTITY_TOKEN_FILE=/var/run/token",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI=http://169.254.170.23/v1/credentials",
        "AWS_ROLE_ARN=arn:aws:iam::123456789012:role/w",
        "SSH_AUTH_SOCK=/tmp/agent.1",
        "AZURE_CLIENT_ID=00000000-0000-0000-0000-000000000000",
        "KMS_KEY=alias/prod",
    ] {
        assert_eq!(r(plain), plain);
    }
}

#[test]
fn secret_json_fields() {
    for field in [
        "SecretString",
        "SecretBinary",
        "password",
        "Password",
        "clientSecret",
        "client_secret",
        "privateKey",
        "accessToken",
        "access_token",
        "refresh_token",
        "id_token",
        "SessionToken",
        "SecretAccessKey",
        "authorizationToken",
        "primaryKey",
        "secondaryKey",
        "primaryConnectionString",
        "primaryMasterKey",
        "KeyMaterial",
        "PasswordData",
    ] {
        let text = format!(r#"{{"{field}": "s3cr3t-Value+/=", "Name": "n"}}"#);
        assert_eq!(
            r(&text),
            format!(r#"{{"{field}": "[REDACTED]", "Name": "n"}}"#),
            "{field}"
        );
        // YAML form.
        assert_eq!(
            r(&format!("{field}: s3cr3t-Value+/=")),
            format!("{field}: [REDACTED]")
        );
    }
    // A value with escaped quotes is masked whole.
    assert_eq!(
        r(r#"{"SecretString": "{\"username\":\"u\",\"password\":\"p w\"}"}"#),
        r#"{"SecretString": "[REDACTED]"}"#
    );
    // JSON escaped inside a JSON string (a dead-letter body).
    assert_eq!(
        r(r#"{"body": "{\"password\": \"p w\", \"user\": \"u\"}"}"#),
        r#"{"body": "{\"password\": \"[REDACTED]\", \"user\": \"u\"}"}"#
    );
}

#[test]
fn connection_strings() {
    assert_eq!(
        r(
            "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=Zm9vYmFy+/==;EntityPath=q"
        ),
        "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=[REDACTED];EntityPath=q"
    );
    assert_eq!(
        r(
            "DefaultEndpointsProtocol=https;AccountName=sa;AccountKey=abc+def==;EndpointSuffix=core.windows.net"
        ),
        "DefaultEndpointsProtocol=https;AccountName=sa;AccountKey=[REDACTED];EndpointSuffix=core.windows.net"
    );
    assert_eq!(
        r(
            "Endpoint=sb://ns/;SharedAccessSignature=sr=amqps%3A%2F%2Fns%2Fq&sig=AbC%3D&se=1700000000&skn=Root"
        ),
        "Endpoint=sb://ns/;SharedAccessSignature=[REDACTED]&sig=[REDACTED]&se=1700000000&skn=Root"
    );
    assert_eq!(
        r("Authorization: SharedAccessSignature sr=x&sig=AbC%3D&se=1&skn=Root"),
        "Authorization: SharedAccessSignature [REDACTED]&sig=[REDACTED]&se=1&skn=Root"
    );
    assert_eq!(
        r(
            "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=abcdef0123&X-Amz-Expires=60"
        ),
        "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=[REDACTED]&X-Amz-Expires=60"
    );
    assert_eq!(
        r("Server=db;Uid=sa;Pwd=p@ss;"),
        "Server=db;Uid=sa;Pwd=[REDACTED];"
    );
}

#[test]
fn azure_keys_list() {
    let key = format!("{}==", "Ab1+".repeat(21) + "Cd");
    let out = r(&format!(
        "[\n  {{\n    \"keyName\": \"key1\",\n    \"permissions\": \"FULL\",\n    \"value\": \"{key}\"\n  }}\n]"
    ));
    assert!(!out.contains("Ab1+"), "{out}");
    // Named by a sibling, whatever the value looks like.
    assert_eq!(
        r(r#"[{"keyName": "key2", "permissions": "FULL", "value": "short"}]"#),
        r#"[{"keyName": "key2", "permissions": "FULL", "value": "[REDACTED]"}]"#
    );
    // A plain value stays.
    let tags = r#"[{"Key": "Name", "Value": "web"}, {"keyName": "x", "value": "y"}]"#;
    assert_eq!(r(tags), tags);
}

#[test]
fn values_named_by_a_sibling() {
    assert_eq!(
        r("--tags Key=Password,Value=hunter22 Key=env,Value=prod"),
        "--tags Key=Password,Value=[REDACTED] Key=env,Value=prod"
    );
    assert_eq!(
        r("ParameterKey=DBPassword,ParameterValue=hunter22"),
        "ParameterKey=DBPassword,ParameterValue=[REDACTED]"
    );
    assert_eq!(
        r(
            r#"{"environment": [{"name": "PRISMA_SECRET_KEY", "value": "abc"}, {"name": "LANG", "value": "C"}]}"#
        ),
        r#"{"environment": [{"name": "PRISMA_SECRET_KEY", "value": "[REDACTED]"}, {"name": "LANG", "value": "C"}]}"#
    );
    assert_eq!(
        r("env:\n- name: DB_PASSWORD\n  value: hunter22\n- name: LANG\n  value: C\n"),
        "env:\n- name: DB_PASSWORD\n  value: [REDACTED]\n- name: LANG\n  value: C\n"
    );
    assert_eq!(
        r(r#"{"adminPassword": {"value": "hunter22"}, "location": {"value": "westeurope"}}"#),
        r#"{"adminPassword": {"value": "[REDACTED]"}, "location": {"value": "westeurope"}}"#
    );
}
