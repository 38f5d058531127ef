//! cw-exec's own file I/O against what a sandbox (or a racing process) leaves in places it
//! can write: symlinks and FIFOs planted at the envelope path, the envelope's directory
//! swapped for a symlink during the run or by a concurrent attacker, and FIFOs handed to
//! cw-exec as a manifest, a request, a profile or a command. Nothing outside the write set
//! is ever written, and nothing hangs.

mod common;
use common::*;
use std::io::BufRead;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A host directory the sandbox is not granted, holding `canary` ("canary").
fn canary_dir() -> PathBuf {
    let c = workdir("canary");
    write_file(&c.join("canary"), "canary");
    c
}

/// The entries of a directory, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn assert_regular_envelope(path: &Path) {
    let meta = std::fs::symlink_metadata(path).unwrap();
    assert!(
        meta.file_type().is_file(),
        "{}: {:?}",
        path.display(),
        meta.file_type()
    );
    let e = envelope(path);
    assert_eq!(e["schemaVersion"], 1, "{e}");
}

/// Waits for a child up to `limit` (a test-side bound so a hang fails the test instead of
/// stalling it); a child still running then is killed and reported as hung.
fn wait_bounded(mut child: Child, limit: Duration, what: &str) -> Output {
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: cw-exec hung (still running after {limit:?})");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

const HANG_LIMIT: Duration = Duration::from_secs(60);

fn spawn(mut c: Command) -> Child {
    c.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn mkfifo(path: &Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o666)).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).unwrap();
}

#[test]
fn a_symlink_planted_at_the_envelope_path_is_replaced_not_followed() {
    as_each_identity(|sb, who| {
        let w = workdir("plant-env");
        let c = canary_dir();
        let env = w.join("env.json");
        let sb = sb.args(["--write", w.to_str().unwrap()]);
        // During the run: the sandbox plants the symlink at the envelope path itself.
        let plant = format!("ln -s '{}' '{}'", c.join("canary").display(), env.display());
        let out = sb
            .clone()
            .args(["--envelope", env.to_str().unwrap()])
            .run(&["/bin/sh", "-c", &plant]);
        assert_eq!(out.status.code(), Some(0), "{who}: {}", stderr(&out));
        assert_eq!(
            std::fs::read_to_string(c.join("canary")).unwrap(),
            "canary",
            "{who}"
        );
        assert_regular_envelope(&env);
        // Across runs: a run without --envelope leaves the symlink; the next run names it.
        std::fs::remove_file(&env).unwrap();
        let out = sb.clone().run(&["/bin/sh", "-c", &plant]);
        assert_eq!(out.status.code(), Some(0), "{who}: {}", stderr(&out));
        assert!(std::fs::symlink_metadata(&env)
            .unwrap()
            .file_type()
            .is_symlink());
        let out = sb
            .clone()
            .args(["--envelope", env.to_str().unwrap()])
            .run(&["/bin/true"]);
        assert_eq!(out.status.code(), Some(0), "{who}: {}", stderr(&out));
        assert_eq!(
            std::fs::read_to_string(c.join("canary")).unwrap(),
            "canary",
            "{who}: the envelope followed a planted symlink"
        );
        assert_eq!(entries(&c), ["canary"], "{who}");
        assert_regular_envelope(&env);
        assert_eq!(entries(&w), ["env.json"], "{who}: no temporary file left");
    });
}

