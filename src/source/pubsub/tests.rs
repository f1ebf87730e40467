//! Unit tests of the Pub/Sub source that need no emulator: configuration
//! (keys, aliases, every bad value reported at once), resource names, and
//! that nothing prints a credential.

use super::builder::check_resource;
use super::*;
use google_cloud_auth::credentials::Credentials;
use std::time::Duration;

#[test]
fn resource_names_are_checked() {
    assert!(check_resource("projects/p/subscriptions/s", "subscriptions").is_ok());
    assert!(check_resource("projects/p/topics/t", "topics").is_ok());
    for bad in [
        "s",
        "projects/p/topics/t",
        "projects//subscriptions/s",
        "projects/p/subscriptions/",
        "projects/p/subscriptions/s/x",
        "projects/p q/subscriptions/s",
    ] {
        let err = check_resource(bad, "subscriptions").unwrap_err();
        assert!(
            err.to_string()
                .contains("projects/PROJECT/subscriptions/NAME"),
            "{err}"
        );
    }
}

#[test]
fn from_vars_reads_the_documented_variables() {
    let b = PubSubSourceBuilder::from_vars([
        ("PUBSUB_SUBSCRIPTION", "alerts"),
        ("PUBSUB_PROJECT_ID", "my-project"),
        ("PUBSUB_EMULATOR_HOST", "127.0.0.1:8085"),
        ("PUBSUB_DEAD_LETTER_TOPIC", "projects/other/topics/dlt"),
        ("PUBSUB_MAX_OUTSTANDING_MESSAGES", "7"),
        ("PUBSUB_MAX_OUTSTANDING_BYTES", "4096"),
        ("PUBSUB_MAX_LEASE", "120"),
        ("PUBSUB_MAX_LEASE_EXTENSION", "5"),
        ("PUBSUB_MAX_NACK_DELAY", "oops"),
        ("UNRELATED", "whatever"),
    ]);
    assert_eq!(
        b.qualify(b.subscription.as_deref().unwrap(), "subscriptions")
            .unwrap(),
        "projects/my-project/subscriptions/alerts"
    );
    assert_eq!(b.endpoint.as_deref(), Some("http://127.0.0.1:8085"));
    assert!(b.anonymous);
    assert_eq!(
        b.dead_letter_topic.as_deref(),
        Some("projects/other/topics/dlt")
    );
    assert_eq!(b.max_outstanding_messages, 7);
    assert_eq!(b.max_outstanding_bytes, 4096);
    assert_eq!(b.max_lease, Duration::from_secs(120));
    // The client accepts 10 s to 600 s.
    assert_eq!(b.max_lease_extension, Duration::from_secs(10));
    // A bad value leaves the default, and build() reports it.
    assert_eq!(b.max_nack_delay, Duration::from_secs(600));
    let problems = b.problems.check("b").unwrap_err().to_string();
    assert!(
        problems.contains("PUBSUB_MAX_NACK_DELAY: \"oops\": not a whole number of seconds"),
        "{problems}"
    );
    let key: PubSubConfigKey = "pubsub_max_lease".parse().unwrap();
    assert_eq!(key, PubSubConfigKey::MaxLease);
    assert_eq!(b.with_config(key, "90").max_lease, Duration::from_secs(90));
}

#[test]
fn pubsub_project_id_wins_over_google_cloud_project() {
    let project = |vars: &[(&str, &str)]| {
        let b = PubSubSourceBuilder::from_vars(vars.iter().copied());
        b.qualify("s", "subscriptions")
    };
    for vars in [
        [
            ("GOOGLE_CLOUD_PROJECT", "other"),
            ("PUBSUB_PROJECT_ID", "mine"),
        ],
        [
            ("PUBSUB_PROJECT_ID", "mine"),
            ("GOOGLE_CLOUD_PROJECT", "other"),
        ],
    ] {
        assert_eq!(
            project(&vars).unwrap(),
            "projects/mine/subscriptions/s",
            "{vars:?}"
        );
    }
    assert_eq!(
        project(&[("GOOGLE_CLOUD_PROJECT", "other")]).unwrap(),
        "projects/other/subscriptions/s"
    );
    assert!(project(&[("PUBSUB_PROJECT_ID", " ")]).is_err());
}

