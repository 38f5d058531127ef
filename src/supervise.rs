//! cw-exec's side of a run: make the run's cgroups, start init in fresh namespaces, map its
//! identity, relay output (hashing stdout, enforcing the output limit) or, on a terminal,
//! relay the sandbox's own pty, forward signals (killing the tree `--kill-after` a
//! forwarded SIGTERM, SIGINT or SIGHUP), enforce the timeout and the CPU limit, and clean
//! up whatever happens.

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use sha2::{Digest, Sha256};

use crate::child::{self, Message, FORWARDED, TERMINATE_TREE};
use crate::containment;
use crate::kernel::cgroup::RunCgroups;
use crate::kernel::placement::Placement;
use crate::kernel::pty::{self, Pty, RawMode};
use crate::model::{
    exec_failure_status, hex, names, Refusal, EXIT_CPU, EXIT_REFUSED, EXIT_TIMEOUT,
};
use crate::model::{Tier, TierChoice};
use crate::plan::Request;
use crate::plan::{namespace_inodes, Plan};
use crate::readback::KernelReadback;
use crate::sys;

/// After a timeout, how long the tree gets between SIGTERM and SIGKILL. (A timeout is a
/// bound the caller set; `--kill-after` does not extend it.)
pub const KILL_GRACE: Duration = Duration::from_secs(2);

/// Forwarded signals that ask the command to end: `--kill-after` later, the whole tree is
/// killed if it has not. SIGQUIT is forwarded too but does not count (programs such as the
/// JVM answer it with a dump and keep running, as asked).
pub const ENDING_SIGNALS: [Signal; 3] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP];

use crate::limits::CPU_POLL;

/// How a run ended, as cw-exec observed it.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Init moved itself out of the run's cgroups before it reported the end (cgroup v1):
    /// they can be removed without waiting for init's exit.
    pub init_left_cgroups: bool,
    pub exit_code: i32,
    /// The command's own exit code, or None if it was killed by a signal or never ran.
    pub child_code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    /// Killed because the sandbox as a whole used more CPU time than `--cpu`.
    pub cpu_exceeded: bool,
    /// The kernel OOM-killed a process because the sandbox reached `--memory`.
    pub oom_killed: bool,
    /// The command was killed by SIGXFSZ: it wrote past `--fsize`.
    pub fsize_exceeded: bool,
    /// Forks and clones the pids cgroup refused at `--pids` (0 where no cgroup counts them).
    pub pids_refused: u64,
    pub duration: Duration,
    pub readback: Option<KernelReadback>,
    /// Why nothing was executed, if so (its mechanism is the step that failed).
    pub refusal: Option<Refusal>,
    pub exec_error: Option<String>,
    /// sha256 of the stdout passed through (all of it, unless the output limit cut it).
    pub stdout_sha256: Option<String>,
    /// Bytes of stdout passed through.
    pub stdout_bytes: u64,
    /// Bytes of stdout and stderr the command produced past the output limit, dropped.
    pub output_dropped: u64,
    /// Phase marks from inside the sandbox (`--timings`).
    pub marks: Vec<(String, u64)>,
    /// What the command's descriptor 0 was (`StdinPlan::describe`).
    pub stdin: &'static str,
    /// The egress proxy's decisions (`--net allow=...`).
    pub net_decisions: Vec<crate::proxy::Decision>,
    /// The first SIGTERM, SIGINT or SIGHUP cw-exec forwarded to the command, if any.
    pub forwarded: Option<i32>,
    /// The command had not ended this long (`--kill-after`) after that signal: cw-exec
    /// killed the whole tree.
    pub killed_after: Option<Duration>,
    /// Each cgroup limit file cw-exec wrote, with the value the kernel held there as read
    /// back right after the write: (limit, file, value) (`RunCgroups::observed`).
    pub limits_observed: Vec<(&'static str, &'static str, String)>,
}

/// What cw-exec relays instead of handing the child its own descriptors. Whenever output is
/// captured (limited or hashed), stdin is not the caller's descriptor either (see `StdinPlan`).
#[derive(Clone, Copy)]
pub struct Capture {
    pub stdout: bool,
    /// Pass captured stdout on to cw-exec's own (false: hash it and drop it, as `exec`
    /// does, whose own stdout carries the envelope).
    pub forward_stdout: bool,
    pub stderr: bool,
}

pub fn run(plan: &Plan, capture: Capture) -> Outcome {
    let started = Instant::now();
    if plan.tier == Tier::Landlock && plan.tier_choice == TierChoice::Auto {
        eprintln!(
            "cw-exec: notice: user namespaces are unavailable ({}); running in the landlock tier: no mount view, PID or network namespace; the attestation's gaps name what is weaker",
            plan.tier_reason.as_deref().unwrap_or("unknown")
        );
    }
    // The Landlock tier's private directories, made before anything runs, removed after.
    let run_dir = match plan.run_dir.as_deref().map(containment::RunDir::create) {
        Some(Err(e)) => return refused("landlock tier: per-run directory", e),
        Some(Ok(d)) => Some(d),
        None => None,
    };
    let mut outcome = supervise(plan, capture);
    drop(run_dir);
    outcome.duration = started.elapsed();
    outcome
}

/// Runs the plan; when it was made for the namespace tier by default (`auto`) and the kernel
/// refuses the user namespace at clone time (a container runtime's seccomp filter, which no
/// sysctl shows), plans the same request again for the Landlock tier and runs that. Nothing
/// of the first attempt ran. Returns the plan that ran.
pub fn run_falling_back(request: &Request, plan: Plan, capture: Capture) -> (Plan, Outcome) {
    let outcome = run(&plan, capture);
    let denied = outcome
        .refusal
        .as_ref()
        .filter(|r| r.mechanism.as_deref() == Some(USERNS_STEP))
        .map(|r| r.message.clone());
    let Some(why) = denied else {
        return (plan, outcome);
    };
    if plan.tier != Tier::Namespaces || plan.tier_choice != TierChoice::Auto {
        return (plan, outcome);
    }
    let retry = Request {
        tier_fallback: Some(why),
        ..request.clone()
    };
    match Plan::build(&retry) {
        Ok(lower) => {
            let outcome = run(&lower, capture);
            (lower, outcome)
        }
        Err(refusal) => (
            plan,
            Outcome {
                exit_code: refusal.exit_status(),
                refusal: Some(refusal),
                ..Default::default()
            },
        ),
    }
}

/// The set-up step that creates the namespaces.
pub const USERNS_STEP: &str = "user namespaces";

