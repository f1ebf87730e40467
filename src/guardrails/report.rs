//! Reading an audit file back (`remediate report --audit FILE`): what each
//! rule did, and what a rule in shadow mode would have done — the summary an
//! operator reads before switching a rule to `enforce`. Independent of the
//! worker: give it any JSON-lines audit ([`JsonLinesAudit`]'s output).
//!
//! Per rule (the record's `rule`, else its `planner`, else `(none)`):
//! counts by decision and by reason code; the accounts and resources
//! **touched** (records with a step that ran: status `ok` or `failed`) and
//! those that **would be touched** (`shadow` and dry-run `planned`
//! records); the refusals (`rejected`, by reason code and refusal class);
//! and the plans that would have run in shadow mode, each distinct list of
//! argvs with how often it came.
//!
//! A record's resources are read from, in order (the second only without
//! the first): a top-level `resource`
//! (a string, or an object with `id`/`name`/`full_name`), the
//! `annotations.resource` that [`BlastRadius`](super::BlastRadius) writes
//! for a plan it let through, and the ARNs and resource ids in its steps'
//! argvs (see [`argv_resources`](super::argv_resources); for touched records
//! only the steps that ran). Lines that are not audit records (not JSON, or
//! without a `decision`) are skipped and counted; unknown fields are ignored.
//!
//! [`JsonLinesAudit`]: crate::pipeline::JsonLinesAudit

use super::argv_resources;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::io::BufRead;

/// The rule of a record that names neither a rule nor a planner.
const NO_RULE: &str = "(none)";

/// The decisions an audit record may carry, in the order reports show them.
const DECISIONS: [&str; 7] = [
    "executed", "planned", "skipped", "failed", "rejected", "deferred", "shadow",
];

/// How many entries of a list the text rendering shows before `… N more`.
const SHOWN: usize = 10;

/// A summary of an audit file, per rule (see the module docs). Serializes
/// to the JSON a pipeline reads; [`render_text`](Self::render_text) is for
/// a person.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct AuditReport {
    /// Audit records read: one per delivery attempt (a delivery deferred
    /// and then run has two).
    pub records: u64,
    /// Records that repeat an earlier record's delivery attempt (the
    /// pipeline writes a record again when settling went otherwise than the
    /// first said): not counted again.
    pub rewritten: u64,
    /// Lines skipped because they are not audit records.
    pub unreadable: u64,
    /// The first few of those lines' numbers (1-based).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unreadable_lines: Vec<u64>,
    /// Records by decision, all rules together.
    pub decisions: BTreeMap<String, u64>,
    /// Per rule.
    pub rules: BTreeMap<String, RuleReport>,
}

/// What one rule did (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RuleReport {
    /// Its records.
    pub records: u64,
    /// Records by decision (`executed`, `shadow`...).
    pub decisions: BTreeMap<String, u64>,
    /// Records by reason code (`executed`, `blast_radius`...).
    pub reasons: BTreeMap<String, u64>,
    /// What its steps changed (or tried to).
    pub touched: Reach,
    /// What its shadow and dry-run plans would have changed.
    pub would_touch: Reach,
    /// Its rejected records, by reason code and refusal class, most first.
    pub refusals: Vec<RefusalCount>,
    /// The plans it would have run in shadow mode, most frequent first.
    pub shadow_plans: Vec<PlanCount>,
}

/// Accounts and resources.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Reach {
    /// Accounts (AWS accounts, Azure subscriptions, GCP projects).
    pub accounts: BTreeSet<String>,
    /// Resources (see the module docs for where they are read from).
    pub resources: BTreeSet<String>,
}

/// Rejections of one kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RefusalCount {
    /// The reason code (`unsafe_command`, `unmapped_account`...).
    pub code: String,
    /// The refusal class, for `unsafe_command` (`operation_not_allowed`...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    /// How many.
    pub count: u64,
    /// The first one's reason, as written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub example: Option<String>,
}

/// A plan that would have run, and how often it came.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PlanCount {
    /// Its steps' argvs, in order.
    pub argv: Vec<Vec<String>>,
    /// How many shadow records had exactly these steps.
    pub count: u64,
}

