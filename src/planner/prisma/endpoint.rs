//! Where the Prisma Cloud API lives: a full `https://` URL, or the tenant name
//! as users write it (`api2`, `app.eu`, `api.gov`...), resolved to the API host.

use reqwest::Url;
use std::net::IpAddr;

/// Why an endpoint is refused, in words (the builder reports it with the key).
type Result<T> = std::result::Result<T, String>;

/// Resolves what a user wrote as the API endpoint to the API's base URL,
/// or says why it is not one.
///
/// * `https://api2.prismacloud.io` (any `https://` URL) is used as it is, except
///   that a Prisma Cloud *app* host (`app2.eu.prismacloud.io`) becomes the
///   matching *api* host, since the published docs use both.
/// * A tenant name — `api`, `api2`, `api.eu`, `api2.eu`, `api.gov`, `app`,
///   `app3`, `app.gov`, `api.prismacloud.io`... — becomes
///   `https://apiN[.region].prismacloud.io` (`.cn` tenants use `prismacloud.cn`).
/// * `http://` is accepted only when `allow_http` is set, and only for a
///   loopback host (`127.0.0.1`, `::1`, `localhost`): the token never crosses
///   a network in clear text.
pub(crate) fn resolve(input: &str, allow_http: bool) -> Result<Url> {
    let input = input.trim();
    if input.is_empty() {
        return Err("the Prisma Cloud API endpoint is empty".into());
    }
    let mut url = if input.contains("://") {
        Url::parse(input)
            .map_err(|e| format!("the Prisma Cloud API endpoint {input:?} is not a URL: {e}"))?
    } else {
        tenant_url(input)?
    };
    match url.scheme() {
        "https" => {}
        "http" if allow_http => {
            if !is_loopback(&url) {
                return Err(format!(
                    "plain http is allowed for loopback hosts only, not {}",
                    url.host_str().unwrap_or("<none>")
                ));
            }
        }
        "http" => {
            return Err(
                "the Prisma Cloud API endpoint must use https (plain http is allowed \
                        only for loopback tests, with allow_http)"
                    .into(),
            );
        }
        other => {
            return Err(format!(
                "the Prisma Cloud API endpoint has scheme {other:?}; expected https"
            ));
        }
    }
    if url.host_str().is_none() {
        return Err(format!(
            "the Prisma Cloud API endpoint {input:?} has no host"
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("the Prisma Cloud API endpoint must not carry credentials".into());
    }
    if let Some(host) = url.host_str().map(str::to_owned) {
        if let Some(api) = app_to_api(&host) {
            url.set_host(Some(&api))
                .map_err(|e| format!("endpoint host {api:?}: {e}"))?;
        }
    }
    url.set_query(None);
    url.set_fragment(None);
    // Joining relative paths needs a trailing slash on the base.
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// `api2.eu` → `https://api2.eu.prismacloud.io/`; also accepts a bare host.
fn tenant_url(input: &str) -> Result<Url> {
    let name = input.trim_end_matches('/').to_ascii_lowercase();
    let bad = || {
        format!(
            "unknown Prisma Cloud API endpoint {input:?}: give a full https:// URL or a \
             tenant name such as api, api2, api.eu, api2.eu, api.gov, app2"
        )
    };
    let host = if name.ends_with(".prismacloud.io") || name.ends_with(".prismacloud.cn") {
        name
    } else {
        let mut labels = name.split('.');
        let first = labels.next().ok_or_else(bad)?;
        let region: Vec<&str> = labels.collect();
        if !is_api_label(first) {
            return Err(bad());
        }
        if region
            .iter()
            .any(|l| l.is_empty() || !l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        {
            return Err(bad());
        }
        match region.as_slice() {
            [] => format!("{first}.prismacloud.io"),
            ["cn"] => format!("{first}.prismacloud.cn"),
            rest => format!("{first}.{}.prismacloud.io", rest.join(".")),
        }
    };
    let first = host.split('.').next().unwrap_or_default();
    if !is_api_label(first) {
        return Err(bad());
    }
    Url::parse(&format!("https://{host}/")).map_err(|_| bad())
}

/// `api`, `api2`, `app`, `app3`...
fn is_api_label(label: &str) -> bool {
    let digits = label
        .strip_prefix("api")
        .or_else(|| label.strip_prefix("app"));
    digits.is_some_and(|d| d.chars().all(|c| c.is_ascii_digit()))
}

/// `app2.eu.prismacloud.io` → `api2.eu.prismacloud.io`; `None` for other hosts.
fn app_to_api(host: &str) -> Option<String> {
    let host = host.to_ascii_lowercase();
    if !(host.ends_with(".prismacloud.io") || host.ends_with(".prismacloud.cn")) {
        return None;
    }
    let (first, rest) = host.split_once('.')?;
    let digits = first.strip_prefix("app")?;
    digits
        .chars()
        .all(|c| c.is_ascii_digit())
        .then(|| format!("api{digits}.{rest}"))
}

fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(input: &str) -> String {
        resolve(input, false)
            .map(|u| u.to_string())
            .unwrap_or_else(|e| panic!("{input}: {e}"))
    }

    #[test]
    fn tenant_names_become_api_hosts() {
        assert_eq!(ok("api"), "https://api.prismacloud.io/");
        assert_eq!(ok("api2"), "https://api2.prismacloud.io/");
        assert_eq!(ok("api.eu"), "https://api.eu.prismacloud.io/");
        assert_eq!(ok("api2.eu"), "https://api2.eu.prismacloud.io/");
        assert_eq!(ok("api.gov"), "https://api.gov.prismacloud.io/");
        assert_eq!(ok("app"), "https://api.prismacloud.io/");
        assert_eq!(ok("app2"), "https://api2.prismacloud.io/");
        assert_eq!(ok("APP.GOV"), "https://api.gov.prismacloud.io/");
        assert_eq!(ok("app.cn"), "https://api.prismacloud.cn/");
        assert_eq!(ok("app3.prismacloud.io"), "https://api3.prismacloud.io/");
        assert_eq!(
            ok("api.anz.prismacloud.io/"),
            "https://api.anz.prismacloud.io/"
        );
    }

    #[test]
    fn full_urls_keep_their_path_and_app_hosts_map_to_api() {
        assert_eq!(
            ok("https://api2.prismacloud.io"),
            "https://api2.prismacloud.io/"
        );
        assert_eq!(
            ok("https://app2.eu.prismacloud.io/"),
            "https://api2.eu.prismacloud.io/"
        );
        assert_eq!(
            ok("https://proxy.example.com/prisma"),
            "https://proxy.example.com/prisma/"
        );
        assert_eq!(
            ok("https://appliance.example.com"),
            "https://appliance.example.com/"
        );
    }

    #[test]
    fn refuses_what_is_not_an_endpoint() {
        for bad in [
            "",
            "example.com",
            "eu",
            "apix",
            "api.e u",
            "ftp://api.prismacloud.io",
        ] {
            assert!(resolve(bad, true).is_err(), "{bad:?} accepted");
        }
        assert!(resolve("https://user:pw@api.prismacloud.io", false).is_err());
    }

    #[test]
    fn plain_http_only_for_loopback_and_only_when_allowed() {
        assert!(resolve("http://127.0.0.1:8080", false).is_err());
        assert_eq!(
            resolve("http://127.0.0.1:8080", true)
                .map(|u| u.to_string())
                .ok(),
            Some("http://127.0.0.1:8080/".to_owned())
        );
        assert!(resolve("http://[::1]:9", true).is_ok());
        assert!(resolve("http://localhost:9", true).is_ok());
        assert!(resolve("http://api.prismacloud.io", true).is_err());
        assert!(resolve("http://10.0.0.1", true).is_err());
    }
}
