//! The containment sequence, in one place: every step that builds the sandbox, in order,
//! in the process that runs it. Each step assumes the ones before it.
//!
//! cw-exec (host namespaces) — `supervise` calls these:
//!  1. `limits_before_clone`: where one is a v2 cgroup, the run's cgroups (memory, pids,
//!     cpu), before anything runs (init is born in the v2 one).
//!  2. `namespace_flags`: clone into new user, mount, PID, IPC, UTS, cgroup namespaces; the
//!     child becomes init.
//!  3. `identity_and_limits`: uid/gid maps of the new user namespace; init put in the v2
//!     cgroup where clone3 was refused; then init is released. Then, cgroup v1 only, while
//!     init builds the sandbox: `limits_after_clone`, the run's cgroups, and
//!     `hand_over_limits`: their `tasks` files go to init, with the membership the command
//!     must show (`RunCgroups::membership`), then "limits complete".
//!
//! init (PID 1 of the sandbox) — `init_own_process_group`, `init_starts_network`,
//! `empty_bounding_set`, `init_steps`, `init_join_limits`:
//!  4. its own process group (a terminal's signals reach the sandbox only through cw-exec,
//!     once); unless `--net host`, a helper process starts making the network namespace
//!     (`kernel::netns`); the bounding set emptied; these while cw-exec writes the identity
//!     maps. Then hostname; the mount view (`kernel::mount_view::enter`: pivot_root into a
//!     tmpfs, binds verified by identity, masks, pins, private /tmp, own /proc, the host
//!     tree detached; with a terminal of its own, its pty slave and /dev/tty); the helper's
//!     network namespace joined and the helper killed; vm.memfd_noexec=2 (root); loopback
//!     up (`--net loopback`); a writable /proc handle for the command's oom_score_adj;
//!     lowered per-user quotas; host kernel state sealed read-only; init non-dumpable, its
//!     environment and arguments scrubbed. Last, the run's v1 cgroups, which init joins
//!     itself once cw-exec has handed them over (it waits for "limits complete"); the
//!     network helper reaped.
//!  5. start the command's process; init drops every capability and only reaps and
//!     forwards.
//!
//! the command's process — `command_steps`:
//!  6. setsid; with a terminal of its own, the pty slave (descriptor 0) as controlling
//!     terminal; chdir; oom_score_adj; close-on-exec from fd 3; no_new_privs.
//!  7. Landlock (filesystem, TCP, scopes; read, write and ioctl on its own terminal); the
//!     TCP probe (before seccomp); rlimits and
//!     rlimit-backed quotas; capabilities cleared and securebits locked.
//!  8. seccomp, last; the set-id probe that needs a before/after pair.
//!  9. the read-back (`readback::collect`), then — in `child` — the verdict, and execve only
//!     if every required dimension is proven and the command is in the run's cgroups as
//!     cw-exec said it must be (`command_in_run_cgroups`).
//!
//! init again, when the command's process has ended — `end_the_run`:
//! 10. every other process of the run killed and reaped, init's output descriptors closed,
//!     and only then the command's end reported (cw-exec returns on that report).

use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::unistd::Pid;

use crate::kernel::cgroup::{Membership, RunCgroups, SelfJoin};
use crate::kernel::netns::NetnsMaker;
use crate::kernel::placement::Placement;
use crate::kernel::pty::SandboxTerminal;
use crate::kernel::{landlock, mount_view, userns};
use crate::model::{NetMode, Tier};
use crate::plan::Plan;
use crate::readback::{self, KernelReadback, StepError};
use crate::sys;

fn step<T, E: std::fmt::Display>(name: &str, r: Result<T, E>) -> Result<T, StepError> {
    r.map_err(|e| (name.to_string(), e.to_string()))
}

/// Whether any of the run's cgroups is a v2 one. Then they are all made before the clone
/// (step 1), so that init is born in the v2 one; otherwise (cgroup v1 only) they are made
/// while init builds the sandbox (step 3b), off the path that waits.
fn cgroups_include_v2(plan: &Plan) -> bool {
    use crate::kernel::cgroup::Hierarchy;
    let c = &plan.limits.cgroups;
    [
        c.memory.as_ref().map(|(_, h)| h),
        c.pids.as_ref().map(|(_, h)| h),
        c.cpu.as_ref(),
    ]
    .into_iter()
    .flatten()
    .any(|h| matches!(h, Hierarchy::V2(..)))
}

/// Step 1: the cgroups that bind the sandbox as a whole, when one of them is a v2 cgroup
/// (init is born in it, step 2), with the v1 ones opened for init to join itself.
pub fn limits_before_clone(plan: &Plan) -> Result<Option<(RunCgroups, LimitHandles)>, String> {
    if !plan.limits.needs_cgroups() || !cgroups_include_v2(plan) {
        return Ok(None);
    }
    make_cgroups(plan).map(Some)
}

/// Step 3b, cgroup v1 only, while init builds the sandbox: the run's cgroups, opened for
/// init to join itself (`hand_over_limits`).
pub fn limits_after_clone(plan: &Plan) -> Result<Option<(RunCgroups, LimitHandles)>, String> {
    if !plan.limits.needs_cgroups() || cgroups_include_v2(plan) {
        return Ok(None);
    }
    make_cgroups(plan).map(Some)
}

/// The `tasks` files init moves itself through: into the run's v1 cgroups before the
/// command starts, and back out of them once the run is over (where it can, see
/// `RunCgroups::self_leave`).
pub struct LimitHandles {
    join: SelfJoin,
    leave: Option<SelfJoin>,
}

fn make_cgroups(plan: &Plan) -> Result<(RunCgroups, LimitHandles), String> {
    let cgroups = RunCgroups::create(&plan.limits.cgroups)?;
    let join = cgroups.self_join()?;
    let leave = cgroups.self_leave();
    Ok((cgroups, LimitHandles { join, leave }))
}

/// The set-up step that puts the limits binding the sandbox as a whole in place (the run's
/// cgroups), as refusals name it.
pub const CGROUPS_STEP: &str = "cgroups";

