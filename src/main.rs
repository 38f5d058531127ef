//! cw-exec: run a command under a policy the kernel enforces, and attest what it enforced.

mod attest;
mod child;
mod credentials;
mod cw;
mod envelope;
mod fsio;
mod jcs;
mod kernel;
mod limits;
mod plan;
mod policy;
mod probe;
mod seal;
mod signing;
mod sink;
mod supervise;
mod sys;
mod timings;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::plan::{Failing, Plan, PlanError, Request};
use crate::policy::{LimitsPolicy, NetMode, Profile, Size, BUNDLED};

/// Exit code when cw-exec refuses or fails before exec.
pub const EXIT_REFUSED: i32 = 125;

#[derive(Parser)]
#[command(
    name = "cw-exec",
    version,
    about = "Run a command in a sandbox the kernel enforces (Landlock, seccomp, namespaces) and attest what it enforced."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
}

#[derive(Subcommand)]
enum KeyCommand {
    /// The public key and its id, to hand to whoever verifies (the key is created if there
    /// is none yet).
    Show,
}

#[derive(Subcommand)]
enum BackendCommand {
    /// The list payload: every backend cw-exec provides (just itself).
    List,
    /// The descriptor of one backend.
    Show { id: String },
    /// The readiness probe of one backend, or of all.
    Probe { id: Option<String> },
}

#[derive(Subcommand)]
enum ProfileCommand {
    /// List the bundled profiles.
    List,
    /// Print a bundled profile.
    Show { name: String },
    /// Check a profile file (unknown keys and bad values are errors).
    Check { file: PathBuf },
}

#[derive(Args)]
struct RunArgs {
    /// Bundled profile name or profile file (default: the `default` profile).
    #[arg(long, value_name = "NAME|FILE")]
    profile: Option<String>,
    /// Derive the policy from a cool-workflow worker manifest.json (flags add to it).
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
    /// Grant read (files and directory listing) beneath PATH.
    #[arg(long, value_name = "PATH")]
    read: Vec<String>,
    /// Grant read and write (create, delete, rename, truncate) beneath PATH.
    #[arg(long, value_name = "PATH")]
    write: Vec<String>,
    /// Make exec an allowlist and add PATH (a file, or a directory to allow beneath).
    #[arg(long, value_name = "PATH")]
    exec: Vec<String>,
    /// Network: none (default), loopback (private), host (unrestricted).
    #[arg(long, value_name = "MODE", value_parser = NetMode::parse)]
    net: Option<NetMode>,
    /// Pass this variable from cw-exec's environment.
    #[arg(long = "env", value_name = "NAME")]
    env: Vec<String>,
    /// Set this variable in the sandbox.
    #[arg(long, value_name = "NAME=VALUE")]
    setenv: Vec<String>,
    /// Working directory of the command (default: the current directory).
    #[arg(long, value_name = "DIR")]
    cwd: Option<PathBuf>,
    /// Follow symlinks in grants and --cwd even where another user, or a sandbox of this
    /// run's write set, could have placed them (refused by default, naming the symlink).
    #[arg(long)]
    follow_symlinks: bool,
    /// Wall-clock limit in seconds; the whole process tree is killed when it expires (exit 124).
    #[arg(long, value_name = "SECONDS")]
    timeout: Option<f64>,
    /// Memory of the whole sandbox (bytes, or with K/M/G/T).
    #[arg(long, value_name = "SIZE", value_parser = Size::parse)]
    memory: Option<Size>,
    /// Processes and threads of the whole sandbox.
    #[arg(long, value_name = "N")]
    pids: Option<u64>,
    /// CPU seconds of the whole sandbox.
    #[arg(long, value_name = "SECONDS")]
    cpu: Option<f64>,
    /// Open files per process.
    #[arg(long, value_name = "N")]
    nofile: Option<u64>,
    /// Largest file a process may write.
    #[arg(long, value_name = "SIZE", value_parser = Size::parse)]
    fsize: Option<Size>,
    /// Total stdout+stderr passed through; the rest is dropped and the envelope says so.
    #[arg(long, value_name = "SIZE", value_parser = Size::parse)]
    output_limit: Option<Size>,
    /// Print where the time of the run went (phase by phase) on stderr.
    #[arg(long)]
    timings: bool,
    /// Write the cool-workflow result envelope with the kernel attestation to FILE (- for stderr).
    #[arg(long, value_name = "FILE|-")]
    envelope: Option<String>,
    /// A nonce the verifier chose, bound into the signed attestation (replay protection):
    /// the run is refused if it cannot be signed.
    #[arg(long, value_name = "NONCE")]
    nonce: Option<String>,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<String>,
}

