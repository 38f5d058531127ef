//! Landlock: the filesystem allowlist (read, write, execute), TCP bind/connect denial for
//! `--net none`, and scoping of abstract Unix sockets and signals to the sandbox.
//!
//! The access sets are pinned to the ABI the kernel reports, and the ruleset is built with
//! `CompatLevel::HardRequirement`: every right we ask for is one the kernel said it has, and
//! if the crate or kernel disagreed the build fails instead of silently dropping a right.
//! The rules are added and the restriction made with direct calls (`sys::landlock_*`) on the
//! crate's ruleset: from the descriptors the plan holds, with the rights their grants give
//! (no `fstat` of each, which the crate's rule path makes). The kernel accepts or refuses
//! each call; a refusal fails the step, and the status the attestation records is that of
//! a restriction the kernel accepted with every right it handles.

use landlock::{
    Access as _, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, Ruleset, RulesetAttr,
    Scope, ABI,
};
use nix::fcntl::OFlag;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::model::{Access, Grant, NetMode};

/// What this kernel's Landlock can do, derived from its ABI number.
#[derive(Clone, Copy, Debug)]
pub struct LandlockAbi(pub u32);

impl LandlockAbi {
    pub fn abi(self) -> ABI {
        ABI::from(self.0 as i32)
    }
    /// Filesystem rights handled at this ABI: all of them, so anything not granted is denied.
    pub fn handled_fs(self) -> BitFlags<AccessFs> {
        AccessFs::from_all(self.abi())
    }
    /// TCP bind/connect control arrived in ABI 4.
    pub fn has_tcp(self) -> bool {
        self.0 >= 4
    }
    /// Truncate control arrived in ABI 3 (before it, truncate is not mediated).
    pub fn has_truncate(self) -> bool {
        self.0 >= 3
    }
    /// Abstract Unix socket and signal scoping arrived in ABI 6.
    pub fn has_scopes(self) -> bool {
        self.0 >= 6
    }
    /// Pathname Unix socket connect control (LANDLOCK_ACCESS_FS_RESOLVE_UNIX), ABI 9.
    pub fn has_resolve_unix(self) -> bool {
        self.0 >= 9
    }

    /// The Landlock rights a grant lowers to.
    pub fn rights(self, access: Access, is_dir: bool) -> BitFlags<AccessFs> {
        let abi = self.abi();
        let mut rights = BitFlags::EMPTY;
        if access.read {
            rights |= AccessFs::ReadFile | AccessFs::ReadDir;
        }
        if access.write {
            rights |= AccessFs::ReadFile | AccessFs::ReadDir | AccessFs::from_write(abi);
            // Device ioctls stay denied even beneath a writable path: nothing a build or an
            // agent does needs them, and they are how a tty is driven.
            rights &= !AccessFs::IoctlDev;
        }
        if access.exec {
            rights |= AccessFs::Execute | AccessFs::ReadFile;
        }
        rights &= self.handled_fs();
        if !is_dir {
            rights &= AccessFs::from_file(abi);
        }
        rights
    }
}

/// The Landlock part of the kernel read-back: what `landlock_restrict_self` returned.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LandlockOutcome {
    pub abi: u32,
    /// "fully_enforced", "partially_enforced" or "not_enforced", as the kernel call returned.
    pub status: String,
    pub handled_fs: Vec<String>,
    pub handled_net: Vec<String>,
    pub scopes: Vec<String>,
    pub rules: usize,
}

/// Read, write and device ioctls on one device file: the sandbox's own terminal (its pty
/// slave and /dev/tty), which job control and terminal modes drive with ioctls. Never
/// beneath a grant: grants keep device ioctls denied.
pub fn device_rights(abi: LandlockAbi) -> BitFlags<AccessFs> {
    (AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::IoctlDev)
        & abi.handled_fs()
        & AccessFs::from_file(abi.abi())
}

