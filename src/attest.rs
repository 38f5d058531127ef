//! The attestation: what the kernel reports, read back inside the sandbox just before
//! `execve`, and the verdict on each dimension drawn from it. Nothing here is copied from
//! the request: a dimension is `enforced` only when the read-back proves it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::kernel::landlock::{FlagNames, LandlockOutcome};
use crate::kernel::quotas::QuotaReadback;
use crate::limits::LimitReport;
use crate::plan::Plan;
use crate::policy::NetMode;

pub const DIMENSIONS: [&str; 5] = ["read", "write", "command", "network", "env"];

/// One active check made from inside the sandbox: an operation that must fail, and how.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Probe {
    pub name: String,
    /// What the operation attempted.
    pub attempt: String,
    /// The errno name expected if the mechanism is live.
    pub expect: String,
    /// What the kernel answered ("ok" if the operation succeeded).
    pub got: String,
}

impl Probe {
    pub fn passed(&self) -> bool {
        self.expect == self.got
    }
}

/// The kernel read-back, produced by the command's process after every restriction is in
/// place and before execve.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KernelReadback {
    pub landlock: LandlockReadback,
    /// Fields of /proc/self/status: NoNewPrivs, Seccomp, Seccomp_filters, Cap*, Uid, Gid.
    pub proc_status: BTreeMap<String, String>,
    /// Namespace inodes of the sandbox (read in the child) and of the host (read by cw-exec
    /// before it created the sandbox).
    pub namespaces: BTreeMap<String, NamespacePair>,
    pub probes: Vec<Probe>,
    /// Names (never values) of the environment passed to execve.
    pub env_names: Vec<String>,
    /// The per-user kernel quotas as read back (see `kernel::quotas`).
    #[serde(default)]
    pub quotas: Vec<QuotaReadback>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LandlockReadback {
    pub abi: u32,
    pub status: String,
    pub handled_fs: Vec<String>,
    pub handled_net: Vec<String>,
    pub scopes: Vec<String>,
    pub rules: usize,
}

impl From<LandlockOutcome> for LandlockReadback {
    fn from(o: LandlockOutcome) -> Self {
        LandlockReadback {
            abi: o.abi,
            status: o.status,
            handled_fs: o.handled_fs,
            handled_net: o.handled_net,
            scopes: o.scopes,
            rules: o.rules,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NamespacePair {
    pub sandbox: u64,
    pub host: u64,
}

impl NamespacePair {
    pub fn separate(&self) -> bool {
        self.sandbox != self.host
    }
}

/// Which dimensions the policy requires and which the read-back proves.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Verdict {
    pub required: Vec<&'static str>,
    pub enforced: Vec<&'static str>,
    pub unenforceable: Vec<&'static str>,
    /// Per dimension, why it is or is not proven.
    pub reasons: BTreeMap<&'static str, String>,
}

impl Verdict {
    pub fn refused(&self) -> bool {
        !self.unenforceable.is_empty()
    }
}

/// Required dimensions: a cool-workflow policy's own (see `cw::SandboxPolicy::required`);
/// otherwise read, write and env always (cw-exec always builds the environment from
/// scratch), command when an exec allowlist is in force, network unless `--net host`.
pub fn required(plan: &Plan) -> Vec<&'static str> {
    if let Some(cw) = &plan.cw {
        return cw.required.clone();
    }
    DIMENSIONS
        .iter()
        .copied()
        .filter(|d| match *d {
            "command" => plan.exec_allowlist,
            "network" => plan.net != NetMode::Host,
            _ => true,
        })
        .collect()
}

fn status_is(rb: &KernelReadback, key: &str, want: &str) -> bool {
    rb.proc_status
        .get(key)
        .map(|v| v.trim() == want)
        .unwrap_or(false)
}

fn probe_ok(rb: &KernelReadback, name: &str) -> Option<bool> {
    rb.probes.iter().find(|p| p.name == name).map(Probe::passed)
}

/// Draws the verdict from a read-back. Pure, so the child (deciding whether to exec) and
/// cw-exec (writing the envelope) reach the same answer from the same evidence.
pub fn verdict(plan: &Plan, rb: &KernelReadback) -> Verdict {
    let ll = &rb.landlock;
    let landlock_full = ll.status == "fully_enforced";
    let handles = |right: &str| ll.handled_fs.iter().any(|r| r == right);
    let no_caps =
        status_is(rb, "CapEff", "0000000000000000") && status_is(rb, "CapBnd", "0000000000000000");
    let nnp = status_is(rb, "NoNewPrivs", "1");
    let seccomp_on = status_is(rb, "Seccomp", "2")
        && rb
            .proc_status
            .get("Seccomp_filters")
            .and_then(|v| v.trim().parse::<usize>().ok())
            .map(|n| n >= plan.seccomp.filters.len())
            .unwrap_or(false);
    let mnt_separate = rb
        .namespaces
        .get("mnt")
        .map(NamespacePair::separate)
        .unwrap_or(false);

    let mut reasons = BTreeMap::new();
    let mut proven = |dim: &'static str, checks: Vec<(&str, bool)>| {
        let failed: Vec<&str> = checks
            .iter()
            .filter(|(_, ok)| !ok)
            .map(|(n, _)| *n)
            .collect();
        let ok = failed.is_empty();
        reasons.insert(
            dim,
            if ok {
                checks
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            } else {
                format!("not proven: {}", failed.join(", "))
            },
        );
        ok
    };