/// The TCP ports the command may connect to under Landlock: the egress proxy's, with an
/// allowlist; none otherwise.
fn landlock_connect_ports(plan: &Plan) -> &'static [u16] {
    if plan.proxy.is_some() {
        &[crate::netpolicy::PROXY_PORT]
    } else {
        &[]
    }
}

/// Step 3b, in cw-exec while init builds the sandbox: the command's Landlock ruleset, with
/// the rules of every grant held as a descriptor since the plan resolved it and of the TCP
/// ports (`landlock::prepare`); handed to init with the cgroups, finished by the command's
/// process (step 5) with the rules that name the sandbox's own paths, which exist only in
/// the view. The same rules as before, built off the run's critical path: cw-exec waits for
/// init's view meanwhile.
pub fn prepare_landlock(plan: &Plan) -> Result<landlock::Prepared, String> {
    let grants: Vec<&crate::model::Grant> = plan.all_grants().collect();
    landlock::prepare(&landlock_spec(plan, &grants))
}

/// What the run's ruleset is made from (`grants`: the plan's, `Plan::all_grants`): one
/// function for cw-exec's `prepare_landlock` and the command's process, which receives it.
fn landlock_spec<'a>(plan: &'a Plan, grants: &'a [&'a crate::model::Grant]) -> landlock::Spec<'a> {
    landlock::Spec {
        abi: plan.landlock,
        grants,
        net: plan.net,
        connect_ports: landlock_connect_ports(plan),
        bind_ports: &plan.allow_bind,
    }
}

/// Step 3c: the run's cgroups go to init over the go channel, all in one message, which also
/// says the limits are complete: 'L'; how many of the v1 cgroups' `tasks` files init joins
/// through (the rest it leaves through); the length of the membership expected of the
/// command (two bytes, little-endian); that membership (`Membership::encode`); and the
/// `tasks` files as descriptors (none where the run's cgroups are v2 only). Without cgroups,
/// 'l' alone says the limits are complete. Either message carries one descriptor more, the
/// last: the command's Landlock ruleset as cw-exec prepared it (`landlock::prepare`). Init
/// starts the command only after one of the two (a channel that closes first means cw-exec
/// gave up: init ends).
pub fn hand_over_limits(
    channel: &OwnedFd,
    handles: Option<&LimitHandles>,
    membership: Option<&Membership>,
    ruleset: std::os::fd::BorrowedFd<'_>,
) -> Result<(), String> {
    let join = handles.map(|h| h.join.descriptors()).unwrap_or_default();
    let leave = handles
        .and_then(|h| h.leave.as_ref())
        .map(SelfJoin::descriptors)
        .unwrap_or_default();
    let sent = match membership {
        None if join.is_empty() && leave.is_empty() => {
            send_fds(channel, b"l", &[ruleset]).map(drop)
        }
        None => return Err("handing the cgroups to init: no membership to check".into()),
        Some(m) => {
            let text = m.encode();
            if text.len() > crate::kernel::cgroup::MAX_MEMBERSHIP {
                return Err(format!(
                    "handing the cgroups to init: a membership of {} bytes",
                    text.len()
                ));
            }
            let len = (text.len() as u16).to_le_bytes();
            let mut message = vec![b'L', join.len() as u8, len[0], len[1]];
            message.extend_from_slice(&text);
            let fds: Vec<_> = join
                .into_iter()
                .chain(leave)
                .chain(std::iter::once(ruleset))
                .collect();
            send_fds(channel, &message, &fds).map(drop)
        }
    };
    sent.map_err(|e| format!("handing the cgroups to init: {e}"))
}

/// Step 1b, Landlock tier: the run's private directories on the host — `tmp/` (TMPDIR),
/// `home/` (a private HOME), and the read-back's canary — in a fresh directory only the
/// caller may enter, removed (without following anything the sandbox put there) when dropped.
pub struct RunDir(PathBuf);

impl RunDir {
    pub fn create(path: &Path) -> Result<RunDir, String> {
        use std::os::unix::fs::DirBuilderExt;
        let mkdir = |p: &Path| {
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(p)
                .map_err(|e| format!("{}: {e}", p.display()))
        };
        // create, not create_all: an existing path (planted by anyone) is an error.
        mkdir(path)?;
        let dir = RunDir(path.to_path_buf());
        mkdir(&path.join("tmp"))?;
        mkdir(&path.join("home"))?;
        let canary = path.join("canary");
        std::fs::write(&canary, "cw-exec canary\n")
            .map_err(|e| format!("{}: {e}", canary.display()))?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&canary, std::fs::Permissions::from_mode(0o644))
                .map_err(|e| format!("{}: {e}", canary.display()))?;
        }
        Ok(dir)
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        // std's remove_dir_all removes symlinks, never what they point to.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Step 2: the namespaces the sandbox is cloned into (none in the Landlock tier: a plain
/// fork). Not the network namespace: init has a helper make it while init builds the mount
/// view (`init_starts_network`, step 4).
pub fn namespace_flags(plan: &Plan) -> libc::c_int {
    if plan.tier == Tier::Landlock {
        return 0;
    }
    libc::CLONE_NEWUSER
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWCGROUP
}

/// Step 3: init's identity in its user namespace, and its v2 cgroup (cgroup v1: init joins
/// itself, step 4); then init is released.
pub fn identity_and_limits(
    plan: &Plan,
    init: Pid,
    cgroups: Option<&RunCgroups>,
) -> Result<(), String> {
    if plan.tier == Tier::Namespaces {
        userns::write_id_maps(init, plan.uid, plan.gid)?;
    }
    match cgroups {
        Some(c) => c.enter_v2(init.as_raw()),
        None => Ok(()),
    }
}

