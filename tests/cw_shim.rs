//! The cool-workflow preload shim (`integrations/cool-workflow/register.js`) and the wrapper
//! path, under node, against a stand-in for cool-workflow's registry, drive and batch child
//! written from the contract (`tests/fixtures/cool-workflow-standin/`): a hostile agent is
//! contained on every path CW starts a process on (serial hops through the overridden `agent`
//! driver, concurrent rounds through the batch child and `preparedAgentOutcome`, the local
//! drivers through `runBackend`), nothing is wrapped twice, a missing or unready cw-exec
//! refuses the hop, and the wrapper runs an agent script that lies outside the repository.
//! Also: a failed `cw-exec run` names what the sandbox could not see.

mod common;
use common::*;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const STANDIN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/cool-workflow-standin"
);
const SHIM: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/integrations/cool-workflow/register.js"
);
const POLICIES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/cool-workflow");

fn which(name: &str) -> Option<PathBuf> {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// node, or a recorded skip.
fn node() -> Option<PathBuf> {
    let found = which("node");
    if found.is_none() {
        skip("cw shim: node is not installed");
    }
    found
}

fn agent_script() -> String {
    format!("{STANDIN}/agents/hostile/agent.js")
}

struct Worker {
    id: String,
    dir: PathBuf,
    manifest: PathBuf,
    policy: Value,
}

impl Worker {
    fn result(&self) -> PathBuf {
        self.dir.join("result.md")
    }
    fn attestation(&self) -> PathBuf {
        self.dir.join("logs/cw-exec-attestation.json")
    }
}

/// A CW run: the repository (cwd), a HOME, a secret outside every policy, a counting cw-exec
/// (`bin/cw-exec` logs each invocation's arguments, then runs the real one) and workers.
struct Run {
    base: PathBuf,
    repo: PathBuf,
    home: PathBuf,
    secret: PathBuf,
    bin: PathBuf,
    log: PathBuf,
    workers: Vec<Worker>,
}

fn script(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn open_to_all(dir: &Path) {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                let mode = e.metadata().unwrap().permissions().mode() | 0o666;
                std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(mode)).unwrap();
            }
        }
    }
}

/// The bundled policy `profile`, resolved for a worker; `tweak` edits it.
fn policy_for(profile: &str, repo: &Path, run_dir: &Path, dir: &Path) -> Value {
    let text = std::fs::read_to_string(format!("{POLICIES}/policy-{profile}.json")).unwrap();
    serde_json::from_str(
        &text
            .replace("@CWD@", repo.to_str().unwrap())
            .replace("@WORKER@", dir.to_str().unwrap())
            .replace("@RUN@", run_dir.to_str().unwrap()),
    )
    .unwrap()
}

fn setup(profile: &str, workers: usize, tweak: impl Fn(&mut Value)) -> Run {
    let base = workdir("shim");
    let repo = base.join("repo");
    let home = base.join("home");
    let run_dir = base.join("run:1");
    for d in [&repo, &home, &base.join("bin")] {
        std::fs::create_dir_all(d).unwrap();
    }
    write_file(&repo.join("README"), "repo");
    write_file(&home.join("home-secret.txt"), "the real home");
    let secret = base.join("secret.txt");
    write_file(&secret, "top secret");
    let log = base.join("cw-exec.log");
    write_file(&log, "");
    let bin = base.join("bin/cw-exec");
    script(
        &bin,
        &format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
            log.display(),
            fixture().cw.display()
        ),
    );
    let mut ws = vec![];
    for i in 1..=workers {
        let id = format!("worker:{i}");
        let dir = run_dir.join("workers").join(&id);
        std::fs::create_dir_all(&dir).unwrap();
        write_file(&dir.join("input.md"), "the input");
        let mut policy = policy_for(profile, &repo, &run_dir, &dir);
        tweak(&mut policy);
        let wo = &policy["workerOutput"];
        let mut allowed: Vec<String> = policy["writePaths"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_string())
            .collect();
        for (key, rel) in [
            ("result", "result.md"),
            ("artifacts", "artifacts"),
            ("logs", "logs"),
        ] {
            if wo[key] == true {
                allowed.push(dir.join(rel).to_string_lossy().into_owned());
            }
        }
        let manifest = dir.join("manifest.json");
        std::fs::write(
            &manifest,
            json!({"schemaVersion": 1, "workerId": id, "sandboxPolicy": policy, "allowedPaths": allowed})
                .to_string(),
        )
        .unwrap();
        ws.push(Worker {
            id,
            dir,
            manifest,
            policy,
        });
    }
    open_to_all(&base);
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    Run {
        base,
        repo,
        home,
        secret,
        bin,
        log,
        workers: ws,
    }
}

