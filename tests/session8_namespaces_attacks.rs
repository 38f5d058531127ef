//! Attacks on the end of a run in the namespaces tier (the default): init is PID 1 of the
//! run's PID namespace, its parent-death signal SIGKILL; at the command's end it reaps until
//! ECHILD and kills the rest (kill(-1, SIGKILL)) only if a child is left; then reports; with
//! cgroups it leaves them and lingers until cw-exec exits.
//!
//! The attacks are one static C program (SOURCE, compiled here with gcc), run in the sandbox
//! with a tripwire (a FIFO) as its descriptor 3: every process it leaves behind holds it, and
//! writes "late" on it 3 s after it was made.
//!
//! What these tests check (all passed when written): a SIGKILL of cw-exec at many moments
//! (as init appears, as the command's process appears, 0.5-16 ms into the set-up, while the
//! command runs with daemons, 0-4 ms around the command's end, during a `--timeout 0.05`
//! grace) leaves, 2 s later, no process of the run holding the tripwire, no `cw-exec-init`
//! running, and (root) the run's cgroups empty; a command that exits at once (while init is
//! still in its own set-up's aftermath) or SIGKILLs itself leaves nothing at cw-exec's
//! return; `--timeout` ends a command ignoring SIGTERM whose children ignore or block it;
//! forks in flight (threads forking, a large address space so that each fork takes long)
//! when the command's process exits leave nothing at the return; init (lingering, with
//! root's cgroups) is gone within 1 s of a normal return. No survivor and no lingering init
//! was found. (In the sandbox userfaultfd, io_uring_setup and ptrace are refused and there
//! is no /dev/fuse: no uninterruptible waits to hold a process past its SIGKILL.)

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::attack::{self, comm, holders_of, running, Moment, Wire};
use common::*;

const SOURCE: &str = r##"/* Attacks on the end of a namespaces-tier run (tests/session8_namespaces_attacks.rs).
   Run as `atk10 MODE [ARGS]` with the tripwire open as descriptor 3. */

/* ---- daemons K MS: K daemons, a line of 3 and a CLONE_PARENT sibling, "started", then the
   command's process ends MS ms later (lingers, with MS < 0). */
static int daemons(int k, int ms) {
  for (int i = 0; i < k; i++) daemonize();
  if (fork() == 0) { if (fork() == 0) { if (fork() == 0) linger(); linger(); } linger(); }
  if (rawclone(CLONE_PARENT | SIGCHLD) == 0) linger();
  started();
  if (ms < 0) linger();
  msleep(ms);
  return 0;
}


/* ---- selfkill K: K daemons and a CLONE_PARENT sibling, then the command's process
   SIGKILLs itself (its pid, then with MODE 1 its whole group first). */
static int selfkill(int k, int group) {
  for (int i = 0; i < k; i++) daemonize();
  if (rawclone(CLONE_PARENT | SIGCHLD) == 0) linger();
  if (fork() == 0) linger(); /* same process group as the command */
  started();
  if (group) kill(0, SIGKILL);
  kill(getpid(), SIGKILL);
  return 0;
}

/* ---- noterm K: SIGTERM ignored by the command and by K daemons and a child (the child
   ignores it with a handler-less block too), then the command lingers. */
static int noterm(int k) {
  signal(SIGTERM, SIG_IGN);
  for (int i = 0; i < k; i++) daemonize();
  if (fork() == 0) { sigset_t s; sigemptyset(&s); sigaddset(&s, SIGTERM);
    sigprocmask(SIG_BLOCK, &s, 0); linger(); }
  if (rawclone(CLONE_PARENT | SIGCHLD) == 0) linger();
  started();
  linger();
  return 0;
}

/* ---- inflight THREADS MB MS: the command's process touches MB MiB (so each fork copies
   page tables for a while: a long fork in flight), THREADS threads fork lingering children
   (each double-forks a daemon) without pause; children of the command do the same (so
   forks are in flight in processes reparented to init as well); the command's process
   exits (exit_group) MS ms after "started", while forks are in flight. */
