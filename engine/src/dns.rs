//! Docker's embedded DNS server (127.0.0.11:53 inside a container on a user-defined
//! network), as a small synchronous library.
//!
//! The shim binds the sockets inside the container's network namespace and runs
//! [`serve_udp`] (and [`serve_tcp`]) on threads of its own. Names come from a JSON file
//! the engine rewrites atomically (see [`write_names_file`]) whenever a container joins or
//! leaves one of this container's networks:
//!
//! ```json
//! {"names": {"db": ["172.18.0.2"], "database": ["172.18.0.2"]}, "upstream": ["10.0.0.1:53"]}
//! ```
//!
//! Known names are answered here (A with every IPv4 address, AAAA with every IPv6 one,
//! NOERROR and no records for other types, PTR for their addresses); everything else is
//! relayed unchanged to the upstream servers, or answered SERVFAIL when there are none
//! or none answers, as Docker does.
//!
//! Queries are checked by [`answer`]'s own walk of the message (compression pointers
//! must point backwards, lengths must fit) before [`simple_dns`] parses them, so no
//! packet makes it loop or panic; malformed packets get no reply.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use simple_dns::rdata::{RData, A, AAAA, PTR};
use simple_dns::{Name, Packet, PacketFlag, ResourceRecord, CLASS, RCODE};

/// TTL of the records answered from the names file, as Docker's.
pub const TTL: u32 = 600;
/// How long one upstream server has to answer a forwarded query.
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(2);
/// Forwarded queries in flight at once per server loop; past it, new ones get SERVFAIL.
const MAX_IN_FLIGHT: usize = 64;
/// TCP connections served at once.
const MAX_TCP_CONNECTIONS: usize = 32;
/// A TCP client idle this long is dropped.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// UDP replies never exceed this, whatever a client's EDNS buffer size says.
const MAX_UDP_REPLY: usize = 4096;
/// UDP replies without EDNS stay within this (RFC 1035).
const MIN_UDP_REPLY: usize = 512;

/// The names a container can resolve, and the servers unknown names go to.
#[derive(Debug, Clone, Default)]
pub struct Names {
    /// Lower-case name without trailing dot, to its addresses in file order.
    addrs: HashMap<String, Vec<IpAddr>>,
    /// Address to the first name (in file order) that lists it.
    reverse: HashMap<IpAddr, String>,
    upstream: Vec<SocketAddr>,
}

impl Names {
    /// Names from `(name, addresses)` pairs; for PTR, an address maps to the first name
    /// listing it. Names are case-insensitive and may end in a dot.
    pub fn new(entries: impl IntoIterator<Item = (String, Vec<IpAddr>)>, upstream: Vec<SocketAddr>) -> Names {
        let mut names = Names {
            upstream,
            ..Names::default()
        };
        for (name, ips) in entries {
            let key = normalize(&name);
            if key.is_empty() {
                continue;
            }
            for ip in &ips {
                names.reverse.entry(*ip).or_insert_with(|| key.clone());
            }
            let list = names.addrs.entry(key).or_default();
            for ip in ips {
                if !list.contains(&ip) {
                    list.push(ip);
                }
            }
        }
        names
    }

    /// Parses the names file's JSON. Addresses and upstream servers that do not parse are
    /// skipped; an upstream without a port gets 53.
    pub fn from_json(json: &[u8]) -> Result<Names, serde_json::Error> {
        let file: NamesFile = serde_json::from_slice(json)?;
        let entries = file.names.0.into_iter().map(|(name, ips)| {
            let ips = ips.iter().filter_map(|ip| ip.trim().parse::<IpAddr>().ok()).collect();
            (name, ips)
        });
        let upstream = file.upstream.iter().filter_map(|s| parse_upstream(s)).collect();
        Ok(Names::new(entries, upstream))
    }

    /// The addresses of a known name (case-insensitive, trailing dot optional).
    pub fn lookup(&self, name: &str) -> Option<&[IpAddr]> {
        self.addrs.get(&normalize(name)).map(Vec::as_slice)
    }

    /// The name a PTR query for `ip` answers with.
    pub fn name_of(&self, ip: IpAddr) -> Option<&str> {
        self.reverse.get(&ip).map(String::as_str)
    }

    /// The servers unknown names are forwarded to, in order.
    pub fn upstream(&self) -> &[SocketAddr] {
        &self.upstream
    }
}

/// Writes the names file atomically (a temporary file in the same directory, then
/// rename), so a [`NameSource`] never reads half of it. `entries` keep their order: for
/// PTR queries an address answers with the first name listing it, so put a container's
/// own name before its aliases.
pub fn write_names_file(path: &Path, entries: &[(String, Vec<IpAddr>)], upstream: &[SocketAddr]) -> io::Result<()> {
    // serde_json's Map sorts its keys unless `preserve_order` is on: write the names
    // object by hand so file order is the caller's order.
    let mut out = String::from("{\"names\":{");
    for (i, (name, ips)) in entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(name).map_err(io::Error::other)?);
        out.push(':');
        let ips: Vec<String> = ips.iter().map(|ip| ip.to_string()).collect();
        out.push_str(&serde_json::to_string(&ips).map_err(io::Error::other)?);
    }
    out.push_str("},\"upstream\":");
    let upstream: Vec<String> = upstream.iter().map(|a| a.to_string()).collect();
    out.push_str(&serde_json::to_string(&upstream).map_err(io::Error::other)?);
    out.push_str("}\n");

    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::other("names file path has no file name"))?;
    // Unique per writer: two starts in a namespace may rewrite the same file at once.
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{}.{}.{seq}.tmp", file_name.to_string_lossy(), std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(out.as_bytes())?;
        // Not fsynced: made again from the running containers at every start and exit
        // (so after a power cut too), and each fsync would commit ext4's journal,
        // holding up every other file change on the disk meanwhile.
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[derive(Deserialize, Default)]
struct NamesFile {
    #[serde(default)]
    names: OrderedNames,
    #[serde(default)]
    upstream: Vec<String>,
}

