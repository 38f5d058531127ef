//! cw-exec as a Raxcell provider (docs/praxis.md), driven through the protocol the way Praxis
//! drives it: `raxcell <subcommand>` (argv0) or `cw-exec raxcell <subcommand>`, the request on
//! stdin (hand-written from ../shared/contracts/raxcell.md, in tests/fixtures/raxcell), one
//! JSON document back on stdout. Each enforcement claim is attacked from inside the sandbox
//! and checked on the host side, as root and as the unprivileged user.

mod common;
use common::*;

use serde_json::{json, Value};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

const RUN: &str = include_str!("fixtures/raxcell/run.json");
const PROBE: &str = include_str!("fixtures/raxcell/probe.json");
const EXPLAIN: &str = include_str!("fixtures/raxcell/explain-backend.json");
const RESOLVE: &str = include_str!("fixtures/raxcell/resolve-profile.json");

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A hand-written request with `@WS@` (the workspace: cwd and write root) and `@TOOLS@` (the
/// directory of the test helpers: a read root) filled in.
fn request(template: &str, ws: &Path) -> Value {
    let text = template
        .replace("@WS@", ws.to_str().unwrap())
        .replace("@TOOLS@", fixture().bin.to_str().unwrap());
    serde_json::from_str(&text).unwrap()
}

/// A run request for `argv` in `ws`.
fn run_request(ws: &Path, argv: &[&str]) -> Value {
    let mut r = request(RUN, ws);
    r["command"]["argv"] = json!(argv);
    r
}

/// `cw-exec raxcell ARGS` (or, with `as_raxcell`, cw-exec started as `raxcell ARGS`) under
/// the sandbox's identity, `stdin` written to it.
fn provider(sb: &Sandbox, as_raxcell: bool, args: &[&str], stdin: &str) -> Output {
    let mut c = if as_raxcell {
        let mut c = sb.plain(args);
        c.arg0("raxcell");
        c
    } else {
        let mut all = vec!["raxcell"];
        all.extend_from_slice(args);
        sb.plain(&all)
    };
    // Variables of the caller that must never reach the command.
    c.env("RAXCELL_TEST_SECRET", "leaked-from-the-provider");
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning the provider");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Calls a subcommand with a request: exit 0, exactly one JSON document of the expected kind.
fn call(sb: &Sandbox, sub: &str, req: &Value) -> Value {
    let out = provider(sb, true, &[sub], &req.to_string());
    assert_eq!(
        out.status.code(),
        Some(0),
        "{sub}: stdout {}\nstderr {}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    let docs: Vec<Value> = serde_json::Deserializer::from_str(text.trim())
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{sub}: not JSON ({e}): {text}"));
    assert_eq!(docs.len(), 1, "{sub}: one JSON document, got {text}");
    let want = match sub {
        "probe" => "raxcell.probeResult.v1",
        "explain-backend" => "raxcell.explainBackendResult.v1",
        "prepare-run" => "raxcell.prepareRunResult.v1",
        "run" => "raxcell.runResult.v1",
        _ => "raxcell.resolvedProfile.v1",
    };
    assert_eq!(docs[0]["kind"], want, "{sub}: {text}");
    docs.into_iter().next().unwrap()
}

fn processes_with(needle: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| {
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            cmd.contains(needle)
                .then(|| format!("{}: {cmd}", e.file_name().to_string_lossy()))
        })
        .collect()
}

#[test]
fn version_help_and_usage_errors_follow_the_cli_contract() {
    let sb = Sandbox::new();
    for as_raxcell in [true, false] {
        for v in ["--version", "-v", "version"] {
            let out = provider(&sb, as_raxcell, &[v], "");
            assert_eq!(out.status.code(), Some(0), "{v}");
            assert!(stdout(&out).contains("cw-exec"), "{v}: {}", stdout(&out));
        }
        for h in [&["--help"][..], &["-h"], &[]] {
            let out = provider(&sb, as_raxcell, h, "");
            assert_eq!(out.status.code(), Some(0), "{h:?}");
            assert!(stdout(&out).contains("prepare-run"), "{h:?}");
        }
        let out = provider(&sb, as_raxcell, &["frobnicate"], "");
        assert_eq!(out.status.code(), Some(1));
        assert!(stdout(&out).is_empty());
        assert_eq!(stderr(&out).trim(), "Unknown raxcell command: frobnicate");
        let out = provider(&sb, as_raxcell, &["run"], "{not json");
        assert_eq!(out.status.code(), Some(1));
        assert!(stdout(&out).is_empty());
        assert!(
            stderr(&out).starts_with("Invalid JSON request:"),
            "{}",
            stderr(&out)
        );
        let out = provider(&sb, as_raxcell, &["prepare-run"], "");
        assert_eq!(out.status.code(), Some(1), "an empty run request");
        // A request of another kind.
        let out = provider(&sb, as_raxcell, &["run"], PROBE);
        assert_eq!(out.status.code(), Some(1));
        assert!(stdout(&out).is_empty());
        assert_eq!(
            stderr(&out).trim(),
            "Unexpected raxcell request kind: raxcell.probe.v1; expected raxcell.run.v1"
        );
        // A run request whose fields have the wrong types.
        let mut bad = run_request(&sb.cwd, &["true"]);
        bad["command"]["argv"] = json!("true");
        let out = provider(&sb, as_raxcell, &["prepare-run"], &bad.to_string());
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr(&out).contains("command.argv"), "{}", stderr(&out));
        let out = provider(&sb, as_raxcell, &["run", "--bogus"], "");
        assert_eq!(out.status.code(), Some(1));
    }
    // --stdin is accepted and ignored; --json carries the request instead.
    let req = run_request(&sb.cwd, &["/bin/true"]);
    let out = provider(&sb, true, &["prepare-run", "--stdin"], &req.to_string());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = provider(&sb, false, &["prepare-run", "--json", &req.to_string()], "");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(v["ok"], true, "{v}");
}

#[test]
fn a_link_named_raxcell_is_the_provider() {
    let dir = workdir("link");
    let link = dir.join("raxcell");
    std::os::unix::fs::symlink(&fixture().cw, &link).unwrap();
    let out = std::process::Command::new(&link)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).starts_with("raxcell (cw-exec)"),
        "{}",
        stdout(&out)
    );
    // Empty stdin: the default probe request.
    let out = std::process::Command::new(&link)
        .arg("probe")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(v["kind"], "raxcell.probeResult.v1");
}

