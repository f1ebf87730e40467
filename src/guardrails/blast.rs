//! Blast-radius limits: how much one rule may change before anyone looks.
//! Two limits, both checked right before a plan starts:
//!
//! - **per rule, per window, across all workers**: at most `max_resources`
//!   distinct resources changed by one rule (see [`rule_of`](super::rule_of))
//!   within `window`, counted in the shared [`GuardrailStore`]'s sliding
//!   window `rule:NAME#resources` with the plan's resource as the member, so
//!   a resource already counted in the window does not count again. A plan
//!   beyond the limit is **deferred** (`blast_radius`) until the oldest
//!   resource leaves the window (at least 5 s).
//! - **per plan**: at most `max_steps` steps and `max_resources` distinct
//!   resources named (see [`plan_resources`] for exactly what counts). A
//!   plan beyond either is **refused**: skipped (acked, nothing runs) with
//!   `blast_radius` and the limit named.
//!
//! The plan's resource is its target's resource id, else its name, else its
//! full name (ARN, `rrn`), else the target key (`CLOUD:ACCOUNT:REGION`, an
//! account-level setting), written `CLOUD:ACCOUNT/RESOURCE` so that a name
//! such as `default` in two accounts is two resources. An admitted plan's
//! audit record carries it in `annotations.resource` (read by
//! [`AuditReport`](super::AuditReport)).
//!
//! Put this stage after the rate limits and circuit breakers: a resource is
//! counted when this stage lets its plan go on, and a plan a later stage
//! defers keeps its place (its resource is already a member). Closing a
//! rule's circuit (`remediate circuit close NAME`) empties its
//! `rule:NAME#…` windows, this count included.

use super::store::{GuardrailStore, Window};
use super::{rule_matches, rule_of, target_key};
use crate::error::Result;
use crate::model::{Event, Target};
use crate::pipeline::{Stage, StageDecision};
use crate::plan::Plan;
use async_trait::async_trait;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The shortest a plan held back by a full window waits: a window that
/// frees a place in a few milliseconds should not bring the plan straight
/// back to a queue still full of the same rule's findings.
const MIN_DEFER: Duration = Duration::from_secs(5);

/// A rule's blast-radius limit: at most `max_resources` distinct resources
/// changed within `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlastLimits {
    /// Distinct resources one rule may change within `window`.
    pub max_resources: u32,
    /// The sliding window the resources are counted over.
    pub window: Duration,
}

impl BlastLimits {
    /// At most `max_resources` distinct resources within `window`.
    pub fn new(max_resources: u32, window: Duration) -> Self {
        BlastLimits {
            max_resources,
            window,
        }
    }
}

/// The blast-radius stage (see the module docs).
#[derive(Debug)]
pub struct BlastRadius {
    store: Arc<dyn GuardrailStore>,
    rules: Vec<(String, BlastLimits)>,
    every_rule: Option<BlastLimits>,
    max_steps: Option<usize>,
    max_plan_resources: Option<usize>,
}

impl BlastRadius {
    /// Blast-radius limits kept in `store`; nothing is limited until given
    /// limits.
    pub fn new(store: Arc<dyn GuardrailStore>) -> Self {
        BlastRadius {
            store,
            rules: Vec::new(),
            every_rule: None,
            max_steps: None,
            max_plan_resources: None,
        }
    }

    /// Limits for the rule `name` (a rule name, a Prisma policy id or name,
    /// or a planner); the first entry naming a plan's rule wins.
    pub fn with_rule(mut self, name: impl Into<String>, limits: BlastLimits) -> Self {
        self.rules.push((name.into(), limits));
        self
    }

    /// Limits for every rule without its own entry.
    pub fn with_every_rule(mut self, limits: BlastLimits) -> Self {
        self.every_rule = Some(limits);
        self
    }

    /// Per-plan limits: at most `max_steps` steps and `max_resources`
    /// distinct resources named (see [`plan_resources`]); `None` for no limit.
    pub fn with_plan_limits(
        mut self,
        max_steps: Option<usize>,
        max_resources: Option<usize>,
    ) -> Self {
        self.max_steps = max_steps;
        self.max_plan_resources = max_resources;
        self
    }