/// Step 4 ends, in init, before it starts the command: the run's v1 cgroups, which init
/// joins itself (see `SelfJoin` for why init moves itself) once cw-exec has handed them over
/// (`hand_over_limits`), with the membership the command must show; nothing of the command
/// runs before every limit binds. The message is read strictly: anything but exactly 'l', or
/// exactly an 'L' message whose counts, length and membership add up, each with the Landlock
/// ruleset as its last descriptor, is an error (and every descriptor it carried is closed).
pub fn init_join_limits(channel: &OwnedFd) -> Result<Released, StepError> {
    const RECEIVING: &str = "init: receiving the run's cgroups";
    /// 'L', the count to join through, the membership's length (two bytes).
    const HEAD: usize = 4;
    let unexpected = |what: String| Err((RECEIVING.to_string(), what));
    let mut buf = [0u8; HEAD + crate::kernel::cgroup::MAX_MEMBERSHIP];
    let (mut n, mut fds) = match step(
        RECEIVING,
        sys::receive_message_fds(channel.as_fd(), &mut buf),
    )? {
        Some(received) => received,
        // cw-exec gave up (or died): no command.
        None => return Ok(Released::Abandoned),
    };
    match buf[0] {
        b'l' if n == 1 && fds.len() == 1 => {
            return Ok(Released::Limits {
                leave: None,
                membership: None,
                ruleset: fds.remove(0),
            })
        }
        b'L' if !fds.is_empty() => {}
        other => {
            return unexpected(format!(
                "unexpected message {other:?} ({n} bytes, {} descriptors)",
                fds.len()
            ))
        }
    }
    // The last descriptor is the Landlock ruleset; the others are `tasks` files.
    let ruleset = fds.pop().expect("checked above");
    // The whole message was sent at once; a stream may still hand over its rest separately.
    let total = loop {
        if n >= HEAD {
            let total = HEAD + usize::from(u16::from_le_bytes([buf[2], buf[3]]));
            if total > buf.len() {
                return unexpected(format!(
                    "a cgroup membership of {} bytes (at most {})",
                    total - HEAD,
                    crate::kernel::cgroup::MAX_MEMBERSHIP
                ));
            }
            if n >= total {
                break total;
            }
        }
        match step(RECEIVING, nix::unistd::read(channel, &mut buf[n..]))? {
            // Closed before the message was whole: cw-exec gave up.
            0 => return Ok(Released::Abandoned),
            got => n += got,
        }
    };
    if n != total {
        return unexpected(format!("{} bytes after the message", n - total));
    }
    let membership = match Membership::decode(&buf[HEAD..total]) {
        Ok(m) => m,
        Err(e) => return unexpected(e),
    };
    let count = usize::from(buf[1]);
    if count > fds.len() {
        return unexpected(format!(
            "{count} cgroups to join but {} descriptors",
            fds.len()
        ));
    }
    let leave = fds.split_off(count);
    if !leave.is_empty() && leave.len() != fds.len() {
        return unexpected(format!(
            "{} cgroups to join but {} to leave",
            fds.len(),
            leave.len()
        ));
    }
    if !fds.is_empty() {
        step(
            "init: joining the run's cgroups",
            SelfJoin::received(fds).join(),
        )?;
    }
    Ok(Released::Limits {
        leave: (!leave.is_empty()).then(|| SelfJoin::received(leave)),
        membership: Some(membership),
        ruleset,
    })
}

/// What init got from cw-exec before starting the command.
pub enum Released {
    /// The channel closed before "limits complete": no command.
    Abandoned,
    /// Every limit binds; `leave`: how to move out of the run's cgroups at the end;
    /// `membership`: where the command's process must be (None: the run has no cgroups);
    /// `ruleset`: the command's Landlock ruleset as cw-exec prepared it.
    Limits {
        leave: Option<SelfJoin>,
        membership: Option<Membership>,
        ruleset: OwnedFd,
    },
}

/// Step 9b, in the command's process, after the read-back and before execve: the command is
/// in the run's cgroups, as its own /proc/self/cgroup read in the read-back shows them,
/// exactly where cw-exec said it must be (`expected`, handed to init with the cgroups). A
/// run with cgroups and no expectation, or an expectation without cgroups in the plan, is not
/// what cw-exec sends: refused too. Err: the refusal's message.
pub fn command_in_run_cgroups(
    plan: &Plan,
    expected: Option<&Membership>,
    readback: &KernelReadback,
) -> Result<(), String> {
    match (plan.limits.needs_cgroups(), expected) {
        (false, None) => Ok(()),
        (true, Some(m)) => m.check(&readback.cgroups).map(drop).map_err(|why| {
            format!(
                "the kernel read-back does not prove the command is in the run's cgroups: {why}"
            )
        }),
        (true, None) => Err("the run has cgroups but init was given no membership to check".into()),
        (false, Some(_)) => {
            Err("init was given a cgroup membership for a run without cgroups".into())
        }
    }
}

/// Step 4, in init, right after it set its parent-death signal: whether cw-exec had died
/// before that (then no signal comes, and init must not go on: it would run the sandbox
/// with nobody supervising it, and never end). cw-exec keeps its end of the go channel
/// (`channel`, init's end) open until the run is over, so that end is closed before then
/// only by cw-exec's death — and the kernel closes a dying process's descriptors before it
/// reparents its children, which is when the parent-death signal is sent. So either the
/// signal is set in time, or the hang-up is already there to see (data cw-exec wrote before
/// dying stays readable: that is no sign of life).
pub fn cw_exec_died(channel: &OwnedFd) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    // POLLHUP is reported whatever is asked: the peer's end is closed.
    let mut fds = [PollFd::new(channel.as_fd(), PollFlags::empty())];
    loop {
        match poll(&mut fds, PollTimeout::ZERO) {
            Err(nix::errno::Errno::EINTR) => continue,
            // A channel that cannot be polled: as if closed (nothing to go on with).
            Err(_) => return true,
            Ok(_) => {
                return fds[0]
                    .revents()
                    .is_some_and(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR))
            }
        }
    }
}

/// Step 4 begins, in init, before anything else: init leaves cw-exec's process group. A
/// terminal that signals cw-exec's process group (Ctrl-C without a terminal of the
/// sandbox's own) would otherwise signal init too, and the command would get the signal
/// twice: once from init's copy, once forwarded by cw-exec.
pub fn init_own_process_group() -> Result<(), StepError> {
    step(
        "init: own process group",
        nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0)),
    )
}

