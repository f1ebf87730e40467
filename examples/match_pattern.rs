//! Matches JSON events against an EventBridge event pattern.
//!
//! ```text
//! cargo run --example match_pattern -- pattern.json < events.jsonl
//! ```
//!
//! Prints `true` or `false` for each input line. A line that is not JSON is
//! reported on stderr (with its line number) and printed as `error`, so the
//! output stays aligned with the input; the exit status is then 1. Blank lines
//! are skipped. An invalid pattern is reported with its path, exit status 2.

use remediation::plan::EventPattern;
use std::io::{BufRead, BufWriter, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: match_pattern PATTERN_FILE < events.jsonl");
        return ExitCode::from(2);
    };
    let pattern = match std::fs::read_to_string(&path) {
        Ok(text) => match EventPattern::from_json(&text) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("{}: {e}", path.to_string_lossy());
                return ExitCode::from(2);
            }
        },
        Err(e) => {
            eprintln!("{}: {e}", path.to_string_lossy());
            return ExitCode::from(2);
        }
    };
    let stdin = std::io::stdin().lock();
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut bad = false;
    for (n, line) in stdin.lines().enumerate() {
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                eprintln!("line {}: cannot read input: {e}", n + 1);
                return ExitCode::from(2);
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let verdict = match serde_json::from_str::<serde_json::Value>(&line) {
            Ok(event) => {
                if pattern.matches(&event) {
                    "true"
                } else {
                    "false"
                }
            }
            Err(e) => {
                eprintln!("line {}: not a JSON event: {e}", n + 1);
                bad = true;
                "error"
            }
        };
        if writeln!(out, "{verdict}").is_err() {
            // stdout closed (e.g. piped into `head`): nothing left to do.
            return ExitCode::SUCCESS;
        }
    }
    if out.flush().is_err() {
        return ExitCode::SUCCESS;
    }
    if bad {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
