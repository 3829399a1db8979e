//! Property tests: the parsers that read user input never panic, and round-trip
//! where they should. (Bad input must give a clear error, never a crash.)

use berth_engine::detach::{parse_detach_keys, DetachScanner, Scan};
use berth_engine::logs::{self, LogFilter, Stream};
use berth_engine::platform::Platform;
use berth_engine::reference::Reference;
use berth_engine::registry::guard::{self, Kind};
use berth_engine::registry::lab_names::LabNames;
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn reference_parse_never_panics(s in "\\PC{0,80}") {
        let _ = Reference::parse(&s);
    }

    #[test]
    fn reference_round_trips(
        host in prop::option::of("(localhost|[a-z]{1,8}\\.[a-z]{2,3})(:[0-9]{1,5})?"),
        path in "[a-z0-9]{1,8}(/[a-z0-9]{1,8}){0,2}",
        tag in "[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}",
    ) {
        let s = match &host { Some(h) => format!("{h}/{path}:{tag}"), None => format!("{path}:{tag}") };
        let r = Reference::parse(&s).expect("valid reference");
        let again = Reference::parse(&r.to_string()).expect("normalised form parses");
        prop_assert_eq!(&again, &r);
        prop_assert_eq!(Reference::parse(&r.familiar()).expect("familiar form parses"), r);
    }

    #[test]
    fn platform_parse_never_panics(s in "\\PC{0,40}") {
        let _ = Platform::parse(&s);
    }

    #[test]
    fn platforms_read_back_as_shown(s in "[A-Za-z0-9_-]{1,8}(/[A-Za-z0-9_-]{1,8}){0,2}") {
        let p = Platform::parse(&s).expect("well-formed platform");
        prop_assert_eq!(Platform::parse(&p.to_string()).expect("shown form parses"), p);
    }

    #[test]
    fn detach_keys_parse_never_panics(s in "\\PC{0,30}") {
        let _ = parse_detach_keys(&s);
    }

    #[test]
    fn detach_scanner_forwards_everything_but_the_keys(input in prop::collection::vec(any::<u8>(), 0..200), split in 0usize..200) {
        // Input without ctrl-P passes through unchanged, however it is chunked.
        let input: Vec<u8> = input.into_iter().filter(|b| *b != 16).collect();
        let mut s = DetachScanner::new(vec![16, 17]);
        let cut = split.min(input.len());
        let mut out = Vec::new();
        for chunk in [&input[..cut], &input[cut..]] {
            match s.feed(chunk) {
                Scan::Forward(d) => out.extend(d),
                Scan::Detach(_) => prop_assert!(false, "no detach without the keys"),
            }
        }
        prop_assert_eq!(out, input);
    }

    #[test]
    fn log_reader_survives_garbage(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let all = LogFilter { stdout: true, stderr: true, ..Default::default() };
        let _ = logs::read_from(&mut std::io::Cursor::new(&bytes[..]), &all);
    }

    #[test]
    fn log_lines_round_trip(text in "[^\\n]{0,40}(\\n[^\\n]{0,40}){0,3}") {
        let t = chrono::Utc::now();
        let enc = logs::encode(Stream::Stdout, text.as_bytes(), t);
        let all = LogFilter { stdout: true, stderr: true, ..Default::default() };
        let (entries, _) = logs::read_from(&mut std::io::Cursor::new(&enc[..]), &all).unwrap();
        let joined: String = entries.iter().map(|e| e.log.as_str()).collect();
        prop_assert_eq!(joined, text);
    }

    #[test]
    fn log_sizes_parse_or_are_refused(s in "[0-9.]{0,6} ?[kKmMgGtTpPx]?[iI]?[bB]?") {
        let _ = berth_engine::log_config::parse_size(&s);
    }

    #[test]
    fn log_sizes_read_back_as_shown(n in 0u64..1_000_000_000_000_000) {
        prop_assert_eq!(berth_engine::log_config::parse_size(&berth_engine::log_config::show_size(n)).unwrap(), n);
    }

    #[test]
    fn layer_unpack_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let t = tempfile::tempdir().unwrap();
        let _ = berth_engine::store::unpack_tar(&bytes[..], t.path());
    }

    #[test]
    fn lab_names_map_and_unmap_within_the_session(
        a in "[0-9a-f]{12}",
        b in "[0-9a-f]{12}",
        repo in "(lab/)?[a-z0-9]{1,6}([._-][a-z0-9]{1,3})?(/[a-z0-9]{1,6}){0,3}",
    ) {
        let (na, nb) = (LabNames::for_namespace(&format!("lab-{a}")), LabNames::for_namespace(&format!("lab-{b}")));
        let mine = format!("{}/", na.prefix());
        let theirs = format!("{}/", nb.prefix());
        match na.own(&repo) {
            Ok(remote) => {
                prop_assert!(remote.starts_with(&mine), "{} -> {}", repo, remote);
                if a != b {
                    prop_assert!(!remote.starts_with(&theirs));
                    prop_assert_eq!(nb.shown(&remote), None, "another session never sees it");
                }
                // What the student typed comes back (their own prefix is an alias).
                let back = na.shown(&remote).expect("a session sees its own");
                let aliased = mine.clone() + &back;
                prop_assert!(back == repo || aliased == repo, "{} -> {} -> {}", repo, remote, back);
                let sources = na.pull_sources(&repo).unwrap();
                prop_assert_eq!(&sources[0], &remote);
                for s in &sources {
                    prop_assert!(na.shown(s).is_some(), "a pull reads only what the session may see: {}", s);
                }
            }
            Err(_) => prop_assert!(repo.starts_with("lab/"), "only lab/ names are refused: {}", repo),
        }
        // Another session's repository, however written, is refused.
        if a != b {
            let other = theirs.clone() + &repo;
            prop_assert!(na.own(&other).is_err(), "{}", other);
            prop_assert!(na.pull_sources(&other).is_err(), "{}", other);
        }
    }

    #[test]
    fn v4_mapped_and_embedded_addresses_are_judged_as_their_ipv4(bits in any::<u32>()) {
        let v4 = Ipv4Addr::from(bits);
        let k = guard::classify(IpAddr::V4(v4));
        prop_assert_eq!(guard::classify(IpAddr::V6(v4.to_ipv6_mapped())), k);
        let nat64 = Ipv6Addr::from((0x64_ff9b_u128 << 96) | u128::from(bits));
        prop_assert_eq!(guard::classify(IpAddr::V6(nat64)), k);
        let six_to_four = Ipv6Addr::from((0x2002_u128 << 112) | (u128::from(bits) << 80) | 1);
        prop_assert_eq!(guard::classify(IpAddr::V6(six_to_four)), k);
        // Whatever std knows is not global, the guard refuses too.
        if v4.is_loopback() || v4.is_private() || v4.is_link_local() || v4.is_multicast() || v4.is_unspecified() || v4.is_broadcast() || v4.is_documentation() {
            prop_assert!(k.is_some(), "{}", v4);
        }
        if v4.is_private() {
            prop_assert_eq!(k, Some(Kind::Private));
        }
    }

    #[test]
    fn ipv6_classification_never_panics_and_agrees_with_std(bits in any::<u128>()) {
        let ip = Ipv6Addr::from(bits);
        let k = guard::classify(IpAddr::V6(ip));
        if ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() || ip.is_unique_local() || ip.is_unicast_link_local() {
            prop_assert!(k.is_some(), "{}", ip);
        }
    }
}

