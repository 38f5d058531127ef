//! env, inherited descriptors, other processes: what crosses into the sandbox, and what the
//! sandbox can reach outside it.

mod common;
use common::*;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

const SECRET: &str = "cwexec-secret-value-4f2a";

#[test]
fn environment_is_built_from_scratch() {
    let sb = Sandbox::new()
        .env("CW_TEST_SECRET", SECRET)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("PATH", "/evil:/usr/bin");
    let out = sb.violate(&["env"]);
    let text = stdout(&out);
    let mut names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        .collect();
    names.sort();
    // TERM passes through when the caller has one.
    names.retain(|n| *n != "TERM");
    assert_eq!(names, ["HOME", "LANG", "PATH", "TMPDIR"], "{text}");
    assert!(!text.contains(SECRET));
    assert!(text.contains("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"));
}

#[test]
fn env_and_setenv_add_exactly_what_is_named() {
    let sb = Sandbox::new()
        .env("CW_TEST_SECRET", SECRET)
        .env("CW_TEST_PASSED", "yes")
        .args([
            "--env",
            "CW_TEST_PASSED",
            "--setenv",
            "FOO=bar",
            "--env",
            "CW_TEST_UNSET",
        ]);
    let text = stdout(&sb.violate(&["env"]));
    assert!(text.lines().any(|l| l == "CW_TEST_PASSED=yes"), "{text}");
    assert!(text.lines().any(|l| l == "FOO=bar"), "{text}");
    assert!(!text.contains(SECRET));
    assert!(!text.contains("CW_TEST_UNSET"));
}

#[test]
fn no_process_environ_leaks_the_parent_environment() {
    // The command forks a child so more than one process is visible; every environ that
    // can be read inside the sandbox (including init's, PID 1) must be free of the secret.
    let sb = Sandbox::new().env("CW_TEST_SECRET", SECRET);
    let f = fixture();
    let v = f.violate.to_str().unwrap();
    let out = sb.clone().args(["--read", f.bin.to_str().unwrap()]).run(&[
        "/bin/sh",
        "-c",
        &format!("{v} sleep 2 & {v} grep-environ {SECRET}; {v} pids"),
    ]);
    let text = stdout(&out);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("none"), "{text}\n{}", stderr(&out));
    // Only the sandbox's own processes are visible: init (1), sh, sleep, violate.
    let pids: Vec<u32> = lines
        .next()
        .unwrap()
        .split(',')
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(pids[0], 1);
    assert!(
        pids.iter().all(|p| *p < 100),
        "host processes visible: {pids:?}"
    );
}

#[test]
fn only_stdio_descriptors_cross_into_the_sandbox() {
    let f = fixture();
    let leaked = std::fs::File::open("/etc/hostname").unwrap();
    use std::os::fd::AsRawFd;
    let raw = leaked.as_raw_fd();
    let mut cmd = Sandbox::new()
        .args(["--read", f.bin.to_str().unwrap()])
        .command("run", &[f.violate.to_str().unwrap(), "fds"]);
    unsafe {
        cmd.pre_exec(move || {
            // Hand cw-exec an inheritable descriptor 7 and 9, as a careless parent would.
            libc::dup2(raw, 7);
            libc::dup2(raw, 9);
            Ok(())
        });
    }
    let out = cmd.stdout(Stdio::piped()).output().unwrap();
    assert_eq!(stdout(&out).trim(), "0,1,2", "{}", stderr(&out));
}

#[test]
fn outside_processes_cannot_be_signalled_or_traced() {
    let mut victim = Command::new("sleep").arg("30").spawn().unwrap();
    let pid = victim.id().to_string();
    let sb = Sandbox::new();
    assert_eq!(sb.attempt(&["kill", &pid, "9"]), "ESRCH");
    assert_eq!(sb.attempt(&["ptrace", &pid]), "EPERM");
    // Signals to every process the sandbox can name reach only its own.
    assert!(
        victim.try_wait().unwrap().is_none(),
        "the outside process died"
    );
    victim.kill().unwrap();
    victim.wait().unwrap();
}

