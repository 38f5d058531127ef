//! A docker-compatible front end for Common Fabric's harness runtime (`docker-runsc-cfc`):
//! the harness drives `docker create` / `start --attach` / `wait` / `rm -f` (and `info` in
//! enforcing CFC modes), and takes any binary in place of `docker`. Run as `docker` (a
//! symlink named so, earlier on PATH, or the harness's `dockerBinary`) or `cw-exec docker`.
//!
//! The calls and what the harness does with their output are in
//! `../shared/contracts/common-fabric.md`; docs/common-fabric.md says how to set it up.
//! Every container is a cw-exec run: the `--mount`s become binds at their sandbox paths,
//! `--network none|host` the network mode, `--user` the identity, `-w` the working
//! directory, `--env` literal variables; the configured profile (`docker` by default)
//! supplies the rest. `create` validates the whole plan (so a refusal comes before the
//! harness writes any sidecar) and records it; `start` plans again in its own process,
//! checks every bind against what `create` recorded, and runs under full enforcement.

pub mod args;
pub mod cfc;
pub mod config;
pub mod state;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use self::args::{CreateArgs, Invocation, Network};
use self::config::Config;
use self::state::{Entry, State};
use crate::model::{BindSpec, Refusal, EXIT_REFUSED};
use crate::plan::{Plan, Request};
use crate::{envelope, seal, supervise};

/// Whether cw-exec was run under the name `docker` (the file name of argv[0]).
pub fn invoked_as_docker() -> bool {
    std::env::args_os()
        .next()
        .map(PathBuf::from)
        .and_then(|p| p.file_name().map(|n| n == "docker"))
        .unwrap_or(false)
}

/// Runs one docker command line (the arguments after the program name); the exit status.
pub fn main(args: &[String]) -> i32 {
    let invocation = match args::parse(args) {
        Ok(i) => i,
        Err(e) => return fail(e),
    };
    match invocation {
        Invocation::Help => {
            say(USAGE.trim_end());
            0
        }
        Invocation::Create(c) => create(&c),
        Invocation::Start { id, interactive } => start(&id, interactive),
        Invocation::Wait { ids } => wait(&ids),
        Invocation::Rm { force, ids } => rm(force, &ids),
        Invocation::Info => info(),
        Invocation::Inspect { ids } => inspect(&ids),
    }
}

const USAGE: &str =
    "cw-exec's docker front end (for Common Fabric's harness; see docs/common-fabric.md)

  docker create [-i] [--runtime R] --network none|host [--user UID:GID]
                [--mount type=bind,src=HOST,dst=SANDBOX[,readonly]]... [-w DIR]
                [--env K=V]... IMAGE COMMAND [ARG...]      validate, record, print the id
  docker start --attach [--interactive] ID                 run it under full enforcement
  docker wait ID...                                        print each exit status
  docker rm -f ID...                                       kill what is left, remove the state
  docker info --format '{{json .Runtimes}}'                the configured runtime
  docker inspect ID...                                     the record, status and attestation
";

/// A line on stdout; a closed stdout (the reader went away) is not an error worth a panic.
fn say(line: impl std::fmt::Display) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}

fn fail(message: impl std::fmt::Display) -> i32 {
    eprintln!("cw-exec docker: {message}");
    EXIT_REFUSED
}

/// What `create` recorded: its arguments as given, and the host objects the binds resolved
/// to (what `start` checks its own resolution against).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Spec {
    version: u32,
    id: String,
    created: String,
    /// The creator's uid and gid (a start by anyone else is refused).
    creator: (u32, u32),
    args: CreateArgs,
    binds: Vec<RecordedBind>,
    profile: String,
}

#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RecordedBind {
    host: PathBuf,
    sandbox: PathBuf,
    dev: u64,
    ino: u64,
    access: String,
}

/// How a run ended, as `wait` and `inspect` report it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Status {
    exit_code: i32,
    signal: Option<i32>,
    /// Why nothing ran, if so.
    refused: Option<String>,
    /// `start` received SIGTERM (the harness's timeout) and killed the sandbox.
    terminated: bool,
    finished_at: String,
}

