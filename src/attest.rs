//! The attestation: what the kernel reports, read back inside the sandbox just before
//! `execve`, and the verdict on each dimension drawn from it. Nothing here is copied from
//! the request: a dimension is `enforced` only when the read-back proves it.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{json, Value};

use crate::kernel::landlock::FlagNames;
use crate::limits::LimitReport;
use crate::model::{Dimension, NetMode, Tier};
use crate::plan::{EnvRule, Plan};
use crate::readback::{KernelReadback, Observed};

/// Which dimensions the policy requires and which the read-back proves.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Verdict {
    pub required: Vec<Dimension>,
    pub enforced: Vec<Dimension>,
    pub unenforceable: Vec<Dimension>,
    /// Per dimension, why it is or is not proven.
    pub reasons: BTreeMap<Dimension, String>,
}

impl Verdict {
    pub fn refused(&self) -> bool {
        !self.unenforceable.is_empty()
    }
}

/// Checks the names execve receives against the policy's rule: every name allowed by the
/// rule, none twice. Err names the offenders.
pub fn env_check(rule: &EnvRule, names: &[String]) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    let mut bad = vec![];
    for name in names {
        if !seen.insert(name.as_str()) {
            bad.push(format!("{name} (twice)"));
        } else if !rule.allows(name) {
            bad.push(name.clone());
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(bad.join(", "))
    }
}

