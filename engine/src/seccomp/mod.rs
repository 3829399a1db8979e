//! Seccomp: which system calls a container's processes may make.
//!
//! Profiles use Docker's JSON format (`--security-opt seccomp=profile.json`; the docker
//! CLI sends the file's content), and [`default::profile`] is Docker's default. A
//! profile is resolved for one container (its capabilities, this machine's
//! architecture and kernel decide which rules apply, as in moby) and compiled to a
//! classic BPF program by libseccomp, once per distinct (profile, capabilities): see
//! [`Compiler`], which keeps each program as a file named by its hash; the container's
//! spec points at it, and the runtime installs it with [`install`] just before the
//! container's process (init, `exec`, a build step, a wasm guest) drops its
//! capabilities and execs.

pub mod default;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::container::nullable;

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// The profile is not valid JSON of the profile's shape.
    #[error("decoding seccomp profile failed: {0}")]
    Decode(String),
    /// Valid, but asks for something that makes no sense or Berth does not do.
    #[error("{0}")]
    Invalid(String),
    /// libseccomp refused the resolved rules.
    #[error("compiling seccomp profile failed: {0}")]
    Compile(String),
}

/// A profile in Docker's format (moby `api/types` `Seccomp`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Profile {
    pub default_action: Action,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    /// The older form of `arch_map`: the architectures themselves.
    #[serde(deserialize_with = "nullable")]
    pub architectures: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub arch_map: Vec<ArchMap>,
    #[serde(deserialize_with = "nullable")]
    pub syscalls: Vec<Rule>,
    /// Fields of the format Berth does not implement (user-space notification, filter
    /// flags): read so that `validate` refuses them, never ignored.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "String::is_empty")]
    pub listener_path: String,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ArchMap {
    pub architecture: String,
    #[serde(deserialize_with = "nullable")]
    pub sub_architectures: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Rule {
    /// The older form of `names`: one call.
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "nullable")]
    pub name: String,
    #[serde(deserialize_with = "nullable")]
    pub names: Vec<String>,
    pub action: Action,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<ArgCondition>,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Filter::is_empty")]
    pub includes: Filter,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Filter::is_empty")]
    pub excludes: Filter,
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "nullable")]
    pub comment: String,
}

/// When a rule applies: for these architectures (Docker's names: amd64, arm64, ...),
/// capabilities (all of them held) and kernels (at least this version).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Filter {
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub arches: Vec<String>,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub caps: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_kernel: Option<String>,
}

