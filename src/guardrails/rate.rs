//! Rate limits per target: a token bucket per account and region (an Azure
//! subscription, a GCP project) in a shared [`GuardrailStore`]. A plan over
//! the limit is **deferred** (`rate_limited`) until its token, never dropped.
//!
//! The default (one plan a second, bursts of five, per account-region) keeps
//! a worker under the documented API throttles: a remediation plan makes a
//! handful of mutating calls, and EC2 refills its mutating-action bucket at
//! 5 calls a second (the EC2 API reference, "Request throttling"); AWS
//! Automated Security Response spaces remediations 3 s apart per
//! account-region for the same reason. IAM and STS publish no per-second
//! quota for these calls; IAM is global, and its findings share the
//! account's `global` region bucket.

use super::store::GuardrailStore;
use super::target_key;
use crate::model::{Cloud, Event, Target};
use crate::pipeline::{Stage, StageDecision};
use crate::plan::Plan;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// A rate: `per_second` plans a second, `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    /// Plans a second (a fraction for fewer: 0.2 is one every 5 s).
    pub per_second: f64,
    /// Plans that may start at once after a quiet spell (at least 1).
    pub burst: u32,
}

impl Rate {
    /// `per_second` plans a second, `burst` at once.
    pub fn new(per_second: f64, burst: u32) -> Self {
        Rate {
            per_second,
            burst: burst.max(1),
        }
    }

    /// The interval between tokens.
    pub fn every(&self) -> Duration {
        if self.per_second.is_finite() && self.per_second > 0.0 {
            Duration::from_secs_f64(1.0 / self.per_second)
        } else {
            Duration::MAX
        }
    }
}

impl Default for Rate {
    /// One plan a second, bursts of five (see the module docs).
    fn default() -> Self {
        Rate::new(1.0, 5)
    }
}

/// Which targets a rate applies to: every field given must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetMatch {
    /// The cloud.
    pub cloud: Option<Cloud>,
    /// The account, subscription or project.
    pub account: Option<String>,
    /// The region (`global` for global services).
    pub region: Option<String>,
}

impl TargetMatch {
    /// Whether `target` is one of these.
    pub fn matches(&self, target: &Target) -> bool {
        self.cloud.as_ref().is_none_or(|c| *c == target.cloud)
            && self
                .account
                .as_deref()
                .is_none_or(|a| target.account_id.as_deref() == Some(a))
            && self
                .region
                .as_deref()
                .is_none_or(|r| target.region.as_deref().unwrap_or("global") == r)
    }
}

/// The rate-limit stage (see the module docs).
#[derive(Debug)]
pub struct RateLimits {
    store: Arc<dyn GuardrailStore>,
    default: Rate,
    by_cloud: Vec<(Cloud, Rate)>,
    by_target: Vec<(TargetMatch, Rate)>,
    /// Per bucket, when this worker asked its last deferred plan to come
    /// back: deferrals are spread one interval apart rather than all
    /// returning at the same instant to take one token.
    retries: Mutex<HashMap<String, SystemTime>>,
}

impl RateLimits {
    /// Rate limits kept in `store`, [`Rate::default`] for every target.
    pub fn new(store: Arc<dyn GuardrailStore>) -> Self {
        RateLimits {
            store,
            default: Rate::default(),
            by_cloud: Vec::new(),
            by_target: Vec::new(),
            retries: Mutex::new(HashMap::new()),
        }
    }

    /// The rate of every target without a more specific one.
    pub fn with_default(mut self, rate: Rate) -> Self {
        self.default = rate;
        self
    }

    /// The rate of every target of `cloud` without a more specific one.
    pub fn with_cloud(mut self, cloud: Cloud, rate: Rate) -> Self {
        self.by_cloud.push((cloud, rate));
        self
    }

    /// The rate of the targets `matching` (the first matching entry wins).
    pub fn with_target(mut self, matching: TargetMatch, rate: Rate) -> Self {
        self.by_target.push((matching, rate));
        self
    }

    /// The rate that applies to `target`.
    pub fn rate_for(&self, target: &Target) -> Rate {
        self.by_target
            .iter()
            .find(|(m, _)| m.matches(target))
            .map(|(_, r)| *r)
            .or_else(|| {
                self.by_cloud
                    .iter()
                    .find(|(c, _)| *c == target.cloud)
                    .map(|(_, r)| *r)
            })
            .unwrap_or(self.default)
    }

    /// How long a deferred plan of bucket `key` waits: at least `wait`,
    /// and one interval after the last one this worker deferred.
    fn spread(&self, key: &str, wait: Duration, every: Duration, now: SystemTime) -> Duration {
        let mut retries = self.retries.lock().unwrap_or_else(|e| e.into_inner());
        let earliest = now + wait;
        let at = match retries.get(key) {
            Some(last) if *last + every > earliest => *last + every,
            _ => earliest,
        };
        retries.insert(key.to_owned(), at);
        if retries.len() > 10_000 {
            retries.retain(|_, t| *t > now);
        }
        at.duration_since(now).unwrap_or(wait)
    }
}

#[async_trait]
impl Stage for RateLimits {
    fn name(&self) -> &str {
        "rate-limits"
    }

    async fn before_execute(&self, _event: &Event, plan: &Plan) -> StageDecision {
        let rate = self.rate_for(&plan.target);
        let key = format!("rate:{}", target_key(&plan.target));
        // A token is taken at `now` but the plan starts when the store has
        // answered: tokens are spaced by the rate's interval plus the time
        // an answer may take, and a token whose answer took longer is given
        // up, so the starts themselves keep to the rate.
        let slack = self.store.answer_within();
        let every = rate.every().saturating_add(slack);
        let now = SystemTime::now();
        let clock = std::time::Instant::now();
        match self.store.take(&key, every, rate.burst, now).await {
            Ok(None) if clock.elapsed() <= slack => StageDecision::Proceed,
            Ok(None) => StageDecision::defer(
                every,
                "rate_limited",
                format!(
                    "the rate-limit store answered in {} ms, later than {} ms: the token is \
                     given up rather than start late",
                    clock.elapsed().as_millis(),
                    slack.as_millis()
                ),
            ),
            Ok(Some(wait)) => {
                let after = self.spread(&key, wait, every, now);
                StageDecision::defer(
                    after,
                    "rate_limited",
                    format!(
                        "{} is at its rate limit ({}/s, burst {}); back in {} ms",
                        target_key(&plan.target),
                        rate.per_second,
                        rate.burst,
                        after.as_millis()
                    ),
                )
            }
            Err(e) => super::unavailable("rate limits", &e),
        }
    }

    /// A dry run takes no token: it would spend the real workers' rate.
    async fn preview_execute(&self, _event: &Event, _plan: &Plan) -> StageDecision {
        StageDecision::Proceed
    }
}