impl RunArgs {
    fn request(&self) -> Request {
        Request {
            profile: self.profile.clone(),
            read: self.read.clone(),
            write: self.write.clone(),
            exec: self.exec.clone(),
            net: self.net,
            env: self.env.clone(),
            setenv: self.setenv.clone(),
            cwd: self.cwd.clone(),
            follow_symlinks: self.follow_symlinks,
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
            ..Default::default()
        }
    }

    /// The request, lowered from `--manifest` when given (flags and `--profile` add to it;
    /// `--net` replaces its network mode), with the manifest's policy.
    fn lowered(&self) -> Result<(Request, Option<cw::SandboxPolicy>), Box<Refusal>> {
        let flags = self.request();
        let Some(path) = &self.manifest else {
            return Ok((flags, None));
        };
        let text = fsio::read_text(path, fsio::MAX_DOCUMENT)
            .map_err(|e| Refusal::bad(format!("--manifest {}: {e}", path.display())))
            .map_err(Box::new)?;
        let manifest: cw::Manifest = serde_json::from_str(&text).map_err(|e| {
            Box::new(Refusal::bad(format!(
                "--manifest {}: not a cool-workflow manifest: {e}",
                path.display()
            )))
        })?;
        let policy = manifest.sandbox_policy;
        let write_set = manifest
            .allowed_paths
            .clone()
            .unwrap_or_else(|| policy.effective_write_set());
        let mut req = cw::lower(&policy, &write_set, true).map_err(|e| {
            Box::new(Refusal {
                code: envelope::UNENFORCEABLE,
                message: e.message,
                profile_id: policy.id.clone(),
                required: policy.required(),
                failing: Failing::Dimensions(vec![e.dimension]),
                logs_dir: policy.logs_dir(),
            })
        })?;
        req.profile = flags.profile;
        req.read.extend(flags.read);
        req.write.extend(flags.write);
        req.exec.extend(flags.exec);
        req.net = flags.net.or(req.net);
        req.env.extend(flags.env);
        req.setenv = flags.setenv;
        req.cwd = flags.cwd;
        req.follow_symlinks = flags.follow_symlinks;
        req.limits = flags.limits;
        req.command = flags.command;
        req.timings = flags.timings;
        Ok((req, Some(policy)))
    }
}

/// A refusal before any plan exists.
struct Refusal {
    code: &'static str,
    message: String,
    profile_id: String,
    /// The policy's own required dimensions (not the failing ones).
    required: Vec<&'static str>,
    /// What could not be enforced: dimensions (empty when the refusal is about something
    /// else, such as bad input), or a limit.
    failing: Failing,
    /// A worker's logs directory, where its attestation goes even when refused.
    logs_dir: Option<PathBuf>,
}

impl Refusal {
    fn bad(message: String) -> Refusal {
        Refusal {
            code: "backend-not-runnable",
            message,
            profile_id: "default".into(),
            required: vec![],
            failing: Failing::Dimensions(vec![]),
            logs_dir: None,
        }
    }

    /// The dimensions at fault (none for a limit).
    fn unenforceable(&self) -> Vec<&'static str> {
        match &self.failing {
            Failing::Dimensions(d) => d.clone(),
            Failing::Limit(_) => vec![],
        }
    }
}

