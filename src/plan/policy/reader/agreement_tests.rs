//! The reader agrees with awscli's own parser: a fixed-seed set of generated
//! argvs (random spellings, `=` forms, shorthand with random whitespace and
//! quoting, JSON with random spacing, repeated and negated options) is read
//! by [`read`] and by awscli 1.x itself (the venv's `awscli.clidriver`, run
//! up to the point where it would send the request: a `calling-command`
//! handler records the parameters and stops it).
//!
//! Asserted: whenever the reader accepts an argv, awscli parses it without
//! error and every parameter value the reader produced is the value awscli
//! sends (awscli's booleans and integers compared with the reader's string
//! leaves as awscli converts them). Refusals where awscli accepts are
//! allowed (the reader is stricter) and counted.

use super::*;
use crate::plan::policy::{catalog, spec};
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command as Process, Stdio};

/// Parses argvs with awscli's driver and prints, per argv, the request
/// parameters (and the operation's CLI name -> parameter name map), or
/// the error awscli reported.
const AWSCLI_PARSE: &str = r#"
import contextlib, io, json, os, sys, tempfile
for key in list(os.environ):
    if key.startswith("AWS_") or key.startswith("BOTO_"):
        del os.environ[key]
os.environ.update(AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull,
                  HOME=tempfile.mkdtemp(prefix="agreement-"), AWS_DEFAULT_REGION="us-east-1",
                  AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
from awscli.clidriver import create_clidriver

def plain(v):
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return repr(v)

driver = create_clidriver()
seen = {}
def record(call_parameters, **kwargs):
    seen["params"] = plain(call_parameters)
    return 0  # an override return code: the request is never sent
driver.session.register("calling-command", record)
commands = driver._get_command_table()
out = []
for case in json.load(sys.stdin):
    seen.clear()
    op = commands[case["service"]]._get_command_table()[case["op"]]
    names = {a.cli_name: getattr(a, "_serialized_name", a.name) for a in op.arg_table.values()}
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = driver.main(list(case["argv"]))
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else 2
    except BaseException as e:
        rc = -1
        err.write(repr(e))
    if rc == 0 and "params" in seen:
        out.append({"ok": True, "params": seen["params"], "names": names})
    else:
        out.append({"ok": False, "error": err.getvalue().strip().splitlines()[-1:]})
json.dump(out, sys.stdout)
"#;

fn venv_python() -> PathBuf {
    let venv = std::env::var_os("REMEDIATION_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv"));
    let python = venv.join("bin").join("python");
    assert!(
        python.is_file() && venv.join("bin").join("aws").is_file(),
        "{} (with awscli) is missing: run `scripts/test`, or point REMEDIATION_VENV at a venv holding awscli",
        python.display()
    );
    python
}

/// A small fixed-seed generator (xorshift64*): the same argvs on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
    /// Whitespace awscli's shorthand may skip (or not): around `=`, `,`.
    fn space(&mut self) -> &'static str {
        ["", "", "", " ", "  ", "\t", "\n"][self.below(7)]
    }
    /// JSON spacing, now and then a character JSON does not call whitespace.
    fn json_space(&mut self) -> &'static str {
        ["", "", " ", "  ", "\t", "\n ", "\r\n", "\u{a0}"][self.below(8)]
    }
}

/// `--name value` or `--name=value`, or the name misspelled as an
/// abbreviation awscli would expand.
fn option(rng: &mut Rng, argv: &mut Vec<String>, name: &str, value: &str) {
    let name = if rng.chance(4) {
        &name[..name.len() - 3]
    } else {
        name
    };
    if rng.chance(30) {
        argv.push(format!("{name}={value}"));
    } else {
        argv.push(name.to_owned());
        argv.push(value.to_owned());
    }
}

fn boolean(rng: &mut Rng) -> &'static str {
    ["true", "false", "TRUE", "False", "yes", "1"][rng.below(6)]
}

fn integer(rng: &mut Rng, n: &str) -> String {
    match rng.below(8) {
        0 => format!("0{n}"),
        1 => format!("+{n}"),
        2 => format!(" {n}"),
        3 => format!("{n}_0"),
        _ => n.to_owned(),
    }
}

/// A shorthand scalar, sometimes quoted.
fn quote(rng: &mut Rng, v: &str) -> String {
    match rng.below(6) {
        0 => format!("'{v}'"),
        1 => format!("\"{v}\""),
        _ => v.to_owned(),
    }
}

