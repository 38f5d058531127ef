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
//!   file there cannot be run through the ELF loader (`ld.so FILE`) either. Under an exec
//!   allowlist that includes the runtime allowance, except its shared-library directories
//!   (see `Plan::runtime_mount_exec`).
//!
//! Every host path is bound from a descriptor, never by name: init re-opens the path the plan
//! resolved, beneath the host's tree and without following any symlink, checks that device
//! and inode are the ones the plan recorded, clones the mount tree from that descriptor
//! (`open_tree`), sets its flags while it is still detached, and attaches it (`move_mount`).
//! A path swapped for a symlink or another object after planning is a refusal. Mount ids
//! are not compared: they are per mount namespace, and init's namespace is a copy with new
//! ones; replacing a mount on the host needs privilege in the host's namespace, outside what
//! a sandbox or another unprivileged user has.

use std::collections::BTreeSet;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use std::os::fd::{AsFd, BorrowedFd};

use nix::fcntl::OFlag;
use nix::sys::stat::{Mode, SFlag};

use crate::kernel::pathfd;
use crate::model::Mask;

/// The sandbox's /tmp: always a private tmpfs, never the host's.
pub const PRIVATE_TMP: &str = "/tmp";
use crate::sys::{self, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY};

/// A file in the view's root that no grant covers. The read-back tries to read and write it
/// from inside the sandbox to prove the Landlock and read-only layers are live.
pub const CANARY: &str = "/.cw-exec-canary";

/// One bind mount of the view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    /// Where it appears in the view.
    pub path: PathBuf,
    /// The host path to bind, when it is not `path` itself (a bind at another sandbox path,
    /// `--bind HOST:SANDBOX`): re-opened beneath the host's tree and verified like any bind.
    pub source: Option<PathBuf>,
    pub writable: bool,
    pub exec: bool,
    pub device: bool,
    pub is_dir: bool,
    /// Device and inode the plan resolved: the object init must find at `path`.
    pub expect: Option<(u64, u64)>,
}

/// A directory of the sandbox's own tmpfs, mounted at `path` (over whatever a grant brought
/// there): the private `/dev/shm`, a private HOME.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivateDir {
    pub path: PathBuf,
    /// Mode of the directory (`0o1777` for shared scratch, `0o700` for a home).
    pub mode: u32,
    pub exec: bool,
    /// Owner and group to give the directory, when not the namespace's root (a private HOME
    /// of a command run as another user, `--user`).
    pub owner: Option<(u32, u32)>,
    /// What it is, for descriptions.
    pub what: &'static str,
}

/// Where the run's tmpfs is mounted while its directories are bound into place; detached
/// before the command runs.
const PRIVATE_STAGING: &str = "/.cw-exec-private";

