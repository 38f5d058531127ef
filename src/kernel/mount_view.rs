//! The mount view: a new root holding only what the policy grants, read-only except the
//! write set, built in the sandbox's own mount namespace and entered with pivot_root.
//!
//! Why, when Landlock already mediates file access:
//! - Landlock does not mediate metadata changes (chmod, chown, setxattr, utimes) or
//!   connecting to a pathname Unix socket (before ABI 9). A process that owns a file —
//!   root owns most of the system — could chmod it. A read-only mount stops every
//!   modification outside the write set (EROFS), whoever owns the file.
//! - A path that is not in the view does not exist for the sandbox: host sockets such as
//!   /run/docker.sock or an ssh-agent socket in /tmp cannot be reached at all.
//! - Mounts not on the exec allowlist are `noexec`, which also stops mmap(PROT_EXEC), so a
//!   file there cannot be run through the ELF loader (`ld.so FILE`) either.

use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::plan::{normalize, Grant, Plan, PRIVATE_TMP};
use crate::sys::{self, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY};

/// A file in the view's root that no grant covers. The read-back tries to read and write it
/// from inside the sandbox to prove the Landlock and read-only layers are live.
pub const CANARY: &str = "/.cw-exec-canary";

/// Host credentials. When a grant covers one of these (`--read /`, or a working directory of
/// `/etc`) but no grant names it or something beneath it, it is masked in the view by an
/// empty, mode-000 file or directory: reading it fails (EACCES), whoever the caller is.
pub const CREDENTIALS: &[&str] = &[
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/sudoers",
    "/etc/sudoers.d",
    "/etc/ssh",
    "/etc/ssl/private",
    "/root",
    "/home",
];

/// One bind mount of the view.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Bind {
    path: PathBuf,
    writable: bool,
    exec: bool,
    device: bool,
}

impl Bind {
    /// Flags to set and clear on top of what every bind inherits from the old root, which
    /// is made read-only, nosuid and nodev before any bind (see `enter`): one call fewer per
    /// read-only bind, and a bind can never come out looser than that baseline by mistake.
    fn attrs(&self) -> (u64, u64) {
        let mut set = 0;
        let mut clear = 0;
        if self.writable {
            clear |= MOUNT_ATTR_RDONLY;
        }
        if self.device {
            clear |= MOUNT_ATTR_NODEV;
        }
        if !self.exec {
            set |= MOUNT_ATTR_NOEXEC;
        }
        (set, clear)
    }
}

/// The binds the view needs, parents before children, leaving out any path whose nearest
/// bound ancestor already has the same flags.
fn binds(plan: &Plan) -> Vec<Bind> {
    let bind = |g: &Grant, runtime: bool| {
        let device = g.path.starts_with("/dev");
        Bind {
            path: g.path.clone(),
            writable: g.access.write && !device,
            // Runtime entries keep exec at the mount level: shared libraries must be
            // mmap-able PROT_EXEC even when only the loader may be execve'd.
            exec: (g.access.exec || runtime) && !device,
            device,
        }
    };
    let mut wanted: Vec<Bind> = plan
        .grants
        .iter()
        .chain(plan.agent_install.iter())
        .filter(|g| !g.per_run)
        .map(|g| bind(g, false))
        .chain(
            plan.runtime
                .iter()
                .filter(|g| g.path != Path::new("/proc"))
                .map(|g| bind(g, true)),
        )
        .collect();
    wanted.sort_by(|a, b| a.path.cmp(&b.path));
    wanted.dedup_by(|later, earlier| {
        if later.path == earlier.path {
            earlier.writable |= later.writable;
            earlier.exec |= later.exec;
            true
        } else {
            false
        }
    });
    let mut out: Vec<Bind> = Vec::new();
    for bind in wanted {
        let parent = out
            .iter()
            .filter(|b| bind.path.starts_with(&b.path))
            .max_by_key(|b| b.path.components().count());
        if let Some(parent) = parent {
            if parent.writable == bind.writable
                && parent.exec == bind.exec
                && parent.device == bind.device
            {
                continue;
            }
        }
        out.push(bind);
    }
    out
}

/// Where the view's root is assembled before pivot_root: any directory that exists on every
/// host works, since the tmpfs mounted over it exists only in the sandbox's namespace.
const STAGING: &str = "/tmp";
/// Where the host's tree sits, inside the view, while the binds are made from it.
const OLD_ROOT: &str = "/.cw-exec-oldroot";