/// `K=V,K=V` with random whitespace and quoting, or JSON with random spacing.
fn structure(rng: &mut Rng, pairs: &[(&str, Value)]) -> String {
    if rng.chance(40) {
        let mut s = String::new();
        s.push_str(rng.json_space());
        s.push('{');
        for (n, (k, v)) in pairs.iter().enumerate() {
            if n > 0 {
                s.push(',');
            }
            let v = match v {
                Value::String(t) if rng.chance(50) && matches!(t.as_str(), "true" | "false") => {
                    t.clone()
                }
                other => other.to_string(),
            };
            s.push_str(&format!(
                "{}\"{k}\"{}:{}{v}{}",
                rng.json_space(),
                rng.json_space(),
                rng.json_space(),
                rng.json_space()
            ));
        }
        s.push('}');
        s.push_str(rng.json_space());
        return s;
    }
    let mut s = String::new();
    for (n, (k, v)) in pairs.iter().enumerate() {
        if n > 0 {
            s.push_str(&format!("{},{}", rng.space(), rng.space()));
        }
        let v = match v {
            Value::String(t) => quote(rng, t),
            Value::Array(items) => {
                let items: Vec<String> = items
                    .iter()
                    .map(|i| quote(rng, i.as_str().unwrap_or_default()))
                    .collect();
                let sep = format!(",{}", rng.space());
                if rng.chance(50) {
                    format!("[{}]", items.join(&sep))
                } else {
                    items.join(&sep)
                }
            }
            other => other.to_string(),
        };
        s.push_str(&format!("{k}{}={}{v}", rng.space(), rng.space()));
    }
    s
}

fn argv_for(rng: &mut Rng, which: usize) -> (Vec<String>, &'static str, &'static str) {
    let mut a: Vec<String> = Vec::new();
    let (service, op) = match which {
        0 => {
            option(rng, &mut a, "--bucket", "acme-logs");
            let keys = [
                "BlockPublicAcls",
                "IgnorePublicAcls",
                "BlockPublicPolicy",
                "RestrictPublicBuckets",
            ];
            let mut pairs: Vec<(&str, Value)> = Vec::new();
            for key in keys {
                if rng.chance(85) {
                    pairs.push((key, Value::String(boolean(rng).to_owned())));
                }
            }
            if rng.chance(8) && !pairs.is_empty() {
                let again = (pairs[0].0, Value::String(boolean(rng).to_owned()));
                pairs.push(again); // a key given twice
            }
            let v = structure(rng, &pairs);
            option(rng, &mut a, "--public-access-block-configuration", &v);
            if rng.chance(10) {
                let v = structure(rng, &pairs);
                option(rng, &mut a, "--public-access-block-configuration", &v);
            }
            ("s3api", "put-public-access-block")
        }
        1 => {
            option(rng, &mut a, "--instance-id", "i-0abc");
            let tokens = rng.pick(&["required", "optional", "Required"]);
            option(rng, &mut a, "--http-tokens", tokens);
            if rng.chance(50) {
                let n = integer(rng, "1");
                option(rng, &mut a, "--http-put-response-hop-limit", &n);
            }
            if rng.chance(40) {
                let e = rng.pick(&["enabled", "disabled"]);
                option(rng, &mut a, "--http-endpoint", e);
            }
            if rng.chance(30) {
                a.push(rng.pick(&["--dry-run", "--no-dry-run"]).to_owned());
            }
            ("ec2", "modify-instance-metadata-options")
        }
        2 => {
            option(rng, &mut a, "--db-instance-identifier", "db-1");
            for flag in ["--deletion-protection", "--multi-az", "--apply-immediately"] {
                if rng.chance(50) {
                    a.push(flag.to_owned());
                }
                if rng.chance(20) {
                    a.push(flag.replacen("--", "--no-", 1));
                }
            }
            if rng.chance(40) {
                let n = integer(rng, "7");
                option(rng, &mut a, "--backup-retention-period", &n);
            }
            if rng.chance(60) {
                let mut pairs = vec![("EnableLogTypes", json!(["audit", "error"]))];
                if rng.chance(50) {
                    pairs.push(("DisableLogTypes", json!(["slowquery"])));
                }
                let v = structure(rng, &pairs);
                option(rng, &mut a, "--cloudwatch-logs-export-configuration", &v);
            }
            ("rds", "modify-db-instance")
        }
        3 => {
            let n = integer(rng, "14");
            option(rng, &mut a, "--minimum-password-length", &n);
            if rng.chance(50) {
                let n = integer(rng, "90");
                option(rng, &mut a, "--max-password-age", &n);
            }
            for flag in ["--require-symbols", "--require-numbers"] {
                if rng.chance(60) {
                    a.push(flag.to_owned());
                }
                if rng.chance(25) {
                    a.push(flag.replacen("--", "--no-", 1));
                }
            }
            ("iam", "update-account-password-policy")
        }
        _ => {
            option(rng, &mut a, "--group-id", "sg-0abc");
            let words = 1 + rng.below(2);
            let json_list = rng.chance(25);
            let mut items = Vec::new();
            for _ in 0..words {
                let port = rng.pick(&["22", "3389", "080"]);
                let cidr = rng.pick(&["0.0.0.0/0", "10.0.0.0/8"]);
                items.push(if json_list {
                    format!(
                        "{{\"IpProtocol\":{}\"tcp\",\"FromPort\":{port},\"ToPort\":{port},\"IpRanges\":[{{\"CidrIp\":\"{cidr}\"}}]}}",
                        rng.json_space()
                    )
                } else {
                    format!(
                        "IpProtocol{}={}tcp,{}FromPort={port},ToPort{}={}{port},IpRanges=[{{CidrIp={}{cidr}}}]",
                        rng.space(),
                        rng.space(),
                        rng.space(),
                        rng.space(),
                        rng.space(),
                        rng.space()
                    )
                });
            }
            if json_list {
                option(
                    rng,
                    &mut a,
                    "--ip-permissions",
                    &format!("[{}]", items.join(",")),
                );
            } else {
                a.push("--ip-permissions".to_owned());
                a.extend(items);
            }
            ("ec2", "revoke-security-group-ingress")
        }
    };
    if rng.chance(15) {
        a.extend(["--region".to_owned(), "us-east-1".to_owned()]);
    }
    let mut argv = vec![service.to_owned(), op.to_owned()];
    if rng.chance(10) {
        argv.splice(0..0, ["--output".to_owned(), "json".to_owned()]);
    }
    argv.extend(a);
    (argv, service, op)
}

