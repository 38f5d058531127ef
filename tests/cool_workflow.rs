//! cool-workflow integration: `cw-exec exec` on hand-written CW requests (each bundled
//! profile, each refusal path), `cw-exec run --manifest` as the agent wrapper (a worker whose
//! directory has `:` in its name), the backend payloads, and the JavaScript shim under node.

mod common;
use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/cool-workflow");

/// A CW run's directories: the repository (cwd) and a worker directory with `:` in its path.
struct Worker {
    cwd: PathBuf,
    dir: PathBuf,
}

fn worker() -> Worker {
    let base = workdir("cw");
    let cwd = base.join("repo");
    let dir = base.join("run:1").join("workers").join("worker:1");
    std::fs::create_dir_all(&cwd).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    write_file(&cwd.join("README"), "repo");
    write_file(&dir.join("input.md"), "the input");
    Worker { cwd, dir }
}

/// Opens a worker's directories to everyone, so an unprivileged user can run it too.
fn open_to_all(w: &Worker) {
    use std::os::unix::fs::PermissionsExt;
    let base = w.cwd.parent().unwrap();
    let mut stack = vec![base.to_path_buf()];
    while let Some(d) = stack.pop() {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
        }
    }
}

/// The identities to run a case as: the current user and, as root, the unprivileged one.
fn identities() -> Vec<(Option<(u32, u32)>, &'static str)> {
    let mut out = vec![(None, "current user")];
    if is_root() {
        match unprivileged_user() {
            Ok(ids) => out.push((Some(ids), TEST_USER)),
            Err(why) => skip(&format!("unprivileged variant: {why}")),
        }
    }
    out
}

fn fill(template: &str, w: &Worker, extra: &[(&str, String)]) -> String {
    let mut s = template.to_string();
    for (k, v) in extra {
        s = s.replace(k, v);
    }
    s.replace("@CWD@", w.cwd.to_str().unwrap())
        .replace("@WORKER@", w.dir.to_str().unwrap())
        .replace("@RUN@", w.dir.parent().unwrap().to_str().unwrap())
}

fn fixture_text(name: &str) -> String {
    std::fs::read_to_string(Path::new(FIXTURES).join(name)).unwrap()
}

fn policy(id: &str, w: &Worker) -> Value {
    serde_json::from_str(&fill(&fixture_text(&format!("policy-{id}.json")), w, &[])).unwrap()
}

fn request(
    file: &str,
    w: &Worker,
    policy: &Value,
    command: &str,
    args: &[&str],
    label: &str,
) -> PathBuf {
    let text = fill(
        &fixture_text(file),
        w,
        &[
            ("@POLICY@", policy.to_string()),
            ("@COMMAND@", command.to_string()),
            ("@ARGS@", json!(args).to_string()),
            ("@LABEL@", label.to_string()),
        ],
    );
    let path = w
        .dir
        .parent()
        .unwrap()
        .join(format!("request-{label}.json"));
    std::fs::write(&path, text).unwrap();
    path
}

fn exec(request: &Path) -> (Option<i32>, Value, String) {
    exec_as(request, None)
}

/// `cw-exec exec` as the current user, or as `user` (uid, gid) with no supplementary groups.
fn exec_as(request: &Path, user: Option<(u32, u32)>) -> (Option<i32>, Value, String) {
    let mut cmd = Command::new(&fixture().cw);
    cmd.args(["exec", "--request", request.to_str().unwrap()]);
    if let Some((uid, gid)) = user {
        use std::os::unix::process::CommandExt;
        cmd.uid(uid).gid(gid).env("HOME", "/nonexistent");
        // SAFETY: setgroups is async-signal-safe; it drops the supplementary groups.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setgroups(0, std::ptr::null()) != 0 && libc::geteuid() == 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let out = cmd.output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "exec printed no envelope ({e}): {}\n{}",
            stdout(&out),
            stderr(&out)
        )
    });
    (out.status.code(), v, stderr(&out))
}

fn sha(bytes: &[u8]) -> String {
    sha256_hex(bytes)
}

fn assert_completed(e: &Value, command_line: &str, exit: i32, stdout: &[u8], label: &str) {
    let evidence = json!([
        format!("command:{command_line}"),
        format!("exitCode:{exit}"),
        format!("stdoutSha256:sha256:{}", sha(stdout)),
    ]);
    assert_eq!(e["schemaVersion"], 1);
    assert_eq!(e["evidence"], evidence, "{e:#}");
    assert_signed_or_says_why(e);
    assert_eq!(e["result"]["evidence"], evidence);
    assert_eq!(e["result"]["findings"], json!([]));
    if exit == 0 {
        assert_eq!(e["status"], "completed");
        assert_eq!(
            e["result"]["summary"],
            format!("{label}: completed (exit 0)")
        );
    } else {
        assert_eq!(e["status"], "failed");
        assert_eq!(
            e["result"]["summary"],
            format!("{label}: failed (exit {exit})")
        );
    }
}