/// The `names` object with its keys in file order (serde_json's own map sorts them).
#[derive(Default)]
struct OrderedNames(Vec<(String, Vec<String>)>);

impl<'de> Deserialize<'de> for OrderedNames {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OrderedNames;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of name to address list")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<OrderedNames, M::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry::<String, Vec<String>>()? {
                    out.push(entry);
                }
                Ok(OrderedNames(out))
            }
        }
        d.deserialize_map(V)
    }
}

fn parse_upstream(s: &str) -> Option<SocketAddr> {
    let s = s.trim();
    s.parse::<SocketAddr>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53)))
}

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The names file, re-read only when it changed (its inode, size or mtime differ from the
/// last read). Clones share one cache, so a UDP and a TCP server can use the same source.
#[derive(Clone)]
pub struct NameSource {
    path: PathBuf,
    cache: Arc<Mutex<Cache>>,
}

#[derive(Default)]
struct Cache {
    stamp: Option<Stamp>,
    names: Arc<Names>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl NameSource {
    /// A source reading `path`; it need not exist yet (no names, no upstream until it does).
    pub fn new(path: impl Into<PathBuf>) -> NameSource {
        NameSource {
            path: path.into(),
            cache: Arc::default(),
        }
    }

    /// The file this source reads.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The current names: the cached ones unless the file changed. A missing file means no
    /// names; a file that cannot be read or parsed keeps the last good names.
    pub fn current(&self) -> Arc<Names> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let meta = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if cache.stamp.is_some() {
                    cache.stamp = None;
                    cache.names = Arc::default();
                }
                return cache.names.clone();
            }
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "dns: cannot stat names file");
                return cache.names.clone();
            }
        };
        let stamp = Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
        };
        if cache.stamp == Some(stamp) {
            return cache.names.clone();
        }
        // Mark this version seen even if it fails to parse, so a bad file is reported once.
        cache.stamp = Some(stamp);
        match std::fs::read(&self.path)
            .map_err(|e| e.to_string())
            .and_then(|b| Names::from_json(&b).map_err(|e| e.to_string()))
        {
            Ok(names) => cache.names = Arc::new(names),
            Err(e) => tracing::warn!(path = %self.path.display(), error = %e, "dns: bad names file, keeping the last"),
        }
        cache.names.clone()
    }
}

impl fmt::Debug for NameSource {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.debug_struct("NameSource").field("path", &self.path).finish()
    }
}

// ---------------------------------------------------------------------------------------
// Answering

/// The reply to one DNS message, or `None` for no reply (malformed, or not a query).
///
/// Known names are answered here; unknown ones call `forward` with the raw query and
/// relay its reply unchanged, or answer SERVFAIL when it returns `None`. Replies made
/// here fit a UDP datagram (512 bytes, or the client's EDNS size up to 4096), with TC
/// set when answers had to be dropped. Never panics, whatever the bytes.
pub fn answer(query: &[u8], names: &Names, forward: impl Fn(&[u8]) -> Option<Vec<u8>>) -> Option<Vec<u8>> {
    let max = udp_limit(query);
    respond(query, names, max, forward)
}

fn respond(query: &[u8], names: &Names, max: usize, forward: impl Fn(&[u8]) -> Option<Vec<u8>>) -> Option<Vec<u8>> {
    match resolve(query, names, max)? {
        Outcome::Reply(reply) => Some(reply),
        Outcome::Forward(q) => Some(forward(query).unwrap_or_else(|| q.rcode_only(query, RCODE::ServerFailure as u8))),
    }
}

/// What to do with one query.
enum Outcome {
    Reply(Vec<u8>),
    /// Unknown here: forward it (the checked question is kept for a SERVFAIL).
    Forward(Checked),
}

/// A query that passed [`check`].
struct Checked {
    /// End of the (first and only) question.
    question_end: usize,
    /// Its name, lower case without trailing dot; `None` when no file name can match it
    /// (a label holding a dot or a non-UTF-8 byte).
    name: Option<String>,
    qtype: u16,
    qclass: u16,
    /// The client's EDNS UDP buffer size, if it sent an OPT record.
    edns_size: Option<u16>,
    /// Where the OPT record is (start, end), to hand to the parser.
    opt: Option<(usize, usize)>,
}

impl Checked {
    /// A reply with no records: the query's header (id, opcode, RD) and question.
    fn rcode_only(&self, query: &[u8], rcode: u8) -> Vec<u8> {
        bare_reply(query, self.question_end, rcode, false)
    }
}

