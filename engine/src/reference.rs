//! Image references as Docker understands them.
//!
//! `busybox` means `docker.io/library/busybox:latest`; `localhost:5000/x` names a
//! registry because the first component has a `.` or `:` or is `localhost`.
//! Grammar: <https://github.com/distribution/reference> (reference.go).

use std::fmt;

use crate::error::{Error, Result};

pub const DEFAULT_REGISTRY: &str = "docker.io";
pub const DEFAULT_TAG: &str = "latest";

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    /// Registry host, with port when given (`docker.io`, `localhost:5000`).
    pub registry: String,
    /// Repository path inside the registry (`library/busybox`).
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:<hex>` when the reference pins a digest.
    pub digest: Option<String>,
}

impl Reference {
    /// Parses a reference the way the docker CLI does; a missing tag becomes `latest`
    /// unless a digest is given.
    pub fn parse(s: &str) -> Result<Reference> {
        let bad = || Error::InvalidArgument(format!("invalid reference format: {s}"));
        if s.is_empty() || s.len() > 4096 {
            return Err(bad());
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                validate_digest(d).map_err(|_| bad())?;
                (r, Some(d.to_string()))
            }
            None => (s, None),
        };
        // A tag is after the last ':' that follows the last '/'.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(t) = tag {
            if !valid_tag(t) {
                return Err(bad());
            }
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, remainder))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                if !valid_host(first) {
                    return Err(bad());
                }
                (first.to_string(), remainder.to_string())
            }
            _ => (DEFAULT_REGISTRY.to_string(), name.to_string()),
        };
        if path.is_empty() || !path.split('/').all(valid_path_component) {
            return Err(bad());
        }
        if path.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(Error::InvalidArgument(format!(
                "invalid reference format: repository name ({path}) must be lowercase"
            )));
        }
        let repository = if registry == DEFAULT_REGISTRY && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, Some(_)) => None,
            (None, None) => Some(DEFAULT_TAG.to_string()),
        };
        Ok(Reference { registry, repository, tag, digest })
    }

    /// The name the docker CLI prints: `busybox`, `user/app`, `localhost:5000/app`.
    pub fn familiar_name(&self) -> String {
        if self.registry == DEFAULT_REGISTRY {
            self.repository
                .strip_prefix("library/")
                .unwrap_or(&self.repository)
                .to_string()
        } else {
            format!("{}/{}", self.registry, self.repository)
        }
    }

    /// `busybox:latest` or `busybox@sha256:…`, as Docker shows in RepoTags.
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_name();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }

    /// Returns the same repository with another tag.
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference { tag: Some(tag.to_string()), digest: None, ..self.clone() }
    }
}

impl fmt::Display for Reference {
    /// The fully qualified form: `docker.io/library/busybox:latest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// Checks `sha256:<64 hex>`.
pub fn validate_digest(d: &str) -> Result<()> {
    match d.strip_prefix("sha256:") {
        Some(h) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) => Ok(()),
        _ => Err(Error::InvalidArgument(format!("invalid digest: {d}"))),
    }
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn valid_host(h: &str) -> bool {
    let (host, port) = match h.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (h, None),
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()) {
            return false;
        }
    }
    !host.is_empty()
        && host.split('.').all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
        })
}

/// A path component: lowercase alnum runs joined by `.`, `_`, `__` or `-`+.
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_alphanumeric() {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !b[i].is_ascii_alphanumeric() {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(s: &str) -> String {
        Reference::parse(s).unwrap().to_string()
    }

    #[test]
    fn normalises_like_docker() {
        assert_eq!(full("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(full("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(full("user/app"), "docker.io/user/app:latest");
        assert_eq!(full("localhost:5000/app:v1"), "localhost:5000/app:v1");
        assert_eq!(full("localhost/app"), "localhost/app:latest");
        assert_eq!(full("registry.example.com/a/b/c:t"), "registry.example.com/a/b/c:t");
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(full(&format!("busybox@{d}")), format!("docker.io/library/busybox@{d}"));
    }

    #[test]
    fn familiar_names() {
        let r = Reference::parse("docker.io/library/busybox").unwrap();
        assert_eq!(r.familiar(), "busybox:latest");
        let r = Reference::parse("localhost:5000/x:1").unwrap();
        assert_eq!(r.familiar(), "localhost:5000/x:1");
    }

    #[test]
    fn rejects_bad_input() {
        for s in ["", "UPPER", "a:", "a:-x", "-a", "a//b", "a@sha256:12", ":tag", "a b", "a/"] {
            assert!(Reference::parse(s).is_err(), "{s:?} should fail");
        }
        let e = Reference::parse("Busybox").unwrap_err().to_string();
        assert!(e.contains("must be lowercase"), "{e}");
    }

    #[test]
    fn never_panics_on_arbitrary_input() {
        // A cheap fuzz: every prefix and suffix of tricky strings.
        let samples = ["localhost:5000/a/b:c@sha256:", "::::", "@@@", "a:b:c/d", "é/ü:ß", "a/.b", "x:99999999999999999999/y"];
        for s in samples {
            for i in 0..=s.len() {
                if s.is_char_boundary(i) {
                    let _ = Reference::parse(&s[..i]);
                    let _ = Reference::parse(&s[i..]);
                }
            }
        }
    }
}
