//! Attacks on the eighth session's change: at the command's end, init in the namespaces tier
//! skips its `kill(-1)` when a `waitpid(-1, WNOHANG | __WALL)` loop reaches ECHILD
//! (`containment::end_the_run`, `init_has_children`), reasoning that every process of the
//! run descends from init. The guarantee attacked is docs/containment.md's "Process tree":
//! the moment cw-exec returns, no process of the run is alive. The Landlock tier (init as
//! subreaper, `containment::kill_descendants`) is attacked too.
//!
//! The attacks are one static C program (SOURCE, compiled here with gcc), run in the sandbox
//! with a tripwire (a FIFO) as its descriptor 3: every process it leaves behind holds the
//! tripwire, so the FIFO must read end of file the moment cw-exec returns.
//!
//! What holds (passing tests, guards from now on), namespaces and Landlock tiers alike:
//! children of init made with CLONE_PARENT, "clone children" (exit signal 0 or SIGUSR1)
//! orphaned to init, a CLONE_PARENT sibling of a clone child, orphans of a subreaper that
//! ends with the command (one of them stopped), a zombie thread-group leader with a live
//! thread, an exec from a non-leader thread, a thread blocked in vfork, the command's main
//! thread ending first, processes made in a loop while the command ends, and (namespaces
//! tier) a line of processes that are slow to die.
//!
//! What did not, before the fixes these tests came with (the Landlock tier): a line of
//! processes invisible to init's walk (each forked by a thread other than its parent's
//! first) and slow to die kept init's kill passes busy past a timeout's grace, and cw-exec,
//! having SIGKILLed init, returned while the line ran on; and past a `--cpu` limit cw-exec
//! SIGKILLed init alone, so every other process of the run outlived the return. Fixed: the
//! walk reads every thread's `children` list, and cw-exec is the run's subreaper, killing
//! whatever init leaves behind when it dies without having ended the run.
//!
//! A known gap, no process involved (both tiers): a descriptor sent into a garbage cycle of
//! unix sockets stays open after every process of the run has ended, until the kernel's
//! unix garbage collector next runs (milliseconds after cw-exec's return, here).

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;
use std::time::Duration;

use common::attack;
use common::*;

/// The attack program (modes named in `main`).
const SOURCE: &str = r##"/* Attacks on "nothing of the run outlives cw-exec's return" (tests/session8_attacks.rs).
   Run as `atk8 MODE [ARGS]` with the tripwire open as descriptor 3: every process this
   leaves behind holds it. */
#define _GNU_SOURCE
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
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

static void msleep(long ms) {
  struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&t, &t) && errno == EINTR) {}
}
/* A process left behind: holds the tripwire (not the output streams, whose end cw-exec
   would wait for) and says "late" on it if it is still alive 3 s later. */
static void linger(void) {
  close(0); close(1); close(2);
  msleep(3000);
  (void)!write(3, "late\n", 5);
  _exit(0);
}
/* fork-like clone with the given flags (low byte: the exit signal). */
static long rawclone(unsigned long flags) { return syscall(SYS_clone, flags, 0, 0, 0, 0); }
static void started(void) { (void)!write(1, "started\n", 8); }

static void *t_fork_linger(void *a) { msleep(50); if (fork() == 0) linger(); return 0; }
static void *t_vfork(void *a) { if (vfork() == 0) linger(); return 0; }
static void *t_exec(void *a) { execl("/proc/self/exe", "atk8", "linger", (char *)0); return 0; }
static void *t_linger(void *a) { linger(); return 0; }
static void *t_siblings(void *a) {
  for (;;) if (rawclone(CLONE_PARENT | SIGCHLD) == 0) linger();
  return 0;
}
static void *t_double_forks(void *a) {
  for (;;) {
    pid_t p = fork();
    if (p == 0) { if (fork() == 0) linger(); _exit(0); }
    if (p > 0) waitpid(p, 0, 0);
  }
}

