//! Circuit breakers per rule and per target: more than `max_runs` plans
//! started, or more than `max_failures` plans failed, within `window` →
//! the circuit opens and every later plan of that rule (or target) is
//! **deferred** (`circuit_open`) until an operator closes it
//! ([`CircuitBreakers::close`], `remediate circuit close RULE`) or its
//! optional cool-down ends. An opening is logged as an error.
//!
//! Keys: `rule:NAME` (see [`rule_of`](super::rule_of)) and
//! `target:CLOUD:ACCOUNT:REGION`; the counts live in the store beside the
//! circuit (`KEY#runs`, `KEY#failures`) and closing a circuit empties them.
//!
//! Closing a circuit lets through what it held: each plan deferred while it
//! was open is remembered (`held:KEY`, by alert or event id, for a day), and
//! once the circuit is closed those plans run without counting toward its
//! limit again — the operator who closed it has looked at them. Plans that
//! arrive after the close count as usual.

use super::store::{Circuit, GuardrailStore, Window};
use super::{rule_matches, rule_of, target_key};
use crate::error::Result;
use crate::model::Event;
use crate::pipeline::{Stage, StageDecision, StageOutcome};
use crate::plan::Plan;
use async_trait::async_trait;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// When a circuit opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trip {
    /// More plans started than this within `window` opens it.
    pub max_runs: Option<u32>,
    /// More plans failed than this within `window` opens it.
    pub max_failures: Option<u32>,
    /// The sliding window the counts are taken over.
    pub window: Duration,
    /// Closes by itself this long after opening (none: only an operator closes it).
    pub cool_down: Option<Duration>,
}

impl Default for Trip {
    /// Nothing trips it: set `max_runs` or `max_failures`.
    fn default() -> Self {
        Trip {
            max_runs: None,
            max_failures: None,
            window: Duration::from_secs(60),
            cool_down: None,
        }
    }
}

/// The circuit-breaker stage (see the module docs).
#[derive(Debug)]
pub struct CircuitBreakers {
    store: Arc<dyn GuardrailStore>,
    rules: Vec<(String, Trip)>,
    every_rule: Option<Trip>,
    every_target: Option<Trip>,
    recheck: Duration,
    opened: AtomicU64,
}

impl CircuitBreakers {
    /// Circuit breakers kept in `store`; none trips until given limits.
    pub fn new(store: Arc<dyn GuardrailStore>) -> Self {
        CircuitBreakers {
            store,
            rules: Vec::new(),
            every_rule: None,
            every_target: None,
            recheck: Duration::from_secs(60),
            opened: AtomicU64::new(0),
        }
    }

    /// Limits for the rule `name` (a rule name, a Prisma policy id or name,
    /// or a planner name); the first entry naming a plan's rule wins.
    pub fn with_rule(mut self, name: impl Into<String>, trip: Trip) -> Self {
        self.rules.push((name.into(), trip));
        self
    }

    /// Limits for every rule without its own entry.
    pub fn with_every_rule(mut self, trip: Trip) -> Self {
        self.every_rule = Some(trip);
        self
    }

    /// Limits for every target (account-region, subscription, project).
    pub fn with_every_target(mut self, trip: Trip) -> Self {
        self.every_target = Some(trip);
        self
    }

    /// How long a plan held back by an open circuit waits before it asks
    /// again (default 60 s): the delay between an operator's close and the
    /// held plans running.
    pub fn with_recheck(mut self, recheck: Duration) -> Self {
        self.recheck = recheck.max(Duration::from_secs(1));
        self
    }

    /// Circuits this stage opened since it was built.
    pub fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// The open circuits, by key.
    pub async fn list(&self) -> Result<Vec<(String, Circuit)>> {
        list(&*self.store).await
    }

    /// Closes the circuit `key` (`rule:NAME`, `target:...`, or a bare rule
    /// name); whether it was open.
    pub async fn close(&self, key: &str) -> Result<bool> {
        close(&*self.store, key).await
    }