/// The refusal for a set-up step that failed: the sandbox could not be built as planned.
/// The cgroup step is about limits, not dimensions.
pub fn step_failed(step: &str, message: impl Into<String>) -> Refusal {
    if step == CGROUPS_STEP {
        return Refusal {
            mechanism: Some(step.to_string()),
            ..Refusal::limit("cgroups", message)
        };
    }
    Refusal::dimensions(&[], step, message)
}

/// The set-up step that puts the limits binding the sandbox as a whole in place.
pub const CGROUPS_STEP: &str = containment::CGROUPS_STEP;

/// Refuses after the clone: init is killed and reaped first (so the run's cgroups, dropped
/// when the caller returns, are empty by then).
fn abandon(init: Pid, step: &str, message: impl Into<String>) -> Outcome {
    let _ = kill(init, Signal::SIGKILL);
    let _ = waitpid(init, None);
    refused(step, message)
}

/// Refuses after the clone when init may have ended first: a write to it failed, or a step
/// on it did. Init reports its own failed step before it exits, and that is the reason to
/// give (a broken pipe is only its consequence); `step` and `message` where it said nothing.
fn abandon_after_init(
    init: Pid,
    report: &OwnedFd,
    step: &str,
    message: impl Into<String>,
) -> Outcome {
    let _ = kill(init, Signal::SIGKILL);
    let _ = waitpid(init, None);
    // Init is gone and, with it, every holder of the report pipe's other end: this read
    // ends at EOF. Only a first line that is init's failed step counts.
    let mut said = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match nix::unistd::read(report, &mut buf) {
            Ok(0) => break,
            Ok(n) => said.extend_from_slice(&buf[..n]),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break,
        }
    }
    match said
        .split(|b| *b == b'\n')
        .next()
        .and_then(|line| serde_json::from_slice::<Message>(line).ok())
    {
        Some(Message::SetupError { step, message }) => refused(&step, message),
        _ => refused(step, message),
    }
}

fn refused(step: &str, message: impl Into<String>) -> Outcome {
    Outcome {
        exit_code: EXIT_REFUSED,
        refusal: Some(step_failed(step, message)),
        ..Default::default()
    }
}

/// cw-exec's channel to init: its release, then the run's v1 cgroups (descriptors, so a
/// stream socket). (init's end, cw-exec's end)
fn go_channel() -> Result<(OwnedFd, OwnedFd), String> {
    nix::sys::socket::socketpair(
        nix::sys::socket::AddressFamily::Unix,
        nix::sys::socket::SockType::Stream,
        None,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| format!("socketpair: {e}"))
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))
}

/// A pipe for relayed output. Enlarged to 1 MiB where the system allows (best effort: the
/// default 64 KiB is correct, just slower), so the relay makes fewer, larger reads.
fn optional_pipe(wanted: bool) -> Result<Option<(OwnedFd, OwnedFd)>, String> {
    if !wanted {
        return Ok(None);
    }
    let (read, write) = pipe()?;
    let _ = nix::fcntl::fcntl(
        &write,
        nix::fcntl::FcntlArg::F_SETPIPE_SZ(RELAY_PIPE as i32),
    );
    Ok(Some((read, write)))
}

/// What the command gets as descriptor 0.
///
/// When output is captured, the caller's stdin must not reach the command as it is: a
/// socketpair (how node wires a child's stdio) or a terminal is writable, so the command
/// could write to descriptor 0 past the output limit and outside the stdout hash. It gets a
/// pipe cw-exec feeds from its own stdin instead (writes to it fail with EBADF), or
/// /dev/null when there is nothing to read.
enum StdinPlan {
    /// Nothing is captured: the caller's descriptor 0, untouched.
    Inherit,
    /// /dev/null, read-only: cw-exec's stdin is /dev/null, closed, or not readable.
    Null(OwnedFd),
    /// A pipe: the command reads `child`; cw-exec copies its own stdin into `feed`.
    Relay { child: OwnedFd, feed: OwnedFd },
}

impl StdinPlan {
    fn new(capture: Capture) -> Result<StdinPlan, String> {
        if !(capture.stdout || capture.stderr) {
            return Ok(StdinPlan::Inherit);
        }
        let null = || {
            nix::fcntl::open(
                "/dev/null",
                nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .map(StdinPlan::Null)
            .map_err(|e| format!("/dev/null: {e}"))
        };
        let stdin = std::io::stdin();
        let Ok(st) = nix::sys::stat::fstat(stdin.as_fd()) else {
            return null();
        };
        let is_null =
            st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == libc::makedev(1, 3);
        // An O_PATH descriptor (its access mode reads as O_RDONLY) cannot be read or polled.
        let readable = nix::fcntl::fcntl(stdin.as_fd(), nix::fcntl::FcntlArg::F_GETFL)
            .map(|fl| fl & libc::O_ACCMODE != libc::O_WRONLY && fl & libc::O_PATH == 0)
            .unwrap_or(false);
        if is_null || !readable {
            return null();
        }
        let (child, feed) = pipe()?;
        // Only our own end is non-blocking: the relay never waits on the command. The
        // caller's descriptor keeps its flags (its file description may be shared).
        nix::fcntl::fcntl(
            &feed,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )
        .map_err(|e| format!("stdin pipe: {e}"))?;
        Ok(StdinPlan::Relay { child, feed })
    }

    fn describe(&self) -> &'static str {
        match self {
            StdinPlan::Inherit => "inherited",
            StdinPlan::Null(_) => "/dev/null",
            StdinPlan::Relay { .. } => "relayed through a pipe",
        }
    }
}

/// cw-exec's side of the stdin relay: reads its own stdin only when the pipe has room
/// (backpressure), never blocks on the pipe, and closes it at EOF so the command sees EOF.
struct StdinRelay {
    /// Still reading cw-exec's stdin (false after EOF, an error, or the command's side closing).
    reading: bool,
    /// The pipe's write end, until the relay is done.
    feed: Option<OwnedFd>,
    buf: Vec<u8>,
    /// Bytes of `buf` already written.
    done: usize,
}

impl StdinRelay {
    fn new(feed: Option<OwnedFd>) -> StdinRelay {
        StdinRelay {
            reading: feed.is_some(),
            feed,
            buf: Vec::new(),
            done: 0,
        }
    }

    fn pending(&self) -> bool {
        self.done < self.buf.len()
    }

    /// Whether to poll cw-exec's stdin for input now.
    fn wants_input(&self) -> bool {
        self.reading && self.feed.is_some() && !self.pending()
    }

