//! [`Resource`]: the one resource a finding is about, by every name the finding
//! gives it. A remediating command must act on it (see the command policy's
//! binding rules), so the finding's own names are what commands are compared with.

use serde::{Deserialize, Serialize};

/// The resource a finding is about: its id, its name and its full name (an
/// ARN, an Azure resource id, a Prisma `rrn`, a GCP full resource name), as
/// many as the finding gives. Deserializes from `id`/`name`/`full_name` and
/// from Prisma's spellings (`resourceId`, `resourceName`, `rrn`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Resource {
    /// The resource id (`i-0abc…`, an ARN, an Azure resource id…).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "resourceId",
        alias = "resource_id"
    )]
    pub id: Option<String>,
    /// The resource name (`acme-logs`, a user name…).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "resourceName",
        alias = "resource_name"
    )]
    pub name: Option<String>,
    /// Another full name of the resource: a Prisma Cloud `rrn`, an ARN or a
    /// GCP full resource name, when the finding has one besides the id.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "rrn",
        alias = "arn",
        alias = "fullName"
    )]
    pub full_name: Option<String>,
}

impl Resource {
    /// A resource known by `name` only.
    pub fn named(name: impl Into<String>) -> Self {
        Resource {
            name: Some(name.into()),
            ..Resource::default()
        }
    }

    /// Sets the id.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets the name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the full name (an ARN, an `rrn`, a GCP full resource name).
    pub fn with_full_name(mut self, full_name: impl Into<String>) -> Self {
        self.full_name = Some(full_name.into());
        self
    }

    /// Every name given, without empty ones.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        [&self.id, &self.name, &self.full_name]
            .into_iter()
            .filter_map(|n| n.as_deref().map(str::trim))
            .filter(|n| !n.is_empty())
    }

    /// The resource from the names a finding gives, if it gives any.
    pub fn from_names(
        id: Option<&str>,
        name: Option<&str>,
        full_name: Option<&str>,
    ) -> Option<Self> {
        let own = |s: Option<&str>| {
            s.map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let resource = Resource {
            id: own(id),
            name: own(name),
            full_name: own(full_name),
        };
        let named = resource.names().next().is_some();
        named.then_some(resource)
    }
}

/// An ARN split into its parts: `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`
/// → `(partition, service, region, account, resource)`, or `None` when it
/// does not have that shape. Nothing is checked beyond the shape.
pub(crate) fn split_arn(arn: &str) -> Option<(&str, &str, &str, &str, &str)> {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some(service), Some(region), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    Some((partition, service, region, account, resource))
}

#[cfg(test)]
mod tests {
    use super::Resource;

    #[test]
    fn reads_its_own_and_prismas_spellings() {
        let own: Resource = serde_json::from_str(r#"{"id": "i-1", "name": "web"}"#).unwrap();
        let prisma: Resource = serde_json::from_str(
            r#"{"resourceId": "i-1", "resourceName": "web", "rrn": "rrn::x"}"#,
        )
        .unwrap();
        assert_eq!(own.names().collect::<Vec<_>>(), ["i-1", "web"]);
        assert_eq!(prisma.names().collect::<Vec<_>>(), ["i-1", "web", "rrn::x"]);
        assert_eq!(Resource::from_names(Some(" "), None, Some("")), None);
    }
}
