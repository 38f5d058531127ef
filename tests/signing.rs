//! The signed attestation: `verify` accepts what cw-exec signed and names what is wrong with
//! anything else (a tampered member, a wrong key, a replayed nonce, another command, an old
//! signature); the key is unreadable inside every bundled profile, cannot be planted or moved
//! by a sandbox that may write HOME, and a key cw-exec cannot trust is refused.

mod common;
use common::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

fn run_code(out: &std::process::Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// `cw-exec key show` as this sandbox's identity: the public key (hex) and the key file.
fn key_show(sb: &Sandbox) -> (String, PathBuf) {
    let out = sb.plain(&["key", "show"]).output().unwrap();
    assert!(out.status.success(), "key show: {}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        v["publicKey"].as_str().unwrap().to_string(),
        PathBuf::from(v["keyFile"].as_str().unwrap()),
    )
}

/// `cw-exec verify FILE ARGS`: the exit code and the one line it printed.
fn verify(file: &Path, args: &[&str]) -> (i32, String) {
    let mut all = vec!["verify", file.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = cw(&all);
    (run_code(&out), stdout(&out).trim().to_string())
}

/// A user whose key lives beneath a fresh HOME of its own: the unprivileged test user when
/// running as root, else the current user.
fn user_with_home(name: &str) -> Option<(Sandbox, PathBuf)> {
    let sb = if is_root() {
        match unprivileged_user() {
            Ok(ids) => Sandbox::new().user(ids),
            Err(why) => {
                skip(&format!("{name}: {why}"));
                return None;
            }
        }
    } else {
        Sandbox::new()
    };
    let home = workdir(name).join("home");
    std::fs::create_dir(&home).unwrap();
    if let Some((uid, gid)) = sb.user {
        std::os::unix::fs::chown(&home, Some(uid), Some(gid)).unwrap();
    }
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
    let home_s = home.to_str().unwrap().to_string();
    Some((sb.env("HOME", &home_s).env("XDG_CONFIG_HOME", ""), home))
}

/// The identities a key test runs as: root (key in /etc/cw-exec) and a user with a HOME.
fn each_key_holder(name: &str, mut case: impl FnMut(Sandbox, &str)) {
    if is_root() {
        case(Sandbox::new(), "root");
    }
    if let Some((sb, _)) = user_with_home(name) {
        case(sb, "user");
    }
}

fn edit(path: &Path, f: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let mut v = envelope(path);
    f(&mut v);
    let out = path.with_extension(format!("edited-{}.json", test_id()));
    std::fs::write(&out, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    out
}

#[test]
fn a_signed_run_verifies_and_every_kind_of_forgery_is_named() {
    each_key_holder("sign-verify", |sb, who| {
        let (public, _) = key_show(&sb);
        let dir = workdir("sign-verify");
        let env = dir.join("out.json");
        let out = sb
            .clone()
            .args(["--envelope", env.to_str().unwrap(), "--nonce", "n-4711"])
            .run(&["echo", "hi"]);
        assert_eq!(run_code(&out), 0, "{who}: {}", stderr(&out));
        assert_eq!(stdout(&out), "hi\n", "{who}: stdout stays the child's");

        let (code, line) = verify(
            &env,
            &[
                "--key",
                &public,
                "--nonce",
                "n-4711",
                "--command",
                "echo hi",
                "--since",
                "10m",
            ],
        );
        assert_eq!(code, 0, "{who}: {line}");
        assert!(line.starts_with("valid:"), "{who}: {line}");

        // cool-workflow keeps only provenance.handle: the copy there verifies on its own.
        let handle_only = edit(&env, |v| {
            v["provenance"]
                .as_object_mut()
                .unwrap()
                .remove("attestation");
        });
        assert_eq!(verify(&handle_only, &["--key", &public]).0, 0, "{who}");

        // A replayed envelope: the verifier's nonce is another.
        let (code, line) = verify(&env, &["--key", &public, "--nonce", "n-4712"]);
        assert_eq!(
            (code, line.contains("replayed")),
            (1, true),
            "{who}: {line}"
        );
        // Another command than the one the verifier expects.
        let (code, line) = verify(&env, &["--key", &public, "--command", "make test"]);
        assert_eq!(
            (code, line.contains("another command")),
            (1, true),
            "{who}: {line}"
        );
        // A member of the attestation changed: named.
        let t = edit(&env, |v| {
            v["provenance"]["attestation"]["unenforceable"] = serde_json::json!([]);
            v["provenance"]["attestation"]["enforced"] =
                serde_json::json!(["read", "write", "command", "network", "env"]);
        });
        let (code, line) = verify(&t, &["--key", &public]);
        assert_eq!(code, 1, "{who}: {line}");
        assert!(
            line.contains("tampered field: provenance.attestation.enforced"),
            "{who}: {line}"
        );
        // The kernel section in the handle's copy changed.
        let t = edit(&env, |v| {
            v["provenance"]["handle"]["metadata"]["attestation"]["kernel"]["namespaces"] =
                serde_json::json!({});
        });
        let (code, line) = verify(&t, &["--key", &public]);
        assert!(
            code == 1 && line.contains("metadata.attestation.kernel"),
            "{who}: {line}"
        );
        // The plain evidence changed.
        let t = edit(&env, |v| {
            v["evidence"][1] = serde_json::json!("exitCode:0 ")
        });
        let (code, line) = verify(&t, &["--key", &public]);
        assert!(code == 1 && line.contains("evidence"), "{who}: {line}");
        // The signed nonce swapped for the verifier's.
        let t = edit(&env, |v| {
            v["provenance"]["attestation"]["signature"]["nonce"] = serde_json::json!("n-9");
        });
        let (code, line) = verify(&t, &["--key", &public, "--nonce", "n-9"]);
        assert!(code == 1 && line.contains("tampered"), "{who}: {line}");
        // Another key.
        let other = ed25519_dalek::SigningKey::from_bytes(&[42u8; 32]).verifying_key();
        let other_hex = hex(other.as_bytes());
        let (code, line) = verify(&env, &["--key", &other_hex]);
        assert!(code == 1 && line.contains("wrong key"), "{who}: {line}");
        // Outside the window (a signature from the future is outside too).
        let t = edit(&env, |v| {
            let old = serde_json::json!("2001-01-01T00:00:00.000Z");
            v["provenance"]["attestation"]["signature"]["signedAt"] = old.clone();
            v["provenance"]["handle"]["metadata"]["signature"]["signedAt"] = old;
        });
        let (code, line) = verify(&t, &["--key", &public, "--since", "10m"]);
        assert!(code == 1 && line.starts_with("invalid:"), "{who}: {line}");
        // The key as a file (key show's output) works as well.
        let key_file = dir.join("key.json");
        std::fs::write(&key_file, format!("{{\"publicKey\": \"{public}\"}}")).unwrap();
        assert_eq!(verify(&env, &["--key", key_file.to_str().unwrap()]).0, 0);
        // Bad arguments are not verdicts.
        assert_eq!(verify(&env, &["--key", &public, "--since", "ten"]).0, 125);
        assert_eq!(verify(&env, &["--key", "abc"]).0, 125);
    });
}

#[test]
fn a_forgery_written_by_a_sandbox_where_the_envelope_lies_is_rejected() {
    each_key_holder("sign-forge", |sb, who| {
        let (public, _) = key_show(&sb);
        let dir = workdir("sign-forge");
        let env = dir.join("out.json");
        let w = dir.to_str().unwrap();
        let out = sb
            .clone()
            .args(["--write", w, "--envelope", env.to_str().unwrap()])
            .run(&["sh", "-c", "exit 3"]);
        assert_eq!(run_code(&out), 3, "{who}: {}", stderr(&out));
        assert_eq!(verify(&env, &["--key", &public]).0, 0, "{who}");

        // A later sandbox that may write the directory rewrites the envelope: a failure made
        // a success, everywhere it appears.
        let out = sb.clone().args(["--write", w]).run(&[
            "sh",
            "-c",
            &format!(
                "sed -i 's/exitCode:3/exitCode:0/g; s/\"failed\"/\"completed\"/' {}",
                env.display()
            ),
        ]);
        assert_eq!(run_code(&out), 0, "{who}: {}", stderr(&out));
        assert!(std::fs::read_to_string(&env)
            .unwrap()
            .contains("exitCode:0"));
        let (code, line) = verify(&env, &["--key", &public]);
        assert!(code == 1 && line.contains("tampered"), "{who}: {line}");

        // A sandbox cannot sign: its own key is not the host's.
        let forged = edit(&env, |v| {
            v["provenance"]["attestation"]["signature"]["keyId"] = serde_json::json!("0000");
        });
        let (code, line) = verify(&forged, &["--key", &public]);
        assert!(code == 1 && line.contains("wrong key"), "{who}: {line}");

        // Replacing it with an older, genuine envelope is a replay: the nonce tells.
        let old = dir.join("old.json");
        let out = sb
            .clone()
            .args(["--envelope", old.to_str().unwrap(), "--nonce", "old"])
            .run(&["true"]);
        assert_eq!(run_code(&out), 0, "{who}: {}", stderr(&out));
        let out = sb.clone().args(["--write", w]).run(&[
            "cp",
            old.to_str().unwrap(),
            env.to_str().unwrap(),
        ]);
        assert_eq!(run_code(&out), 0, "{who}: {}", stderr(&out));
        let (code, line) = verify(&env, &["--key", &public, "--nonce", "fresh"]);
        assert!(code == 1 && line.contains("replayed"), "{who}: {line}");
    });
}

#[test]
fn the_signing_key_is_unreadable_inside_under_every_bundled_profile() {
    let profiles = [
        "default",
        "readonly",
        "workspace-write",
        "agent",
        "ci",
        "locked-down",
    ];
    each_key_holder("sign-mask", |sb, who| {
        let (_, key_file) = key_show(&sb);
        let key_dir = key_file.parent().unwrap().to_str().unwrap().to_string();
        let work = workdir("sign-mask");
        // A grant that covers the key's directory without naming it.
        let broad = if who == "root" {
            "/".to_string()
        } else {
            key_file
                .ancestors()
                .nth(3)
                .unwrap()
                .to_str()
                .unwrap()
                .to_string()
        };
        for profile in profiles {
            for extra in [&[][..], &["--read", broad.as_str()][..]] {
                let sb = sb
                    .clone()
                    .cwd(&work)
                    .args(["--profile", profile])
                    .args(extra.iter().copied());
                for (action, path) in [
                    ("read", key_file.to_str().unwrap()),
                    ("list", key_dir.as_str()),
                    ("write", key_file.to_str().unwrap()),
                    ("unlink", key_file.to_str().unwrap()),
                ] {
                    let got = sb.attempt(&[action, path]);
                    assert_ne!(got, "ok", "{who} {profile} {extra:?}: {action} {path}");
                }
            }
        }
        // And through a shell, the secret never reaches stdout.
        let secret = if who == "root" {
            std::fs::read_to_string(&key_file).unwrap()
        } else {
            String::new()
        };
        let out = sb.clone().args(["--read", &broad]).run(&[
            "sh",
            "-c",
            &format!("cat {} ; ls -a {key_dir}", key_file.display()),
        ]);
        assert!(
            !stdout(&out).contains("signing.key"),
            "{who}: {}",
            stdout(&out)
        );
        if !secret.is_empty() {
            assert!(!stdout(&out).contains(secret.trim()), "{who}");
        }
        // Granting the key's directory (or the key) is refused outright.
        for grant in [key_dir.as_str(), key_file.to_str().unwrap()] {
            let out = sb.clone().args(["--read", grant]).run(&["true"]);
            assert_eq!(run_code(&out), 125, "{who}: --read {grant}");
            assert!(stderr(&out).contains("signing key"), "{}", stderr(&out));
        }
    });
}

#[test]
fn a_sandbox_that_may_write_home_can_neither_replace_nor_move_the_key() {
    let Some((sb, home)) = user_with_home("sign-plant") else {
        return;
    };
    let (public, key_file) = key_show(&sb);
    assert!(key_file.starts_with(&home));
    let before = std::fs::read(&key_file).unwrap();
    let config = home.join(".config");
    let key_dir = key_file.parent().unwrap().to_path_buf();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let writable = sb.clone().args(["--write", &s(&home)]);
    let (mut observed, mut ok) = (vec![], true);
    for (action, args, want) in [
        // The key's directory is masked by a read-only, empty tmpfs: nothing of the host's
        // is there to write or remove, and a mount cannot be moved across (EXDEV) or removed.
        ("write", vec![s(&key_file)], "EROFS"),
        ("unlink", vec![s(&key_file)], "EROFS"),
        ("mkdir", vec![s(&key_dir.join("new"))], "EROFS"),
        ("rename", vec![s(&key_dir), s(&home.join("moved"))], "EXDEV"),
        ("rmdir", vec![s(&key_dir)], "EBUSY"),
        // Its parent is pinned (a mount point of itself): it cannot be renamed away and
        // replaced by a directory holding the sandbox's own key.
        (
            "rename",
            vec![s(&config), s(&home.join("moved-config"))],
            "EBUSY",
        ),
        ("rmdir", vec![s(&config)], "EBUSY"),
    ] {
        let mut call = vec![action];
        call.extend(args.iter().map(String::as_str));
        let got = writable.attempt(&call);
        observed.push(format!("{action} {args:?}: {got} (want {want})"));
        ok &= got == want;
    }
    assert!(ok, "{observed:#?}");
    // The sandbox could write and rename elsewhere in HOME (the grant works)...
    assert_eq!(writable.attempt(&["write", &s(&home.join("note"))]), "ok");
    assert_eq!(writable.attempt(&["mkdir", &s(&home.join("other"))]), "ok");
    assert_eq!(
        writable.attempt(&["rename", &s(&home.join("other")), &s(&home.join("other2"))]),
        "ok"
    );
    // ...but the key and its directories are as they were.
    assert_eq!(std::fs::read(&key_file).unwrap(), before);
    assert!(!home.join("moved").exists() && !home.join("moved-config").exists());
    assert_eq!(key_show(&sb).0, public);

    // A run that may write the key's place is not signed with it (and says why)...
    let dir = workdir("sign-plant");
    let env = dir.join("out.json");
    let out = writable
        .clone()
        .args(["--envelope", &s(&env)])
        .run(&["true"]);
    assert_eq!(run_code(&out), 0, "{}", stderr(&out));
    assert!(stderr(&out).contains("not signed"), "{}", stderr(&out));
    let (code, line) = verify(&env, &["--key", &public]);
    assert!(code == 1 && line.contains("not signed"), "{line}");
    // ...and with a nonce (a signature asked for), it is refused before anything runs.
    let marker = home.join("ran");
    let out = writable
        .clone()
        .args(["--envelope", &s(&env), "--nonce", "n"])
        .run(&["touch", &s(&marker)]);
    assert_eq!(run_code(&out), 125, "{}", stderr(&out));
    assert!(stderr(&out).contains("write grant"), "{}", stderr(&out));
    assert!(!marker.exists());
}

#[test]
fn a_key_cw_exec_cannot_trust_is_refused_not_used() {
    let Some((sb, home)) = user_with_home("sign-untrusted") else {
        return;
    };
    let (_, key_file) = key_show(&sb);
    let key_dir = key_file.parent().unwrap().to_path_buf();
    let original = std::fs::read(&key_file).unwrap();
    let marker = home.join("ran");
    let owner = std::fs::metadata(&key_file).unwrap();
    let chown =
        |p: &Path| std::os::unix::fs::lchown(p, Some(owner.uid()), Some(owner.gid())).unwrap();
    let restore = || {
        let _ = std::fs::remove_file(&key_file);
        std::fs::set_permissions(&key_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::write(&key_file, &original).unwrap();
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        chown(&key_file);
    };
    let elsewhere = home.join("planted.key");
    type Plant<'a> = (&'a str, Box<dyn Fn() + 'a>);
    let plants: Vec<Plant> = vec![
        (
            "readable by others",
            Box::new(|| {
                std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap()
            }),
        ),
        (
            "a directory open to others",
            Box::new(|| {
                std::fs::set_permissions(&key_dir, std::fs::Permissions::from_mode(0o755)).unwrap()
            }),
        ),
        (
            "a symlink",
            Box::new(|| {
                std::fs::rename(&key_file, &elsewhere).unwrap();
                std::os::unix::fs::symlink(&elsewhere, &key_file).unwrap();
                chown(&key_file);
            }),
        ),
        (
            "a second hard link",
            Box::new(|| {
                let _ = std::fs::remove_file(&elsewhere);
                std::fs::hard_link(&key_file, &elsewhere).unwrap();
            }),
        ),
        (
            "not a key",
            Box::new(|| std::fs::write(&key_file, "planted\n").unwrap()),
        ),
        (
            "a FIFO",
            Box::new(|| {
                std::fs::remove_file(&key_file).unwrap();
                nix::unistd::mkfifo(&key_file, nix::sys::stat::Mode::from_bits_truncate(0o600))
                    .unwrap();
                chown(&key_file);
            }),
        ),
    ];
    for (what, plant) in plants {
        plant();
        let out = sb.run(&["touch", marker.to_str().unwrap()]);
        assert_eq!(run_code(&out), 125, "{what}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("not trusted"),
            "{what}: {}",
            stderr(&out)
        );
        assert!(!marker.exists(), "{what}: the command ran");
        let _ = std::fs::remove_file(&elsewhere);
        restore();
    }
    // Restored, it is used again.
    let out = sb.run(&["true"]);
    assert_eq!(run_code(&out), 0, "{}", stderr(&out));
}

#[test]
fn without_a_key_the_attestation_says_it_is_unsigned_and_a_nonce_is_refused() {
    let sb = if is_root() {
        match unprivileged_user() {
            Ok(ids) => Sandbox::new().user(ids),
            Err(why) => return skip(&why),
        }
    } else {
        Sandbox::new()
    };
    // No place for a key: HOME does not exist.
    let sb = sb.env("HOME", "/nonexistent").env("XDG_CONFIG_HOME", "");
    let dir = workdir("sign-nokey");
    let env = dir.join("out.json");
    let out = sb
        .clone()
        .args(["--envelope", env.to_str().unwrap()])
        .run(&["true"]);
    assert_eq!(run_code(&out), 0, "{}", stderr(&out));
    let v = envelope(&env);
    assert!(v["provenance"]["attestation"]["signature"].is_null());
    let other = ed25519_dalek::SigningKey::from_bytes(&[1u8; 32]).verifying_key();
    let other_hex = hex(other.as_bytes());
    let (code, line) = verify(&env, &["--key", &other_hex]);
    assert!(code == 1 && line.contains("not signed"), "{line}");
    let out = sb
        .clone()
        .args(["--envelope", env.to_str().unwrap(), "--nonce", "n"])
        .run(&["true"]);
    assert_eq!(run_code(&out), 125, "{}", stderr(&out));
    // A nonce with nothing to sign, and a nonce out of range, are bad input.
    assert_eq!(
        run_code(&Sandbox::new().args(["--nonce", "n"]).run(&["true"])),
        125
    );
    let long = "x".repeat(300);
    let out = Sandbox::new()
        .args(["--envelope", env.to_str().unwrap(), "--nonce", &long])
        .run(&["true"]);
    assert_eq!(run_code(&out), 125);
    assert!(stderr(&out).contains("--nonce"), "{}", stderr(&out));
}