#[test]
fn no_process_outlives_the_run() {
    let dir = workdir("daemon");
    let wire = Tripwire::new(&dir);
    let sb = Sandbox::new().args(["--write", dir.to_str().unwrap()]);
    // The daemon holds the tripwire open (fd 3) and writes "late" to it if it survives.
    let script = format!(
        "exec 3>{}; echo up >&3; (setsid sh -c 'sleep 1; echo late >&3' &) ; echo started",
        wire.path.display()
    );
    let out = sb.run(&["/bin/sh", "-c", &script]);
    assert_eq!(stdout(&out).trim(), "started", "{}", stderr(&out));
    // End of file once the last holder is gone: "late" would be read first if one survived.
    assert_eq!(
        wire.wait_closed(std::time::Duration::from_secs(120)),
        Ok("up\n".to_string()),
        "a daemonized descendant outlived the run"
    );
}

/// The moment cw-exec returns, nothing of the run is alive: init reports the command's end
/// only after it killed and reaped every other process, and cw-exec returns on that report
/// (without waiting for the kernel to tear down the namespaces). Looped, with background
/// processes that keep forking and one in a session of its own, all holding the tripwire
/// (and not the output pipes, whose end cw-exec would otherwise wait for):
/// it must be closed when cw-exec returns, not eventually. Both tiers, each identity (root
/// runs have cgroups, which cw-exec removes after init's exit; the test user's have none).
#[test]
fn nothing_of_the_run_is_alive_when_cw_exec_returns() {
    as_each_identity(|sb, who| {
        for tier in ["namespaces", "landlock"] {
            for round in 0..8 {
                nothing_holds_the_tripwire_once_returned(
                    &sb,
                    tier,
                    "(while :; do sh -c ':' ; done) >/dev/null 2>&1 & \
                     (setsid sh -c 'while :; do sleep 0.01; done' >/dev/null 2>&1 &) ; \
                     sleep 0.05; echo started",
                    &format!("{who}, {tier}, round {round}"),
                );
            }
        }
    });
}

/// Init skips its `kill(-1)` when it has no child left after the command's end (nothing of
/// the run can be alive then). Processes that a careless "no child" test would miss must
/// still count as children and be killed before cw-exec returns: one stopped by SIGSTOP
/// (which a WNOHANG wait does not report), and one whose parent, another process of the
/// run, is exiting at the command's end (reparented to init on the way). Both tiers, each
/// identity, looped.
#[test]
fn stopped_and_reparented_processes_do_not_outlive_the_run() {
    as_each_identity(|sb, who| {
        for tier in ["namespaces", "landlock"] {
            for round in 0..4 {
                nothing_holds_the_tripwire_once_returned(
                    &sb,
                    tier,
                    "sh -c 'kill -STOP $$' & \
                     sh -c '(sleep 5 &) ; sleep 0.05' & \
                     sleep 0.05; echo started",
                    &format!("{who}, {tier}, round {round}"),
                );
            }
        }
    });
}

/// Killed is not yet ended: a process of the run that takes long to die after its SIGKILL
/// (here 256 MiB of touched memory, which the kernel frees before it closes the process's
/// descriptors) is still waited for before cw-exec returns. Init used to poll for the end of
/// what it killed a bounded number of times (~50 ms): this process outlived the polls, and
/// cw-exec returned while it still held the tripwire (seen first on a loaded machine). The
/// Landlock tier, where init ends the run's processes itself; each identity; looped.
#[test]
fn a_run_process_slow_to_die_is_waited_for() {
    as_each_identity(|sb, who| {
        for round in 0..4 {
            // dd's one 256 MiB buffer, filled from /dev/zero over and over until it is killed.
            nothing_holds_the_tripwire_once_returned(
                &sb,
                "landlock",
                "dd if=/dev/zero of=/dev/null bs=256M count=1000000 2>/dev/null & \
                 sleep 0.5; echo started",
                &format!("{who}, round {round}"),
            );
        }
    });
}

/// Runs the shell script `body` in `tier` with a tripwire open as its descriptor 3 (after
/// "up" was written to it); `body` ends by printing "started" and leaves processes behind.
/// The moment cw-exec returns, none of them may hold the tripwire. `case` names the case in
/// a failure.
fn nothing_holds_the_tripwire_once_returned(sb: &Sandbox, tier: &str, body: &str, case: &str) {
    let dir = workdir("ended");
    let wire = Tripwire::new(&dir);
    let sb = sb
        .clone()
        .args(["--tier", tier, "--write", dir.to_str().unwrap()]);
    let script = format!("exec 3>{}; echo up >&3; {body}", wire.path.display());
    let out = sb.run(&["/bin/sh", "-c", &script]);
    assert_eq!(stdout(&out).trim(), "started", "{case}: {}", stderr(&out));
    assert_eq!(
        wire.closed_now(),
        Ok("up\n".to_string()),
        "{case}: a process of the run outlived cw-exec's return"
    );
}