/* ---- line LEN SECONDS LOCKS FDS (the test landlock_tier_a_line_of_processes_outlives_...)
   A line of processes, each made by the one live thread of the one before it that is not
   its leader (the leader thread has ended), so none is listed in a
   /proc/PID/task/PID/children (the first thread's children only), which is all init's walk
   reads: each kill pass of init reaches only its own children, the line's front, and the
   next process is reparented to init for the next pass. Each holds FDS copies of one
   descriptor of a file carrying LOCKS OFD read locks: at its death each close walks the
   file's whole lock list (locks_remove_posix), so dying takes FDS x LOCKS steps of kernel
   work (~10 ms for 1000 x 2000), being made (clone(CLONE_VM): a copy of the descriptor
   table) ~0.2 ms; init's pass waits for that death. The tail adds a process whenever fewer
   than LEN are alive (it looks each millisecond), so the line outpaces the passes. Each
   process ends after SECONDS, saying "late" on the tripwire. */
#define SLOT (16 * 1024)
#define NSLOT 4096
#define RING 4096
static char *stacks;
static volatile int nslot, tail, forks, front, len;
static volatile int ring[RING];
static volatile long deadline;
static char *stack_top(void) {
  return stacks + (long)(__sync_fetch_and_add(&nslot, 1) % NSLOT + 1) * SLOT - 64;
}
static long now_s(void) {
  struct timespec t;
  syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &t);
  return t.tv_sec;
}
/* The line dies from its front (its oldest): skip the dead there, count the rest. */
static int alive_in_line(void) {
  while (front < forks && syscall(SYS_kill, ring[front % RING], 0) != 0) front++;
  return forks - front;
}
static int node(void *parent);
/* The one live thread of a process of the line; only the tail's adds to the line. */
static int helper(void *unused) {
  for (;;) {
    struct timespec ms = {0, 1000000};
    syscall(SYS_nanosleep, &ms, 0);
    if (now_s() >= deadline) { syscall(SYS_write, 3, "late\n", 5); syscall(SYS_exit_group, 0); }
    long me = syscall(SYS_getpid);
    if (tail == me && alive_in_line() < len) {
      long c = clone(node, stack_top(), CLONE_VM | SIGCHLD, (void *)me);
      if (c > 0) { ring[forks % RING] = c; forks++; tail = c; }
    }
  }
  return 0;
}
static void spawn_helper(void) {
  clone(helper, stack_top(), CLONE_VM | CLONE_THREAD | CLONE_SIGHAND | CLONE_FS | CLONE_FILES, 0);
}
static int node(void *parent) {
  while (tail != syscall(SYS_getpid)) syscall(SYS_sched_yield);
  spawn_helper();
  syscall(SYS_exit, 0); /* the leader thread only: its process lives on in the helper */
  return 0;
}
static int line(int argc, char **argv) {
  len = atoi(argv[2]);
  deadline = now_s() + atoi(argv[3]);
  int locks = atoi(argv[4]), fds = atoi(argv[5]);
  int fd = open("/proc/self/exe", O_RDONLY);
  for (int i = 0; i < locks; i++) {
    struct flock l = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 2L * i, .l_len = 1};
    if (fcntl(fd, F_OFD_SETLK, &l)) { perror("F_OFD_SETLK"); return 1; }
  }
  for (int i = 0; i < fds; i++) if (dup(fd) < 0) break;
  stacks = mmap(0, (long)SLOT * NSLOT, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  tail = getpid();
  spawn_helper();
  while (forks < len) msleep(1);
  started();
  return 0;
}

static int send_fds(int s, int *fds, int n) {
  char c = 'x';
  struct iovec io = {&c, 1};
  char buf[CMSG_SPACE(sizeof(int) * 2)];
  memset(buf, 0, sizeof buf);
  struct msghdr m = {0};
  m.msg_iov = &io; m.msg_iovlen = 1; m.msg_control = buf; m.msg_controllen = CMSG_SPACE(sizeof(int) * n);
  struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
  cm->cmsg_level = SOL_SOCKET; cm->cmsg_type = SCM_RIGHTS; cm->cmsg_len = CMSG_LEN(sizeof(int) * n);
  memcpy(CMSG_DATA(cm), fds, sizeof(int) * n);
  return sendmsg(s, &m, 0);
}

