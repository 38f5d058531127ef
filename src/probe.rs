//! `cw-exec probe`: what this kernel can enforce, found by trying each mechanism for real
//! in a throwaway child, never by reading version numbers alone.

use serde_json::{json, Value};

use crate::kernel::landlock::LandlockAbi;
use crate::kernel::seccomp::SeccompProgram;
use crate::kernel::userns::write_id_maps;
use crate::policy::NetMode;
use crate::sys;

pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

/// Runs `body` in a child created with `flags` (after writing its id maps when it has a new
/// user namespace) and returns its exit code, or the clone error.
fn in_child(flags: libc::c_int, body: fn() -> i32) -> Result<i32, String> {
    let (go_read, go_write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| e.to_string())?;
    match sys::clone_into_namespaces(flags).map_err(|e| format!("clone: {e}"))? {
        None => {
            drop(go_write);
            let mut b = [0u8; 1];
            if nix::unistd::read(&go_read, &mut b).unwrap_or(0) != 1 {
                std::process::exit(100);
            }
            std::process::exit(body())
        }
        Some(pid) => {
            drop(go_read);
            if flags & libc::CLONE_NEWUSER != 0 {
                if let Err(e) = write_id_maps(
                    pid,
                    nix::unistd::getuid().as_raw(),
                    nix::unistd::getgid().as_raw(),
                ) {
                    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                    let _ = nix::sys::wait::waitpid(pid, None);
                    return Err(e);
                }
            }
            let _ = nix::unistd::write(&go_write, b"g");
            match nix::sys::wait::waitpid(pid, None) {
                Ok(nix::sys::wait::WaitStatus::Exited(_, code)) => Ok(code),
                other => Err(format!("{other:?}")),
            }
        }
    }
}

fn namespaces_and_mounts() -> i32 {
    use nix::mount::{mount, MsFlags};
    // As a run makes it: by unshare, in the new user namespace (`kernel::netns`).
    if nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).is_err() {
        return 7;
    }
    if mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .is_err()
    {
        return 2;
    }
    if mount(
        Some("tmpfs"),
        "/tmp",
        Some("tmpfs"),
        MsFlags::empty(),
        Some("size=64k"),
    )
    .is_err()
    {
        return 3;
    }
    if sys::mount_setattr(
        std::path::Path::new("/tmp"),
        false,
        sys::MOUNT_ATTR_RDONLY,
        0,
    )
    .is_err()
    {
        return 4;
    }
    if mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .is_err()
    {
        return 5;
    }
    if sys::loopback_up().is_err() {
        return 6;
    }
    0
}

fn seccomp_filter() -> i32 {
    if nix::sys::prctl::set_no_new_privs().is_err() {
        return 2;
    }
    let Ok(program) = SeccompProgram::compile(NetMode::None, true, true) else {
        return 3;
    };
    if program.install().is_err() {
        return 4;
    }
    if sys::io_uring_setup_errno() != libc::EPERM {
        return 5;
    }
    0
}

/// Tries each mechanism for real and reports what happened.
pub fn checks() -> Vec<Check> {
    let mut checks = Vec::new();
    let abi = sys::landlock_abi();
    let abi_n = *abi.as_ref().unwrap_or(&0);
    checks.push(Check {
        name: "landlock",
        ok: abi_n >= 1,
        detail: match &abi {
            Ok(n) => format!("ABI {n}"),
            Err(e) => format!("unavailable: {e}"),
        },
    });
    let ns_flags = libc::CLONE_NEWUSER
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWCGROUP;
    let ns = in_child(ns_flags, namespaces_and_mounts);
    checks.push(Check {
        name: "namespaces",
        ok: ns == Ok(0),
        detail: match ns {
            Ok(0) => "user, mount, PID, network, IPC, UTS, cgroup namespaces; private mounts, read-only binds, own /proc, loopback".into(),
            Ok(2) => "mount namespace: cannot make / private".into(),
            Ok(3) => "mount namespace: cannot mount tmpfs".into(),
            Ok(4) => "mount_setattr unavailable (Linux < 5.12)".into(),
            Ok(5) => "cannot mount a fresh /proc (a masked /proc, as inside some containers?)".into(),
            Ok(6) => "cannot bring up loopback in a new network namespace".into(),
            Ok(7) => "network namespace: unshare(CLONE_NEWNET) refused in the new user namespace (a seccomp filter?)".into(),
            Ok(n) => format!("child exited {n}"),
            Err(e) => format!("unavailable to this user: {e}"),
        },
    });
    let sc = in_child(0, seccomp_filter);
    checks.push(Check {
        name: "seccomp",
        ok: sc == Ok(0),
        detail: match sc {
            Ok(0) => "filter installed; io_uring_setup answered EPERM".into(),
            Ok(n) => format!("filter check failed at step {n}"),
            Err(e) => e,
        },
    });
    let host = crate::kernel::cgroup::CgroupHost::read();
    let located: Vec<String> = [
        ("memory", crate::kernel::cgroup::Controller::Memory),
        ("pids", crate::kernel::cgroup::Controller::Pids),
        (
            "cpu accounting",
            crate::kernel::cgroup::Controller::CpuAccounting,
        ),
    ]
    .iter()
    .map(|(name, c)| match host.locate(*c) {
        Some(h) => format!("{name}: {}", h.describe()),
        None if *c == crate::kernel::cgroup::Controller::Pids
            && !nix::unistd::getuid().is_root() =>
        {
            format!("{name}: none (RLIMIT_NPROC binds this sandbox's user namespace)")
        }
        None if *c == crate::kernel::cgroup::Controller::Pids => {
            format!("{name}: none (an explicit limit is refused; a profile default is not applied)")
        }
        None => {
            format!("{name}: none (an explicit limit is refused; a profile default is per process)")
        }
    })
    .collect();
    checks.push(Check {
        name: "cgroups",
        ok: !located.iter().any(|l| l.contains("none")),
        detail: format!(
            "{} (limits only; not needed for the five dimensions)",
            located.join(", ")
        ),
    });
    // Which tier a run gets here, and when it is the lower one, why and how to get the full.
    let ns_ok = checks.iter().any(|c| c.name == "namespaces" && c.ok);
    let sc_ok = checks.iter().any(|c| c.name == "seccomp" && c.ok);
    checks.push(Check {
        name: "tier",
        ok: ns_ok || (abi_n >= 6 && sc_ok),
        detail: if ns_ok {
            "namespaces (the full tier: mount view, PID, network and user namespaces)".into()
        } else if abi_n >= 6 && sc_ok {
            let why = crate::kernel::userns::denied_by_sysctl().unwrap_or_else(|| {
                "creating a user namespace failed (a seccomp filter such as a container runtime's default profile refuses clone/unshare with CLONE_NEWUSER)".into()
            });
            format!(
                "landlock (user namespaces unavailable: {why}); for the namespace tier allow user namespaces: on the host, the sysctl named; in a container, a seccomp profile that allows clone/unshare with CLONE_NEWUSER (docs/scale.md)"
            )
        } else {
            "none: neither user namespaces nor Landlock ABI >= 6 with seccomp".into()
        },
    });
    checks
}

