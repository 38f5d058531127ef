//! Inside the sandbox: init (PID 1 of the new PID namespace) and the command's process,
//! with the whole containment order in `contain`.
//!
//! Process layout:
//!   cw-exec (host namespaces, supervises)
//!     └─ init   PID 1 in new user+mount+PID+IPC+UTS(+net) namespaces: builds the mount
//!        │      view, brings up loopback, then only reaps and forwards signals
//!        └─ command   PID 2: restricts itself step by step, reads back, execs
//! When init exits the kernel kills everything left in the PID namespace, and init dies
//! with cw-exec (PR_SET_PDEATHSIG), so no process outlives the run.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::attest::{self, KernelReadback, NamespacePair, Probe};
use crate::kernel::{landlock, mount_view};
use crate::model::{exec_failure_status, Dimension, NetMode, EXIT_REFUSED};
use crate::plan::{namespace_inodes, Plan};
use crate::sys;

/// Messages from inside the sandbox to cw-exec, one JSON object per line on the report pipe.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Message {
    /// A containment step failed; nothing was executed.
    SetupError { step: String, message: String },
    /// The read-back did not prove a required dimension; nothing was executed.
    Refused {
        readback: Box<KernelReadback>,
        unenforceable: Vec<Dimension>,
    },
    /// Every restriction is in place; execve comes next.
    Readback { readback: Box<KernelReadback> },
    /// execve failed with this errno.
    ExecError { errno: i32, message: String },
    /// The command ended (reported by init).
    Exit {
        code: Option<i32>,
        signal: Option<i32>,
    },
    /// Phase marks of init and the command's process (`--timings`).
    Timings { marks: Vec<(String, u64)> },
}

/// Signals cw-exec forwards to the command, and the one that means "timeout: TERM the tree".
pub const FORWARDED: [Signal; 4] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
];
pub const TERMINATE_TREE: Signal = Signal::SIGUSR1;

struct Reporter(std::fs::File);

impl Reporter {
    fn send(&mut self, message: &Message) {
        let mut line = serde_json::to_vec(message).unwrap_or_default();
        line.push(b'\n');
        // A failed write means cw-exec is gone; PDEATHSIG ends us shortly.
        let _ = self.0.write_all(&line);
    }
}

/// Init: PID 1 of the sandbox. Never returns.
pub fn init_main(plan: &Plan, host_ns: &BTreeMap<String, u64>, go: OwnedFd, report: OwnedFd) -> ! {
    let mut reporter = Reporter(std::fs::File::from(report));
    let code = match init(plan, host_ns, go, &mut reporter) {
        Ok(code) => code,
        Err((step, message)) => {
            reporter.send(&Message::SetupError { step, message });
            EXIT_REFUSED
        }
    };
    std::process::exit(code)
}

type StepError = (String, String);

fn step<T, E: std::fmt::Display>(name: &str, r: Result<T, E>) -> Result<T, StepError> {
    r.map_err(|e| (name.to_string(), e.to_string()))
}