/// Everything the view is made of, as plain data (the plan builds it: `Plan::view`).
#[derive(Debug, Clone)]
pub struct View {
    /// Host objects to bind, parents before children.
    pub binds: Vec<Bind>,
    /// Credential paths (and the signing key's directory) to cover with an empty mask.
    pub masks: Vec<Mask>,
    /// The mask that hides cw-exec's signing key, if any (for descriptions).
    pub key_dir: Option<PathBuf>,
    /// Directories made mount points of themselves, so they cannot be renamed.
    pub pins: Vec<PathBuf>,
    /// Symlinks to recreate (where, pointing to what) so requested spellings work inside.
    pub links: Vec<(PathBuf, PathBuf)>,
    /// Whether the private /tmp allows exec.
    pub tmp_exec: bool,
    /// The size in bytes of the one tmpfs behind every private directory (`/tmp`, `/dev/shm`,
    /// a private HOME): together they can hold no more than this.
    pub tmpfs_size: u64,
    /// Private directories besides /tmp, each an empty directory of the run's tmpfs.
    pub private: Vec<PrivateDir>,
    /// The working directory (a mount point is made if no grant brings it in).
    pub cwd: PathBuf,
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

/// Where the view's root is assembled before pivot_root: any directory that exists on every
/// host works, since the tmpfs mounted over it exists only in the sandbox's namespace.
const STAGING: &str = "/tmp";
/// Where the host's tree sits, inside the view, while the binds are made from it.
const OLD_ROOT: &str = "/.cw-exec-oldroot";

/// What `enter` leaves for `seal_kernel_state`: the mounts of the view that can be writable,
/// which alone can hold writable host kernel state (every other mount is a clone of the
/// read-only host tree, a frozen mask, or the read-only root).
#[derive(Debug, Default)]
pub struct Entered {
    /// Each writable bind, private directory and pin: its place in the view and the magic
    /// number of its file system (`statfs`), 0 for the run's own tmpfs.
    writable: Vec<(PathBuf, i64)>,
    /// A writable bind brought submounts along (or whether it did could not be asked): only
    /// the namespace's mount table then says what they are.
    read_mount_table: bool,
}

/// The view's own skeleton: the directories `enter` made or found, so that no parent is
/// created or looked up twice (every `/etc` file bind shares `/etc`). Whatever is mounted at
/// a path hides what was known beneath it, which is forgotten then (`covered`).
struct Skeleton {
    dirs: BTreeSet<PathBuf>,
}

impl Skeleton {
    fn new() -> Skeleton {
        Skeleton {
            dirs: BTreeSet::from([PathBuf::from("/")]),
        }
    }

    /// `mkdir -p` inside the view: a directory at `path` unless something is there already
    /// (an existing name is left as it is, whatever it is).
    fn dir(&mut self, path: &Path) -> io::Result<()> {
        if self.dirs.contains(path) {
            return Ok(());
        }
        if let Some(parent) = path.parent() {
            self.dir(parent)?;
        }
        mkdir(path)?;
        self.dirs.insert(path.to_path_buf());
        Ok(())
    }

    /// A mount point at `path`: its parents as directories, the last a directory or an empty
    /// file, unless something is there already.
    fn mount_point(&mut self, path: &Path, is_dir: bool) -> io::Result<()> {
        if is_dir {
            return self.dir(path);
        }
        if let Some(parent) = path.parent() {
            self.dir(parent)?;
        }
        // An empty regular file, in one call; an existing name (even a symlink, which is
        // never followed here) is left as it is.
        match nix::sys::stat::mknod(path, SFlag::S_IFREG, Mode::from_bits_truncate(0o644), 0) {
            Err(nix::errno::Errno::EEXIST) => Ok(()),
            other => other.map_err(io::Error::from),
        }
    }

