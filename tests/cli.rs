//! Bad input, exit codes, profiles, explain and probe.

mod common;
use common::*;

#[test]
fn exit_codes_follow_the_convention() {
    let sb = Sandbox::new();
    assert_eq!(sb.run(&["/bin/true"]).status.code(), Some(0));
    assert_eq!(sb.run(&["/bin/sh", "-c", "exit 7"]).status.code(), Some(7));
    assert_eq!(
        sb.run(&["/bin/sh", "-c", "kill -TERM $$"]).status.code(),
        Some(128 + 15)
    );
    let out = sb.run(&["no-such-command-cwexec"]);
    assert_eq!(out.status.code(), Some(127));
    assert!(
        stderr(&out).contains("no-such-command-cwexec"),
        "{}",
        stderr(&out)
    );
    // Exists on the host but not executable.
    let dir = workdir("noexec");
    let f = dir.join("plain.txt");
    write_file(&f, "not a program");
    let out = Sandbox::new()
        .args(["--read", dir.to_str().unwrap()])
        .run(&[f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(126), "{}", stderr(&out));
}

#[test]
fn timeout_terms_the_tree_and_exits_124() {
    as_each_identity(|sb, who| {
        let env = workdir("timeout").join("e.json");
        let out = sb
            .clone()
            .args(["--timeout", "0.5", "--envelope", env.to_str().unwrap()])
            .run(&["/bin/sleep", "30"]);
        assert_eq!(out.status.code(), Some(124), "{who}");
        assert!(stderr(&out).contains("timed out"), "{who}");
        let e = envelope(&env);
        assert_eq!(
            e["provenance"]["handle"]["metadata"]["timedOut"], true,
            "{who}"
        );
        let notes = e["provenance"]["attestation"]["notes"].to_string();
        assert!(notes.contains("timeout: killed after"), "{who}: {notes}");
        // The command sees SIGTERM first (a chance to clean up), not only the final SIGKILL.
        let out = sb.args(["--timeout", "0.5"]).run(&[
            "/bin/sh",
            "-c",
            "trap 'echo got-term; exit 3' TERM; sleep 30 & wait",
        ]);
        assert_eq!(out.status.code(), Some(124), "{who}");
        assert_eq!(stdout(&out).trim(), "got-term", "{who}: {}", stderr(&out));
    });
}

#[test]
fn bad_input_is_named_and_exits_125_without_running() {
    let dir = workdir("bad");
    let marker = dir.join("ran");
    let touch = format!("touch {}", marker.display());
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--read".into(), "/no/such/path".into()],
            "/no/such/path",
        ),
        (
            vec!["--write".into(), "/no/such/dir".into()],
            "/no/such/dir",
        ),
        (vec!["--exec".into(), "/no/such/bin".into()], "/no/such/bin"),
        (vec!["--net".into(), "lan".into()], "lan"),
        (vec!["--profile".into(), "nope".into()], "nope"),
        (vec!["--setenv".into(), "NOEQUALS".into()], "NOEQUALS"),
        (vec!["--env".into(), "A=B".into()], "A=B"),
        (vec!["--timeout".into(), "0".into()], "timeout"),
        (vec!["--timeout".into(), "abc".into()], "abc"),
        (
            vec!["--read".into(), "$nosuchtoken/x".into()],
            "$nosuchtoken",
        ),
        (
            vec!["--envelope".into(), "/no/such/dir/env.json".into()],
            "/no/such/dir/env.json",
        ),
        (vec!["--bogus-flag".into()], "--bogus-flag"),
    ];
    for (args, needle) in cases {
        let out = Sandbox::new()
            .args(&args)
            .args(["--write", dir.to_str().unwrap()])
            .run(&["/bin/sh", "-c", &touch]);
        assert_eq!(out.status.code(), Some(125), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(needle),
            "{args:?}: error does not name {needle}: {}",
            stderr(&out)
        );
        assert!(!marker.exists(), "{args:?}: the command ran");
    }
}