static void *t_inflight(void *a) {
  for (;;) {
    pid_t p = fork();
    if (p == 0) { if (fork() == 0) linger(); linger(); }
  }
  return 0;
}
static int inflight(int threads, int mb, int ms) {
  char *m = malloc((size_t)mb << 20);
  if (m) memset(m, 1, (size_t)mb << 20);
  for (int i = 0; i < 2; i++) {
    if (fork() == 0) {
      pthread_t t;
      pthread_create(&t, 0, t_inflight, 0);
      t_inflight(0);
    }
  }
  pthread_t t;
  for (int i = 0; i < threads; i++) pthread_create(&t, 0, t_inflight, 0);
  started();
  msleep(ms);
  exit(0);
}

/* ---- plain MS: "started", then the command's process (alone) exits MS ms later. */

/* ---- quick K: K daemons, then exits at once (no "started" wait). */
static int quick(int k) {
  for (int i = 0; i < k; i++) daemonize();
  if (rawclone(CLONE_PARENT | SIGCHLD) == 0) linger();
  return 0;
}

int main(int argc, char **argv) {
  const char *m = argc > 1 ? argv[1] : "";
  int a = argc > 2 ? atoi(argv[2]) : 0, b = argc > 3 ? atoi(argv[3]) : 0;
  int c = argc > 4 ? atoi(argv[4]) : 0;
  setvbuf(stdout, 0, _IONBF, 0);
  if (!strcmp(m, "daemons")) return daemons(a, b);
  if (!strcmp(m, "selfkill")) return selfkill(a, b);
  if (!strcmp(m, "noterm")) return noterm(a);
  if (!strcmp(m, "inflight")) return inflight(a, b, c);
  if (!strcmp(m, "quick")) return quick(a);
  if (!strcmp(m, "plain")) { started(); msleep(a); return 0; }
  fprintf(stderr, "atk10: unknown mode %s\n", m);
  return 2;
}
"##;

/// The attack program, compiled once; None (the caller skips) without gcc.
fn attack_program() -> Option<&'static Path> {
    static BUILT: OnceLock<Option<PathBuf>> = OnceLock::new();
    BUILT
        .get_or_init(|| attack::compile_static("atk10", &[attack::C_PRELUDE, SOURCE].concat()))
        .as_deref()
}

fn program_or_skip() -> Option<&'static Path> {
    attack::program_or_skip(attack_program())
}

/// The script's placeholders: `ATK` the attack program, `WIRE` the tripwire.
fn script_for(script: &str, wire: &Wire) -> String {
    attack::fill(script, attack_program().unwrap(), wire)
}

/// The sandbox of an attack: namespaces tier, the program's directory readable, the wire's
/// directory writable, and `extra`.
fn namespaces(sb: &Sandbox, wire_dir: &Path, extra: &[&str]) -> Sandbox {
    attack::sandbox(sb, attack_program().unwrap(), "namespaces", wire_dir, extra)
}

/// One run of `script` (sh) to its end: cw-exec's output, its duration, and whether a
/// process of the run held the tripwire the moment cw-exec returned.
fn run_attack(
    sb: &Sandbox,
    extra: &[&str],
    script: &str,
) -> (Output, Duration, Result<(), String>) {
    let atk = attack_program().unwrap();
    attack::run(
        sb,
        atk,
        "namespaces",
        extra,
        script,
        Duration::from_secs(10),
    )
}