    /// The per-plan limits' verdict: a refusal naming the limit, if one is passed.
    fn plan_refusal(&self, plan: &Plan) -> Option<StageDecision> {
        if let Some(max) = self.max_steps.filter(|max| plan.steps.len() > *max) {
            return Some(StageDecision::skip(
                "blast_radius",
                format!(
                    "the plan has {} steps, more than the per-plan limit max_steps {max}",
                    plan.steps.len()
                ),
            ));
        }
        let max = self.max_plan_resources?;
        let named = plan_resources(plan);
        (named.len() > max).then(|| {
            let shown: Vec<&str> = named.iter().take(5).map(String::as_str).collect();
            StageDecision::skip(
                "blast_radius",
                format!(
                    "the plan names {} distinct resources, more than the per-plan limit \
                     max_resources {max} ({}{})",
                    named.len(),
                    shown.join(", "),
                    if named.len() > shown.len() {
                        ", …"
                    } else {
                        ""
                    }
                ),
            )
        })
    }

    async fn decide(&self, event: &Event, plan: &Plan) -> Result<StageDecision> {
        if let Some(refusal) = self.plan_refusal(plan) {
            return Ok(refusal);
        }
        let member = plan_member(&plan.target);
        let limits = self
            .rules
            .iter()
            .find(|(name, _)| rule_matches(name, event, plan))
            .map(|(_, l)| *l)
            .or(self.every_rule);
        let Some(limits) = limits else {
            return Ok(StageDecision::annotate("resource", member));
        };
        let rule = rule_of(event, plan);
        let key = format!("rule:{rule}#resources");
        let now = SystemTime::now();
        let counted = self
            .store
            .admit(
                &key,
                limits.window,
                limits.max_resources,
                Some(&member),
                now,
            )
            .await?;
        Ok(match counted {
            Window::Full { count, retry_after } => {
                let after = retry_after.max(MIN_DEFER);
                StageDecision::defer(
                    after,
                    "blast_radius",
                    format!(
                        "rule {rule} changed {count} resources within {} (limit {}); \
                         {member} waits {} s",
                        humantime::format_duration(limits.window),
                        limits.max_resources,
                        after.as_secs()
                    ),
                )
            }
            _ => StageDecision::annotate("resource", member),
        })
    }
}

#[async_trait]
impl Stage for BlastRadius {
    fn name(&self) -> &str {
        "blast-radius"
    }

    async fn before_execute(&self, event: &Event, plan: &Plan) -> StageDecision {
        match self.decide(event, plan).await {
            Ok(d) => d,
            Err(e) => super::unavailable("blast radius", &e),
        }
    }

    /// A dry run applies the per-plan limits (they count nothing) but adds
    /// nothing to the rule's window of changed resources.
    async fn preview_execute(&self, _event: &Event, plan: &Plan) -> StageDecision {
        self.plan_refusal(plan)
            .unwrap_or_else(|| StageDecision::annotate("resource", plan_member(&plan.target)))
    }
}

/// The resource a plan changes, as counted in a rule's window:
/// `CLOUD:ACCOUNT/RESOURCE` (see the module docs).
fn plan_member(target: &Target) -> String {
    let resource = target.resource.as_ref().and_then(|r| {
        [&r.id, &r.name, &r.full_name]
            .into_iter()
            .filter_map(|n| n.as_deref().map(str::trim))
            .find(|n| !n.is_empty())
    });
    match resource {
        Some(r) => format!(
            "{}:{}/{r}",
            target.cloud.as_str(),
            target.account_id.as_deref().unwrap_or("-")
        ),
        None => target_key(target),
    }
}

/// The distinct resources a plan names, for the per-plan limit: its
/// target's resource (once, whatever names it has; the target key for a
/// finding without one), and every resource named in its steps' argvs (see
/// [`argv_resources`]) that is not one of the target's names. An ARN whose
/// last segment is one of the target's names is the target too.
pub fn plan_resources(plan: &Plan) -> BTreeSet<String> {
    let target: Vec<&str> = plan
        .target
        .resource
        .iter()
        .flat_map(|r| r.names())
        .collect();
    let is_target = |named: &str| {
        target.contains(&named)
            || named
                .rsplit(['/', ':'])
                .next()
                .is_some_and(|last| target.contains(&last))
    };
    let mut out = BTreeSet::from([plan_member(&plan.target)]);
    for step in &plan.steps {
        out.extend(argv_resources(step.command.argv()).filter(|r| !is_target(r)));
    }
    out
}

