//! The stage seam: what sits between the gate and execution. A [`Stage`]
//! looks at each event before it is planned and at each plan before it runs,
//! and answers with a [`StageDecision`]: go on, go on with fields added to
//! the audit record, **defer** the delivery (nacked with a delay; never
//! acked, never dead-lettered for it), or **refuse** it (skipped and acked,
//! or rejected and dead-lettered, as the settle table says).
//!
//! Built in: the [`PrismaAlertGate`] (always first) and the [`PolicyFilter`]
//! (`--only-policy` / `--skip-policy`).

use crate::model::Event;
use crate::plan::{Plan, SkipReason};
use crate::source::Delivery;
use async_trait::async_trait;
use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// What a stage says about an event or a plan.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum StageDecision {
    /// Go on.
    Proceed,
    /// Go on, adding these fields to the delivery's audit record
    /// (`annotations`).
    Annotate(BTreeMap<String, serde_json::Value>),
    /// Not now: the delivery is nacked, to come back after `after`.
    Defer {
        /// When to try again.
        after: Duration,
        /// The reason code (`rate_limited`, `circuit_open`...).
        code: &'static str,
        /// Human detail.
        detail: String,
    },
    /// Shadow mode: the plan was made and passed every check a real run
    /// makes, but it does not run; the delivery is acked and audited as
    /// `shadow` with the steps that would have run. Only meaningful from
    /// [`Stage::before_execute`] (before planning it is a skip).
    Shadow {
        /// Human detail (which rule or policy is in shadow mode).
        detail: String,
    },
    /// Not at all: skipped (acked) or, with `reject`, rejected (dead-lettered).
    Refuse {
        /// Rejected (poison, dead-lettered) rather than skipped (acked).
        reject: bool,
        /// The reason code (`excluded`...).
        code: &'static str,
        /// Human detail.
        detail: String,
    },
}

impl StageDecision {
    /// Skip the event (acked) with `code`.
    pub fn skip(code: &'static str, detail: impl Into<String>) -> Self {
        StageDecision::Refuse {
            reject: false,
            code,
            detail: detail.into(),
        }
    }

    /// Reject the event (dead-lettered) with `code`.
    pub fn reject(code: &'static str, detail: impl Into<String>) -> Self {
        StageDecision::Refuse {
            reject: true,
            code,
            detail: detail.into(),
        }
    }

    /// Defer the delivery for `after` with `code`.
    pub fn defer(after: Duration, code: &'static str, detail: impl Into<String>) -> Self {
        StageDecision::Defer {
            after,
            code,
            detail: detail.into(),
        }
    }

    /// Go on, adding `key: value` to the audit record.
    pub fn annotate(key: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        StageDecision::Annotate(BTreeMap::from([(key.into(), value.into())]))
    }
}

/// The rule a plan counts against: the rule that made it (CloudTrail), else
/// the Prisma policy's id (or name), else the planner.
pub fn rule_of(event: &Event, plan: &Plan) -> String {
    if let Some(rule) = &plan.rule {
        return rule.clone();
    }
    if let Event::PrismaAlert(alert) = event {
        if let Some(id) = alert.policy_id().or(alert.policy_name()) {
            return id.to_owned();
        }
    }
    plan.planner.clone()
}

/// Whether the configured rule `name` names `plan`'s rule: its rule name, its
/// Prisma policy's id or name, or its planner, exactly.
pub fn rule_matches(name: &str, event: &Event, plan: &Plan) -> bool {
    if plan.rule.as_deref() == Some(name) || plan.planner == name {
        return true;
    }
    match event {
        Event::PrismaAlert(alert) => {
            alert.policy_id() == Some(name) || alert.policy_name() == Some(name)
        }
        _ => false,
    }
}

/// The rule an event counts against before it has a plan: its Prisma
/// policy's id (or name).
pub(crate) fn event_rule(event: &Event) -> Option<String> {
    match event {
        Event::PrismaAlert(alert) => alert.policy_id().or(alert.policy_name()).map(str::to_owned),
        _ => None,
    }
}

/// What became of a plan a stage let through, for [`Stage::after_execute`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StageOutcome {
    /// The decision the delivery's event ended with (`executed`, `failed`,
    /// `planned` in a dry run...).
    pub decision: crate::pipeline::AuditDecision,
    /// Its reason code, if any (`step_failed`, `duplicate`...).
    pub code: String,
    /// How many steps ran (started), whatever their result.
    pub steps_run: usize,
}

impl StageOutcome {
    /// An outcome: `decision` with reason `code` after `steps_run` steps.
    pub fn new(
        decision: crate::pipeline::AuditDecision,
        code: impl Into<String>,
        steps_run: usize,
    ) -> Self {
        StageOutcome {
            decision,
            code: code.into(),
            steps_run,
        }
    }

    /// Whether the plan failed (a step or the executor failed).
    pub fn failed(&self) -> bool {
        self.decision == crate::pipeline::AuditDecision::Failed
    }
}

/// One stage of the pipeline (see the [pipeline docs](crate::pipeline)). The
/// decision hooks default to [`StageDecision::Proceed`], the outcome hook to
/// nothing.
///
/// A stage must not panic; if it does, the delivery is deferred
/// (`stage_failed`) and comes back later.
#[async_trait]
pub trait Stage: Any + Send + Sync + fmt::Debug {
    /// A short name, for logs.
    fn name(&self) -> &str;