/// A header plus the query's first `question_end - 12` bytes of question; `aa` sets AA.
fn bare_reply(query: &[u8], question_end: usize, rcode: u8, aa: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(question_end.max(12));
    out.extend_from_slice(&query[..2]);
    // QR, opcode copied, AA, RD copied; RA set; rcode.
    let mut b2 = 0x80 | (query[2] & 0x78) | (query[2] & 0x01);
    if aa {
        b2 |= 0x04;
    }
    out.push(b2);
    out.push(0x80 | (rcode & 0x0f));
    let qd: u16 = if question_end > 12 { 1 } else { 0 };
    out.extend_from_slice(&qd.to_be_bytes());
    out.extend_from_slice(&[0; 6]);
    out.extend_from_slice(&query[12..question_end]);
    out
}

const TYPE_A: u16 = 1;
const TYPE_PTR: u16 = 12;
const TYPE_AAAA: u16 = 28;
const TYPE_OPT: u16 = 41;
const CLASS_IN: u16 = 1;
const CLASS_ANY: u16 = 255;

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Walks the name at `at`: every compression pointer must point before itself (so the walk
/// ends), labels must fit the message and the name 255 bytes. Returns the end of the name
/// where it starts (after its first pointer or its root label) and its labels.
fn walk_name(msg: &[u8], at: usize) -> Option<(usize, Vec<&[u8]>)> {
    let mut pos = at;
    let mut end = None;
    let mut labels = Vec::new();
    let mut total = 1usize;
    loop {
        let len = *msg.get(pos)? as usize;
        match len & 0xc0 {
            0x00 if len == 0 => {
                return Some((end.unwrap_or(pos + 1), labels));
            }
            0x00 => {
                let label = msg.get(pos + 1..pos + 1 + len)?;
                total += len + 1;
                if total > 255 {
                    return None;
                }
                labels.push(label);
                pos += 1 + len;
            }
            0xc0 => {
                let target = (u16_at(msg, pos)? & 0x3fff) as usize;
                if target >= pos {
                    return None;
                }
                end.get_or_insert(pos + 2);
                pos = target;
            }
            _ => return None, // 0x40 / 0x80: extended label types, unsupported
        }
    }
}

fn decode_name(labels: &[&[u8]]) -> Option<String> {
    let mut name = String::new();
    for label in labels {
        let s = std::str::from_utf8(label).ok()?;
        if s.contains('.') {
            return None;
        }
        if !name.is_empty() {
            name.push('.');
        }
        name.push_str(s);
    }
    Some(name.to_ascii_lowercase())
}

/// Checks the shape of a query: header, exactly one question, no answer or authority
/// records, additional records that fit (the first OPT with a root owner is kept).
fn check(query: &[u8]) -> Option<Checked> {
    if query.len() < 12 || query[2] & 0x80 != 0 {
        return None; // too short, or a response
    }
    let qd = u16_at(query, 4)?;
    let an = u16_at(query, 6)?;
    let ns = u16_at(query, 8)?;
    let ar = u16_at(query, 10)?;
    if qd != 1 || an != 0 || ns != 0 {
        return None;
    }
    let (name_end, labels) = walk_name(query, 12)?;
    let qtype = u16_at(query, name_end)?;
    let qclass = u16_at(query, name_end + 2)?;
    let question_end = name_end + 4;
    let mut pos = question_end;
    let mut opt = None;
    let mut edns_size = None;
    for _ in 0..ar {
        let start = pos;
        let (owner_end, owner) = walk_name(query, pos)?;
        let rtype = u16_at(query, owner_end)?;
        let rclass = u16_at(query, owner_end + 2)?;
        let rdlen = u16_at(query, owner_end + 8)? as usize;
        let end = owner_end + 10 + rdlen;
        if end > query.len() {
            return None;
        }
        if rtype == TYPE_OPT && opt.is_none() && owner.is_empty() && owner_end == start + 1 {
            opt = Some((start, end));
            edns_size = Some(rclass);
        }
        pos = end;
    }
    Some(Checked {
        question_end,
        name: decode_name(&labels),
        qtype,
        qclass,
        edns_size,
        opt,
    })
}

/// The UDP reply size a query allows.
fn udp_limit(query: &[u8]) -> usize {
    match check(query).and_then(|c| c.edns_size) {
        Some(size) => (size as usize).clamp(MIN_UDP_REPLY, MAX_UDP_REPLY),
        None => MIN_UDP_REPLY,
    }
}

/// `d.c.b.a.in-addr.arpa` to `a.b.c.d`.
fn reverse_v4(name: &str) -> Option<IpAddr> {
    let rest = name.strip_suffix(".in-addr.arpa")?;
    let mut octets = [0u8; 4];
    let mut parts = rest.split('.');
    for slot in octets.iter_mut().rev() {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *slot = part.parse().ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(IpAddr::V4(Ipv4Addr::from(octets)))
}

fn resolve(query: &[u8], names: &Names, max: usize) -> Option<Outcome> {
    let checked = check(query)?;
    let opcode = (query[2] >> 3) & 0x0f;
    if opcode != 0 {
        return Some(Outcome::Reply(checked.rcode_only(query, RCODE::NotImplemented as u8)));
    }
    let Some(name) = checked.name.clone() else {
        return Some(Outcome::Forward(checked));
    };
    if !matches!(checked.qclass & 0x7fff, CLASS_IN | CLASS_ANY) {
        return Some(Outcome::Forward(checked));
    }

    enum Local<'n> {
        Addrs(&'n [IpAddr]),
        Ptr(&'n str),
    }
    let local = if checked.qtype == TYPE_PTR {
        match reverse_v4(&name).and_then(|ip| names.name_of(ip)) {
            Some(target) => Local::Ptr(target),
            None => match names.lookup(&name) {
                Some(addrs) => Local::Addrs(addrs),
                None => return Some(Outcome::Forward(checked)),
            },
        }
    } else {
        match names.lookup(&name) {
            Some(addrs) => Local::Addrs(addrs),
            None => return Some(Outcome::Forward(checked)),
        }
    };

    // A known name. Types the parser does not know get NOERROR with no records.
    let records: Vec<RData> = match local {
        Local::Addrs(addrs) if checked.qtype == TYPE_A => addrs
            .iter()
            .filter_map(|ip| match ip {
                IpAddr::V4(v4) => Some(RData::A(A {
                    address: u32::from(*v4),
                })),
                IpAddr::V6(_) => None,
            })
            .collect(),
        Local::Addrs(addrs) if checked.qtype == TYPE_AAAA => addrs
            .iter()
            .filter_map(|ip| match ip {
                IpAddr::V6(v6) => Some(RData::AAAA(AAAA {
                    address: u128::from(*v6),
                })),
                IpAddr::V4(_) => None,
            })
            .collect(),
        Local::Addrs(_) => Vec::new(),
        Local::Ptr(target) => match Name::new(target) {
            Ok(target) => vec![RData::PTR(PTR(target))],
            Err(_) => Vec::new(),
        },
    };
    if records.is_empty() {
        return Some(Outcome::Reply(bare_reply(query, checked.question_end, 0, true)));
    }
    Some(Outcome::Reply(records_reply(query, &checked, records, max)?))
}

/// A NOERROR, authoritative reply carrying `records` for the query's question, dropping
/// records (and setting TC) until it fits `max` bytes.
fn records_reply(query: &[u8], checked: &Checked, records: Vec<RData<'_>>, max: usize) -> Option<Vec<u8>> {
    // Hand the parser only header + question (+ OPT): the parts `check` vetted.
    let mut vetted = Vec::with_capacity(checked.question_end + 16);
    vetted.extend_from_slice(&query[..12]);
    vetted[6..10].fill(0);
    vetted[10..12].copy_from_slice(&(checked.opt.is_some() as u16).to_be_bytes());
    vetted.extend_from_slice(&query[12..checked.question_end]);
    if let Some((start, end)) = checked.opt {
        vetted.extend_from_slice(&query[start..end]);
    }
    let parsed = Packet::parse(&vetted).ok()?;
    let question = parsed.questions.first()?;

    let mut reply = Packet::new_reply(parsed.id());
    reply.set_flags(PacketFlag::AUTHORITATIVE_ANSWER | PacketFlag::RECURSION_AVAILABLE);
    if parsed.has_flags(PacketFlag::RECURSION_DESIRED) {
        reply.set_flags(PacketFlag::RECURSION_DESIRED);
    }
    reply.questions.push(question.clone());
    let owner = question.qname.clone();
    reply.answers = records
        .into_iter()
        .map(|rdata| ResourceRecord::new(owner.clone(), CLASS::IN, TTL, rdata))
        .collect();
    loop {
        let bytes = reply.build_bytes_vec_compressed().ok()?;
        if bytes.len() <= max || reply.answers.is_empty() {
            return Some(bytes);
        }
        reply.answers.pop();
        reply.set_flags(PacketFlag::TRUNCATION);
    }
}

// ---------------------------------------------------------------------------------------
// Forwarding

/// Sends `query` to each server in turn over UDP and returns the first reply with the
/// query's id; each server gets [`FORWARD_TIMEOUT`]. `None` when none answered.
pub fn forward_udp(query: &[u8], upstream: &[SocketAddr]) -> Option<Vec<u8>> {
    let id = query.get(..2)?;
    for server in upstream {
        let bind: SocketAddr = match server {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let Ok(sock) = UdpSocket::bind(bind) else { continue };
        if sock.connect(server).is_err() || sock.send(query).is_err() {
            continue;
        }
        let deadline = Instant::now() + FORWARD_TIMEOUT;
        let mut buf = vec![0u8; 65535];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || sock.set_read_timeout(Some(left)).is_err() {
                break;
            }
            match sock.recv(&mut buf) {
                Ok(n) if n >= 12 && buf[..2] == *id && buf[2] & 0x80 != 0 => return Some(buf[..n].to_vec()),
                Ok(_) => continue, // stray or garbled datagram: keep waiting
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break, // timeout, or refused
            }
        }
    }
    None
}

/// Sends `query` to each server in turn over TCP (2-byte length prefix) and returns the
/// first reply; each server gets [`FORWARD_TIMEOUT`] to connect and again to answer.
pub fn forward_tcp(query: &[u8], upstream: &[SocketAddr]) -> Option<Vec<u8>> {
    let len = u16::try_from(query.len()).ok()?;
    for server in upstream {
        let attempt = || -> io::Result<Vec<u8>> {
            let mut conn = TcpStream::connect_timeout(server, FORWARD_TIMEOUT)?;
            conn.set_read_timeout(Some(FORWARD_TIMEOUT))?;
            conn.set_write_timeout(Some(FORWARD_TIMEOUT))?;
            let mut msg = Vec::with_capacity(query.len() + 2);
            msg.extend_from_slice(&len.to_be_bytes());
            msg.extend_from_slice(query);
            conn.write_all(&msg)?;
            read_tcp_message(&mut conn)?.ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))
        };
        if let Ok(reply) = attempt() {
            if reply.len() >= 12 && reply[..2] == query[..2] {
                return Some(reply);
            }
        }
    }
    None
}

/// One length-prefixed DNS message; `None` at a clean end of stream.
fn read_tcp_message(r: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 2];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
    r.read_exact(&mut msg)?;
    Ok(Some(msg))
}