    let read = proven(
        "read",
        vec![
            ("landlock fully enforced", landlock_full),
            (
                "landlock handles ReadFile+ReadDir",
                handles("ReadFile") && handles("ReadDir"),
            ),
            (
                "ungranted file unreadable (probe)",
                probe_ok(rb, "read-outside-grants").unwrap_or(false),
            ),
            ("own mount namespace", mnt_separate),
        ],
    );
    let write = proven(
        "write",
        vec![
            ("landlock fully enforced", landlock_full),
            (
                "landlock handles WriteFile+Remove*+Make*",
                handles("WriteFile") && handles("RemoveFile") && handles("MakeReg"),
            ),
            (
                "read-only mount view (probe)",
                probe_ok(rb, "write-outside-grants").unwrap_or(false),
            ),
            ("no capabilities", no_caps),
            (
                "seccomp refuses set-id bits on chmod (probe)",
                probe_ok(rb, "setid-chmod").unwrap_or(false),
            ),
            (
                "seccomp refuses set-id bits on creation (probe)",
                probe_ok(rb, "setid-create").unwrap_or(false),
            ),
        ],
    );
    let mut native_code = vec![];
    if !plan.native_code {
        native_code.push((
            "executable anonymous memory refused (probe)",
            probe_ok(rb, "native-code").unwrap_or(false),
        ));
    }
    let command = proven(
        "command",
        vec![
            (
                "landlock handles Execute",
                landlock_full && handles("Execute"),
            ),
            ("seccomp filter installed", seccomp_on),
            (
                "seccomp denies io_uring (probe)",
                probe_ok(rb, "io-uring").unwrap_or(false),
            ),
            (
                "executable memfds refused (probe)",
                probe_ok(rb, "memfd-exec").unwrap_or(false),
            ),
            ("no_new_privs", nnp),
            ("no capabilities", no_caps),
        ]
        .into_iter()
        .chain(native_code)
        .collect(),
    );
    let network = match plan.net {
        NetMode::Host => proven("network", vec![("host network (not restricted)", false)]),
        mode => {
            let mut checks = vec![
                (
                    "own network namespace",
                    rb.namespaces
                        .get("net")
                        .map(NamespacePair::separate)
                        .unwrap_or(false),
                ),
                ("seccomp filter installed", seccomp_on),
            ];
            if mode == NetMode::None {
                checks.push((
                    "AF_INET sockets denied (probe)",
                    probe_ok(rb, "socket-inet").unwrap_or(false),
                ));
                if let Some(ok) = probe_ok(rb, "tcp-connect") {
                    checks.push(("landlock denies TCP connect (probe)", ok));
                }
            }
            proven("network", checks)
        }
    };
    let env_ok = {
        let mut passed: Vec<String> = plan.env.keys().cloned().collect();
        passed.sort();
        let mut seen = rb.env_names.clone();
        seen.sort();
        passed == seen
    };
    let env = proven(
        "env",
        vec![("environment built from scratch for execve", env_ok)],
    );