    /// Something was mounted at `path`: what was known beneath it is hidden now.
    fn covered(&mut self, path: &Path) {
        // Paths order component by component, so whatever lies beneath `path` follows it
        // directly: a range, not a scan of every directory known.
        use std::ops::Bound::{Excluded, Unbounded};
        let beneath: Vec<PathBuf> = self
            .dirs
            .range::<Path, _>((Excluded(path), Unbounded))
            .take_while(|d| d.starts_with(path))
            .cloned()
            .collect();
        for d in beneath {
            self.dirs.remove(&d);
        }
    }
}

/// Builds the view and enters it. Runs in init, inside the new user, mount and PID
/// namespaces, with the namespace's capabilities.
///
/// As bubblewrap does: pivot into an empty tmpfs first, with the host's tree moved to
/// OLD_ROOT, bind from there, then detach the host's tree. Binding after the pivot means a
/// grant beneath the staging directory is still reachable, and no host path ever leads to
/// the view's root. The private /tmp is a tmpfs too: when the namespace ends it is gone,
/// whatever happened to cw-exec.
///
/// Propagation: the namespace belongs to a new user namespace, so the kernel copied every
/// host mount into it as a slave at most (never shared): nothing mounted here propagates to
/// the host. The host's tree is made private (with its read-only baseline, in one call) before
/// any bind is cloned from it, so every bind, and everything mounted on the view's own tmpfs,
/// is private: no host mount event reaches the view either.
pub fn enter(view: &View) -> Result<Entered, String> {
    let step = |what: &str, e: &dyn std::fmt::Display| format!("mount view: {what}: {e}");
    let mut entered = Entered::default();

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
    // The baseline every bind inherits (bind mounts copy their source's flags), and private
    // propagation, which the clones copy too.
    sys::mount_setattr_private(
        Path::new(OLD_ROOT),
        true,
        MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        0,
    )
    .map_err(|e| {
        step(
            "making the host tree read-only and private in this namespace",
            &e,
        )
    })?;
    let host_root = nix::fcntl::open(
        OLD_ROOT,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::empty(),
    )
    .map_err(|e| step("opening the host tree", &e))?;
    let mut skel = Skeleton::new();
    skel.dirs.insert(PathBuf::from(OLD_ROOT));

    // One tmpfs for every private directory, sized (see limits::private_tmpfs_size) so the
    // sandbox cannot fill the host's memory through them together: ENOSPC past the size.
    // Mounted at a staging point, each directory bound into place, the staging mount
    // detached at the end (with the host's tree).
    // Noexec from the start when any private directory must be noexec (the usual case): each
    // bind of it copies the flag, so only a directory that allows exec needs a further call.
    let staging_noexec = !view.tmp_exec || view.private.iter().any(|d| !d.exec);
    mkdir(Path::new(PRIVATE_STAGING)).map_err(|e| step(PRIVATE_STAGING, &e))?;
    mount(
        Some("tmpfs"),
        PRIVATE_STAGING,
        Some("tmpfs"),
        MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV
            | if staging_noexec {
                MsFlags::MS_NOEXEC
            } else {
                MsFlags::empty()
            },
        Some(format!("mode=0755,size={}", view.tmpfs_size).as_str()),
    )
    .map_err(|e| step("the run's tmpfs", &e))?;
    // The private /tmp, before the binds so that granted host paths beneath /tmp land on it.
    let tmp = PrivateDir {
        path: PathBuf::from(PRIVATE_TMP),
        mode: 0o1777,
        exec: view.tmp_exec,
        owner: None,
        what: "tmp",
    };
    private_dir(&mut skel, &tmp, staging_noexec).map_err(|e| step("private /tmp", &e))?;
    entered.writable.push((tmp.path.clone(), 0));

    // The symlinks the plan followed, so each requested spelling works inside too. Made from
    // the plan's record, not by reading the host again.
    for (at, target) in &view.links {
        recreate_link(&mut skel, at, target)
            .map_err(|e| step(&format!("symlink {}", at.display()), &e))?;
    }

    // Binds and masks, parents before children: a mask covers what its parent bind brought
    // in, and a grant beneath a masked path is bound on top of the mask.
    // A pin makes a directory a mount point of itself, so it cannot be renamed or removed.
    enum Op<'a> {
        Bind(&'a Bind),
        Mask(&'a Mask),
        Pin,
        Private(&'a PrivateDir),
    }
    let mut ops: Vec<(&Path, Op)> = view
        .binds
        .iter()
        .map(|b| (b.path.as_path(), Op::Bind(b)))
        .chain(view.masks.iter().map(|m| (m.path.as_path(), Op::Mask(m))))
        .chain(view.pins.iter().map(|p| (p.as_path(), Op::Pin)))
        .chain(
            view.private
                .iter()
                .map(|d| (d.path.as_path(), Op::Private(d))),
        )
        .collect();
    ops.sort_by(|a, b| a.0.cmp(b.0));
    let mut masked: Vec<&Path> = Vec::new();
    let mut mask_file = false;
    for (path, op) in &ops {
        match op {
            Op::Bind(bind) => bind_verified(host_root.as_fd(), &mut skel, bind, &mut entered)
                .map_err(|e| step(&format!("bind {}", path.display()), &e))?,
            Op::Mask(mask) => {
                if mask_credential(mask, &mut mask_file)
                    .map_err(|e| step(&format!("masking {}", path.display()), &e))?
                {
                    masked.push(&mask.path);
                }
            }
            Op::Pin => {
                let magic =
                    pin(path).map_err(|e| step(&format!("pinning {}", path.display()), &e))?;
                // A clone of whatever mount holds the directory, with its flags: sealed like
                // a writable mount if it is kernel state.
                entered.writable.push((path.to_path_buf(), magic));
            }
            Op::Private(dir) => {
                private_dir(&mut skel, dir, staging_noexec)
                    .map_err(|e| step(&format!("private {} {}", dir.what, path.display()), &e))?;
                entered.writable.push((dir.path.clone(), 0));
            }
        }
        skel.covered(path);
    }
    // The tmpfs stays alive through the binds; its staging mount goes. Moved beneath the
    // host's tree (onto the directory the view's root was staged on, which every host has),
    // it is detached with that tree in one unmount below; where the move fails, on its own.
    let staging_gone = sys::move_mount_path(
        Path::new(PRIVATE_STAGING),
        &Path::new(OLD_ROOT).join(STAGING.trim_start_matches('/')),
    )
    .is_ok();
    if !staging_gone {
        umount2(PRIVATE_STAGING, MntFlags::MNT_DETACH)
            .map_err(|e| step("detaching the run's tmpfs staging mount", &e))?;
    }
    std::fs::remove_dir(PRIVATE_STAGING).map_err(|e| step(PRIVATE_STAGING, &e))?;
    // Masks were left writable for the mount points of sub-grants; freeze them now.
    for path in masked {
        sys::mount_setattr(path, false, MOUNT_ATTR_RDONLY, 0)
            .map_err(|e| step(&format!("read-only mask {}", path.display()), &e))?;
    }
    drop(host_root);

    // This sandbox's own /proc (init is PID 1 of a new PID namespace).
    skel.dir(Path::new("/proc"))
        .map_err(|e| step("/proc", &e))?;
    mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|e| step("mounting /proc", &e))?;
    skel.covered(Path::new("/proc"));

    skel.dir(Path::new("/dev")).map_err(|e| step("/dev", &e))?;
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        // An existing name (a granted /dev brings its own) is left as it is.
        match std::os::unix::fs::symlink(target, Path::new("/dev").join(name)) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            other => other.map_err(|e| step(&format!("/dev/{name}"), &e))?,
        }
    }

