//! Container logs in Docker's json-file format: one JSON object per line,
//! `{"log":"text\n","stream":"stdout","time":"2026-11-22T06:00:00.123456789Z"}`.
//!
//! Rotation as Docker does it: when `container.log` has reached `max-size`, it becomes
//! `container.log.1` (the older ones move up one, the one past `max-file` is dropped)
//! and a new `container.log` starts. Readers go through the rotated files oldest
//! first, and a follower moves on to the new file when the one it reads is rotated.

use std::fs;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Context, Result};
use crate::log_config::{LogMode, Rotation};

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
    let entries = Entries::new(stream, time);
    let mut out = Vec::new();
    for piece in data.split_inclusive(|b| *b == b'\n') {
        entries.push(&mut out, piece);
    }
    out
}

/// Encodes entries of one stream at one time, as [`LogEntry`] serializes: the
/// stream and the time are encoded once, not for every line of a flood.
struct Entries {
    /// `,"stream":"stdout","time":"…"}` and the newline.
    tail: Vec<u8>,
}

impl Entries {
    fn new(stream: Stream, time: DateTime<Utc>) -> Entries {
        let mut tail = Vec::with_capacity(64);
        tail.extend_from_slice(b",\"stream\":");
        // Neither can fail: a unit variant and a timestamp into a Vec.
        let _ = serde_json::to_writer(&mut tail, &stream);
        tail.extend_from_slice(b",\"time\":");
        let _ = serde_json::to_writer(&mut tail, &time);
        tail.extend_from_slice(b"}\n");
        Entries { tail }
    }

    fn push(&self, out: &mut Vec<u8>, line: &[u8]) {
        out.extend_from_slice(b"{\"log\":");
        let _ = serde_json::to_writer(&mut *out, &String::from_utf8_lossy(line));
        out.extend_from_slice(&self.tail);
    }
}

/// `container.log.N`: the Nth newest rotated file of the log at `path`.
pub fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// A partial line is kept back this long at most (Docker's copier buffer): a
/// program that never ends its line still gets logged.
const MAX_PARTIAL: usize = 16 * 1024;

/// The shim's side: appends entries to the log, rotating it as configured.
pub struct LogWriter {
    path: PathBuf,
    file: Option<fs::File>,
    size: u64,
    rotation: Option<Rotation>,
    /// Per stream (stdout, stderr): the start of a line not ended yet. Like Docker,
    /// an entry is a whole line, so `--tail` counts lines, not reads.
    pending: [Vec<u8>; 2],
}

impl LogWriter {
    /// Opens the log at `path` for appending (nothing is opened for `Discard`).
    pub fn open(path: &Path, mode: LogMode) -> std::io::Result<LogWriter> {
        let (file, rotation) = match mode {
            LogMode::Discard => (None, None),
            LogMode::Unbounded => (Some(open_append(path)?), None),
            LogMode::Rotated(r) => (Some(open_append(path)?), Some(r)),
        };
        let size = file.as_ref().and_then(|f| f.metadata().ok()).map_or(0, |m| m.len());
        Ok(LogWriter { path: path.to_path_buf(), file, size, rotation, pending: [Vec::new(), Vec::new()] })
    }

    /// Logs the whole lines of `data` (after what was pending of that stream), one
    /// entry each; the rest waits for its end, or for [`LogWriter::flush`]. Returns
    /// the bytes written to the log.
    pub fn append(&mut self, stream: Stream, data: &[u8]) -> std::io::Result<u64> {
        if self.file.is_none() {
            return Ok(0);
        }
        let slot = usize::from(stream == Stream::Stderr);
        let mut buf = std::mem::take(&mut self.pending[slot]);
        buf.extend_from_slice(data);
        let whole = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let cut = if buf.len() - whole > MAX_PARTIAL { buf.len() } else { whole };
        let result = self.write_entries(stream, &buf[..cut]);
        self.pending[slot] = buf.split_off(cut);
        result
    }

    /// Logs what is pending of a line not ended (the container has exited).
    pub fn flush(&mut self) -> std::io::Result<()> {
        for (slot, stream) in [Stream::Stdout, Stream::Stderr].into_iter().enumerate() {
            let buf = std::mem::take(&mut self.pending[slot]);
            self.write_entries(stream, &buf)?;
        }
        Ok(())
    }