    /// The circuits that apply to a plan, with their limits.
    fn circuits(&self, event: &Event, plan: &Plan) -> Vec<(String, Trip)> {
        let mut out = Vec::with_capacity(2);
        let rule = self
            .rules
            .iter()
            .find(|(name, _)| rule_matches(name, event, plan))
            .map(|(_, t)| *t)
            .or(self.every_rule);
        if let Some(trip) = rule {
            out.push((format!("rule:{}", rule_of(event, plan)), trip));
        }
        if let Some(trip) = self.every_target {
            out.push((format!("target:{}", target_key(&plan.target)), trip));
        }
        out
    }

    async fn trip(&self, key: &str, trip: &Trip, reason: String) -> Result<()> {
        let now = SystemTime::now();
        let circuit = Circuit::new(now, reason.clone(), trip.cool_down.map(|d| now + d));
        if !self.store.open(key, &circuit).await? {
            // Another worker (or an earlier plan) opened it: counted and
            // logged there.
            return Ok(());
        }
        self.opened.fetch_add(1, Ordering::Relaxed);
        tracing::error!(
            circuit = key,
            reason,
            "circuit opened: its plans are held back until it is closed"
        );
        Ok(())
    }

    fn held(&self, key: &str, circuit: &Circuit, now: SystemTime) -> StageDecision {
        let after = circuit
            .until
            .and_then(|u| u.duration_since(now).ok())
            .map_or(self.recheck, |left| left.min(self.recheck));
        StageDecision::defer(
            after,
            "circuit_open",
            format!(
                "circuit {key} is open ({}); close it with `remediate circuit close {key}`",
                circuit.reason
            ),
        )
    }

    async fn decide(&self, event: &Event, plan: &Plan) -> Result<StageDecision> {
        let circuits = self.circuits(event, plan);
        let now = SystemTime::now();
        let id = hold_id(event, plan);
        for (key, _) in &circuits {
            if let Some(c) = self.store.circuit(key).await? {
                if c.is_open(now) {
                    self.hold(key, &id, now).await?;
                    return Ok(self.held(key, &c, now));
                }
                // Cooled down: closed, with its counts.
                self.store.close(key).await?;
            }
        }
        for (key, trip) in &circuits {
            let Some(max) = trip.max_runs else { continue };
            if self.was_held(key, &id, now).await? {
                continue;
            }
            let runs = format!("{key}#runs");
            if let Window::Full { .. } =
                self.store.admit(&runs, trip.window, max, None, now).await?
            {
                self.hold(key, &id, now).await?;
                let reason = format!(
                    "more than {max} remediations within {}",
                    humantime::format_duration(trip.window)
                );
                self.trip(key, trip, reason).await?;
                if let Some(c) = self.store.circuit(key).await? {
                    return Ok(self.held(key, &c, now));
                }
            }
        }
        Ok(StageDecision::Proceed)
    }
}

/// How long a held plan stays remembered for the close that lets it through.
const HELD_FOR: Duration = Duration::from_secs(24 * 3600);

/// What a held plan is remembered by: its alert or event id, else its rule,
/// target and first command.
fn hold_id(event: &Event, plan: &Plan) -> String {
    if let Some(id) = event.alert_id().or(event.event_id()) {
        return id.to_owned();
    }
    let first = plan
        .steps
        .first()
        .map(|s| s.command.argv().join(" "))
        .unwrap_or_default();
    format!(
        "{}|{}|{first}",
        rule_of(event, plan),
        target_key(&plan.target)
    )
}

impl CircuitBreakers {
    /// Remembers that the circuit `key` held the plan `id`.
    async fn hold(&self, key: &str, id: &str, now: SystemTime) -> Result<()> {
        self.store
            .admit(&format!("held:{key}"), HELD_FOR, u32::MAX, Some(id), now)
            .await
            .map(drop)
    }

    /// Whether the circuit `key` held the plan `id` before it was closed.
    async fn was_held(&self, key: &str, id: &str, now: SystemTime) -> Result<bool> {
        // A window that admits nothing new answers only "already in it".
        let seen = self
            .store
            .admit(&format!("held:{key}"), HELD_FOR, 0, Some(id), now)
            .await?;
        Ok(seen == Window::Counted)
    }
}

/// Every open circuit in `store`.
pub async fn list(store: &dyn GuardrailStore) -> Result<Vec<(String, Circuit)>> {
    store.circuits().await
}