#[test]
fn probe_reports_this_kernels_truth_in_raxcells_vocabulary() {
    let sb = Sandbox::new();
    let native: Value = serde_json::from_slice(&cw(&["probe", "--json"]).stdout).unwrap();
    let v = call(&sb, "probe", &serde_json::from_str(PROBE).unwrap());
    assert_eq!(v["ready"], native["ready"], "{v}");
    if native["ready"] != true {
        skip("this kernel cannot enforce every dimension: cw-exec probe is not ready");
        return;
    }
    assert_eq!(v["selectedBackend"], "linux-bubblewrap");
    assert!(v["explanation"].as_str().unwrap().contains("cw-exec"));
    for cap in [
        "filesystem.read",
        "filesystem.write",
        "network.deny",
        "env.exact",
    ] {
        assert_eq!(v["supports"][cap], "full", "{cap}: {v}");
    }
    assert_eq!(v["supports"]["command.allowlist"], "unsupported");
    assert_eq!(v["missing"], json!([]));
    let weaknesses = v["weaknesses"].to_string();
    assert!(weaknesses.contains("metadata"), "{weaknesses}");
    assert!(weaknesses.contains("advisory"), "{weaknesses}");
    // Empty stdin is the default request.
    let out = provider(&sb, true, &["probe"], "");
    assert_eq!(out.status.code(), Some(0));
    // A backend cw-exec does not implement: not ready, and said why.
    let mut other: Value = serde_json::from_str(PROBE).unwrap();
    other["backendPreference"] = json!(["host-observed"]);
    let v = call(&sb, "probe", &other);
    assert_eq!(v["ready"], false);
    assert_eq!(v["selectedBackend"], Value::Null);
    assert!(v["missing"].to_string().contains("host-observed"), "{v}");
    assert!(!v["nextActions"].as_array().unwrap().is_empty());
}

