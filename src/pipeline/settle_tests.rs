//! The settle table, case by case: every result × last delivery or not ×
//! the source's dead-letter mode × dry run (settling or not), with the
//! expected action written out.

use super::result::EventResult;
use super::settle::{Action, decide};
use super::{AuditDecision, EngineConfig};
use crate::source::{Capabilities, DeadLetterMode};
use std::time::Duration;

/// The results the pipeline produces, by name.
fn result(name: &str) -> EventResult {
    let mut r = match name {
        "executed" => EventResult::new(AuditDecision::Executed, "executed", ""),
        "planned" => EventResult::new(AuditDecision::Planned, "planned", ""),
        "skipped" => EventResult::new(AuditDecision::Skipped, "not_open", "closed"),
        "in_progress" => EventResult::new(AuditDecision::Skipped, "duplicate", "in progress"),
        "deferred" => EventResult::new(AuditDecision::Deferred, "rate_limited", "wait"),
        "rejected" => EventResult::new(AuditDecision::Rejected, "unsafe_command", "no"),
        "failed" => EventResult::new(AuditDecision::Failed, "step_failed", "exit 1"),
        "cancelled" => EventResult::new(AuditDecision::Failed, "cancelled", "stopping"),
        "outage" => EventResult::new(AuditDecision::Failed, "planner_unavailable", "503"),
        other => panic!("no result {other}"),
    };
    match name {
        "in_progress" | "cancelled" => r.retry_now = true,
        "deferred" => r.defer = Some(Duration::from_secs(7)),
        "outage" => r.service_outage = true,
        _ => {}
    }
    r
}

/// What the table says, without the delay's exact value and reason text.
#[derive(Debug, PartialEq, Eq)]
enum Expect {
    Ack,
    /// Nack after exactly this delay.
    NackAfter(Duration),
    /// Nack after the retry backoff.
    NackBackoff,
    /// Deferred (not an attempt) after this long.
    DeferAfter(Duration),
    /// Deferred (not an attempt) after the retry backoff.
    DeferBackoff,
    DeadLetter,
    Hold,
    Leave,
}

fn shape(action: &Action, backoff: Duration) -> Expect {
    match action {
        Action::Ack => Expect::Ack,
        Action::Nack(d) if *d == backoff && !d.is_zero() => Expect::NackBackoff,
        Action::Nack(d) => Expect::NackAfter(*d),
        Action::Defer(d) if *d == backoff && !d.is_zero() => Expect::DeferBackoff,
        Action::Defer(d) => Expect::DeferAfter(*d),
        Action::DeadLetter(_) => Expect::DeadLetter,
        Action::Hold => Expect::Hold,
        Action::Leave => Expect::Leave,
    }
}

/// The expected action for a real (or settling dry) run.
fn expected(name: &str, last: bool) -> Expect {
    match (name, last) {
        ("executed" | "planned" | "skipped", _) => Expect::Ack,
        ("in_progress", _) => Expect::DeferBackoff,
        ("deferred", _) => Expect::DeferAfter(Duration::from_secs(7)),
        ("rejected", _) => Expect::DeadLetter,
        ("failed", false) => Expect::NackBackoff,
        ("failed", true) => Expect::DeadLetter,
        ("cancelled", _) => Expect::DeferAfter(Duration::ZERO),
        ("outage", _) => Expect::NackBackoff,
        _ => unreachable!(),
    }
}

#[test]
fn every_case_of_the_settle_table() {
    const RESULTS: [&str; 9] = [
        "executed",
        "planned",
        "skipped",
        "in_progress",
        "deferred",
        "rejected",
        "failed",
        "cancelled",
        "outage",
    ];
    let modes = [
        DeadLetterMode::Native,
        DeadLetterMode::Redrive,
        DeadLetterMode::AuditOnly,
    ];
    let mut cases = 0;
    for name in RESULTS {
        for last in [false, true] {
            for mode in modes {
                for redelivery in [true, false] {
                    for (dry, settle_in_dry_run) in [(false, false), (true, false), (true, true)] {
                        let config =
                            EngineConfig::default().with_settle_in_dry_run(settle_in_dry_run);
                        let count = if last { config.max_deliveries } else { 1 };
                        let caps = Capabilities {
                            dead_letter: mode,
                            redelivery,
                            ..Capabilities::default()
                        };
                        let r = result(name);
                        let action = decide(&r, count, count, &caps, &config, dry, "m-1");
                        let backoff = config.retry.delay(count, "m-1");
                        let want = if dry && !settle_in_dry_run {
                            // A dry run holds what will come back, and leaves the rest.
                            if redelivery {
                                Expect::Hold
                            } else {
                                Expect::Leave
                            }
                        } else {
                            expected(name, last)
                        };
                        assert_eq!(
                            shape(&action, backoff),
                            want,
                            "{name}, last={last}, {mode:?}, redelivery={redelivery}, \
                             dry={dry}, settle_in_dry_run={settle_in_dry_run}"
                        );
                        cases += 1;
                    }
                }
            }
        }
    }
    assert_eq!(cases, 9 * 2 * 3 * 2 * 3);
}

#[test]
fn dead_letters_name_the_reason_and_the_count() {
    let config = EngineConfig::default();
    let caps = Capabilities::default();
    // A source that does not count attempts apart: the attempt is the count.
    let Action::DeadLetter(reason) = decide(
        &result("failed"),
        config.max_deliveries,
        config.max_deliveries,
        &caps,
        &config,
        false,
        "m",
    ) else {
        panic!("expected a dead letter");
    };
    assert_eq!(reason, "step_failed after 5 deliveries: exit 1");
    let Action::DeadLetter(reason) = decide(&result("rejected"), 1, 1, &caps, &config, false, "m")
    else {
        panic!("expected a dead letter");
    };
    assert_eq!(reason, "unsafe_command: no");
}

#[test]
fn receives_nobody_settled_do_not_use_up_attempts() {
    let config = EngineConfig::default();
    let caps = Capabilities::default();
    let max = config.max_deliveries;
    let failed = result("failed");
    // Four failed attempts, and one receive that went to a dead worker: a
    // fifth attempt, after the fourth attempt's backoff.
    assert_eq!(
        decide(&failed, max, max - 1, &caps, &config, false, "m"),
        Action::Nack(config.retry.delay(max - 1, "m"))
    );
    // The fifth failed attempt is the last, whatever the count.
    assert!(matches!(
        decide(&failed, max, max, &caps, &config, false, "m"),
        Action::DeadLetter(_)
    ));
    // Receives still count, twice as slowly: attempts that could not be
    // carried forward end too.
    assert!(matches!(
        decide(&failed, 2 * max - 1, 1, &caps, &config, false, "m"),
        Action::Nack(_)
    ));
    let Action::DeadLetter(reason) = decide(&failed, 2 * max, 1, &caps, &config, false, "m") else {
        panic!("expected a dead letter");
    };
    assert_eq!(reason, "step_failed after 10 deliveries: exit 1");
    // An outage is never the message's fault.
    let mut outage = result("failed");
    outage.service_outage = true;
    assert!(matches!(
        decide(&outage, 2 * max, max, &caps, &config, false, "m"),
        Action::Nack(_)
    ));
}
