//! The script parser's tests: what it reads as commands, what it refuses.

use super::script::*;
use super::*;
use crate::error::{Error, Result};
use crate::plan::CommandPolicy;
use crate::plan::{DEFAULT_MAX_COMMANDS, is_query};

/// The default policy with every operation allowed: these tests are
/// about the parser, not the catalog.
fn open() -> CommandPolicy {
    use crate::plan::OperationClass::Remediating;
    ["aws", "az", "gcloud", "gsutil"]
        .into_iter()
        .fold(CommandPolicy::default(), |p, program| {
            p.allow_operation(program, "*", Remediating)
        })
}

fn parse(script: &str) -> Result<Vec<Command>> {
    parse_script(script, &open())
}

#[test]
fn queries_are_told_from_changes() {
    let q = |program: &str, args: &[&str]| is_query(&Command::new(program, args.iter().copied()));
    assert!(q("aws", &["iam", "get-user", "--user-name", "u"]));
    assert!(q(
        "aws",
        &["iam", "list-attached-user-policies", "--user-name", "u"]
    ));
    assert!(q(
        "aws",
        &["glue", "get-dev-endpoint", "--endpoint-name", "e"]
    ));
    assert!(q("aws", &["ec2", "describe-vpcs"]));
    assert!(!q("aws", &["iam", "delete-user", "--user-name", "get-x"]));
    assert!(!q("aws", &["iam", "attach-user-policy"]));
    assert!(q("aws", &["--region", "us-east-1", "iam", "get-user"]));
    assert!(q("gcloud", &["projects", "get-iam-policy", "p"]));
    assert!(!q(
        "gcloud",
        &["projects", "remove-iam-policy-binding", "p"]
    ));
    assert!(q("az", &["vm", "show", "-n", "x"]));
    assert!(!q("az", &["vm", "delete", "-n", "x"]));
    assert!(!q("sh", &["-c", "list"]));
}

#[test]
fn nul_bytes_are_refused_inside_quotes_too() {
    for script in ["aws s3 ls 'a\0b'", "aws s3 ls \"a\0b\"", "aws s3 ls a\\\0b"] {
        let err = parse(script).unwrap_err().to_string();
        assert!(
            err.contains("NUL") || err.contains("U+0000"),
            "{script:?}: {err}"
        );
    }
}

#[test]
fn a_parse_verdict_carries_only_to_an_identical_policy() {
    let commands = parse("aws s3 ls --recursive").unwrap();
    let command = &commands[0];
    // Same rules, built separately: the memoized verdict applies.
    assert_eq!(open().fingerprint(), open().fingerprint());
    assert!(open().check(command).is_ok());
    // Any changed rule changes the fingerprint, so the command is walked again.
    let stricter = open().deny_option("aws", "--recursive");
    assert_ne!(stricter.fingerprint(), open().fingerprint());
    assert!(stricter.check(command).is_err());
    let fewer_programs = open().with_programs(["gcloud"]);
    assert!(fewer_programs.check(command).is_err());
    // A command built by hand, or deserialized, was never verified.
    let by_hand = Command::new("aws", ["configure"]);
    assert!(open().check(&by_hand).is_err());
    let round_trip: Command =
        serde_json::from_str(&serde_json::to_string(command).unwrap()).unwrap();
    assert_eq!(&round_trip, command);
    assert_eq!(round_trip.verified_by, 0);
}