#[test]
fn explain_backend_names_operations_and_runtime_roots() {
    let sb = Sandbox::new();
    let v = call(
        &sb,
        "explain-backend",
        &serde_json::from_str(EXPLAIN).unwrap(),
    );
    assert_eq!(v["selectedBackend"], "linux-bubblewrap");
    assert_eq!(v["probe"]["kind"], "raxcell.probeResult.v1");
    let ops = v["operations"].as_array().unwrap();
    let op = |m: &str| ops.iter().find(|o| o["method"] == m).cloned().unwrap();
    assert_eq!(op("prepareRun")["sideEffects"], json!(["no-process-spawn"]));
    assert_eq!(op("prepareRun")["inputKind"], "raxcell.run.v1");
    assert!(op("run")["sideEffects"]
        .as_array()
        .unwrap()
        .contains(&json!("spawns-process")));
    assert_eq!(v["explanation"]["backend"], "linux-bubblewrap");
    assert_eq!(v["explanation"]["hostPlatforms"], json!(["linux"]));
    let roots = v["explanation"]["runtimeRoots"].to_string();
    assert!(
        roots.contains("\"/usr\"") && roots.contains("scratch"),
        "{roots}"
    );
    assert!(v["explanation"]["isolationPrimitives"]
        .as_array()
        .unwrap()
        .contains(&json!("landlock")));
    let out = provider(&sb, false, &["explain-backend"], "");
    assert_eq!(
        out.status.code(),
        Some(0),
        "empty stdin: the default request"
    );
}

#[test]
fn resolve_profile_resolves_and_skips_missing_roots() {
    let sb = Sandbox::new();
    let v = call(&sb, "resolve-profile", &request(RESOLVE, &sb.cwd));
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["backend"], "linux-bubblewrap");
    assert_eq!(v["profile"], "workspace-write");
    assert_eq!(
        v["enforcement"]["filesystem"]["write"],
        json!([sb.cwd.to_str().unwrap()])
    );
    assert_eq!(
        v["enforcement"]["filesystem"]["read"],
        json!([fixture().bin.to_str().unwrap()])
    );
    assert!(v["filesystemLowering"]["warnings"]
        .to_string()
        .contains("does-not-exist"));
}