/// What a run's ruleset is made from: the ABI, the grants, the network mode and the TCP
/// ports the command may connect to and bind. One value for both ends, so that cw-exec's
/// `prepare` and init's `Prepared::received` describe the same ruleset.
#[derive(Clone, Copy)]
pub struct Spec<'a> {
    pub abi: LandlockAbi,
    pub grants: &'a [&'a Grant],
    pub net: NetMode,
    pub connect_ports: &'a [u16],
    pub bind_ports: &'a [u16],
}

/// A ruleset made and given the rules that need nothing of the sandbox: one per grant held
/// as a descriptor since the plan resolved it (rules attach to the inode, so one opened on
/// the host applies inside the view too) and the TCP port rules. cw-exec prepares it while
/// init builds the mount view, off the run's critical path, and hands it to init with the
/// cgroups; the command's process `finish`es it. Nothing is enforced until then.
pub struct Prepared {
    ruleset: OwnedFd,
    handled_fs: BitFlags<AccessFs>,
    handled_net: BitFlags<AccessNet>,
    scopes: BitFlags<Scope>,
    rules: usize,
}

impl Prepared {
    /// The ruleset's descriptor, to hand to init.
    pub fn descriptor(&self) -> std::os::fd::BorrowedFd<'_> {
        self.ruleset.as_fd()
    }

    /// A ruleset `prepare` made from `spec`, as init received it: the description is derived
    /// again from the same spec, as `prepare` derived it, and the count of its rules is that
    /// of the grants and ports `prepare` adds (it fails the step if the kernel refuses any).
    pub fn received(ruleset: OwnedFd, spec: &Spec<'_>) -> Prepared {
        let (handled_fs, handled_net, scopes) = handled(spec.abi, spec.net, spec.bind_ports);
        let rules = held_rules(spec.abi, spec.grants).count()
            + spec.connect_ports.len()
            + spec.bind_ports.len();
        Prepared {
            ruleset,
            handled_fs,
            handled_net,
            scopes,
            rules,
        }
    }
}

/// What a ruleset for `net` (and `bind_ports`) handles on this ABI: filesystem rights, TCP
/// rights, scopes.
fn handled(
    abi: LandlockAbi,
    net: NetMode,
    bind_ports: &[u16],
) -> (BitFlags<AccessFs>, BitFlags<AccessNet>, BitFlags<Scope>) {
    let mut handled_net: BitFlags<AccessNet> = BitFlags::EMPTY;
    // TCP: nothing at all with --net none; with an allowlist, connect to the proxy's port only.
    if matches!(net, NetMode::None | NetMode::Allowlist) && abi.has_tcp() {
        handled_net = AccessNet::BindTcp | AccessNet::ConnectTcp;
    } else if net == NetMode::Loopback && !bind_ports.is_empty() {
        // --allow-bind: a private loopback where only the listed ports can be listened on.
        handled_net = AccessNet::BindTcp.into();
    }
    let scopes = if abi.has_scopes() {
        Scope::AbstractUnixSocket | Scope::Signal
    } else {
        BitFlags::EMPTY
    };
    (abi.handled_fs(), handled_net, scopes)
}

/// The grants `prepare` adds rules for, with their rights: those held as descriptors, with
/// rights on this ABI.
fn held_rules<'s, 'a>(
    abi: LandlockAbi,
    grants: &'s [&'a Grant],
) -> impl Iterator<Item = (&'a Grant, &'a OwnedFd, BitFlags<AccessFs>)> + use<'s, 'a> {
    grants.iter().copied().filter_map(move |g| {
        let rights = abi.rights(g.access, g.is_dir);
        match &g.held {
            Some(fd) if !rights.is_empty() => Some((g, fd.as_ref(), rights)),
            _ => None,
        }
    })
}

