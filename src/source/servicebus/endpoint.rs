//! [`EndpointOverride`]: an [`HttpClient`] that sends every request to
//! another server speaking the Service Bus REST protocol (an emulator on
//! loopback), for `SERVICEBUS_ENDPOINT`.

use crate::error::{Error, Result};
use async_trait::async_trait;
use azure_core::{HttpClient, Request, Url};
use std::sync::Arc;

/// An [`HttpClient`] that sends every request to another server: scheme, host
/// and port are replaced, path and query kept. Used for
/// `SERVICEBUS_ENDPOINT=http://127.0.0.1:PORT`; works with the
/// `azure_messaging_servicebus` clients too, whose URLs are hard-coded to
/// `https://NAMESPACE.servicebus.windows.net`.
#[derive(Debug, Clone)]
pub struct EndpointOverride {
    inner: Arc<dyn HttpClient>,
    endpoint: Url,
}

/// Checks an endpoint (`scheme://host[:port]`, plain `http` for loopback
/// hosts only); the problem names `SERVICEBUS_ENDPOINT`.
pub(super) fn check_endpoint(endpoint: &str) -> std::result::Result<Url, String> {
    let url = Url::parse(endpoint.trim())
        .map_err(|e| format!("SERVICEBUS_ENDPOINT {endpoint:?}: {e}"))?;
    let loopback = matches!(
        url.host_str(),
        Some("127.0.0.1" | "localhost" | "[::1]" | "::1")
    );
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(format!(
                "SERVICEBUS_ENDPOINT {endpoint:?}: plain http is allowed for loopback hosts only"
            ));
        }
        other => {
            return Err(format!(
                "SERVICEBUS_ENDPOINT {endpoint:?}: unsupported scheme {other:?} (http or https)"
            ));
        }
    }
    if url.host_str().is_none() || !url.path().trim_matches('/').is_empty() {
        return Err(format!(
            "SERVICEBUS_ENDPOINT {endpoint:?}: expected scheme://host[:port] without a path"
        ));
    }
    Ok(url)
}

impl EndpointOverride {
    /// Routes `inner`'s requests to `endpoint` (`http://127.0.0.1:PORT`).
    /// Plain `http` is allowed only for loopback hosts: a SAS token must not
    /// cross a network in clear text.
    pub fn new(inner: Arc<dyn HttpClient>, endpoint: &str) -> Result<EndpointOverride> {
        let endpoint = check_endpoint(endpoint).map_err(Error::Config)?;
        Ok(EndpointOverride { inner, endpoint })
    }

    /// Where requests go.
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }
}

#[async_trait]
impl HttpClient for EndpointOverride {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<azure_core::Response> {
        let mut request = request.clone();
        let url = request.url_mut();
        let rewrite = url.set_scheme(self.endpoint.scheme()).is_ok()
            && url.set_host(self.endpoint.host_str()).is_ok()
            && url.set_port(self.endpoint.port()).is_ok();
        if !rewrite {
            return Err(azure_core::Error::message(
                azure_core::error::ErrorKind::Other,
                "could not route the request to SERVICEBUS_ENDPOINT",
            ));
        }
        self.inner.execute_request(&request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_endpoints_only_on_loopback() {
        let http = azure_core::new_http_client();
        assert!(EndpointOverride::new(Arc::clone(&http), "http://127.0.0.1:5000").is_ok());
        assert!(EndpointOverride::new(Arc::clone(&http), "https://sb.example.com").is_ok());
        assert!(EndpointOverride::new(Arc::clone(&http), "http://sb.example.com").is_err());
        assert!(EndpointOverride::new(Arc::clone(&http), "http://127.0.0.1:5000/path").is_err());
        assert!(EndpointOverride::new(http, "ftp://127.0.0.1").is_err());
    }
}
