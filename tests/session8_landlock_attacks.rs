//! Attacks on the end of a run in the Landlock tier (no PID namespace): init, a child
//! subreaper, kills the run with `containment::kill_descendants` at the command's end; cw-exec
//! is itself the run's subreaper and kills what a dead init leaves behind; init's parent-death
//! signal is SIGKILL during the set-up, TERMINATE_TREE (kill and reap the whole run) from the
//! command's start, SIGKILL again once the run has ended. The guarantees attacked
//! (docs/containment.md "Process tree", docs/threat-model.md "The landlock tier"): no process
//! of the run outlives cw-exec's return; none outlives a SIGKILLed cw-exec beyond a short
//! moment; no init lingers once its cw-exec is gone.
//!
//! The attacks are one static C program (SOURCE, compiled here with gcc), run in the sandbox
//! with a tripwire (a FIFO) as its descriptor 3: every process it leaves behind holds it, and
//! writes "late" on it 3 s after it was made.
//!
//! What holds (passing tests): a sandbox cannot signal init or cw-exec (kill, its process
//! group, kill(-1), or SIGIO/F_SETSIG through a descriptor it owns: Landlock's signal scope);
//! a SIGKILL of cw-exec at any moment (as init appears, as the command's process appears, at
//! fixed delays through the set-up, while the command runs, while init kills the run at its
//! end or past a `--timeout`) leaves no process of the run and no init running 2 s later
//! (78 SIGKILLs per identity); forks from many threads (daemons and CLONE_PARENT siblings)
//! and from many children racing the command's end, a SIGCHLD-ignoring parent with a thousand
//! children and a churn of short-lived ones, stopped processes (in a stopped group, stopped
//! in vfork, orphaned stopped), and processes that escape a kill pass (reparented to a
//! subreaper the walk had already read) are all gone at the return; so is a storm still
//! forking at a `--timeout`.
//!
//! What did not, before its fix (root: it needs `--cpu`, hence the run's cgroups): a SIGKILL
//! of cw-exec just after it had SIGKILLed init past `--cpu` left the run alive
//! (`cw_exec_sigkilled_as_init_s_orphans_reach_it_past_the_cpu_limit_leaves_nothing`). Past
//! the limit cw-exec now sends init TERMINATE_TREE, as past a timeout.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::attack::{self, holders_of, Moment, Wire};
use common::*;

/// The attack program (modes named in `main`).
const SOURCE: &str = r##"/* Attacks on the end of a Landlock-tier run (tests/session8_landlock_attacks.rs). Run as
   `atk9 MODE [ARGS]` with the tripwire open as descriptor 3: every process this leaves
   behind holds it, and one still alive linger_ms (3 s, unless its mode says otherwise) after
   it was made writes "late" on it. */

/* ---- signals: what a process of the run may send to init (its parent) and cw-exec. */
static int ppid_of(int pid) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  int fd = open(path, O_RDONLY);
  if (fd < 0) return -1;
  int n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = 0;
  char *p = strrchr(buf, ')');
  int ppid = -1;
  char st;
  if (p && sscanf(p + 2, "%c %d", &st, &ppid) == 2) return ppid;
  return -1;
}
static char state_of(int pid) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  int fd = open(path, O_RDONLY);
  if (fd < 0) return '?';
  int n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return '?';
  buf[n] = 0;
  char *p = strrchr(buf, ')');
  return p ? p[2] : '?';
}
static void try_kill(const char *who, int pid, int sig) {
  int r = kill(pid, sig);
  printf("kill %s %d: %s\n", who, sig, r == 0 ? "sent" : strerror(errno));
}
/* SIGIO/SIGURG with F_SETSIG: the kernel sends the signal to the descriptor's owner. */
static void try_sigio(const char *who, int type, int id, int sig) {
  int p[2];
  if (pipe(p)) return;
  struct f_owner_ex o = {type, id};
  int r1 = fcntl(p[0], F_SETOWN_EX, &o);
  int r2 = fcntl(p[0], F_SETSIG, sig);
  int r3 = fcntl(p[0], F_SETFL, fcntl(p[0], F_GETFL) | O_ASYNC);
  (void)!write(p[1], "x", 1);
  printf("sigio %s %d: setown %d setsig %d async %d\n", who, sig, r1, r2, r3);
  close(p[0]); close(p[1]);
}
static int signals(void) {
  int init = getppid(), cw = ppid_of(init), pgrp = getpgid(init);
  int sigs[] = {SIGSTOP, SIGTSTP, SIGUSR1, SIGTERM, SIGKILL, 0};
  for (int i = 0; i < 6; i++) {
    try_kill("init", init, sigs[i]);
    try_kill("cw-exec", cw, sigs[i]);
  }
  try_kill("init-group", -pgrp, SIGSTOP);
  try_kill("all", -1, SIGSTOP);
  try_sigio("init", F_OWNER_PID, init, SIGSTOP);
  try_sigio("init", F_OWNER_PID, init, SIGUSR1);
  try_sigio("init", F_OWNER_PID, init, SIGKILL);
  try_sigio("init-group", F_OWNER_PGRP, pgrp, SIGSTOP);
  try_sigio("init-thread", F_OWNER_TID, init, SIGUSR1);
  try_sigio("cw-exec", F_OWNER_PID, cw, SIGSTOP);
  try_sigio("cw-exec", F_OWNER_PID, cw, SIGKILL);
  msleep(100);
  printf("init-state %c\n", state_of(init));
  printf("cw-exec-state %c\n", state_of(cw));
  printf("init-still-parent %d\n", getppid() == init);
  fflush(stdout);
  return 0;
}

