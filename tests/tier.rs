//! The Landlock tier: where user namespaces are denied — by a seccomp filter like a container
//! runtime's default profile (examples/no-userns.rs), or by `user.max_user_namespaces = 0` —
//! cw-exec still enforces the five dimensions with what needs no privilege, names what is
//! weaker, and refuses what it cannot do; `--tier namespaces` refuses instead.

mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn code(out: &std::process::Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// A sandbox started under the no-user-namespace seccomp filter.
fn contained(sb: Sandbox) -> Sandbox {
    sb.wrapped(&example("no-userns"))
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

#[test]
fn without_user_namespaces_the_landlock_tier_enforces_every_dimension() {
    as_each_identity(|sb, who| {
        let sb = contained(sb);
        let work = workdir("tier-attacks");
        let secret = work.join("secret");
        write_file(&secret, "TOPSECRET");
        let env = work.join("out.json");

        // The run falls back, says so, and attests the tier with every required dimension.
        let out = sb
            .clone()
            .args(["--envelope", env.to_str().unwrap()])
            .run(&["true"]);
        assert_eq!(code(&out), 0, "{who}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("running in the landlock tier"),
            "{}",
            stderr(&out)
        );
        let a = envelope(&env)["provenance"]["attestation"].clone();
        assert_eq!(a["kernel"]["tier"]["tier"], "landlock", "{who}");
        assert!(
            a["kernel"]["tier"]["reason"]
                .as_str()
                .unwrap()
                .contains("seccomp"),
            "{who}: {}",
            a["kernel"]["tier"]
        );
        assert_eq!(
            a["enforced"],
            serde_json::json!(["read", "write", "network", "env"]),
            "{who}: {}",
            a["kernel"]["dimensions"]
        );
        let gaps = a["kernel"]["gaps"].to_string();
        for needle in [
            "no private mount view",
            "metadata changes",
            "no network namespace",
            "no PID namespace",
        ] {
            assert!(
                gaps.contains(needle),
                "{who}: gap {needle:?} missing: {gaps}"
            );
        }
        let run_dir = a["kernel"]["tier"]["runDir"].as_str().unwrap().to_string();
        assert!(
            !Path::new(&run_dir).exists(),
            "{who}: {run_dir} left behind"
        );

        // read: a file outside the grants.
        assert_eq!(
            sb.attempt(&["read", secret.to_str().unwrap()]),
            "EACCES",
            "{who}"
        );
        // write: outside the grants, and the host's /tmp.
        let planted = work.join("planted");
        assert_eq!(
            sb.attempt(&["write", planted.to_str().unwrap()]),
            "EACCES",
            "{who}"
        );
        assert!(!planted.exists());
        let host_tmp = format!("/tmp/cwx-tier-{}", test_id());
        assert_eq!(sb.attempt(&["write", &host_tmp]), "EACCES", "{who}");
        assert!(!Path::new(&host_tmp).exists());
        // The private tmp is TMPDIR, writable, and gone after.
        let out = sb.run(&["sh", "-c", "touch \"$TMPDIR/x\" && echo \"$TMPDIR\""]);
        assert_eq!(code(&out), 0, "{who}: {}", stderr(&out));
        assert!(
            !Path::new(stdout(&out).trim()).exists(),
            "{who}: TMPDIR survived"
        );
        // command: off the allowlist.
        let allow = sb
            .clone()
            .args(["--exec", fixture().violate.to_str().unwrap()]);
        assert_eq!(allow.attempt(&["exec", "/bin/true"]), "EACCES", "{who}");
        // network: no INET socket at all.
        assert_eq!(sb.attempt(&["socket", "inet", "stream"]), "EPERM", "{who}");

        // Processes outside: not signalled, not inspected.
        let mut victim = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = victim.id().to_string();
        if let Some((uid, gid)) = sb.user {
            // (A victim of the sandbox's own uid: DAC would allow; Landlock must not.)
            victim.kill().unwrap();
            let _ = victim.wait();
            victim = Command::new("setpriv")
                .args([
                    &format!("--reuid={uid}"),
                    &format!("--regid={gid}"),
                    "--clear-groups",
                    "sleep",
                    "30",
                ])
                .spawn()
                .unwrap();
        }
        let pid = if sb.user.is_some() {
            victim.id().to_string()
        } else {
            pid
        };
        assert_eq!(sb.attempt(&["kill", &pid, "15"]), "EPERM", "{who}");
        assert!(alive(victim.id()), "{who}: the host process was killed");
        assert_eq!(
            sb.attempt(&["read", &format!("/proc/{pid}/environ")]),
            "EACCES",
            "{who}"
        );
        victim.kill().unwrap();
        let _ = victim.wait();

        // Abstract Unix sockets of the host: scoped away.
        let name = format!("cwx-tier-{}", test_id());
        let listener = std::os::unix::net::UnixListener::bind_addr(
            &<std::os::unix::net::SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(name.as_bytes()).unwrap(),
        )
        .unwrap();
        listener.set_nonblocking(true).unwrap();
        assert_eq!(sb.attempt(&["abstract-connect", &name]), "EPERM", "{who}");
        assert!(
            listener.accept().is_err(),
            "{who}: a connection reached the host"
        );

        // Containment: what the command left running dies with it.
        let out = sb.run(&["sh", "-c", "sleep 30 >/dev/null 2>&1 & echo $!"]);
        let bg: u32 = stdout(&out).trim().parse().unwrap();
        // (The pid printed is inside no PID namespace: the host's.)
        for _ in 0..50 {
            if !alive(bg) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(!alive(bg), "{who}: the background process outlived the run");
    });
}

#[test]
fn the_namespace_tier_is_refused_rather_than_weakened_when_required() {
    as_each_identity(|sb, who| {
        let sb = contained(sb);
        let marker = workdir("tier-refused").join("ran");
        let out = sb
            .clone()
            .args(["--tier", "namespaces"])
            .run(&["touch", marker.to_str().unwrap()]);
        assert_eq!(code(&out), 125, "{who}");
        assert!(stderr(&out).contains("user namespaces"), "{}", stderr(&out));
        assert!(stderr(&out).contains("seccomp"), "{}", stderr(&out));
        assert!(!marker.exists());
        // locked-down requires it.
        let out = sb
            .clone()
            .args(["--profile", "locked-down"])
            .run(&["/bin/true"]);
        assert_eq!(code(&out), 125, "{who}: {}", stderr(&out));
        // What needs a namespace is refused in the lower tier, never faked.
        let out = sb.clone().args(["--net", "loopback"]).run(&["true"]);
        assert_eq!(code(&out), 125, "{who}");
        assert!(
            stderr(&out).contains("network namespace"),
            "{}",
            stderr(&out)
        );
    });
}

#[test]
fn max_user_namespaces_zero_selects_the_landlock_tier_and_says_why() {
    if Command::new("unshare")
        .arg("--help")
        .stdout(Stdio::null())
        .status()
        .is_err()
    {
        return skip("unshare (util-linux) is not installed");
    }
    let env = workdir("tier-sysctl").join("out.json");
    // A user namespace of the test's own whose max_user_namespaces is 0: cw-exec inside it
    // cannot create one.
    let out = Command::new("unshare")
        .args(["-Ur", "sh", "-c"])
        .arg(format!(
            "echo 0 > /proc/sys/user/max_user_namespaces && exec {} run --envelope {} -- true",
            fixture().cw.display(),
            env.display()
        ))
        .current_dir(workdir("tier-sysctl-cwd"))
        .output()
        .unwrap();
    if !out.status.success() && stderr(&out).contains("unshare failed") {
        return skip("user namespaces are unavailable to the test itself");
    }
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let tier = envelope(&env)["provenance"]["attestation"]["kernel"]["tier"].clone();
    assert_eq!(tier["tier"], "landlock");
    assert!(
        tier["reason"]
            .as_str()
            .unwrap()
            .contains("max_user_namespaces is 0"),
        "{tier}"
    );
    // And --tier namespaces names the sysctl.
    let out = Command::new("unshare")
        .args(["-Ur", "sh", "-c"])
        .arg(format!(
            "echo 0 > /proc/sys/user/max_user_namespaces && exec {} run --tier namespaces -- true",
            fixture().cw.display()
        ))
        .current_dir(workdir("tier-sysctl-cwd"))
        .output()
        .unwrap();
    assert_eq!(code(&out), 125);
    assert!(
        stderr(&out).contains("max_user_namespaces"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn in_the_landlock_tier_a_grant_covering_a_credential_is_split_around_it() {
    as_each_identity(|sb, who| {
        let home = workdir("tier-split").join("home");
        std::fs::create_dir_all(home.join(".ssh")).unwrap();
        std::fs::create_dir_all(home.join("project")).unwrap();
        std::fs::write(home.join(".ssh/id_ed25519"), "PRIVATE KEY").unwrap();
        std::fs::write(home.join("notes"), "notes").unwrap();
        std::fs::write(home.join("project/a"), "a").unwrap();
        for p in [&home, &home.join(".ssh"), &home.join("project")] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let h = home.to_str().unwrap();
        let env = workdir("tier-split-env").join("out.json");
        let sb = sb
            .clone()
            .env("HOME", h)
            .args(["--tier", "landlock", "--read", h]);
        assert_eq!(
            sb.attempt(&["read", home.join(".ssh/id_ed25519").to_str().unwrap()]),
            "EACCES",
            "{who}"
        );
        assert_eq!(
            sb.attempt(&["read", home.join("notes").to_str().unwrap()]),
            "ok"
        );
        assert_eq!(
            sb.attempt(&["read", home.join("project/a").to_str().unwrap()]),
            "ok"
        );
        let out = sb
            .clone()
            .args(["--envelope", env.to_str().unwrap()])
            .run(&["true"]);
        assert_eq!(code(&out), 0, "{who}: {}", stderr(&out));
        let k = envelope(&env)["provenance"]["attestation"]["kernel"].clone();
        let split = k["tier"]["split"].to_string();
        assert!(split.contains(".ssh"), "{who}: {split}");
        assert!(
            k["gaps"]["read"].to_string().contains("entries created"),
            "{who}"
        );
        let out = sb.command("explain", &["true"]).output().unwrap();
        assert!(
            stdout(&out).contains("tier         landlock"),
            "{}",
            stdout(&out)
        );
        assert!(stdout(&out).contains("split        "), "{}", stdout(&out));
    });
}

#[test]
fn probe_names_the_tier_and_why() {
    let out = Command::new(example("no-userns"))
        .arg(&fixture().cw)
        .arg("probe")
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(text.contains("tier        ok   landlock"), "{text}");
    assert!(text.contains("seccomp filter"), "{text}");
    let out = cw(&["probe"]);
    let text = stdout(&out);
    assert!(
        text.contains("tier        ok   namespaces") || text.contains("tier        ok   landlock"),
        "{text}"
    );
}

#[test]
fn the_scale_examples_use_flags_that_exist() {
    // docs/scale-examples/*: every `cw-exec run` line's flags are flags of this cw-exec.
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/scale-examples");
    let help = stdout(&cw(&["run", "--help"]));
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines().filter(|l| l.contains("cw-exec run")) {
            for word in line.split_whitespace().filter(|w| w.starts_with("--")) {
                let flag = word.trim_matches(|c| c == '"' || c == ',' || c == '\'');
                let flag = flag.split('=').next().unwrap();
                if flag == "--" {
                    continue;
                }
                assert!(
                    help.contains(flag),
                    "{}: {flag} is not a cw-exec run flag",
                    path.display()
                );
                checked += 1;
            }
        }
        // Each is valid YAML as far as its indentation goes: no tabs.
        assert!(!text.contains('\t'), "{}: tab in YAML", path.display());
    }
    assert!(
        checked > 5,
        "no cw-exec run lines found in {}",
        dir.display()
    );
}