#[test]
fn prepare_run_follows_the_contracts_order_and_spawns_nothing() {
    let sb = Sandbox::new();
    let ws = sb.cwd.clone();
    let outside = workdir("outside");
    let secret = outside.join("secret.txt");
    write_file(&secret, "s3cret");
    let marker = ws.join("marker");
    let prepare = |req: &Value| call(&sb, "prepare-run", req);

    // ok: the lowering, an argv artifact, a capability report; nothing ran.
    let v = prepare(&run_request(&ws, &["/bin/sh", "-c", "touch marker"]));
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["backend"], "linux-bubblewrap");
    assert_eq!(v["denial"], Value::Null);
    assert_eq!(v["policyDecision"], Value::Null);
    assert_eq!(v["environmentGap"], Value::Null);
    assert!(!marker.exists(), "prepare-run ran the command");
    let art = &v["backendArtifacts"][0];
    assert_eq!(art["format"], "argv");
    let args: Vec<String> = serde_json::from_value(art["arguments"].clone()).unwrap();
    assert_eq!(args[1], "run");
    assert!(args
        .windows(2)
        .any(|w| w[0] == "--write" && w[1] == ws.to_str().unwrap()));
    assert!(args.windows(2).any(|w| w[0] == "--net" && w[1] == "none"));
    assert_eq!(args.last().unwrap(), "touch marker");
    let low = &v["filesystemLowering"];
    assert_eq!(low["declaredRoots"][1]["path"], ws.to_str().unwrap());
    assert_eq!(low["declaredRoots"][1]["access"], "write");
    assert_eq!(low["declaredRoots"][1]["source"], "declared");
    assert!(low["runtimeRoots"].to_string().contains("backend-runtime"));
    let dims = v["capabilityReport"]["dimensions"].as_array().unwrap();
    let enforced = |d: &str| {
        dims.iter()
            .any(|x| x["dimension"] == d && x["enforced"] == true)
    };
    assert!(enforced("read") && enforced("write") && enforced("network") && enforced("env"));
    assert!(
        !enforced("command"),
        "no allowlist in the protocol: command is not claimed"
    );

    // A cwd outside every root comes first.
    let mut r = run_request(&ws, &["cat", "~/x"]);
    r["command"]["cwd"] = json!(outside.to_str().unwrap());
    let v = prepare(&r);
    assert_eq!(v["ok"], false);
    assert_eq!(
        v["denial"],
        Value::Null,
        "a decision comes with denial: null"
    );
    assert_eq!(v["policyDecision"]["reason"], "cwd-outside-declared-roots");
    assert_eq!(v["policyDecision"]["path"], outside.to_str().unwrap());
    assert_eq!(v["policyDecision"]["required"], json!(["read"]));
    assert_eq!(v["backendArtifacts"], json!([]));

    // A dynamic shell path, before a path outside the roots.
    let script = format!("cat {}; cat ~/.ssh/id_rsa", secret.display());
    let v = prepare(&run_request(&ws, &["bash", "-c", &script]));
    assert_eq!(
        v["environmentGap"]["reason"],
        "shell-dynamic-path-unresolved"
    );
    assert_eq!(v["environmentGap"]["path"], "~/.ssh/id_rsa");
    assert_eq!(v["policyDecision"], Value::Null);
    assert_eq!(v["denial"], Value::Null);

    // A read outside the roots.
    let v = prepare(&run_request(&ws, &["cat", secret.to_str().unwrap()]));
    assert_eq!(v["policyDecision"]["reason"], "path-outside-declared-roots");
    assert_eq!(v["policyDecision"]["path"], secret.to_str().unwrap());
    assert_eq!(v["policyDecision"]["required"], json!(["read"]));
    assert_eq!(
        v["policyDecision"]["publicSafeMessage"],
        "The command references a path outside declared filesystem roots."
    );
    // A write outside the roots, through a redirection in a script.
    let out_file = outside.join("out.txt");
    let v = prepare(&run_request(
        &ws,
        &[
            "/bin/sh",
            "-c",
            &format!("echo hi > {}", out_file.display()),
        ],
    ));
    assert_eq!(v["policyDecision"]["path"], out_file.to_str().unwrap());
    assert_eq!(v["policyDecision"]["required"], json!(["write"]));
    // Inline python writing outside.
    let code = format!("open('{}', 'w').write('x')", out_file.display());
    let v = prepare(&run_request(&ws, &["python3", "-c", &code]));
    assert_eq!(v["policyDecision"]["required"], json!(["write"]), "{v}");

    // A declared root that does not exist is skipped, with a warning.
    let mut r = run_request(&ws, &["/bin/true"]);
    r["enforcement"]["filesystem"]["read"] = json!([outside.join("nope").to_str().unwrap()]);
    let v = prepare(&r);
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["filesystemLowering"]["warnings"]
        .to_string()
        .contains("declared-root-missing"));

    // A backend preference cw-exec does not implement is refused, never replaced.
    let mut r = run_request(&ws, &["/bin/true"]);
    r["backendPreference"] = json!(["host-observed", "linux-bubblewrap"]);
    let v = prepare(&r);
    assert_eq!(v["ok"], false);
    assert_eq!(v["backend"], Value::Null);
    assert_eq!(v["denial"]["code"], "CAPABILITY_MISMATCH");
    assert_eq!(v["denial"]["publicSafe"], true);
}