int main(int argc, char **argv) {
  const char *m = argc > 1 ? argv[1] : "";
  signal(SIGUSR1, SIG_IGN); /* the exit signal of one clone child below */
  if (!strcmp(m, "linger")) linger();
  if (!strcmp(m, "siblings")) {
    /* Siblings of the command's process: children of init itself (CLONE_PARENT), one asking
       for exit signal 0 (the kernel gives it the caller's leader's: SIGCHLD). */
    if (rawclone(CLONE_PARENT | SIGCHLD) == 0) linger();
    if (rawclone(CLONE_PARENT) == 0) linger();
    started(); return 0;
  }
  if (!strcmp(m, "clone-children")) {
    /* "Clone children" (exit signal 0 or SIGUSR1, which a wait without __WALL or __WCLONE
       does not see), orphaned to init at the command's end; a zombie one; a grandchild one
       orphaned earlier; and a CLONE_PARENT sibling of a clone child (it takes the clone
       child's exit signal, 0). */
    if (rawclone(0) == 0) linger();
    if (rawclone(SIGUSR1) == 0) linger();
    if (rawclone(0) == 0) _exit(0);
    if (fork() == 0) { if (rawclone(0) == 0) linger(); _exit(0); }
    if (rawclone(0) == 0) { if (rawclone(CLONE_PARENT) == 0) linger(); linger(); }
    msleep(30); started(); return 0;
  }
  if (!strcmp(m, "subreaper")) {
    /* A subreaper S adopts two orphans (one stopped) and ends as the command's process
       ends (its pipe from the command closes): the orphans move on to init. */
    int p[2];
    (void)!pipe(p);
    if (fork() == 0) {
      close(p[1]);
      prctl(PR_SET_CHILD_SUBREAPER, 1);
      if (fork() == 0) {
        if (fork() == 0) linger();
        if (fork() == 0) { kill(getpid(), SIGSTOP); linger(); }
        _exit(0);
      }
      char c;
      (void)!read(p[0], &c, 1);
      _exit(0);
    }
    close(p[0]);
    msleep(30); started(); return 0;
  }
  if (!strcmp(m, "threads")) {
    /* A child whose leader thread has ended while another thread lingers (a zombie leader:
       the process is not reapable yet); a child whose non-leader thread execs (it takes
       over the leader's pid); a thread of the command blocked in vfork (its child lingers)
       while the command's process ends (exit_group). */
    if (fork() == 0) { pthread_t t; pthread_create(&t, 0, t_linger, 0); pthread_exit(0); }
    if (fork() == 0) { pthread_t t; pthread_create(&t, 0, t_exec, 0); pause(); }
    pthread_t t;
    pthread_create(&t, 0, t_vfork, 0);
    msleep(50); started(); exit(0);
  }
  if (!strcmp(m, "leader-exit")) {
    /* The command's main thread ends first (pthread_exit); its last thread forks a
       lingering child, then ends too: only then has the command's process ended. */
    pthread_t t;
    pthread_create(&t, 0, t_fork_linger, 0);
    started(); pthread_exit(0);
  }
  if (!strcmp(m, "race-siblings") || !strcmp(m, "race-double-forks")) {
    /* Two threads make processes in a loop (siblings of the command's process, or double
       forks) until the command's process ends, ARG ms after it starts. */
    pthread_t t;
    for (int i = 0; i < 2; i++)
      pthread_create(&t, 0, m[5] == 's' ? t_siblings : t_double_forks, 0);
    msleep(atoi(argv[2])); started(); exit(0);
  }
  if (!strcmp(m, "line")) return line(argc, argv);
  if (!strcmp(m, "scm-cycle")) {
    /* The tripwire in flight in a unix socket that only that message keeps (a garbage
       cycle: the socket's own descriptor is in the same message), every descriptor closed.
       No process holds the tripwire once this one has ended; the message does, until the
       kernel's unix garbage collector frees it (asynchronously). ARG: ms to wait first. */
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv)) { perror("socketpair"); return 1; }
    int fds[2] = {sv[1], 3};
    if (send_fds(sv[0], fds, 2) < 0) { perror("sendmsg"); return 1; }
    close(sv[0]); close(sv[1]); close(3);
    if (argc > 2) msleep(atoi(argv[2]));
    started(); return 0;
  }
  fprintf(stderr, "atk8: unknown mode %s\n", m);
  return 2;
}
"##;