/// Builds the view and enters it. Runs in init, inside the new user, mount and PID
/// namespaces, with the namespace's capabilities.
///
/// As bubblewrap does: pivot into an empty tmpfs first, with the host's tree moved to
/// OLD_ROOT, bind from there, then detach the host's tree. Binding after the pivot means a
/// grant beneath the staging directory is still reachable, and no host path ever leads to
/// the view's root. The private /tmp is a tmpfs too: when the namespace ends it is gone,
/// whatever happened to cw-exec.
pub fn enter(plan: &Plan) -> Result<(), String> {
    let step = |what: &str, e: &dyn std::fmt::Display| format!("mount view: {what}: {e}");
    let host = |p: &Path| Path::new(OLD_ROOT).join(p.strip_prefix("/").unwrap_or(p));

    // Nothing done below may propagate back to the host.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| step("making / private", &e))?;
    mount(
        Some("tmpfs"),
        STAGING,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0755,size=4m"),
    )
    .map_err(|e| step(&format!("tmpfs on {STAGING}"), &e))?;
    let old_root_in_staging = Path::new(STAGING).join(OLD_ROOT.trim_start_matches('/'));
    mkdir(&old_root_in_staging).map_err(|e| step(OLD_ROOT, &e))?;
    nix::unistd::pivot_root(STAGING, &old_root_in_staging).map_err(|e| step("pivot_root", &e))?;
    std::env::set_current_dir("/").map_err(|e| step("chdir /", &e))?;
    // The baseline every bind inherits (bind mounts copy their source's flags).
    sys::mount_setattr(
        Path::new(OLD_ROOT),
        true,
        MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        0,
    )
    .map_err(|e| step("making the host tree read-only in this namespace", &e))?;

    // The private /tmp, before the binds so that granted host paths beneath /tmp land on it.
    let mut tmp_flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    if !plan.tmp_exec() {
        tmp_flags |= MsFlags::MS_NOEXEC;
    }
    mkdir(Path::new(PRIVATE_TMP)).map_err(|e| step(PRIVATE_TMP, &e))?;
    mount(
        Some("tmpfs"),
        PRIVATE_TMP,
        Some("tmpfs"),
        tmp_flags,
        Some("mode=1777"),
    )
    .map_err(|e| step("private /tmp", &e))?;

    let mut mirror = Mirror::default();
    for grant in plan
        .all_grants()
        .filter(|g| !g.per_run && g.path != Path::new("/proc"))
    {
        mirror
            .path(Path::new(&grant.requested))
            .map_err(|e| step(&grant.requested, &e))?;
    }
    for bind in binds(plan) {
        mirror
            .path(&bind.path)
            .map_err(|e| step(&bind.path.display().to_string(), &e))?;
        mount(
            Some(&host(&bind.path)),
            &bind.path,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| step(&format!("bind {}", bind.path.display()), &e))?;
        let (set, clear) = bind.attrs();
        if (set, clear) == (0, 0) {
            continue;
        }
        // Recursive first, so submounts get the same flags; a submount the host locked
        // read-only refuses to be made writable, in which case only the top stays
        // writable (stricter than asked, never looser).
        sys::mount_setattr(&bind.path, true, set, clear)
            .or_else(|e| {
                if clear != 0 {
                    sys::mount_setattr(&bind.path, false, set, clear)
                } else {
                    Err(e)
                }
            })
            .map_err(|e| step(&format!("flags on {}", bind.path.display()), &e))?;
    }

    // This sandbox's own /proc (init is PID 1 of a new PID namespace).
    mkdir(Path::new("/proc")).map_err(|e| step("/proc", &e))?;
    mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|e| step("mounting /proc", &e))?;

    mkdir(Path::new("/dev")).map_err(|e| step("/dev", &e))?;
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let link = Path::new("/dev").join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(target, &link)
                .map_err(|e| step(&format!("/dev/{name}"), &e))?;
        }
    }

    mask_credentials(plan).map_err(|e| step("masking host credentials", &e))?;

    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(CANARY)
        .map_err(|e| step("canary", &e))?;
    if std::fs::symlink_metadata(&plan.cwd).is_err() {
        mirror
            .path(&plan.cwd)
            .map_err(|e| step(&format!("cwd {}", plan.cwd.display()), &e))?;
    }

    // Drop the host's tree from this namespace entirely, then freeze the skeleton.
    umount2(OLD_ROOT, MntFlags::MNT_DETACH).map_err(|e| step("detaching the host root", &e))?;
    std::fs::remove_dir(OLD_ROOT).map_err(|e| step("removing the old root's mount point", &e))?;
    sys::mount_setattr(
        Path::new("/"),
        false,
        MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
        0,
    )
    .map_err(|e| step("making the view's root read-only", &e))?;
    Ok(())
}