#[test]
fn grant_then_prepare_again_then_run_writes_and_reads_outside() {
    as_each_identity(|sb, who| {
        let ws = sb.cwd.clone();
        let outside = workdir("granted");
        let target = outside.join("report.txt");
        let input = outside.join("input.txt");
        write_file(&input, "from outside\n");
        let script = format!(
            "cat {} > {} && echo done",
            input.display(),
            target.display()
        );
        let mut req = run_request(&ws, &["/bin/sh", "-c", &script]);
        // As Praxis does: prepare, answer each decision with a grant, prepare again.
        let mut decisions = vec![];
        for _ in 0..3 {
            let v = call(&sb, "prepare-run", &req);
            if v["ok"] == true {
                break;
            }
            let d = v["environmentGap"]
                .as_object()
                .or(v["policyDecision"].as_object())
                .unwrap_or_else(|| panic!("{who}: no decision to answer: {v}"))
                .clone();
            assert_eq!(d["reason"], "path-outside-declared-roots", "{who}: {v}");
            decisions.push((d["path"].clone(), d["required"].clone()));
            req["policyGrants"].as_array_mut().unwrap().push(json!({
                "reason": "approved by the test",
                "path": d["path"],
                "access": d["required"],
                "grantedBy": "user",
            }));
        }
        assert_eq!(
            decisions,
            vec![
                (json!(input.to_str().unwrap()), json!(["read"])),
                (json!(target.to_str().unwrap()), json!(["write"])),
            ],
            "{who}"
        );
        let v = call(&sb, "prepare-run", &req);
        assert_eq!(v["ok"], true, "{who}: {v}");
        assert!(
            v["filesystemLowering"]["warnings"]
                .to_string()
                .contains("write-grant-materialized"),
            "{who}: {v}"
        );
        assert!(
            !target.exists(),
            "{who}: prepare-run created the write grant"
        );
        let v = call(&sb, "run", &req);
        assert_eq!(v["ok"], true, "{who}: {v}");
        assert_eq!(v["exitCode"], 0, "{who}: {v}");
        assert_eq!(v["stdout"], "done\n", "{who}");
        assert_eq!(
            std::fs::read_to_string(&target).unwrap(),
            "from outside\n",
            "{who}"
        );
        // The grant is of that one file: its neighbour stays out of the view. The analyser
        // would ask for it by name, so the attempt is hidden in a script.
        let neighbour = outside.join("neighbour.txt");
        write_file(&neighbour, "private");
        req["command"]["argv"] = json!([
            fixture().violate.to_str().unwrap(),
            "read",
            neighbour.to_str().unwrap()
        ]);
        let v = call(&sb, "prepare-run", &req);
        assert_eq!(
            v["policyDecision"]["path"],
            neighbour.to_str().unwrap(),
            "{who}: {v}"
        );
        write_file(
            &ws.join("check.sh"),
            &format!(
                "{} read {}\n",
                fixture().violate.display(),
                neighbour.display()
            ),
        );
        req["command"]["argv"] = json!(["/bin/sh", "check.sh"]);
        let v = call(&sb, "run", &req);
        assert_eq!(v["stdout"], "ENOENT\n", "{who}: {v}");
    });
}

#[test]
fn a_read_hidden_in_a_script_is_denied_by_the_kernel() {
    as_each_identity(|sb, who| {
        let ws = sb.cwd.clone();
        let outside = workdir("hidden");
        let secret = outside.join("id_rsa");
        write_file(&secret, "PRIVATE KEY");
        let planted = outside.join("planted");
        // The paths are inside a script file: the analyser sees only `sh attack.sh`.
        let script = ws.join("attack.sh");
        write_file(
            &script,
            &format!(
                "{v} read {s}\n{v} write {p}\ncat {s}\necho exit-$?\n",
                v = fixture().violate.display(),
                s = secret.display(),
                p = planted.display()
            ),
        );
        let req = run_request(&ws, &["/bin/sh", "attack.sh"]);
        let v = call(&sb, "prepare-run", &req);
        assert_eq!(v["ok"], true, "{who}: the analyser cannot see it: {v}");
        let v = call(&sb, "run", &req);
        assert_eq!(v["ok"], true, "{who}: {v}");
        let out = v["stdout"].as_str().unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "ENOENT", "{who}: read: {out}");
        assert!(
            lines[1] == "ENOENT" || lines[1] == "EROFS" || lines[1] == "EACCES",
            "{who}: write: {out}"
        );
        assert!(!out.contains("PRIVATE KEY"), "{who}: {out}");
        assert_eq!(lines.last(), Some(&"exit-1"), "{who}: {out}");
        assert!(!planted.exists(), "{who}: the host saw the write");
        assert_eq!(v["attestation"]["status"], "enforced", "{who}");
    });
}

