//! The read-back: what the command's process reads from the kernel about itself, and the
//! violations it attempts on itself, after every restriction is in place and immediately
//! before `execve` (a few probes run earlier, between the steps they discriminate; see
//! `containment::command_steps`). Only what is here is *observed*; the verdict
//! (`attest::verdict`) draws dimensions from it and from nothing the plan merely asked for.

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use serde::{Deserialize, Serialize};

use crate::kernel::landlock::LandlockOutcome;
use crate::kernel::quotas::QuotaReadback;
use crate::model::{NetMode, Tier};
use crate::plan::{namespace_inodes, Plan};
use crate::sys;

/// One active check made from inside the sandbox: an operation that must fail, and how.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Probe {
    pub name: String,
    /// What the operation attempted.
    pub attempt: String,
    /// The errno name expected if the mechanism is live.
    pub expect: String,
    /// What the kernel answered ("ok" if the operation succeeded).
    pub got: String,
}

impl Probe {
    pub fn passed(&self) -> bool {
        self.expect == self.got
    }
}

/// The kernel read-back, produced by the command's process after every restriction is in
/// place and before execve.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KernelReadback {
    pub landlock: LandlockOutcome,
    /// Fields of /proc/self/status: NoNewPrivs, Seccomp, Seccomp_filters, Cap*, Uid, Gid.
    pub proc_status: BTreeMap<String, String>,
    /// Namespace inodes of the sandbox (read in the child) and of the host (read by cw-exec
    /// before it created the sandbox).
    pub namespaces: BTreeMap<String, NamespacePair>,
    pub probes: Vec<Probe>,
    /// Names (never values) of the environment passed to execve.
    pub env_names: Vec<String>,
    /// The per-user kernel quotas as read back (see `kernel::quotas`).
    #[serde(default)]
    pub quotas: Vec<QuotaReadback>,
    /// Network interfaces of the command's network namespace (/proc/self/net/dev).
    #[serde(default)]
    pub interfaces: Vec<String>,
    /// Listening TCP sockets of that namespace, as address:port (/proc/self/net/tcp, tcp6).
    #[serde(default)]
    pub tcp_listeners: Vec<String>,
    /// The lines of the command's /proc/self/cgroup for the hierarchies a run's cgroups can
    /// be in (v2; v1 memory, pids, cpuacct), read where the run has cgroups: its membership
    /// of them, which the command's process checks before execve and cw-exec again
    /// (`kernel::cgroup::Membership::check`).
    #[serde(default)]
    pub cgroups: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NamespacePair {
    pub sandbox: u64,
    pub host: u64,
}

impl NamespacePair {
    pub fn separate(&self) -> bool {
        self.sandbox != self.host
    }
}

/// A fact read back from the kernel inside the sandbox. Only this module makes one (the
/// field is private), from a `KernelReadback`: the verdict cannot pass off what the plan
/// asked for as proof.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observed(bool);

impl Observed {
    pub fn holds(self) -> bool {
        self.0
    }

    /// Both observed facts hold.
    pub fn and(self, other: Observed) -> Observed {
        Observed(self.0 && other.0)
    }
}

impl KernelReadback {
    /// A /proc/self/status field has exactly this value.
    pub fn status_is(&self, key: &str, want: &str) -> Observed {
        Observed(
            self.proc_status
                .get(key)
                .map(|v| v.trim() == want)
                .unwrap_or(false),
        )
    }

    /// seccomp is in filter mode with at least `n` filters stacked.
    pub fn seccomp_filters_at_least(&self, n: usize) -> Observed {
        let count = self
            .proc_status
            .get("Seccomp_filters")
            .and_then(|v| v.trim().parse::<usize>().ok());
        self.status_is("Seccomp", "2")
            .and(Observed(count.map(|c| c >= n).unwrap_or(false)))
    }

    /// The probe ran and got the answer expected (a probe that did not run proves nothing).
    pub fn probe_passed(&self, name: &str) -> Observed {
        self.probe_ran(name).unwrap_or(Observed(false))
    }

    /// Whether the probe passed, if it ran.
    pub fn probe_ran(&self, name: &str) -> Option<Observed> {
        self.probes
            .iter()
            .find(|p| p.name == name)
            .map(|p| Observed(p.passed()))
    }

    /// The sandbox's namespace of this kind is not the host's.
    pub fn separate_namespace(&self, kind: &str) -> Observed {
        Observed(
            self.namespaces
                .get(kind)
                .map(NamespacePair::separate)
                .unwrap_or(false),
        )
    }

    /// `landlock_restrict_self` reported the ruleset fully enforced.
    pub fn landlock_fully_enforced(&self) -> Observed {
        Observed(self.landlock.status == "fully_enforced")
    }

    /// The ruleset handles every one of these filesystem rights.
    pub fn landlock_handles(&self, rights: &[&str]) -> Observed {
        Observed(
            rights
                .iter()
                .all(|r| self.landlock.handled_fs.iter().any(|h| h == r)),
        )
    }

