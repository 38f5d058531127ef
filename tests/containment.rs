//! Process containment: nothing outlives the run (even when cw-exec is SIGKILLed), signals
//! are forwarded, and the command cannot inject input into the terminal it was started from,
//! while interactive programs keep working under a real pty.

mod common;
use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::time::Duration;

/// Host processes whose command line contains `needle`.
fn processes_with(needle: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| {
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            cmd.contains(needle)
                .then(|| format!("{}: {cmd}", e.file_name().to_string_lossy()))
        })
        .collect()
}

fn spawn_until_ready(sb: &Sandbox, script: &str) -> (Child, BufReader<std::process::ChildStdout>) {
    let mut child = sb
        .command("run", &["/bin/sh", "-c", script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready", "the sandboxed script did not start");
    (child, out)
}

#[test]
fn sigkill_of_cw_exec_kills_the_whole_tree() {
    as_each_identity(|sb, who| {
        sigkill_of_cw_exec_leaves_nothing(&sb, &[], "sigkill", 1000, who);
        // A SIGKILLed cw-exec cannot remove its (now empty) cgroups; a later run sweeps them.
        assert_eq!(
            leftover_cgroups_after_sweeps(),
            Vec::<std::path::PathBuf>::new(),
            "{who}"
        );
    });
}

/// The Landlock tier has no PID namespace whose end would take the run with init: init's
/// parent-death signal there is the one that makes it kill and reap every process of the run
/// (as past a timeout), then end. Until the eighth session it was SIGKILL, and the command and
/// everything it started outlived a SIGKILLed cw-exec (a gap the attestation named): here a
/// daemonized background process would write "late" to the tripwire after a second, and
/// two sleeps hold it. Each identity.
#[test]
fn sigkill_of_cw_exec_kills_the_whole_tree_in_the_landlock_tier() {
    as_each_identity(|sb, who| {
        sigkill_of_cw_exec_leaves_nothing(
            &sb,
            &["--tier", "landlock"],
            "sigkill-landlock",
            2000,
            who,
        );
    });
}

/// Runs a script under `sb` with `args` whose processes (two sleeps, a daemonized one that
/// would write "late" after a second) all hold a tripwire, SIGKILLs cw-exec once it is ready,
/// and asserts that every one of them is gone: the tripwire reads end of file with only
/// "up" on it, and no sandboxed sleep is left. `name` names the work directory, `tag_base`
/// keeps each test's sleep duration, which marks its processes in the host's list, apart.
fn sigkill_of_cw_exec_leaves_nothing(
    sb: &Sandbox,
    args: &[&str],
    name: &str,
    tag_base: u32,
    who: &str,
) {
    let dir = workdir(name);
    let wire = Tripwire::new(&dir);
    // A unique sleep duration marks the sandbox's processes in the host's process list.
    let tag = format!(
        "{}.{}",
        tag_base + std::process::id() % 1000,
        dir.to_string_lossy().len()
    );
    // Every process of the tree holds the tripwire (fd 3); a daemonized one that
    // survived would also write "late" to it.
    let script = format!(
        "exec 3>{w}; echo up >&3; sleep {tag} & (setsid sh -c 'sleep 1; echo late >&3' &); sleep {tag} & echo ready; wait",
        w = wire.path.display()
    );
    let sb = sb
        .clone()
        .args(args)
        .args(["--write", dir.to_str().unwrap()]);
    let (mut child, _out) = spawn_until_ready(&sb, &script);
    assert!(
        !processes_with(&format!("sleep {tag}")).is_empty(),
        "{who}: no sandboxed sleep seen"
    );
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    // End of file on the tripwire: every process that held it is gone.
    let seen = wire.wait_closed(Duration::from_secs(120));
    assert_eq!(
        seen,
        Ok("up\n".to_string()),
        "{who}: survivors: {:?}",
        processes_with(&format!("sleep {tag}"))
    );
    assert!(
        processes_with(&format!("sleep {tag}")).is_empty(),
        "{who}: survivors"
    );
}

#[test]
fn signals_are_forwarded_to_the_command() {
    as_each_identity(|sb, who| {
        for (sig, name) in [
            (libc::SIGINT, "INT"),
            (libc::SIGTERM, "TERM"),
            (libc::SIGHUP, "HUP"),
        ] {
            let script = format!(
                "trap 'echo got-{name}; exit 7' {name}; echo ready; while :; do sleep 0.05; done"
            );
            let (mut child, mut out) = spawn_until_ready(&sb, &script);
            unsafe { libc::kill(child.id() as i32, sig) };
            let mut rest = String::new();
            out.read_to_string(&mut rest).unwrap();
            let status = child.wait().unwrap();
            assert_eq!(rest.trim(), format!("got-{name}"), "{who}");
            assert_eq!(status.code(), Some(7), "{who}: SIG{name}");
        }
    });
}

/// Runs cw-exec with a pty as its controlling terminal and stdio, as an interactive shell
/// would; returns everything the terminal showed.
fn run_on_pty(sb: &Sandbox, cmd: &[&str], input: &[u8]) -> (Option<i32>, String) {
    let (master, slave_path) = open_pty();
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&slave_path)
        .unwrap();
    let mut command = sb.command("run", cmd);
    command
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave.try_clone().unwrap());
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            if libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().unwrap();
    // Every slave descriptor on our side must go, or the master never reads EOF.
    drop(command);
    drop(slave);
    let mut master_file = std::fs::File::from(master);
    master_file.write_all(input).unwrap();
    let reader = master_file.try_clone().unwrap();
    let collected = std::thread::spawn(move || {
        let mut reader = reader;
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break, // EIO once the last slave descriptor closes
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&all).into_owned()
    });
    let status = child.wait().unwrap();
    drop(master_file);
    (status.code(), collected.join().unwrap())
}

