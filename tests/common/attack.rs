//! What the attack tests share (tests/session8_*attacks.rs): an attack program compiled from
//! C, a tripwire FIFO every process of a run holds as its descriptor 3, and ways to look at
//! the host's processes. Each attack file keeps its own C source and its own runs.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{skip, workdir, Reaped};

/// What the attack programs' C sources start with (each source follows it): the headers, and
/// the processes a run may leave behind. `linger` holds the tripwire (descriptor 3) only, and
/// writes "late" on it if still alive `linger_ms` after it was made; `daemonize` leaves one
/// behind through a double fork and a new session, and returns in the caller.
pub const C_PRELUDE: &str = r##"#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

static long linger_ms = 3000;
static void msleep(long ms) {
  struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&t, &t) && errno == EINTR) {}
}
static void started(void) { (void)!write(1, "started\n", 8); }
/* A process left behind: holds the tripwire only, and says "late" if still alive later. */
static void linger(void) {
  close(0); close(1); close(2);
  msleep(linger_ms);
  (void)!write(3, "late\n", 5);
  _exit(0);
}
/* A daemon: double fork, new session, lingers. Returns in the caller. */
static void daemonize(void) {
  pid_t p = fork();
  if (p == 0) {
    setsid();
    if (fork() == 0) linger();
    _exit(0);
  }
  if (p > 0) waitpid(p, 0, 0);
}
static long rawclone(unsigned long flags) { return syscall(SYS_clone, flags, 0, 0, 0, 0); }
"##;

/// `source` compiled static (it runs in any mount view) as `name` into a world-readable work
/// directory the sandbox can be granted; None without a working `gcc -static`. gcc writes the
/// executable in its own processes: no descriptor of this (multi-threaded) test process holds
/// it open for writing (ETXTBSY).
pub fn compile_static(name: &str, source: &str) -> Option<PathBuf> {
    let dir = workdir(name);
    let c = dir.join(format!("{name}.c"));
    std::fs::write(&c, source).unwrap();
    let exe = dir.join(name);
    let status = std::process::Command::new("gcc")
        .args(["-static", "-O1", "-pthread", "-o"])
        .arg(&exe)
        .arg(&c)
        .status()
        .ok()?;
    (status.success() && exe.exists()).then_some(exe)
}

/// `program`, or None after recording the skip.
pub fn program_or_skip(program: Option<&'static Path>) -> Option<&'static Path> {
    if program.is_none() {
        skip("no working `gcc -static` on this machine to build the attack program");
    }
    program
}

/// `script` with its placeholders filled: `ATK` the attack program, `WIRE` the tripwire.
pub fn fill(script: &str, program: &Path, wire: &Wire) -> String {
    script
        .replace("ATK", program.to_str().unwrap())
        .replace("WIRE", wire.path.to_str().unwrap())
}

/// A FIFO every process of the run holds as its descriptor 3. Unlike `common::Tripwire`, it
/// can say whether it is held at one moment and then still wait for its last holder (which
/// bounds a failing test's survivors and shows what they wrote after cw-exec returned).
pub struct Wire {
    pub path: PathBuf,
    reader: std::fs::File,
}

impl Wire {
    pub fn new(dir: &Path) -> Wire {
        let (path, reader) = super::fifo_for_everyone(dir);
        Wire { path, reader }
    }

    /// Reads what is there into `text`, without waiting: Ok once no writer holds the FIFO
    /// any more (end of file), Err if one still does.
    pub fn now(&mut self, text: &mut String) -> Result<(), ()> {
        let mut buf = [0u8; 4096];
        loop {
            match self.reader.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => text.push_str(&String::from_utf8_lossy(&buf[..n])),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Err(()),
                Err(e) => panic!("reading {}: {e}", self.path.display()),
            }
        }
    }

    /// Waits (polling, at most `limit`) until no writer is left; everything read meanwhile
    /// goes to `text`. Whether the last writer went.
    pub fn gone_within(&mut self, text: &mut String, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        loop {
            if self.now(text).is_ok() {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The moment cw-exec returned (after `took`): Ok if the tripwire had been closed by
    /// every process of the run, carrying only "up\n"; else what it carried then, who held
    /// it, and, after waiting for them (at most `wait`), what they wrote after the return.
    pub fn verdict_at_return(&mut self, took: Duration, wait: Duration) -> Result<(), String> {
        let mut text = String::new();
        match self.now(&mut text) {
            Ok(()) if text == "up\n" => Ok(()),
            Ok(()) => Err(format!(
                "the tripwire carried {text:?} (a process wrote to it late)"
            )),
            Err(()) => {
                let holders = holders_of(&self.path);
                let mut after = String::new();
                let gone = self.gone_within(&mut after, wait);
                Err(format!(
                    "the tripwire was still open when cw-exec returned (after {took:?}), held \
                     by (pid, parent, state, comm) {holders:?}; it had carried {text:?}; \
                     written after the return: {after:?}; {}",
                    if gone {
                        "it was closed later"
                    } else {
                        "still open after the wait"
                    }
                ))
            }
        }
    }
}

/// Whether `pid` still runs (exists and is not a zombie; a zombie reparented to the host's
/// PID 1 is reaped lazily on some hosts, and runs nothing).
pub fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(s) => {
            let state = s.rsplit(')').next().unwrap_or("").trim_start();
            !(state.starts_with('Z') || state.starts_with('X'))
        }
    }
}

/// The command name of `pid`.
pub fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Processes (pid, parent, state, comm) other than this one holding `path` open as their
/// descriptor 3 (the tripwire).
pub fn holders_of(path: &Path) -> Vec<(u32, u32, char, String)> {
    let mut out = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        if std::fs::read_link(e.path().join("fd/3")).ok().as_deref() != Some(path) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let mut rest = stat.rsplit(')').next().unwrap_or("").split_whitespace();
        let state = rest.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let ppid = rest.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        out.push((pid, ppid, state, comm(pid)));
    }
    out
}

