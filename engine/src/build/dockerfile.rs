//! The Dockerfile parser: parser directives (`escape`, `syntax`), comments, line
//! continuations, heredocs, JSON and shell forms, flags, and the variable
//! substitution Docker applies to some instructions (see [`expand`]).
//!
//! Parsing never runs anything; it only turns text into [`Instruction`]s, so a bad
//! Dockerfile fails before any step of the build, with the line number.

use crate::error::{Error, Result};

/// The instructions the classic builder knows.
const KNOWN: &[&str] = &[
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL", "MAINTAINER",
    "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
];

/// Instructions whose leading `--name=value` words are flags.
const TAKES_FLAGS: &[&str] = &["ADD", "COPY", "FROM", "HEALTHCHECK", "RUN"];

/// Instructions that may carry heredocs (`RUN <<EOF`).
const TAKES_HEREDOCS: &[&str] = &["ADD", "COPY", "RUN"];

#[derive(Debug, Clone, PartialEq)]
pub enum Args {
    /// `["a", "b"]`: a JSON array of strings.
    Json(Vec<String>),
    /// Anything else, as written (continuations joined).
    Shell(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Heredoc {
    pub name: String,
    pub content: String,
    /// False when the delimiter was quoted (`<<"EOF"`): no expansion inside.
    pub expand: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Instruction {
    /// Upper case: `RUN`, `COPY`, ...
    pub keyword: String,
    /// `--from=build` → ("from", "build").
    pub flags: Vec<(String, String)>,
    pub args: Args,
    pub heredocs: Vec<Heredoc>,
    /// The instruction as written after joining continuations, for "Step 1/5 : …".
    pub original: String,
    /// 1-based line where the instruction starts.
    pub line: usize,
}

/// The flags each instruction takes in Berth's builder; `COPY --link` changes only how
/// BuildKit caches a layer, not what the image holds, so it is accepted as is.
const FLAGS: &[(&str, &[&str])] = &[
    ("FROM", &["platform"]),
    ("COPY", &["from", "chown", "chmod", "link"]),
    ("ADD", &["chown", "chmod", "link"]),
    ("HEALTHCHECK", &["interval", "timeout", "start-period", "start-interval", "retries"]),
    ("RUN", &[]),
];

impl Instruction {
    /// Refuses a flag the instruction does not take, as the classic builder does
    /// (naming the BuildKit-only ones), instead of ignoring it.
    pub fn check_flags(&self) -> crate::error::Result<()> {
        let known = FLAGS.iter().find(|(k, _)| *k == self.keyword).map(|(_, f)| *f).unwrap_or(&[]);
        for (name, _) in &self.flags {
            if known.contains(&name.as_str()) {
                continue;
            }
            let buildkit = matches!((self.keyword.as_str(), name.as_str()), ("RUN", "mount" | "network" | "security") | ("COPY", "parents" | "exclude") | ("ADD", "checksum" | "keep-git-dir" | "exclude"));
            return Err(crate::error::Error::InvalidArgument(if buildkit {
                format!("{} --{name} is not supported by Berth's builder (it is a BuildKit feature)", self.keyword)
            } else {
                format!("Unknown flag: {name}")
            }));
        }
        Ok(())
    }

    pub fn flag(&self, name: &str) -> Option<&str> {
        self.flags.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The arguments as one string (JSON form re-joined with spaces).
    pub fn text(&self) -> String {
        match &self.args {
            Args::Json(v) => v.join(" "),
            Args::Shell(s) => s.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dockerfile {
    pub escape: char,
    pub instructions: Vec<Instruction>,
}

fn parse_error(line: usize, msg: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("Dockerfile parse error line {line}: {msg}"))
}

/// What parsing a Dockerfile of only comments and blank lines fails with.
pub const NO_INSTRUCTIONS: &str = "file with no instructions";

/// Parses a whole Dockerfile.
pub fn parse(text: &str) -> Result<Dockerfile> {
    let lines: Vec<&str> = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).collect();
    let mut escape = '\\';
    let mut i = 0;
    // Directives are only recognised at the very top, before any other line.
    while i < lines.len() {
        let Some(body) = lines[i].trim().strip_prefix('#') else { break };
        let Some((k, v)) = body.split_once('=') else { break };
        match k.trim().to_ascii_lowercase().as_str() {
            "escape" => {
                escape = match v.trim() {
                    "\\" => '\\',
                    "`" => '`',
                    other => return Err(parse_error(i + 1, format!("invalid escape token '{other}' does not match ` or \\"))),
                }
            }
            // The syntax directive names a BuildKit frontend; the classic builder
            // accepts and ignores it, as Docker's does.
            "syntax" | "check" => {}
            _ => break,
        }
        i += 1;
    }
    let mut instructions = Vec::new();
    while i < lines.len() {
        let start = i;
        let first = lines[i].trim_start();
        i += 1;
        if first.is_empty() || first.starts_with('#') {
            continue;
        }
        // Join continuation lines; comment and empty lines inside are dropped.
        let mut joined = String::new();
        let mut cur = first.to_string();
        loop {
            let t = cur.trim_end();
            match t.strip_suffix(escape) {
                Some(rest) => {
                    joined.push_str(rest);
                    let mut next = None;
                    while i < lines.len() {
                        let l = lines[i];
                        i += 1;
                        let lt = l.trim_start();
                        if lt.starts_with('#') || lt.is_empty() {
                            continue;
                        }
                        next = Some(l.to_string());
                        break;
                    }
                    match next {
                        Some(n) => cur = n,
                        None => break,
                    }
                }
                _ => {
                    joined.push_str(&cur);
                    break;
                }
            }
        }
        let original = joined.trim().to_string();
        let (kw, rest) = match original.find(char::is_whitespace) {
            Some(p) => (&original[..p], original[p..].trim_start()),
            None => (original.as_str(), ""),
        };
        let keyword = kw.to_ascii_uppercase();
        if !KNOWN.contains(&keyword.as_str()) {
            return Err(parse_error(start + 1, format!("unknown instruction: {kw}")));
        }
        let (flags, rest) = if TAKES_FLAGS.contains(&keyword.as_str()) { take_flags(rest) } else { (vec![], rest) };
        let mut heredocs = Vec::new();
        if TAKES_HEREDOCS.contains(&keyword.as_str()) {
            for (name, strip_tabs, expand) in heredoc_markers(rest) {
                let mut content = String::new();
                let mut closed = false;
                while i < lines.len() {
                    let l = lines[i];
                    i += 1;
                    let l = if strip_tabs { l.trim_start_matches('\t') } else { l };
                    if l == name {
                        closed = true;
                        break;
                    }
                    content.push_str(l);
                    content.push('\n');
                }
                if !closed {
                    return Err(parse_error(start + 1, format!("unterminated heredoc {name}")));
                }
                heredocs.push(Heredoc { name, content, expand });
            }
        }
        let args = match json_array(rest) {
            Some(v) => Args::Json(v),
            None => Args::Shell(rest.to_string()),
        };
        instructions.push(Instruction { keyword, flags, args, heredocs, original, line: start + 1 });
    }
    if instructions.is_empty() {
        // Docker's parser's words; the builder names the file (see `build`).
        return Err(Error::InvalidArgument(NO_INSTRUCTIONS.into()));
    }
    Ok(Dockerfile { escape, instructions })
}

/// Splits leading `--name=value` (or bare `--name`) words off the arguments.
fn take_flags(mut rest: &str) -> (Vec<(String, String)>, &str) {
    let mut flags = Vec::new();
    while let Some(f) = rest.strip_prefix("--") {
        let end = f.find(char::is_whitespace).unwrap_or(f.len());
        let word = &f[..end];
        if word.is_empty() {
            break;
        }
        let (k, v) = word.split_once('=').unwrap_or((word, "true"));
        flags.push((k.to_ascii_lowercase(), v.to_string()));
        rest = f[end..].trim_start();
    }
    (flags, rest)
}

/// The heredoc markers on an instruction line: (name, `<<-` strips tabs, expands).
fn heredoc_markers(rest: &str) -> Vec<(String, bool, bool)> {
    let mut out = Vec::new();
    let mut s = rest;
    while let Some(p) = s.find("<<") {
        let mut m = &s[p + 2..];
        let strip = m.starts_with('-');
        if strip {
            m = &m[1..];
        }
        let quoted = m.starts_with('"') || m.starts_with('\'');
        let m2 = m.trim_start_matches(['"', '\'']);
        let name: String = m2.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if !name.is_empty() {
            out.push((name.clone(), strip, !quoted));
        }
        s = &m2[name.len()..];
    }
    out
}

/// `["a", "b"]` when the text is a JSON array of strings.
fn json_array(rest: &str) -> Option<Vec<String>> {
    if !rest.trim_start().starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(rest.trim()).ok()
}

/// Expands `$V`, `${V}`, `${V:-word}`, `${V:+word}` (and `-`/`+` without the colon)
/// as Docker's shell lexer does for ADD, COPY, ENV, EXPOSE, FROM, LABEL, STOPSIGNAL,
/// USER, VOLUME, WORKDIR and ARG. Single quotes suppress expansion; the escape
/// character before `$` makes it literal. Quotes are kept: [`words`] removes them.
pub fn expand(s: &str, escape: char, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let mut single = false;
    let mut double = false;
    while i < chars.len() {
        let c = chars[i];
        if c == escape && !single && i + 1 < chars.len() {
            if chars[i + 1] == '$' {
                out.push('$');
            } else {
                // Other escapes are for word splitting; keep them for `words`.
                out.push(c);
                out.push(chars[i + 1]);
            }
            i += 2;
            continue;
        }
        match c {
            '\'' if !double => {
                single = !single;
                out.push(c);
                i += 1;
            }
            '"' if !single => {
                double = !double;
                out.push(c);
                i += 1;
            }
            '$' if !single && i + 1 < chars.len() => {
                if chars[i + 1] == '{' {
                    let close = chars[i + 2..].iter().position(|&c| c == '}').map(|p| p + i + 2).ok_or_else(|| {
                        Error::InvalidArgument(format!("failed to process \"{s}\": missing '}}'"))
                    })?;
                    let inner: String = chars[i + 2..close].iter().collect();
                    out.push_str(&substitute(&inner, s, escape, lookup)?);
                    i = close + 1;
                } else {
                    let name: String = chars[i + 1..].iter().take_while(|c| c.is_ascii_alphanumeric() || **c == '_').collect();
                    if name.is_empty() {
                        out.push('$');
                        i += 1;
                    } else {
                        out.push_str(&lookup(&name).unwrap_or_default());
                        i += 1 + name.chars().count();
                    }
                }
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

fn substitute(inner: &str, whole: &str, escape: char, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String> {
    let name_len = inner.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(inner.len());
    let (name, op) = inner.split_at(name_len);
    if name.is_empty() {
        return Err(Error::InvalidArgument(format!("failed to process \"{whole}\": bad substitution")));
    }
    let value = lookup(name);
    let word = |w: &str| expand(w, escape, lookup);
    Ok(match op {
        "" => value.unwrap_or_default(),
        _ if op.starts_with(":-") => match value.filter(|v| !v.is_empty()) {
            Some(v) => v,
            None => word(&op[2..])?,
        },
        _ if op.starts_with(":+") => match value.filter(|v| !v.is_empty()) {
            Some(_) => word(&op[2..])?,
            None => String::new(),
        },
        _ if op.starts_with('-') => match value {
            Some(v) => v,
            None => word(&op[1..])?,
        },
        _ if op.starts_with('+') => match value {
            Some(_) => word(&op[1..])?,
            None => String::new(),
        },
        _ => return Err(Error::InvalidArgument(format!("failed to process \"{whole}\": unsupported modifier ({op}) in substitution"))),
    })
}

/// Splits words as Docker does for ENV, LABEL, COPY...: whitespace separates, quotes
/// group and are removed, the escape character escapes the next character.
pub fn words(s: &str, escape: char) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) if c == q => quote = None,
            Some('"') if c == escape => match chars.next() {
                // Inside double quotes only `"`, the escape char and `$` are escaped.
                Some(n) if n == '"' || n == escape || n == '$' => cur.push(n),
                Some(n) => {
                    cur.push(c);
                    cur.push(n);
                }
                None => cur.push(c),
            },
            Some(_) => cur.push(c),
            None if c == escape => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                in_word = true;
            }
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            None => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err(Error::InvalidArgument(format!("unexpected end of statement while looking for matching quote in {s:?}")));
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// `KEY=value ...` pairs, or the legacy `KEY value with spaces` form (ENV, LABEL).
pub fn key_values(keyword: &str, rest: &str, escape: char) -> Result<Vec<(String, String)>> {
    let ws = words(rest, escape)?;
    if ws.is_empty() {
        return Err(Error::InvalidArgument(format!("{keyword} requires at least one argument")));
    }
    if !ws[0].contains('=') {
        if ws.len() < 2 {
            return Err(Error::InvalidArgument(format!("{keyword} must have two arguments")));
        }
        return Ok(vec![(ws[0].clone(), ws[1..].join(" "))]);
    }
    ws.into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(Error::InvalidArgument(format!("{keyword} names can not be blank"))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "A" => Some("apple".into()),
            "E" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn parses_forms_flags_and_continuations() {
        let df = parse("# syntax=docker/dockerfile:1\nfrom busybox AS build\n# a comment\nRUN echo a \\\n  # inside\n  b\nCMD [\"sh\", \"-c\"]\nCOPY --from=build --chown=1:1 a b /x/\n").unwrap();
        let k: Vec<_> = df.instructions.iter().map(|i| i.keyword.as_str()).collect();
        assert_eq!(k, ["FROM", "RUN", "CMD", "COPY"]);
        assert_eq!(df.instructions[0].args, Args::Shell("busybox AS build".into()));
        assert_eq!(df.instructions[1].args, Args::Shell("echo a   b".into()));
        assert_eq!(df.instructions[1].line, 4);
        assert_eq!(df.instructions[2].args, Args::Json(vec!["sh".into(), "-c".into()]));
        assert_eq!(df.instructions[3].flag("from"), Some("build"));
        assert_eq!(df.instructions[3].flag("chown"), Some("1:1"));
        assert_eq!(df.instructions[3].text(), "a b /x/");
    }

    #[test]
    fn escape_directive_and_heredocs() {
        let df = parse("# escape=`\nFROM scratch\nRUN dir c:\\ `\n  x\nRUN <<EOF\necho hi\necho there\nEOF\nRUN <<-\"END\" cat\n\t$HOME\n\tEND\n").unwrap();
        assert_eq!(df.escape, '`');
        assert_eq!(df.instructions[1].args, Args::Shell("dir c:\\   x".into()));
        let h = &df.instructions[2].heredocs[0];
        assert_eq!((h.name.as_str(), h.content.as_str(), h.expand), ("EOF", "echo hi\necho there\n", true));
        let h = &df.instructions[3].heredocs[0];
        assert_eq!((h.content.as_str(), h.expand), ("$HOME\n", false));
        assert!(parse("FROM a\nRUN <<EOF\nno end\n").unwrap_err().to_string().contains("unterminated heredoc"));
    }

    #[test]
    fn errors_in_dockerfile_words() {
        let e = parse("FROM busybox\nRUNN true\n").unwrap_err().to_string();
        assert_eq!(e, "Dockerfile parse error line 2: unknown instruction: RUNN");
        assert_eq!(parse("\n# only a comment\n").unwrap_err().to_string(), NO_INSTRUCTIONS);
        assert!(parse("# escape=x\nFROM a").unwrap_err().to_string().contains("invalid escape token"));
    }

    #[test]
    fn substitution() {
        let x = |s: &str| expand(s, '\\', &env).unwrap();
        assert_eq!(x("$A ${A} ${A}s"), "apple apple apples");
        assert_eq!(x("${B:-def} ${A:-def} ${E:-def} ${E-def}"), "def apple def ");
        assert_eq!(x("${A:+yes} ${B:+yes}|"), "yes |");
        assert_eq!(x("'$A' \"$A\" \\$A $"), "'$A' \"apple\" $A $");
        assert!(expand("${A", '\\', &env).is_err());
        assert!(expand("${A?x}", '\\', &env).is_err());
    }

    #[test]
    fn words_and_key_values() {
        assert_eq!(words(r#"a "b c" 'd e' f\ g"#, '\\').unwrap(), ["a", "b c", "d e", "f g"]);
        assert_eq!(key_values("ENV", "A=1 B=\"two words\"", '\\').unwrap(), [("A".into(), "1".into()), ("B".into(), "two words".into())]);
        assert_eq!(key_values("ENV", "A one two", '\\').unwrap(), [("A".to_string(), "one two".to_string())]);
        assert!(key_values("ENV", "A", '\\').is_err());
        assert!(words("\"open", '\\').is_err());
    }
}

#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Whatever the text, parsing and substitution return, never panic.
        #[test]
        fn parse_never_panics(s in "(FROM|RUN|COPY|ENV|#|\\\\|<<EOF|EOF|\\$\\{|\\}|:-|[ \\n\"'`=\\[\\]a-z$-]){0,40}") {
            if let Ok(df) = parse(&s) {
                for i in &df.instructions {
                    let _ = expand(&i.text(), df.escape, &|_| Some("v".into()));
                    let _ = words(&i.text(), df.escape);
                    let _ = key_values(&i.keyword, &i.text(), df.escape);
                }
            }
        }

        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,200}") {
            let _ = parse(&s);
            let _ = expand(&s, '\\', &|_| None);
            let _ = expand(&s, '`', &|_| Some(String::new()));
        }
    }
}