    // Mode 0666 whatever the umask: its mode lets any identity the command runs as (`--user`
    // included) read and write it, so only Landlock (reading) and the read-only mount
    // (writing) refuse it.
    {
        use std::os::unix::fs::PermissionsExt;
        let canary = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o666)
            .open(CANARY)
            .map_err(|e| step("canary", &e))?;
        canary
            .set_permissions(std::fs::Permissions::from_mode(0o666))
            .map_err(|e| step("canary", &e))?;
    }
    // The working directory: a mount point is made if nothing in the view is there.
    skel.dir(&view.cwd)
        .map_err(|e| step(&format!("cwd {}", view.cwd.display()), &e))?;

    // Drop the host's tree (and with it the run's tmpfs staging mount) from this namespace
    // entirely, then freeze the skeleton.
    umount2(OLD_ROOT, MntFlags::MNT_DETACH).map_err(|e| step("detaching the host root", &e))?;
    std::fs::remove_dir(OLD_ROOT).map_err(|e| step("removing the old root's mount point", &e))?;
    sys::mount_setattr(
        Path::new("/"),
        false,
        MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
        0,
    )
    .map_err(|e| step("making the view's root read-only", &e))?;
    Ok(entered)
}

/// Binds one host path from a descriptor: re-open it beneath the host's tree without following
/// symlinks, check it is the object the plan resolved, clone its mount tree, set the flags on
/// the detached clone, attach it. The clone is made from the checked descriptor, so what is
/// attached is that object, whatever its name points to by then.
fn bind_verified(
    host_root: BorrowedFd<'_>,
    skel: &mut Skeleton,
    bind: &Bind,
    entered: &mut Entered,
) -> io::Result<()> {
    let host = bind.source.as_deref().unwrap_or(&bind.path);
    let fd = pathfd::reopen_beneath(host_root, host).map_err(|e| {
        if e.raw_os_error() == Some(libc::ELOOP) {
            io::Error::other(
                "a symlink now stands where the plan resolved a directory or file: refusing to follow it",
            )
        } else {
            e
        }
    })?;
    if let Some((dev, ino)) = bind.expect {
        // Device and inode of the descriptor (the mount id is not compared, see the
        // module's comment).
        let found = pathfd::identity(fd.as_fd())?;
        if (found.dev, found.ino) != (dev, ino) {
            return Err(io::Error::other(format!(
                "replaced since it was resolved (device {dev}, inode {ino} expected; found device {}, inode {}): refusing to bind another object",
                found.dev, found.ino
            )));
        }
    }
    skel.mount_point(&bind.path, bind.is_dir)?;
    let tree = sys::clone_tree(fd.as_fd())?;
    drop(fd);
    let (set, clear) = bind.attrs();
    if (set, clear) != (0, 0) {
        // Recursive first, so submounts get the same flags; a submount the host locked
        // read-only refuses to be made writable, in which case only the top is writable
        // (stricter than asked, never looser).
        sys::mount_setattr_fd(tree.as_fd(), true, set, clear).or_else(|e| {
            if clear != 0 {
                sys::mount_setattr_fd(tree.as_fd(), false, set, clear)
            } else {
                Err(e)
            }
        })?;
    }
    sys::attach_tree(tree.as_fd(), &bind.path)?;
    if bind.writable {
        // What `seal_kernel_state` needs: the file system (a write grant of kernel state is
        // refused by the plan; this holds whatever reaches here), and whether the bind
        // brought submounts, which only the mount table describes.
        let magic = nix::sys::statfs::fstatfs(&tree)?.filesystem_type().0 as i64;
        entered.writable.push((bind.path.clone(), magic));
        let submounts = sys::mount_id_unique(tree.as_fd()).and_then(sys::has_submounts);
        if !matches!(submounts, Ok(false)) {
            entered.read_mount_table = true;
        }
    }
    Ok(())
}

