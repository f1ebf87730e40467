//! Reads deliveries from a file or stdin: JSON lines (one message body per
//! line), or CloudTrail log files (`{"Records":[...]}`, plain or gzip) streamed
//! record by record in bounded memory.
//!
//! Files cannot be acknowledged: settling a file delivery only records the
//! decision, and nacked lines are not re-read (re-run the file to retry).

use super::budget::ByteBudget;
use super::{AlertSource, Capabilities, DeadLetterMode, Delivery};
use crate::error::{Error, Result};
use crate::model::cloudtrail::{RecordSplitter, maybe_gunzip};
use async_trait::async_trait;
use bytes::Bytes;
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// How a file's content is laid out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FileFormat {
    /// Decide from the content: a top-level object whose first key is
    /// `"Records"` is a CloudTrail log file, anything else is JSON lines.
    #[default]
    Auto,
    /// One message body per line; blank lines are ignored.
    JsonLines,
    /// A CloudTrail log file; each record becomes one delivery.
    Records,
}

/// Deliveries read from a file, stdin or any reader.
pub struct FileSource {
    name: String,
    rx: tokio::sync::Mutex<mpsc::Receiver<Result<Delivery>>>,
    done: Arc<AtomicBool>,
    reader: Mutex<Option<std::thread::JoinHandle<()>>>,
    failed: Mutex<Option<Error>>,
}

impl fmt::Debug for FileSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileSource")
            .field("name", &self.name)
            .field("exhausted", &self.done.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Builds a [`FileSource`].
#[derive(Debug, Clone)]
pub struct FileSourceBuilder {
    format: FileFormat,
    max_line_bytes: usize,
    buffer: usize,
    read_ahead_bytes: usize,
}

/// The default bound on the bytes a file source holds read and not yet
/// settled ([`FileSourceBuilder::with_read_ahead_bytes`]): 32 MiB, two of the
/// largest records a CloudTrail file may hold, thousands of ordinary ones.
/// Decoding a body copies it once more, so the source's share of the
/// worker's memory is about twice this.
pub const DEFAULT_READ_AHEAD_BYTES: usize = 32 * 1024 * 1024;

impl Default for FileSourceBuilder {
    fn default() -> Self {
        FileSourceBuilder {
            format: FileFormat::Auto,
            max_line_bytes: 1024 * 1024,
            buffer: 256,
            read_ahead_bytes: DEFAULT_READ_AHEAD_BYTES,
        }
    }
}

impl FileSourceBuilder {
    /// Sets the layout instead of detecting it.
    pub fn with_format(mut self, format: FileFormat) -> Self {
        self.format = format;
        self
    }

    /// The longest line kept whole (default 1 MiB). A longer line still becomes
    /// a delivery — its first bytes, marked [`Delivery::truncated_at`] — so it is
    /// rejected and recorded, never silently dropped.
    pub fn with_max_line_bytes(mut self, max: usize) -> Self {
        self.max_line_bytes = max.max(1);
        self
    }

    /// How many deliveries are read ahead of the engine (default 256).
    pub fn with_read_ahead(mut self, n: usize) -> Self {
        self.buffer = n.max(1);
        self
    }

    /// How many bytes of bodies the source holds at once, read ahead or
    /// handed out and not yet settled (default [`DEFAULT_READ_AHEAD_BYTES`],
    /// 32 MiB). Reading pauses at the bound and resumes as deliveries are
    /// settled, so a small gzip file whose records expand to 16 MiB each
    /// costs the bound, not the records' count times their size. A body
    /// larger than the bound is read when nothing else is held.
    pub fn with_read_ahead_bytes(mut self, bytes: usize) -> Self {
        self.read_ahead_bytes = bytes.max(1);
        self
    }

    /// Opens `path` (gzip is detected from its content).
    pub fn open(self, path: impl AsRef<Path>) -> Result<FileSource> {
        let path = path.as_ref();
        let file = std::fs::File::open(path)
            .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        let label = path.display().to_string();
        Ok(self.start(format!("file:{label}"), label, Box::new(file)))
    }

    /// Reads standard input.
    pub fn stdin(self) -> FileSource {
        self.start("stdin".into(), "stdin".into(), Box::new(std::io::stdin()))
    }

    /// Reads any reader, naming its deliveries after `name`.
    pub fn reader(self, name: impl Into<String>, reader: impl Read + Send + 'static) -> FileSource {
        let name = name.into();
        self.start(name.clone(), name, Box::new(reader))
    }

    fn start(self, name: String, label: String, reader: Box<dyn Read + Send>) -> FileSource {
        let (tx, rx) = mpsc::channel(self.buffer);
        let budget = ByteBudget::new(self.read_ahead_bytes);
        let done = Arc::new(AtomicBool::new(false));
        let thread_done = Arc::clone(&done);
        let handle = std::thread::Builder::new()
            .name("remediation-file-source".into())
            .spawn(move || {
                let out = Out { tx: &tx, budget };
                let result = read_all(reader, &label, self.format, self.max_line_bytes, &out);
                if let Err(e) = result {
                    // A broken file will not heal by retrying: permanent.
                    let e = match e {
                        e @ Error::Backend {
                            temporary: false, ..
                        } => e,
                        e => Error::Backend {
                            backend: "file",
                            message: e.to_string(),
                            temporary: false,
                            source: Some(Box::new(e)),
                        },
                    };
                    let _ = tx.blocking_send(Err(e));
                }
                drop(tx);
                thread_done.store(true, Ordering::Release);
            })
            .ok();
        if handle.is_none() {
            done.store(true, Ordering::Release);
        }
        FileSource {
            name,
            rx: tokio::sync::Mutex::new(rx),
            done,
            reader: Mutex::new(handle),
            failed: Mutex::new(None),
        }
    }
}

impl FileSource {
    /// A builder for non-default settings.
    pub fn builder() -> FileSourceBuilder {
        FileSourceBuilder::default()
    }

    /// Opens `path` with default settings.
    pub fn open(path: impl AsRef<Path>) -> Result<FileSource> {
        Self::builder().open(path)
    }

    /// Reads standard input with default settings.
    pub fn stdin() -> FileSource {
        Self::builder().stdin()
    }

    /// Reads any reader with default settings.
    pub fn reader(name: impl Into<String>, reader: impl Read + Send + 'static) -> FileSource {
        Self::builder().reader(name, reader)
    }

    /// The path a `file:` source spec names (`file:PATH` or a bare path).
    pub fn path_from_spec(spec: &str) -> PathBuf {
        PathBuf::from(spec.strip_prefix("file:").unwrap_or(spec))
    }
}

type Sender = mpsc::Sender<Result<Delivery>>;

/// Where the reader thread hands deliveries: the channel, each body's bytes
/// taken from the budget first.
struct Out<'a> {
    tx: &'a Sender,
    budget: Arc<ByteBudget>,
}

