//! cw-exec as a Raxcell provider (Praxis's sandbox protocol, ../shared/contracts/raxcell.md):
//! invoked as `raxcell` (argv0) or `cw-exec raxcell`, one JSON request in on stdin (or
//! `--json`), exactly one JSON document out on stdout, exit 0 for every protocol outcome and
//! 1 (with a message on stderr) for usage errors, invalid JSON and a wrong request kind.
//!
//! `run` enforces with the same machinery as `cw-exec run` (a `plan::Request` lowered from
//! the request, `Plan::build`, `supervise::run`) and returns cw-exec's signed attestation
//! beside the protocol's fields. `prepare-run` spawns nothing: it checks the request in the
//! protocol's order, with a static analysis of the command (`analyse`) standing in for what
//! the kernel will decide anyway.

pub mod analyse;

use std::collections::BTreeMap;
use std::io::{Read, Seek, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::model::{Dimension, Failing, NetMode, Refusal, RefusalCode};
use crate::plan::{self, EnvBase, Plan, Request};
use crate::policy::{LimitsPolicy, Size};
use crate::{attest, cli, envelope, seal, supervise};

/// The protocol's name for the Linux backend family Praxis asks for; cw-exec serves its
/// contract (with more enforcement than the reference's bubblewrap).
pub const BACKEND: &str = "linux-bubblewrap";

/// The bundled profile every Raxcell run starts from (policies/raxcell.toml).
const PROFILE: &str = "raxcell";

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The largest request read (a run request carries the command's stdin).
const MAX_REQUEST: u64 = 64 << 20;

const USAGE: &str = "\
usage: raxcell <command> [--stdin] [--json '<request>']
       cw-exec raxcell <command> ...

Raxcell provider (Praxis's sandbox protocol) backed by cw-exec: the request is read from
stdin (or --json), one JSON result is written to stdout.

commands:
  probe            raxcell.probe.v1 -> raxcell.probeResult.v1 (stdin may be empty)
  explain-backend  raxcell.explainBackend.v1 -> raxcell.explainBackendResult.v1 (stdin may be empty)
  prepare-run      raxcell.run.v1 -> raxcell.prepareRunResult.v1 (spawns nothing)
  run              raxcell.run.v1 -> raxcell.runResult.v1
  resolve-profile  raxcell.resolveProfile.v1 -> raxcell.resolvedProfile.v1
  --version        the version

Set RAXCELL_BIN to a link named raxcell to cw-exec (docs/praxis.md).
";

/// Whether cw-exec was started under the name `raxcell` (a link to it).
pub fn invoked_as_provider() -> bool {
    std::env::args_os()
        .next()
        .map(|a| Path::new(&a).file_name() == Some(std::ffi::OsStr::new("raxcell")))
        .unwrap_or(false)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Sub {
    Probe,
    Explain,
    Prepare,
    Run,
    Resolve,
}

impl Sub {
    fn request_kind(self) -> &'static str {
        match self {
            Sub::Probe => "raxcell.probe.v1",
            Sub::Explain => "raxcell.explainBackend.v1",
            Sub::Prepare | Sub::Run => "raxcell.run.v1",
            Sub::Resolve => "raxcell.resolveProfile.v1",
        }
    }
}

fn usage_error(message: impl std::fmt::Display) -> i32 {
    eprintln!("{message}");
    eprint!("{USAGE}");
    1
}

fn fail(message: impl std::fmt::Display) -> i32 {
    eprintln!("{message}");
    1
}

/// The provider: `args` are the arguments after `raxcell` (or after `cw-exec raxcell`).
pub fn main(args: &[String]) -> i32 {
    let mut sub: Option<Sub> = None;
    let mut json_arg: Option<String> = None;
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        i += 1;
        match a {
            "-v" | "--version" | "version" if sub.is_none() => {
                println!("raxcell (cw-exec) {VERSION}");
                return 0;
            }
            "-h" | "--help" | "help" => {
                print!("{USAGE}");
                return 0;
            }
            "--stdin" => {}
            "--json" => match args.get(i) {
                Some(v) => {
                    json_arg = Some(v.clone());
                    i += 1;
                }
                None => return usage_error("--json needs the request as its value"),
            },
            _ if a.starts_with("--json=") => json_arg = Some(a["--json=".len()..].to_string()),
            _ if a.starts_with('-') => return usage_error(format!("Unknown option: {a}")),
            _ if sub.is_some() => return usage_error(format!("Unexpected argument: {a}")),
            "probe" => sub = Some(Sub::Probe),
            "explain-backend" => sub = Some(Sub::Explain),
            "prepare-run" => sub = Some(Sub::Prepare),
            "run" => sub = Some(Sub::Run),
            "resolve-profile" => sub = Some(Sub::Resolve),
            other => return fail(format!("Unknown raxcell command: {other}")),
        }
    }
    let Some(sub) = sub else {
        print!("{USAGE}");
        return 0;
    };
    let text = match json_arg {
        Some(t) => t,
        None => {
            let read = crate::fsio::read_limited(std::io::stdin().lock(), MAX_REQUEST)
                .and_then(|b| String::from_utf8(b).map_err(std::io::Error::other));
            match read {
                Ok(t) => t,
                Err(e) => return fail(format!("Invalid JSON request: reading stdin: {e}")),
            }
        }
    };
    let request: Value = if text.trim().is_empty() {
        match sub {
            Sub::Probe | Sub::Explain => json!({
                "kind": sub.request_kind(), "platform": "auto",
                "backendPreference": [BACKEND], "requirements": {},
            }),
            _ => return fail("Invalid JSON request: the request is empty"),
        }
    } else {
        match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => return fail(format!("Invalid JSON request: {e}")),
        }
    };
    let kind = request.get("kind").and_then(Value::as_str).unwrap_or("");
    if kind != sub.request_kind() {
        return fail(format!(
            "Unexpected raxcell request kind: {}; expected {}",
            if kind.is_empty() { "(none)" } else { kind },
            sub.request_kind()
        ));
    }
    let reply = match sub {
        Sub::Probe => probe(&request),
        Sub::Explain => explain_backend(&request),
        Sub::Resolve => match resolve_profile(&request) {
            Ok(v) => v,
            Err(e) => return fail(format!("Invalid raxcell.resolveProfile.v1 request: {e}")),
        },
        Sub::Prepare | Sub::Run => {
            let req = match RunRequest::parse(&request) {
                Ok(r) => r,
                Err(e) => return fail(format!("Invalid raxcell.run.v1 request: {e}")),
            };
            if sub == Sub::Prepare {
                prepare(&req, &readiness()).reply()
            } else {
                run(&req)
            }
        }
    };
    let text = serde_json::to_string(&reply).unwrap_or_default();
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{text}").and_then(|_| out.flush()).is_err() {
        return 1;
    }
    0
}

// ---------------------------------------------------------------------------------------
// The run request

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Network {
    Deny,
    Allow,
}

#[derive(Clone, Debug)]
struct PolicyGrant {
    /// Absolute, lexically normalized.
    path: PathBuf,
    read: bool,
    write: bool,
    /// The grant as it came (reported back in the lowering).
    given: Value,
}

/// A `raxcell.run.v1` request, validated. Paths are absolute and normalized (relative ones
/// against the provider's working directory, which is the caller's).
#[derive(Clone, Debug)]
struct RunRequest {
    backend_preference: Vec<String>,
    grants: Vec<PolicyGrant>,
    argv: Vec<String>,
    cwd: PathBuf,
    env: BTreeMap<String, String>,
    stdin: Option<String>,
    read_roots: Vec<PathBuf>,
    write_roots: Vec<PathBuf>,
    network: Network,
    timeout_ms: Option<f64>,
    max_output: Option<u64>,
    max_processes: Option<u64>,
    action_id: Option<String>,
    /// Request fields that were ignored, as lowering warnings.
    warnings: Vec<(String, String)>,
}

