//! The finding's fields that reach a child's argv or environment — its
//! region, account, subscription or project — checked against their formats
//! before any context is built. They come from the (hostile) finding: a NUL,
//! a newline, an option-looking value or a path there is refused as
//! `invalid_context`, never retried.

use crate::error::{Error, Refusal, Result};
use crate::model::{Cloud, Target};

/// An AWS region (`us-east-1`, `us-gov-west-1`, `cn-north-1`,
/// `eu-isoe-west-1`), or the pseudo-region `global`.
fn aws_region(r: &str) -> bool {
    if r.eq_ignore_ascii_case("global") {
        return true;
    }
    // Words of lowercase letters, then a number: split from the end, no
    // allocation (this runs for every step's context).
    let Some((words, number)) = r.rsplit_once('-') else {
        return false;
    };
    let mut n = 0;
    let words_ok = words.split('-').all(|w| {
        n += 1;
        !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase())
    });
    words_ok
        && (2..=4).contains(&n)
        && !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit())
}

/// A GCP region or zone (`us-central1`, `europe-west4-a`), or `global`.
fn gcp_location(r: &str) -> bool {
    r.len() <= 40
        && !r.starts_with('-')
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// An Azure location (`westeurope`, `global`): letters and digits.
fn azure_location(r: &str) -> bool {
    r.len() <= 40 && r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' ')
}

/// A 12-digit AWS account id.
fn aws_account(a: &str) -> bool {
    a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit())
}

/// An Azure subscription id (a GUID).
fn azure_subscription(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A GCP project id (`acme-prod-1`), or a legacy domain-scoped one
/// (`example.com:acme-prod`).
fn gcp_project(p: &str) -> bool {
    let id = p.rsplit_once(':').map_or(p, |(domain, id)| {
        if domain
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        {
            id
        } else {
            ""
        }
    });
    (6..=30).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && !id.ends_with('-')
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn invalid(what: &str, value: &str) -> Error {
    Error::refused(
        Refusal::InvalidContext,
        format!(
            "the finding's {what} {} is not one: it would reach the command's \
             arguments or environment",
            crate::plan::policy::quoted(value)
        ),
    )
}

/// Refuses a target whose region or account is not of its cloud's format.
pub(super) fn check(target: &Target) -> Result<()> {
    let region = target.region.as_deref().filter(|r| !r.is_empty());
    let account = target.account_id.as_deref();
    type Format = fn(&str) -> bool;
    let (region_ok, account_ok, account_name): (Format, Format, &str) = match target.cloud {
        Cloud::Aws => (aws_region, aws_account, "account id"),
        Cloud::Azure => (azure_location, azure_subscription, "subscription id"),
        Cloud::Gcp => (gcp_location, gcp_project, "project id"),
        _ => return Ok(()),
    };
    if let Some(region) = region.filter(|r| !region_ok(r)) {
        return Err(invalid("region", region));
    }
    if let Some(account) = account.filter(|a| !account_ok(a)) {
        return Err(invalid(account_name, account));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_regions_are_words_then_a_number() {
        for ok in [
            "us-east-1",
            "us-gov-west-1",
            "cn-north-1",
            "eu-isoe-west-1",
            "global",
            "GLOBAL",
        ] {
            assert!(aws_region(ok), "{ok}");
        }
        for bad in [
            "",
            "-1",
            "us-1",
            "us-east",
            "us-east-",
            "us--east-1",
            "US-east-1",
            "a-b-c-d-e-1",
            "us-east-1a",
            "us-east-1 ",
            "-us-east-1",
        ] {
            assert!(!aws_region(bad), "{bad}");
        }
        assert!(aws_region("a-b-c-d-1"));
    }

    fn target(cloud: Cloud, account: &str, region: &str) -> Target {
        Target::new(cloud, Some(account.to_owned())).with_region(region)
    }

    #[test]
    fn formats_of_each_cloud() {
        let ok = [
            target(Cloud::Aws, "123456789012", "us-east-1"),
            target(Cloud::Aws, "123456789012", "us-gov-west-1"),
            target(Cloud::Aws, "123456789012", "global"),
            target(
                Cloud::Azure,
                "0b1f6471-1bf0-4dda-aec3-cb9272f09590",
                "westeurope",
            ),
            target(Cloud::Gcp, "acme-prod-1", "us-central1-a"),
            target(Cloud::Gcp, "example.com:acme-prod", "global"),
        ];
        for t in &ok {
            assert!(check(t).is_ok(), "{t:?}");
        }
        let bad = [
            target(Cloud::Aws, "123456789012", "us-east-1\0"),
            target(Cloud::Aws, "123456789012", "us-east-1\nAWS_PROFILE=x"),
            target(Cloud::Aws, "123456789012", "--endpoint-url"),
            target(Cloud::Aws, "12345678901", "us-east-1"),
            target(
                Cloud::Azure,
                "0b1f6471-1bf0-4dda-aec3-cb9272f0959z",
                "westeurope",
            ),
            target(Cloud::Gcp, "--impersonate-service-account=x", "us-central1"),
            target(Cloud::Gcp, "acme-prod-1", "../../etc"),
        ];
        for t in &bad {
            let err = check(t).unwrap_err();
            assert_eq!(err.refusal(), Some(Refusal::InvalidContext), "{t:?}");
            assert!(!err.is_temporary(), "{t:?}");
        }
    }
}