#[test]
fn terminal_injection_is_denied() {
    let sb = Sandbox::new();
    for fd in ["0", "1", "2"] {
        for variant in ["plain", "high"] {
            let got = sb.attempt(&["tiocsti", fd, variant]);
            assert_eq!(got, "EPERM", "TIOCSTI on fd {fd} ({variant})");
        }
    }
}

/// Hex of a needle, so the sandboxed helper's own command line does not contain it.
fn hex_of(s: &str) -> String {
    hex(s.as_bytes())
}

#[test]
fn init_shows_neither_cw_exec_arguments_nor_its_environment() {
    // Init is a fork of cw-exec that never execs: /proc/1/cmdline, which any process may
    // read, showed cw-exec's whole command line, --setenv values included.
    let f = fixture();
    as_each_identity(|sb, who| {
        let tag = format!("{}x{}", std::process::id(), who.len());
        let set_secret = format!("topsecret-{tag}");
        let removed_secret = format!("removed-secret-{tag}");
        let dir = workdir(&format!("argv-marker-{tag}"));
        let argv_marker = dir.to_string_lossy().into_owned();
        let v = f.violate.to_str().unwrap();
        let files = "cmdline,environ,comm,status";
        let script = format!(
            "{v} proc-grep all {files} {} {}; {v} proc-grep 1 {files} {}; cat /proc/1/comm",
            hex_of(&argv_marker),
            hex_of(&removed_secret),
            hex_of(&set_secret),
        );
        let out = sb
            .env("CW_TEST_REMOVED", &removed_secret)
            .args([
                "--setenv",
                &format!("SECRET_X={set_secret}"),
                "--read",
                f.bin.to_str().unwrap(),
                "--read",
                &argv_marker,
                "--env",
                "CW_TEST_UNSET",
            ])
            .run(&["/bin/sh", "-c", &script]);
        let text = stdout(&out);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{who}: {text}\n{}",
            stderr(&out)
        );
        let lines: Vec<&str> = text.lines().collect();
        // What /proc/1/cmdline says, then any process file holding cw-exec's argument or the
        // caller's removed variable; then init's files holding the --setenv value.
        assert_eq!(lines[0], "cw-exec-init", "{who}: {text}");
        assert_eq!(lines[1], "none", "{who}: {text}");
        assert_eq!(lines[2], "cw-exec-init", "{who}: {text}");
        assert_eq!(lines[3], "none", "{who}: {text}");
        assert_eq!(lines[4], "cw-exec-init", "{who}: /proc/1/comm: {text}");
    });
}

/// The command runs on the caller's CPUs: while the sandbox is built cw-exec spreads init
/// and the network namespace's helper over them (`kernel::placement`), and init gives the
/// caller's whole set back before the command starts, whatever the set: every CPU, or one
/// (where nothing is spread).
#[test]
fn the_command_runs_on_the_callers_cpus() {
    let allowed = |text: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .map(|v| v.trim().to_string())
    };
    let host = allowed(&std::fs::read_to_string("/proc/self/status").unwrap()).unwrap();
    as_each_identity(|sb, who| {
        for _ in 0..5 {
            let out = sb.run(&["cat", "/proc/self/status"]);
            assert_eq!(out.status.code(), Some(0), "{who}: {}", stderr(&out));
            assert_eq!(
                allowed(&stdout(&out)).as_deref(),
                Some(host.as_str()),
                "{who}"
            );
        }
        // The first CPU the caller may use (not necessarily 0, in a cpuset).
        let mine = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).unwrap();
        let first = (0..nix::sched::CpuSet::count())
            .find(|c| mine.is_set(*c).unwrap_or(false))
            .unwrap();
        let mut one = nix::sched::CpuSet::new();
        one.set(first).unwrap();
        let mut cmd = sb.command("run", &["cat", "/proc/self/status"]);
        unsafe {
            cmd.pre_exec(move || {
                nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &one)
                    .map_err(std::io::Error::from)
            });
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{who}: {}", stderr(&out));
        let first = first.to_string();
        assert_eq!(
            allowed(&stdout(&out)).as_deref(),
            Some(first.as_str()),
            "{who}"
        );
    });
}
