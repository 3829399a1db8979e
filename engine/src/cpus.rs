//! Sets of CPUs in the kernel's list format (`0-3,6`), as cpuset files read and write
//! them.

use std::collections::BTreeSet;
use std::fmt;

use crate::error::{Error, Result};

/// More CPUs than any machine Berth runs on has; bounds what a list may name, so a
/// bad file cannot make a huge set.
const MAX_CPU: usize = 8192;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuSet(BTreeSet<usize>);

impl CpuSet {
    /// Parses a list such as `0-3,6` (blank: the empty set).
    pub fn parse(s: &str) -> Result<CpuSet> {
        let bad = || Error::InvalidArgument(format!("invalid CPU list {s:?}: expected e.g. 0-3,6"));
        let mut set = BTreeSet::new();
        for part in s.trim().split(',').filter(|p| !p.is_empty()) {
            let (a, b) = match part.split_once('-') {
                Some((a, b)) => (a, b),
                None => (part, part),
            };
            let a: usize = a.trim().parse().map_err(|_| bad())?;
            let b: usize = b.trim().parse().map_err(|_| bad())?;
            if a > b || b > MAX_CPU {
                return Err(bad());
            }
            set.extend(a..=b);
        }
        Ok(CpuSet(set))
    }

    pub fn from_cpus(cpus: impl IntoIterator<Item = usize>) -> CpuSet {
        CpuSet(cpus.into_iter().collect())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = usize> + '_ {
        self.0.iter().copied()
    }

    pub fn intersection(&self, other: &CpuSet) -> CpuSet {
        CpuSet(self.0.intersection(&other.0).copied().collect())
    }
}

/// The kernel's format, with runs as ranges: `0-3,6`.
impl fmt::Display for CpuSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut it = self.0.iter().copied().peekable();
        while let Some(a) = it.next() {
            let mut b = a;
            while it.peek() == Some(&(b + 1)) {
                b = it.next().unwrap_or(b);
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if a == b {
                write!(f, "{a}")?;
            } else {
                write!(f, "{a}-{b}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_and_writes_the_kernels_format() {
        let s = CpuSet::parse("0-3,6\n").unwrap();
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![0, 1, 2, 3, 6]);
        assert_eq!(s.to_string(), "0-3,6");
        assert_eq!(CpuSet::parse("").unwrap(), CpuSet::default());
        assert_eq!(CpuSet::from_cpus([5, 1, 2]).to_string(), "1-2,5");
        for bad in ["x", "3-1", "1-", "-1", "0-99999"] {
            assert!(CpuSet::parse(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn any_set_round_trips(cpus in proptest::collection::btree_set(0usize..512, 0..64)) {
            let s = CpuSet(cpus);
            prop_assert_eq!(CpuSet::parse(&s.to_string()).unwrap(), s);
        }

        #[test]
        fn any_text_is_parsed_or_refused(text in "[0-9,\\- ]{0,24}") {
            let _ = CpuSet::parse(&text);
        }
    }
}