/// Whether the reader's value is awscli's: string leaves compared with
/// awscli's booleans (`value.lower() == 'true'`) and integers as awscli
/// converts them; a scalar where awscli wrapped it in a one-item list
/// (`Key=a` for a list member) is the same value.
fn same(ours: &Value, theirs: &Value) -> bool {
    match (ours, theirs) {
        (Value::String(s), Value::Bool(b)) => s.to_lowercase() == b.to_string(),
        (Value::String(s), Value::Number(n)) => s.parse::<i64>().ok() == n.as_i64(),
        (Value::String(_), Value::Array(items)) if items.len() == 1 => same(ours, &items[0]),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| same(v, w)))
        }
        (x, y) => x == y,
    }
}

/// A command of `path` the policy accepts, with numeric options.
fn safe_command(path: &str) -> Vec<&'static str> {
    match path {
        "ec2 modify-instance-metadata-options" => vec![
            "ec2",
            "modify-instance-metadata-options",
            "--instance-id",
            "i-0abc",
            "--http-tokens",
            "required",
            "--http-put-response-hop-limit",
            "1",
        ],
        "rds modify-db-instance" => vec![
            "rds",
            "modify-db-instance",
            "--db-instance-identifier",
            "db-1",
            "--backup-retention-period",
            "7",
        ],
        "iam update-account-password-policy" => vec![
            "iam",
            "update-account-password-policy",
            "--minimum-password-length",
            "14",
            "--password-reuse-prevention",
            "24",
            "--max-password-age",
            "90",
            "--require-uppercase-characters",
            "--require-lowercase-characters",
            "--require-numbers",
            "--require-symbols",
            "--allow-users-to-change-password",
        ],
        other => panic!("no safe command of {other}"),
    }
}

/// Whether the policy refuses `path`'s safe command with `option` given
/// as `text`, because `text` is not a whole number.
fn refused_as_not_a_number(path: &str, option: &str, text: &str) -> bool {
    let policy = crate::plan::CommandPolicy::default();
    let safe = safe_command(path);
    let accepted = policy.check(&Command::new("aws", safe.iter().copied()));
    assert!(accepted.is_ok(), "{safe:?} should pass: {accepted:?}");
    let at = safe
        .iter()
        .position(|w| *w == option)
        .expect("the option in the safe command");
    let mut argv = safe.clone();
    argv[at + 1] = text;
    match policy.check(&Command::new("aws", argv.iter().copied())) {
        Err(e) => {
            let e = e.to_string();
            e.contains(option) && e.contains("not a whole number")
        }
        Ok(()) => false,
    }
}