#[test]
fn timeout_replies_after_the_whole_tree_is_dead() {
    as_each_identity(|sb, who| {
        let ws = sb.cwd.clone();
        let wire = Tripwire::new(&ws);
        let tag = format!(
            "{}.{}",
            2000 + std::process::id() % 1000,
            ws.to_string_lossy().len()
        );
        // A background child holding the tripwire, in its own session, and a foreground
        // sleep: neither may outlive the reply.
        let script = format!(
            "exec 3>{w}; echo up >&3; setsid sleep {tag} & sleep {tag} & echo started; wait",
            w = wire.path.display()
        );
        let mut req = run_request(&ws, &["/bin/sh", "-c", &script]);
        req["enforcement"]["resources"]["timeoutMs"] = json!(3000);
        let v = call(&sb, "run", &req);
        // The reply is out: the tree is already dead (no waiting here).
        let survivors = processes_with(&format!("sleep {tag}"));
        assert!(survivors.is_empty(), "{who}: survivors {survivors:?}");
        assert_eq!(v["stdout"], "started\n", "{who}: {v}");
        assert_eq!(v["ok"], false, "{who}");
        assert_eq!(v["timedOut"], true, "{who}");
        assert_eq!(v["exitCode"], Value::Null, "{who}");
        assert_eq!(v["denial"]["code"], "RUNNER_TIMED_OUT", "{who}");
        assert_eq!(
            v["denial"]["message"], "Sandbox command timed out.",
            "{who}"
        );
        assert!(v["backendArtifacts"].is_array(), "{who}");
        assert_eq!(
            wire.wait_closed(Duration::from_secs(60)),
            Ok("up\n".to_string()),
            "{who}"
        );
    });
}

#[test]
fn exit_codes_signals_and_the_attestation() {
    as_each_identity(|sb, who| {
        let ws = sb.cwd.clone();
        let v = call(
            &sb,
            "run",
            &run_request(&ws, &["/bin/sh", "-c", "echo out; echo err >&2; exit 17"]),
        );
        assert_eq!(v["ok"], true, "{who}: a non-zero exit is a normal run: {v}");
        assert_eq!(v["exitCode"], 17, "{who}");
        assert_eq!(v["denial"], Value::Null, "{who}");
        assert_eq!(v["timedOut"], false, "{who}");
        assert_eq!(v["fallback"], Value::Null, "{who}");
        assert_eq!(v["stdout"], "out\n", "{who}");
        assert_eq!(v["stderr"], "err\n", "{who}");
        let a = &v["attestation"];
        assert_eq!(a["status"], "enforced", "{who}: {a}");
        assert_eq!(
            a["enforced"],
            json!(["read", "write", "network", "env"]),
            "{who}"
        );
        assert!(a["kernel"]["landlock"].is_object(), "{who}: {a}");
        if who == "root" {
            assert!(a["signature"]["value"].is_string(), "{who}: signed");
            // Anyone with the public key can check it (wrapped as an envelope).
            let dir = workdir("verify");
            let f = dir.join("att.json");
            std::fs::write(&f, json!({"provenance": {"attestation": a}}).to_string()).unwrap();
            let out = cw(&["verify", f.to_str().unwrap()]);
            assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
            assert!(stdout(&out).contains("exit 17") || stdout(&out).starts_with("valid:"));
        }
        for (sig, name) in [(15, "TERM"), (9, "KILL")] {
            let v = call(
                &sb,
                "run",
                &run_request(&ws, &["/bin/sh", "-c", &format!("kill -{name} $$")]),
            );
            assert_eq!(v["ok"], true, "{who}: {v}");
            assert_eq!(v["exitCode"], 128 + sig, "{who}: killed by SIG{name}");
            assert_eq!(v["signal"], sig, "{who}");
        }
        // Not found on the sandbox's PATH: what a shell says.
        let v = call(&sb, "run", &run_request(&ws, &["no-such-command-raxcell"]));
        assert_eq!(v["exitCode"], 127, "{who}: {v}");
        assert!(v["stderr"]
            .as_str()
            .unwrap()
            .contains("no-such-command-raxcell"));
    });
}

