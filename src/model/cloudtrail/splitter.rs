//! [`RecordSplitter`]: streams a CloudTrail log file (`{"Records":[...]}`)
//! record by record in bounded memory, checking the structure as it goes.

use super::compression::open_maybe_gzip;
use crate::error::{Error, Result};
use std::io::{BufRead, ErrorKind as IoErrorKind};
use std::path::Path;

/// Maximum size of one record yielded by [`RecordSplitter`] (CloudTrail's own
/// limit is 256 KB per event; this leaves room while keeping memory bounded).
pub const MAX_RECORD_BYTES: usize = 16 * 1024 * 1024;

/// Maximum nesting depth inside one record.
const MAX_DEPTH: usize = 256;

/// Maximum length of a top-level key we care to read (longer keys are still
/// skipped correctly, just not remembered).
const KEY_PREFIX: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing read yet.
    Start,
    /// Inside the top-level object, before a key (or the closing brace).
    TopLevel { first: bool },
    /// Inside the `Records` array, before an element (or the closing bracket).
    InRecords { first: bool },
    /// Finished (successfully or after an error).
    Done,
}

/// Splits a CloudTrail log file (`{"Records":[...]}`) into the raw JSON bytes
/// of each record, reading in bounded memory.
///
/// Other top-level keys, before or after `Records`, are skipped. The
/// splitter checks structure (brackets, strings, separators) but not the
/// contents of each record: parse them with [`CloudTrailRecord::from_slice`].
/// After the first error the iterator ends.
///
/// ```
/// use remediation::model::cloudtrail::RecordSplitter;
/// let log = br#"{"Records":[{"eventID":"a"},{"eventID":"b"}],"x":1}"#;
/// let records: Vec<Vec<u8>> = RecordSplitter::new(&log[..]).collect::<Result<_, _>>()?;
/// assert_eq!(records, vec![br#"{"eventID":"a"}"#.to_vec(), br#"{"eventID":"b"}"#.to_vec()]);
/// # Ok::<(), remediation::Error>(())
/// ```
///
/// [`CloudTrailRecord::from_slice`]: crate::model::CloudTrailRecord::from_slice
#[derive(Debug)]
pub struct RecordSplitter<R> {
    reader: R,
    state: State,
    /// Bytes consumed so far, for error messages.
    offset: u64,
    seen_records: bool,
    /// Expected closing brackets of the element being captured.
    stack: Vec<u8>,
    /// Size of the last record, to size the next buffer.
    last_len: usize,
}

/// Finds the end of a JSON string in `buf`, scanning from `i` (inside the
/// string): the index just after its closing quote, or `None` if the buffer
/// ends first. Sets `escaped` when the buffer ends right after a backslash,
/// so the next buffer's first byte is skipped.
fn string_end(buf: &[u8], mut i: usize, escaped: &mut bool) -> Option<usize> {
    while i < buf.len() {
        let j = i + memchr::memchr2(b'"', b'\\', &buf[i..])?;
        if buf[j] == b'"' {
            return Some(j + 1);
        }
        if j + 1 < buf.len() {
            i = j + 2;
        } else {
            *escaped = true;
            return None;
        }
    }
    None
}

impl<R: BufRead> RecordSplitter<R> {
    /// Streams records from `reader`.
    pub fn new(reader: R) -> Self {
        RecordSplitter {
            reader,
            state: State::Start,
            offset: 0,
            seen_records: false,
            stack: Vec::new(),
            last_len: 1024,
        }
    }

