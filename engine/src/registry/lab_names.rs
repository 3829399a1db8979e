//! A lab session's names on Berth's own registry.
//!
//! The class shares one registry, so a session's repositories live under a prefix of
//! its own, `lab/<session>/`, while the student keeps writing (and seeing) the names the
//! lessons use:
//!
//! - `docker push localhost:5000/NAME` pushes to `lab/<session>/NAME`;
//! - `docker pull localhost:5000/NAME` pulls `lab/<session>/NAME`, or when the session
//!   has no such image, the class's `NAME` (what the instructor published);
//! - search shows the class's repositories and the session's own (without the
//!   prefix), never another session's;
//! - `lab/...` is reserved: a session may name its own prefix (an alias of the short
//!   name) but no other.
//!
//! The local tag stays the name the student typed. The instructor (the default
//! namespace, or anyone using the registry from the host) sees the real names.

use crate::error::Error;

/// The top of every session's repositories on Berth's registry.
pub const LAB: &str = "lab";

/// One session's view of the registry's repository names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabNames {
    /// `lab/<session>`.
    prefix: String,
}

impl LabNames {
    /// The names of a lab session's namespace: `lab-<id>` (the server's sessions) has
    /// the prefix `lab/<id>`; any other namespace a prefix from its name's hash, so
    /// two namespaces never share one.
    pub fn for_namespace(ns: &str) -> LabNames {
        let id = match ns.strip_prefix("lab-") {
            Some(id) if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) => id.to_string(),
            _ => format!("ns-{}", &crate::store::sha256_digest(ns.as_bytes())[7..19]),
        };
        LabNames { prefix: format!("{LAB}/{id}") }
    }

    /// `lab/<session>`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The session's own repository for `repo`, as the student wrote it after the
    /// registry's address. Refuses another session's (anything else under `lab/`).
    pub fn own(&self, repo: &str) -> Result<String, Error> {
        if let Some(rest) = self.own_part(repo) {
            return Ok(format!("{}/{rest}", self.prefix));
        }
        if repo.split('/').next() == Some(LAB) && repo.contains('/') {
            return Err(Error::InvalidArgument(format!(
                "repository {repo} belongs to another lab session: in a lab session, push and pull your own images as localhost:PORT/NAME"
            )));
        }
        Ok(format!("{}/{repo}", self.prefix))
    }

    /// Where a pull of `repo` looks, in order: the session's own, then the class's.
    pub fn pull_sources(&self, repo: &str) -> Result<Vec<String>, Error> {
        let own = self.own(repo)?;
        Ok(if self.own_part(repo).is_some() { vec![own] } else { vec![own, repo.to_string()] })
    }

    /// How the session sees a repository of the registry: its own without the
    /// prefix, the class's as they are, another session's not at all (None).
    pub fn shown(&self, remote: &str) -> Option<String> {
        if let Some(rest) = self.own_part(remote) {
            return Some(rest.to_string());
        }
        if remote.split('/').next() == Some(LAB) && remote.contains('/') {
            return None;
        }
        Some(remote.to_string())
    }

    /// The name after the session's own prefix, when `repo` is under it.
    fn own_part<'a>(&self, repo: &'a str) -> Option<&'a str> {
        repo.strip_prefix(self.prefix.as_str()).and_then(|r| r.strip_prefix('/')).filter(|r| !r.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_under_the_session() {
        let a = LabNames::for_namespace("lab-0123456789ab");
        assert_eq!(a.prefix(), "lab/0123456789ab");
        assert_eq!(a.own("app").unwrap(), "lab/0123456789ab/app");
        assert_eq!(a.own("library/busybox").unwrap(), "lab/0123456789ab/library/busybox");
        assert_eq!(a.own("lab/0123456789ab/app").unwrap(), "lab/0123456789ab/app", "its own prefix is an alias");
        assert_eq!(a.own("lab").unwrap(), "lab/0123456789ab/lab", "a repository named lab is fine");
        assert_eq!(a.own("laboratory/x").unwrap(), "lab/0123456789ab/laboratory/x");
        for other in ["lab/ba9876543210/app", "lab/0123456789ab", "lab/x"] {
            let e = a.own(other).unwrap_err().to_string();
            assert!(e.contains("belongs to another lab session"), "{other}: {e}");
        }
        assert_eq!(a.pull_sources("app").unwrap(), ["lab/0123456789ab/app", "app"]);
        assert_eq!(a.pull_sources("lab/0123456789ab/app").unwrap(), ["lab/0123456789ab/app"]);
        assert_eq!(a.shown("lab/0123456789ab/app").as_deref(), Some("app"));
        assert_eq!(a.shown("library/busybox").as_deref(), Some("library/busybox"));
        assert_eq!(a.shown("lab/ba9876543210/app"), None);
    }

    #[test]
    fn namespaces_never_share_a_prefix() {
        let odd = LabNames::for_namespace("lab");
        assert!(odd.prefix().starts_with("lab/ns-"), "{}", odd.prefix());
        assert_ne!(LabNames::for_namespace("lab-XYZ"), LabNames::for_namespace("lab-xyz"));
        assert_ne!(LabNames::for_namespace("lab-ab"), LabNames::for_namespace("ab"));
    }
}