/* ---- storm THREADS PER MS: THREADS threads each make PER daemons (double fork, setsid) and
   PER siblings of the command (CLONE_PARENT: children of init) as fast as they can, then
   short-lived double forks; the command's process exits MS ms after it started, while they
   still fork (or lingers, with MS < 0). */
static int per;
static long now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000 + t.tv_nsec / 1000000;
}
static void *t_storm(void *a) {
  long end = now_ms() + linger_ms;
  for (int i = 0; i < per; i++) {
    pid_t p = fork();
    if (p == 0) { setsid(); if (fork() == 0) linger(); _exit(0); }
    if (rawclone(CLONE_PARENT | SIGCHLD) == 0) linger();
    if (p > 0) waitpid(p, 0, 0);
  }
  /* Then short-lived children, until the time a lingering process would say "late". */
  while (now_ms() < end) {
    pid_t p = fork();
    if (p == 0) { if (fork() == 0) _exit(0); _exit(0); }
    if (p > 0) waitpid(p, 0, 0);
  }
  return 0;
}
static int storm(int threads, int n, int ms) {
  per = n;
  pthread_t t;
  for (int i = 0; i < threads; i++) pthread_create(&t, 0, t_storm, 0);
  if (ms < 0) { started(); linger(); }
  msleep(ms);
  started();
  exit(0);
}

/* ---- forkers K N MS: K children of the command each make N daemons, then short-lived
   double forks until a lingering process would say "late"; the command's process exits MS
   ms after it made them, while they still fork. */
static int forkers(int k, int n, int ms) {
  for (int i = 0; i < k; i++) {
    if (fork() == 0) {
      long end = now_ms() + linger_ms;
      for (int j = 0; j < n; j++) daemonize();
      while (now_ms() < end) {
        pid_t p = fork();
        if (p == 0) { if (fork() == 0) _exit(0); _exit(0); }
        if (p > 0) waitpid(p, 0, 0);
      }
      _exit(0);
    }
  }
  msleep(ms);
  started();
  return 0;
}

/* ---- autoreap K: a process ignoring SIGCHLD (its children are reaped by the kernel the
   moment they end, vanishing from its `children` list) with K lingering children, so its
   list takes several reads (more than a page), while a thread of it makes short-lived
   children all the time: a reader that resumes by position skips entries. */
static void *t_churn(void *a) {
  for (;;) if (fork() == 0) _exit(0);
  return 0;
}
static int autoreap(int k) {
  int ready[2];
  (void)!pipe(ready);
  if (fork() == 0) {
    close(ready[0]);
    signal(SIGCHLD, SIG_IGN);
    for (int i = 0; i < k; i++) if (fork() == 0) { close(ready[1]); linger(); }
    pthread_t t;
    pthread_create(&t, 0, t_churn, 0);
    close(ready[1]);
    for (;;) pause();
  }
  close(ready[1]);
  char c;
  (void)!read(ready[0], &c, 1); /* end of file: the K children exist */
  msleep(20);
  started();
  return 0;
}

/* ---- stopped: processes stopped when the run ends: one stopped child; a stopped child
   whose own child lingers; a stopped grandchild orphaned (its parent exits); a process
   group that stopped itself; a child stopped in vfork. */