/// The running start, for `rm -f`: its pid and start time (so a reused pid is not killed).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Started {
    pid: i32,
    start_time: u64,
    started_at: String,
}

/// The container's request: the configured profile plus what `create` was given.
fn lower(c: &CreateArgs, config: &Config, state_dir: &Path) -> Result<Request, String> {
    let mut binds = vec![];
    for m in &c.mounts {
        binds.push(
            BindSpec::new(&m.src, &m.dst, m.readonly)
                .map_err(|e| format!("--mount src={},dst={}: {e}", m.src, m.dst))?,
        );
    }
    // A later --env for the same name wins, as in docker.
    let mut env: Vec<(String, String)> = vec![];
    for (k, v) in &c.env {
        env.retain(|(name, _)| name != k);
        env.push((k.clone(), v.clone()));
    }
    let mut protected = vec![(
        state_dir.to_path_buf(),
        "the docker front end's state".to_string(),
    )];
    protected.extend(config.protected());
    Ok(Request {
        profile: Some(config.profile.clone()),
        net: Some(match c.network {
            Network::None => crate::model::NetMode::None,
            Network::Host => crate::model::NetMode::Host,
        }),
        cwd: Some(PathBuf::from(c.workdir.as_deref().unwrap_or("/"))),
        binds,
        user: c.user,
        env_literal: env,
        command: c.argv.clone(),
        protected,
        // The harness's timeout is a SIGTERM to start: the whole sandbox goes at once.
        kill_after: Some(0.0),
        ..Default::default()
    })
}

/// Checks the runtime and image against the configuration.
fn check_runtime_and_image(c: &CreateArgs, config: &Config) -> Result<(), String> {
    if let Some(r) = &c.runtime {
        if *r != config.runtime {
            return Err(format!(
                "--runtime {r}: this front end's runtime is {} (configure the harness's runtime as {}; cw-exec is not runsc-cfc)",
                config.runtime, config.runtime
            ));
        }
    }
    if !config.images.contains(&c.image) {
        return Err(format!(
            "image {}: not a configured alias of the host runtime ({}); cw-exec runs commands on the host's own files and pulls no images",
            c.image,
            config.images.join(", ")
        ));
    }
    Ok(())
}

/// The refusal of a plan, said on stderr; its exit status (127 for a command not found).
fn refuse_plan(refusal: &Refusal) -> i32 {
    crate::cli::say_refused(refusal);
    refusal.exit_status()
}