    let outcome = [
        ("read", read),
        ("write", write),
        ("command", command),
        ("network", network),
        ("env", env),
    ];
    let required = required(plan);
    let enforced: Vec<&'static str> = outcome
        .iter()
        .filter(|(_, ok)| *ok)
        .map(|(d, _)| *d)
        .collect();
    let unenforceable = required
        .iter()
        .copied()
        .filter(|d| !enforced.contains(d))
        .collect();
    Verdict {
        required,
        enforced,
        unenforceable,
        reasons,
    }
}

/// Known bypasses per dimension that this kernel could not close, for the attestation.
pub fn gaps(plan: &Plan) -> BTreeMap<&'static str, Vec<String>> {
    let abi = plan.landlock;
    let mut g: BTreeMap<&'static str, Vec<String>> =
        DIMENSIONS.iter().map(|d| (*d, vec![])).collect();
    let push = |g: &mut BTreeMap<&'static str, Vec<String>>, d: &'static str, s: &str| {
        g.get_mut(d).unwrap().push(s.to_string())
    };
    push(&mut g, "read", "metadata of paths in the view (stat, readlink, path traversal) is not mediated by Landlock; only the contents of granted paths are readable");
    if !abi.has_truncate() {
        push(
            &mut g,
            "write",
            "Landlock ABI < 3: truncate is not mediated by Landlock inside the write set",
        );
    }
    if !abi.has_resolve_unix() {
        push(&mut g, "network", "Landlock ABI < 9: connecting to a pathname Unix socket that lies inside a granted path is not mediated (sockets outside granted paths are absent from the mount view)");
    }
    if plan.exec_allowlist {
        push(&mut g, "command", "noexec, on every mount off the allowlist (granted paths, and the runtime allowance outside its shared-library directories), stops execve and the loader trick (ld.so FILE) for files there; it does not stop an allowed interpreter from reading a script from any readable path (python3 FILE, sh FILE)");
        let libs: Vec<String> = plan
            .library_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        push(&mut g, "command", &format!("shared-library directories stay mounted exec so libraries can be mapped: an executable inside them (for example under /usr/lib/git-core or /usr/lib/jvm) cannot be execve'd but can be run as ld.so FILE; here: {}", libs.join(", ")));
        if plan.native_code {
            push(&mut g, "command", "exec.native_code is true: an allowed program can make executable memory it wrote (anonymous mappings, memfds, mprotect) and run any native code in it");
        }
    } else {
        push(
            &mut g,
            "command",
            "no exec allowlist: any readable file may be executed, including by an interpreter",
        );
    }
    if !plan.native_code {
        push(&mut g, "command", "exec.native_code = false refuses executable memory the program writes; files mounted exec (allowed programs, shared libraries) can still be mapped PROT_EXEC as they are, and a program whose ELF header asks for an executable stack (PT_GNU_STACK RWX) is given one by execve");
    }
    push(&mut g, "write", "set-id bits are refused by seccomp (chmod family, creating opens, mkdir, mknod; openat2 answers ENOSYS), file capabilities by the command having no CAP_SETFCAP; set-id files that already are in the write set keep their bits, and a directory created beneath a host set-gid directory inherits set-gid from it (the kernel sets it, not the mode)");
    g.insert("limits", vec![]);
    push(&mut g, "limits", "per-user quotas lowered in the sandbox's user namespace (inotify, message-queue bytes, queued signals) are still charged to the caller's uid on the host: while the sandbox uses its share, the caller's other processes have that much less");
    push(&mut g, "limits", "counts kept per uid with no per-namespace maximum are shared with the caller's other processes whole: epoll watches (fs.epoll.max_user_watches), pipe buffer pages (fs.pipe-user-pages-soft/hard), descriptors in flight over Unix sockets; processes count toward the caller's RLIMIT_NPROC (the pids limit bounds the sandbox's)");
    if !abi.has_scopes() {
        push(&mut g, "network", "Landlock ABI < 6: abstract Unix sockets are not scoped (the private network namespace still separates them unless --net host)");
    }
    if plan.net == NetMode::Host {
        push(
            &mut g,
            "network",
            "--net host: the host network is reachable without restriction",
        );
    }
    g
}