/// The fields of an audit line a report reads; the rest is ignored.
#[derive(Deserialize)]
struct Line {
    source: Option<String>,
    message_id: Option<String>,
    delivery_count: Option<u64>,
    decision: String,
    reason: Option<String>,
    reason_code: Option<String>,
    refusal: Option<String>,
    planner: Option<String>,
    rule: Option<String>,
    account_id: Option<String>,
    steps: Option<Vec<LineStep>>,
    annotations: Option<BTreeMap<String, Value>>,
    resource: Option<Value>,
}

#[derive(Deserialize)]
struct LineStep {
    #[serde(default)]
    argv: Vec<String>,
    status: Option<String>,
}

impl Line {
    /// The delivery attempt the record is about: one record counts per
    /// attempt. A record without a message id is its own.
    fn delivery(&self) -> Option<(Option<String>, String, Option<u64>)> {
        let id = given(&self.message_id)?;
        Some((self.source.clone(), id.to_owned(), self.delivery_count))
    }
}

impl LineStep {
    /// Whether the step started (and so may have changed something).
    fn ran(&self) -> bool {
        matches!(self.status.as_deref(), Some("ok" | "failed"))
    }
}

/// A rule's report while it is being read: refusals and plans keyed.
#[derive(Default)]
struct Tally {
    report: RuleReport,
    refusals: HashMap<(String, Option<String>), RefusalCount>,
    plans: HashMap<Vec<Vec<String>>, u64>,
}

impl AuditReport {
    /// Reads an audit file (JSON lines) from `reader`. Fails only when
    /// reading fails; lines that are not audit records are counted in
    /// [`unreadable`](Self::unreadable).
    pub fn from_reader(mut reader: impl BufRead) -> Result<AuditReport> {
        let mut report = AuditReport::default();
        let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
        let mut buf = Vec::new();
        let mut number = 0u64;
        let mut seen = HashSet::new();
        loop {
            buf.clear();
            let read = reader
                .read_until(b'\n', &mut buf)
                .map_err(|e| Error::io("reading the audit file", e))?;
            if read == 0 {
                break;
            }
            number += 1;
            if buf.trim_ascii().is_empty() {
                continue;
            }
            match serde_json::from_slice::<Line>(&buf) {
                Ok(line) if line.delivery().is_some_and(|d| !seen.insert(d)) => {
                    report.rewritten += 1;
                }
                Ok(line) => {
                    report.records += 1;
                    *report.decisions.entry(line.decision.clone()).or_default() += 1;
                    tallies.entry(rule_name(&line)).or_default().add(line);
                }
                Err(_) => {
                    report.unreadable += 1;
                    if report.unreadable_lines.len() < SHOWN {
                        report.unreadable_lines.push(number);
                    }
                }
            }
        }
        report.rules = tallies
            .into_iter()
            .map(|(rule, tally)| (rule, tally.finish()))
            .collect();
        Ok(report)
    }

    /// Reads the audit file at `path`.
    pub fn from_path(path: impl AsRef<std::path::Path>) -> Result<AuditReport> {
        let path = path.as_ref();
        let file = std::fs::File::open(path)
            .map_err(|e| Error::io(format!("opening audit file {}", path.display()), e))?;
        Self::from_reader(std::io::BufReader::new(file))
    }

