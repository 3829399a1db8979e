//! Detach keys (`--detach-keys`, default ctrl-p,ctrl-q): parsing Docker's syntax and
//! spotting the sequence in a client's input stream.

use crate::error::{Error, Result};

pub const DEFAULT_DETACH_KEYS: &str = "ctrl-p,ctrl-q";

/// Parses `ctrl-p,ctrl-q` / `a,ctrl-@,ctrl-[` into bytes (moby `pkg/term.ToBytes`).
pub fn parse_detach_keys(s: &str) -> Result<Vec<u8>> {
    let bad = || Error::InvalidArgument(format!("Invalid detach keys ({s}) provided"));
    let mut out = Vec::new();
    for key in s.split(',') {
        let k = key.trim();
        if k.len() > 1 {
            let c = k.strip_prefix("ctrl-").ok_or_else(bad)?;
            let b = c.as_bytes();
            if b.len() != 1 {
                return Err(bad());
            }
            let v = match b[0] {
                x @ b'a'..=b'z' => x - b'a' + 1,
                b'@' => 0,
                b'[' => 27,
                b'\\' => 28,
                b']' => 29,
                b'^' => 30,
                b'_' => 31,
                _ => return Err(bad()),
            };
            out.push(v);
        } else if k.len() == 1 {
            out.push(k.as_bytes()[0]);
        } else {
            return Err(bad());
        }
    }
    Ok(out)
}

/// Passes input through, holding back bytes that may start the detach sequence.
#[derive(Debug)]
pub struct DetachScanner {
    keys: Vec<u8>,
    matched: usize,
}

pub enum Scan {
    /// Forward these bytes to the container.
    Forward(Vec<u8>),
    /// The sequence was typed: forward the bytes before it, then detach.
    Detach(Vec<u8>),
}

impl DetachScanner {
    pub fn new(keys: Vec<u8>) -> DetachScanner {
        DetachScanner { keys, matched: 0 }
    }

    pub fn feed(&mut self, input: &[u8]) -> Scan {
        let mut out = Vec::with_capacity(input.len());
        if self.keys.is_empty() {
            out.extend_from_slice(input);
            return Scan::Forward(out);
        }
        for &b in input {
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    self.matched = 0;
                    return Scan::Detach(out);
                }
            } else {
                // Give back what we held; the byte itself may start a new match.
                out.extend_from_slice(&self.keys[..self.matched]);
                self.matched = 0;
                if b == self.keys[0] {
                    self.matched = 1;
                    if self.keys.len() == 1 {
                        self.matched = 0;
                        return Scan::Detach(out);
                    }
                } else {
                    out.push(b);
                }
            }
        }
        Scan::Forward(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_syntax() {
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q").unwrap(), vec![16, 17]);
        assert_eq!(parse_detach_keys("a,ctrl-@,ctrl-[").unwrap(), vec![b'a', 0, 27]);
        assert!(parse_detach_keys("ctrl-").is_err());
        assert!(parse_detach_keys("meta-x").is_err());
        assert!(parse_detach_keys("").is_err());
    }

    #[test]
    fn detects_across_chunks_and_gives_back_false_starts() {
        let mut s = DetachScanner::new(vec![16, 17]);
        assert!(matches!(s.feed(b"ls\x10"), Scan::Forward(v) if v == b"ls"));
        assert!(matches!(s.feed(b"x"), Scan::Forward(v) if v == b"\x10x"));
        assert!(matches!(s.feed(b"\x10\x10"), Scan::Forward(v) if v == b"\x10"));
        assert!(matches!(s.feed(b"\x11rest"), Scan::Detach(v) if v.is_empty()));
    }
}
