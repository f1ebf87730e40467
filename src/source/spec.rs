//! Sources named by a short spec string (`file:PATH`, `stdin`, `sqs:QUEUE`,
//! `pubsub:SUBSCRIPTION`, `servicebus:NAMESPACE/ENTITY`), as a worker's
//! `--source` flag takes them: the spec names *what* to read, everything else
//! (region, credentials, endpoints, flow control) comes from the environment
//! through each backend's `from_env` builder.

use super::{AlertSource, FileSource};
use crate::error::{Error, Result};
use std::sync::Arc;

/// The spec forms [`from_spec`] understands, for messages.
const FORMS: &str = "file:PATH, stdin, sqs:NAME_OR_URL, pubsub:projects/P/subscriptions/S \
                     or servicebus:NAMESPACE/QUEUE (servicebus:NAMESPACE/TOPIC/subscriptions/SUB)";

/// Opens the source a spec names:
///
/// | spec | source | feature |
/// |---|---|---|
/// | `file:PATH` | [`FileSource::open`]: JSON lines or a CloudTrail `Records` file, `.gz` too | — |
/// | `stdin` or `-` | [`FileSource::stdin`] | — |
/// | `sqs:NAME_OR_URL` | [`SqsSourceBuilder::from_env`](crate::source::sqs::SqsSourceBuilder) with that queue | `sqs` |
/// | `pubsub:projects/P/subscriptions/S` | [`PubSubSourceBuilder::from_env`](crate::source::pubsub::PubSubSourceBuilder) with that subscription | `pubsub` |
/// | `servicebus:NAMESPACE/ENTITY` | [`ServiceBusSourceBuilder::from_env`](crate::source::servicebus::ServiceBusSourceBuilder) with that namespace and queue or `TOPIC/subscriptions/SUB` | `servicebus` |
///
/// A queue source counts its API calls into the engine's statistics once the
/// engine is built with it ([`AlertSource::attach_stats`]). Call
/// [`AlertSource::close`] after the run, so a source that batches acks in the
/// background sends them.
///
/// # Errors
///
/// [`Error::Config`] for a spec of no known form, an empty name, or a form
/// whose cargo feature this build lacks (the message names the feature);
/// otherwise whatever the backend's `build` reports (every bad environment
/// value at once, an unreachable queue).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let err = remediation::source::from_spec("kafka:alerts").await.unwrap_err();
/// assert!(err.to_string().contains("unknown source"), "{err}");
/// # }
/// ```
pub async fn from_spec(spec: &str) -> Result<Arc<dyn AlertSource>> {
    let spec = spec.trim();
    let (scheme, rest) = match spec {
        "stdin" | "-" => return Ok(Arc::new(FileSource::stdin())),
        _ => spec.split_once(':').unwrap_or((spec, "")),
    };
    let rest = rest.trim();
    let named = |what: &str| {
        if rest.is_empty() {
            Err(Error::Config(format!("source {spec:?} names no {what}")))
        } else {
            Ok(rest)
        }
    };
    match scheme {
        "file" => Ok(Arc::new(FileSource::open(named("path")?)?)),
        "sqs" => sqs(named("queue")?).await,
        "pubsub" => pubsub(named("subscription")?).await,
        "servicebus" => servicebus(spec, named("namespace and entity")?),
        _ => Err(Error::Config(format!(
            "unknown source {spec:?}: expected {FORMS}"
        ))),
    }
}

/// The error for a spec whose backend this build does not have.
#[cfg(not(all(feature = "sqs", feature = "pubsub", feature = "servicebus")))]
fn missing_feature(spec_scheme: &str, feature: &str) -> Error {
    Error::Config(format!(
        "source `{spec_scheme}:…` needs the `{feature}` cargo feature of `remediation` \
         (build with --features {feature})"
    ))
}

