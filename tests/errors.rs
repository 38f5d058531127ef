//! Exit codes and messages that must not lie (issue 12): a value outside a limit's documented
//! range, an empty path or a path that is not text is refused before anything runs, naming
//! the flag or key; a limit above what can bind here is refused (or, as a default, lowered
//! and attested); a limit that ends a run has one exit code and says so; a failed envelope
//! write never exits 0 (nor Rust's 101); an exec failure names what is missing. Root and
//! the unprivileged user where it matters. Also the set-up scripts' failure modes.

mod common;
use common::*;

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A directory the sandbox may write, and the command that would leave a marker in it: if
/// the marker exists afterwards, the command ran.
fn marker(name: &str) -> (PathBuf, PathBuf, String) {
    let dir = workdir(name);
    let marker = dir.join("ran");
    let touch = format!("touch {}", marker.display());
    (dir, marker, touch)
}

fn assert_named_refusal(out: &std::process::Output, needle: &str, what: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(125), "{what}: {err}");
    assert!(err.contains(needle), "{what}: want {needle:?} in: {err}");
    for lie in [
        "untagged",
        "tip:",
        "-- -",
        "Resource temporarily",
        "os error",
    ] {
        assert!(!err.contains(lie), "{what}: {lie:?} in: {err}");
    }
}

#[test]
fn out_of_range_limits_are_refused_before_anything_runs() {
    let memory = "must be between 8M and 1048576T";
    let pids = "must be between 2 and 4194304";
    let nofile = "must be between 16 and 1048576";
    let cases: &[(&[&str], String)] = &[
        (
            &["--memory", "1"],
            format!("'--memory <SIZE>': 1 is out of range: {memory}"),
        ),
        (
            &["--memory", "1M"],
            format!("'--memory <SIZE>': 1M is out of range: {memory}"),
        ),
        (
            &["--memory", "-5"],
            format!("'--memory <SIZE>': -5 is out of range: {memory}"),
        ),
        (
            &["--memory", "99999999999T"],
            format!("'--memory <SIZE>': 99999999999T is out of range: {memory}"),
        ),
        (
            &["--pids", "1"],
            format!("'--pids <N>': 1 is out of range: {pids}"),
        ),
        (
            &["--pids", "-1"],
            format!("'--pids <N>': -1 is out of range: {pids}"),
        ),
        (
            &["--pids", "99999999999999"],
            format!("'--pids <N>': 99999999999999 is out of range: {pids}"),
        ),
        (
            &["--nofile", "3"],
            format!("'--nofile <N>': 3 is out of range: {nofile}"),
        ),
        (
            &["--nofile", "99999999999"],
            format!("'--nofile <N>': 99999999999 is out of range: {nofile}"),
        ),
        (
            &["--fsize", "0"],
            "'--fsize <SIZE>': 0 is out of range".into(),
        ),
        (
            &["--output-limit", "-1"],
            "'--output-limit <SIZE>': -1 is out of range".into(),
        ),
        (
            &["--timeout", "-5"],
            "--timeout: -5 is not a number of seconds in (0, 31536000]".into(),
        ),
        (
            &["--cpu", "-1"],
            "--cpu: -1 is not a number of seconds".into(),
        ),
    ];
    as_each_identity(|sb, who| {
        for (args, needle) in cases {
            let (dir, marker, touch) = marker("range");
            let out = sb
                .clone()
                .args(["--write", dir.to_str().unwrap()])
                .args(*args)
                .run(&["/bin/sh", "-c", &touch]);
            assert_named_refusal(&out, needle, &format!("{who} {args:?}"));
            assert!(!marker.exists(), "{who} {args:?}: the command ran");
        }
        for (text, needle) in [
            (
                "memory = -5",
                format!("limits.memory: -5 is out of range: {memory}"),
            ),
            (
                "memory = \"1M\"",
                format!("limits.memory: 1M is out of range: {memory}"),
            ),
            (
                "memory = \"99999999999T\"",
                "limits.memory: 99999999999T is out of range".into(),
            ),
            (
                "pids = 1",
                format!("limits.pids: 1 is out of range: {pids}"),
            ),
            (
                "nofile = 3",
                format!("limits.nofile: 3 is out of range: {nofile}"),
            ),
            (
                "pids = 2.5",
                "limits.pids: 2.5 is not a whole number".into(),
            ),
        ] {
            let (dir, marker, touch) = marker("range-profile");
            let p = dir.join("p.toml");
            write_file(&p, &format!("[limits]\n{text}\n"));
            let out = sb
                .clone()
                .args([
                    "--profile",
                    p.to_str().unwrap(),
                    "--write",
                    dir.to_str().unwrap(),
                ])
                .run(&["/bin/sh", "-c", &touch]);
            assert_named_refusal(&out, &needle, &format!("{who} profile {text}"));
            assert!(!marker.exists(), "{who} {text}: the command ran");
            let check = sb
                .plain(&["profile", "check", p.to_str().unwrap()])
                .output()
                .unwrap();
            assert_named_refusal(&check, &needle, &format!("{who} profile check {text}"));
        }
    });
}

