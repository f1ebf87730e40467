//! A [`GuardrailStore`] in one DynamoDB table, so several workers and Lambda
//! functions obey one limit. Feature `dynamodb`.
//!
//! One item per bucket, window and circuit; partition key `pk` (string), no
//! sort key:
//!
//! | item | `pk` | attributes |
//! |---|---|---|
//! | rate bucket | `bucket#KEY` | `tat_ns` (N): the bucket's theoretical arrival time, epoch nanoseconds; `ver`; `expires_at` |
//! | sliding window | `window#KEY` | `entries` (L of M: `t` (N) epoch milliseconds, `m` (S) the member, if any), oldest first, pruned on every write; `ver`; `expires_at` |
//! | circuit | `circuit#KEY` | `opened_at` (N, epoch ms), `reason` (S), `until` (N, epoch ms, a cool-down's end, if any) |
//!
//! `ver` (N) counts the item's writes; `expires_at` (N, epoch **seconds**)
//! is when the item says nothing any more (the bucket is full again, every
//! entry has left the window) — the table's TTL attribute, so DynamoDB's
//! deletion, whenever it comes, changes no answer. Circuits never expire.
//!
//! | call | DynamoDB requests |
//! |---|---|
//! | `take`, `admit` | a consistent `GetItem`, the same pure step as [`MemoryGuardrails`](super::MemoryGuardrails) (`gcra`, `prune` + `count`), and, when it changed the item, a `PutItem` on the condition `ver = :read` (`attribute_not_exists(pk)` for a new item); a lost race (`ConditionalCheckFailed`) repeats the whole read-compute-write after a short jittered pause, up to 8 times, then fails (temporary) |
//! | `circuit` | a consistent `GetItem` |
//! | `open` | `PutItem` if `attribute_not_exists(pk)`: a circuit already open stays as it was |
//! | `close` | `DeleteItem` of the windows `window#KEY#runs` and `window#KEY#failures` (the counts [`CircuitBreakers`](super::CircuitBreakers) keeps), then of `circuit#KEY` (returning it: whether it was open). The windows go first, so no plan is counted into an old window after its circuit closed. Other windows named `KEY#...` are not emptied (the memory store empties them all) |
//! | `circuits` | a `Scan` of the table for the `circuit#` items (paginated, consistent): it reads every item, so keep the table to guardrails |
//!
//! Times are the callers' `now` (workers' wall clocks: keep them in sync);
//! window entries are kept to the millisecond, and a window counts a call
//! whose `now` is older than its newest entry (a racer that read the clock
//! first but wrote last) at that entry's time. An answer that changes
//! nothing (no token, a full window, a member already counted) writes
//! nothing. A window's entries live in one item (400 KB at most): limits
//! up to a few thousand entries.

mod builder;

pub use builder::{DynamoDbGuardrailsBuilder, DynamoDbGuardrailsConfigKey};

use super::store::{Circuit, GuardrailStore, Window, count, gcra, prune};
use crate::aws::classify;
use crate::error::{Error, Result};
use crate::telemetry::{ApiCall, Stats, StatsSlot};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const BACKEND: &str = "dynamodb";

/// The partition key attribute (string).
const KEY_ATTRIBUTE: &str = "pk";
/// When the item says nothing any more, epoch seconds: the table's TTL attribute.
const TTL_ATTRIBUTE: &str = "expires_at";
const VERSION: &str = "ver";
const TAT: &str = "tat_ns";
const ENTRIES: &str = "entries";
const OPENED_AT: &str = "opened_at";
const REASON: &str = "reason";
const UNTIL: &str = "until";
const CIRCUIT_PREFIX: &str = "circuit#";
/// Read-compute-write rounds a call makes before it reports contention.
const ATTEMPTS: u32 = 8;

type Item = HashMap<String, AttributeValue>;