/// Covers every credential path a grant brought into the view without naming it.
fn mask_credentials(plan: &Plan) -> io::Result<()> {
    const MASK: &str = "/.cw-exec-mask";
    for cred in CREDENTIALS.iter().map(Path::new) {
        let named = plan.all_grants().any(|g| g.path.starts_with(cred));
        let Ok(meta) = std::fs::symlink_metadata(cred) else {
            continue;
        };
        if named || meta.file_type().is_symlink() {
            continue;
        }
        if meta.is_dir() {
            mount(
                Some("tmpfs"),
                cred,
                Some("tmpfs"),
                MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                Some("size=4k,mode=000"),
            )
            .map_err(|e| io::Error::other(format!("{}: {e}", cred.display())))?;
        } else {
            if std::fs::symlink_metadata(MASK).is_err() {
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o000)
                    .open(MASK)?;
            }
            mount(
                Some(MASK),
                cred,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| io::Error::other(format!("{}: {e}", cred.display())))?;
            sys::mount_setattr(
                cred,
                false,
                MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
                0,
            )?;
        }
    }
    Ok(())
}

fn mkdir(path: &Path) -> io::Result<()> {
    match std::fs::DirBuilder::new().mode(0o755).create(path) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

/// Recreates host paths inside the view, remembering what it already made: the grants
/// share most of their parents, and each lstat and mkdir saved is a syscall per run.
#[derive(Default)]
struct Mirror {
    done: std::collections::HashSet<PathBuf>,
}

impl Mirror {
    /// Recreates `path` inside the view as it appears on the host (seen through OLD_ROOT):
    /// directories as directories, symlinks as the same symlinks (then following them), and
    /// a final non-directory as an empty file to bind onto.
    fn path(&mut self, path: &Path) -> io::Result<()> {
        self.walk(path, 0)
    }

    fn walk(&mut self, path: &Path, depth: u32) -> io::Result<()> {
        if depth > 40 {
            return Err(io::Error::from_raw_os_error(libc::ELOOP));
        }
        let mut inside = PathBuf::from("/");
        let comps: Vec<Component> = path.components().collect();
        for (i, comp) in comps.iter().enumerate() {
            let Component::Normal(name) = comp else {
                continue;
            };
            inside.push(name);
            if self.done.contains(&inside) {
                continue;
            }
            let on_host = Path::new(OLD_ROOT).join(inside.strip_prefix("/").unwrap());
            let meta = std::fs::symlink_metadata(&on_host)?;
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&on_host)?;
                if std::fs::symlink_metadata(&inside).is_err() {
                    std::os::unix::fs::symlink(&target, &inside)?;
                }
                let mut resolved = inside.parent().unwrap_or(Path::new("/")).join(&target);
                for rest in &comps[i + 1..] {
                    resolved.push(rest);
                }
                // Not remembered: what lies beyond a symlink depends on the rest of the path.
                return self.walk(&normalize(&resolved), depth + 1);
            } else if meta.is_dir() {
                mkdir(&inside)?;
            } else if std::fs::symlink_metadata(&inside).is_err() {
                std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .mode(0o644)
                    .open(&inside)?;
            }
            self.done.insert(inside.clone());
        }
        Ok(())
    }
}

/// Descriptions of the view's mounts, for `explain` and the attestation.
pub fn describe(plan: &Plan) -> Vec<String> {
    let mut out: Vec<String> = binds(plan)
        .iter()
        .map(|b| {
            format!(
                "{} {}{}",
                b.path.display(),
                if b.writable { "rw" } else { "ro" },
                if b.exec { "" } else { ",noexec" }
            )
        })
        .collect();
    out.push(format!(
        "{PRIVATE_TMP} tmpfs rw{} (private, gone with the sandbox)",
        if plan.tmp_exec() { "" } else { ",noexec" }
    ));
    out.push("/proc proc (own PID namespace)".into());
    out.push("/ tmpfs ro (everything not listed is absent)".into());
    out
}
