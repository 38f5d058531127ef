//! Resource limits: which mechanism enforces each requested limit on this host, decided
//! when planning, so that a limit nothing here can enforce is a refusal before anything runs.
//!
//! | limit  | preferred                         | otherwise                                  |
//! |--------|-----------------------------------|--------------------------------------------|
//! | memory | cgroup memory (whole sandbox)     | RLIMIT_DATA (per process)                  |
//! | pids   | cgroup pids (whole sandbox)       | RLIMIT_NPROC (per sandbox user namespace; never binds root: refused) |
//! | cpu    | cgroup CPU accounting, polled by cw-exec (whole sandbox) + RLIMIT_CPU | RLIMIT_CPU (per process) |
//! | nofile | RLIMIT_NOFILE (per process)       |                                            |
//! | fsize  | RLIMIT_FSIZE (per process)        |                                            |
//! | output | cw-exec's relay (stdout+stderr)   |                                            |

use std::time::Duration;

use nix::sys::resource::{setrlimit, Resource};
use serde::Serialize;

use crate::kernel::cgroup::{self, CgroupLimits, Controller};

/// The limits a run asks for.
#[derive(Clone, Debug, Default)]
pub struct Limits {
    pub memory: Option<u64>,
    pub pids: Option<u64>,
    pub cpu: Option<Duration>,
    pub nofile: Option<u64>,
    pub fsize: Option<u64>,
    pub output: Option<u64>,
}

/// How one limit is enforced, for `explain` and the attestation.
#[derive(Clone, Debug, Serialize)]
pub struct LimitReport {
    pub limit: &'static str,
    pub requested: String,
    pub mechanism: String,
    /// Whether the mechanism bounds the sandbox as a whole (false: each process separately).
    #[serde(rename = "wholeSandbox")]
    pub whole_sandbox: bool,
}

/// The lowered limits.
pub struct LimitsPlan {
    pub cgroups: CgroupLimits,
    pub rlimits: Vec<(Resource, u64, u64)>,
    pub output: Option<u64>,
    pub cpu_total: Option<Duration>,
    pub reports: Vec<LimitReport>,
}

impl LimitsPlan {
    pub fn needs_cgroups(&self) -> bool {
        self.cgroups.memory.is_some() || self.cgroups.pids.is_some() || self.cgroups.cpu.is_some()
    }
}

/// Decides a mechanism for every requested limit; Err((limit, why)) if one has none here.
pub fn plan(limits: &Limits, uid: u32) -> Result<LimitsPlan, (String, String)> {
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
    };
    // Read only if a limit needs a cgroup.
    let host = std::cell::OnceCell::new();
    let locate = |c| host.get_or_init(cgroup::CgroupHost::read).locate(c);
    let mut report = |limit, requested: String, mechanism: String, whole| {
        p.reports.push(LimitReport {
            limit,
            requested,
            mechanism,
            whole_sandbox: whole,
        })
    };
    if let Some(bytes) = limits.memory {
        match locate(Controller::Memory) {
            Some(h) => {
                report(
                    "memory",
                    bytes.to_string(),
                    format!("{} memory (swap included)", h.describe()),
                    true,
                );
                p.cgroups.memory = Some((bytes, h));
            }
            None => {
                report("memory", bytes.to_string(), "RLIMIT_DATA".into(), false);
                p.rlimits.push((Resource::RLIMIT_DATA, bytes, bytes));
            }
        }
    }
    if let Some(n) = limits.pids {
        match locate(Controller::Pids) {
            Some(h) => {
                report("pids", n.to_string(), format!("{} pids", h.describe()), true);
                p.cgroups.pids = Some((n, h));
            }
            None if uid != 0 => {
                // Counted per (user namespace, uid) since Linux 5.14: this sandbox's processes.
                report("pids", n.to_string(), "RLIMIT_NPROC (this sandbox's user namespace)".into(), true);
                p.rlimits.push((Resource::RLIMIT_NPROC, n, n));
            }
            None => {
                return Err((
                    "pids".into(),
                    "no usable cgroup pids controller, and RLIMIT_NPROC does not bind root: the process limit cannot be enforced".into(),
                ))
            }
        }
    }
    if let Some(cpu) = limits.cpu {
        let secs = cpu.as_secs_f64().ceil().max(1.0) as u64;
        // SIGXCPU at the soft limit, SIGKILL a second later.
        p.rlimits.push((Resource::RLIMIT_CPU, secs, secs + 1));
        match locate(Controller::CpuAccounting) {
            Some(h) => {
                report(
                    "cpu",
                    format!("{:.3}s", cpu.as_secs_f64()),
                    format!(
                        "{} CPU accounting polled by cw-exec + RLIMIT_CPU",
                        h.describe()
                    ),
                    true,
                );
                p.cgroups.cpu = Some(h);
                p.cpu_total = Some(cpu);
            }
            None => report("cpu", format!("{secs}s"), "RLIMIT_CPU".into(), false),
        }
    }
    if let Some(n) = limits.nofile {
        report("nofile", n.to_string(), "RLIMIT_NOFILE".into(), false);
        p.rlimits.push((Resource::RLIMIT_NOFILE, n, n));
    }
    if let Some(bytes) = limits.fsize {
        report("fsize", bytes.to_string(), "RLIMIT_FSIZE".into(), false);
        p.rlimits.push((Resource::RLIMIT_FSIZE, bytes, bytes));
    }
    if let Some(bytes) = limits.output {
        report(
            "output",
            bytes.to_string(),
            "cw-exec relay (stdout+stderr, dropped past the limit)".into(),
            true,
        );
    }
    Ok(p)
}

/// Applies the planned rlimits to the calling process (inherited by everything it starts).
pub fn apply_rlimits(rlimits: &[(Resource, u64, u64)]) -> Result<(), String> {
    for (resource, soft, hard) in rlimits {
        setrlimit(*resource, *soft, *hard)
            .map_err(|e| format!("setrlimit {resource:?}={soft}: {e}"))?;
    }
    Ok(())
}