/// SIGKILL of cw-exec at many moments, each identity (root: with its default cgroups; the
/// test user: without), each moment twice: as init appears, as the command's process
/// appears, 0.5-16 ms after cw-exec's start (init appears 3-12 ms in, with the debug
/// build), 0.2-6 ms after init was first seen (its set-up, before the command), while the
/// command runs with daemons, a line and a CLONE_PARENT sibling (0 and 20 ms after
/// "started"), 0-4 ms after "started" of a command with those that ends 2 ms after it (init
/// reaping and killing at the end, reporting, or lingering; past 3 ms cw-exec has usually
/// returned), 0-3 ms after "started" of a command alone that ends 2 ms after it (init's
/// kill skipped), and 45-80 ms after the start with `--timeout 0.05` of a command ignoring
/// SIGTERM (the TERMINATE_TREE and the start of its 2 s grace); and once 2040 and 2060 ms
/// after (around the grace's end, when cw-exec SIGKILLs init). 2 s after each SIGKILL: no
/// process of the run holds the tripwire, no cw-exec-init runs, and no process is left in
/// the run's cgroups; at the end (root) a later run sweeps every cgroup the SIGKILLed runs
/// left (none kept a process).
#[test]
fn namespaces_sigkill_of_cw_exec_at_any_moment_leaves_nothing_running() {
    if program_or_skip().is_none() {
        return;
    }
    let mut moments: Vec<(&[&str], Moment, &str)> = vec![];
    for _ in 0..2 {
        moments.push((&[], Moment::InitExists, "daemons 4 -1"));
        moments.push((&[], Moment::CommandExists, "daemons 4 -1"));
        moments.push((&[], Moment::CommandExists, "quick 4"));
        for us in [500, 1000, 2000, 3000, 4000, 6000, 8000, 12000, 16000] {
            moments.push((
                &[],
                Moment::After(Duration::from_micros(us)),
                "daemons 4 -1",
            ));
        }
        for us in [200, 500, 1000, 1500, 2000, 3000, 4000, 6000] {
            let d = Duration::from_micros(us);
            moments.push((&[], Moment::AfterInit(d), "daemons 4 -1"));
        }
        moments.push((&[], Moment::AfterStarted(Duration::ZERO), "daemons 4 -1"));
        moments.push((
            &[],
            Moment::AfterStarted(Duration::from_millis(20)),
            "daemons 4 -1",
        ));
        for us in [0, 500, 1000, 1500, 2000, 2500, 3000, 4000] {
            moments.push((
                &[],
                Moment::AfterStarted(Duration::from_micros(us)),
                "daemons 4 2",
            ));
        }
        for us in [0, 1000, 2000, 3000] {
            moments.push((
                &[],
                Moment::AfterStarted(Duration::from_micros(us)),
                "plain 2",
            ));
        }
        for ms in [45, 50, 55, 60, 70, 80] {
            let d = Duration::from_millis(ms);
            moments.push((&["--timeout", "0.05"], Moment::After(d), "noterm 3"));
        }
    }
    // Late in the grace (2 s): as cw-exec SIGKILLs init past it.
    for ms in [2040, 2060] {
        moments.push((
            &["--timeout", "0.05"],
            Moment::After(Duration::from_millis(ms)),
            "noterm 3",
        ));
    }
    as_each_identity(|sb, who| {
        for (extra, moment, mode) in &moments {
            if let Err(why) = attack::sigkill_round(
                &sb,
                attack_program().unwrap(),
                "namespaces",
                extra,
                *moment,
                mode,
            ) {
                panic!("{who}, {extra:?}, {mode}, SIGKILL {moment:?}: {why}");
            }
        }
    });
    // Empty cgroups of the SIGKILLed runs: a later run sweeps them (a non-empty one would
    // stay).
    if is_root() {
        assert_eq!(leftover_cgroups_after_sweeps(), Vec::<PathBuf>::new());
    }
}

