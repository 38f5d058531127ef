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
    /// cgroup v2: the parent directory new cgroups are made in.
    V2(PathBuf),
    /// cgroup v1: the parent directory in this controller's hierarchy.
    V1(PathBuf),
}

impl Hierarchy {
    pub fn describe(&self) -> &'static str {
        match self {
            Hierarchy::V2(_) => "cgroup-v2",
            Hierarchy::V1(_) => "cgroup-v1",
        }
    }
    pub fn parent(&self) -> &Path {
        match self {
            Hierarchy::V2(p) | Hierarchy::V1(p) => p,
        }
    }

    /// Whether a memory cgroup made here bounds swap as well: v1 has `memory.memsw.*` only
    /// when the kernel accounts swap; v2 accounts it unless booted with `swapaccount=0` or
    /// `cgroup.memory=noswap`.
    pub fn bounds_swap(&self) -> bool {
        match self {
            Hierarchy::V1(p) => p.join("memory.memsw.limit_in_bytes").exists(),
            Hierarchy::V2(_) => {
                let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
                !cmdline
                    .split_whitespace()
                    .any(|w| w == "swapaccount=0" || w == "cgroup.memory=noswap")
            }
        }
    }
}

/// Whether the host has swap in use (`/proc/swaps` lists a device or file).
pub fn host_has_swap() -> bool {
    std::fs::read_to_string("/proc/swaps")
        .map(|t| t.lines().skip(1).any(|l| !l.trim().is_empty()))
        .unwrap_or(false)
}

/// One line of /proc/self/mountinfo that mounts a cgroup hierarchy.
struct CgroupMount {
    mount_point: PathBuf,
    v2: bool,
    controllers: Vec<String>,
}

fn cgroup_mounts() -> Vec<CgroupMount> {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return vec![];
    };
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

/// cw-exec's own cgroup path in each hierarchy: ("" for v2, or the v1 controller list).
fn own_paths() -> Vec<(String, String)> {
    let Ok(text) = std::fs::read_to_string("/proc/self/cgroup") else {
        return vec![];
    };
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

fn writable_dir(path: &Path) -> bool {
    path.is_dir()
        && nix::unistd::access(
            path,
            nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK,
        )
        .is_ok()
}

/// This process's view of the cgroup hierarchies, read once per run (two /proc files) and
/// asked about each controller.
pub struct CgroupHost {
    mounts: Vec<CgroupMount>,
    own: Vec<(String, String)>,
}

impl CgroupHost {
    pub fn read() -> CgroupHost {
        CgroupHost {
            mounts: cgroup_mounts(),
            own: own_paths(),
        }
    }

    /// Finds where `controller` can be used by this process, preferring cgroup v2.
    pub fn locate(&self, controller: Controller) -> Option<Hierarchy> {
        self.find(controller).ok()
    }

    /// Where `controller` can be used by this process, preferring cgroup v2; or why it
    /// cannot be, naming every place looked at.
    pub fn find(&self, controller: Controller) -> Result<Hierarchy, String> {
        let (mounts, own) = (&self.mounts, &self.own);
        let join = |mount: &Path, rel: &str| match rel.trim_start_matches('/') {
            "" => mount.to_path_buf(),
            rel => mount.join(rel),
        };
        let uid = nix::unistd::geteuid();
        let mut why: Vec<String> = vec![];
        match (
            mounts.iter().find(|m| m.v2),
            own.iter().find(|(c, _)| c.is_empty()),
        ) {
            (Some(m), Some((_, rel))) => {
                // cw-exec's own cgroup (a delegated subtree, or the root), then the hierarchy's
                // root: the root cgroup may hold processes and enabled controllers at once, so a
                // caller who may write there (root, usually) gets whole-sandbox limits on a
                // systemd host, where its own cgroup is a leaf with no controllers enabled below it.
                let mut candidates = vec![join(&m.mount_point, rel)];
                if candidates[0] != m.mount_point {
                    candidates.push(m.mount_point.clone());
                }
                for parent in candidates {
                    let enabled = std::fs::read_to_string(parent.join("cgroup.subtree_control"))
                        .unwrap_or_default();
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
                    } else if !writable_dir(&parent) {
                        why.push(format!(
                            "cgroup v2 {}: not writable by uid {uid}",
                            parent.display()
                        ));
                    } else {
                        return Ok(Hierarchy::V2(parent));
                    }
                }
            }
            (None, _) => why.push("no cgroup v2 hierarchy is mounted".into()),
            (Some(_), None) => why.push("/proc/self/cgroup names no cgroup v2 cgroup".into()),
        }
        let name = controller.v1_name();
        let Some(m) = mounts
            .iter()
            .find(|m| !m.v2 && m.controllers.iter().any(|c| c == name))
        else {
            why.push(format!("no cgroup v1 {name} hierarchy is mounted"));
            return Err(why.join("; "));
        };
        let Some((_, rel)) = own.iter().find(|(c, _)| c.split(',').any(|c| c == name)) else {
            why.push(format!(
                "/proc/self/cgroup names no cgroup v1 {name} cgroup"
            ));
            return Err(why.join("; "));
        };
        let parent = join(&m.mount_point, rel);
        if writable_dir(&parent) {
            return Ok(Hierarchy::V1(parent));
        }
        why.push(format!(
            "cgroup v1 {}: not writable by uid {uid}",
            parent.display()
        ));
        Err(why.join("; "))
    }
}