#[test]
fn the_smallest_limits_in_range_bind() {
    as_each_identity(|sb, who| {
        // --pids 2: the sandbox's init and the command; no fork more.
        let env = workdir("pids2").join("e.json");
        let out = sb
            .clone()
            .args(["--pids", "2", "--envelope", env.to_str().unwrap()])
            .violate(&["forkbomb"]);
        assert_eq!(stdout(&out).trim(), "EAGAIN 0", "{who}: {}", stderr(&out));
        // --nofile 16: the read-back and the loader fit, and the command stops at 16.
        let text = sb.clone().args(["--nofile", "16"]).attempt(&["open-many"]);
        let mut parts = text.split_whitespace();
        assert_eq!(parts.next(), Some("EMFILE"), "{who}: {text}");
        assert!(parts.next().unwrap().parse::<u32>().unwrap() <= 16, "{who}");
        // --memory 8M: the sandbox starts (or, with no memory cgroup, the run is refused for
        // that, never an internal error).
        let out = sb.clone().args(["--memory", "8M"]).run(&["/bin/true"]);
        match out.status.code() {
            Some(0) => {}
            Some(125) => assert!(
                stderr(&out).contains("no memory cgroup is usable here"),
                "{who}: {}",
                stderr(&out)
            ),
            other => panic!("{who}: --memory 8M: exit {other:?}: {}", stderr(&out)),
        }
    });
}

/// cw-exec's own hard limit of open files (inherited by the test's cw-exec, either identity).
fn nofile_hard_limit() -> u64 {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .unwrap()
        .1
}

#[test]
fn limits_above_the_hard_limit_are_refused_if_explicit_and_lowered_if_defaults() {
    let hard = nofile_hard_limit();
    if hard >= 1_048_576 {
        skip("nofile above the hard limit: the hard limit is at the top of --nofile's range");
        return;
    }
    let over = (hard + 1).to_string();
    as_each_identity(|sb, who| {
        let (dir, marker, touch) = marker("hard");
        let out = sb
            .clone()
            .args(["--nofile", &over, "--write", dir.to_str().unwrap()])
            .run(&["/bin/sh", "-c", &touch]);
        assert_named_refusal(
            &out,
            &format!("--nofile = {over} is above cw-exec's own hard limit of {hard} for RLIMIT_NOFILE (ulimit -Hn)"),
            who,
        );
        assert!(!marker.exists(), "{who}: the command ran");
        // The same number as a profile default: lowered to the hard limit, and attested so.
        let p = dir.join("p.toml");
        write_file(&p, &format!("[limits]\nnofile = {over}\n"));
        let env = dir.join("e.json");
        let out = sb
            .clone()
            .args([
                "--profile",
                p.to_str().unwrap(),
                "--envelope",
                env.to_str().unwrap(),
            ])
            .run(&["/bin/sh", "-c", "ulimit -n"]);
        assert_eq!(out.status.code(), Some(0), "{who}: {}", stderr(&out));
        assert_eq!(stdout(&out).trim(), hard.to_string(), "{who}");
        let limits = envelope(&env)["provenance"]["attestation"]["kernel"]["limits"].clone();
        let nofile = limits
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["limit"] == "nofile")
            .unwrap()
            .clone();
        let coverage = nofile["coverage"].as_str().unwrap();
        assert!(
            coverage.contains(&format!(
                "at most {hard} open descriptors (the profile's {over} lowered to {hard}"
            )),
            "{who}: {coverage}"
        );
    });
}

