//! What the AWS-SDK-backed parts (the SQS source, the DynamoDB dedup store)
//! share: loading the SDK configuration with the overrides their builders take.

use aws_config::{BehaviorVersion, Region, SdkConfig};

#[cfg(all(feature = "dynamodb", not(feature = "sqs")))]
use aws_sdk_dynamodb::config::Credentials;
#[cfg(feature = "sqs")]
use aws_sdk_sqs::config::Credentials;

/// The standard AWS chain (environment, profile, IMDS...) for whatever is
/// not given: `endpoint` sends every call to a local server, `region` and
/// static `credentials` replace the chain's.
pub(crate) async fn load_config(
    endpoint: Option<&str>,
    region: Option<&str>,
    credentials: Option<&Credentials>,
) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(endpoint) = endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_owned()));
    }
    if let Some(credentials) = credentials {
        loader = loader.credentials_provider(credentials.clone());
    }
    loader.load().await
}
