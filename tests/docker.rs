//! The docker front end, driven the way Common Fabric's harness drives it
//! (../shared/contracts/common-fabric.md): cw-exec's `docker` first on a private PATH (a
//! docker client may exist on the machine), the exact call sequences, and each claim
//! attacked from inside. Also `--bind` and `--user` of `cw-exec run`.

mod common;

use std::io::{BufRead, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::*;

/// A harness: a private PATH whose `docker` is cw-exec, a runtime directory for the state,
/// an identity, and optionally a configuration file.
struct Harness {
    root: PathBuf,
    bin: PathBuf,
    runtime: PathBuf,
    config: Option<PathBuf>,
    user: Option<(u32, u32)>,
}

impl Harness {
    fn new(user: Option<(u32, u32)>) -> Harness {
        let root = workdir("docker");
        let bin = root.join("bin");
        std::fs::create_dir(&bin).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink(&fixture().cw, bin.join("docker")).unwrap();
        let runtime = root.join("run");
        std::fs::create_dir(&runtime).unwrap();
        std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&runtime, Some(uid), Some(gid)).unwrap();
        }
        Harness {
            root,
            bin,
            runtime,
            config: None,
            user,
        }
    }

    fn for_sandbox(sb: &Sandbox) -> Harness {
        Harness::new(sb.user)
    }

    /// A configuration file (owned by the test, mode 0644).
    fn with_config(mut self, text: &str) -> Harness {
        let path = self.root.join("docker.toml");
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        self.config = Some(path);
        self
    }

    /// A directory everyone may write (the workspace, a data directory, ...).
    fn dir(&self, name: &str) -> PathBuf {
        let d = self.root.join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
        d
    }

    /// The identity's own `UID:GID`, as the harness passes it.
    fn ids(&self) -> String {
        let (u, g) = self
            .user
            .unwrap_or_else(|| unsafe { (libc::getuid(), libc::getgid()) });
        format!("{u}:{g}")
    }

    fn docker(&self, args: &[&str]) -> Command {
        // Found on PATH, as the harness finds its `docker`.
        let mut c = Command::new("docker");
        c.args(args)
            .env_clear()
            .env(
                "PATH",
                format!("{}:/usr/local/bin:/usr/bin:/bin", self.bin.display()),
            )
            .env("XDG_RUNTIME_DIR", &self.runtime)
            .env("LANG", "C.UTF-8")
            .current_dir(&self.root)
            .stdin(Stdio::null());
        match self.user {
            Some((uid, gid)) => {
                c.env("HOME", "/nonexistent").uid(uid).gid(gid);
                unsafe {
                    c.pre_exec(|| {
                        if libc::setgroups(0, std::ptr::null()) != 0 && libc::geteuid() == 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                        Ok(())
                    });
                }
            }
            None => {
                c.env("HOME", "/root");
            }
        }
        if let Some(cfg) = &self.config {
            c.env("CW_EXEC_DOCKER_CONFIG", cfg);
        }
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.docker(args).output().expect("running docker")
    }

    /// `create` as the harness spells it: runtime, network, the caller's own --user, the
    /// workspace first, then `extra` (more mounts, env), `-w`, the image and the command.
    fn create_line(&self, ws: &Path, extra: &[String], cmd: &[&str]) -> Vec<String> {
        let mut a: Vec<String> = [
            "create",
            "--runtime",
            "cw-exec",
            "--network",
            "none",
            "--user",
            &self.ids(),
            "--mount",
            &format!("type=bind,src={},dst=/workspace", ws.display()),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(extra.iter().cloned());
        a.extend(["-w", "/workspace", "cw-exec:host"].map(String::from));
        a.extend(cmd.iter().map(|s| s.to_string()));
        a
    }

    /// Runs `create`; panics unless it printed an id.
    fn create(&self, ws: &Path, extra: &[String], cmd: &[&str]) -> String {
        let line = self.create_line(ws, extra, cmd);
        let args: Vec<&str> = line.iter().map(String::as_str).collect();
        let out = self.run(&args);
        assert!(
            out.status.success(),
            "create {line:?}: {:?}\n{}",
            out.status.code(),
            stderr(&out)
        );
        let id = stdout(&out)
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string();
        assert_eq!(id.len(), 64, "create printed {:?}", stdout(&out));
        id
    }

    /// The containers in the state directory.
    fn entries(&self) -> Vec<String> {
        let dir = self.runtime.join("cw-exec/docker");
        match std::fs::read_dir(&dir) {
            Ok(d) => d
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => vec![],
        }
    }

    /// `wait ID`'s first word, as the harness reads it.
    fn wait(&self, id: &str) -> Option<i32> {
        let out = self.run(&["wait", id]);
        stdout(&out)
            .split_whitespace()
            .next()
            .and_then(|w| w.parse().ok())
    }
}

