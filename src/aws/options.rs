//! [`AwsClientOptions`]: how an AWS SDK client of this crate is made.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use std::fmt;

#[cfg(all(feature = "dynamodb", not(feature = "sqs")))]
use aws_sdk_dynamodb::config::{Credentials, SharedCredentialsProvider, SharedHttpClient};
#[cfg(feature = "sqs")]
use aws_sdk_sqs::config::{Credentials, SharedCredentialsProvider, SharedHttpClient};

/// Endpoint, region, credentials and HTTP client of an AWS SDK client;
/// whatever is not set comes from the standard AWS chain (environment,
/// profile, web identity, container and instance metadata).
///
/// Every AWS-backed builder of the crate takes these with the same setters
/// (`with_endpoint`, `with_region`, `with_static_credentials`,
/// `with_credentials_provider`, `with_http_client`) or whole
/// (`with_aws_options`).
#[derive(Clone, Default)]
pub struct AwsClientOptions {
    endpoint: Option<String>,
    region: Option<String>,
    credentials: Option<SharedCredentialsProvider>,
    http_client: Option<SharedHttpClient>,
}

impl fmt::Debug for AwsClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsClientOptions")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            // Never print credentials, not even the key id.
            .field("custom_credentials", &self.credentials.is_some())
            .field("custom_http_client", &self.http_client.is_some())
            .finish()
    }
}

impl AwsClientOptions {
    /// Everything from the standard AWS chain.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends every call to `endpoint` (a local server such as moto) instead of AWS.
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// The region, instead of the one from the AWS chain.
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// Static credentials instead of the AWS chain (local servers, tests).
    pub fn with_static_credentials(
        self,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
    ) -> Self {
        let credentials = Credentials::new(
            access_key_id,
            secret_access_key,
            None,
            None,
            "remediation-static",
        );
        self.with_credentials_provider(SharedCredentialsProvider::new(credentials))
    }

    /// A credentials provider instead of the AWS chain (an assumed role, a
    /// provider of the caller's).
    pub fn with_credentials_provider(mut self, provider: SharedCredentialsProvider) -> Self {
        self.credentials = Some(provider);
        self
    }

    /// The HTTP client the SDK sends with (a proxy, custom timeouts, tests).
    pub fn with_http_client(mut self, client: SharedHttpClient) -> Self {
        self.http_client = Some(client);
        self
    }

    /// The endpoint override, if any.
    pub fn endpoint(&self) -> Option<&str> {
        self.endpoint.as_deref()
    }

    /// The region override, if any.
    pub fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    /// The SDK configuration: the standard chain with these overrides.
    pub(crate) async fn load(&self) -> SdkConfig {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(endpoint) = &self.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        if let Some(region) = &self.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(credentials) = &self.credentials {
            loader = loader.credentials_provider(credentials.clone());
        }
        if let Some(client) = &self.http_client {
            loader = loader.http_client(client.clone());
        }
        loader.load().await
    }
}

/// The [`AwsClientOptions`] setters of a builder with a field `aws`, written
/// once for every AWS-backed builder.
macro_rules! aws_client_setters {
    () => {
        /// Sends every call to `endpoint` (a local server such as moto) instead of AWS.
        pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
            self.aws = self.aws.with_endpoint(endpoint);
            self
        }

        /// The region, instead of the one from the AWS chain.
        pub fn with_region(mut self, region: impl Into<String>) -> Self {
            self.aws = self.aws.with_region(region);
            self
        }

        /// Static credentials instead of the AWS chain (local servers, tests).
        pub fn with_static_credentials(
            mut self,
            access_key_id: impl Into<String>,
            secret_access_key: impl Into<String>,
        ) -> Self {
            self.aws = self
                .aws
                .with_static_credentials(access_key_id, secret_access_key);
            self
        }

        /// Endpoint, region, credentials and HTTP client at once, replacing
        /// any set before.
        pub fn with_aws_options(mut self, options: $crate::aws::AwsClientOptions) -> Self {
            self.aws = options;
            self
        }
    };
}
pub(crate) use aws_client_setters;
