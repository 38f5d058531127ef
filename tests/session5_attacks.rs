//! Attacks on the fifth spawn-cost session's changes (issue 17): the network namespace made
//! by a helper process of init (`kernel::netns`), CPU placement while the sandbox is built
//! (`kernel::placement`), init lingering until cw-exec's exit after a run whose cgroups it
//! left (`containment::linger_until_cw_exec_ends`), and the refusal read from init's report
//! when a write to init fails (`supervise::abandon_after_init`). Each attempts its violation
//! from inside the sandbox, from the caller's side, or from a concurrent process on the host,
//! and checks what the host saw.
//!
//! "Nothing of the run is left" is checked with a pipe the caller hands cw-exec as an extra
//! descriptor (3): every process of the run inherits a copy (init, the network helper, the
//! command's process until its execve), so its read end reads end of file once none is left.
//! Waits have generous limits that only ever fail a test, never pass one.

mod common;

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use common::*;

/// How long any wait may take before the test fails (a failure only, never a pass).
const LIMIT: Duration = Duration::from_secs(120);

/// Waits for `child` to end, returning the moment the kernel reports its exit (a blocking
/// wait, as a shell's: no polling interval in which the run's processes could end too);
/// after LIMIT a watchdog kills it and the test fails.
fn wait_bounded(child: &mut Child, what: &str) -> ExitStatus {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let done = Arc::new(AtomicBool::new(false));
    let fired = Arc::new(AtomicBool::new(false));
    let pid = child.id() as i32;
    let (d, f) = (done.clone(), fired.clone());
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if rx.recv_timeout(LIMIT).is_err() && !d.load(Ordering::SeqCst) {
            f.store(true, Ordering::SeqCst);
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    });
    let status = child.wait().unwrap();
    done.store(true, Ordering::SeqCst);
    let _ = tx.send(());
    watchdog.join().unwrap();
    assert!(
        !fired.load(Ordering::SeqCst),
        "{what}: cw-exec still running after {LIMIT:?}"
    );
    status
}

/// A pipe whose write end `cmd` gets as its descriptor 3: (read end, write end). The test
/// drops its write end once the child is spawned, so the read end reads end of file once
/// no process that inherited it is left.
fn extra_descriptor(cmd: &mut Command) -> (OwnedFd, OwnedFd) {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let raw = write.as_raw_fd();
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(raw, 3) != 3 || libc::fcntl(3, libc::F_SETFD, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    (read, write)
}

/// Everything still to read from a pipe whose writers must all be gone by now: Ok(the
/// bytes) when it reads end of file without waiting, Err(the bytes) when a writer is left.
fn drained_now(fd: &OwnedFd) -> Result<Vec<u8>, Vec<u8>> {
    let flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFL).unwrap();
    let flags = nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFL(flags)).unwrap();
    let mut text = vec![];
    let mut buf = [0u8; 4096];
    loop {
        match nix::unistd::read(fd, &mut buf) {
            Ok(0) => return Ok(text),
            Ok(n) => text.extend_from_slice(&buf[..n]),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return Err(text),
        }
    }
}

/// The processes that hold the pipe `fd` is an end of (for a failure's message): pid,
/// name, state, parent, pids in its namespaces.
fn holders(fd: &OwnedFd) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let ino = std::fs::metadata(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map(|m| m.ino())
        .unwrap_or(0);
    let me = std::process::id().to_string();
    let mut found = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = e.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(e.path().join("fd")) else {
            continue;
        };
        for f in fds.flatten() {
            if std::fs::read_link(f.path())
                .is_ok_and(|l| l.to_string_lossy() == format!("pipe:[{ino}]"))
            {
                let status = std::fs::read_to_string(e.path().join("status")).unwrap_or_default();
                let pick = |k: &str| {
                    status
                        .lines()
                        .find_map(|l| l.strip_prefix(k))
                        .unwrap_or("")
                        .trim()
                        .to_string()
                };
                found.push(format!(
                    "{pid} {} {} ppid {} nspid {} fd {}",
                    pick("Name:"),
                    pick("State:"),
                    pick("PPid:"),
                    pick("NSpid:"),
                    f.file_name().to_string_lossy()
                ));
            }
        }
    }
    found
}

/// Reads a pipe to end of file (fails after LIMIT: a writer survived).
fn drained_within_limit(fd: OwnedFd, what: &str) -> Vec<u8> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut f = std::fs::File::from(fd);
        let mut text = vec![];
        let mut buf = [0u8; 4096];
        // End of file, or EIO: a pty master once the last slave descriptor is closed.
        let r = loop {
            match f.read(&mut buf) {
                Ok(0) => break Ok(text),
                Ok(n) => text.extend_from_slice(&buf[..n]),
                Err(e) if e.raw_os_error() == Some(libc::EIO) => break Ok(text),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        let _ = tx.send(r);
    });
    match rx.recv_timeout(LIMIT) {
        Ok(Ok(text)) => text,
        Ok(Err(e)) => panic!("{what}: reading: {e}"),
        Err(_) => panic!("{what}: still held open after {LIMIT:?}: a process of the run survived"),
    }
}