static int stopped(void) {
  if (fork() == 0) { if (fork() == 0) linger(); raise(SIGSTOP); linger(); }
  if (fork() == 0) raise(SIGSTOP), linger();
  if (fork() == 0) { if (fork() == 0) { raise(SIGSTOP); linger(); } msleep(10); _exit(0); }
  if (fork() == 0) {
    setpgid(0, 0);
    if (fork() == 0) { msleep(5); linger(); }
    kill(0, SIGSTOP);
    linger();
  }
  if (fork() == 0) { if (vfork() == 0) { raise(SIGSTOP); linger(); } linger(); }
  msleep(60);
  started();
  return 0;
}

/* ---- fan N: T (a subreaper) -> S -> Q x N -> R each. A walker that kills T, S and the Q's
   before it reads each Q's children finds the first Q's dead already, their R's handed to
   T meanwhile (after the walker read T's list): R's that escape that pass, alive, each
   making one more lingering child as soon as it sees its parent gone. */
static void fan_r(pid_t q) {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGUSR2);
  sigprocmask(SIG_BLOCK, &s, 0);
  prctl(PR_SET_PDEATHSIG, SIGUSR2);
  if (getppid() == q) { struct timespec to = {linger_ms / 1000, 0}; sigtimedwait(&s, 0, &to); }
  if (fork() == 0) linger();
  daemonize();
  linger();
}
static int fan(int n) {
  if (fork() == 0) {
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    if (fork() == 0) {
      for (int i = 0; i < n; i++)
        if (fork() == 0) { pid_t me = getpid(); if (fork() == 0) fan_r(me); linger(); }
      linger();
    }
    linger();
  }
  msleep(60);
  started();
  return 0;
}

/* ---- chains K DEPTH MS: K lines of DEPTH processes (each forks the next and waits for it to
   end; the last lingers MS ms), then the command's process and a child of it use CPU (for
   --cpu) for MS ms at most. */
static int chains(int k, int depth, int ms) {
  linger_ms = ms;
  for (int i = 0; i < k; i++) {
    if (fork() == 0) {
      for (int d = 1; d < depth; d++) if (fork() != 0) { wait(0); _exit(0); }
      linger();
    }
  }
  started();
  long end = now_ms() + ms;
  fork();
  while (now_ms() < end) {}
  return 0;
}

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

int main(int argc, char **argv) {
  const char *m = argc > 1 ? argv[1] : "";
  int a = argc > 2 ? atoi(argv[2]) : 0, b = argc > 3 ? atoi(argv[3]) : 0;
  int c = argc > 4 ? atoi(argv[4]) : 0;
  setvbuf(stdout, 0, _IONBF, 0);
  if (!strcmp(m, "signals")) return signals();
  if (!strcmp(m, "storm")) return storm(a, b, c);
  if (!strcmp(m, "autoreap")) return autoreap(a);
  if (!strcmp(m, "forkers")) return forkers(a, b, c);
  if (!strcmp(m, "stopped")) return stopped();
  if (!strcmp(m, "fan")) return fan(a);
  if (!strcmp(m, "chains")) return chains(a, b, c);
  if (!strcmp(m, "daemons")) return daemons(a, b);
  fprintf(stderr, "atk9: unknown mode %s\n", m);
  return 2;
}
"##;

/// The attack program, compiled once; None (the caller skips) without gcc.
fn attack_program() -> Option<&'static Path> {
    static BUILT: OnceLock<Option<PathBuf>> = OnceLock::new();
    BUILT
        .get_or_init(|| attack::compile_static("atk9", &[attack::C_PRELUDE, SOURCE].concat()))
        .as_deref()
}

fn program_or_skip() -> Option<&'static Path> {
    attack::program_or_skip(attack_program())
}

/// The script's placeholders: `ATK` the attack program, `WIRE` the tripwire.
fn script_for(script: &str, wire: &Wire) -> String {
    attack::fill(script, attack_program().unwrap(), wire)
}

/// The sandbox of an attack: Landlock tier, the program's directory readable, the wire's
/// directory writable, and `extra`.
fn landlock(sb: &Sandbox, wire_dir: &Path, extra: &[&str]) -> Sandbox {
    attack::sandbox(sb, attack_program().unwrap(), "landlock", wire_dir, extra)
}

/// One run of `script` (sh) to its end. Returns cw-exec's output, its duration, and whether
/// a process of the run held the tripwire the moment cw-exec returned: Err names what the
/// tripwire carried then and, after waiting for those processes (at most 10 s), after.
fn run_attack(
    sb: &Sandbox,
    extra: &[&str],
    script: &str,
) -> (Output, Duration, Result<(), String>) {
    let atk = attack_program().unwrap();
    attack::run(sb, atk, "landlock", extra, script, Duration::from_secs(10))
}

