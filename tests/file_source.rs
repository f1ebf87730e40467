//! The file source: JSON lines, CloudTrail `Records` files (plain and gzip),
//! over-long lines, and broken files.

use remediation::engine::{AuditDecision, Engine, MemoryAudit};
use remediation::executor::{ContextMap, DryRunExecutor};
use remediation::plan::CommandPolicy;
use remediation::planner::AlertCliPlanner;
use remediation::source::{AlertSource, FileFormat, FileSource};
use std::io::Write;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

fn records_file(n: usize) -> Vec<u8> {
    let records: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"eventVersion":"1.08","eventID":"id-{i}","eventName":"CreateUser","eventSource":"iam.amazonaws.com","awsRegion":"us-east-1","recipientAccountId":"123456789012","requestParameters":{{"userName":"u{i}","note":"]}}\"[{{"}}}}"#
            )
        })
        .collect();
    format!("{{\"Records\":[{}]}}", records.join(",")).into_bytes()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A dry-run engine over `source`, with its audit records kept in memory.
fn dry_run_engine(source: FileSource) -> (Engine, Arc<MemoryAudit>) {
    let audit = Arc::new(MemoryAudit::new());
    let engine = Engine::builder(
        Arc::new(source),
        Arc::new(AlertCliPlanner::default()),
        Arc::new(DryRunExecutor::new(
            CommandPolicy::default(),
            ContextMap::new(),
        )),
    )
    .audit(audit.clone())
    .build();
    (engine, audit)
}

async fn drain(source: &FileSource) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let batch = source.receive(7).await.expect("receive");
        if batch.is_empty() {
            assert!(source.is_exhausted());
            return out;
        }
        out.extend(batch.into_iter().map(|d| d.body().to_vec()));
    }
}

#[tokio::test]
async fn records_files_stream_record_by_record_plain_and_gzip() {
    let plain = records_file(25);
    for bytes in [plain.clone(), gzip(&plain)] {
        let source = FileSource::reader("records", std::io::Cursor::new(bytes));
        let bodies = drain(&source).await;
        assert_eq!(bodies.len(), 25);
        let first: serde_json::Value = serde_json::from_slice(&bodies[0]).unwrap();
        assert_eq!(first["eventID"], "id-0");
        assert_eq!(first["requestParameters"]["note"], "]}\"[{");
    }
}

#[tokio::test]
async fn json_lines_skip_blank_lines_and_keep_line_numbers() {
    let text = "{\"a\":1}\n\n   \n{\"b\":2}\r\n";
    let source = FileSource::reader("lines", std::io::Cursor::new(text.as_bytes().to_vec()));
    let mut batch = Vec::new();
    loop {
        let got = source.receive(10).await.unwrap();
        if got.is_empty() {
            break;
        }
        batch.extend(got);
    }
    let ids: Vec<&str> = batch.iter().map(|d| d.message_id()).collect();
    assert_eq!(ids, vec!["lines:1", "lines:4"]);
    assert_eq!(&batch[1].body()[..], b"{\"b\":2}");
}

#[tokio::test]
async fn an_over_long_line_is_rejected_with_its_prefix_not_dropped() {
    let long = format!("{{\"alertId\":\"P-1\",\"pad\":\"{}\"}}", "x".repeat(5000));
    let text = format!("{long}\n{{\"alertId\":\"P-2\",\"accountId\":\"123456789012\"}}\n");
    let source = FileSource::builder()
        .with_max_line_bytes(1024)
        .with_format(FileFormat::JsonLines)
        .reader("long", std::io::Cursor::new(text.into_bytes()));
    let (engine, audit) = dry_run_engine(source);
    let summary = engine.run(CancellationToken::new()).await.unwrap();
    assert_eq!(summary.received, 2);
    let records = audit.records();
    let long = records.iter().find(|r| r.message_id == "long:1").unwrap();
    assert_eq!(long.decision, AuditDecision::Rejected);
    assert_eq!(long.reason_code.as_deref(), Some("undecodable"));
    assert_eq!(long.body.as_ref().map(String::len), Some(1024));
    let next = records.iter().find(|r| r.message_id == "long:2").unwrap();
    assert_eq!(next.alert_id.as_deref(), Some("P-2"));
}