/// The CPUs a Cpus_allowed_list value names ("0-3,6").
fn cpu_list(text: &str) -> Vec<usize> {
    let mut cpus = vec![];
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => cpus.extend(a.parse::<usize>().unwrap()..=b.parse::<usize>().unwrap()),
            None => cpus.push(part.parse().unwrap()),
        }
    }
    cpus
}

/// A process's allowed CPUs, from a /proc/PID/status text.
fn allowed_in(status: &str) -> Option<Vec<usize>> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(cpu_list)
}

/// The CPUs this test may use.
fn own_cpus() -> Vec<usize> {
    let mine = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).unwrap();
    (0..nix::sched::CpuSet::count())
        .filter(|c| mine.is_set(*c).unwrap_or(false))
        .collect()
}

/// Makes `cmd` start on exactly `cpus` (as `taskset` would).
fn on_cpus(cmd: &mut Command, cpus: &[usize]) {
    let mut set = nix::sched::CpuSet::new();
    for c in cpus {
        set.set(*c).unwrap();
    }
    unsafe {
        cmd.pre_exec(move || {
            nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
                .map_err(std::io::Error::from)
        });
    }
}

// ---------------------------------------------------------------------------------------
// CPU placement
// ---------------------------------------------------------------------------------------

/// A host that refuses affinity changes altogether (a seccomp profile such as systemd's
/// `SystemCallFilter=~@resources`): cw-exec cannot spread init and the helper over the CPUs,
/// so nothing is narrowed, and the command must run as it did before placement existed — on
/// the caller's CPUs — not be refused because giving back a set nobody took away failed.
/// Both tiers, each identity.
#[test]
fn a_host_that_refuses_affinity_calls_still_runs_the_command_on_the_callers_cpus() {
    let wrapper = refusing(&["sched_setaffinity"]);
    let mine = own_cpus();
    as_each_identity(|sb, who| {
        for tier in ["namespaces", "landlock"] {
            let out = sb
                .clone()
                .wrapped(&wrapper)
                .args(["--tier", tier])
                .run(&["cat", "/proc/self/status"]);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{who} {tier}: refused although nothing was narrowed: {}",
                stderr(&out)
            );
            assert_eq!(
                allowed_in(&stdout(&out)),
                Some(mine.clone()),
                "{who} {tier}"
            );
        }
    });
}

/// Where init was moved off cw-exec's CPU and cannot take the caller's set back (here the
/// wrapper refuses only a process's change of its own affinity, `sched_setaffinity(0, ..)`:
/// cw-exec's placement of init still works), the run is refused, never run pinned: exit 125,
/// the step named, the command never executed. Both tiers, each identity.
#[test]
fn a_refused_restore_refuses_the_run_rather_than_run_it_pinned() {
    if own_cpus().len() < 2 {
        return skip("one CPU allowed: cw-exec places nothing");
    }
    let wrapper = refusing(&["sched_setaffinity=0"]);
    let dir = workdir("pinned");
    let marker = dir.join("ran");
    let touch = format!("touch {}", marker.display());
    as_each_identity(|sb, who| {
        for tier in ["namespaces", "landlock"] {
            let _ = std::fs::remove_file(&marker);
            let out = sb
                .clone()
                .wrapped(&wrapper)
                .args(["--tier", tier, "--write", dir.to_str().unwrap()])
                .run(&["sh", "-c", &touch]);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(125), "{who} {tier}: {err}");
            assert!(
                err.contains("the caller's CPU set back"),
                "{who} {tier}: {err}"
            );
            assert!(!marker.exists(), "{who} {tier}: the command ran pinned");
        }
    });
}

