//! Resource limits: which mechanism enforces each requested limit on this host, decided
//! when planning, so that a limit that cannot bind as asked is a refusal before anything runs.
//!
//! Two kinds of limit:
//! - **explicit**: a flag (`--memory`), or a profile key listed in `[limits] required`. It
//!   binds as asked — the whole sandbox, root included — or the run is refused (exit 125)
//!   with the limit, the missing mechanism and why it is missing.
//! - **default**: any other profile key (the bundled profiles' limits). Defence in depth:
//!   applied with the best mechanism this host offers, attested exactly (what it covers and
//!   what it does not), never a reason to refuse.
//!
//! | limit  | whole sandbox (explicit needs this)              | otherwise (defaults only)                  |
//! |--------|--------------------------------------------------|--------------------------------------------|
//! | memory | cgroup memory                                    | RLIMIT_DATA (per process; tmpfs, shm, memfd not covered) |
//! | pids   | cgroup pids; RLIMIT_NPROC for a non-root caller (counted per user namespace: this sandbox) | none for root (RLIMIT_NPROC never binds root) |
//! | cpu    | cgroup CPU accounting polled by cw-exec + RLIMIT_CPU | RLIMIT_CPU (per process)               |
//! | nofile | RLIMIT_NOFILE: per process, which is what the limit means |                                   |
//! | fsize  | RLIMIT_FSIZE: per process, which is what the limit means  |                                   |
//! | output | cw-exec's relay (stdout+stderr; stdin a pipe it feeds)    |                                   |

use std::collections::BTreeMap;
use std::time::Duration;

use nix::sys::resource::{getrlimit, setrlimit, Resource, RLIM_INFINITY};
use serde::Serialize;

use crate::kernel::cgroup::{self, CgroupLimits, Controller};

/// How often cw-exec checks the whole-sandbox CPU time against `--cpu`.
pub const CPU_POLL: Duration = Duration::from_millis(100);

/// The limits a run asks for.
#[derive(Clone, Debug, Default)]
pub struct Limits {
    pub memory: Option<u64>,
    pub pids: Option<u64>,
    pub cpu: Option<Duration>,
    pub nofile: Option<u64>,
    pub fsize: Option<u64>,
    pub output: Option<u64>,
    /// The limits asked for explicitly, by report name ("memory", "pids", "cpu", ...), each
    /// with how the caller asked ("--memory", "profile p.toml: limits.memory (required)").
    /// Every other limit set is a default.
    pub explicit: BTreeMap<&'static str, String>,
}

/// How one limit is enforced, for `explain` and the attestation.
#[derive(Clone, Debug, Serialize)]
pub struct LimitReport {
    pub limit: &'static str,
    pub requested: String,
    /// Asked for explicitly (a flag, or a profile key in `limits.required`): it binds as
    /// asked, or the run was refused. False: a profile default, applied as `coverage` says.
    pub explicit: bool,
    /// The mechanism ("none" for a default nothing here can apply).
    pub mechanism: String,
    /// Whether the mechanism bounds the sandbox as a whole (false: each process separately).
    #[serde(rename = "wholeSandbox")]
    pub whole_sandbox: bool,
    /// Exactly what the mechanism bounds, and what it does not.
    pub coverage: String,
    /// How it was asked for, for messages: "--memory", "profile p.toml: limits.memory
    /// (required)", or "a profile default".
    #[serde(skip)]
    pub asked: String,
}

/// The lowered limits.
pub struct LimitsPlan {
    pub cgroups: CgroupLimits,
    pub rlimits: Vec<(Resource, u64, u64)>,
    pub output: Option<u64>,
    pub cpu_total: Option<Duration>,
    pub reports: Vec<LimitReport>,
    /// `size=` of each private tmpfs of the sandbox (see `private_tmpfs_size`).
    pub tmpfs_size: u64,
}

impl LimitsPlan {
    pub fn needs_cgroups(&self) -> bool {
        self.cgroups.memory.is_some() || self.cgroups.pids.is_some() || self.cgroups.cpu.is_some()
    }
}

/// The host's RAM in bytes (`sysinfo(2)`'s `totalram`, what /proc/meminfo shows as
/// `MemTotal`: one system call, no file to parse), or 4 GiB if it cannot say.
fn host_ram() -> u64 {
    nix::sys::sysinfo::sysinfo()
        .map(|info| info.ram_total())
        .ok()
        .filter(|ram| *ram > 0)
        .unwrap_or(4 << 30)
}

