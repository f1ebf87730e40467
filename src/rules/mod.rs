//! CloudTrail rules: an EventBridge [`EventPattern`] routes CloudTrail events
//! to a [`Remediation`] with parameters.
//!
//! A [`Rule`] is a name, a pattern and a remediation. Rules come from Rust
//! code ([`Rule::new`]) or from a JSON or YAML file ([`RuleSet::from_path`]):
//!
//! ```yaml
//! # Events caused by these principals are ignored (loop prevention):
//! # userIdentity.arn or its session issuer's ARN, `*` as wildcard.
//! ignore-principals:
//!   - "arn:aws:iam::*:role/remediator"
//! rules:
//!   - name: quarantine-iam-writers
//!     pattern:
//!       source: [aws.iam]
//!       detail-type: [AWS API Call via CloudTrail]
//!       detail:
//!         eventName: [{prefix: Create}, {prefix: Attach}, {prefix: Put}]
//!         errorCode: [{exists: false}]
//!     remediation: quarantine-iam-user
//!     parameters:
//!       admin-group: Admins
//! ```
//!
//! Patterns are matched against the EventBridge form of the event
//! ([`eventbridge_view`]) — `source`, `detail-type`, `account`, `region`,
//! `time`, `detail` — whether the record arrived in an EventBridge envelope, a
//! `Records` log file or alone, so a pattern written for an EventBridge rule
//! works unchanged.
//!
//! Built-in remediations ([`builtin`]): [`quarantine-iam-user`](QuarantineIamUser)
//! and [`glue-dev-endpoint-guard`](GlueDevEndpointGuard). A remediation decides
//! with read-only queries (through the same [`CommandExecutor`] that runs the
//! plan, so a dry run sees the real state) and returns the mutating steps.
//!
//! [`CommandExecutor`]: crate::executor::CommandExecutor

mod glue;
mod iam;
mod runbook;

use crate::error::{Error, Result};
use crate::model::CloudTrailRecord;
use crate::plan::EventPattern;

/// The name of the planner that evaluates rules, written in their plans.
pub(crate) const PLANNER_NAME: &str = "cloudtrail";
use serde::Deserialize;
use serde_json::{Map, Value};
use std::fmt;
use std::path::Path;
use std::sync::Arc;

pub use glue::{GLUE_DEV_ENDPOINT_GUARD, GlueDevEndpointGuard, GlueGuardParameters};
pub use iam::{QUARANTINE_IAM_USER, QuarantineIamUser, QuarantineParameters};
pub use runbook::{Probe, Remediation, RuleContext};

/// One rule: events matching `pattern` are handed to `remediation`.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Rule {
    /// The rule's name (audit records and plan descriptions carry it).
    pub name: String,
    /// Which events the rule applies to.
    pub pattern: EventPattern,
    /// What to do about them.
    pub remediation: Arc<dyn Remediation>,
}

impl Rule {
    /// A rule named `name` running `remediation` for events matching `pattern`.
    pub fn new(
        name: impl Into<String>,
        pattern: EventPattern,
        remediation: Arc<dyn Remediation>,
    ) -> Self {
        Rule {
            name: name.into(),
            pattern,
            remediation,
        }
    }
}

/// A principal ARN pattern for loop prevention: `*` matches any run of
/// characters (`\*` is a literal star).
#[derive(Clone, Debug)]
pub struct PrincipalPattern {
    text: String,
    wildcard: Arc<crate::plan::Wildcard>,
}

