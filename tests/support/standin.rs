//! Recording stand-in for `aws` / `az` / `gcloud` (a test double, never the executor).
//!
//! Compiled by the test support code with `rustc` (no dependencies), once per
//! test binary; each stand-in directory links `aws`, `az`, `gcloud` and `gsutil` to it.
//!
//! `CLI --version` alone prints a version line and exits 0, unrecorded (a
//! worker's start-up check). Any other invocation appends one JSON line to the file named by
//! `REMEDIATION_STANDIN_LOG`: `{"argv": [...], "env": {NAME: value-or-null, ...},
//! "environ": {NAME: value, ...} (all of it), "cwd": "...",
//! "files": {PATH: {"mode": N, "contents": "..."}}, "pid": N}` (files: every
//! existing file an absolute-path argument names, and the files
//! `AWS_SHARED_CREDENTIALS_FILE` and `AWS_CONFIG_FILE` name, read while the command runs). Then, if asked through its environment: writes `STANDIN_STDOUT` /
//! `STANDIN_STDERR` (repeated `STANDIN_REPEAT` times), starts a grandchild
//! that writes `STANDIN_GRANDCHILD_WRITE` after `STANDIN_GRANDCHILD_DELAY`
//! seconds, sleeps `STANDIN_SLEEP`
//! seconds, and exits with `STANDIN_EXIT_CODE` (default 0).

use std::io::Write;

const WATCHED: &[&str] = &[
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AZURE_CONFIG_DIR",
    "CLOUDSDK_CORE_PROJECT",
    "CLOUDSDK_CONFIG",
];

/// The absolute path an argument names, if it names an existing file
/// (`/p`, `--opt=/p`, `file:///p`, `fileb:///p`).
fn file_argument(arg: &str) -> Option<&str> {
    let value = match arg.split_once('=') {
        Some((option, value)) if option.starts_with('-') => value,
        _ => arg,
    };
    let path = value
        .strip_prefix("file://")
        .or_else(|| value.strip_prefix("fileb://"))
        .unwrap_or(value);
    (path.starts_with('/') && std::path::Path::new(path).is_file()).then_some(path)
}

fn json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn main() {
    let Some(log) = std::env::var_os("REMEDIATION_STANDIN_LOG") else {
        eprintln!("stand-in: REMEDIATION_STANDIN_LOG is not set");
        std::process::exit(97);
    };
    let mut args = std::env::args_os().map(|a| a.to_string_lossy().into_owned());
    let program = args.next().unwrap_or_default();
    let program = program.rsplit('/').next().unwrap_or_default().to_owned();

    let args: Vec<String> = args.collect();
    // A worker's start-up check (`CLI --version`, run once sealed) is
    // answered like a real CLI and not recorded: it is not a remediation.
    if args == ["--version"] {
        println!("{program}-stand-in 1.0");
        return;
    }
    let mut line = String::from("{\"argv\": [");
    for (i, arg) in std::iter::once(program)
        .chain(args.iter().cloned())
        .enumerate()
    {
        if i > 0 {
            line.push_str(", ");
        }
        json_string(&mut line, &arg);
    }
    line.push_str("], \"env\": {");
    for (i, name) in WATCHED.iter().enumerate() {
        if i > 0 {
            line.push_str(", ");
        }
        json_string(&mut line, name);
        line.push_str(": ");
        match std::env::var_os(name) {
            Some(value) => json_string(&mut line, &value.to_string_lossy()),
            None => line.push_str("null"),
        }
    }
    // The whole environment and the working directory, for the sealing tests.
    line.push_str("}, \"environ\": {");
    for (i, (name, value)) in std::env::vars_os().enumerate() {
        if i > 0 {
            line.push_str(", ");
        }
        json_string(&mut line, &name.to_string_lossy());
        line.push_str(": ");
        json_string(&mut line, &value.to_string_lossy());
    }
    line.push_str("}, \"cwd\": ");
    let cwd = std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    json_string(&mut line, &cwd);
    // Files named by the arguments, as the command saw them while it ran.
    line.push_str(", \"files\": {");
    let mut first = true;
    // And the files the aws CLI reads from its environment.
    let config_files: Vec<String> = ["AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .filter(|p| std::path::Path::new(p).is_file())
        .collect();
    let named = args.iter().filter_map(|a| file_argument(a));
    for path in named.chain(config_files.iter().map(String::as_str)) {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).map_or(0, |m| m.permissions().mode() & 0o777);
        let contents = std::fs::read_to_string(path).unwrap_or_default();
        if !first {
            line.push_str(", ");
        }
        first = false;
        json_string(&mut line, path);
        line.push_str(&format!(": {{\"mode\": {mode}, \"contents\": "));
        json_string(&mut line, &contents);
        line.push('}');
    }
    line.push_str(&format!("}}, \"pid\": {}}}\n", std::process::id()));
    // One write on an O_APPEND file: concurrent stand-ins never interleave lines.
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .expect("stand-in: open log");
    file.write_all(line.as_bytes())
        .expect("stand-in: write log");

    // A grandchild that writes a file later, unless its process group is killed first.
    if let Ok(path) = std::env::var("STANDIN_GRANDCHILD_WRITE") {
        let delay = std::env::var("STANDIN_GRANDCHILD_DELAY").unwrap_or_else(|_| "1".to_owned());
        let _ = std::process::Command::new("/bin/sh")
            .args([
                "-c",
                "/bin/sleep \"$0\"; echo written > \"$1\"",
                &delay,
                &path,
            ])
            .spawn();
    }
    let repeat: usize = std::env::var("STANDIN_REPEAT")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1);
    if let Ok(text) = std::env::var("STANDIN_STDOUT") {
        let _ = std::io::stdout().write_all(text.repeat(repeat).as_bytes());
    }
    if let Ok(text) = std::env::var("STANDIN_STDERR") {
        let _ = std::io::stderr().write_all(text.repeat(repeat).as_bytes());
    }
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    if let Some(secs) = std::env::var("STANDIN_SLEEP")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s > 0.0)
    {
        std::thread::sleep(std::time::Duration::from_secs_f64(secs));
    }
    let code = std::env::var("STANDIN_EXIT_CODE")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    std::process::exit(code);
}