/// The attack program, compiled once; None (the caller skips) without gcc.
fn attack_program() -> Option<&'static Path> {
    static BUILT: OnceLock<Option<PathBuf>> = OnceLock::new();
    BUILT
        .get_or_init(|| attack::compile_static("atk8", SOURCE))
        .as_deref()
}

/// The attack program, or None after recording the skip.
fn program_or_skip() -> Option<&'static Path> {
    attack::program_or_skip(attack_program())
}

/// One run of `script` (sh; `ATK` names the attack program, `WIRE` the tripwire) in `tier`,
/// with `extra` flags. Returns cw-exec's output, its duration, and whether a process of the
/// run held the tripwire the moment cw-exec returned: Err names what the tripwire carried
/// then and, after waiting for those processes to end (at most 20 s), what they wrote after
/// the return.
fn run_attack(
    sb: &Sandbox,
    tier: &str,
    extra: &[&str],
    script: &str,
) -> (Output, Duration, Result<(), String>) {
    let atk = attack_program().unwrap();
    attack::run(sb, atk, tier, extra, script, Duration::from_secs(20))
}

/// Runs the attack program's `mode` as the command's process itself (`exec`, so that
/// CLONE_PARENT makes children of init), with the tripwire open; it prints "started".
fn exec_mode(sb: &Sandbox, tier: &str, mode: &str, case: &str) {
    let (out, _, verdict) = run_attack(
        sb,
        tier,
        &[],
        &format!("exec 3>WIRE; echo up >&3; exec ATK {mode}"),
    );
    assert_eq!(stdout(&out).trim(), "started", "{case}: {}", stderr(&out));
    assert_eq!(verdict, Ok(()), "{case}: {}", stderr(&out));
}

/// Children of init that a "has init a child left?" test could miss, and orphans that
/// reach init at the command's end, in both tiers, each identity: none may hold the
/// tripwire once cw-exec returns. (In the namespaces tier every one of them is still a
/// child of init, or a descendant of one, when the command's end is seen: init's
/// `waitpid(-1, WNOHANG | __WALL)` answers "still alive", and the `kill(-1)` is made.)
/// - siblings: CLONE_PARENT from the command's process (children of init, one asking for
///   exit signal 0: the kernel gives it the caller's leader's, SIGCHLD);
/// - clone-children: exit signal 0 or SIGUSR1 (invisible to a wait without __WALL or
///   __WCLONE), orphaned to init (which resets the exit signal to SIGCHLD), a zombie one, a
///   grandchild one orphaned earlier, a CLONE_PARENT sibling of a clone child;
/// - subreaper: a PR_SET_CHILD_SUBREAPER process ending with the command, its two adopted
///   orphans (one SIGSTOPped) moving on to init;
/// - threads: a child whose leader thread ended while another thread lives (not reapable),
///   a child whose non-leader thread execs, a thread blocked in vfork while the command ends;
/// - leader-exit: the command's main thread ends first; its last thread forks, then ends.
#[test]
fn odd_children_and_orphans_of_init_do_not_outlive_the_run() {
    if program_or_skip().is_none() {
        return;
    }
    as_each_identity(|sb, who| {
        for tier in ["namespaces", "landlock"] {
            for mode in [
                "siblings",
                "clone-children",
                "subreaper",
                "threads",
                "leader-exit",
            ] {
                for round in 0..2 {
                    exec_mode(
                        &sb,
                        tier,
                        mode,
                        &format!("{who}, {tier}, {mode}, round {round}"),
                    );
                }
            }
        }
    });
}

/// Processes made in a loop right up to the command's end: two threads of the command's
/// process make siblings of it (children of init, CLONE_PARENT), or double-fork, until it
/// exits 0-5 ms after it started. Made before its exit, each is a child of init (or a
/// descendant) when the exit is seen; made during it, the fork fails. Both tiers, each
/// identity.
#[test]
fn processes_made_while_the_command_ends_do_not_outlive_the_run() {
    if program_or_skip().is_none() {
        return;
    }
    as_each_identity(|sb, who| {
        for tier in ["namespaces", "landlock"] {
            for mode in ["race-siblings", "race-double-forks"] {
                for delay in 0..6 {
                    exec_mode(
                        &sb,
                        tier,
                        &format!("{mode} {delay}"),
                        &format!("{who}, {tier}, {mode} {delay}"),
                    );
                }
            }
        }
    });
}

