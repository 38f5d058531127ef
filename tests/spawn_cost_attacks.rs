//! Attacks on the changes made for spawn cost (issue 17): cw-exec's own seccomp compiler,
//! init's and the command's steps with fewer system calls (signals reset only where ignored,
//! the run's tmpfs noexec from the start), and the network namespace made on a thread.
//! Each attempts its violation from inside the sandbox (or, where the point is what crosses
//! into it, looks from the host at what the sandbox's processes hold).

mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};

/// Waits for `child`, killing it if it has not ended long after any run of this size could
/// (a hang guard, not a timing assertion): true if it ended by itself.
fn ended_by_itself(child: &mut Child) -> bool {
    for _ in 0..1200 {
        if child.try_wait().unwrap().is_some() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

/// A caller that leaves SIGCHLD ignored (execve keeps an ignored disposition): the kernel
/// then reaps a child itself and sends no SIGCHLD, so cw-exec never saw init end and init
/// never saw the command end — the run hung after the command had exited.
#[test]
fn a_caller_ignoring_sigchld_does_not_hang_the_run() {
    as_each_identity(|sb, who| {
        let mut cmd = sb.command("run", &["true"]);
        // SAFETY (test): signal() only, between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::signal(libc::SIGCHLD, libc::SIG_IGN);
                Ok(())
            });
        }
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        assert!(
            ended_by_itself(&mut child),
            "{who}: cw-exec hung after its command exited (SIGCHLD ignored by the caller)"
        );
        let status = child.wait().unwrap();
        assert!(status.success(), "{who}: {status:?}");
    });
}

/// Signals the caller ignores or blocks, real-time ones included, do not reach the command
/// (ignored dispositions and the mask survive execve; the command's reset covered only
/// signals 1..=31, so SIGRTMIN+n left ignored by the caller stayed ignored inside).
#[test]
fn signals_the_caller_ignores_or_blocks_do_not_reach_the_command() {
    as_each_identity(|sb, who| {
        let mut cmd = sb.command("run", &["cat", "/proc/self/status"]);
        // SAFETY (test): signal() and sigprocmask() only, between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                for sig in [
                    libc::SIGHUP,
                    libc::SIGINT,
                    libc::SIGQUIT,
                    libc::SIGPIPE,
                    libc::SIGTERM,
                    libc::SIGUSR1,
                    libc::SIGTTOU,
                    34,
                    40,
                    64,
                ] {
                    libc::signal(sig, libc::SIG_IGN);
                }
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, libc::SIGUSR2);
                libc::sigaddset(&mut set, 50);
                libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
                Ok(())
            });
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{who}: {}", stderr(&out));
        let status = stdout(&out);
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        assert_eq!(field("SigIgn:"), "0000000000000000", "{who}: {status}");
        assert_eq!(field("SigBlk:"), "0000000000000000", "{who}: {status}");
    });
}