/// The required dimensions of a request, computed without asking the kernel: a
/// cool-workflow policy's own, else the native rule applied to its profile and flags.
fn required_of(request: &Request) -> Vec<&'static str> {
    if let Some(cw) = &request.cw {
        return cw.required.clone();
    }
    let profile = Profile::load(request.profile.as_deref().unwrap_or("default"))
        .map(|(_, p)| p)
        .unwrap_or_default();
    attest::required_native(request.exec_allowlist(&profile), request.net_mode(&profile))
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => EXIT_REFUSED,
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let code = match cli.command {
        Command::Run(args) => run(&args),
        Command::Explain(args) => explain(&args),
        Command::Probe { json } => probe::main(json),
        Command::Profile(cmd) => profile(cmd),
        Command::Exec { request } => exec(&request),
        Command::Backend(cmd) => backend(cmd),
        Command::Verify {
            file,
            nonce,
            command,
            since,
            key,
        } => seal::verify(&seal::VerifyArgs {
            file: &file,
            nonce: nonce.as_deref(),
            command: command.as_deref(),
            since: since.as_deref(),
            key: key.as_deref(),
        }),
        Command::Key(KeyCommand::Show) => seal::key_show(),
    };
    std::process::exit(code);
}

fn fail(message: impl std::fmt::Display) -> i32 {
    eprintln!("cw-exec: {message}");
    EXIT_REFUSED
}

/// The write set of a run, as `sink` needs it: symlinks inside it are not followed on the
/// way to an envelope's directory (resolved paths and the requested spellings).
fn write_set(plan: &Plan) -> Vec<PathBuf> {
    plan.grants
        .iter()
        .filter(|g| g.access.write && !g.per_run)
        .flat_map(|g| [g.path.clone(), PathBuf::from(&g.requested)])
        .collect()
}

/// The write set as requested, before any plan (paths made absolute, nothing resolved).
fn requested_write_set(request: &Request) -> Vec<PathBuf> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    request
        .write
        .iter()
        .map(|w| plan::normalize(&cwd.join(w)))
        .collect()
}

/// Writes the envelope; if any destination could not be written, says so and returns 125
/// instead of `code`.
fn deliver(
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
    eprintln!(
        "cw-exec: exiting {EXIT_REFUSED}, not the command's {code}: the attestation could not be written"
    );
    EXIT_REFUSED
}

fn run(args: &RunArgs) -> i32 {
    timings::mark("cw-exec started");
    let label = args.command.join(" ");
    let envelope_to = args.envelope.as_deref();
    if args.nonce.is_some() && envelope_to.is_none() && args.manifest.is_none() {
        return fail("--nonce: there is nothing to sign without --envelope (or --manifest)");
    }
    // The key exists before any sandbox of this run does (so that none can plant one).
    let signer = match seal::Signer::open(args.nonce.as_deref()) {
        Ok(s) => s,
        Err(e) => return refuse(&Refusal::bad(e), &label, envelope_to, &[], None),
    };
    let (request, policy) = match args.lowered() {
        Ok(r) => r,
        Err(refusal) => return refuse(&refusal, &label, envelope_to, &[], Some(&signer)),
    };
    // A worker whose policy allows logs keeps its attestation there.
    let logs_dir = policy.as_ref().and_then(cw::SandboxPolicy::logs_dir);
    if let Some(policy) = &policy {
        let write_set: Vec<PathBuf> = request.write.iter().map(PathBuf::from).collect();
        if let Err(e) = cw::prepare_outputs(policy, &write_set) {
            let refusal = Refusal {
                logs_dir: None,
                profile_id: policy.id.clone(),
                ..Refusal::bad(e)
            };
            return refuse(&refusal, &label, envelope_to, &write_set, Some(&signer));
        }
    }
    let plan = match Plan::build(&request) {
        Ok(plan) => plan,
        Err(err) => {
            let (sinks, errors) = sink::open(
                envelope_to,
                logs_dir.as_deref(),
                &requested_write_set(&request),
            );
            return plan_failure(&request, &label, err, sinks, errors, Some(&signer));
        }
    };
    if let Err(e) = signer.check_plan(&plan) {
        return refuse(
            &Refusal::bad(e),
            &label,
            envelope_to,
            &write_set(&plan),
            None,
        );
    }
    timings::mark("plan: policy, paths, seccomp program");
    // The destinations are opened now, before the sandbox exists, and held.
    let (sinks, errors) = sink::open(envelope_to, logs_dir.as_deref(), &write_set(&plan));
    if let Some(e) = errors.first() {
        return fail(e);
    }
    let capture = supervise::Capture {
        stdout: !sinks.is_empty() || plan.limits.output.is_some(),
        forward_stdout: true,
        stderr: plan.limits.output.is_some(),
    };
    let outcome = supervise::run(&plan, capture);
    report(&outcome);
    let envelope = envelope::for_run(&plan, &outcome, &label, envelope::Kind::Local);
    let code = deliver(sinks, envelope, outcome.exit_code, Some(&signer));
    if plan.timings {
        timings::mark("envelope written");
        let mut marks = timings::take();
        marks.extend(outcome.marks.iter().cloned());
        timings::print(marks);
    }
    code
}