/// The line of the Landlock test below (16 processes invisible to a /proc walk, each ~10 ms
/// to die) in the namespaces tier: init's `kill(-1)` reaches every process of the namespace
/// at once, and its wait until ECHILD outlasts their slow deaths, so cw-exec returns only
/// once the whole line is gone (a fraction of a second). Each identity, twice.
#[test]
fn namespaces_tier_a_line_of_slow_dying_processes_is_gone_at_return() {
    if program_or_skip().is_none() {
        return;
    }
    as_each_identity(|sb, who| {
        for round in 0..2 {
            let (out, _, verdict) = run_attack(
                &sb,
                "namespaces",
                &["--timeout", "10"],
                "exec 3>WIRE; echo up >&3; ATK line 16 6 2000 1000 >/dev/null 2>&1 </dev/null; \
                 echo started",
            );
            let case = format!("{who}, round {round}");
            assert_eq!(stdout(&out).trim(), "started", "{case}: {}", stderr(&out));
            assert_eq!(out.status.code(), Some(0), "{case}: {}", stderr(&out));
            assert_eq!(verdict, Ok(()), "{case}: {}", stderr(&out));
        }
    });
}

/// Landlock tier: no process of the run outlives cw-exec's return after a timeout, even
/// one init's walk could not see.
///
/// Init's `kill_descendants` kills its own children by pid and walks deeper through
/// `/proc/PID/task/TID/children`. The attack program's `line` mode (see SOURCE) builds a
/// line of processes each made by the only live thread, not the leader, of the one before:
/// when the walk read only the first thread's list (`/proc/PID/task/PID/children`), no walk
/// saw past init's own children, so each pass killed one process of the line (its front;
/// the next was reparented to init for the next pass). Each process holds 1000 copies of a
/// descriptor of a file with 2000 OFD locks, so its death (each close walks the lock list)
/// takes ~10 ms while a new process costs ~0.2 ms: the line's tail, which adds one whenever
/// fewer than 16 are alive, outpaced the passes forever. The command itself ended at once;
/// init never reported its end. At the timeout cw-exec signalled init (blocked: init was in
/// its pass loop), 2 s later SIGKILLed it, reaped it and returned 124 while the 16 processes
/// ran on (reparented to the host's PID 1), holding the tripwire and writing "late" to it
/// seconds after the return. Two fixes, each of which this test fails without: the walk
/// reads every thread's list, and cw-exec, the run's subreaper, kills what init leaves
/// behind. Run as the unprivileged test user where there is one.
#[test]
fn landlock_tier_a_line_of_processes_does_not_outlive_a_timeout() {
    if program_or_skip().is_none() {
        return;
    }
    let sb = if is_root() {
        match unprivileged_user() {
            Ok(ids) => Sandbox::new().user(ids),
            Err(_) => Sandbox::new(),
        }
    } else {
        Sandbox::new()
    };
    let (out, took, verdict) = run_attack(
        &sb,
        "landlock",
        &["--timeout", "0.5"],
        "exec 3>WIRE; echo up >&3; ATK line 16 6 2000 1000 >/dev/null 2>&1 </dev/null; \
         echo started",
    );
    assert_eq!(stdout(&out).trim(), "started", "{}", stderr(&out));
    assert_eq!(
        verdict,
        Ok(()),
        "exit {:?} after {took:?}; stderr: {}",
        out.status.code(),
        stderr(&out)
    );
}