/// Step 4 begins, in init, first of all (before cw-exec has even written its identity
/// maps, which the network namespace does not need): unless `--net host`, a helper process
/// starts making the sandbox's network namespace, on another CPU while init builds the mount
/// view (the most expensive kernel step of a start, see `kernel::netns`). Init joins it in
/// `init_steps` before anything uses the network; the helper is killed once joined and
/// reaped when dropped: by init before it starts the command, or when a step fails.
pub fn init_starts_network(
    plan: &Plan,
    placement: Option<&Placement>,
) -> Result<Option<NetnsMaker>, StepError> {
    if plan.tier == Tier::Landlock || plan.net == NetMode::Host {
        return Ok(None);
    }
    let helper = step(
        "network namespace: starting its helper",
        NetnsMaker::spawn(),
    )?;
    // On cw-exec's CPU, not init's (`kernel::placement`).
    if let Some(p) = placement {
        p.place_helper(helper.pid());
    }
    Ok(Some(helper))
}

/// What init holds when `init_steps` is done.
pub struct InitReady {
    /// The writable /proc handle the command uses for its oom_score_adj.
    pub proc_handle: OwnedFd,
    /// The helper that made the network namespace, killed but maybe not yet gone: init
    /// drops it (reaps it) before it starts the command.
    pub network_helper: Option<NetnsMaker>,
    /// The quota sysctls init wrote, as it read them back (`quotas::lower_in_namespace`).
    pub quotas: Vec<crate::kernel::quotas::QuotaReadback>,
}

/// Step 4, in init: everything init sets up before it forks the command. `terminal`: the sandbox's
/// own pty, bound into the view with /dev/tty (the Landlock tier has no view: Landlock alone
/// confines the command to its own terminal's nodes, see `command_steps`).
pub fn init_steps(
    plan: &Plan,
    mut network: Option<NetnsMaker>,
    proxy_channel: Option<OwnedFd>,
    terminal: Option<&SandboxTerminal>,
) -> Result<InitReady, StepError> {
    if plan.tier == Tier::Landlock {
        drop(network); // none in this tier
        return landlock_init_steps().map(|proc_handle| InitReady {
            proc_handle,
            network_helper: None,
            quotas: vec![],
        });
    }
    step("hostname", nix::unistd::sethostname("cw-exec"))?;
    let mut view = plan.view();
    if let Some(t) = terminal {
        view.binds.extend(t.binds());
    }
    let entered = step("mount view", mount_view::enter(&view))?;
    crate::timings::mark("init: mount view built and entered");
    if let Some(network) = network.as_mut() {
        step("network namespace", network.join())?;
        crate::timings::mark("init: network namespace joined");
    }
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
    if matches!(plan.net, NetMode::Loopback | NetMode::Allowlist) {
        step("loopback interface", sys::loopback_up())?;
    }
    // The egress proxy's socket: created here, in the sandbox's network namespace, so it is
    // reachable only from inside; served by cw-exec outside (`proxy`), which gets it over a
    // Unix socket. Init keeps no copy (nor does the command it forks).
    if let (Some(_), Some(channel)) = (&plan.proxy, proxy_channel) {
        let listener = step(
            "egress proxy: listening on 127.0.0.1",
            std::net::TcpListener::bind(("127.0.0.1", crate::netpolicy::PROXY_PORT)),
        )?;
        step(
            "egress proxy: handing the socket to cw-exec",
            send_fd(&channel, b"p", listener.as_fd()),
        )?;
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
    let quotas = crate::kernel::quotas::lower_in_namespace(&plan.quotas);
    // Host kernel state is read-only in the view whatever the grants say, and so is the
    // sandbox's own /proc once init has written the sysctls above.
    step(
        "read-only kernel state",
        mount_view::seal_kernel_state(&entered, crate::plan::KERNEL_STATE_FS),
    )?;
    crate::timings::mark("init: memfd sysctl, loopback, kernel state sealed");
    init_hides_cw_exec()?;
    Ok(InitReady {
        proc_handle,
        network_helper: network,
        quotas,
    })
}

/// The end of step 4 in both tiers. Init must not expose cw-exec's environment through
/// /proc/1/environ. All before the fork, so there is no moment at which the command runs
/// while init is readable: init is non-dumpable from here on (the command becomes dumpable
/// again at its own execve), and the environment block is zeroed in both copies (nothing
/// reads it any more). Nor cw-exec's arguments through /proc/1/cmdline, which any process
/// may read.
fn init_hides_cw_exec() -> Result<(), StepError> {
    step("init: not dumpable", nix::sys::prctl::set_dumpable(false))?;
    sys::scrub_initial_environment();
    step(
        "init: scrubbing cw-exec's arguments",
        sys::scrub_initial_arguments(c"cw-exec-init"),
    )?;
    Ok(())
}

/// Sends `bytes` and the descriptors `fds` in one message (SCM_RIGHTS).
fn send_fds(
    channel: &OwnedFd,
    bytes: &[u8],
    fds: &[std::os::fd::BorrowedFd<'_>],
) -> nix::Result<usize> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};
    use std::os::fd::AsRawFd;
    let raw: Vec<_> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
    let rights = [ControlMessage::ScmRights(&raw)];
    sendmsg::<UnixAddr>(
        channel.as_raw_fd(),
        &[std::io::IoSlice::new(bytes)],
        if raw.is_empty() { &[] } else { &rights },
        MsgFlags::empty(),
        None,
    )
}

/// Sends one descriptor with a one-byte tag (SCM_RIGHTS).
fn send_fd(
    channel: &OwnedFd,
    tag: &[u8; 1],
    fd: std::os::fd::BorrowedFd<'_>,
) -> nix::Result<usize> {
    send_fds(channel, tag, &[fd])
}

/// Step 4 in the Landlock tier: no namespace to build. Init becomes the subreaper of
/// everything the command starts (orphans are reparented to it, so it can kill the whole tree
/// at the end), hides cw-exec's environment and arguments, and hands the command a /proc
/// handle for its oom_score_adj.
fn landlock_init_steps() -> Result<OwnedFd, StepError> {
    step(
        "init: child subreaper",
        nix::sys::prctl::set_child_subreaper(true),
    )?;
    let proc_handle = step(
        "init: /proc handle for oom_score_adj",
        nix::fcntl::open(
            "/proc",
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        ),
    )?;
    init_hides_cw_exec()?;
    Ok(proc_handle)
}