/// Per dimension: whether it can be enforced here, and by what.
pub fn dimensions(checks: &[Check]) -> Vec<(&'static str, bool, String)> {
    let ok = |name: &str| checks.iter().any(|c| c.name == name && c.ok);
    let abi_n = sys::landlock_abi().unwrap_or(0);
    let ll = LandlockAbi(abi_n);
    if !ok("namespaces") && ok("tier") {
        // The Landlock tier: the same dimensions, by what needs no privilege.
        let ll_ok = ok("landlock") && ok("seccomp");
        return vec![
            ("read", ll_ok, "Landlock filesystem rules (landlock tier: no mount view)".into()),
            (
                "write",
                ll_ok,
                "Landlock write rights (landlock tier: metadata changes of the user's own files are not mediated)".into(),
            ),
            (
                "command",
                ll_ok,
                "Landlock EXECUTE allowlist + seccomp".into(),
            ),
            (
                "network",
                ll_ok,
                "seccomp socket families + Landlock TCP + abstract-socket scope (landlock tier: no network namespace)".into(),
            ),
            (
                "env",
                true,
                "environment built from scratch for execve".into(),
            ),
        ];
    }
    let fs = ok("landlock") && ok("namespaces");
    vec![
        ("read", fs, "Landlock filesystem rules + mount view".into()),
        (
            "write",
            fs,
            format!(
                "Landlock write rights{} + read-only mount view",
                if ll.has_truncate() {
                    " (incl. truncate)"
                } else {
                    ""
                }
            ),
        ),
        (
            "command",
            ok("landlock") && ok("seccomp"),
            "Landlock EXECUTE allowlist + noexec mounts + seccomp".into(),
        ),
        (
            "network",
            ok("namespaces") && ok("seccomp"),
            format!(
                "network namespace + seccomp socket families{}{}",
                if ll.has_tcp() { " + Landlock TCP" } else { "" },
                if ll.has_scopes() {
                    " + Landlock abstract-socket scope"
                } else {
                    ""
                }
            ),
        ),
        (
            "env",
            true,
            "environment built from scratch for execve".into(),
        ),
    ]
}

pub fn main(as_json: bool) -> i32 {
    let checks = checks();
    let dims = dimensions(&checks);
    let abi_n = sys::landlock_abi().unwrap_or(0);
    let ready = dims.iter().all(|(_, ok, _)| *ok);
    if as_json {
        let out: Value = json!({
            "schemaVersion": 1,
            "backendId": crate::envelope::BACKEND_ID,
            "kernel": nix::sys::utsname::uname().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default(),
            "uid": nix::unistd::getuid().as_raw(),
            "ready": ready,
            "landlockAbi": abi_n,
            "checks": checks.iter().map(|c| json!({"name": c.name, "ok": c.ok, "detail": c.detail})).collect::<Vec<_>>(),
            "dimensions": dims.iter().map(|(d, ok, how)| json!({"dimension": d, "enforceable": ok, "mechanism": how})).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    } else {
        println!("cw-exec probe (uid {})", nix::unistd::getuid());
        for c in &checks {
            println!(
                "  {:<11} {:<4} {}",
                c.name,
                match (c.ok, c.name) {
                    (true, _) => "ok",
                    (false, "cgroups") => "none",
                    (false, "namespaces") if checks.iter().any(|t| t.name == "tier" && t.ok) => {
                        "no"
                    }
                    (false, _) => "FAIL",
                },
                c.detail
            );
        }
        println!();
        for (d, ok, how) in &dims {
            println!(
                "  {:<8} {:<13} {}",
                d,
                if *ok { "enforceable" } else { "UNENFORCEABLE" },
                how
            );
        }
        println!(
            "\n{}",
            if ready {
                "ready: every dimension can be enforced"
            } else {
                "not ready: cw-exec will refuse policies that need the missing mechanisms"
            }
        );
    }
    if ready {
        0
    } else {
        1
    }
}