#[test]
fn a_target_verdict_carries_only_to_the_same_target_and_policy() {
    use crate::error::Refusal;
    use crate::model::{Cloud, Resource, Target};
    let policy = CommandPolicy::default();
    let script = r#"aws iam create-policy --policy-name deny-u --policy-document '{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*"}]}' and aws iam attach-user-policy --user-name u --policy-arn arn:aws:iam::111111111111:policy/deny-u"#;
    let steps = crate::plan::parse_script_steps(script, &policy).unwrap();
    let attach = &steps[1];
    let target = |account: &str, user: &str| {
        Target::new(Cloud::Aws, Some(account.to_owned())).with_resource(Resource::named(user))
    };
    let own = target("111111111111", "u");
    assert!(policy.check_for(attach, &own).is_ok());
    // Remembered for that target and policy only: any other target, on
    // the step or a copy of it, is walked again.
    for _ in 0..2 {
        assert!(policy.check_for(attach, &own).is_ok());
        assert!(policy.check_for(&attach.clone(), &own.clone()).is_ok());
        let err = policy
            .check_for(attach, &target("222222222222", "u"))
            .unwrap_err();
        assert_eq!(err.refusal(), Some(Refusal::ContextMismatch), "{err}");
        let err = policy
            .check_for(&attach.clone(), &target("111111111111", "v"))
            .unwrap_err();
        assert_eq!(err.refusal(), Some(Refusal::UnboundTarget), "{err}");
    }
    // Another policy walks it again, even after this one passed it.
    let stricter = CommandPolicy::default().deny_operation("aws", "iam attach-user-policy");
    let err = stricter.check_for(attach, &own).unwrap_err();
    assert_eq!(err.refusal(), Some(Refusal::OperationNotAllowed), "{err}");
}

fn argvs(script: &str) -> Vec<Vec<String>> {
    parse(script)
        .unwrap()
        .into_iter()
        .map(|c| c.to_argv())
        .collect()
}

fn reason(script: &str) -> String {
    match parse(script) {
        Err(Error::UnsafeCommand { reason, .. }) => reason,
        other => panic!("expected UnsafeCommand for {script:?}, got {other:?}"),
    }
}

#[test]
fn splits_statements() {
    assert_eq!(
        argvs("aws s3 ls; aws iam list-users && az group list\ngcloud projects list"),
        vec![
            vec!["aws", "s3", "ls"],
            vec!["aws", "iam", "list-users"],
            vec!["az", "group", "list"],
            vec!["gcloud", "projects", "list"],
        ]
    );
    assert!(parse("").unwrap().is_empty());
    assert!(parse("  \n ; \n# only a comment\n").unwrap().is_empty());
}