/// A signed envelope carries the signature (and the attestation) in the handle's metadata
/// too, where cool-workflow keeps it, and verifies against this host's key; an unsigned one
/// (no place for a key) says why in its notes.
fn assert_signed_or_says_why(e: &Value) {
    let a = &e["provenance"]["attestation"];
    if a["signature"].is_null() {
        let notes = a["notes"].to_string();
        assert!(notes.contains("unsigned:"), "{e:#}");
        return;
    }
    let m = &e["provenance"]["handle"]["metadata"];
    assert_eq!(m["signature"], a["signature"]);
    assert!(m["attestation"]["kernel"].is_object(), "{m:#}");
    let path = fixture().dir.join(format!("signed-{}.json", test_id()));
    std::fs::write(&path, e.to_string()).unwrap();
    let out = cw(&["verify", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

fn assert_refused(e: &Value, code: &str, profile: &str, label: &str, reason_contains: &str) {
    assert_eq!(e["status"], "refused", "{e:#}");
    assert_eq!(
        e["evidence"],
        json!([
            format!("refused:{code}"),
            "backend:cw-exec",
            format!("sandbox:{profile}")
        ])
    );
    assert_eq!(e["result"]["evidence"], e["evidence"]);
    let summary = e["result"]["summary"].as_str().unwrap();
    let prefix = format!("{label}: refused ({code}) — ");
    assert!(summary.starts_with(&prefix), "{summary}");
    assert!(summary.contains(reason_contains), "{summary}");
    let a = &e["provenance"]["attestation"];
    assert_eq!(a["status"], "refused");
    assert_eq!(a["enforced"], json!([]));
    assert!(
        a["notes"]
            .as_array()
            .unwrap()
            .contains(&json!(format!("refused: {code}"))),
        "{a:#}"
    );
    assert_eq!(e["provenance"]["backendId"], "cw-exec");
}

#[test]
fn exec_runs_each_bundled_profile_with_its_enforcement() {
    let script = "echo out; (echo x > written) 2>/dev/null && echo wrote || echo denied";
    for (id, required, wrote) in [
        ("default", json!(["read", "write", "env"]), false),
        (
            "readonly",
            json!(["read", "write", "network", "env"]),
            false,
        ),
        ("workspace-write", json!(["read", "write", "env"]), true),
    ] {
        let w = worker();
        let p = policy(id, &w);
        let label = format!("task-{id}");
        let req = request("request.json", &w, &p, "/bin/sh", &["-c", script], &label);
        let (code, e, err) = exec(&req);
        assert_eq!(code, Some(0), "{id}: {err}");
        let out = if wrote {
            "out\nwrote\n"
        } else {
            "out\ndenied\n"
        };
        assert_completed(
            &e,
            &format!("/bin/sh -c {script}"),
            0,
            out.as_bytes(),
            &label,
        );
        assert_eq!(w.cwd.join("written").exists(), wrote, "{id}: host side");
        let prov = &e["provenance"];
        assert_eq!(
            (
                prov["backendId"].as_str(),
                prov["locality"].as_str(),
                prov["kind"].as_str()
            ),
            (Some("cw-exec"), Some("local"), Some("delegating"))
        );
        let a = &prov["attestation"];
        assert_eq!(a["sandboxProfileId"], id);
        assert_eq!(a["required"], required, "{id}");
        assert_eq!(a["enforced"], required, "{id}");
        assert_eq!(a["unenforceable"], json!([]));
        assert_eq!(a["status"], "enforced");
        assert_eq!(a["enforcedByCW"], json!(["command", "env"]));
        assert_eq!(a["hostRequired"], json!(["read", "write", "network"]));
        assert_eq!(prov["handle"]["kind"], "process");
        assert_eq!(
            prov["handle"]["metadata"]["kernel"]["landlock"]["status"],
            "fully_enforced"
        );
        assert_eq!(a["kernel"]["landlock"]["status"], "fully_enforced");
    }
}

#[test]
fn exec_locked_down_refuses_every_command() {
    let w = worker();
    let p = policy("locked-down", &w);
    let marker = w.cwd.join("ran");
    let req = request(
        "request.json",
        &w,
        &p,
        "/usr/bin/touch",
        &[marker.to_str().unwrap()],
        "locked",
    );
    let (code, e, _) = exec(&req);
    assert_eq!(code, Some(125));
    assert_refused(
        &e,
        "sandbox-command-denied",
        "locked-down",
        "locked",
        "command execution is denied by sandbox profile locked-down",
    );
    assert!(!marker.exists());
}

#[test]
fn exec_allowlist_is_an_exact_whole_string_match() {
    let w = worker();
    let mut p = policy("readonly", &w);
    p["execute"] = json!({"mode": "allowlist", "allow": ["/bin/echo ok"]});
    let (code, e, err) = exec(&request(
        "request.json",
        &w,
        &p,
        "/bin/echo",
        &["ok"],
        "allowed",
    ));
    assert_eq!(code, Some(0), "{err}");
    assert_completed(&e, "/bin/echo ok", 0, b"ok\n", "allowed");
    assert_eq!(
        e["provenance"]["attestation"]["required"],
        json!(["read", "write", "command", "network", "env"])
    );
    let (code, e, _) = exec(&request(
        "request.json",
        &w,
        &p,
        "/bin/echo",
        &["ok", "more"],
        "denied",
    ));
    assert_eq!(code, Some(125));
    assert_refused(
        &e,
        "sandbox-command-denied",
        "readonly",
        "denied",
        "command is outside sandbox profile readonly allowlist",
    );
}

#[test]
fn exec_allowlist_is_a_kernel_exec_allowlist_of_programs() {
    // The gate lets exactly these command lines start; inside, the kernel lets exactly their
    // programs (and interpreter chains) execute, with any arguments.
    let v = fixture().violate.to_str().unwrap().to_string();
    for (user, who) in identities() {
        let w = worker();
        open_to_all(&w);
        let marker = w.cwd.join("touched");
        let tool = w.cwd.join("tool.sh");
        write_file(
            &tool,
            "#!/usr/bin/env sh\necho tool-ran\n/usr/bin/id\necho id=$?\n",
        );
        std::fs::set_permissions(&tool, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let touch = format!("{v} exec /usr/bin/touch {}", marker.display());
        let run_true = format!("{v} exec /usr/bin/true");
        let mut p = policy("readonly", &w);
        p["execute"] = json!({"mode": "allowlist", "allow": [
            touch, run_true, "/usr/bin/true --only-these-args", tool.to_str().unwrap()
        ]});
        // A program off the allowlist, started from inside: refused by the kernel.
        let args = ["exec", "/usr/bin/touch", marker.to_str().unwrap()];
        let req = request("request.json", &w, &p, &v, &args, "touch");
        let (code, e, err) = exec_as(&req, user);
        assert_eq!(code, Some(0), "{who}: {err}");
        assert_completed(&e, &touch, 0, b"EACCES\n", "touch");
        assert!(!marker.exists(), "{who}: touch ran");
        let a = &e["provenance"]["attestation"];
        assert_eq!(
            a["required"], a["enforced"],
            "{who}: {:#}",
            a["kernel"]["dimensions"]
        );
        assert!(a["enforced"]
            .as_array()
            .unwrap()
            .contains(&json!("command")));
        let programs: Vec<&str> = a["kernel"]["execPrograms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["program"].as_str().unwrap())
            .collect();
        assert_eq!(
            programs,
            [v.as_str(), "/usr/bin/true", tool.to_str().unwrap()]
        );
        let gaps = a["kernel"]["gaps"]["command"].to_string();
        assert!(gaps.contains("not their arguments"), "{who}: {gaps}");
        let notes = a["notes"].to_string();
        assert!(
            notes.contains("the kernel enforces the program set"),
            "{notes}"
        );
        assert!(notes.contains("top-level command only"), "{notes}");
        // A program on the allowlist, with arguments no entry names: the kernel allows it
        // (the arguments are the gate's, and the gate saw only the top-level line).
        let req = request(
            "request.json",
            &w,
            &p,
            &v,
            &["exec", "/usr/bin/true"],
            "true",
        );
        let (code, e, err) = exec_as(&req, user);
        assert_eq!(code, Some(0), "{who}: {err}");
        assert_completed(&e, &run_true, 0, b"", "true");
        // A script entry: its interpreter chain (env, then sh) is granted; what the script
        // starts off the allowlist is refused.
        let req = request("request.json", &w, &p, tool.to_str().unwrap(), &[], "tool");
        let (code, e, err) = exec_as(&req, user);
        assert_eq!(code, Some(0), "{who}: {err}");
        assert_completed(&e, tool.to_str().unwrap(), 0, b"tool-ran\nid=126\n", "tool");
        let chain = e["provenance"]["attestation"]["kernel"]["execPrograms"][2]["interpreterChain"]
            .to_string();
        assert!(
            chain.contains("/env\"") && chain.contains("dash"),
            "{chain}"
        );
    }
}

#[test]
fn exec_refuses_an_allowlist_it_cannot_express() {
    let w = worker();
    let marker = w.cwd.join("ran");
    let touch = format!("/usr/bin/touch {}", marker.display());
    let mut p = policy("readonly", &w);
    p["execute"] = json!({"mode": "allowlist", "allow": [touch, "no-such-program-cwx --flag"]});
    let req = request(
        "request.json",
        &w,
        &p,
        "/usr/bin/touch",
        &[marker.to_str().unwrap()],
        "unresolvable",
    );
    let (code, e, _) = exec(&req);
    assert_eq!(code, Some(125));
    assert_refused(
        &e,
        "sandbox-unenforceable",
        "readonly",
        "unresolvable",
        "cannot enforce or attest required sandbox dimension(s): command",
    );
    assert!(e["result"]["summary"]
        .as_str()
        .unwrap()
        .contains("no-such-program-cwx"));
    let a = &e["provenance"]["attestation"];
    assert_eq!(a["unenforceable"], json!(["command"]));
    assert_eq!(
        a["required"],
        json!(["read", "write", "command", "network", "env"])
    );
    assert!(!marker.exists());
    // A script in the write set: its interpreter would come from a file the sandbox writes.
    let mut p = policy("workspace-write", &w);
    let script = w.cwd.join("run.sh");
    write_file(&script, "#!/bin/sh\ntouch ran\n");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    p["execute"] = json!({"mode": "allowlist", "allow": [script.to_str().unwrap()]});
    let req = request(
        "request.json",
        &w,
        &p,
        script.to_str().unwrap(),
        &[],
        "planted",
    );
    let (code, e, _) = exec(&req);
    assert_eq!(code, Some(125));
    assert_refused(
        &e,
        "sandbox-unenforceable",
        "workspace-write",
        "planted",
        "is a script in the write set",
    );
    assert_eq!(
        e["provenance"]["attestation"]["unenforceable"],
        json!(["command"])
    );
    assert!(!marker.exists());
}

#[test]
fn exec_runs_a_network_allowlist_through_the_proxy() {
    let w = worker();
    let mut p = policy("readonly", &w);
    p["network"] = json!({"mode": "allowlist", "allow": ["api.example.com:443"]});
    let (code, e, err) = exec(&request(
        "request.json",
        &w,
        &p,
        "/usr/bin/true",
        &[],
        "net",
    ));
    assert_eq!(code, Some(0), "{err}");
    assert_completed(&e, "/usr/bin/true", 0, b"", "net");
    let a = &e["provenance"]["attestation"];
    assert_eq!(
        a["enforced"],
        json!(["read", "write", "network", "env"]),
        "{a:#}"
    );
    assert_eq!(
        a["kernel"]["network"]["allow"],
        json!(["api.example.com:443"])
    );
}

#[test]
fn exec_refuses_an_allowlist_entry_it_cannot_express() {
    let w = worker();
    let mut p = policy("readonly", &w);
    p["network"] = json!({"mode": "allowlist", "allow": ["api.*.example.com"]});
    let marker = w.cwd.join("ran");
    let (code, e, _) = exec(&request(
        "request.json",
        &w,
        &p,
        "/usr/bin/touch",
        &[marker.to_str().unwrap()],
        "net",
    ));
    assert_eq!(code, Some(125));
    assert_refused(
        &e,
        "sandbox-unenforceable",
        "readonly",
        "net",
        "cannot enforce or attest required sandbox dimension(s): network",
    );
    assert_eq!(
        e["provenance"]["attestation"]["unenforceable"],
        json!(["network"])
    );
    // The policy's own required set, not just the failing dimension.
    assert_eq!(
        e["provenance"]["attestation"]["required"],
        json!(["read", "write", "network", "env"])
    );
    assert!(!marker.exists());
}

#[test]
fn exec_without_a_command_is_no_command() {
    let w = worker();
    let p = policy("readonly", &w);
    let text = fill(
        &fixture_text("request.json"),
        &w,
        &[("@POLICY@", p.to_string()), ("@LABEL@", "empty".into())],
    )
    .replace("\"command\": \"@COMMAND@\",", "")
    .replace("\"args\": @ARGS@,", "");
    let path = w.dir.parent().unwrap().join("request-empty.json");
    std::fs::write(&path, text).unwrap();
    let (code, e, _) = exec(&path);
    assert_eq!(code, Some(125));
    assert_refused(
        &e,
        "no-command",
        "readonly",
        "empty",
        "Backend cw-exec requires a command to execute",
    );
}

#[test]
fn exec_runs_an_agent_hop_from_its_delegation() {
    let w = worker();
    let p = policy("readonly", &w);
    let (code, e, err) = exec(&request(
        "request-agent-hop.json",
        &w,
        &p,
        "/bin/echo",
        &["hop"],
        "agent-hop",
    ));
    assert_eq!(code, Some(0), "{err}");
    assert_completed(&e, "/bin/echo hop", 0, b"hop\n", "agent-hop");
}

#[test]
fn exec_reads_the_request_from_stdin_and_reports_failure() {
    let w = worker();
    let p = policy("readonly", &w);
    let req = std::fs::read(request(
        "request.json",
        &w,
        &p,
        "/bin/sh",
        &["-c", "echo bad; exit 4"],
        "fails",
    ))
    .unwrap();
    let mut child = Command::new(&fixture().cw)
        .args(["exec", "--request", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&req).unwrap();
    let out = child.wait_with_output().unwrap();
    let e: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_completed(&e, "/bin/sh -c echo bad; exit 4", 4, b"bad\n", "fails");
}

fn manifest(w: &Worker, p: &Value) -> PathBuf {
    let policy: crate_policy::Policy = serde_json::from_value(p.clone()).unwrap();
    let text = fill(
        &fixture_text("manifest.json"),
        w,
        &[
            ("@POLICY@", p.to_string()),
            (
                "@ALLOWED@",
                json!(policy.effective_write_set(w)).to_string(),
            ),
        ],
    );
    let path = w.dir.join("manifest.json");
    std::fs::write(&path, text).unwrap();
    path
}

/// The effective write set, computed here from the contract's rule.
mod crate_policy {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Policy {
        write_paths: Vec<String>,
        worker_output: std::collections::BTreeMap<String, bool>,
    }
    impl Policy {
        pub fn effective_write_set(&self, w: &super::Worker) -> Vec<String> {
            let mut out = self.write_paths.clone();
            for (key, rel) in [
                ("result", "result.md"),
                ("artifacts", "artifacts"),
                ("logs", "logs"),
            ] {
                if self.worker_output[key] {
                    out.push(w.dir.join(rel).to_string_lossy().into_owned());
                }
            }
            out
        }
    }
}

fn wrapper(w: &Worker, manifest: &Path, cmd: &[&str]) -> Command {
    let mut c = Command::new(&fixture().cw);
    c.args(["run", "--manifest", manifest.to_str().unwrap(), "--"])
        .args(cmd)
        .current_dir(&w.cwd)
        .stdin(Stdio::null());
    c
}

#[test]
fn wrapper_passes_stdout_and_exit_code_through_and_attests_to_logs() {
    let w = worker();
    let p = policy("readonly", &w);
    let m = manifest(&w, &p);
    let v = fixture().violate.to_str().unwrap().to_string();
    let out = wrapper(&w, &m, &[&v, "echo-bytes", "300000"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let expected: Vec<u8> = (0..=255u8).cycle().take(300000).collect();
    assert_eq!(
        out.stdout, expected,
        "stdout must be the agent's, byte for byte"
    );
    let e = envelope(&w.dir.join("logs/cw-exec-attestation.json"));
    assert_completed(
        &e,
        &format!("{v} echo-bytes 300000"),
        0,
        &expected,
        &format!("{v} echo-bytes 300000"),
    );
    let a = &e["provenance"]["attestation"];
    assert_eq!(a["sandboxProfileId"], "readonly");
    assert_eq!(a["status"], "enforced");
    let install: Vec<&str> = a["kernel"]["agentInstall"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["path"].as_str().unwrap())
        .collect();
    assert!(
        install.contains(&fixture().bin.to_str().unwrap()),
        "{install:?}"
    );
    // The result file was prepared and is the only writable thing in the worker.
    let out = wrapper(
        &w,
        &m,
        &[
            "/bin/sh",
            "-c",
            "echo done > \"$0\"; echo x > \"$1\"; exit 3",
            w.dir.join("result.md").to_str().unwrap(),
            w.dir.join("input.md").to_str().unwrap(),
        ],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(w.dir.join("result.md")).unwrap(),
        "done\n"
    );
    assert_eq!(
        std::fs::read_to_string(w.dir.join("input.md")).unwrap(),
        "the input"
    );
    assert_eq!(
        envelope(&w.dir.join("logs/cw-exec-attestation.json"))["status"],
        "failed"
    );
}

#[test]
fn a_planted_symlink_in_the_logs_does_not_redirect_the_attestation() {
    let w = worker();
    let p = policy("readonly", &w);
    let m = manifest(&w, &p);
    let victim = workdir("victim").join("victim.txt");
    write_file(&victim, "untouched");
    let target = w.dir.join("logs/cw-exec-attestation.json");
    // The agent may write its logs directory: it replaces the attestation with a symlink.
    let script = format!(
        "rm -f '{t}'; ln -s '{v}' '{t}'",
        t = target.display(),
        v = victim.display()
    );
    let out = wrapper(&w, &m, &["/bin/sh", "-c", &script])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
    assert!(!std::fs::symlink_metadata(&target)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(envelope(&target)["status"], "completed");
}

/// Runs `c` as the unprivileged test user (no supplementary groups).
fn as_user(c: &mut Command, (uid, gid): (u32, u32)) {
    use std::os::unix::process::CommandExt;
    c.uid(uid).gid(gid).env("HOME", "/nonexistent");
    unsafe {
        c.pre_exec(|| {
            if libc::setgroups(0, std::ptr::null()) != 0 && libc::geteuid() == 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Whether the agent's forgery (exactly; the genuine envelope quotes the agent's command
/// line, forgery text included) is at `target`.
fn forged(target: &Path) -> bool {
    std::fs::read_to_string(target)
        .map(|t| t == r#"{"forged": true}"#)
        .unwrap_or(false)
}

#[test]
fn a_forged_attestation_is_not_left_behind_when_cw_exec_cannot_write_its_own() {
    use std::os::unix::fs::PermissionsExt;
    for (user, who) in identities() {
        let w = worker();
        open_to_all(&w);
        let p = policy("readonly", &w);
        let m = manifest(&w, &p);
        let logs = w.dir.join("logs");
        let target = logs.join("cw-exec-attestation.json");
        // The agent forges the attestation, then makes its logs directory unwritable.
        let script = format!(
            "printf '{{\"forged\": true}}' > '{}'; chmod 555 '{}'",
            target.display(),
            logs.display()
        );
        let mut c = wrapper(&w, &m, &["/bin/sh", "-c", &script]);
        if let Some(u) = user {
            as_user(&mut c, u);
        }
        let out = c.output().unwrap();
        let err = stderr(&out);
        if user.is_none() && is_root() {
            // Root writes through the mode: the attestation in place is cw-exec's own.
            assert_eq!(out.status.code(), Some(0), "{err}");
            assert!(!forged(&target));
            assert_eq!(envelope(&target)["status"], "completed");
        } else {
            // Never the command's 0 with the forgery in place.
            assert_eq!(out.status.code(), Some(125), "{who}: {err}");
            assert!(err.contains("could not be written"), "{err}");
            assert!(
                !forged(&target) || err.contains("COULD NOT remove"),
                "{who}: the forgery was left without a word: {err}"
            );
        }
        std::fs::set_permissions(&logs, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

#[test]
fn a_forged_attestation_is_removed_when_the_agent_fills_the_filesystem() {
    if skip_unless_root("mounting a small tmpfs as a worker's logs directory") {
        return;
    }
    let w = worker();
    let p = policy("readonly", &w);
    let m = manifest(&w, &p);
    let logs = w.dir.join("logs");
    std::fs::create_dir(&logs).unwrap();
    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    if let Err(e) = mount(
        Some("cwexec-test-full"),
        &logs,
        Some("tmpfs"),
        MsFlags::empty(),
        Some("size=128k,mode=0755"),
    ) {
        skip(&format!("the ENOSPC case needs a tmpfs mounted here: {e}"));
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = umount2(&self.0, MntFlags::MNT_DETACH);
        }
    }
    let _guard = Unmount(logs.clone());
    let target = logs.join("cw-exec-attestation.json");
    let script = format!(
        "printf '{{\"forged\": true}}' > '{}'; cat /dev/zero > '{}' 2>/dev/null; exit 0",
        target.display(),
        logs.join("fill").display()
    );
    let out = wrapper(&w, &m, &["/bin/sh", "-c", &script])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert!(
        !forged(&target) || err.contains("COULD NOT remove"),
        "the forgery was left without a word: {err}"
    );
    assert!(!target.exists(), "{err}");
}

#[test]
fn a_symlinked_logs_directory_is_refused_before_the_run() {
    let w = worker();
    let p = policy("readonly", &w);
    let m = manifest(&w, &p);
    let victim = workdir("victim-logs");
    // Left by an earlier run (or anyone who could write the worker directory).
    std::os::unix::fs::symlink(&victim, w.dir.join("logs")).unwrap();
    let marker = victim.join("ran");
    let out = wrapper(&w, &m, &["/usr/bin/touch", marker.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(stderr(&out).contains("symbolic link"), "{}", stderr(&out));
    assert_eq!(std::fs::read_dir(&victim).unwrap().count(), 0);
}

#[test]
fn wrapper_env_follows_cool_workflow() {
    let w = worker();
    let mut p = policy("readonly", &w);
    p["env"] =
        json!({"inherit": false, "expose": ["CWT_EXPOSED"], "deny": ["AWS_SECRET_ACCESS_KEY"]});
    let m = manifest(&w, &p);
    let out = wrapper(&w, &m, &[fixture().violate.to_str().unwrap(), "env"])
        .env("CWT_EXPOSED", "shown")
        .env("CWT_UNRELATED", "hidden")
        .env("ANTHROPIC_API_KEY", "provider-key")
        .env("AWS_SECRET_ACCESS_KEY", "denied-key")
        .env("CW_WORKBENCH_TOKEN", "never")
        .env("USER", "someone")
        .output()
        .unwrap();
    let text = stdout(&out);
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        .collect();
    for present in ["PATH", "HOME", "CWT_EXPOSED", "ANTHROPIC_API_KEY", "USER"] {
        assert!(names.contains(&present), "{present} missing: {names:?}");
    }
    for absent in [
        "CWT_UNRELATED",
        "AWS_SECRET_ACCESS_KEY",
        "CW_WORKBENCH_TOKEN",
        "LANG",
        "TMPDIR",
    ] {
        assert!(!names.contains(&absent), "{absent} present: {names:?}");
    }
}

#[test]
fn wrapper_execute_none_runs_only_the_agent_itself() {
    let w = worker();
    let p = policy("locked-down", &w);
    let m = manifest(&w, &p);
    let env_file = workdir("cw-env").join("e.json");
    let out = wrapper(
        &w,
        &m,
        &[fixture().violate.to_str().unwrap(), "exec", "/bin/true"],
    )
    .args([] as [&str; 0])
    .output()
    .unwrap();
    assert_eq!(stdout(&out).trim(), "EACCES", "{}", stderr(&out));
    // Reads beyond the input and the agent's own install are refused too.
    let out = Command::new(&fixture().cw)
        .args([
            "run",
            "--manifest",
            m.to_str().unwrap(),
            "--envelope",
            env_file.to_str().unwrap(),
            "--",
        ])
        .args([
            fixture().violate.to_str().unwrap(),
            "read",
            w.cwd.join("README").to_str().unwrap(),
        ])
        .current_dir(&w.cwd)
        .output()
        .unwrap();
    assert_eq!(stdout(&out).trim(), "ENOENT");
    let a = &envelope(&env_file)["provenance"]["attestation"];
    assert_eq!(
        a["required"],
        json!(["read", "write", "command", "network", "env"])
    );
    assert_eq!(a["enforced"], a["required"]);
    assert!(
        !w.dir.join("logs").exists(),
        "locked-down does not allow logs"
    );
}

#[test]
fn wrapper_runs_a_network_allowlist_and_refuses_an_entry_it_cannot_express() {
    let w = worker();
    let mut p = policy("readonly", &w);
    p["network"] = json!({"mode": "allowlist", "allow": ["api.example.com"]});
    let m = manifest(&w, &p);
    let marker = w.cwd.join("ran");
    let out = wrapper(&w, &m, &["/usr/bin/true"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let e = envelope(&w.dir.join("logs/cw-exec-attestation.json"));
    assert_eq!(e["status"], "completed");
    let a = &e["provenance"]["attestation"];
    assert!(
        a["enforced"]
            .as_array()
            .unwrap()
            .contains(&json!("network")),
        "{a:#}"
    );
    p["network"] = json!({"mode": "allowlist", "allow": ["*"]});
    let m = manifest(&w, &p);
    let out = wrapper(&w, &m, &["/usr/bin/touch", marker.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("network allow"), "{}", stderr(&out));
    assert!(!marker.exists());
    let e = envelope(&w.dir.join("logs/cw-exec-attestation.json"));
    assert_eq!(e["status"], "refused");
    assert_eq!(e["evidence"][0], "refused:sandbox-unenforceable");
    let a = &e["provenance"]["attestation"];
    assert_eq!(a["required"], json!(["read", "write", "network", "env"]));
    assert_eq!(a["unenforceable"], json!(["network"]));
}

#[test]
fn wrapper_execute_allowlist_lets_the_agent_run_only_the_listed_programs() {
    let w = worker();
    let mut p = policy("readonly", &w);
    p["execute"] = json!({"mode": "allowlist", "allow": ["/usr/bin/true"]});
    let m = manifest(&w, &p);
    let v = fixture().violate.to_str().unwrap();
    let marker = w.cwd.join("touched");
    let out = wrapper(
        &w,
        &m,
        &[v, "exec", "/usr/bin/touch", marker.to_str().unwrap()],
    )
    .output()
    .unwrap();
    assert_eq!(stdout(&out).trim(), "EACCES", "{}", stderr(&out));
    assert!(!marker.exists());
    let out = wrapper(&w, &m, &[v, "exec", "/usr/bin/true", "any", "args"])
        .output()
        .unwrap();
    assert_eq!(
        (out.status.code(), stdout(&out).as_str()),
        (Some(0), ""),
        "{}",
        stderr(&out)
    );
    let a = &envelope(&w.dir.join("logs/cw-exec-attestation.json"))["provenance"]["attestation"];
    assert_eq!(
        a["enforced"],
        json!(["read", "write", "command", "network", "env"]),
        "{:#}",
        a["kernel"]["dimensions"]
    );
    assert!(a["notes"].to_string().contains("plus the agent itself"));
}

#[test]
fn killing_the_wrapper_kills_the_agent_tree() {
    let w = worker();
    let p = policy("readonly", &w);
    let m = manifest(&w, &p);
    // The worker's logs are in its write set: the agent's processes hold a tripwire there.
    let logs = w.dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let wire = Tripwire::new(&logs);
    let tag = format!("{}.{}", 2000 + std::process::id() % 1000, 7);
    let mut child = wrapper(
        &w,
        &m,
        &[
            "/bin/sh",
            "-c",
            &format!(
                "exec 3>{}; echo up >&3; sleep {tag} & sleep {tag} & echo ready; wait",
                wire.path.display()
            ),
        ],
    )
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let mut line = String::new();
    use std::io::BufRead;
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    let alive = || {
        std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            std::fs::read(e.path().join("cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .contains(&format!("sleep {tag}"))
                })
                .unwrap_or(false)
        })
    };
    assert!(alive());
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    // End of file on the tripwire: the last process of the agent tree is gone.
    assert_eq!(
        wire.wait_closed(std::time::Duration::from_secs(120)),
        Ok("up\n".to_string()),
        "the agent tree survived cw-exec's SIGKILL"
    );
    assert!(!alive(), "the agent tree survived cw-exec's SIGKILL");
}

#[test]
fn backend_payloads_have_cool_workflows_shapes() {
    let list: Value = serde_json::from_slice(&cw(&["backend", "list"]).stdout).unwrap();
    assert_eq!(list["schemaVersion"], 1);
    assert_eq!(list["default"], "cw-exec");
    let d = &list["backends"][0];
    for key in [
        "schemaVersion",
        "id",
        "title",
        "description",
        "kind",
        "locality",
        "default",
        "capabilities",
        "enforces",
        "attests",
        "readiness",
    ] {
        assert!(d.get(key).is_some(), "descriptor lacks {key}");
    }
    assert_eq!(d["kind"], "delegating");
    let dims: Vec<&str> = d["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["dimension"].as_str().unwrap())
        .collect();
    assert_eq!(dims, ["read", "write", "command", "network", "env"]);
    for c in d["capabilities"].as_array().unwrap() {
        assert!(
            c["support"] == "enforce" || c["support"] == "unsupported",
            "{c}"
        );
    }
    let show: Value = serde_json::from_slice(&cw(&["backend", "show", "cw-exec"]).stdout).unwrap();
    assert_eq!(&show, d);
    assert_eq!(cw(&["backend", "show", "node"]).status.code(), Some(125));
    let probe: Value =
        serde_json::from_slice(&cw(&["backend", "probe", "cw-exec"]).stdout).unwrap();
    for key in [
        "schemaVersion",
        "backendId",
        "locality",
        "kind",
        "readiness",
        "ready",
        "enforces",
        "attests",
        "checks",
    ] {
        assert!(probe.get(key).is_some(), "probe lacks {key}");
    }
    assert_eq!(probe["ready"], probe["readiness"] == "ready");
    let all: Value = serde_json::from_slice(&cw(&["backend", "probe"]).stdout).unwrap();
    assert_eq!(all["probes"][0]["backendId"], "cw-exec");
}

#[test]
fn js_shim_registers_cw_exec_and_drives_it_under_node() {
    let Ok(node) = which("node") else {
        skip("js shim: node is not installed");
        return;
    };
    let w = worker();
    let p = policy("readonly", &w);
    let req = request(
        "request.json",
        &w,
        &p,
        "/bin/echo",
        &["via", "shim"],
        "shim",
    );
    let shim = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/integrations/cool-workflow/register.js"
    );
    let out = Command::new(node)
        .arg(Path::new(FIXTURES).join("fake-cw/drive.js"))
        .arg(&req)
        .env("NODE_OPTIONS", format!("--require {shim}"))
        .env("CW_EXEC_BIN", &fixture().cw)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["ids"].as_array().unwrap().contains(&json!("cw-exec")));
    assert_eq!(v["probe"]["readiness"], "ready");
    assert_completed(
        &v["envelope"],
        "/bin/echo via shim",
        0,
        b"via shim\n",
        "shim",
    );
    assert_eq!(
        v["envelope"]["provenance"]["attestation"]["status"],
        "enforced"
    );
}

fn which(name: &str) -> Result<PathBuf, ()> {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .ok_or(())
}