    /// Reads what cw-exec's stdin has (it reported readable).
    fn read_input(&mut self) {
        self.buf.resize(STDIN_BUFFER, 0);
        self.done = 0;
        match nix::unistd::read(std::io::stdin().as_fd(), &mut self.buf) {
            Ok(0) => {
                self.buf.clear();
                self.reading = false;
            }
            Ok(n) => self.buf.truncate(n),
            Err(nix::errno::Errno::EINTR) | Err(nix::errno::Errno::EAGAIN) => self.buf.clear(),
            Err(_) => {
                self.buf.clear();
                self.reading = false;
            }
        }
        self.flush();
    }

    /// Writes what is pending, as far as the pipe takes it; at the end of input, closes it.
    fn flush(&mut self) {
        let Some(feed) = self.feed.as_ref() else {
            return;
        };
        while self.pending() {
            match nix::unistd::write(feed, &self.buf[self.done..]) {
                Ok(n) => self.done += n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::EAGAIN) => return,
                Err(_) => {
                    // The command's side is closed (EPIPE): stop taking the caller's input.
                    self.close();
                    return;
                }
            }
        }
        if !self.reading {
            self.close();
        }
    }

    fn close(&mut self) {
        self.feed = None;
        self.reading = false;
        self.buf = Vec::new();
        self.done = 0;
    }
}

/// The sandbox's own terminal, when cw-exec's stdin and stdout are terminals and nothing
/// captures output (no envelope, no protocol front end, no output limit): with it the
/// command's session has a controlling terminal, so the terminal's Ctrl-C reaches the
/// sandbox's whole foreground process group and shells do job control. Without a pty
/// (none can be opened here), the command shares cw-exec's terminal as before, and says so.
fn sandbox_terminal(capture: Capture) -> Option<Pty> {
    if capture.stdout || capture.stderr {
        return None;
    }
    let (stdin, stdout) = (std::io::stdin(), std::io::stdout());
    if !(pty::is_terminal(stdin.as_fd()) && pty::is_terminal(stdout.as_fd())) {
        return None;
    }
    match Pty::open(stdin.as_fd()) {
        Ok(p) => Some(p),
        Err(e) => {
            eprintln!(
                "cw-exec: no terminal of the sandbox's own ({e}): the command shares this one, without job control"
            );
            None
        }
    }
}

/// cw-exec's side of the sandbox's terminal during the run.
struct TerminalRelay {
    master: OwnedFd,
    /// The caller's terminal in raw mode until this is dropped (None if it could not be).
    raw: Option<RawMode>,
}

/// Bytes of cw-exec's stdin read at once for the relay (the pipe holds 64 KiB).
const STDIN_BUFFER: usize = 64 << 10;

/// Bytes read from a relayed stream at once at most (the pipe holds `RELAY_PIPE`). Stdout
/// has up to `HASH_BUFFERS` buffers of this size (see `StdoutHasher`): with stderr's, the
/// relay's memory is bounded by 2 MiB, touched only as output arrives.
const RELAY_BUFFER: usize = 512 << 10;

/// The pipe size requested for relayed output.
const RELAY_PIPE: usize = 1 << 20;