/// The command, and init while the command runs, are on exactly the caller's CPUs —
/// whatever set the caller was restricted to (each single CPU, every CPU, every CPU but the
/// first, which excludes CPU 0 where the caller may use it) — never fewer (placement left in
/// force) nor more (a set wider than the caller's). Read inside (the command's
/// /proc/self/status) and from the host (init's and the command's /proc/PID/status while it
/// runs). Both tiers, each identity, looped: init's placement races with its start.
#[test]
fn the_command_and_init_run_on_exactly_the_callers_cpus_whatever_the_set() {
    use std::io::{BufRead, BufReader};
    let mine = own_cpus();
    let mut sets: Vec<Vec<usize>> = mine.iter().map(|c| vec![*c]).collect();
    sets.push(mine.clone());
    if mine.len() > 2 {
        sets.push(mine[1..].to_vec());
    }
    sets.dedup();
    as_each_identity(|sb, who| {
        for tier in ["namespaces", "landlock"] {
            for set in &sets {
                for round in 0..3 {
                    let what = format!("{who} {tier} caller on {set:?} (round {round})");
                    let mut cmd = sb.clone().args(["--tier", tier]).command(
                        "run",
                        &[
                            "sh",
                            "-c",
                            "grep Cpus_allowed_list /proc/self/status; echo ready; read x; exit 0",
                        ],
                    );
                    on_cpus(&mut cmd, set);
                    let mut run = Reaped(
                        cmd.stdin(Stdio::piped())
                            .stdout(Stdio::piped())
                            .stderr(Stdio::piped())
                            .spawn()
                            .unwrap(),
                    );
                    let mut out = BufReader::new(run.0.stdout.take().unwrap());
                    let mut inside = String::new();
                    out.read_line(&mut inside).unwrap();
                    let mut ready = String::new();
                    out.read_line(&mut ready).unwrap();
                    assert_eq!(ready, "ready\n", "{what}: {inside}");
                    assert_eq!(
                        allowed_in(&inside).as_ref(),
                        Some(set),
                        "{what}: the command"
                    );
                    let init = children_of(run.0.id());
                    assert_eq!(init.len(), 1, "{what}: cw-exec's children {init:?}");
                    let commands = children_of(init[0]);
                    assert_eq!(commands.len(), 1, "{what}: init's children {commands:?}");
                    for (name, pid) in [("init", init[0]), ("the command", commands[0])] {
                        let status =
                            std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
                        assert_eq!(allowed_in(&status).as_ref(), Some(set), "{what}: {name}");
                    }
                    drop(run.0.stdin.take());
                    let status = wait_bounded(&mut run.0, &what);
                    assert!(status.success(), "{what}: {status:?}");
                }
            }
        }
    });
}

// ---------------------------------------------------------------------------------------
// Init after the run: nothing of it held once cw-exec has returned
// ---------------------------------------------------------------------------------------

/// How cw-exec is started for the identity `who` so that the run has cgroups (init then
/// lingers until cw-exec's exit): root as is; the unprivileged user through a wrapper that
/// moves into a v1 memory and pids cgroup delegated to it (made here, removed when the
/// returned guard drops) and then drops to the user. None where that cannot be arranged.
fn with_cgroups(sb: &Sandbox, dir: &Path) -> Option<(Sandbox, Option<Delegated>)> {
    let Some((uid, gid)) = sb.user else {
        // Root makes the run's cgroups itself; another user running the suite gets none.
        return is_root().then(|| (sb.clone(), None));
    };
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let mut made = Delegated(vec![]);
    let rel = format!(
        "cwx-s5-{}-{}",
        std::process::id(),
        dir.file_name()?.to_string_lossy()
    );
    let mut script = String::from("#!/bin/sh\nset -e\n");
    for h in ["memory", "pids"] {
        own.lines().find(|l| {
            l.split(':')
                .nth(1)
                .is_some_and(|c| c.split(',').any(|x| x == h))
        })?;
        let d = Path::new("/sys/fs/cgroup").join(h).join(&rel);
        std::fs::create_dir(&d).ok()?;
        made.0.push(d.clone());
        for p in [d.clone(), d.join("tasks"), d.join("cgroup.procs")] {
            std::os::unix::fs::chown(&p, Some(uid), Some(gid)).ok()?;
        }
        script.push_str(&format!("echo $$ > {}/cgroup.procs\n", d.display()));
    }
    script.push_str(&format!(
        "exec setpriv --reuid={uid} --regid={gid} --clear-groups -- \"$@\"\n"
    ));
    let w = dir.join("delegated.sh");
    std::fs::write(&w, script).ok()?;
    std::fs::set_permissions(&w, std::fs::Permissions::from_mode(0o755)).ok()?;
    let mut wrapped = sb.clone().wrapped(&w).env("HOME", "/nonexistent");
    wrapped.user = None;
    Some((wrapped, Some(made)))
}

/// Cgroups made for the unprivileged user's runs; removed when dropped.
struct Delegated(Vec<PathBuf>);

