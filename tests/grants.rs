//! Grants are resolved once and held as descriptors: a path swapped during start-up, a
//! symlink planted by another user or by a sandbox of this run's write set, credentials a
//! grant covers without naming them (system and home, at symlink targets, beneath named
//! sub-grants), host kernel state, and the agent installation cw-exec derives itself.

mod common;
use common::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A directory only root may read or write, holding `s` = TOPSECRET: the prize.
fn secret_dir(name: &str) -> PathBuf {
    let d = fixture()
        .dir
        .join(format!("secret-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("s"), "TOPSECRET").unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

fn chown_h(path: &Path, ids: (u32, u32)) {
    std::os::unix::fs::lchown(path, Some(ids.0), Some(ids.1)).unwrap();
}

#[test]
fn a_grant_swapped_for_a_symlink_during_start_up_is_never_bound() {
    if skip_unless_root("racing an unprivileged attacker against a root run") {
        return;
    }
    // The system's python3: the attacker runs as the test user, who cannot reach a
    // per-user installation.
    let python = Path::new("/usr/bin/python3");
    if !python.exists() {
        skip("grant race: python3 (the attacker) is not installed");
        return;
    }
    let ids = unprivileged_user().unwrap();
    let secret = secret_dir("race");
    let base = workdir("race");
    let data = base.join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("s"), "public").unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o777)).unwrap();
    // The attacker: an unprivileged user who may write the workspace swaps the granted
    // directory for a symlink to the secret and back, as fast as it can.
    let mut attacker = spawn_symlink_swapper(python, &base, "data", &secret, ids);
    let (mut ran, mut refused, mut late) = (0, 0, 0);
    for _ in 0..150 {
        let out = Sandbox::new()
            .cwd(&base)
            .args(["--write", data.to_str().unwrap()])
            .run(&[
                "/bin/sh",
                "-c",
                &format!(
                    "cat {d}/s 2>/dev/null; touch {d}/pwned 2>/dev/null; true",
                    d = data.display()
                ),
            ]);
        assert!(
            !stdout(&out).contains("TOPSECRET"),
            "the secret was bound in place of the grant: {}",
            stderr(&out)
        );
        match out.status.code() {
            Some(0) => ran += 1,
            Some(125) if stderr(&out).contains("mount view") => late += 1,
            Some(125) => refused += 1,
            other => panic!("unexpected exit {other:?}: {}", stderr(&out)),
        }
    }
    std::fs::write(base.join("stop"), "").unwrap();
    attacker.wait().unwrap();
    assert!(
        !secret.join("pwned").exists(),
        "the sandbox wrote into the secret directory"
    );
    eprintln!(
        "grant race: {ran} runs bound the real directory, {refused} refused when planning, {late} refused by init's check"
    );
}