/// A [`GuardrailStore`] in a DynamoDB table (partition key `pk`, string; no
/// sort key): one item per rate bucket (`bucket#KEY`), sliding window
/// (`window#KEY`) and circuit (`circuit#KEY`). Every call is one atomic
/// change: a consistent read, the memory store's own step, and a `PutItem`
/// on the condition that the item's version did not change, repeated from
/// the read when a racing writer won (up to 8 times, then a temporary
/// error). `circuits` scans the table: keep it to guardrails. Create it
/// with [`create_table`](Self::create_table).
///
/// ```no_run
/// # async fn f() -> remediation::Result<()> {
/// use remediation::guardrails::{DynamoDbGuardrails, RateLimits};
/// use std::sync::Arc;
/// // REMEDIATION_GUARDRAILS_TABLE=remediation-guardrails; region and credentials from the AWS chain
/// let store = Arc::new(DynamoDbGuardrails::from_env().await?);
/// let rates = RateLimits::new(store);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct DynamoDbGuardrails {
    client: Client,
    table: String,
    /// Where calls are counted (shared by clones).
    slot: Arc<StatsSlot>,
}

impl fmt::Debug for DynamoDbGuardrails {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynamoDbGuardrails")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

/// What one read-compute-write round decided.
enum Step<T> {
    /// Nothing to write: answer `T`.
    Answer(T),
    /// Write this item (without `pk` and `ver`), then answer `T`.
    Write(Item, T),
}

impl DynamoDbGuardrails {
    /// A builder.
    pub fn builder() -> DynamoDbGuardrailsBuilder {
        DynamoDbGuardrailsBuilder::new()
    }

    /// A store configured from the environment (see [`DynamoDbGuardrailsBuilder::from_env`]).
    pub async fn from_env() -> Result<DynamoDbGuardrails> {
        DynamoDbGuardrailsBuilder::from_env().build().await
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Counts every DynamoDB call in `stats` from now on (with those counted so far).
    pub fn attach_stats(&self, stats: &Arc<Stats>) {
        self.slot.attach(stats);
    }

    /// Reads the item `pk` (consistent read).
    async fn read(&self, pk: &str) -> Result<Option<Item>> {
        self.slot.count_api_call(ApiCall::DynamoDbGetItem);
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(KEY_ATTRIBUTE, AttributeValue::S(pk.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify(BACKEND, "GetItem", e))?;
        Ok(out.item)
    }

    /// Writes `item` as `pk` if nobody wrote it since it was read at
    /// version `read` (`None`: it did not exist); whether it was written.
    async fn write_if(&self, pk: &str, mut item: Item, read: Option<u64>) -> Result<bool> {
        item.insert(KEY_ATTRIBUTE.to_owned(), AttributeValue::S(pk.to_owned()));
        let next = read.map_or(1, |v| v + 1);
        item.insert(VERSION.to_owned(), AttributeValue::N(next.to_string()));
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        let put = match read {
            None => put
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", KEY_ATTRIBUTE),
            Some(v) => put
                .condition_expression("#ver = :ver")
                .expression_attribute_names("#ver", VERSION)
                .expression_attribute_values(":ver", AttributeValue::N(v.to_string())),
        };
        self.slot.count_api_call(ApiCall::DynamoDbPutItem);
        condition_held("PutItem", put.send().await)
    }

    /// One atomic change of the item `pk`: read it, let `step` decide, and
    /// write what it decided on the condition that the item did not change
    /// in between; a lost race starts again from the read.
    async fn change<T>(
        &self,
        pk: &str,
        mut step: impl FnMut(Option<&Item>) -> Step<T>,
    ) -> Result<T> {
        for attempt in 1..=ATTEMPTS {
            let item = self.read(pk).await?;
            let version = item.as_ref().map(|i| number(i, VERSION).unwrap_or(0));
            match step(item.as_ref()) {
                Step::Answer(answer) => return Ok(answer),
                Step::Write(new, answer) => {
                    if self.write_if(pk, new, version).await? {
                        return Ok(answer);
                    }
                }
            }
            tokio::time::sleep(pause(attempt)).await;
        }
        Err(Error::Backend {
            backend: BACKEND,
            message: format!(
                "{pk} in {} changed under {ATTEMPTS} attempts in a row (too many writers on one key)",
                self.table
            ),
            temporary: true,
            source: None,
        })
    }

    /// Deletes the item `pk`; whether it was there.
    async fn delete(&self, pk: &str) -> Result<bool> {
        self.slot.count_api_call(ApiCall::DynamoDbDeleteItem);
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(KEY_ATTRIBUTE, AttributeValue::S(pk.to_owned()))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| classify(BACKEND, "DeleteItem", e))?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }
}

/// `Ok(true)` when a conditional write was made, `Ok(false)` when its
/// condition failed; any other failure classified.
fn condition_held<T, E>(
    op: &str,
    sent: std::result::Result<
        T,
        aws_sdk_dynamodb::error::SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>,
    >,
) -> Result<bool>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match sent {
        Ok(_) => Ok(true),
        Err(e) => {
            let e = classify(BACKEND, op, e);
            match e.code() {
                Some("ConditionalCheckFailedException") => Ok(false),
                _ => Err(e.into()),
            }
        }
    }
}

/// A short pause before round `attempt + 1`: a few milliseconds, growing,
/// jittered so racing writers do not collide again.
fn pause(attempt: u32) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(attempt);
    let base = 5 * u64::from(attempt.min(6));
    Duration::from_millis(base + h.finish() % (base + 5))
}