impl Drop for Delegated {
    /// The last run's init may still be ending in the delegated cgroup (it moved there when
    /// it left the run's, and ends just after its cw-exec): removal waits for that (bounded).
    fn drop(&mut self) {
        for d in &self.0 {
            let start = std::time::Instant::now();
            while std::fs::remove_dir(d).is_err()
                && d.exists()
                && start.elapsed() < Duration::from_secs(30)
            {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Once cw-exec has returned, no process of the run holds any descriptor of the caller's:
/// not its stdout or stderr (pipes the caller reads to end of file, as `cw-exec ... | cat`
/// does), not a further descriptor it inherited (3 here; a script's `3>&1`, a provider's
/// saved stdout, a jobserver pipe), read the moment cw-exec's exit is seen, without waiting.
/// The command leaves a background process holding its output; the caller's stdin is a pipe
/// it keeps open. Both tiers, each identity, with the run's cgroups (init then waits for
/// cw-exec's exit) and without, output captured (`--output-limit`) and passed through, with
/// the egress proxy, looped.
#[test]
fn nothing_of_the_run_holds_a_callers_descriptor_once_cw_exec_has_returned() {
    as_each_identity(|sb, who| {
        let dir = workdir("held");
        let limited = with_cgroups(&sb, &dir);
        let mut variants: Vec<(&str, Sandbox)> = vec![("no limits", sb.clone())];
        match &limited {
            Some((l, _)) => {
                variants.push(("cgroups", l.clone().args(["--memory", "256M"])));
                variants.push((
                    "cgroups, output captured",
                    l.clone().args(["--memory", "256M", "--output-limit", "1M"]),
                ));
                variants.push((
                    "cgroups, egress proxy",
                    l.clone()
                        .args(["--memory", "256M", "--net", "allow=example.com"]),
                ));
            }
            None => skip(&format!("{who}: no delegated cgroup: the cgroup variants")),
        }
        variants.push(("output captured", sb.clone().args(["--output-limit", "1M"])));
        for (variant, vsb) in &variants {
            for tier in ["namespaces", "landlock"] {
                if tier == "landlock" && variant.contains("egress") {
                    continue; // the allowlist needs a network namespace
                }
                for round in 0..5 {
                    let what = format!("{who} {tier} {variant} (round {round})");
                    let mut cmd = vsb.clone().args(["--tier", tier]).command(
                        "run",
                        &["sh", "-c", "echo out; echo err >&2; sleep 600 & echo bye"],
                    );
                    // Stdin a pipe the caller keeps open (relayed where output is captured).
                    cmd.stdin(Stdio::piped())
                        .stdout(Stdio::piped())
                        .stderr(Stdio::piped());
                    let (extra, ours) = extra_descriptor(&mut cmd);
                    let child = cmd.spawn();
                    drop(ours);
                    let mut run = Reaped(child.unwrap());
                    let _stdin = run.0.stdin.take();
                    let stdout_pipe = OwnedFd::from(run.0.stdout.take().unwrap());
                    let stderr_pipe = OwnedFd::from(run.0.stderr.take().unwrap());
                    let status = wait_bounded(&mut run.0, &what);
                    let out = drained_now(&stdout_pipe).unwrap_or_else(|got| {
                        panic!(
                            "{what}: cw-exec returned while a process of the run still holds its stdout (read {:?})",
                            String::from_utf8_lossy(&got)
                        )
                    });
                    let err = drained_now(&stderr_pipe).unwrap_or_else(|got| {
                        panic!(
                            "{what}: cw-exec returned while a process of the run still holds its stderr (read {:?})",
                            String::from_utf8_lossy(&got)
                        )
                    });
                    assert!(
                        drained_now(&extra).is_ok(),
                        "{what}: cw-exec returned while a process of the run still holds the caller's descriptor 3: {:?}",
                        holders(&extra)
                    );
                    assert_eq!(
                        status.code(),
                        Some(0),
                        "{what}: {}",
                        String::from_utf8_lossy(&err)
                    );
                    assert_eq!(String::from_utf8_lossy(&out), "out\nbye\n", "{what}");
                }
            }
        }
        drop(limited);
    });
    assert_eq!(leftover_cgroups_after_sweeps(), Vec::<PathBuf>::new());
}

/// Signals and a timeout reaching cw-exec at any moment of the set-up (a concurrent sender,
/// looped over the start's whole length): however the run then ends, once cw-exec has
/// returned no process of the run holds the caller's descriptors; cw-exec SIGKILLed at any
/// moment takes every process of the run with it (the network helper included: it holds a
/// copy of descriptor 3 too). Both tiers, each identity, with the run's cgroups where they
/// can be made.
#[test]
fn signals_during_set_up_leave_nothing_of_the_run_behind() {
    as_each_identity(|sb, who| {
        let dir = workdir("setup-signals");
        let limited = with_cgroups(&sb, &dir);
        let base = match &limited {
            Some((l, _)) => l.clone().args(["--memory", "256M"]),
            None => {
                skip(&format!("{who}: no delegated cgroup: runs without cgroups"));
                sb.clone()
            }
        };
        for tier in ["namespaces", "landlock"] {
            for (signal, extra_args) in [
                (libc::SIGTERM, vec![]),
                (libc::SIGINT, vec![]),
                (0, vec!["--timeout", "0.001"]),
                (libc::SIGKILL, vec![]),
            ] {
                for round in 0..12 {
                    let what = format!("{who} {tier} signal {signal} (round {round})");
                    let mut cmd = base
                        .clone()
                        .args(["--tier", tier])
                        .args(&extra_args)
                        // SIGKILLed, the Landlock tier's command may outlive cw-exec (a gap the
                        // attestation names): one that ends at once.
                        .command(
                            "run",
                            &[
                                if signal == libc::SIGKILL {
                                    "true"
                                } else {
                                    "sleep"
                                },
                                "600",
                            ],
                        );
                    let (extra, ours) = extra_descriptor(&mut cmd);
                    let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn();
                    drop(ours);
                    let mut run = Reaped(child.unwrap());
                    // Over the start's length: a debug build takes some milliseconds.
                    std::thread::sleep(Duration::from_micros(round * 1500));
                    if signal != 0 {
                        unsafe { libc::kill(run.0.id() as i32, signal) };
                    }
                    wait_bounded(&mut run.0, &what);
                    if signal == libc::SIGKILL {
                        // The parent-death signal takes init (and its namespace) with cw-exec:
                        // not at the instant of its exit, so within the limit.
                        drained_within_limit(extra, &what);
                    } else {
                        assert!(
                            drained_now(&extra).is_ok(),
                            "{what}: cw-exec returned while a process of the run still holds the caller's descriptor 3: {:?}",
                            holders(&extra)
                        );
                    }
                }
            }
        }
        // Runs SIGKILLed in the delegated cgroups leave their cgroups: later runs there
        // sweep them (one in eight, at random).
        if let Some((l, _)) = &limited {
            for _ in 0..200 {
                if !has_dead_run_cgroups(&dir) {
                    break;
                }
                let _ = l.clone().args(["--memory", "256M"]).run(&["true"]);
            }
        }
        drop(limited);
    });
    assert_eq!(leftover_cgroups_after_sweeps(), Vec::<PathBuf>::new());
}

// ---------------------------------------------------------------------------------------
// The network helper
// ---------------------------------------------------------------------------------------

const NS_GET_USERNS: libc::c_ulong = 0xb701;

/// Whether process `pid`'s network namespace is owned by its own user namespace (as one
/// made in the sandbox is) and is not the host's.
fn net_owned_by_own_userns(pid: u32) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).map_err(|e| e.to_string())?;
    if ns.metadata().unwrap().ino() == std::fs::metadata("/proc/self/ns/net").unwrap().ino() {
        return Err("the host's network namespace".into());
    }
    let owner = unsafe { libc::ioctl(ns.as_raw_fd(), NS_GET_USERNS) };
    if owner < 0 {
        return Err(format!(
            "NS_GET_USERNS: {}",
            std::io::Error::last_os_error()
        ));
    }
    let owner_ino = std::fs::metadata(format!("/proc/self/fd/{owner}"))
        .unwrap()
        .ino();
    unsafe { libc::close(owner) };
    let own = std::fs::metadata(format!("/proc/{pid}/ns/user"))
        .unwrap()
        .ino();
    if owner_ino != own {
        return Err(format!(
            "owned by user namespace {owner_ino}, not the sandbox's {own}"
        ));
    }
    Ok(())
}

/// In every network mode that makes a namespace (none, loopback, the egress allowlist), with
/// the run's cgroups and without, the helper that made it (PID 2 of the sandbox, holding
/// every privilege there, unconfined) is gone before anything of the command runs: the
/// command sees no process but init and itself, and PID 2 cannot be reached at all (no
/// pidfd, no signal, no ptrace, nothing in /proc); the namespace is owned by the sandbox's
/// user namespace. With `--net host` there is no helper: the command is PID 2. Each
/// identity, looped.
#[test]
fn the_network_helper_is_gone_before_the_command_in_every_mode() {
    use std::io::{BufRead, BufReader};
    as_each_identity(|sb, who| {
        let dir = workdir("helper-modes");
        let limited = with_cgroups(&sb, &dir);
        let mut bases = vec![("no limits", sb.clone())];
        if let Some((l, _)) = &limited {
            bases.push(("cgroups", l.clone().args(["--memory", "256M"])));
        }
        for (limits, base) in &bases {
            for net in ["none", "loopback", "allow=example.com", "host"] {
                let msb = base.clone().args(["--net", net]);
                for round in 0..4 {
                    let what = format!("{who} {limits} --net {net} (round {round})");
                    let pids = msb.attempt(&["pids"]);
                    let expected = if net == "host" { "1,2" } else { "1,3" };
                    assert_eq!(pids, expected, "{what}: the processes the command sees");
                    if net != "host" {
                        let reach = msb.attempt(&["reach-pid", "2"]);
                        assert!(
                            reach.starts_with("pidfd_open=ESRCH ")
                                && reach.contains(" kill=ESRCH ")
                                && reach.contains(" proc_fd=ENOENT ")
                                && reach.ends_with(" proc_environ=ENOENT"),
                            "{what}: PID 2 is there: {reach}"
                        );
                    }
                }
                if net == "host" {
                    continue;
                }
                // Ownership, from the host, while the command runs.
                let mut run = Reaped(
                    msb.command("run", &["sh", "-c", "echo ready; read x; exit 0"])
                        .stdin(Stdio::piped())
                        .stdout(Stdio::piped())
                        .spawn()
                        .unwrap(),
                );
                let mut line = String::new();
                BufReader::new(run.0.stdout.as_mut().unwrap())
                    .read_line(&mut line)
                    .unwrap();
                assert_eq!(line, "ready\n", "{who} {limits} --net {net}");
                let init = children_of(run.0.id());
                assert_eq!(init.len(), 1, "{who} {limits} --net {net}: {init:?}");
                let command = children_of(init[0]);
                assert_eq!(command.len(), 1, "{who} {limits} --net {net}: {command:?}");
                if let Err(e) = net_owned_by_own_userns(command[0]) {
                    panic!("{who} {limits} --net {net}: the command's network namespace: {e}");
                }
                drop(run.0.stdin.take());
                let status = wait_bounded(&mut run.0, &format!("{who} {limits} --net {net}"));
                assert!(status.success(), "{who} {limits} --net {net}: {status:?}");
            }
        }
        drop(limited);
    });
}

/// With the sandbox's own terminal (cw-exec started on one: the command gets a pty of its
/// own), the helper is gone before the command too: it sees init and itself only, and PID 2
/// cannot be reached. Each identity, looped.
#[test]
fn the_network_helper_is_gone_before_a_command_on_the_sandboxs_own_terminal() {
    use std::os::unix::fs::OpenOptionsExt;
    let violate = fixture().violate.to_str().unwrap().to_string();
    let bin = fixture().bin.to_str().unwrap().to_string();
    let script = format!("{violate} pids; {violate} reach-pid 2");
    as_each_identity(|sb, who| {
        for round in 0..5 {
            let what = format!("{who} (round {round})");
            let (master, slave_path) = open_pty();
            let slave = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NOCTTY)
                .open(&slave_path)
                .unwrap();
            let mut cmd = sb
                .clone()
                .args(["--read", &bin])
                .command("run", &["/bin/sh", "-c", &script]);
            cmd.stdin(slave.try_clone().unwrap())
                .stdout(slave.try_clone().unwrap())
                .stderr(slave.try_clone().unwrap());
            unsafe {
                cmd.pre_exec(|| {
                    libc::setsid();
                    if libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            let child = cmd.spawn();
            drop(cmd);
            drop(slave);
            let mut run = Reaped(child.unwrap());
            let screen = drained_within_limit(master, &what);
            let status = wait_bounded(&mut run.0, &what);
            let screen = String::from_utf8_lossy(&screen).replace('\r', "");
            assert!(status.success(), "{what}: {status:?} {screen}");
            let lines: Vec<&str> = screen.lines().filter(|l| !l.is_empty()).collect();
            // sh is PID 3, each violate a child of it.
            let pids: Vec<&str> = lines[0].split(',').collect();
            assert_eq!(&pids[..2], ["1", "3"], "{what}: {screen}");
            assert_eq!(pids.len(), 3, "{what}: {screen}");
            assert!(
                lines[1].starts_with("pidfd_open=ESRCH ") && lines[1].contains(" kill=ESRCH "),
                "{what}: PID 2 is there: {screen}"
            );
        }
    });
}

// ---------------------------------------------------------------------------------------
// An init that fails before the hand-over (supervise::abandon_after_init)
// ---------------------------------------------------------------------------------------

/// Init fails a step before cw-exec has handed it the cgroups — making itself not dumpable
/// in the Landlock tier (refused by the wrapper: `prctl(PR_SET_DUMPABLE)`, which cw-exec
/// itself does not call; until the eighth session this case refused
/// `prctl(PR_SET_CHILD_SUBREAPER)`, which cw-exec now makes first, as the run's subreaper:
/// tests/session8_attacks.rs covers that refusal), the network
/// namespace in the namespace tier (`unshare` refused) — so cw-exec's later write to it may
/// fail. Whichever comes first, the refusal names init's own step, exit 125, nothing
/// executed, and cw-exec returns (reading init's report to its end cannot wait on a holder
/// that outlives init: none of the run is left, the caller's descriptor 3 reads end of file
/// at once). Each identity, with the run's cgroups and without, looped.
#[test]
fn an_init_failing_before_the_hand_over_is_named_and_nothing_is_left_waiting() {
    let dir = workdir("init-fails");
    let marker = dir.join("ran");
    let touch = format!("touch {}", marker.display());
    let cases = [
        ("landlock", refusing(&["prctl=4"]), "init: not dumpable"),
        (
            "namespaces",
            refusing(&["unshare"]),
            "unshare(CLONE_NEWNET)",
        ),
    ];
    as_each_identity(|sb, who| {
        let cg_dir = workdir("init-fails-cg");
        // The refusing wrapper runs the delegating one: both exec what follows them.
        let limited = with_cgroups(&sb, &cg_dir);
        for (tier, wrapper, step) in &cases {
            let mut variants = vec![("no limits", sb.clone().wrapped(wrapper))];
            if let Some((l, _)) = &limited {
                let mut l = l.clone().args(["--memory", "256M"]);
                if let Some(inner) = l.wrapper.take() {
                    // refusing.sh delegated.sh cw-exec ...: a wrapper of two scripts.
                    let both = cg_dir.join(format!("both-{tier}.sh"));
                    std::fs::write(
                        &both,
                        format!(
                            "#!/bin/sh\nexec {} {} \"$@\"\n",
                            wrapper.display(),
                            inner.display()
                        ),
                    )
                    .unwrap();
                    std::fs::set_permissions(&both, std::fs::Permissions::from_mode(0o755))
                        .unwrap();
                    l = l.wrapped(&both);
                } else {
                    l = l.wrapped(wrapper);
                }
                variants.push(("cgroups", l));
            }
            for (variant, vsb) in &variants {
                for round in 0..6 {
                    let what = format!("{who} {tier} {variant} (round {round})");
                    let _ = std::fs::remove_file(&marker);
                    let mut cmd = vsb
                        .clone()
                        .args(["--tier", tier, "--write", dir.to_str().unwrap()])
                        .command("run", &["sh", "-c", &touch]);
                    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
                    let (extra, ours) = extra_descriptor(&mut cmd);
                    let child = cmd.spawn();
                    drop(ours);
                    let mut run = Reaped(child.unwrap());
                    let err_pipe = OwnedFd::from(run.0.stderr.take().unwrap());
                    let status = wait_bounded(&mut run.0, &what);
                    let err = String::from_utf8_lossy(&drained_within_limit(err_pipe, &what))
                        .into_owned();
                    assert_eq!(status.code(), Some(125), "{what}: {err}");
                    assert!(err.contains(step), "{what}: not init's step: {err}");
                    assert!(!marker.exists(), "{what}: the command ran");
                    assert!(
                        drained_now(&extra).is_ok(),
                        "{what}: cw-exec returned while a process of the run still holds the caller's descriptor 3: {:?}",
                        holders(&extra)
                    );
                }
            }
        }
        drop(limited);
    });
    assert_eq!(leftover_cgroups_after_sweeps(), Vec::<PathBuf>::new());
}

// ---------------------------------------------------------------------------------------
// cw-exec dying before init has armed its parent-death signal
// ---------------------------------------------------------------------------------------

/// The state field of /proc/PID/stat ('Z' a zombie), or None once the process is gone.
fn state_of(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')').next()?.trim_start().chars().next()
}

/// Waits until `pid` is gone or a zombie (fails after LIMIT).
fn ended_within_limit(pid: u32, what: &str) {
    let start = std::time::Instant::now();
    while let Some(state) = state_of(pid) {
        if state == 'Z' {
            return;
        }
        assert!(
            start.elapsed() < LIMIT,
            "{what}: init {pid} outlived cw-exec ({state}) by {LIMIT:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// cw-exec writes everything init waits for (the identity maps, the release, the cgroups'
/// hand-over) without waiting for init, and init arms its parent-death signal only when it
/// runs. A cw-exec SIGKILLed in between leaves an init that no signal will ever end: it
/// must see that and stop, never run the sandbox unsupervised (the command would run with
/// no timeout, no relay, nobody to report to) and never outlive cw-exec (after a run whose
/// cgroups it left, init waits for cw-exec's exit).
///
/// The attack widens the window as a busy host would: the caller runs cw-exec on one CPU
/// (init is queued behind it), and a concurrent process stops init the moment it exists,
/// waits until cw-exec sleeps in its relay (every write done), SIGKILLs cw-exec and lets init
/// go on. The command would leave a marker; init must be gone within the limit. Both tiers,
/// each identity, with the run's cgroups and without, looped.
#[test]
fn cw_exec_dying_before_init_arms_its_parent_death_signal_runs_nothing() {
    let mine = own_cpus();
    let dir = workdir("orphaned");
    let mut n = 0;
    as_each_identity(|sb, who| {
        let cg_dir = workdir("orphaned-cg");
        let limited = with_cgroups(&sb, &cg_dir);
        let mut variants = vec![("no limits", sb.clone())];
        if let Some((l, _)) = &limited {
            variants.push(("cgroups", l.clone().args(["--memory", "256M"])));
        }
        let mut stopped_in_time = 0;
        for (variant, base) in &variants {
            for tier in ["namespaces", "landlock"] {
                for round in 0..8 {
                    let what = format!("{who} {tier} {variant} (round {round})");
                    // One marker a round: a Landlock-tier command may outlive a SIGKILLed
                    // cw-exec that had started it (a named gap), and touch its own late.
                    n += 1;
                    let marker = dir.join(format!("ran-{n}"));
                    let touch = format!("touch {}", marker.display());
                    let mut cmd = base
                        .clone()
                        .args(["--tier", tier, "--write", dir.to_str().unwrap()])
                        .command("run", &["sh", "-c", &touch]);
                    on_cpus(&mut cmd, &mine[..1]);
                    let mut run = Reaped(
                        cmd.stdout(Stdio::null())
                            .stderr(Stdio::null())
                            .spawn()
                            .unwrap(),
                    );
                    let cw = run.0.id();
                    // Init, stopped the moment it exists.
                    let start = std::time::Instant::now();
                    let init = loop {
                        if let [init] = children_of(cw)[..] {
                            unsafe { libc::kill(init as i32, libc::SIGSTOP) };
                            break Some(init);
                        }
                        if run.0.try_wait().unwrap().is_some() {
                            break None;
                        }
                        assert!(start.elapsed() < LIMIT, "{what}: no init");
                    };
                    let Some(init) = init else {
                        // The whole run was over before this process was scheduled: no attack.
                        continue;
                    };
                    // cw-exec asleep in its relay (poll): every write to init is done.
                    loop {
                        let syscall = std::fs::read_to_string(format!("/proc/{cw}/syscall"))
                            .unwrap_or_default();
                        let nr = syscall.split_whitespace().next().unwrap_or("");
                        if nr == "7" || nr == "271" {
                            break;
                        }
                        if run.0.try_wait().unwrap().is_some() {
                            break;
                        }
                        assert!(start.elapsed() < LIMIT, "{what}: cw-exec never waited");
                        std::thread::sleep(Duration::from_micros(200));
                    }
                    // Whether init was stopped before it armed: it has not run far enough to
                    // change its process group (its first step) — a sign, not a proof.
                    let init_pgrp = std::fs::read_to_string(format!("/proc/{init}/stat"))
                        .ok()
                        .and_then(|s| {
                            s.rsplit(')')
                                .next()?
                                .split_whitespace()
                                .nth(2)?
                                .parse::<u32>()
                                .ok()
                        });
                    let before_first_step = init_pgrp.is_some() && init_pgrp != Some(init);
                    unsafe { libc::kill(cw as i32, libc::SIGKILL) };
                    let _ = run.0.wait();
                    unsafe { libc::kill(init as i32, libc::SIGCONT) };
                    ended_within_limit(init, &what);
                    // (Stopped later, init may have run the command while cw-exec lived.)
                    if before_first_step {
                        stopped_in_time += 1;
                        assert!(
                            !marker.exists(),
                            "{what}: the command ran after cw-exec was gone"
                        );
                    }
                }
            }
        }
        if stopped_in_time == 0 {
            skip(&format!(
                "{who}: init was never stopped before its first step (the attack did not land)"
            ));
        }
        // Runs SIGKILLed in the delegated cgroups leave their cgroups: later runs there
        // sweep them (one in eight, at random).
        if let Some((l, _)) = &limited {
            for _ in 0..200 {
                if !has_dead_run_cgroups(&cg_dir) {
                    break;
                }
                let _ = l.clone().args(["--memory", "256M"]).run(&["true"]);
            }
        }
        drop(limited);
    });
    assert_eq!(leftover_cgroups_after_sweeps(), Vec::<PathBuf>::new());
}

/// Whether any run cgroup whose cw-exec is dead is left in the cgroups `with_cgroups`
/// delegated under `dir`'s name.
fn has_dead_run_cgroups(dir: &Path) -> bool {
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    leftover_cgroups().iter().any(|d| {
        d.parent()
            .is_some_and(|p| p.to_string_lossy().ends_with(&name))
    })
}

// ---------------------------------------------------------------------------------------
// A timeout reaching the Landlock tier's init
// ---------------------------------------------------------------------------------------

/// A timeout ends the run through init, which reports how the command ended, in both tiers:
/// the namespace tier's init signals the whole namespace (SIGTERM), the Landlock tier's kills
/// and reaps every process of the run (SIGKILL). The Landlock tier's init used to reap the
/// command's process in that sweep and then wait for a SIGCHLD that could not come any more,
/// until cw-exec SIGKILLed it a grace period later: no report, the command's end unknown
/// (`signal` null), its cgroups not left. Each identity, with the run's cgroups and without.
#[test]
fn a_timeout_is_reported_by_init_with_the_commands_end_in_both_tiers() {
    as_each_identity(|sb, who| {
        let dir = workdir("timeout");
        let limited = with_cgroups(&sb, &dir);
        let mut variants = vec![("no limits", sb.clone())];
        if let Some((l, _)) = &limited {
            variants.push(("cgroups", l.clone().args(["--memory", "256M"])));
        }
        for (variant, base) in &variants {
            for (tier, signal) in [("namespaces", libc::SIGTERM), ("landlock", libc::SIGKILL)] {
                for round in 0..3 {
                    let what = format!("{who} {tier} {variant} (round {round})");
                    let env = dir.join(format!("e-{tier}-{round}-{}.json", variant.len()));
                    let out = base
                        .clone()
                        .args(["--tier", tier, "--timeout", "0.3"])
                        .args(["--envelope", env.to_str().unwrap()])
                        .run(&["sh", "-c", "sleep 600"]);
                    assert_eq!(out.status.code(), Some(124), "{what}: {}", stderr(&out));
                    let e = envelope(&env);
                    let meta = &e["provenance"]["handle"]["metadata"];
                    assert_eq!(meta["timedOut"], true, "{what}");
                    assert_eq!(
                        meta["signal"], signal,
                        "{what}: the command's end, as init reported it (exit {}, child {})",
                        meta["exitCode"], meta["childExitCode"]
                    );
                }
            }
        }
        drop(limited);
    });
    assert_eq!(leftover_cgroups_after_sweeps(), Vec::<PathBuf>::new());
}