fn init(
    plan: &Plan,
    host_ns: &BTreeMap<String, u64>,
    go: OwnedFd,
    reporter: &mut Reporter,
) -> Result<i32, StepError> {
    // The signals init waits for must be blocked, or sigwait would not see them (and, for
    // PID 1, unblocked signals without a handler are discarded).
    let mut wanted = SigSet::empty();
    wanted.add(Signal::SIGCHLD);
    wanted.add(TERMINATE_TREE);
    for sig in FORWARDED {
        wanted.add(sig);
    }
    step("blocking signals", wanted.thread_block())?;

    // Die with cw-exec. Then wait until it has written our uid/gid maps; EOF instead of the
    // byte means cw-exec died before that, so stop.
    step(
        "parent-death signal",
        nix::sys::prctl::set_pdeathsig(Signal::SIGKILL),
    )?;
    let mut byte = [0u8; 1];
    if step("waiting for cw-exec", nix::unistd::read(&go, &mut byte))? != 1 {
        return Ok(EXIT_REFUSED);
    }
    drop(go);
    crate::timings::mark("init: released by cw-exec");
    step("hostname", nix::unistd::sethostname("cw-exec"))?;
    step("mount view", mount_view::enter(&plan.view()))?;
    crate::timings::mark("init: mount view built and entered");
    // Landlock does not mediate exec of a memfd (it lives on an internal mount Landlock
    // exempts), so forbid executable memfds for the whole PID namespace (Linux 6.3); the
    // value cannot be lowered from inside. Only the host's root may write it; for everyone
    // else the seccomp program refuses memfds without MFD_NOEXEC_SEAL instead.
    if plan.memfd_sysctl {
        step(
            "vm.memfd_noexec=2",
            std::fs::write("/proc/sys/vm/memfd_noexec", "2"),
        )?;
    }
    if plan.net == NetMode::Loopback {
        step("loopback interface", sys::loopback_up())?;
    }

    // The command raises its own oom_score_adj (`prefer_for_oom_kill`) after /proc is sealed
    // read-only: a detached, still writable copy of the /proc mount, made before the seal,
    // lets it. Reachable by no path; init drops it after the fork, the command before
    // Landlock.
    let proc_handle = step("init: /proc handle for oom_score_adj", writable_proc_copy())?;
    // Per-user quotas (inotify, fanotify, namespaces) of this user namespace, lowered so the
    // sandbox cannot use up the caller's share on the host. After every namespace init
    // creates — a detached mount (`open_tree` clone) counts as a mount namespace too, and
    // this forbids creating more — and before /proc is sealed read-only.
    crate::kernel::quotas::lower_in_namespace(&plan.quotas);
    // Host kernel state is read-only in the view whatever the grants say, and so is the
    // sandbox's own /proc once init has written the sysctls above.
    let kernel_fs: Vec<&str> = crate::plan::KERNEL_STATE_FS
        .iter()
        .map(|(_, name)| *name)
        .collect();
    step(
        "read-only kernel state",
        mount_view::seal_kernel_state(&kernel_fs),
    )?;
    crate::timings::mark("init: memfd sysctl, loopback, kernel state sealed");
    // Init must not expose cw-exec's environment through /proc/1/environ. All before the
    // fork, so there is no moment at which the command runs while init is readable: init
    // is non-dumpable from here on (the command becomes dumpable again at its own execve),
    // and the environment block is zeroed in both copies (nothing reads it any more).
    step("init: not dumpable", nix::sys::prctl::set_dumpable(false))?;
    sys::scrub_initial_environment();
    // Nor cw-exec's arguments through /proc/1/cmdline, which any process may read.
    step(
        "init: scrubbing cw-exec's arguments",
        sys::scrub_initial_arguments(c"cw-exec-init"),
    )?;
    let command = match step("fork", sys::clone_into_namespaces(0))? {
        None => command_main(plan, host_ns, reporter, proc_handle),
        Some(pid) => pid,
    };
    drop(proc_handle);
    // Init needs no privilege from here on (the command's process drops its own).
    step("init: dropping capabilities", drop_capabilities())?;

    loop {
        let sig = match wanted.wait() {
            Ok(sig) => sig,
            Err(_) => continue,
        };
        match sig {
            Signal::SIGCHLD => loop {
                match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::Exited(pid, code)) if pid == command => {
                        reporter.send(&Message::Exit {
                            code: Some(code),
                            signal: None,
                        });
                        return Ok(code);
                    }
                    Ok(WaitStatus::Signaled(pid, sig, _)) if pid == command => {
                        reporter.send(&Message::Exit {
                            code: None,
                            signal: Some(sig as i32),
                        });
                        return Ok(128 + sig as i32);
                    }
                    Ok(WaitStatus::StillAlive) | Err(_) => break,
                    Ok(_) => continue,
                }
            },
            s if s == TERMINATE_TREE => {
                // kill(-1) from PID 1 reaches every other process in the namespace.
                let _ = kill(Pid::from_raw(-1), Signal::SIGTERM);
            }
            s => {
                let _ = kill(command, s);
            }
        }
    }
}