fn number(item: &Item, name: &str) -> Option<u64> {
    match item.get(name) {
        Some(AttributeValue::N(n)) => n.parse().ok(),
        _ => None,
    }
}

fn number_u128(item: &Item, name: &str) -> Option<u128> {
    match item.get(name) {
        Some(AttributeValue::N(n)) => n.parse().ok(),
        _ => None,
    }
}

fn since_epoch(t: SystemTime) -> Duration {
    t.duration_since(UNIX_EPOCH).unwrap_or_default()
}

fn epoch_ms(t: SystemTime) -> u64 {
    u64::try_from(since_epoch(t).as_millis()).unwrap_or(u64::MAX)
}

fn at_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// `expires_at` for an item that says nothing after `t` (an hour's margin).
fn expiry(t: SystemTime) -> AttributeValue {
    AttributeValue::N((since_epoch(t).as_secs() + 3600).to_string())
}

/// A window item's entries, oldest first.
fn entries_of(item: Option<&Item>) -> VecDeque<(SystemTime, Option<String>)> {
    let Some(AttributeValue::L(list)) = item.and_then(|i| i.get(ENTRIES)) else {
        return VecDeque::new();
    };
    list.iter()
        .filter_map(|e| match e {
            AttributeValue::M(m) => Some((
                at_ms(number(m, "t")?),
                match m.get("m") {
                    Some(AttributeValue::S(s)) => Some(s.clone()),
                    _ => None,
                },
            )),
            _ => None,
        })
        .collect()
}

fn window_item(entries: &VecDeque<(SystemTime, Option<String>)>, window: Duration) -> Item {
    let list = entries
        .iter()
        .map(|(t, m)| {
            let mut e =
                HashMap::from([("t".to_owned(), AttributeValue::N(epoch_ms(*t).to_string()))]);
            if let Some(m) = m {
                e.insert("m".to_owned(), AttributeValue::S(m.clone()));
            }
            AttributeValue::M(e)
        })
        .collect();
    let last = entries.back().map_or(UNIX_EPOCH, |(t, _)| *t);
    HashMap::from([
        (ENTRIES.to_owned(), AttributeValue::L(list)),
        (TTL_ATTRIBUTE.to_owned(), expiry(last + window)),
    ])
}

fn circuit_of(item: &Item) -> Circuit {
    let reason = match item.get(REASON) {
        Some(AttributeValue::S(s)) => s.clone(),
        _ => String::new(),
    };
    Circuit::new(
        at_ms(number(item, OPENED_AT).unwrap_or(0)),
        reason,
        number(item, UNTIL).map(at_ms),
    )
}

#[async_trait]
impl GuardrailStore for DynamoDbGuardrails {
    async fn take(
        &self,
        key: &str,
        every: Duration,
        burst: u32,
        now: SystemTime,
    ) -> Result<Option<Duration>> {
        self.change(&format!("bucket#{key}"), |item| {
            let tat = item
                .and_then(|i| number_u128(i, TAT))
                .and_then(|ns| u64::try_from(ns).ok())
                .map(|ns| UNIX_EPOCH + Duration::from_nanos(ns));
            match gcra(tat, every, burst, now) {
                Err(wait) => Step::Answer(Some(wait)),
                Ok(next) => {
                    let ns = since_epoch(next).as_nanos();
                    let item = HashMap::from([
                        (TAT.to_owned(), AttributeValue::N(ns.to_string())),
                        (TTL_ATTRIBUTE.to_owned(), expiry(next)),
                    ]);
                    Step::Write(item, None)
                }
            }
        })
        .await
    }

