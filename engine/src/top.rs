//! `docker top`: a container's processes, as the host's `ps` shows them.
//!
//! As dockerd does it: `ps` runs on the host with the client's arguments (`-ef` when
//! none are given), asked for the container's processes only (`-q PIDS`, retried
//! without it for the options that refuse it, such as `f`), and its table is cut to
//! the rows of those processes by its PID column, which the arguments must keep. So
//! `docker top NAME -o pid,comm` or `aux` print what they print under Docker. The
//! arguments go to `ps` as its argv (no shell), and only the container's rows leave.

use std::process::Command;

use crate::error::{Error, Result};

/// `ps`' table for the container: its column titles and one row per process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub titles: Vec<String>,
    pub processes: Vec<Vec<String>>,
}

/// The arguments dockerd uses when the client gives none.
pub const DEFAULT_ARGS: &str = "-ef";

/// dockerd's one check of the arguments: a column may be renamed to a title that
/// starts with `PID` only if it is the pid column (else the rows could not be told
/// apart by their PID).
pub fn validate_args(args: &str) -> Result<()> {
    let renamed = regex::Regex::new(r"\s+([^\s]*)=\s*(PID[^\s]*)").expect("a valid regex");
    for group in renamed.captures_iter(args) {
        let (k, v) = (&group[1], &group[2]);
        if k != "pid" {
            return Err(Error::InvalidArgument(format!(
                "specifying \"{k}={v}\" is not allowed"
            )));
        }
    }
    Ok(())
}

/// Runs the host's `ps` with `args` (split on spaces, as dockerd splits them) and
/// keeps the rows of `pids`.
pub fn run(args: &str, pids: &[u32]) -> Result<Table> {
    let args = if args.is_empty() { DEFAULT_ARGS } else { args };
    validate_args(args)?;
    let argv: Vec<&str> = args.split(' ').collect();
    let only = format!(
        "-q{}",
        pids.iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",")
    );
    let ps = |extra: Option<&str>| Command::new("ps").args(&argv).args(extra).output();
    let out = match ps(Some(&only)) {
        Ok(o) if o.status.success() => o,
        Ok(_) => ps(None).map_err(no_ps)?,
        Err(e) => return Err(no_ps(e)),
    };
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let first = err.lines().next().unwrap_or("").trim();
        return Err(Error::InvalidArgument(if first.is_empty() {
            format!("ps: {}", out.status)
        } else {
            format!("ps: {first}")
        }));
    }
    parse(&String::from_utf8_lossy(&out.stdout), pids)
}

fn no_ps(e: std::io::Error) -> Error {
    Error::Runtime(format!(
        "ps: {e} (docker top runs the host's ps: apt-get install procps)"
    ))
}

