//! A human-readable audit sink: one line per delivery (decision, finding,
//! account, reason) and one indented line per step with the context it ran
//! in and its argv, for a person watching a worker's terminal. The JSON
//! lines of [`JsonLinesAudit`](super::JsonLinesAudit) stay the record.

use super::{AuditRecord, AuditSink};
use crate::error::{Error, Result};
use std::fmt::{self, Write as _};
use std::io::Write;
use std::sync::Mutex;

/// Writes one human line per delivery, and one per step, to a writer
/// (standard output by default).
///
/// An argv holding a control character is shown escaped (`["aws", "a\nb"]`),
/// so what is shown is what ran; otherwise it is shown shell-quoted.
///
/// ```
/// use remediation::engine::TextAudit;
/// let audit = TextAudit::new(Vec::<u8>::new());
/// # let _ = audit;
/// ```
pub struct TextAudit<W: Write + Send = std::io::Stdout> {
    out: Mutex<W>,
}

impl TextAudit {
    /// A sink writing to standard output.
    pub fn stdout() -> Self {
        TextAudit::new(std::io::stdout())
    }
}

impl<W: Write + Send> TextAudit<W> {
    /// A sink writing to `out`.
    pub fn new(out: W) -> Self {
        TextAudit {
            out: Mutex::new(out),
        }
    }

    /// The writer back (tests read what was written).
    pub fn into_inner(self) -> W {
        self.out.into_inner().unwrap_or_else(|p| p.into_inner())
    }
}

impl<W: Write + Send> fmt::Debug for TextAudit<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TextAudit").finish_non_exhaustive()
    }
}

/// The text of one record: its delivery line and its step lines.
fn render(r: &AuditRecord) -> String {
    let id = r
        .alert_id
        .as_deref()
        .or(r.event_id.as_deref())
        .unwrap_or(&r.message_id);
    let mut text = format!(
        "{:<9} {:<14} {:<13} {}",
        r.decision.as_str(),
        id,
        r.account_id.as_deref().unwrap_or("-"),
        r.reason.as_deref().unwrap_or("")
    );
    for s in &r.steps {
        let ctx: Vec<String> = s.context.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let argv = if s.argv.iter().any(|a| a.chars().any(char::is_control)) {
            format!("{:?}", s.argv)
        } else {
            shlex::try_join(s.argv.iter().map(String::as_str))
                .unwrap_or_else(|_| format!("{:?}", s.argv))
        };
        let _ = write!(
            text,
            "\n    [{}] {} {}",
            s.status.as_str(),
            ctx.join(" "),
            argv
        );
    }
    text
}

impl<W: Write + Send> AuditSink for TextAudit<W> {
    fn record(&self, r: &AuditRecord) -> Result<()> {
        let text = render(r);
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        writeln!(out, "{text}").map_err(|e| Error::io("writing the text audit", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::StepStatus;
    use crate::pipeline::{AuditDecision, AuditStep};

    fn step(argv: &[&str], status: StepStatus) -> AuditStep {
        AuditStep {
            argv: argv.iter().map(|a| a.to_string()).collect(),
            status,
            exit_code: None,
            duration_ms: 0,
            started_at: None,
            context: [("AWS_PROFILE".to_owned(), "prod".to_owned())].into(),
            extra_args: Vec::new(),
            files: Vec::new(),
            stderr: None,
            read_only: false,
            probes: Vec::new(),
        }
    }

    #[test]
    fn steps_are_shell_quoted_and_control_characters_escaped() {
        let mut r = AuditRecord::new("memory", "m-1", 1);
        r.decision = AuditDecision::Executed;
        r.alert_id = Some("P-1".into());
        r.account_id = Some("123456789012".into());
        r.steps.push(step(&["aws", "s3api", "a b"], StepStatus::Ok));
        r.steps.push(step(&["aws", "x\ny"], StepStatus::NotRun));
        let audit = TextAudit::new(Vec::new());
        audit.record(&r).unwrap();
        let text = String::from_utf8(audit.into_inner()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("executed  P-1"), "{text}");
        assert!(lines[0].contains("123456789012"), "{text}");
        assert!(
            lines[1].contains("[ok] AWS_PROFILE=prod aws s3api 'a b'"),
            "{text}"
        );
        assert!(lines[2].contains("[not_run]"), "{text}");
        assert!(lines[2].ends_with(r#"["aws", "x\ny"]"#), "{text}");
    }
}