/// The `size=` of a private tmpfs of the sandbox (its /tmp, and any other it is given, such
/// as a private /dev/shm): the memory limit when one is set, capped at a quarter of the
/// host's RAM; a quarter of the host's RAM without one. Rounded down to whole pages.
///
/// A tmpfs is memory: without a size it may grow to half of RAM, and its pages are charged
/// to no process, so RLIMIT_DATA never sees them. With this size a sandbox cannot fill the
/// host's memory through one; when a memory cgroup binds, the tmpfs pages are charged to it
/// as well, so the sandbox's tmpfs and processes together stay within the limit.
pub fn private_tmpfs_size(memory: Option<u64>) -> u64 {
    private_tmpfs_size_of(memory, host_ram())
}

fn private_tmpfs_size_of(memory: Option<u64>, ram: u64) -> u64 {
    let quarter = ram / 4;
    let size = memory.map_or(quarter, |m| m.min(quarter));
    (size & !4095).max(4096)
}

/// Decides a mechanism for every requested limit; Err((limit, why)) if an explicit one cannot
/// bind as asked here.
pub fn plan(limits: &Limits, uid: u32) -> Result<LimitsPlan, (String, String)> {
    plan_with(limits, uid, |r| {
        getrlimit(r).map(|(_, hard)| hard).unwrap_or(RLIM_INFINITY)
    })
}

