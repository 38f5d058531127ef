//! Attacks on the fourth spawn-cost session's changes (issue 17): the run's cgroups made and
//! written through held parent directories (and handed to init in one message), cw-exec's
//! own C `main` (`sys::standard_start`: closed standard descriptors, SIGPIPE), and init
//! emptying the bounding set for the command's process. Each attempts its violation from
//! inside the sandbox or from a concurrent unprivileged process on the host, and checks what
//! the host saw.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;

/// This process's own v1 memory and pids cgroups (where a run it starts makes its own).
fn own_cgroup_parents() -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    text.lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, controllers, rel) = (parts.next()?, parts.next()?, parts.next()?);
            let c = ["memory", "pids"]
                .into_iter()
                .find(|c| controllers.split(',').any(|x| x == *c))?;
            Some(
                Path::new("/sys/fs/cgroup")
                    .join(c)
                    .join(rel.trim_start_matches('/')),
            )
        })
        .filter(|p| p.is_dir())
        .collect()
}

/// A shell command run as the unprivileged test user (no supplementary groups).
fn as_test_user(ids: (u32, u32), script: &str, args: &[PathBuf]) -> Command {
    let mut c = Command::new("/bin/sh");
    c.arg("-c").arg(script).arg("sh").args(args);
    // (std drops the supplementary groups itself when root sets a uid.)
    c.uid(ids.0).gid(ids.1).env("HOME", "/nonexistent");
    c
}