/// cw-exec's own diagnostics about how a run ended, on stderr.
fn report(outcome: &supervise::Outcome) {
    if let Some((step, message)) = &outcome.refusal {
        eprintln!(
            "cw-exec: refused ({}): {step}: {message}",
            envelope::UNENFORCEABLE
        );
    } else if let Some(e) = &outcome.exec_error {
        eprintln!("cw-exec: {e}");
    } else if outcome.timed_out {
        eprintln!(
            "cw-exec: timed out after {:.3}s; the process tree was killed",
            outcome.duration.as_secs_f64()
        );
    } else if outcome.cpu_exceeded {
        eprintln!("cw-exec: the sandbox exceeded its CPU time limit; the process tree was killed");
    }
    if outcome.oom_killed {
        eprintln!("cw-exec: the sandbox reached its memory limit; the kernel killed a process");
    }
    if outcome.output_dropped > 0 {
        eprintln!(
            "cw-exec: output limit reached: {} bytes dropped",
            outcome.output_dropped
        );
    }
}

fn refuse(
    refusal: &Refusal,
    label: &str,
    envelope_to: Option<&str>,
    untrusted: &[PathBuf],
    signer: Option<&seal::Signer>,
) -> i32 {
    eprintln!("cw-exec: refused ({}): {}", refusal.code, refusal.message);
    let (sinks, errors) = sink::open(envelope_to, refusal.logs_dir.as_deref(), untrusted);
    for e in &errors {
        eprintln!("cw-exec: {e}");
    }
    let envelope = refusal_envelope(refusal, label, envelope::Kind::Local);
    deliver(sinks, envelope, EXIT_REFUSED, signer)
}