#[test]
fn env_is_exactly_command_env_plus_path() {
    as_each_identity(|sb, who| {
        let ws = sb.cwd.clone();
        let mut req = run_request(&ws, &["/usr/bin/env"]);
        req["command"]["env"] = json!({"FOO": "bar", "TOKEN": "$cwd/not-a-token", "EMPTY": ""});
        let v = call(&sb, "run", &req);
        assert_eq!(v["exitCode"], 0, "{who}: {v}");
        let mut got: Vec<&str> = v["stdout"].as_str().unwrap().lines().collect();
        got.sort();
        let path = format!("PATH={DEFAULT_PATH}");
        let mut want = vec!["EMPTY=", "FOO=bar", path.as_str(), "TOKEN=$cwd/not-a-token"];
        want.sort();
        assert_eq!(got, want, "{who}");
        let names = v["attestation"]["kernel"].to_string();
        assert!(!names.contains("RAXCELL_TEST_SECRET"), "{who}");
        // A PATH in command.env wins, for the lookup too.
        req["command"]["env"] = json!({"PATH": "/bin"});
        req["command"]["argv"] = json!(["env"]);
        let v = call(&sb, "run", &req);
        assert_eq!(v["stdout"], "PATH=/bin\n", "{who}: {v}");
        // HOME only when the request sets it.
        req["command"]["env"] = json!({"HOME": ws.to_str().unwrap()});
        let v = call(&sb, "run", &req);
        assert_eq!(
            v["stdout"],
            format!("HOME={}\nPATH={DEFAULT_PATH}\n", ws.display()),
            "{who}: {v}"
        );
    });
}

#[test]
fn stdin_comes_from_the_request_and_null_is_end_of_file() {
    as_each_identity(|sb, who| {
        let ws = sb.cwd.clone();
        let mut req = run_request(&ws, &["/bin/cat"]);
        req["command"]["stdin"] = json!("line one\nline two\n");
        let v = call(&sb, "run", &req);
        assert_eq!(v["stdout"], "line one\nline two\n", "{who}: {v}");
        req["command"]["stdin"] = Value::Null;
        let v = call(&sb, "run", &req);
        assert_eq!(
            (v["exitCode"].clone(), v["stdout"].clone()),
            (json!(0), json!("")),
            "{who}"
        );
    });
}

#[test]
fn network_deny_reaches_no_host_listener_and_allow_does() {
    use std::net::TcpListener;
    as_each_identity(|sb, who| {
        let ws = sb.cwd.clone();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port().to_string();
        let argv = [
            fixture().violate.to_str().unwrap(),
            "tcp-connect",
            "127.0.0.1",
            &port,
        ];
        let req = run_request(&ws, &argv);
        assert_eq!(req["enforcement"]["network"], "deny");
        let v = call(&sb, "run", &req);
        assert_eq!(v["stdout"], "EPERM\n", "{who}: {v}");
        assert!(
            listener.accept().is_err(),
            "{who}: a connection reached the host"
        );
        let mut allow = req.clone();
        allow["enforcement"]["network"] = json!("allow");
        let v = call(&sb, "run", &allow);
        assert_eq!(v["stdout"], "ok\n", "{who}: {v}");
        assert!(
            listener.accept().is_ok(),
            "{who}: allow is the host network"
        );
        let dims = v["capabilityReport"]["dimensions"].to_string();
        assert!(dims.contains("unrestricted"), "{who}: {dims}");
    });
}