/// The resources one argv names, by their shape (an argument, or the value
/// of `--option=value`):
///
/// - an AWS ARN (`arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`), except
///   AWS-managed ones (account `aws`, such as `arn:aws:iam::aws:policy/…`):
///   they are attached or referred to, never changed;
/// - an AWS resource id (`i-0abc…`, `sg-…`, `vol-…`: a lowercase prefix, a
///   dash and 8 or 17 hex digits);
/// - an Azure resource id (`/subscriptions/…`);
/// - a GCP full resource name (`//SERVICE.googleapis.com/…`) or a Cloud
///   Storage bucket (`gs://BUCKET`, the bucket alone).
///
/// Names given only as option values (`--user-name alice`, `--bucket b`)
/// are not recognised: the target's own resource stands for them.
pub fn argv_resources<S: AsRef<str>>(argv: &[S]) -> impl Iterator<Item = String> + '_ {
    argv.iter().filter_map(|arg| {
        let arg = arg.as_ref();
        let value = match arg.split_once('=') {
            Some((option, value)) if option.starts_with("--") => value,
            _ => arg,
        };
        resource_shape(value)
    })
}

fn resource_shape(value: &str) -> Option<String> {
    if let Some(rest) = value.strip_prefix("arn:") {
        let parts: Vec<&str> = rest.splitn(5, ':').collect();
        return (parts.len() == 5 && parts[3] != "aws" && !parts[4].is_empty())
            .then(|| value.to_owned());
    }
    if value.len() > "/subscriptions/".len()
        && value[.."/subscriptions/".len()].eq_ignore_ascii_case("/subscriptions/")
    {
        return Some(value.trim_end_matches('/').to_owned());
    }
    if let Some(rest) = value.strip_prefix("//") {
        return rest
            .split_once('/')
            .is_some_and(|(host, path)| host.ends_with(".googleapis.com") && !path.is_empty())
            .then(|| value.to_owned());
    }
    if let Some(rest) = value.strip_prefix("gs://") {
        let bucket = rest.split('/').next().unwrap_or_default();
        return (!bucket.is_empty()).then(|| format!("gs://{bucket}"));
    }
    let (prefix, hex) = value.split_once('-')?;
    let id = (1..=12).contains(&prefix.len())
        && prefix.bytes().all(|b| b.is_ascii_lowercase())
        && matches!(hex.len(), 8 | 17)
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    id.then(|| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Cloud, Resource};
    use crate::plan::{Command, Step};

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    fn step(s: &str) -> Step {
        let a = argv(s);
        Step::new(Command::new(a[0].clone(), a[1..].to_vec()))
    }

    #[test]
    fn argv_resources_are_read_by_shape() {
        let found: Vec<String> = argv_resources(&argv(
            "aws ec2 modify-instance-attribute --instance-id i-0123456789abcdef0 \
             --groups sg-0abc1234 --policy-arn arn:aws:iam::aws:policy/AWSDenyAll \
             --role=arn:aws:iam::123456789012:role/r --user-name alice \
             /SUBSCRIPTIONS/s/resourceGroups/g/providers/x/y \
             //compute.googleapis.com/projects/p/zones/z/instances/i \
             gs://bucket/object/path --region us-east-1 deadbeef-x",
        ))
        .collect();
        assert_eq!(
            found,
            [
                "i-0123456789abcdef0",
                "sg-0abc1234",
                "arn:aws:iam::123456789012:role/r",
                "/SUBSCRIPTIONS/s/resourceGroups/g/providers/x/y",
                "//compute.googleapis.com/projects/p/zones/z/instances/i",
                "gs://bucket",
            ]
        );
    }

    #[test]
    fn a_plan_counts_its_target_once_and_what_else_it_names() {
        let target = Target::new(Cloud::Aws, Some("123456789012".to_owned()))
            .with_resource(Resource::named("web").with_id("i-0123456789abcdef0"));
        let plan = Plan::new(
            "p",
            target,
            vec![
                step("aws ec2 stop-instances --instance-ids i-0123456789abcdef0"),
                step("aws ec2 x arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0"),
                step("aws ec2 revoke --group-id sg-0abc1234"),
                step("aws ec2 revoke --group-id sg-0abc1234"),
            ],
        );
        assert_eq!(
            plan_resources(&plan).into_iter().collect::<Vec<_>>(),
            ["aws:123456789012/i-0123456789abcdef0", "sg-0abc1234"]
        );
        let bare = Plan::new("p", Target::new(Cloud::Gcp, None), vec![]);
        assert_eq!(
            plan_resources(&bare).into_iter().collect::<Vec<_>>(),
            ["gcp:-:global"]
        );
    }

    fn event() -> Event {
        let body = br#"{"alertId":"A","accountId":"123456789012","policyId":"p-9"}"#;
        crate::model::decode(body).unwrap().events.remove(0)
    }

    fn plan_for(resource: &str) -> Plan {
        let target = Target::new(Cloud::Aws, Some("123456789012".to_owned()))
            .with_resource(Resource::named(resource));
        Plan::new("alert-cli", target, vec![step("aws iam x")])
    }

    fn code(d: &StageDecision) -> Option<(&'static str, Duration)> {
        match d {
            StageDecision::Defer { code, after, .. } => Some((code, *after)),
            _ => None,
        }
    }

    #[tokio::test]
    async fn a_rules_own_limit_wins_and_a_counted_resource_passes() {
        let store = Arc::new(crate::guardrails::MemoryGuardrails::new());
        let stage = BlastRadius::new(store)
            .with_rule("p-9", BlastLimits::new(1, Duration::from_millis(10)))
            .with_every_rule(BlastLimits::new(100, Duration::from_secs(60)));
        let event = event();
        assert_eq!(
            stage.before_execute(&event, &plan_for("a")).await,
            StageDecision::annotate("resource", "aws:123456789012/a")
        );
        // The same resource again: counted once.
        assert_eq!(
            code(&stage.before_execute(&event, &plan_for("a")).await),
            None
        );
        // Another: over the rule's limit of 1, back in at least 5 s although
        // the window frees a place in 10 ms.
        assert_eq!(
            code(&stage.before_execute(&event, &plan_for("b")).await),
            Some(("blast_radius", MIN_DEFER))
        );
    }

    #[test]
    fn per_plan_limits_refuse_naming_the_limit() {
        let store = Arc::new(crate::guardrails::MemoryGuardrails::new());
        let stage = BlastRadius::new(store).with_plan_limits(Some(2), Some(2));
        let mut plan = plan_for("alice");
        plan.steps = vec![
            step("aws iam x --user-name alice"),
            step("aws ec2 y --group-id sg-0abc1234 --role arn:aws:iam::123456789012:role/r"),
        ];
        let refused = stage.plan_refusal(&plan);
        let Some(StageDecision::Refuse {
            reject,
            code,
            detail,
        }) = refused
        else {
            panic!("{refused:?}");
        };
        assert!(!reject, "skipped, not dead-lettered");
        assert_eq!(code, "blast_radius");
        assert!(detail.contains("names 3 distinct resources"), "{detail}");
        assert!(detail.contains("max_resources 2"), "{detail}");
        plan.steps.pop();
        assert_eq!(stage.plan_refusal(&plan), None);
        plan.steps.extend([step("a b"), step("c d")]);
        let refused = format!("{:?}", stage.plan_refusal(&plan));
        assert!(
            refused.contains("3 steps, more than the per-plan limit max_steps 2"),
            "{refused}"
        );
    }

    /// A store that cannot answer.
    #[derive(Debug)]
    struct Down;

    fn down() -> crate::Error {
        crate::Error::Backend {
            backend: "test",
            message: "down".into(),
            temporary: true,
            source: None,
        }
    }

    #[async_trait]
    impl GuardrailStore for Down {
        async fn take(
            &self,
            _: &str,
            _: Duration,
            _: u32,
            _: SystemTime,
        ) -> Result<Option<Duration>> {
            Err(down())
        }
        async fn admit(
            &self,
            _: &str,
            _: Duration,
            _: u32,
            _: Option<&str>,
            _: SystemTime,
        ) -> Result<Window> {
            Err(down())
        }
        async fn circuit(&self, _: &str) -> Result<Option<crate::guardrails::Circuit>> {
            Err(down())
        }
        async fn open(&self, _: &str, _: &crate::guardrails::Circuit) -> Result<bool> {
            Err(down())
        }
        async fn close(&self, _: &str) -> Result<bool> {
            Err(down())
        }
        async fn circuits(&self) -> Result<Vec<(String, crate::guardrails::Circuit)>> {
            Err(down())
        }
    }

    #[tokio::test]
    async fn a_store_that_cannot_answer_defers() {
        let stage = BlastRadius::new(Arc::new(Down))
            .with_every_rule(BlastLimits::new(10, Duration::from_secs(60)));
        let decided = stage.before_execute(&event(), &plan_for("a")).await;
        assert!(
            matches!(
                decided,
                StageDecision::Defer {
                    code: "guardrail_unavailable",
                    ..
                }
            ),
            "{decided:?}"
        );
        // Without a window to count in, the store is not asked.
        let free = BlastRadius::new(Arc::new(Down)).with_plan_limits(Some(5), None);
        assert!(matches!(
            free.before_execute(&event(), &plan_for("a")).await,
            StageDecision::Annotate(_)
        ));
    }
}