/// `plan`, with cw-exec's own hard limit of each resource from `hard_of`.
fn plan_with(
    limits: &Limits,
    uid: u32,
    hard_of: impl Fn(Resource) -> u64,
) -> Result<LimitsPlan, (String, String)> {
    let tmpfs_size = private_tmpfs_size(limits.memory);
    let mut p = LimitsPlan {
        cgroups: CgroupLimits {
            memory: None,
            pids: None,
            cpu: None,
        },
        rlimits: vec![],
        output: limits.output,
        cpu_total: None,
        reports: vec![],
        tmpfs_size,
    };
    // Read only if a limit needs a cgroup.
    let host = std::cell::OnceCell::new();
    let find = |c| host.get_or_init(cgroup::CgroupHost::read).find(c);
    let asked = |limit: &str| limits.explicit.get(limit).cloned();
    let mut report = |limit, requested: String, mechanism: String, whole, coverage: String| {
        p.reports.push(LimitReport {
            limit,
            requested,
            explicit: limits.explicit.contains_key(limit),
            mechanism,
            whole_sandbox: whole,
            coverage,
            asked: limits
                .explicit
                .get(limit)
                .cloned()
                .unwrap_or_else(|| "a profile default".into()),
        })
    };
    let refuse = |limit: &str, message: String| Err((limit.to_string(), message));
    // An rlimit cannot be raised past cw-exec's own hard limit: the sandbox inherits it, and
    // a user namespace gives no CAP_SYS_RESOURCE over limits the host set. An explicit limit
    // above it is refused now, naming it; a default is lowered to it, and says so.
    let fit = |resource: Resource, value: u64| -> Result<(u64, String), (String, String)> {
        let ceiling = hard_of(resource);
        let (name, ulimit) = rlimit_of(resource);
        if value <= ceiling {
            return Ok((value, String::new()));
        }
        if let Some(how) = limits.explicit.get(name) {
            return Err((
                name.to_string(),
                format!("{how} = {value} is above cw-exec's own hard limit of {ceiling} for {resource:?} ({ulimit}), which nothing in the sandbox can raise: ask for at most {ceiling}, or raise the hard limit before starting cw-exec"),
            ));
        }
        Ok((
            ceiling,
            format!(" (the profile's {value} lowered to {ceiling}: cw-exec's own hard limit for {resource:?}, {ulimit}, which nothing in the sandbox can raise)"),
        ))
    };
    if let Some(bytes) = limits.memory {
        match find(Controller::Memory) {
            Ok(h) => {
                let swap = if !cgroup::host_has_swap() {
                    "there is no swap on this host"
                } else if h.bounds_swap() {
                    "swap included"
                } else {
                    "swap NOT included: this kernel does not account swap to cgroups"
                };
                if swap.starts_with("swap NOT") {
                    if let Some(how) = asked("memory") {
                        return refuse(
                            "memory",
                            format!("{how} = {bytes} bytes must bind the whole sandbox, but this kernel does not account swap to the {} memory cgroup, so the sandbox could swap out past the limit", h.describe()),
                        );
                    }
                }
                report(
                    "memory",
                    bytes.to_string(),
                    format!("{} memory", h.describe()),
                    true,
                    format!("every page charged to the sandbox's memory cgroup: anonymous memory, page cache, tmpfs (the private /tmp included), shared memory and memfd, of all its processes, init included; {swap}; past it the kernel reclaims, then OOM-kills inside the sandbox"),
                );
                p.cgroups.memory = Some((bytes, h));
            }
            Err(why) => {
                if let Some(how) = asked("memory") {
                    return refuse(
                        "memory",
                        format!("{how} = {bytes} bytes must bind the whole sandbox, but no memory cgroup is usable here ({why}); RLIMIT_DATA would bound each process's heap separately and not tmpfs, shared memory or memfd at all. Run as root, or delegate a cgroup with the memory controller to this user"),
                    );
                }
                let (data, lowered) = fit(Resource::RLIMIT_DATA, bytes)?;
                report(
                    "memory",
                    bytes.to_string(),
                    "RLIMIT_DATA".into(),
                    false,
                    format!("RLIMIT_DATA per process (heap and private writable mappings of each process, at most {data} bytes each{lowered}); tmpfs, shared memory and memfd not covered (the private /tmp is bounded by its own size of {} bytes instead); the sandbox as a whole is not bounded: no memory cgroup is usable here ({why})", tmpfs_size),
                );
                p.rlimits.push((Resource::RLIMIT_DATA, data, data));
            }
        }
    }
    if let Some(n) = limits.pids {
        match find(Controller::Pids) {
            Ok(h) => {
                report(
                    "pids",
                    n.to_string(),
                    format!("{} pids", h.describe()),
                    true,
                    "every process and thread of the sandbox, init included (fork and clone fail with EAGAIN past it)".into(),
                );
                p.cgroups.pids = Some((n, h));
            }
            Err(_) if uid != 0 => {
                // Counted per (user namespace, uid) since Linux 5.14: this sandbox's processes.
                let (nproc, lowered) = fit(Resource::RLIMIT_NPROC, n)?;
                report(
                    "pids",
                    n.to_string(),
                    "RLIMIT_NPROC (this sandbox's user namespace)".into(),
                    true,
                    format!("RLIMIT_NPROC, which the kernel counts per user namespace and uid: every process and thread of this sandbox (it has its own user namespace), init included, at most {nproc}{lowered} (fork and clone fail with EAGAIN past it)"),
                );
                p.rlimits.push((Resource::RLIMIT_NPROC, nproc, nproc));
            }
            Err(why) => {
                if let Some(how) = asked("pids") {
                    return refuse(
                        "pids",
                        format!("{how} = {n} must bind the whole sandbox, but no pids cgroup is usable here ({why}), and RLIMIT_NPROC does not bind root: the process limit cannot be enforced"),
                    );
                }
                report(
                    "pids",
                    n.to_string(),
                    "none".into(),
                    false,
                    format!("not applied: no pids cgroup is usable here ({why}), and RLIMIT_NPROC does not bind root; the number of processes is not bounded"),
                );
            }
        }
    }
    if let Some(cpu) = limits.cpu {
        let (secs, lowered) = fit(
            Resource::RLIMIT_CPU,
            cpu.as_secs_f64().ceil().max(1.0) as u64,
        )?;
        match find(Controller::CpuAccounting) {
            Ok(h) => {
                report(
                    "cpu",
                    format!("{:.3}s", cpu.as_secs_f64()),
                    format!(
                        "{} CPU accounting polled by cw-exec + RLIMIT_CPU",
                        h.describe()
                    ),
                    true,
                    format!("CPU time of every process of the sandbox, init included, read from the cgroup every {} ms: the tree is SIGKILLed once past it (it may overshoot by up to that much per CPU); RLIMIT_CPU of {secs}s per process as well{lowered}", CPU_POLL.as_millis()),
                );
                p.cgroups.cpu = Some(h);
                p.cpu_total = Some(cpu);
            }
            Err(why) => {
                if let Some(how) = asked("cpu") {
                    return refuse(
                        "cpu",
                        format!("{how} = {:.3}s must bind the whole sandbox, but no cgroup accounts CPU time here ({why}); RLIMIT_CPU bounds each process separately, so N processes could use N times the limit", cpu.as_secs_f64()),
                    );
                }
                report(
                    "cpu",
                    format!("{secs}s"),
                    "RLIMIT_CPU".into(),
                    false,
                    format!("RLIMIT_CPU per process: each process may use {secs}s of CPU{lowered} (SIGXCPU, then SIGKILL); a tree of processes is not bounded as a whole: no cgroup accounts CPU time here ({why})"),
                );
            }
        }
        // SIGXCPU at the soft limit, SIGKILL a second later (or at the hard limit).
        let hard = (secs + 1).min(hard_of(Resource::RLIMIT_CPU));
        p.rlimits.push((Resource::RLIMIT_CPU, secs, hard));
    }
    if let Some(asked_n) = limits.nofile {
        let (n, lowered) = fit(Resource::RLIMIT_NOFILE, asked_n)?;
        report(
            "nofile",
            asked_n.to_string(),
            "RLIMIT_NOFILE".into(),
            false,
            format!("RLIMIT_NOFILE per process, which is what this limit means: each process may hold at most {n} open descriptors{lowered} (EMFILE past it)"),
        );
        p.rlimits.push((Resource::RLIMIT_NOFILE, n, n));
    }
    if let Some(asked_bytes) = limits.fsize {
        let (bytes, lowered) = fit(Resource::RLIMIT_FSIZE, asked_bytes)?;
        report(
            "fsize",
            asked_bytes.to_string(),
            "RLIMIT_FSIZE".into(),
            false,
            format!("RLIMIT_FSIZE per process, which is what this limit means: no process may write a file past {bytes} bytes{lowered} (SIGXFSZ, or EFBIG where it is ignored), the private /tmp included"),
        );
        p.rlimits.push((Resource::RLIMIT_FSIZE, bytes, bytes));
    }
    if let Some(bytes) = limits.output {
        report(
            "output",
            bytes.to_string(),
            "cw-exec relay (stdout+stderr, dropped past the limit)".into(),
            true,
            format!("stdout and stderr of the whole sandbox pass through cw-exec, which drops what passes {bytes} bytes; the command's stdin is a pipe cw-exec feeds from its own (or /dev/null), so descriptor 0 cannot carry output to the caller"),
        );
    }
    Ok(p)
}