fn supervise(plan: &Plan, capture: Capture) -> Outcome {
    let host_ns = namespace_inodes("self");

    // A caller may have left SIGCHLD ignored (a disposition execve keeps): then the kernel
    // reaps cw-exec's and init's children itself and sends no SIGCHLD, and neither would
    // ever see its child end (the run would hang). Init inherits the default from here.
    if let Err(e) = sys::default_disposition(libc::SIGCHLD) {
        return refused("SIGCHLD's default disposition", e.to_string());
    }
    // Signals we forward or watch are blocked and read through a signalfd; init inherits
    // the mask and waits for them synchronously.
    let terminal = sandbox_terminal(capture);
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    for sig in FORWARDED {
        mask.add(sig);
    }
    if terminal.is_some() {
        // The window size follows the caller's; raw mode comes back after a stop.
        mask.add(Signal::SIGWINCH);
        mask.add(Signal::SIGCONT);
    }
    if let Err(e) = mask.thread_block() {
        return refused("blocking signals", e.to_string());
    }
    let signals = match SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
    {
        Ok(fd) => fd,
        Err(e) => return refused("signalfd", e.to_string()),
    };
    let pipes = (|| {
        Ok::<_, String>((
            go_channel()?,
            pipe()?,
            optional_pipe(capture.stdout)?,
            optional_pipe(capture.stderr)?,
        ))
    })();
    let ((go_read, go_write), (report_read, report_write), stdout_pipe, stderr_pipe) = match pipes {
        Ok(p) => p,
        Err(e) => return refused("pipes", e),
    };
    // The egress proxy's channel: init sends the listening socket it made in the sandbox's
    // network namespace.
    let proxy_channel = match &plan.proxy {
        Some(_) => match nix::sys::socket::socketpair(
            nix::sys::socket::AddressFamily::Unix,
            nix::sys::socket::SockType::Stream,
            None,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        ) {
            Ok(pair) => Some(pair),
            Err(e) => return refused("egress proxy channel", e.to_string()),
        },
        None => None,
    };
    let stdin = match StdinPlan::new(capture) {
        Ok(s) => s,
        Err(e) => return refused("stdin", e),
    };
    let stdin_described = if terminal.is_some() {
        "the sandbox's own terminal (a pty cw-exec relays)"
    } else {
        stdin.describe()
    };
    let sandbox_side = terminal.as_ref().map(|t| t.sandbox.clone());

    // Limits that bind the sandbox as a whole are in place before the command runs: a v2
    // cgroup before the clone (init is born in it); v1 ones while init builds the sandbox.
    let (mut cgroups, mut self_join) = match containment::limits_before_clone(plan) {
        Ok(Some((c, h))) => (Some(c), Some(h)),
        Ok(None) => (None, None),
        Err(e) => return refused(CGROUPS_STEP, e),
    };
    if cgroups.is_some() {
        crate::timings::mark("cgroups created");
    }

    // Init is born in the run's v2 cgroup where the kernel allows it (clone3); else (an old
    // kernel, or a seccomp filter answering clone3 with ENOSYS, as container runtimes do)
    // it is moved in after the clone, in `identity_and_limits`, which binds the same.
    let placement = Placement::new();
    let flags = containment::namespace_flags(plan);
    // Landlock tier (no PID namespace): cw-exec is the subreaper of the run, so that if init
    // dies before it ended every process of the run (SIGKILLed by cw-exec past the grace of
    // a timeout or of the CPU limit, or by the OOM killer), its orphans become cw-exec's children,
    // which `relay` then kills, instead of the host's init's, which would let them live on.
    if plan.tier == Tier::Landlock {
        if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
            return refused(
                "landlock tier: subreaper",
                format!("cw-exec cannot become the subreaper of the run's processes: {e}"),
            );
        }
    }
    let v2_dir = cgroups.as_ref().and_then(RunCgroups::v2_dir);
    let born_in_cgroup = v2_dir
        .as_ref()
        .map(|dir| sys::clone_into_cgroup(flags, dir.as_fd()))
        .filter(Result::is_ok);
    let v2_joined = born_in_cgroup.is_some();
    let cloned = match born_in_cgroup {
        Some(result) => result,
        None => sys::clone_into_namespaces(flags),
    };
    let init = match cloned {
        Ok(Some(pid)) => pid,
        Ok(None) => {
            drop((go_write, report_read, signals));
            let redirect = |pipe: Option<(OwnedFd, OwnedFd)>, dup: fn(&OwnedFd) -> nix::Result<()>| {
                if let Some((read, write)) = pipe {
                    drop(read);
                    if dup(&write).is_err() {
                        std::process::exit(EXIT_REFUSED);
                    }
                }
            };
            redirect(stdout_pipe, |fd| nix::unistd::dup2_stdout(fd));
            redirect(stderr_pipe, |fd| nix::unistd::dup2_stderr(fd));
            let stdin_fd = match stdin {
                StdinPlan::Inherit => None,
                StdinPlan::Null(fd) => Some(fd),
                // The write end goes, or the command would never see EOF.
                StdinPlan::Relay { child, feed } => {
                    drop(feed);
                    Some(child)
                }
            };
            if let Some(fd) = stdin_fd {
                if nix::unistd::dup2_stdin(&fd).is_err() {
                    std::process::exit(EXIT_REFUSED);
                }
            }
            if let Some(Pty { master, slave, .. }) = terminal {
                drop(master);
                let stderr_too = pty::is_terminal(std::io::stderr().as_fd());
                let dup = nix::unistd::dup2_stdin(&slave)
                    .and_then(|_| nix::unistd::dup2_stdout(&slave))
                    .and_then(|_| match stderr_too {
                        true => nix::unistd::dup2_stderr(&slave),
                        false => Ok(()),
                    });
                if dup.is_err() {
                    std::process::exit(EXIT_REFUSED);
                }
            }
            let channel = proxy_channel.map(|(ours, theirs)| {
                drop(ours);
                theirs
            });
            // The parent's to remove, not ours: only the descriptors it held go.
            if let Some(c) = cgroups {
                c.disown();
            }
            drop((v2_dir, self_join)); // init gets the tasks files over the go channel
            child::init_main(
                plan,
                sandbox_side.as_ref(),
                &host_ns,
                placement.as_ref(),
                (go_read, report_write),
                channel,
            )
        }
        Err(e) => {
            return refused(
                USERNS_STEP,
                format!(
                    "cannot create the sandbox's namespaces (clone: {e}); user namespaces are unavailable to this user{}",
                    if e.raw_os_error() == Some(libc::EPERM) || e.raw_os_error() == Some(libc::ENOSPC) {
                        " (a seccomp filter such as a container runtime's default profile, or kernel.unprivileged_userns_clone, user.max_user_namespaces, AppArmor's restrict_unprivileged_userns)"
                    } else {
                        ""
                    }
                ),
            )
        }
    };
    // Off this CPU at once, where it would wait for everything below (`kernel::placement`).
    if let Some(p) = &placement {
        p.place_init(init);
    }
    crate::timings::mark("namespaces created (clone)");
    drop((go_read, report_write));
    let stdout_read = stdout_pipe.map(|(read, _write)| read);
    let stderr_read = stderr_pipe.map(|(read, _write)| read);
    let mut stdin_feed = match stdin {
        StdinPlan::Relay { feed, .. } => Some(feed),
        _ => None,
    };
    // The sandbox's terminal: init holds the slave now (the master reads EIO once every
    // process of the sandbox has closed it); cw-exec's stdin is fed to the master.
    let terminal = match terminal {
        Some(Pty { master, slave, .. }) => {
            drop(slave);
            let feed = nix::fcntl::fcntl(
                &master,
                nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
            )
            .map_err(std::io::Error::from)
            .and_then(|_| master.try_clone());
            match feed {
                Ok(feed) => {
                    stdin_feed = Some(feed);
                    Some(master)
                }
                Err(e) => {
                    return abandon(init, "terminal", format!("the sandbox's pty: {e}"));
                }
            }
        }
        None => None,
    };

    drop(v2_dir);
    let v2_to_join = cgroups.as_ref().filter(|_| !v2_joined);
    if let Err(e) = containment::identity_and_limits(plan, init, v2_to_join) {
        return abandon_after_init(init, &report_read, "sandbox set-up", e);
    }
    crate::timings::mark("identity mapped");
    let _ = nix::unistd::write(&go_write, b"g");
    // Init builds the sandbox meanwhile (it starts the command only once the limits are
    // complete, `containment::hand_over_limits`).
    match containment::limits_after_clone(plan) {
        Ok(Some((c, h))) => (cgroups, self_join) = (Some(c), Some(h)),
        Ok(None) => {}
        Err(e) => {
            return abandon(init, CGROUPS_STEP, e);
        }
    }
    // Where the command must show itself in the run's cgroups, sent with them: its process
    // checks that before execve.
    let membership = match cgroups
        .as_ref()
        .map(|c| c.membership(plan.tier == Tier::Namespaces, v2_joined))
        .transpose()
    {
        Ok(m) => m,
        Err(e) => return abandon(init, CGROUPS_STEP, e),
    };
    // The command's Landlock ruleset, made here while init builds the view.
    let ruleset = match containment::prepare_landlock(plan) {
        Ok(r) => r,
        Err(e) => return abandon(init, "landlock", e),
    };
    if let Err(e) = containment::hand_over_limits(
        &go_write,
        self_join.as_ref(),
        membership.as_ref(),
        ruleset.descriptor(),
    ) {
        return abandon_after_init(init, &report_read, CGROUPS_STEP, e);
    }
    drop(ruleset);
    // The go channel stays open until the run is over: only cw-exec's death closes it
    // before then, which is how init tells a parent that died before its parent-death
    // signal was set (`containment::cw_exec_died`).
    drop(self_join);
    crate::timings::mark("cgroups handed to init");
    // The caller's terminal goes raw only now, after the last early return above, and
    // comes back when `relay` drops the guard (or a panic runs its hook).
    let terminal = terminal.map(|master| TerminalRelay {
        master,
        raw: RawMode::enter(std::io::stdin().as_fd()).ok(),
    });
    // The proxy starts serving as soon as init hands over its socket (connections queue on it
    // until then); init ending first (a failed step) closes the channel instead.
    let proxy = match (proxy_channel, &plan.proxy) {
        (Some((ours, theirs)), Some(policy)) => {
            drop(theirs);
            match sys::receive_fd(&ours).map(|fd| crate::proxy::Proxy::start(fd, policy.clone())) {
                Some(Ok(p)) => Some(p),
                Some(Err(e)) => {
                    return abandon(init, "egress proxy", e);
                }
                None => None,
            }
        }
        _ => None,
    };

    let mut outcome = relay(
        plan,
        init,
        signals,
        report_read,
        (stdout_read, stderr_read),
        StdinRelay::new(stdin_feed),
        terminal,
        cgroups.as_ref(),
        capture.forward_stdout,
    );
    outcome.stdin = stdin_described;
    if let Some(p) = proxy {
        outcome.net_decisions = p.finish();
    }
    observe_limits(plan, &mut outcome, cgroups.as_ref());
    check_membership(&mut outcome, cgroups.as_ref(), membership.as_ref());
    // The cgroups can be removed only once init has left them, at the very end of its exit
    // (after the kernel tore down its namespaces). Without cgroups nothing waits for that:
    // init is reaped now if it is done, or by whoever reaps cw-exec's children later.
    if cgroups.is_some() && !outcome.init_left_cgroups {
        let _ = reap(init);
        crate::timings::mark("init reaped (its cgroups are removed next)");
    } else {
        let _ = waitpid(init, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
    }
    outcome
}

