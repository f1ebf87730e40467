//! Gzip detection and decoding for the models and the file source: CloudTrail
//! log files, CloudWatch Logs data and compressed message bodies.
//! Crate-private; the public way to read a maybe-gzipped log file is
//! [`RecordSplitter::open`](super::RecordSplitter::open).

use crate::error::{Error, Result};
use std::io::{BufRead, BufReader, ErrorKind as IoErrorKind, Read};
use std::path::Path;

/// Whether `bytes` start with the gzip magic number (`1f 8b`).
pub(crate) fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// Wraps `reader` in a gzip decoder (multi-member, as S3 objects may be) if
/// its first bytes are the gzip magic number. A failure to read those bytes
/// is an [`Error::Io`] "reading `label`".
pub(crate) fn maybe_gunzip<'a, R: BufRead + Send + 'a>(
    mut reader: R,
    label: &str,
) -> Result<Box<dyn BufRead + Send + 'a>> {
    let head = loop {
        match reader.fill_buf() {
            Ok(b) => break b,
            Err(e) if e.kind() == IoErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(format!("reading {label}"), e)),
        }
    };
    // A one-byte buffer could hide the second magic byte; gzip files from
    // CloudTrail are never that short, and a real BufReader holds more.
    if is_gzip(head) {
        Ok(Box::new(BufReader::with_capacity(
            64 * 1024,
            flate2::bufread::MultiGzDecoder::new(reader),
        )))
    } else {
        Ok(Box::new(reader))
    }
}

/// Opens a CloudTrail log file, gunzipping it on the fly if it is gzip
/// (detected by its magic bytes, not its name).
pub(crate) fn open_maybe_gzip(path: &Path) -> Result<Box<dyn BufRead + Send>> {
    let file = std::fs::File::open(path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    maybe_gunzip(BufReader::with_capacity(64 * 1024, file), "input")
}

/// Reads all of `reader` into memory, failing if it exceeds `limit` bytes
/// (guards against decompression bombs).
pub(crate) fn read_limited<R: Read>(reader: R, limit: usize, what: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| Error::decode(format!("{what}: {e}")))?;
    if out.len() > limit {
        return Err(Error::decode(format!(
            "{what}: larger than {limit} bytes once decompressed"
        )));
    }
    Ok(out)
}