/// Makes the ruleset and adds the rules of the grants held as descriptors and of the TCP
/// ports (see `Prepared`).
pub fn prepare(spec: &Spec<'_>) -> Result<Prepared, String> {
    let Spec {
        abi,
        grants,
        net,
        connect_ports,
        bind_ports,
    } = *spec;
    let (handled_fs, handled_net, scopes) = handled(abi, net, bind_ports);
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(handled_fs)
        .map_err(|e| format!("landlock: {e}"))?;
    if !handled_net.is_empty() {
        ruleset = ruleset
            .handle_access(handled_net)
            .map_err(|e| format!("landlock: {e}"))?;
    }
    if !scopes.is_empty() {
        ruleset = ruleset
            .scope(scopes)
            .map_err(|e| format!("landlock: {e}"))?;
    }
    // The crate makes the ruleset (its handled rights checked against the ABI, a hard
    // requirement); the rules and the restriction are direct calls on its descriptor. The
    // crate's rule path would `fstat` each descriptor to learn whether it is a directory,
    // which the grant already says (`is_dir`, from the `statx` made when it was resolved,
    // of the same object); the kernel still refuses a rule with directory rights on a
    // non-directory (EINVAL), so a wrong `is_dir` fails the step rather than passing.
    let created = ruleset.create().map_err(|e| format!("landlock: {e}"))?;
    let ruleset: Option<OwnedFd> = created.into();
    let ruleset = ruleset.ok_or("landlock: the kernel made no ruleset")?;
    let mut rules = 0;
    for (grant, fd, rights) in held_rules(abi, grants) {
        crate::sys::landlock_add_path_rule(ruleset.as_fd(), fd.as_fd(), rights.bits())
            .map_err(|e| format!("landlock: rule for {}: {e}", grant.path.display()))?;
        rules += 1;
    }
    for port in bind_ports {
        crate::sys::landlock_add_port_rule(ruleset.as_fd(), *port, AccessNet::BindTcp as u64)
            .map_err(|e| format!("landlock: TCP bind rule for port {port}: {e}"))?;
        rules += 1;
    }
    for port in connect_ports {
        crate::sys::landlock_add_port_rule(ruleset.as_fd(), *port, AccessNet::ConnectTcp as u64)
            .map_err(|e| format!("landlock: TCP connect rule for port {port}: {e}"))?;
        rules += 1;
    }
    Ok(Prepared {
        ruleset,
        handled_fs,
        handled_net,
        scopes,
        rules,
    })
}

/// Completes a prepared ruleset with the rules that name the sandbox's own paths (grants not
/// held as descriptors: its private tmp, /proc; opened by name, in the view) and a rule with
/// `device_rights` for each of `devices` (its terminal's nodes), and restricts the calling
/// thread. no_new_privs must already be set.
pub fn finish(
    abi: LandlockAbi,
    prepared: Prepared,
    grants: &[&Grant],
    devices: &[std::path::PathBuf],
) -> Result<LandlockOutcome, String> {
    let Prepared {
        ruleset,
        handled_fs,
        handled_net,
        scopes,
        mut rules,
    } = prepared;
    let by_name = |path: &Path| {
        nix::fcntl::open(
            path,
            OFlag::O_PATH | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| format!("landlock: {}: {e}", path.display()))
    };
    for grant in grants.iter().filter(|g| g.held.is_none()) {
        let rights = abi.rights(grant.access, grant.is_dir);
        if rights.is_empty() {
            continue;
        }
        let fd = by_name(&grant.path)?;
        crate::sys::landlock_add_path_rule(ruleset.as_fd(), fd.as_fd(), rights.bits())
            .map_err(|e| format!("landlock: rule for {}: {e}", grant.path.display()))?;
        rules += 1;
    }
    for device in devices {
        let fd = by_name(device)?;
        crate::sys::landlock_add_path_rule(ruleset.as_fd(), fd.as_fd(), device_rights(abi).bits())
            .map_err(|e| format!("landlock: rule for {}: {e}", device.display()))?;
        rules += 1;
    }
    // no_new_privs is set by the caller (it has to precede seccomp too). The ruleset was made
    // with every right it handles required, and the kernel accepted each rule: a successful
    // restriction enforces all of it.
    crate::sys::landlock_restrict_self(ruleset.as_fd()).map_err(|e| format!("landlock: {e}"))?;
    let status = "fully_enforced";
    Ok(LandlockOutcome {
        abi: abi.0,
        status: status.to_string(),
        handled_fs: handled_fs.names(),
        handled_net: handled_net.names(),
        scopes: scopes.names(),
        rules,
    })
}