    /// The namespace has exactly these interfaces.
    pub fn interfaces_are(&self, names: &[&str]) -> Observed {
        let mut have: Vec<&str> = self.interfaces.iter().map(String::as_str).collect();
        have.sort_unstable();
        let mut want = names.to_vec();
        want.sort_unstable();
        Observed(have == want)
    }

    /// The namespace's only listening TCP sockets are these.
    pub fn tcp_listeners_are(&self, listeners: &[&str]) -> Observed {
        let mut have: Vec<&str> = self.tcp_listeners.iter().map(String::as_str).collect();
        have.sort_unstable();
        have.dedup();
        Observed(have == listeners)
    }

    /// The ruleset scopes every one of these (`AbstractUnixSocket`, `Signal`).
    pub fn landlock_scopes(&self, scopes: &[&str]) -> Observed {
        Observed(
            scopes
                .iter()
                .all(|s| self.landlock.scopes.iter().any(|h| h == s)),
        )
    }

    /// The names execve receives pass `check` (the policy's rule); the error names offenders.
    pub fn env_allowed(
        &self,
        check: impl FnOnce(&[String]) -> Result<(), String>,
    ) -> (Observed, Option<String>) {
        match check(&self.env_names) {
            Ok(()) => (Observed(true), None),
            Err(bad) => (Observed(false), Some(bad)),
        }
    }
}

/// A containment step that failed: (step, message).
pub type StepError = (String, String);

/// What the command's steps gathered for the read-back before it: the probes made between
/// steps, the set-id probe completed right after seccomp, and how many seccomp filters the
/// process had before cw-exec's.
pub struct Gathered {
    pub probes: Vec<Probe>,
    pub setid_chmod: Probe,
    pub filters_before: Option<usize>,
}

/// Reads the kernel's view of the command's process and attempts the late probes, after
/// those `gathered` earlier; the quota sysctls as init read them back (`quotas_from_init`).
/// With the read-back, the signals this process ignores (`SigIgn` of the same read of
/// /proc/self/status; None if absent), which are the only dispositions that survive execve:
/// `sys::reset_signals_for_exec_given` resets just those.
pub fn collect(
    plan: &Plan,
    host_ns: &BTreeMap<String, u64>,
    envp: &[std::ffi::CString],
    landlock: LandlockOutcome,
    gathered: Gathered,
    quotas_from_init: &[QuotaReadback],
) -> Result<(KernelReadback, Option<u64>), StepError> {
    let Gathered {
        mut probes,
        setid_chmod,
        filters_before,
    } = gathered;
    let (proc_status, ignored_signals) =
        read_proc_status().map_err(|e| ("read-back /proc/self/status".to_string(), e))?;
    // The filters this process gained by the install: filters it inherited (a container
    // runtime's, say) must not pass for cw-exec's own.
    let filters_after = proc_status
        .get("Seccomp_filters")
        .and_then(|v| v.trim().parse::<usize>().ok());
    probes.push(probe(
        SECCOMP_INSTALLED,
        "Seccomp_filters of /proc/self/status before and after installing cw-exec's program",
        &format!("+{}", plan.seccomp.filters.len()),
        match (filters_before, filters_after) {
            (Some(before), Some(after)) => format!("+{}", after as i64 - before as i64),
            _ => "unreadable".into(),
        },
    ));
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
    // A file no grant covers, readable and writable by mode: only Landlock (and, in the
    // namespace tier, the read-only mount view) stands between the command and it.
    let canary = plan.canary();
    let shown = canary.display();
    probes.push(probe(
        "read-outside-grants",
        &format!("open({shown}, O_RDONLY)"),
        "EACCES",
        open_errno(&canary, libc::O_RDONLY),
    ));
    match plan.tier {
        Tier::Namespaces => {
            probes.push(probe(
                "write-outside-grants",
                &format!("open({shown}, O_WRONLY)"),
                "EROFS",
                open_errno(&canary, libc::O_WRONLY),
            ));
            probes.push(probe(
                "chmod-outside-grants",
                &format!("chmod({shown}, 0777)"),
                "EROFS",
                errno_of(nix::sys::stat::fchmodat(
                    nix::fcntl::AT_FDCWD,
                    &canary,
                    nix::sys::stat::Mode::from_bits_truncate(0o777),
                    nix::sys::stat::FchmodatFlags::FollowSymlink,
                )),
            ));
        }
        // No read-only mount: Landlock refuses the write (EACCES); a mode change is not
        // mediated at all in this tier (a named gap), so it is not attempted.
        Tier::Landlock => probes.push(probe(
            "write-outside-grants",
            &format!("open({shown}, O_WRONLY)"),
            "EACCES",
            open_errno(&canary, libc::O_WRONLY),
        )),
    }
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
        let got = sys::read_sysctl(None, Path::new("/proc/sys/vm/memfd_noexec"))
            .map(|v| format!("vm.memfd_noexec={}", String::from_utf8_lossy(&v).trim()))
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
    let quotas = crate::kernel::quotas::read_back(&plan.quotas, quotas_from_init);
    let (interfaces, tcp_listeners) = if plan.net == NetMode::Allowlist {
        (read_interfaces(), read_tcp_listeners())
    } else {
        (vec![], vec![])
    };
    let cgroups = if plan.limits.needs_cgroups() {
        read_cgroup_lines()
    } else {
        vec![]
    };
    Ok((
        KernelReadback {
            cgroups,
            quotas,
            landlock,
            proc_status,
            namespaces,
            probes,
            env_names,
            interfaces,
            tcp_listeners,
        },
        ignored_signals,
    ))
}