#[test]
fn a_failed_envelope_write_exits_125_never_0_or_101() {
    as_each_identity(|sb, who| {
        let out = sb
            .clone()
            .args(["--envelope", "/dev/full"])
            .run(&["/bin/true"]);
        assert_eq!(out.status.code(), Some(125), "{who}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("/dev/full: No space left on device")
                && stderr(&out).contains("exiting 125, not the command's 0"),
            "{who}: {}",
            stderr(&out)
        );
        // The envelope on a stderr that cannot take it: the diagnostics cannot be said
        // either, and cw-exec must neither panic (101) nor claim success (0).
        for target in ["-", "/dev/stderr"] {
            let full = std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .unwrap();
            let out = sb
                .clone()
                .args(["--envelope", target])
                .command("run", &["/bin/true"])
                .stderr(full)
                .stdout(Stdio::piped())
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(125), "{who}: --envelope {target}");
        }
        // A diagnostic that cannot be written is not a failure of the run.
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let out = sb
            .clone()
            .args(["--output-limit", "2"])
            .command("run", &["/bin/sh", "-c", "echo hello; exit 3"])
            .stderr(full)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{who}");
        assert_eq!(out.stdout, b"he", "{who}");
    });
}

#[test]
fn output_past_the_limit_keeps_the_commands_code_and_says_so() {
    as_each_identity(|sb, who| {
        let env = workdir("outcode").join("e.json");
        let out = sb
            .args(["--output-limit", "1K", "--envelope", env.to_str().unwrap()])
            .run(&["/bin/sh", "-c", "head -c 5000 /dev/zero; exit 7"]);
        assert_eq!(out.status.code(), Some(7), "{who}: {}", stderr(&out));
        assert_eq!(out.stdout.len(), 1024, "{who}");
        assert!(
            stderr(&out).contains(
                "cw-exec: output truncated: 3976 bytes of stdout and stderr past the output limit of 1024 bytes (--output-limit) were dropped"
            ) && stderr(&out).contains("the exit code is the command's"),
            "{who}: {}",
            stderr(&out)
        );
        let e = envelope(&env);
        assert_eq!(e["evidence"][1], "exitCode:7", "{who}");
        let meta = &e["provenance"]["handle"]["metadata"];
        assert_eq!(meta["exitCode"], 7, "{who}");
        assert_eq!(meta["outputDroppedBytes"], 3976, "{who}");
        let notes = e["provenance"]["attestation"]["notes"].to_string();
        assert!(
            notes.contains("the exit code is the command's"),
            "{who}: {notes}"
        );
    });
}