#[test]
fn a_symlink_planted_in_the_write_set_is_refused_unless_followed_on_purpose() {
    let secret = secret_dir("plant");
    let ws = workdir("plant");
    // Worker A (an earlier sandbox that could write the workspace) planted this.
    std::os::unix::fs::symlink(&secret, ws.join("job2")).unwrap();
    for (args, what) in [
        (
            vec![
                "--write".to_string(),
                ws.to_string_lossy().into_owned(),
                "--cwd".into(),
                ws.join("job2").to_string_lossy().into_owned(),
            ],
            "--cwd",
        ),
        (
            vec![
                "--write".to_string(),
                ws.to_string_lossy().into_owned(),
                "--write".into(),
                ws.join("job2").to_string_lossy().into_owned(),
            ],
            "--write",
        ),
        (
            vec![
                "--read".to_string(),
                ws.join("job2").to_string_lossy().into_owned(),
            ],
            "--read (a world-writable directory)",
        ),
    ] {
        let out = Sandbox::new()
            .cwd(&ws)
            .args(&args)
            .run(&["/bin/cat", secret.join("s").to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(125), "{what}: {}", stderr(&out));
        assert!(!stdout(&out).contains("TOPSECRET"));
        let err = stderr(&out);
        assert!(
            err.contains("job2") && err.contains("--follow-symlinks"),
            "{what}: the refusal names the symlink and the way out: {err}"
        );
    }
    // The caller can say it trusts the link.
    let out = Sandbox::new()
        .cwd(&ws)
        .args([
            "--follow-symlinks",
            "--read",
            ws.join("job2").to_str().unwrap(),
        ])
        .run(&["/bin/cat", secret.join("s").to_str().unwrap()]);
    assert_eq!(stdout(&out), "TOPSECRET", "{}", stderr(&out));
}

#[test]
fn a_symlink_owned_by_another_user_is_refused_and_a_trusted_one_is_followed() {
    if skip_unless_root("creating a symlink owned by another user") {
        return;
    }
    let ids = unprivileged_user().unwrap();
    let secret = secret_dir("owned");
    // A root-owned, 0755 directory: only root could have placed links here.
    let trusted = fixture().dir.join(format!("links-{}", std::process::id()));
    std::fs::create_dir_all(&trusted).unwrap();
    std::fs::set_permissions(&trusted, std::fs::Permissions::from_mode(0o755)).unwrap();
    let by_root = trusted.join("by-root");
    let by_user = trusted.join("by-user");
    let _ = std::fs::remove_file(&by_root);
    let _ = std::fs::remove_file(&by_user);
    std::os::unix::fs::symlink(&secret, &by_root).unwrap();
    std::os::unix::fs::symlink(&secret, &by_user).unwrap();
    chown_h(&by_user, ids);
    let env = workdir("owned-env").join("e.json");
    let out = Sandbox::new()
        .args([
            "--read",
            by_root.to_str().unwrap(),
            "--envelope",
            env.to_str().unwrap(),
        ])
        .run(&["/bin/cat", secret.join("s").to_str().unwrap()]);
    assert_eq!(stdout(&out), "TOPSECRET", "{}", stderr(&out));
    // The attestation records the requested spelling, the resolved path and the object.
    let e = envelope(&env);
    let rules = e["provenance"]["attestation"]["kernel"]["rules"]
        .as_array()
        .unwrap()
        .clone();
    let rule = rules
        .iter()
        .find(|r| r["requested"] == by_root.to_str().unwrap())
        .unwrap_or_else(|| panic!("no rule for {}: {rules:?}", by_root.display()));
    assert_eq!(rule["path"], secret.to_str().unwrap());
    let meta = std::fs::metadata(&secret).unwrap();
    assert_eq!(rule["identity"]["ino"], meta.ino());
    assert_eq!(rule["identity"]["dev"], meta.dev());
    assert!(rule["identity"]["mntId"].as_u64().unwrap() > 0);

    let out = Sandbox::new()
        .args(["--read", by_user.to_str().unwrap()])
        .run(&["/bin/cat", secret.join("s").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(stderr(&out).contains("another user could have placed it"));
}

#[test]
fn a_grant_beneath_a_credential_directory_does_not_lift_the_mask() {
    // --read /etc --read /etc/ssh/ssh_config: the host keys stay masked, the named file reads.
    let config = Path::new("/etc/ssh/ssh_config");
    if !config.exists() {
        skip("sub-grant of /etc/ssh: /etc/ssh/ssh_config is not on this host");
        return;
    }
    as_each_identity(|sb, who| {
        let sb = sb.args(["--read", "/etc", "--read", config.to_str().unwrap()]);
        assert_eq!(sb.attempt(&["read", "/etc/ssh/ssh_config"]), "ok", "{who}");
        assert_eq!(sb.attempt(&["list", "/etc/ssh"]), "EACCES", "{who}");
        assert_eq!(
            sb.attempt(&["read", "/etc/ssh/ssh_host_ed25519_key"]),
            "ENOENT",
            "{who}"
        );
        assert_eq!(sb.attempt(&["read", "/etc/shadow"]), "EACCES", "{who}");
    });
}

/// A home directory with credentials of every kind, and a profile adding one of its own.
fn fake_home() -> PathBuf {
    let home = workdir("home");
    for (rel, text) in [
        (".ssh/id_ed25519", "SSH-KEY"),
        (".aws/credentials", "AWS-KEY"),
        (".config/gh/hosts.yml", "GH-TOKEN"),
        (".docker/config.json", "DOCKER-AUTH"),
        (".cargo/credentials.toml", "CARGO-TOKEN"),
        (".bash_history", "export SECRET=1"),
        (".npmrc", "//registry.example/:_authToken=NPM"),
        (".myapp/token", "MYAPP-TOKEN"),
        ("notes.txt", "public notes"),
    ] {
        let p = home.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        for d in p.ancestors().skip(1).take_while(|d| d.starts_with(&home)) {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777)).unwrap();
        }
        write_file(&p, text);
    }
    home
}

#[test]
fn home_credentials_are_masked_when_the_home_is_granted() {
    let home = fake_home();
    let profile = workdir("home-profile").join("p.toml");
    std::fs::write(
        &profile,
        "read = [\"$cwd\"]\nwrite = [\"$tmp\"]\ncredentials = [\"~/.myapp/token\"]\n",
    )
    .unwrap();
    as_each_identity(|sb, who| {
        let sb = sb
            .cwd(&home)
            .env("HOME", home.to_str().unwrap())
            .args(["--profile", profile.to_str().unwrap()]);
        for rel in [
            ".ssh/id_ed25519",
            ".aws/credentials",
            ".config/gh/hosts.yml",
            ".docker/config.json",
            ".cargo/credentials.toml",
            ".bash_history",
            ".npmrc",
            ".myapp/token",
        ] {
            let got = sb.attempt(&["read", home.join(rel).to_str().unwrap()]);
            assert!(
                got == "EACCES" || got == "ENOENT",
                "{who}: {rel} readable ({got})"
            );
        }
        assert_eq!(
            sb.attempt(&["read", home.join("notes.txt").to_str().unwrap()]),
            "ok",
            "{who}"
        );
    });
}

#[test]
fn a_credential_symlink_is_masked_at_its_target() {
    let home = workdir("home-link");
    let keys = workdir("keys");
    write_file(&keys.join("id_rsa"), "SSH-KEY");
    std::os::unix::fs::symlink(&keys, home.join(".ssh")).unwrap();
    let sb = Sandbox::new()
        .cwd(&home)
        .env("HOME", home.to_str().unwrap())
        .args(["--read", keys.parent().unwrap().to_str().unwrap()]);
    let got = sb.attempt(&["read", keys.join("id_rsa").to_str().unwrap()]);
    assert!(got == "EACCES" || got == "ENOENT", "target readable: {got}");
}

#[test]
fn host_kernel_state_is_never_writable() {
    as_each_identity(|sb, who| {
        // A grant of / leaves /sys out, as it does /proc and /dev.
        let out = sb
            .clone()
            .cwd(Path::new("/"))
            .args(["--read", "/"])
            .run(&["/bin/ls", "/sys"]);
        assert_ne!(out.status.code(), Some(0), "{who}: /sys is in a / view");
        // Read-only, whatever is mounted beneath (a tmpfs on cgroup v1 hosts).
        let sys = sb.clone().args(["--read", "/sys"]);
        let marker = format!("/sys/fs/cgroup/cw-exec-test-{}", std::process::id());
        assert_eq!(sys.attempt(&["write", &marker]), "EROFS", "{who}");
        assert!(!Path::new(&marker).exists());
        // Explicit write grants of kernel state are refused before anything runs.
        for path in ["/sys/fs/cgroup", "/proc/sys", "/sys/kernel"] {
            let out = sb.clone().args(["--write", path]).run(&["/bin/true"]);
            assert_eq!(out.status.code(), Some(125), "{who}: --write {path}");
            assert!(
                stderr(&out).contains("host kernel state"),
                "{who}: {}",
                stderr(&out)
            );
        }
    });
}

#[test]
fn kernel_state_under_a_root_write_grant_stays_read_only_as_root() {
    if skip_unless_root("a --write / run as root") {
        return;
    }
    let marker = format!("/sys/fs/cgroup/cw-exec-w-{}", std::process::id());
    let out = Sandbox::new()
        .cwd(Path::new("/"))
        .args(["--write", "/"])
        .run(&["/bin/sh", "-c", &format!("touch {marker}; echo $?")]);
    assert!(!Path::new(&marker).exists(), "{}", stderr(&out));
    let _ = std::fs::remove_file(&marker);
}

/// A write grant whose host tree holds a kernel-state mount beneath it (a cgroup2 hierarchy,
/// mounted here for the test) brings that submount in read-only, while an ordinary submount
/// (a tmpfs) keeps the grant's write access. The view finds such submounts by asking the kernel
/// whether the writable bind has any (listmount) and then reads its mount table; this is the
/// case that must not be missed.
#[test]
fn kernel_state_mounted_beneath_a_write_grant_stays_read_only() {
    if skip_unless_root("mounting a cgroup2 hierarchy and a tmpfs beneath a write grant") {
        return;
    }
    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    struct Unmount(Vec<PathBuf>);
    impl Drop for Unmount {
        fn drop(&mut self) {
            for p in &self.0 {
                let _ = umount2(p, MntFlags::MNT_DETACH);
            }
        }
    }
    let ws = workdir("state-beneath");
    let (cg, scratch) = (ws.join("cg"), ws.join("scratch"));
    std::fs::create_dir(&cg).unwrap();
    std::fs::create_dir(&scratch).unwrap();
    let mut guard = Unmount(vec![]);
    if let Err(e) = mount(
        Some("cwexec-test"),
        &cg,
        Some("cgroup2"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    ) {
        skip(&format!("a cgroup2 hierarchy cannot be mounted here: {e}"));
        return;
    }
    guard.0.push(cg.clone());
    mount(
        Some("cwexec-test"),
        &scratch,
        Some("tmpfs"),
        MsFlags::empty(),
        Some("size=64k,mode=0777"),
    )
    .unwrap();
    guard.0.push(scratch.clone());
    let marker = cg.join(format!("cw-exec-test-{}", std::process::id()));
    as_each_identity(|sb, who| {
        let sb = sb.args(["--write", ws.to_str().unwrap()]);
        assert_eq!(
            sb.attempt(&["mkdir", marker.to_str().unwrap()]),
            "EROFS",
            "{who}: a cgroup beneath the write grant"
        );
        assert!(!marker.exists(), "{who}: a cgroup was created on the host");
        let file = scratch.join(format!("f-{}", who.len()));
        assert_eq!(
            sb.attempt(&["write", file.to_str().unwrap()]),
            "ok",
            "{who}: a tmpfs beneath the write grant"
        );
        assert!(file.exists(), "{who}");
    });
    let _ = std::fs::remove_dir(&marker);
    drop(guard);
}

/// The first line of a script can name the interpreter but never widen the policy.
#[test]
fn a_scripts_first_line_grants_only_the_interpreter_file() {
    let secret = secret_dir("shebang");
    // An agent installation outside any write grant (root-owned 0755 when root runs this).
    let install = fixture().dir.join(format!("agent-{}", std::process::id()));
    std::fs::create_dir_all(&install).unwrap();
    std::fs::set_permissions(&install, std::fs::Permissions::from_mode(0o755)).unwrap();
    let agent = install.join("agent");
    let write_agent = |first_line: String| {
        std::fs::write(
            &agent,
            format!(
                "{first_line}\ncat {}/s 2>/dev/null || echo denied\n",
                secret.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    write_agent("#!/usr/bin/env sh".into());
    let (out, env) = manifest_run(&agent, &[]);
    assert_eq!(stdout(&out).trim(), "denied", "{}", stderr(&out));
    let installs = env["provenance"]["attestation"]["kernel"]["agentInstall"].to_string();
    assert!(installs.contains("/usr/bin/env"), "{installs}");
    assert!(
        !installs.contains("\"/usr/bin\""),
        "the interpreter's directory was granted: {installs}"
    );

    // env options are refused, not guessed at: `-u DIR` once made cw-exec grant DIR, and
    // `-C DIR` changes what runs.
    for options in [
        format!("-S -u {} sh", secret.display()),
        format!("-C {} sh", secret.display()),
    ] {
        write_agent(format!("#!/usr/bin/env {options}"));
        let (out, env) = manifest_run(&agent, &[]);
        assert_eq!(out.status.code(), Some(125), "{options}: {}", stderr(&out));
        assert!(!stdout(&out).contains("TOPSECRET"));
        assert!(stderr(&out).contains("env"), "{options}: {}", stderr(&out));
        assert!(!env.to_string().contains("TOPSECRET"));
    }
}

#[test]
fn an_agent_inside_the_write_set_gets_no_derived_grants() {
    let secret = secret_dir("ws-agent");
    let (out, env) = {
        let ws = workdir("ws-agent");
        let agent = ws.join("agent.sh");
        std::fs::write(
            &agent,
            format!(
                "#!/usr/bin/env -S -u {} sh\ncat {}/s 2>/dev/null || echo denied\n",
                secret.display(),
                secret.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o755)).unwrap();
        manifest_run(&agent, &[ws.to_str().unwrap()])
    };
    assert_eq!(stdout(&out).trim(), "denied", "{}", stderr(&out));
    assert_eq!(
        env["provenance"]["attestation"]["kernel"]["agentInstall"],
        serde_json::json!([]),
        "nothing is derived from a file the sandbox can write"
    );
}

/// Runs `agent` through `cw-exec run --manifest` under a policy that reads and writes
/// `write` (and reads nothing else), returning the output and the envelope.
fn manifest_run(agent: &Path, write: &[&str]) -> (std::process::Output, serde_json::Value) {
    let dir = workdir("manifest");
    let policy = serde_json::json!({
        "schemaVersion": 1, "id": "workspace-write",
        "readPaths": write, "writePaths": write,
        "workerOutput": {"result": false, "artifacts": false, "logs": false},
        "execute": {"mode": "any"}, "network": {"mode": "none"},
        "env": {"inherit": false, "expose": []},
        "enforcement": {"enforcedByCW": [], "hostRequired": ["read", "write", "network"]},
        "metadata": {"cwd": dir}
    });
    let manifest = dir.join("manifest.json");
    std::fs::write(
        &manifest,
        serde_json::json!({"schemaVersion": 1, "workerId": "w", "sandboxPolicy": policy, "allowedPaths": write}).to_string(),
    )
    .unwrap();
    let env = dir.join("envelope.json");
    let out = Command::new(&fixture().cw)
        .args([
            "run",
            "--manifest",
            manifest.to_str().unwrap(),
            "--envelope",
            env.to_str().unwrap(),
            "--",
            agent.to_str().unwrap(),
        ])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let e = std::fs::read_to_string(&env)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null);
    (out, e)
}

/// Credentials are compared with the grants where they physically are: a home reached
/// through a symlink (HOME names the link, the grant is the physical directory) has its
/// credentials masked all the same, and the rest of it stays readable.
#[test]
fn a_home_reached_through_a_symlink_has_its_credentials_masked() {
    let real = workdir("home-real");
    let key = real.join(".ssh/id_ed25519");
    std::fs::create_dir_all(key.parent().unwrap()).unwrap();
    std::fs::set_permissions(
        key.parent().unwrap(),
        std::fs::Permissions::from_mode(0o777),
    )
    .unwrap();
    write_file(&key, "SSH-KEY");
    write_file(&real.join("notes.txt"), "public notes");
    // In a directory only its owner may write: a link another user could have placed is
    // refused on the way to the caller's signing key.
    let parent = workdir("home-link-parent");
    let link = parent.join("home");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o755)).unwrap();
    as_each_identity(|sb, who| {
        // The default profile reads $cwd: the physical home.
        let sb = sb.cwd(&real).env("HOME", link.to_str().unwrap());
        for at in [&real, &link] {
            let got = sb.attempt(&["read", at.join(".ssh/id_ed25519").to_str().unwrap()]);
            assert!(
                got == "EACCES" || got == "ENOENT",
                "{who}: the key is readable at {} ({got})",
                at.display()
            );
        }
        assert_eq!(
            sb.attempt(&["read", real.join("notes.txt").to_str().unwrap()]),
            "ok",
            "{who}"
        );
    });
}