/// Makes an empty directory of the run's tmpfs appear at `dir.path`, with its mode, and
/// noexec unless it allows exec (always nosuid, nodev, which the bind copies from the staging
/// mount, and noexec too where the staging mount has it: `staging_noexec`).
fn private_dir(skel: &mut Skeleton, dir: &PrivateDir, staging_noexec: bool) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let name = dir
        .path
        .to_string_lossy()
        .trim_start_matches('/')
        .replace('/', "_");
    let source = Path::new(PRIVATE_STAGING).join(name);
    std::fs::create_dir(&source)?;
    std::fs::set_permissions(&source, std::fs::Permissions::from_mode(dir.mode))?;
    if let Some((uid, gid)) = dir.owner {
        std::os::unix::fs::chown(&source, Some(uid), Some(gid))?;
    }
    skel.dir(&dir.path)?;
    mount(
        Some(&source),
        &dir.path,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(io::Error::from)?;
    match (dir.exec, staging_noexec) {
        // The bind copied the staging mount's flags, which are the ones wanted.
        (false, true) | (true, false) => return Ok(()),
        // The one flag the staging mount has that this directory must not.
        (true, true) => return sys::mount_setattr(&dir.path, false, 0, MOUNT_ATTR_NOEXEC),
        (false, false) => {}
    }
    let flags = MsFlags::MS_BIND
        | MsFlags::MS_REMOUNT
        | MsFlags::MS_NOSUID
        | MsFlags::MS_NODEV
        | MsFlags::MS_NOEXEC;
    mount(None::<&str>, &dir.path, None::<&str>, flags, None::<&str>).map_err(io::Error::from)
}