#[cfg(feature = "sqs")]
async fn sqs(queue: &str) -> Result<Arc<dyn AlertSource>> {
    let source = super::sqs::SqsSourceBuilder::from_env()
        .with_queue(queue)
        .build()
        .await?;
    Ok(Arc::new(source))
}

#[cfg(not(feature = "sqs"))]
async fn sqs(_queue: &str) -> Result<Arc<dyn AlertSource>> {
    Err(missing_feature("sqs", "sqs"))
}

#[cfg(feature = "pubsub")]
async fn pubsub(subscription: &str) -> Result<Arc<dyn AlertSource>> {
    let source = super::pubsub::PubSubSourceBuilder::from_env()
        .with_subscription(subscription)
        .build()
        .await?;
    Ok(Arc::new(source))
}

#[cfg(not(feature = "pubsub"))]
async fn pubsub(_subscription: &str) -> Result<Arc<dyn AlertSource>> {
    Err(missing_feature("pubsub", "pubsub"))
}

#[cfg(feature = "servicebus")]
fn servicebus(spec: &str, rest: &str) -> Result<Arc<dyn AlertSource>> {
    let Some((namespace, entity)) = rest
        .split_once('/')
        .filter(|(n, e)| !n.is_empty() && !e.is_empty())
    else {
        return Err(Error::Config(format!(
            "source {spec:?}: expected servicebus:NAMESPACE/QUEUE or \
             servicebus:NAMESPACE/TOPIC/subscriptions/SUB"
        )));
    };
    let source = super::servicebus::ServiceBusSourceBuilder::from_env()
        .with_namespace(namespace)
        .with_entity_path(entity)
        .build()?;
    Ok(Arc::new(source))
}

#[cfg(not(feature = "servicebus"))]
fn servicebus(_spec: &str, _rest: &str) -> Result<Arc<dyn AlertSource>> {
    Err(missing_feature("servicebus", "servicebus"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    async fn refused(spec: &str) -> String {
        match from_spec(spec).await {
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Config, "{spec}: {e}");
                e.to_string()
            }
            Ok(s) => panic!("{spec} opened {}", s.name()),
        }
    }

    #[tokio::test]
    async fn unknown_and_empty_specs_are_configuration_errors() {
        let e = refused("kafka:alerts").await;
        assert!(e.contains("unknown source \"kafka:alerts\""), "{e}");
        assert!(e.contains("sqs:NAME_OR_URL"), "{e}");
        assert!(refused("alerts.jsonl").await.contains("unknown source"));
        for (spec, what) in [
            ("file:", "path"),
            ("sqs:", "queue"),
            ("pubsub: ", "subscription"),
            ("servicebus:", "namespace and entity"),
        ] {
            let e = refused(spec).await;
            assert!(e.contains(&format!("names no {what}")), "{spec}: {e}");
        }
    }

    #[tokio::test]
    async fn a_file_spec_opens_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        std::fs::write(&path, "{}\n").unwrap();
        let source = from_spec(&format!("file:{}", path.display()))
            .await
            .unwrap();
        assert!(source.name().starts_with("file:"), "{}", source.name());
        let e = from_spec("file:/nonexistent/alerts.jsonl")
            .await
            .err()
            .unwrap();
        assert_eq!(e.kind(), ErrorKind::Io, "{e}");
        assert!(e.to_string().contains("/nonexistent/alerts.jsonl"), "{e}");
    }

    #[cfg(not(feature = "sqs"))]
    #[tokio::test]
    async fn a_missing_feature_is_named() {
        let e = refused("sqs:alerts").await;
        assert!(e.contains("needs the `sqs` cargo feature"), "{e}");
    }

    #[cfg(feature = "servicebus")]
    #[tokio::test]
    async fn a_servicebus_spec_needs_namespace_and_entity() {
        let e = refused("servicebus:contoso").await;
        assert!(e.contains("expected servicebus:NAMESPACE/QUEUE"), "{e}");
    }
}