impl Out<'_> {
    /// Sends a delivery of `body`; false when the source is gone.
    fn send(&self, id: String, body: Bytes, truncated_at: Option<usize>) -> bool {
        let guard = self.budget.take(body.len());
        let mut delivery = Delivery::detached(id, body).with_budget(guard);
        if let Some(limit) = truncated_at {
            delivery = delivery.with_truncated_at(limit);
        }
        self.tx.blocking_send(Ok(delivery)).is_ok()
    }
}

fn read_all(
    reader: Box<dyn Read + Send>,
    label: &str,
    format: FileFormat,
    max_line: usize,
    out: &Out<'_>,
) -> Result<()> {
    let io = |e| Error::io(format!("reading {label}"), e);
    let mut reader = maybe_gunzip(BufReader::with_capacity(64 * 1024, reader), label)?;
    let format = match format {
        FileFormat::Auto => detect(&mut reader).map_err(io)?,
        f => f,
    };
    match format {
        FileFormat::Records => {
            for (i, record) in RecordSplitter::new(reader).enumerate() {
                // A broken log file (truncated, corrupt gzip) ends the read; the
                // records before the damage are still delivered.
                let bytes = record.map_err(|e| Error::Backend {
                    backend: "file",
                    message: format!("{label}: record {}: {e}", i + 1),
                    temporary: false,
                    source: Some(Box::new(e)),
                })?;
                if !out.send(format!("{label}#{}", i + 1), Bytes::from(bytes), None) {
                    break;
                }
            }
            Ok(())
        }
        _ => read_lines(reader, label, max_line, out),
    }
}

