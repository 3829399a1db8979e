//! Join codes: what a teacher reads aloud or projects, and a student types.
//!
//! Eight characters from an alphabet without the ones people confuse (0/O, 1/I/L),
//! shown as `ABCD-EFGH`: 31^8, about 2^39.6 codes, so guessing one through the join
//! rate limit is hopeless. Typing is forgiving: case, spaces and dashes do not matter.

use std::fmt;
use std::str::FromStr;

use rand::Rng;

/// Digits and capitals a class can read without asking twice.
pub const ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
const LEN: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JoinCode(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    #[error("a join code has {LEN} letters and digits (like K7QM-4RXD); this one has {0}")]
    Length(usize),
    #[error("{0:?} is not in join codes (they use 2-9 and A-Z without I, L and O)")]
    Character(char),
}

impl JoinCode {
    pub fn random() -> JoinCode {
        let mut rng = rand::thread_rng();
        JoinCode((0..LEN).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect())
    }

    /// A code as the database keeps it (written by [`JoinCode::as_str`]).
    pub fn from_stored(s: &str) -> JoinCode {
        s.parse().unwrap_or_else(|_| JoinCode(s.to_string()))
    }

    /// The eight characters without the dash: how it is stored and compared.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JoinCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0.get(..4), self.0.get(4..)) {
            (Some(a), Some(b)) if self.0.len() == LEN => write!(f, "{a}-{b}"),
            _ => f.write_str(&self.0),
        }
    }
}

impl FromStr for JoinCode {
    type Err = CodeError;

    fn from_str(s: &str) -> Result<JoinCode, CodeError> {
        let mut out = String::with_capacity(LEN);
        for c in s.chars().filter(|c| !c.is_whitespace() && *c != '-') {
            let up = c.to_ascii_uppercase();
            if !up.is_ascii() || !ALPHABET.contains(&(up as u8)) {
                return Err(CodeError::Character(c));
            }
            out.push(up);
        }
        if out.len() != LEN {
            return Err(CodeError::Length(out.chars().count()));
        }
        Ok(JoinCode(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn codes_read_back_however_they_are_typed() {
        let c = JoinCode::random();
        let shown = c.to_string();
        assert_eq!(shown.len(), 9);
        assert_eq!(shown.as_bytes()[4], b'-');
        assert_eq!(shown.parse::<JoinCode>().unwrap(), c);
        assert_eq!(shown.to_lowercase().replace('-', " ").parse::<JoinCode>().unwrap(), c);
        assert_eq!(" k7qm 4rxd ".parse::<JoinCode>().unwrap().to_string(), "K7QM-4RXD");
        assert_eq!("K7QM-4RX".parse::<JoinCode>(), Err(CodeError::Length(7)));
        assert_eq!("K7QM-4RX0".parse::<JoinCode>(), Err(CodeError::Character('0')));
        assert_eq!("K7QM-4RXl".parse::<JoinCode>(), Err(CodeError::Character('l')));
        assert_eq!("K7QM-4RX가".parse::<JoinCode>(), Err(CodeError::Character('가')));
    }

    #[test]
    fn random_codes_use_only_the_alphabet_and_differ() {
        let codes: std::collections::HashSet<String> = (0..1000).map(|_| JoinCode::random().as_str().to_string()).collect();
        assert_eq!(codes.len(), 1000);
        assert!(codes.iter().all(|c| c.bytes().all(|b| ALPHABET.contains(&b))));
    }

    proptest! {
        /// Whatever is typed: a code or a clear error, never a panic.
        #[test]
        fn any_input_parses_or_fails_cleanly(s in "\\PC{0,24}") {
            if let Ok(c) = s.parse::<JoinCode>() {
                prop_assert_eq!(c.to_string().parse::<JoinCode>().unwrap(), c);
            }
        }
    }
}