/// Checks of one dimension: what was observed (read back from the kernel inside the sandbox:
/// only `readback` makes an `Observed`) and what was configured (a fact of the policy, such as
/// an allowlist being in force). A dimension is proven only when every check holds and at
/// least one was observed: configuration alone can never prove anything.
struct Checks<'a> {
    observed: Vec<(&'a str, Observed)>,
    configured: Vec<(&'a str, bool)>,
}

/// Draws the verdict from a read-back. Pure, so the child (deciding whether to exec) and
/// cw-exec (writing the envelope) reach the same answer from the same evidence.
pub fn verdict(plan: &Plan, rb: &KernelReadback) -> Verdict {
    let landlock_full = rb.landlock_fully_enforced();
    let namespaces = plan.tier == Tier::Namespaces;
    // No capability now, and none to gain: in the namespace tier the bounding set is empty;
    // in the Landlock tier an unprivileged caller's bounding set cannot be emptied, and
    // no_new_privs (checked with it) keeps execve from granting any.
    let no_caps = if namespaces {
        rb.status_is("CapEff", "0000000000000000")
            .and(rb.status_is("CapBnd", "0000000000000000"))
    } else {
        // A command that is root on the host (the Landlock tier has no user namespace): its
        // init had the capabilities to empty the bounding set and did, before it started the
        // command's process; a full set read back here is that step not done (a read-back
        // without Uid counts as root: the careful answer).
        let root = rb
            .proc_status
            .get("Uid")
            .map_or(true, |ids| ids.split_whitespace().any(|id| id == "0"));
        let bounding = if root {
            rb.status_is("CapBnd", "0000000000000000")
        } else {
            rb.status_is("CapPrm", "0000000000000000")
        };
        rb.status_is("CapEff", "0000000000000000")
            .and(rb.status_is("CapPrm", "0000000000000000"))
            .and(rb.status_is("NoNewPrivs", "1"))
            .and(bounding)
    };
    let nnp = rb.status_is("NoNewPrivs", "1");
    let seccomp_on = rb
        .seccomp_filters_at_least(plan.seccomp.filters.len())
        .and(rb.probe_passed(crate::readback::SECCOMP_INSTALLED));
    let probe = |name: &str| rb.probe_passed(name);
    let proxy_listener = crate::netpolicy::proxy_listener();

    let mut reasons = BTreeMap::new();
    let mut proven = |dim: Dimension, checks: Checks<'_>| {
        let all: Vec<(&str, bool)> = checks
            .configured
            .iter()
            .copied()
            .chain(checks.observed.iter().map(|(n, o)| (*n, o.holds())))
            .collect();
        let mut failed: Vec<&str> = all.iter().filter(|(_, ok)| !ok).map(|(n, _)| *n).collect();
        if checks.observed.is_empty() && failed.is_empty() {
            failed.push("nothing observed");
        }
        let ok = failed.is_empty();
        reasons.insert(
            dim,
            if ok {
                all.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            } else {
                format!("not proven: {}", failed.join(", "))
            },
        );
        ok
    };

    let mut read_observed = vec![
        ("landlock fully enforced", landlock_full),
        (
            "landlock handles ReadFile+ReadDir",
            rb.landlock_handles(&["ReadFile", "ReadDir"]),
        ),
        (
            "ungranted file unreadable (probe)",
            probe("read-outside-grants"),
        ),
    ];
    if namespaces {
        read_observed.push(("own mount namespace", rb.separate_namespace("mnt")));
    }
    let read = proven(
        Dimension::Read,
        Checks {
            observed: read_observed,
            configured: vec![],
        },
    );
    let write = proven(
        Dimension::Write,
        Checks {
            observed: vec![
                ("landlock fully enforced", landlock_full),
                (
                    "landlock handles WriteFile+Remove*+Make*",
                    rb.landlock_handles(&["WriteFile", "RemoveFile", "MakeReg"]),
                ),
                (
                    if namespaces {
                        "read-only mount view (probe)"
                    } else {
                        "landlock denies writing an ungranted file (probe)"
                    },
                    probe("write-outside-grants"),
                ),
                (
                    "landlock denies writing a read-only grant (probe)",
                    probe("write-landlock"),
                ),
                ("no capabilities", no_caps),
                (
                    "seccomp refuses set-id bits on chmod (probe)",
                    probe("setid-chmod"),
                ),
                (
                    "seccomp refuses set-id bits on creation (probe)",
                    probe("setid-create"),
                ),
            ],
            configured: vec![],
        },
    );
    let mut command_observed = vec![
        (
            "landlock handles Execute",
            landlock_full.and(rb.landlock_handles(&["Execute"])),
        ),
        (
            "a file off the allowlist is not executable (probe)",
            probe("exec-outside-allowlist"),
        ),
        ("seccomp filter installed", seccomp_on),
        ("seccomp denies io_uring (probe)", probe("io-uring")),
        ("executable memfds refused (probe)", probe("memfd-exec")),
        ("no_new_privs", nnp),
        ("no capabilities", no_caps),
    ];
    if !plan.native_code {
        command_observed.push((
            "executable anonymous memory refused (probe)",
            probe("native-code"),
        ));
    }
    let command = proven(
        Dimension::Command,
        Checks {
            observed: command_observed,
            configured: vec![("exec allowlist in force", plan.exec_allowlist)],
        },
    );
    let network = match plan.net {
        NetMode::Host => proven(
            Dimension::Network,
            Checks {
                observed: vec![],
                configured: vec![("host network (not restricted)", false)],
            },
        ),
        mode => {
            let mut observed = vec![("seccomp filter installed", seccomp_on)];
            if namespaces {
                observed.insert(0, ("own network namespace", rb.separate_namespace("net")));
            } else {
                // No namespace of its own: abstract Unix sockets are the host's, so they
                // must be scoped to the sandbox.
                observed.push((
                    "landlock scopes abstract Unix sockets",
                    rb.landlock_scopes(&["AbstractUnixSocket"]),
                ));
            }
            if mode == NetMode::None {
                observed.push(("AF_INET sockets denied (probe)", probe("socket-inet")));
                if let Some(ran) = rb.probe_ran("tcp-connect") {
                    observed.push(("landlock denies TCP connect (probe)", ran));
                }
            }
            if mode == NetMode::Allowlist {
                // The proxy is the only way out: no interface but loopback, no listener but
                // the proxy's, and Landlock lets TCP connect to the proxy's port only.
                observed.push(("only a loopback interface", rb.interfaces_are(&["lo"])));
                observed.push((
                    "the egress proxy is the only listener",
                    rb.tcp_listeners_are(&[&proxy_listener]),
                ));
                observed.push((
                    "landlock denies TCP connect but to the proxy (probe)",
                    probe("tcp-connect"),
                ));
            }
            proven(
                Dimension::Network,
                Checks {
                    observed,
                    configured: vec![],
                },
            )
        }
    };
    let (env_ok, env_bad) = rb.env_allowed(|names| env_check(&plan.env_rule, names));
    let env_label = match &env_bad {
        None => "every name execve receives is allowed by the policy".to_string(),
        Some(bad) => format!("execve would receive names the policy does not allow: {bad}"),
    };
    let env = proven(
        Dimension::Env,
        Checks {
            observed: vec![(env_label.as_str(), env_ok)],
            configured: vec![],
        },
    );

    let outcome = [
        (Dimension::Read, read),
        (Dimension::Write, write),
        (Dimension::Command, command),
        (Dimension::Network, network),
        (Dimension::Env, env),
    ];
    let required = plan.required();
    let enforced: Vec<Dimension> = outcome
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

/// An allowlist given as command lines (cool-workflow's `execute.allow`): the kernel part is
/// the program set; the arguments are only cool-workflow's gate's.
pub const COMMAND_GAP_ARGUMENTS: &str = "execute.allow: the kernel enforces the set of programs (each entry's first word, resolved, with its interpreter chain), not their arguments: a program on the allowlist started from inside the sandbox runs with any arguments; the exact match of the whole command line is cool-workflow's gate, applied by `cw-exec exec` to the top-level command only (not applied by `cw-exec run --manifest`, where the command is the agent itself)";

/// Known bypasses per dimension that this kernel could not close, for the attestation.
pub fn gaps(plan: &Plan) -> BTreeMap<&'static str, Vec<String>> {
    let abi = plan.landlock;
    let mut g: BTreeMap<&'static str, Vec<String>> = Dimension::ALL
        .iter()
        .map(|d| (d.as_str(), vec![]))
        .collect();
    let push = |g: &mut BTreeMap<&'static str, Vec<String>>, d: &'static str, s: &str| {
        g.get_mut(d).unwrap().push(s.to_string())
    };
    if plan.net == NetMode::Allowlist {
        push(&mut g, "network", "allowlist: the proxy decides on the name a client asks for; a TLS connection to an allowed name can carry another Host inside (domain fronting), and anything the sandbox can read can be sent to an allowed host");
        push(&mut g, "network", "allowlist: no DNS inside the sandbox (the proxy resolves names); only programs that honour HTTP_PROXY/HTTPS_PROXY/ALL_PROXY get out; UDP (QUIC, DNS) has no route");
    }
    push(&mut g, "read", "metadata of paths in the view (stat, readlink, path traversal) is not mediated by Landlock; only the contents of granted paths are readable");
    if plan.tier == Tier::Landlock {
        push(&mut g, "read", "landlock tier: no private mount view: every host path exists for the sandbox (stat, readlink and path lookup work outside the grants; only contents and listings are denied), and host processes are visible in /proc (their command lines; their memory and environment are denied by Landlock's ptrace scoping)");
        if !plan.split.is_empty() {
            push(&mut g, "read", "landlock tier: Landlock cannot hide a path beneath a grant, so each grant covering a credential was replaced by grants of its entries (kernel.split); entries created in those directories after the run started are not covered, and the split directories themselves cannot be listed");
        }
        push(&mut g, "write", "landlock tier: metadata changes (chmod, chown, utimes, extended attributes) of files the sandbox's user owns outside the write set are not mediated by Landlock (no read-only mount view)");
        push(&mut g, "write", "landlock tier: the private tmp is a per-run directory (TMPDIR, $tmp) removed after the run, not a private /tmp: /tmp and /dev/shm are the host's and not granted (no private /dev/shm: POSIX shared memory fails)");
        push(&mut g, "network", "landlock tier: no network namespace: with --net none, seccomp refuses AF_INET/AF_INET6 and Landlock TCP rules and abstract-socket scoping apply; a pathname Unix socket the grants reach can be connected to (Landlock ABI < 9)");
    }
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
        if !plan.exec_programs.is_empty() {
            push(&mut g, "command", COMMAND_GAP_ARGUMENTS);
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
    if plan.tier == Tier::Landlock {
        let signals = if plan.landlock.has_scopes() {
            "it cannot signal them (Landlock's signal scope) nor ptrace them (Landlock)"
        } else {
            "it cannot ptrace them (Landlock), but this kernel's Landlock ABI has no signal scope (ABI 6): it can signal every host process of its user, cw-exec and init among them"
        };
        push(&mut g, "limits", &format!("landlock tier: no PID namespace: the sandbox sees the host's processes; {signals}; init is the subreaper of the run and kills every descendant when the command ends, or when cw-exec dies (its parent-death signal), which it does just after cw-exec has gone; but if init itself is SIGKILLed from outside while cw-exec is gone too, processes of the run may outlive both unless a cgroup holds them; per-user quotas of a user namespace (inotify, namespaces) are not lowered"));
    }
    if plan.limits.needs_cgroups() {
        push(&mut g, "limits", "cgroup membership is read back once, by the command's process just before execve (its /proc/self/cgroup, checked there against the path cw-exec derived from where it made the run's cgroups); a later move of the sandbox's processes by a process outside the sandbox is not covered");
        let c = &plan.limits.cgroups;
        let v2 = [
            c.memory.as_ref().map(|(_, h)| h),
            c.pids.as_ref().map(|(_, h)| h),
            c.cpu.as_ref(),
        ]
        .into_iter()
        .flatten()
        .any(|h| matches!(h, crate::kernel::cgroup::Hierarchy::V2(..)));
        if v2 && plan.tier == Tier::Namespaces {
            push(&mut g, "limits", "cgroup v2: where init is born in the run's v2 cgroup (clone3 with CLONE_INTO_CGROUP), the kernel makes that cgroup the root of the sandbox's cgroup namespace, so the command's read-back shows \"0::/\": that it is at the root clone3 set, not the cgroup's name");
        }
    }
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
                asked: "cw-exec (a per-user kernel quota)".into(),
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
        "binds": plan.binds.iter().map(|b| b.describe(plan.landlock)).collect::<Vec<_>>(),
        "runAs": plan.run_as.map(|(uid, gid)| json!({"uid": uid, "gid": gid})),
        "runtimeAllowance": runtime,
        "agentInstall": plan.agent_install.iter().map(|g| json!({"path": g.path, "access": g.access.describe()})).collect::<Vec<_>>(),
        "tier": {
            "tier": plan.tier,
            "choice": plan.tier_choice,
            "reason": plan.tier_reason,
            "runDir": plan.run_dir,
            "split": plan.split.iter().map(|(g, around)| json!({"grant": g, "around": around})).collect::<Vec<_>>(),
        },
        "credentialMasks": plan.masks,
        "grantsSkipped": plan.skipped,
        "privateHome": plan.private_home,
        "execAllowlist": plan.exec_allowlist,
        "nativeCode": plan.native_code,
        "execPrograms": plan.exec_programs,
        "execProbe": plan.exec_probe,
        "envRule": plan.env_rule,
        "network": plan.net.as_str(),
        "mountView": crate::kernel::mount_view::describe(&plan.view()),
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
    use super::*;
    use crate::plan::{EnvBase, Request};
    use crate::readback::{NamespacePair, Probe};

    fn plan(req: Request) -> Plan {
        Plan::build(&Request {
            command: vec!["/bin/true".into()],
            ..req
        })
        .unwrap()
    }

    /// A read-back in which every mechanism is live, as the child would report it.
    fn live(plan: &Plan) -> KernelReadback {
        let probe = |name: &str, expect: &str| Probe {
            name: name.into(),
            attempt: String::new(),
            expect: expect.into(),
            got: expect.into(),
        };
        let mut probes = vec![
            probe("read-outside-grants", "EACCES"),
            probe("write-outside-grants", "EROFS"),
            probe("write-landlock", "EACCES"),
            probe("memfd-exec", "EPERM"),
            probe("io-uring", "EPERM"),
            probe("socket-inet", "EPERM"),
            probe("tcp-connect", "EACCES"),
            probe("setid-chmod", "EPERM"),
            probe("setid-create", "EPERM"),
            probe("native-code", "EPERM"),
            probe(
                crate::readback::SECCOMP_INSTALLED,
                &format!("+{}", plan.seccomp.filters.len()),
            ),
        ];
        if plan.exec_allowlist {
            probes.push(probe("exec-outside-allowlist", "EACCES"));
        }
        let status = [
            ("NoNewPrivs", "1".to_string()),
            ("Seccomp", "2".to_string()),
            ("Seccomp_filters", plan.seccomp.filters.len().to_string()),
            ("CapEff", "0000000000000000".to_string()),
            ("CapBnd", "0000000000000000".to_string()),
        ];
        let ns = |a, b| NamespacePair {
            sandbox: a,
            host: b,
        };
        KernelReadback {
            landlock: crate::kernel::landlock::LandlockOutcome {
                abi: plan.landlock.0,
                status: "fully_enforced".into(),
                handled_fs: plan.landlock.handled_fs().names(),
                handled_net: vec![],
                scopes: vec![],
                rules: 1,
            },
            proc_status: status
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            namespaces: [("mnt".to_string(), ns(1, 2)), ("net".to_string(), ns(3, 4))]
                .into_iter()
                .collect(),
            probes,
            env_names: plan.env.keys().cloned().collect(),
            quotas: vec![],
            interfaces: vec!["lo".into()],
            tcp_listeners: vec![crate::netpolicy::proxy_listener()],
            cgroups: vec![],
        }
    }

    /// The Landlock tier's gap says whether the sandbox can signal the host's processes (init
    /// and cw-exec among them): not with Landlock's signal scope (ABI 6), yes without it.
    #[test]
    fn the_landlock_tiers_gap_says_whether_signals_are_scoped() {
        let mut p = plan(Request::default());
        p.tier = Tier::Landlock;
        let text = |p: &Plan| gaps(p)["limits"].join("\n");
        p.landlock = crate::kernel::landlock::LandlockAbi(6);
        assert!(text(&p).contains("it cannot signal them"), "{}", text(&p));
        p.landlock = crate::kernel::landlock::LandlockAbi(5);
        assert!(text(&p).contains("no signal scope"), "{}", text(&p));
        assert!(!text(&p).contains("it cannot signal them"), "{}", text(&p));
    }

    fn with_probe(mut rb: KernelReadback, name: &str, got: &str) -> KernelReadback {
        rb.probes.iter_mut().find(|p| p.name == name).unwrap().got = got.into();
        rb
    }

    #[test]
    fn a_live_read_back_proves_every_dimension() {
        let p = plan(Request {
            exec: vec!["/usr/bin/true".into()],
            ..Default::default()
        });
        assert!(p.exec_probe.is_some(), "no exec probe target on this host");
        let v = verdict(&p, &live(&p));
        assert_eq!(v.enforced, Dimension::ALL, "{:#?}", v.reasons);
        assert!(!v.refused());
    }

    #[test]
    fn each_dimension_falls_alone_when_one_observed_fact_fails() {
        let p = plan(Request {
            exec: vec!["/usr/bin/true".into()],
            ..Default::default()
        });
        use Dimension::*;
        let same_ns = |mut rb: KernelReadback, kind: &str| {
            let pair = rb.namespaces.get_mut(kind).unwrap();
            pair.sandbox = pair.host;
            rb
        };
        let cases: Vec<(&str, KernelReadback, Dimension)> = vec![
            ("host mount namespace", same_ns(live(&p), "mnt"), Read),
            (
                "writable mount view",
                with_probe(live(&p), "write-outside-grants", "ok"),
                Write,
            ),
            (
                "set-id creation",
                with_probe(live(&p), "setid-create", "ok"),
                Write,
            ),
            ("io_uring", with_probe(live(&p), "io-uring", "ok"), Command),
            (
                "memfd exec",
                with_probe(live(&p), "memfd-exec", "ok"),
                Command,
            ),
            ("host network namespace", same_ns(live(&p), "net"), Network),
            (
                "AF_INET socket",
                with_probe(live(&p), "socket-inet", "ok"),
                Network,
            ),
        ];
        for (what, rb, dim) in cases {
            let v = verdict(&p, &rb);
            let expected: Vec<Dimension> =
                Dimension::ALL.into_iter().filter(|d| *d != dim).collect();
            assert_eq!(v.enforced, expected, "{what}: {:#?}", v.reasons);
            assert_eq!(v.unenforceable, vec![dim], "{what}");
        }
        // seccomp not in filter mode: command and network fall; caps still dropped.
        let mut rb = live(&p);
        rb.proc_status.insert("Seccomp".into(), "0".into());
        let v = verdict(&p, &rb);
        assert_eq!(v.enforced, vec![Read, Write, Env], "{:#?}", v.reasons);
        // An inherited filter (a container runtime's) in filter mode, but cw-exec's own
        // install added none: the filter count alone would pass, the before/after probe
        // does not.
        let mut rb = with_probe(live(&p), crate::readback::SECCOMP_INSTALLED, "+0");
        rb.proc_status.insert("Seccomp_filters".into(), "3".into());
        let v = verdict(&p, &rb);
        assert_eq!(v.enforced, vec![Read, Write, Env], "{:#?}", v.reasons);
        // Capabilities left: write and command fall.
        let mut rb = live(&p);
        rb.proc_status
            .insert("CapEff".into(), "000001ffffffffff".into());
        let v = verdict(&p, &rb);
        assert_eq!(v.enforced, vec![Read, Network, Env], "{:#?}", v.reasons);
    }

    #[test]
    fn configuration_alone_proves_nothing() {
        // --net host: nothing about the network is observed, so it is never enforced
        // (and not required).
        let p = plan(Request {
            net: Some(NetMode::Host),
            ..Default::default()
        });
        let v = verdict(&p, &live(&p));
        assert!(!v.enforced.contains(&Dimension::Network));
        assert!(v.reasons[&Dimension::Network].starts_with("not proven"));
        assert!(!v.required.contains(&Dimension::Network));
    }

    #[test]
    fn landlocks_own_status_is_not_enough_without_the_probes() {
        // The crate says "fully_enforced" in every case below; the probes say otherwise.
        let p = plan(Request {
            exec: vec!["/usr/bin/true".into()],
            ..Default::default()
        });
        for (probe, got, dim) in [
            ("read-outside-grants", "ok", Dimension::Read),
            ("write-landlock", "ok", Dimension::Write),
            ("exec-outside-allowlist", "EFAULT", Dimension::Command),
            (
                "exec-outside-allowlist",
                "inconclusive: access(X_OK) answered EACCES",
                Dimension::Command,
            ),
        ] {
            let v = verdict(&p, &with_probe(live(&p), probe, got));
            assert!(
                !v.enforced.contains(&dim),
                "{probe}={got}: {:#?}",
                v.reasons
            );
            assert!(v.unenforceable.contains(&dim), "{probe}={got}");
        }
        // A probe that did not run proves nothing either.
        let mut rb = live(&p);
        rb.probes.retain(|p| p.name != "exec-outside-allowlist");
        assert!(!verdict(&p, &rb).enforced.contains(&Dimension::Command));
    }

    #[test]
    fn without_an_exec_allowlist_command_is_not_enforced() {
        let p = plan(Request::default());
        let v = verdict(&p, &live(&p));
        assert!(
            !v.enforced.contains(&Dimension::Command),
            "{:#?}",
            v.reasons
        );
        assert!(!v.required.contains(&Dimension::Command));
    }

    #[test]
    fn the_env_check_fails_on_a_name_the_policy_does_not_allow() {
        let p = plan(Request::default());
        let mut rb = live(&p);
        rb.env_names.push("LD_PRELOAD".into());
        let v = verdict(&p, &rb);
        assert!(
            v.unenforceable.contains(&Dimension::Env),
            "{:#?}",
            v.reasons
        );
        assert!(
            v.reasons[&Dimension::Env].contains("LD_PRELOAD"),
            "{}",
            v.reasons[&Dimension::Env]
        );
        // A name twice (getenv takes the first, others the last) is refused as well.
        let mut rb = live(&p);
        rb.env_names.push("PATH".into());
        assert!(verdict(&p, &rb).unenforceable.contains(&Dimension::Env));
    }

    #[test]
    fn the_env_rule_is_the_policys() {
        let req = Request {
            env_base: EnvBase::CoolWorkflow { inherit: true },
            env_deny: vec!["AWS_SECRET_ACCESS_KEY".into()],
            setenv: vec!["CW_WORKBENCH_TOKEN=set-by-the-caller".into()],
            ..Default::default()
        };
        let rule = EnvRule::of(&req, &crate::policy::Profile::default());
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(env_check(&rule, &names(&["ANYTHING", "PATH"])).is_ok());
        assert!(env_check(&rule, &names(&["AWS_SECRET_ACCESS_KEY"])).is_err());
        assert!(env_check(&rule, &names(&["CW_RELEASE_VERDICT_PRIVKEY"])).is_err());
        assert!(env_check(&rule, &names(&["CW_WORKBENCH_TOKEN"])).is_ok());
        let scratch = EnvRule::of(&Request::default(), &crate::policy::Profile::default());
        assert!(env_check(&scratch, &names(&["PATH", "HOME", "TMPDIR"])).is_ok());
        assert_eq!(
            env_check(&scratch, &names(&["PATH", "ANTHROPIC_API_KEY", "USER"])),
            Err("ANTHROPIC_API_KEY, USER".to_string())
        );
    }

    #[test]
    fn iso8601_shape() {
        let s = super::now_iso8601();
        assert_eq!(s.len(), 24, "{s}");
        assert!(s.ends_with('Z') && s.as_bytes()[10] == b'T', "{s}");
    }

    /// The Landlock tier: a command that is root on the host had its bounding set emptied by
    /// init (which could); a read-back that shows it full (init skipped the step) proves no
    /// "no capabilities", though CapEff and CapPrm are empty and no_new_privs is set. An
    /// unprivileged command's full set (nothing could empty it) still proves it.
    #[test]
    fn a_root_commands_full_bounding_set_is_refused_in_the_landlock_tier() {
        use crate::model::TierChoice;
        let p = plan(Request {
            exec: vec!["/usr/bin/true".into()],
            tier: Some(TierChoice::Landlock),
            ..Default::default()
        });
        assert_eq!(p.tier, Tier::Landlock);
        let with = |uid: &str, bnd: &str| {
            let mut rb = live(&p);
            for (k, v) in [
                ("Uid", uid),
                ("CapBnd", bnd),
                ("CapPrm", "0000000000000000"),
                ("CapEff", "0000000000000000"),
            ] {
                rb.proc_status.insert(k.into(), v.into());
            }
            verdict(&p, &rb)
        };
        let empty = with("0 0 0 0", "0000000000000000");
        let full = with("0 0 0 0", "000001ffffffffff");
        let unprivileged = with("1000 1000 1000 1000", "000001ffffffffff");
        assert!(
            empty.enforced.contains(&Dimension::Write),
            "{:#?}",
            empty.reasons
        );
        assert_eq!(unprivileged.enforced, empty.enforced);
        for dim in [Dimension::Write, Dimension::Command] {
            assert!(
                !full.enforced.contains(&dim),
                "{dim:?}: {:#?}",
                full.reasons
            );
        }
    }
}