/// Init (a process inside the sandbox) is not in the host's network namespace and holds no
/// descriptor of it. (Written when cw-exec made the namespace on a thread of its own and
/// init inherited cw-exec's descriptors at the clone; that mechanism is gone, the test stays.)
#[test]
fn init_holds_no_handle_on_the_hosts_network_namespace() {
    let host = std::fs::read_link("/proc/self/ns/net").unwrap();
    as_each_identity(|sb, who| {
        let mut child = sb
            .command("run", &["sh", "-c", "echo ready; read x; exit 0"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "{who}");
        let cw = child.id();
        let mut problems = Vec::new();
        for task in std::fs::read_dir(format!("/proc/{cw}/task")).unwrap() {
            let task = task.unwrap().path();
            let ns = std::fs::read_link(task.join("ns/net")).unwrap();
            if ns != host {
                problems.push(format!("cw-exec's thread {} is in {ns:?}", task.display()));
            }
        }
        let children = std::fs::read_to_string(format!("/proc/{cw}/task/{cw}/children")).unwrap();
        let inits: Vec<&str> = children.split_whitespace().collect();
        assert!(!inits.is_empty(), "{who}: cw-exec has no child");
        for init in inits {
            // Init is not dumpable: only root (CAP_SYS_PTRACE) may read its namespaces and
            // descriptors. A suite started by another user sees the root run's case only
            // when root runs it (as_each_identity runs the unprivileged identity as root).
            let ns = match std::fs::read_link(format!("/proc/{init}/ns/net")) {
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied && !is_root() => {
                    skip("inspecting init's namespaces and descriptors: needs root (init is not dumpable)");
                    continue;
                }
                other => other.unwrap(),
            };
            if ns == host {
                problems.push(format!("init {init} is in the host's network namespace"));
            }
            for fd in std::fs::read_dir(format!("/proc/{init}/fd")).unwrap() {
                let fd = fd.unwrap().path();
                if std::fs::read_link(&fd).ok().as_deref() == Some(host.as_path()) {
                    problems.push(format!("init holds {} -> {host:?}", fd.display()));
                }
            }
        }
        drop(child.stdin.take());
        assert!(child.wait().unwrap().success(), "{who}");
        assert!(problems.is_empty(), "{who}: {problems:#?}");
    });
}

/// cw-exec's own seccomp program at its edges, attempted for real: syscall numbers with
/// bits above 32 (the kernel truncates them), x32 numbers (with other high bits too), -1,
/// argument rules with bits in the half the rule does not compare, masked set-id bits. Each
/// must answer as named, and the write grant must stay empty.
#[test]
fn syscall_numbers_and_arguments_at_the_filters_edges() {
    as_each_identity(|sb, who| {
        let w = workdir(&format!("seccomp-edges-{}", who.replace(' ', "-")));
        std::fs::set_permissions(&w, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        let ws = w.to_str().unwrap();
        let sb = sb.args(["--write", ws]);
        let path = |name: &str| format!("path:{ws}/{name}");
        let cases: Vec<(Vec<String>, &str)> = vec![
            // bpf (321) with a bit above the 32 the kernel keeps
            (vec!["0x100000141".into(), "0".into()], "EPERM"),
            // x32 numbers, alone and with more high bits: the last interval of the search
            (vec!["0x40000027".into()], "EPERM"),
            (vec!["0x7fffffff".into()], "EPERM"),
            (vec!["0xc0000027".into()], "EPERM"),
            (vec!["-1".into()], "EPERM"),
            // the highest number below the x32 bit: no rule, so the kernel's answer
            (vec!["0x3fffffff".into()], "ENOSYS"),
            // unshare: CLONE_NEWUSER with a high bit, CLONE_NEWTIME, every bit
            (vec!["272".into(), "0x110000000".into()], "EPERM"),
            (vec!["272".into(), "0x80".into()], "EPERM"),
            (vec!["272".into(), "-1".into()], "EPERM"),
            // clone: CLONE_NEWUSER | SIGCHLD with every high bit set
            (vec!["56".into(), "0xffffffff10000011".into()], "EPERM"),
            // creat / open / openat / O_TMPFILE with set-id modes, high halves set
            (vec!["85".into(), path("a"), "0x1000009ed".into()], "EPERM"),
            (
                vec![
                    "2".into(),
                    path("b"),
                    "0xffffffff00000041".into(),
                    "0xffffffff00000800".into(),
                ],
                "EPERM",
            ),
            (
                vec![
                    "257".into(),
                    "-100".into(),
                    path("c"),
                    "0x100000041".into(),
                    "0x4000009ed".into(),
                ],
                "EPERM",
            ),
            (
                vec![
                    "257".into(),
                    "-100".into(),
                    format!("path:{ws}"),
                    "0o20000001".into(),
                    "0o2755".into(),
                ],
                "EPERM",
            ),
            // mkdir with every low mode bit; mknod S_IFREG|S_ISUID, mknodat S_IFREG|S_ISGID
            (vec!["83".into(), path("d"), "0xfffff800".into()], "EPERM"),
            (
                vec!["133".into(), path("e"), "0x8800".into(), "0".into()],
                "EPERM",
            ),
            (
                vec![
                    "259".into(),
                    "-100".into(),
                    path("f"),
                    "0x8400".into(),
                    "0".into(),
                ],
                "EPERM",
            ),
            // ioctl TIOCSTI with high bits in the request (stdin)
            (
                vec!["16".into(), "0".into(), "0xdead00005412".into(), "0".into()],
                "EPERM",
            ),
            // socket AF_INET and socketpair AF_NETLINK with a high bit (--net none)
            (
                vec!["41".into(), "0x100000002".into(), "1".into(), "0".into()],
                "EPERM",
            ),
            (
                vec![
                    "53".into(),
                    "0x100000010".into(),
                    "3".into(),
                    "0".into(),
                    "0".into(),
                ],
                "EPERM",
            ),
            (vec!["435".into(), "0".into(), "0".into()], "ENOSYS"),
        ];
        for (call, expected) in cases {
            let mut action = vec!["raw"];
            action.extend(call.iter().map(String::as_str));
            assert_eq!(sb.attempt(&action), expected, "{who}: raw {call:?}");
        }
        let left: Vec<_> = std::fs::read_dir(&w)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(left.is_empty(), "{who}: the host sees {left:?}");
    });
}

/// Under `exec.native_code = false` the same edges of the memory rules: prot and flags with
/// bits in the high half, PROT_EXEC alone, personality with and without its query value.
#[test]
fn native_code_rules_at_their_edges() {
    as_each_identity(|sb, who| {
        let sb = sb.args(["--profile", "locked-down"]);
        let cases: &[(&[&str], &str)] = &[
            (
                &["9", "0", "4096", "0x100000005", "0x22", "-1", "0"],
                "EPERM",
            ),
            (&["9", "0", "4096", "5", "0x100000022", "-1", "0"], "EPERM"),
            (&["9", "0", "4096", "4", "0x22", "-1", "0"], "EPERM"),
            (&["9", "0", "4096", "7", "0x2", "-1", "0"], "EPERM"),
            (&["10", "0", "4096", "0x100000004"], "EPERM"),
            (&["135", "0x100400000"], "EPERM"),
            (&["135", "0x400008"], "EPERM"),
            (&["135", "0xffffffff"], "ok"),
            (&["319", "path:x", "8"], "EPERM"),
            (&["447", "0"], "EPERM"),
            (&["30", "0", "0", "0o100000"], "EPERM"),
        ];
        for (call, expected) in cases {
            let mut action = vec!["raw"];
            action.extend_from_slice(call);
            assert_eq!(sb.attempt(&action), *expected, "{who}: raw {call:?}");
        }
    });
}

/// A system call through the 32-bit entry (`int $0x80`, AUDIT_ARCH_I386, whose numbers the
/// program does not describe) ends the process (SECCOMP_RET_KILL_PROCESS): it does not run.
#[cfg(target_arch = "x86_64")]
#[test]
fn a_32_bit_system_call_kills_the_process() {
    as_each_identity(|sb, who| {
        // i386 getpid (20), then i386 exit (1).
        for call in [&["int80", "20"][..], &["int80", "1", "0"][..]] {
            let out = sb.violate(call);
            assert_eq!(stdout(&out).trim(), "", "{who}: {call:?} ran");
            assert_eq!(
                out.status.code(),
                Some(128 + libc::SIGSYS),
                "{who}: {call:?}: {}",
                stderr(&out)
            );
        }
    });
}

/// Private directories made from the run's tmpfs, now noexec from the start: a program
/// copied there runs from /tmp and HOME only where `$tmp` allows exec (the default), never
/// from /dev/shm, and from none of them under an exec allowlist.
#[test]
fn programs_copied_into_private_directories_run_only_where_exec_is_allowed() {
    as_each_identity(|sb, who| {
        let f = fixture();
        let me = f.violate.to_str().unwrap();
        let home = if sb.user.is_some() {
            "/nonexistent"
        } else {
            "/root"
        };
        for (profile, dir, expected) in [
            ("default", "/tmp", "executed"),
            ("default", home, "executed"),
            ("default", "/dev/shm", "EACCES"),
            ("locked-down", "/tmp", "EACCES"),
            ("locked-down", home, "EACCES"),
            ("locked-down", "/dev/shm", "EACCES"),
        ] {
            let got = sb.clone().args(["--profile", profile]).attempt(&[
                "copy-exec",
                me,
                &format!("{dir}/v"),
            ]);
            assert_eq!(got, expected, "{who}: {profile}: {dir}");
        }
    });
}

/// Init keeps its copy of the command's writable /proc handle (a detached clone of the
/// sandbox's /proc, made before /proc is sealed read-only, through which the command raised
/// its own oom_score_adj) until after its last report: the last close of a detached mount
/// waits for an RCU grace period, which closing it earlier put between the command's end and
/// init reaping it. Held for the whole run, it must stay out of the sandbox's reach: the
/// command cannot take init's descriptors (pidfd_getfd), trace it or read its memory, and a
/// write through any /proc/1/fd/N to a file beneath it (its oom_score_adj, a user sysctl)
/// fails. EINVAL would mean the open succeeded (the text written is not a number). Each
/// identity, looped.
#[test]
fn init_keeps_its_writable_proc_copy_out_of_the_sandboxs_reach() {
    let v = fixture().violate.to_str().unwrap().to_string();
    let bin = fixture().bin.to_str().unwrap().to_string();
    let script = format!(
        "{v} reach-pid 1; for f in /proc/1/fd/*; do echo \"$f\"; \
         {v} write \"$f/self/oom_score_adj\"; {v} write \"$f/sys/user/max_user_namespaces\"; \
         {v} write \"$f/1/oom_score_adj\"; done"
    );
    as_each_identity(|sb, who| {
        for round in 0..3 {
            let what = format!("{who} (round {round})");
            let out = sb
                .clone()
                .args(["--read", &bin])
                .run(&["/bin/sh", "-c", &script]);
            let text = stdout(&out);
            assert!(out.status.success(), "{what}: {:?} {text}", out.status);
            let mut lines = text.lines();
            let reach = lines.next().unwrap_or_default();
            for denied in [
                "pidfd_getfd=EPERM",
                "ptrace=EPERM",
                "process_vm_readv=EPERM",
                "proc_environ=EACCES",
            ] {
                assert!(reach.contains(denied), "{what}: {denied} expected: {reach}");
            }
            let mut tried = 0;
            for line in lines {
                if line.starts_with('/') {
                    continue;
                }
                tried += 1;
                assert!(
                    matches!(line, "EACCES" | "EPERM" | "ENOENT"),
                    "{what}: a write through init's descriptors answered {line}: {text}"
                );
            }
            assert!(tried >= 3, "{what}: nothing was tried: {text}");
        }
    });
}