/// Landlock tier (needs the run's cgroups: root): past a `--cpu` limit cw-exec SIGKILLs
/// init (`supervise`, once the cgroup's CPU time is past the limit, in both tiers). In the
/// namespaces tier that ends the whole PID namespace. In the Landlock tier init's death
/// ended nothing else: every other process of the run was reparented outside it and lived
/// on, and cw-exec returned 152 after failing to remove the run's cgroups, which still held
/// them. Now cw-exec is the run's subreaper: they are reparented to it, and it kills them
/// before it returns (this test fails without that). Here two busy loops use up the 1 s
/// limit (neither reaches its own RLIMIT_CPU first), and a background `sleep` holds the
/// tripwire and would write "late" to it after the return. Both tiers, same script.
#[test]
fn the_cpu_limit_ends_every_process_of_the_run_in_both_tiers() {
    if program_or_skip().is_none() || skip_unless_root("the --cpu limit needs the run's cgroups") {
        return;
    }
    let script = "exec 3>WIRE; echo up >&3; \
                  (sleep 5; echo late >&3) >/dev/null 2>&1 </dev/null & \
                  (while :; do :; done) & while :; do :; done";
    for tier in ["namespaces", "landlock"] {
        let (out, took, verdict) = run_attack(
            &Sandbox::new(),
            tier,
            &["--cpu", "1", "--timeout", "20"],
            script,
        );
        assert_eq!(out.status.code(), Some(152), "{tier}: {}", stderr(&out));
        assert_eq!(
            verdict,
            Ok(()),
            "{tier}: after {took:?}; stderr: {}",
            stderr(&out)
        );
    }
}

/// A known gap, no process involved (both tiers): the command puts the tripwire in flight
/// (SCM_RIGHTS) in a unix socket whose own descriptor travels in the same message, closes
/// every descriptor and exits. Every process of the run is gone when cw-exec returns, but
/// the unreachable message still holds the tripwire open until the kernel's unix garbage
/// collector frees it, which it does asynchronously: 2-11 ms after cw-exec returned, in 20
/// of 20 runs per tier when this was found (the order of the closes changes nothing). No
/// system call makes a process wait for that collection. What a caller sees: a pipe or
/// file of its own that the run was handed is not closed yet when cw-exec returns
/// (docs/containment.md says so). What is checked: nothing is written to the tripwire after
/// the return (no process holds it), and it is closed soon after, by the kernel.
#[test]
fn a_descriptor_in_flight_in_a_garbage_unix_socket_is_freed_by_the_kernel_soon_after() {
    if program_or_skip().is_none() {
        return;
    }
    for tier in ["namespaces", "landlock"] {
        for round in 0..3 {
            let (out, _, verdict) = run_attack(
                &Sandbox::new(),
                tier,
                &[],
                "exec 3>WIRE; echo up >&3; exec ATK scm-cycle",
            );
            let case = format!("{tier}, round {round}");
            assert_eq!(stdout(&out).trim(), "started", "{case}: {}", stderr(&out));
            if let Err(why) = verdict {
                assert!(
                    why.contains("written after the return: \"\"")
                        && why.contains("it was closed later"),
                    "{case}: {why}"
                );
            }
        }
    }
}

/// In the Landlock tier cw-exec makes itself the run's subreaper before it starts init, so
/// that what init leaves behind when it dies comes to cw-exec (above). A host that refuses
/// `prctl(PR_SET_CHILD_SUBREAPER)` (here a seccomp wrapper, as a host's own filter might)
/// gets a refusal naming the step, exit 125, before anything of the run exists: the
/// command never runs. The namespaces tier does not need it and still runs. Each identity.
#[test]
fn a_host_refusing_the_subreaper_refuses_landlock_tier_runs() {
    as_each_identity(|sb, who| {
        let dir = workdir("no-subreaper");
        let marker = dir.join("ran");
        let touch = format!("touch {}", marker.display());
        let sb = sb
            .clone()
            .wrapped(&refusing(&["prctl=36"]))
            .args(["--write", dir.to_str().unwrap()]);
        let out = sb
            .clone()
            .args(["--tier", "landlock"])
            .run(&["sh", "-c", &touch]);
        assert_eq!(out.status.code(), Some(125), "{who}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("landlock tier: subreaper"),
            "{who}: {}",
            stderr(&out)
        );
        assert!(!marker.exists(), "{who}: the command ran");
        let out = sb.args(["--tier", "namespaces"]).run(&["sh", "-c", &touch]);
        assert!(out.status.success(), "{who}: {}", stderr(&out));
        assert!(marker.exists(), "{who}: the namespaces tier did not run");
    });
}