#[test]
fn malformed_profiles_are_rejected_with_the_key_named() {
    let dir = workdir("profiles");
    for (text, needle) in [
        ("reed = [\"/x\"]\n", "reed"),
        ("net = 3\n", "net"),
        ("[env]\nexpsoe = [\"A\"]\n", "expsoe"),
        ("read = \"not a list\"\n", "read"),
        ("this is not toml", "profile"),
    ] {
        let p = dir.join("p.toml");
        write_file(&p, text);
        let out = cw(&["profile", "check", p.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(125), "{text}");
        assert!(stderr(&out).contains(needle), "{text}: {}", stderr(&out));
        let run = Sandbox::new()
            .args(["--profile", p.to_str().unwrap()])
            .run(&["/bin/true"]);
        assert_eq!(run.status.code(), Some(125));
    }
}

#[test]
fn bundled_profiles_list_show_and_run() {
    let out = cw(&["profile", "list"]);
    let text = stdout(&out);
    for name in [
        "default",
        "readonly",
        "workspace-write",
        "locked-down",
        "agent",
        "ci",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(name)),
            "{name} missing from list"
        );
        assert_eq!(cw(&["profile", "show", name]).status.code(), Some(0));
        let run = Sandbox::new().args(["--profile", name]).run(&["/bin/true"]);
        assert_eq!(
            run.status.code(),
            Some(0),
            "profile {name}: {}",
            stderr(&run)
        );
    }
    assert_eq!(cw(&["profile", "show", "nope"]).status.code(), Some(125));
}

#[test]
fn workspace_write_profile_writes_the_workspace_only() {
    let cwd = workdir("ws");
    let out = Sandbox::new()
        .cwd(&cwd)
        .args(["--profile", "workspace-write"])
        .run(&["/bin/sh", "-c", "echo data > made.txt && cat made.txt"]);
    assert_eq!(stdout(&out).trim(), "data", "{}", stderr(&out));
    assert!(cwd.join("made.txt").exists());
    let out = Sandbox::new()
        .cwd(&cwd)
        .run(&["/bin/sh", "-c", "echo data > other.txt"]);
    assert_ne!(
        out.status.code(),
        Some(0),
        "default profile wrote the workspace"
    );
    assert!(!cwd.join("other.txt").exists());
}

#[test]
fn locked_down_runs_only_the_command_itself() {
    let sb = Sandbox::new().args(["--profile", "locked-down"]);
    assert_eq!(sb.attempt(&["exec", "/bin/true"]), "EACCES");
    assert_eq!(sb.attempt(&["read", "/work"]), "ENOENT");
}

#[test]
fn explain_prints_the_plan_without_running() {
    let dir = workdir("explain");
    let marker = dir.join("ran");
    let out = Sandbox::new()
        .args(["--write", dir.to_str().unwrap(), "--net", "loopback"])
        .command(
            "explain",
            &["/bin/sh", "-c", &format!("touch {}", marker.display())],
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    for needle in [
        "network      loopback",
        "seccomp",
        "runtime allowance",
        "mount view",
        "read+write",
        "gap (",
    ] {
        assert!(text.contains(needle), "explain lacks {needle}:\n{text}");
    }
    assert!(!marker.exists());
}

#[test]
fn probe_reports_this_kernel() {
    let out = cw(&["probe", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let abi = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32,
        )
    };
    assert_eq!(v["landlockAbi"].as_i64().unwrap(), abi.max(0));
    let dims: Vec<&str> = v["dimensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["dimension"].as_str().unwrap())
        .collect();
    assert_eq!(dims, ["read", "write", "command", "network", "env"]);
    assert_eq!(
        out.status.code(),
        Some(if v["ready"] == true { 0 } else { 1 })
    );
}

#[test]
fn timings_show_where_the_time_goes() {
    let out = Sandbox::new().arg("--timings").run(&["/bin/true"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    for phase in [
        "plan:",
        "namespaces created",
        "init: mount view",
        "command: rlimits, capabilities, seccomp",
        "command ran",
    ] {
        assert!(err.contains(phase), "--timings lacks {phase}:\n{err}");
    }
    assert!(stdout(&out).is_empty(), "timings must not touch stdout");
}