#[test]
fn a_limit_signal_reported_by_a_shell_still_names_the_limit() {
    // A child of the command is killed by SIGXCPU or SIGXFSZ; the shell exits 128 + it.
    // cw-exec gives the limit's one code and says which limit it was.
    let f = fixture();
    let v = f.violate.to_str().unwrap();
    as_each_identity(|sb, who| {
        let dir = workdir("shell-fsize");
        let big = dir.join("big");
        let out = sb
            .clone()
            .args([
                "--fsize",
                "1M",
                "--write",
                dir.to_str().unwrap(),
                "--read",
                f.bin.to_str().unwrap(),
            ])
            .run(&[
                "/bin/sh",
                "-c",
                &format!("{v} write-bytes {} 4194304", big.display()),
            ]);
        assert_eq!(out.status.code(), Some(153), "{who}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("cw-exec: fsize: a process wrote past the file size limit of 1048576 bytes (--fsize): the command exited 153 (128 + SIGXFSZ"),
            "{who}: {}",
            stderr(&out)
        );
        // A CPU limit as a profile default binds per process where no cgroup accounts the
        // sandbox's CPU time (RLIMIT_CPU: SIGXCPU), and as a whole where one does.
        let p = dir.join("cpu.toml");
        write_file(&p, "[limits]\ncpu = 1\n");
        let out = sb
            .clone()
            .args([
                "--profile",
                p.to_str().unwrap(),
                "--read",
                f.bin.to_str().unwrap(),
            ])
            .run(&["/bin/sh", "-c", &format!("{v} spin 20; exit $?")]);
        assert_eq!(out.status.code(), Some(152), "{who}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("cw-exec: cpu: the sandbox used up its CPU time limit of"),
            "{who}: {}",
            stderr(&out)
        );
        assert!(!stdout(&out).contains("spun"), "{who}");
    });
}

#[test]
fn exec_failures_name_what_is_missing() {
    as_each_identity(|sb, who| {
        let dir = workdir("execmsg");
        let sb = sb.cwd(&dir);
        // A script whose #! interpreter does not exist at all.
        let missing = dir.join("missing.sh");
        write_file(&missing, "#!/nonexistent/interp\necho hi\n");
        std::fs::set_permissions(
            &missing,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let out = sb.run(&[missing.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(127), "{who}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("the interpreter its #! line names, /nonexistent/interp, is missing or not visible in the sandbox"),
            "{who}: {}",
            stderr(&out)
        );
        assert!(
            !stderr(&out).contains("not present in the sandbox's view"),
            "{who}: {}",
            stderr(&out)
        );
        // One that exists on the host but is outside every grant.
        let hidden = dir.join("hidden.sh");
        let interp = fixture().violate.to_str().unwrap().to_string();
        write_file(&hidden, &format!("#!{interp}\n"));
        std::fs::set_permissions(&hidden, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let out = sb.run(&[hidden.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(127), "{who}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!(
                "the interpreter its #! line names, {interp}, is missing or not visible"
            )),
            "{who}: {}",
            stderr(&out)
        );
        // A directory, with no allowlist: called a directory; no allowlist is mentioned.
        let out = sb.run(&["/usr"]);
        assert_eq!(out.status.code(), Some(126), "{who}");
        assert!(
            stderr(&out).contains("/usr: Permission denied (it is a directory, not a program)"),
            "{who}: {}",
            stderr(&out)
        );
        assert!(
            !stderr(&out).contains("allowlist"),
            "{who}: {}",
            stderr(&out)
        );
        // Not executable by its mode, no allowlist.
        let plain = dir.join("plain");
        write_file(&plain, "echo hi\n");
        let out = sb.run(&[plain.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(126), "{who}");
        assert!(
            stderr(&out).contains("no execute permission in its mode"),
            "{who}: {}",
            stderr(&out)
        );
        assert!(
            !stderr(&out).contains("allowlist"),
            "{who}: {}",
            stderr(&out)
        );
        // Under an allowlist, a program not on it.
        let out = sb
            .clone()
            .args(["--exec", "/usr/bin/true"])
            .run(&["/usr/bin/env"]);
        assert_eq!(out.status.code(), Some(126), "{who}");
        assert!(
            stderr(&out)
                .contains("/usr/bin/env: Permission denied (denied: not on the exec allowlist)"),
            "{who}: {}",
            stderr(&out)
        );
    });
}

#[test]
fn empty_paths_are_errors_naming_the_flag() {
    as_each_identity(|sb, who| {
        for flag in ["--read", "--write", "--exec"] {
            let (dir, marker, touch) = marker("empty");
            let out = sb
                .clone()
                .args(["--write", dir.to_str().unwrap(), flag, ""])
                .run(&["/bin/sh", "-c", &touch]);
            assert_named_refusal(
                &out,
                &format!("{flag} \"\": an empty path names nothing"),
                who,
            );
            assert!(!marker.exists(), "{who} {flag}");
        }
        for key in ["read", "write", "exec"] {
            let dir = workdir("empty-profile");
            let p = dir.join("p.toml");
            write_file(&p, &format!("{key} = [\"\"]\n"));
            let out = sb
                .clone()
                .args(["--profile", p.to_str().unwrap()])
                .run(&["/bin/true"]);
            assert_named_refusal(&out, &format!("{key}: an empty path names nothing"), who);
        }
    });
}

#[test]
fn a_working_directory_that_is_not_utf8_is_named_as_such() {
    as_each_identity(|sb, who| {
        let dir = workdir("utf8").join(std::ffi::OsStr::from_bytes(b"d\xff"));
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .unwrap();
        let out = sb.cwd(&dir).run(&["/bin/true"]);
        assert_named_refusal(&out, "which is not valid UTF-8", who);
        assert!(
            !stderr(&out).contains("No such file"),
            "{who}: {}",
            stderr(&out)
        );
    });
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn scripts_try_prints_a_short_summary_and_the_json_only_when_asked() {
    let out = Command::new(repo().join("scripts/try"))
        .arg("/bin/true")
        .env("CW_EXEC", &fixture().cw)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(text.lines().count() <= 20, "not short: {text}");
    for needle in [
        "  read     enforced",
        "  network  enforced",
        "Signature: valid",
        "Full attestation (kernel read-back, probes, known gaps, signature): target/try/attestation.json",
    ] {
        assert!(text.contains(needle), "want {needle:?} in: {text}");
    }
    assert!(
        !text.contains("\"schemaVersion\""),
        "JSON in the summary: {text}"
    );
    let out = Command::new(repo().join("scripts/try"))
        .args(["--json", "/bin/true"])
        .env("CW_EXEC", &fixture().cw)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json = stderr(&out);
    let start = json.find('{').unwrap();
    let e: serde_json::Value = serde_json::from_str(&json[start..]).unwrap();
    assert_eq!(e["provenance"]["attestation"]["status"], "enforced");
}

#[test]
fn a_failed_toolchain_download_stops_with_a_clear_message() {
    let fake = workdir("fakebin");
    let home = workdir("fakehome");
    // curl that cannot reach the network; dpkg that says every package is installed.
    for (name, body) in [
        (
            "curl",
            "echo 'curl: (6) Could not resolve host' >&2; exit 6",
        ),
        ("dpkg", "exit 0"),
    ] {
        let p = fake.join(name);
        write_file(&p, &format!("#!/bin/sh\n{body}\n"));
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let path = format!("{}:/usr/bin:/bin", fake.display());
    let has_cargo = Command::new("sh")
        .args(["-c", "command -v cargo"])
        .env("PATH", &path)
        .output()
        .unwrap()
        .status
        .success();
    if has_cargo {
        skip("toolchain download failure: cargo is installed system-wide here");
        return;
    }
    let out = Command::new("sh")
        .args([
            "-c",
            ". scripts/lib.sh && ensure_toolchain && echo reached-the-build",
        ])
        .current_dir(repo())
        .env_clear()
        .env("PATH", &path)
        .env("HOME", &home)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(!stdout(&out).contains("reached-the-build"));
    assert!(
        stderr(&out).contains("could not download the Rust installer from https://sh.rustup.rs")
            && stderr(&out).contains("Install a stable Rust toolchain yourself"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("not found"), "{}", stderr(&out));
}

#[test]
fn scripts_install_puts_cw_exec_on_a_prefix() {
    let prefix = workdir("prefix");
    let out = Command::new(repo().join("scripts/install"))
        .arg(&prefix)
        .env("CW_EXEC", &fixture().cw)
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let installed = prefix.join("bin/cw-exec");
    assert!(
        stdout(&out).contains(&format!("installed {}", installed.display())),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("is not on your PATH"),
        "{}",
        stdout(&out)
    );
    let v = Command::new(&installed).arg("--version").output().unwrap();
    assert!(stdout(&v).starts_with("cw-exec "), "{}", stdout(&v));
}

/// The read-back fits under the smallest open-files limit however many descriptors cw-exec
/// holds for the run: an envelope's directory and a profile of many grants as well (each
/// grant is a descriptor the command inherits until its execve).
#[test]
fn the_smallest_nofile_binds_with_an_envelope_and_many_grants() {
    let many = workdir("nofile-many");
    let mut args = vec!["--nofile".to_string(), "16".to_string()];
    for i in 0..20 {
        let d = many.join(format!("d{i}"));
        std::fs::create_dir_all(&d).unwrap();
        args.extend(["--read".to_string(), d.to_str().unwrap().to_string()]);
    }
    as_each_identity(|sb, who| {
        let env = workdir("nofile-env").join("e.json");
        let text = sb
            .clone()
            .args(args.iter().map(String::as_str))
            .args(["--envelope", env.to_str().unwrap()])
            .attempt(&["open-many"]);
        let mut parts = text.split_whitespace();
        assert_eq!(parts.next(), Some("EMFILE"), "{who}: {text}");
        assert!(parts.next().unwrap().parse::<u32>().unwrap() <= 16, "{who}");
        assert!(env.exists(), "{who}: no envelope");
    });
}