#[test]
fn terminal_injection_fails_under_a_real_pty() {
    let f = fixture();
    let v = f.violate.to_str().unwrap();
    let script = format!(
        "for fd in 0 1 2; do {v} tiocsti $fd plain; {v} tiocsti $fd high; done; {v} tiocsti-path /dev/tty"
    );
    as_each_identity(|sb, who| {
        let sb = sb.args(["--read", f.bin.to_str().unwrap()]);
        let (code, screen) = run_on_pty(&sb, &["/bin/sh", "-c", &script], b"");
        assert_eq!(code, Some(0), "{who}: {screen}");
        let answers: Vec<&str> = screen
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(answers[..6], ["EPERM"; 6], "{who}: {screen}");
        // On a terminal the sandbox has a pty of its own: /dev/tty opens it, and TIOCSTI is
        // refused there too (tests/terminal.rs covers the rest).
        assert_eq!(answers[6], "EPERM", "{who}: {screen}");
    });
}

#[test]
fn interactive_programs_work_under_a_pty() {
    as_each_identity(|sb, who| {
        let input = b"test -t 0 && echo is-a-tty\necho $((6*7))\nexit 3\n";
        let (code, screen) = run_on_pty(&sb, &["/bin/sh", "-i"], input);
        assert_eq!(code, Some(3), "{who}: {screen}");
        assert!(screen.contains("is-a-tty"), "{who}: {screen}");
        assert!(screen.contains("42"), "{who}: {screen}");
        if std::path::Path::new("/usr/bin/python3").exists() {
            let input = b"print(6*7)\nimport sys; sys.exit(4)\n";
            let (code, screen) = run_on_pty(&sb, &["/usr/bin/python3", "-i", "-q"], input);
            assert_eq!(code, Some(4), "{who}: {screen}");
            assert!(screen.contains("42"), "{who}: {screen}");
        } else {
            skip("python3 -i: /usr/bin/python3 is not installed");
        }
    });
}

#[test]
fn output_limit_holds_when_stdin_is_a_terminal() {
    // A terminal on descriptor 0 is writable: under --output-limit the command must not be
    // able to print past the limit through it.
    as_each_identity(|sb, who| {
        let sb = sb.args(["--output-limit", "1K"]);
        // Descriptor 0 kept as 3, since in a pipeline 0 is the pipe.
        let script = "exec 3<&0; yes | head -c 1048576 >&3; echo rc=$?";
        let (code, screen) = run_on_pty(&sb, &["/bin/sh", "-c", script], b"");
        assert_eq!(code, Some(0), "{who}: {}", &screen[..screen.len().min(300)]);
        let ys = screen.bytes().filter(|b| *b == b'y').count();
        assert!(ys <= 1024, "{who}: {ys} bytes reached the terminal");
        assert!(screen.contains("rc=1"), "{who}: {screen}");
    });
}

/// After a run that ends normally, init waits for cw-exec's own exit rather than tearing its
/// namespaces down on the CPU cw-exec was just woken on (`report_the_end`): it
/// must still end with cw-exec (PR_SET_PDEATHSIG), never outlive it. Both tiers, each
/// identity.
#[test]
fn init_ends_with_cw_exec_after_a_normal_run() {
    as_each_identity(|sb, who| {
        for tier in ["namespaces", "landlock"] {
            let sb = sb.clone().args(["--tier", tier]);
            let mut child = sb
                .command("run", &["sh", "-c", "echo ready; read x; exit 3"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let mut line = String::new();
            BufReader::new(child.stdout.as_mut().unwrap())
                .read_line(&mut line)
                .unwrap();
            assert_eq!(line.trim(), "ready", "{who} {tier}");
            let init = children_of(child.id());
            assert_eq!(init.len(), 1, "{who} {tier}: cw-exec's children {init:?}");
            let stat = format!("/proc/{}/stat", init[0]);
            drop(child.stdin.take());
            assert_eq!(child.wait().unwrap().code(), Some(3), "{who} {tier}");
            // Gone, or a zombie waiting for the host's reaper: not running.
            let mut alive = true;
            for _ in 0..500 {
                match std::fs::read_to_string(&stat) {
                    Err(_) => alive = false,
                    Ok(s) => {
                        alive = !s
                            .rsplit(')')
                            .next()
                            .unwrap_or("")
                            .trim_start()
                            .starts_with('Z')
                    }
                }
                if !alive {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            assert!(!alive, "{who} {tier}: init {} outlived cw-exec", init[0]);
        }
    });
}