/// The envelope of a refusal before any plan: `required` is the policy's own, `unenforceable`
/// the required dimensions actually at fault; `kernel.refusal` says what failed, including a
/// limit (which is not a dimension) or a failing dimension the policy does not require.
fn refusal_envelope(refusal: &Refusal, label: &str, kind: envelope::Kind) -> serde_json::Value {
    let facts = envelope::PolicyFacts {
        profile_id: refusal.profile_id.clone(),
        required: refusal.required.clone(),
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
    let kernel = serde_json::json!({
        "refusal": {
            "code": refusal.code,
            "dimensions": refusal.unenforceable(),
            "limit": match &refusal.failing {
                Failing::Limit(l) => Some(l.as_str()),
                Failing::Dimensions(_) => None,
            },
        }
    });
    let att = envelope::attestation(
        &facts,
        &[],
        &refusal.unenforceable(),
        kind,
        Some(kernel),
        notes,
    );
    envelope::refused(
        &refusal.profile_id,
        label,
        refusal.code,
        &refusal.message,
        att,
        None,
        kind,
    )
}

fn plan_failure(
    request: &Request,
    label: &str,
    err: PlanError,
    sinks: Vec<sink::Sink>,
    sink_errors: Vec<String>,
    signer: Option<&seal::Signer>,
) -> i32 {
    let profile_id = match (&request.cw, &request.profile) {
        (Some(cw), _) => cw.profile_id.clone(),
        (None, Some(name)) => Profile::load(name)
            .map(|(id, _)| id)
            .unwrap_or_else(|_| name.clone()),
        (None, None) => "default".into(),
    };
    let (code, exit, failing): (&'static str, i32, Failing) = match &err {
        PlanError::BadInput(_) => (
            "backend-not-runnable",
            EXIT_REFUSED,
            Failing::Dimensions(vec![]),
        ),
        PlanError::CommandNotFound(_) => ("no-command", 127, Failing::Dimensions(vec![])),
        PlanError::Unenforceable { failing, .. } => {
            (envelope::UNENFORCEABLE, EXIT_REFUSED, failing.clone())
        }
    };
    match &err {
        PlanError::Unenforceable {
            mechanism, message, ..
        } => {
            eprintln!("cw-exec: refused ({code}): {mechanism}: {message}")
        }
        other => eprintln!("cw-exec: {other}"),
    }
    let refusal = Refusal {
        code,
        message: err.to_string(),
        profile_id,
        required: required_of(request),
        failing,
        logs_dir: None,
    };
    let envelope = refusal_envelope(&refusal, label, envelope::Kind::Local);
    for e in &sink_errors {
        eprintln!("cw-exec: {e}");
    }
    match deliver(sinks, envelope, exit, signer) {
        _ if !sink_errors.is_empty() => EXIT_REFUSED,
        code => code,
    }
}

/// `cw-exec exec`: cool-workflow's backend contract. Gate order as in CW: the command
/// allowlist (exact whole-string match), then enforceability, then a missing command.
fn exec(source: &str) -> i32 {
    let read = if source == "-" {
        fsio::read_limited(std::io::stdin().lock(), fsio::MAX_DOCUMENT).and_then(|b| {
            String::from_utf8(b)
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
        })
    } else {
        fsio::read_text(std::path::Path::new(source), fsio::MAX_DOCUMENT)
    };
    let text = match read {
        Ok(t) => t,
        Err(e) => return fail(format!("--request {source}: {e}")),
    };
    let request: cw::RunRequest = match serde_json::from_str(&text) {
        Ok(r) => r,
        Err(e) => {
            return fail(format!(
                "--request {source}: not a cool-workflow run request: {e}"
            ))
        }
    };
    let kind = envelope::Kind::Delegating;
    let policy = &request.sandbox_policy;
    let label = request.label();
    let argv = request.argv();
    // The key exists before any sandbox of this request does; an untrusted one refuses it.
    let (signer, key_refusal) = match seal::Signer::open(None) {
        Ok(s) => (Some(s), None),
        Err(e) => (None, Some(e)),
    };
    let print = |v: &serde_json::Value, signer: Option<&seal::Signer>| {
        let mut v = v.clone();
        if let Some(signer) = signer {
            signer.seal(&mut v);
        }
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default())
    };
    // Every refusal here prints its envelope and ends the request.
    let refused = |code: &'static str, message: String, failing: Failing| {
        let refusal = Refusal {
            code,
            message,
            profile_id: policy.id.clone(),
            required: policy.required(),
            failing,
            logs_dir: None,
        };
        print(&refusal_envelope(&refusal, &label, kind), signer.as_ref());
        EXIT_REFUSED
    };
    let none = || Failing::Dimensions(vec![]);
    if let Some(e) = key_refusal {
        return refused("backend-not-runnable", e, none());
    }

    if !argv.is_empty() {
        if let Some(denied) = policy.command_denied(&argv.join(" ")) {
            return refused("sandbox-command-denied", denied, none());
        }
    }
    let mut req = match cw::lower(policy, &policy.effective_write_set(), false) {
        Ok(r) => r,
        Err(e) => {
            let message = format!(
                "Backend {} cannot enforce or attest required sandbox dimension(s): {} ({})",
                cw::BACKEND_ID,
                e.dimension,
                e.message
            );
            return refused(
                envelope::UNENFORCEABLE,
                message,
                Failing::Dimensions(vec![e.dimension]),
            );
        }
    };
    if argv.is_empty() {
        let message = format!("Backend {} requires a command to execute", cw::BACKEND_ID);
        return refused("no-command", message, none());
    }
    if let Err(e) = cw::prepare_outputs(policy, &policy.effective_write_set()) {
        return refused("backend-not-runnable", e, none());
    }
    req.command = argv;
    req.cwd = request
        .cwd
        .clone()
        .or_else(|| policy.metadata.as_ref().and_then(|m| m.cwd.clone()));
    req.limits.timeout = request.timeout_ms.map(|ms| ms as f64 / 1000.0);
    let plan = match Plan::build(&req) {
        Ok(plan) => plan,
        Err(PlanError::CommandNotFound(message)) => {
            // CW's local drivers report a command that cannot be spawned as a failed run.
            eprintln!("cw-exec: {message}");
            let facts = policy.facts(vec![]);
            let att = envelope::attestation(
                &facts,
                &[],
                &[],
                kind,
                None,
                vec![format!("exec failed: {message}")],
            );
            let handle = serde_json::json!({"kind": "process", "ref": req.command.join(" "), "metadata": {"exitCode": 127}});
            print(
                &envelope::completed(
                    &req.command.join(" "),
                    Some(127),
                    envelope::EMPTY_SHA256,
                    &label,
                    att,
                    handle,
                    kind,
                ),
                signer.as_ref(),
            );
            return 127;
        }
        Err(PlanError::Unenforceable {
            failing,
            mechanism,
            message,
        }) => {
            let message = match &failing {
                Failing::Dimensions(dims) => format!(
                    "Backend {} cannot enforce or attest required sandbox dimension(s): {} ({mechanism}: {message})",
                    cw::BACKEND_ID,
                    dims.join(", ")
                ),
                Failing::Limit(limit) => format!(
                    "Backend {} cannot enforce limit {limit} ({message})",
                    cw::BACKEND_ID
                ),
            };
            eprintln!("cw-exec: refused ({}): {message}", envelope::UNENFORCEABLE);
            return refused(envelope::UNENFORCEABLE, message, failing);
        }
        Err(PlanError::BadInput(message)) => {
            return refused("backend-not-runnable", message, none());
        }
    };
    let capture = supervise::Capture {
        stdout: true,
        forward_stdout: false,
        stderr: false,
    };
    if let Some(Err(e)) = signer.as_ref().map(|s| s.check_plan(&plan)) {
        return refused("backend-not-runnable", e, none());
    }
    let outcome = supervise::run(&plan, capture);
    report(&outcome);
    print(
        &envelope::for_run(&plan, &outcome, &label, kind),
        signer.as_ref(),
    );
    outcome.exit_code
}

