//! `-it`, ctrl-P ctrl-Q, attach and `start -ai`, driven through a real pty.

use berth_tests::{Berth, Pty};

#[test]
fn run_it_detach_attach_and_exit() {
    let b = Berth::start();
    let mut t = Pty::spawn(b.cmd(&["run", "-it", "--name", "shell", "busybox", "sh"]));
    t.expect("# ");
    t.send(b"echo $((6*7))\r");
    t.expect("42");
    // ctrl-P ctrl-Q: the client leaves, the shell keeps running.
    t.send(b"\x10\x11");
    assert_eq!(t.wait(), 0);
    assert_eq!(b.inspect("shell", "{{.State.Running}}"), "true");
    assert!(b
        .ok(&["ps", "--format", "{{.Names}} {{.Status}}"])
        .starts_with("shell Up"));
    // attach resumes the same shell: its variables are still there.
    let mut a = Pty::spawn(b.cmd(&["attach", "shell"]));
    a.send(b"X=kept\r");
    a.send(b"echo got-$X\r");
    a.expect("got-kept");
    a.send(b"exit\r");
    assert_eq!(a.wait(), 0);
    b.eventually("exit stops it", || {
        b.inspect("shell", "{{.State.Status}}") == "exited"
    });
}

#[test]
fn custom_detach_keys_and_two_clients() {
    let b = Berth::start();
    b.ok(&["run", "-dit", "--name", "multi", "busybox", "sh"]);
    let mut one = Pty::spawn(b.cmd(&["attach", "--detach-keys", "ctrl-x", "multi"]));
    let mut two = Pty::spawn(b.cmd(&["attach", "multi"]));
    std::thread::sleep(std::time::Duration::from_millis(300));
    one.send(b"echo from-one\r");
    one.expect("from-one");
    two.expect("from-one");
    // `docker attach` reports a detach as "read escape sequence" with status 1, as
    // it does against Docker (`docker run -it` exits 0).
    one.send(b"\x18");
    one.expect("read escape sequence");
    assert_eq!(one.wait(), 1);
    two.send(b"\x10\x11");
    two.expect("read escape sequence");
    assert_eq!(two.wait(), 1);
    assert_eq!(b.inspect("multi", "{{.State.Running}}"), "true");
}

#[test]
fn start_ai_reattaches_a_stopped_container() {
    let b = Berth::start();
    let mut t = Pty::spawn(b.cmd(&["run", "-it", "--name", "again", "busybox", "sh"]));
    t.expect("# ");
    t.send(b"exit 3\r");
    assert_eq!(t.wait(), 3);
    let mut s = Pty::spawn(b.cmd(&["start", "-ai", "again"]));
    s.send(b"echo second-life\r");
    s.expect("second-life");
    s.send(b"exit\r");
    assert_eq!(s.wait(), 0);
}

#[test]
fn exec_it_gets_a_terminal() {
    let b = Berth::start();
    b.ok(&["run", "-d", "--name", "host", "busybox", "sleep", "60"]);
    let mut t = Pty::spawn(b.cmd(&["exec", "-it", "host", "sh"]));
    t.expect("# ");
    t.send(b"tty; stty size\r");
    t.expect("/dev/pts/");
    t.send(b"exit 2\r");
    assert_eq!(t.wait(), 2);
}

#[test]
fn piped_stdin_reaches_the_container() {
    let b = Berth::start();
    let mut c = b.cmd(&["run", "-i", "--rm", "busybox", "sh", "-c", "tr a-z A-Z"]);
    c.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"shout\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "SHOUT\n");
}