    /// Before the event is claimed and planned.
    async fn before_plan(&self, event: &Event, delivery: &Delivery) -> StageDecision {
        let _ = (event, delivery);
        StageDecision::Proceed
    }

    /// Before the event's plan runs (a dry run asks too): after the
    /// executor's checks passed and an execution slot is free, right before
    /// the finding is claimed and its first step starts, so a limit counted
    /// here is a limit on plans starting.
    async fn before_execute(&self, event: &Event, plan: &Plan) -> StageDecision {
        let _ = (event, plan);
        StageDecision::Proceed
    }

    /// In a dry run, instead of [`before_execute`](Self::before_execute):
    /// what the stage would say about the plan **without taking anything
    /// from shared state** — no rate token, no count in a window, no run
    /// recorded against a circuit — so that a dry run holds nothing and
    /// leaves the limits of the real workers as it found them. It may read
    /// shared state (an open circuit is reported as in a real run).
    ///
    /// The default asks [`before_execute`](Self::before_execute), which is
    /// right for a stage that keeps no state; a stage that counts must
    /// override it.
    async fn preview_execute(&self, event: &Event, plan: &Plan) -> StageDecision {
        self.before_execute(event, plan).await
    }

    /// After a plan every stage let through ended (ran, failed, or stopped
    /// before a step): what became of it. Not called for plans a stage
    /// deferred, refused or shadowed, nor in a dry run (nothing ran).
    async fn after_execute(&self, event: &Event, plan: &Plan, outcome: &StageOutcome) {
        let _ = (event, plan, outcome);
    }
}

/// The Prisma alert gate: test notifications, alerts no longer open and
/// alerts marked not remediable are skipped before anything is claimed or
/// planned.
#[derive(Clone, Copy, Debug, Default)]
pub struct PrismaAlertGate;

#[async_trait]
impl Stage for PrismaAlertGate {
    fn name(&self) -> &str {
        "prisma-alert-gate"
    }

    async fn before_plan(&self, event: &Event, _delivery: &Delivery) -> StageDecision {
        prisma_gate(event)
    }
}

/// [`PrismaAlertGate`]'s decision (synchronous: the pipeline calls it without
/// a boxed future).
pub(super) fn prisma_gate(event: &Event) -> StageDecision {
    let Event::PrismaAlert(alert) = event else {
        return StageDecision::Proceed;
    };
    let skip = |reason: SkipReason, detail: String| StageDecision::skip(reason.code(), detail);
    if alert.is_test_notification() {
        return skip(
            SkipReason::TestNotification,
            "Prisma Cloud test notification".into(),
        );
    }
    if !alert.is_open() {
        return skip(
            SkipReason::NotOpen,
            format!("alert status is {}", alert.status().unwrap_or("unknown")),
        );
    }
    if alert.remediable() == Some(false) {
        return skip(
            SkipReason::NotRemediable,
            "metadata.remediable is false".into(),
        );
    }
    StageDecision::Proceed
}

/// Admits only the Prisma policies named (`--only-policy NAME`, repeatable)
/// and refuses those named to skip (`--skip-policy NAME`); a name matches a
/// policy's name or id, exactly. A refused alert is skipped with
/// `excluded`, the entry that refused it named. With an `only` list, events
/// that name no Prisma policy (CloudTrail, GCP) are refused too: "only"
/// fails closed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyFilter {
    only: Vec<String>,
    skip: Vec<String>,
}

impl PolicyFilter {
    /// A filter that admits everything (add entries with
    /// [`only`](Self::only) and [`skip`](Self::skip)).
    pub fn new() -> Self {
        Self::default()
    }

    /// Admits the policy `name` (a name or an id); once one is given, only
    /// the policies given are admitted.
    pub fn only(mut self, name: impl Into<String>) -> Self {
        self.only.push(name.into());
        self
    }

    /// Refuses the policy `name` (a name or an id).
    pub fn skip(mut self, name: impl Into<String>) -> Self {
        self.skip.push(name.into());
        self
    }

    /// Whether the filter has no entry (and so admits everything).
    pub fn is_empty(&self) -> bool {
        self.only.is_empty() && self.skip.is_empty()
    }

    fn decide(&self, event: &Event) -> StageDecision {
        let (name, id) = match event {
            Event::PrismaAlert(alert) => (alert.policy_name(), alert.policy_id()),
            _ => (None, None),
        };
        let is = |entry: &String| Some(entry.as_str()) == name || Some(entry.as_str()) == id;
        if let Some(entry) = self.skip.iter().find(|e| is(e)) {
            return StageDecision::skip("excluded", format!("skip-policy '{entry}'"));
        }
        if !self.only.is_empty() && !self.only.iter().any(is) {
            let what = name.or(id).map_or_else(
                || "the event names no Prisma policy".to_owned(),
                |n| format!("policy '{n}' is not"),
            );
            return StageDecision::skip(
                "excluded",
                format!("{what} among only-policy ({})", self.only.join(", ")),
            );
        }
        StageDecision::Proceed
    }
}

#[async_trait]
impl Stage for PolicyFilter {
    fn name(&self) -> &str {
        "policy-filter"
    }

    async fn before_plan(&self, event: &Event, _delivery: &Delivery) -> StageDecision {
        self.decide(event)
    }
}