impl Run {
    /// The hostile agent, as CW_AGENT_COMMAND spells it.
    fn agent_command(&self) -> String {
        format!(
            "node {} {{{{input}}}} {{{{result}}}} {}",
            agent_script(),
            self.secret.display()
        )
    }

    /// The stand-in drive's run file. `agent_command`: CW's durable agent config (else
    /// CW_AGENT_COMMAND).
    fn run_file(&self, concurrency: usize, agent_command: Option<&str>) -> PathBuf {
        let workers: Vec<Value> = self
            .workers
            .iter()
            .map(|w| {
                json!({
                    "id": w.id, "workerDir": w.dir, "manifestPath": w.manifest,
                    "inputPath": w.dir.join("input.md"), "resultPath": w.result(),
                    "sandboxPolicy": w.policy,
                })
            })
            .collect();
        let mut run = json!({
            "cwd": self.repo, "state": self.base.join(format!("state-{concurrency}.json")),
            "concurrency": concurrency, "workers": workers,
        });
        if let Some(c) = agent_command {
            run["agentCommand"] = json!(c);
        }
        let path = self.base.join(format!("run-{concurrency}.json"));
        write_file(&path, &run.to_string());
        path
    }

    fn state(&self, concurrency: usize) -> Value {
        envelope(&self.base.join(format!("state-{concurrency}.json")))
    }

    /// cw-exec runs logged by the counting binary (its `backend ...` calls left out).
    fn runs(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("run "))
            .map(str::to_string)
            .collect()
    }

    /// A node process of the stand-in, as CW would start it: a clean environment with HOME,
    /// PATH, CW_EXEC_BIN and CW_AGENT_COMMAND, NODE_OPTIONS with the preload when `preload`.
    fn node(&self, node: &Path, script: &str, arg: &Path, preload: bool) -> Command {
        let mut c = Command::new(node);
        c.arg(format!("{STANDIN}/shell/{script}"))
            .arg(arg)
            .current_dir(&self.repo)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("USER", "cw-user")
            .env("CW_EXEC_BIN", &self.bin)
            .env("CW_AGENT_COMMAND", self.agent_command())
            .stdin(Stdio::null());
        if preload {
            c.env("NODE_OPTIONS", format!("--require {SHIM}"));
        }
        c
    }
}