/// The command's membership of the run's cgroups, from its read-back (its own
/// /proc/self/cgroup, read just before execve) against the membership cw-exec sent with the
/// cgroups (`expected`), checked again here — the command's process checked it before
/// execve, and refused the run there on a mismatch. Recorded with the limits
/// (`limits_observed`, file "cgroup"); where it is not proven, the run is refused (exit 125)
/// and no limit is claimed. A run without a read-back ran nothing to check.
fn check_membership(
    outcome: &mut Outcome,
    cgroups: Option<&RunCgroups>,
    expected: Option<&crate::kernel::cgroup::Membership>,
) {
    let (Some(c), Some(rb)) = (cgroups, outcome.readback.as_ref()) else {
        return;
    };
    let seen = match expected {
        Some(m) => c.observed_membership(m, &rb.cgroups),
        None => Err("no membership was expected of the run's cgroups".into()),
    };
    match seen {
        Ok(seen) => outcome.limits_observed.extend(seen),
        Err(why) => {
            if outcome.refusal.is_none() {
                outcome.refusal = Some(step_failed(
                    CGROUPS_STEP,
                    format!("the kernel read-back does not prove the command is in the run's cgroups: {why}"),
                ));
                outcome.exit_code = EXIT_REFUSED;
            }
        }
    }
}

/// Waits for `init` to end (once reaped, ECHILD).
fn reap(init: Pid) -> nix::Result<WaitStatus> {
    loop {
        match waitpid(init, None) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => return other,
        }
    }
}

/// The whole process tree of the run goes at once (a forwarded signal's `--kill-after`
/// grace is over, or the CPU limit is past). The namespaces tier: init is SIGKILLed, and
/// every process of its PID namespace dies with it. The Landlock tier, where no namespace
/// ends them: init is asked (TERMINATE_TREE) to SIGKILL every process of the run, of which
/// it is the subreaper, and then to end, which it does even if cw-exec dies meanwhile (its
/// parent-death signal is the same request); past the grace a timeout gets (`kill_at`),
/// init is SIGKILLed, and cw-exec, the run's subreaper, ends what it left. (SIGKILLing init
/// first left the run to cw-exec's own walk, which a SIGKILL of cw-exec could cut short.)
fn kill_the_tree(tier: Tier, init: Pid, kill_at: &mut Option<Instant>, now: Instant) {
    match tier {
        Tier::Namespaces => {
            let _ = kill(init, Signal::SIGKILL);
        }
        Tier::Landlock => {
            let _ = kill(init, TERMINATE_TREE);
            kill_at.get_or_insert(now + KILL_GRACE);
        }
    }
}

/// What the limits did to the run, read once it ended: OOM kills and refused forks from the
/// cgroups, and a command killed by the signal of its CPU or file-size rlimit. A limit that
/// ends the run has one exit code whichever mechanism stopped it first (README "Exit codes").
fn observe_limits(plan: &Plan, outcome: &mut Outcome, cgroups: Option<&RunCgroups>) {
    if let Some(c) = cgroups {
        outcome.oom_killed = c.oom_killed();
        outcome.pids_refused = c.pids_refused();
        outcome.limits_observed = c.observed();
    }
    let limited = |limit: &str| plan.limits.reports.iter().any(|r| r.limit == limit);
    let ran = outcome.refusal.is_none() && outcome.exec_error.is_none() && !outcome.timed_out;
    // Killed by the limit's signal, or exited 128 + it: a shell's code for a child killed so.
    let ended_by = |sig: i32| {
        ran && (outcome.signal == Some(sig)
            || (outcome.signal.is_none() && outcome.child_code == Some(128 + sig)))
    };
    if ended_by(libc::SIGXCPU) && limited("cpu") {
        // RLIMIT_CPU stopped a process before the whole-sandbox accounting saw the total.
        outcome.cpu_exceeded = true;
        outcome.exit_code = EXIT_CPU;
    }
    if ended_by(libc::SIGXFSZ) && limited("fsize") {
        outcome.fsize_exceeded = true;
    }
    // The memory limit killed init before the command ran: say that, not "init ended".
    if let (true, Some(r)) = (outcome.oom_killed, outcome.refusal.as_mut()) {
        if r.mechanism.as_deref() == Some("init") {
            r.message = format!(
                "the sandbox reached its memory limit ({} bytes) before the command started: the kernel OOM-killed its init ({})",
                plan.limits.cgroups.memory.as_ref().map_or(0, |(b, _)| *b),
                r.message
            );
        }
    }
}