/// SOURCE's own messages: the modes' lines after "kill"/"sigio".
fn lines_with<'a>(out: &'a str, prefix: &str) -> Vec<&'a str> {
    out.lines().filter(|l| l.starts_with(prefix)).collect()
}

/// A process of the run signals init (its parent) and cw-exec (init's parent) every way it
/// can: kill() with SIGSTOP, SIGTSTP, SIGUSR1 (TERMINATE_TREE: it would end the run early),
/// SIGTERM, SIGKILL and 0; init's process group; kill(-1); and SIGIO with F_SETSIG (SIGSTOP,
/// SIGUSR1, SIGKILL) through a pipe whose owner it set to init, init's group, init's thread,
/// or cw-exec (the kernel, not the process, sends those). A stopped init would never kill
/// the run when cw-exec dies (its TERMINATE_TREE stays pending); a killed one would hand the
/// run to cw-exec alone. Landlock's signal scope (ABI 6) refuses every kill() with EPERM,
/// and SIGIO to a process outside the domain is dropped: init and cw-exec are still sleeping
/// (S) afterwards, and init is still the process's parent. Each identity.
#[test]
fn a_sandbox_cannot_signal_init_or_cw_exec() {
    if program_or_skip().is_none() {
        return;
    }
    as_each_identity(|sb, who| {
        let (out, _, verdict) = run_attack(
            &sb,
            &["--timeout", "10"],
            "exec 3>WIRE; echo up >&3; exec ATK signals",
        );
        let text = stdout(&out);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{who}: {text}\n{}",
            stderr(&out)
        );
        let kills = lines_with(&text, "kill ");
        assert_eq!(kills.len(), 14, "{who}: {text}");
        for line in kills {
            // kill(-1) answers 0 when every process it tried refused with EPERM.
            if line.starts_with("kill all") {
                continue;
            }
            assert!(line.ends_with("Operation not permitted"), "{who}: {line}");
        }
        assert_eq!(lines_with(&text, "sigio ").len(), 7, "{who}: {text}");
        for want in ["init-state S", "cw-exec-state S", "init-still-parent 1"] {
            assert!(
                text.lines().any(|l| l == want),
                "{who}: no {want:?} in\n{text}"
            );
        }
        assert_eq!(verdict, Ok(()), "{who}");
    });
}

/// When the test SIGKILLs cw-exec.
/// One run SIGKILLed at `moment` (`attack::sigkill_round`, Landlock tier): the command makes
/// daemons, a line and a CLONE_PARENT sibling (all holding the tripwire), says "started" and
/// ends `end_ms` later (never, with -1). Err says what outlived cw-exec 2 s after its death:
/// a process of the run holding the tripwire (the lingering ones write "late" at 3 s), an
/// init still running, or a process still in the run's cgroups.
fn sigkill_round(sb: &Sandbox, extra: &[&str], moment: Moment, end_ms: i32) -> Result<(), String> {
    attack::sigkill_round(
        sb,
        attack_program().unwrap(),
        "landlock",
        extra,
        moment,
        &format!("daemons 4 {end_ms}"),
    )
}

/// SIGKILL of cw-exec at many moments, each identity, each moment 3 times: as init appears
/// (its parent-death signal still SIGKILL, or not set yet), as the command's process appears
/// (init's signal just switched to TERMINATE_TREE; init in vfork until the execve), at fixed
/// delays through the set-up (0.5-16 ms), while the command runs (its daemons, setsid'd and
/// double-forked, reparented to init), 0-4 ms after a command that ends 2 ms after "started"
/// (init is killing the run at its end), and 45-80 ms after cw-exec's start with a
/// `--timeout` of 50 ms (around the moment init kills the run for cw-exec's TERMINATE_TREE).
/// 2 s after each SIGKILL no process of the run holds the tripwire and the run's init is not
/// running (gone, or a zombie left to the host's PID 1).
#[test]
fn sigkill_of_cw_exec_at_any_moment_leaves_nothing_running() {
    if program_or_skip().is_none() {
        return;
    }
    let mut moments: Vec<(&[&str], Moment, i32)> = vec![];
    for _ in 0..3 {
        moments.push((&[], Moment::InitExists, -1));
        for _ in 0..2 {
            moments.push((&[], Moment::CommandExists, -1));
        }
        for us in [500, 1000, 2000, 3000, 4000, 6000, 8000, 12000, 16000] {
            moments.push((&[], Moment::After(Duration::from_micros(us)), -1));
        }
        moments.push((&[], Moment::AfterStarted(Duration::ZERO), -1));
        moments.push((&[], Moment::AfterStarted(Duration::from_millis(20)), -1));
        for ms in [0, 1, 2, 3, 4] {
            moments.push((&[], Moment::AfterStarted(Duration::from_millis(ms)), 2));
        }
        for ms in [45, 50, 55, 60, 70, 80] {
            let d = Duration::from_millis(ms);
            moments.push((&["--timeout", "0.05"], Moment::After(d), -1));
        }
    }
    as_each_identity(|sb, who| {
        for (extra, moment, end_ms) in &moments {
            if let Err(why) = sigkill_round(&sb, extra, *moment, *end_ms) {
                panic!(
                    "{who}, {extra:?}, SIGKILL {moment:?} (command ends after {end_ms} ms): {why}"
                );
            }
        }
    });
}