#[tokio::test]
async fn a_broken_gzip_file_fails_the_run_after_what_could_be_read() {
    let full = gzip(&records_file(2000));
    let truncated = full[..full.len() / 2].to_vec();
    let source = FileSource::reader("broken", std::io::Cursor::new(truncated));
    let (engine, audit) = dry_run_engine(source);
    let err = engine.run(CancellationToken::new()).await.unwrap_err();
    assert!(!err.is_temporary());
    assert!(err.to_string().contains("broken"), "{err}");
    let seen = audit.records().len();
    assert!(
        seen > 0 && seen < 2000,
        "records before the damage are processed: {seen}"
    );
}

#[test]
fn missing_file_is_a_clear_error() {
    let err = FileSource::open("/definitely/not/here.jsonl").unwrap_err();
    assert!(
        err.to_string().contains("/definitely/not/here.jsonl"),
        "{err}"
    );
}

#[tokio::test]
async fn a_truncated_line_of_leading_blanks_is_still_delivered() {
    let text = format!(
        "{}{{\"alertId\":\"P-1\"}}\n{{\"alertId\":\"P-2\"}}\n",
        " ".repeat(20)
    );
    let source = FileSource::builder()
        .with_max_line_bytes(8)
        .reader("blanks", std::io::Cursor::new(text.into_bytes()));
    let bodies = drain(&source).await;
    assert_eq!(bodies.len(), 2, "the over-long line must not vanish");
}

/// A reader that yields its data, then fails.
struct FailingAfter(std::io::Cursor<Vec<u8>>);

impl std::io::Read for FailingAfter {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.0.read(buf)? {
            0 => Err(std::io::Error::other("disk on fire")),
            n => Ok(n),
        }
    }
}

#[tokio::test]
async fn a_read_error_after_a_blank_line_is_reported_not_taken_for_eof() {
    let data = b"{\"alertId\":\"P-1\"}\n\n".to_vec();
    let source = FileSource::reader("failing", FailingAfter(std::io::Cursor::new(data)));
    let first = source.receive(10).await.unwrap();
    assert_eq!(first.len(), 1);
    let err = source.receive(10).await.unwrap_err();
    assert!(err.to_string().contains("disk on fire"), "{err}");
    assert!(!err.is_temporary());
}

/// An audit sink whose every write fails (a full disk).
#[derive(Debug)]
struct FullDisk;

impl remediation::engine::AuditSink for FullDisk {
    fn record(&self, _record: &remediation::engine::AuditRecord) -> remediation::Result<()> {
        Err(remediation::Error::io(
            "writing the audit record",
            std::io::Error::from_raw_os_error(28),
        ))
    }
}

/// A run over a file whose audit records could not be written does not end
/// as a success: the file source cannot redeliver, so the records are all
/// there was.
#[tokio::test]
async fn a_run_ending_with_the_audit_sink_broken_is_an_error() {
    let source = FileSource::reader("records.json", std::io::Cursor::new(records_file(3)));
    let engine = Engine::builder(
        Arc::new(source),
        Arc::new(AlertCliPlanner::new(CommandPolicy::default())),
        Arc::new(DryRunExecutor::new(
            CommandPolicy::default(),
            ContextMap::new(),
        )),
    )
    .audit(Arc::new(FullDisk))
    .build();
    let e = engine
        .run(CancellationToken::new())
        .await
        .expect_err("records were not written");
    assert!(e.to_string().contains("audit sink"), "{e}");
    assert_eq!(engine.stats().snapshot().audit_errors, 3);
}