/// The limit each rlimit enforces, by report name, and how `ulimit` names its hard limit.
fn rlimit_of(resource: Resource) -> (&'static str, &'static str) {
    match resource {
        Resource::RLIMIT_DATA => ("memory", "ulimit -Hd, in KiB"),
        Resource::RLIMIT_NPROC => ("pids", "ulimit -Hu"),
        Resource::RLIMIT_CPU => ("cpu", "ulimit -Ht, in seconds"),
        Resource::RLIMIT_NOFILE => ("nofile", "ulimit -Hn"),
        Resource::RLIMIT_FSIZE => ("fsize", "ulimit -Hf, in 512-byte blocks"),
        _ => ("?", "ulimit -H"),
    }
}

/// Applies the planned rlimits to the calling process (inherited by everything it starts).
pub fn apply_rlimits(rlimits: &[(Resource, u64, u64)]) -> Result<(), String> {
    for (resource, soft, hard) in rlimits {
        setrlimit(*resource, *soft, *hard)
            .map_err(|e| format!("setrlimit {resource:?}={soft}: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rlimits_above_the_callers_hard_limit_are_refused_if_explicit_else_lowered() {
        let ceiling = |_| 4096;
        let asked = |nofile, explicit: bool| Limits {
            nofile: Some(nofile),
            explicit: if explicit {
                [("nofile", "--nofile".to_string())].into()
            } else {
                BTreeMap::new()
            },
            ..Default::default()
        };
        let default = plan_with(&asked(8192, false), 0, ceiling).unwrap();
        assert_eq!(default.rlimits, vec![(Resource::RLIMIT_NOFILE, 4096, 4096)]);
        let coverage = &default.reports[0].coverage;
        assert!(
            coverage.contains("at most 4096 open descriptors (the profile's 8192 lowered to 4096"),
            "{coverage}"
        );
        assert_eq!(default.reports[0].requested, "8192");
        let Err((limit, why)) = plan_with(&asked(8192, true), 0, ceiling) else {
            panic!("an explicit limit above the hard limit must be refused");
        };
        assert_eq!(limit, "nofile");
        assert!(
            why.starts_with("--nofile = 8192 is above")
                && why.contains("4096")
                && why.contains("ulimit -Hn"),
            "{why}"
        );
        let under = plan_with(&asked(1024, true), 0, ceiling).unwrap();
        assert_eq!(under.rlimits, vec![(Resource::RLIMIT_NOFILE, 1024, 1024)]);
        // RLIMIT_CPU's hard limit (a second past the soft one) stays under the ceiling.
        let cpu = Limits {
            cpu: Some(Duration::from_secs(10)),
            ..Default::default()
        };
        let p = plan_with(&cpu, 0, |_| 10).unwrap();
        assert!(
            p.rlimits.contains(&(Resource::RLIMIT_CPU, 10, 10)),
            "{:?}",
            p.rlimits
        );
    }

    #[test]
    fn host_ram_is_memtotal() {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
        let kib: u64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        assert_eq!(host_ram(), kib * 1024);
    }

    #[test]
    fn tmpfs_size_is_the_memory_limit_capped_at_a_quarter_of_ram() {
        let ram = 16u64 << 30;
        assert_eq!(private_tmpfs_size_of(None, ram), 4 << 30);
        assert_eq!(private_tmpfs_size_of(Some(64 << 20), ram), 64 << 20);
        assert_eq!(private_tmpfs_size_of(Some(64 << 30), ram), 4 << 30);
        assert_eq!(private_tmpfs_size_of(Some(10_000), ram), 8192);
        assert_eq!(private_tmpfs_size_of(Some(1), ram), 4096);
    }
}