#[test]
fn the_reader_agrees_with_awscli_on_generated_argvs() {
    let python = venv_python();
    let mut rng = Rng(0x5eed_2024_0bad_cafe);
    let cases: Vec<(Vec<String>, &str, &str)> =
        (0..300).map(|i| argv_for(&mut rng, i % 5)).collect();
    let input: Vec<Value> = cases
        .iter()
        .map(|(argv, service, op)| json!({"service": service, "op": op, "argv": argv}))
        .collect();
    let mut child = Process::new(&python)
        .args(["-c", AWSCLI_PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the venv's python");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(serde_json::to_string(&input).expect("json").as_bytes())
        .expect("write the argvs");
    let output = child.wait_with_output().expect("awscli's answers");
    assert!(
        output.status.success(),
        "the awscli helper failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answers: Vec<Value> = serde_json::from_slice(&output.stdout).expect("the helper's JSON");
    assert_eq!(answers.len(), cases.len());

    let catalog = catalog::builtin();
    let specs = spec::builtin();
    let (mut both, mut stricter, mut neither) = (0, 0, 0);
    let mut disagreements = Vec::new();
    let (mut refused_by_awscli, mut unread_integers) = (Vec::new(), Vec::new());
    for ((argv, _, _), answer) in cases.iter().zip(&answers) {
        let command = Command::new("aws", argv.iter().cloned());
        let op = catalog::lookup(&catalog, &command).expect("a catalog operation");
        let spec = spec::spec_for(&specs, "aws", &op);
        let ours = read(&command, &op, spec, &[]).expect("a table for the operation");
        let awscli_ok = answer["ok"] == json!(true);
        let parsed = match (ours, awscli_ok) {
            (Err(_), true) => {
                stricter += 1;
                continue;
            }
            (Err(_), false) => {
                neither += 1;
                continue;
            }
            (Ok(_), false) => {
                // awscli refuses it: nothing is sent. Allowed only for text
                // that is JSON but for Unicode whitespace around it, which
                // the reader trims and Python's json.loads does not.
                let json_padding = argv.iter().any(|w| {
                    let t = w.trim_matches(|c: char| " \t\n\r".contains(c));
                    t != w.trim() && w.trim().starts_with(['{', '['])
                });
                if json_padding {
                    refused_by_awscli.push(format!("{argv:?}: {}", answer["error"]));
                } else {
                    disagreements.push(format!(
                        "{argv:?}: the reader accepted it, awscli refused it: {}",
                        answer["error"]
                    ));
                }
                continue;
            }
            (Ok(parsed), true) => parsed,
        };
        both += 1;
        for param in parsed.params.iter().filter(|p| !p.global) {
            let member = answer["names"][param.spelling].as_str().unwrap_or_default();
            let theirs = &answer["params"][member];
            if let (Value::String(text), Some(n)) = (&param.value, theirs.as_i64()) {
                if text.parse::<i64>().is_err() {
                    // Python's int() reads `1_0`, ` 14`: the reader keeps
                    // the text, which no numeric constraint can accept.
                    // The policy refuses it for that value: a safe command
                    // of the operation, with only this value changed.
                    let for_it = refused_as_not_a_number(&op.path, param.spelling, text);
                    if !for_it {
                        disagreements.push(format!(
                            "{argv:?}: {} is {text:?} to the reader, {n} to awscli, and the policy does not refuse it for that",
                            param.spelling
                        ));
                    } else {
                        unread_integers.push(format!("{} {text:?} (awscli: {n})", param.spelling));
                    }
                    continue;
                }
            }
            if member.is_empty() || !same(&param.value, theirs) {
                disagreements.push(format!(
                    "{argv:?}: {} read as {} by the reader, as {member}={theirs} by awscli",
                    param.spelling, param.value
                ));
            }
        }
        // Nothing awscli sends is missing from what the reader read.
        let read: Vec<&str> = parsed
            .params
            .iter()
            .filter_map(|p| answer["names"][p.spelling].as_str())
            .collect();
        for member in answer["params"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
        {
            if !read.contains(&member.as_str()) {
                disagreements.push(format!(
                    "{argv:?}: awscli sends {member}, the reader has no such option"
                ));
            }
        }
    }
    println!(
        "agreement over {} argvs: {both} accepted by both, {stricter} refused by the reader \
         only (stricter), {neither} refused by both, {} accepted by the reader and refused by \
         awscli (JSON padded with Unicode whitespace; nothing sent), {} integer values awscli's \
         int() reads and the reader keeps as text (the policy refuses each), {} disagreements",
        cases.len(),
        refused_by_awscli.len(),
        unread_integers.len(),
        disagreements.len()
    );
    for line in refused_by_awscli.iter().chain(&unread_integers) {
        println!("  {line}");
    }
    assert!(
        both >= 50 && stricter > 0 && neither > 0,
        "the generator covers too little"
    );
    assert!(
        disagreements.is_empty(),
        "the reader accepted argvs awscli reads differently:\n{}",
        disagreements.join("\n")
    );
}