    /// Bytes consumed from the reader so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    fn err(&self, what: &str) -> Error {
        Error::decode(format!(
            "CloudTrail log file: {what} at byte {}",
            self.offset
        ))
    }

    fn fill(&mut self) -> Result<&[u8]> {
        loop {
            match self.reader.fill_buf() {
                Ok(_) => break,
                Err(e) if e.kind() == IoErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io("reading CloudTrail log file", e)),
            }
        }
        self.reader
            .fill_buf()
            .map_err(|e| Error::io("reading CloudTrail log file", e))
    }

    fn consume(&mut self, n: usize) {
        self.reader.consume(n);
        self.offset += n as u64;
    }

    /// The next byte that is not JSON whitespace, without consuming it.
    fn peek_non_ws(&mut self) -> Result<Option<u8>> {
        loop {
            let buf = self.fill()?;
            if buf.is_empty() {
                return Ok(None);
            }
            match buf.iter().position(|b| !is_ws(*b)) {
                Some(i) => {
                    let b = buf[i];
                    self.consume(i);
                    return Ok(Some(b));
                }
                None => {
                    let n = buf.len();
                    self.consume(n);
                }
            }
        }
    }

    fn expect_non_ws(&mut self, what: &str) -> Result<u8> {
        match self.peek_non_ws()? {
            Some(b) => Ok(b),
            None => Err(self.err(&format!("unexpected end of input, expected {what}"))),
        }
    }

    /// Reads a string (the opening quote already peeked), returning up to
    /// `KEY_PREFIX` bytes of its raw content and whether it was longer or held escapes.
    fn read_key(&mut self) -> Result<(Vec<u8>, bool)> {
        self.consume(1);
        let mut prefix = Vec::with_capacity(KEY_PREFIX);
        let mut unusual = false;
        let mut escaped = false;
        loop {
            let buf = self.fill()?;
            if buf.is_empty() {
                return Err(self.err("unexpected end of input inside a key"));
            }
            let mut end = None;
            let mut i = 0;
            if escaped {
                i = 1;
                escaped = false;
            }
            while i < buf.len() {
                match memchr::memchr2(b'"', b'\\', &buf[i..]) {
                    None => {
                        i = buf.len();
                    }
                    Some(p) => {
                        let j = i + p;
                        if buf[j] == b'\\' {
                            unusual = true;
                            if j + 1 < buf.len() {
                                i = j + 2;
                            } else {
                                escaped = true;
                                i = buf.len();
                            }
                        } else {
                            end = Some(j);
                            break;
                        }
                    }
                }
            }
            let take = end.unwrap_or(buf.len());
            let room = KEY_PREFIX.saturating_sub(prefix.len());
            if take > room {
                unusual = true;
            }
            prefix.extend_from_slice(&buf[..take.min(room)]);
            let n = buf.len();
            match end {
                Some(j) => {
                    self.consume(j + 1);
                    return Ok((prefix, unusual));
                }
                None => self.consume(n),
            }
        }
    }

    /// Captures (or, with `out = None`, skips) one JSON value starting at the
    /// next non-whitespace byte.
    fn value(&mut self, mut out: Option<&mut Vec<u8>>) -> Result<()> {
        let first = self.expect_non_ws("a value")?;
        match first {
            b'{' | b'[' => self.container(out),
            b'"' => {
                self.consume(1);
                if let Some(o) = out.as_deref_mut() {
                    o.push(b'"');
                }
                self.string_tail(out)
            }
            b'-' | b'0'..=b'9' | b't' | b'f' | b'n' => self.scalar(out),
            _ => Err(self.err(&format!("unexpected byte 0x{first:02x}"))),
        }
    }

    /// Scans a number or literal up to the next delimiter; the consumer's parser
    /// validates it.
    fn scalar(&mut self, mut out: Option<&mut Vec<u8>>) -> Result<()> {
        let mut len = 0usize;
        loop {
            let buf = self.fill()?;
            if buf.is_empty() {
                return Ok(());
            }
            let end = buf
                .iter()
                .position(|b| matches!(b, b',' | b']' | b'}') || is_ws(*b));
            let take = end.unwrap_or(buf.len());
            if let Some(o) = out.as_deref_mut() {
                o.extend_from_slice(&buf[..take]);
            }
            len += take;
            self.consume(take);
            if len > 4096 {
                return Err(self.err("number or literal too long"));
            }
            if end.is_some() {
                return Ok(());
            }
        }
    }

    /// Scans the rest of a string whose opening quote was consumed.
    fn string_tail(&mut self, mut out: Option<&mut Vec<u8>>) -> Result<()> {
        let mut escaped = false;
        let mut len = 0usize;
        loop {
            let buf = self.fill()?;
            if buf.is_empty() {
                return Err(self.err("unexpected end of input inside a string"));
            }
            let mut i = 0;
            if escaped {
                i = 1;
                escaped = false;
            }
            let end = string_end(buf, i, &mut escaped);
            let take = end.unwrap_or(buf.len());
            if let Some(o) = out.as_deref_mut() {
                o.extend_from_slice(&buf[..take]);
            }
            len += take;
            self.consume(take);
            if len > MAX_RECORD_BYTES {
                return Err(self.err("string larger than the record limit"));
            }
            if end.is_some() {
                return Ok(());
            }
        }
    }

    /// Scans an object or array (first byte not yet consumed) to its matching
    /// closing bracket. This is the hot loop: strings are skipped with `memchr`,
    /// structure is tracked with a small stack.
    fn container(&mut self, mut out: Option<&mut Vec<u8>>) -> Result<()> {
        self.stack.clear();
        let mut in_string = false;
        let mut escaped = false;
        let mut len = 0usize;
        loop {
            let buf = match self.reader.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == IoErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io("reading CloudTrail log file", e)),
            };
            if buf.is_empty() {
                return Err(self.err("unexpected end of input inside a record"));
            }
            let mut i = 0;
            if escaped {
                i = 1;
                escaped = false;
            }
            let mut done = None;
            let mut bad = None;
            while i < buf.len() {
                if in_string {
                    match string_end(buf, i, &mut escaped) {
                        Some(end) => {
                            in_string = false;
                            i = end;
                        }
                        None => i = buf.len(),
                    }
                } else {
                    let b = buf[i];
                    i += 1;
                    match b {
                        b'"' => in_string = true,
                        b'{' => self.stack.push(b'}'),
                        b'[' => self.stack.push(b']'),
                        b'}' | b']' => {
                            if self.stack.pop() != Some(b) {
                                bad = Some("mismatched bracket");
                                break;
                            }
                            if self.stack.is_empty() {
                                done = Some(i);
                                break;
                            }
                        }
                        _ => {}
                    }
                    if self.stack.len() > MAX_DEPTH {
                        bad = Some("record nested too deeply");
                        break;
                    }
                }
            }
            if let Some(what) = bad {
                self.offset += i as u64;
                return Err(self.err(what));
            }
            let take = done.unwrap_or(buf.len());
            if let Some(o) = out.as_deref_mut() {
                o.extend_from_slice(&buf[..take]);
            }
            len += take;
            self.consume(take);
            if done.is_some() {
                return Ok(());
            }
            if len > MAX_RECORD_BYTES {
                return Err(self.err("record larger than the record limit"));
            }
        }
    }

    fn step(&mut self) -> Result<Option<Vec<u8>>> {
        loop {
            match self.state {
                State::Done => return Ok(None),
                State::Start => {
                    // Tolerate a UTF-8 byte order mark.
                    if self.fill()?.first() == Some(&0xEF) {
                        for expected in [0xEF, 0xBB, 0xBF] {
                            if self.fill()?.first() != Some(&expected) {
                                return Err(self.err("invalid byte order mark"));
                            }
                            self.consume(1);
                        }
                    }
                    match self.peek_non_ws()? {
                        Some(b'{') => {
                            self.consume(1);
                            self.state = State::TopLevel { first: true };
                        }
                        Some(b) => {
                            return Err(
                                self.err(&format!("expected a JSON object, found byte 0x{b:02x}"))
                            );
                        }
                        None => return Err(self.err("empty input")),
                    }
                }
                State::TopLevel { first } => {
                    let mut b = self.expect_non_ws("a key or '}'")?;
                    if b == b'}' {
                        self.consume(1);
                        if self.peek_non_ws()?.is_some() {
                            return Err(self.err("trailing data after the top-level object"));
                        }
                        self.state = State::Done;
                        if !self.seen_records {
                            return Err(self.err("no \"Records\" array"));
                        }
                        return Ok(None);
                    }
                    if !first {
                        if b != b',' {
                            return Err(self.err("expected ',' or '}' after a top-level value"));
                        }
                        self.consume(1);
                        b = self.expect_non_ws("a key")?;
                    }
                    if b != b'"' {
                        return Err(self.err("expected a key"));
                    }
                    let (key, unusual) = self.read_key()?;
                    if self.expect_non_ws("':'")? != b':' {
                        return Err(self.err("expected ':' after a key"));
                    }
                    self.consume(1);
                    if !unusual && key == b"Records" {
                        if self.seen_records {
                            return Err(self.err("duplicate \"Records\" key"));
                        }
                        self.seen_records = true;
                        if self.expect_non_ws("'['")? != b'[' {
                            return Err(self.err("\"Records\" is not an array"));
                        }
                        self.consume(1);
                        self.state = State::InRecords { first: true };
                    } else {
                        self.value(None)?;
                        self.state = State::TopLevel { first: false };
                    }
                }
                State::InRecords { first } => {
                    let mut b = self.expect_non_ws("a record or ']'")?;
                    if b == b']' {
                        self.consume(1);
                        self.state = State::TopLevel { first: false };
                        continue;
                    }
                    if !first {
                        if b != b',' {
                            return Err(self.err("expected ',' or ']' after a record"));
                        }
                        self.consume(1);
                        b = self.expect_non_ws("a record")?;
                    }
                    if b != b'{' {
                        return Err(self.err("a record is not a JSON object"));
                    }
                    let mut out = Vec::with_capacity(self.last_len.min(MAX_RECORD_BYTES) + 64);
                    self.container(Some(&mut out))?;
                    self.last_len = out.len();
                    self.state = State::InRecords { first: false };
                    return Ok(Some(out));
                }
            }
        }
    }
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t')
}

