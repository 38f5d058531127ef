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

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::fcntl::{OFlag, AT_FDCWD};
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

/// The directory of the run's tmpfs that becomes the view's root (see `enter`).
const VIEW_DIR: &str = "v";

/// The name, in the run's tmpfs, of the `n`th private directory's source (0 is /tmp): an
/// index, so no two sandbox paths can share one.
fn private_source_name(n: usize) -> String {
    format!("p{n}")
}

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
    /// Whether `MOUNT_POINT_FILE` exists.
    link_source: bool,
}

/// The empty file of the view's root every mount-point file is a hard link of, while the view
/// is built.
const MOUNT_POINT_FILE: &str = "/.cw-exec-mount-point";

impl Skeleton {
    fn new() -> Skeleton {
        Skeleton {
            dirs: BTreeSet::from([PathBuf::from("/")]),
            link_source: false,
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
        // An empty regular file: another hard link of one empty file of the view's root
        // (a name costs less than an inode, to make and to tear down), or, on another mount
        // (EXDEV), a file of its own. An existing name (even a symlink, which is never
        // followed here) is left as it is.
        use nix::errno::Errno;
        let file = |path: &Path| match nix::sys::stat::mknod(
            path,
            SFlag::S_IFREG,
            Mode::from_bits_truncate(0o644),
            0,
        ) {
            Err(Errno::EEXIST) => Ok(()),
            other => other.map_err(io::Error::from),
        };
        if !self.link_source {
            file(Path::new(MOUNT_POINT_FILE))?;
            self.link_source = true;
        }
        match nix::unistd::linkat(
            AT_FDCWD,
            MOUNT_POINT_FILE,
            AT_FDCWD,
            path,
            nix::fcntl::AtFlags::empty(),
        ) {
            Ok(()) | Err(Errno::EEXIST) => Ok(()),
            Err(Errno::EXDEV) => file(path),
            Err(e) => Err(e.into()),
        }
    }

    /// The view is complete: the name the mount-point files were linked from goes (they stay,
    /// each under its mount).
    fn remove_link_source(&mut self) -> io::Result<()> {
        if std::mem::take(&mut self.link_source) {
            std::fs::remove_file(MOUNT_POINT_FILE)?;
        }
        Ok(())
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
    let _umask = ViewUmask::set();

    // One tmpfs for the whole run: the view's root is its directory `v`, bound onto itself
    // (pivot_root needs a mount point) and entered; every private directory (/tmp, /dev/shm,
    // a private HOME) is one of its directories `p<N>`, bound into place from a descriptor
    // of the tmpfs. The tmpfs's own root, which holds them all side by side, is reachable
    // from no path of the view: it stays mounted at the staging point, beneath the host's
    // tree, and is detached with it. Sized (see limits::private_tmpfs_size) so the sandbox
    // cannot fill the host's memory through the private directories together: ENOSPC past
    // the size. (The root mount is read-only before the command runs.)
    // Noexec from the start when any private directory must be noexec (the usual case): each
    // bind of it copies the flag, so only a directory that allows exec needs a further call.
    let tmp = PrivateDir {
        path: PathBuf::from(PRIVATE_TMP),
        mode: 0o1777,
        exec: view.tmp_exec,
        owner: None,
        what: "tmp",
    };
    let staging_noexec = !view.tmp_exec || view.private.iter().any(|d| !d.exec);
    // The host's staging directory, held before the run's tmpfs covers it (see `HostDirs`).
    let staging =
        std::fs::canonicalize(STAGING).map_err(|e| step(&format!("staging {STAGING}"), &e))?;
    let host_staging = nix::fcntl::open(
        &staging,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::empty(),
    )
    .map_err(|e| step(&format!("staging {STAGING}"), &e))?;
    mount(
        Some("tmpfs"),
        &staging,
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
    .map_err(|e| step(&format!("the run's tmpfs on {STAGING}"), &e))?;
    let run_tmpfs = nix::fcntl::open(
        &staging,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| step("opening the run's tmpfs", &e))?;
    for (n, dir) in std::iter::once(&tmp).chain(&view.private).enumerate() {
        private_source(run_tmpfs.as_fd(), n, dir)
            .map_err(|e| step(&format!("private {} {}", dir.what, dir.path.display()), &e))?;
    }
    let new_root = staging.join(VIEW_DIR);
    mkdir(&new_root).map_err(|e| step("the view's root", &e))?;
    mount(
        Some(&new_root),
        &new_root,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| step("the view's root", &e))?;
    let old_root_in_staging = new_root.join(OLD_ROOT.trim_start_matches('/'));
    mkdir(&old_root_in_staging).map_err(|e| step(OLD_ROOT, &e))?;
    nix::unistd::pivot_root(&new_root, &old_root_in_staging).map_err(|e| step("pivot_root", &e))?;
    std::env::set_current_dir("/").map_err(|e| step("chdir /", &e))?;
    // Each private directory's clone, made while the run's tmpfs is still mounted; attached
    // in its turn below.
    let mut private_trees = Vec::with_capacity(view.private.len() + 1);
    for (n, dir) in std::iter::once(&tmp).chain(&view.private).enumerate() {
        private_trees.push(Some(
            private_tree(run_tmpfs.as_fd(), n, dir, staging_noexec)
                .map_err(|e| step(&format!("private {} {}", dir.what, dir.path.display()), &e))?,
        ));
    }
    // The run's tmpfs's own mount stays where it is, beneath the host's tree (and goes with
    // it): the only way to its root. It covers the host's staging directory, so the binds
    // of host paths beneath that directory are cloned from `host_staging`, a descriptor of
    // it taken before the tmpfs was mounted. (Unmounting the tmpfs here would cost an RCU
    // grace period, which every unmount waits for: 50-500 µs here.)
    drop(run_tmpfs);
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
    let mut host_dirs = HostDirs {
        root: nix::fcntl::open(
            OLD_ROOT,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
            Mode::empty(),
        )
        .map_err(|e| step("opening the host tree", &e))?,
        staging: (staging, host_staging),
        open: Vec::new(),
        attached: Vec::new(),
    };
    let mut skel = Skeleton::new();
    skel.dirs.insert(PathBuf::from(OLD_ROOT));

    // The private /tmp, before the binds so that granted host paths beneath /tmp land on it.
    private_dir(&mut skel, &mut private_trees[0], &tmp).map_err(|e| step("private /tmp", &e))?;
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
        Private(usize, &'a PrivateDir),
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
                .enumerate()
                .map(|(n, d)| (d.path.as_path(), Op::Private(n + 1, d))),
        )
        .collect();
    ops.sort_by(|a, b| a.0.cmp(b.0));
    let mut masked: Vec<&Path> = Vec::new();
    let mut mask_file = false;
    for (path, op) in &ops {
        match op {
            Op::Bind(bind) => bind_verified(&mut host_dirs, &mut skel, bind, &mut entered)
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
            Op::Private(n, dir) => {
                private_dir(&mut skel, &mut private_trees[*n], dir)
                    .map_err(|e| step(&format!("private {} {}", dir.what, path.display()), &e))?;
                entered.writable.push((dir.path.clone(), 0));
            }
        }
        skel.covered(path);
    }
    // Masks were left writable for the mount points of sub-grants; freeze them now.
    for path in masked {
        sys::mount_setattr(path, false, MOUNT_ATTR_RDONLY, 0)
            .map_err(|e| step(&format!("read-only mask {}", path.display()), &e))?;
    }
    sys::close_all(std::mem::take(&mut host_dirs.attached));
    drop(host_dirs);

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
    skel.remove_link_source()
        .map_err(|e| step(MOUNT_POINT_FILE, &e))?;
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

/// The host's tree while the view is built, and the host directories binds were cloned from,
/// each held as a descriptor once opened: every `/etc` file bind shares one `/etc`.
struct HostDirs {
    root: OwnedFd,
    /// The host's staging directory (its physical path) and a descriptor of it taken before
    /// the run's tmpfs was mounted over it: host paths beneath it are re-opened beneath this
    /// descriptor instead of the host's root, whose walk would enter the tmpfs.
    staging: (PathBuf, OwnedFd),
    open: Vec<(PathBuf, OwnedFd)>,
    /// The binds' trees once attached: closed all together when the binds are done
    /// (`close_all`, a few `close_range` calls instead of one `close` per bind).
    attached: Vec<OwnedFd>,
}

impl HostDirs {
    /// The host directory `path`, re-opened beneath the host's tree without following any
    /// symlink (once; later asks get the same descriptor).
    fn dir(&mut self, path: &Path) -> io::Result<BorrowedFd<'_>> {
        if path == Path::new("/") {
            return Ok(self.root.as_fd());
        }
        let known = self
            .open
            .iter()
            .position(|(p, _)| p.as_os_str() == path.as_os_str());
        let at = match known {
            Some(at) => at,
            None => {
                let fd = self.reopen(path)?;
                self.open.push((path.to_path_buf(), fd));
                self.open.len() - 1
            }
        };
        Ok(self.open[at].1.as_fd())
    }

    /// A bind of the staging directory itself (`--bind /tmp:...`) was cloned with the run's
    /// tmpfs mounted on it, and the clone brought a copy of that mount along, on top: it is
    /// unmounted at `at` (checked to be on the run's tmpfs, as the view's root is), so the
    /// bind shows the host's directory and no mount of the view has the tmpfs's root as its
    /// root. (An unmount waits for an RCU grace period: only this bind pays it.)
    fn drop_run_tmpfs_copy(&self, at: &Path) -> io::Result<()> {
        let tmpfs = nix::sys::stat::lstat("/")?.st_dev;
        if nix::sys::stat::lstat(at)?.st_dev == tmpfs {
            umount2(at, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW)?;
        }
        if nix::sys::stat::lstat(at)?.st_dev == tmpfs {
            return Err(io::Error::other(
                "the run's tmpfs is still mounted on the bind of the staging directory",
            ));
        }
        Ok(())
    }

    /// Re-opens the host path `path` beneath the host's tree, without following any symlink
    /// (beneath the staging directory's own descriptor for a path inside it).
    fn reopen(&self, path: &Path) -> io::Result<OwnedFd> {
        match path.strip_prefix(&self.staging.0) {
            Ok(rest) => pathfd::reopen_beneath(self.staging.1.as_fd(), &Path::new("/").join(rest)),
            Err(_) => pathfd::reopen_beneath(self.root.as_fd(), path),
        }
    }

    /// A detached clone of the mount tree at the host path `host`: its directory re-opened
    /// beneath the host's tree without following any symlink (`dir`), then its last component
    /// cloned from that descriptor, not followed if it is a symlink. Nothing on the way is
    /// followed, as with one `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` of the whole
    /// path, in one call per bind instead of an open, a clone and a close.
    fn clone_tree(&mut self, host: &Path) -> io::Result<OwnedFd> {
        use std::os::unix::ffi::OsStrExt;
        let (Some(parent), Some(name)) = (host.parent(), host.file_name()) else {
            // The host's root itself (or a spelling without a last name): from a descriptor.
            let fd = self.reopen(host)?;
            return sys::clone_tree(fd.as_fd());
        };
        if host == self.staging.0 {
            // Covered by the run's tmpfs: from the descriptor taken before.
            return sys::clone_tree(self.staging.1.as_fd());
        }
        let name = std::ffi::CString::new(name.as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a path"))?;
        sys::clone_tree_at(self.dir(parent)?, &name, true)
    }
}

/// Binds one host path from a descriptor: clone its mount tree beneath the host's tree without
/// following any symlink (`HostDirs::clone_tree`), check that the clone's root is the object
/// the plan resolved (device and inode, from the clone's descriptor), set the flags on the
/// detached clone, attach it. What is attached is the checked clone, whatever the name points
/// to by then.
fn bind_verified(
    host_dirs: &mut HostDirs,
    skel: &mut Skeleton,
    bind: &Bind,
    entered: &mut Entered,
) -> io::Result<()> {
    let host = bind.source.as_deref().unwrap_or(&bind.path);
    let symlink = || {
        io::Error::other(
            "a symlink now stands where the plan resolved a directory or file: refusing to follow it",
        )
    };
    let tree = host_dirs.clone_tree(host).map_err(|e| {
        if e.raw_os_error() == Some(libc::ELOOP) {
            symlink()
        } else {
            e
        }
    })?;
    if let Some((dev, ino)) = bind.expect {
        // Device and inode of the clone's root (the mount id is not compared, see the
        // module's comment).
        let found = sys::fd_stat(tree.as_fd())?;
        if found.mode & libc::S_IFMT == libc::S_IFLNK {
            return Err(symlink());
        }
        if (found.dev, found.ino) != (dev, ino) {
            return Err(io::Error::other(format!(
                "replaced since it was resolved (device {dev}, inode {ino} expected; found device {}, inode {}): refusing to bind another object",
                found.dev, found.ino
            )));
        }
    }
    skel.mount_point(&bind.path, bind.is_dir)?;
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
    if host == host_dirs.staging.0 {
        host_dirs.drop_run_tmpfs_copy(&bind.path)?;
    }
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
    host_dirs.attached.push(tree);
    Ok(())
}

/// The `n`th private directory's source: a directory of the run's tmpfs (`run_tmpfs`) with
/// its mode and owner, made before the pivot, beside the view's root and so beneath no path
/// of the view.
fn private_source(run_tmpfs: BorrowedFd<'_>, n: usize, dir: &PrivateDir) -> io::Result<()> {
    let name = private_source_name(n);
    nix::sys::stat::mkdirat(run_tmpfs, name.as_str(), Mode::from_bits_truncate(0o700))?;
    // The mode whatever the umask. (Following the name is moot: init made it a moment ago
    // in a tmpfs only init can reach; and glibc emulates the no-follow variant through
    // /proc/self/fd, at three calls more.)
    nix::sys::stat::fchmodat(
        run_tmpfs,
        name.as_str(),
        Mode::from_bits_truncate(dir.mode),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )?;
    if let Some((uid, gid)) = dir.owner {
        nix::unistd::fchownat(
            run_tmpfs,
            name.as_str(),
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )?;
    }
    Ok(())
}

/// A detached clone of the `n`th private directory of the run's tmpfs (`private_source`),
/// cloned from the descriptor of the tmpfs by a name only init made: noexec unless it allows
/// exec (always nosuid, nodev, which the clone copies from the tmpfs's mount, and noexec too
/// where that mount has it: `staging_noexec`).
fn private_tree(
    run_tmpfs: BorrowedFd<'_>,
    n: usize,
    dir: &PrivateDir,
    staging_noexec: bool,
) -> io::Result<OwnedFd> {
    let name = std::ffi::CString::new(private_source_name(n)).expect("no NUL");
    let tree = sys::clone_tree_at(run_tmpfs, &name, false)?;
    match (dir.exec, staging_noexec) {
        // The clone copies the tmpfs mount's flags, which are the ones wanted.
        (false, true) | (true, false) => {}
        // The one flag the tmpfs mount has that this directory must not.
        (true, true) => sys::mount_setattr_fd(tree.as_fd(), false, 0, MOUNT_ATTR_NOEXEC)?,
        (false, false) => sys::mount_setattr_fd(tree.as_fd(), false, MOUNT_ATTR_NOEXEC, 0)?,
    }
    Ok(tree)
}

/// Makes a private directory (its clone, `private_tree`) appear at `dir.path`.
fn private_dir(
    skel: &mut Skeleton,
    tree: &mut Option<OwnedFd>,
    dir: &PrivateDir,
) -> io::Result<()> {
    let tree = tree
        .take()
        .ok_or_else(|| io::Error::other("private directory attached twice"))?;
    skel.dir(&dir.path)?;
    sys::attach_tree(tree.as_fd(), &dir.path)
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

/// The view's directories get exactly the modes given here (0755), whatever the caller's
/// umask: under a hardened host's 027 or 077 they were 0750 or 0700 and root's, so a command
/// running as another identity (`--user`) could not reach anything in the view, and root's
/// runs with `--user` were refused (the read-back could not open /proc). The caller's umask
/// is back when `enter` returns: the command starts with it (init forks it later).
struct ViewUmask(Mode);

impl ViewUmask {
    fn set() -> ViewUmask {
        ViewUmask(nix::sys::stat::umask(Mode::from_bits_truncate(0o022)))
    }
}

impl Drop for ViewUmask {
    fn drop(&mut self) {
        nix::sys::stat::umask(self.0);
    }
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
