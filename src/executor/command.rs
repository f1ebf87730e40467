//! Commands as argv vectors, and the CLI-script parser with its allowlist.
//!
//! STUB: the executor helper replaces this file; signatures are the contract.

use crate::error::{Error, Result};
use std::fmt;

/// A command: a program and its arguments. Never a shell string.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Command {
    argv: Vec<String>,
}

impl Command {
    /// A command running `program` with `args`.
    pub fn new<I, S>(program: impl Into<String>, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut argv = vec![program.into()];
        argv.extend(args.into_iter().map(Into::into));
        Command { argv }
    }
    /// The program (first argv element).
    pub fn program(&self) -> &str {
        &self.argv[0]
    }
    /// The arguments after the program.
    pub fn args(&self) -> &[String] {
        &self.argv[1..]
    }
    /// The whole argv.
    pub fn argv(&self) -> &[String] {
        &self.argv
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.argv.join(" "))
    }
}

/// Which programs and options a parsed script may use.
#[derive(Clone, Debug)]
pub struct CommandPolicy {
    programs: Vec<String>,
}

impl Default for CommandPolicy {
    fn default() -> Self {
        CommandPolicy {
            programs: vec!["aws".into(), "az".into(), "gcloud".into()],
        }
    }
}

impl CommandPolicy {
    /// Checks one command against the policy.
    pub fn check(&self, command: &Command) -> Result<()> {
        if self.programs.iter().any(|p| p == command.program()) {
            Ok(())
        } else {
            Err(Error::unsafe_command(format!(
                "program {} is not allowed",
                command.program()
            )))
        }
    }
}

/// Parses a CLI script into commands, rejecting the whole script on anything unsafe.
pub fn parse_script(script: &str, policy: &CommandPolicy) -> Result<Vec<Command>> {
    let mut out = Vec::new();
    for line in script.split([';', '\n']) {
        let Some(words) = shlex::split(line) else {
            return Err(Error::unsafe_command("unbalanced quotes"));
        };
        if words.is_empty() {
            continue;
        }
        let c = Command::new(words[0].clone(), words[1..].to_vec());
        policy.check(&c)?;
        out.push(c);
    }
    Ok(out)
}