/// The harness's `runShell` argv.
fn shell(command: &str) -> Vec<&str> {
    vec!["/bin/sh", "-lc", command, "/bin/sh"]
}

#[test]
fn the_harness_sequence_runs_the_command_at_its_sandbox_paths() {
    as_each_identity(|sb, who| {
        let h = Harness::for_sandbox(&sb);
        let ws = h.dir("my workspace");
        let data = h.dir("data");
        write_file(&data.join("in"), "from data\n");
        let extra = vec![
            "--mount".to_string(),
            format!("type=bind,src={},dst=/opt/data,readonly", data.display()),
            "--env".into(),
            "A=one two".into(),
            "--env".into(),
            "B=$cwd".into(),
        ];
        let id = h.create(
            &ws,
            &extra,
            &shell("echo \"$A|$B\"; cat /opt/data/in; echo written > out; pwd"),
        );
        // Only the record exists until start.
        assert_eq!(h.entries(), std::slice::from_ref(&id), "{who}");
        let out = h.run(&["start", "--attach", &id]);
        assert_eq!(
            stdout(&out),
            "one two|$cwd\nfrom data\n/workspace\n",
            "{who}: {}",
            stderr(&out)
        );
        assert_eq!(out.status.code(), Some(0), "{who}");
        assert_eq!(h.wait(&id), Some(0), "{who}");
        assert_eq!(
            std::fs::read_to_string(ws.join("out")).unwrap(),
            "written\n",
            "{who}"
        );
        // The attestation is kept with the state: binds listed with both paths.
        let inspect: serde_json::Value =
            serde_json::from_slice(&h.run(&["inspect", &id]).stdout).unwrap();
        let att = &inspect[0]["CwExec"]["envelope"]["provenance"]["attestation"];
        assert_eq!(att["status"], "enforced", "{who}: {att}");
        let binds = att["kernel"]["binds"].as_array().unwrap();
        assert_eq!(binds.len(), 2, "{who}");
        assert_eq!(binds[0]["sandbox"], "/workspace");
        assert_eq!(binds[0]["host"], ws.to_str().unwrap());
        assert_eq!(binds[0]["access"], "read+write+exec");
        assert_eq!(binds[1]["sandbox"], "/opt/data");
        assert_eq!(binds[1]["access"], "read+exec");
        assert_eq!(inspect[0]["State"]["ExitCode"], 0);
        for _ in 0..2 {
            let rm = h.run(&["rm", "-f", &id]);
            assert_eq!(rm.status.code(), Some(0), "{who}: {}", stderr(&rm));
        }
        assert!(h.entries().is_empty(), "{who}: {:?}", h.entries());
    });
}

