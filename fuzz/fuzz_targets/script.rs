//! The CLI script parser and the command policy, over any text (invalid
//! UTF-8 read lossily).
//!
//! `parse_script` and `parse_script_steps` must never panic, and what they
//! accept must hold up: every parsed command names one of the policy's
//! programs and carries no NUL byte; one that reads no step file passes the
//! default policy's `check`, twice, and as a fresh copy (which walks the whole
//! argv instead of trusting the parse-time verdict); a step file is attached
//! only to a command that names it, and every step passes `check_step`. The
//! two parsers agree: what the strict one refuses the planners' one refuses
//! (unless the script writes a step file), and when both accept they read the
//! same commands. (The planners' parser may refuse more: it also refuses
//! attaching a customer-managed policy the script did not create.) `check`
//! on arbitrary argvs (the input split on spaces) must not panic and is
//! deterministic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use remediation::plan::{Command, CommandPolicy, parse_script, parse_script_steps};
use std::sync::LazyLock;

/// Built once: `CommandPolicy::default()` fingerprints the whole operation
/// catalog at every builder step, which would dominate each run.
static POLICY: LazyLock<CommandPolicy> = LazyLock::new(CommandPolicy::default);

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let policy: &CommandPolicy = &POLICY;

    let strict = parse_script(&text, policy);
    if let Ok(commands) = &strict {
        assert!(commands.len() <= policy.max_commands());
        for command in commands {
            parsed_command_holds(policy, command, &text);
        }
    }

    let steps = parse_script_steps(&text, policy);
    if let Ok(steps) = &steps {
        assert!(steps.len() <= policy.max_commands());
        for step in steps {
            if step.files.is_empty() {
                parsed_command_holds(policy, &step.command, &text);
            } else {
                // A command reading a step file is judged with its files.
                parser_guarantees(policy, &step.command, &text);
                let _ = policy.check(&step.command);
            }
            for _ in 0..2 {
                if let Err(e) = policy.check_step(step) {
                    panic!("{text:?}: parsed step {step:?} fails check_step: {e}");
                }
            }
            for file in &step.files {
                // A file is attached only to a command that names it.
                assert!(
                    step.command.args().iter().any(|a| a.contains(file.name())),
                    "{text:?}: file {:?} attached to {:?}, which does not name it",
                    file.name(),
                    step.command
                );
            }
        }
    }

    match (&strict, &steps) {
        (Ok(commands), Ok(steps)) => {
            let from_steps: Vec<&Command> = steps.iter().map(|s| &s.command).collect();
            let commands: Vec<&Command> = commands.iter().collect();
            assert_eq!(
                commands, from_steps,
                "{text:?}: the two parsers read different commands"
            );
        }
        (Err(e), Ok(steps)) if steps.iter().all(|s| s.files.is_empty()) => {
            // Without file writes the planners' parser is the strict one.
            panic!("{text:?}: parse_script refused ({e}), parse_script_steps accepted {steps:?}")
        }
        _ => {}
    }

    // The policy alone, over argvs the parser would never build.
    let argv: Vec<&str> = text.split(' ').collect();
    if let Some(command) = Command::from_argv(argv) {
        let first = policy.check(&command).is_ok();
        assert_eq!(
            first,
            policy.check(&command).is_ok(),
            "check is not deterministic"
        );
        if first {
            assert!(policy.allows_program(command.program()));
            assert!(command.argv().iter().all(|a| !a.contains('\0')));
        }
    }
});

/// What any parsed command satisfies: an allowed program, no NUL byte.
fn parser_guarantees(policy: &CommandPolicy, command: &Command, text: &str) {
    let program = command.program();
    assert!(
        policy.programs().any(|p| p == program),
        "{text:?}: parsed program {program:?} is not one of the policy's"
    );
    assert!(
        command.argv().iter().all(|a| !a.contains('\0')),
        "{text:?}: NUL byte in {command:?}"
    );
}

/// A parsed command (reading no step file) passes `check`, again and as a copy.
fn parsed_command_holds(policy: &CommandPolicy, command: &Command, text: &str) {
    parser_guarantees(policy, command, text);
    if let Err(e) = policy.check(command) {
        panic!("{text:?}: parsed command {command:?} fails check: {e}");
    }
    assert!(
        policy.check(command).is_ok(),
        "{text:?}: check is not deterministic"
    );
    // A copy carries no parse-time verdict: check walks it in full.
    let fresh = Command::from_argv(command.to_argv()).expect("a parsed command has a program");
    if let Err(e) = policy.check(&fresh) {
        panic!("{text:?}: {command:?} passed at parse time but a fresh copy fails check: {e}");
    }
    assert!(
        policy.check(&fresh).is_ok(),
        "{text:?}: check is not deterministic"
    );
}