/// Kills every process the run started (Landlock tier, where no PID namespace ends them):
/// the caller (init; cw-exec, when init died first) is their subreaper, so each pass kills
/// its children and their descendants as found in /proc (every thread's `children` list: a
/// process forked by a thread other than the first is only in that thread's), then waits
/// until at least one of its children has ended and reaps every one that has, and repeats
/// until none is left (an orphan reparented meanwhile is found on the next pass). Returns
/// the statuses it reaped (the command's process may be among them).
///
/// Each pass blocks until a child it killed has died: a SIGKILLed process still has to be
/// scheduled to exit, which on a loaded machine takes milliseconds. (It used to poll with
/// WNOHANG, at most 1000 passes of ~50 µs: under load the passes ran out while killed
/// processes were still alive, holding the caller's descriptors after cw-exec returned.)
/// The wait cannot hang: every child of the caller in the pass's list was killed, so one
/// of them ends. No cap on the passes either: a killed process forks no more, so only a
/// child made between a pass's walk and its kill survives into the next pass.
///
/// The caller's own children are killed by pid: their pids cannot be reused before it
/// reaps them. A deeper descendant's pid can, by a host process, once its parent (a process
/// of the run) has reaped it, between the walk's read and the kill; so it is held by a
/// pidfd first and signalled through it only if its parent still lists it after that (a
/// pid reused meanwhile by a host process is not the parent's child; by another child of
/// that parent, it is one of the run's).
pub fn kill_descendants() -> Vec<nix::sys::wait::WaitStatus> {
    use nix::sys::signal::Signal::SIGKILL;
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    // Every thread's list: `children` names the children that thread forked, so a process
    // forked by a thread other than the first is missing from the first thread's list.
    let children_of = |pid: i32| -> Vec<i32> {
        let mut out = vec![];
        let Ok(threads) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return out;
        };
        for tid in threads.flatten() {
            let listed = std::fs::read_to_string(tid.path().join("children")).unwrap_or_default();
            out.extend(
                listed
                    .split_whitespace()
                    .filter_map(|c| c.parse::<i32>().ok()),
            );
        }
        out
    };
    let mut reaped = vec![];
    let me = std::process::id() as i32;
    loop {
        let own = children_of(me);
        if own.is_empty() {
            return reaped;
        }
        for pid in &own {
            let _ = nix::sys::signal::kill(Pid::from_raw(*pid), SIGKILL);
        }
        let mut parents = own;
        while let Some(parent) = parents.pop() {
            let listed = children_of(parent);
            if listed.is_empty() {
                continue;
            }
            let held: Vec<(i32, OwnedFd)> = listed
                .into_iter()
                .filter_map(|c| sys::pidfd_open(Pid::from_raw(c)).ok().map(|fd| (c, fd)))
                .collect();
            let still = children_of(parent);
            for (child, pidfd) in held {
                if still.contains(&child) {
                    let _ = sys::pidfd_send_signal(pidfd.as_fd(), SIGKILL);
                    parents.push(child);
                }
            }
        }
        // One child's end, waited for; then every other that has ended.
        let mut flags = None;
        loop {
            match waitpid(Pid::from_raw(-1), flags) {
                Ok(WaitStatus::StillAlive) => break,
                Ok(status) => {
                    reaped.push(status);
                    flags = Some(WaitPidFlag::WNOHANG);
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(_) => break, // ECHILD: none left
            }
        }
    }
}

/// Step 10, in init, once the command's process has ended: nothing of the run outlives it.
/// Every other process is killed and reaped (the namespace tier: `kill(-1)` from PID 1
/// reaches every other process of the namespace, and orphans are reparented to init; the
/// Landlock tier: init is the subreaper of all of them), then init closes its descriptors 0-2
/// (the output pipes, or the sandbox's pty slave), so cw-exec sees every stream end. Only
/// then does init report the command's end: cw-exec can return on that report, while the
/// kernel still tears down the namespaces of an init with nothing left to run. With `leave`
/// (cgroup v1), init last moves itself back out of the run's cgroups, so cw-exec can remove
/// them at once instead of waiting for that teardown; returns whether it did.
pub fn end_the_run(tier: Tier, leave: Option<SelfJoin>) -> bool {
    match tier {
        Tier::Namespaces => {
            if init_has_children() {
                let _ =
                    nix::sys::signal::kill(Pid::from_raw(-1), nix::sys::signal::Signal::SIGKILL);
                // Until ECHILD: no child left.
                while let Ok(_) | Err(nix::errno::Errno::EINTR) =
                    nix::sys::wait::waitpid(Pid::from_raw(-1), None)
                {}
            }
        }
        Tier::Landlock => {
            kill_descendants();
        }
    }
    for fd in 0..3 {
        let _ = nix::unistd::close(fd);
    }
    // Nothing of the run is left: init alone moves (writing "0" to `tasks` moves the
    // writing thread, without the global lock).
    leave.map(|l| l.join().is_ok()).unwrap_or(false)
}

/// Whether init (PID 1 of the run's namespace) still has a child, its exited ones reaped on
/// the way. Every process the run starts descends from init (an orphan is reparented to init,
/// or to a subreaper that itself descends from init), so with no child there is no process
/// of the run left and the `kill(-1)` is skipped: the kernel carries that out by walking
/// every process of the host, not of the namespace, under the lock every fork and exit of
/// the host takes.
fn init_has_children() -> bool {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    loop {
        // __WALL: a child whatever signal it reports its end with.
        match waitpid(
            Pid::from_raw(-1),
            Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL),
        ) {
            Ok(WaitStatus::StillAlive) => return true,
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::ECHILD) => return false,
            // Unknown: kill as before.
            Err(_) => return true,
        }
    }
}