/// Hashes stdout straight from the buffers the relay reads it into: nothing is copied for
/// the hash. The relay reads into the free end of the current buffer, passes the bytes on,
/// and counts as hashed exactly the bytes that were passed on (`passed`). Once a buffer
/// holds `HASH_CHUNK` bytes it goes, not a copy of it, to a hashing thread (so SHA-256, the
/// slowest part of pass-through, overlaps with relaying), which gives it back when done; at
/// most `HASH_BUFFERS` exist, so a relay faster than the hash waits for one (and the
/// command's pipe fills: reads get larger). Output smaller than one chunk is hashed at the
/// end without a thread. The thread starts after the sandbox was cloned: cw-exec is
/// single-threaded whenever it forks.
struct StdoutHasher {
    /// `RELAY_BUFFER` bytes; the first `filled` are passed on and not yet hashed.
    buf: Vec<u8>,
    filled: usize,
    hashing: Hashing,
}

enum Hashing {
    /// Nothing handed over yet.
    NotYet,
    /// Chunks go to the hashing thread.
    Thread(HashThread),
    /// The thread could not be started: chunks are hashed here.
    Inline(Box<Sha256>),
}

struct HashThread {
    full: std::sync::mpsc::SyncSender<(Vec<u8>, usize)>,
    spare: std::sync::mpsc::Receiver<Vec<u8>>,
    /// Buffers made so far (at most `HASH_BUFFERS`).
    made: usize,
    thread: std::thread::JoinHandle<String>,
}

/// Bytes of stdout a buffer holds before it is handed to the hashing thread.
const HASH_CHUNK: usize = 128 << 10;

/// Stdout buffers at most: one being filled, the others queued or being hashed.
const HASH_BUFFERS: usize = 3;

impl StdoutHasher {
    fn new() -> StdoutHasher {
        StdoutHasher {
            // Zeroed memory from the allocator: pages are touched only as output arrives.
            buf: vec![0; RELAY_BUFFER],
            filled: 0,
            hashing: Hashing::NotYet,
        }
    }

    /// Where the next read of stdout goes.
    fn space(&mut self) -> &mut [u8] {
        &mut self.buf[self.filled..]
    }

    /// The first `n` bytes of `space()` were passed on: they are hashed.
    fn passed(&mut self, n: usize) {
        self.filled += n;
        if self.filled >= HASH_CHUNK {
            self.hand_off();
        }
    }

    fn hand_off(&mut self) {
        if matches!(self.hashing, Hashing::NotYet) {
            self.hashing = HashThread::start()
                .map(Hashing::Thread)
                .unwrap_or_else(|| Hashing::Inline(Box::default()));
        }
        match &mut self.hashing {
            Hashing::Thread(t) => {
                let next = t.buffer();
                let full = std::mem::replace(&mut self.buf, next);
                // The thread ends only when `full` is dropped (hashing does not panic).
                t.full
                    .send((full, self.filled))
                    .expect("the stdout hashing thread ended early");
            }
            Hashing::Inline(h) => h.update(&self.buf[..self.filled]),
            Hashing::NotYet => unreachable!(),
        }
        self.filled = 0;
    }

    fn finish(mut self) -> String {
        if let Hashing::NotYet = self.hashing {
            return hex(&Sha256::digest(&self.buf[..self.filled]));
        }
        if self.filled > 0 {
            self.hand_off();
        }
        match self.hashing {
            Hashing::Thread(t) => {
                drop(t.full);
                t.thread.join().expect("the stdout hashing thread failed")
            }
            Hashing::Inline(h) => hex(&h.finalize()),
            Hashing::NotYet => unreachable!(),
        }
    }
}

impl HashThread {
    fn start() -> Option<HashThread> {
        let (full, incoming) = std::sync::mpsc::sync_channel::<(Vec<u8>, usize)>(HASH_BUFFERS);
        let (give_back, spare) = std::sync::mpsc::sync_channel::<Vec<u8>>(HASH_BUFFERS);
        let thread = std::thread::Builder::new()
            .name("stdout-sha256".into())
            .stack_size(HASH_STACK)
            .spawn(move || {
                let mut hasher = Sha256::new();
                for (chunk, len) in incoming {
                    hasher.update(&chunk[..len]);
                    let _ = give_back.try_send(chunk);
                }
                hex(&hasher.finalize())
            })
            .ok()?;
        Some(HashThread {
            full,
            spare,
            made: 1,
            thread,
        })
    }

    /// An empty buffer: one the thread gave back, a new one while fewer than `HASH_BUFFERS`
    /// exist, or else the next one the thread gives back.
    fn buffer(&mut self) -> Vec<u8> {
        if let Ok(b) = self.spare.try_recv() {
            return b;
        }
        if self.made < HASH_BUFFERS {
            self.made += 1;
            return vec![0; RELAY_BUFFER];
        }
        self.spare.recv().unwrap_or_else(|_| vec![0; RELAY_BUFFER])
    }
}

/// The hashing thread's stack: SHA-256 needs little.
const HASH_STACK: usize = 64 << 10;