/// Processes the kill walk must not miss, at the command's end, each identity, 2 rounds:
/// - storm: 8 threads each make daemons (fork, setsid, fork) and CLONE_PARENT siblings of
///   the command (children of init) as fast as they can while the command's process exits
///   (1 or 4 ms after its start);
/// - forkers: 8 children of the command make daemons, then double forks without end, and
///   the command's process exits 2 ms after making them;
/// - stopped: a stopped child with a lingering child, a stopped orphan, a process group that
///   stopped itself, a child stopped in vfork (its parent blocked in it);
/// - fan: a subreaper T above S above 40 Q's each with a child R; the walk kills T, S and the
///   Q's, then reads each Q's list: the Q's dead by then have handed their R to T, whose list
///   was read already, so those R's escape that pass (they run again: each makes two more
///   processes, one a daemon, on seeing its parent gone); the next pass takes them.
#[test]
fn forks_stops_and_pass_escapes_do_not_outlive_the_run() {
    if program_or_skip().is_none() {
        return;
    }
    as_each_identity(|sb, who| {
        for round in 0..2 {
            for mode in [
                "storm 8 30 1",
                "storm 8 30 4",
                "forkers 8 10 2",
                "stopped",
                "fan 40",
            ] {
                let (out, took, verdict) = run_attack(
                    &sb,
                    &["--timeout", "20"],
                    &format!("exec 3>WIRE; echo up >&3; exec ATK {mode}"),
                );
                let case = format!("{who}, {mode}, round {round}");
                assert_eq!(stdout(&out).trim(), "started", "{case}: {}", stderr(&out));
                assert_eq!(out.status.code(), Some(0), "{case}: {}", stderr(&out));
                assert_eq!(verdict, Ok(()), "{case} (after {took:?}): {}", stderr(&out));
            }
        }
    });
}

/// A parent that ignores SIGCHLD (the kernel reaps its children the moment they end, so they
/// vanish from its `children` list) with 1000 lingering children — a list longer than a page
/// (about 6 KiB), which /proc hands out over several reads, resuming after the last pid shown
/// or, when that one is gone, by position — and a thread making
/// short-lived children all the time: entries vanish between the walk's reads, and a reader
/// resuming by position skips some. Skipped children are reparented to init once their
/// parent dies, and a later pass kills them: none holds the tripwire at the return. Root
/// (`--pids 2000`: the profile's 256 would refuse the 1000) and the test user (no cgroup),
/// 3 rounds each.
#[test]
fn a_family_longer_than_a_page_with_children_vanishing_does_not_outlive_the_run() {
    if program_or_skip().is_none() {
        return;
    }
    as_each_identity(|sb, who| {
        for round in 0..3 {
            let (out, took, verdict) = run_attack(
                &sb,
                &["--timeout", "20", "--pids", "2000"],
                "exec 3>WIRE; echo up >&3; exec ATK autoreap 1000",
            );
            let case = format!("{who}, round {round}");
            assert_eq!(stdout(&out).trim(), "started", "{case}: {}", stderr(&out));
            assert_eq!(verdict, Ok(()), "{case} (after {took:?}): {}", stderr(&out));
        }
    });
}

