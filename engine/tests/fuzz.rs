//! Property tests: the parsers that read user input never panic, and round-trip
//! where they should. (Bad input must give a clear error, never a crash.)

use berth_engine::detach::{parse_detach_keys, DetachScanner, Scan};
use berth_engine::logs::{self, LogFilter, Stream};
use berth_engine::reference::Reference;
use proptest::prelude::*;

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