fn service_account(private_key: &str) -> Credentials {
    let key = serde_json::json!({
        "type": "service_account",
        "client_email": "remediator@proj.iam.gserviceaccount.com",
        "private_key_id": "key-id-0123456789",
        "private_key": format!("-----BEGIN PRIVATE KEY-----\n{private_key}\n-----END PRIVATE KEY-----\n"),
        "project_id": "proj",
        "universe_domain": "googleapis.com"
    });
    google_cloud_auth::credentials::service_account::Builder::new(key)
        .build()
        .expect("service account credentials")
}

#[tokio::test]
async fn every_bad_value_is_reported_by_build_at_once() {
    let b = PubSubSourceBuilder::from_vars([
        ("PUBSUB_PROJECT_ID", "bad project"),
        ("PUBSUB_SUBSCRIPTION", "alerts"),
        ("PUBSUB_EMULATOR_HOST", "localhost"),
        ("PUBSUB_DEAD_LETTER_TOPIC", "projects/p/subscriptions/dlt"),
        ("PUBSUB_MAX_OUTSTANDING_MESSAGES", "many"),
        ("PUBSUB_MAX_OUTSTANDING_BYTES", "-1"),
        ("PUBSUB_MAX_LEASE", "1h"),
        ("PUBSUB_MAX_LEASE_EXTENSION", "soon"),
        ("PUBSUB_MAX_NACK_DELAY", "1.5"),
    ])
    .with_credentials(service_account("S3CR3T-PRIVATE-KEY-MATERIAL"));
    let shown = format!("{b:?}");
    let e = b.build().await.expect_err("bad values").to_string();
    assert!(e.contains("PubSubSourceBuilder: 8 problems"), "{e}");
    for (key, value) in [
        (PubSubConfigKey::EmulatorHost, "localhost"),
        (PubSubConfigKey::MaxOutstandingMessages, "many"),
        (PubSubConfigKey::MaxOutstandingBytes, "-1"),
        (PubSubConfigKey::MaxLease, "1h"),
        (PubSubConfigKey::MaxLeaseExtension, "soon"),
        (PubSubConfigKey::MaxNackDelay, "1.5"),
    ] {
        // No key is a secret: each problem names its key and its value.
        assert!(
            e.contains(&format!("{key}: {value:?}: ")),
            "{key} missing: {e}"
        );
    }
    assert!(
        e.contains(
            "invalid Pub/Sub subscription name \"projects/bad project/subscriptions/alerts\""
        ),
        "{e}"
    );
    assert!(
        e.contains("invalid Pub/Sub topic name \"projects/p/subscriptions/dlt\""),
        "{e}"
    );
    for text in [&e, &shown] {
        for secret in ["S3CR3T", "key-id-0123456789", "PRIVATE KEY"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
    let e = PubSubSourceBuilder::from_vars([("PUBSUB_EMULATOR_HOST", "[::1]:8085")])
        .build()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("PubSubSourceBuilder: no Pub/Sub subscription"),
        "a good host and one problem: {e}"
    );
}

#[tokio::test]
async fn a_built_source_prints_no_secrets_and_names_its_subscription() {
    // Building calls nothing: the endpoint is never reached.
    let source = PubSubSource::builder()
        .with_subscription("alerts")
        .with_project("proj")
        .with_endpoint("http://127.0.0.1:9")
        .with_credentials(service_account("S3CR3T"))
        .build()
        .await
        .expect("build");
    assert_eq!(
        crate::source::AlertSource::name(&source),
        "pubsub:projects/proj/subscriptions/alerts"
    );
    let text = format!("{source:?}");
    assert!(
        !text.contains("S3CR3T") && !text.contains("key-id"),
        "{text}"
    );
    assert_eq!(
        crate::source::AlertSource::capabilities(&source).dead_letter,
        crate::source::DeadLetterMode::Redrive
    );
    let err = PubSubSource::builder().build().await.unwrap_err();
    assert!(err.to_string().contains("PUBSUB_SUBSCRIPTION"), "{err}");
}

#[test]
fn a_bare_subscription_needs_a_project() {
    let b = PubSubSourceBuilder::new().with_subscription("alerts");
    let err = b.qualify("alerts", "subscriptions").unwrap_err();
    assert!(err.to_string().contains("PUBSUB_PROJECT_ID"), "{err}");
}

#[tokio::test]
async fn debug_hides_credentials() {
    let b = PubSubSourceBuilder::new()
        .with_subscription("projects/proj/subscriptions/alerts")
        .with_credentials(service_account("S3CR3T-PRIVATE-KEY-MATERIAL"));
    let text = format!("{b:?}");
    assert!(text.contains("explicit_credentials: true"), "{text}");
    for secret in ["S3CR3T", "key-id-0123456789", "PRIVATE KEY"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
}