    /// One entry per line. The size is checked before each entry, as Docker does, so a
    /// file ends at most one entry past `max-size`. The entries go to the file in one
    /// write per file (a flood of short lines would otherwise cost a write each).
    fn write_entries(&mut self, stream: Stream, data: &[u8]) -> std::io::Result<u64> {
        let entries = Entries::new(stream, Utc::now());
        let mut buf = Vec::new();
        let mut written = 0;
        for line in data.split_inclusive(|b| *b == b'\n') {
            if let Some(r) = self.rotation {
                if self.size >= r.max_size {
                    written += self.write_out(&mut buf)?;
                    self.rotate(r)?;
                }
            }
            let before = buf.len();
            entries.push(&mut buf, line);
            self.size += (buf.len() - before) as u64;
        }
        written += self.write_out(&mut buf)?;
        Ok(written)
    }

    /// Writes `buf` to the current file and empties it.
    fn write_out(&mut self, buf: &mut Vec<u8>) -> std::io::Result<u64> {
        if let Some(f) = &mut self.file {
            f.write_all(buf)?;
        }
        let n = buf.len() as u64;
        buf.clear();
        Ok(n)
    }

    fn rotate(&mut self, r: Rotation) -> std::io::Result<()> {
        self.file = None;
        if r.max_file <= 1 {
            // No rotated files kept: start the one file over.
            let _ = fs::remove_file(&self.path);
        } else {
            let _ = fs::remove_file(rotated(&self.path, r.max_file - 1));
            for n in (1..r.max_file - 1).rev() {
                let _ = fs::rename(rotated(&self.path, n), rotated(&self.path, n + 1));
            }
            fs::rename(&self.path, rotated(&self.path, 1))?;
        }
        self.file = Some(open_append(&self.path)?);
        self.size = 0;
        Ok(())
    }
}

fn open_append(path: &Path) -> std::io::Result<fs::File> {
    fs::OpenOptions::new().create(true).append(true).open(path)
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

/// Reads the entries of a log (its rotated files oldest first, then the current one)
/// that pass the filter; returns them and a [`Follower`] at the end of the current
/// file, for `docker logs -f`.
pub fn read(path: &Path, filter: &LogFilter) -> Result<(Vec<LogEntry>, Follower)> {
    // The current file is opened first: if it is rotated while the older ones are
    // read, what we hold is still the newest, and the follower notices the rotation.
    let current = open_existing(path)?;
    let mut older = Vec::new();
    for n in 1.. {
        match open_existing(&rotated(path, n))? {
            Some(f) => older.push(f),
            None => break,
        }
    }
    let mut entries = Vec::new();
    for f in older.into_iter().rev() {
        entries.extend(read_from(&mut BufReader::new(f), filter)?.0);
    }
    let mut follower = Follower { path: path.to_path_buf(), reader: None, ino: 0 };
    if let Some(f) = current {
        follower.ino = f.metadata().map(|m| m.ino()).unwrap_or(0);
        let mut r = BufReader::new(f);
        entries.extend(read_from(&mut r, filter)?.0);
        follower.reader = Some(r);
    }
    let entries = match filter.tail {
        Some(n) if entries.len() > n => entries.split_off(entries.len() - n),
        _ => entries,
    };
    Ok((entries, follower))
}

fn open_existing(path: &Path) -> Result<Option<fs::File>> {
    match fs::File::open(path) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).ctx(|| format!("open {}", path.display())),
    }
}

/// Where `docker logs -f` is in a log: the file it reads (held open, so a rotation
/// does not take it away) and that file's inode, to notice the rotation.
pub struct Follower {
    path: PathBuf,
    reader: Option<BufReader<fs::File>>,
    ino: u64,
}