#[test]
fn quotes_keep_metacharacters_as_data() {
    let doc = r#"{"a": "x; y | z && w > v $HOME `id`"}"#;
    let got = argvs(&format!("aws iam put --doc '{doc}'"));
    assert_eq!(got, vec![vec!["aws", "iam", "put", "--doc", doc]]);
    assert_eq!(
        argvs(r#"aws x --doc "a \"b\" \$c \\ \q""#),
        vec![vec!["aws", "x", "--doc", r#"a "b" $c \ \q"#]]
    );
}

#[test]
fn and_splits_only_before_allowed_programs() {
    assert_eq!(
        argvs("aws a and aws b"),
        vec![vec!["aws", "a"], vec!["aws", "b"]]
    );
    assert_eq!(
        argvs("aws a 'and' aws b"),
        vec![vec!["aws", "a", "and", "aws", "b"]]
    );
    assert_eq!(argvs("aws a and"), vec![vec!["aws", "a", "and"]]);
    assert_eq!(
        argvs("aws a and --x 'sh'"),
        vec![vec!["aws", "a", "and", "--x", "sh"]]
    );
    assert!(reason("aws a and sh -c x").contains("`sh`"));
}

#[test]
fn continuation_and_comments() {
    assert_eq!(
        argvs("# fix it\naws s3 \\\nls\n  # done"),
        vec![vec!["aws", "s3", "ls"]]
    );
    assert!(reason("aws s3 ls # hidden").contains("comment"));
    assert_eq!(argvs("aws a#b"), vec![vec!["aws", "a#b"]]);
    // What is displayed is what runs: a carriage return cannot hide text.
    let spoof = parse_script(
        "aws iam delete-user --user-name 'admin\r aws s3 ls'",
        &open(),
    )
    .unwrap();
    assert!(spoof[0].to_string().contains("\\r"), "{}", spoof[0]);
    // A continuation inside a word joins its halves, quoted or not.
    assert_eq!(argvs("aws s\\\n3 ls"), vec![vec!["aws", "s3", "ls"]]);
    assert_eq!(
        argvs("aws x --doc \"{\\\n\\\"a\\\": 1}\" y"),
        vec![vec!["aws", "x", "--doc", "{\"a\": 1}", "y"]]
    );
    assert_eq!(
        argvs("aws a\\ b 'c d'\\\n'e' f\\;g"),
        vec![vec!["aws", "a b", "c de", "f;g"]]
    );
}

#[test]
fn rejections_name_what_was_found() {
    assert!(reason("aws a; aws b | sh").contains("pipe `|` outside quotes in statement 2"));
    assert!(reason("aws a 2>&1").contains("`2>&`"));
    assert!(reason("aws a && ").contains("ends with `&&`"));
    assert!(reason("&& aws a").contains("`&&` without"));
    assert!(reason("FOO=1 aws a").contains("assignment `FOO`"));
    assert!(reason("aws a\r\n").contains("carriage return"));
    assert!(reason("aws a\u{FF1B} rm").contains("U+FF1B"));
    assert!(reason("aws 'a\u{202E}b'").contains("bidirectional"));
    assert!(reason("aws --prof x s3 ls").contains("--profile"));
    assert!(reason("aws configure set region x").contains("aws configure"));
    assert!(reason("az account set -s x").contains("az account set"));
    assert!(reason("aws s3 ls --debug").contains("--debug"));
    assert!(reason("az rest --url https://example.com").contains("az rest"));
    assert!(reason("gcloud compute instances list --log-http").contains("--log-http"));
    assert!(reason("gcloud iam roles list --flags-file=f.yaml").contains("--flags-file"));
}

#[test]
fn policy_checks_commands_built_directly() {
    let policy = open();
    assert!(policy.check(&Command::new("aws", ["s3", "ls"])).is_ok());
    assert!(policy.check(&Command::new("/usr/bin/aws", ["s3"])).is_err());
    assert!(
        policy
            .check(&Command::new("aws", ["--endpoint-url=http://x"]))
            .is_err()
    );
    assert!(policy.check(&Command::new("aws", ["s3", "a\0b"])).is_err());
    assert!(
        policy
            .check(&Command::new("az", ["vm", "--subscription", "s"]))
            .is_ok()
    );
    assert!(
        policy
            .check(&Command::new(
                "gcloud",
                ["compute", "x", "--config", "c.yaml"]
            ))
            .is_ok()
    );
    assert!(
        policy
            .check(&Command::new("gcloud", ["--configuration=x"]))
            .is_err()
    );
    let custom = open().with_programs(["kubectl"]);
    assert!(custom.check(&Command::new("aws", ["s3", "ls"])).is_err());
    assert!(
        custom
            .allow_program("aws")
            .check(&Command::new("aws", ["s3", "ls"]))
            .is_ok()
    );
    // The default catalog knows no `aws s3 ls`.
    let err = CommandPolicy::default()
        .check(&Command::new("aws", ["s3", "ls"]))
        .unwrap_err();
    assert_eq!(err.refusal(), Some(crate::Refusal::OperationNotAllowed));
}

#[test]
fn command_serializes_as_argv_and_displays_quoted() {
    let c = Command::new("aws", ["s3", "ls", "a b"]);
    assert_eq!(
        serde_json::to_string(&c).unwrap(),
        r#"["aws","s3","ls","a b"]"#
    );
    assert_eq!(c.to_string(), "aws s3 ls 'a b'");
    let back: Command = serde_json::from_str(r#"["aws","s3"]"#).unwrap();
    assert_eq!(back.args(), ["s3"]);
    assert!(serde_json::from_str::<Command>("[]").is_err());
    assert_eq!(
        Command::new("aws", ["--region=eu-west-1"]).option_value("--region"),
        Some("eu-west-1")
    );
}

fn steps(script: &str) -> Result<Vec<crate::plan::Step>> {
    parse_script_steps(script, &open())
}

#[test]
fn a_script_holds_at_most_max_commands() {
    let policy = CommandPolicy::default();
    assert_eq!(policy.max_commands(), DEFAULT_MAX_COMMANDS);
    for sep in ["\n", " ; ", " && ", " and "] {
        let full = script_of(DEFAULT_MAX_COMMANDS, sep);
        assert_eq!(parse(&full).unwrap().len(), DEFAULT_MAX_COMMANDS, "{sep:?}");
        assert_eq!(steps(&full).unwrap().len(), DEFAULT_MAX_COMMANDS, "{sep:?}");
        let over = script_of(DEFAULT_MAX_COMMANDS + 1, sep);
        for err in [parse(&over).unwrap_err(), steps(&over).unwrap_err()] {
            assert_eq!(err.kind(), crate::ErrorKind::UnsafeCommand, "{sep:?}");
            assert!(
                err.to_string()
                    .contains(&format!("more than {DEFAULT_MAX_COMMANDS} commands")),
                "{err}"
            );
        }
    }
    // A file write is not a command; a policy sets its own limit (at least 1).
    let two = open().with_max_commands(2);
    let writes = "echo '{}' > p.json\naws iam a --doc file://p.json\naws iam b --doc file://p.json";
    assert_eq!(parse_script_steps(writes, &two).unwrap().len(), 2);
    let three = format!("{writes}\naws iam c");
    assert!(parse_script_steps(&three, &two).is_err());
    assert!(parse_script(&script_of(3, "\n"), &two).is_err());
    assert_eq!(parse_script(&script_of(2, "\n"), &two).unwrap().len(), 2);
    let one = CommandPolicy::default().with_max_commands(0);
    assert_eq!(one.max_commands(), 1);
    assert!(parse_script(&script_of(2, "\n"), &one).is_err());
    assert_eq!(parse_script(&script_of(1, "\n"), &one).unwrap().len(), 1);
}

/// `n` commands joined by `sep`.
fn script_of(n: usize, sep: &str) -> String {
    (0..n)
        .map(|i| format!("aws iam get-user --user-name u{i}"))
        .collect::<Vec<_>>()
        .join(sep)
}

#[test]
fn file_writes_become_attached_files() {
    let script = "echo '{\"rules\":[{\"deniedPrincipals\":[\"principalSet://goog/public:all\"]}]}' > policy.json\n\
         gcloud iam policies create deny-1 --attachment-point=cloudresourcemanager.googleapis.com/projects/p --kind=denypolicies --policy-file=policy.json";
    let got = steps(script).unwrap();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].command.program(), "gcloud");
    assert_eq!(got[0].files.len(), 1);
    assert_eq!(got[0].files[0].name(), "policy.json");
    assert_eq!(
        got[0].files[0].contents(),
        "{\"rules\":[{\"deniedPrincipals\":[\"principalSet://goog/public:all\"]}]}\n"
    );
    // A heredoc, quoted delimiter: `$` stays literal; echo -n; && and file://.
    let script = "cat > deny.json <<'EOF'\n{\"rules\": [{\"a\": \"$HOME ; | && `x`\"},\n  {\"b\": \"two\"}]}\nEOF\n\
         echo -n hello world > note.txt && aws s3 cp note.txt s3://b/k\n\
         gcloud iam policies create d --attachment-point=cloudresourcemanager.googleapis.com/projects/p --kind=denypolicies --policy-file deny.json && aws iam put --doc file://deny.json";
    let got = steps(script).unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].files[0].contents(), "hello world");
    assert_eq!(
        got[1].files[0].contents(),
        "{\"rules\": [{\"a\": \"$HOME ; | && `x`\"},\n  {\"b\": \"two\"}]}\n"
    );
    assert_eq!(got[2].files[0].name(), "deny.json");
    // `cat <<EOF > name`, unquoted delimiter without expansions.
    let got = steps("cat <<EOF >p.json\n{}\nEOF\ngcloud x --policy-file=p.json").unwrap();
    assert_eq!(got[0].files[0].contents(), "{}\n");
    // Without files, parse_script still refuses every redirection.
    assert!(
        parse_script(
            "echo x > p.json\ngcloud x --f=p.json",
            &CommandPolicy::default()
        )
        .is_err()
    );
}