// ---------------------------------------------------------------------------------------
// Servers

/// Errors a UDP server loop shrugs off (a client's ICMP, a signal).
fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::TimedOut
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
    )
}

/// Decrements a counter when dropped.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(counter: &Arc<AtomicUsize>, max: usize) -> Option<Slot> {
        counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
            .ok()?;
        Some(Slot(counter.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serves DNS over UDP on `socket` (already bound, e.g. to 127.0.0.11:53 in the
/// container's network namespace) until a fatal socket error, which it returns.
///
/// Local answers are sent at once; forwarded queries run on threads of their own (at most
/// 64 at a time, SERVFAIL past that), with sockets made in the calling thread's network
/// namespace, so a slow upstream never holds up container names.
pub fn serve_udp(socket: UdpSocket, names: NameSource) -> io::Error {
    if let Err(e) = socket
        .set_nonblocking(false)
        .and_then(|()| socket.set_read_timeout(None))
    {
        return e;
    }
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut buf = vec![0u8; 65535];
    loop {
        let (n, peer) = match socket.recv_from(&mut buf) {
            Ok(got) => got,
            Err(e) if transient(&e) => continue,
            Err(e) => return e,
        };
        let query = &buf[..n];
        let current = names.current();
        let max = udp_limit(query);
        let reply = match resolve(query, &current, max) {
            None => continue,
            Some(Outcome::Reply(reply)) => reply,
            Some(Outcome::Forward(checked)) => {
                let Some(slot) = Slot::take(&in_flight, MAX_IN_FLIGHT) else {
                    let _ = socket.send_to(&checked.rcode_only(query, RCODE::ServerFailure as u8), peer);
                    continue;
                };
                let sender = match socket.try_clone() {
                    Ok(s) => s,
                    Err(e) => return e,
                };
                let query = query.to_vec();
                let spawned = std::thread::Builder::new().name("dns-forward".into()).spawn(move || {
                    let _slot = slot;
                    let reply = forward_udp(&query, current.upstream())
                        .unwrap_or_else(|| checked.rcode_only(&query, RCODE::ServerFailure as u8));
                    let _ = sender.send_to(&reply, peer);
                });
                if let Err(e) = spawned {
                    tracing::warn!(error = %e, "dns: cannot start a forwarding thread");
                }
                continue;
            }
        };
        if let Err(e) = socket.send_to(&reply, peer) {
            if !transient(&e) {
                tracing::debug!(error = %e, %peer, "dns: reply not sent");
            }
        }
    }
}

/// Serves DNS over TCP (RFC 7766 framing) on `listener` until a fatal accept error, which
/// it returns. Each connection runs on its own thread (at most 32 at a time) and may carry
/// several queries; unknown names are forwarded to the upstream servers over TCP.
pub fn serve_tcp(listener: TcpListener, names: NameSource) -> io::Error {
    if let Err(e) = listener.set_nonblocking(false) {
        return e;
    }
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        let conn = match listener.accept() {
            Ok((conn, _)) => conn,
            Err(e)
                if transient(&e)
                    || matches!(e.kind(), io::ErrorKind::ConnectionAborted)
                    || e.raw_os_error() == Some(libc::EMFILE)
                    || e.raw_os_error() == Some(libc::ENFILE) =>
            {
                if !matches!(e.kind(), io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                continue;
            }
            Err(e) => return e,
        };
        let Some(slot) = Slot::take(&open, MAX_TCP_CONNECTIONS) else {
            continue; // dropped: the client retries
        };
        let names = names.clone();
        let spawned = std::thread::Builder::new().name("dns-tcp".into()).spawn(move || {
            let _slot = slot;
            let _ = serve_tcp_conn(conn, &names);
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "dns: cannot start a TCP thread");
        }
    }
}

fn serve_tcp_conn(mut conn: TcpStream, names: &NameSource) -> io::Result<()> {
    conn.set_read_timeout(Some(TCP_IDLE))?;
    conn.set_write_timeout(Some(TCP_IDLE))?;
    while let Some(query) = read_tcp_message(&mut conn)? {
        let current = names.current();
        let Some(reply) = respond(&query, &current, u16::MAX as usize, |q| {
            forward_tcp(q, current.upstream())
        }) else {
            return Ok(()); // malformed: close, as there is no way to answer in-band
        };
        let Ok(len) = u16::try_from(reply.len()) else {
            return Ok(());
        };
        let mut msg = Vec::with_capacity(reply.len() + 2);
        msg.extend_from_slice(&len.to_be_bytes());
        msg.extend_from_slice(&reply);
        conn.write_all(&msg)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use simple_dns::{QCLASS, QTYPE, TYPE};
    use std::cell::Cell;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn sample() -> Names {
        Names::new(
            [
                ("web".to_string(), vec![ip("172.18.0.3")]),
                ("DB".to_string(), vec![ip("172.18.0.2"), ip("172.18.0.9")]),
                ("database.".to_string(), vec![ip("172.18.0.2")]),
                ("v6".to_string(), vec![ip("172.18.0.4"), ip("fd00::4")]),
            ],
            vec![],
        )
    }

    fn query(id: u16, name: &str, qtype: TYPE, rd: bool) -> Vec<u8> {
        let mut p = Packet::new_query(id);
        if rd {
            p.set_flags(PacketFlag::RECURSION_DESIRED);
        }
        p.questions.push(simple_dns::Question::new(
            Name::new(name).unwrap(),
            QTYPE::TYPE(qtype),
            QCLASS::CLASS(CLASS::IN),
            false,
        ));
        p.build_bytes_vec().unwrap()
    }

    fn no_forward(_: &[u8]) -> Option<Vec<u8>> {
        panic!("must not forward")
    }

    fn a_addrs(p: &Packet) -> Vec<Ipv4Addr> {
        p.answers
            .iter()
            .filter_map(|rr| match &rr.rdata {
                RData::A(a) => Some(Ipv4Addr::from(a.address)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_for_known_name_any_case_and_trailing_dot() {
        let names = sample();
        for qname in ["db", "Db.", "DATABASE", "database."] {
            let reply = answer(&query(7, qname, TYPE::A, true), &names, no_forward).unwrap();
            let p = Packet::parse(&reply).unwrap();
            assert_eq!(p.id(), 7);
            assert_eq!(p.rcode(), RCODE::NoError);
            assert!(p.has_flags(PacketFlag::RESPONSE | PacketFlag::AUTHORITATIVE_ANSWER));
            assert!(p.has_flags(PacketFlag::RECURSION_DESIRED | PacketFlag::RECURSION_AVAILABLE));
            assert!(!p.has_flags(PacketFlag::TRUNCATION));
            assert_eq!(p.questions.len(), 1);
            assert!(p.answers.iter().all(|rr| rr.ttl == TTL && rr.class == CLASS::IN));
            let want: Vec<Ipv4Addr> = if qname.to_lowercase().starts_with("db") {
                vec!["172.18.0.2".parse().unwrap(), "172.18.0.9".parse().unwrap()]
            } else {
                vec!["172.18.0.2".parse().unwrap()]
            };
            assert_eq!(a_addrs(&p), want, "{qname}");
        }
        // RD not set in the query: not set in the reply.
        let reply = answer(&query(8, "web", TYPE::A, false), &names, no_forward).unwrap();
        let p = Packet::parse(&reply).unwrap();
        assert!(!p.has_flags(PacketFlag::RECURSION_DESIRED));
        assert_eq!(a_addrs(&p), vec![Ipv4Addr::new(172, 18, 0, 3)]);
    }

    #[test]
    fn aaaa_and_other_types_for_known_name_are_empty_noerror() {
        let names = sample();
        for qtype in [TYPE::AAAA, TYPE::MX, TYPE::TXT, TYPE::SRV, TYPE::HTTPS] {
            let reply = answer(&query(9, "web", qtype, true), &names, no_forward).unwrap();
            let p = Packet::parse(&reply).unwrap();
            assert_eq!(p.rcode(), RCODE::NoError, "{qtype:?}");
            assert!(p.answers.is_empty(), "{qtype:?}");
            assert!(p.has_flags(PacketFlag::AUTHORITATIVE_ANSWER | PacketFlag::RESPONSE));
            assert_eq!(p.questions.len(), 1);
        }
        // A qtype the crate does not know (TLSA, 52): still answered empty.
        let mut q = query(10, "web", TYPE::A, true);
        let n = q.len();
        q[n - 4..n - 2].copy_from_slice(&52u16.to_be_bytes());
        let reply = answer(&q, &names, no_forward).unwrap();
        assert_eq!(reply[3] & 0x0f, 0);
        assert_eq!(&reply[6..8], &[0, 0]);
        assert_eq!(&reply[12..], &q[12..]);
        // A name with an IPv6 address gets it for AAAA.
        let reply = answer(&query(11, "v6", TYPE::AAAA, true), &names, no_forward).unwrap();
        let p = Packet::parse(&reply).unwrap();
        assert_eq!(p.answers.len(), 1);
        assert!(
            matches!(&p.answers[0].rdata, RData::AAAA(a) if a.address == u128::from("fd00::4".parse::<std::net::Ipv6Addr>().unwrap()))
        );
        let reply = answer(&query(12, "v6", TYPE::A, true), &names, no_forward).unwrap();
        assert_eq!(
            a_addrs(&Packet::parse(&reply).unwrap()),
            vec![Ipv4Addr::new(172, 18, 0, 4)]
        );
    }

    #[test]
    fn ptr_for_known_ip_answers_first_name() {
        let names = sample();
        let reply = answer(
            &query(13, "2.0.18.172.in-addr.arpa", TYPE::PTR, true),
            &names,
            no_forward,
        )
        .unwrap();
        let p = Packet::parse(&reply).unwrap();
        assert_eq!(p.rcode(), RCODE::NoError);
        assert_eq!(p.answers.len(), 1);
        match &p.answers[0].rdata {
            RData::PTR(PTR(target)) => assert_eq!(target.to_string(), "db"),
            other => panic!("{other:?}"),
        }
        // An unknown address is forwarded.
        let forwarded = Cell::new(false);
        let q = query(14, "1.1.168.192.in-addr.arpa", TYPE::PTR, true);
        answer(&q, &names, |_| {
            forwarded.set(true);
            None
        })
        .unwrap();
        assert!(forwarded.get());
    }

    #[test]
    fn unknown_name_is_forwarded_and_relayed_unchanged() {
        let names = sample();
        let q = query(15, "example.com", TYPE::A, true);
        let canned = vec![0, 15, 0x81, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0xde, 0xad];
        let seen = std::cell::RefCell::new(Vec::new());
        let reply = answer(&q, &names, |raw| {
            seen.borrow_mut().push(raw.to_vec());
            Some(canned.clone())
        })
        .unwrap();
        assert_eq!(reply, canned);
        assert_eq!(*seen.borrow(), vec![q]);
    }

    #[test]
    fn unknown_name_without_upstream_is_servfail() {
        let names = sample();
        assert!(names.upstream().is_empty());
        let q = query(16, "example.com", TYPE::A, true);
        let reply = answer(&q, &names, |raw| forward_udp(raw, names.upstream())).unwrap();
        let p = Packet::parse(&reply).unwrap();
        assert_eq!(p.id(), 16);
        assert_eq!(p.rcode(), RCODE::ServerFailure);
        assert!(p.answers.is_empty());
        assert_eq!(p.questions.len(), 1);
        assert_eq!(p.questions[0].qname.to_string(), "example.com");
        assert!(p.has_flags(PacketFlag::RESPONSE | PacketFlag::RECURSION_DESIRED));
    }

    #[test]
    fn garbage_gets_no_reply() {
        let names = sample();
        let mut cases: Vec<Vec<u8>> = vec![
            vec![],
            vec![0; 5],
            vec![0; 12],                                                         // no question
            vec![0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1],       // a response
            vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, b'w', b'e'],             // name runs off the end
            vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1],    // pointer to itself
            vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, b'w', b'e', b'b', 0, 0], // cut qtype
        ];
        // An additional record whose rdata runs off the end.
        let mut q = query(17, "web", TYPE::A, true);
        q[11] = 1;
        q.extend_from_slice(&[0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 9]);
        cases.push(q);
        for case in &cases {
            assert_eq!(answer(case, &names, no_forward), None, "{case:?}");
        }
    }

    #[test]
    fn many_addresses_truncate_to_512_without_edns() {
        let ips: Vec<IpAddr> = (1..=100u8).map(|i| IpAddr::V4(Ipv4Addr::new(10, 9, 0, i))).collect();
        let names = Names::new([("many".to_string(), ips)], vec![]);
        let reply = answer(&query(18, "many", TYPE::A, true), &names, no_forward).unwrap();
        assert!(reply.len() <= 512);
        let p = Packet::parse(&reply).unwrap();
        assert!(p.has_flags(PacketFlag::TRUNCATION));
        assert!(!p.answers.is_empty());
        // Over TCP (no limit to speak of) all of them.
        let reply = respond(&query(18, "many", TYPE::A, true), &names, 65535, no_forward).unwrap();
        assert_eq!(Packet::parse(&reply).unwrap().answers.len(), 100);
    }

    #[test]
    fn names_file_keeps_order_and_skips_bad_entries() {
        let json = br#"{"names": {"web": ["172.18.0.3"], "alias": ["172.18.0.3", "nonsense"]},
                        "upstream": ["10.0.0.1:53", "10.0.0.2", "bad"]}"#;
        let names = Names::from_json(json).unwrap();
        assert_eq!(names.name_of(ip("172.18.0.3")), Some("web"));
        assert_eq!(names.lookup("ALIAS."), Some(&[ip("172.18.0.3")][..]));
        assert_eq!(
            names.upstream(),
            &["10.0.0.1:53".parse().unwrap(), "10.0.0.2:53".parse().unwrap()][..]
        );
        assert!(Names::from_json(b"{}").unwrap().upstream().is_empty());
        assert!(Names::from_json(b"[").is_err());
    }

    /// A fake upstream on loopback answering every query with one fixed A record.
    fn fake_upstream(addr: Ipv4Addr) -> (SocketAddr, std::thread::JoinHandle<()>) {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let local = sock.local_addr().unwrap();
        let handle = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            for _ in 0..8 {
                let Ok((n, peer)) = sock.recv_from(&mut buf) else {
                    return;
                };
                let q = Packet::parse(&buf[..n]).unwrap();
                let mut r = Packet::new_reply(q.id());
                r.questions = q.questions.clone();
                let owner = q.questions[0].qname.clone();
                r.answers.push(ResourceRecord::new(
                    owner,
                    CLASS::IN,
                    30,
                    RData::A(A { address: addr.into() }),
                ));
                sock.send_to(&r.build_bytes_vec().unwrap(), peer).unwrap();
            }
        });
        (local, handle)
    }

    fn ask(client: &UdpSocket, server: SocketAddr, q: &[u8]) -> Vec<u8> {
        client.send_to(q, server).unwrap();
        let mut buf = [0u8; 4096];
        let (n, _) = client.recv_from(&mut buf).unwrap();
        buf[..n].to_vec()
    }

    #[test]
    fn udp_round_trip_follows_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("names.json");
        let (upstream, _fake) = fake_upstream(Ipv4Addr::new(93, 184, 216, 34));
        write_names_file(&path, &[("db".into(), vec![ip("172.18.0.2")])], &[upstream]).unwrap();

        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let server_addr = server.local_addr().unwrap();
        let source = NameSource::new(&path);
        std::thread::spawn(move || serve_udp(server, source));
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.set_read_timeout(Some(Duration::from_secs(10))).unwrap();

        let p = ask(&client, server_addr, &query(1, "db", TYPE::A, true));
        let p = Packet::parse(&p).unwrap();
        assert_eq!(a_addrs(&p), vec![Ipv4Addr::new(172, 18, 0, 2)]);

        // Unknown: relayed from the fake upstream.
        let p = ask(&client, server_addr, &query(2, "web", TYPE::A, true));
        let p = Packet::parse(&p).unwrap();
        assert_eq!(p.id(), 2);
        assert_eq!(a_addrs(&p), vec![Ipv4Addr::new(93, 184, 216, 34)]);
        assert!(!p.has_flags(PacketFlag::AUTHORITATIVE_ANSWER));

        // The engine rewrites the file: web joins, db leaves, and no upstream any more.
        write_names_file(&path, &[("web".into(), vec![ip("172.18.0.3")])], &[]).unwrap();
        let p = ask(&client, server_addr, &query(3, "WEB", TYPE::A, true));
        assert_eq!(a_addrs(&Packet::parse(&p).unwrap()), vec![Ipv4Addr::new(172, 18, 0, 3)]);
        let p = ask(&client, server_addr, &query(4, "db", TYPE::A, true));
        let p = Packet::parse(&p).unwrap();
        assert_eq!(p.id(), 4);
        assert_eq!(p.rcode(), RCODE::ServerFailure);

        // Back with an upstream: the removed name is forwarded again.
        write_names_file(&path, &[("web".into(), vec![ip("172.18.0.3")])], &[upstream]).unwrap();
        let p = ask(&client, server_addr, &query(5, "db", TYPE::A, true));
        assert_eq!(
            a_addrs(&Packet::parse(&p).unwrap()),
            vec![Ipv4Addr::new(93, 184, 216, 34)]
        );

        // Garbage gets nothing, and the server keeps going.
        client.send_to(b"\x00\x01garbage", server_addr).unwrap();
        let p = ask(&client, server_addr, &query(6, "web", TYPE::A, true));
        assert_eq!(Packet::parse(&p).unwrap().id(), 6);
    }

    #[test]
    fn tcp_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("names.json");
        write_names_file(&path, &[("db".into(), vec![ip("172.18.0.2")])], &[]).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let source = NameSource::new(&path);
        std::thread::spawn(move || serve_tcp(listener, source));

        let mut conn = TcpStream::connect(addr).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        for (id, name, rcode) in [(1, "db", RCODE::NoError), (2, "nowhere", RCODE::ServerFailure)] {
            let q = query(id, name, TYPE::A, true);
            let mut msg = (q.len() as u16).to_be_bytes().to_vec();
            msg.extend_from_slice(&q);
            conn.write_all(&msg).unwrap();
            let reply = read_tcp_message(&mut conn).unwrap().unwrap();
            let p = Packet::parse(&reply).unwrap();
            assert_eq!((p.id(), p.rcode()), (id, rcode));
        }
    }

    #[test]
    fn name_source_rereads_only_on_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("names.json");
        let source = NameSource::new(&path);
        assert!(source.current().lookup("db").is_none()); // missing file: no names
        write_names_file(&path, &[("db".into(), vec![ip("172.18.0.2")])], &[]).unwrap();
        let first = source.current();
        assert!(first.lookup("db").is_some());
        assert!(Arc::ptr_eq(&first, &source.current())); // unchanged: cached
                                                         // A broken file keeps the last good names.
        std::fs::write(&path, b"{not json").unwrap();
        assert!(source.current().lookup("db").is_some());
        std::fs::remove_file(&path).unwrap();
        assert!(source.current().lookup("db").is_none());
    }

    fn any_query() -> impl Strategy<Value = Vec<u8>> {
        // Mutated real queries reach deeper than random bytes alone.
        (
            any::<u16>(),
            prop::sample::select(vec!["db", "web", "x.example", "2.0.18.172.in-addr.arpa"]),
            any::<bool>(),
        )
            .prop_flat_map(|(id, name, rd)| {
                let base = query(id, name, TYPE::A, rd);
                let len = base.len();
                (
                    Just(base),
                    prop::collection::vec((0..len, any::<u8>()), 0..6),
                    0..=len + 8,
                )
            })
            .prop_map(|(mut q, edits, keep)| {
                for (at, b) in edits {
                    q[at] = b;
                }
                q.resize(keep, 0xc0);
                q
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn answer_never_panics_on_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
            let names = sample();
            let _ = answer(&bytes, &names, |_| None);
        }

        #[test]
        fn answer_never_panics_on_mutated_queries(q in any_query()) {
            let names = sample();
            if let Some(reply) = answer(&q, &names, |_| None) {
                prop_assert!(reply.len() >= 12);
                prop_assert_eq!(&reply[..2], &q[..2]);
            }
        }
    }
}
