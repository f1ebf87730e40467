//! The layers of the crate, written once: which top-level module of `src/`
//! may name which. The test reads every file under `src/` and fails on a
//! path (`use crate::…`, an inline `crate::…`, or a `super::…` that climbs
//! out of its module) into a module its layer may not use.
//!
//! The table matches the picture in the README ("Architecture"):
//!
//! ```text
//!   engine (worker) ─┐
//!                    ├─▶ pipeline (stages) ─▶ source · planner (rules) · executor ─▶ plan · telemetry ─▶ model
//!   lambda ──────────┘        ▲
//!                 guardrails ─┘ (stages on the pipeline's seam)
//!   preflight ─▶ executor (checks a worker's setup as it would run)
//!                                              infrastructure: error · redact · config · aws
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Crate-private infrastructure every layer may use.
const INFRASTRUCTURE: &[&str] = &["error", "redact", "config", "aws"];

/// Module → the modules it may name (besides itself and the infrastructure).
/// `*` = every module.
const LAYERS: &[(&str, &[&str])] = &[
    // The leaves: the words of the pipeline, nothing of the pipeline itself.
    ("error", &[]),
    ("redact", &[]),
    ("config", &[]),
    ("aws", &[]),
    ("model", &[]),
    ("telemetry", &[]),
    ("plan", &["model"]),
    // The three components: only the words.
    ("source", &["model", "plan", "telemetry"]),
    ("executor", &["model", "plan", "telemetry"]),
    ("planner", &["model", "plan", "telemetry", "rules"]),
    // Rules are a planner's content: the same words, never the planners.
    ("rules", &["model", "plan", "telemetry"]),
    // The pipeline wires the components for one batch of deliveries.
    (
        "pipeline",
        &[
            "model",
            "plan",
            "telemetry",
            "source",
            "planner",
            "rules",
            "executor",
        ],
    ),
    // Guardrails are stages on the pipeline's seam: they see events and
    // plans, never the worker or a backend (`source` only for `Delivery`,
    // which `Stage::before_plan` takes: exclusions and loop prevention
    // decide before planning).
    (
        "guardrails",
        &["pipeline", "model", "plan", "telemetry", "source"],
    ),
    // The worker feeds the pipeline from a source; the Lambda adapter feeds
    // it an invocation's records, never through the worker.
    (
        "engine",
        &[
            "pipeline",
            "model",
            "plan",
            "telemetry",
            "source",
            "planner",
            "rules",
            "executor",
        ],
    ),
    (
        "lambda",
        &[
            "pipeline",
            "model",
            "plan",
            "telemetry",
            "source",
            "planner",
            "executor",
        ],
    ),
    // Preflight checks a worker's setup through the executor, as the
    // worker would run it; it runs nothing of the pipeline.
    ("preflight", &["model", "plan", "executor"]),
    ("lib", &["*"]),
];

