//! Container logs in Docker's json-file format: one JSON object per line,
//! `{"log":"text\n","stream":"stdout","time":"2026-11-22T06:00:00.123456789Z"}`.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Context, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdin,
    Stdout,
    Stderr,
}

impl Stream {
    /// The stream byte of Docker's multiplexed frame header.
    pub fn frame_byte(self) -> u8 {
        match self {
            Stream::Stdin => 0,
            Stream::Stdout => 1,
            Stream::Stderr => 2,
        }
    }
}

/// Docker's 8-byte header frame: [stream, 0, 0, 0, len (big endian u32)] + payload.
pub fn frame(stream: Stream, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(data.len() + 8);
    v.extend_from_slice(&[stream.frame_byte(), 0, 0, 0]);
    v.extend_from_slice(&(data.len() as u32).to_be_bytes());
    v.extend_from_slice(data);
    v
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LogEntry {
    pub log: String,
    pub stream: Stream,
    pub time: DateTime<Utc>,
}

/// Encodes output as log lines, one per line of text (a trailing partial line is its
/// own entry, as json-file does when a write ends mid-line).
pub fn encode(stream: Stream, data: &[u8], time: DateTime<Utc>) -> Vec<u8> {
    let mut out = Vec::new();
    for piece in data.split_inclusive(|b| *b == b'\n') {
        let e = LogEntry { log: String::from_utf8_lossy(piece).into_owned(), stream, time };
        if let Ok(mut line) = serde_json::to_vec(&e) {
            line.push(b'\n');
            out.extend_from_slice(&line);
        }
    }
    out
}

pub fn append(file: &mut fs::File, stream: Stream, data: &[u8]) -> std::io::Result<()> {
    file.write_all(&encode(stream, data, Utc::now()))
}

/// Formats a timestamp the way `docker logs -t` prints it.
pub fn docker_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// Which entries `docker logs` wants.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    pub stdout: bool,
    pub stderr: bool,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Only the last N entries.
    pub tail: Option<usize>,
}

impl LogFilter {
    pub fn wants(&self, e: &LogEntry) -> bool {
        let s = match e.stream {
            Stream::Stdout => self.stdout,
            Stream::Stderr => self.stderr,
            Stream::Stdin => false,
        };
        s && self.since.is_none_or(|t| e.time >= t) && self.until.is_none_or(|t| e.time <= t)
    }
}

/// Reads the entries of a log file that pass the filter; returns them and the byte
/// offset reached, for following.
pub fn read(path: &Path, filter: &LogFilter) -> Result<(Vec<LogEntry>, u64)> {
    let f = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((vec![], 0)),
        Err(e) => return Err(e).ctx(|| format!("open {}", path.display())),
    };
    let mut r = BufReader::new(f);
    let (entries, offset) = read_from(&mut r, filter)?;
    let entries = match filter.tail {
        Some(n) if entries.len() > n => entries[entries.len() - n..].to_vec(),
        _ => entries,
    };
    Ok((entries, offset))
}

/// Reads whole lines from `r`; a line still being written (no newline yet) is left.
pub fn read_from(r: &mut impl BufRead, filter: &LogFilter) -> Result<(Vec<LogEntry>, u64)> {
    let mut out = Vec::new();
    let mut offset = 0u64;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = r.read_until(b'\n', &mut line).ctx(|| "read log".into())?;
        if n == 0 || line.last() != Some(&b'\n') {
            break;
        }
        offset += n as u64;
        // A damaged line (e.g. disk full) is skipped rather than failing the whole log.
        if let Ok(e) = serde_json::from_slice::<LogEntry>(&line) {
            if filter.wants(&e) {
                out.push(e);
            }
        }
    }
    Ok((out, offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_and_round_trips() {
        let t = Utc::now();
        let enc = encode(Stream::Stdout, b"a\nb\npartial", t);
        let all = LogFilter { stdout: true, stderr: true, ..Default::default() };
        let (entries, off) = read_from(&mut &enc[..], &all).unwrap();
        assert_eq!(entries.iter().map(|e| e.log.as_str()).collect::<Vec<_>>(), ["a\n", "b\n", "partial"]);
        assert_eq!(off as usize, enc.len());
        let v: serde_json::Value = serde_json::from_slice(enc.split(|b| *b == b'\n').next().unwrap()).unwrap();
        assert_eq!(v["stream"], "stdout");
    }

    #[test]
    fn filters_streams_and_tail() {
        let t = Utc::now();
        let mut enc = encode(Stream::Stdout, b"1\n2\n", t);
        enc.extend(encode(Stream::Stderr, b"e\n", t));
        enc.extend_from_slice(b"{not json}\n");
        let f = LogFilter { stdout: true, stderr: false, ..Default::default() };
        let (e, _) = read_from(&mut &enc[..], &f).unwrap();
        assert_eq!(e.len(), 2);
        let t2 = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(t2.path(), &enc).unwrap();
        let f = LogFilter { stdout: true, stderr: true, tail: Some(1), ..Default::default() };
        let (e, _) = read(t2.path(), &f).unwrap();
        assert_eq!(e[0].log, "e\n");
    }

    #[test]
    fn frames_have_docker_header() {
        assert_eq!(frame(Stream::Stderr, b"hi"), vec![2, 0, 0, 0, 0, 0, 0, 2, b'h', b'i']);
    }
}