fn strings(v: &Value, field: &str) -> Result<Vec<String>, String> {
    match v {
        Value::Null => Ok(vec![]),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, x)| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("{field}[{i}] must be a string"))
            })
            .collect(),
        _ => Err(format!("{field} must be an array of strings")),
    }
}

fn absolute(base: &Path, p: &str) -> PathBuf {
    plan::normalize(&base.join(p))
}

/// A positive number from `resources`, or None with a warning why it is not applied.
fn positive(resources: &Value, field: &str, warnings: &mut Vec<(String, String)>) -> Option<f64> {
    let v = resources.get(field)?;
    match v.as_f64() {
        Some(n) if n.is_finite() && n > 0.0 => Some(n),
        _ if v.is_null() => None,
        _ => {
            warnings.push((
                "resource-ignored".into(),
                format!(
                    "enforcement.resources.{field} = {v} is not a positive number: not applied"
                ),
            ));
            None
        }
    }
}

impl RunRequest {
    fn parse(v: &Value) -> Result<RunRequest, String> {
        let here = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        let command = v
            .get("command")
            .filter(|c| c.is_object())
            .ok_or("command must be an object")?;
        let argv = match command.get("argv") {
            Some(a @ Value::Array(_)) => strings(a, "command.argv")?,
            _ => return Err("command.argv must be an array".into()),
        };
        if argv.is_empty() {
            return Err("command.argv must not be empty".into());
        }
        if argv.iter().any(|a| a.contains('\0')) {
            return Err("command.argv: an argument contains a NUL byte".into());
        }
        let cwd = command
            .get("cwd")
            .and_then(Value::as_str)
            .ok_or("command.cwd must be a string")?;
        let mut env = BTreeMap::new();
        match command.get("env") {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                for (k, val) in m {
                    let s = val
                        .as_str()
                        .ok_or_else(|| format!("command.env.{k} must be a string"))?;
                    env.insert(k.clone(), s.to_string());
                }
            }
            Some(_) => return Err("command.env must be an object".into()),
        }
        let stdin = match command.get("stdin") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err("command.stdin must be a string or null".into()),
        };
        let enforcement = v
            .get("enforcement")
            .filter(|e| e.is_object())
            .ok_or("enforcement must be an object")?;
        let fs = enforcement
            .get("filesystem")
            .cloned()
            .unwrap_or(Value::Null);
        if !(fs.is_object() || fs.is_null()) {
            return Err("enforcement.filesystem must be an object".into());
        }
        let read_roots = strings(&fs["read"], "enforcement.filesystem.read")?;
        let write_roots = strings(&fs["write"], "enforcement.filesystem.write")?;
        let network = match enforcement.get("network") {
            None | Some(Value::Null) => Network::Deny,
            Some(Value::String(s)) if s == "deny" => Network::Deny,
            Some(Value::String(s)) if s == "allow" => Network::Allow,
            Some(other) => {
                return Err(format!(
                    "enforcement.network must be \"deny\" or \"allow\", not {other}"
                ))
            }
        };
        let mut warnings = vec![];
        let resources = enforcement.get("resources").cloned().unwrap_or(Value::Null);
        let timeout_ms = positive(&resources, "timeoutMs", &mut warnings);
        let max_output = positive(&resources, "maxOutputBytes", &mut warnings).map(|n| n as u64);
        let max_processes = positive(&resources, "maxProcesses", &mut warnings).map(|n| n as u64);
        if let Some(Value::Object(m)) = enforcement.get("process") {
            if !m.is_empty() {
                warnings.push((
                    "process-ignored".into(),
                    format!(
                        "enforcement.process keys {:?} have no meaning here: cw-exec always runs the command in its own PID namespace, with no capabilities and no_new_privs",
                        m.keys().collect::<Vec<_>>()
                    ),
                ));
            }
        }
        let mut grants = vec![];
        match v.get("policyGrants") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for (i, g) in items.iter().enumerate() {
                    let path = g
                        .get("path")
                        .and_then(Value::as_str)
                        .ok_or_else(|| format!("policyGrants[{i}].path must be a string"))?;
                    let access = strings(
                        g.get("access").unwrap_or(&Value::Null),
                        &format!("policyGrants[{i}].access"),
                    )?;
                    let mut read = false;
                    let mut write = false;
                    for a in &access {
                        match a.to_ascii_lowercase().as_str() {
                            "read" | "filesystem.read" => read = true,
                            "write" | "filesystem.write" => write = true,
                            other => warnings.push((
                                "grant-access-ignored".into(),
                                format!("policyGrants[{i}].access {other:?}: neither read nor write, ignored"),
                            )),
                        }
                    }
                    grants.push(PolicyGrant {
                        path: absolute(&here, path),
                        read: read || write,
                        write,
                        given: g.clone(),
                    });
                }
            }
            Some(_) => return Err("policyGrants must be an array".into()),
        }
        Ok(RunRequest {
            backend_preference: strings(
                v.get("backendPreference").unwrap_or(&Value::Null),
                "backendPreference",
            )?,
            grants,
            argv,
            cwd: absolute(&here, cwd),
            env,
            stdin,
            read_roots: read_roots.iter().map(|r| absolute(&here, r)).collect(),
            write_roots: write_roots.iter().map(|r| absolute(&here, r)).collect(),
            network,
            timeout_ms,
            max_output,
            max_processes,
            action_id: v["action"]["actionId"].as_str().map(str::to_string),
            warnings,
        })
    }

    /// Whether a path lies in a declared root or grant with the access asked for.
    fn covers(&self, path: &Path, write: bool) -> bool {
        let roots = self
            .write_roots
            .iter()
            .chain(self.grants.iter().filter(|g| g.write).map(|g| &g.path));
        let readable = self
            .read_roots
            .iter()
            .chain(self.grants.iter().filter(|g| g.read).map(|g| &g.path));
        if write {
            roots.into_iter().any(|r| path.starts_with(r))
        } else {
            readable
                .chain(self.write_roots.iter())
                .any(|r| path.starts_with(r))
        }
    }

    fn label(&self) -> String {
        self.action_id
            .clone()
            .unwrap_or_else(|| self.argv.join(" "))
    }
}

// ---------------------------------------------------------------------------------------
// Readiness and backend selection

/// One mechanism cw-exec needs, checked without spawning anything.
#[derive(Clone, Debug)]
struct Mechanism {
    name: &'static str,
    ok: bool,
    detail: String,
}

fn read_number(path: &str) -> Option<i64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// What prepare-run can know without spawning: Landlock (a syscall), seccomp (the kernel's
/// status field), user namespaces (the sysctls that switch them off). `run` finds out for
/// real and refuses when the sandbox cannot be built.
fn readiness() -> Vec<Mechanism> {
    let abi = crate::sys::landlock_abi();
    let landlock = Mechanism {
        name: "landlock",
        ok: matches!(abi, Ok(n) if n >= 1),
        detail: match &abi {
            Ok(n) => format!("Landlock ABI {n}"),
            Err(e) => format!("Landlock is unavailable: {e}"),
        },
    };
    let seccomp_ok = std::fs::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Seccomp:")))
        .unwrap_or(false);
    let seccomp = Mechanism {
        name: "seccomp",
        ok: seccomp_ok,
        detail: if seccomp_ok {
            "seccomp filters".into()
        } else {
            "the kernel has no seccomp support".into()
        },
    };
    let root = nix::unistd::getuid().is_root();
    let max = read_number("/proc/sys/user/max_user_namespaces");
    let unpriv = read_number("/proc/sys/kernel/unprivileged_userns_clone");
    let (ns_ok, ns_detail) = if max == Some(0) {
        (
            false,
            "user namespaces are disabled (user.max_user_namespaces = 0)".to_string(),
        )
    } else if !root && unpriv == Some(0) {
        (
            false,
            "unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone = 0)"
                .to_string(),
        )
    } else {
        (true, "user namespaces".to_string())
    };
    vec![
        landlock,
        seccomp,
        Mechanism {
            name: "user-namespaces",
            ok: ns_ok,
            detail: ns_detail,
        },
    ]
}

