//! cgroups: memory and pids limits for the whole sandbox (rlimits are per process, and
//! RLIMIT_NPROC does not bind root), and whole-tree CPU accounting for `--cpu`.
//!
//! Both hierarchies are supported, per controller:
//! - cgroup v2, when the controller is already enabled in the `cgroup.subtree_control` of the
//!   cgroup cw-exec runs in (a delegated subtree) or of the hierarchy's root (where root may
//!   create cgroups on a systemd host) — cw-exec never reorganises the caller's cgroups to
//!   enable one. `cpu.stat` exists in every v2 cgroup, so v2 always accounts CPU.
//! - cgroup v1, when the controller has its own hierarchy (memory, pids, cpuacct) and cw-exec
//!   may create a cgroup beneath its own there (usually root only).
//!
//! Each run gets a cgroup `cw-exec-<pid>-<n>` beneath cw-exec's own, in every hierarchy it
//! uses; it is removed after the run. A run whose cw-exec was SIGKILLed leaves an
//! empty one behind; the next run removes those whose pid is gone.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// What a limit needs from a cgroup hierarchy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Controller {
    Memory,
    Pids,
    /// CPU time accounting (v1 `cpuacct`, v2 `cpu.stat`).
    CpuAccounting,
}

impl Controller {
    /// The limit this controller enforces, as the attestation names it.
    fn limit_name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Pids => "pids",
            Controller::CpuAccounting => "cpu",
        }
    }
    fn v1_name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Pids => "pids",
            Controller::CpuAccounting => "cpuacct",
        }
    }
    fn v2_name(self) -> Option<&'static str> {
        match self {
            Controller::Memory => Some("memory"),
            Controller::Pids => Some("pids"),
            Controller::CpuAccounting => None, // cpu.stat is a core file
        }
    }
}

/// Where a controller can be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hierarchy {
    /// cgroup v2: the parent directory new cgroups are made in, and where that is.
    V2(PathBuf, CgroupPlacement),
    /// cgroup v1: the parent directory in this controller's hierarchy, and where that is.
    V1(PathBuf, CgroupPlacement),
}

/// Where a hierarchy's run cgroups are made, as cgroup paths (what /proc/self/cgroup shows,
/// in cw-exec's cgroup namespace), recorded when the hierarchy was found
/// (`CgroupHost::find`) from cw-exec's own /proc/self/cgroup, read then: `parent`, the cgroup
/// a run's cgroup is made in; `own`, cw-exec's own cgroup in that hierarchy — the cgroup its
/// children are born in, so the root of a cgroup namespace made at the clone. The two are
/// the same for v1 (a run's cgroup is always made beneath cw-exec's own) and for a v2 cgroup
/// made beneath cw-exec's own; `parent` is "/" for a v2 cgroup made at the hierarchy's root.
/// What the command's process must show in its /proc/self/cgroup is derived from these
/// (`RunCgroups::membership`), not guessed from the directories' paths.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CgroupPlacement {
    pub parent: String,
    pub own: String,
}

impl Hierarchy {
    pub fn describe(&self) -> &'static str {
        match self {
            Hierarchy::V2(..) => "cgroup-v2",
            Hierarchy::V1(..) => "cgroup-v1",
        }
    }
    pub fn parent(&self) -> &Path {
        match self {
            Hierarchy::V2(p, _) | Hierarchy::V1(p, _) => p,
        }
    }
    /// Where the parent directory is, as cgroup paths (see `CgroupPlacement`).
    pub fn placement(&self) -> &CgroupPlacement {
        match self {
            Hierarchy::V2(_, p) | Hierarchy::V1(_, p) => p,
        }
    }

    /// Whether a memory cgroup made here bounds swap as well: v1 has `memory.memsw.*` only
    /// when the kernel accounts swap; v2 accounts it unless booted with `swapaccount=0` or
    /// `cgroup.memory=noswap`.
    pub fn bounds_swap(&self) -> bool {
        match self {
            Hierarchy::V1(p, _) => p.join("memory.memsw.limit_in_bytes").exists(),
            Hierarchy::V2(..) => {
                let cmdline = read_small(Path::new("/proc/cmdline")).unwrap_or_default();
                !cmdline
                    .split_whitespace()
                    .any(|w| w == "swapaccount=0" || w == "cgroup.memory=noswap")
            }
        }
    }
}

/// Whether the host has swap in use: `sysinfo(2)`'s `totalswap`, the total size of the
/// swap areas in use, which are what `/proc/swaps` lists (one system call, no file to
/// generate and parse). If the kernel cannot say, swap is assumed (the careful answer: a
/// memory limit then must bound swap too).
pub fn host_has_swap() -> bool {
    nix::sys::sysinfo::sysinfo()
        .map(|info| info.swap_total() > 0)
        .unwrap_or(true)
}

/// A mounted cgroup hierarchy: one line of /proc/self/mountinfo, or what `statmount` says of
/// one mount.
#[derive(Clone, Debug, PartialEq, Eq)]
struct CgroupMount {
    mount_point: PathBuf,
    v2: bool,
    /// The file system's options (for v1, the controllers bound to the hierarchy among them).
    controllers: Vec<String>,
}

/// The cgroup hierarchies a mountinfo text mounts.
fn cgroup_mounts(text: &str) -> Vec<CgroupMount> {
    text.lines()
        .filter_map(|line| {
            // ... mount_point ... - fstype source super_options
            let (left, right) = line.split_once(" - ")?;
            let mount_point = left.split(' ').nth(4)?;
            let mut r = right.split(' ');
            let fstype = r.next()?;
            let options = r.nth(1).unwrap_or("");
            match fstype {
                "cgroup2" => Some(CgroupMount {
                    mount_point: mount_point.into(),
                    v2: true,
                    controllers: vec![],
                }),
                "cgroup" => Some(CgroupMount {
                    mount_point: mount_point.into(),
                    v2: false,
                    controllers: options.split(',').map(str::to_string).collect(),
                }),
                _ => None,
            }
        })
        .collect()
}

/// cw-exec's own cgroup path in each hierarchy, from a /proc/PID/cgroup text: ("" for v2,
/// or the v1 controller list).
fn own_paths(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let _id = parts.next()?;
            let controllers = parts.next()?.to_string();
            let path = parts.next()?.to_string();
            Some((controllers, path))
        })
        .collect()
}

/// Where the cgroup v2 hierarchy is mounted, by convention: alone (a v2 host, a container),
/// or beside the v1 hierarchies (a hybrid host).
const V2_MOUNT_POINTS: [&str; 2] = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"];

/// Where a v1 hierarchy is mounted by convention (systemd, container runtimes): beneath
/// /sys/fs/cgroup, named by its controllers as /proc/self/cgroup lists them (`cpu,cpuacct`;
/// `name=systemd` as `systemd`).
fn v1_mount_point(controllers: &str) -> PathBuf {
    let name: Vec<&str> = controllers
        .split(',')
        .map(|c| c.strip_prefix("name=").unwrap_or(c))
        .collect();
    Path::new("/sys/fs/cgroup").join(name.join(","))
}

/// What the kernel says is mounted at exactly one path (see `CgroupFs::mount_at`).
#[derive(Clone, Debug, PartialEq, Eq)]
enum MountAt {
    /// A cgroup hierarchy has its mount point there.
    Cgroup(CgroupMount),
    /// Nothing there, or not a cgroup mount point (another file system, a directory inside
    /// a mount, a symlink).
    Other,
    /// The kernel cannot say (no `statmount`, or it left out what is needed): read the
    /// mount table instead.
    Unknown,
}

/// What discovery asks the file system, as a seam: the host's answers, or recorded ones in
/// unit tests.
trait CgroupFs {
    /// The controllers enabled for children of this cgroup (`cgroup.subtree_control`).
    fn subtree_control(&self, cgroup: &Path) -> String;
    /// Whether this process may create a cgroup beneath this one.
    fn writable(&self, cgroup: &Path) -> bool;
    /// The cgroup hierarchy mounted at exactly `path`, as the kernel describes that one
    /// mount: no mount table is read.
    fn mount_at(&self, path: &Path) -> MountAt;
    /// The text of /proc/self/mountinfo (read only when `mount_at` cannot answer).
    fn mountinfo(&self) -> String;
    /// Writes `text` to a limit file of a run's cgroup, and reads back what the kernel then
    /// holds there (`write_limit_and_read_back`). Ok(None): the file is not there (ENOENT).
    fn write_limit(
        &self,
        at: Option<std::os::fd::BorrowedFd<'_>>,
        path: &Path,
        text: &str,
    ) -> Result<Option<String>, String> {
        write_limit_and_read_back(at, path, text)
    }
}

/// Writes `text` to the limit file `path` (relative to the held directory `at`, or from `/`
/// where none is held) and reads back the value the kernel then holds there: one `openat`
/// read-write (without `O_CREAT`: a file that is not there is Ok(None), never a file made),
/// one `write`, one `pread` from offset 0 through the same descriptor. The text read is
/// trimmed of its newline. What was written is what was *asked*; what is read is what the
/// kernel *holds* (it may round, clamp or ignore), and only that is evidence.
fn write_limit_and_read_back(
    at: Option<std::os::fd::BorrowedFd<'_>>,
    path: &Path,
    text: &str,
) -> Result<Option<String>, String> {
    use nix::fcntl::OFlag;
    let flags = OFlag::O_RDWR | OFlag::O_CLOEXEC;
    let opened = match at {
        Some(dir) => nix::fcntl::openat(dir, path, flags, nix::sys::stat::Mode::empty()),
        None => nix::fcntl::open(path, flags, nix::sys::stat::Mode::empty()),
    };
    let fd = match opened {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT) => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    match nix::unistd::write(&fd, text.as_bytes()) {
        Ok(n) if n == text.len() => {}
        Ok(n) => return Err(format!("short write ({n} of {} bytes)", text.len())),
        Err(e) => return Err(e.to_string()),
    }
    // A limit is at most 20 digits, or "max": one read of a small buffer holds it.
    let mut buf = [0u8; 64];
    let file = std::fs::File::from(fd);
    let n = loop {
        match std::os::unix::fs::FileExt::read_at(&file, &mut buf, 0) {
            Ok(n) => break n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("reading it back: {e}")),
        }
    };
    Ok(Some(String::from_utf8_lossy(&buf[..n]).trim().to_string()))
}

/// The value the kernel holds for a limit `written` to `file`, as it states it when it has
/// accepted the limit as asked: a memory limit rounded down to whole pages (the kernel counts
/// memory in pages: `page_counter_memparse`), any other exactly. Nothing else is accepted: a
/// value clamped to the kernel's maximum, a different rounding, "max", or nothing at all
/// means the limit does not bind as asked.
fn held_as_asked(file: &str, written: u64, page_size: u64) -> u64 {
    if file.starts_with("memory.") && page_size > 0 {
        written - written % page_size
    } else {
        written
    }
}

/// The kernel's page size (the unit it rounds memory limits to).
fn page_size() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .map_or(4096, |p| p as u64)
}

/// A small /proc or cgroup file, read in one go (`sys::read_kernel_file`: these report size
/// 0, and a generic reader probes for it and reads in growing steps).
fn read_small(path: &Path) -> Option<String> {
    let bytes = crate::sys::read_kernel_file(None, path, 4096).ok()?;
    String::from_utf8(bytes).ok()
}

/// The host's answers; `cgroup.subtree_control` read once per cgroup (every controller asks).
#[derive(Default)]
struct HostFs {
    subtree: std::cell::RefCell<Vec<(PathBuf, String)>>,
}