#[test]
fn cw_exec_docker_is_the_same_front_end_and_info_names_its_runtime() {
    let h = Harness::new(None);
    let out = h.run(&["info", "--format", "{{json .Runtimes}}"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let table: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // cw-exec's own name, never runsc-cfc; the binary is the fixture's cw-exec, found as
    // `docker` on the private PATH.
    assert_eq!(
        table["cw-exec"]["path"],
        fixture().cw.to_str().unwrap(),
        "{table}"
    );
    assert_eq!(table["cw-exec"]["runtimeArgs"], serde_json::json!([]));
    assert!(table.get("runsc-cfc").is_none());
    let direct = Command::new(&fixture().cw)
        .args(["docker", "info", "--format", "{{json .Runtimes}}"])
        .env("XDG_RUNTIME_DIR", &h.runtime)
        .output()
        .unwrap();
    assert_eq!(direct.stdout, out.stdout);
    // Anything else is refused with a message.
    for args in [
        &["info"][..],
        &["run", "cw-exec:host", "true"],
        &["pull", "cw-exec:host"],
        &["start", "0"],
        &["exec", "x", "true"],
    ] {
        let out = h.run(args);
        assert_eq!(out.status.code(), Some(125), "{args:?}");
        assert!(
            stderr(&out).contains("cw-exec docker:"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn create_refusals_come_first_and_leave_no_state() {
    let h = Harness::new(None);
    let ws = h.dir("ws");
    let other = h.dir("other");
    let mounts = |dsts: &[&str]| -> Vec<String> {
        dsts.iter()
            .flat_map(|d| {
                [
                    "--mount".to_string(),
                    format!("type=bind,src={},dst={d},readonly", other.display()),
                ]
            })
            .collect()
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            {
                let mut l = h.create_line(&ws, &[], &["true"]);
                l[4] = "bridge".into();
                l
            },
            "CF_HARNESS_DOCKER_NETWORK_MODE=none",
        ),
        (
            {
                let mut l = h.create_line(&ws, &[], &["true"]);
                l[2] = "runsc-cfc".into();
                l
            },
            "this front end's runtime is cw-exec",
        ),
        (
            {
                let mut l = h.create_line(&ws, &[], &["true"]);
                let n = l.len();
                l[n - 2] = "ubuntu:24.04".into();
                l
            },
            "pulls no images",
        ),
        (
            h.create_line(&ws, &mounts(&["/workspace/sub"]), &["true"]),
            "overlaps",
        ),
        (
            h.create_line(&ws, &mounts(&["/proc/x"]), &["true"]),
            "shadow /proc",
        ),
        (
            h.create_line(&ws, &mounts(&["/tmp"]), &["true"]),
            "shadow /tmp",
        ),
        (
            h.create_line(&ws, &mounts(&["/usr/share/x"]), &["true"]),
            "overlaps /usr",
        ),
        (
            h.create_line(&ws, &["--privileged".to_string()], &["true"]),
            "unknown flag --privileged",
        ),
        (
            h.create_line(&ws, &["-t".to_string()], &["true"]),
            "no terminal",
        ),
        (
            h.create_line(
                &ws,
                &[
                    "--mount".into(),
                    format!("type=bind,src={}/missing,dst=/m", ws.display()),
                ],
                &["true"],
            ),
            "No such file",
        ),
        (
            h.create_line(
                &ws,
                &[
                    "--mount".into(),
                    format!("type=bind,src={},dst=/state", h.runtime.display()),
                ],
                &["true"],
            ),
            "the docker front end's state",
        ),
    ];
    for (line, why) in cases {
        let args: Vec<&str> = line.iter().map(String::as_str).collect();
        let out = h.run(&args);
        assert_eq!(out.status.code(), Some(125), "{line:?}: {}", stderr(&out));
        assert!(stdout(&out).is_empty(), "{line:?}");
        assert!(stderr(&out).contains(why), "{line:?}: {}", stderr(&out));
        assert!(h.entries().is_empty(), "{line:?} left {:?}", h.entries());
    }
    // A command that is not there: refused at create, as docker's 127.
    let line = h.create_line(&ws, &[], &["no-such-command-cwx"]);
    let args: Vec<&str> = line.iter().map(String::as_str).collect();
    let out = h.run(&args);
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    assert!(h.entries().is_empty());
}

#[test]
fn exit_statuses_reach_wait() {
    let h = Harness::new(None);
    let ws = h.dir("ws");
    for (command, code) in [
        ("exit 3", 3),
        ("no-such-command-cwx", 127),
        ("kill -9 $$", 137),
        ("true", 0),
    ] {
        let id = h.create(&ws, &[], &shell(command));
        let start = h.run(&["start", "--attach", &id]);
        assert_eq!(
            start.status.code(),
            Some(code),
            "{command}: {}",
            stderr(&start)
        );
        assert_eq!(h.wait(&id), Some(code), "{command}");
        assert_eq!(h.run(&["rm", "-f", &id]).status.code(), Some(0));
    }
}

#[test]
fn stdin_reaches_the_command_only_with_i_and_interactive() {
    let h = Harness::new(None);
    let ws = h.dir("ws");
    let feed = |id: &str, interactive: bool| -> Output {
        let mut args = vec!["start", "--attach"];
        if interactive {
            args.push("--interactive");
        }
        args.push(id);
        let mut child = h
            .docker(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"hello stdin\n")
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let with_i = h.create(&ws, &["-i".to_string()], &shell("cat; echo end"));
    let out = feed(&with_i, true);
    assert_eq!(stdout(&out), "hello stdin\nend\n", "{}", stderr(&out));
    let without = h.create(&ws, &[], &shell("cat; echo end"));
    let out = feed(&without, false);
    assert_eq!(stdout(&out), "end\n", "{}", stderr(&out));
    // Empty stdin text still makes -i: the command sees end of file at once.
    let empty = h.create(&ws, &["-i".to_string()], &shell("cat; echo end"));
    let out = h
        .docker(&["start", "--attach", "--interactive", &empty])
        .stdin(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "end\n");
}

/// Starts `start --attach` in the background and waits for the first line of its output.
fn start_until_ready(
    h: &Harness,
    id: &str,
) -> (Child, std::io::BufReader<std::process::ChildStdout>) {
    let mut child = h
        .docker(&["start", "--attach", id])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    (child, reader)
}

#[test]
fn the_harness_timeout_kills_the_whole_sandbox_at_once() {
    as_each_identity(|sb, who| {
        let h = Harness::for_sandbox(&sb);
        let ws = h.dir("ws");
        let wire = Tripwire::new(&ws);
        // Everything holds the tripwire; the shell and its background child ignore SIGTERM.
        let id = h.create(
            &ws,
            &[],
            &shell(
                "exec 3>/workspace/tripwire; trap '' TERM; (sleep 1000; echo late >&3) & echo ready; sleep 1000; echo late >&3",
            ),
        );
        let (mut child, mut rest) = start_until_ready(&h, &id);
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let status = child.wait().unwrap();
        assert_ne!(
            status.code(),
            Some(0),
            "{who}: a killed run must not count as completed"
        );
        let mut tail = String::new();
        rest.read_to_string(&mut tail).unwrap();
        assert_eq!(tail, "", "{who}");
        assert_eq!(
            wire.wait_closed(Duration::from_secs(60)),
            Ok(String::new()),
            "{who}: a process of the sandbox survived the timeout"
        );
        // The status was recorded before start exited: SIGKILLed, by cw-exec, on SIGTERM.
        assert_eq!(h.wait(&id), Some(137), "{who}");
        let inspect: serde_json::Value =
            serde_json::from_slice(&h.run(&["inspect", &id]).stdout).unwrap();
        assert_eq!(inspect[0]["CwExec"]["status"]["terminated"], true, "{who}");
        assert_eq!(status.code(), Some(137), "{who}");
        assert_eq!(h.run(&["rm", "-f", &id]).status.code(), Some(0));
        assert!(h.entries().is_empty(), "{who}");
    });
}

#[test]
fn rm_f_copes_with_never_started_unrecorded_running_and_gone() {
    let h = Harness::new(None);
    let ws = h.dir("ws");
    // Never started.
    let id = h.create(&ws, &[], &shell("true"));
    let rm = h.run(&["rm", "-f", &id]);
    assert_eq!(
        (rm.status.code(), stdout(&rm).trim()),
        (Some(0), id.as_str())
    );
    // Gone already, never existed, not even an id: nothing to do, exit 0.
    for gone in [id.as_str(), &"ab".repeat(32), "not-an-id"] {
        let rm = h.run(&["rm", "-f", gone]);
        assert_eq!(rm.status.code(), Some(0), "{gone}: {}", stderr(&rm));
    }
    // A start killed outright (SIGKILL: no status recorded); its sandbox dies with it.
    let wire = Tripwire::new(&ws);
    let id = h.create(
        &ws,
        &[],
        &shell("exec 3>/workspace/tripwire; echo ready; sleep 1000"),
    );
    let (mut child, _rest) = start_until_ready(&h, &id);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(wire.wait_closed(Duration::from_secs(60)), Ok(String::new()));
    let w = h.run(&["wait", &id]);
    assert_ne!(w.status.code(), Some(0));
    assert!(
        stderr(&w).contains("without recording a status"),
        "{}",
        stderr(&w)
    );
    assert_eq!(h.run(&["rm", "-f", &id]).status.code(), Some(0));
    // Still running: rm -f ends it (and what it started).
    let wire = Tripwire::new(&h.dir("ws2"));
    let ws2 = h.root.join("ws2");
    let id = h.create(
        &ws2,
        &[],
        &shell("exec 3>/workspace/tripwire; echo ready; sleep 1000"),
    );
    let (mut child, _rest) = start_until_ready(&h, &id);
    let rm = h.run(&["rm", "-f", &id]);
    assert_eq!(rm.status.code(), Some(0), "{}", stderr(&rm));
    assert!(!child.wait().unwrap().success());
    assert_eq!(wire.wait_closed(Duration::from_secs(60)), Ok(String::new()));
    assert!(h.entries().is_empty(), "{:?}", h.entries());
}

#[test]
fn binds_are_enforced_from_inside() {
    as_each_identity(|sb, who| {
        let h = Harness::for_sandbox(&sb);
        let ws = h.dir("ws");
        let data = h.dir("data");
        write_file(&data.join("f"), "data\n");
        let violate = "/cwx/violate";
        let extra = vec![
            "--mount".to_string(),
            format!("type=bind,src={},dst=/opt/rodata,readonly", data.display()),
            "--mount".to_string(),
            format!(
                "type=bind,src={},dst=/cwx,readonly",
                fixture().bin.display()
            ),
        ];
        let script = format!(
            "for a in 'write /opt/rodata/new' 'write /opt/rodata/f' 'unlink /opt/rodata/f' 'chmod /opt/rodata/f' 'read /opt/rodata/f' 'write /workspace/new' 'read {data}/f' 'list {root}'; do eval {violate} $a; done",
            data = data.display(),
            root = h.root.display()
        );
        let id = h.create(&ws, &extra, &shell(&script));
        let out = h.run(&["start", "--attach", &id]);
        let text = stdout(&out);
        let got: Vec<&str> = text.lines().collect();
        assert_eq!(
            got,
            [
                "EROFS", "EROFS", "EROFS", "EROFS", // the read-only bind
                "ok",    // readable at its sandbox path: the rule from the host object holds there
                "ok",    // the read-write bind
                "ENOENT", "ENOENT", // the host paths themselves are not in the view
            ],
            "{who}: {}",
            stderr(&out)
        );
        // The host saw the one allowed write and nothing else.
        assert_eq!(std::fs::read_to_string(data.join("f")).unwrap(), "data\n");
        assert!(!data.join("new").exists(), "{who}");
        assert_eq!(
            std::fs::metadata(data.join("f"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o666
        );
        assert!(ws.join("new").exists(), "{who}");
        h.run(&["rm", "-f", &id]);
    });
}

#[test]
fn run_bind_puts_a_host_directory_at_a_sandbox_path() {
    as_each_identity(|sb, who| {
        let d = workdir("bind");
        let ro = workdir("bind-ro");
        write_file(&ro.join("f"), "ro\n");
        let bind = |spec: String| ["--bind".to_string(), spec];
        let sb = sb
            .args(bind(format!("{}:/work", d.display())))
            .args(bind(format!("{}:/srv/in:ro", ro.display())))
            .args(["--cwd", "/work"]);
        let out = sb.run(&[
            "/bin/sh",
            "-c",
            "pwd; cat /srv/in/f; echo w > out; echo x > /srv/in/g",
        ]);
        assert_eq!(stdout(&out), "/work\nro\n", "{who}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("Read-only file system"),
            "{who}: {}",
            stderr(&out)
        );
        assert_eq!(std::fs::read_to_string(d.join("out")).unwrap(), "w\n");
        assert!(!ro.join("g").exists());
        // With the violate helper: the errno, from inside.
        assert_eq!(sb.attempt(&["write", "/srv/in/f"]), "EROFS", "{who}");
        assert_eq!(sb.attempt(&["write", "/work/v"]), "ok", "{who}");
        assert_eq!(std::fs::read_to_string(ro.join("f")).unwrap(), "ro\n");
        // The same from a profile's `bind` key.
        let profile = workdir("bind-profile").join("p.toml");
        write_file(
            &profile,
            &format!(
                "write = [\"$tmp\"]\nbind = [\"{}:/work\", \"{}:/srv/in:ro\"]\n",
                d.display(),
                ro.display()
            ),
        );
        let out = Sandbox {
            user: sb.user,
            ..Sandbox::new()
        }
        .args(["--profile", profile.to_str().unwrap(), "--cwd", "/work"])
        .run(&["/bin/sh", "-c", "pwd; cat /srv/in/f"]);
        assert_eq!(stdout(&out), "/work\nro\n", "{who}: {}", stderr(&out));
    });
}

#[test]
fn bind_destinations_may_not_overlap_or_shadow() {
    let d = workdir("bind-refusals");
    let e = workdir("bind-refusals-2");
    let p = |x: &Path| x.display().to_string();
    for (binds, why) in [
        (
            vec![format!("{}:/a", p(&d)), format!("{}:/a/b", p(&e))],
            "overlaps that of",
        ),
        (vec![format!("{}:/proc", p(&d))], "shadow /proc"),
        (vec![format!("{}:/dev/x", p(&d))], "shadow /dev"),
        (vec![format!("{}:/tmp/x", p(&d))], "shadow /tmp"),
        (vec![format!("{}:/usr/lib/x", p(&d))], "overlaps /usr"),
        (vec![format!("{}:/etc", p(&d))], "overlaps /etc/"),
        (vec![format!("{}:/lib/x", p(&d))], "overlaps /lib"),
        (vec![format!("{}:/.cw-exec-canary", p(&d))], "cw-exec's own"),
        (vec!["/:/host".to_string()], "the host's root"),
        (vec![format!("{}:{}", p(&e), p(&d))], "overlaps"),
        (vec![format!("{}:relative", p(&d))], "absolute"),
    ] {
        let mut sb = Sandbox::new().cwd(&d);
        for b in &binds {
            sb = sb.args(["--bind", b]);
        }
        let out = sb.run(&["/bin/true"]);
        assert_eq!(out.status.code(), Some(125), "{binds:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(why), "{binds:?}: {}", stderr(&out));
    }
}

#[test]
fn user_is_the_callers_own_or_any_as_root() {
    as_each_identity(|sb, who| {
        let (uid, gid) = sb
            .user
            .unwrap_or_else(|| unsafe { (libc::getuid(), libc::getgid()) });
        let own = sb.clone().args(["--user", &format!("{uid}:{gid}")]);
        let out = own.run(&["/bin/sh", "-c", "id -u; id -g"]);
        assert_eq!(
            stdout(&out),
            format!("{uid}\n{gid}\n"),
            "{who}: {}",
            stderr(&out)
        );
        let other = (54321u32, 54322u32);
        let d = workdir("user");
        let sb2 = sb
            .clone()
            .args(["--user", &format!("{}:{}", other.0, other.1)])
            .args(["--bind", &format!("{}:/out", d.display()), "--cwd", "/out"]);
        let out = sb2.run(&[
            "/bin/sh",
            "-c",
            "id -u; id -g; id -G; echo x > f; touch $HOME/h && echo home",
        ]);
        if uid == 0 {
            assert_eq!(
                stdout(&out),
                format!("{}\n{}\n{}\nhome\n", other.0, other.1, other.1),
                "{who}: {}",
                stderr(&out)
            );
            use std::os::unix::fs::MetadataExt;
            let meta = std::fs::metadata(d.join("f")).unwrap();
            assert_eq!((meta.uid(), meta.gid()), other, "{who}");
            // No capability with the new identity: a root-owned file stays root's.
            write_file(&d.join("root-owned"), "r\n");
            assert_eq!(sb2.attempt(&["chown", "/out/root-owned"]), "EPERM", "{who}");
            assert_eq!(
                std::fs::metadata(d.join("root-owned")).unwrap().uid(),
                0,
                "{who}"
            );
        } else {
            assert_eq!(out.status.code(), Some(125), "{who}");
            assert!(
                stderr(&out).contains("not as root")
                    && stderr(&out).contains(&format!("--user {uid}:{gid}")),
                "{who}: {}",
                stderr(&out)
            );
            assert!(!d.join("f").exists());
            // The docker front end refuses it at create, leaving nothing.
            let h = Harness::for_sandbox(&sb);
            let ws = h.dir("ws");
            let mut line = h.create_line(&ws, &[], &["true"]);
            line[6] = format!("{}:{}", other.0, other.1);
            let args: Vec<&str> = line.iter().map(String::as_str).collect();
            let out = h.run(&args);
            assert_eq!(out.status.code(), Some(125), "{who}");
            assert!(stderr(&out).contains("not as root"), "{}", stderr(&out));
            assert!(h.entries().is_empty());
        }
    });
}

#[test]
fn the_state_directory_is_private_and_checked() {
    let h = Harness::new(None);
    let ws = h.dir("ws");
    let id = h.create(&ws, &[], &shell("true"));
    let state = h.runtime.join("cw-exec/docker");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join(&id)), 0o700);
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = h.run(&["start", "--attach", &id]);
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("not trusted"), "{}", stderr(&out));
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    // A start is re-planned: a bind swapped since create is refused.
    let moved = h.root.join("ws-moved");
    std::fs::rename(&ws, &moved).unwrap();
    std::fs::create_dir(&ws).unwrap();
    let out = h.run(&["start", "--attach", &id]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("changed since create"),
        "{}",
        stderr(&out)
    );
    assert_eq!(h.wait(&id), Some(125));
    h.run(&["rm", "-f", &id]);
}

/// The CFC set-up of a test: context and result directories, a label store, a policy.
struct CfcSetup {
    ctx: PathBuf,
    results: PathBuf,
    store: PathBuf,
}

fn cfc_harness(policy: &str) -> (Harness, CfcSetup) {
    let h = Harness::new(None);
    let ctx = h.dir("cfc-ctx");
    let results = h.dir("cfc-results");
    let store = h.root.join("labels.json");
    let policy_path = h.root.join("label-policy.toml");
    std::fs::write(&policy_path, policy).unwrap();
    let h = h.with_config(&format!(
        "[cfc]\ncontext_dir = \"{}\"\nresult_dir = \"{}\"\nlabel_store = \"{}\"\nlabel_policy = \"{}\"\n",
        ctx.display(),
        results.display(),
        store.display(),
        policy_path.display()
    ));
    (
        h,
        CfcSetup {
            ctx,
            results,
            store,
        },
    )
}

fn context(labels: serde_json::Value) -> String {
    serde_json::json!({
        "type": "cf-harness.cfc-invocation-context", "version": 1, "sequence": 1,
        "runId": "r", "createdAt": "2026-01-01T00:00:00Z", "toolId": "shell",
        "operation": "run", "cfcEnforcementMode": "enforce-strict", "cwd": "/workspace",
        "runManifest": {}, "inputs": {},
        "cfcInputLabels": {"version": 1, "entries": labels},
    })
    .to_string()
}

/// create, the context, start, wait, the result, rm -f: the harness's enforcing sequence.
fn cfc_run(
    h: &Harness,
    c: &CfcSetup,
    ws: &Path,
    labels: serde_json::Value,
    cmd: &str,
) -> serde_json::Value {
    let info = h.run(&["info", "--format", "{{json .Runtimes}}"]);
    let table: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    let args = table["cw-exec"]["runtimeArgs"].as_array().unwrap().clone();
    assert_eq!(
        args,
        [
            serde_json::json!(format!("--cfc-invocation-context-dir={}", c.ctx.display())),
            serde_json::json!(format!("--cfc-result-dir={}", c.results.display())),
        ]
    );
    let id = h.create(ws, &[], &shell(cmd));
    std::fs::write(c.ctx.join(format!("{id}.json")), context(labels)).unwrap();
    let out = h.run(&["start", "--attach", &id]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(h.wait(&id), Some(0));
    let result: serde_json::Value =
        serde_json::from_slice(&std::fs::read(c.results.join(format!("{id}.json"))).unwrap())
            .unwrap();
    assert_eq!(result["version"], 1);
    assert_eq!(result["containerId"], id);
    h.run(&["rm", "-f", &id]);
    result
}

fn observed(result: &serde_json::Value) -> bool {
    let x = &result["cfcTaint"]["xattrJSON"];
    let empty = |v: &serde_json::Value| v.is_null() || v.as_array().is_some_and(|a| a.is_empty());
    empty(&x["confidentiality"])
        && empty(&x["integrity"])
        && !result["cfcTaint"]["string"]
            .as_str()
            .unwrap_or("")
            .trim()
            .is_empty()
}

#[test]
fn cfc_results_are_public_only_when_nothing_is_labelled() {
    let (h, c) = cfc_harness("");
    let ws = h.dir("ws");
    // Nothing labelled: public.
    let r = cfc_run(&h, &c, &ws, serde_json::json!([]), "echo hi");
    assert!(observed(&r), "{r}");
    assert_eq!(r["cfcTaint"]["string"], "{conf: ⊤, integ: ∅}");
    // An input label: opaque, and the workspace it wrote to keeps it.
    let label = serde_json::json!({"confidentiality": ["secret:alice"], "integrity": []});
    let r = cfc_run(
        &h,
        &c,
        &ws,
        serde_json::json!([{"path": ["stdin"], "label": label}]),
        "echo secret > leaked",
    );
    assert!(!observed(&r), "{r}");
    assert_eq!(
        r["cfcTaint"]["xattrJSON"]["confidentiality"],
        serde_json::json!(["secret:alice"])
    );
    // A later run with no input labels reads that workspace: labelled by the store.
    let r = cfc_run(&h, &c, &ws, serde_json::json!([]), "cat leaked");
    assert!(!observed(&r), "{r}");
    assert_eq!(
        r["cfcTaint"]["xattrJSON"]["confidentiality"],
        serde_json::json!(["secret:alice"])
    );
    let store: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&c.store).unwrap()).unwrap();
    assert_eq!(
        store["labels"][ws.to_str().unwrap()],
        serde_json::json!(["secret:alice"])
    );
    // Another workspace is untouched by that label.
    let r = cfc_run(&h, &c, &h.dir("ws-other"), serde_json::json!([]), "true");
    assert!(observed(&r), "{r}");
}

#[test]
fn cfc_unknowns_and_integrity_claims_are_never_public() {
    let (h, c) = cfc_harness("unlabelled = \"unknown\"\n");
    let ws = h.dir("ws");
    // An unlabelled workspace under `unlabelled = "unknown"`: opaque, with the unknown atom.
    let r = cfc_run(&h, &c, &ws, serde_json::json!([]), "true");
    assert!(!observed(&r), "{r}");
    assert!(r["cfcTaint"]["string"]
        .as_str()
        .unwrap()
        .contains("cw-exec:unknown:"));
    // An input label claiming integrity: start refuses.
    let id = h.create(&ws, &[], &shell("echo never"));
    let label = serde_json::json!({"confidentiality": [], "integrity": ["reviewed"]});
    std::fs::write(
        c.ctx.join(format!("{id}.json")),
        context(serde_json::json!([{"path": ["x"], "label": label}])),
    )
    .unwrap();
    let out = h.run(&["start", "--attach", &id]);
    assert_eq!(out.status.code(), Some(125));
    assert!(stdout(&out).is_empty());
    assert!(
        stderr(&out).contains("claims integrity"),
        "{}",
        stderr(&out)
    );
    assert!(!c.results.join(format!("{id}.json")).exists());
    h.run(&["rm", "-f", &id]);
    // The host network: unknown provenance.
    let mut line = h.create_line(&ws, &[], &["true"]);
    line[4] = "host".into();
    let args: Vec<&str> = line.iter().map(String::as_str).collect();
    let id = stdout(&h.run(&args)).trim().to_string();
    std::fs::write(
        c.ctx.join(format!("{id}.json")),
        context(serde_json::json!([])),
    )
    .unwrap();
    assert_eq!(h.run(&["start", "--attach", &id]).status.code(), Some(0));
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(c.results.join(format!("{id}.json"))).unwrap())
            .unwrap();
    assert!(!observed(&r), "{r}");
    h.run(&["rm", "-f", &id]);
    // A mount exposing the context or result directory is refused at create.
    for dir in [&c.ctx, &c.results] {
        let line = h.create_line(
            &ws,
            &[
                "--mount".into(),
                format!("type=bind,src={},dst=/x,readonly", dir.display()),
            ],
            &["true"],
        );
        let args: Vec<&str> = line.iter().map(String::as_str).collect();
        let out = h.run(&args);
        assert_eq!(out.status.code(), Some(125), "{}", dir.display());
        assert!(stderr(&out).contains("CFC"), "{}", stderr(&out));
    }
}

#[test]
fn the_cfc_result_is_written_when_the_harness_times_out() {
    let (h, c) = cfc_harness("");
    let ws = h.dir("ws");
    let id = h.create(&ws, &[], &shell("trap '' TERM; echo ready; sleep 1000"));
    std::fs::write(
        c.ctx.join(format!("{id}.json")),
        context(serde_json::json!([])),
    )
    .unwrap();
    let (mut child, _rest) = start_until_ready(&h, &id);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(!child.wait().unwrap().success());
    // Before start exited (so before wait can return): the result, with the wait status.
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(c.results.join(format!("{id}.json"))).unwrap())
            .unwrap();
    assert_eq!(r["containerId"], id);
    assert_eq!(r["waitStatus"], 137);
    assert!(observed(&r), "{r}");
    assert_eq!(h.wait(&id), Some(137));
    h.run(&["rm", "-f", &id]);
}

#[test]
fn enforcing_cfc_without_registration_is_refused_by_the_harness_rule() {
    // Not configured to honour CFC: info registers no directories, so the harness refuses an
    // enforcing run (125) before create, as the contract says; cw-exec never writes a result.
    let h = Harness::new(None);
    let table: serde_json::Value =
        serde_json::from_slice(&h.run(&["info", "--format", "{{json .Runtimes}}"]).stdout).unwrap();
    let args = table["cw-exec"]["runtimeArgs"].as_array().unwrap();
    let registered = |flag: &str| {
        args.iter()
            .filter_map(|a| a.as_str())
            .filter_map(|a| a.strip_prefix(&format!("{flag}=")))
            .next_back()
            .map(str::to_string)
    };
    assert_eq!(registered("--cfc-invocation-context-dir"), None);
    assert_eq!(registered("--cfc-result-dir"), None);
    // A configuration naming a directory the harness would refuse is refused here first.
    let bad = Harness::new(None)
        .with_config("[cfc]\ncontext_dir = \"/run/cf ctx\"\nresult_dir = \"/run/cf\"\n");
    let out = bad.run(&["info", "--format", "{{json .Runtimes}}"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("context_dir"), "{}", stderr(&out));
}

#[test]
fn the_envelope_is_signed_and_exported() {
    if skip_unless_root("the root signing key") {
        return;
    }
    let h = Harness::new(None);
    let export = h.dir("export");
    let h = h.with_config(&format!("export_dir = \"{}\"\n", export.display()));
    let ws = h.dir("ws");
    let id = h.create(&ws, &[], &shell("echo hi"));
    assert_eq!(h.run(&["start", "--attach", &id]).status.code(), Some(0));
    h.run(&["rm", "-f", &id]);
    let file = export.join(format!("{id}.json"));
    let out = cw(&["verify", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let env = envelope(&file);
    assert!(env["evidence"][0]
        .as_str()
        .unwrap()
        .starts_with("command:/bin/sh -lc echo hi"));
}
