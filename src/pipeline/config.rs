//! The settings of the worker and its pipeline ([`EngineConfig`]).

use super::LeasePolicy;
use crate::telemetry::Backoff;
use std::time::Duration;

/// Engine settings. `Default` is a sensible production setup.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct EngineConfig {
    /// Plans running at once (steps executing). Default 8.
    pub concurrency: usize,
    /// The most deliveries received and not yet settled: those running,
    /// those read ahead (waiting to be planned or to run) and those being
    /// settled. Never fewer than `concurrency`. Default 64.
    ///
    /// Reading ahead lets the worker receive full batches and plan every
    /// waiting event in one planner call whatever the concurrency; waiting
    /// deliveries keep their leases. With a planner that does not plan in
    /// batches ([`RemediationPlanner::wants_batches`](crate::planner::RemediationPlanner::wants_batches))
    /// the worker reads at most `concurrency` + one receive batch ahead: more
    /// would bring nothing, and every delivery a worker holds when it dies
    /// has used up one of the queue's receives (its redrive policy counts them).
    pub read_ahead: usize,
    /// The most bytes of delivery bodies received and not yet settled (a
    /// soft bound: a receive starts only below it, so it may be passed by
    /// one batch). Default 16 MiB.
    pub read_ahead_bytes: usize,
    /// The most deliveries asked for per receive call. Default 10.
    pub receive_batch: usize,
    /// A delivery that fails on its `max_deliveries`-th delivery is
    /// dead-lettered instead of nacked. Default 5. Where the source counts
    /// failed attempts apart from receives ([`Delivery::attempt`](crate::source::Delivery::attempt)),
    /// the `max_deliveries`-th failed attempt, or a delivery count of twice
    /// this, whichever comes first.
    pub max_deliveries: u32,
    /// Retry delay after a failure, by delivery count.
    pub retry: Backoff,
    /// Delay between failed receive calls.
    pub receive_retry: Backoff,
    /// How leases are extended while steps run.
    pub lease: LeasePolicy,
    /// How long a dedup claim lasts before another worker may take over,
    /// with a store that does not renew claims ([`DedupStore::renews`](super::DedupStore::renews)).
    /// Default 15 min: longer than any plan should run.
    pub dedup_lease: Duration,
    /// How long a dedup claim lasts with a store that renews claims: it is
    /// renewed every third of this while its delivery's work runs, so a
    /// worker that dies frees its claims within this time. Default 60 s.
    pub claim_lease: Duration,
    /// How long a completed finding is remembered. Default 24 h.
    pub dedup_ttl: Duration,
    /// In dry run, settle deliveries as a real run would (default: settle
    /// nothing, so a dry run leaves the queue as it found it). By default a
    /// dry run makes one pass: it keeps what it has seen until the pass ends
    /// — at the first receive that is empty or brings only deliveries it has
    /// already reported — and then releases everything at once (visibility
    /// 0, unlock), each delivery reported once.
    pub settle_in_dry_run: bool,
    /// How long the audit sink may keep failing before the worker stops
    /// with an error. Meanwhile nothing is acked or dead-lettered without
    /// its record: such deliveries are nacked. Default 60 s.
    pub audit_outage_limit: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            concurrency: 8,
            read_ahead: 64,
            read_ahead_bytes: 16 << 20,
            receive_batch: 10,
            max_deliveries: 5,
            retry: Backoff::default(),
            receive_retry: Backoff::new(Duration::from_millis(500), Duration::from_secs(30)),
            lease: LeasePolicy::default(),
            dedup_lease: Duration::from_secs(15 * 60),
            claim_lease: Duration::from_secs(60),
            dedup_ttl: Duration::from_secs(24 * 3600),
            settle_in_dry_run: false,
            audit_outage_limit: Duration::from_secs(60),
        }
    }
}

impl EngineConfig {
    /// Sets the concurrency (at least 1).
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }
    /// Sets the most deliveries received and not yet settled (at least
    /// the concurrency when the worker runs).
    pub fn with_read_ahead(mut self, n: usize) -> Self {
        self.read_ahead = n.max(1);
        self
    }
    /// Sets the most bytes of bodies received and not yet settled (at least 1).
    pub fn with_read_ahead_bytes(mut self, bytes: usize) -> Self {
        self.read_ahead_bytes = bytes.max(1);
        self
    }
    /// The read-ahead the worker uses: `read_ahead`, at least `concurrency`.
    pub fn in_flight_limit(&self) -> usize {
        self.read_ahead.max(self.concurrency).max(1)
    }
    /// Sets the receive batch size (at least 1).
    pub fn with_receive_batch(mut self, n: usize) -> Self {
        self.receive_batch = n.max(1);
        self
    }
    /// Sets the delivery count at which a failing delivery is dead-lettered.
    pub fn with_max_deliveries(mut self, n: u32) -> Self {
        self.max_deliveries = n.max(1);
        self
    }
    /// Sets the retry schedule.
    pub fn with_retry(mut self, retry: Backoff) -> Self {
        self.retry = retry;
        self
    }
    /// Sets the lease policy.
    pub fn with_lease(mut self, lease: LeasePolicy) -> Self {
        self.lease = lease;
        self
    }
    /// Sets how long a claim lasts with a store that renews claims (at least 1 s).
    pub fn with_claim_lease(mut self, lease: Duration) -> Self {
        self.claim_lease = lease.max(Duration::from_secs(1));
        self
    }
    /// Settle deliveries in dry run too.
    pub fn with_settle_in_dry_run(mut self, yes: bool) -> Self {
        self.settle_in_dry_run = yes;
        self
    }
    /// Sets how long the audit sink may keep failing before the worker stops.
    pub fn with_audit_outage_limit(mut self, limit: Duration) -> Self {
        self.audit_outage_limit = limit;
        self
    }
}
