//! The test fixture of Berth's wasm runtime: one module whose behaviour is chosen
//! by its first argument (see `USAGE`), so each test needs no module of its own.

use std::io::{BufRead, Write};
use std::process::exit;

const USAGE: &str = "usage: berth-test-guest COMMAND [ARGS]
  echo              copy stdin to stdout as `got: LINE`, until EOF
  loop              print `looping`, then spin forever
  exit N            exit with code N
  stderr TEXT       write TEXT to stderr and `out` to stdout
  write PATH TEXT   write TEXT to the file PATH
  read PATH         print the file PATH
  env               print the environment, sorted
  args              print each argument on its own line
  pwd               print the working directory and its entries
  alloc MB          allocate and touch MB MiB
  trap              execute `unreachable` (a guest trap)";

/// An extra export, run as the `module.wasm#greet` entry point instead of `_start`.
#[no_mangle]
pub extern "C" fn greet() {
    println!("greet called");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).map(String::as_str);
    match (arg(1), arg(2), arg(3)) {
        (Some("echo"), None, None) => echo(),
        (Some("loop"), None, None) => spin(),
        (Some("exit"), Some(n), None) => match n.parse::<i32>() {
            Ok(code) => {
                println!("exiting with {code}");
                exit(code)
            }
            Err(_) => usage(),
        },
        (Some("stderr"), Some(text), None) => {
            eprintln!("{text}");
            println!("out");
        }
        (Some("write"), Some(path), Some(text)) => {
            if let Err(e) = std::fs::write(path, text) {
                fail(&format!("write {path}: {e}"));
            }
            println!("wrote {path}");
        }
        (Some("read"), Some(path), None) => match std::fs::read(path) {
            Ok(bytes) => out(&bytes),
            Err(e) => fail(&format!("read {path}: {e}")),
        },
        (Some("env"), None, None) => {
            let mut vars: Vec<String> = std::env::vars_os()
                .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
                .collect();
            vars.sort();
            for v in vars {
                println!("{v}");
            }
        }
        (Some("args"), ..) => {
            for a in &args[1..] {
                println!("{a}");
            }
        }
        (Some("pwd"), None, None) => pwd(),
        (Some("alloc"), Some(mb), None) => match mb.parse::<usize>() {
            Ok(mb) => alloc(mb),
            Err(_) => usage(),
        },
        (Some("trap"), None, None) => core::arch::wasm32::unreachable(),
        _ => usage(),
    }
}

fn echo() {
    let stdout = std::io::stdout();
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap_or_else(|e| fail(&format!("read stdin: {e}")));
        let mut o = stdout.lock();
        // Flushed per line: tests drive it interactively and wait for each reply.
        let _ = writeln!(o, "got: {line}").and_then(|()| o.flush());
    }
}

/// Never returns and never sleeps: a guest only a runtime's interrupt can stop.
fn spin() -> ! {
    println!("looping");
    let _ = std::io::stdout().flush();
    let mut n: u64 = 0;
    loop {
        // black_box: otherwise the loop, having no effect, may be optimized away.
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

fn pwd() {
    match std::env::current_dir() {
        Ok(d) => println!("{}", d.display()),
        Err(e) => println!("current_dir: {e}"),
    }
    let mut names: Vec<String> = match std::fs::read_dir(".") {
        Ok(rd) => rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect(),
        Err(e) => fail(&format!("read_dir .: {e}")),
    };
    names.sort();
    for n in names {
        println!("{n}");
    }
}

fn alloc(mb: usize) {
    let len = mb.checked_mul(1 << 20).unwrap_or_else(|| fail("alloc: size overflows"));
    // vec![1; len] writes every byte, so every page is really committed.
    let v = std::hint::black_box(vec![1u8; len]);
    assert!(v.iter().step_by(4096).all(|&b| b == 1));
    println!("allocated {mb} MiB");
}

fn out(bytes: &[u8]) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(bytes).and_then(|()| o.flush());
}

fn fail(msg: &str) -> ! {
    eprintln!("berth-test-guest: {msg}");
    exit(1)
}

fn usage() -> ! {
    eprintln!("{USAGE}");
    exit(2)
}
