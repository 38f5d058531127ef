//! Everyday tools under the bundled profiles: HOME exists (private unless the profile says
//! otherwise), /dev/shm is private, git has an identity, the toolchain recipe works, `--setenv
//! PATH` is the lookup PATH, and an expanded grant skips what the caller cannot read.

mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const PROFILES: [&str; 5] = ["default", "readonly", "workspace-write", "agent", "ci"];

fn code(out: &std::process::Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// A HOME of the sandbox's identity with a marker file in it, writable by that identity.
fn home_for(sb: &Sandbox, name: &str) -> PathBuf {
    let home = workdir(name).join("home");
    std::fs::create_dir(&home).unwrap();
    std::fs::write(home.join("marker"), "host file").unwrap();
    if let Some((uid, gid)) = sb.user {
        for p in [home.clone(), home.join("marker")] {
            std::os::unix::fs::chown(&p, Some(uid), Some(gid)).unwrap();
        }
    }
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
    home
}

#[test]
fn home_exists_and_is_private_and_writable_under_every_bundled_profile() {
    as_each_identity(|sb, who| {
        let home = home_for(&sb, "home-private");
        let h = home.to_str().unwrap();
        let work = workdir("home-private-cwd");
        for profile in PROFILES {
            let sb = sb
                .clone()
                .cwd(&work)
                .env("HOME", h)
                .args(["--profile", profile]);
            // The caller's files are not there, and what is written stays inside.
            let marker = home.join("marker");
            assert_eq!(
                sb.attempt(&["read", marker.to_str().unwrap()]),
                "ENOENT",
                "{who} {profile}"
            );
            assert_eq!(
                sb.attempt(&["write", home.join("new").to_str().unwrap()]),
                "ok",
                "{who} {profile}: HOME must be writable"
            );
            assert!(
                !home.join("new").exists(),
                "{who} {profile}: reached the host"
            );
            // The variable names it.
            let out = sb.run(&["sh", "-c", "echo $HOME; test -d $HOME && test -w $HOME"]);
            assert_eq!(code(&out), 0, "{who} {profile}: {}", stderr(&out));
            assert_eq!(stdout(&out).trim(), h, "{who} {profile}");
        }
        // A HOME that does not exist on the host exists inside.
        let out = sb.clone().env("HOME", "/nonexistent-cwx-home").run(&[
            "sh",
            "-c",
            "touch $HOME/x && echo ok",
        ]);
        assert_eq!(stdout(&out).trim(), "ok", "{who}: {}", stderr(&out));
        assert!(!Path::new("/nonexistent-cwx-home").exists());
        // The explain output says so.
        let out = sb
            .clone()
            .env("HOME", h)
            .command("explain", &["true"])
            .output()
            .unwrap();
        assert!(
            stdout(&out).contains("(private:"),
            "{who}: {}",
            stdout(&out)
        );
    });
}

#[test]
fn a_profile_can_read_or_write_the_real_home() {
    as_each_identity(|sb, who| {
        let home = home_for(&sb, "home-real");
        let h = home.to_str().unwrap();
        let dir = workdir("home-real-profiles");
        let profile = |mode: &str| {
            let p = dir.join(format!("home-{mode}.toml"));
            write_file(
                &p,
                &format!("read = [\"$cwd\"]\nwrite = [\"$tmp\"]\nhome = \"{mode}\"\n"),
            );
            p.to_str().unwrap().to_string()
        };
        let marker = home.join("marker");
        let read = sb
            .clone()
            .env("HOME", h)
            .args(["--profile", &profile("read")]);
        assert_eq!(
            read.attempt(&["read", marker.to_str().unwrap()]),
            "ok",
            "{who}"
        );
        assert_eq!(
            read.attempt(&["write", home.join("new").to_str().unwrap()]),
            "EROFS",
            "{who}"
        );
        let write = sb
            .clone()
            .env("HOME", h)
            .args(["--profile", &profile("write")]);
        assert_eq!(
            write.attempt(&["write", home.join("new").to_str().unwrap()]),
            "ok",
            "{who}"
        );
        assert_eq!(
            std::fs::read_to_string(home.join("new")).unwrap(),
            "violated\n"
        );
        // Credentials in the real home stay masked.
        std::fs::create_dir_all(home.join(".ssh")).unwrap();
        std::fs::write(home.join(".ssh/id_ed25519"), "PRIVATE").unwrap();
        assert_ne!(
            read.attempt(&["read", home.join(".ssh/id_ed25519").to_str().unwrap()]),
            "ok",
            "{who}"
        );
        // A bad value is a precise error.
        let bad = dir.join("bad.toml");
        write_file(&bad, "home = \"shared\"\n");
        let out = sb
            .clone()
            .args(["--profile", bad.to_str().unwrap()])
            .run(&["true"]);
        assert_eq!(code(&out), 125);
        assert!(stderr(&out).contains("home"), "{}", stderr(&out));
    });
}

#[test]
fn dev_shm_is_private_and_the_hosts_is_never_granted() {
    let host_marker = PathBuf::from(format!("/dev/shm/cwx-host-{}", test_id()));
    std::fs::write(&host_marker, "host").unwrap();
    as_each_identity(|sb, who| {
        let written = format!("/dev/shm/cwx-inside-{}", test_id());
        for extra in [&[][..], &["--read", "/dev"][..]] {
            let sb = sb.clone().args(extra.iter().copied());
            assert_eq!(
                sb.attempt(&["read", host_marker.to_str().unwrap()]),
                "ENOENT",
                "{who} {extra:?}"
            );
            assert_eq!(sb.attempt(&["write", &written]), "ok", "{who} {extra:?}");
            assert!(!Path::new(&written).exists(), "{who}: reached the host");
        }
        for flag in ["--read", "--write"] {
            let out = sb.clone().args([flag, "/dev/shm"]).run(&["true"]);
            assert_eq!(code(&out), 125, "{who} {flag}");
            assert!(stderr(&out).contains("shared memory"), "{}", stderr(&out));
        }
        // explain and the attestation agree with the mount table.
        let out = sb.command("explain", &["true"]).output().unwrap();
        assert!(
            stdout(&out).contains("/dev/shm tmpfs rw,noexec (private /dev/shm"),
            "{}",
            stdout(&out)
        );
        let env = workdir("shm-env").join("e.json");
        let out = sb
            .clone()
            .args(["--envelope", env.to_str().unwrap()])
            .run(&["sh", "-c", "grep ' /dev/shm ' /proc/self/mounts"]);
        assert_eq!(code(&out), 0, "{who}: {}", stderr(&out));
        assert!(
            stdout(&out).contains("tmpfs rw,nosuid,nodev,noexec"),
            "{}",
            stdout(&out)
        );
        let view = envelope(&env)["provenance"]["attestation"]["kernel"]["mountView"].to_string();
        assert!(view.contains("/dev/shm tmpfs rw,noexec"), "{view}");
    });
    std::fs::remove_file(&host_marker).unwrap();
}

#[test]
fn python_multiprocessing_works_under_every_bundled_profile() {
    if !Path::new("/usr/bin/python3").exists() {
        return skip("python3: /usr/bin/python3 is not installed");
    }
    as_each_identity(|sb, who| {
        let work = workdir("mp");
        for profile in PROFILES {
            let out = sb.clone().cwd(&work).args(["--profile", profile]).run(&[
                "/usr/bin/python3",
                "-c",
                "import multiprocessing as m\nwith m.Pool(2) as p: print(sum(p.map(abs, [-1, -2, -3])))",
            ]);
            assert_eq!(code(&out), 0, "{who} {profile}: {}", stderr(&out));
            assert_eq!(stdout(&out), "6\n", "{who} {profile}");
        }
    });
}

#[test]
fn git_commits_with_the_callers_identity_under_workspace_write() {
    if !["/usr/bin/git", "/usr/local/bin/git", "/bin/git"]
        .iter()
        .any(|g| Path::new(g).exists())
    {
        return skip("git is not installed");
    }
    as_each_identity(|sb, who| {
        let home = home_for(&sb, "git-home");
        std::fs::write(
            home.join(".gitconfig"),
            "[user]\n\tname = Cwx Tester\n\temail = cwx@example.invalid\n",
        )
        .unwrap();
        std::fs::write(
            home.join(".git-credentials"),
            "https://u:SECRET@example.invalid\n",
        )
        .unwrap();
        if let Some((uid, gid)) = sb.user {
            for f in [".gitconfig", ".git-credentials"] {
                std::os::unix::fs::chown(home.join(f), Some(uid), Some(gid)).unwrap();
            }
        }
        let repo = workdir("git-repo");
        if let Some((uid, gid)) = sb.user {
            std::os::unix::fs::chown(&repo, Some(uid), Some(gid)).unwrap();
        }
        let out = sb
            .clone()
            .cwd(&repo)
            .env("HOME", home.to_str().unwrap())
            .args(["--profile", "workspace-write"])
            .run(&[
                "sh",
                "-c",
                "git init -q && echo a > a && git add a && git commit -qm one && git log --format='%an <%ae>'; cat $HOME/.git-credentials",
            ]);
        assert_eq!(
            stdout(&out).lines().next(),
            Some("Cwx Tester <cwx@example.invalid>"),
            "{who}: {}",
            stderr(&out)
        );
        assert!(
            !stdout(&out).contains("SECRET"),
            "{who}: credentials leaked"
        );
        // The identity file is read-only inside.
        let out = sb
            .clone()
            .cwd(&repo)
            .env("HOME", home.to_str().unwrap())
            .args(["--profile", "workspace-write"])
            .violate(&["write", home.join(".gitconfig").to_str().unwrap()]);
        assert_eq!(stdout(&out).trim(), "EROFS", "{who}");
    });
}

#[test]
fn compilers_make_node_and_npm_work_under_workspace_write() {
    as_each_identity(|sb, who| {
        let work = workdir("build");
        if let Some((uid, gid)) = sb.user {
            std::os::unix::fs::chown(&work, Some(uid), Some(gid)).unwrap();
        }
        std::fs::write(
            work.join("hello.c"),
            "#include <stdio.h>\nint main(void){puts(\"hello from c\");return 0;}\n",
        )
        .unwrap();
        std::fs::write(
            work.join("Makefile"),
            "all: one two\none:\n\t@echo one\ntwo:\n\t@echo two\n",
        )
        .unwrap();
        let sb = sb.clone().cwd(&work).args(["--profile", "workspace-write"]);
        let mut tried = vec![];
        if Path::new("/usr/bin/gcc").exists() {
            let out = sb.run(&["sh", "-c", "gcc -o hello hello.c && ./hello"]);
            assert_eq!(stdout(&out), "hello from c\n", "{who}: {}", stderr(&out));
            tried.push("gcc");
        }
        if Path::new("/usr/bin/make").exists() {
            let out = sb.run(&["make", "-s", "-j2"]);
            assert_eq!(code(&out), 0, "{who}: {}", stderr(&out));
            let text = stdout(&out);
            let mut lines: Vec<&str> = text.lines().collect();
            lines.sort();
            assert_eq!(lines, ["one", "two"], "{who}");
            tried.push("make");
        }
        if Path::new("/usr/bin/node").exists() {
            let out = sb.run(&["node", "-e", "console.log(require('os').homedir())"]);
            assert_eq!(code(&out), 0, "{who}: {}", stderr(&out));
            tried.push("node");
        }
        if Path::new("/usr/bin/npm").exists() {
            let out = sb.run(&["npm", "init", "-y"]);
            assert_eq!(code(&out), 0, "{who}: {}", stderr(&out));
            assert!(work.join("package.json").exists(), "{who}");
            std::fs::remove_file(work.join("package.json")).unwrap();
            tried.push("npm");
        }
        if tried.is_empty() {
            skip("no gcc, make, node or npm on this machine");
        }
    });
}

#[test]
fn cargo_in_home_builds_a_crate_with_the_toolchain_recipe() {
    if skip_unless_root("the toolchain is installed under /root") {
        return;
    }
    let home = PathBuf::from("/root");
    let cargo = home.join(".cargo/bin/cargo");
    if !cargo.exists() || !home.join(".rustup").is_dir() {
        return skip("no rustup toolchain under /root");
    }
    let krate = workdir("crate");
    std::fs::create_dir_all(krate.join("src")).unwrap();
    std::fs::write(
        krate.join("Cargo.toml"),
        "[package]\nname = \"cwx-probe\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    )
    .unwrap();
    std::fs::write(
        krate.join("src/main.rs"),
        "fn main() { println!(\"built inside\"); }\n",
    )
    .unwrap();
    // docs/toolchains.md: the toolchain read-only, PATH set for lookup, HOME private.
    let out = Sandbox::new()
        .cwd(&krate)
        .args([
            "--profile",
            "ci",
            "--read",
            "/root/.rustup",
            "--read",
            "/root/.cargo/bin",
            "--setenv",
            "PATH=/root/.cargo/bin:/usr/bin:/bin",
        ])
        .run(&["cargo", "run", "-q", "--offline"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "built inside\n");
}

#[test]
fn setenv_path_is_the_lookup_path_and_ci_passes_rustup_home() {
    as_each_identity(|sb, who| {
        let dir = workdir("lookup");
        let tool = dir.join("cwx-mytool");
        write_file(&tool, "#!/bin/sh\necho mytool ran\n");
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        let d = dir.to_str().unwrap();
        let out = sb
            .clone()
            .args(["--read", d, "--setenv", &format!("PATH={d}:/usr/bin:/bin")])
            .run(&["cwx-mytool"]);
        assert_eq!(stdout(&out), "mytool ran\n", "{who}: {}", stderr(&out));
        // Without it, the default PATH does not find it (127).
        let out = sb.clone().args(["--read", d]).run(&["cwx-mytool"]);
        assert_eq!(code(&out), 127, "{who}");
        let out = sb
            .clone()
            .env("RUSTUP_HOME", "/opt/cwx-rustup")
            .args(["--profile", "ci"])
            .run(&["sh", "-c", "echo $RUSTUP_HOME"]);
        assert_eq!(stdout(&out), "/opt/cwx-rustup\n", "{who}");
    });
}

#[test]
fn running_from_root_skips_what_the_caller_cannot_read() {
    as_each_identity(|sb, who| {
        let out = sb
            .clone()
            .cwd(Path::new("/"))
            .run(&["sh", "-c", "echo ran"]);
        assert_eq!(stdout(&out), "ran\n", "{who}: {}", stderr(&out));
        let unreadable = Path::new("/lost+found");
        if who != "root" && unreadable.is_dir() {
            let out = sb
                .clone()
                .cwd(Path::new("/"))
                .command("explain", &["true"])
                .output()
                .unwrap();
            assert!(
                stdout(&out).contains("skipped      /lost+found"),
                "{}",
                stdout(&out)
            );
        }
    });
}