/// `--timeout` ends a run whose command never ends while 8 of its threads still make daemons
/// and siblings of it: exit 124, well within the timeout and its grace, and no process of
/// the run holds the tripwire at the return. Each identity, 2 rounds.
#[test]
fn a_timeout_ends_a_run_still_forking() {
    if program_or_skip().is_none() {
        return;
    }
    as_each_identity(|sb, who| {
        for round in 0..2 {
            let (out, took, verdict) = run_attack(
                &sb,
                &["--timeout", "0.3"],
                "exec 3>WIRE; echo up >&3; exec ATK storm 8 25 -1",
            );
            let case = format!("{who}, round {round}");
            assert_eq!(out.status.code(), Some(124), "{case}: {}", stderr(&out));
            assert!(took < Duration::from_secs(2), "{case}: took {took:?}");
            assert_eq!(verdict, Ok(()), "{case} (after {took:?}): {}", stderr(&out));
        }
    });
}

/// Past `--cpu`, cw-exec used to SIGKILL init itself (`supervise::relay`, the `cpu_limit`
/// check), not TERMINATE_TREE: from that moment init's parent-death signal protected nothing
/// (init was dead), and the run's only killer was cw-exec's own `kill_descendants`, run once
/// the report pipe read end of file and `reap(init)` returned. A SIGKILL of cw-exec in that
/// window left every process of the run that cw-exec had not signalled yet alive for good,
/// reparented to the host's PID 1. Now, in the Landlock tier, cw-exec sends init
/// TERMINATE_TREE past the limit, as past a timeout (init kills the run, and goes on if
/// cw-exec dies meanwhile), and SIGKILLs init only after the grace.
///
/// Here the command makes 8 lines of 4 processes (each waits for the next; the last lingers
/// 6 s, then writes "late") and uses CPU in 2 processes until `--cpu 1` is past; the test
/// watches cw-exec's children and SIGKILLs cw-exec the moment one other than init appears
/// (init's orphans, reparented to it: with the fix, only if init died). It failed in every
/// run before the fix (round 0 or 1 of 5: 7 to 32 of the lines' processes alive 2 s after
/// cw-exec's death, writing "late" seconds later). With the fix no orphan reaches cw-exec,
/// and each round checks that nothing of the run is left once cw-exec has returned. (A
/// variant that SIGKILLed cw-exec 0-4 ms after the run's CPU time was seen past the limit
/// passed with and without the fix: cw-exec polls the CPU time, and died before acting, so
/// init's parent-death signal ended the run; it was not kept.)
#[test]
fn cw_exec_sigkilled_as_init_s_orphans_reach_it_past_the_cpu_limit_leaves_nothing() {
    if program_or_skip().is_none() || skip_unless_root("the --cpu limit needs the run's cgroups") {
        return;
    }
    let mut found = None;
    for round in 0..5 {
        let dir = workdir("cpu9");
        let mut wire = Wire::new(&dir);
        let script = script_for(
            "exec 3>WIRE; echo up >&3; exec ATK chains 8 4 6000 </dev/null >/dev/null 2>&1",
            &wire,
        );
        let mut cmd = landlock(&Sandbox::new(), &dir, &["--cpu", "1", "--timeout", "20"])
            .command("run", &["/bin/sh", "-c", &script]);
        let mut run = Reaped(
            cmd.stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let cw = run.0.id();
        let start = Instant::now();
        let mut init = None;
        let mut orphan = None;
        while start.elapsed() < Duration::from_secs(15) {
            let kids = children_of(cw);
            if init.is_none() {
                init = kids.first().copied();
            }
            if let Some(o) = kids.iter().find(|k| Some(**k) != init) {
                unsafe { libc::kill(cw as i32, libc::SIGKILL) };
                orphan = Some(*o);
                break;
            }
            if run.0.try_wait().unwrap().is_some() {
                break;
            }
        }
        let status = run.0.wait().unwrap();
        if orphan.is_none() {
            // cw-exec ended (or the window was missed): no attack this round.
            let mut text = String::new();
            assert!(
                wire.gone_within(&mut text, Duration::from_secs(5)),
                "{status:?}"
            );
            continue;
        }
        let mut text = String::new();
        if !wire.gone_within(&mut text, Duration::from_secs(2)) {
            let alive = holders_of(&wire.path);
            let mut after = String::new();
            wire.gone_within(&mut after, Duration::from_secs(10));
            found = Some(format!(
                "round {round}: cw-exec ({status:?}) SIGKILLed as init's orphan {} reached it; \
                 2 s later {} processes of the run still held the tripwire (pid, parent, state): \
                 {alive:?}; written on the tripwire after that: {after:?}",
                orphan.unwrap(),
                alive.len()
            ));
            break;
        }
    }
    assert_eq!(found, None);
}
