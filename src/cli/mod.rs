//! The command line: subcommands and their flags, and what every front end of the CLI shares
//! — refusals rendered as exit 125 plus an envelope, and envelopes delivered to their
//! destinations. One module per subcommand beside this one.

pub mod explain;
pub mod fast;
pub mod hints;
pub mod profile;
pub mod run;
pub mod verify;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::cw;
use crate::envelope;
use crate::fsio;
use crate::model::{names, Dimension, Failing, PolicyFacts, Refusal, RefusalCode, EXIT_REFUSED};
use crate::plan::{self, Plan, Request};
use crate::policy::{count_flag, size_flag, LimitsPolicy, NetMode, Profile, Size};
use crate::seal;
use crate::sink;
use crate::supervise;

/// `eprintln!` that never panics: cw-exec's diagnostics are best effort when its stderr
/// cannot take them (a full disk, /dev/full); what decides the exit status is said in the
/// envelope as well, and a failed envelope write is its own exit status (125).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

#[derive(Parser)]
#[command(
    name = "cw-exec",
    version,
    about = "Run a command in a sandbox the kernel enforces (Landlock, seccomp, namespaces) and attest what it enforced."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run COMMAND in the sandbox.
    Run(RunArgs),
    /// Print the plan for COMMAND (paths, mounts, Landlock rules, seccomp, env) without running it.
    Explain(RunArgs),
    /// Report what this kernel can enforce, per dimension and mechanism.
    Probe {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Bundled profiles.
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// Run a cool-workflow run request (JSON) and print its result envelope (JSON).
    Exec {
        /// The request file, or - for stdin.
        #[arg(long, value_name = "FILE|-")]
        request: String,
    },
    /// cool-workflow's backend descriptor and probe payloads for cw-exec.
    #[command(subcommand)]
    Backend(BackendCommand),
    /// Check an envelope's signed attestation: exit 0 valid, 1 invalid (with the reason).
    Verify {
        /// The envelope (or attestation file), or - for stdin.
        #[arg(value_name = "FILE|-")]
        file: String,
        /// The nonce the run must have been given (`run --nonce`).
        #[arg(long, value_name = "NONCE")]
        nonce: Option<String>,
        /// The command line the run must have run, exactly as in its evidence.
        #[arg(long, value_name = "COMMAND")]
        command: Option<String>,
        /// Signed no longer ago than this (e.g. 90s, 10m, 2h, 1d).
        #[arg(long, value_name = "DURATION")]
        since: Option<String>,
        /// The signer's public key (64 hex digits, or a file with them or `key show`'s
        /// output); default: this user's own key.
        #[arg(long, value_name = "PUBKEY|FILE")]
        key: Option<String>,
    },
    /// The signing key.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Raxcell provider for Praxis (also when run as `raxcell`): `cw-exec raxcell --help`.
    #[command(disable_help_flag = true, disable_version_flag = true)]
    Raxcell {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Docker-compatible front end for Common Fabric's harness (also when run as `docker`):
    /// `cw-exec docker --help`.
    #[command(disable_help_flag = true, disable_version_flag = true)]
    Docker {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// The public key and its id, to hand to whoever verifies (the key is created if there
    /// is none yet).
    Show,
}

#[derive(Subcommand)]
pub enum BackendCommand {
    /// The list payload: every backend cw-exec provides (just itself).
    List,
    /// The descriptor of one backend.
    Show { id: String },
    /// The readiness probe of one backend, or of all.
    Probe { id: Option<String> },
}

#[derive(Subcommand)]
pub enum ProfileCommand {
    /// List the bundled profiles.
    List,
    /// Print a bundled profile.
    Show { name: String },
    /// Check a profile file (unknown keys and bad values are errors).
    Check { file: PathBuf },
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Bundled profile name or profile file (default: the `default` profile).
    #[arg(long, value_name = "NAME|FILE")]
    pub profile: Option<String>,
    /// Derive the policy from a cool-workflow worker manifest.json (flags add to it).
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// Grant read (files and directory listing) beneath PATH.
    #[arg(long, value_name = "PATH")]
    pub read: Vec<String>,
    /// Grant read and write (create, delete, rename, truncate) beneath PATH.
    #[arg(long, value_name = "PATH")]
    pub write: Vec<String>,
    /// Make exec an allowlist and add PATH (a file, or a directory to allow beneath).
    #[arg(long, value_name = "PATH")]
    pub exec: Vec<String>,
    /// Network: none (default), loopback (private), host (unrestricted).
    #[arg(long, value_name = "MODE", value_parser = NetArg::parse)]
    pub net: Option<NetArg>,
    /// With --net allow=...: names never to connect to (same forms; deny wins).
    #[arg(long, value_name = "NAMES")]
    pub net_deny: Vec<String>,
    /// With --net allow=...: resolve NAME to ADDRESS (no DNS is asked; the address counts as
    /// named, so a loopback or private one is allowed).
    #[arg(long, value_name = "NAME=ADDRESS")]
    pub net_resolve: Vec<String>,
    /// With --net loopback: the sandbox may listen on TCP PORT (and on no other port).
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub allow_bind: Vec<u16>,
    /// Pass this variable from cw-exec's environment.
    #[arg(long = "env", value_name = "NAME")]
    pub env: Vec<String>,
    /// Set this variable in the sandbox.
    #[arg(long, value_name = "NAME=VALUE")]
    pub setenv: Vec<String>,
    /// Working directory of the command (default: the current directory).
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,
    /// Containment tier: auto (namespaces where available, else landlock, with a notice),
    /// namespaces (refuse rather than run weaker), landlock (no namespaces, by choice).
    #[arg(long, value_name = "TIER", value_parser = crate::model::TierChoice::parse)]
    pub tier: Option<crate::model::TierChoice>,
    /// Follow symlinks in grants and --cwd even where another user, or a sandbox of this
    /// run's write set, could have placed them (refused by default, naming the symlink).
    #[arg(long)]
    pub follow_symlinks: bool,
    /// Bind the host path HOST at SANDBOX in the sandbox (read-write, or read-only with
    /// :ro); --cwd may name a sandbox path inside it.
    #[arg(long, value_name = "HOST:SANDBOX[:ro]", value_parser = crate::model::BindSpec::parse)]
    pub bind: Vec<crate::model::BindSpec>,
    /// Run the command as UID:GID: the caller's own, or any identity when cw-exec runs as
    /// root.
    #[arg(long, value_name = "UID:GID", value_parser = crate::model::parse_user)]
    pub user: Option<(u32, u32)>,
    /// Wall-clock limit in seconds; the whole process tree is killed when it expires (exit 124).
    #[arg(long, value_name = "SECONDS", allow_hyphen_values = true)]
    pub timeout: Option<f64>,
    /// After forwarding SIGTERM, SIGINT or SIGHUP to the command, kill the whole process
    /// tree if it has not ended within SECONDS (default 10; 0 to 86400, 0: at once).
    #[arg(long, value_name = "SECONDS", allow_hyphen_values = true)]
    pub kill_after: Option<f64>,
    /// Memory of the whole sandbox (bytes, or with K/M/G/T; 8M to 1048576T).
    #[arg(long, value_name = "SIZE", value_parser = size_flag("memory"), allow_hyphen_values = true)]
    pub memory: Option<Size>,
    /// Processes and threads of the whole sandbox, its init included (2 to 4194304).
    #[arg(long, value_name = "N", value_parser = count_flag("pids"), allow_hyphen_values = true)]
    pub pids: Option<u64>,
    /// CPU seconds of the whole sandbox (exit 152 when it is used up).
    #[arg(long, value_name = "SECONDS", allow_hyphen_values = true)]
    pub cpu: Option<f64>,
    /// Open files per process (16 to 1048576, and at most `ulimit -Hn`).
    #[arg(long, value_name = "N", value_parser = count_flag("nofile"), allow_hyphen_values = true)]
    pub nofile: Option<u64>,
    /// Largest file a process may write (SIGXFSZ past it: exit 153).
    #[arg(long, value_name = "SIZE", value_parser = size_flag("fsize"), allow_hyphen_values = true)]
    pub fsize: Option<Size>,
    /// Total stdout+stderr passed through; the rest is dropped, stderr and the envelope say so,
    /// and the exit code stays the command's.
    #[arg(long, value_name = "SIZE", value_parser = size_flag("output-limit"), allow_hyphen_values = true)]
    pub output_limit: Option<Size>,
    /// Print where the time of the run went (phase by phase) on stderr.
    #[arg(long)]
    pub timings: bool,
    /// Write the cool-workflow result envelope with the kernel attestation to FILE (- for stderr).
    #[arg(long, value_name = "FILE|-")]
    pub envelope: Option<String>,
    /// A nonce the verifier chose, bound into the signed attestation (replay protection):
    /// the run is refused if it cannot be signed.
    #[arg(long, value_name = "NONCE")]
    pub nonce: Option<String>,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

impl RunArgs {
    /// An empty path is an error naming its flag: joined to the working directory it would
    /// silently mean the working directory.
    fn check_paths(&self) -> Result<(), String> {
        for (flag, paths) in [
            ("--read", &self.read),
            ("--write", &self.write),
            ("--exec", &self.exec),
        ] {
            if paths.iter().any(|p| p.is_empty()) {
                return Err(format!(
                    "{flag} \"\": an empty path names nothing (for the working directory, say {flag} . or {flag} '$cwd')"
                ));
            }
        }
        Ok(())
    }

    fn request(&self) -> Request {
        Request {
            profile: self.profile.clone(),
            read: self.read.clone(),
            write: self.write.clone(),
            exec: self.exec.clone(),
            net: self.net.as_ref().map(|n| n.mode),
            net_allow: self
                .net
                .as_ref()
                .and_then(|n| n.allow.clone())
                .into_iter()
                .collect(),
            net_deny: self.net_deny.clone(),
            net_resolve: self.net_resolve.clone(),
            allow_bind: self.allow_bind.clone(),
            env: self.env.clone(),
            setenv: self.setenv.clone(),
            cwd: self.cwd.clone(),
            follow_symlinks: self.follow_symlinks,
            tier: self.tier,
            binds: self.bind.clone(),
            user: self.user,
            limits: LimitsPolicy {
                timeout: self.timeout,
                memory: self.memory,
                pids: self.pids,
                cpu: self.cpu,
                nofile: self.nofile,
                fsize: self.fsize,
                output_limit: self.output_limit,
                required: vec![],
            },
            command: self.command.clone(),
            timings: self.timings,
            kill_after: self.kill_after,
            ..Default::default()
        }
    }

    /// The request, lowered from `--manifest` when given (flags and `--profile` add to it;
    /// `--net` replaces its network mode), with the manifest's policy.
    pub fn lowered(&self) -> Result<(Request, Option<cw::SandboxPolicy>), Box<Refused>> {
        self.check_paths().map_err(|e| Box::new(Refused::bad(e)))?;
        let flags = self.request();
        let Some(path) = &self.manifest else {
            return Ok((flags, None));
        };
        let text = fsio::read_text(path, fsio::MAX_DOCUMENT)
            .map_err(|e| Refused::bad(format!("--manifest {}: {e}", path.display())))
            .map_err(Box::new)?;
        let manifest: cw::Manifest = serde_json::from_str(&text).map_err(|e| {
            Box::new(Refused::bad(format!(
                "--manifest {}: not a cool-workflow manifest: {e}",
                path.display()
            )))
        })?;
        let policy = manifest.sandbox_policy;
        let write_set = manifest
            .allowed_paths
            .clone()
            .unwrap_or_else(|| policy.effective_write_set());
        let mut req = cw::lower(&policy, &write_set, true).map_err(|refusal| {
            Box::new(Refused {
                refusal,
                profile_id: policy.id.clone(),
                required: policy.required(),
                logs_dir: policy.logs_dir(),
            })
        })?;
        req.profile = flags.profile;
        req.read.extend(flags.read);
        req.write.extend(flags.write);
        req.exec.extend(flags.exec);
        req.net = flags.net.or(req.net);
        req.net_allow.extend(flags.net_allow);
        req.net_deny.extend(flags.net_deny);
        req.net_resolve.extend(flags.net_resolve);
        req.allow_bind.extend(flags.allow_bind);
        req.env.extend(flags.env);
        req.setenv = flags.setenv;
        req.cwd = flags.cwd;
        req.follow_symlinks = flags.follow_symlinks;
        req.tier = flags.tier;
        req.binds = flags.binds;
        req.user = flags.user;
        req.limits = flags.limits;
        req.command = flags.command;
        req.timings = flags.timings;
        req.kill_after = flags.kill_after;
        Ok((req, Some(policy)))
    }
}

/// `--net`: none, loopback, host, or allow=NAMES (the egress allowlist).
#[derive(Clone, Debug)]
pub struct NetArg {
    pub mode: NetMode,
    pub allow: Option<String>,
}

impl NetArg {
    fn parse(text: &str) -> Result<NetArg, String> {
        if let Some(list) = text.strip_prefix("allow=") {
            return Ok(NetArg {
                mode: NetMode::Allowlist,
                allow: Some(list.to_string()),
            });
        }
        if text == "allowlist" {
            return Err(
                "--net allowlist: give the names: --net allow=NAME,*.DOMAIN,HOST:PORT".into(),
            );
        }
        Ok(NetArg {
            mode: NetMode::parse(text)?,
            allow: None,
        })
    }
}

/// A refusal with what its envelope states besides: the policy it refused, that policy's own
/// required dimensions (not the failing ones), and where a worker's attestation goes.
pub struct Refused {
    pub refusal: Refusal,
    pub profile_id: String,
    pub required: Vec<Dimension>,
    /// A worker's logs directory, where its attestation goes even when refused.
    pub logs_dir: Option<PathBuf>,
}

impl Refused {
    /// Bad input, before any policy is known.
    pub fn bad(message: String) -> Refused {
        Refused {
            refusal: Refusal::bad(message),
            profile_id: "default".into(),
            required: vec![],
            logs_dir: None,
        }
    }
}

/// The required dimensions of a request, computed without asking the kernel: a
/// cool-workflow policy's own, else the native rule applied to its profile and flags.
pub fn required_of(request: &Request) -> Vec<Dimension> {
    if let Some(cw) = &request.cw {
        return cw.required.clone();
    }
    let profile = Profile::load(request.profile.as_deref().unwrap_or("default"))
        .map(|(_, p)| p)
        .unwrap_or_default();
    plan::required_native(request.exec_allowlist(&profile), request.net_mode(&profile))
}

/// Says why on stderr; exit 125.
pub fn fail(message: impl std::fmt::Display) -> i32 {
    say!("cw-exec: {message}");
    EXIT_REFUSED
}

/// The write set of a run, as `sink` needs it: symlinks inside it are not followed on the
/// way to an envelope's directory (resolved paths and the requested spellings).
pub fn write_set(plan: &Plan) -> Vec<PathBuf> {
    plan.host_write_grants()
        .flat_map(|g| [g.path.clone(), PathBuf::from(&g.requested)])
        .collect()
}

/// The write set as requested, before any plan (paths made absolute, nothing resolved).
pub fn requested_write_set(request: &Request) -> Vec<PathBuf> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    request
        .write
        .iter()
        .map(|w| plan::normalize(&cwd.join(w)))
        .collect()
}

/// Seals and writes the envelope; if any destination could not be written, says so and
/// returns 125 instead of `code`.
pub fn deliver(
    sinks: Vec<sink::Sink>,
    mut envelope: serde_json::Value,
    code: i32,
    signer: Option<&seal::Signer>,
) -> i32 {
    if sinks.is_empty() {
        return code;
    }
    if let Some(signer) = signer {
        signer.seal(&mut envelope);
    }
    if sink::write_all(sinks, &envelope) || code == EXIT_REFUSED {
        return code;
    }
    say!(
        "cw-exec: exiting {EXIT_REFUSED}, not the command's {code}: the attestation could not be written"
    );
    EXIT_REFUSED
}

/// The one line a refusal gets on stderr.
pub fn say_refused(refusal: &Refusal) {
    match &refusal.mechanism {
        Some(m) => say!(
            "cw-exec: refused ({}): {m}: {}",
            refusal.code.as_str(),
            refusal.message
        ),
        None => say!(
            "cw-exec: refused ({}): {}",
            refusal.code.as_str(),
            refusal.message
        ),
    }
}

/// cw-exec's own diagnostics about how a run ended, on stderr: a refusal, an exec failure,
/// a timeout, and every limit that ended or cut the run.
pub fn report(plan: &Plan, outcome: &supervise::Outcome) {
    if let Some(refusal) = &outcome.refusal {
        say_refused(refusal);
    } else if let Some(e) = &outcome.exec_error {
        say!("cw-exec: {e}");
    } else if outcome.timed_out {
        say!(
            "cw-exec: timed out after {:.3}s; the process tree was killed",
            outcome.duration.as_secs_f64()
        );
    } else if let Some(grace) = outcome.killed_after {
        say!(
            "cw-exec: the command had not ended {}s (--kill-after) after {} was forwarded; the process tree was killed",
            grace.as_secs_f64(),
            outcome
                .forwarded
                .and_then(|s| nix::sys::signal::Signal::try_from(s).ok())
                .map_or("a forwarded signal", |s| s.as_str())
        );
    }
    for note in envelope::limit_notes(plan, outcome) {
        say!("cw-exec: {note}");
    }
    let denied: Vec<&crate::proxy::Decision> = outcome
        .net_decisions
        .iter()
        .filter(|d| !d.allowed)
        .collect();
    if !denied.is_empty() {
        eprintln!(
            "cw-exec: network: {} connection(s) refused by the allowlist:",
            denied.len()
        );
        for d in denied {
            eprintln!("cw-exec:   {}:{}: {}", d.host, d.port, d.rule);
        }
    }
}

/// Refuses before any plan: stderr, the envelope to its destinations, exit 125.
pub fn refuse(
    refused: &Refused,
    label: &str,
    envelope_to: Option<&str>,
    untrusted: &[PathBuf],
    signer: Option<&seal::Signer>,
) -> i32 {
    say_refused(&refused.refusal);
    let (sinks, errors) = sink::open(envelope_to, refused.logs_dir.as_deref(), untrusted);
    for e in &errors {
        say!("cw-exec: {e}");
    }
    let envelope = refusal_envelope(refused, label, envelope::Kind::Local);
    deliver(sinks, envelope, EXIT_REFUSED, signer)
}

/// The envelope of a refusal before any plan: `required` is the policy's own, `unenforceable`
/// the required dimensions actually at fault; `kernel.refusal` says what failed, including a
/// limit (which is not a dimension) or a failing dimension the policy does not require.
pub fn refusal_envelope(refused: &Refused, label: &str, kind: envelope::Kind) -> serde_json::Value {
    let refusal = &refused.refusal;
    let facts = PolicyFacts {
        profile_id: refused.profile_id.clone(),
        required: refused.required.clone(),
        enforced_by_cw: vec![],
        host_required: vec![],
        notes: vec![],
    };
    let mut notes = vec![refusal.message.clone()];
    if let Failing::Limit(limit) = &refusal.failing {
        notes.push(format!(
            "limit {limit}: cannot be enforced as asked (a limit, not a dimension)"
        ));
    }
    let at_fault = refusal.dimensions_at_fault();
    let kernel = serde_json::json!({
        "refusal": {
            "code": refusal.code.as_str(),
            "dimensions": names(&at_fault),
            "limit": match &refusal.failing {
                Failing::Limit(l) => Some(l.as_str()),
                Failing::Dimensions(_) => None,
            },
        }
    });
    let att = envelope::attestation(&facts, &[], &at_fault, kind, Some(kernel), notes);
    envelope::refused(
        &refused.profile_id,
        label,
        refusal.code.as_str(),
        &refusal.message,
        att,
        None,
        kind,
    )
}

/// The profile id a request names, for a refusal before its plan exists.
pub fn profile_id_of(request: &Request) -> String {
    match (&request.cw, &request.profile) {
        (Some(cw), _) => cw.profile_id.clone(),
        (None, Some(name)) => Profile::load(name)
            .map(|(id, _)| id)
            .unwrap_or_else(|_| name.clone()),
        (None, None) => "default".into(),
    }
}

/// A plan that could not be made: stderr, the envelope, and the refusal's exit status (127
/// for a command not found, else 125).
pub fn plan_failure(
    request: &Request,
    label: &str,
    refusal: Refusal,
    sinks: Vec<sink::Sink>,
    sink_errors: Vec<String>,
    signer: Option<&seal::Signer>,
) -> i32 {
    match refusal.code {
        RefusalCode::Unenforceable => say_refused(&refusal),
        _ => say!("cw-exec: {}", refusal.message),
    }
    let exit = refusal.exit_status();
    let refused = Refused {
        refusal,
        profile_id: profile_id_of(request),
        required: required_of(request),
        logs_dir: None,
    };
    let envelope = refusal_envelope(&refused, label, envelope::Kind::Local);
    for e in &sink_errors {
        say!("cw-exec: {e}");
    }
    match deliver(sinks, envelope, exit, signer) {
        _ if !sink_errors.is_empty() => EXIT_REFUSED,
        code => code,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Dimension::*;
    use serde_json::json;

    fn refused(refusal: Refusal, profile: &str) -> Refused {
        Refused {
            refusal,
            profile_id: profile.into(),
            required: vec![Read, Write, Network, Env],
            logs_dir: None,
        }
    }

    #[test]
    fn a_limit_refusal_names_the_limit_not_a_dimension() {
        let r = refused(
            Refusal::limit("pids", "no usable cgroup pids controller"),
            "default",
        );
        let e = refusal_envelope(&r, "l", envelope::Kind::Local);
        let a = &e["provenance"]["attestation"];
        assert_eq!(a["status"], "refused");
        assert_eq!(a["required"], json!(["read", "write", "network", "env"]));
        assert_eq!(a["unenforceable"], json!([]));
        assert_eq!(a["enforced"], json!([]));
        assert_eq!(a["kernel"]["refusal"]["limit"], "pids");
        assert_eq!(a["kernel"]["refusal"]["dimensions"], json!([]));
        assert_eq!(a["kernel"]["refusal"]["code"], "sandbox-unenforceable");
    }

    #[test]
    fn a_dimension_refusal_keeps_the_policys_required_set() {
        let r = refused(
            Refusal::dimensions(&[Network], "cool-workflow policy", "network allowlist"),
            "readonly",
        );
        let a = &refusal_envelope(&r, "l", envelope::Kind::Local)["provenance"]["attestation"];
        assert_eq!(a["required"], json!(["read", "write", "network", "env"]));
        assert_eq!(a["unenforceable"], json!(["network"]));
        assert_eq!(a["kernel"]["refusal"]["limit"], json!(null));
    }

    #[test]
    fn bad_input_and_not_found_refusals_render_their_codes() {
        let r = refused(Refusal::bad("--read /nope: no such file"), "default");
        let e = refusal_envelope(&r, "l", envelope::Kind::Local);
        assert_eq!(e["evidence"][0], "refused:backend-not-runnable");
        assert_eq!(e["provenance"]["attestation"]["unenforceable"], json!([]));
        let r = refused(Refusal::not_found("nope: not found"), "default");
        let e = refusal_envelope(&r, "l", envelope::Kind::Local);
        assert_eq!(e["evidence"][0], "refused:no-command");
        assert_eq!(r.refusal.exit_status(), 127);
    }

    #[test]
    fn required_without_a_kernel_follows_the_profile_and_flags() {
        let req = |profile: &str, net| Request {
            profile: Some(profile.into()),
            net,
            ..Default::default()
        };
        assert_eq!(
            required_of(&req("default", Some(NetMode::Host))),
            [Read, Write, Env]
        );
        assert_eq!(
            required_of(&req("locked-down", None)),
            [Read, Write, Command, Network, Env]
        );
        let cw = Request {
            exec_programs: vec!["npm test".into()],
            ..Default::default()
        };
        assert!(required_of(&cw).contains(&Command));
    }
}