/// What to do about a missing mechanism.
fn next_action(name: &str) -> &'static str {
    match name {
        "landlock" => "Enable Landlock: a Linux >= 5.13 kernel with landlock in the lsm= boot parameter.",
        "seccomp" => "Use a kernel built with CONFIG_SECCOMP_FILTER.",
        "namespaces" | "user-namespaces" => "Allow user namespaces: sysctl user.max_user_namespaces > 0 and kernel.unprivileged_userns_clone = 1 (and AppArmor's kernel.apparmor_restrict_unprivileged_userns = 0) for unprivileged users.",
        _ => "Run `cw-exec probe` for details.",
    }
}

/// The backend for a preference list: the caller's first choice decides. cw-exec serves the
/// `linux-bubblewrap` family; any other first choice is refused, never replaced.
fn select_backend(preference: &[String]) -> Result<&'static str, String> {
    match preference.first().map(String::as_str) {
        None | Some(BACKEND) => Ok(BACKEND),
        Some(other) => Err(format!(
            "Backend {other} is not provided by this Raxcell provider (cw-exec serves {BACKEND} only); it is refused, not replaced by another backend."
        )),
    }
}

// ---------------------------------------------------------------------------------------
// prepare-run

struct Denial {
    code: &'static str,
    message: String,
}

struct Decision {
    reason: &'static str,
    path: Option<String>,
    required: Vec<&'static str>,
    message: String,
}

impl Decision {
    fn to_json(&self) -> Value {
        json!({
            "reason": self.reason,
            "path": self.path,
            "required": self.required,
            "publicSafeMessage": self.message,
        })
    }
}

/// What prepare-run found (and what run goes on with).
struct Prepared {
    backend: Option<&'static str>,
    denial: Option<Denial>,
    decision: Option<Decision>,
    gap: Option<Decision>,
    lowering: Value,
    artifacts: Vec<Value>,
    capability: Value,
    /// Write grants of paths that do not exist yet: created (empty) before the run, as
    /// directories where the command creates a directory there.
    materialize: Vec<(PathBuf, bool)>,
}

impl Prepared {
    fn ok(&self) -> bool {
        self.denial.is_none() && self.decision.is_none() && self.gap.is_none()
    }

    fn reply(&self) -> Value {
        let ok = self.ok();
        json!({
            "kind": "raxcell.prepareRunResult.v1",
            "ok": ok,
            "backend": self.backend,
            "denial": self.denial.as_ref().map(denial_json),
            "policyDecision": self.decision.as_ref().map(Decision::to_json),
            "environmentGap": self.gap.as_ref().map(Decision::to_json),
            "filesystemLowering": self.lowering,
            "backendArtifacts": if ok { self.artifacts.clone() } else { vec![] },
            "capabilityReport": self.capability,
            "provider": provider(),
        })
    }
}

fn denial_json(d: &Denial) -> Value {
    json!({"code": d.code, "message": d.message, "publicSafe": true})
}

fn provider() -> Value {
    json!({"name": "cw-exec", "version": VERSION})
}

fn root(path: &Path, access: &str, source: &str) -> Value {
    json!({"path": path.display().to_string(), "access": access, "source": source})
}

/// cw-exec's runtime allowance as Raxcell roots: the plan's when there is one, else the
/// candidates that exist here. The private /tmp is `scratch`, a merged-usr link
/// `runtime-link`.
fn runtime_roots(plan: Option<&Plan>) -> Vec<Value> {
    let mut out = vec![];
    match plan {
        Some(p) => {
            for g in &p.runtime {
                let link = Path::new(&g.requested) != g.path;
                out.push(root(
                    Path::new(&g.requested),
                    if link { "runtime-link" } else { "runtime" },
                    "backend-runtime",
                ));
            }
        }
        None => {
            for r in plan::RUNTIME_READ {
                let Ok(meta) = Path::new(r).symlink_metadata() else {
                    continue;
                };
                let access = if meta.file_type().is_symlink() {
                    "runtime-link"
                } else {
                    "runtime"
                };
                out.push(root(Path::new(r), access, "backend-runtime"));
            }
        }
    }
    for (dev, _) in plan::RUNTIME_DEVICES {
        if Path::new(dev).exists() {
            out.push(root(Path::new(dev), "runtime", "backend-runtime"));
        }
    }
    out.push(root(Path::new("/proc"), "runtime", "backend-runtime"));
    // The run's own tmpfs: /tmp, /dev/shm and, unless a root grants it, an empty HOME.
    for scratch in [plan::PRIVATE_TMP, plan::PRIVATE_SHM] {
        out.push(root(Path::new(scratch), "scratch", "backend-runtime"));
    }
    if let Some(home) = plan.and_then(|p| p.private_home.as_ref()) {
        out.push(root(home, "scratch", "backend-runtime"));
    }
    out
}

/// Per dimension, what the kernel will enforce for this request (a plan's required set when
/// there is a plan; otherwise what the request asks for, where the mechanisms are present).
fn capability_report(req: Option<&RunRequest>, plan: Option<&Plan>, ready: bool) -> Value {
    let network_deny = req.map(|r| r.network == Network::Deny).unwrap_or(true);
    let required: Vec<Dimension> = match plan {
        Some(p) => p.required(),
        None if ready => plan::required_native(
            false,
            if network_deny {
                NetMode::None
            } else {
                NetMode::Host
            },
        ),
        None => vec![],
    };
    let mechanism = |d: Dimension| {
        match d {
        Dimension::Read => "Landlock (every filesystem right handled) + a mount view holding only the declared roots, grants and runtime allowance; credentials inside a root are masked",
        Dimension::Write => "Landlock write rights + a read-only mount view except the write roots and grants",
        Dimension::Command => "not restricted: the protocol has no exec allowlist, so any readable file may run; seccomp still denies io_uring, bpf, ptrace, mount, namespaces, kernel keyrings",
        Dimension::Network if network_deny => "a new network namespace + seccomp (AF_UNIX only) + Landlock TCP bind/connect denial + abstract Unix socket scoping",
        Dimension::Network => "network \"allow\": the host network, unrestricted",
        Dimension::Env => "execve with exactly command.env plus PATH, checked before exec",
    }
    };
    let dims: Vec<Value> = Dimension::ALL
        .iter()
        .map(|d| {
            json!({
                "dimension": d.as_str(),
                "enforced": required.contains(d),
                "mechanism": mechanism(*d),
            })
        })
        .collect();
    let mut report = json!({
        "backend": BACKEND,
        "provider": "cw-exec",
        "providerVersion": VERSION,
        "summary": "cw-exec serves the linux-bubblewrap contract with kernel enforcement beyond the reference: Landlock, seccomp, namespaces, limits, and a signed attestation read back from the kernel inside the sandbox before exec; a dimension that cannot be proven there is refused, not run.",
        "dimensions": dims,
        "attestation": "kernel read-back before exec (Landlock, seccomp, namespaces, capabilities, env), signed with this host's cw-exec key (`cw-exec key show`), returned as `attestation` in run replies",
    });
    if let Some(p) = plan {
        let mut limits: Vec<Value> = p
            .limits
            .reports
            .iter()
            .map(|r| serde_json::to_value(r).unwrap_or(Value::Null))
            .collect();
        if let Some(t) = p.timeout {
            limits.push(json!({"limit": "timeout", "requested": format!("{}ms", t.as_millis()), "explicit": true, "mechanism": "cw-exec's supervisor: SIGTERM then SIGKILL of the whole PID namespace", "wholeSandbox": true}));
        }
        report["limits"] = json!(limits);
        report["gaps"] = json!(attest::gaps(p));
    }
    report
}

