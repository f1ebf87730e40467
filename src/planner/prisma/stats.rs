//! Counters of the Prisma Cloud planner's API traffic: calls per endpoint,
//! retries, rate-limit answers and how many alert ids each remediation call
//! carried.

use crate::telemetry::ApiCall;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters of one [`PrismaPlanner`](super::PrismaPlanner). Every HTTP
/// request sent counts, retries included.
#[derive(Debug, Default)]
pub struct PrismaStats {
    remediation_calls: AtomicU64,
    alert_ids_requested: AtomicU64,
    max_ids_per_call: AtomicU64,
    login_calls: AtomicU64,
    extend_calls: AtomicU64,
    retries: AtomicU64,
    rate_limited: AtomicU64,
    batch_splits: AtomicU64,
    failed_calls: AtomicU64,
}

/// Which endpoint a request went to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Login,
    Extend,
    Remediation,
}

impl Endpoint {
    /// The kind under which the engine's [`Stats`](crate::telemetry::Stats) counts it.
    pub(crate) fn api_call_kind(self) -> ApiCall {
        match self {
            Endpoint::Login => ApiCall::PrismaLogin,
            Endpoint::Extend => ApiCall::PrismaAuthTokenExtend,
            Endpoint::Remediation => ApiCall::PrismaRemediation,
        }
    }
}

impl PrismaStats {
    pub(crate) fn sent(&self, endpoint: Endpoint, ids: usize) {
        let cell = match endpoint {
            Endpoint::Login => &self.login_calls,
            Endpoint::Extend => &self.extend_calls,
            Endpoint::Remediation => &self.remediation_calls,
        };
        cell.fetch_add(1, Ordering::Relaxed);
        if endpoint == Endpoint::Remediation {
            let ids = ids as u64;
            self.alert_ids_requested.fetch_add(ids, Ordering::Relaxed);
            self.max_ids_per_call.fetch_max(ids, Ordering::Relaxed);
        }
    }

    pub(crate) fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn split(&self) {
        self.batch_splits.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn failed(&self) {
        self.failed_calls.fetch_add(1, Ordering::Relaxed);
    }

    /// A copy of every counter.
    pub fn snapshot(&self) -> PrismaStatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let calls = get(&self.remediation_calls);
        let ids = get(&self.alert_ids_requested);
        PrismaStatsSnapshot {
            remediation_calls: calls,
            alert_ids_requested: ids,
            ids_per_call: if calls == 0 {
                0.0
            } else {
                ids as f64 / calls as f64
            },
            max_ids_per_call: get(&self.max_ids_per_call),
            login_calls: get(&self.login_calls),
            extend_calls: get(&self.extend_calls),
            retries: get(&self.retries),
            rate_limited: get(&self.rate_limited),
            batch_splits: get(&self.batch_splits),
            failed_calls: get(&self.failed_calls),
        }
    }
}

/// A snapshot of [`PrismaStats`]; serializes as one JSON object.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct PrismaStatsSnapshot {
    /// Requests sent to a remediation endpoint (v1 batch or v2 per alert), retries included.
    pub remediation_calls: u64,
    /// Alert ids sent in those requests (an id asked again after a split counts again).
    pub alert_ids_requested: u64,
    /// `alert_ids_requested / remediation_calls`.
    pub ids_per_call: f64,
    /// The most ids one request carried.
    pub max_ids_per_call: u64,
    /// `POST /login` requests.
    pub login_calls: u64,
    /// `GET /auth_token/extend` requests.
    pub extend_calls: u64,
    /// Requests repeated after a 429, a 5xx, a timeout or a connection error.
    pub retries: u64,
    /// 429 Too Many Requests answers.
    pub rate_limited: u64,
    /// Batches the API refused with 400 and that were asked again alert by alert.
    pub batch_splits: u64,
    /// Calls that failed for good (retries exhausted, refused, unreadable answer).
    pub failed_calls: u64,
}

impl PrismaStatsSnapshot {
    /// All API requests sent, whatever the endpoint.
    pub fn api_calls(&self) -> u64 {
        self.remediation_calls + self.login_calls + self.extend_calls
    }
}