/// `prepare` and `finish` in one: builds the whole ruleset from the grants (paths as seen
/// inside the sandbox) and `devices`, and restricts the calling thread.
#[cfg(test)]
pub fn restrict(
    abi: LandlockAbi,
    grants: &[&Grant],
    devices: &[std::path::PathBuf],
    net: NetMode,
    connect_ports: &[u16],
    bind_ports: &[u16],
) -> Result<LandlockOutcome, String> {
    let prepared = prepare(&Spec {
        abi,
        grants,
        net,
        connect_ports,
        bind_ports,
    })?;
    finish(abi, prepared, grants, devices)
}

/// Names of the flags in a set, as the crate spells them (`ReadFile`, `BindTcp`, ...).
pub trait FlagNames {
    fn names(self) -> Vec<String>;
}

macro_rules! flag_names {
    ($($t:ty),*) => {$(
        impl FlagNames for BitFlags<$t> {
            fn names(self) -> Vec<String> {
                self.iter().map(|flag| format!("{flag:?}")).collect()
            }
        }
    )*};
}
flag_names!(AccessFs, AccessNet, Scope);

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn held_grant(path: &Path, access: Access, is_dir: bool) -> Grant {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_PATH | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .unwrap();
        Grant {
            path: path.to_path_buf(),
            requested: path.display().to_string(),
            access,
            is_dir,
            per_run: false,
            identity: None,
            held: Some(Arc::new(fd)),
            links: vec![],
        }
    }

    /// In a thread of its own (Landlock and no_new_privs are per thread): restricts it with
    /// `grants`, then runs `check`.
    fn restricted<T: Send + 'static>(
        abi: LandlockAbi,
        grants: Vec<Grant>,
        check: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, String> {
        std::thread::spawn(move || {
            nix::sys::prctl::set_no_new_privs().unwrap();
            let grants: Vec<&Grant> = grants.iter().collect();
            restrict(abi, &grants, &[], NetMode::None, &[], &[])?;
            Ok(check())
        })
        .join()
        .unwrap()
    }

    /// Rules built from held descriptors, with the rights of each grant: what is granted
    /// opens, what is not is EACCES, TCP connect is refused; and a rule the kernel refuses
    /// (directory rights on a file: a grant that says directory for a file) fails the step.
    #[test]
    fn rules_from_held_descriptors_are_enforced_and_a_refused_rule_fails() {
        let abi = match crate::sys::landlock_abi() {
            Ok(v) if v >= 4 => LandlockAbi(v),
            _ => return, // no Landlock (or no TCP rules) here: nothing to check
        };
        let dir = std::env::temp_dir().join(format!("cwx-landlock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (granted, other) = (dir.join("granted"), dir.join("other"));
        std::fs::create_dir_all(&granted).unwrap();
        std::fs::create_dir_all(&other).unwrap();
        for f in [granted.join("f"), other.join("g"), other.join("h")] {
            std::fs::write(f, "x").unwrap();
        }
        let read = Access {
            read: true,
            write: false,
            exec: false,
        };
        let grants = vec![
            held_grant(&granted, read, true),
            held_grant(&other.join("g"), read, false),
        ];
        let (f, g, h) = (granted.join("f"), other.join("g"), other.join("h"));
        let outcome = restricted(abi, grants, move || {
            let open = |p: &Path| {
                std::fs::File::open(p)
                    .map(|_| ())
                    .map_err(|e| e.raw_os_error())
            };
            let connect = std::net::TcpStream::connect("127.0.0.1:9")
                .map(|_| ())
                .map_err(|e| e.raw_os_error());
            (open(&f), open(&g), open(&h), connect)
        })
        .unwrap();
        assert_eq!(outcome.0, Ok(()));
        assert_eq!(outcome.1, Ok(()));
        assert_eq!(outcome.2, Err(Some(libc::EACCES)));
        assert_eq!(outcome.3, Err(Some(libc::EACCES)));

        let wrong = vec![held_grant(&other.join("g"), read, true)];
        let err = restricted(abi, wrong, || ()).unwrap_err();
        assert!(
            err.contains("rule for") && err.contains("Invalid argument"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