/// Init does not outlive a cw-exec that returns normally: the command (daemons, a line, a
/// CLONE_PARENT sibling) ends 5 ms after "started", or SIGKILLs its group and itself; init (root: it left the run's cgroups and lingers until cw-exec's
/// exit) is gone or a zombie within 1 s of cw-exec's exit. Each identity, 4 rounds each.
#[test]
fn namespaces_init_does_not_outlive_a_normal_return() {
    if program_or_skip().is_none() {
        return;
    }
    as_each_identity(|sb, who| {
        for round in 0..4 {
            for (extra, mode) in [
                (&["--timeout", "20"][..], "daemons 4 5"),
                (&["--timeout", "20"][..], "selfkill 4 1"),
            ] {
                let dir = workdir("normal10");
                let mut wire = Wire::new(&dir);
                let script =
                    script_for(&format!("exec 3>WIRE; echo up >&3; exec ATK {mode}"), &wire);
                let mut cmd =
                    namespaces(&sb, &dir, extra).command("run", &["/bin/sh", "-c", &script]);
                let mut run = Reaped(
                    cmd.stdout(Stdio::piped())
                        .stderr(Stdio::null())
                        .spawn()
                        .unwrap(),
                );
                let cw = run.0.id();
                let mut line = String::new();
                let _ = BufReader::new(run.0.stdout.as_mut().unwrap()).read_line(&mut line);
                let kids = children_of(cw);
                let status = run.0.wait().unwrap();
                let mut text = String::new();
                let case = format!("{who}, {mode}, round {round}, {status:?}");
                assert!(
                    wire.now(&mut text).is_ok(),
                    "{case}: tripwire held at the return: {:?}",
                    holders_of(&wire.path)
                );
                assert_eq!(text, "up\n", "{case}");
                let end = Instant::now() + Duration::from_secs(1);
                loop {
                    let alive: Vec<u32> = kids
                        .iter()
                        .copied()
                        .filter(|i| running(*i) && comm(*i) == "cw-exec-init")
                        .collect();
                    if alive.is_empty() {
                        break;
                    }
                    assert!(
                        Instant::now() < end,
                        "{case}: init {alive:?} still running 1 s after cw-exec's exit"
                    );
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    });
}

/// The command's process ends at once (while init still closes its ruleset copy and drops
/// its capabilities: its SIGCHLD is pending before init's loop), leaving daemons and a
/// CLONE_PARENT sibling; or it SIGKILLs itself (its pid; or its group, then itself) after
/// making them. Each identity, 3 rounds: nothing holds the tripwire at cw-exec's return, and
/// the self-kill is reported as signal 9 (exit 137).
#[test]
fn namespaces_quick_exit_and_self_sigkill_leave_nothing() {
    if program_or_skip().is_none() {
        return;
    }
    as_each_identity(|sb, who| {
        for round in 0..3 {
            for (mode, code) in [("quick 4", 0), ("selfkill 4 0", 137), ("selfkill 4 1", 137)] {
                let (out, took, verdict) = run_attack(
                    &sb,
                    &["--timeout", "20"],
                    &format!("exec 3>WIRE; echo up >&3; exec ATK {mode}"),
                );
                let case = format!("{who}, {mode}, round {round}");
                assert_eq!(out.status.code(), Some(code), "{case}: {}", stderr(&out));
                assert_eq!(verdict, Ok(()), "{case} (after {took:?}): {}", stderr(&out));
            }
        }
    });
}

/// `--timeout 0.1` on a command that ignores SIGTERM, with daemons that ignore it too, a
/// child that blocks it and a CLONE_PARENT sibling: exit 124 past the grace, nothing holds
/// the tripwire at the return (the 2 s grace passes: cw-exec SIGKILLs init, PID 1 of the
/// namespace). Each identity, once.
#[test]
fn namespaces_timeout_ends_a_run_ignoring_sigterm() {
    if program_or_skip().is_none() {
        return;
    }
    as_each_identity(|sb, who| {
        for round in 0..1 {
            let (out, took, verdict) = run_attack(
                &sb,
                &["--timeout", "0.1"],
                "exec 3>WIRE; echo up >&3; exec ATK noterm 4",
            );
            let case = format!("{who}, round {round}");
            assert_eq!(out.status.code(), Some(124), "{case}: {}", stderr(&out));
            assert!(took < Duration::from_secs(8), "{case}: took {took:?}");
            assert_eq!(verdict, Ok(()), "{case} (after {took:?}): {}", stderr(&out));
        }
    });
}

/// Forks in flight when the command's process exits: it touches 32 MiB (each fork copies
/// its page tables: a long fork), 4 of its threads and 2 children (each with 2 forking
/// threads) fork lingering processes without pause, and it exits 1, 3 or 10 ms after
/// "started" (`--pids 2000`: the profile's 256 would refuse most forks at once). Each
/// identity: nothing holds the tripwire at cw-exec's return (a fork that
/// completes is a child of a process init still has to kill; one that does not fails).
#[test]
fn namespaces_forks_in_flight_at_the_command_s_end_do_not_outlive_the_return() {
    if program_or_skip().is_none() {
        return;
    }
    as_each_identity(|sb, who| {
        for ms in [1, 3, 10] {
            let (out, took, verdict) = run_attack(
                &sb,
                &["--timeout", "20", "--pids", "2000"],
                &format!("exec 3>WIRE; echo up >&3; exec ATK inflight 4 32 {ms}"),
            );
            let case = format!("{who}, exit after {ms} ms");
            assert_eq!(stdout(&out).trim(), "started", "{case}: {}", stderr(&out));
            assert_eq!(verdict, Ok(()), "{case} (after {took:?}): {}", stderr(&out));
        }
    });
}