fn allowed(from: &str, to: &str) -> bool {
    if from == to || INFRASTRUCTURE.contains(&to) {
        return true;
    }
    let Some((_, may)) = LAYERS.iter().find(|(m, _)| *m == from) else {
        panic!("src/{from} is not in the layer table of tests/layering.rs: add it");
    };
    may.contains(&"*") || may.contains(&to)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module of a file under `src/`, and how many `super`s
/// climb from the file's module to the crate root.
fn module_of(src: &Path, file: &Path) -> (String, usize) {
    let rel = file.strip_prefix(src).expect("under src");
    let parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let top = parts[0].trim_end_matches(".rs").to_owned();
    // src/x.rs and src/x/mod.rs are module `x` (depth 1); src/x/y.rs is
    // `x::y` (depth 2); src/x/y/mod.rs is `x::y` too.
    let mut depth = parts.len();
    if parts.last().is_some_and(|l| l == "mod.rs") {
        depth -= 1;
    }
    if top == "lib" {
        depth = 0;
    }
    (top, depth)
}

/// The code of a line: comments (and so doc comments and their examples) removed.
fn code_of(line: &str) -> &str {
    let trimmed = line.trim_start();
    if trimmed.starts_with("//") {
        return "";
    }
    match line.find("//") {
        // A `//` inside a string (a URL) is code; a rough test is enough here.
        Some(i) if !line[..i].contains('"') => &line[..i],
        _ => line,
    }
}

/// Every top-level module a line names through `crate::` (including the
/// braces of `use crate::{a::X, b::Y}`) or by climbing with `super::`.
fn named_modules(code: &str, depth: usize) -> Vec<String> {
    let mut found = Vec::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while let Some(at) = code[i..].find("crate::") {
        let start = i + at;
        let before = start.checked_sub(1).map(|b| bytes[b]);
        i = start + "crate::".len();
        // `$crate::` in a macro is the crate too; `xcrate::` is not.
        if before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_') {
            continue;
        }
        let rest = &code[i..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    found.push(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            found.push(name);
        }
    }
    // `super::super::x` from depth 2 names the root's `x`.
    if depth > 0 {
        let climb = "super::".repeat(depth);
        let mut j = 0;
        while let Some(at) = code[j..].find(&climb) {
            let rest = &code[j + at + climb.len()..];
            j += at + climb.len();
            if rest.starts_with("super::") {
                continue;
            }
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.push(name);
            }
        }
    }
    found
}

/// Names that are items of the crate root, not modules (re-exports in lib.rs).
const ROOT_ITEMS: &[&str] = &["Error", "ErrorKind", "Refusal", "Result", "self"];

fn violations(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let (from, depth) = module_of(src, &file);
        let text = std::fs::read_to_string(&file).expect("read");
        for (n, line) in text.lines().enumerate() {
            for to in named_modules(code_of(line), depth) {
                let to = if ROOT_ITEMS.contains(&to.as_str()) {
                    "error".to_owned()
                } else {
                    to
                };
                if !allowed(&from, &to) {
                    out.push(format!(
                        "{}:{}: `{from}` may not use `{to}`: {}",
                        file.display(),
                        n + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    out
}

#[test]
fn no_import_goes_against_the_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = violations(&src);
    assert!(
        found.is_empty(),
        "imports against the layers:\n{}",
        found.join("\n")
    );
}

#[test]
fn every_module_of_src_is_in_the_table() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut tops = BTreeMap::new();
    for entry in std::fs::read_dir(&src).expect("read src") {
        let path = entry.expect("entry").path();
        let name = path
            .file_stem()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        if path.is_dir() || path.extension().is_some_and(|e| e == "rs") {
            tops.insert(name, ());
        }
    }
    for top in tops.keys() {
        assert!(
            LAYERS.iter().any(|(m, _)| m == top),
            "src/{top} is not in the layer table"
        );
    }
}

#[test]
fn the_checker_sees_an_upward_import() {
    // A model file naming the engine, a source naming the executor through
    // a brace group, and a climb out of a planner submodule: all refused.
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path();
    std::fs::create_dir_all(src.join("model")).unwrap();
    std::fs::create_dir_all(src.join("source")).unwrap();
    std::fs::create_dir_all(src.join("planner/prisma")).unwrap();
    std::fs::write(src.join("model/mod.rs"), "use crate::engine::Engine;\n").unwrap();
    std::fs::write(
        src.join("source/sqs.rs"),
        "// use crate::engine::Stats; (a comment: fine)\nuse crate::{plan::Step, executor::ProcessExecutor};\n",
    )
    .unwrap();
    std::fs::write(
        src.join("planner/prisma/api.rs"),
        "use super::super::super::engine::Stats;\nuse super::super::Planner;\n",
    )
    .unwrap();
    let found = violations(src);
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(
        found[0].contains("`model` may not use `engine`"),
        "{found:#?}"
    );
    assert!(
        found[1].contains("`planner` may not use `engine`"),
        "{found:#?}"
    );
    assert!(
        found[2].contains("`source` may not use `executor`"),
        "{found:#?}"
    );
}