impl PrincipalPattern {
    /// Parses `text` (`arn:aws:iam::*:role/remediator`, `arn:aws:sts::*:assumed-role/remediator/*`).
    pub fn new(text: impl Into<String>) -> Result<Self> {
        let text = text.into();
        let wildcard = crate::plan::Wildcard::parse(&text)?;
        Ok(PrincipalPattern {
            text,
            wildcard: Arc::new(wildcard),
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `arn` matches.
    pub fn matches(&self, arn: &str) -> bool {
        self.wildcard.matches(arn)
    }
}

/// An ordered list of rules plus the principals whose events are ignored.
#[derive(Clone, Debug, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
    ignore: Vec<PrincipalPattern>,
}

/// The file form of a rule set: an object with `rules` (and optionally
/// `ignore-principals`), or a bare list of rules.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RuleFileBody {
    #[serde(default)]
    ignore_principals: Vec<String>,
    rules: Vec<RuleSpec>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RuleSpec {
    name: String,
    pattern: Value,
    remediation: String,
    #[serde(default)]
    parameters: Value,
}

impl RuleSet {
    /// An empty rule set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a rule (rules are evaluated in the order added).
    pub fn with_rule(mut self, rule: Rule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Ignores events caused by principals matching `pattern` (loop prevention).
    pub fn with_ignored_principal(mut self, pattern: PrincipalPattern) -> Self {
        self.ignore.push(pattern);
        self
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The ignored principal patterns.
    pub fn ignored_principals(&self) -> &[PrincipalPattern] {
        &self.ignore
    }

    /// Reads a rule file: JSON if its name ends in `.json`, YAML otherwise.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("reading rule file {}", path.display()), e))?;
        let json = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        let parsed = if json {
            Self::from_json(&text)
        } else {
            Self::from_yaml(&text)
        };
        parsed.map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    }

    /// Parses rules from JSON text.
    pub fn from_json(text: &str) -> Result<Self> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| Error::Config(format!("invalid rule file: {e}")))?;
        Self::from_value(value)
    }

    /// Parses rules from YAML text.
    pub fn from_yaml(text: &str) -> Result<Self> {
        let value: Value = serde_yaml_ng::from_str(text)
            .map_err(|e| Error::Config(format!("invalid rule file: {e}")))?;
        Self::from_value(value)
    }

    /// Builds rules from the parsed file (see the [module docs](self) for the format).
    pub fn from_value(value: Value) -> Result<Self> {
        let invalid = |e: serde_json::Error| Error::Config(format!("invalid rule file: {e}"));
        let (ignore, specs) = if value.is_array() {
            let rules: Vec<RuleSpec> = serde_json::from_value(value).map_err(invalid)?;
            (Vec::new(), rules)
        } else {
            let body: RuleFileBody = serde_json::from_value(value).map_err(invalid)?;
            (body.ignore_principals, body.rules)
        };
        let mut set = RuleSet::new();
        for p in ignore {
            set = set.with_ignored_principal(PrincipalPattern::new(p)?);
        }
        for (i, spec) in specs.into_iter().enumerate() {
            let context = |e: &dyn fmt::Display| {
                Error::Config(format!("rule {} (`{}`): {e}", i + 1, spec.name))
            };
            let pattern = EventPattern::compile(&spec.pattern).map_err(|e| context(&e))?;
            let remediation =
                builtin(&spec.remediation, &spec.parameters).map_err(|e| context(&e))?;
            set = set.with_rule(Rule::new(spec.name.clone(), pattern, remediation));
        }
        Ok(set)
    }

    /// The first ignored-principal pattern the event's caller matches
    /// (`userIdentity.arn`, or `userIdentity.sessionContext.sessionIssuer.arn`).
    pub fn ignored_by(&self, detail: &Value) -> Option<&PrincipalPattern> {
        let identity = detail.get("userIdentity")?;
        let arns = [
            identity.get("arn"),
            identity.pointer("/sessionContext/sessionIssuer/arn"),
        ];
        arns.into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .find_map(|arn| self.ignore.iter().find(|p| p.matches(arn)))
    }
}

/// Builds a built-in remediation by name from its parameters (a JSON object,
/// or `null` for the defaults): `quarantine-iam-user` or `glue-dev-endpoint-guard`.
pub fn builtin(name: &str, parameters: &Value) -> Result<Arc<dyn Remediation>> {
    let params = if parameters.is_null() {
        Value::Object(Map::new())
    } else {
        parameters.clone()
    };
    let invalid =
        |e: serde_json::Error| Error::Config(format!("invalid parameters for `{name}`: {e}"));
    match name {
        QUARANTINE_IAM_USER => Ok(Arc::new(QuarantineIamUser::new(
            serde_json::from_value(params).map_err(invalid)?,
        ))),
        GLUE_DEV_ENDPOINT_GUARD => Ok(Arc::new(GlueDevEndpointGuard::new(
            serde_json::from_value(params).map_err(invalid)?,
        ))),
        other => Err(Error::Config(format!(
            "unknown remediation `{other}` (built-ins: {QUARANTINE_IAM_USER}, {GLUE_DEV_ENDPOINT_GUARD})"
        ))),
    }
}

/// The EventBridge event a CloudTrail record is delivered as, for matching:
/// `version`, `id`, `detail-type`, `source`, `account`, `time`, `region`,
/// `resources` and the record itself as `detail`.
///
/// `source` is `aws.` plus the service of `eventSource` (`iam.amazonaws.com`
/// → `aws.iam`); `detail-type` follows `eventType` (`AwsApiCall` → `AWS API
/// Call via CloudTrail`...). An envelope's own `id` and `time` are not kept
/// when a record is decoded, so here `id` is the `eventID` and `time` the
/// `eventTime`.
pub fn eventbridge_view(record: &CloudTrailRecord) -> Result<Value> {
    let detail: Value = serde_json::from_str(record.raw())
        .map_err(|e| Error::decode(format!("invalid CloudTrail record: {e}")))?;
    Ok(eventbridge_view_of(detail))
}

/// [`eventbridge_view`] of an already parsed record.
pub fn eventbridge_view_of(detail: Value) -> Value {
    let text = |key: &str| detail.get(key).and_then(Value::as_str);
    let source = text("eventSource").map(|s| {
        let service = s.strip_suffix(".amazonaws.com").unwrap_or(s);
        format!("aws.{service}")
    });
    let detail_type = match text("eventType") {
        Some("AwsConsoleSignIn") => "AWS Console Sign In via CloudTrail",
        Some("AwsServiceEvent") => "AWS Service Event via CloudTrail",
        Some("AwsConsoleAction") => "AWS Console Action via CloudTrail",
        Some("AwsCloudTrailInsight") => "AWS Insight via CloudTrail",
        _ => "AWS API Call via CloudTrail",
    };
    let account = text("recipientAccountId").or_else(|| {
        detail
            .pointer("/userIdentity/accountId")
            .and_then(Value::as_str)
    });
    let mut view = Map::with_capacity(9);
    let mut put = |k: &str, v: Option<&str>| {
        if let Some(v) = v {
            view.insert(k.to_owned(), Value::String(v.to_owned()));
        }
    };
    put("version", Some("0"));
    put("id", text("eventID"));
    put("detail-type", Some(detail_type));
    put("source", source.as_deref());
    put("account", account);
    put("time", text("eventTime"));
    put("region", text("awsRegion"));
    view.insert("resources".to_owned(), Value::Array(Vec::new()));
    view.insert("detail".to_owned(), detail);
    Value::Object(view)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_has_the_eventbridge_shape() {
        let record = CloudTrailRecord::from_text(
            r#"{"eventSource":"iam.amazonaws.com","eventName":"CreateUser","eventType":"AwsApiCall",
                "recipientAccountId":"123456789012","awsRegion":"us-east-1","eventID":"e1"}"#,
        )
        .unwrap();
        let view = eventbridge_view(&record).unwrap();
        assert_eq!(view["source"], "aws.iam");
        assert_eq!(view["detail-type"], "AWS API Call via CloudTrail");
        assert_eq!(view["account"], "123456789012");
        assert_eq!(view["detail"]["eventName"], "CreateUser");
    }

    #[test]
    fn rule_file_errors_name_the_rule() {
        let e = RuleSet::from_yaml(
            "rules:\n  - name: bad\n    pattern: {source: aws.iam}\n    remediation: quarantine-iam-user\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("`bad`") && e.contains("at `source`"), "{e}");
        let e =
            RuleSet::from_yaml("- name: x\n  pattern: {source: [aws.iam]}\n  remediation: nope\n")
                .unwrap_err()
                .to_string();
        assert!(e.contains("unknown remediation `nope`"), "{e}");
    }
}
