//! `.dockerignore` patterns with Docker's semantics (moby's patternmatcher and its
//! ignore-file reader): comments and blank lines are skipped, each pattern is cleaned
//! like a path and a leading `/` dropped, `!` makes an exception, the last pattern
//! that matches a path decides, a pattern matching a parent directory covers what is
//! inside it, `*` and `?` stay within one path component, `**` spans any number.
//!
//! The client applies these rules when it sends the context (the docker CLI, the
//! SDKs), always sending the Dockerfile and `.dockerignore` themselves so the daemon
//! can read them; the daemon then only takes those two out of the context when the
//! rules exclude them. Berth's builder does the same (see `build_keeping_scratch`).
//!
//! ```
//! use berth_engine::build::ignore::DockerIgnore;
//! let rules = DockerIgnore::parse("dir\n!dir/keep\n/Dockerfile\n").unwrap();
//! assert!(rules.excludes("dir/drop"));
//! assert!(!rules.excludes("dir/keep"));
//! assert!(rules.excludes("Dockerfile"));
//! ```

use regex::Regex;

use crate::error::{Error, Result};

/// One cleaned pattern, compiled as patternmatcher compiles it.
struct Pattern {
    exclusion: bool,
    kind: Kind,
}

enum Kind {
    /// No wildcard: the whole path must be equal.
    Exact(String),
    /// `prefix**`: anything starting with the prefix.
    Prefix(String),
    /// `**suffix`: anything ending with the suffix (`**/foo` also matches `foo`).
    Suffix(String),
    Regex(Regex),
}

/// The rules of one `.dockerignore` file.
#[derive(Default)]
pub struct DockerIgnore {
    patterns: Vec<Pattern>,
}

impl DockerIgnore {
    /// Reads a `.dockerignore`. A bad pattern (`!` alone, an unclosed `[`) is an
    /// error, as dockerd refuses the build for it.
    pub fn parse(text: &str) -> Result<DockerIgnore> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut patterns = Vec::new();
        for line in text.lines() {
            // A comment is a line starting with `#` before any trimming.
            if line.starts_with('#') {
                continue;
            }
            let mut p = line.trim();
            if p.is_empty() {
                continue;
            }
            let exclusion = p.starts_with('!');
            if exclusion {
                p = p[1..].trim();
                if p.is_empty() {
                    return Err(Error::InvalidArgument("illegal exclusion pattern: \"!\"".into()));
                }
            }
            let mut cleaned = clean(p);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
            patterns.push(Pattern { exclusion, kind: compile(&cleaned)? });
        }
        Ok(DockerIgnore { patterns })
    }

    /// Whether the rules leave `path` (slash-separated, relative to the context) out:
    /// patternmatcher's `MatchesOrParentMatches`.
    pub fn excludes(&self, path: &str) -> bool {
        let file = clean(path);
        if file == "." {
            // The context itself is never excluded.
            return false;
        }
        let parents: Vec<&str> = match file.rfind('/') {
            Some(i) => file[..i].split('/').collect(),
            None => vec![],
        };
        let mut matched = false;
        for p in &self.patterns {
            // An inclusion cannot change a match, nor an exception a non-match.
            if p.exclusion != matched {
                continue;
            }
            let hit = p.matches(&file) || (1..=parents.len()).any(|i| p.matches(&parents[..i].join("/")));
            if hit {
                matched = !p.exclusion;
            }
        }
        matched
    }
}

impl Pattern {
    fn matches(&self, path: &str) -> bool {
        match &self.kind {
            Kind::Exact(s) => path == s,
            Kind::Prefix(s) => path.starts_with(s.as_str()),
            Kind::Suffix(s) => path.ends_with(s.as_str()) || s.strip_prefix('/').is_some_and(|bare| path == bare),
            Kind::Regex(r) => r.is_match(path),
        }
    }
}