/// A seccomp profile's rules drawn from the fields Docker's format has.
fn seccomp_rule() -> impl Strategy<Value = String> {
    let name = prop::sample::select(vec!["read", "mkdir", "keyctl", "clone", "no_such_call", "personality", "socket"]);
    let action = prop::sample::select(vec!["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_LOG", "SCMP_ACT_TRAP", "SCMP_ACT_BOGUS"]);
    let op = prop::sample::select(vec!["SCMP_CMP_EQ", "SCMP_CMP_NE", "SCMP_CMP_MASKED_EQ", "SCMP_CMP_GT", "SCMP_CMP_BOGUS"]);
    let arg = (0u32..8, any::<u64>(), op).prop_map(|(i, v, op)| format!(r#"{{"index":{i},"value":{v},"op":"{op}"}}"#));
    let caps = prop::sample::select(vec!["", r#","includes":{"caps":["CAP_SYS_ADMIN"]}"#, r#","excludes":{"arches":["amd64"],"minKernel":"4.8"}"#, r#","includes":null"#]);
    (prop::collection::vec(name, 1..3), action, prop::collection::vec(arg, 0..3), caps, prop::option::of(0u32..200)).prop_map(|(names, action, args, caps, errno)| {
        let errno = errno.map(|e| format!(r#","errnoRet":{e}"#)).unwrap_or_default();
        format!(r#"{{"names":{names:?},"action":"{action}","args":[{}]{caps}{errno}}}"#, args.join(","))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn seccomp_profile_loader_never_panics(s in "\\PC{0,120}") {
        let _ = berth_engine::seccomp::Profile::from_json(s.as_bytes());
    }

    #[test]
    fn seccomp_profiles_load_and_compile_or_say_why(
        default in prop::sample::select(vec!["SCMP_ACT_ERRNO", "SCMP_ACT_ALLOW", "SCMP_ACT_KILL_PROCESS"]),
        rules in prop::collection::vec(seccomp_rule(), 0..6),
    ) {
        let json = format!(r#"{{"defaultAction":"{default}","syscalls":[{}]}}"#, rules.join(","));
        match berth_engine::seccomp::Profile::from_json(json.as_bytes()) {
            Ok(p) => {
                // What loads round-trips through Docker's format, and compiles or
                // fails with a message (never a panic).
                let again = berth_engine::seccomp::Profile::from_json(&serde_json::to_vec(&p).unwrap()).unwrap();
                prop_assert_eq!(&again, &p);
                if let Err(e) = p.compile(&["CAP_CHOWN".to_string()]) {
                    prop_assert!(!e.to_string().is_empty());
                }
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}