#[test]
fn a_script_writes_at_most_max_step_files() {
    use crate::plan::MAX_STEP_FILES;
    let script = |n: usize| {
        let names: Vec<String> = (0..n).map(|i| format!("f{i}.json")).collect();
        let writes: String = names.iter().map(|f| format!("echo x > {f}\n")).collect();
        format!("{writes}aws a {}", names.join(" "))
    };
    assert_eq!(
        steps(&script(MAX_STEP_FILES)).unwrap()[0].files.len(),
        MAX_STEP_FILES
    );
    let err = steps(&script(MAX_STEP_FILES + 1)).unwrap_err().to_string();
    assert!(err.contains("more than"), "{err}");
    // Quoted, `and` is text.
    let got = steps("echo 'x and y' > p.json\naws a p.json").unwrap();
    assert_eq!(got[0].files[0].contents(), "x and y\n");
}

#[test]
fn unsupported_file_writes_are_rejected() {
    let cases = [
        ("echo x >> p.json\ngcloud a p.json", "`>>`"),
        ("echo x 2> p.json\ngcloud a p.json", "`2>`"),
        (
            "aws s3 ls > p.json\ngcloud a p.json",
            "may only write a file",
        ),
        ("echo x > /etc/p.json\ngcloud a p.json", "plain file name"),
        ("echo x > ../p.json\ngcloud a p.json", "plain file name"),
        ("echo x > 'p.json'\ngcloud a p.json", "plain file name"),
        ("echo x > policy\ngcloud a policy", "not a plain name"),
        ("echo x > p.json", "no later command reads it"),
        (
            "gcloud a p.json\necho x > p.json",
            "no later command reads it",
        ),
        (
            "echo x > p.json\necho y > p.json\ngcloud a p.json",
            "written twice",
        ),
        (
            "echo x > a.json > b.json\ngcloud a a.json b.json",
            "two redirections",
        ),
        ("echo -e 'a\\nb' > p.json\ngcloud a p.json", "echo -n"),
        ("echo 'a\\nb' > p.json\ngcloud a p.json", "backslash"),
        (
            "cat > p.json <<EOF\n$HOME\nEOF\ngcloud a p.json",
            "unquoted delimiter",
        ),
        (
            "cat > p.json <<EOF\n`id`\nEOF\ngcloud a p.json",
            "unquoted delimiter",
        ),
        ("cat > p.json <<'EOF'\nx\ngcloud a p.json", "not terminated"),
        ("cat > p.json <<'EOF'", "without a body"),
        (
            "cat > p.json <<'EOF'; gcloud a p.json\nx\nEOF",
            "end of its line",
        ),
        ("cat <<< x > p.json\ngcloud a p.json", "here-string"),
        ("cat <<-EOF > p.json\n\tx\nEOF\ngcloud a p.json", "`<<-`"),
        (
            "cat x.json > p.json\ngcloud a p.json",
            "may only write a file",
        ),
        ("gcloud a < p.json", "redirection `<`"),
        ("echo x > p.json | sh", "pipe"),
        ("echo x > p.json && sh p.json", "not allowed"),
        (
            "cat > p.json <<'EOF'\n\u{202e}x\nEOF\ngcloud a p.json",
            "bidirectional",
        ),
        (
            "echo x > p.json and aws s3 cp p.json s3://b/k\naws s3 cp p.json s3://b/c",
            "bare `and`",
        ),
        (
            "echo '{}' > policy.json\naws s3api put-object --bucket b --key policy.json --body policy.json",
            "named 2 times",
        ),
        (
            "echo x > p.json\naws a --x=--y=p.json",
            "no later command reads it",
        ),
    ];
    for (script, expected) in cases {
        let err = steps(script).expect_err(script).to_string();
        assert!(err.contains(expected), "{script:?}: {err}");
    }
}