impl Filter {
    fn is_empty(&self) -> bool {
        self.arches.is_empty() && self.caps.is_empty() && self.min_kernel.is_none()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ArgCondition {
    pub index: u32,
    pub value: u64,
    /// For `SCMP_CMP_MASKED_EQ`: the value `arg & value` must equal.
    pub value_two: u64,
    pub op: Op,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    #[default]
    #[serde(rename = "SCMP_ACT_ERRNO")]
    Errno,
    #[serde(rename = "SCMP_ACT_ALLOW")]
    Allow,
    /// Kills the thread (libseccomp's and Docker's name for it).
    #[serde(rename = "SCMP_ACT_KILL", alias = "SCMP_ACT_KILL_THREAD")]
    Kill,
    #[serde(rename = "SCMP_ACT_KILL_PROCESS")]
    KillProcess,
    #[serde(rename = "SCMP_ACT_TRAP")]
    Trap,
    #[serde(rename = "SCMP_ACT_TRACE")]
    Trace,
    #[serde(rename = "SCMP_ACT_LOG")]
    Log,
    /// Hands the call to a user-space agent: Berth has none, so it is refused.
    #[serde(rename = "SCMP_ACT_NOTIFY")]
    Notify,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    #[default]
    #[serde(rename = "SCMP_CMP_EQ")]
    Equal,
    #[serde(rename = "SCMP_CMP_NE")]
    NotEqual,
    #[serde(rename = "SCMP_CMP_LT")]
    Less,
    #[serde(rename = "SCMP_CMP_LE")]
    LessOrEqual,
    #[serde(rename = "SCMP_CMP_GE")]
    GreaterEqual,
    #[serde(rename = "SCMP_CMP_GT")]
    Greater,
    #[serde(rename = "SCMP_CMP_MASKED_EQ")]
    MaskedEqual,
}

impl Profile {
    /// Reads a profile in Docker's JSON format, checking what can be checked without
    /// compiling (actions, argument indexes, name/names and architecture fields).
    pub fn from_json(bytes: &[u8]) -> Result<Profile, SeccompError> {
        let p: Profile = serde_json::from_slice(bytes).map_err(|e| SeccompError::Decode(e.to_string()))?;
        p.validate()?;
        Ok(p)
    }

    fn validate(&self) -> Result<(), SeccompError> {
        if !self.listener_path.is_empty() {
            return Err(SeccompError::Invalid("seccomp listenerPath (user-space notification) is not supported by Berth".into()));
        }
        if !self.flags.is_empty() {
            return Err(SeccompError::Invalid(format!("seccomp flags {:?} are not supported by Berth", self.flags)));
        }
        if !self.architectures.is_empty() && !self.arch_map.is_empty() {
            return Err(SeccompError::Invalid(
                "'architectures' and 'archMap' were specified in the seccomp profile, use either 'architectures' or 'archMap'".into(),
            ));
        }
        let notify = |a: Action| a == Action::Notify;
        if notify(self.default_action) || self.syscalls.iter().any(|r| notify(r.action)) {
            return Err(SeccompError::Invalid("seccomp action SCMP_ACT_NOTIFY is not supported by Berth".into()));
        }
        for r in &self.syscalls {
            if !r.name.is_empty() && !r.names.is_empty() {
                return Err(SeccompError::Invalid("'name' and 'names' were specified in the seccomp profile, use either 'name' or 'names'".into()));
            }
            if let Some(a) = r.args.iter().find(|a| a.index > 5) {
                return Err(SeccompError::Invalid(format!("seccomp argument index {} is out of range: a system call has 6 arguments (0 to 5)", a.index)));
            }
            for v in [&r.includes.min_kernel, &r.excludes.min_kernel].into_iter().flatten() {
                parse_kernel(v).ok_or_else(|| SeccompError::Invalid(format!("invalid kernel version {v:?} in seccomp profile")))?;
            }
        }
        Ok(())
    }

    /// The rules that apply to a container holding `caps` (names like `CAP_CHOWN`) on
    /// this machine, in Docker's way: a rule is skipped when an excluded architecture,
    /// capability or kernel matches, or an included one does not.
    fn applicable(&self, caps: &[String], arch: &str, kernel: (u32, u32)) -> Vec<&Rule> {
        let held = |c: &String| caps.iter().any(|h| h == c);
        let at_least = |v: &Option<String>| v.as_deref().and_then(parse_kernel).map(|min| kernel >= min);
        self.syscalls
            .iter()
            .filter(|r| {
                let ex = &r.excludes;
                let excluded = ex.arches.iter().any(|a| a == arch) || ex.caps.iter().any(held) || at_least(&ex.min_kernel) == Some(true);
                let inc = &r.includes;
                let included = (inc.arches.is_empty() || inc.arches.iter().any(|a| a == arch))
                    && inc.caps.iter().all(held)
                    && at_least(&inc.min_kernel) != Some(false);
                !excluded && included
            })
            .collect()
    }

    /// Compiles the rules for a container holding `caps` to a BPF program.
    pub fn compile(&self, caps: &[String]) -> Result<Vec<u8>, SeccompError> {
        let c = |e: libseccomp::error::SeccompError| SeccompError::Compile(e.to_string());
        let default = action(self.default_action, self.default_errno_ret, None);
        let mut ctx = ScmpFilterContext::new(default).map_err(c)?;
        let native = ScmpArch::native();
        for a in self.arches(native)? {
            if a != native {
                ctx.add_arch(a).map_err(c)?;
            }
        }
        for rule in self.applicable(caps, docker_arch(native), kernel_version()) {
            let act = action(rule.action, rule.errno_ret, self.default_errno_ret);
            // A rule that does what the default does adds nothing (libseccomp refuses it).
            if act == default {
                continue;
            }
            let names = if rule.name.is_empty() { rule.names.as_slice() } else { std::slice::from_ref(&rule.name) };
            for name in names {
                // Calls this libseccomp does not know exist on no architecture it
                // supports: moby and runc skip them too.
                let Ok(call) = ScmpSyscall::from_name(name) else { continue };
                add_rule(&mut ctx, act, call, &rule.args).map_err(|e| SeccompError::Compile(format!("{name}: {e}")))?;
            }
        }
        let mut out = Vec::new();
        let mem = memfd().map_err(|e| SeccompError::Compile(format!("memfd: {e}")))?;
        ctx.export_bpf(&mem).map_err(c)?;
        let mut f = std::fs::File::from(mem);
        use std::io::{Read, Seek};
        f.rewind().and_then(|_| f.read_to_end(&mut out)).map_err(|e| SeccompError::Compile(format!("read the program back: {e}")))?;
        Ok(out)
    }

    /// The architectures the filter covers: this one and, from `archMap`, the ones its
    /// processes may also run (x86 and x32 binaries on x86_64).
    fn arches(&self, native: ScmpArch) -> Result<Vec<ScmpArch>, SeccompError> {
        let parse = |s: &String| s.parse::<ScmpArch>().map_err(|_| SeccompError::Invalid(format!("unknown seccomp architecture {s:?}")));
        let mut out = vec![native];
        for a in &self.architectures {
            out.push(parse(a)?);
        }
        for m in &self.arch_map {
            if parse(&m.architecture)? == native {
                for s in &m.sub_architectures {
                    out.push(parse(s)?);
                }
            }
        }
        out.dedup();
        Ok(out)
    }
}

/// Adds one call's rule. Several conditions on the same argument cannot be ANDed by
/// libseccomp: like runc, each becomes a rule of its own (so they OR); conditions on
/// distinct arguments stay together (AND).
fn add_rule(ctx: &mut ScmpFilterContext, act: ScmpAction, call: ScmpSyscall, args: &[ArgCondition]) -> Result<(), libseccomp::error::SeccompError> {
    if args.is_empty() {
        ctx.add_rule(act, call)?;
        return Ok(());
    }
    let cmp = |a: &ArgCondition| {
        let op = match a.op {
            Op::Equal => ScmpCompareOp::Equal,
            Op::NotEqual => ScmpCompareOp::NotEqual,
            Op::Less => ScmpCompareOp::Less,
            Op::LessOrEqual => ScmpCompareOp::LessOrEqual,
            Op::GreaterEqual => ScmpCompareOp::GreaterEqual,
            Op::Greater => ScmpCompareOp::Greater,
            Op::MaskedEqual => ScmpCompareOp::MaskedEqual(a.value),
        };
        let datum = if a.op == Op::MaskedEqual { a.value_two } else { a.value };
        ScmpArgCompare::new(a.index, op, datum)
    };
    let repeated = |i: u32| args.iter().filter(|a| a.index == i).count() > 1;
    let mut together = Vec::new();
    for a in args {
        if repeated(a.index) {
            ctx.add_rule_conditional(act, call, &[cmp(a)])?;
        } else {
            together.push(cmp(a));
        }
    }
    if !together.is_empty() {
        ctx.add_rule_conditional(act, call, &together)?;
    }
    Ok(())
}

fn action(a: Action, errno: Option<u32>, fallback_errno: Option<u32>) -> ScmpAction {
    match a {
        Action::Allow => ScmpAction::Allow,
        Action::Errno => ScmpAction::Errno(errno.or(fallback_errno).unwrap_or(libc::EPERM as u32) as i32),
        Action::Kill => ScmpAction::KillThread,
        Action::KillProcess => ScmpAction::KillProcess,
        Action::Trap => ScmpAction::Trap,
        Action::Trace => ScmpAction::Trace(errno.unwrap_or(libc::EPERM as u32) as u16),
        Action::Log => ScmpAction::Log,
        // Refused by `validate`; a filter that kills is the safe reading.
        Action::Notify => ScmpAction::KillProcess,
    }
}

/// Docker's name for an architecture, as its profiles' `arches` use them.
fn docker_arch(a: ScmpArch) -> &'static str {
    match a {
        ScmpArch::X8664 => "amd64",
        ScmpArch::X86 => "x86",
        ScmpArch::X32 => "x32",
        ScmpArch::Aarch64 => "arm64",
        ScmpArch::Arm => "arm",
        ScmpArch::Ppc64Le => "ppc64le",
        ScmpArch::S390X => "s390x",
        ScmpArch::S390 => "s390",
        ScmpArch::Riscv64 => "riscv64",
        _ => "other",
    }
}

/// `major.minor` of a kernel version (`4.8`, `6.1.0-18-amd64`).
fn parse_kernel(v: &str) -> Option<(u32, u32)> {
    let mut parts = v.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    Some((major, minor))
}

fn kernel_version() -> (u32, u32) {
    nix::sys::utsname::uname().ok().and_then(|u| u.release().to_str().and_then(parse_kernel)).unwrap_or((0, 0))
}

fn memfd() -> std::io::Result<std::os::fd::OwnedFd> {
    let fd = nix::sys::memfd::memfd_create(c"berth-seccomp", nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC)?;
    Ok(fd)
}

/// Compiled programs by (profile, capabilities), kept as files named by their
/// SHA-256 in one directory: a class starting the same image compiles Docker's profile
/// once, and a file, once written, never changes under a starting container.
pub struct Compiler {
    dir: PathBuf,
    cache: Mutex<HashMap<(String, Vec<String>), PathBuf>>,
}

impl Compiler {
    pub fn new(dir: PathBuf) -> Compiler {
        Compiler { dir, cache: Mutex::default() }
    }

