//! Memory bounds that only a process of its own can measure: this file holds
//! one test, so the peak resident size (`VmHWM`) is this test's.
//!
//! A small gzip CloudTrail file whose records expand to nearly 16 MiB each
//! (the largest record the splitter accepts) runs through the engine at
//! default settings; what the file source reads ahead is bounded in bytes
//! (`DEFAULT_READ_AHEAD_BYTES`, 32 MiB), so the peak stays under 128 MB
//! however many such records the file holds.

use flate2::Compression;
use flate2::write::GzEncoder;
use remediation::engine::Engine;
use remediation::executor::{ContextMap, DryRunExecutor};
use remediation::plan::CommandPolicy;
use remediation::planner::AlertCliPlanner;
use remediation::source::FileSource;
use std::io::Write;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Records in the file, each of `RECORD_BYTES` once expanded.
const RECORDS: usize = 24;
const RECORD_BYTES: usize = 15 * 1024 * 1024;

/// The peak resident set size of this process, in bytes (Linux `VmHWM`).
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gzip_of_huge_records_is_read_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge-records.json.gz");
    {
        let file = std::fs::File::create(&path).unwrap();
        let mut gz = GzEncoder::new(std::io::BufWriter::new(file), Compression::fast());
        gz.write_all(b"{\"Records\":[").unwrap();
        let chunk = vec![b'a'; 1024 * 1024];
        for i in 0..RECORDS {
            if i > 0 {
                gz.write_all(b",").unwrap();
            }
            write!(
                gz,
                "{{\"eventVersion\":\"1.08\",\"eventID\":\"e-{i}\",\"eventSource\":\"iam.amazonaws.com\",\
                 \"eventName\":\"ListUsers\",\"awsRegion\":\"us-east-1\",\"recipientAccountId\":\"123456789012\",\
                 \"padding\":\""
            )
            .unwrap();
            for _ in 0..RECORD_BYTES / chunk.len() {
                gz.write_all(&chunk).unwrap();
            }
            gz.write_all(b"\"}").unwrap();
        }
        gz.write_all(b"]}").unwrap();
        gz.finish().unwrap().flush().unwrap();
    }
    let compressed = std::fs::metadata(&path).unwrap().len();
    assert!(
        compressed < 2 * 1024 * 1024,
        "a small file: {compressed} bytes"
    );
    let before = peak_rss().expect("VmHWM (Linux)");

    let policy = CommandPolicy::default();
    let engine = Engine::builder(
        Arc::new(FileSource::open(&path).unwrap()),
        Arc::new(AlertCliPlanner::new(policy.clone())),
        Arc::new(DryRunExecutor::new(policy, ContextMap::new())),
    )
    .build();
    let summary = engine.run(CancellationToken::new()).await.unwrap();
    assert_eq!(summary.received, RECORDS as u64, "{summary:?}");

    let peak = peak_rss().unwrap();
    let expanded = (RECORDS * RECORD_BYTES) as u64;
    eprintln!(
        "{RECORDS} records, {} MiB expanded from {} KiB: peak RSS {} MiB (before the run {} MiB)",
        expanded >> 20,
        compressed >> 10,
        peak >> 20,
        before >> 20
    );
    assert!(
        peak < 128 * 1024 * 1024,
        "peak RSS {} MiB for {} MiB of records",
        peak >> 20,
        expanded >> 20
    );
}