/// The command's process: restrict, read back, exec. Never returns.
fn command_main(
    plan: &Plan,
    host_ns: &BTreeMap<String, u64>,
    reporter: &mut Reporter,
    proc_handle: OwnedFd,
) -> ! {
    let argv = match plan.argv_c() {
        Ok(a) => a,
        Err(e) => {
            reporter.send(&Message::SetupError {
                step: "arguments".into(),
                message: e,
            });
            std::process::exit(EXIT_REFUSED)
        }
    };
    let envp = plan.envp();
    let command = crate::plan::c_path(&plan.command_path);

    let readback = match contain(plan, host_ns, &envp, proc_handle) {
        Ok(rb) => rb,
        Err((step, message)) => {
            reporter.send(&Message::SetupError { step, message });
            std::process::exit(EXIT_REFUSED)
        }
    };
    let verdict = attest::verdict(plan, &readback);
    if verdict.refused() {
        reporter.send(&Message::Refused {
            readback: Box::new(readback),
            unenforceable: verdict.unenforceable.clone(),
        });
        std::process::exit(EXIT_REFUSED)
    }
    reporter.send(&Message::Readback {
        readback: Box::new(readback),
    });
    if plan.timings {
        crate::timings::mark("command: read-back sent; execve next");
        reporter.send(&Message::Timings {
            marks: crate::timings::take(),
        });
    }

    sys::reset_signals_for_exec();
    let err = nix::unistd::execve(&command, &argv, &envp).unwrap_err();
    let hint = match err {
        Errno::ENOENT => {
            " (not present in the sandbox's view: grant its directory with --read or --exec)"
        }
        Errno::EACCES => " (denied: not on the exec allowlist, or not executable)",
        _ => "",
    };
    reporter.send(&Message::ExecError {
        errno: err as i32,
        message: format!("{}: {}{hint}", plan.command_path.display(), err.desc()),
    });
    std::process::exit(exec_failure_status(err as i32))
}