fn backend(cmd: BackendCommand) -> i32 {
    let print =
        |v: &serde_json::Value| println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    let not_found = |id: &str| {
        fail(format!(
            "Execution backend not found: {id} (available: {})",
            cw::BACKEND_ID
        ))
    };
    match cmd {
        BackendCommand::List => {
            print(
                &serde_json::json!({"schemaVersion": 1, "default": cw::BACKEND_ID, "backends": [cw::descriptor()]}),
            );
            0
        }
        BackendCommand::Show { id } if id == cw::BACKEND_ID => {
            print(&cw::descriptor());
            0
        }
        BackendCommand::Probe { id: Some(id) } if id == cw::BACKEND_ID => {
            print(&cw::probe_result());
            0
        }
        BackendCommand::Probe { id: None } => {
            print(
                &serde_json::json!({"schemaVersion": 1, "default": cw::BACKEND_ID, "probes": [cw::probe_result()]}),
            );
            0
        }
        BackendCommand::Show { id } | BackendCommand::Probe { id: Some(id) } => not_found(&id),
    }
}

fn explain(args: &RunArgs) -> i32 {
    let request = match args.lowered() {
        Ok((request, _)) => request,
        Err(refusal) => return fail(refusal.message),
    };
    let plan = match Plan::build(&request) {
        Ok(plan) => plan,
        Err(err) => {
            eprintln!("cw-exec: {err}");
            return match err {
                PlanError::CommandNotFound(_) => 127,
                _ => EXIT_REFUSED,
            };
        }
    };
    print!("{}", plan.explain());
    0
}