/// Makes `path` (a directory of the view) a mount point of itself, flags unchanged: the
/// kernel refuses to rename or remove a mount point (EBUSY). Returns the magic number of the
/// file system the directory is on.
fn pin(path: &Path) -> io::Result<i64> {
    let root = nix::fcntl::open(
        "/",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let fd = pathfd::reopen_beneath(root.as_fd(), path)?;
    let tree = sys::clone_tree(fd.as_fd())?;
    sys::attach_tree(tree.as_fd(), path)?;
    Ok(nix::sys::statfs::fstatfs(&tree)?.filesystem_type().0 as i64)
}

/// Covers a credential path with an empty, read-only directory or file. Returns true when the
/// mask is a directory left writable for the mount points of grants beneath it (made
/// read-only once they are bound). A mask directory has mode 0111: it can be passed through
/// to a granted sub-path, but not listed or read. `file_made`: whether the empty mode-000
/// file that file masks are bound from exists yet.
fn mask_credential(mask: &Mask, file_made: &mut bool) -> io::Result<bool> {
    const MASK_FILE: &str = "/.cw-exec-mask";
    let Ok(meta) = std::fs::symlink_metadata(&mask.path) else {
        // Not in the view after all (the covering grant changed beneath it): nothing to hide.
        return Ok(false);
    };
    if meta.is_dir() {
        mount(
            Some("tmpfs"),
            &mask.path,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some("size=64k,nr_inodes=1024,mode=0111"),
        )
        .map_err(io::Error::from)?;
        return Ok(true);
    }
    if !*file_made {
        nix::sys::stat::mknod(MASK_FILE, SFlag::S_IFREG, Mode::empty(), 0)
            .map_err(io::Error::from)?;
        *file_made = true;
    }
    mount(
        Some(MASK_FILE),
        &mask.path,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(io::Error::from)?;
    sys::mount_setattr(
        &mask.path,
        false,
        MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
        0,
    )?;
    Ok(false)
}

/// Makes every host kernel-state mount in the view read-only, whatever the grants say: each
/// sysfs, cgroup, proc, securityfs, debugfs, tracefs, bpf, configfs, efivarfs, pstore (...)
/// mount, and anything mounted beneath /sys or /proc. Runs after init's own writes to the
/// sandbox's /proc/sys. `kernel_fs`: the kernel-state file systems, magic number and name.
///
/// Only a writable mount can be writable kernel state: the host's tree was made read-only
/// before any bind was cloned from it, masks are frozen, and the view's root is read-only. So
/// the sandbox's own /proc and each writable mount `enter` made (its file system and place
/// known) are sealed as needed, without reading the mount table, unless a writable bind
/// brought submounts: then the namespace's mount table (`/proc/self/mountinfo`) is read and
/// every mount in it checked, as it covers what such a bind brought in.
pub fn seal_kernel_state(entered: &Entered, kernel_fs: &[(i64, &str)]) -> Result<(), String> {
    let beneath_state = |path: &Path| path.starts_with("/sys") || path.starts_with("/proc");
    if entered.read_mount_table {
        let names: Vec<&str> = kernel_fs.iter().map(|(_, name)| *name).collect();
        return seal_from_mount_table(&names);
    }
    sys::mount_setattr(Path::new("/proc"), false, MOUNT_ATTR_RDONLY, 0)
        .map_err(|e| format!("making /proc (proc) read-only: {e}"))?;
    for (path, magic) in &entered.writable {
        let fs = kernel_fs.iter().find(|(m, _)| m == magic);
        if fs.is_none() && !beneath_state(path) {
            continue;
        }
        sys::mount_setattr(path, false, MOUNT_ATTR_RDONLY, 0).map_err(|e| {
            format!(
                "making {} ({}) read-only: {e}",
                path.display(),
                fs.map(|(_, name)| *name).unwrap_or("beneath /sys or /proc")
            )
        })?;
    }
    Ok(())
}

/// `seal_kernel_state` from the namespace's mount table: every mount of a kernel-state type,
/// or beneath /sys or /proc, that is not read-only yet is made read-only.
fn seal_from_mount_table(kernel_fs: &[&str]) -> Result<(), String> {
    use std::io::Read;
    // One read or two: the table is generated on each read, and a small first read (what
    // read_to_string does for a file that reports size 0) would mean a dozen.
    let mut raw = Vec::with_capacity(64 * 1024);
    std::fs::File::open("/proc/self/mountinfo")
        .and_then(|mut f| f.read_to_end(&mut raw))
        .map_err(|e| format!("reading /proc/self/mountinfo: {e}"))?;
    let table = String::from_utf8_lossy(&raw);
    for line in table.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let point = left.split(' ').nth(4).map(unescape_mountinfo);
        let fstype = right.split(' ').next().unwrap_or("");
        let (Some(point), opts) = (point, left.split(' ').nth(5).unwrap_or("")) else {
            continue;
        };
        let path = PathBuf::from(&point);
        let state =
            kernel_fs.contains(&fstype) || path.starts_with("/sys") || path.starts_with("/proc");
        if !state || opts.split(',').any(|o| o == "ro") {
            continue;
        }
        sys::mount_setattr(&path, false, MOUNT_ATTR_RDONLY, 0)
            .map_err(|e| format!("making {point} ({fstype}) read-only: {e}"))?;
    }
    Ok(())
}

/// Mount points print spaces, tabs, newlines and backslashes as octal escapes.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn mkdir(path: &Path) -> io::Result<()> {
    match std::fs::DirBuilder::new().mode(0o755).create(path) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

/// Recreates a symlink the plan followed at its physical place in the view (an existing name
/// is left as it is).
fn recreate_link(skel: &mut Skeleton, at: &Path, target: &Path) -> io::Result<()> {
    if let Some(parent) = at.parent() {
        skel.dir(parent)?;
    }
    match std::os::unix::fs::symlink(target, at) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

/// Descriptions of the view's mounts, for `explain` and the attestation.
pub fn describe(view: &View) -> Vec<String> {
    let mut out: Vec<String> = view
        .binds
        .iter()
        .map(|b| {
            format!(
                "{} {}{}{}",
                b.path.display(),
                if b.writable { "rw" } else { "ro" },
                if b.exec { "" } else { ",noexec" },
                match &b.source {
                    Some(host) => format!(" (bound from the host's {})", host.display()),
                    None => String::new(),
                }
            )
        })
        .collect();
    out.push(format!(
        "{PRIVATE_TMP} tmpfs rw{},size={} (private, gone with the sandbox; shared with the other private directories)",
        if view.tmp_exec { "" } else { ",noexec" },
        view.tmpfs_size
    ));
    for d in &view.private {
        out.push(format!(
            "{} tmpfs rw{} (private {}, empty at start, gone with the sandbox)",
            d.path.display(),
            if d.exec { "" } else { ",noexec" },
            d.what
        ));
    }
    for m in &view.masks {
        let what = if view.key_dir.as_ref() == Some(&m.path) {
            "cw-exec's signing key"
        } else {
            "credentials"
        };
        out.push(format!(
            "{} masked ({what}: an empty, read-only {}; named sub-paths bound on top)",
            m.path.display(),
            if m.is_dir { "directory" } else { "file" }
        ));
    }
    for p in &view.pins {
        out.push(format!(
            "{} pinned (a mount point of itself: it cannot be renamed, so no sandbox can move the signing key's directory)",
            p.display()
        ));
    }
    out.push("/proc proc (own PID namespace)".into());
    out.push("/ tmpfs ro (everything not listed is absent)".into());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `covered` forgets exactly what lies beneath the path, whatever sorts near it.
    #[test]
    fn covered_forgets_only_what_is_beneath() {
        let mut skel = Skeleton::new();
        for d in [
            "/a", "/a/b", "/a/b/c", "/a/z", "/a-b", "/a.b", "/a0", "/ab", "/b", "/a b",
        ] {
            skel.dirs.insert(PathBuf::from(d));
        }
        skel.covered(Path::new("/a"));
        let left: Vec<&str> = skel.dirs.iter().map(|p| p.to_str().unwrap()).collect();
        assert_eq!(
            left,
            ["/", "/a", "/a b", "/a-b", "/a.b", "/a0", "/ab", "/b"]
        );
        skel.covered(Path::new("/"));
        assert_eq!(skel.dirs.len(), 1);
    }
}