/// Everything another user may try on a run's cgroup `$d` (each argument): a child cgroup
/// made in it, its processes moved in, a limit rewritten, the cgroup renamed or removed, a
/// cgroup planted beside it. Prints a line for each that worked.
const ATTACK: &str = r#"
for d in "$@"; do
  mkdir "$d/evil" 2>/dev/null && echo "made $d/evil"
  (echo 0 > "$d/tasks") 2>/dev/null && echo "joined $d"
  (echo 0 > "$d/cgroup.procs") 2>/dev/null && echo "joined (procs) $d"
  for f in pids.max memory.limit_in_bytes memory.memsw.limit_in_bytes; do
    [ -e "$d/$f" ] && (echo 1 > "$d/$f") 2>/dev/null && echo "wrote $d/$f"
  done
  : > "$d/planted" 2>/dev/null && echo "file in $d"
  mv "$d" "$d.moved" 2>/dev/null && echo "renamed $d"
  rmdir "$d" 2>/dev/null && echo "removed $d"
  p=${d%/*}
  mkdir "$p/cw-exec-1-planted" 2>/dev/null && echo "planted beside $d"
done
"#;

/// Removes what an attack that worked left (so one failure does not fail other tests).
fn undo(dirs: &[PathBuf]) {
    for d in dirs {
        let _ = std::fs::remove_dir(d.join("evil"));
        let _ = std::fs::remove_dir(d.parent().unwrap().join("cw-exec-1-planted"));
    }
}

/// Root's run, started with a umask of 0: its cgroups are still no other user's to enter.
/// (cw-exec made them with mode 0777 less the umask: under umask 0 any user could make a
/// child cgroup in them, move its own processes there — out of the cgroups the host put it
/// in, charged to the run — and keep cw-exec from removing them: left behind.) From the
/// unprivileged user, while the run is live: mkdir, join, limit writes, rename, rmdir,
/// planting beside it; every one refused, and nothing is left once the run ends. Then the
/// same attempts looped by a concurrent process over every run's cgroups while root starts
/// runs, each of which must stay in its own cgroups.
#[test]
fn another_user_cannot_enter_or_keep_a_runs_cgroups() {
    if skip_unless_root("attacking root's run cgroups as another user") {
        return;
    }
    let ids = match unprivileged_user() {
        Ok(ids) => ids,
        Err(why) => return skip(&why),
    };
    let umask_zero = |c: &mut Command| unsafe {
        c.pre_exec(|| {
            libc::umask(0);
            Ok(())
        });
    };
    let sb = Sandbox::new().args(["--memory", "64M", "--pids", "50"]);
    let mut cmd = sb.command(
        "run",
        &["/bin/sh", "-c", "echo ready; read x; echo released"],
    );
    umask_zero(&mut cmd);
    let mut run = Reaped(
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut out = BufReader::new(run.0.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n", "the sandboxed script did not start");
    let dirs = run_cgroups_of(run.0.id());
    if dirs.is_empty() {
        drop(run);
        return skip("no cgroup was made for the run here");
    }
    for d in &dirs {
        let mode = std::fs::metadata(d).unwrap().permissions().mode();
        assert_eq!(mode & 0o022, 0, "{}: mode {mode:o}", d.display());
    }
    let attack = as_test_user(ids, ATTACK, &dirs).output().unwrap();
    undo(&dirs);
    assert_eq!(stdout(&attack), "", "{}", stderr(&attack));
    run.0.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let status = run.0.wait().unwrap();
    assert_eq!(rest, "released\n");
    assert_eq!(status.code(), Some(0));
    let left: Vec<PathBuf> = dirs.iter().filter(|d| d.exists()).cloned().collect();
    assert_eq!(left, Vec::<PathBuf>::new());

    // Looped: a concurrent process of the other user goes over every cw-exec cgroup in
    // root's parents while runs start, live and end.
    let parents = own_cgroup_parents();
    let stop = workdir("cg-race").join("stop");
    let looped = format!(
        r#"stop="$1"; shift; parents="$*"; i=0
        while [ ! -e "$stop" ] && [ $i -lt 100000 ]; do
          i=$((i+1))
          for p in $parents; do
            set -- "$p"/cw-exec-*
            [ -e "$1" ] && sh -c '{ATTACK}' sh "$@"
          done
        done"#
    );
    let mut args = vec![stop.clone()];
    args.extend(parents.iter().cloned());
    let mut attacker = Reaped(
        as_test_user(ids, &looped, &args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    for i in 0..12 {
        let mut cmd = sb.command(
            "run",
            &[
                "/bin/sh",
                "-c",
                "grep -E ':(memory|pids):' /proc/self/cgroup",
            ],
        );
        umask_zero(&mut cmd);
        let out = cmd.output().unwrap();
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(0), "run {i}: {}", stderr(&out));
        for l in text.lines() {
            assert!(
                l.split(':')
                    .nth(2)
                    .is_some_and(|c| c.starts_with("/cw-exec-")),
                "run {i}: not in the run's cgroup: {text}"
            );
        }
    }
    std::fs::write(&stop, "").unwrap();
    let seen = {
        let mut s = String::new();
        std::io::Read::read_to_string(attacker.0.stdout.as_mut().unwrap(), &mut s).unwrap();
        s
    };
    for p in &parents {
        let _ = std::fs::remove_dir(p.join("cw-exec-1-planted"));
    }
    assert_eq!(seen, "", "the other user's attempts that worked");
    assert_eq!(leftover_cgroups(), Vec::<PathBuf>::new());
}

/// Only descriptors 0, 1 and 2 reach the command, in every shape of run: default, explicit
/// memory and pids limits (the run's cgroups' `tasks` files went to init, its held parents
/// are cw-exec's), the Landlock tier, an envelope file or an envelope on stderr, and a caller
/// that leaves a descriptor of its own open (not close-on-exec) for cw-exec.
#[test]
fn no_descriptor_but_the_standard_three_reaches_the_command() {
    as_each_identity(|sb, who| {
        let env = workdir("fds-env").join("e.json");
        let mut shapes: Vec<Vec<String>> = vec![
            vec![],
            vec!["--tier".into(), "landlock".into()],
            vec!["--envelope".into(), env.to_string_lossy().into_owned()],
            vec!["--envelope".into(), "-".into()],
        ];
        if is_root() && sb.user.is_none() {
            shapes.push(vec![
                "--memory".into(),
                "64M".into(),
                "--pids".into(),
                "50".into(),
            ]);
            shapes.push(
                ["--tier", "landlock", "--memory", "64M", "--pids", "50"]
                    .map(String::from)
                    .to_vec(),
            );
        }
        for shape in &shapes {
            let out = sb.clone().args(shape).violate(&["fds"]);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{who} {shape:?}: {}",
                stderr(&out)
            );
            assert_eq!(stdout(&out), "0,1,2\n", "{who} {shape:?}");
        }
        // A descriptor the caller leaves open for cw-exec (fd 7, not close-on-exec).
        let f = fixture();
        let mut c = sb
            .clone()
            .args(["--read", f.bin.to_str().unwrap()])
            .command("run", &[f.violate.to_str().unwrap(), "fds"]);
        unsafe {
            c.pre_exec(|| {
                let fd = libc::open(c"/etc/hostname".as_ptr(), libc::O_RDONLY);
                if fd < 0 || libc::dup2(fd, 7) != 7 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let out = c.output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{who}: {}", stderr(&out));
        assert_eq!(stdout(&out), "0,1,2\n", "{who}: an inherited descriptor");
    });
}

/// The hexadecimal value of field `key` of a /proc/PID/status text.
fn status_field<'a>(status: &'a str, key: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {key} in {status}"))
        .trim()
}

/// The command holds no capability, in either tier, for root and the unprivileged user: its
/// effective, permitted, inheritable and ambient sets are empty, and its bounding set too
/// (emptied by init before it started the command's process) except for an unprivileged
/// caller in the Landlock tier, whose bounding set nothing can empty (no_new_privs keeps
/// execve from granting any). It also ignores no signal: cw-exec ignores SIGPIPE from its
/// start (`standard_start`), the command does not.
#[test]
fn the_command_holds_no_capability_in_either_tier() {
    const NONE: &str = "0000000000000000";
    as_each_identity(|sb, who| {
        for tier in ["namespaces", "landlock"] {
            // cat, not the violate helper: a Rust program ignores SIGPIPE itself.
            let out = sb
                .clone()
                .args(["--tier", tier])
                .run(&["/bin/cat", "/proc/self/status"]);
            assert_eq!(out.status.code(), Some(0), "{who} {tier}: {}", stderr(&out));
            let status = stdout(&out);
            for key in ["CapInh", "CapPrm", "CapEff", "CapAmb", "SigIgn"] {
                assert_eq!(status_field(&status, key), NONE, "{who} {tier}: {key}");
            }
            let bounding = status_field(&status, "CapBnd");
            // Unprivileged: run as the test user, or the whole suite started by one.
            if tier == "landlock" && (sb.user.is_some() || !is_root()) {
                assert_ne!(bounding, NONE, "{who} {tier}: an unprivileged bounding set");
            } else {
                assert_eq!(bounding, NONE, "{who} {tier}: CapBnd");
            }
            assert_eq!(status_field(&status, "NoNewPrivs"), "1", "{who} {tier}");
        }
    });
}

/// A caller that brings a capability of its own (ambient, so it is in its permitted and
/// effective sets at cw-exec's start, as an unprivileged user): the command either runs
/// with none at all (namespace tier) or the run is refused (Landlock tier: the bounding set
/// cannot be emptied without CAP_SETPCAP); never a capability inside.
#[test]
fn a_caller_with_an_ambient_capability_gives_the_command_none() {
    if skip_unless_root("giving the test user an ambient capability") {
        return;
    }
    let setpriv = Path::new("/usr/bin/setpriv");
    if !setpriv.exists() {
        return skip("no /usr/bin/setpriv to raise an ambient capability");
    }
    let ids = match unprivileged_user() {
        Ok(ids) => ids,
        Err(why) => return skip(&why),
    };
    let f = fixture();
    for tier in ["namespaces", "landlock"] {
        let cwd = workdir("ambient");
        let out = Command::new(setpriv)
            .args([
                &format!("--reuid={}", ids.0),
                &format!("--regid={}", ids.1),
                "--clear-groups",
                "--inh-caps=+net_bind_service",
                "--ambient-caps=+net_bind_service",
            ])
            .arg(&f.cw)
            .args([
                "run",
                "--tier",
                tier,
                "--read",
                f.bin.to_str().unwrap(),
                "--",
            ])
            .arg(&f.violate)
            .arg("status")
            .current_dir(&cwd)
            .env("HOME", "/nonexistent")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        match out.status.code() {
            Some(0) => {
                let status = stdout(&out);
                for key in ["CapInh", "CapPrm", "CapEff", "CapAmb", "CapBnd"] {
                    assert_eq!(
                        status_field(&status, key),
                        "0000000000000000",
                        "{tier}: {key}"
                    );
                }
            }
            Some(125) => assert!(
                stderr(&out).contains("bounding set") && stdout(&out).is_empty(),
                "{tier}: {}",
                stderr(&out)
            ),
            other => panic!("{tier}: exit {other:?}: {}", stderr(&out)),
        }
    }
}

/// cw-exec started with odd standard descriptors. An O_PATH descriptor (which poll reports
/// as POLLNVAL, as it does a closed one) is open: cw-exec runs, where it exited 125 without a
/// word, having taken it for closed and failed to open /dev/null at its number. Closed ones
/// are /dev/null for cw-exec and the command: with all three closed, the envelope file and
/// the command's output file are whole and the command's 0-2 are /dev/null; with stdin
/// alone closed, the command reads end of file.
#[test]
fn odd_standard_descriptors_at_start() {
    as_each_identity(|sb, who| {
        let dir = workdir("odd-stdio");
        let env = dir.join("e.json");
        // (--timeout: a regression that hangs shows as exit 124, not a test that never ends.)
        let sb = sb.args([
            "--timeout",
            "60",
            "--write",
            dir.to_str().unwrap(),
            "--envelope",
            env.to_str().unwrap(),
        ]);
        let report = dir.join("fds");
        let script = format!(
            "x=$(readlink /proc/$$/fd/0 /proc/$$/fd/1 /proc/$$/fd/2); echo \"$x\" > {r}; cat >> {r}; echo end >> {r}",
            r = report.display()
        );
        // Through the shell: `<&- >&- 2>&-` closes them for cw-exec itself.
        let through_sh = |redirect: &str, path_fd: Option<i32>| {
            let _ = std::fs::remove_file(&env);
            let _ = std::fs::remove_file(&report);
            let c = sb.command("run", &["/bin/sh", "-c", &script]);
            let mut sh = Command::new("/bin/sh");
            sh.arg("-c")
                .arg(format!(r#"exec "$0" "$@" {redirect}"#))
                .arg(c.get_program())
                .args(c.get_args())
                .current_dir(c.get_current_dir().unwrap());
            for (k, v) in c.get_envs() {
                if let Some(v) = v {
                    sh.env(k, v);
                }
            }
            if let Some((uid, gid)) = sb.user {
                sh.uid(uid).gid(gid);
            }
            let pre = move || {
                if let Some(target) = path_fd {
                    let fd = unsafe { libc::open(c"/etc/hostname".as_ptr(), libc::O_PATH) };
                    if fd < 0 || unsafe { libc::dup2(fd, target) } != target {
                        return Err(std::io::Error::last_os_error());
                    }
                    unsafe { libc::close(fd) };
                }
                Ok(())
            };
            unsafe {
                sh.pre_exec(move || {
                    if libc::geteuid() == 0 && libc::setgroups(0, std::ptr::null()) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    pre()
                });
            }
            let status = sh
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
            let text = std::fs::read_to_string(&env).unwrap_or_default();
            let e: serde_json::Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{who} {redirect}: the envelope: {e}: {text}"));
            (
                status.code(),
                e["status"].as_str().unwrap_or_default().to_string(),
                std::fs::read_to_string(&report).unwrap_or_default(),
            )
        };
        let (code, status, fds) = through_sh("<&- >&- 2>&-", None);
        assert_eq!((code, status.as_str()), (Some(0), "completed"), "{who}");
        // Stdout is cw-exec's pipe (it hashes what it passes on for the envelope), the
        // others /dev/null: none is a file cw-exec opened (the envelope).
        let lines: Vec<&str> = fds.lines().collect();
        assert!(
            lines.len() == 4
                && lines[0] == "/dev/null"
                && (lines[1] == "/dev/null" || lines[1].starts_with("pipe:"))
                && lines[2] == "/dev/null"
                && lines[3] == "end",
            "{who}: {fds}"
        );
        let (code, _, fds) = through_sh("<&-", None);
        assert_eq!(code, Some(0), "{who}");
        assert!(
            fds.starts_with("/dev/null\n") && fds.ends_with("\nend\n"),
            "{who}: {fds}"
        );
        // The caller's redirections are left as they are here; the O_PATH descriptor is
        // made in the shell's pre_exec and survives `exec`.
        for target in [0, 1, 2] {
            let (code, status, fds) = through_sh("", Some(target));
            assert_eq!(
                (code, status.as_str()),
                (Some(0), "completed"),
                "{who}: an O_PATH descriptor {target}"
            );
            assert!(fds.ends_with("end\n"), "{who}: O_PATH {target}: {fds}");
        }
    });
}