/// The `cw-exec run` command line equivalent to the request.
fn artifact(req: &RunRequest, lowered: &Request) -> Value {
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "cw-exec".into());
    let mut args = vec![exe, "run".into(), "--profile".into(), PROFILE.into()];
    args.push("--cwd".into());
    args.push(req.cwd.display().to_string());
    for r in &lowered.read {
        args.push("--read".into());
        args.push(r.clone());
    }
    for w in &lowered.write {
        args.push("--write".into());
        args.push(w.clone());
    }
    args.push("--net".into());
    args.push(lowered.net.unwrap_or(NetMode::None).as_str().into());
    if let Some(t) = lowered.limits.timeout {
        args.push("--timeout".into());
        args.push(format!("{t}"));
    }
    if let Some(o) = lowered.limits.output_limit {
        args.push("--output-limit".into());
        args.push(o.0.to_string());
    }
    if let Some(p) = lowered.limits.pids {
        args.push("--pids".into());
        args.push(p.to_string());
    }
    for (k, v) in &req.env {
        args.push("--setenv".into());
        args.push(format!("{k}={v}"));
    }
    args.push("--".into());
    args.extend(req.argv.iter().cloned());
    let mut warnings = vec![
        json!({"code": "env-base", "message": "by hand, cw-exec run also sets HOME, LANG, TMPDIR (and TERM when set) unless --setenv gives them, and expands a value starting with $ as a path token; the provider passes exactly command.env plus PATH"}),
    ];
    if req.stdin.is_some() {
        warnings.push(json!({"code": "stdin", "message": "the provider feeds command.stdin on descriptor 0; pipe it in by hand"}));
    }
    json!({
        "backend": BACKEND,
        "format": "argv",
        "arguments": args,
        "data": {"provider": "cw-exec", "profile": PROFILE, "cwd": req.cwd.display().to_string(), "envNames": req.env.keys().collect::<Vec<_>>()},
        "warnings": warnings,
    })
}

/// The `plan::Request` for a run request: the `raxcell` profile, the roots and grants that
/// exist (plus `created`: write grants made for the run), exactly `command.env` plus PATH.
fn lower(req: &RunRequest, created: &[PathBuf]) -> Request {
    let exists = |p: &Path| p.symlink_metadata().is_ok() || created.iter().any(|c| c == p);
    let mut read = vec![];
    let mut write = vec![];
    for r in &req.read_roots {
        if exists(r) {
            read.push(r.display().to_string());
        }
    }
    for w in &req.write_roots {
        if exists(w) {
            write.push(w.display().to_string());
        }
    }
    for g in &req.grants {
        if !exists(&g.path) {
            continue;
        }
        let list = if g.write { &mut write } else { &mut read };
        let text = g.path.display().to_string();
        if !list.contains(&text) {
            list.push(text);
        }
    }
    Request {
        profile: Some(PROFILE.into()),
        read,
        write,
        net: Some(match req.network {
            Network::Deny => NetMode::None,
            Network::Allow => NetMode::Host,
        }),
        cwd: Some(req.cwd.clone()),
        limits: LimitsPolicy {
            timeout: req
                .timeout_ms
                .map(|ms| ms / 1000.0)
                .filter(|s| crate::policy::check_timeout(*s).is_ok()),
            output_limit: req.max_output.map(Size),
            pids: req.max_processes,
            ..Default::default()
        },
        command: req.argv.clone(),
        env_base: EnvBase::Given,
        env_literal: req
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        ..Default::default()
    }
}

/// A plan failure as the protocol's denial (None: the command was not found, which run
/// reports like a shell does: exit 127).
fn plan_denial(err: &Refusal) -> Option<(Denial, Option<Decision>)> {
    let mechanism = err.mechanism.clone().unwrap_or_default();
    let message = &err.message;
    match (err.code, &err.failing) {
        (RefusalCode::CommandNotFound, _) => None,
        (RefusalCode::Unenforceable, Failing::Limit(limit)) => Some((
            Denial {
                code: "CAPABILITY_MISMATCH",
                message: format!(
                    "cw-exec cannot enforce the limit {limit} here as asked: {message}"
                ),
            },
            None,
        )),
        (RefusalCode::Unenforceable, Failing::Dimensions(dims)) => Some((
            Denial {
                code: "BACKEND_UNAVAILABLE",
                message: format!(
                    "cw-exec cannot enforce {} here ({mechanism}): {message}",
                    crate::model::names(dims).join(", ")
                ),
            },
            Some(Decision {
                reason: "missing-backend-dependency",
                path: Some(mechanism.clone()),
                required: vec![],
                message: format!("The sandbox backend is unavailable on this host: {message}"),
            }),
        )),
        _ => Some((
            Denial {
                code: "SANDBOX_DENIED",
                message: format!("cw-exec refuses this request: {message}"),
            },
            None,
        )),
    }
}