#[test]
fn a_fifo_planted_at_the_envelope_path_is_replaced_without_blocking() {
    as_each_identity(|sb, who| {
        let w = workdir("plant-fifo");
        let env = w.join("env.json");
        let sb = sb.args(["--write", w.to_str().unwrap()]);
        let out = sb.clone().run(&["/usr/bin/mkfifo", env.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{who}: {}", stderr(&out));
        assert!(std::fs::symlink_metadata(&env)
            .unwrap()
            .file_type()
            .is_fifo());
        let child = spawn(
            sb.clone()
                .args(["--envelope", env.to_str().unwrap()])
                .command("run", &["/bin/true"]),
        );
        let out = wait_bounded(child, HANG_LIMIT, who);
        assert_eq!(out.status.code(), Some(0), "{who}: {}", stderr(&out));
        assert_regular_envelope(&env);
    });
}

#[test]
fn the_sandbox_swapping_the_envelope_directory_for_a_symlink_writes_nothing_outside() {
    as_each_identity(|sb, who| {
        let w = workdir("swap-env");
        let out_dir = w.join("out");
        std::fs::create_dir(&out_dir).unwrap();
        std::fs::set_permissions(&out_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let c = canary_dir();
        let env = out_dir.join("env.json");
        let swap = format!(
            "mv '{o}' '{o}.moved' && ln -s '{c}' '{o}'",
            o = out_dir.display(),
            c = c.display()
        );
        let out = sb
            .args(["--write", w.to_str().unwrap()])
            .args(["--envelope", env.to_str().unwrap()])
            .run(&["/bin/sh", "-c", &swap]);
        assert_eq!(
            entries(&c),
            ["canary"],
            "{who}: written outside the write set"
        );
        assert_eq!(std::fs::read_to_string(c.join("canary")).unwrap(), "canary");
        // The envelope's directory is no longer where the caller will look: exit 125.
        assert_eq!(out.status.code(), Some(125), "{who}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("moved or replaced during the run"),
            "{who}: {}",
            stderr(&out)
        );
    });
}

#[test]
fn a_forged_envelope_in_a_replaced_directory_is_removed() {
    as_each_identity(|sb, who| {
        let w = workdir("replace-env");
        let out_dir = w.join("out");
        std::fs::create_dir(&out_dir).unwrap();
        std::fs::set_permissions(&out_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let env = out_dir.join("env.json");
        // The sandbox moves the envelope's directory away and puts a new one, with a forged
        // envelope, where the caller will look.
        let swap = format!(
            "mv '{o}' '{o}.moved' && mkdir '{o}' && echo forged > '{e}'",
            o = out_dir.display(),
            e = env.display()
        );
        let out = sb
            .args(["--write", w.to_str().unwrap()])
            .args(["--envelope", env.to_str().unwrap()])
            .run(&["/bin/sh", "-c", &swap]);
        assert_eq!(out.status.code(), Some(125), "{who}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("removed what was at {}", env.display())),
            "{who}: {}",
            stderr(&out)
        );
        assert!(!env.exists(), "{who}: the forgery is still there");
        assert_eq!(
            entries(&out_dir.with_extension("moved")),
            Vec::<String>::new()
        );
    });
}

#[test]
fn a_concurrent_attacker_swapping_the_envelope_directory_never_gets_a_write_outside() {
    if skip_unless_root("a root run raced by an unprivileged attacker") {
        return;
    }
    let (uid, gid) = match unprivileged_user() {
        Ok(ids) => ids,
        Err(why) => {
            skip(&format!("unprivileged case: {why}"));
            return;
        }
    };
    let w = workdir("race-env");
    let out_dir = w.join("out");
    std::fs::create_dir(&out_dir).unwrap();
    std::fs::set_permissions(&out_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    // The target outside: a directory the attacker cannot write, holding a file of the
    // envelope's name that must survive.
    let c = workdir("race-canary");
    write_file(&c.join("env.json"), "canary");
    std::fs::set_permissions(&c, std::fs::Permissions::from_mode(0o755)).unwrap();
    let stop = w.join("stop");
    let mut attacker = Command::new(&fixture().violate);
    attacker
        .args([
            "swap-loop",
            out_dir.to_str().unwrap(),
            c.to_str().unwrap(),
            stop.to_str().unwrap(),
        ])
        .uid(uid)
        .gid(gid)
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    unsafe {
        attacker.pre_exec(|| {
            if libc::setgroups(0, std::ptr::null()) != 0 && libc::geteuid() == 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    /// Stops the attacker whatever happens (a failed assertion included).
    struct Attacker(Child);
    impl Drop for Attacker {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut attacker = Attacker(attacker.spawn().unwrap());
    let mut ready = String::new();
    std::io::BufReader::new(attacker.0.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert_eq!(ready.trim(), "ready");
    let env = out_dir.join("env.json");
    let mut codes = std::collections::BTreeMap::new();
    for _ in 0..40 {
        let out = Sandbox::new()
            .args(["--envelope", env.to_str().unwrap()])
            .run(&["/bin/true"]);
        *codes.entry(out.status.code()).or_insert(0) += 1;
        assert!(
            matches!(out.status.code(), Some(0) | Some(125)),
            "{:?}: {}",
            out.status.code(),
            stderr(&out)
        );
        assert_eq!(
            std::fs::read_to_string(c.join("env.json")).unwrap(),
            "canary",
            "the envelope was written outside, through the attacker's symlink"
        );
        assert_eq!(entries(&c), ["env.json"]);
    }
    write_file(&stop, "");
    let _ = attacker.0.wait();
    eprintln!("exit codes under the race: {codes:?}");
}

/// A minimal cool-workflow manifest whose policy writes nothing but `logs` in `worker`.
fn manifest(worker: &Path, cwd: &Path) -> PathBuf {
    let w = worker.display();
    let policy = serde_json::json!({
        "schemaVersion": 1, "id": "readonly", "title": "t",
        "readPaths": [cwd, worker], "writePaths": [],
        "workerOutput": {"result": false, "artifacts": false, "logs": true},
        "execute": {"mode": "any"}, "network": {"mode": "none"},
        "env": {"inherit": false, "expose": []},
        "metadata": {"logsDir": format!("{w}/logs")}
    });
    let text = serde_json::json!({
        "schemaVersion": 1, "workerId": "w", "sandboxPolicy": policy,
        "allowedPaths": [format!("{w}/logs")]
    });
    let path = worker.join("manifest.json");
    write_file(&path, &text.to_string());
    path
}

#[test]
fn fifos_handed_to_cw_exec_are_errors_not_hangs() {
    as_each_identity(|sb, who| {
        let w = workdir("fifo-in");
        let fifo = w.join("fifo");
        mkfifo(&fifo);
        let f = fifo.to_str().unwrap();
        let dotted = format!("{}/./fifo", w.display());
        let cases: Vec<(&str, Vec<&str>, Vec<&str>)> = vec![
            (
                "--manifest",
                vec!["run", "--manifest", f, "--"],
                vec!["/bin/true"],
            ),
            ("--request", vec!["exec", "--request", f], vec![]),
            (
                "--profile",
                vec!["run", "--profile", &dotted, "--"],
                vec!["/bin/true"],
            ),
            ("profile check", vec!["profile", "check", f], vec![]),
        ];
        for (what, args, cmd) in cases {
            let mut c = Command::new(&fixture().cw);
            c.args(&args)
                .args(&cmd)
                .current_dir(&w)
                .stdin(Stdio::null());
            if let Some((uid, gid)) = sb.user {
                c.uid(uid).gid(gid);
            }
            let out = wait_bounded(spawn(c), HANG_LIMIT, what);
            assert_eq!(
                out.status.code(),
                Some(125),
                "{who} {what}: {}",
                stderr(&out)
            );
            assert!(
                stderr(&out).contains("not a regular file (it is a FIFO)"),
                "{who} {what}: {}",
                stderr(&out)
            );
        }
        // The command itself a FIFO: under --manifest its head is read (to find the agent's
        // interpreter), which refuses it as not a regular file (125); without, nothing reads
        // it and execve refuses it (126). Neither blocks on it.
        let worker = workdir("fifo-worker");
        let m = manifest(&worker, &w);
        for (args, code, says) in [
            (
                vec!["run", "--manifest", m.to_str().unwrap(), "--", f],
                125,
                "not a regular file",
            ),
            (vec!["run", "--", f], 126, "Permission denied"),
        ] {
            let mut c = Command::new(&fixture().cw);
            c.args(&args).current_dir(&w).stdin(Stdio::null());
            if let Some((uid, gid)) = sb.user {
                c.uid(uid).gid(gid);
            }
            let out = wait_bounded(spawn(c), HANG_LIMIT, "a FIFO as the command");
            assert_eq!(
                out.status.code(),
                Some(code),
                "{who} {args:?}: {}",
                stderr(&out)
            );
            assert!(
                stderr(&out).contains(says),
                "{who} {args:?}: {}",
                stderr(&out)
            );
        }
    });
}

#[test]
fn descriptor_and_stream_targets_keep_working() {
    as_each_identity(|sb, who| {
        let w = workdir("fd-env");
        let file = w.join("fd3.json");
        // /dev/fd/N: the caller's descriptor, written in place (the caller truncated it).
        let cw = fixture().cw.display().to_string();
        let mut c = Command::new("/bin/sh");
        c.args([
            "-c",
            &format!(
                "exec '{cw}' run --envelope /dev/fd/3 -- /bin/echo hi 3>'{}'",
                file.display()
            ),
        ])
        .current_dir(&sb.cwd)
        .stdin(Stdio::null());
        if let Some((uid, gid)) = sb.user {
            c.uid(uid).gid(gid);
        }
        let out = c.output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{who}: {}", stderr(&out));
        assert_eq!(stdout(&out), "hi\n");
        assert_eq!(envelope(&file)["status"], "completed");
        // /dev/stderr.
        let out = sb
            .clone()
            .args(["--envelope", "/dev/stderr"])
            .run(&["/bin/true"]);
        assert_eq!(out.status.code(), Some(0), "{who}: {}", stderr(&out));
        assert!(stderr(&out).contains("\"schemaVersion\": 1"), "{who}");
        // A FIFO the caller named (outside the write set), with its reader open.
        let fifo = w.join("pipe");
        mkfifo(&fifo);
        let reader = std::thread::spawn({
            let fifo = fifo.clone();
            move || std::fs::read_to_string(fifo).unwrap()
        });
        // The reader opens the FIFO; cw-exec's non-blocking open must find it there, so
        // wait until it has (an open for writing succeeds once a reader exists).
        let writer_probe = loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&fifo)
            {
                Ok(f) => break f,
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        };
        let out = sb
            .clone()
            .args(["--envelope", fifo.to_str().unwrap()])
            .run(&["/bin/true"]);
        drop(writer_probe);
        assert_eq!(out.status.code(), Some(0), "{who}: {}", stderr(&out));
        let text = reader.join().unwrap();
        assert!(text.contains("\"status\": \"completed\""), "{who}: {text}");
        // A FIFO with no reader: a precise error at once, not a hang.
        let lonely = w.join("lonely");
        mkfifo(&lonely);
        let child = spawn(
            sb.clone()
                .args(["--envelope", lonely.to_str().unwrap()])
                .command("run", &["/bin/true"]),
        );
        let out = wait_bounded(child, HANG_LIMIT, "a FIFO with no reader");
        assert_eq!(out.status.code(), Some(125), "{who}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("no reader"),
            "{who}: {}",
            stderr(&out)
        );
    });
}