    /// The program file for `profile` (its JSON, or `None` for Docker's default) and
    /// a container holding `caps`.
    pub fn program(&self, profile: Option<&str>, caps: &[String]) -> Result<PathBuf, SeccompError> {
        let key = (profile.unwrap_or("").to_string(), caps.to_vec());
        if let Some(p) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(p.clone());
        }
        let resolved = match profile {
            Some(json) => Profile::from_json(json.as_bytes())?,
            None => default::profile(),
        };
        let program = resolved.compile(caps)?;
        let path = self.dir.join(format!("{}.bpf", hex::encode(Sha256::digest(&program))));
        if !path.exists() {
            let io = |e: crate::error::Error| SeccompError::Compile(e.to_string());
            std::fs::create_dir_all(&self.dir).map_err(|e| SeccompError::Compile(format!("create {}: {e}", self.dir.display())))?;
            crate::fsutil::write_atomic(&path, &program).map_err(io)?;
        }
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).insert(key, path.clone());
        Ok(path)
    }
}

/// Installs a compiled program on the calling thread (and what it execs). Needs
/// CAP_SYS_ADMIN or no_new_privs, so the runtime calls it before dropping capabilities.
pub fn install(program: &[u8]) -> Result<(), String> {
    const INSN: usize = std::mem::size_of::<libc::sock_filter>();
    if program.is_empty() || !program.len().is_multiple_of(INSN) || program.len() / INSN > u16::MAX as usize {
        return Err(format!("seccomp program of {} bytes is not a BPF program", program.len()));
    }
    // Copied into properly aligned instructions: the bytes come from a file.
    let mut insns: Vec<libc::sock_filter> = program
        .chunks_exact(INSN)
        .map(|b| libc::sock_filter {
            code: u16::from_ne_bytes([b[0], b[1]]),
            jt: b[2],
            jf: b[3],
            k: u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
        })
        .collect();
    let prog = libc::sock_fprog { len: insns.len() as u16, filter: insns.as_mut_ptr() };
    // SAFETY: `prog` points at `insns`, alive for the call; the kernel copies the program.
    if unsafe { libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER as libc::c_ulong, &prog as *const libc::sock_fprog) } != 0 {
        return Err(format!("install seccomp filter: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT_CAPS: &[&str] = &[
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SYS_CHROOT", "CAP_MKNOD", "CAP_AUDIT_WRITE", "CAP_SETFCAP",
    ];

    fn caps(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn allowed(p: &Profile, caps: &[String], name: &str) -> bool {
        p.applicable(caps, "amd64", (6, 1)).iter().any(|r| r.action == Action::Allow && r.names.iter().any(|n| n == name) && r.args.is_empty())
    }

    #[test]
    fn default_profile_follows_capabilities() {
        let p = default::profile();
        let base = caps(DEFAULT_CAPS);
        for call in ["read", "execve", "arch_prctl", "chroot", "ptrace", "modify_ldt"] {
            assert!(allowed(&p, &base, call), "{call}");
        }
        for call in ["unshare", "mount", "setns", "keyctl", "add_key", "open_by_handle_at", "reboot", "bpf"] {
            assert!(!allowed(&p, &base, call), "{call}");
        }
        let mut admin = base.clone();
        admin.push("CAP_SYS_ADMIN".into());
        assert!(allowed(&p, &admin, "unshare") && allowed(&p, &admin, "mount"));
        // clone is conditional without CAP_SYS_ADMIN, plain with it.
        assert!(!allowed(&p, &base, "clone") && allowed(&p, &admin, "clone"));
        let without_chroot: Vec<String> = base.iter().filter(|c| *c != "CAP_SYS_CHROOT").cloned().collect();
        assert!(!allowed(&p, &without_chroot, "chroot"));
    }

    #[test]
    fn the_default_survives_json() {
        let p = default::profile();
        let json = serde_json::to_vec(&p).unwrap();
        assert_eq!(Profile::from_json(&json).unwrap(), p);
        assert!(!p.compile(&caps(DEFAULT_CAPS)).unwrap().is_empty());
    }

    #[test]
    fn bad_profiles_are_refused() {
        let cases: &[(&str, &str)] = &[
            ("{", "decoding seccomp profile failed"),
            (r#"{"defaultAction":"SCMP_ACT_MAYBE"}"#, "decoding seccomp profile failed"),
            (r#"{"defaultAction":"SCMP_ACT_NOTIFY"}"#, "SCMP_ACT_NOTIFY is not supported"),
            (r#"{"defaultAction":"SCMP_ACT_ERRNO","listenerPath":"/run/x"}"#, "listenerPath"),
            (r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86"],"archMap":[{"architecture":"SCMP_ARCH_X86_64"}]}"#, "use either"),
            (r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"name":"read","names":["write"],"action":"SCMP_ACT_ALLOW"}]}"#, "use either"),
            (r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","args":[{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#, "out of range"),
            (r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_VAX"]}"#, ""),
        ];
        for (json, want) in cases {
            let got = Profile::from_json(json.as_bytes()).and_then(|p| p.compile(&[]).map(|_| ()));
            let err = got.expect_err(json).to_string();
            assert!(err.contains(want), "{json}: {err}");
        }
    }

    #[test]
    fn unknown_calls_are_skipped_and_nulls_accepted() {
        let json = r#"{"defaultAction":"SCMP_ACT_ALLOW","archMap":null,"syscalls":[{"names":["no_such_call","keyctl"],"action":"SCMP_ACT_ERRNO","args":null,"includes":null}]}"#;
        let p = Profile::from_json(json.as_bytes()).unwrap();
        assert!(!p.compile(&[]).unwrap().is_empty());
    }

    #[test]
    fn kernel_versions() {
        assert_eq!(parse_kernel("4.8"), Some((4, 8)));
        assert_eq!(parse_kernel("6.1.0-18-amd64"), Some((6, 1)));
        assert_eq!(parse_kernel("x"), None);
        let p = default::profile();
        let old = p.applicable(&[], "amd64", (4, 4));
        assert!(!old.iter().any(|r| r.names.iter().any(|n| n == "ptrace")));
    }
}