fn prepare(req: &RunRequest, ready: &[Mechanism]) -> Prepared {
    let mut warnings: Vec<Value> = req
        .warnings
        .iter()
        .map(|(c, m)| json!({"code": c, "message": m}))
        .collect();
    let declared: Vec<Value> = req
        .read_roots
        .iter()
        .map(|r| (r, "read"))
        .chain(req.write_roots.iter().map(|w| (w, "write")))
        .filter(|(p, _)| p.symlink_metadata().is_ok())
        .map(|(p, a)| root(p, a, "declared"))
        .collect();
    for r in req.read_roots.iter().chain(&req.write_roots) {
        if r.symlink_metadata().is_err() {
            warnings.push(json!({"code": "declared-root-missing", "message": format!("declared root {} does not exist: skipped (nothing to grant)", r.display())}));
        }
    }
    let grants: Vec<Value> = req.grants.iter().map(|g| g.given.clone()).collect();
    let mut materialize = vec![];
    let analysis = analyse::analyse(&req.argv, &req.cwd, &req.env, req.stdin.as_deref());
    for g in &req.grants {
        if g.path.symlink_metadata().is_ok() {
            continue;
        }
        if g.write {
            // A directory when the command creates a directory there.
            let dir = analysis
                .effects
                .iter()
                .any(|e| e.path == g.path && e.write && e.creates_dir);
            warnings.push(json!({"code": "write-grant-materialized", "message": format!("write grant {} does not exist: an empty {} is created there before the run", g.path.display(), if dir { "directory" } else { "file" })}));
            materialize.push((g.path.clone(), dir));
        } else {
            warnings.push(json!({"code": "grant-missing", "message": format!("read grant {} does not exist: skipped (nothing to grant)", g.path.display())}));
        }
    }
    for n in &analysis.notes {
        warnings.push(json!({"code": "analysis-incomplete", "message": n}));
    }
    let effects: Vec<Value> = analysis
        .effects
        .iter()
        .map(|e| {
            let mut access = vec![];
            if e.read {
                access.push("read");
            }
            if e.write {
                access.push("write");
            }
            json!({"path": e.path.display().to_string(), "access": access, "via": e.via, "exempt": analyse::exempt(&e.path)})
        })
        .collect();
    let mut lowering = json!({
        "declaredRoots": declared,
        "runtimeRoots": runtime_roots(None),
        "policyGrants": grants,
        "warnings": warnings,
        "effects": effects,
        "dynamicPaths": analysis.dynamic.iter().map(|d| json!({"token": d.token, "via": d.via})).collect::<Vec<_>>(),
    });
    let all_ready = ready.iter().all(|m| m.ok);
    let mut out = Prepared {
        backend: Some(BACKEND),
        denial: None,
        decision: None,
        gap: None,
        lowering: lowering.clone(),
        artifacts: vec![],
        capability: capability_report(Some(req), None, all_ready),
        materialize: materialize.clone(),
    };

    // 0. The backend asked for.
    if let Err(message) = select_backend(&req.backend_preference) {
        out.backend = None;
        out.denial = Some(Denial {
            code: "CAPABILITY_MISMATCH",
            message,
        });
        return out;
    }
    // 1. The backend's mechanisms.
    if let Some(m) = ready.iter().find(|m| !m.ok) {
        out.backend = None;
        out.denial = Some(Denial {
            code: "BACKEND_UNAVAILABLE",
            message: format!("cw-exec cannot build its sandbox here: {}", m.detail),
        });
        out.gap = Some(Decision {
            reason: "missing-backend-dependency",
            path: Some(m.name.to_string()),
            required: vec![],
            message: format!(
                "The sandbox backend is unavailable on this host ({}). {}",
                m.detail,
                next_action(m.name)
            ),
        });
        return out;
    }
    // 2. The working directory.
    let cwd_in_roots = req
        .read_roots
        .iter()
        .chain(&req.write_roots)
        .chain(req.grants.iter().map(|g| &g.path))
        .any(|r| req.cwd.starts_with(r));
    if !cwd_in_roots {
        out.decision = Some(Decision {
            reason: "cwd-outside-declared-roots",
            path: Some(req.cwd.display().to_string()),
            required: vec!["read"],
            message: "The command cwd is outside declared filesystem roots.".into(),
        });
        return out;
    }
    if !req.cwd.is_dir() {
        out.denial = Some(Denial {
            code: "SANDBOX_DENIED",
            message: format!(
                "The command cwd {} does not exist or is not a directory.",
                req.cwd.display()
            ),
        });
        return out;
    }
    // 3. Path words only known at run time.
    if let Some(d) = analysis.dynamic.first() {
        out.gap = Some(Decision {
            reason: "shell-dynamic-path-unresolved",
            path: Some(d.token.clone()),
            required: vec![if d.write { "write" } else { "read" }],
            message: "The command uses a shell path that cannot be resolved before it runs.".into(),
        });
        return out;
    }
    // 4. Paths outside the roots.
    for e in &analysis.effects {
        if analyse::exempt(&e.path) {
            continue;
        }
        let mut required = vec![];
        if e.read && !req.covers(&e.path, false) {
            required.push("read");
        }
        if e.write && !req.covers(&e.path, true) {
            required.push("write");
        }
        if !required.is_empty() {
            out.decision = Some(Decision {
                reason: "path-outside-declared-roots",
                path: Some(e.path.display().to_string()),
                required,
                message: "The command references a path outside declared filesystem roots.".into(),
            });
            return out;
        }
    }
    // 5. The plan cw-exec would run (built, nothing spawned).
    let lowered = lower(req, &[]);
    match Plan::build(&lowered) {
        Ok(plan) => {
            lowering["runtimeRoots"] = json!(runtime_roots(Some(&plan)));
            if !plan.masks.is_empty() {
                lowering["masked"] = json!(plan
                    .masks
                    .iter()
                    .map(|m| m.path.display().to_string())
                    .collect::<Vec<_>>());
            }
            out.capability = capability_report(Some(req), Some(&plan), true);
        }
        Err(e) => match plan_denial(&e) {
            None => {
                if let Some(w) = lowering["warnings"].as_array_mut() {
                    w.push(json!({"code": "command-not-found", "message": format!("{e}: run will report exit 127")}));
                }
            }
            Some((denial, gap)) => {
                if gap.is_some() {
                    out.backend = None;
                }
                out.denial = Some(denial);
                out.gap = gap;
                out.lowering = lowering;
                return out;
            }
        },
    }
    out.artifacts = vec![artifact(req, &lowered)];
    out.lowering = lowering;
    out
}

// ---------------------------------------------------------------------------------------
// run

/// The command's descriptors 0, 1 and 2 for the run: its stdin in a memfd (or /dev/null),
/// its stdout and stderr captured in memfds. `supervise` relays the sandbox's output into
/// these (with the output limit and the stdout hash) exactly as for `cw-exec run`; the
/// provider's own descriptors are restored before the reply is written.
struct Captured {
    saved: [OwnedFd; 3],
    out: OwnedFd,
    err: OwnedFd,
}