/// The per-user quotas as limits, stated as read back inside the sandbox: a quota the
/// read-back does not show in force is reported as not lowered, with what was read.
fn quota_reports(plan: &Plan, rb: Option<&KernelReadback>) -> Vec<LimitReport> {
    plan.quotas
        .iter()
        .map(|q| {
            let got = rb.and_then(|rb| rb.quotas.iter().find(|r| r.limit == q.limit));
            let mechanism = match got {
                Some(r) if q.holds(r) => format!("{}; read back {}", q.mechanism(), q.value),
                Some(r) => format!(
                    "not lowered: {} was asked for, read back {}",
                    q.mechanism(),
                    r.values.join(", ")
                ),
                None => format!(
                    "{} (not read back: the sandbox did not start)",
                    q.mechanism()
                ),
            };
            LimitReport {
                limit: q.limit,
                requested: q.value.to_string(),
                explicit: false,
                mechanism,
                whole_sandbox: true,
                coverage: q.coverage(),
            }
        })
        .collect()
}

/// The `kernel` section of the attestation.
pub fn kernel_section(plan: &Plan, rb: Option<&KernelReadback>, verdict: &Verdict) -> Value {
    let rules: Vec<Value> = plan
        .grants
        .iter()
        .map(|g| {
            json!({
                "path": g.path,
                "requested": g.requested,
                "access": g.access.describe(),
                "landlock": plan.landlock.rights(g.access, g.is_dir).names(),
                "identity": g.identity,
            })
        })
        .collect();
    let runtime: Vec<Value> = plan
        .runtime
        .iter()
        .map(|g| json!({"path": g.path, "access": g.access.describe()}))
        .collect();
    let mut section = json!({
        "readBackAt": "child, after every restriction, immediately before execve",
        "rules": rules,
        "runtimeAllowance": runtime,
        "agentInstall": plan.agent_install.iter().map(|g| json!({"path": g.path, "access": g.access.describe()})).collect::<Vec<_>>(),
        "credentialMasks": plan.masks,
        "execAllowlist": plan.exec_allowlist,
        "nativeCode": plan.native_code,
        "network": plan.net.as_str(),
        "mountView": crate::kernel::mount_view::describe(plan),
        "seccomp": {
            "sha256": plan.seccomp.sha256,
            "filters": plan.seccomp.filters.len(),
            "denies": plan.seccomp.denies,
        },
        "limits": plan.limits.reports.iter().cloned().chain(quota_reports(plan, rb)).collect::<Vec<_>>(),
        "dimensions": verdict.reasons,
        "gaps": gaps(plan),
    });
    if let Some(rb) = rb {
        let obj = section.as_object_mut().unwrap();
        obj.insert("landlock".into(), json!(rb.landlock));
        obj.insert("procStatus".into(), json!(rb.proc_status));
        obj.insert("namespaces".into(), json!(rb.namespaces));
        obj.insert("probes".into(), json!(rb.probes));
        obj.insert("envNames".into(), json!(rb.env_names));
    } else {
        let obj = section.as_object_mut().unwrap();
        obj.insert("landlock".into(), json!({"abi": plan.landlock.0}));
    }
    section
}

/// ISO-8601 UTC timestamp with milliseconds, like JavaScript's `Date.toISOString()`.
pub fn now_iso8601() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn iso8601_shape() {
        let s = super::now_iso8601();
        assert_eq!(s.len(), 24, "{s}");
        assert!(s.ends_with('Z') && s.as_bytes()[10] == b'T', "{s}");
    }
}