/// The containment order, in one place. Each step assumes the ones before it.
fn contain(
    plan: &Plan,
    host_ns: &BTreeMap<String, u64>,
    envp: &[std::ffi::CString],
    proc_handle: OwnedFd,
) -> Result<KernelReadback, StepError> {
    crate::timings::mark("command: forked");
    // 1. A new session: no controlling terminal, so TIOCSTI cannot reach the caller's.
    step("setsid", nix::unistd::setsid())?;
    // 2. The working directory, inside the view.
    step(
        &format!("chdir {}", plan.cwd.display()),
        std::env::set_current_dir(&plan.cwd),
    )?;
    // 2b. The OOM killer's first choice in the sandbox is the command, not init (before
    //     Landlock, which makes /proc read-only).
    step("oom_score_adj", prefer_for_oom_kill(proc_handle))?;
    // 3. No descriptor but 0, 1, 2 crosses execve (the report pipe is already CLOEXEC).
    step("close-on-exec for fds >= 3", sys::cloexec_from(3))?;
    // 4. no_new_privs: setuid bits and file capabilities grant nothing from here on; it is
    //    also what lets an unprivileged process install Landlock and seccomp.
    step("no_new_privs", nix::sys::prctl::set_no_new_privs())?;
    // 5. Landlock: filesystem allowlist, TCP (for --net none), scopes.
    let grants: Vec<_> = plan.all_grants().cloned().collect();
    let outcome = step(
        "landlock",
        landlock::restrict(plan.landlock, &grants, plan.net),
    )?;
    crate::timings::mark("command: session, cwd, fds, no_new_privs, landlock");
    let mut probes = Vec::new();
    if plan.net == NetMode::None && plan.landlock.has_tcp() {
        // Before seccomp, which would refuse the socket itself: Landlock alone must deny it.
        probes.push(probe(
            "tcp-connect",
            "connect(AF_INET, 127.0.0.1:9) before seccomp",
            "EACCES",
            tcp_connect_errno(),
        ));
    }
    // The set-id probe's memfd, made before the rlimits so that a low RLIMIT_NOFILE cannot
    // refuse it; it is closed again right after seccomp, before the read-back opens files.
    let setid_memfd = setid_probe_memfd();
    // 6. Resource limits a process carries itself (the cgroup ones were applied by cw-exec).
    step(
        "rlimits",
        crate::limits::apply_rlimits(&plan.limits.rlimits),
    )?;
    //    And the rlimit-backed per-user quotas (message-queue bytes, queued signals).
    crate::kernel::quotas::lower_rlimits(&plan.quotas);
    // 7. Capabilities: none, in any set, and uid 0 cannot regain them on execve.
    step("dropping capabilities", drop_capabilities())?;
    // The set-id probe's control, just before seccomp: S_ISUID on a memfd this process owns
    // is accepted here, so an EPERM for the same call after seccomp is seccomp's.
    let setid_control = setid_probe_control(setid_memfd);
    // 8. seccomp, last: after it, only the read-back and execve run.
    step("seccomp", plan.seccomp.install())?;
    let setid_chmod = setid_probe(setid_control);
    crate::timings::mark("command: rlimits, capabilities, seccomp");

    // Read-back.
    let proc_status =
        read_proc_status().map_err(|e| ("read-back /proc/self/status".to_string(), e))?;
    let sandbox_ns = namespace_inodes("self");
    let namespaces = sandbox_ns
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                NamespacePair {
                    sandbox: *v,
                    host: host_ns.get(k).copied().unwrap_or(0),
                },
            )
        })
        .collect();
    let canary = Path::new(mount_view::CANARY);
    probes.push(probe(
        "read-outside-grants",
        "open(/.cw-exec-canary, O_RDONLY)",
        "EACCES",
        open_errno(canary, libc::O_RDONLY),
    ));
    probes.push(probe(
        "write-outside-grants",
        "open(/.cw-exec-canary, O_WRONLY)",
        "EROFS",
        open_errno(canary, libc::O_WRONLY),
    ));
    probes.push(probe(
        "chmod-outside-grants",
        "chmod(/.cw-exec-canary, 0777)",
        "EROFS",
        errno_of(nix::sys::stat::fchmodat(
            nix::fcntl::AT_FDCWD,
            canary,
            nix::sys::stat::Mode::from_bits_truncate(0o777),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )),
    ));
    // Set-id bits: a mode change on a descriptor the process owns, and a creating open whose
    // target lies on the read-only root (without seccomp: EROFS, and nothing is created).
    probes.push(setid_chmod);
    probes.push(probe(
        "setid-create",
        "open(/.cw-exec-setid-probe, O_WRONLY|O_CREAT|O_EXCL, 06600)",
        "EPERM",
        errno_of(nix::fcntl::open(
            Path::new("/.cw-exec-setid-probe"),
            nix::fcntl::OFlag::O_WRONLY
                | nix::fcntl::OFlag::O_CREAT
                | nix::fcntl::OFlag::O_EXCL
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::from_bits_truncate(0o6600),
        )),
    ));
    if !plan.native_code {
        probes.push(probe(
            "native-code",
            "mmap(NULL, 4096, PROT_READ|PROT_EXEC, MAP_PRIVATE|MAP_ANONYMOUS)",
            "EPERM",
            name_of(sys::exec_anonymous_mmap_errno()),
        ));
    }
    // Landlock's write rights, apart from the read-only mount: a device node granted
    // read-only is opened for writing (a device's mount flags do not refuse that, its mode
    // 0666 does not either; only Landlock can). Opening has no effect on the device.
    if let Some(device) = plan
        .runtime
        .iter()
        .find(|g| g.path.starts_with("/dev") && g.access.read && !g.access.write)
    {
        probes.push(probe(
            "write-landlock",
            &format!("open({}, O_WRONLY)", device.path.display()),
            "EACCES",
            open_errno(&device.path, libc::O_WRONLY),
        ));
    }
    // Landlock's Execute right: a file off the allowlist that mode bits and mount flags let
    // this process execute (faccessat X_OK checks exactly those, not Landlock) must still be
    // refused by execve. argv is unreadable, so if execve's checks passed it would fail
    // with EFAULT before loading anything: nothing is executed either way.
    if let Some(target) = &plan.exec_probe {
        let got = match nix::unistd::access(target.as_path(), nix::unistd::AccessFlags::X_OK) {
            Err(e) => format!("inconclusive: access(X_OK) answered {e:?}"),
            Ok(()) => name_of(sys::execve_unreadable_argv(&crate::plan::c_path(target))),
        };
        probes.push(probe(
            "exec-outside-allowlist",
            &format!(
                "execve({}) with an unreadable argv, after access(X_OK) succeeded",
                target.display()
            ),
            "EACCES",
            got,
        ));
    } else if plan.exec_allowlist {
        probes.push(probe(
            "exec-outside-allowlist",
            "none: no file off the allowlist is readable, executable by mode and on an exec-capable mount here (the allowlist covers them all)",
            "EACCES",
            "not attempted".into(),
        ));
    }
    // Executable memfds: where the sysctl is in force, read its value back in this PID
    // namespace (attempting memfd_create(MFD_EXEC) would be refused the same way, but makes
    // the kernel log a warning, which costs a millisecond); otherwise seccomp must refuse it.
    if plan.memfd_sysctl {
        let got = std::fs::read_to_string("/proc/sys/vm/memfd_noexec")
            .map(|v| format!("vm.memfd_noexec={}", v.trim()))
            .unwrap_or_else(|e| e.to_string());
        probes.push(probe(
            "memfd-exec",
            "read /proc/sys/vm/memfd_noexec",
            "vm.memfd_noexec=2",
            got,
        ));
    } else {
        probes.push(probe(
            "memfd-exec",
            "memfd_create(MFD_EXEC)",
            "EPERM",
            memfd_exec_errno(),
        ));
    }
    probes.push(probe(
        "io-uring",
        "io_uring_setup(0, NULL)",
        "EPERM",
        name_of(sys::io_uring_setup_errno()),
    ));
    probes.push(probe(
        "unshare-user",
        "unshare(CLONE_NEWUSER)",
        "EPERM",
        errno_of(nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER)),
    ));
    if plan.net == NetMode::None {
        probes.push(probe(
            "socket-inet",
            "socket(AF_INET, SOCK_DGRAM)",
            "EPERM",
            socket_errno(libc::AF_INET),
        ));
    }
    let env_names = envp
        .iter()
        .map(|kv| {
            let s = kv.to_string_lossy();
            s.split_once('=')
                .map(|(k, _)| k.to_string())
                .unwrap_or_else(|| s.into_owned())
        })
        .collect();
    let quotas = crate::kernel::quotas::read_back(&plan.quotas);
    Ok(KernelReadback {
        quotas,
        landlock: outcome.into(),
        proc_status,
        namespaces,
        probes,
        env_names,
    })
}