#[test]
fn unknown_backend_preferences_are_refused_and_nothing_runs() {
    let sb = Sandbox::new();
    let ws = sb.cwd.clone();
    let mut req = run_request(&ws, &["/bin/sh", "-c", "touch ran"]);
    req["backendPreference"] = json!(["host-observed"]);
    let v = call(&sb, "run", &req);
    assert_eq!(v["ok"], false);
    assert_eq!(v["denial"]["code"], "CAPABILITY_MISMATCH");
    assert_eq!(v["exitCode"], Value::Null);
    assert_eq!(v["stdout"], "");
    assert_eq!(v["timedOut"], false);
    assert!(!ws.join("ran").exists());
}

#[test]
fn limits_come_from_resources() {
    as_each_identity(|sb, who| {
        let ws = sb.cwd.clone();
        let mut req = run_request(
            &ws,
            &["/bin/sh", "-c", "head -c 5000 /dev/zero | tr '\\0' x"],
        );
        req["enforcement"]["resources"]["maxOutputBytes"] = json!(100);
        let v = call(&sb, "run", &req);
        assert_eq!(v["stdout"].as_str().unwrap().len(), 100, "{who}: {v}");
        assert_eq!(v["outputTruncated"], true, "{who}");
        let mut req = run_request(
            &ws,
            &["/bin/sh", "-c", "i=0; while [ $i -lt 12 ]; do sleep 5 & i=$((i+1)); done; kill $(jobs -p) 2>/dev/null; wait"],
        );
        req["enforcement"]["resources"]["maxProcesses"] = json!(4);
        let p = call(&sb, "prepare-run", &req);
        let limits = p["capabilityReport"]["limits"].to_string();
        assert!(limits.contains("\"pids\""), "{who}: {limits}");
        let v = call(&sb, "run", &req);
        assert!(
            v["stderr"].as_str().unwrap().contains("fork"),
            "{who}: the fifth process is refused: {v}"
        );
    });
}

#[test]
fn relative_paths_resolve_against_the_callers_directory() {
    let sb = Sandbox::new();
    let mut req = run_request(&sb.cwd, &["/bin/pwd"]);
    req["command"]["cwd"] = json!(".");
    req["enforcement"]["filesystem"]["write"] = json!(["."]);
    let v = call(&sb, "run", &req);
    assert_eq!(v["stdout"], format!("{}\n", sb.cwd.display()), "{v}");
}

#[test]
fn a_granted_path_that_does_not_exist_is_created_for_the_run() {
    let sb = Sandbox::new();
    let outside = workdir("create");
    let dir = outside.join("newdir");
    let file = outside.join("new.log");
    let script = format!(
        "mkdir -p {d} && echo x > {d}/f && echo y >> {f}",
        d = dir.display(),
        f = file.display()
    );
    let mut req = run_request(&sb.cwd, &["/bin/sh", "-c", &script]);
    for _ in 0..2 {
        let v = call(&sb, "prepare-run", &req);
        let d = v["policyDecision"].clone();
        assert_eq!(d["reason"], "path-outside-declared-roots", "{v}");
        req["policyGrants"].as_array_mut().unwrap().push(
            json!({"reason": "r", "path": d["path"], "access": d["required"], "grantedBy": "user"}),
        );
    }
    let v = call(&sb, "run", &req);
    // Created as a directory, because the command makes one there.
    assert_eq!(v["exitCode"], 0, "{v}");
    assert!(dir.is_dir(), "{v}");
    assert_eq!(
        std::fs::read_to_string(dir.join("f")).unwrap(),
        "x\n",
        "{v}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "y\n", "{v}");
}