fn create(c: &CreateArgs) -> i32 {
    let config = match config::load() {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    if let Err(e) = check_runtime_and_image(c, &config) {
        return fail(e);
    }
    let state = match State::open(true) {
        Ok(Some(s)) => s,
        Ok(None) => return fail("the state directory could not be created"),
        Err(e) => return fail(e),
    };
    let request = match lower(c, &config, state.path()) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    // The whole plan, now: a refusal leaves nothing behind.
    let plan = match Plan::build(&request) {
        Ok(p) => p,
        Err(refusal) => return refuse_plan(&refusal),
    };
    let entry = match state.create_entry() {
        Ok(e) => e,
        Err(e) => return fail(e),
    };
    let spec = Spec {
        version: 1,
        id: entry.id.clone(),
        created: crate::attest::now_iso8601(),
        creator: (
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        ),
        args: c.clone(),
        binds: recorded_binds(&plan),
        profile: plan.profile_id.clone(),
    };
    if let Err(e) = entry.write_json(state::SPEC, &spec) {
        let id = entry.id.clone();
        let _ = state.remove_entry(entry);
        return fail(format!("recording container {id}: {e}"));
    }
    say(&entry.id);
    0
}

fn recorded_binds(plan: &Plan) -> Vec<RecordedBind> {
    plan.binds
        .iter()
        .map(|b| {
            let id = b.grant.identity.expect("binds are held host objects");
            RecordedBind {
                host: b.grant.path.clone(),
                sandbox: b.sandbox.clone(),
                dev: id.dev,
                ino: id.ino,
                access: b.grant.access.describe(),
            }
        })
        .collect()
}

/// The entry of `id`, or the message for there being none.
fn find(id: &str) -> Result<(State, Entry), String> {
    let none = || format!("No such container: {id}");
    let state = State::open(false)?.ok_or_else(none)?;
    let entry = state.entry(id)?.ok_or_else(none)?;
    Ok((state, entry))
}

/// Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot.
fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

fn start(id: &str, interactive: bool) -> i32 {
    let (_state, entry) = match find(id) {
        Ok(found) => found,
        Err(e) => return fail(e),
    };
    // Held until this process (and the sandbox's init, which inherits it) is gone.
    let _lock = match entry.try_lock() {
        Ok(Some(l)) => l,
        Ok(None) => return fail(format!("container {id} is already running")),
        Err(e) => return fail(e),
    };
    match (entry.read(state::START), entry.read(state::STATUS)) {
        (Ok(None), Ok(None)) => {}
        (Err(e), _) | (_, Err(e)) => return fail(e),
        _ => {
            return fail(format!(
                "container {id} has already run: create a new one (cw-exec does not restart containers)"
            ))
        }
    }
    let me = std::process::id() as i32;
    let started = Started {
        pid: me,
        start_time: start_time(me).unwrap_or(0),
        started_at: crate::attest::now_iso8601(),
    };
    if let Err(e) = entry.write_json(state::START, &started) {
        return fail(e);
    }
    let spec: Spec = match entry.read_json(state::SPEC) {
        Ok(Some(s)) => s,
        Ok(None) => return fail(format!("container {id}: its record is missing")),
        Err(e) => return fail(e),
    };
    let code = run_recorded(&entry, &spec, interactive);
    // Nothing of the sandbox is left: the lock goes with this process.
    code
}

/// Everything that can refuse before the command runs, then the run, then the record.
fn run_recorded(entry: &Entry, spec: &Spec, interactive: bool) -> i32 {
    let label = spec.args.argv.join(" ");
    let refuse = |refusal: Refusal, signer: Option<&seal::Signer>| {
        crate::cli::say_refused(&refusal);
        let status = refusal.exit_status();
        let refused = crate::cli::Refused {
            refusal: refusal.clone(),
            profile_id: spec.profile.clone(),
            required: vec![],
            logs_dir: None,
        };
        let mut env = crate::cli::refusal_envelope(&refused, &label, envelope::Kind::Local);
        if let Some(s) = signer {
            s.seal(&mut env);
        }
        record(
            entry,
            &env,
            &Status {
                exit_code: status,
                signal: None,
                refused: Some(refusal.message.clone()),
                terminated: false,
                finished_at: crate::attest::now_iso8601(),
            },
        );
        status
    };
    let me = (
        nix::unistd::getuid().as_raw(),
        nix::unistd::getgid().as_raw(),
    );
    if spec.creator.0 != me.0 {
        return refuse(
            Refusal::bad(format!(
                "container {} was created by uid {}, not by this caller (uid {})",
                spec.id, spec.creator.0, me.0
            )),
            None,
        );
    }
    // The key exists before the sandbox does, as for `cw-exec run`.
    let signer = match seal::Signer::open(None) {
        Ok(s) => s,
        Err(e) => return refuse(Refusal::bad(e), None),
    };
    // Nothing `create` decided is trusted: the configuration is read, the request lowered
    // and the plan made again, and each bind must resolve to the object create recorded.
    let config = match config::load() {
        Ok(c) => c,
        Err(e) => return refuse(Refusal::bad(e), Some(&signer)),
    };
    if let Err(e) = check_runtime_and_image(&spec.args, &config) {
        return refuse(Refusal::bad(e), Some(&signer));
    }
    let state_dir = match state::location() {
        Ok(p) => entry.path().parent().map(Path::to_path_buf).unwrap_or(p),
        Err(e) => return refuse(Refusal::bad(e), Some(&signer)),
    };
    let request = match lower(&spec.args, &config, &state_dir) {
        Ok(r) => r,
        Err(e) => return refuse(Refusal::bad(e), Some(&signer)),
    };
    let plan = match Plan::build(&request) {
        Ok(p) => p,
        Err(r) => return refuse(r, Some(&signer)),
    };
    let now = recorded_binds(&plan);
    if now != spec.binds {
        let changed: Vec<String> = spec
            .binds
            .iter()
            .filter(|b| !now.contains(b))
            .map(|b| format!("{} (at {})", b.host.display(), b.sandbox.display()))
            .collect();
        return refuse(
            Refusal::bad(format!(
                "the binds changed since create: {} no longer resolve to the objects create checked",
                if changed.is_empty() {
                    "some".to_string()
                } else {
                    changed.join(", ")
                }
            )),
            Some(&signer),
        );
    }
    if let Err(e) = signer.check_plan(&plan) {
        return refuse(Refusal::bad(e), Some(&signer));
    }
    // CFC: the context is read and the result directory held before the sandbox exists.
    let cfc = match &config.cfc {
        Some(c) => match CfcRun::prepare(c, &spec.id, &plan) {
            Ok(run) => Some(run),
            Err(e) => return refuse(Refusal::bad(format!("CFC: {e}")), Some(&signer)),
        },
        None => None,
    };
    // The container's stdin is attached only when both create (-i) and start
    // (--interactive) ask for it.
    if !(spec.args.interactive && interactive) {
        if let Err(e) = stdin_from_null() {
            return refuse(Refusal::bad(e), Some(&signer));
        }
    }
    let capture = supervise::Capture {
        stdout: true,
        forward_stdout: true,
        stderr: false,
    };
    // Where user namespaces turn out to be denied, the plan for the Landlock tier refuses
    // the binds (it has no mount view): the run is refused, never weaker than planned.
    let (plan, outcome) = supervise::run_falling_back(&request, plan, capture);
    crate::cli::report(&plan, &outcome);
    let mut env = envelope::for_run(&plan, &outcome, &label, envelope::Kind::Local);
    signer.seal(&mut env);
    let terminated = outcome.forwarded == Some(libc::SIGTERM);
    let status = Status {
        exit_code: outcome.exit_code,
        signal: outcome.signal,
        refused: outcome.refusal.as_ref().map(|r| r.message.clone()),
        terminated,
        finished_at: crate::attest::now_iso8601(),
    };
    if let Some(run) = cfc {
        if let Err(e) = run.finish(entry, &spec.id, outcome.exit_code) {
            eprintln!("cw-exec docker: CFC result: {e}");
        }
    }
    record(entry, &env, &status);
    if let Some(dir) = &config.export_dir {
        if let Err(e) = export(dir, &spec.id, &env) {
            eprintln!("cw-exec docker: exporting the envelope: {e}");
        }
    }
    outcome.exit_code
}

/// Writes the envelope and the status (the status last: `wait` reads it).
fn record(entry: &Entry, env: &Value, status: &Status) {
    if let Err(e) = entry.write_json(state::ENVELOPE, env) {
        eprintln!("cw-exec docker: {e}");
    }
    if let Err(e) = entry.write_json(state::STATUS, status) {
        eprintln!("cw-exec docker: {e}");
    }
}

fn export(dir: &Path, id: &str, env: &Value) -> Result<(), String> {
    let dir = crate::sink::open_dir(dir, &[]).map_err(|e| e.to_string())?;
    let mut bytes = serde_json::to_vec_pretty(env).map_err(|e| e.to_string())?;
    bytes.push(b'\n');
    dir.replace_file(std::ffi::OsStr::new(&format!("{id}.json")), &bytes)
        .map_err(|e| e.to_string())
}

/// Makes this process's stdin /dev/null (what the sandbox then gets).
fn stdin_from_null() -> Result<(), String> {
    let null = nix::fcntl::open(
        "/dev/null",
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| format!("/dev/null: {e}"))?;
    nix::unistd::dup2_stdin(&null).map_err(|e| format!("stdin: {e}"))
}

/// A run's CFC side: its input labels and the held result directory.
struct CfcRun {
    cfc: config::Cfc,
    inputs: Option<Vec<Value>>,
    roots: Vec<cfc::Root>,
    policy: cfc::LabelPolicy,
    net: crate::model::NetMode,
    result_dir: crate::fsio::Dir,
}

impl CfcRun {
    fn prepare(c: &config::Cfc, id: &str, plan: &Plan) -> Result<CfcRun, String> {
        let ctx_path = c.context_dir.join(format!("{id}.json"));
        let inputs = match std::fs::symlink_metadata(&ctx_path) {
            Err(_) => None,
            Ok(_) => {
                let text = crate::fsio::read_text(&ctx_path, crate::fsio::MAX_DOCUMENT)
                    .map_err(|e| format!("{}: {e}", ctx_path.display()))?;
                let ctx: Value = serde_json::from_str(&text)
                    .map_err(|e| format!("{}: {e}", ctx_path.display()))?;
                Some(
                    cfc::context_labels(&ctx)
                        .map_err(|e| format!("{}: {e}", ctx_path.display()))?,
                )
            }
        };
        let policy = match &c.label_policy {
            Some(p) => cfc::LabelPolicy::load(p)?,
            None => cfc::LabelPolicy::default(),
        };
        let write_set = crate::cli::write_set(plan);
        let result_dir =
            crate::sink::open_dir(&c.result_dir, &write_set).map_err(|e| e.to_string())?;
        Ok(CfcRun {
            cfc: c.clone(),
            inputs,
            roots: cfc::roots(plan),
            policy,
            net: plan.net,
            result_dir,
        })
    }

    /// The result (before `wait` can return) and the store.
    fn finish(self, entry: &Entry, id: &str, code: i32) -> Result<(), String> {
        let store = cfc::Store::load(&self.cfc.label_store)?;
        let conf = cfc::result_label(
            self.inputs.as_deref(),
            &self.roots,
            &self.policy,
            &store,
            self.net,
        )?;
        let result = cfc::result_json(id, Some(code), &conf);
        let mut bytes = serde_json::to_vec(&result).map_err(|e| e.to_string())?;
        bytes.push(b'\n');
        // The store first: a later run must never read less than this one wrote.
        cfc::update_store(&self.cfc, &self.roots, &conf)?;
        self.result_dir
            .replace_file(std::ffi::OsStr::new(&format!("{id}.json")), &bytes)
            .map_err(|e| format!("{}/{id}.json: {e}", self.result_dir.path().display()))?;
        let _ = entry.write(state::CFC_RESULT, &bytes);
        Ok(())
    }
}

fn wait(ids: &[String]) -> i32 {
    let mut code = 0;
    for id in ids {
        match wait_one(id) {
            Ok(status) => say(status),
            Err(e) => code = fail(e),
        }
    }
    code
}

fn wait_one(id: &str) -> Result<i32, String> {
    let (_state, entry) = find(id)?;
    // A running start holds the lock; a dead one has released it.
    entry.wait_unlocked()?;
    if let Some(status) = entry.read_json::<Status>(state::STATUS)? {
        return Ok(status.exit_code);
    }
    if entry.read(state::START)?.is_some() {
        return Err(format!(
            "container {id}: its start ended without recording a status (it was killed)"
        ));
    }
    Err(format!(
        "container {id} was never started: there is no status to wait for"
    ))
}

fn rm(force: bool, ids: &[String]) -> i32 {
    let mut code = 0;
    for id in ids {
        match rm_one(force, id) {
            Ok(true) => say(id),
            Ok(false) => {}
            Err(e) => code = fail(e),
        }
    }
    code
}

/// How long `rm -f` waits for a start it sent SIGTERM to before it sends SIGKILL.
const RM_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

fn rm_one(force: bool, id: &str) -> Result<bool, String> {
    let (state, entry) = match find(id) {
        Ok(found) => found,
        // Already gone (or never was): nothing to do, as rm -f promises.
        Err(_) if force => return Ok(false),
        Err(e) => return Err(e),
    };
    let lock = match entry.try_lock()? {
        Some(l) => l,
        None if !force => {
            return Err(format!(
                "container {id} is running: stop it first, or use rm -f"
            ))
        }
        None => {
            stop_start(&entry)?;
            // The start is gone; its sandbox's init (which shares the lock) dies with it.
            let deadline = std::time::Instant::now() + RM_GRACE * 6;
            loop {
                if let Some(l) = entry.try_lock()? {
                    break l;
                }
                if std::time::Instant::now() > deadline {
                    return Err(format!(
                        "container {id} is still held by a process cw-exec did not start as its start (see {}); not removed",
                        entry.file(state::START).display()
                    ));
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    };
    state.remove_entry(entry)?;
    drop(lock);
    Ok(true)
}

/// Ends the start that holds an entry's lock: SIGTERM (it kills its sandbox at once and
/// records how it ended), then SIGKILL if it has not let go in `RM_GRACE` (the sandbox dies
/// with it: init has a parent-death signal). Only the process the entry recorded, checked by
/// its start time, is signalled.
fn stop_start(entry: &Entry) -> Result<(), String> {
    use nix::sys::signal::{kill, Signal};
    let started: Option<Started> = entry.read_json(state::START)?;
    let target = started.filter(|s| s.pid > 0 && start_time(s.pid) == Some(s.start_time));
    let Some(s) = target else {
        // The lock is held but not by the recorded start: its init, still ending. Wait.
        return Ok(());
    };
    let pid = nix::unistd::Pid::from_raw(s.pid);
    let _ = kill(pid, Signal::SIGTERM);
    let deadline = std::time::Instant::now() + RM_GRACE;
    while std::time::Instant::now() < deadline {
        if start_time(s.pid) != Some(s.start_time) {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    if start_time(s.pid) == Some(s.start_time) {
        let _ = kill(pid, Signal::SIGKILL);
    }
    Ok(())
}

fn info() -> i32 {
    let config = match config::load() {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let path = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "cw-exec".into());
    let table = json!({
        config.runtime.clone(): {
            "path": path,
            "runtimeArgs": config.runtime_args(),
        }
    });
    say(table);
    0
}

fn inspect(ids: &[String]) -> i32 {
    let mut out = vec![];
    let mut code = 0;
    for id in ids {
        match inspect_one(id) {
            Ok(v) => out.push(v),
            Err(e) => code = fail(e),
        }
    }
    say(serde_json::to_string_pretty(&Value::from(out)).unwrap_or_default());
    code
}

fn inspect_one(id: &str) -> Result<Value, String> {
    let (_state, entry) = find(id)?;
    let spec: Option<Spec> = entry.read_json(state::SPEC)?;
    let started: Option<Started> = entry.read_json(state::START)?;
    let status: Option<Status> = entry.read_json(state::STATUS)?;
    // Running: a start recorded itself, has not recorded a status, and is still that process
    // (its start time matches). The lock is not taken: a start must never find it held.
    let running = status.is_none()
        && started
            .as_ref()
            .is_some_and(|s| s.pid > 0 && start_time(s.pid) == Some(s.start_time));
    let envelope: Option<Value> = entry.read_json(state::ENVELOPE)?;
    let cfc_result: Option<Value> = entry.read_json(state::CFC_RESULT)?;
    let state_name = match (&status, running, &started) {
        (_, true, _) => "running",
        (Some(_), _, _) => "exited",
        (None, _, Some(_)) => "dead",
        (None, _, None) => "created",
    };
    Ok(json!({
        "Id": id,
        "Created": spec.as_ref().map(|s| s.created.clone()),
        "Image": spec.as_ref().map(|s| s.args.image.clone()),
        "Runtime": spec.as_ref().and_then(|s| s.args.runtime.clone()),
        "State": {
            "Status": state_name,
            "Running": running,
            "ExitCode": status.as_ref().map(|s| s.exit_code),
            "StartedAt": started.as_ref().map(|s| s.started_at.clone()),
            "FinishedAt": status.as_ref().map(|s| s.finished_at.clone()),
        },
        "Mounts": spec.as_ref().map(|s| &s.binds),
        "Config": spec.as_ref().map(|s| &s.args),
        "CwExec": {
            "stateDir": entry.path(),
            "profile": spec.as_ref().map(|s| s.profile.clone()),
            "status": status,
            "envelope": envelope,
            "cfcResult": cfc_result,
        },
    }))
}