fn memfd(name: &str) -> Result<OwnedFd, String> {
    nix::sys::memfd::memfd_create(name, nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
        .map_err(|e| format!("memfd_create: {e}"))
}

fn saved(fd: std::os::fd::BorrowedFd<'_>) -> Result<OwnedFd, String> {
    let copy = nix::unistd::dup(fd).map_err(|e| format!("dup: {e}"))?;
    nix::fcntl::fcntl(
        &copy,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .map_err(|e| format!("fcntl: {e}"))?;
    Ok(copy)
}

impl Captured {
    fn start(stdin: Option<&str>) -> Result<Captured, String> {
        let saved = [
            saved(std::io::stdin().as_fd())?,
            saved(std::io::stdout().as_fd())?,
            saved(std::io::stderr().as_fd())?,
        ];
        let input: OwnedFd = match stdin {
            Some(text) => {
                let fd = memfd("raxcell-stdin")?;
                let mut f = std::fs::File::from(fd);
                f.write_all(text.as_bytes())
                    .and_then(|_| f.rewind())
                    .map_err(|e| format!("stdin: {e}"))?;
                f.into()
            }
            None => std::fs::File::open("/dev/null")
                .map_err(|e| format!("/dev/null: {e}"))?
                .into(),
        };
        let out = memfd("raxcell-stdout")?;
        let err = memfd("raxcell-stderr")?;
        let _ = std::io::stdout().flush();
        nix::unistd::dup2_stdin(&input).map_err(|e| format!("dup2: {e}"))?;
        nix::unistd::dup2_stdout(&out).map_err(|e| format!("dup2: {e}"))?;
        nix::unistd::dup2_stderr(&err).map_err(|e| format!("dup2: {e}"))?;
        Ok(Captured { saved, out, err })
    }

    /// Restores the provider's descriptors and returns what the command wrote.
    fn finish(self) -> (Vec<u8>, Vec<u8>) {
        let _ = std::io::stdout().flush();
        let [i, o, e] = &self.saved;
        let _ = nix::unistd::dup2_stdin(i);
        let _ = nix::unistd::dup2_stdout(o);
        let _ = nix::unistd::dup2_stderr(e);
        let read = |fd: OwnedFd| {
            let mut f = std::fs::File::from(fd);
            let mut buf = vec![];
            let _ = f.rewind().and_then(|_| f.read_to_end(&mut buf));
            buf
        };
        (read(self.out), read(self.err))
    }
}

/// Creates what a write grant names before the run: an empty file (or directory), never
/// through a symlink at its name.
fn materialize(path: &Path, dir: bool) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if dir {
        return std::fs::DirBuilder::new().mode(0o755).create(path);
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map(drop)
}

/// The run reply for a run that did not start (prepare's outcome, or a refusal after it).
fn not_run(prepared: &Prepared, attestation: Value) -> Value {
    let mut v = prepared.reply();
    v["kind"] = json!("raxcell.runResult.v1");
    v["ok"] = json!(false);
    v["exitCode"] = Value::Null;
    v["stdout"] = json!("");
    v["stderr"] = json!("");
    v["timedOut"] = json!(false);
    v["fallback"] = Value::Null;
    v["attestation"] = attestation;
    v
}

fn refused(mut prepared: Prepared, code: &'static str, message: String) -> Value {
    prepared.denial = Some(Denial { code, message });
    not_run(&prepared, Value::Null)
}

/// A signed refusal attestation for a run refused before any sandbox existed.
fn refusal_attestation(
    signer: &seal::Signer,
    lowered: &Request,
    label: &str,
    refusal: &Refusal,
) -> Value {
    let refused = cli::Refused {
        refusal: refusal.clone(),
        profile_id: PROFILE.into(),
        required: plan::required_native(false, lowered.net.unwrap_or(NetMode::None)),
        logs_dir: None,
    };
    let mut env = cli::refusal_envelope(&refused, label, envelope::Kind::Delegating);
    signer.seal(&mut env);
    env["provenance"]["attestation"].take()
}

fn run(req: &RunRequest) -> Value {
    let prepared = prepare(req, &readiness());
    if !prepared.ok() {
        return not_run(&prepared, Value::Null);
    }
    // The key exists before any sandbox of this run does (so that none can plant one).
    let signer = match seal::Signer::open(None) {
        Ok(s) => s,
        Err(e) => {
            return refused(
                prepared,
                "SANDBOX_DENIED",
                format!("cw-exec refuses to run: {e}"),
            )
        }
    };
    let mut created = vec![];
    for (path, dir) in prepared.materialize.clone() {
        if let Err(e) = materialize(&path, dir) {
            return refused(
                prepared,
                "WRITE_GRANT_MATERIALIZATION_FAILED",
                format!(
                    "The write grant {} could not be created: {e}",
                    path.display()
                ),
            );
        }
        created.push(path);
    }
    let lowered = lower(req, &created);
    let label = req.label();
    let plan = match Plan::build(&lowered) {
        Ok(p) => p,
        Err(e) => {
            return match plan_denial(&e) {
                Some((denial, gap)) => {
                    let att = refusal_attestation(&signer, &lowered, &label, &e);
                    let mut p = prepared;
                    if gap.is_some() {
                        p.backend = None;
                    }
                    p.denial = Some(denial);
                    p.gap = gap;
                    not_run(&p, att)
                }
                None => {
                    // Not found on the sandbox's PATH: what a shell reports, exit 127.
                    let message = format!("cw-exec: {e}\n");
                    let att = refusal_attestation(&signer, &lowered, &label, &e);
                    let mut v = not_run(&prepared, att);
                    v["ok"] = json!(true);
                    v["exitCode"] = json!(127);
                    v["stderr"] = json!(message);
                    v["denial"] = Value::Null;
                    v
                }
            };
        }
    };
    if let Err(e) = signer.check_plan(&plan) {
        return refused(prepared, "SANDBOX_DENIED", e);
    }
    let io = match Captured::start(req.stdin.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            return refused(
                prepared,
                "EXECUTION_FAILED",
                format!("cw-exec could not set up the command's stdio: {e}"),
            )
        }
    };
    let (plan, outcome) = supervise::run_falling_back(
        &lowered,
        plan,
        supervise::Capture {
            stdout: true,
            forward_stdout: true,
            stderr: true,
        },
    );
    let (out, err) = io.finish();
    let mut env = envelope::for_run(&plan, &outcome, &label, envelope::Kind::Delegating);
    signer.seal(&mut env);
    let attestation = env["provenance"]["attestation"].take();
    reply_for_outcome(prepared, &outcome, out, err, attestation)
}

fn reply_for_outcome(
    mut prepared: Prepared,
    outcome: &supervise::Outcome,
    out: Vec<u8>,
    err: Vec<u8>,
    attestation: Value,
) -> Value {
    let mut stderr = String::from_utf8_lossy(&err).into_owned();
    let mut say = |line: String| {
        if !stderr.is_empty() && !stderr.ends_with('\n') {
            stderr.push('\n');
        }
        stderr.push_str("cw-exec: ");
        stderr.push_str(&line);
        stderr.push('\n');
    };
    if let Some(e) = &outcome.exec_error {
        say(e.clone());
    }
    if outcome.cpu_exceeded {
        say("the sandbox exceeded its CPU time limit: the process tree was killed".into());
    }
    if outcome.oom_killed {
        say("the sandbox reached its memory limit: the kernel killed a process".into());
    }
    if outcome.output_dropped > 0 {
        say(format!(
            "output limit reached: {} bytes dropped",
            outcome.output_dropped
        ));
    }
    let mut exit_code = json!(outcome.exit_code);
    let mut ok = true;
    if outcome.timed_out {
        ok = false;
        exit_code = Value::Null;
        prepared.denial = Some(Denial {
            code: "RUNNER_TIMED_OUT",
            message: "Sandbox command timed out.".into(),
        });
    } else if let Some(refusal) = &outcome.refusal {
        ok = false;
        exit_code = Value::Null;
        let step = refusal.mechanism.clone().unwrap_or_default();
        let message = &refusal.message;
        let (code, gap) = match step.as_str() {
            "user namespaces" => ("BACKEND_UNAVAILABLE", true),
            supervise::CGROUPS_STEP => ("CAPABILITY_MISMATCH", false),
            "read-back" => ("SANDBOX_DENIED", false),
            _ => ("EXECUTION_FAILED", false),
        };
        if gap {
            prepared.backend = None;
            prepared.gap = Some(Decision {
                reason: "missing-backend-dependency",
                path: Some(step.clone()),
                required: vec![],
                message: format!("The sandbox backend is unavailable on this host: {message}"),
            });
        }
        prepared.denial = Some(Denial {
            code,
            message: format!("cw-exec refused to run the command ({step}): {message}"),
        });
    }
    let mut v = prepared.reply();
    v["kind"] = json!("raxcell.runResult.v1");
    v["ok"] = json!(ok);
    v["exitCode"] = exit_code;
    v["stdout"] = json!(String::from_utf8_lossy(&out));
    v["stderr"] = json!(stderr);
    v["timedOut"] = json!(outcome.timed_out);
    v["fallback"] = Value::Null;
    v["signal"] = json!(outcome.signal);
    v["durationMs"] = json!(outcome.duration.as_millis() as u64);
    v["outputTruncated"] = json!(outcome.output_dropped > 0);
    v["attestation"] = attestation;
    if !ok {
        v["backendArtifacts"] = json!(prepared.artifacts);
    }
    v
}

// ---------------------------------------------------------------------------------------
// probe, explain-backend, resolve-profile

/// `supports`, in Raxcell's vocabulary, from cw-exec's probe.
fn supports(dims: &[(&'static str, bool, String)], checks: &[crate::probe::Check]) -> Value {
    let dim = |d: &str| dims.iter().any(|(n, ok, _)| *n == d && *ok);
    let check = |c: &str| checks.iter().any(|x| x.name == c && x.ok);
    let level = |ok: bool| if ok { "full" } else { "unsupported" };
    let pids = checks
        .iter()
        .find(|c| c.name == "cgroups")
        .map(|c| !c.detail.contains("pids: none (an explicit"))
        .unwrap_or(false);
    json!({
        "filesystem.read": level(dim("read")),
        "filesystem.write": level(dim("write")),
        "filesystem.runtimeRoots": level(dim("read")),
        "network.deny": level(dim("network")),
        "network.allow": "full",
        "process.isolation": level(check("namespaces")),
        "process.noNewPrivileges": level(check("seccomp")),
        "env.exact": level(dim("env")),
        "stdin": "full",
        "resources.timeoutMs": "full",
        "resources.maxOutputBytes": "full",
        "resources.maxProcesses": level(pids),
        "command.allowlist": "unsupported",
        "attestation": level(dim("read") && dim("write")),
        "landlock": level(check("landlock")),
        "seccomp": level(check("seccomp")),
        "namespaces": level(check("namespaces")),
        "cgroups": if check("cgroups") { "full" } else { "partial" },
    })
}

/// Weaknesses: the gaps cw-exec attests, from a sample plan (no command is run).
fn weaknesses() -> Vec<String> {
    let sample = Request {
        profile: Some(PROFILE.into()),
        cwd: Some(PathBuf::from(plan::PRIVATE_TMP)),
        command: vec!["/bin/true".into()],
        env_base: EnvBase::Given,
        ..Default::default()
    };
    let mut out = vec![
        "network \"allow\" is the host network, unrestricted".to_string(),
        "command: the protocol has no exec allowlist; any readable file in the view may be executed".to_string(),
        "the static path analysis of prepare-run is advisory: what it misses is denied at run time by the kernel, not asked for in advance".to_string(),
    ];
    if let Ok(plan) = Plan::build(&sample) {
        for (dim, gaps) in attest::gaps(&plan) {
            for g in gaps {
                out.push(format!("{dim}: {g}"));
            }
        }
    }
    out
}

fn probe_result(request: &Value) -> (Value, bool) {
    let checks = crate::probe::checks();
    let dims = crate::probe::dimensions(&checks);
    let mut missing: Vec<String> = vec![];
    let mut next: Vec<String> = vec![];
    for c in checks.iter().filter(|c| !c.ok && c.name != "cgroups") {
        missing.push(format!("{}: {}", c.name, c.detail));
        next.push(next_action(c.name).to_string());
    }
    let preference = strings(
        request.get("backendPreference").unwrap_or(&Value::Null),
        "backendPreference",
    )
    .unwrap_or_default();
    let selected = match select_backend(&preference) {
        Ok(b) => Some(b),
        Err(e) => {
            missing.push(e);
            next.push(format!(
                "Ask for {BACKEND} (or leave backendPreference empty)."
            ));
            None
        }
    };
    let platform = request
        .get("platform")
        .and_then(Value::as_str)
        .unwrap_or("auto");
    if !matches!(platform, "auto" | "linux") {
        missing.push(format!("platform {platform}: cw-exec runs on linux only"));
    }
    let supports = supports(&dims, &checks);
    if let Some(Value::Object(reqs)) = request.get("requirements") {
        for (k, _) in reqs {
            if supports.get(k).and_then(Value::as_str) == Some("unsupported") {
                missing.push(format!("requirement {k}: unsupported by cw-exec here"));
            }
        }
    }
    let ready = missing.is_empty();
    let limits: Vec<String> = checks
        .iter()
        .filter(|c| c.name == "cgroups")
        .map(|c| c.detail.clone())
        .collect();
    let explanation = format!(
        "cw-exec {VERSION} serves the {BACKEND} backend family's contract with stronger enforcement than the reference bubblewrap provider: Landlock, seccomp, namespaces, limits (timeout, output, processes, memory), exactly command.env plus PATH, and a signed kernel attestation per run."
    );
    let v = json!({
        "kind": "raxcell.probeResult.v1",
        "ready": ready,
        "selectedBackend": selected,
        "supports": supports,
        "limits": limits,
        "weaknesses": weaknesses(),
        "missing": missing,
        "nextActions": next,
        "publicSafeMessage": if ready {
            format!("cw-exec is ready: {BACKEND} contract, enforced by the kernel.")
        } else {
            "cw-exec cannot serve this request here; see missing and nextActions.".to_string()
        },
        "explanation": explanation,
        "provider": provider(),
        "checks": checks.iter().map(|c| json!({"name": c.name, "ok": c.ok, "detail": c.detail})).collect::<Vec<_>>(),
    });
    (v, ready)
}

fn probe(request: &Value) -> Value {
    probe_result(request).0
}

fn explain_backend(request: &Value) -> Value {
    let (probe, _) = probe_result(request);
    let op = |method: &str, input: &str, output: &str, effects: &[&str]| json!({"method": method, "inputKind": input, "outputKind": output, "sideEffects": effects});
    json!({
        "kind": "raxcell.explainBackendResult.v1",
        "selectedBackend": probe["selectedBackend"],
        "probe": probe,
        "operations": [
            op("probe", "raxcell.probe.v1", "raxcell.probeResult.v1", &["spawns-probe-process"]),
            op("explainBackend", "raxcell.explainBackend.v1", "raxcell.explainBackendResult.v1", &["spawns-probe-process"]),
            op("resolveProfile", "raxcell.resolveProfile.v1", "raxcell.resolvedProfile.v1", &[]),
            op("prepareRun", "raxcell.run.v1", "raxcell.prepareRunResult.v1", &["no-process-spawn"]),
            op("run", "raxcell.run.v1", "raxcell.runResult.v1", &["spawns-process", "creates-missing-write-grants"]),
        ],
        "explanation": {
            "backend": BACKEND,
            "provider": "cw-exec",
            "hostPlatforms": ["linux"],
            "isolationPrimitives": [
                "landlock", "seccomp", "user-namespace", "mount-namespace", "pid-namespace",
                "network-namespace", "ipc-namespace", "uts-namespace", "cgroup-namespace",
                "pivot-root-mount-view", "cgroups", "rlimits", "no-new-privs", "empty-capabilities",
            ],
            "runtimeRoots": runtime_roots(None),
            "limits": ["timeoutMs: the whole process tree is killed, then the reply is sent", "maxOutputBytes: stdout+stderr past the limit are dropped (default 64 MiB)", "maxProcesses: processes and threads of the whole sandbox (cgroup pids, or RLIMIT_NPROC in the sandbox's user namespace)", "memory 8 GiB and 8192 open files per process by default (the raxcell profile)"],
            "publicSafeMessage": probe["explanation"],
        },
    })
}

fn resolve_profile(request: &Value) -> Result<Value, String> {
    let here = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let base = match request.get("cwd").and_then(Value::as_str) {
        Some(c) => absolute(&here, c),
        None => here,
    };
    let enforcement = match request.get("enforcement") {
        None | Some(Value::Null) => json!({}),
        Some(e @ Value::Object(_)) => e.clone(),
        Some(_) => return Err("enforcement must be an object".into()),
    };
    let fs = &enforcement["filesystem"];
    let read = strings(&fs["read"], "enforcement.filesystem.read")?;
    let write = strings(&fs["write"], "enforcement.filesystem.write")?;
    let network = match enforcement.get("network").and_then(Value::as_str) {
        None => "deny",
        Some(n @ ("deny" | "allow")) => n,
        Some(other) => {
            return Err(format!(
                "enforcement.network must be \"deny\" or \"allow\", not {other:?}"
            ))
        }
    };
    let mut warnings = vec![];
    let mut roots = vec![];
    let mut resolved = json!({"read": [], "write": []});
    for (list, access) in [(&read, "read"), (&write, "write")] {
        for r in list.iter() {
            let p = absolute(&base, r);
            if p.symlink_metadata().is_ok() {
                roots.push(root(&p, access, "declared"));
                resolved[access]
                    .as_array_mut()
                    .expect("an array")
                    .push(json!(p.display().to_string()));
            } else {
                warnings.push(json!({"code": "declared-root-missing", "message": format!("declared root {} does not exist: skipped (nothing to grant)", p.display())}));
            }
        }
    }
    let preference = strings(
        request.get("backendPreference").unwrap_or(&Value::Null),
        "backendPreference",
    )?;
    let backend = select_backend(&preference);
    Ok(json!({
        "kind": "raxcell.resolvedProfile.v1",
        "ok": backend.is_ok(),
        "backend": backend.as_ref().ok(),
        "denial": backend.as_ref().err().map(|m| json!({"code": "CAPABILITY_MISMATCH", "message": m, "publicSafe": true})),
        "profile": request.get("profile").cloned().unwrap_or(Value::Null),
        "cwProfile": PROFILE,
        "enforcement": {
            "filesystem": resolved,
            "network": network,
            "process": enforcement.get("process").cloned().unwrap_or(json!({})),
            "resources": enforcement.get("resources").cloned().unwrap_or(json!({})),
        },
        "filesystemLowering": {
            "declaredRoots": roots,
            "runtimeRoots": runtime_roots(None),
            "policyGrants": [],
            "warnings": warnings,
        },
        "capabilityReport": capability_report(None, None, readiness().iter().all(|m| m.ok)),
        "provider": provider(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(v: Value) -> RunRequest {
        RunRequest::parse(&v).unwrap()
    }

    fn ready() -> Vec<Mechanism> {
        vec![Mechanism {
            name: "landlock",
            ok: true,
            detail: "ok".into(),
        }]
    }

    fn base(argv: &[&str], cwd: &str, read: &[&str], write: &[&str]) -> Value {
        json!({
            "kind": "raxcell.run.v1",
            "backendPreference": ["linux-bubblewrap"],
            "policyGrants": [],
            "action": {"actionId": "a1", "metadata": {}},
            "command": {"argv": argv, "cwd": cwd, "env": {}, "stdin": null},
            "enforcement": {"profile": "p", "filesystem": {"read": read, "write": write}, "network": "deny", "process": {}, "resources": {}},
            "fallback": {"mode": "none"},
        })
    }

    #[test]
    fn validation_names_the_field() {
        let mut v = base(&["true"], "/", &[], &[]);
        v["command"]["argv"] = json!("true");
        assert!(RunRequest::parse(&v).unwrap_err().contains("command.argv"));
        let mut v = base(&["true"], "/", &[], &[]);
        v["command"]["cwd"] = json!(1);
        assert!(RunRequest::parse(&v).unwrap_err().contains("command.cwd"));
        let mut v = base(&["true"], "/", &[], &[]);
        v["enforcement"] = json!([]);
        assert!(RunRequest::parse(&v).unwrap_err().contains("enforcement"));
        let mut v = base(&["true"], "/", &[], &[]);
        v["command"]["env"] = json!({"A": 1});
        assert!(RunRequest::parse(&v).unwrap_err().contains("command.env.A"));
        let mut v = base(&["true"], "/", &[], &[]);
        v["enforcement"]["network"] = json!("loopback");
        assert!(RunRequest::parse(&v)
            .unwrap_err()
            .contains("enforcement.network"));
    }

    #[test]
    fn resources_apply_only_when_positive() {
        let mut v = base(&["true"], "/", &[], &[]);
        v["enforcement"]["resources"] =
            json!({"timeoutMs": 0, "maxOutputBytes": -1, "maxProcesses": 8});
        let r = request(v);
        assert_eq!(r.timeout_ms, None);
        assert_eq!(r.max_output, None);
        assert_eq!(r.max_processes, Some(8));
        assert_eq!(r.warnings.len(), 2, "{:?}", r.warnings);
        let low = lower(&r, &[]);
        assert_eq!(low.limits.pids, Some(8));
        assert_eq!(low.env_base, EnvBase::Given);
    }

    #[test]
    fn an_unavailable_mechanism_is_backend_unavailable_with_a_gap() {
        let r = request(base(&["true"], "/", &["/"], &[]));
        let down = vec![Mechanism {
            name: "landlock",
            ok: false,
            detail: "Landlock is unavailable: not enabled at boot".into(),
        }];
        let p = prepare(&r, &down);
        let v = p.reply();
        assert_eq!(v["ok"], false);
        assert_eq!(v["backend"], Value::Null);
        assert_eq!(v["denial"]["code"], "BACKEND_UNAVAILABLE");
        assert_eq!(v["environmentGap"]["reason"], "missing-backend-dependency");
        assert_eq!(v["environmentGap"]["path"], "landlock");
        assert_eq!(v["policyDecision"], Value::Null);
        assert_eq!(v["backendArtifacts"], json!([]));
    }

    #[test]
    fn the_first_preference_decides_and_is_never_replaced() {
        assert_eq!(select_backend(&[]), Ok(BACKEND));
        assert_eq!(
            select_backend(&[BACKEND.into(), "host-observed".into()]),
            Ok(BACKEND)
        );
        assert!(select_backend(&["host-observed".into(), BACKEND.into()]).is_err());
        let mut v = base(&["true"], "/", &["/"], &[]);
        v["backendPreference"] = json!(["host-observed"]);
        let out = prepare(&request(v), &ready()).reply();
        assert_eq!(out["denial"]["code"], "CAPABILITY_MISMATCH");
        assert_eq!(out["backend"], Value::Null);
    }

    #[test]
    fn decisions_come_in_the_contracts_order() {
        // cwd outside every root, before anything about the command.
        let out = prepare(
            &request(base(&["cat", "~/x"], "/var", &["/usr"], &[])),
            &ready(),
        )
        .reply();
        assert_eq!(
            out["policyDecision"]["reason"],
            "cwd-outside-declared-roots"
        );
        assert_eq!(out["policyDecision"]["path"], "/var");
        assert_eq!(out["policyDecision"]["required"], json!(["read"]));
        assert_eq!(out["denial"], Value::Null);
        // A dynamic path before a path outside the roots.
        let out = prepare(
            &request(base(
                &["sh", "-c", "cat /srv/x; cat $HOME/y"],
                "/var",
                &["/var"],
                &[],
            )),
            &ready(),
        )
        .reply();
        assert_eq!(
            out["environmentGap"]["reason"],
            "shell-dynamic-path-unresolved"
        );
        assert_eq!(out["environmentGap"]["path"], "$HOME/y");
        // A write to a read root needs write only.
        let out = prepare(
            &request(base(
                &["sh", "-c", "echo x > /var/out"],
                "/var",
                &["/var"],
                &[],
            )),
            &ready(),
        )
        .reply();
        assert_eq!(
            out["policyDecision"]["reason"],
            "path-outside-declared-roots"
        );
        assert_eq!(out["policyDecision"]["path"], "/var/out");
        assert_eq!(out["policyDecision"]["required"], json!(["write"]));
        assert_eq!(out["denial"], Value::Null);
        assert_eq!(out["ok"], false);
        // System paths are exempt.
        let out = prepare(
            &request(base(&["cat", "/etc/hostname"], "/var", &["/var"], &[])),
            &ready(),
        )
        .reply();
        assert_eq!(out["policyDecision"], Value::Null);
    }

    #[test]
    fn a_grant_covers_its_path_with_its_access() {
        let mut v = base(&["cp", "/srv/a", "/opt/b"], "/var", &["/var"], &[]);
        v["policyGrants"] = json!([
            {"reason": "r", "path": "/srv/a", "access": ["READ"], "grantedBy": "user"},
            {"reason": "r", "path": "/opt/b", "access": ["filesystem.write"], "grantedBy": "user"},
        ]);
        let r = request(v);
        assert!(r.covers(Path::new("/srv/a"), false));
        assert!(!r.covers(Path::new("/srv/a"), true));
        assert!(r.covers(Path::new("/opt/b"), true));
        assert!(r.covers(Path::new("/opt/b"), false));
    }
}