/// Cuts `ps` output to the rows of `pids` (dockerd's `parsePSOutput`): the PID
/// column is found by its title; a thread's row (`-` for its PID, with `m`) follows
/// its process; the last column takes the rest of the line (a command's arguments).
pub fn parse(output: &str, pids: &[u32]) -> Result<Table> {
    let mut lines = output.lines();
    let titles: Vec<String> = lines
        .next()
        .unwrap_or("")
        .split_ascii_whitespace()
        .map(str::to_string)
        .collect();
    let Some(pid_at) = titles.iter().position(|t| t == "PID") else {
        return Err(Error::InvalidArgument(
            "Couldn't find PID field in ps output".into(),
        ));
    };
    let mut processes = Vec::new();
    let mut after_ours = false;
    for line in lines.filter(|l| !l.is_empty()) {
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        let Some(pid) = fields.get(pid_at) else {
            continue;
        };
        let ours = if *pid == "-" {
            after_ours
        } else {
            let p: u32 = pid
                .parse()
                .map_err(|e| Error::InvalidArgument(format!("Unexpected pid '{pid}': {e}")))?;
            after_ours = pids.contains(&p);
            after_ours
        };
        if ours {
            let split = (titles.len() - 1).min(fields.len());
            let mut row: Vec<String> = fields[..split].iter().map(|f| f.to_string()).collect();
            row.push(fields[split..].join(" "));
            processes.push(row);
        }
    }
    Ok(Table { titles, processes })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PS_EF: &str = "UID          PID    PPID  C STIME TTY          TIME CMD
root           1       0  0 10:00 ?        00:00:01 /sbin/init
root        4242    4200  0 10:01 ?        00:00:00 sleep 60 with args
65536       4250    4242  0 10:01 pts/0    00:00:00 sh -c echo hi
";

    #[test]
    fn only_the_containers_rows_are_kept_and_the_last_column_takes_the_rest() {
        let t = parse(PS_EF, &[4242, 4250]).unwrap();
        assert_eq!(
            t.titles,
            ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
        );
        assert_eq!(t.processes.len(), 2);
        assert_eq!(t.processes[0][1], "4242");
        assert_eq!(t.processes[0][7], "sleep 60 with args");
        assert_eq!(t.processes[1][7], "sh -c echo hi");
    }

    #[test]
    fn thread_rows_follow_their_process() {
        let out = "PID TTY STAT TIME COMMAND\n10 ? Ss 0:00 init\n- - Ssl 0:00 -\n20 ? S 0:00 sleep\n- - S 0:00 -\n";
        let t = parse(out, &[20]).unwrap();
        assert_eq!(
            t.processes,
            [
                vec!["20", "?", "S", "0:00", "sleep"],
                vec!["-", "-", "S", "0:00", "-"]
            ]
        );
    }

    #[test]
    fn a_table_without_a_pid_column_or_with_a_bad_pid_is_an_error() {
        assert_eq!(
            parse("COMMAND\nsleep\n", &[1]).unwrap_err().to_string(),
            Error::InvalidArgument("Couldn't find PID field in ps output".into()).to_string()
        );
        assert!(parse("PID CMD\nx y\n", &[1])
            .unwrap_err()
            .to_string()
            .contains("Unexpected pid 'x'"));
        // A short row (a column left empty) does not panic.
        assert_eq!(
            parse("UID PID CMD\nroot 7\n", &[7]).unwrap().processes,
            [vec!["root", "7", ""]]
        );
    }

    #[test]
    fn only_the_pid_column_may_be_titled_pid() {
        assert!(validate_args("-o pid=PID,comm").is_ok());
        assert!(validate_args("-ef").is_ok());
        assert_eq!(
            validate_args("-o ppid=PID").unwrap_err().to_string(),
            Error::InvalidArgument("specifying \"ppid=PID\" is not allowed".into()).to_string()
        );
        // dockerd's pattern takes the whole word before `=`.
        assert!(validate_args("-o pid,ppid=PIDS")
            .unwrap_err()
            .to_string()
            .contains("\"pid,ppid=PIDS\""));
    }

    #[test]
    fn the_hosts_ps_is_cut_to_the_pids_asked_for() {
        let me = std::process::id();
        let t = run("-o pid,comm", &[me]).unwrap();
        assert_eq!(t.titles, ["PID", "COMMAND"]);
        assert_eq!(t.processes.len(), 1, "{:?}", t.processes);
        assert_eq!(t.processes[0][0], me.to_string());
        // `f` (a forest) refuses -q: run again without it, still cut to the pid.
        let t = run("axf", &[me]).unwrap();
        assert_eq!(t.titles[0], "PID");
        assert!(
            t.processes.iter().all(|r| r[0] == me.to_string()),
            "{:?}",
            t.processes
        );
        assert!(run("--no-such-option", &[me])
            .unwrap_err()
            .to_string()
            .starts_with("ps: "));
    }

    proptest::proptest! {
        #[test]
        fn any_output_parses_or_fails_cleanly(out in ".{0,400}", pid in 0u32..50) {
            let _ = parse(&out, &[pid]);
        }
    }
}