/// One relayed output stream.
struct Stream {
    fd: Option<OwnedFd>,
    kind: Out,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Out {
    /// The command's stdout: hashed, limited, passed on to cw-exec's stdout.
    Stdout,
    /// Its stderr: limited, passed on to cw-exec's stderr.
    Stderr,
    /// The sandbox's pty master: passed on to cw-exec's terminal as is.
    Terminal,
}

#[allow(clippy::too_many_arguments)]
fn relay(
    plan: &Plan,
    init: Pid,
    signals: SignalFd,
    report: OwnedFd,
    (stdout, stderr): (Option<OwnedFd>, Option<OwnedFd>),
    mut stdin: StdinRelay,
    terminal: Option<TerminalRelay>,
    cgroups: Option<&RunCgroups>,
    forward_stdout: bool,
) -> Outcome {
    let mut outcome = Outcome::default();
    let mut report_file = Some(std::fs::File::from(report));
    // How init ended, where it was reaped early (`report_file`'s end, Landlock tier).
    let mut init_status: Option<nix::Result<WaitStatus>> = None;
    let mut report_buf: Vec<u8> = Vec::new();
    let mut hasher = stdout.as_ref().map(|_| StdoutHasher::new());
    let mut streams = [
        Stream {
            fd: stdout,
            kind: Out::Stdout,
        },
        Stream {
            fd: stderr,
            kind: Out::Stderr,
        },
        Stream {
            fd: terminal.as_ref().and_then(|t| t.master.try_clone().ok()),
            kind: Out::Terminal,
        },
    ];
    let mut output_budget = plan.limits.output.unwrap_or(u64::MAX);
    let mut buf = vec![0u8; RELAY_BUFFER];
    let deadline = plan.timeout.map(|t| Instant::now() + t);
    let cpu_limit = plan.limits.cpu_total.filter(|_| cgroups.is_some());
    let mut kill_at: Option<Instant> = None;
    // `--kill-after` the first forwarded SIGTERM, SIGINT or SIGHUP.
    let mut grace_ends: Option<Instant> = None;
    let mut exit_message: Option<(Option<i32>, Option<i32>)> = None;

    while report_file.is_some() || streams.iter().any(|s| s.fd.is_some()) {
        let now = Instant::now();
        if let Some(at) = kill_at {
            if now >= at {
                let _ = kill(init, Signal::SIGKILL);
                kill_at = None;
            }
        } else if let Some(d) = deadline {
            if now >= d && !outcome.timed_out {
                outcome.timed_out = true;
                let _ = kill(init, TERMINATE_TREE);
                kill_at = Some(now + KILL_GRACE);
            }
        }
        if let Some(at) = grace_ends {
            if now >= at {
                grace_ends = None;
                if exit_message.is_none() {
                    // The command did not end when asked: the whole tree goes.
                    outcome.killed_after = Some(plan.kill_after);
                    kill_the_tree(plan.tier, init, &mut kill_at, now);
                }
            }
        }
        if let (Some(limit), Some(c), false) = (cpu_limit, cgroups, outcome.cpu_exceeded) {
            if c.cpu_used().map(|used| used > limit).unwrap_or(false) {
                outcome.cpu_exceeded = true;
                kill_the_tree(plan.tier, init, &mut kill_at, now);
            }
        }
        let mut wake = [
            kill_at,
            grace_ends,
            if outcome.timed_out { None } else { deadline },
        ]
        .into_iter()
        .flatten()
        .min()
        .map(|t| t.saturating_duration_since(Instant::now()));
        if cpu_limit.is_some() {
            wake = Some(wake.map_or(CPU_POLL, |w| w.min(CPU_POLL)));
        }
        let timeout = match wake {
            Some(d) => PollTimeout::try_from(d.as_millis().min(60_000) as i32 + 1)
                .unwrap_or(PollTimeout::MAX),
            None => PollTimeout::NONE,
        };

        let mut fds = vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
        let report_idx = report_file.as_ref().map(|f| {
            fds.push(PollFd::new(f.as_fd(), PollFlags::POLLIN));
            fds.len() - 1
        });
        let stream_idx: Vec<Option<usize>> = streams
            .iter()
            .map(|s| {
                s.fd.as_ref().map(|f| {
                    fds.push(PollFd::new(f.as_fd(), PollFlags::POLLIN));
                    fds.len() - 1
                })
            })
            .collect();
        let caller_stdin = std::io::stdin();
        let input_idx = stdin.wants_input().then(|| {
            fds.push(PollFd::new(caller_stdin.as_fd(), PollFlags::POLLIN));
            fds.len() - 1
        });
        // With bytes pending, wait for room; otherwise still watch for the command's side
        // closing (POLLERR), so the relay stops taking the caller's input.
        let feed_idx = stdin.feed.as_ref().map(|f| {
            let events = if stdin.pending() {
                PollFlags::POLLOUT
            } else {
                PollFlags::empty()
            };
            fds.push(PollFd::new(f.as_fd(), events));
            fds.len() - 1
        });
        match poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break,
        }
        let ready = |i: Option<usize>| {
            i.and_then(|i| fds[i].revents())
                .map(|r| r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR))
                .unwrap_or(false)
        };
        let sig_ready = ready(Some(0));
        let report_ready = ready(report_idx);
        let streams_ready: Vec<bool> = stream_idx.iter().map(|i| ready(*i)).collect();
        // POLLNVAL too: a descriptor poll cannot watch would otherwise be reported at once
        // forever, and never read (a busy loop; the command never sees end of input).
        let input_ready = ready(input_idx)
            || input_idx
                .and_then(|i| fds[i].revents())
                .is_some_and(|r| r.contains(PollFlags::POLLNVAL));
        let feed_ready = feed_idx
            .and_then(|i| fds[i].revents())
            .map(|r| r.intersects(PollFlags::POLLOUT | PollFlags::POLLERR | PollFlags::POLLHUP))
            .unwrap_or(false);
        drop(fds);

        if feed_ready {
            if stdin.pending() {
                stdin.flush();
            } else {
                // Readable-side closed: nothing more can reach the command.
                stdin.close();
            }
        }
        if input_ready {
            stdin.read_input();
        }