fn as_user(c: &mut Command, (uid, gid): (u32, u32)) {
    use std::os::unix::process::CommandExt;
    c.uid(uid).gid(gid);
    // SAFETY: setgroups is async-signal-safe; it drops the supplementary groups.
    unsafe {
        c.pre_exec(|| {
            if libc::setgroups(0, std::ptr::null()) != 0 && libc::geteuid() == 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn ran(c: &mut Command) -> (Output, Value) {
    let out = c.output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "the stand-in printed no JSON ({e}), exit {:?}\nstdout: {}\nstderr: {}",
            out.status.code(),
            stdout(&out),
            stderr(&out)
        )
    });
    (out, v)
}

const DENIED: &[&str] = &["ENOENT", "EACCES", "EPERM", "EROFS"];

/// What the hostile agent recorded: each violation failed with an errno inside the sandbox,
/// and the host saw nothing. $HOME inside is the sandbox's private one (an empty directory of
/// its tmpfs at the same path): the real home's file is not there, and a write there, which
/// may succeed, never reaches the host.
fn assert_contained(run: &Run, w: &Worker, how: &str) {
    let text = std::fs::read_to_string(w.result())
        .unwrap_or_else(|e| panic!("{how}: {}: {e}", w.result().display()));
    let a: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{how}: {text}: {e}"));
    assert_eq!(a["readInput"], "ok", "{how}: {a}");
    for key in ["readSecret", "writeRepo", "appendRepo", "readHome"] {
        let got = a[key].as_str().unwrap_or_default();
        assert!(DENIED.contains(&got), "{how}: {key} got {got:?}: {a}");
    }
    let home = a["writeHome"].as_str().unwrap_or_default();
    assert!(
        home == "ok" || DENIED.contains(&home),
        "{how}: writeHome got {home:?}"
    );
    assert_eq!(a["hostname"], "cw-exec", "{how}: not in a sandbox: {a}");
    assert_eq!(
        a["child"], "ok",
        "{how}: the agent's own child was hindered: {a}"
    );
    assert!(
        !a["nodeOptions"].as_str().unwrap().contains("register.js"),
        "{how}: the shim reached the sandbox: {a}"
    );
    assert_eq!(
        a["shimState"], "",
        "{how}: the shim's marker reached the sandbox"
    );
    assert!(!run.repo.join("pwned.txt").exists(), "{how}: repo written");
    assert_eq!(
        std::fs::read_to_string(run.repo.join("README")).unwrap(),
        "repo",
        "{how}: repo file changed"
    );
    assert!(!run.home.join("pwned.txt").exists(), "{how}: HOME written");
}

/// The persisted hop (CW keeps `provenance.handle`): cw-exec's kernel evidence, its signed
/// attestation (verified from what CW persisted alone, so the shim altered none of it) and
/// CW's report.
fn assert_persisted(task: &Value, w: &Worker, how: &str) {
    assert_eq!(task["status"], "completed", "{how}: {task:#}");
    assert_eq!(task["backendId"], "cw-exec", "{how}");
    let m = &task["handle"]["metadata"];
    assert!(
        m["kernel"]["landlock"].is_object(),
        "{how}: no kernel section: {m:#}"
    );
    if is_root() || m.get("signature").is_some() {
        assert!(m["attestation"]["kernel"].is_object(), "{how}: {m:#}");
        let persisted = json!({
            "schemaVersion": 1, "status": task["status"], "evidence": task["evidence"],
            "result": {"evidence": task["evidence"]},
            "provenance": {"handle": task["handle"]},
        });
        let file = w.dir.join("persisted.json");
        std::fs::write(&file, persisted.to_string()).unwrap();
        let key = m["signature"]["publicKey"].as_str().unwrap().to_string();
        let out = cw(&["verify", "--key", &key, file.to_str().unwrap()]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{how}: {}{}",
            stdout(&out),
            stderr(&out)
        );
    }
    assert_eq!(m["reportedModel"], "hostile-1", "{how}");
    assert_eq!(m["command"], "node", "{how}: cw-exec's own handle key");
    let logged = envelope(&w.attestation());
    assert_eq!(logged["status"], "completed", "{how}");
    assert_eq!(
        logged["provenance"]["attestation"]["sandboxProfileId"], w.policy["id"],
        "{how}"
    );
    assert_eq!(logged["evidence"], task["evidence"], "{how}");
}

/// Exactly one cw-exec run per hop, never one inside another.
fn assert_wrapped_once(run: &Run, hops: usize, how: &str) {
    let runs = run.runs();
    assert_eq!(runs.len(), hops, "{how}: cw-exec runs: {runs:#?}");
    for r in &runs {
        let inner = r.split_once(" -- ").map(|(_, i)| i).unwrap_or_default();
        assert!(inner.starts_with("node "), "{how}: wrapped twice: {r}");
        assert!(r.contains("--manifest "), "{how}: no manifest: {r}");
    }
}

fn drive_contained(concurrency: usize, user: Option<(u32, u32)>, who: &str) {
    let Some(node) = node() else { return };
    let run = setup("readonly", 2, |_| {});
    let file = run.run_file(concurrency, None);
    let mut c = run.node(&node, "drive.js", &file, true);
    if let Some(ids) = user {
        as_user(&mut c, ids);
    }
    let (out, v) = ran(&mut c);
    assert!(out.status.success(), "{}", stderr(&out));
    let how = format!("{who}, concurrency {concurrency}");
    let state = run.state(concurrency);
    for (i, w) in run.workers.iter().enumerate() {
        assert_eq!(v["steps"][i]["status"], "completed", "{how}: {v:#}");
        assert_contained(&run, w, &how);
        assert_persisted(&state["tasks"][i], w, &how);
    }
    assert_wrapped_once(&run, run.workers.len(), &how);
}

#[test]
fn preload_contains_a_hostile_agent_in_serial_hops() {
    drive_contained(1, None, "current user");
    if is_root() {
        match unprivileged_user() {
            Ok(ids) => drive_contained(1, Some(ids), TEST_USER),
            Err(why) => skip(&format!("unprivileged variant: {why}")),
        }
    }
}

#[test]
fn preload_contains_a_hostile_agent_in_concurrent_rounds() {
    drive_contained(2, None, "current user");
    if is_root() {
        match unprivileged_user() {
            Ok(ids) => drive_contained(2, Some(ids), TEST_USER),
            Err(why) => skip(&format!("unprivileged variant: {why}")),
        }
    }
}

#[test]
fn without_the_preload_the_standin_runs_the_agent_unsandboxed() {
    // The control: the stand-in's own drivers contain nothing, so the tests above mean
    // something.
    let Some(node) = node() else { return };
    let run = setup("readonly", 1, |_| {});
    for concurrency in [1, 2] {
        let (out, v) =
            ran(&mut run.node(&node, "drive.js", &run.run_file(concurrency, None), false));
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(v["steps"][0]["status"], "completed");
        let a: Value =
            serde_json::from_str(&std::fs::read_to_string(run.workers[0].result()).unwrap())
                .unwrap();
        assert_eq!(a["readSecret"], "ok", "{a}");
        assert!(run.repo.join("pwned.txt").exists());
        assert!(run.home.join("pwned.txt").exists());
        std::fs::remove_file(run.repo.join("pwned.txt")).unwrap();
        std::fs::remove_file(run.home.join("pwned.txt")).unwrap();
    }
    assert!(run.runs().is_empty());
}

#[test]
fn preload_overrides_the_local_drivers_by_id() {
    let Some(node) = node() else { return };
    let run = setup("readonly", 1, |_| {});
    let w = &run.workers[0];
    // Local drivers run commands, not agents: the script is where a policy lets it be read.
    std::fs::create_dir_all(run.repo.join("tools")).unwrap();
    std::fs::copy(agent_script(), run.repo.join("tools/agent.js")).unwrap();
    open_to_all(&run.repo);
    let tool = run.repo.join("tools/agent.js");
    let (input, result) = (w.dir.join("input.md"), w.result());
    let args = [
        tool.to_str().unwrap(),
        input.to_str().unwrap(),
        result.to_str().unwrap(),
        run.secret.to_str().unwrap(),
    ];
    for id in ["node", "bun", "shell"] {
        let (command, argv): (String, Vec<&str>) = if id == "shell" {
            (format!("node {}", args.join(" ")), vec![])
        } else {
            ("node".into(), args.to_vec())
        };
        let request = json!({
            "schemaVersion": 1, "backendId": id, "command": command, "args": argv,
            "cwd": run.repo, "sandboxPolicy": w.policy, "label": format!("local-{id}"),
        });
        let file = run.base.join(format!("request-{id}.json"));
        write_file(&file, &request.to_string());
        let (out, v) = ran(&mut run.node(&node, "run-backend.js", &file, true));
        assert!(out.status.success(), "{}", stderr(&out));
        let d = &v["descriptor"];
        assert_eq!(d["id"], id);
        assert_eq!(
            d["kind"], "delegating",
            "{id}: still CW's local driver: {d:#}"
        );
        assert_eq!(d["delegate"], "cw-exec");
        let e = &v["envelope"];
        assert_eq!(e["status"], "completed", "{id}: {e:#}");
        assert_eq!(e["provenance"]["backendId"], "cw-exec", "{id}");
        let a = &e["provenance"]["attestation"];
        assert_eq!(a["status"], "enforced", "{id}");
        assert_eq!(a["attested"], json!([]), "{id}");
        assert!(e["provenance"]["handle"]["metadata"]["kernel"]["landlock"].is_object());
        assert_eq!(
            e["evidence"][0],
            format!("command:node {}", args.join(" ")),
            "{id}"
        );
        assert_contained(&run, w, id);
        std::fs::remove_file(w.result()).unwrap();
    }
    // CW's shell guard still applies before anything runs.
    let request = json!({
        "schemaVersion": 1, "backendId": "shell", "command": "cat /etc/hostname; id",
        "cwd": run.repo, "sandboxPolicy": w.policy,
    });
    let file = run.base.join("request-guard.json");
    write_file(&file, &request.to_string());
    let (_, v) = ran(&mut run.node(&node, "run-backend.js", &file, true));
    assert!(
        v["envelope"]["thrown"]
            .as_str()
            .unwrap_or_default()
            .contains("Shell backend refused"),
        "{v:#}"
    );
    // Three runs through `cw-exec exec`, none through `run`.
    let log = std::fs::read_to_string(&run.log).unwrap();
    assert_eq!(log.lines().filter(|l| l.starts_with("exec ")).count(), 3);
}

#[test]
fn already_wrapped_commands_are_not_wrapped_again() {
    let Some(node) = node() else { return };
    // env.inherit: NODE_OPTIONS (with the preload) would reach the agent if not removed.
    let run = setup("readonly", 2, |p| p["env"]["inherit"] = json!(true));
    let wrapped = format!(
        "{} run --manifest {{{{manifest}}}} -- {}",
        run.bin.display(),
        run.agent_command()
    );
    for concurrency in [1, 2] {
        write_file(&run.log, "");
        let mut c = run.node(&node, "drive.js", &run.run_file(concurrency, None), true);
        c.env("CW_AGENT_COMMAND", &wrapped);
        let (out, v) = ran(&mut c);
        assert!(out.status.success(), "{}", stderr(&out));
        let how = format!("already wrapped, concurrency {concurrency}");
        let state = run.state(concurrency);
        for (i, w) in run.workers.iter().enumerate() {
            assert_eq!(v["steps"][i]["status"], "completed", "{how}: {v:#}");
            assert_contained(&run, w, &how);
            assert_persisted(&state["tasks"][i], w, &how);
            std::fs::remove_file(w.result()).unwrap();
        }
        assert_wrapped_once(&run, 2, &how);
    }
}

#[test]
fn an_agent_command_from_cws_own_config_is_wrapped_or_refused() {
    // CW's durable agent config bypasses CW_AGENT_COMMAND: serial hops are still wrapped by
    // the overridden driver; in a concurrent round the batch child's guard refuses the
    // unwrapped spawn (fail closed), and the agent never runs.
    let Some(node) = node() else { return };
    let run = setup("readonly", 2, |_| {});
    let command = run.agent_command();
    let (out, v) = ran(&mut run.node(&node, "drive.js", &run.run_file(1, Some(&command)), true));
    assert!(out.status.success(), "{}", stderr(&out));
    for (i, w) in run.workers.iter().enumerate() {
        assert_eq!(v["steps"][i]["status"], "completed", "{v:#}");
        assert_contained(&run, w, "durable config, serial");
        std::fs::remove_file(w.result()).unwrap();
    }
    write_file(&run.log, "");
    let (out, v) = ran(&mut run.node(&node, "drive.js", &run.run_file(2, Some(&command)), true));
    assert!(out.status.success(), "{}", stderr(&out));
    for (i, w) in run.workers.iter().enumerate() {
        let step = &v["steps"][i];
        assert_eq!(step["status"], "refused", "{v:#}");
        let summary = step["summary"].as_str().unwrap();
        assert!(summary.contains("refusing to start"), "{summary}");
        assert!(!w.result().exists(), "the agent ran");
    }
    assert!(run.runs().is_empty());
    assert!(!run.repo.join("pwned.txt").exists());
}

fn assert_refused_not_run(run: &Run, v: &Value, code: &str, reason: &str, how: &str) {
    for (i, w) in run.workers.iter().enumerate() {
        let step = &v["steps"][i];
        assert_eq!(step["status"], "refused", "{how}: {v:#}");
        let summary = step["summary"].as_str().unwrap();
        assert!(
            summary.contains(&format!("refused ({code})")) && summary.contains(reason),
            "{how}: {summary}"
        );
        assert!(!w.result().exists(), "{how}: the agent ran");
    }
    assert!(!run.repo.join("pwned.txt").exists(), "{how}");
    assert!(!run.home.join("pwned.txt").exists(), "{how}");
}

#[test]
fn a_missing_cw_exec_refuses_the_hop() {
    let Some(node) = node() else { return };
    let run = setup("readonly", 2, |_| {});
    let missing = run.base.join("nowhere/cw-exec");
    for concurrency in [1, 2] {
        let mut c = run.node(&node, "drive.js", &run.run_file(concurrency, None), true);
        c.env("CW_EXEC_BIN", &missing);
        let (out, v) = ran(&mut c);
        assert!(out.status.success(), "{}", stderr(&out));
        let how = format!("missing cw-exec, concurrency {concurrency}");
        assert_refused_not_run(
            &run,
            &v,
            "backend-not-ready",
            "cw-exec is not available",
            &how,
        );
    }
    // The local drivers too.
    let request = json!({
        "schemaVersion": 1, "backendId": "node", "command": "/bin/sh",
        "args": ["-c", format!("echo x > {}", run.repo.join("pwned.txt").display())],
        "cwd": run.repo, "sandboxPolicy": run.workers[0].policy,
    });
    let file = run.base.join("request.json");
    write_file(&file, &request.to_string());
    let mut c = run.node(&node, "run-backend.js", &file, true);
    c.env("CW_EXEC_BIN", &missing);
    let (_, v) = ran(&mut c);
    let e = &v["envelope"];
    assert_eq!(e["status"], "refused", "{e:#}");
    assert_eq!(e["evidence"][0], "refused:backend-not-ready");
    assert_eq!(e["provenance"]["attestation"]["enforced"], json!([]));
    assert_eq!(v["descriptor"]["readiness"], "unavailable");
    assert!(!run.repo.join("pwned.txt").exists());
}

#[test]
fn a_cw_exec_that_is_not_ready_refuses_the_hop() {
    let Some(node) = node() else { return };
    let run = setup("readonly", 2, |_| {});
    let marker = run.base.join("ran");
    let caps: Vec<Value> = ["read", "write", "command", "network", "env"]
        .iter()
        .map(|d| json!({"dimension": d, "support": "enforce"}))
        .collect();
    let show = json!({"schemaVersion": 1, "id": "cw-exec", "title": "t", "description": "d",
        "kind": "delegating", "locality": "local", "default": false, "capabilities": caps,
        "enforces": [], "attests": [], "delegate": "cw-exec", "readiness": "unavailable"});
    let probe = json!({"schemaVersion": 1, "backendId": "cw-exec", "locality": "local",
        "kind": "delegating", "readiness": "unavailable", "ready": false, "enforces": [],
        "attests": [], "checks": [], "reason": "stub: this kernel cannot"});
    let stub = run.base.join("stub/cw-exec");
    std::fs::create_dir_all(stub.parent().unwrap()).unwrap();
    script(
        &stub,
        &format!(
            "#!/bin/sh\ncase \"$1 $2\" in\n\"backend show\") echo '{show}' ;;\n\"backend probe\") echo '{probe}' ;;\n*) touch '{}'; exec '{}' \"$@\" ;;\nesac\n",
            marker.display(),
            fixture().cw.display()
        ),
    );
    for concurrency in [1, 2] {
        let mut c = run.node(&node, "drive.js", &run.run_file(concurrency, None), true);
        c.env("CW_EXEC_BIN", &stub);
        let (out, v) = ran(&mut c);
        assert!(out.status.success(), "{}", stderr(&out));
        let how = format!("unready cw-exec, concurrency {concurrency}");
        assert_refused_not_run(
            &run,
            &v,
            "backend-not-ready",
            "stub: this kernel cannot",
            &how,
        );
        assert!(!marker.exists(), "{how}: cw-exec was asked to run");
    }
}

/// `cw-exec run --manifest M --envelope E -- CMD...` from `cwd`, with HOME set.
fn wrapper(run: &Run, w: &Worker, cmd: &[&str]) -> (Output, Value) {
    let env_file = run.base.join("wrapper-envelope.json");
    let _ = std::fs::remove_file(&env_file);
    let out = Command::new(&fixture().cw)
        .args(["run", "--manifest", w.manifest.to_str().unwrap()])
        .args(["--envelope", env_file.to_str().unwrap(), "--"])
        .args(cmd)
        .current_dir(&run.repo)
        .env("HOME", &run.home)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let e = envelope(&env_file);
    (out, e)
}

fn install_paths(e: &Value) -> Vec<String> {
    e["provenance"]["attestation"]["kernel"]["agentInstall"]
        .as_array()
        .unwrap_or_else(|| panic!("no agentInstall: {e:#}"))
        .iter()
        .map(|g| g["path"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_wrapper_runs_an_agent_script_outside_the_repository() {
    let Some(node) = node() else { return };
    // As a new user would: CW_AGENT_COMMAND is the wrapper, no preload; CW's own agent driver.
    for profile in ["readonly", "locked-down"] {
        let run = setup(profile, 1, |_| {});
        let w = &run.workers[0];
        let mut c = run.node(&node, "drive.js", &run.run_file(1, None), false);
        c.env(
            "CW_AGENT_COMMAND",
            format!(
                "{} run --manifest {{{{manifest}}}} -- {}",
                fixture().cw.display(),
                run.agent_command()
            ),
        );
        let (out, v) = ran(&mut c);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(v["steps"][0]["status"], "completed", "{profile}: {v:#}");
        assert!(w.result().exists(), "{profile}: no result");
        let a: Value = serde_json::from_str(&std::fs::read_to_string(w.result()).unwrap()).unwrap();
        for key in ["readSecret", "writeRepo", "readHome"] {
            assert!(
                DENIED.contains(&a[key].as_str().unwrap_or_default()),
                "{profile}: {a}"
            );
        }
        assert!(
            !run.home.join("pwned.txt").exists(),
            "{profile}: HOME written"
        );
    }
    // The script file and its package are the agent's installation, read-only.
    let run = setup("readonly", 1, |_| {});
    let w = &run.workers[0];
    let script_path = agent_script();
    let (out, e) = wrapper(
        &run,
        w,
        &[
            "node",
            &script_path,
            "in",
            w.result().to_str().unwrap(),
            "s",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let install = install_paths(&e);
    let package = format!("{STANDIN}/agents/hostile");
    assert!(install.contains(&script_path), "{install:?}");
    assert!(install.contains(&package), "{install:?}");
    let grant = e["provenance"]["attestation"]["kernel"]["agentInstall"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["path"] == json!(package))
        .unwrap()
        .clone();
    assert!(!grant["access"].as_str().unwrap().contains("write"));
}

#[test]
fn an_agent_script_is_never_granted_from_the_write_set_a_credential_or_the_workspace() {
    let Some(_) = node() else { return };
    let run = setup("locked-down", 1, |_| {});
    let w = &run.workers[0];
    let agent = std::fs::read_to_string(agent_script()).unwrap();
    // In the write set (the worker's result is writable): not derived.
    let run_ws = setup("readonly", 1, |_| {});
    let ww = &run_ws.workers[0];
    let in_ws = ww.dir.join("artifacts/agent.js");
    std::fs::create_dir_all(in_ws.parent().unwrap()).unwrap();
    write_file(&in_ws, &agent);
    write_file(&ww.dir.join("artifacts/package.json"), "{}");
    let (_, e) = wrapper(
        &run_ws,
        ww,
        &["node", in_ws.to_str().unwrap(), "a", "b", "c"],
    );
    let install = install_paths(&e);
    assert!(
        !install.iter().any(|p| p.contains("artifacts")),
        "{install:?}"
    );
    // Beneath a credential path (~/.ssh): not granted; the failure names it and its flag.
    let ssh = run.home.join(".ssh");
    std::fs::create_dir_all(&ssh).unwrap();
    let cred = ssh.join("agent.js");
    write_file(&cred, &agent);
    let (out, e) = wrapper(&run, w, &["node", cred.to_str().unwrap(), "a", "b", "c"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(!install_paths(&e).iter().any(|p| p.contains(".ssh")));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("--read {}", cred.display())),
        "no hint: {err}"
    );
    // In the workspace: the repository is a package, yet only the file is granted (locked-down
    // reads nothing of the repository but the agent's own script).
    write_file(&run.repo.join("package.json"), "{}");
    std::fs::create_dir_all(run.repo.join("tools")).unwrap();
    let tool = run.repo.join("tools/agent.js");
    write_file(&tool, &agent);
    let (out, e) = wrapper(
        &run,
        w,
        &[
            "node",
            tool.to_str().unwrap(),
            w.dir.join("input.md").to_str().unwrap(),
            w.result().to_str().unwrap(),
            run.secret.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let install = install_paths(&e);
    assert!(
        install.contains(&tool.to_string_lossy().into_owned()),
        "{install:?}"
    );
    assert!(
        !install
            .iter()
            .any(|p| Path::new(p) == run.repo || Path::new(p) == run.repo.join("tools")),
        "{install:?}"
    );
    let a: Value = serde_json::from_str(&std::fs::read_to_string(w.result()).unwrap()).unwrap();
    assert!(DENIED.contains(&a["readSecret"].as_str().unwrap()), "{a}");
    // In a home directory with a package.json: only the file, not the whole home.
    write_file(&run.home.join("package.json"), "{}");
    let in_home = run.home.join("agent.js");
    write_file(&in_home, &agent);
    let mut c = Command::new(&fixture().cw);
    let env_file = run.base.join("home-envelope.json");
    let out = c
        .args(["run", "--manifest", w.manifest.to_str().unwrap()])
        .args(["--envelope", env_file.to_str().unwrap(), "--"])
        .args([
            "node",
            in_home.to_str().unwrap(),
            "a",
            w.result().to_str().unwrap(),
            "c",
        ])
        .current_dir(&run.repo)
        .env("HOME", &run.home)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let install = install_paths(&envelope(&env_file));
    assert!(install.contains(&in_home.to_string_lossy().into_owned()));
    assert!(
        !install.iter().any(|p| Path::new(p) == run.home),
        "{install:?}"
    );
}

#[test]
fn a_failed_run_names_what_the_sandbox_could_not_see() {
    let outside = workdir("unseen");
    let file = outside.join("data.txt");
    write_file(&file, "data");
    let sb = Sandbox::new();
    let out = sb.run(&["cat", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        out.stdout.is_empty(),
        "stdout is the child's: {}",
        stdout(&out)
    );
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "cw-exec: hint: {} (named on the command line) exists on the host but is not visible in the sandbox; --read {}",
            file.display(),
            file.display()
        )),
        "{err}"
    );
    // Granted: visible, and a success prints no hint.
    let out = sb
        .clone()
        .args(["--read", outside.to_str().unwrap()])
        .run(&["cat", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out), "data");
    assert!(!stderr(&out).contains("hint"), "{}", stderr(&out));
    // A failure whose paths are all visible names nothing.
    let out = sb.run(&["sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(!stderr(&out).contains("hint"), "{}", stderr(&out));
    // The working directory, when the profile does not grant it.
    let locked = Sandbox::new().args(["--profile", "locked-down"]);
    let out = locked.run(&["/bin/ls", "."]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains(&format!(
            "{} (the working directory) exists on the host but is not visible in the sandbox; --read {}",
            locked.cwd.display(),
            locked.cwd.display()
        )),
        "{}",
        stderr(&out)
    );
}

#[test]
fn inside_a_sandbox_the_shim_wraps_nothing_again() {
    // cool-workflow itself running in a cw-exec sandbox, the shim preloaded: its agents run in
    // that sandbox (contained once), and the shim starts no cw-exec inside it, which cw-exec
    // would refuse as a nested sandbox.
    let Some(node) = node() else { return };
    let run = setup("readonly", 1, |_| {});
    let w = &run.workers[0];
    let shim_dir = Path::new(SHIM).parent().unwrap();
    let out = Command::new(&fixture().cw)
        .args([
            "run",
            "--read",
            STANDIN,
            "--read",
            shim_dir.to_str().unwrap(),
        ])
        .args([
            "--write",
            run.base.to_str().unwrap(),
            "--read",
            run.bin.parent().unwrap().to_str().unwrap(),
        ])
        .args(["--setenv", &format!("HOME={}", run.home.display())])
        .args(["--setenv", &format!("CW_EXEC_BIN={}", run.bin.display())])
        .args([
            "--setenv",
            &format!("CW_AGENT_COMMAND={}", run.agent_command()),
        ])
        .args(["--setenv", &format!("NODE_OPTIONS=--require {SHIM}")])
        .args(["--", node.to_str().unwrap()])
        .arg(format!("{STANDIN}/shell/drive.js"))
        .arg(run.run_file(1, None))
        .current_dir(&run.repo)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["steps"][0]["status"], "completed", "{v:#}");
    assert!(
        !v["ids"].as_array().unwrap().contains(&json!("cw-exec")),
        "the shim registered drivers inside the sandbox: {v:#}"
    );
    let a: Value = serde_json::from_str(&std::fs::read_to_string(w.result()).unwrap()).unwrap();
    // Contained by the outer sandbox's policy (the repository is read-only there).
    assert_eq!(a["hostname"], "cw-exec");
    assert!(DENIED.contains(&a["writeRepo"].as_str().unwrap()), "{a}");
    assert!(!run.repo.join("pwned.txt").exists());
    assert!(run.runs().is_empty(), "{:?}", run.runs());
}

#[test]
fn a_hop_without_the_shims_own_envelope_is_refused() {
    // A wrapper that names its own --envelope: the shim cannot collect the envelope from its
    // private directory, so the hop is refused rather than settled without kernel evidence.
    let Some(node) = node() else { return };
    let run = setup("readonly", 1, |_| {});
    let elsewhere = run.base.join("elsewhere.json");
    let wrapped = format!(
        "{} run --envelope {} --manifest {{{{manifest}}}} -- {}",
        run.bin.display(),
        elsewhere.display(),
        run.agent_command()
    );
    for (concurrency, reason) in [
        (1, "already names --envelope"),
        (2, "no cw-exec envelope for this concurrent hop"),
    ] {
        let mut c = run.node(&node, "drive.js", &run.run_file(concurrency, None), true);
        c.env("CW_AGENT_COMMAND", &wrapped);
        let (out, v) = ran(&mut c);
        assert!(out.status.success(), "{}", stderr(&out));
        let step = &v["steps"][0];
        assert_eq!(step["status"], "refused", "{v:#}");
        assert!(step["summary"].as_str().unwrap().contains(reason), "{step}");
        let task = &run.state(concurrency)["tasks"][0];
        assert!(task["handle"]["metadata"].get("kernel").is_none());
    }
}