/// A detached copy of the sandbox's /proc mount (`open_tree` clone), writable whatever later
/// happens to the mount at /proc.
fn writable_proc_copy() -> Result<OwnedFd, String> {
    use nix::fcntl::OFlag;
    let proc = nix::fcntl::open(
        "/proc",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| format!("/proc: {e}"))?;
    sys::clone_tree(proc.as_fd()).map_err(|e| format!("cloning /proc: {e}"))
}

/// Makes the command's processes the OOM killer's first choice, before init: pages of the
/// private /tmp or of a memfd belong to no process, so when the sandbox's memory cgroup is
/// full the kernel would otherwise often kill init (the largest process), ending the run as
/// a crash instead of the command's OOM kill. Raising oom_score_adj needs no privilege; init
/// keeps cw-exec's value. Written through `proc` (see `writable_proc_copy`), which is then
/// closed. /proc/self of a non-dumpable process belongs to the namespace's root, which an
/// unprivileged caller's namespace does not map, so the process is dumpable for the write
/// (nothing else runs in the sandbox yet) and not again until execve.
fn prefer_for_oom_kill(proc: OwnedFd) -> Result<(), String> {
    use nix::fcntl::OFlag;
    nix::sys::prctl::set_dumpable(true).map_err(|e| format!("dumpable: {e}"))?;
    let written = nix::fcntl::openat(
        &proc,
        "self/oom_score_adj",
        OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .and_then(|fd| nix::unistd::write(&fd, b"1000"));
    drop(proc);
    nix::sys::prctl::set_dumpable(false).map_err(|e| format!("not dumpable: {e}"))?;
    written
        .map(drop)
        .map_err(|e| format!("/proc/self/oom_score_adj: {e}"))
}

/// Clears every capability set. Securebits first (they need CAP_SETPCAP), so uid 0 in the
/// namespace does not get a full set back on execve.
fn drop_capabilities() -> Result<(), String> {
    use caps::CapSet;
    sys::lock_securebits().map_err(|e| format!("securebits: {e}"))?;
    for set in [
        CapSet::Bounding,
        CapSet::Ambient,
        CapSet::Inheritable,
        CapSet::Effective,
        CapSet::Permitted,
    ] {
        caps::clear(None, set).map_err(|e| format!("clearing {set:?}: {e}"))?;
    }
    Ok(())
}

fn probe(name: &str, attempt: &str, expect: &str, got: String) -> Probe {
    Probe {
        name: name.into(),
        attempt: attempt.into(),
        expect: expect.into(),
        got,
    }
}

fn name_of(errno: i32) -> String {
    if errno == 0 {
        "ok".into()
    } else {
        format!("{:?}", Errno::from_raw(errno))
    }
}

fn errno_of<T>(r: nix::Result<T>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => format!("{e:?}"),
    }
}