/// Closes the circuit `key` in `store` (a bare name is taken as a rule:
/// `NAME` closes `rule:NAME`); whether it was open.
pub async fn close(store: &dyn GuardrailStore, key: &str) -> Result<bool> {
    let key = if key.starts_with("rule:") || key.starts_with("target:") {
        key.to_owned()
    } else {
        format!("rule:{key}")
    };
    store.close(&key).await
}

#[async_trait]
impl Stage for CircuitBreakers {
    fn name(&self) -> &str {
        "circuit-breakers"
    }

    async fn before_execute(&self, event: &Event, plan: &Plan) -> StageDecision {
        match self.decide(event, plan).await {
            Ok(d) => d,
            Err(e) => super::unavailable("circuit breakers", &e),
        }
    }

    /// A dry run reports an open circuit as a real run would, but counts no
    /// run, holds no plan and closes nothing.
    async fn preview_execute(&self, event: &Event, plan: &Plan) -> StageDecision {
        let now = SystemTime::now();
        for (key, _) in self.circuits(event, plan) {
            match self.store.circuit(&key).await {
                Ok(Some(c)) if c.is_open(now) => return self.held(&key, &c, now),
                Ok(_) => {}
                Err(e) => return super::unavailable("circuit breakers", &e),
            }
        }
        StageDecision::Proceed
    }

    async fn after_execute(&self, event: &Event, plan: &Plan, outcome: &StageOutcome) {
        if !outcome.failed() {
            return;
        }
        let now = SystemTime::now();
        for (key, trip) in self.circuits(event, plan) {
            let Some(max) = trip.max_failures else {
                continue;
            };
            let failures = format!("{key}#failures");
            let counted = self
                .store
                .admit(&failures, trip.window, max.saturating_add(1), None, now)
                .await;
            let over = match counted {
                Ok(Window::Admitted { count }) => count > max,
                Ok(Window::Full { .. }) => true,
                Ok(_) => false,
                Err(e) => {
                    tracing::warn!(circuit = key, error = %e, "counting a failure failed");
                    false
                }
            };
            if over {
                let reason = format!(
                    "more than {max} failed remediations within {}",
                    humantime::format_duration(trip.window)
                );
                if let Err(e) = self.trip(&key, &trip, reason).await {
                    tracing::warn!(circuit = key, error = %e, "opening a circuit failed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Cloud, Target};
    use crate::plan::{Command, Step};

    fn event(id: &str) -> Event {
        let body = format!(r#"{{"alertId":"{id}","accountId":"123456789012","policyId":"p-1"}}"#);
        crate::model::decode(body.as_bytes())
            .unwrap()
            .events
            .remove(0)
    }

    fn plan() -> Plan {
        let target = Target::new(Cloud::Aws, Some("123456789012".to_owned()));
        let step = Step::new(Command::new("aws", vec!["iam".to_owned(), "x".to_owned()]));
        Plan::new("alert-cli", target, vec![step])
    }

    /// Two workers sharing a store trip the same circuit: it opens once,
    /// and only the worker whose write opened it counts (and logs) it.
    #[tokio::test]
    async fn a_circuit_opened_by_another_worker_is_not_counted_again() {
        let store: Arc<dyn GuardrailStore> = Arc::new(crate::guardrails::MemoryGuardrails::new());
        let trip = Trip {
            max_runs: Some(1),
            window: Duration::from_secs(60),
            ..Trip::default()
        };
        let a = CircuitBreakers::new(Arc::clone(&store)).with_rule("p-1", trip);
        let b = CircuitBreakers::new(Arc::clone(&store)).with_rule("p-1", trip);
        assert_eq!(
            a.before_execute(&event("1"), &plan()).await,
            StageDecision::Proceed
        );
        // The second run trips it in `a`...
        let held = a.before_execute(&event("2"), &plan()).await;
        assert!(
            matches!(
                held,
                StageDecision::Defer {
                    code: "circuit_open",
                    ..
                }
            ),
            "{held:?}"
        );
        // ...and `b`, counting on the same store before it saw the circuit,
        // finds it open already.
        b.trip("rule:p-1", &trip, "raced".into()).await.unwrap();
        assert_eq!((a.opened(), b.opened()), (1, 0));
        assert_eq!(store.circuits().await.unwrap().len(), 1);
    }
}