    async fn admit(
        &self,
        key: &str,
        window: Duration,
        limit: u32,
        member: Option<&str>,
        now: SystemTime,
    ) -> Result<Window> {
        // Kept to the millisecond: the entries are stored so.
        let now = at_ms(epoch_ms(now));
        self.change(&format!("window#{key}"), |item| {
            let mut entries = entries_of(item);
            // A caller whose `now` was taken before a racing writer's
            // arrives after it: it counts at the newest entry's time, so the
            // entries stay in order (`prune` drops them from the front) and
            // an entry one racer let leave is never counted again by a
            // slower one.
            let now = entries.back().map_or(now, |(t, _)| now.max(*t));
            prune(&mut entries, window, now);
            match count(&mut entries, window, limit, member, now) {
                admitted @ Window::Admitted { .. } => {
                    Step::Write(window_item(&entries, window), admitted)
                }
                other => Step::Answer(other),
            }
        })
        .await
    }

    async fn circuit(&self, key: &str) -> Result<Option<Circuit>> {
        Ok(self
            .read(&format!("{CIRCUIT_PREFIX}{key}"))
            .await?
            .map(|i| circuit_of(&i)))
    }

    async fn open(&self, key: &str, circuit: &Circuit) -> Result<bool> {
        let mut item = HashMap::from([
            (
                OPENED_AT.to_owned(),
                AttributeValue::N(epoch_ms(circuit.opened_at).to_string()),
            ),
            (REASON.to_owned(), AttributeValue::S(circuit.reason.clone())),
        ]);
        if let Some(until) = circuit.until {
            item.insert(
                UNTIL.to_owned(),
                AttributeValue::N(epoch_ms(until).to_string()),
            );
        }
        // Written once: a circuit already open stays as it was.
        self.write_if(&format!("{CIRCUIT_PREFIX}{key}"), item, None)
            .await
    }

    async fn close(&self, key: &str) -> Result<bool> {
        for window in ["runs", "failures"] {
            self.delete(&format!("window#{key}#{window}")).await?;
        }
        self.delete(&format!("{CIRCUIT_PREFIX}{key}")).await
    }

    /// A DynamoDB round trip, a lost race retried: 250 ms (see the trait).
    fn answer_within(&self) -> Duration {
        Duration::from_millis(250)
    }

    async fn circuits(&self) -> Result<Vec<(String, Circuit)>> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            self.slot.count_api_call(ApiCall::DynamoDbScan);
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .filter_expression("begins_with(#pk, :prefix)")
                .expression_attribute_names("#pk", KEY_ATTRIBUTE)
                .expression_attribute_values(":prefix", AttributeValue::S(CIRCUIT_PREFIX.into()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| classify(BACKEND, "Scan", e))?;
            for item in page.items() {
                if let Some(AttributeValue::S(pk)) = item.get(KEY_ATTRIBUTE) {
                    if let Some(key) = pk.strip_prefix(CIRCUIT_PREFIX) {
                        out.push((key.to_owned(), circuit_of(item)));
                    }
                }
            }
            start = page.last_evaluated_key.filter(|k| !k.is_empty());
            if start.is_none() {
                break;
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_entries_survive_the_item_round_trip() {
        let t = at_ms(1_700_000_000_123);
        let entries = VecDeque::from([
            (t, Some("i-1".to_owned())),
            (t + Duration::from_millis(5), None),
        ]);
        let item = window_item(&entries, Duration::from_secs(60));
        assert_eq!(entries_of(Some(&item)), entries);
        assert_eq!(
            number(&item, TTL_ATTRIBUTE),
            Some(1_700_000_000 + 60 + 3600)
        );
        assert!(entries_of(None).is_empty());
    }

    #[test]
    fn circuits_survive_the_item_round_trip() {
        let item = HashMap::from([
            (
                OPENED_AT.to_owned(),
                AttributeValue::N("1700000000000".into()),
            ),
            (REASON.to_owned(), AttributeValue::S("too many".into())),
            (UNTIL.to_owned(), AttributeValue::N("1700000060000".into())),
        ]);
        assert_eq!(
            circuit_of(&item),
            Circuit::new(
                at_ms(1_700_000_000_000),
                "too many",
                Some(at_ms(1_700_000_060_000))
            )
        );
    }

    #[test]
    fn pauses_are_short_and_jittered() {
        for attempt in 1..=ATTEMPTS {
            let p = pause(attempt);
            assert!(
                p >= Duration::from_millis(5) && p < Duration::from_millis(70),
                "{p:?}"
            );
        }
    }
}