/// Step 10 ends: init writes its last report, `last` (the command's end), on the report pipe
/// `report`, holding nothing any more. Every other descriptor it has — its copies of all
/// that cw-exec held at the clone (whatever cw-exec's caller gave it: a pipe the caller reads
/// to end of file, a provider's saved stdout; the plan's held paths), the sandbox's pty
/// slave, the proxy's socket — is closed first, so once cw-exec has the report (and may
/// return), no process of the run holds anything of the caller's.
///
/// Then, with `linger` — init has left the run's cgroups (cw-exec then neither waits for
/// init's exit nor reads anything more from it) and holds no terminal — init waits for
/// cw-exec's own exit, which ends it (PR_SET_PDEATHSIG). Its exit, the teardown of its
/// namespaces and memory (~0.1 ms), would otherwise run on the CPU the kernel had just woken
/// cw-exec on, delaying cw-exec's return. Without, init exits with `status`.
///
/// `proc_copy`, init's copy of the command's /proc handle (`writable_proc_copy`), is closed
/// only after the report: its last close dissolves the detached mount, which waits for an
/// expedited RCU grace period (0.3-1 ms here), and closing it any earlier put that wait
/// between the command's end and init reaping it. It is the sandbox's own /proc, nothing of
/// the caller's, and unreachable to the sandbox meanwhile (init is not dumpable).
pub fn report_the_end(
    report: std::os::fd::BorrowedFd<'_>,
    proc_copy: Option<std::os::fd::RawFd>,
    last: &[u8],
    linger: bool,
    status: i32,
) -> ! {
    sys::end_holding_nothing(
        report,
        proc_copy,
        last,
        if linger {
            sys::Ending::Killed
        } else {
            sys::Ending::Exit(status)
        },
    )
}

/// What init hands the command's process for its steps: the writable /proc handle (for its
/// oom_score_adj), the Landlock ruleset cw-exec prepared (`landlock::prepare`, handed to
/// init with the cgroups), and the quota sysctls as init read them back.
pub struct CommandHandles<'a> {
    pub proc_handle: OwnedFd,
    pub ruleset: OwnedFd,
    pub quotas: &'a [crate::kernel::quotas::QuotaReadback],
}

/// The command's process: restricts itself step by step, then reads back. Each step
/// assumes the ones before it. Returns the read-back and the signals the process ignores
/// (see `readback::collect`).
pub fn command_steps(
    plan: &Plan,
    terminal: Option<&SandboxTerminal>,
    host_ns: &BTreeMap<String, u64>,
    envp: &[std::ffi::CString],
    handles: CommandHandles<'_>,
) -> Result<(KernelReadback, Option<u64>), StepError> {
    let CommandHandles {
        proc_handle,
        ruleset,
        quotas,
    } = handles;
    crate::timings::mark("command: forked");
    // 1. A new session: no controlling terminal, so TIOCSTI cannot reach the caller's.
    step("setsid", nix::unistd::setsid())?;
    // 1b. With a terminal of its own, descriptor 0 is its pty slave: the session's
    //     controlling terminal, so Ctrl-C, Ctrl-Z and job control work inside (the
    //     session's process group is its foreground group until a shell changes that).
    //     Before seccomp, which refuses TIOCSCTTY from here on.
    if terminal.is_some() {
        step(
            "controlling terminal",
            sys::set_controlling_terminal(std::io::stdin().as_fd()),
        )?;
    }
    // 1c. Another identity (`--user`, as root): before anything the command's identity
    //     decides (the working directory, the probes' files).
    if let Some(ids) = plan.run_as {
        step("--user", switch_identity(ids))?;
    }
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
    let grants: Vec<&crate::model::Grant> = plan.all_grants().collect();
    let devices = terminal
        .map(SandboxTerminal::device_paths)
        .unwrap_or_default();
    let prepared = landlock::Prepared::received(ruleset, &landlock_spec(plan, &grants));
    let outcome = step(
        "landlock",
        landlock::finish(plan.landlock, prepared, &grants, &devices),
    )?;
    crate::timings::mark("command: session, cwd, fds, no_new_privs, landlock");
    let mut probes = Vec::new();
    if matches!(plan.net, NetMode::None | NetMode::Allowlist) && plan.landlock.has_tcp() {
        // Before seccomp, which would refuse the socket itself: Landlock alone must deny it.
        probes.push(readback::probe(
            "tcp-connect",
            "connect(AF_INET, 127.0.0.1:9) before seccomp",
            "EACCES",
            readback::tcp_connect_errno(),
        ));
    }
    // The set-id probe's memfd, made before the rlimits so that a low RLIMIT_NOFILE cannot
    // refuse it; it is closed again right after seccomp, before the read-back opens files.
    let setid_memfd = readback::setid_probe_memfd();
    // The seccomp filters this process has before cw-exec's (the read-back proves the install
    // added exactly cw-exec's): read before the rlimits, whose open-files limit may leave no
    // descriptor free for /proc/self/status.
    let filters_before = readback::seccomp_filter_count();
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
    let setid_control = readback::setid_probe_control(setid_memfd);
    // 8. seccomp, last: after it, only the read-back and execve run.
    step("seccomp", plan.seccomp.install())?;
    let setid_chmod = readback::setid_probe(setid_control);
    crate::timings::mark("command: rlimits, capabilities, seccomp");

    // 9. The read-back: what the kernel says about this process, and the late probes.
    readback::collect(
        plan,
        host_ns,
        envp,
        outcome,
        readback::Gathered {
            probes,
            setid_chmod,
            filters_before,
        },
        quotas,
    )
}