fn open_errno(path: &Path, flags: libc::c_int) -> String {
    errno_of(nix::fcntl::open(
        path,
        nix::fcntl::OFlag::from_bits_truncate(flags | libc::O_CLOEXEC),
        nix::sys::stat::Mode::empty(),
    ))
}

fn memfd_exec_errno() -> String {
    const MFD_EXEC: u32 = 0x10;
    errno_of(nix::sys::memfd::memfd_create(
        c"cw-exec-probe",
        nix::sys::memfd::MFdFlags::from_bits_retain(MFD_EXEC | libc::MFD_CLOEXEC),
    ))
}

type SetidProbe = Result<(OwnedFd, nix::sys::stat::Mode), String>;

/// A fresh memfd (sealed against exec where the kernel has MFD_NOEXEC_SEAL) and its mode.
fn setid_probe_memfd() -> SetidProbe {
    use nix::sys::memfd::{memfd_create, MFdFlags};
    use nix::sys::stat::{fstat, Mode};
    const MFD_NOEXEC_SEAL: u32 = 0x8;
    let fd = memfd_create(
        c"cw-exec-setid-probe",
        MFdFlags::from_bits_retain(MFD_NOEXEC_SEAL | libc::MFD_CLOEXEC),
    )
    .or_else(|_| memfd_create(c"cw-exec-setid-probe", MFdFlags::MFD_CLOEXEC))
    .map_err(|e| format!("control: memfd_create: {e:?}"))?;
    let mode = Mode::from_bits_truncate(
        fstat(&fd)
            .map_err(|e| format!("control: fstat: {e:?}"))?
            .st_mode
            & 0o7777,
    );
    Ok((fd, mode))
}

/// Checks that adding S_ISUID to the memfd's mode is accepted before seccomp, and undoes it:
/// Err says what failed, so the probe cannot pass for a reason other than seccomp.
fn setid_probe_control(memfd: SetidProbe) -> SetidProbe {
    use nix::sys::stat::{fchmod, Mode};
    let (fd, mode) = memfd?;
    fchmod(&fd, mode | Mode::S_ISUID)
        .map_err(|e| format!("control: fchmod(memfd, S_ISUID) before seccomp: {e:?}"))?;
    fchmod(&fd, mode).map_err(|e| format!("control: fchmod(memfd) back: {e:?}"))?;
    Ok((fd, mode))
}

/// The same call after seccomp, which must refuse it; the memfd is closed here.
fn setid_probe(control: SetidProbe) -> Probe {
    let got = match control {
        Err(e) => e,
        Ok((fd, mode)) => errno_of(nix::sys::stat::fchmod(
            &fd,
            mode | nix::sys::stat::Mode::S_ISUID,
        )),
    };
    probe(
        "setid-chmod",
        "fchmod(memfd, mode|S_ISUID): accepted before seccomp, then again after it",
        "EPERM",
        got,
    )
}

fn socket_errno(family: libc::c_int) -> String {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
    let family = AddressFamily::from_i32(family).unwrap_or(AddressFamily::Inet);
    errno_of(socket(
        family,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    ))
}

fn tcp_connect_errno() -> String {
    use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, SockaddrIn};
    match socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    ) {
        Err(e) => format!("{e:?}"),
        Ok(fd) => errno_of(connect(fd.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, 9))),
    }
}

fn read_proc_status() -> Result<BTreeMap<String, String>, String> {
    const KEYS: &[&str] = &[
        "NoNewPrivs",
        "Seccomp",
        "Seccomp_filters",
        "CapInh",
        "CapPrm",
        "CapEff",
        "CapBnd",
        "CapAmb",
        "Uid",
        "Gid",
    ];
    let text = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    Ok(text
        .lines()
        .filter_map(|line| line.split_once(':'))
        .filter(|(k, _)| KEYS.contains(k))
        .map(|(k, v)| (k.to_string(), v.trim().replace('\t', " ")))
        .collect())
}