fn profile(cmd: ProfileCommand) -> i32 {
    match cmd {
        ProfileCommand::List => {
            for (name, text) in BUNDLED {
                let description = Profile::parse(text, name)
                    .map(|p| p.description)
                    .unwrap_or_default();
                println!("{name:<16} {description}");
            }
            0
        }
        ProfileCommand::Show { name } => match BUNDLED.iter().find(|(n, _)| *n == name) {
            Some((_, text)) => {
                print!("{text}");
                0
            }
            None => fail(format!(
                "no bundled profile {name:?} (bundled: {})",
                BUNDLED
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        },
        ProfileCommand::Check { file } => {
            let text = match fsio::read_text(&file, fsio::MAX_PROFILE) {
                Ok(t) => t,
                Err(e) => return fail(format!("{}: {e}", file.display())),
            };
            match Profile::parse(&text, &file.display().to_string()) {
                Ok(_) => {
                    println!("{}: ok", file.display());
                    0
                }
                Err(e) => fail(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_limit_refusal_names_the_limit_not_a_dimension() {
        let refusal = Refusal {
            code: envelope::UNENFORCEABLE,
            message: "no usable cgroup pids controller".into(),
            profile_id: "default".into(),
            required: vec!["read", "write", "network", "env"],
            failing: Failing::Limit("pids".into()),
            logs_dir: None,
        };
        let e = refusal_envelope(&refusal, "l", envelope::Kind::Local);
        let a = &e["provenance"]["attestation"];
        assert_eq!(a["status"], "refused");
        assert_eq!(a["required"], json!(["read", "write", "network", "env"]));
        assert_eq!(a["unenforceable"], json!([]));
        assert_eq!(a["enforced"], json!([]));
        assert_eq!(a["kernel"]["refusal"]["limit"], "pids");
        assert_eq!(a["kernel"]["refusal"]["dimensions"], json!([]));
    }

    #[test]
    fn a_dimension_refusal_keeps_the_policys_required_set() {
        let refusal = Refusal {
            code: envelope::UNENFORCEABLE,
            message: "network allowlist".into(),
            profile_id: "readonly".into(),
            required: vec!["read", "write", "network", "env"],
            failing: Failing::Dimensions(vec!["network"]),
            logs_dir: None,
        };
        let a =
            &refusal_envelope(&refusal, "l", envelope::Kind::Local)["provenance"]["attestation"];
        assert_eq!(a["required"], json!(["read", "write", "network", "env"]));
        assert_eq!(a["unenforceable"], json!(["network"]));
        assert_eq!(a["kernel"]["refusal"]["limit"], json!(null));
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
            ["read", "write", "env"]
        );
        assert_eq!(
            required_of(&req("locked-down", None)),
            ["read", "write", "command", "network", "env"]
        );
        let cw = Request {
            exec_programs: vec!["npm test".into()],
            ..Default::default()
        };
        assert!(required_of(&cw).contains(&"command"));
    }
}