impl CgroupFs for HostFs {
    fn subtree_control(&self, cgroup: &Path) -> String {
        if let Some((_, text)) = self.subtree.borrow().iter().find(|(p, _)| p == cgroup) {
            return text.clone();
        }
        let text = read_small(&cgroup.join("cgroup.subtree_control")).unwrap_or_default();
        self.subtree
            .borrow_mut()
            .push((cgroup.to_path_buf(), text.clone()));
        text
    }
    fn writable(&self, path: &Path) -> bool {
        // `path/.` resolves only where `path` is a directory (ENOTDIR otherwise): one
        // `access` says both, instead of a `statx` and then an `access`.
        let mut dot = path.as_os_str().to_owned();
        dot.push("/.");
        nix::unistd::access(
            Path::new(&dot),
            nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK,
        )
        .is_ok()
    }
    fn mount_at(&self, path: &Path) -> MountAt {
        use std::os::unix::ffi::OsStrExt;
        const CGROUP_SUPER_MAGIC: u64 = 0x0027_e0eb;
        const CGROUP2_SUPER_MAGIC: u64 = 0x6367_7270;
        let Ok(name) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
            return MountAt::Other;
        };
        let mnt_id = match crate::sys::path_mount_id_unique(&name) {
            Ok(id) => id,
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => return MountAt::Unknown,
            Err(_) => return MountAt::Other,
        };
        let Ok(facts) = crate::sys::statmount(mnt_id) else {
            return MountAt::Unknown;
        };
        if facts.mount_point != path.as_os_str().as_bytes() {
            return MountAt::Other;
        }
        let options = |o: &[u8]| -> Vec<String> {
            String::from_utf8_lossy(o)
                .split(',')
                .map(str::to_string)
                .collect()
        };
        match facts.magic {
            CGROUP2_SUPER_MAGIC => MountAt::Cgroup(CgroupMount {
                mount_point: path.to_path_buf(),
                v2: true,
                controllers: vec![],
            }),
            CGROUP_SUPER_MAGIC => match &facts.options {
                Some(o) => MountAt::Cgroup(CgroupMount {
                    mount_point: path.to_path_buf(),
                    v2: false,
                    controllers: options(o),
                }),
                // A v1 hierarchy always has options (its controllers, or a name): a kernel
                // that does not report them cannot prove which hierarchy this is.
                None => MountAt::Unknown,
            },
            _ => MountAt::Other,
        }
    }
    fn mountinfo(&self) -> String {
        read_small(Path::new("/proc/self/mountinfo")).unwrap_or_default()
    }
}

/// This process's view of the cgroup hierarchies, read once per run and asked about each
/// controller.
///
/// Where a hierarchy is mounted is asked of the kernel mount by mount (`statmount`, Linux
/// 6.8/6.11) at the conventional mount points (`V2_MOUNT_POINTS`, `v1_mount_point`):
/// /proc/self/mountinfo lists every mount of the namespace, and generating it takes the
/// global mount lock for as long as that takes (sandboxes building their views wait on it,
/// and it on them). Only where the kernel cannot say, or nothing is at the conventional place,
/// is the table read, and then read as before: the first cgroup2 mount, the first v1 mount
/// of the controller. The two agree except where one hierarchy is mounted twice, once at the
/// conventional place: then that one is used.
pub struct CgroupHost {
    own: Vec<(String, String)>,
    /// The cgroup mounts of /proc/self/mountinfo, once read.
    table: std::cell::OnceCell<Vec<CgroupMount>>,
    /// The v2 mount point, once found (None: none is mounted).
    v2: std::cell::OnceCell<Option<PathBuf>>,
    fs: HostFs,
}

impl CgroupHost {
    pub fn read() -> CgroupHost {
        CgroupHost::with_own(&read_small(Path::new("/proc/self/cgroup")).unwrap_or_default())
    }

    /// From the text of /proc/self/cgroup; mounts are looked up as needed.
    fn with_own(cgroup: &str) -> CgroupHost {
        CgroupHost {
            own: own_paths(cgroup),
            table: std::cell::OnceCell::new(),
            v2: std::cell::OnceCell::new(),
            fs: HostFs::default(),
        }
    }

    /// From the texts of /proc/self/mountinfo and /proc/self/cgroup (the table already read).
    #[cfg(test)]
    fn parse(mountinfo: &str, cgroup: &str) -> CgroupHost {
        let host = CgroupHost::with_own(cgroup);
        let _ = host.table.set(cgroup_mounts(mountinfo));
        host
    }

    fn table(&self, fs: &dyn CgroupFs) -> &[CgroupMount] {
        self.table.get_or_init(|| cgroup_mounts(&fs.mountinfo()))
    }

    /// Where the cgroup v2 hierarchy is mounted, if it is: at a conventional place as the
    /// kernel says, else the table's first cgroup2 mount. Without a v2 line in
    /// /proc/self/cgroup it is mounted nowhere (the kernel lists the v2 hierarchy there once
    /// it has been mounted).
    fn v2_mount(&self, fs: &dyn CgroupFs) -> Option<PathBuf> {
        self.v2
            .get_or_init(|| {
                if !self.own.iter().any(|(c, _)| c.is_empty()) {
                    return None;
                }
                for point in V2_MOUNT_POINTS {
                    match fs.mount_at(Path::new(point)) {
                        MountAt::Cgroup(m) if m.v2 => return Some(m.mount_point),
                        MountAt::Cgroup(_) | MountAt::Other => {}
                        MountAt::Unknown => break,
                    }
                }
                self.table(fs)
                    .iter()
                    .find(|m| m.v2)
                    .map(|m| m.mount_point.clone())
            })
            .clone()
    }

    /// Where the v1 hierarchy of the controller `name` is mounted, if it is: at the
    /// conventional place of the hierarchy /proc/self/cgroup lists it in, as the kernel says,
    /// else the table's first v1 mount of it. A controller /proc/self/cgroup lists in no v1
    /// hierarchy is mounted in none (every v1 hierarchy is listed there).
    fn v1_mount(&self, fs: &dyn CgroupFs, name: &str) -> Option<PathBuf> {
        let (controllers, _) = self
            .own
            .iter()
            .find(|(c, _)| c.split(',').any(|c| c == name))?;
        if let MountAt::Cgroup(m) = fs.mount_at(&v1_mount_point(controllers)) {
            if !m.v2 && m.controllers.iter().any(|c| c == name) {
                return Some(m.mount_point);
            }
        }
        self.table(fs)
            .iter()
            .find(|m| !m.v2 && m.controllers.iter().any(|c| c == name))
            .map(|m| m.mount_point.clone())
    }

    /// Finds where `controller` can be used by this process, preferring cgroup v2.
    pub fn locate(&self, controller: Controller) -> Option<Hierarchy> {
        self.find(controller).ok()
    }

    /// Where `controller` can be used by this process, preferring cgroup v2; or why it
    /// cannot be, naming every place looked at.
    pub fn find(&self, controller: Controller) -> Result<Hierarchy, String> {
        self.find_in(controller, &self.fs, nix::unistd::geteuid().as_raw())
    }

    fn find_in(
        &self,
        controller: Controller,
        fs: &dyn CgroupFs,
        uid: u32,
    ) -> Result<Hierarchy, String> {
        // A controller /proc/self/cgroup lists in a v1 hierarchy is bound to that hierarchy
        // and to no other: the kernel attaches each controller to one hierarchy at a time,
        // so the v2 hierarchy cannot have it enabled, and asking it (two mount lookups and a
        // `cgroup.subtree_control` read) would only say no. The v1 answer is then the answer.
        // Where v1 cannot serve, the whole search below runs, and the refusal names every
        // place looked at, as before. (CPU accounting needs no controller on v2 — `cpu.stat`
        // is a core file — so it always asks v2 first.)
        if controller.v2_name().is_some() && self.on_v1(controller.v1_name()) {
            if let Ok(h) = self.find_v1(controller.v1_name(), fs, uid) {
                return Ok(h);
            }
        }
        let own = &self.own;
        let mut why: Vec<String> = vec![];
        match (self.v2_mount(fs), own.iter().find(|(c, _)| c.is_empty())) {
            (Some(mount_point), Some((_, rel))) => {
                // cw-exec's own cgroup (a delegated subtree, or the root), then the hierarchy's
                // root: the root cgroup may hold processes and enabled controllers at once, so a
                // caller who may write there (root, usually) gets whole-sandbox limits on a
                // systemd host, where its own cgroup is a leaf with no controllers enabled below it.
                // Each with its cgroup path (`CgroupPlacement::parent`).
                let mut candidates = vec![(join(&mount_point, rel), rel.as_str())];
                if candidates[0].0 != mount_point {
                    candidates.push((mount_point.clone(), "/"));
                }
                for (parent, cgroup) in candidates {
                    let enabled = fs.subtree_control(&parent);
                    let usable = match controller.v2_name() {
                        Some(name) => enabled.split_whitespace().any(|c| c == name),
                        None => true,
                    };
                    if !usable {
                        why.push(format!(
                            "cgroup v2 {}: {} is not enabled in its cgroup.subtree_control",
                            parent.display(),
                            controller.v2_name().unwrap_or_default()
                        ));
                    } else if !fs.writable(&parent) {
                        why.push(format!(
                            "cgroup v2 {}: not writable by uid {uid}",
                            parent.display()
                        ));
                    } else {
                        let placement = CgroupPlacement {
                            parent: cgroup.to_string(),
                            own: rel.clone(),
                        };
                        return Ok(Hierarchy::V2(parent, placement));
                    }
                }
            }
            (None, _) => why.push("no cgroup v2 hierarchy is mounted".into()),
            (Some(_), None) => why.push("/proc/self/cgroup names no cgroup v2 cgroup".into()),
        }
        match self.find_v1(controller.v1_name(), fs, uid) {
            Ok(h) => Ok(h),
            Err(v1) => {
                why.push(v1);
                Err(why.join("; "))
            }
        }
    }

    /// Whether /proc/self/cgroup lists the controller `name` in a v1 hierarchy.
    fn on_v1(&self, name: &str) -> bool {
        self.own
            .iter()
            .any(|(c, _)| !c.is_empty() && c.split(',').any(|c| c == name))
    }

    /// Where the v1 controller `name` can be used by this process: beneath its own cgroup
    /// in that controller's hierarchy; or why not.
    fn find_v1(&self, name: &str, fs: &dyn CgroupFs, uid: u32) -> Result<Hierarchy, String> {
        let Some(mount_point) = self.v1_mount(fs, name) else {
            return Err(format!("no cgroup v1 {name} hierarchy is mounted"));
        };
        let Some((_, rel)) = self
            .own
            .iter()
            .find(|(c, _)| c.split(',').any(|c| c == name))
        else {
            return Err(format!(
                "/proc/self/cgroup names no cgroup v1 {name} cgroup"
            ));
        };
        let parent = join(&mount_point, rel);
        if fs.writable(&parent) {
            // Beneath cw-exec's own cgroup, always.
            let placement = CgroupPlacement {
                parent: rel.clone(),
                own: rel.clone(),
            };
            return Ok(Hierarchy::V1(parent, placement));
        }
        Err(format!(
            "cgroup v1 {}: not writable by uid {uid}",
            parent.display()
        ))
    }
}

/// A cgroup's path: its hierarchy's mount point joined with its path in /proc/self/cgroup.
fn join(mount: &Path, rel: &str) -> PathBuf {
    match rel.trim_start_matches('/') {
        "" => mount.to_path_buf(),
        rel => mount.join(rel),
    }
}