        if sig_ready {
            while let Ok(Some(info)) = signals.read_signal() {
                let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else {
                    continue;
                };
                match (sig, terminal.as_ref()) {
                    (Signal::SIGCHLD, _) => {}
                    (Signal::SIGWINCH, Some(t)) => {
                        pty::copy_window_size(std::io::stdin().as_fd(), t.master.as_fd())
                    }
                    (Signal::SIGCONT, Some(t)) => {
                        if let Some(raw) = &t.raw {
                            raw.reapply();
                        }
                        pty::copy_window_size(std::io::stdin().as_fd(), t.master.as_fd());
                    }
                    (Signal::SIGWINCH | Signal::SIGCONT, None) => {}
                    (s, _) => {
                        // Init passes it on to the command's whole process group.
                        let _ = kill(init, s);
                        if ENDING_SIGNALS.contains(&s) && outcome.forwarded.is_none() {
                            outcome.forwarded = Some(s as i32);
                            grace_ends = Some(Instant::now() + plan.kill_after);
                        }
                    }
                }
            }
        }
        if report_ready {
            let f = report_file.as_mut().unwrap();
            match f.read(&mut buf) {
                Ok(0) | Err(_) => {
                    report_file = None;
                    if exit_message.is_none() && plan.tier == Tier::Landlock {
                        // Init is gone without having ended the run: what is left of it has
                        // been reparented to cw-exec (the run's subreaper). Init is reaped
                        // first: by then the kernel has handed over all of its children.
                        init_status = Some(reap(init));
                        containment::kill_descendants();
                    }
                }
                Ok(n) => report_buf.extend_from_slice(&buf[..n]),
            }
            while let Some(pos) = report_buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = report_buf.drain(..=pos).collect();
                match serde_json::from_slice::<Message>(&line) {
                    Ok(message) => {
                        apply(&mut outcome, &mut exit_message, message);
                        // Init's last word: every process of the run is gone by now.
                        if exit_message.is_some() {
                            report_file = None;
                        }
                    }
                    Err(e) => {
                        outcome.refusal.get_or_insert(step_failed(
                            "report",
                            format!("unreadable report from the sandbox: {e}"),
                        ));
                    }
                }
            }
        }
        for (stream, ready) in streams.iter_mut().zip(streams_ready) {
            if !ready {
                continue;
            }
            let fd = stream.fd.as_ref().unwrap();
            // Stdout is read straight into the hasher's buffer; the rest into `buf`.
            let into = match (stream.kind, hasher.as_mut()) {
                (Out::Stdout, Some(h)) => h.space(),
                _ => &mut buf[..],
            };
            let n = match nix::unistd::read(fd, into) {
                Ok(0) => {
                    stream.fd = None;
                    continue;
                }
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) | Err(nix::errno::Errno::EAGAIN) => continue,
                Err(_) => {
                    stream.fd = None;
                    continue;
                }
            };
            // Past the output limit, keep draining (so the command does not block) but drop.
            let pass = (n as u64).min(output_budget) as usize;
            output_budget -= pass as u64;
            outcome.output_dropped += (n - pass) as u64;
            if pass == 0 {
                continue;
            }
            let data = &into[..pass];
            let written = match stream.kind {
                Out::Stdout => {
                    let (sent, result) = if forward_stdout {
                        write_out(std::io::stdout().as_fd(), data)
                    } else {
                        (pass, Ok(()))
                    };
                    // The hash and the count cover exactly what was passed on.
                    if let Some(h) = hasher.as_mut() {
                        h.passed(sent);
                    }
                    outcome.stdout_bytes += sent as u64;
                    result
                }
                Out::Stderr => write_out(std::io::stderr().as_fd(), data).1,
                Out::Terminal => {
                    // A terminal that went away: keep draining the master, so nothing in
                    // the sandbox blocks on a full pty (its SIGHUP is forwarded).
                    let _ = write_out(std::io::stdout().as_fd(), data);
                    Ok(())
                }
            };
            if written.is_err() {
                // Our side is gone (a closed pipe): close the child's too, so it sees
                // EPIPE/SIGPIPE as it would have without cw-exec in between.
                stream.fd = None;
            }
        }
    }

    // Init reported the command's end only after every other process of the run was gone
    // (`containment::end_the_run`), so the run is over: its own exit, in which the kernel
    // tears down the namespaces, is not waited for here (`supervise` reaps it before
    // removing the cgroups). Without that report init ended some other way: reap it to learn
    // how.
    let status = match exit_message {
        Some(_) => None,
        None => Some(init_status.unwrap_or_else(|| reap(init))),
    };
    crate::timings::mark("command ran; every process of the run ended");
    outcome.stdout_sha256 = hasher.map(StdoutHasher::finish);
    if let Some((code, signal)) = exit_message {
        outcome.child_code = code;
        outcome.signal = signal;
    }
    outcome.exit_code = if outcome.timed_out {
        EXIT_TIMEOUT
    } else if outcome.cpu_exceeded {
        // The tree was SIGKILLed for it, by cw-exec rather than by the kernel.
        outcome.signal = Some(libc::SIGKILL);
        outcome.child_code = None;
        EXIT_CPU
    } else if outcome.refusal.is_some() {
        EXIT_REFUSED
    } else if outcome.exec_error.is_some() {
        outcome.exit_code
    } else if let Some((code, signal)) = exit_message {
        code.unwrap_or_else(|| 128 + signal.unwrap_or(0))
    } else if outcome.killed_after.is_some() {
        // SIGKILLed by cw-exec `--kill-after` a forwarded signal it did not end on.
        outcome.signal = Some(libc::SIGKILL);
        outcome.child_code = None;
        128 + libc::SIGKILL
    } else {
        // init ended without reporting the command's end: it was killed (OOM, SIGKILL).
        let why = match status {
            Some(Ok(WaitStatus::Signaled(_, sig, _))) => format!("killed by {sig:?}"),
            Some(Ok(WaitStatus::Exited(_, code))) => format!("exited with {code}"),
            other => format!("{other:?}"),
        };
        outcome.refusal = Some(step_failed(
            "init",
            format!("the sandbox's init ended before the command did ({why})"),
        ));
        125
    };
    outcome
}

/// Writes all of `data` to `fd` (cw-exec's stdout or stderr), waiting for room when the
/// caller gave a non-blocking descriptor. Returns how many bytes were written, all of them
/// unless the descriptor failed (a reader that went away), and that failure.
fn write_out(fd: std::os::fd::BorrowedFd<'_>, data: &[u8]) -> (usize, nix::Result<()>) {
    let mut sent = 0;
    while sent < data.len() {
        match nix::unistd::write(fd, &data[sent..]) {
            Ok(0) => return (sent, Err(nix::errno::Errno::EPIPE)),
            Ok(n) => sent += n,
            Err(nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::EAGAIN) => {
                let mut room = [PollFd::new(fd, PollFlags::POLLOUT)];
                if let Err(e) = poll(&mut room, PollTimeout::NONE) {
                    if e != nix::errno::Errno::EINTR {
                        return (sent, Err(e));
                    }
                }
            }
            Err(e) => return (sent, Err(e)),
        }
    }
    (sent, Ok(()))
}

fn apply(outcome: &mut Outcome, exit: &mut Option<(Option<i32>, Option<i32>)>, message: Message) {
    match message {
        Message::SetupError { step, message } => {
            outcome.refusal = Some(step_failed(&step, message))
        }
        Message::Refused {
            readback,
            unenforceable,
        } => {
            outcome.refusal = Some(Refusal::dimensions(
                &unenforceable,
                "read-back",
                format!(
                    "the kernel read-back does not prove: {}",
                    names(&unenforceable).join(", ")
                ),
            ));
            outcome.readback = Some(*readback);
        }
        Message::Readback { readback } => outcome.readback = Some(*readback),
        Message::ExecError { errno, message } => {
            outcome.exit_code = exec_failure_status(errno);
            outcome.exec_error = Some(message);
        }
        Message::Exit {
            code,
            signal,
            left_cgroups,
        } => {
            *exit = Some((code, signal));
            outcome.init_left_cgroups = left_cgroups;
        }
        Message::Timings { marks } => outcome.marks = marks,
    }
}