impl<R: BufRead> Iterator for RecordSplitter<R> {
    type Item = Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.step() {
            Ok(Some(record)) => Some(Ok(record)),
            Ok(None) => {
                self.state = State::Done;
                None
            }
            Err(e) => {
                self.state = State::Done;
                Some(Err(e))
            }
        }
    }
}

impl<R: BufRead> std::iter::FusedIterator for RecordSplitter<R> {}

impl RecordSplitter<Box<dyn BufRead + Send>> {
    /// Streams the records of the CloudTrail log file at `path`, gunzipping
    /// it on the fly if it is gzip (detected by its magic bytes, not its
    /// name), as CloudTrail writes its log files to S3. Fails with an
    /// [`Error::Io`] if the file cannot be opened or read.
    ///
    /// To feed such files (or files of message bodies) to the engine, use
    /// the file source (`remediation::source::FileSource`) instead.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        open_maybe_gzip(path.as_ref()).map(RecordSplitter::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufReader;

    fn split(input: &[u8], cap: usize) -> Vec<Result<Vec<u8>>> {
        RecordSplitter::new(BufReader::with_capacity(cap, input)).collect()
    }

    #[test]
    fn splitter_boundaries() {
        let input =
            br#" {"a":{"Records":[1]},"Records" : [ {"x":"]}\"{"} , {"y":[{}]} ],"z":"}"} "#;
        for cap in [1, 2, 3, 7, 64] {
            let got: Vec<Vec<u8>> = split(input, cap).into_iter().map(|r| r.unwrap()).collect();
            assert_eq!(
                got,
                vec![br#"{"x":"]}\"{"}"#.to_vec(), br#"{"y":[{}]}"#.to_vec()],
                "cap {cap}"
            );
        }
    }

    #[test]
    fn splitter_errors_end_the_iterator() {
        let got = split(br#"{"Records":[{"a":1}, {"b":"#, 4);
        assert_eq!(got.len(), 2);
        assert!(got[0].is_ok());
        assert!(got[1].is_err());
    }
}
