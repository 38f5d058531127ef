//! The envelope and its kernel attestation: exact cool-workflow shapes, values that match
//! what the child observes, and refusals when a mechanism is unavailable.

mod common;
use common::*;
use serde_json::Value;

fn status_field(status: &str, key: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(|v| v.trim().replace('\t', " "))
        .unwrap_or_default()
}

#[test]
fn envelope_evidence_triple_and_summary_are_exact() {
    let env = workdir("env").join("envelope.json");
    let sb = Sandbox::new().args(["--envelope", env.to_str().unwrap()]);
    let out = sb.run(&["/bin/echo", "hello", "world"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        out.stdout, b"hello world\n",
        "stdout must be the child's, byte for byte"
    );
    let e = envelope(&env);
    let sha = sha256_hex(b"hello world\n");
    let evidence = vec![
        "command:/bin/echo hello world".to_string(),
        "exitCode:0".to_string(),
        format!("stdoutSha256:sha256:{sha}"),
    ];
    assert_eq!(e["schemaVersion"], 1);
    assert_eq!(e["status"], "completed");
    assert_eq!(e["evidence"], serde_json::json!(evidence));
    assert_eq!(e["result"]["evidence"], e["evidence"]);
    assert_eq!(
        e["result"]["summary"],
        "/bin/echo hello world: completed (exit 0)"
    );
    assert_eq!(e["result"]["findings"], serde_json::json!([]));
    let p = &e["provenance"];
    assert_eq!(p["backendId"], "cw-exec");
    assert_eq!(p["locality"], "local");
    assert_eq!(p["kind"], "local");
    let a = &p["attestation"];
    for (k, v) in [
        ("schemaVersion", serde_json::json!(1)),
        ("backendId", "cw-exec".into()),
        ("status", "enforced".into()),
        ("sandboxProfileId", "default".into()),
    ] {
        assert_eq!(a[k], v, "{k}");
    }
    // As in cool-workflow, enforced/attested/unenforceable partition the required
    // dimensions; command (no allowlist) is not required, and with no exec allowlist
    // nothing restricts it, so the kernel section does not claim it either.
    let required = serde_json::json!(["read", "write", "network", "env"]);
    assert_eq!(a["required"], required);
    assert_eq!(a["enforced"], required);
    assert_eq!(a["attested"], serde_json::json!([]));
    assert_eq!(a["guarantees"]["read"], "enforced");
    assert_eq!(a["guarantees"]["command"], "absent");
    for dim in ["read", "write", "network", "env"] {
        let why = a["kernel"]["dimensions"][dim].as_str().unwrap();
        assert!(!why.starts_with("not proven"), "{dim}: {why}");
    }
    let command = a["kernel"]["dimensions"]["command"].as_str().unwrap();
    assert!(
        command.starts_with("not proven: exec allowlist in force"),
        "{command}"
    );
    assert_eq!(a["unenforceable"], serde_json::json!([]));
    assert!(a["recordedAt"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn failed_command_envelope() {
    let env = workdir("env").join("envelope.json");
    let out = Sandbox::new()
        .args(["--envelope", env.to_str().unwrap()])
        .run(&["/bin/sh", "-c", "echo out; exit 3"]);
    assert_eq!(out.status.code(), Some(3));
    let e = envelope(&env);
    assert_eq!(e["status"], "failed");
    assert_eq!(e["evidence"][1], "exitCode:3");
    assert_eq!(
        e["result"]["summary"],
        "/bin/sh -c echo out; exit 3: failed (exit 3)"
    );
}

#[test]
fn attestation_matches_what_the_child_observes() {
    let env = workdir("env").join("envelope.json");
    let f = fixture();
    let v = f.violate.to_str().unwrap();
    let sb = Sandbox::new().args([
        "--envelope",
        env.to_str().unwrap(),
        "--read",
        f.bin.to_str().unwrap(),
    ]);
    let out = sb.run(&[
        "/bin/sh",
        "-c",
        &format!("{v} status; echo NS; {v} ns net; {v} ns mnt; {v} ns pid; {v} ns user"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let (status, ns) = text.split_once("NS\n").unwrap();
    let ns: Vec<u64> = ns.lines().map(|l| l.parse().unwrap()).collect();
    let e = envelope(&env);
    let k = &e["provenance"]["attestation"]["kernel"];
    for key in [
        "NoNewPrivs",
        "Seccomp",
        "Seccomp_filters",
        "CapEff",
        "CapBnd",
        "CapPrm",
        "CapAmb",
        "CapInh",
    ] {
        assert_eq!(
            k["procStatus"][key].as_str().unwrap(),
            status_field(status, key),
            "{key}"
        );
    }
    assert_eq!(status_field(status, "Seccomp"), "2");
    assert_eq!(status_field(status, "NoNewPrivs"), "1");
    for (i, name) in ["net", "mnt", "pid", "user"].iter().enumerate() {
        let pair = &k["namespaces"][name];
        assert_eq!(
            pair["sandbox"].as_u64().unwrap(),
            ns[i],
            "{name} namespace inode"
        );
        assert_ne!(
            pair["sandbox"], pair["host"],
            "{name} namespace is the host's"
        );
        let host = std::fs::metadata(format!("/proc/self/ns/{name}"))
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
            .unwrap();
        assert_eq!(pair["host"].as_u64().unwrap(), host, "host {name} inode");
    }
    assert_eq!(k["landlock"]["status"], "fully_enforced");
    assert_eq!(k["seccomp"]["sha256"].as_str().unwrap().len(), 64);
    for probe in k["probes"].as_array().unwrap() {
        assert_eq!(probe["got"], probe["expect"], "{probe}");
    }
    let names: Vec<&str> = k["envNames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(names.contains(&"PATH") && names.contains(&"HOME"));
    let runtime: Vec<&str> = k["runtimeAllowance"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["path"].as_str().unwrap())
        .collect();
    assert!(runtime.contains(&"/usr"));
    assert!(!runtime
        .iter()
        .any(|p| p.starts_with("/etc/shadow") || p.starts_with("/root") || p.starts_with("/home")));
    let gaps = &k["gaps"];
    assert!(!gaps["command"].as_array().unwrap().is_empty());
}

#[test]
fn refuses_when_the_kernel_lacks_a_required_landlock_abi() {
    let dir = workdir("refuse");
    let profile = dir.join("future.toml");
    write_file(&profile, "read = [\"$cwd\"]\nmin_landlock_abi = 99\n");
    let marker = dir.join("ran");
    let env = dir.join("envelope.json");
    let out = Sandbox::new()
        .args([
            "--profile",
            profile.to_str().unwrap(),
            "--envelope",
            env.to_str().unwrap(),
            "--write",
            dir.to_str().unwrap(),
        ])
        .run(&["/bin/sh", "-c", &format!("touch {}", marker.display())]);
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("Landlock ABI 99"), "{}", stderr(&out));
    assert!(!marker.exists(), "the command ran despite the refusal");
    let e = envelope(&env);
    assert_eq!(e["status"], "refused");
    assert_eq!(
        e["evidence"],
        serde_json::json!([
            "refused:sandbox-unenforceable",
            "backend:cw-exec",
            "sandbox:future"
        ])
    );
    let summary = e["result"]["summary"].as_str().unwrap();
    assert!(
        summary.contains(": refused (sandbox-unenforceable) — "),
        "{summary}"
    );
    assert_eq!(e["provenance"]["attestation"]["status"], "refused");
    assert_eq!(
        e["provenance"]["attestation"]["enforced"],
        serde_json::json!([])
    );
    assert!(!e["provenance"]["attestation"]["unenforceable"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn envelope_to_stderr_keeps_stdout_clean() {
    let out = Sandbox::new()
        .args(["--envelope", "-"])
        .run(&["/bin/echo", "only this"]);
    assert_eq!(out.stdout, b"only this\n");
    let err = stderr(&out);
    let json_start = err.find('{').unwrap();
    let v: Value = serde_json::from_str(&err[json_start..]).unwrap();
    assert_eq!(v["status"], "completed");
}

#[test]
fn large_output_is_passed_through_and_hashed() {
    let env = workdir("env").join("envelope.json");
    let n = 5 * 1024 * 1024 + 17;
    let out = Sandbox::new()
        .args(["--envelope", env.to_str().unwrap()])
        .violate(&["echo-bytes", &n.to_string()]);
    assert_eq!(out.stdout.len(), n);
    let sha = sha256_hex(&out.stdout);
    assert_eq!(
        envelope(&env)["evidence"][2],
        format!("stdoutSha256:sha256:{sha}")
    );
}