/// The cgroups made for one run.
pub struct RunCgroups {
    dirs: Vec<(Controller, Hierarchy, PathBuf)>,
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
        let mut run = RunCgroups { dirs: vec![] };
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
            if let Err(e) = run.add_controller(&name, controller, hierarchy, value) {
                run.remove();
                return Err(e);
            }
        }
        Ok(run)
    }

    fn add_controller(
        &mut self,
        name: &str,
        controller: Controller,
        h: &Hierarchy,
        value: Option<u64>,
    ) -> Result<(), String> {
        // A v2 cgroup serves every controller: make it once.
        let existing = self
            .dirs
            .iter()
            .find(|(_, eh, _)| eh == h)
            .map(|(_, _, d)| d.clone());
        let dir = match existing {
            Some(d) => d,
            None => {
                sweep_stale(h.parent());
                let d = h.parent().join(name);
                std::fs::create_dir(&d)
                    .map_err(|e| format!("creating cgroup {}: {e}", d.display()))?;
                d
            }
        };
        self.dirs.push((controller, h.clone(), dir.clone()));
        let write = |file: &str, text: String| {
            std::fs::write(dir.join(file), &text)
                .map_err(|e| format!("cgroup {}/{file} = {text}: {e}", dir.display()))
        };
        match (controller, h, value) {
            (Controller::Memory, Hierarchy::V2(_), Some(v)) => {
                write("memory.max", v.to_string())?;
                if dir.join("memory.swap.max").exists() {
                    write("memory.swap.max", "0".into())?;
                }
            }
            (Controller::Memory, Hierarchy::V1(_), Some(v)) => {
                write("memory.limit_in_bytes", v.to_string())?;
                if dir.join("memory.memsw.limit_in_bytes").exists() {
                    write("memory.memsw.limit_in_bytes", v.to_string())?;
                }
            }
            (Controller::Pids, _, Some(v)) => write("pids.max", v.to_string())?,
            _ => {}
        }
        Ok(())
    }

    /// Moves a process (init, before it forks anything) into every cgroup of the run.
    pub fn enter(&self, pid: i32) -> Result<(), String> {
        let mut done: Vec<&Path> = vec![];
        for (_, _, dir) in &self.dirs {
            if done.contains(&dir.as_path()) {
                continue;
            }
            std::fs::write(dir.join("cgroup.procs"), pid.to_string())
                .map_err(|e| format!("joining cgroup {}: {e}", dir.display()))?;
            done.push(dir);
        }
        Ok(())
    }

    /// CPU time used by every process of the run so far, if a cgroup accounts it.
    pub fn cpu_used(&self) -> Option<Duration> {
        let (_, h, dir) = self
            .dirs
            .iter()
            .find(|(c, _, _)| *c == Controller::CpuAccounting)?;
        match h {
            Hierarchy::V1(_) => {
                let ns: u64 = std::fs::read_to_string(dir.join("cpuacct.usage"))
                    .ok()?
                    .trim()
                    .parse()
                    .ok()?;
                Some(Duration::from_nanos(ns))
            }
            Hierarchy::V2(_) => {
                let stat = std::fs::read_to_string(dir.join("cpu.stat")).ok()?;
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
        let Some((_, h, dir)) = self.dirs.iter().find(|(c, _, _)| *c == Controller::Memory) else {
            return false;
        };
        let (file, key) = match h {
            Hierarchy::V1(_) => ("memory.oom_control", "oom_kill "),
            Hierarchy::V2(_) => ("memory.events", "oom_kill "),
        };
        std::fs::read_to_string(dir.join(file))
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix(key))
                    .and_then(|v| v.trim().parse::<u64>().ok())
            })
            .map(|n| n > 0)
            .unwrap_or(false)
    }

    /// Removes the run's cgroups. They can only go once empty; the processes of a finished
    /// run may take a moment to be reaped, so retry briefly.
    pub fn remove(&mut self) {
        let mut dirs: Vec<PathBuf> = self.dirs.drain(..).map(|(_, _, d)| d).collect();
        dirs.dedup();
        for dir in dirs {
            for attempt in 0..200 {
                match std::fs::remove_dir(&dir) {
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
    }
}

impl Drop for RunCgroups {
    fn drop(&mut self) {
        self.remove();
    }
}

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