/// The lines of this process's /proc/self/cgroup for the v2 hierarchy and the v1 ones of
/// the controllers a run's cgroups use: one `read` (`sys::read_whole_proc_file`). Unreadable:
/// none, which proves no membership.
fn read_cgroup_lines() -> Vec<String> {
    let Ok(raw) = sys::read_whole_proc_file(None, Path::new("/proc/self/cgroup"), 4096) else {
        return vec![];
    };
    String::from_utf8_lossy(&raw)
        .lines()
        .filter(|line| {
            line.split(':').nth(1).is_some_and(|c| {
                c.is_empty()
                    || c.split(',')
                        .any(|c| matches!(c, "memory" | "pids" | "cpuacct"))
            })
        })
        .map(str::to_string)
        .collect()
}

/// The interface names of this network namespace.
fn read_interfaces() -> Vec<String> {
    std::fs::read_to_string("/proc/self/net/dev")
        .unwrap_or_default()
        .lines()
        .skip(2)
        .filter_map(|l| l.split_once(':').map(|(name, _)| name.trim().to_string()))
        .collect()
}

/// The listening TCP sockets of this network namespace, as `address:port`.
fn read_tcp_listeners() -> Vec<String> {
    let mut out = vec![];
    for (file, v6) in [("/proc/self/net/tcp", false), ("/proc/self/net/tcp6", true)] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local_address is field 1, st field 3; 0A is LISTEN.
            if fields.len() < 4 || fields[3] != "0A" {
                continue;
            }
            let Some((addr, port)) = fields[1].split_once(':') else {
                continue;
            };
            let port = u16::from_str_radix(port, 16).unwrap_or(0);
            let shown = if v6 {
                format!("[{addr}]:{port}")
            } else {
                match u32::from_str_radix(addr, 16) {
                    // The kernel prints the address in host byte order.
                    Ok(a) => format!("{}:{port}", std::net::Ipv4Addr::from(a.swap_bytes())),
                    Err(_) => format!("{addr}:{port}"),
                }
            };
            out.push(shown);
        }
    }
    out
}

pub fn probe(name: &str, attempt: &str, expect: &str, got: String) -> Probe {
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

pub type SetidProbe = Result<(OwnedFd, nix::sys::stat::Mode), String>;

/// A fresh memfd (sealed against exec where the kernel has MFD_NOEXEC_SEAL) and its mode.
pub fn setid_probe_memfd() -> SetidProbe {
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
pub fn setid_probe_control(memfd: SetidProbe) -> SetidProbe {
    use nix::sys::stat::{fchmod, Mode};
    let (fd, mode) = memfd?;
    fchmod(&fd, mode | Mode::S_ISUID)
        .map_err(|e| format!("control: fchmod(memfd, S_ISUID) before seccomp: {e:?}"))?;
    fchmod(&fd, mode).map_err(|e| format!("control: fchmod(memfd) back: {e:?}"))?;
    Ok((fd, mode))
}

/// The same call after seccomp, which must refuse it; the memfd is closed here.
pub fn setid_probe(control: SetidProbe) -> Probe {
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

pub fn tcp_connect_errno() -> String {
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

/// The probe that the seccomp install added exactly cw-exec's filters.
pub const SECCOMP_INSTALLED: &str = "seccomp-filters-added";

/// How many seccomp filters this process has now (None: unreadable).
pub fn seccomp_filter_count() -> Option<usize> {
    read_proc_status()
        .ok()?
        .0
        .get("Seccomp_filters")
        .and_then(|v| v.trim().parse().ok())
}

/// The read-back's fields of /proc/self/status, and its `SigIgn` mask (hexadecimal in the
/// file), from one read.
fn read_proc_status() -> Result<(BTreeMap<String, String>, Option<u64>), String> {
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
    // One read of the whole file (about 1.5 KiB), see `sys::read_kernel_file`.
    let raw = sys::read_kernel_file(None, Path::new("/proc/self/status"), 4096)
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw);
    let mut ignored = None;
    let mut fields = BTreeMap::new();
    for (k, v) in text.lines().filter_map(|line| line.split_once(':')) {
        if k == "SigIgn" {
            ignored = u64::from_str_radix(v.trim(), 16).ok();
        } else if KEYS.contains(&k) {
            fields.insert(k.to_string(), v.trim().replace('\t', " "));
        }
    }
    Ok((fields, ignored))
}