/// A Records file starts with `{` and its first key is `"Records"`.
fn detect(reader: &mut Box<dyn BufRead + Send>) -> std::io::Result<FileFormat> {
    let head = reader.fill_buf()?;
    let trimmed: Vec<u8> = head
        .iter()
        .copied()
        .skip_while(|b| b.is_ascii_whitespace())
        .take(32)
        .collect();
    if let Some(rest) = trimmed.strip_prefix(b"{") {
        let rest: Vec<u8> = rest
            .iter()
            .copied()
            .skip_while(|b| b.is_ascii_whitespace())
            .collect();
        if rest.starts_with(b"\"Records\"") {
            // A one-line Records object is also a valid JSON line, but streaming it
            // record by record is what bounds memory.
            return Ok(FileFormat::Records);
        }
    }
    Ok(FileFormat::JsonLines)
}

fn read_lines(
    mut reader: Box<dyn BufRead + Send>,
    label: &str,
    max_line: usize,
    out: &Out<'_>,
) -> Result<()> {
    let mut line_no = 0u64;
    let mut line = Vec::with_capacity(4096);
    loop {
        line.clear();
        line_no += 1;
        let mut truncated = false;
        // Read one line, keeping at most `max_line` bytes of it.
        loop {
            let buf = reader
                .fill_buf()
                .map_err(|e| Error::io(format!("reading {label}"), e))?;
            if buf.is_empty() {
                break;
            }
            let (chunk, found) = match memchr::memchr(b'\n', buf) {
                Some(i) => (&buf[..i], Some(i + 1)),
                None => (buf, None),
            };
            let room = max_line.saturating_sub(line.len());
            if chunk.len() > room {
                truncated = true;
            }
            line.extend_from_slice(&chunk[..chunk.len().min(room)]);
            let used = found.unwrap_or(buf.len());
            reader.consume(used);
            if found.is_some() {
                break;
            }
        }
        let body = trim_ascii(&line);
        // A blank line is skipped, but a truncated one is never dropped,
        // whatever its first bytes were.
        if body.is_empty() && !truncated {
            let eof = reader
                .fill_buf()
                .map_err(|e| Error::io(format!("reading {label}"), e))?
                .is_empty();
            if eof {
                return Ok(());
            }
            continue;
        }
        let id = format!("{label}:{line_no}");
        if !out.send(
            id,
            Bytes::copy_from_slice(body),
            truncated.then_some(max_line),
        ) {
            return Ok(());
        }
    }
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end.max(start)]
}

#[async_trait]
impl AlertSource for FileSource {
    fn name(&self) -> &str {
        &self.name
    }

    async fn receive(&self, max: usize) -> Result<Vec<Delivery>> {
        if let Some(e) = self.failed.lock().ok().and_then(|mut f| f.take()) {
            return Err(e);
        }
        let mut rx = self.rx.lock().await;
        let mut out = Vec::new();
        match rx.recv().await {
            None => {
                if let Ok(mut h) = self.reader.lock() {
                    if let Some(h) = h.take() {
                        let _ = h.join();
                    }
                }
                return Ok(out);
            }
            Some(first) => out.push(first?),
        }
        while out.len() < max {
            match rx.try_recv() {
                Ok(Ok(d)) => out.push(d),
                Ok(Err(e)) => {
                    // Hand out what was read before the error; it surfaces on the next call.
                    if let Ok(mut f) = self.failed.lock() {
                        *f = Some(e);
                    }
                    break;
                }
                Err(_) => break,
            }
        }
        Ok(out)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            extend: false,
            redelivery: false,
            dead_letter: DeadLetterMode::AuditOnly,
            lease: None,
            max_batch: 64,
        }
    }

    fn is_exhausted(&self) -> bool {
        self.done.load(Ordering::Acquire)
            && self.failed.lock().map(|f| f.is_none()).unwrap_or(true)
            && self.rx.try_lock().map(|rx| rx.is_empty()).unwrap_or(false)
    }
}
