//! The suite's key cases as an unprivileged user: how most hosts run cw-exec. As root, the
//! test creates the user `cwexec-test` and runs cw-exec under it; as anyone else, it runs
//! as the current user.

mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;

fn sandbox() -> Option<Sandbox> {
    match unprivileged_user() {
        Ok(ids) => Some(Sandbox::new().user(ids)),
        Err(why) => {
            skip(&format!("unprivileged case: {why}"));
            None
        }
    }
}

#[test]
fn runs_and_attests_every_dimension() {
    let Some(sb) = sandbox() else { return };
    let env = workdir("unpriv").join("envelope.json");
    let out = sb
        .clone()
        .args(["--envelope", env.to_str().unwrap()])
        .run(&["/bin/true"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let e = envelope(&env);
    let a = &e["provenance"]["attestation"];
    assert_eq!(a["status"], "enforced");
    assert_eq!(
        a["enforced"],
        serde_json::json!(["read", "write", "network", "env"])
    );
    for dim in ["read", "write", "network", "env"] {
        let why = a["kernel"]["dimensions"][dim].as_str().unwrap();
        assert!(!why.starts_with("not proven"), "{dim}: {why}");
    }
    // No exec allowlist: nothing restricts execution, and the attestation does not say so.
    let command = a["kernel"]["dimensions"]["command"].as_str().unwrap();
    assert!(
        command.starts_with("not proven: exec allowlist in force"),
        "{command}"
    );
    assert_eq!(a["kernel"]["procStatus"]["CapEff"], "0000000000000000");
    for probe in a["kernel"]["probes"].as_array().unwrap() {
        assert_eq!(probe["got"], probe["expect"], "{probe}");
    }
    // With one, command is proven too, by the exec probe among others, as this user.
    let out = sb
        .args([
            "--exec",
            "/usr/bin/true",
            "--envelope",
            env.to_str().unwrap(),
        ])
        .run(&["/usr/bin/true"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let a = &envelope(&env)["provenance"]["attestation"];
    assert_eq!(
        a["enforced"],
        serde_json::json!(["read", "write", "command", "network", "env"]),
        "{:#}",
        a["kernel"]["dimensions"]
    );
    let probes = a["kernel"]["probes"].as_array().unwrap();
    for probe in probes {
        assert_eq!(probe["got"], probe["expect"], "{probe}");
    }
    for name in [
        "exec-outside-allowlist",
        "write-landlock",
        "read-outside-grants",
    ] {
        assert!(probes.iter().any(|p| p["name"] == name), "no {name} probe");
    }
}

#[test]
fn filesystem_violations_fail() {
    let Some(sb) = sandbox() else { return };
    let (uid, gid) = unprivileged_user().unwrap();
    let base = workdir("unpriv-fs");
    let ro = base.join("ro");
    let rw = base.join("rw");
    std::fs::create_dir_all(&ro).unwrap();
    std::fs::create_dir_all(&rw).unwrap();
    std::fs::set_permissions(&rw, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o777)).unwrap();
    let owned = ro.join("owned-by-user");
    write_file(&owned, "mine");
    std::os::unix::fs::chown(&owned, Some(uid), Some(gid)).unwrap();
    let sb = sb.args([
        "--read",
        ro.to_str().unwrap(),
        "--write",
        rw.to_str().unwrap(),
    ]);
    assert_eq!(sb.attempt(&["read", "/etc/shadow"]), "ENOENT");
    assert_eq!(sb.attempt(&["list", "/"]), "EACCES");
    assert_eq!(
        sb.attempt(&["write", rw.join("ok").to_str().unwrap()]),
        "ok"
    );
    // The user owns this file, yet outside the write set it cannot be changed in any way.
    for action in ["write", "chmod", "chown", "utimes", "setxattr", "unlink"] {
        assert_eq!(
            sb.attempt(&[action, owned.to_str().unwrap()]),
            "EROFS",
            "{action}"
        );
    }
    assert_eq!(std::fs::read_to_string(&owned).unwrap(), "mine");
    let mode = std::fs::metadata(&owned).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o666);
}

#[test]
fn command_violations_fail() {
    let Some(sb) = sandbox() else { return };
    assert_eq!(sb.attempt(&["memfd-exec"]), "EPERM");
    assert_eq!(sb.attempt(&["io-uring"]), "EPERM");
    assert_eq!(sb.attempt(&["unshare", "user"]), "EPERM");
    assert_eq!(sb.attempt(&["mount", "/tmp"]), "EPERM");
    let sb = sb.args(["--exec", "/usr/bin/true"]);
    assert_eq!(sb.attempt(&["exec", "/bin/sh"]), "EACCES");
}

#[test]
fn network_violations_fail() {
    let Some(sb) = sandbox() else { return };
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    tcp.set_nonblocking(true).unwrap();
    let port = tcp.local_addr().unwrap().port().to_string();
    assert_eq!(sb.attempt(&["tcp-connect", "127.0.0.1", &port]), "EPERM");
    assert_eq!(sb.attempt(&["socket", "packet", "raw"]), "EPERM");
    assert_eq!(
        sb.clone()
            .args(["--net", "loopback"])
            .attempt(&["tcp-connect", "127.0.0.1", &port]),
        "ECONNREFUSED"
    );
    assert!(tcp.accept().is_err());
}

#[test]
fn env_and_processes_are_contained() {
    let Some(sb) = sandbox() else { return };
    let sb = sb.env("CW_TEST_SECRET", "unpriv-secret-77");
    let text = stdout(&sb.violate(&["env"]));
    assert!(!text.contains("unpriv-secret-77"));
    assert_eq!(sb.attempt(&["grep-environ", "unpriv-secret-77"]), "none");
    let mut victim = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    assert_eq!(
        sb.attempt(&["kill", &victim.id().to_string(), "9"]),
        "ESRCH"
    );
    assert!(victim.try_wait().unwrap().is_none());
    victim.kill().unwrap();
    victim.wait().unwrap();
}