impl Follower {
    /// Entries written since the last call that pass the filter (`tail` is ignored).
    pub fn poll(&mut self, filter: &LogFilter) -> Result<Vec<LogEntry>> {
        let mut out = Vec::new();
        if let Some(r) = &mut self.reader {
            out.extend(read_from(r, filter)?.0);
        }
        let now = fs::metadata(&self.path).map(|m| m.ino()).ok();
        if now.is_some_and(|ino| ino != self.ino || self.reader.is_none()) {
            // Rotated (or made at last): the old file gets no more writes now; take
            // what reached it since the read above, then go on with the new one.
            if let Some(r) = &mut self.reader {
                out.extend(read_from(r, filter)?.0);
            }
            if let Some(f) = open_existing(&self.path)? {
                self.ino = f.metadata().map(|m| m.ino()).unwrap_or(0);
                let mut r = BufReader::new(f);
                out.extend(read_from(&mut r, filter)?.0);
                self.reader = Some(r);
            }
        }
        Ok(out)
    }
}

/// Reads whole lines from `r`; a line still being written (no newline yet) is left
/// for the next read (the reader is moved back to its start).
pub fn read_from<R: BufRead + Seek>(r: &mut R, filter: &LogFilter) -> Result<(Vec<LogEntry>, u64)> {
    let mut out = Vec::new();
    let mut offset = 0u64;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = r.read_until(b'\n', &mut line).ctx(|| "read log".into())?;
        if n == 0 || line.last() != Some(&b'\n') {
            if n > 0 {
                r.seek(SeekFrom::Current(-(n as i64))).ctx(|| "seek log".into())?;
            }
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
    fn entries_are_encoded_as_a_log_entry_serializes() {
        let t = Utc::now();
        for (stream, text) in [(Stream::Stdout, &b"plain\n"[..]), (Stream::Stderr, b"\"quoted\" \\ \t \x01 \xed\x95\x9c \xff\n"), (Stream::Stdout, b"no newline")] {
            let mut want = serde_json::to_vec(&LogEntry { log: String::from_utf8_lossy(text).into_owned(), stream, time: t }).unwrap();
            want.push(b'\n');
            assert_eq!(String::from_utf8_lossy(&encode(stream, text, t)), String::from_utf8_lossy(&want));
        }
    }

    #[test]
    fn a_flood_is_written_whole_and_rotated_at_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("container.log");
        let mut w = LogWriter::open(&path, LogMode::Rotated(Rotation { max_size: 1000, max_file: 3 })).unwrap();
        let flood = b"y\n".repeat(100);
        let written = w.append(Stream::Stdout, &flood).unwrap();
        let sizes: Vec<u64> = [path.clone(), rotated(&path, 1), rotated(&path, 2)].iter().map(|p| std::fs::metadata(p).map_or(0, |m| m.len())).collect();
        // The files kept hold the newest entries; each ends at most one entry past 1000.
        let entry = encode(Stream::Stdout, b"y\n", Utc::now()).len() as u64;
        assert!(sizes.iter().all(|s| *s < 1000 + entry), "{sizes:?}");
        assert!(written >= sizes.iter().sum::<u64>(), "{written} {sizes:?}");
        let all = LogFilter { stdout: true, stderr: true, ..Default::default() };
        let (entries, _) = read(&path, &all).unwrap();
        assert!(entries.iter().all(|e| e.log == "y\n") && entries.len() as u64 * entry == sizes.iter().sum::<u64>());
    }

    #[test]
    fn splits_lines_and_round_trips() {
        let t = Utc::now();
        let enc = encode(Stream::Stdout, b"a\nb\npartial", t);
        let all = LogFilter { stdout: true, stderr: true, ..Default::default() };
        let (entries, off) = read_from(&mut std::io::Cursor::new(&enc[..]), &all).unwrap();
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
        let (e, _) = read_from(&mut std::io::Cursor::new(&enc[..]), &f).unwrap();
        assert_eq!(e.len(), 2);
        let t2 = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(t2.path(), &enc).unwrap();
        let f = LogFilter { stdout: true, stderr: true, tail: Some(1), ..Default::default() };
        let (e, _) = read(t2.path(), &f).unwrap();
        assert_eq!(e[0].log, "e\n");
    }

    fn all() -> LogFilter {
        LogFilter { stdout: true, stderr: true, ..Default::default() }
    }

    fn texts(entries: &[LogEntry]) -> Vec<String> {
        entries.iter().map(|e| e.log.trim_end().to_string()).collect()
    }

    #[test]
    fn rotation_keeps_max_file_files_of_about_max_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("container.log");
        let mut w = LogWriter::open(&path, LogMode::Rotated(Rotation { max_size: 300, max_file: 3 })).unwrap();
        let all_lines: String = (1..=100).map(|i| format!("{i}\n")).collect();
        w.append(Stream::Stdout, all_lines.as_bytes()).unwrap();
        let mut names: Vec<String> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        assert_eq!(names, ["container.log", "container.log.1", "container.log.2"]);
        for n in &names {
            let len = fs::metadata(dir.path().join(n)).unwrap().len();
            assert!(len <= 300 + 100, "{n}: {len} bytes");
        }
        // Read back in order, the oldest entries gone, the newest there.
        let (entries, _) = read(&path, &all()).unwrap();
        let t = texts(&entries);
        assert_eq!(t.last().unwrap(), "100");
        assert!(!t.contains(&"1".to_string()));
        let nums: Vec<u32> = t.iter().map(|s| s.parse().unwrap()).collect();
        assert!(nums.windows(2).all(|w| w[1] == w[0] + 1), "{nums:?}");
        let (tail, _) = read(&path, &LogFilter { tail: Some(2), ..all() }).unwrap();
        assert_eq!(texts(&tail), ["99", "100"]);
    }

    #[test]
    fn an_entry_is_a_whole_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("container.log");
        let mut w = LogWriter::open(&path, LogMode::Unbounded).unwrap();
        w.append(Stream::Stdout, b"12").unwrap();
        w.append(Stream::Stderr, b"err\n").unwrap();
        w.append(Stream::Stdout, b"34\n5").unwrap();
        w.append(Stream::Stdout, b"6\nprompt $ ").unwrap();
        let (e, _) = read(&path, &all()).unwrap();
        assert_eq!(e.iter().map(|e| e.log.as_str()).collect::<Vec<_>>(), ["err\n", "1234\n", "56\n"]);
        w.flush().unwrap();
        let (e, _) = read(&path, &all()).unwrap();
        assert_eq!(e.last().unwrap().log, "prompt $ ");
        // A line that never ends is logged in pieces all the same.
        w.append(Stream::Stdout, &vec![b'x'; MAX_PARTIAL + 1]).unwrap();
        assert_eq!(read(&path, &all()).unwrap().0.len(), 5);
    }

    #[test]
    fn one_file_is_started_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("container.log");
        let mut w = LogWriter::open(&path, LogMode::Rotated(Rotation { max_size: 200, max_file: 1 })).unwrap();
        for i in 0..50 {
            w.append(Stream::Stderr, format!("line {i}\n").as_bytes()).unwrap();
        }
        assert!(fs::metadata(&path).unwrap().len() <= 300);
        assert!(!rotated(&path, 1).exists());
        let mut none = LogWriter::open(&dir.path().join("none.log"), LogMode::Discard).unwrap();
        none.append(Stream::Stdout, b"gone\n").unwrap();
        assert!(!dir.path().join("none.log").exists());
    }

    #[test]
    fn a_follower_goes_on_across_rotations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("container.log");
        let mut w = LogWriter::open(&path, LogMode::Rotated(Rotation { max_size: 100, max_file: 2 })).unwrap();
        w.append(Stream::Stdout, b"first\n").unwrap();
        let (seen, mut f) = read(&path, &all()).unwrap();
        assert_eq!(texts(&seen), ["first"]);
        let mut got = Vec::new();
        for i in 0..20 {
            w.append(Stream::Stdout, format!("n{i}\n").as_bytes()).unwrap();
            // A partial line waits until it is whole.
            got.extend(texts(&f.poll(&all()).unwrap()));
        }
        let want: Vec<String> = (0..20).map(|i| format!("n{i}")).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn frames_have_docker_header() {
        assert_eq!(frame(Stream::Stderr, b"hi"), vec![2, 0, 0, 0, 0, 0, 0, 2, b'h', b'i']);
    }
}