    /// The report as JSON (pretty-printed), for a pipeline.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The report as text for a person: a table of rules by decision, then
    /// each rule's reasons, reach, refusals and shadow plans.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let rules = self.rules.len();
        let _ = write!(
            out,
            "audit: {} record{} in {rules} rule{}",
            self.records,
            plural(self.records),
            plural(rules as u64)
        );
        if self.rewritten > 0 {
            let _ = write!(
                out,
                "; {} record{} written again on settling, counted once",
                self.rewritten,
                plural(self.rewritten)
            );
        }
        if self.unreadable > 0 {
            let lines: Vec<String> = self.unreadable_lines.iter().map(u64::to_string).collect();
            let _ = write!(
                out,
                "; {} unreadable line{} skipped (line {}{})",
                self.unreadable,
                plural(self.unreadable),
                lines.join(", "),
                more(self.unreadable as usize, lines.len())
            );
        }
        out.push_str("\n\n");
        out.push_str(&self.table());
        for (rule, r) in &self.rules {
            let _ = write!(
                out,
                "\n== {rule} ({} record{})\n",
                r.records,
                plural(r.records)
            );
            r.render(&mut out);
        }
        out
    }

    /// One row per rule: records by decision, accounts and resources touched.
    fn table(&self) -> String {
        let mut decisions: Vec<&str> = DECISIONS.to_vec();
        for seen in self.decisions.keys() {
            if !decisions.contains(&seen.as_str()) {
                decisions.push(seen);
            }
        }
        let mut header = vec!["rule", "records"];
        header.extend(&decisions);
        header.extend(["accounts", "resources"]);
        let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
        for (rule, r) in &self.rules {
            let mut row = vec![rule.clone(), r.records.to_string()];
            row.extend(decisions.iter().map(|d| count(r.decisions.get(*d))));
            row.push(r.touched.accounts.len().to_string());
            row.push(r.touched.resources.len().to_string());
            rows.push(row);
        }
        let widths: Vec<usize> = (0..rows[0].len())
            .map(|c| {
                rows.iter()
                    .map(|row| row[c].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in rows {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(c, (cell, w))| match c {
                    0 => format!("{cell:<w$}"),
                    _ => format!("{cell:>w$}"),
                })
                .collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
        }
        out
    }
}

impl RuleReport {
    fn render(&self, out: &mut String) {
        let reasons: Vec<String> = self
            .reasons
            .iter()
            .map(|(c, n)| format!("{c} {n}"))
            .collect();
        let _ = writeln!(out, "  reasons: {}", reasons.join(", "));
        for (what, reach) in [
            ("touched", &self.touched),
            ("would touch", &self.would_touch),
        ] {
            if reach.accounts.is_empty() && reach.resources.is_empty() {
                continue;
            }
            let _ = writeln!(out, "  {what}: {}", list("account", &reach.accounts));
            let _ = writeln!(
                out,
                "  {:w$}  {}",
                "",
                list("resource", &reach.resources),
                w = what.len()
            );
        }
        if !self.refusals.is_empty() {
            out.push_str("  refusals:\n");
            for r in &self.refusals {
                let class = r
                    .refusal
                    .as_ref()
                    .map(|c| format!(" ({c})"))
                    .unwrap_or_default();
                let _ = write!(out, "    {:>5} × {}{class}", r.count, r.code);
                if let Some(example) = &r.example {
                    let _ = write!(out, ": e.g. {example}");
                }
                out.push('\n');
            }
        }
        if !self.shadow_plans.is_empty() {
            let n = self.shadow_plans.len();
            let _ = writeln!(
                out,
                "  would have run in shadow mode ({n} distinct plan{}):",
                plural(n as u64)
            );
            for plan in self.shadow_plans.iter().take(SHOWN) {
                let _ = write!(out, "    {:>5} × ", plan.count);
                if plan.argv.is_empty() {
                    out.push_str("(no steps)\n");
                }
                for (i, argv) in plan.argv.iter().enumerate() {
                    let lead = if i == 0 { "" } else { "            then " };
                    let _ = writeln!(out, "{lead}{}", shown_argv(argv));
                }
            }
            if n > SHOWN {
                let _ = writeln!(out, "          … {} more", n - SHOWN);
            }
        }
    }
}

impl Tally {
    fn add(&mut self, line: Line) {
        let r = &mut self.report;
        r.records += 1;
        *r.decisions.entry(line.decision.clone()).or_default() += 1;
        let code = given(&line.reason_code).unwrap_or("-").to_owned();
        *r.reasons.entry(code.clone()).or_default() += 1;
        let steps = line.steps.as_deref().unwrap_or_default();
        let would = matches!(line.decision.as_str(), "shadow" | "planned");
        let ran = steps.iter().any(LineStep::ran);
        for (reach, counts, only_ran) in [
            (&mut r.touched, ran, true),
            (&mut r.would_touch, would, false),
        ] {
            if !counts {
                continue;
            }
            reach
                .accounts
                .extend(given(&line.account_id).map(str::to_owned));
            reach.resources.extend(resources(&line, only_ran));
        }
        if line.decision == "rejected" {
            let refusal = given(&line.refusal).map(str::to_owned);
            let entry = self
                .refusals
                .entry((code.clone(), refusal.clone()))
                .or_insert_with(|| RefusalCount {
                    code,
                    refusal,
                    count: 0,
                    example: given(&line.reason).map(str::to_owned),
                });
            entry.count += 1;
        }
        if line.decision == "shadow" {
            let argv: Vec<Vec<String>> = steps.iter().map(|s| s.argv.clone()).collect();
            *self.plans.entry(argv).or_default() += 1;
        }
    }

    fn finish(self) -> RuleReport {
        let mut report = self.report;
        report.refusals = self.refusals.into_values().collect();
        report
            .refusals
            .sort_by(|a, b| (b.count, &a.code, &a.refusal).cmp(&(a.count, &b.code, &b.refusal)));
        report.shadow_plans = self
            .plans
            .into_iter()
            .map(|(argv, count)| PlanCount { argv, count })
            .collect();
        report
            .shadow_plans
            .sort_by(|a, b| (b.count, &a.argv).cmp(&(a.count, &b.argv)));
        report
    }
}

/// The rule a record counts against in the report.
fn rule_name(line: &Line) -> String {
    given(&line.rule)
        .or(given(&line.planner))
        .unwrap_or(NO_RULE)
        .to_owned()
}

/// A field's text, unless absent or blank.
fn given(field: &Option<String>) -> Option<&str> {
    field.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// A record's resources (see the module docs); `only_ran`: from the argvs of
/// the steps that ran only.
fn resources(line: &Line, only_ran: bool) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if let Some(resource) = &line.resource {
        let named = match resource {
            Value::Object(o) => ["id", "name", "full_name"]
                .iter()
                .find_map(|k| o.get(*k).and_then(Value::as_str)),
            other => other.as_str(),
        };
        out.extend(named.filter(|n| !n.trim().is_empty()).map(str::to_owned));
    }
    // The blast-radius annotation names the same resource, qualified: read
    // only when the record does not name it itself.
    let annotated = line.annotations.as_ref().and_then(|a| a.get("resource"));
    if let Some(annotated) = annotated.filter(|_| out.is_empty()) {
        match annotated {
            Value::Array(items) => {
                out.extend(items.iter().filter_map(Value::as_str).map(str::to_owned))
            }
            other => out.extend(other.as_str().map(str::to_owned)),
        }
    }
    // The blast-radius stage writes `CLOUD:ACCOUNT/RESOURCE`: the same
    // resource in an argv is not listed twice.
    let known: Vec<String> = out
        .iter()
        .map(|r| {
            r.split_once('/')
                .map_or(r.as_str(), |(_, name)| name)
                .to_owned()
        })
        .collect();
    for step in line.steps.iter().flatten() {
        if only_ran && !step.ran() {
            continue;
        }
        out.extend(argv_resources(&step.argv).filter(|r| !known.contains(r)));
    }
    out
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn count(n: Option<&u64>) -> String {
    n.map_or_else(|| "-".to_owned(), u64::to_string)
}

fn more(total: usize, shown: usize) -> String {
    if total > shown {
        format!(", … {} more", total - shown)
    } else {
        String::new()
    }
}

/// `3 accounts: a, b, c` (at most [`SHOWN`] named).
fn list(what: &str, items: &BTreeSet<String>) -> String {
    let shown: Vec<&str> = items.iter().take(SHOWN).map(String::as_str).collect();
    let n = items.len();
    let mut out = format!("{n} {what}{}", plural(n as u64));
    if n > 0 {
        let _ = write!(out, ": {}{}", shown.join(", "), more(n, shown.len()));
    }
    out
}

/// An argv as a person reads it: arguments with spaces or quotes quoted.
fn shown_argv(argv: &[String]) -> String {
    let words: Vec<String> = argv
        .iter()
        .map(|a| {
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "'\"\\$`".contains(c)) {
                format!("'{}'", a.replace('\'', r"'\''"))
            } else {
                a.clone()
            }
        })
        .collect();
    words.join(" ")
}

#[cfg(test)]
mod tests;
