//! cw-exec: run a command under a policy the kernel enforces, and attest what it enforced.

mod attest;
mod child;
mod envelope;
mod kernel;
mod limits;
mod plan;
mod policy;
mod probe;
mod supervise;
mod sys;

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::plan::{Plan, PlanError, Request};
use crate::policy::{NetMode, Profile, Size, BUNDLED};

/// Exit code when cw-exec refuses or fails before exec.
const EXIT_REFUSED: i32 = 125;

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
    /// Write the cool-workflow result envelope with the kernel attestation to FILE (- for stderr).
    #[arg(long, value_name = "FILE|-")]
    envelope: Option<String>,
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
            timeout: self.timeout,
            memory: self.memory,
            pids: self.pids,
            cpu: self.cpu,
            nofile: self.nofile,
            fsize: self.fsize,
            output_limit: self.output_limit,
            command: self.command.clone(),
        }
    }
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
    };
    std::process::exit(code);
}

fn fail(message: impl std::fmt::Display) -> i32 {
    eprintln!("cw-exec: {message}");
    EXIT_REFUSED
}

/// Where the envelope goes, opened before anything runs so an unwritable path is a refusal,
/// not a lost attestation after the fact.
enum EnvelopeSink {
    Stderr,
    File(PathBuf, std::fs::File),
}

impl EnvelopeSink {
    fn open(target: &str) -> Result<EnvelopeSink, String> {
        if target == "-" {
            return Ok(EnvelopeSink::Stderr);
        }
        let path = PathBuf::from(target);
        std::fs::File::create(&path)
            .map(|f| EnvelopeSink::File(path, f))
            .map_err(|e| format!("--envelope {target}: {e}"))
    }

    fn write(self, envelope: &serde_json::Value) {
        let mut text = serde_json::to_string_pretty(envelope).unwrap_or_default();
        text.push('\n');
        let result = match self {
            EnvelopeSink::Stderr => std::io::stderr().write_all(text.as_bytes()),
            EnvelopeSink::File(path, mut f) => f
                .write_all(text.as_bytes())
                .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
        };
        if let Err(e) = result {
            eprintln!("cw-exec: writing the envelope: {e}");
        }
    }
}

fn run(args: &RunArgs) -> i32 {
    let sink = match args.envelope.as_deref().map(EnvelopeSink::open).transpose() {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let request = args.request();
    let label = request.command.join(" ");
    let plan = match Plan::build(&request) {
        Ok(plan) => plan,
        Err(err) => return plan_failure(&request, &label, err, sink),
    };
    let capture = supervise::Capture {
        stdout: sink.is_some() || plan.limits.output.is_some(),
        stderr: plan.limits.output.is_some(),
    };
    let outcome = supervise::run(&plan, capture);
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
    if let Some(sink) = sink {
        sink.write(&envelope::for_run(&plan, &outcome, &label));
    }
    outcome.exit_code
}

fn plan_failure(request: &Request, label: &str, err: PlanError, sink: Option<EnvelopeSink>) -> i32 {
    let profile_id = match &request.profile {
        Some(name) => Profile::load(name)
            .map(|(id, _)| id)
            .unwrap_or_else(|_| name.clone()),
        None => "default".into(),
    };
    let (code, exit, unenforceable): (&str, i32, &[&str]) = match &err {
        PlanError::BadInput(_) => ("backend-not-runnable", EXIT_REFUSED, &[]),
        PlanError::CommandNotFound(_) => ("no-command", 127, &[]),
        PlanError::Unenforceable { .. } => (
            envelope::UNENFORCEABLE,
            EXIT_REFUSED,
            &["read", "write", "command"],
        ),
    };
    match &err {
        PlanError::Unenforceable { mechanism, message } => {
            eprintln!("cw-exec: refused ({code}): {mechanism}: {message}")
        }
        other => eprintln!("cw-exec: {other}"),
    }
    if let Some(sink) = sink {
        let reason = err.to_string();
        let att = envelope::bare_refusal_attestation(&profile_id, &reason, unenforceable);
        sink.write(&envelope::refused_envelope(
            &profile_id,
            label,
            code,
            &reason,
            att,
            None,
        ));
    }
    exit
}

fn explain(args: &RunArgs) -> i32 {
    let request = args.request();
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
            let text = match std::fs::read_to_string(&file) {
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