/// The sandbox of an attack: `tier`, the program's directory readable, the wire's directory
/// writable, and `extra`.
pub fn sandbox(
    sb: &super::Sandbox,
    program: &Path,
    tier: &str,
    wire_dir: &Path,
    extra: &[&str],
) -> super::Sandbox {
    sb.clone()
        .args(["--tier", tier])
        .args(["--read", program.parent().unwrap().to_str().unwrap()])
        .args(["--write", wire_dir.to_str().unwrap()])
        .args(extra)
}

/// One run of `script` (sh; `ATK` the program, `WIRE` a fresh tripwire) in `tier` with
/// `extra`, to its end: cw-exec's output, its duration, and whether a process of the run held
/// the tripwire the moment cw-exec returned (`Wire::verdict_at_return`, waiting at most
/// `wait` for the holders).
pub fn run(
    sb: &super::Sandbox,
    program: &Path,
    tier: &str,
    extra: &[&str],
    script: &str,
    wait: Duration,
) -> (std::process::Output, Duration, Result<(), String>) {
    let dir = workdir("wire");
    let mut wire = Wire::new(&dir);
    let script = fill(script, program, &wire);
    let t = Instant::now();
    let out = sandbox(sb, program, tier, &dir, extra).run(&["/bin/sh", "-c", &script]);
    let took = t.elapsed();
    let verdict = wire.verdict_at_return(took, wait);
    (out, took, verdict)
}

/// Non-zombie processes named `cw-exec-init` whose parent is `parent`.
pub fn running_inits_under(parent: u32) -> Vec<u32> {
    let mut out = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let mut rest = stat.rsplit(')').next().unwrap_or("").split_whitespace();
        let state = rest.next().unwrap_or("");
        let ppid: u32 = rest.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        if ppid == parent && comm(pid) == "cw-exec-init" && !state.starts_with('Z') {
            out.push(pid);
        }
    }
    out
}

/// Processes in the run cgroups of cw-exec `cw` (every hierarchy, every sub-cgroup).
pub fn processes_in_run_cgroups(cw: u32) -> Vec<(PathBuf, String)> {
    let mut out = vec![];
    let mut stack = super::run_cgroups_of(cw);
    while let Some(dir) = stack.pop() {
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        if !procs.trim().is_empty() {
            out.push((dir.clone(), procs.trim().replace('\n', " ")));
        }
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    stack.push(e.path());
                }
            }
        }
    }
    out
}