/// The path the kernel shows for the cgroup `cgroup` to a process whose cgroup namespace is
/// rooted at the cgroup `root` (both paths of one hierarchy, "/"-separated, as
/// /proc/self/cgroup shows them outside that namespace): down from `root` where `cgroup` lies
/// beneath it, else up through "/.." to their common ancestor and down from there (the
/// kernel's `cgroup_path_ns`, `kernfs_path_from_node`).
fn seen_from(root: &str, cgroup: &str) -> String {
    let parts = |p: &str| -> Vec<String> {
        p.split('/')
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect()
    };
    let (root, cgroup) = (parts(root), parts(cgroup));
    let common = root.iter().zip(&cgroup).take_while(|(a, b)| a == b).count();
    let mut out = "/..".repeat(root.len() - common);
    for c in &cgroup[common..] {
        out.push('/');
        out.push_str(c);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// Where the command's process must be, as its own /proc/self/cgroup shows it: for each
/// hierarchy the run's cgroups are in, the exact path of the run's cgroup there as seen from
/// the command's cgroup namespace. A hierarchy is named as the middle field of a
/// /proc/self/cgroup line names it: "" for cgroup v2, or a v1 controller ("memory", "pids",
/// "cpuacct") for the v1 hierarchy that holds it.
///
/// cw-exec derives it (`RunCgroups::membership`) and hands it to init with the cgroups, in
/// the same message (`encode`; init `decode`s it strictly); the command's process checks its
/// read-back against it before execve (`check`), and cw-exec checks the read-back again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Membership(Vec<(String, String)>);

/// The hierarchies a run's cgroups can be in, as `Membership` names them.
const MEMBERSHIP_HIERARCHIES: [&str; 4] = ["", "memory", "pids", "cpuacct"];

/// The most bytes an encoded `Membership` may take (init's receiving buffer).
pub const MAX_MEMBERSHIP: usize = 4096;

impl Membership {
    /// One line per hierarchy: `<hierarchy>:<path>\n` (the v2 line starts with its ':').
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![];
        for (hierarchy, path) in &self.0 {
            out.extend_from_slice(hierarchy.as_bytes());
            out.push(b':');
            out.extend_from_slice(path.as_bytes());
            out.push(b'\n');
        }
        out
    }

    /// The expectation `encode` wrote, or why `bytes` is not one: anything else — not UTF-8,
    /// empty, a line without its newline or its ':', a hierarchy a run's cgroups cannot be
    /// in, one named twice, a path not starting with '/', more than `MAX_MEMBERSHIP` bytes —
    /// is refused, never read leniently.
    pub fn decode(bytes: &[u8]) -> Result<Membership, String> {
        if bytes.len() > MAX_MEMBERSHIP {
            return Err(format!(
                "{} bytes of cgroup membership (at most {MAX_MEMBERSHIP})",
                bytes.len()
            ));
        }
        let text = std::str::from_utf8(bytes)
            .map_err(|_| "the cgroup membership is not UTF-8".to_string())?;
        let Some(body) = text.strip_suffix('\n') else {
            return Err(format!(
                "the cgroup membership {text:?} does not end with a newline"
            ));
        };
        let mut out: Vec<(String, String)> = vec![];
        for line in body.split('\n') {
            let Some((hierarchy, path)) = line.split_once(':') else {
                return Err(format!("cgroup membership line {line:?} has no ':'"));
            };
            if !MEMBERSHIP_HIERARCHIES.contains(&hierarchy) {
                return Err(format!(
                    "cgroup membership line {line:?}: hierarchy {hierarchy:?} is none of {MEMBERSHIP_HIERARCHIES:?}"
                ));
            }
            if !path.starts_with('/') {
                return Err(format!(
                    "cgroup membership line {line:?}: the path does not start with '/'"
                ));
            }
            if out.iter().any(|(h, _)| h == hierarchy) {
                return Err(format!(
                    "cgroup membership: hierarchy {hierarchy:?} named twice"
                ));
            }
            out.push((hierarchy.to_string(), path.to_string()));
        }
        Ok(Membership(out))
    }

    /// Checks the lines of a /proc/self/cgroup (`lines`, as the command's process read them)
    /// against the expectation: for each hierarchy, exactly one line must name it, and its
    /// path must be exactly the one expected — not a parent, not a child, not another run's.
    /// Ok: (hierarchy, path read) for each; Err: the first hierarchy that does not match, and
    /// what was read there.
    pub fn check(&self, lines: &[String]) -> Result<Vec<(String, String)>, String> {
        let parsed: Vec<(&str, &str)> = lines
            .iter()
            .filter_map(|line| {
                let mut parts = line.splitn(3, ':');
                let _id = parts.next()?;
                Some((parts.next()?, parts.next()?))
            })
            .collect();
        let mut out = vec![];
        for (hierarchy, want) in &self.0 {
            let named = if hierarchy.is_empty() {
                "the cgroup v2 hierarchy".to_string()
            } else {
                format!("the cgroup v1 {hierarchy} hierarchy")
            };
            let found: Vec<&str> = parsed
                .iter()
                .filter(|(controllers, _)| match hierarchy.as_str() {
                    "" => controllers.is_empty(),
                    h => controllers.split(',').any(|c| c == h),
                })
                .map(|(_, path)| *path)
                .collect();
            match found.as_slice() {
                [got] if got == want => out.push((hierarchy.clone(), got.to_string())),
                [got] => {
                    return Err(format!(
                        "in {named} the command's process is in {got:?}, not in the run's cgroup {want:?} (its /proc/self/cgroup, read before execve)"
                    ))
                }
                [] => {
                    return Err(format!(
                        "the command's /proc/self/cgroup has no line for {named} (the run's cgroup there is {want:?})"
                    ))
                }
                several => {
                    return Err(format!(
                        "the command's /proc/self/cgroup has {} lines for {named} ({several:?}; the run's cgroup there is {want:?})",
                        several.len()
                    ))
                }
            }
        }
        Ok(out)
    }
}

/// The mode of a run's cgroup directory: only its maker (cw-exec's uid) may make cgroups in
/// it (a caller's umask can only take more away).
const RUN_CGROUP_MODE: nix::sys::stat::Mode = nix::sys::stat::Mode::from_bits_truncate(0o755);

/// The cgroups made for one run.
///
/// Each cgroup's parent is opened once (`O_PATH`) when the cgroup is made, and every later
/// file of the run — the limits, `tasks`, the files read at the end — is opened relative to
/// it, and the cgroup removed through it: two path components from a held directory instead
/// of the whole path from `/` each time (here `/sys/fs/cgroup/memory/<caller's cgroup>/…`:
/// 10.5 µs an open by path, 5 µs relative, measured in C). A file is opened without `O_CREAT`
/// or `O_TRUNC`: a limit file that is not there is an error (ENOENT), never a regular file
/// created in its place.
pub struct RunCgroups {
    /// The run's cgroup name, the same in every hierarchy (`cw-exec-<pid>-<n>`).
    name: String,
    dirs: Vec<(Controller, Hierarchy, PathBuf)>,
    /// Each distinct cgroup (by path) with its parent directory, held open.
    parents: Vec<(PathBuf, std::os::fd::OwnedFd)>,
    /// The files read once the run is over (`oom_killed`, `pids_refused`), opened when the
    /// cgroup is made — while init builds the sandbox — rather than after the command: the
    /// first open of a cgroup file is its dearest part (the kernel makes its inode then).
    at_end: Vec<(&'static str, std::fs::File)>,
    /// Each limit file written, with the value read back from it once written (the kernel's,
    /// checked against what was asked): (controller, file, value).
    observed: Vec<(Controller, &'static str, String)>,
}

/// Limits to write into the run's cgroups.
pub struct CgroupLimits {
    pub memory: Option<(u64, Hierarchy)>,
    pub pids: Option<(u64, Hierarchy)>,
    pub cpu: Option<Hierarchy>,
}

impl RunCgroups {
    /// Creates the run's cgroups and writes the limits. Fails (and removes what it made) if
    /// any cannot be applied: a limit the plan said a cgroup would enforce is never skipped.
    pub fn create(limits: &CgroupLimits) -> Result<RunCgroups, String> {
        let name = format!(
            "cw-exec-{}-{:x}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        );
        Self::create_named(limits, name, sweeps_this_run())
    }

    /// `create` with the cgroup's name and the sweep decided (tests choose both).
    fn create_named(
        limits: &CgroupLimits,
        name: String,
        sweep: bool,
    ) -> Result<RunCgroups, String> {
        Self::create_in(limits, name, sweep, &HostFs::default())
    }

    /// `create_named`, the limit files written and read back through `fs`.
    fn create_in(
        limits: &CgroupLimits,
        name: String,
        sweep: bool,
        fs: &dyn CgroupFs,
    ) -> Result<RunCgroups, String> {
        let mut run = RunCgroups {
            name,
            dirs: vec![],
            parents: vec![],
            at_end: vec![],
            observed: vec![],
        };
        let wanted = [
            limits
                .memory
                .as_ref()
                .map(|(v, h)| (Controller::Memory, h, Some(*v))),
            limits
                .pids
                .as_ref()
                .map(|(v, h)| (Controller::Pids, h, Some(*v))),
            limits
                .cpu
                .as_ref()
                .map(|h| (Controller::CpuAccounting, h, None)),
        ];
        for (controller, hierarchy, value) in wanted.into_iter().flatten() {
            if let Err(e) = run.add_controller(controller, hierarchy, value, sweep, fs) {
                run.remove();
                return Err(e);
            }
        }
        // Opened now, read at the end (a file that cannot be opened now is opened then).
        for file in [run.oom_file(), run.pids_file()].into_iter().flatten() {
            let (dir, name) = file;
            if let Ok(fd) = run.open_in(&dir, name, nix::fcntl::OFlag::O_RDONLY) {
                run.at_end.push((name, std::fs::File::from(fd)));
            }
        }
        Ok(run)
    }

    /// The memory cgroup's file that counts OOM kills, and the key of that count.
    fn oom_file(&self) -> Option<(PathBuf, &'static str)> {
        let (_, h, dir) = self
            .dirs
            .iter()
            .find(|(c, _, _)| *c == Controller::Memory)?;
        Some((
            dir.clone(),
            match h {
                Hierarchy::V1(..) => "memory.oom_control",
                Hierarchy::V2(..) => "memory.events",
            },
        ))
    }

    /// The pids cgroup's file that counts refused forks.
    fn pids_file(&self) -> Option<(PathBuf, &'static str)> {
        let (_, _, dir) = self.dirs.iter().find(|(c, _, _)| *c == Controller::Pids)?;
        Some((dir.clone(), "pids.events"))
    }

    /// Reads a file of the run's cgroup `dir` at the end of the run: through the descriptor
    /// opened with the cgroup (read once, from its start), else opened now.
    fn read_at_end(&self, dir: &Path, file: &str) -> Option<String> {
        let Some((_, fd)) = self.at_end.iter().find(|(f, _)| *f == file) else {
            return self.read_in(dir, file);
        };
        let mut buf = vec![0u8; 4096];
        let mut len = 0;
        loop {
            if len == buf.len() {
                buf.resize(buf.len() * 2, 0);
            }
            match std::os::unix::fs::FileExt::read_at(fd, &mut buf[len..], len as u64) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return None,
            }
        }
        buf.truncate(len);
        String::from_utf8(buf).ok()
    }

    /// The parent of the run's cgroup `dir`, held open since the cgroup was made.
    fn parent_of(&self, dir: &Path) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        self.parents
            .iter()
            .find(|(d, _)| d == dir)
            .map(|(_, fd)| fd.as_fd())
    }

    /// `file` of the run's cgroup `dir`: relative to its held parent, and the full path (for
    /// messages).
    fn file_of(&self, dir: &Path, file: &str) -> (String, PathBuf) {
        (format!("{}/{file}", self.name), dir.join(file))
    }

    /// Opens a file of the run's cgroup `dir` (relative to its held parent) with `flags`.
    fn open_in(
        &self,
        dir: &Path,
        file: &str,
        flags: nix::fcntl::OFlag,
    ) -> nix::Result<std::os::fd::OwnedFd> {
        let (rel, full) = self.file_of(dir, file);
        match self.parent_of(dir) {
            Some(parent) => nix::fcntl::openat(
                parent,
                rel.as_str(),
                flags | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            ),
            None => nix::fcntl::open(
                &full,
                flags | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            ),
        }
    }

    /// Reads a small file of the run's cgroup `dir`.
    fn read_in(&self, dir: &Path, file: &str) -> Option<String> {
        let (rel, full) = self.file_of(dir, file);
        let bytes = match self.parent_of(dir) {
            Some(parent) => crate::sys::read_kernel_file(Some(parent), Path::new(&rel), 4096),
            None => crate::sys::read_kernel_file(None, &full, 4096),
        };
        String::from_utf8(bytes.ok()?).ok()
    }

    fn add_controller(
        &mut self,
        controller: Controller,
        h: &Hierarchy,
        value: Option<u64>,
        sweep: bool,
        fs: &dyn CgroupFs,
    ) -> Result<(), String> {
        use nix::fcntl::OFlag;
        // A v2 cgroup serves every controller: make it once.
        let existing = self
            .dirs
            .iter()
            .find(|(_, eh, _)| eh == h)
            .map(|(_, _, d)| d.clone());
        let dir = match existing {
            Some(d) => d,
            None => {
                if sweep {
                    sweep_stale(h.parent());
                }
                let d = h.parent().join(&self.name);
                let parent = nix::fcntl::open(
                    h.parent(),
                    OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                    nix::sys::stat::Mode::empty(),
                )
                .map_err(|e| format!("creating cgroup {}: opening its parent: {e}", d.display()))?;
                // 0755, whatever the caller's umask: the cgroup's directory mode is what the
                // kernel checks for a mkdir inside it, and a run cgroup another user could
                // write (a caller's umask of 0 made it 0777) let that user make a child
                // cgroup in it, move its own processes there (charged to the run's limits,
                // out of the cgroups the host put it in), and keep cw-exec from removing it.
                nix::sys::stat::mkdirat(&parent, self.name.as_str(), RUN_CGROUP_MODE)
                    .map_err(|e| format!("creating cgroup {}: {e}", d.display()))?;
                self.parents.push((d.clone(), parent));
                d
            }
        };
        self.dirs.push((controller, h.clone(), dir.clone()));
        // Opened without O_CREAT: a limit file that is not there is an error, not a file made.
        // Each limit is read back from the kernel through the descriptor it was written
        // through, and must be what was asked (memory: rounded down to a page): a limit the
        // kernel accepted as a write but holds otherwise (clamped, ignored) does not bind as
        // asked, and the run is refused.
        let page = page_size();
        let mut observed = vec![];
        let mut write_or = |file: &'static str,
                            value: u64,
                            absent_is_fine: bool|
         -> Result<(), String> {
            let (rel, full) = self.file_of(&dir, file);
            let at = self.parent_of(&dir);
            let path = match at {
                Some(_) => PathBuf::from(rel),
                None => full.clone(),
            };
            let what = || format!("cgroup {} = {value}", full.display());
            match fs.write_limit(at, &path, &value.to_string()) {
                // A file the kernel makes only where it accounts swap.
                Ok(None) if absent_is_fine => Ok(()),
                Ok(None) => Err(format!("{}: {}", what(), nix::errno::Errno::ENOENT)),
                Err(e) => Err(format!("{}: {e}", what())),
                Ok(Some(read)) => {
                    let want = held_as_asked(file, value, page);
                    if read.parse::<u64>().ok() != Some(want) {
                        let rounding = if want == value {
                            String::new()
                        } else {
                            format!(" ({value} rounded down to a {page}-byte page)")
                        };
                        return Err(format!(
                                "the {} limit does not bind as asked: {} was written {value}, but the kernel holds {read:?} (read back), not {want}{rounding}",
                                controller.limit_name(),
                                full.display()
                            ));
                    }
                    observed.push((controller, file, read));
                    Ok(())
                }
            }
        };
        match (controller, h, value) {
            (Controller::Memory, Hierarchy::V2(..), Some(v)) => {
                write_or("memory.max", v, false)?;
                write_or("memory.swap.max", 0, true)?;
            }
            (Controller::Memory, Hierarchy::V1(..), Some(v)) => {
                write_or("memory.limit_in_bytes", v, false)?;
                write_or("memory.memsw.limit_in_bytes", v, true)?;
            }
            (Controller::Pids, _, Some(v)) => write_or("pids.max", v, false)?,
            _ => {}
        }
        self.observed.extend(observed);
        Ok(())
    }

    /// Each limit file written, with the value the kernel holds there as read back once it
    /// was written (and found to be what was asked): (limit, file, value), the limit named
    /// as the attestation names it ("memory", "pids").
    pub fn observed(&self) -> Vec<(&'static str, &'static str, String)> {
        self.observed
            .iter()
            .map(|(c, file, value)| (c.limit_name(), *file, value.clone()))
            .collect()
    }

    /// Where the command's process must be, as its own /proc/self/cgroup will show it (see
    /// `Membership`), derived from facts only: the run's cgroup name, and where each of its
    /// cgroups was made as recorded when the hierarchy was found (`CgroupPlacement`: the parent's
    /// cgroup path, and cw-exec's own cgroup there, both as cw-exec's /proc/self/cgroup showed
    /// them). `namespaced`: init was cloned into a new cgroup namespace, whose root in each
    /// hierarchy is the cgroup init was born in — cw-exec's own, from which the run's cgroup
    /// is seen (v1: "/<name>"), except the v2 cgroup init was born in with clone3's
    /// `CLONE_INTO_CGROUP` (`born_in_v2`): the kernel roots the new namespace's v2 hierarchy
    /// there (`cgroup_post_fork`), so it shows as "/". Without a namespace (the Landlock tier)
    /// the command sees what cw-exec sees: the run's cgroup's own path. An expectation that
    /// cannot be stated (a path with a newline, more than `MAX_MEMBERSHIP` bytes) is an error:
    /// the run is refused rather than left unchecked.
    pub fn membership(&self, namespaced: bool, born_in_v2: bool) -> Result<Membership, String> {
        let mut out: Vec<(String, String)> = vec![];
        for (controller, h, _) in &self.dirs {
            let hierarchy = match h {
                Hierarchy::V2(..) => "",
                Hierarchy::V1(..) => controller.v1_name(),
            };
            if out.iter().any(|(named, _)| named == hierarchy) {
                continue; // one v2 cgroup serves several controllers
            }
            let place = h.placement();
            let run = format!("{}/{}", place.parent.trim_end_matches('/'), self.name);
            let want = match h {
                _ if !namespaced => run,
                Hierarchy::V2(..) if born_in_v2 => "/".to_string(),
                _ => seen_from(&place.own, &run),
            };
            if want.contains('\n') {
                return Err(format!(
                    "the run's cgroup {want:?} has a newline in its path: the command's membership of it could not be checked"
                ));
            }
            out.push((hierarchy.to_string(), want));
        }
        let membership = Membership(out);
        let size = membership.encode().len();
        if size > MAX_MEMBERSHIP {
            return Err(format!(
                "the run's cgroup paths take {size} bytes (at most {MAX_MEMBERSHIP}): the command's membership of them could not be checked"
            ));
        }
        Ok(membership)
    }

    /// The command's membership of every cgroup the run made, from its read-back (`lines`,
    /// its /proc/self/cgroup as read before execve) against `expected` (`membership`): for
    /// each limit, the path read ((limit, "cgroup", path), as `observed` records it); or the
    /// first cgroup the command is not shown in.
    pub fn observed_membership(
        &self,
        expected: &Membership,
        lines: &[String],
    ) -> Result<Vec<(&'static str, &'static str, String)>, String> {
        let seen = expected.check(lines)?;
        let mut out = vec![];
        for (controller, h, dir) in &self.dirs {
            let hierarchy = match h {
                Hierarchy::V2(..) => "",
                Hierarchy::V1(..) => controller.v1_name(),
            };
            let Some((_, path)) = seen.iter().find(|(named, _)| named == hierarchy) else {
                return Err(format!(
                    "no membership was expected of the run's cgroup {}",
                    dir.display()
                ));
            };
            out.push((controller.limit_name(), "cgroup", path.clone()));
        }
        Ok(out)
    }

    /// The run's distinct cgroup directories (a v2 cgroup serves several controllers).
    fn distinct_dirs(&self) -> Vec<(&Hierarchy, &Path)> {
        let mut dirs: Vec<(&Hierarchy, &Path)> = vec![];
        for (_, h, dir) in &self.dirs {
            if !dirs.iter().any(|(_, d)| *d == dir.as_path()) {
                dirs.push((h, dir));
            }
        }
        dirs
    }

    /// Moves a process (init, before it forks anything) into the run's v2 cgroup, through
    /// `cgroup.procs`. (The v1 ones it joins itself: `self_join`.)
    pub fn enter_v2(&self, pid: i32) -> Result<(), String> {
        for (_, dir) in self
            .distinct_dirs()
            .into_iter()
            .filter(|(h, _)| matches!(h, Hierarchy::V2(..)))
        {
            let fd = self
                .open_in(dir, "cgroup.procs", nix::fcntl::OFlag::O_WRONLY)
                .map_err(|e| format!("joining cgroup {}: {e}", dir.display()))?;
            nix::unistd::write(&fd, pid.to_string().as_bytes())
                .map_err(|e| format!("joining cgroup {}: {e}", dir.display()))?;
        }
        Ok(())
    }

    /// The run's v2 cgroup, opened for `sys::clone_into_cgroup`: a process born in it needs
    /// no migration (see `SelfJoin` for what a migration costs).
    pub fn v2_dir(&self) -> Option<std::fs::File> {
        use nix::fcntl::OFlag;
        let (_, dir) = self
            .distinct_dirs()
            .into_iter()
            .find(|(h, _)| matches!(h, Hierarchy::V2(..)))?;
        let parent = self.parent_of(dir)?;
        nix::fcntl::openat(
            parent,
            self.name.as_str(),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .ok()
        .map(std::fs::File::from)
    }

    /// The `tasks` files of the cgroups the run's v1 cgroups were made in, for init to move
    /// itself back out once the run is over (then the run's cgroups are empty and can be
    /// removed without waiting for init's exit). None where that cannot be done cheaply: a
    /// v2 cgroup among the run's (its `cgroup.procs` takes the global lock), or a parent this
    /// process may not write.
    pub fn self_leave(&self) -> Option<SelfJoin> {
        let dirs = self.distinct_dirs();
        if dirs.iter().any(|(h, _)| matches!(h, Hierarchy::V2(..))) {
            return None;
        }
        let mut handles = vec![];
        for (h, dir) in dirs {
            let file = nix::fcntl::openat(
                self.parent_of(dir)?,
                "tasks",
                nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .ok()?;
            handles.push((h.parent().join("tasks"), std::fs::File::from(file)));
        }
        Some(SelfJoin(handles))
    }

    /// The run's v1 cgroups, opened for a process to move itself in (`SelfJoin::join`).
    pub fn self_join(&self) -> Result<SelfJoin, String> {
        let mut handles = vec![];
        for (_, dir) in self
            .distinct_dirs()
            .into_iter()
            .filter(|(h, _)| matches!(h, Hierarchy::V1(..)))
        {
            let tasks = dir.join("tasks");
            let file = self
                .open_in(dir, "tasks", nix::fcntl::OFlag::O_WRONLY)
                .map_err(|e| format!("opening {}: {e}", tasks.display()))?;
            handles.push((tasks, std::fs::File::from(file)));
        }
        Ok(SelfJoin(handles))
    }

    /// In a process cloned from the one that made the cgroups (init): closes what this
    /// process holds of them (the parents' descriptors) without removing them — removing them
    /// is the maker's.
    pub fn disown(mut self) {
        self.observed.clear();
        self.at_end.clear();
        self.parents.clear();
        self.dirs.clear();
    }
}

/// `tasks` files of v1 cgroups, opened by cw-exec (whose credentials the kernel checks for a
/// write, whoever makes it), for init to move itself: into the run's cgroups before it starts
/// the command (`RunCgroups::self_join`), and back out once the run is over
/// (`RunCgroups::self_leave`).
///
/// Why init and `tasks` rather than cw-exec and `cgroup.procs`: a write to `cgroup.procs`
/// (or of another pid) takes the global cgroup threadgroup lock for writing, which waits
/// for an RCU grace period unless another migration happened moments before — about 10 ms
/// on a busy host, measured here (a write of "0" to `tasks`: 0.03 ms). Writing "0" to
/// `tasks` moves the writing thread alone, which the kernel does without that lock; init is
/// single-threaded, so that thread is the whole process. The descriptors are close-on-exec
/// and consumed (closed) by `join`.
pub struct SelfJoin(Vec<(PathBuf, std::fs::File)>);

impl SelfJoin {
    /// The `tasks` files, to hand to init (it joins through them).
    pub fn descriptors(&self) -> Vec<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        self.0.iter().map(|(_, f)| f.as_fd()).collect()
    }

    /// `tasks` files received from cw-exec.
    pub fn received(fds: Vec<std::os::fd::OwnedFd>) -> SelfJoin {
        SelfJoin(
            fds.into_iter()
                .enumerate()
                .map(|(i, fd)| {
                    (
                        PathBuf::from(format!("the run's cgroup v1 tasks file #{}", i + 1)),
                        std::fs::File::from(fd),
                    )
                })
                .collect(),
        )
    }

    /// Moves the calling thread — the whole process, single-threaded — into every cgroup.
    pub fn join(self) -> Result<(), String> {
        use std::io::Write;
        for (tasks, mut file) in self.0 {
            file.write_all(b"0")
                .map_err(|e| format!("joining {}: {e}", tasks.display()))?;
        }
        Ok(())
    }
}

impl RunCgroups {
    /// CPU time used by every process of the run so far, if a cgroup accounts it.
    pub fn cpu_used(&self) -> Option<Duration> {
        let (_, h, dir) = self
            .dirs
            .iter()
            .find(|(c, _, _)| *c == Controller::CpuAccounting)?;
        match h {
            Hierarchy::V1(..) => {
                let ns: u64 = self.read_in(dir, "cpuacct.usage")?.trim().parse().ok()?;
                Some(Duration::from_nanos(ns))
            }
            Hierarchy::V2(..) => {
                let stat = self.read_in(dir, "cpu.stat")?;
                let us: u64 = stat
                    .lines()
                    .find_map(|l| l.strip_prefix("usage_usec "))?
                    .trim()
                    .parse()
                    .ok()?;
                Some(Duration::from_micros(us))
            }
        }
    }

    /// Whether the memory limit was hit hard enough for the kernel to OOM-kill in the run.
    pub fn oom_killed(&self) -> bool {
        let Some((dir, file)) = self.oom_file() else {
            return false;
        };
        let key = "oom_kill ";
        self.read_at_end(&dir, file)
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix(key))
                    .and_then(|v| v.trim().parse::<u64>().ok())
            })
            .map(|n| n > 0)
            .unwrap_or(false)
    }

    /// How many forks and clones the pids cgroup refused at its limit (`pids.events`: `max`).
    pub fn pids_refused(&self) -> u64 {
        let Some((dir, file)) = self.pids_file() else {
            return 0;
        };
        self.read_at_end(&dir, file)
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("max "))
                    .and_then(|v| v.trim().parse::<u64>().ok())
            })
            .unwrap_or(0)
    }

    /// Removes the run's cgroups (through their held parents). They can only go once empty;
    /// the processes of a finished run may take a moment to be reaped, so retry briefly.
    pub fn remove(&mut self) {
        // A held descriptor does not keep a cgroup from being removed; closed first anyway.
        self.at_end.clear();
        let mut dirs: Vec<PathBuf> = self.dirs.drain(..).map(|(_, _, d)| d).collect();
        dirs.dedup();
        for dir in dirs {
            for attempt in 0..200 {
                let removed = match self.parent_of(&dir) {
                    Some(parent) => nix::unistd::unlinkat(
                        parent,
                        self.name.as_str(),
                        nix::unistd::UnlinkatFlags::RemoveDir,
                    )
                    .map_err(std::io::Error::from),
                    None => std::fs::remove_dir(&dir),
                };
                match removed {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(e) if attempt == 199 => eprintln!(
                        "cw-exec: warning: could not remove cgroup {}: {e}",
                        dir.display()
                    ),
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        }
        self.parents.clear();
    }
}

impl Drop for RunCgroups {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Whether this run looks for cgroups left behind (one run in `SWEEP_EVERY`, at random: not
/// by pid, which a caller starting runs in a fixed pattern could keep off every multiple).
/// Listing the parent directory takes its lock for reading, against every concurrent run's
/// mkdir and rmdir there, which take it for writing: 32 runs in parallel that each listed it
/// waited on each other for tens of milliseconds (perf lock contention). A cgroup is left
/// only by a cw-exec that was SIGKILLed before it could remove it; it is empty (its
/// processes died with init), and goes at one of the next runs.
fn sweeps_this_run() -> bool {
    let mut byte = [0u8; 1];
    // Unreadable randomness: sweep (the careful answer, never the fast one).
    crate::sys::random_bytes(&mut byte).is_err() || u32::from(byte[0]) % SWEEP_EVERY == 0
}

const SWEEP_EVERY: u32 = 8;

/// Removes empty cgroups left by runs whose cw-exec no longer exists.
fn sweep_stale(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("cw-exec-")) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
            || nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None)
                == Err(nix::errno::Errno::EPERM);
        if !alive {
            let _ = std::fs::remove_dir(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A placement: the parent's cgroup path and cw-exec's own.
    fn placed(parent: &str, own: &str) -> CgroupPlacement {
        CgroupPlacement {
            parent: parent.into(),
            own: own.into(),
        }
    }

    /// Recorded answers: subtree_control per cgroup, and the cgroups this process may write;
    /// for the mount-by-mount lookup, the mount table it is answered from (`statmount`: what
    /// the kernel would say of the topmost mount at a path) and how often the whole table
    /// was read.
    struct Recorded {
        enabled: BTreeMap<&'static str, &'static str>,
        writable: Vec<&'static str>,
        mounts: &'static str,
        statmount: bool,
        table_reads: std::cell::Cell<usize>,
    }

    impl Recorded {
        fn new(enabled: BTreeMap<&'static str, &'static str>, writable: Vec<&'static str>) -> Self {
            Recorded {
                enabled,
                writable,
                mounts: "",
                statmount: false,
                table_reads: std::cell::Cell::new(0),
            }
        }
    }

    impl CgroupFs for Recorded {
        fn subtree_control(&self, cgroup: &Path) -> String {
            self.enabled
                .get(cgroup.to_str().unwrap())
                .unwrap_or(&"")
                .to_string()
        }
        fn writable(&self, cgroup: &Path) -> bool {
            self.writable.contains(&cgroup.to_str().unwrap())
        }
        fn mount_at(&self, path: &Path) -> MountAt {
            if !self.statmount {
                return MountAt::Unknown;
            }
            let table = self.mounts;
            // The topmost mount at the path: the last line mounting there.
            let line = table
                .lines()
                .rev()
                .find(|l| l.split(' ').nth(4) == Some(path.to_str().unwrap()));
            match line.map(cgroup_mounts).and_then(|m| m.into_iter().next()) {
                Some(m) => MountAt::Cgroup(m),
                None => MountAt::Other,
            }
        }
        fn mountinfo(&self) -> String {
            self.table_reads.set(self.table_reads.get() + 1);
            self.mounts.to_string()
        }
    }

    /// This machine's kind: memory, pids and cpu on cgroup v1; cgroup2 mounted without them.
    const V1_MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const V1_CGROUP: &str = "8:pids:/\n4:memory:/job/42\n2:cpuacct:/\n1:cpu:/\n0::/\n";

    /// A systemd host on cgroup v2 only: the caller's own cgroup is a leaf of a session.
    const V2_MOUNTINFO: &str =
        "30 23 0:27 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw,nsdelegate\n";
    const V2_CGROUP: &str = "0::/user.slice/user-1000.slice/session-3.scope\n";

    #[test]
    fn v1_controllers_are_found_in_the_callers_own_cgroup() {
        let host = CgroupHost::parse(V1_MOUNTINFO, V1_CGROUP);
        let fs = Recorded::new(
            BTreeMap::new(),
            vec!["/sys/fs/cgroup/memory/job/42", "/sys/fs/cgroup/pids"],
        );
        assert_eq!(
            host.find_in(Controller::Memory, &fs, 0),
            Ok(Hierarchy::V1(
                "/sys/fs/cgroup/memory/job/42".into(),
                placed("/job/42", "/job/42")
            ))
        );
        assert_eq!(
            host.find_in(Controller::Pids, &fs, 0),
            Ok(Hierarchy::V1(
                "/sys/fs/cgroup/pids".into(),
                placed("/", "/")
            ))
        );
        // cpuacct's cgroup is not writable: refused, naming every place looked at.
        let err = host.find_in(Controller::CpuAccounting, &fs, 0).unwrap_err();
        assert!(err.contains("cgroup v2 /sys/fs/cgroup/unified"), "{err}");
        assert!(
            err.contains("cgroup v1 /sys/fs/cgroup/cpuacct: not writable by uid 0"),
            "{err}"
        );
    }

    #[test]
    fn v2_prefers_the_own_cgroup_then_the_writable_root() {
        let host = CgroupHost::parse(V2_MOUNTINFO, V2_CGROUP);
        let own = "/sys/fs/cgroup/user.slice/user-1000.slice/session-3.scope";
        // A delegated subtree with the controller enabled: the caller's own cgroup.
        let delegated = Recorded::new(BTreeMap::from([(own, "memory pids")]), vec![own]);
        assert_eq!(
            host.find_in(Controller::Memory, &delegated, 1000),
            Ok(Hierarchy::V2(
                own.into(),
                placed(
                    "/user.slice/user-1000.slice/session-3.scope",
                    "/user.slice/user-1000.slice/session-3.scope"
                )
            ))
        );
        // Root on a systemd host: the leaf has nothing enabled, the root has.
        let root = Recorded::new(
            BTreeMap::from([("/sys/fs/cgroup", "cpu memory pids")]),
            vec![own, "/sys/fs/cgroup"],
        );
        assert_eq!(
            host.find_in(Controller::Pids, &root, 0),
            Ok(Hierarchy::V2(
                "/sys/fs/cgroup".into(),
                // Made at the hierarchy's root, while cw-exec's own cgroup is the leaf.
                placed("/", "/user.slice/user-1000.slice/session-3.scope")
            ))
        );
        // An unprivileged user outside a delegated subtree: nothing usable, each place named.
        let user = Recorded::new(
            BTreeMap::from([("/sys/fs/cgroup", "cpu memory pids")]),
            vec![],
        );
        let err = host.find_in(Controller::Memory, &user, 1000).unwrap_err();
        assert!(err.contains("memory is not enabled"), "{err}");
        assert!(
            err.contains("/sys/fs/cgroup: not writable by uid 1000"),
            "{err}"
        );
        assert!(err.contains("no cgroup v1 memory hierarchy"), "{err}");
    }

    #[test]
    fn no_cgroup_file_system_means_no_hierarchy() {
        let host = CgroupHost::parse("", "");
        let fs = Recorded::new(BTreeMap::new(), vec![]);
        let err = host.find_in(Controller::Memory, &fs, 0).unwrap_err();
        assert!(err.contains("no cgroup v2 hierarchy is mounted"), "{err}");
    }

    /// Host kinds the mount-by-mount lookup must agree on with the mount table: (mountinfo,
    /// /proc/self/cgroup, cgroups with controllers enabled, writable cgroups, whether the
    /// lookup finds every hierarchy without reading the table).
    #[allow(clippy::type_complexity)]
    const HOSTS: &[(&str, &str, &str, &[(&str, &str)], &[&str], bool)] = &[
        (
            "hybrid (this machine)",
            V1_MOUNTINFO,
            V1_CGROUP,
            &[],
            &["/sys/fs/cgroup/memory/job/42", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/cpuacct"],
            true,
        ),
        (
            "v2, systemd, root",
            V2_MOUNTINFO,
            V2_CGROUP,
            &[("/sys/fs/cgroup", "cpu memory pids")],
            &["/sys/fs/cgroup"],
            true,
        ),
        (
            "v2, delegated subtree",
            V2_MOUNTINFO,
            V2_CGROUP,
            &[("/sys/fs/cgroup/user.slice/user-1000.slice/session-3.scope", "memory pids")],
            &["/sys/fs/cgroup/user.slice/user-1000.slice/session-3.scope"],
            true,
        ),
        (
            // The cgroup namespace hides the path: the container's cgroup is its root.
            "container, v2 with a cgroup namespace",
            "1210 1200 0:27 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup rw,nsdelegate\n",
            "0::/\n",
            &[("/sys/fs/cgroup", "memory pids")],
            &["/sys/fs/cgroup"],
            true,
        ),
        (
            // No cgroup namespace: the container's cgroup is mounted as the hierarchy's root.
            "container, v1 without a cgroup namespace",
            "\
600 590 0:50 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs rw,mode=755
610 600 0:32 /docker/abc /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup rw,memory
611 600 0:36 /docker/abc /sys/fs/cgroup/pids ro,nosuid - cgroup cgroup rw,pids
612 600 0:29 /docker/abc /sys/fs/cgroup/cpu,cpuacct ro,nosuid - cgroup cgroup rw,cpu,cpuacct
",
            "12:pids:/docker/abc\n4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n",
            &[],
            &["/sys/fs/cgroup/memory"],
            false,
        ),
        (
            "v1, cpu and cpuacct in one hierarchy, a named one",
            "\
31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
33 31 0:30 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
",
            "5:memory:/\n3:cpu,cpuacct:/x\n1:name=systemd:/\n",
            &[],
            &["/sys/fs/cgroup/memory", "/sys/fs/cgroup/cpu,cpuacct/x"],
            false,
        ),
        (
            // Older layouts: nothing at the conventional places, the table decides.
            "v1 beneath /cgroup, v2 at /run/cgroup2",
            "\
40 23 0:40 / /cgroup/memory rw - cgroup cgroup rw,memory
41 23 0:41 / /cgroup/pids rw - cgroup cgroup rw,pids
42 23 0:42 / /run/cgroup2 rw - cgroup2 cgroup2 rw
",
            "7:pids:/\n4:memory:/a\n0::/\n",
            &[("/run/cgroup2", "memory")],
            &["/cgroup/memory/a", "/cgroup/pids", "/run/cgroup2"],
            false,
        ),
        (
            // A directory named like a hierarchy inside the v2 mount is not a mount point.
            "v2 with a cgroup called memory",
            "30 23 0:27 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
            "0::/memory\n",
            &[],
            &["/sys/fs/cgroup/memory"],
            true,
        ),
        ("no cgroups", "", "", &[], &[], true),
    ];

    /// Asked mount by mount, the hierarchies are where the mount table says, with the same
    /// answer (or the same refusal, word for word) for every controller and caller; and the
    /// table is read only where the conventional places do not answer.
    #[test]
    fn mount_by_mount_agrees_with_the_mount_table() {
        for (name, mountinfo, cgroup, enabled, writable, fast) in HOSTS {
            for uid in [0, 1000] {
                for controller in [
                    Controller::Memory,
                    Controller::Pids,
                    Controller::CpuAccounting,
                ] {
                    let recorded = |statmount: bool| Recorded {
                        enabled: enabled.iter().copied().collect(),
                        writable: writable.to_vec(),
                        mounts: mountinfo,
                        statmount,
                        table_reads: std::cell::Cell::new(0),
                    };
                    let old = CgroupHost::parse(mountinfo, cgroup).find_in(
                        controller,
                        &recorded(false),
                        uid,
                    );
                    let fs = recorded(true);
                    let new = CgroupHost::with_own(cgroup).find_in(controller, &fs, uid);
                    assert_eq!(new, old, "{name}: {controller:?}, uid {uid}");
                    if *fast {
                        assert_eq!(fs.table_reads.get(), 0, "{name}: {controller:?}");
                    }
                    // Without statmount, the table is read (once), as before.
                    let without = recorded(false);
                    let host = CgroupHost::with_own(cgroup);
                    assert_eq!(host.find_in(controller, &without, uid), old, "{name}");
                    let _ = host.find_in(controller, &without, uid);
                    assert!(without.table_reads.get() <= 1, "{name}");
                }
            }
        }
    }

    /// This host, if it has cgroups: the kernel's own answers agree with its mount table.
    #[test]
    fn this_host_agrees_with_its_mount_table() {
        let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        for (controllers, _) in own_paths(&cgroup) {
            let point = if controllers.is_empty() {
                match V2_MOUNT_POINTS.iter().find(|p| {
                    matches!(HostFs::default().mount_at(Path::new(p)), MountAt::Cgroup(_))
                }) {
                    Some(p) => PathBuf::from(p),
                    None => continue,
                }
            } else {
                v1_mount_point(&controllers)
            };
            let table = cgroup_mounts(&mountinfo);
            let listed = table.iter().rev().find(|m| m.mount_point == point);
            match HostFs::default().mount_at(&point) {
                MountAt::Cgroup(m) => {
                    let listed = listed.expect("a mount the table does not list");
                    assert_eq!(m.v2, listed.v2, "{}", point.display());
                    // The table's super options start with rw/ro, statmount's do not.
                    let mut want = listed.controllers.clone();
                    want.retain(|o| o != "rw" && o != "ro");
                    let mut got = m.controllers.clone();
                    got.retain(|o| !o.is_empty());
                    assert_eq!(got, want, "{}", point.display());
                }
                MountAt::Other => assert!(listed.is_none(), "{}", point.display()),
                MountAt::Unknown => {}
            }
        }
    }

    /// Only the mount point itself is a hierarchy's place: not a symlink to it (which the
    /// kernel's answer would otherwise describe), not a directory inside it.
    #[test]
    fn a_symlink_or_a_directory_inside_is_not_a_mount_point() {
        let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let mut points: Vec<PathBuf> = V2_MOUNT_POINTS.iter().map(PathBuf::from).collect();
        points.extend(
            own_paths(&cgroup)
                .into_iter()
                .filter(|(c, _)| !c.is_empty())
                .map(|(c, _)| v1_mount_point(&c)),
        );
        let fs = HostFs::default();
        let Some(point) = points
            .into_iter()
            .find(|p| matches!(fs.mount_at(p), MountAt::Cgroup(_)))
        else {
            return; // no cgroup hierarchy at a conventional place here (or no statmount)
        };
        let dir = std::env::temp_dir().join(format!("cwx-cgroup-link-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let link = dir.join("hierarchy");
        std::os::unix::fs::symlink(&point, &link).unwrap();
        assert_eq!(fs.mount_at(&link), MountAt::Other, "{}", link.display());
        // A path through the link reaches the mount itself, but is not its mount point.
        assert_eq!(fs.mount_at(&link.join(".")), MountAt::Other);
        if let Some(inside) = std::fs::read_dir(&point)
            .unwrap()
            .flatten()
            .find(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        {
            assert_eq!(
                fs.mount_at(&inside.path()),
                MountAt::Other,
                "{}",
                inside.path().display()
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Logs every question discovery asks of the file system it wraps.
    struct Asked<'a> {
        fs: &'a Recorded,
        log: std::cell::RefCell<Vec<String>>,
    }

    impl CgroupFs for Asked<'_> {
        fn subtree_control(&self, cgroup: &Path) -> String {
            self.log
                .borrow_mut()
                .push(format!("subtree_control {}", cgroup.display()));
            self.fs.subtree_control(cgroup)
        }
        fn writable(&self, cgroup: &Path) -> bool {
            self.log
                .borrow_mut()
                .push(format!("writable {}", cgroup.display()));
            self.fs.writable(cgroup)
        }
        fn mount_at(&self, path: &Path) -> MountAt {
            self.log
                .borrow_mut()
                .push(format!("mount_at {}", path.display()));
            self.fs.mount_at(path)
        }
        fn mountinfo(&self) -> String {
            self.log.borrow_mut().push("mountinfo".into());
            self.fs.mountinfo()
        }
    }

    /// A controller /proc/self/cgroup lists in a v1 hierarchy is found there without asking
    /// the v2 hierarchy anything (it cannot have the controller enabled); CPU accounting,
    /// which v2 gives without a controller, still asks v2 first; and where v1 cannot serve,
    /// the refusal still names every place looked at, v2 included.
    #[test]
    fn a_v1_bound_controller_is_found_without_asking_v2() {
        let writable = vec!["/sys/fs/cgroup/memory/job/42", "/sys/fs/cgroup/pids"];
        let fs = Recorded {
            statmount: true,
            mounts: V1_MOUNTINFO,
            ..Recorded::new(BTreeMap::new(), writable)
        };
        for (controller, want, cgroup) in [
            (
                Controller::Memory,
                "/sys/fs/cgroup/memory/job/42",
                "/job/42",
            ),
            (Controller::Pids, "/sys/fs/cgroup/pids", "/"),
        ] {
            let asked = Asked {
                fs: &fs,
                log: Default::default(),
            };
            let host = CgroupHost::with_own(V1_CGROUP);
            assert_eq!(
                host.find_in(controller, &asked, 0),
                Ok(Hierarchy::V1(want.into(), placed(cgroup, cgroup)))
            );
            let log = asked.log.borrow();
            assert!(
                !log.iter()
                    .any(|q| q.starts_with("subtree_control") || q.contains("unified")),
                "{controller:?}: v2 was asked: {log:?}"
            );
            assert!(!log.iter().any(|q| q == "mountinfo"), "{log:?}");
        }
        // CPU accounting: v2's cpu.stat needs no controller, so v2 is asked first.
        let cpu_fs = Recorded {
            statmount: true,
            mounts: V1_MOUNTINFO,
            ..Recorded::new(BTreeMap::new(), vec!["/sys/fs/cgroup/unified"])
        };
        let asked = Asked {
            fs: &cpu_fs,
            log: Default::default(),
        };
        assert_eq!(
            CgroupHost::with_own(V1_CGROUP).find_in(Controller::CpuAccounting, &asked, 0),
            Ok(Hierarchy::V2(
                "/sys/fs/cgroup/unified".into(),
                placed("/", "/")
            ))
        );
        // Nothing writable: the refusal is the whole search's, v2 named first.
        let none = Recorded {
            statmount: true,
            mounts: V1_MOUNTINFO,
            ..Recorded::new(BTreeMap::new(), vec![])
        };
        let err = CgroupHost::with_own(V1_CGROUP)
            .find_in(Controller::Memory, &none, 1000)
            .unwrap_err();
        assert_eq!(
            err,
            "cgroup v2 /sys/fs/cgroup/unified: memory is not enabled in its cgroup.subtree_control; \
             cgroup v1 /sys/fs/cgroup/memory/job/42: not writable by uid 1000"
        );
    }

    /// `sysinfo`'s total swap says what /proc/swaps lists: swap in use or not.
    #[test]
    fn host_swap_agrees_with_proc_swaps() {
        let swaps = std::fs::read_to_string("/proc/swaps").unwrap();
        let listed = swaps.lines().skip(1).any(|l| !l.trim().is_empty());
        assert_eq!(host_has_swap(), listed, "{swaps}");
    }

    /// `writable` is true only for a directory this process may write and search: a file
    /// with every permission bit is not one.
    #[test]
    fn writable_means_a_writable_directory() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("cwx-cgroup-w-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("file");
        std::fs::write(&file, "").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o777)).unwrap();
        let fs = HostFs::default();
        assert!(fs.writable(&dir));
        assert!(!fs.writable(&file));
        assert!(!fs.writable(&dir.join("absent")));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn entries_named(dir: &Path, name: &str) -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.file_name().is_some_and(|n| n == name))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A directory that is not a cgroup has no limit files: writing a limit there fails
    /// (the file is opened without O_CREAT, so no regular file stands in for it), the run is
    /// refused, and the directory made for it is removed.
    #[test]
    fn a_limit_with_no_limit_file_is_refused_and_nothing_is_left() {
        let dir = std::env::temp_dir().join(format!("cwx-cgroup-nf-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (limits, file) in [
            (
                CgroupLimits {
                    memory: Some((
                        64 << 20,
                        Hierarchy::V1(dir.clone(), CgroupPlacement::default()),
                    )),
                    pids: None,
                    cpu: None,
                },
                "memory.limit_in_bytes",
            ),
            (
                CgroupLimits {
                    memory: None,
                    pids: Some((16, Hierarchy::V2(dir.clone(), CgroupPlacement::default()))),
                    cpu: None,
                },
                "pids.max",
            ),
        ] {
            let name = format!("cw-exec-{}-nf", std::process::id());
            let Err(e) = RunCgroups::create_named(&limits, name.clone(), false) else {
                panic!("{file}: a limit written nowhere was accepted");
            };
            assert!(e.contains(file) && e.contains("ENOENT"), "{e}");
            assert_eq!(entries_named(&dir, &name), Vec::<PathBuf>::new(), "{e}");
            assert!(!dir.join(&name).join(file).exists());
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// This host's v1 memory and pids hierarchies, where this process may make cgroups.
    fn this_hosts_v1() -> Option<(Hierarchy, Hierarchy)> {
        let host = CgroupHost::read();
        match (host.find(Controller::Memory), host.find(Controller::Pids)) {
            (Ok(m @ Hierarchy::V1(..)), Ok(p @ Hierarchy::V1(..))) => Some((m, p)),
            _ => None,
        }
    }

    /// On this host (root, cgroup v1): the limits written through the held parents are the
    /// kernel's for the run's cgroups (read back by full path); a thread moved in through
    /// `self_join` is in them, and moved out through `self_leave`; the files read at the end
    /// answer; and dropping the run removes both cgroups.
    #[test]
    fn run_cgroups_bind_and_are_removed() {
        let Some((memory, pids)) = this_hosts_v1() else {
            eprintln!("skipped: no v1 memory and pids cgroups this process may make");
            return;
        };
        let name = format!("cw-exec-{}-bind", std::process::id());
        let limits = CgroupLimits {
            memory: Some((64 << 20, memory.clone())),
            pids: Some((77, pids.clone())),
            cpu: None,
        };
        let run = RunCgroups::create_named(&limits, name.clone(), false).unwrap();
        let mem_dir = memory.parent().join(&name);
        let pids_dir = pids.parent().join(&name);
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap().trim().to_string();
        assert_eq!(
            read(mem_dir.join("memory.limit_in_bytes")),
            (64u64 << 20).to_string()
        );
        if mem_dir.join("memory.memsw.limit_in_bytes").exists() {
            assert_eq!(
                read(mem_dir.join("memory.memsw.limit_in_bytes")),
                (64u64 << 20).to_string()
            );
        }
        assert_eq!(read(pids_dir.join("pids.max")), "77");
        // What the run observed (read back through its own descriptors) is what the kernel
        // holds, file by file.
        for (limit, file, value) in run.observed() {
            let dir = if limit == "pids" { &pids_dir } else { &mem_dir };
            assert_eq!(read(dir.join(file)), value, "{file}");
        }
        assert_eq!(
            run.observed()
                .iter()
                .filter(|(_, f, _)| *f == "pids.max")
                .count(),
            1
        );
        // This thread joins (writing "0" to `tasks` moves the writing thread alone) and leaves.
        let own = || std::fs::read_to_string("/proc/thread-self/cgroup").unwrap();
        let suffix = format!("/{name}");
        run.self_join().unwrap().join().unwrap();
        let inside = own();
        for controller in ["memory", "pids"] {
            let line = inside
                .lines()
                .find(|l| l.split(':').nth(1) == Some(controller))
                .unwrap();
            assert!(line.ends_with(&suffix), "{controller}: {inside}");
        }
        run.self_leave().unwrap().join().unwrap();
        assert!(!own().contains(&suffix), "{}", own());
        assert!(!run.oom_killed());
        assert_eq!(run.pids_refused(), 0);
        drop(run);
        assert!(!mem_dir.exists() && !pids_dir.exists());
    }

    /// On this host (root, cgroup v1): a limit the kernel refuses (pids.max past its range)
    /// fails the whole run's cgroups, and the memory cgroup already made for it is removed.
    #[test]
    fn a_limit_the_kernel_refuses_fails_and_nothing_is_left() {
        let Some((memory, pids)) = this_hosts_v1() else {
            eprintln!("skipped: no v1 memory and pids cgroups this process may make");
            return;
        };
        let name = format!("cw-exec-{}-refused", std::process::id());
        let limits = CgroupLimits {
            memory: Some((64 << 20, memory.clone())),
            pids: Some((u64::MAX, pids.clone())),
            cpu: None,
        };
        let Err(e) = RunCgroups::create_named(&limits, name.clone(), false) else {
            panic!("pids.max = u64::MAX was accepted");
        };
        assert!(e.contains("pids.max"), "{e}");
        assert!(!memory.parent().join(&name).exists(), "{e}");
        assert!(!pids.parent().join(&name).exists(), "{e}");
    }

    /// A process cloned from the maker (init) lets go of the run's cgroups without removing
    /// them.
    #[test]
    fn disowned_cgroups_stay_for_their_maker() {
        let Some((memory, _)) = this_hosts_v1() else {
            eprintln!("skipped: no v1 memory cgroup this process may make");
            return;
        };
        let name = format!("cw-exec-{}-disown", std::process::id());
        let limits = CgroupLimits {
            memory: Some((64 << 20, memory.clone())),
            pids: None,
            cpu: None,
        };
        let run = RunCgroups::create_named(&limits, name.clone(), false).unwrap();
        let dir = memory.parent().join(&name);
        run.disown();
        assert!(dir.exists());
        std::fs::remove_dir(&dir).unwrap();
    }

    /// The kernel, as far as the run's limit files go: every write is recorded, and the
    /// value read back is what `holds` says the kernel holds for it (the run's cgroup
    /// directories are real ones, made in a temporary directory).
    struct KernelSays {
        holds: fn(&str, &str) -> String,
        written: std::cell::RefCell<Vec<(String, String)>>,
    }

    impl CgroupFs for KernelSays {
        fn subtree_control(&self, _: &Path) -> String {
            unreachable!("discovery is not asked when limits are written")
        }
        fn writable(&self, _: &Path) -> bool {
            unreachable!("discovery is not asked when limits are written")
        }
        fn mount_at(&self, _: &Path) -> MountAt {
            unreachable!("discovery is not asked when limits are written")
        }
        fn mountinfo(&self) -> String {
            unreachable!("discovery is not asked when limits are written")
        }
        fn write_limit(
            &self,
            _: Option<std::os::fd::BorrowedFd<'_>>,
            path: &Path,
            text: &str,
        ) -> Result<Option<String>, String> {
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            self.written.borrow_mut().push((file.clone(), text.into()));
            Ok(Some((self.holds)(&file, text)))
        }
    }

    /// The kernel's answer for a limit it accepts as asked: memory rounded down to a page.
    fn as_the_kernel_rounds(file: &str, text: &str) -> String {
        let v: u64 = text.parse().unwrap();
        held_as_asked(file, v, page_size()).to_string()
    }

    /// A fresh temporary directory standing for the cgroups' parent.
    fn parent_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("cwx-cgroup-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A memory limit of `memory` bytes and a pids limit of 77, both in `dir` of a v1 or v2
    /// hierarchy.
    fn memory_and_pids_in(dir: &Path, v2: bool, memory: u64) -> CgroupLimits {
        let h = if v2 {
            Hierarchy::V2(dir.to_path_buf(), CgroupPlacement::default())
        } else {
            Hierarchy::V1(dir.to_path_buf(), CgroupPlacement::default())
        };
        CgroupLimits {
            memory: Some((memory, h.clone())),
            pids: Some((77, h)),
            cpu: None,
        }
    }

    /// A limit the kernel accepted as a write but holds otherwise — clamped to its maximum,
    /// left at "max", rounded by more than a page — does not bind as asked: the run is
    /// refused, naming the limit, the file, the value written and the value read back, and
    /// every cgroup made for the run is removed (the memory one made before the pids one
    /// failed included). Cgroup v1 and v2 files alike.
    #[test]
    fn a_limit_the_kernel_holds_otherwise_is_refused_and_nothing_is_left() {
        let memory = (64u64 << 20) + 123;
        let rounded = (memory - memory % page_size()).to_string();
        // (v2?, file the kernel holds otherwise, what it holds there, limit named)
        type Holds = fn(&str, &str) -> String;
        let cases: [(bool, &str, Holds, &str, &str); 7] = [
            (
                false,
                "memory.limit_in_bytes",
                |f, t| match f {
                    "memory.limit_in_bytes" => "9223372036854771712".into(),
                    _ => as_the_kernel_rounds(f, t),
                },
                "memory",
                "\"9223372036854771712\"",
            ),
            (
                false,
                "memory.memsw.limit_in_bytes",
                |f, t| match f {
                    "memory.memsw.limit_in_bytes" => "max".into(),
                    _ => as_the_kernel_rounds(f, t),
                },
                "memory",
                "\"max\"",
            ),
            (
                false,
                "memory.limit_in_bytes",
                |f, t| match f {
                    // Rounded by two pages: not the kernel's page rounding.
                    "memory.limit_in_bytes" => {
                        let v: u64 = t.parse().unwrap();
                        (v - v % (2 * page_size()) - 2 * page_size()).to_string()
                    }
                    _ => as_the_kernel_rounds(f, t),
                },
                "memory",
                "",
            ),
            (
                false,
                "pids.max",
                |f, t| match f {
                    "pids.max" => "max".into(),
                    _ => as_the_kernel_rounds(f, t),
                },
                "pids",
                "\"max\"",
            ),
            (
                true,
                "memory.max",
                |f, t| match f {
                    "memory.max" => "max".into(),
                    _ => as_the_kernel_rounds(f, t),
                },
                "memory",
                "\"max\"",
            ),
            (
                true,
                "memory.swap.max",
                |f, t| match f {
                    "memory.swap.max" => "max".into(),
                    _ => as_the_kernel_rounds(f, t),
                },
                "memory",
                "\"max\"",
            ),
            (
                true,
                "pids.max",
                |f, t| match f {
                    "pids.max" => "76".into(),
                    _ => as_the_kernel_rounds(f, t),
                },
                "pids",
                "\"76\"",
            ),
        ];
        for (i, (v2, file, holds, limit, read)) in cases.into_iter().enumerate() {
            let dir = parent_dir(&format!("held{i}"));
            let limits = memory_and_pids_in(&dir, v2, memory);
            let fs = KernelSays {
                holds,
                written: Default::default(),
            };
            let name = format!("cw-exec-{}-held{i}", std::process::id());
            let Err(e) = RunCgroups::create_in(&limits, name.clone(), false, &fs) else {
                panic!("{file}: a limit the kernel holds otherwise was accepted");
            };
            let written = fs
                .written
                .borrow()
                .iter()
                .find(|(f, _)| f == file)
                .map(|(_, t)| t.clone())
                .unwrap();
            assert!(
                e.starts_with(&format!("the {limit} limit does not bind as asked: "))
                    && e.contains(&format!("/{name}/{file} was written {written},"))
                    && e.contains(&format!("the kernel holds {read}")),
                "{file}: {e}"
            );
            if file == "memory.limit_in_bytes" {
                assert!(e.contains(&format!("not {rounded} (")), "{e}");
            }
            assert_eq!(entries_named(&dir, &name), Vec::<PathBuf>::new(), "{e}");
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }

    /// The kernel counts memory in pages: a memory limit it holds rounded down to a page is
    /// held as asked, and the run goes on; what the attestation is given (`observed`) is
    /// what was read back, file by file, not what was written. Cgroup v1 and v2.
    #[test]
    fn the_kernels_page_rounding_is_accepted_and_what_it_holds_is_observed() {
        let memory = (64u64 << 20) + 123;
        let rounded = (memory - memory % page_size()).to_string();
        for v2 in [false, true] {
            let dir = parent_dir(&format!("round{v2}"));
            let limits = memory_and_pids_in(&dir, v2, memory);
            let fs = KernelSays {
                holds: as_the_kernel_rounds,
                written: Default::default(),
            };
            let name = format!("cw-exec-{}-round{v2}", std::process::id());
            let run = RunCgroups::create_in(&limits, name.clone(), false, &fs).unwrap();
            let want: Vec<(&str, &str, String)> = if v2 {
                vec![
                    ("memory", "memory.max", rounded.clone()),
                    ("memory", "memory.swap.max", "0".into()),
                    ("pids", "pids.max", "77".into()),
                ]
            } else {
                vec![
                    ("memory", "memory.limit_in_bytes", rounded.clone()),
                    ("memory", "memory.memsw.limit_in_bytes", rounded.clone()),
                    ("pids", "pids.max", "77".into()),
                ]
            };
            assert_eq!(run.observed(), want, "v2: {v2}");
            // What was asked is what was written: the rounding is the kernel's.
            assert!(fs
                .written
                .borrow()
                .iter()
                .any(|(f, t)| f.starts_with("memory.") && *t == memory.to_string()));
            drop(run);
            assert_eq!(entries_named(&dir, &name), Vec::<PathBuf>::new());
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }

    /// A run's cgroups as `membership` sees them: `dirs` only, nothing made (the paths do
    /// not exist, so removing them on drop finds nothing).
    fn run_of(name: &str, dirs: Vec<(Controller, Hierarchy)>) -> RunCgroups {
        RunCgroups {
            name: name.into(),
            dirs: dirs
                .into_iter()
                .map(|(c, h)| {
                    let dir = h.parent().join(name);
                    (c, h, dir)
                })
                .collect(),
            parents: vec![],
            at_end: vec![],
            observed: vec![],
        }
    }

    /// The path each run cgroup must show is derived from where it was made (`CgroupPlacement`,
    /// recorded at discovery) and how init was cloned, never from the directories' paths:
    /// v1 made beneath cw-exec's own cgroup shows "/<name>" in the sandbox's cgroup
    /// namespace (rooted at cw-exec's cgroup) and its full path without one (Landlock tier);
    /// a v2 cgroup init was born in (clone3) is that namespace's v2 root, "/"; one init was
    /// moved into after the clone is seen from cw-exec's cgroup — "/<name>" beneath it, up
    /// through "/.." where it was made at the hierarchy's root. A mount point whose path
    /// ends like cw-exec's cgroup (the heuristic's trap) changes nothing.
    #[test]
    fn the_expected_membership_is_derived_from_where_the_cgroups_were_made() {
        let name = "cw-exec-42-abc";
        let enc = |m: Membership| String::from_utf8(m.encode()).unwrap();
        let v1 = run_of(
            name,
            vec![
                (
                    Controller::Memory,
                    Hierarchy::V1(
                        "/nonexistent/memory/user/a".into(),
                        placed("/user/a", "/user/a"),
                    ),
                ),
                (
                    Controller::Pids,
                    Hierarchy::V1("/nonexistent/pids".into(), placed("/", "/")),
                ),
                (
                    Controller::CpuAccounting,
                    Hierarchy::V1("/nonexistent/cpuacct/b".into(), placed("/b", "/b")),
                ),
            ],
        );
        for born_in in [false, true] {
            assert_eq!(
                enc(v1.membership(true, born_in).unwrap()),
                "memory:/cw-exec-42-abc\npids:/cw-exec-42-abc\ncpuacct:/cw-exec-42-abc\n"
            );
        }
        assert_eq!(
            enc(v1.membership(false, false).unwrap()),
            "memory:/user/a/cw-exec-42-abc\npids:/cw-exec-42-abc\ncpuacct:/b/cw-exec-42-abc\n"
        );
        // One v2 cgroup serving memory and pids, beneath cw-exec's own: one line.
        let own = placed("/user/a", "/user/a");
        let v2 = run_of(
            name,
            vec![
                (
                    Controller::Memory,
                    Hierarchy::V2("/nonexistent/user/a".into(), own.clone()),
                ),
                (
                    Controller::Pids,
                    Hierarchy::V2("/nonexistent/user/a".into(), own.clone()),
                ),
            ],
        );
        assert_eq!(enc(v2.membership(true, true).unwrap()), ":/\n");
        assert_eq!(
            enc(v2.membership(true, false).unwrap()),
            ":/cw-exec-42-abc\n"
        );
        assert_eq!(
            enc(v2.membership(false, true).unwrap()),
            ":/user/a/cw-exec-42-abc\n"
        );
        // Made at the hierarchy's root while cw-exec is two levels down, with a mount point
        // that ends in cw-exec's cgroup's last component: derived from the placement only.
        let at_root = run_of(
            name,
            vec![(
                Controller::Pids,
                Hierarchy::V2("/nonexistent/a".into(), placed("/", "/user/a")),
            )],
        );
        assert_eq!(enc(at_root.membership(true, true).unwrap()), ":/\n");
        assert_eq!(
            enc(at_root.membership(true, false).unwrap()),
            ":/../../cw-exec-42-abc\n"
        );
        assert_eq!(
            enc(at_root.membership(false, false).unwrap()),
            ":/cw-exec-42-abc\n"
        );
        // v2 born in, v1 beside it (this host's --cpu with --pids): each its own root.
        let mixed = run_of(
            name,
            vec![
                (
                    Controller::Pids,
                    Hierarchy::V1("/nonexistent/pids".into(), placed("/", "/")),
                ),
                (
                    Controller::CpuAccounting,
                    Hierarchy::V2("/nonexistent/unified".into(), placed("/", "/")),
                ),
            ],
        );
        assert_eq!(
            enc(mixed.membership(true, true).unwrap()),
            "pids:/cw-exec-42-abc\n:/\n"
        );
        // A path that cannot be stated on one line: refused, not left unchecked.
        let newline = run_of(
            name,
            vec![(
                Controller::Pids,
                Hierarchy::V1("/nonexistent/x".into(), placed("/x\ny", "/x\ny")),
            )],
        );
        assert!(newline.membership(false, false).is_err());
        assert_eq!(seen_from("/", "/"), "/");
        assert_eq!(seen_from("/a/b", "/a/c/d"), "/../c/d");
        assert_eq!(seen_from("/a/b", "/a/b/c"), "/c");
        assert_eq!(seen_from("/a/b", "/a"), "/..");
    }

    /// Membership is proven only by exactly the expected path in exactly one line of each
    /// hierarchy: a wrong name, a missing line, the parent (cw-exec's own cgroup: never
    /// joined), above the namespace's root, a child of the run's cgroup, a name that only
    /// starts alike, the controller in another hierarchy, a hierarchy listed twice — each is
    /// refused, naming the hierarchy, what was read and what was expected. What is accepted
    /// is recorded per limit as `observed.cgroup`.
    #[test]
    fn membership_is_proven_only_by_the_run_cgroups_exact_paths() {
        let expected =
            Membership::decode(b"memory:/cw-exec-42-abc\npids:/cw-exec-42-abc\n").unwrap();
        let lines = |t: &str| t.lines().map(str::to_string).collect::<Vec<_>>();
        let good = lines("12:pids:/cw-exec-42-abc\n5:memory:/cw-exec-42-abc\n0::/\n");
        assert_eq!(
            expected.check(&good).unwrap(),
            vec![
                ("memory".to_string(), "/cw-exec-42-abc".to_string()),
                ("pids".to_string(), "/cw-exec-42-abc".to_string()),
            ]
        );
        // A co-mounted hierarchy lists several controllers on one line.
        assert!(expected
            .check(&lines("3:memory,pids:/cw-exec-42-abc\n"))
            .is_ok());
        for (bad, hierarchy) in [
            (
                "12:pids:/cw-exec-42-abd\n5:memory:/cw-exec-42-abc\n",
                "pids",
            ),
            ("5:memory:/cw-exec-42-abc\n", "pids"),
            ("12:pids:/cw-exec-42-abc\n5:memory:/\n", "memory"),
            ("12:pids:/cw-exec-42-abc\n5:memory:/..\n", "memory"),
            (
                "12:pids:/cw-exec-42-abc/x\n5:memory:/cw-exec-42-abc\n",
                "pids",
            ),
            (
                "12:pids:/cw-exec-42-abc\n5:memory:/cw-exec-42-abcd\n",
                "memory",
            ),
            ("12:cpu:/cw-exec-42-abc\n5:memory:/cw-exec-42-abc\n", "pids"),
            (
                "12:pids:/cw-exec-42-abc\n5:memory:/cw-exec-42-abc\n6:memory:/cw-exec-42-abc\n",
                "memory",
            ),
            ("", "memory"),
        ] {
            let Err(why) = expected.check(&lines(bad)) else {
                panic!("accepted: {bad:?}");
            };
            assert!(
                why.contains(&format!("cgroup v1 {hierarchy}")),
                "{bad:?}: {why}"
            );
            assert!(why.contains("\"/cw-exec-42-abc\""), "{why}");
        }
        // The v2 line: no controllers listed; "/" where init was born in the cgroup.
        let v2 = Membership::decode(b":/\n").unwrap();
        assert!(v2.check(&lines("5:memory:/x\n0::/\n")).is_ok());
        assert!(v2.check(&lines("0::/cw-exec-42-abc\n")).is_err());
        assert!(v2.check(&lines("0::/..\n")).is_err());
        assert!(v2.check(&lines("5:memory:/\n")).is_err());

        // cw-exec's record: one entry per limit, the path read, file "cgroup".
        let run = run_of(
            "cw-exec-42-abc",
            vec![
                (
                    Controller::Memory,
                    Hierarchy::V1("/nonexistent/memory".into(), placed("/", "/")),
                ),
                (
                    Controller::Pids,
                    Hierarchy::V1("/nonexistent/pids".into(), placed("/", "/")),
                ),
            ],
        );
        let m = run.membership(true, false).unwrap();
        assert_eq!(m, expected);
        assert_eq!(
            run.observed_membership(&m, &good).unwrap(),
            vec![
                ("memory", "cgroup", "/cw-exec-42-abc".to_string()),
                ("pids", "cgroup", "/cw-exec-42-abc".to_string()),
            ]
        );
        assert!(run
            .observed_membership(&m, &lines("12:pids:/cw-exec-42-abc\n5:memory:/\n"))
            .is_err());
        // An expectation that leaves out one of the run's cgroups proves nothing of it.
        let partial = Membership::decode(b"memory:/cw-exec-42-abc\n").unwrap();
        assert!(run.observed_membership(&partial, &good).is_err());
    }

    /// The expectation crosses to init as text: what `encode` writes `decode` reads back
    /// as it was; anything else is refused.
    #[test]
    fn membership_is_decoded_strictly() {
        let m = Membership(vec![
            ("memory".into(), "/a:b/cw-exec-1-x".into()),
            ("".into(), "/".into()),
        ]);
        assert_eq!(Membership::decode(&m.encode()).unwrap(), m);
        for bad in [
            &b""[..],
            b"\n",
            b"memory:/a",
            b"memory:/a\n\n",
            b"memory /a\n",
            b"cpu:/a\n",
            b"name=systemd:/a\n",
            b"memory:a\n",
            b"memory:\n",
            b"memory:/a\nmemory:/b\n",
            b":/a\n:/b\n",
            b"memory:/\xff\n",
        ] {
            assert!(Membership::decode(bad).is_err(), "{bad:?}");
        }
        let long = format!("memory:/{}\n", "a".repeat(MAX_MEMBERSHIP));
        assert!(Membership::decode(long.as_bytes()).is_err());
    }
}