/// Becomes `uid`:`gid` with no supplementary groups (the namespace of a root caller maps
/// every id). The securebits are locked first (NO_SETUID_FIXUP: the switch clears no
/// capability), so the steps after it keep the namespace's capabilities until
/// `drop_capabilities` clears them (locking the same bits again is allowed).
fn switch_identity((uid, gid): (u32, u32)) -> Result<(), String> {
    use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
    sys::lock_securebits().map_err(|e| format!("securebits: {e}"))?;
    let (uid, gid) = (Uid::from_raw(uid), Gid::from_raw(gid));
    setgroups(&[]).map_err(|e| format!("dropping supplementary groups: {e}"))?;
    setresgid(gid, gid, gid).map_err(|e| format!("setresgid({gid}): {e}"))?;
    setresuid(uid, uid, uid).map_err(|e| format!("setresuid({uid}): {e}"))
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

/// Empties the bounding set. Init does it once, early in step 4, before it starts the command's
/// process, which inherits the empty set: each `PR_CAPBSET_DROP` replaces the process's
/// credentials (a `commit_creds`, whose old copy is freed after an RCU grace period), and
/// doing it in both processes cost 41 of them per run for nothing. Init keeps its effective
/// capabilities (the bounding set limits only what execve or capset could add), and clears
/// those after the command's process has started (`drop_capabilities`). The command's
/// read-back proves the set empty (`CapBnd`).
pub fn empty_bounding_set() -> Result<(), String> {
    if holds_no_capability()? {
        return Ok(());
    }
    sys::empty_bounding_set().map_err(|e| format!("PR_CAPBSET_DROP: {e}"))
}

/// Clears the effective, permitted, inheritable and ambient sets. Securebits first (they
/// need CAP_SETPCAP), so uid 0 in the namespace does not get a full set back on execve. The
/// bounding set is already empty (`empty_bounding_set`, by init before the command's process
/// started).
pub fn drop_capabilities() -> Result<(), String> {
    if !holds_no_capability()? {
        sys::lock_securebits().map_err(|e| format!("securebits: {e}"))?;
    }
    sys::clear_capabilities().map_err(|e| format!("clearing capabilities: {e}"))
}

/// A process that holds no capability and is not root (an unprivileged caller in the
/// Landlock tier): it may change neither its bounding set nor its securebits, and has
/// nothing to drop there; no_new_privs keeps execve from granting any.
fn holds_no_capability() -> Result<bool, String> {
    let none =
        sys::no_permitted_capabilities().map_err(|e| format!("reading capabilities: {e}"))?;
    Ok(none && !nix::unistd::geteuid().is_root())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::OwnedFd;

    fn channel() -> (OwnedFd, OwnedFd) {
        nix::sys::socket::socketpair(
            nix::sys::socket::AddressFamily::Unix,
            nix::sys::socket::SockType::Stream,
            None,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        )
        .unwrap()
    }

    /// Init tells cw-exec's death from the go channel alone: alive while cw-exec's end is
    /// open, whatever it wrote; dead once that end is closed, even with its messages
    /// unread (what a cw-exec SIGKILLed right after its writes leaves).
    #[test]
    fn a_closed_go_channel_is_cw_exec_dead_even_with_messages_unread() {
        let (init_end, ours) = channel();
        assert!(!cw_exec_died(&init_end));
        nix::unistd::write(&ours, b"g").unwrap();
        let ruleset = stand_in_ruleset();
        hand_over_limits(&ours, None, None, ruleset.as_fd()).unwrap();
        assert!(!cw_exec_died(&init_end), "data pending is no death");
        drop(ours);
        assert!(cw_exec_died(&init_end), "a closed end with data unread");
        let (init_end, ours) = channel();
        drop(ours);
        assert!(cw_exec_died(&init_end), "a closed end");
    }

    /// Files standing in for `tasks` files: init writes "0" to each it joins through.
    fn files(dir: &Path, prefix: &str, n: usize) -> (Vec<PathBuf>, SelfJoin) {
        let paths: Vec<PathBuf> = (0..n).map(|i| dir.join(format!("{prefix}{i}"))).collect();
        let fds = paths
            .iter()
            .map(|p| OwnedFd::from(std::fs::File::create(p).unwrap()))
            .collect();
        (paths, SelfJoin::received(fds))
    }

    /// A descriptor standing in for the Landlock ruleset every hand-over carries last.
    fn stand_in_ruleset() -> OwnedFd {
        OwnedFd::from(std::fs::File::open("/dev/null").unwrap())
    }

    /// What cw-exec expects of the command, as sent with the cgroups in these tests.
    fn expected() -> Membership {
        Membership::decode(b"memory:/cw-exec-1-a\npids:/cw-exec-1-a\n").unwrap()
    }

    /// An 'L' message: the count to join through, the membership's length, the membership.
    fn l_message(count: u8, membership: &[u8]) -> Vec<u8> {
        let len = (membership.len() as u16).to_le_bytes();
        let mut m = vec![b'L', count, len[0], len[1]];
        m.extend_from_slice(membership);
        m
    }

    /// The hand-over is one message: init joins through the first descriptors, keeps the
    /// others to leave through, gets the membership the command must show, and only then is
    /// released; a v2-only run's message carries the membership and no descriptor; without
    /// cgroups "l" alone releases it; a channel closed first releases nothing.
    #[test]
    fn the_cgroups_go_to_init_in_one_message() {
        let dir = std::env::temp_dir().join(format!("cwx-handover-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let content = |p: &PathBuf| std::fs::read_to_string(p).unwrap();

        let (join_paths, join) = files(&dir, "join", 2);
        let (leave_paths, leave) = files(&dir, "leave", 2);
        let handles = LimitHandles {
            join,
            leave: Some(leave),
        };
        let (init_end, ours) = channel();
        let ruleset = stand_in_ruleset();
        hand_over_limits(&ours, Some(&handles), Some(&expected()), ruleset.as_fd()).unwrap();
        let Ok(Released::Limits {
            leave: Some(leave),
            membership: Some(membership),
            ruleset: received,
        }) = init_join_limits(&init_end)
        else {
            panic!("init was not released with its cgroups");
        };
        assert_eq!(membership, expected());
        assert_eq!(
            sys::fd_stat(received.as_fd())
                .map(|s| (s.dev, s.ino))
                .unwrap(),
            sys::fd_stat(ruleset.as_fd())
                .map(|s| (s.dev, s.ino))
                .unwrap(),
            "the ruleset is the last descriptor"
        );
        for p in &join_paths {
            assert_eq!(content(p), "0", "{}", p.display());
        }
        for p in &leave_paths {
            assert_eq!(content(p), "", "{}: left before the end", p.display());
        }
        leave.join().unwrap();
        for p in &leave_paths {
            assert_eq!(content(p), "0", "{}", p.display());
        }

        // Joined, nothing to leave through (a v2 cgroup among the run's).
        let (join_paths, join) = files(&dir, "only", 1);
        let handles = LimitHandles { join, leave: None };
        let (init_end, ours) = channel();
        hand_over_limits(&ours, Some(&handles), Some(&expected()), ruleset.as_fd()).unwrap();
        assert!(matches!(
            init_join_limits(&init_end),
            Ok(Released::Limits {
                leave: None,
                membership: Some(_),
                ..
            })
        ));
        assert_eq!(content(&join_paths[0]), "0");

        // A v2 cgroup only: init was put in it by cw-exec; nothing to join, the membership
        // still comes.
        let v2 = Membership::decode(b":/\n").unwrap();
        let (_, join) = files(&dir, "none", 0);
        let handles = LimitHandles { join, leave: None };
        let (init_end, ours) = channel();
        hand_over_limits(&ours, Some(&handles), Some(&v2), ruleset.as_fd()).unwrap();
        match init_join_limits(&init_end) {
            Ok(Released::Limits {
                leave: None,
                membership: Some(m),
                ..
            }) => assert_eq!(m, v2),
            _ => panic!("a v2-only hand-over did not release init with its membership"),
        }

        // No cgroups.
        let (init_end, ours) = channel();
        hand_over_limits(&ours, None, None, ruleset.as_fd()).unwrap();
        assert!(matches!(
            init_join_limits(&init_end),
            Ok(Released::Limits {
                leave: None,
                membership: None,
                ..
            })
        ));

        // cw-exec gave up before the hand-over.
        let (init_end, ours) = channel();
        drop(ours);
        assert!(matches!(
            init_join_limits(&init_end),
            Ok(Released::Abandoned)
        ));

        // A message of another kind, or counts that do not add up, is an error.
        for bytes in [b"t".to_vec(), l_message(3, &expected().encode())] {
            let (init_end, ours) = channel();
            let (_, stand_in) = files(&dir, "bad", 1);
            send_fds(&ours, &bytes, &stand_in.descriptors()).unwrap();
            assert!(init_join_limits(&init_end).is_err(), "{bytes:?}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The membership may reach init in pieces (a stream socket): init reads on until the
    /// message is whole, and no further.
    #[test]
    fn a_hand_over_in_pieces_is_read_whole() {
        let message = l_message(0, &expected().encode());
        let ruleset = stand_in_ruleset();
        for split in [1, 3, 4, 9] {
            let (init_end, ours) = channel();
            send_fds(&ours, &message[..split], &[ruleset.as_fd()]).unwrap();
            nix::unistd::write(&ours, &message[split..]).unwrap();
            match init_join_limits(&init_end) {
                Ok(Released::Limits {
                    leave: None,
                    membership: Some(m),
                    ..
                }) => assert_eq!(m, expected(), "split at {split}"),
                _ => panic!("split at {split}: not released"),
            }
        }
    }

    /// Malformed hand-overs (a broken or compromised sender): each releases nothing — an
    /// error, or abandoned where the channel closed before the message was whole — and every
    /// descriptor that came with it is closed, none kept by init for the command to inherit.
    /// Each case sends copies of a pipe's write end: its read end reads end of file only once
    /// no copy is left anywhere. A membership that is not exactly what cw-exec writes is
    /// among them: init starts no command on a membership it could misread.
    #[test]
    fn a_malformed_hand_over_releases_nothing_and_keeps_no_descriptor() {
        use nix::fcntl::OFlag;
        use std::os::fd::AsFd;
        let good = expected().encode();
        let mut too_long = l_message(1, &good);
        too_long[2..4]
            .copy_from_slice(&((crate::kernel::cgroup::MAX_MEMBERSHIP + 1) as u16).to_le_bytes());
        let mut trailing = l_message(1, &good);
        trailing.push(b'x');
        // Each well-formed message carries the Landlock ruleset as its last descriptor: the
        // counts below include it.
        let cases: Vec<(Vec<u8>, usize)> = vec![
            (b"l".to_vec(), 0),                     // "no cgroups", without the ruleset
            (b"l".to_vec(), 2),                     // "no cgroups", with a descriptor more
            (b"lx".to_vec(), 1),                    // "no cgroups", and more
            (b"t".to_vec(), 1),                     // the old one-descriptor message
            (b"L".to_vec(), 2),                     // closed before the count
            (vec![b'L', 1], 2),                     // the old message: closed before the length
            (l_message(1, &good)[..6].to_vec(), 2), // closed within the membership
            (l_message(0, &good), 0),               // no ruleset
            (l_message(3, &good), 2),               // more to join than were sent
            (l_message(0, &good), 2),               // only to leave
            (l_message(1, &good), 4),               // to join and to leave do not pair
            (l_message(1, &good), sys::MAX_RECEIVED_FDS + 1), // more than one message may carry
            (l_message(1, b""), 2),                 // no membership
            (l_message(1, b"memory:/a"), 2),        // without its newline
            (l_message(1, b"memory:/a\n\n"), 2),    // an empty line
            (l_message(1, b"memory /a\n"), 2),      // no ':'
            (l_message(1, b"cpu:/a\n"), 2),         // a hierarchy no run cgroup is in
            (l_message(1, b"name=systemd:/a\n"), 2),
            (l_message(1, b"memory:a\n"), 2), // a relative path
            (l_message(1, b"memory:/a\nmemory:/b\n"), 2), // a hierarchy twice
            (l_message(1, b"memory:/\xff\n"), 2), // not UTF-8
            (too_long, 2),                    // longer than init takes
            (trailing, 2),                    // bytes after the message
            (b"x?".to_vec(), 2),
        ];
        for (bytes, n) in cases {
            let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).unwrap();
            let (init_end, ours) = channel();
            let copies: Vec<OwnedFd> = (0..n).map(|_| write.try_clone().unwrap()).collect();
            let borrowed: Vec<_> = copies.iter().map(|f| f.as_fd()).collect();
            send_fds(&ours, &bytes, &borrowed).unwrap();
            drop(borrowed);
            drop((copies, write, ours));
            let released = init_join_limits(&init_end);
            assert!(
                !matches!(released, Ok(Released::Limits { .. })),
                "{bytes:?} with {n} descriptors released init"
            );
            drop((released, init_end));
            // A process another test forks holds copies only until its execve
            // (close-on-exec): retried while that may be the case, never a timing.
            let mut buf = [0u8; 1];
            let mut got = nix::unistd::read(&read, &mut buf);
            for _ in 0..200 {
                if got != Err(nix::errno::Errno::EAGAIN) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
                got = nix::unistd::read(&read, &mut buf);
            }
            assert_eq!(got, Ok(0), "{bytes:?} with {n}: a descriptor was kept");
        }
    }
}