#[derive(Clone, Copy, Debug)]
pub enum Moment {
    /// As soon as cw-exec has a child (init, in its set-up).
    InitExists,
    /// A fixed time after cw-exec's child (init) was first seen: init's set-up.
    AfterInit(Duration),
    /// As soon as init has a child (the command's process).
    CommandExists,
    /// A fixed time after cw-exec was started.
    After(Duration),
    /// A fixed time after the command said "started".
    AfterStarted(Duration),
}

/// One run in `tier` SIGKILLed at `moment`: `mode` (the attack program's arguments) says
/// "started" after making its processes. Err says what outlived cw-exec 2 s after its death: a process holding the
/// tripwire, a `cw-exec-init` still running, or (cgroups) a process still in the run's
/// cgroups.
pub fn sigkill_round(
    sb: &super::Sandbox,
    program: &Path,
    tier: &str,
    extra: &[&str],
    moment: Moment,
    mode: &str,
) -> Result<(), String> {
    let dir = workdir("sigkill");
    let mut wire = Wire::new(&dir);
    let script = fill(
        &format!("exec 3>WIRE; echo up >&3; exec ATK {mode}"),
        program,
        &wire,
    );
    let mut cmd =
        sandbox(sb, program, tier, &dir, extra).command("run", &["/bin/sh", "-c", &script]);
    let spawned = Instant::now();
    let mut run = Reaped(
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let cw = run.0.id();
    let limit = Duration::from_secs(10);
    let mut kids: Vec<u32> = vec![];
    let note = |kids: &mut Vec<u32>| {
        for k in super::children_of(cw) {
            if !kids.contains(&k) {
                kids.push(k);
            }
        }
    };
    let mut reaped = false;
    match moment {
        Moment::InitExists | Moment::CommandExists => loop {
            note(&mut kids);
            if let Some(i) = kids.first() {
                if matches!(moment, Moment::InitExists) || !super::children_of(*i).is_empty() {
                    break;
                }
            }
            if run.0.try_wait().unwrap().is_some() {
                reaped = true;
                break;
            }
            if spawned.elapsed() > limit {
                break;
            }
        },
        Moment::After(d) => {
            while spawned.elapsed() < d {
                note(&mut kids);
            }
        }
        Moment::AfterInit(d) => {
            while kids.is_empty() && spawned.elapsed() < limit {
                note(&mut kids);
                if run.0.try_wait().unwrap().is_some() {
                    reaped = true;
                    break;
                }
            }
            let seen = Instant::now();
            while seen.elapsed() < d {
                note(&mut kids);
            }
        }
        Moment::AfterStarted(d) => {
            let mut line = String::new();
            let _ = std::io::BufRead::read_line(
                &mut std::io::BufReader::new(run.0.stdout.as_mut().unwrap()),
                &mut line,
            );
            note(&mut kids);
            std::thread::sleep(d);
        }
    }
    if !reaped {
        unsafe { libc::kill(cw as i32, libc::SIGKILL) };
    }
    let _ = run.0.wait();
    let killed = Instant::now();
    let within = Duration::from_secs(2);
    // No cw-exec-init of this run running (its children, seen, or any reparented init).
    loop {
        let alive: Vec<u32> = kids
            .iter()
            .copied()
            .filter(|i| running(*i) && comm(*i) == "cw-exec-init")
            .chain(running_inits_under(cw))
            .collect();
        if alive.is_empty() {
            break;
        }
        if killed.elapsed() > within {
            return Err(format!(
                "init {alive:?} still running 2 s after cw-exec's SIGKILL"
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(50));
    let mut text = String::new();
    let left = within.saturating_sub(killed.elapsed());
    if !wire.gone_within(&mut text, left) {
        let holders = holders_of(&wire.path);
        let mut after = String::new();
        let gone = wire.gone_within(&mut after, Duration::from_secs(10));
        return Err(format!(
            "the tripwire was still held 2 s after cw-exec's SIGKILL by (pid, parent, state, \
             comm) {holders:?} (it carried {text:?}; then {after:?}; {})",
            if gone {
                "closed later"
            } else {
                "still open 10 s later"
            }
        ));
    }
    if text.contains("late") {
        return Err(format!("the tripwire carried {text:?}"));
    }
    let inside = processes_in_run_cgroups(cw);
    if !inside.is_empty() {
        return Err(format!("processes still in the run's cgroups: {inside:?}"));
    }
    Ok(())
}
