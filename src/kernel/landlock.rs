//! Landlock: the filesystem allowlist (read, write, execute), TCP bind/connect denial for
//! `--net none`, and scoping of abstract Unix sockets and signals to the sandbox.
//!
//! The access sets are pinned to the ABI the kernel reports, and the ruleset is built with
//! `CompatLevel::HardRequirement`: every right we ask for is one the kernel said it has, and
//! if the crate or kernel disagreed the build fails instead of silently dropping a right.
//! The restriction status comes back from the kernel call as data and goes into the
//! attestation as is.

use landlock::{
    Access as _, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath,
    PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope, ABI,
};
use std::os::fd::AsFd;

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

/// Builds the ruleset from the grants (paths as seen inside the sandbox), plus a rule with
/// `device_rights` for each of `devices` (opened by name, in the view), and restricts the
/// calling thread. no_new_privs must already be set.
pub fn restrict(
    abi: LandlockAbi,
    grants: &[Grant],
    devices: &[std::path::PathBuf],
    net: NetMode,
    connect_ports: &[u16],
    bind_ports: &[u16],
) -> Result<LandlockOutcome, String> {
    let handled_fs = abi.handled_fs();
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(handled_fs)
        .map_err(|e| format!("landlock: {e}"))?;
    let mut handled_net: BitFlags<AccessNet> = BitFlags::EMPTY;
    // TCP: nothing at all with --net none; with an allowlist, connect to the proxy's port only.
    if matches!(net, NetMode::None | NetMode::Allowlist) && abi.has_tcp() {
        handled_net = AccessNet::BindTcp | AccessNet::ConnectTcp;
    } else if net == NetMode::Loopback && !bind_ports.is_empty() {
        // --allow-bind: a private loopback where only the listed ports can be listened on.
        handled_net = AccessNet::BindTcp.into();
    }
    if !handled_net.is_empty() {
        ruleset = ruleset
            .handle_access(handled_net)
            .map_err(|e| format!("landlock: {e}"))?;
    }
    let mut scopes: BitFlags<Scope> = BitFlags::EMPTY;
    if abi.has_scopes() {
        scopes = Scope::AbstractUnixSocket | Scope::Signal;
        ruleset = ruleset
            .scope(scopes)
            .map_err(|e| format!("landlock: {e}"))?;
    }
    let mut created = ruleset.create().map_err(|e| format!("landlock: {e}"))?;
    let mut rules = 0;
    for grant in grants {
        let rights = abi.rights(grant.access, grant.is_dir);
        if rights.is_empty() {
            continue;
        }
        // A host path's rule is built from the descriptor held since it was resolved (rules
        // attach to the inode, so one opened on the host applies inside the view too); only
        // the sandbox's own paths (its private tmp and /proc) are opened by name, in the view.
        let added = match &grant.held {
            Some(fd) => created.add_rule(PathBeneath::new(fd.as_fd(), rights)),
            None => {
                let fd = PathFd::new(&grant.path)
                    .map_err(|e| format!("landlock: {}: {e}", grant.path.display()))?;
                created.add_rule(PathBeneath::new(fd, rights))
            }
        };
        created = added.map_err(|e| format!("landlock: rule for {}: {e}", grant.path.display()))?;
        rules += 1;
    }
    for port in bind_ports {
        created = created
            .add_rule(NetPort::new(*port, AccessNet::BindTcp))
            .map_err(|e| format!("landlock: TCP bind rule for port {port}: {e}"))?;
        rules += 1;
    }
    for port in connect_ports {
        created = created
            .add_rule(NetPort::new(*port, AccessNet::ConnectTcp))
            .map_err(|e| format!("landlock: TCP connect rule for port {port}: {e}"))?;
        rules += 1;
    }
    for device in devices {
        let fd = PathFd::new(device).map_err(|e| format!("landlock: {}: {e}", device.display()))?;
        created = created
            .add_rule(PathBeneath::new(fd, device_rights(abi)))
            .map_err(|e| format!("landlock: rule for {}: {e}", device.display()))?;
        rules += 1;
    }
    // no_new_privs is set by the caller (it has to precede seccomp too); the crate setting it
    // again is harmless.
    let status = created
        .restrict_self()
        .map_err(|e| format!("landlock: {e}"))?;
    let status = match status.ruleset {
        RulesetStatus::FullyEnforced => "fully_enforced",
        RulesetStatus::PartiallyEnforced => "partially_enforced",
        RulesetStatus::NotEnforced => "not_enforced",
    };
    Ok(LandlockOutcome {
        abi: abi.0,
        status: status.to_string(),
        handled_fs: handled_fs.names(),
        handled_net: handled_net.names(),
        scopes: scopes.names(),
        rules,
    })
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