/// Go's `filepath.Clean` for slash-separated paths.
fn clean(p: &str) -> String {
    let rooted = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// Turns a cleaned pattern into a matcher, as patternmatcher's `compile` does: a
/// pattern without wildcards is compared whole, `x**` and `**x` by prefix and
/// suffix, anything else becomes an anchored regular expression.
fn compile(pattern: &str) -> Result<Kind> {
    #[derive(PartialEq)]
    enum Detected {
        Exact,
        Prefix,
        Suffix,
        Regex,
    }
    let bad = || Error::InvalidArgument(format!("syntax error in pattern: {pattern}"));
    let mut re = String::from("^");
    let mut detected = Detected::Exact;
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    let mut first = true;
    while i < chars.len() {
        let ch = chars[i];
        i += 1;
        match ch {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                // `**/` is `**`.
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i == chars.len() {
                    if detected == Detected::Exact {
                        detected = Detected::Prefix;
                    } else {
                        re.push_str(".*");
                        detected = Detected::Regex;
                    }
                } else {
                    // Any number of components, none included.
                    re.push_str("(.*/)?");
                    detected = Detected::Regex;
                }
                if first {
                    detected = Detected::Suffix;
                }
            }
            '*' => {
                re.push_str("[^/]*");
                detected = Detected::Regex;
            }
            '?' => {
                re.push_str("[^/]");
                detected = Detected::Regex;
            }
            '.' | '+' | '(' | ')' | '|' | '{' | '}' | '$' => {
                re.push('\\');
                re.push(ch);
            }
            // The next character as the regular expression reads it escaped.
            '\\' => match chars.get(i) {
                Some(&next) => {
                    i += 1;
                    re.push('\\');
                    re.push(next);
                    detected = Detected::Regex;
                }
                None => re.push_str("\\\\"),
            },
            '[' | ']' => {
                re.push(ch);
                detected = Detected::Regex;
            }
            other => re.push(other),
        }
        first = false;
    }
    Ok(match detected {
        Detected::Exact => Kind::Exact(pattern.to_string()),
        Detected::Prefix => Kind::Prefix(pattern[..pattern.len() - 2].to_string()),
        Detected::Suffix => Kind::Suffix(pattern[2..].to_string()),
        Detected::Regex => {
            re.push('$');
            Kind::Regex(Regex::new(&re).map_err(|_| bad())?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> DockerIgnore {
        DockerIgnore::parse(text).expect("valid rules")
    }

    #[test]
    fn later_rules_win_and_exceptions_reach_under_excluded_dirs() {
        let r = rules("# comment\ndir\n!dir/keep\n*.log\n!important.log\nnode_modules\n");
        assert!(r.excludes("node_modules/x/y.js"));
        assert!(r.excludes("dir"));
        assert!(r.excludes("dir/drop"));
        assert!(r.excludes("dir/sub/x"));
        assert!(!r.excludes("dir/keep"));
        assert!(r.excludes("debug.log"));
        assert!(!r.excludes("important.log"));
        // `*` does not cross a `/`.
        assert!(!r.excludes("logs/debug.log"));
        // An exception before the rule it would except does nothing.
        let r = rules("!keep\n*\n");
        assert!(r.excludes("keep"));
    }

    #[test]
    fn double_star_leading_slash_and_cleaning() {
        let r = rules("**/secret\n/build\nsrc/**\n./notes/../todo.txt\n");
        assert!(r.excludes("secret"));
        assert!(r.excludes("a/b/secret"));
        assert!(r.excludes("build"));
        assert!(r.excludes("build/out.o"));
        assert!(!r.excludes("sub/build"));
        assert!(r.excludes("src/main.rs"));
        assert!(r.excludes("todo.txt"));
        let r = rules("a/**/z\n");
        assert!(r.excludes("a/z"));
        assert!(r.excludes("a/b/c/z"));
        assert!(!r.excludes("b/z"));
    }

    #[test]
    fn classes_escapes_and_bad_patterns() {
        let r = rules("file[0-9].txt\nx\\*y\n[^a]b\n");
        assert!(r.excludes("file7.txt"));
        assert!(!r.excludes("filex.txt"));
        assert!(r.excludes("x*y"));
        assert!(!r.excludes("xzy"));
        assert!(r.excludes("cb"));
        assert!(!r.excludes("ab"));
        // Regular expression characters are literal.
        assert!(rules("a.b\n").excludes("a.b") && !rules("a.b\n").excludes("axb"));
        assert!(!rules("*\n").excludes("."), "the context itself stays");
        assert!(DockerIgnore::parse("!\n").is_err());
        assert!(DockerIgnore::parse("[a\n").is_err());
    }
}
