//! What the sandbox leaves behind or shares with the host: files carrying host privileges
//! (set-id bits, file capabilities) in the write set, and per-user kernel quotas charged to
//! the caller's uid on the host.

mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// Runs `case` as root (skipped unless the tests run as root) and as an unprivileged caller
/// (the test user when running as root, else the current user).
fn as_root_and_unprivileged(mut case: impl FnMut(Sandbox, &str)) {
    if is_root() {
        case(Sandbox::new(), "root");
        match unprivileged_user() {
            Ok(ids) => case(Sandbox::new().user(ids), TEST_USER),
            Err(why) => skip(&format!("unprivileged variant: {why}")),
        }
    } else {
        skip("root-caller variant: needs root");
        case(Sandbox::new(), "current user");
    }
}

/// Every path beneath `dir` (itself included) with a set-id bit or a security.capability
/// xattr, as the host sees it after the run.
fn host_privileges_under(dir: &Path) -> Vec<String> {
    let mut found = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        if meta.file_type().is_symlink() {
            continue;
        }
        if meta.mode() & 0o6000 != 0 {
            found.push(format!("{} mode {:o}", p.display(), meta.mode()));
        }
        let name = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
        let got = unsafe {
            libc::lgetxattr(
                name.as_ptr(),
                c"security.capability".as_ptr(),
                std::ptr::null_mut(),
                0,
            )
        };
        if got >= 0 {
            found.push(format!("{} has security.capability", p.display()));
        }
        if meta.is_dir() {
            for e in std::fs::read_dir(&p).unwrap().flatten() {
                stack.push(e.path());
            }
        }
    }
    found
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The calls that change a mode (`violate mode-call` names): `chmod`, older than its `at`
/// forms, exists on x86_64 only.
const MODE_CHANGING_CALLS: &[&str] = &[
    #[cfg(target_arch = "x86_64")]
    "chmod",
    "fchmod",
    "fchmodat",
    "fchmodat2",
];

#[test]
fn set_id_bits_are_refused_on_every_route_and_none_reach_the_host() {
    as_root_and_unprivileged(|sb, who| {
        let w = workdir("setid");
        let sb = sb.args(["--write", s(&w)]);
        // A copy of a shell the sandbox made (so it owns it, whoever it is), and a directory.
        let bash = w.join("bash");
        assert_eq!(sb.attempt(&["copy", "/bin/sh", s(&bash)]), "ok", "{who}");
        let dir = w.join("d");
        assert_eq!(sb.attempt(&["mkdir", s(&dir)]), "ok", "{who}");

        // Controls: the same calls without set-id bits are accepted, so EPERM below is the
        // set-id refusal and nothing else.
        for call in MODE_CHANGING_CALLS {
            assert_eq!(
                sb.attempt(&["mode-call", call, s(&bash), "755"]),
                "ok",
                "{who}: {call} 0755"
            );
        }
        assert_eq!(
            sb.attempt(&["mode-call", "chmod", s(&dir), "1777"]),
            "ok",
            "{who}: the sticky bit is not a set-id bit"
        );
        let plain = w.join("plain");
        assert_eq!(
            sb.attempt(&["mode-call", "openat", s(&plain), "755"]),
            "ok",
            "{who}"
        );

        // Changing a mode: set-uid and set-gid on a file, set-gid on a directory.
        for call in MODE_CHANGING_CALLS {
            for mode in ["4755", "2755", "6755", "4000"] {
                assert_eq!(
                    sb.attempt(&["mode-call", call, s(&bash), mode]),
                    "EPERM",
                    "{who}: {call} {mode}"
                );
            }
            assert_eq!(
                sb.attempt(&["mode-call", call, s(&dir), "2755"]),
                "EPERM",
                "{who}: {call} 2755 on a directory"
            );
        }

        // Creating with a mode.
        for call in [
            #[cfg(target_arch = "x86_64")]
            "open",
            "openat",
            #[cfg(target_arch = "x86_64")]
            "creat",
            #[cfg(target_arch = "x86_64")]
            "mkdir",
            "mkdirat",
            #[cfg(target_arch = "x86_64")]
            "mknod",
            "mknodat",
        ] {
            for mode in ["6755", "4755", "2755"] {
                let target = w.join(format!("new-{call}-{mode}"));
                assert_eq!(
                    sb.attempt(&["mode-call", call, s(&target), mode]),
                    "EPERM",
                    "{who}: {call} {mode}"
                );
                assert!(!target.exists(), "{who}: {call} {mode} created a file");
            }
        }
        assert_eq!(
            sb.attempt(&["mode-call", "tmpfile", s(&w), "4755"]),
            "EPERM",
            "{who}: O_TMPFILE 04755"
        );
        // openat2's mode is behind a pointer: ENOSYS, so libc falls back to openat.
        let via_openat2 = w.join("new-openat2");
        assert_eq!(
            sb.attempt(&["mode-call", "openat2", s(&via_openat2), "4755"]),
            "ENOSYS",
            "{who}"
        );
        assert!(!via_openat2.exists());

        // File capabilities need CAP_SETFCAP, which the command never holds.
        assert_eq!(sb.attempt(&["setxattr-cap", s(&bash)]), "EPERM", "{who}");

        // The tools people would use, through a shell.
        let script = format!(
            "cd {w}; \
             cp -p /usr/bin/passwd passwd-copy; echo cp=$?; \
             install -m 4755 /bin/sh installed; echo install=$?; \
             chmod u+s bash; echo chmod-u+s=$?; \
             chmod g+s d; echo chmod-g+s=$?; \
             mkdir -m 2755 sgid-dir; echo mkdir-m=$?",
            w = w.display()
        );
        let out = sb.run(&["/bin/sh", "-c", &script]);
        let text = stdout(&out);
        for step in ["chmod-u+s", "chmod-g+s", "install", "mkdir-m"] {
            assert!(
                text.lines()
                    .any(|l| l.starts_with(&format!("{step}=")) && !l.ends_with("=0")),
                "{who}: {step} succeeded:\n{text}\n{}",
                stderr(&out)
            );
        }
        assert!(
            stderr(&out).contains("Operation not permitted"),
            "{who}: {}",
            stderr(&out)
        );

        assert_eq!(
            host_privileges_under(&w),
            Vec::<String>::new(),
            "{who}: the sandbox left host privileges in its write set"
        );
    });
}

#[test]
fn the_attestation_proves_the_set_id_refusal() {
    let env = workdir("setid-env").join("envelope.json");
    let out = Sandbox::new()
        .args(["--envelope", s(&env)])
        .run(&["/bin/true"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let e = envelope(&env);
    let kernel = &e["provenance"]["attestation"]["kernel"];
    for name in ["setid-chmod", "setid-create"] {
        let probe = kernel["probes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no {name} probe: {}", kernel["probes"]));
        assert_eq!(probe["got"], "EPERM", "{probe}");
    }
    let write = kernel["dimensions"]["write"].as_str().unwrap();
    assert!(write.contains("set-id"), "{write}");
}

// ---- native code from memory (exec.native_code = false) ----

/// A profile file like locked-down but with exec.native_code as given.
fn profile_with_native_code(native_code: bool) -> PathBuf {
    let dir = workdir("profile");
    let p = dir.join(format!("native-{native_code}.toml"));
    write_file(
        &p,
        &format!(
            "read = []\nwrite = [\"$tmp\"]\nnet = \"none\"\n[exec]\nallow = [\"$command\"]\nnative_code = {native_code}\n"
        ),
    );
    p
}

const EXEC_MEMORY_ROUTES: &[&str] = &[
    "mmap-anon-rx",
    "mmap-anon-rwx",
    "mprotect-rx",
    "pkey-mprotect-rx",
    "mmap-file-rwx",
    "mmap-memfd-rx",
    "shmat-exec",
    "read-implies-exec",
];

#[test]
fn native_code_false_refuses_executable_memory() {
    as_root_and_unprivileged(|sb, who| {
        let locked = sb.clone().args(["--profile", "locked-down"]);
        for route in EXEC_MEMORY_ROUTES {
            assert_eq!(
                locked.attempt(&["exec-memory", route]),
                "EPERM",
                "{who}: {route} under locked-down"
            );
        }
        assert_eq!(
            locked.attempt(&["run-jit"]),
            "EPERM",
            "{who}: JIT under locked-down"
        );
        // Routes that are closed whatever the switch says: /dev/zero is mounted noexec, and
        // /proc/self/mem is not writable (a read-only mount, and Landlock grants /proc
        // read-only).
        assert_eq!(
            locked.attempt(&["exec-memory", "mmap-dev-zero-rx"]),
            "EPERM",
            "{who}"
        );
        let mem = locked.attempt(&["exec-memory", "proc-self-mem"]);
        assert!(
            mem == "EROFS" || mem == "EACCES",
            "{who}: /proc/self/mem: {mem}"
        );

        // Without the switch the same program makes and runs native code.
        let open = sb
            .clone()
            .args(["--profile", s(&profile_with_native_code(true))]);
        assert_eq!(open.attempt(&["run-jit"]), "ran 42", "{who}");
        for route in EXEC_MEMORY_ROUTES {
            assert_eq!(
                open.attempt(&["exec-memory", route]),
                "ok",
                "{who}: {route} with native_code = true"
            );
        }
        let closed = sb
            .clone()
            .args(["--profile", s(&profile_with_native_code(false))]);
        assert_eq!(closed.attempt(&["run-jit"]), "EPERM", "{who}");
    });
}

#[test]
fn ordinary_programs_still_run_without_native_code() {
    let p = profile_with_native_code(false);
    let cases: &[&[&str]] = &[
        &["/bin/sh", "-c", "echo shell-ok"],
        &["/bin/ls", "/usr"],
        &["/usr/bin/env"],
    ];
    for cmd in cases {
        let out = Sandbox::new().args(["--profile", s(&p)]).run(cmd);
        assert_eq!(out.status.code(), Some(0), "{cmd:?}: {}", stderr(&out));
    }
    if Path::new("/usr/bin/python3").exists() {
        let out = Sandbox::new().args(["--profile", s(&p)]).run(&[
            "/usr/bin/python3",
            "-c",
            "import json, hashlib, ssl, ctypes, sqlite3; print('python-ok')",
        ]);
        assert_eq!(stdout(&out).trim(), "python-ok", "{}", stderr(&out));
    } else {
        skip("python3 under native_code = false: /usr/bin/python3 not installed");
    }
}

#[test]
fn the_loader_trick_fails_for_files_off_the_allowlist() {
    as_root_and_unprivileged(|sb, who| {
        // Only the violate helper may execute; /usr/bin/id is readable through the runtime
        // allowance, and ld.so must not map it.
        let sb = sb.args(["--profile", "locked-down"]);
        let out = sb.violate(&["ldso-exec", "/usr/bin/id"]);
        assert_ne!(out.status.code(), Some(0), "{who}: {}", stdout(&out));
        assert!(
            !stdout(&out).contains("uid="),
            "{who}: ld.so ran /usr/bin/id: {}",
            stdout(&out)
        );
        assert!(
            stderr(&out).contains("failed to map segment")
                || stderr(&out).contains("Operation not permitted"),
            "{who}: {}",
            stderr(&out)
        );
        // The allowed command itself still runs, and so does a dynamically linked one.
        assert_eq!(sb.attempt(&["noop"]), "executed", "{who}");
        let out = Sandbox::new()
            .args(["--exec", "/usr/bin/id"])
            .run(&["/usr/bin/id", "-u"]);
        assert_eq!(out.status.code(), Some(0), "{who}: {}", stderr(&out));
    });
}

#[test]
fn the_attestation_proves_native_code_refusal() {
    let env = workdir("native-env").join("envelope.json");
    let out = Sandbox::new()
        .args(["--profile", "locked-down", "--envelope", s(&env)])
        .run(&["/bin/true"]);
    // /bin/true is the command, so it is on the allowlist.
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let e = envelope(&env);
    let kernel = &e["provenance"]["attestation"]["kernel"];
    let probe = kernel["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "native-code")
        .unwrap_or_else(|| panic!("no native-code probe: {}", kernel["probes"]));
    assert_eq!(probe["got"], "EPERM", "{probe}");
    let command = kernel["dimensions"]["command"].as_str().unwrap();
    assert!(command.contains("executable anonymous memory"), "{command}");
    // The mount view: program directories are noexec, library directories are not.
    let view: Vec<String> = kernel["mountView"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let usr = view.iter().find(|m| m.starts_with("/usr ")).unwrap();
    assert!(usr.contains("noexec"), "{view:?}");
    let lib = view.iter().find(|m| m.starts_with("/usr/lib ")).unwrap();
    assert!(!lib.contains("noexec"), "{view:?}");
}

// ---- per-user kernel quotas ----

/// Starts `violate inotify-fill` in a sandbox and returns the child, its stdin (closing it
/// ends the run) and the line it printed: the errno and how many instances it got.
fn fill_inotify(sb: &Sandbox) -> (std::process::Child, std::process::ChildStdin, String) {
    let f = fixture();
    let mut sb = sb.clone();
    sb.args.push("--read".into());
    sb.args.push(f.bin.to_string_lossy().into_owned());
    let mut child = sb
        .command("run", &[f.violate.to_str().unwrap(), "inotify-fill"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, stdin, line.trim().to_string())
}

/// inotify_init from a host process of the given identity (None: this test process's).
fn host_inotify_init(user: Option<(u32, u32)>) -> String {
    let f = fixture();
    let mut c = std::process::Command::new(&f.violate);
    c.arg("inotify-once").stdin(Stdio::null());
    if let Some((uid, gid)) = user {
        c.uid(uid).gid(gid);
    }
    stdout(&c.output().unwrap()).trim().to_string()
}

#[test]
fn inotify_instances_are_capped_inside_and_the_host_keeps_its_share() {
    let host_max: u64 = std::fs::read_to_string("/proc/sys/user/max_inotify_instances")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    as_root_and_unprivileged(|sb, who| {
        let inside: u64 = sb
            .attempt(&["sysctl", "/proc/sys/user/max_inotify_instances"])
            .parse()
            .unwrap_or_else(|_| panic!("{who}: unreadable limit"));
        assert!(
            inside < host_max,
            "{who}: the sandbox's limit {inside} is not below the host's {host_max}"
        );
        let (mut child, stdin, line) = fill_inotify(&sb);
        let (errno, count) = line.split_once(' ').unwrap_or(("", ""));
        assert_eq!(errno, "EMFILE", "{who}: {line}");
        let count: u64 = count.parse().unwrap();
        assert!(
            count <= inside,
            "{who}: got {count} past the limit {inside}"
        );
        if count < inside {
            skip(&format!(
                "({who}) exact cap check: the host's uid already holds {} instances",
                inside - count
            ));
        }
        // While the sandbox holds all it may, the same uid on the host can still get one.
        let user = sb.user;
        assert_eq!(
            host_inotify_init(user),
            "ok",
            "{who}: the host uid was starved"
        );
        drop(stdin);
        let status = child.wait().unwrap();
        assert!(status.success(), "{who}: {status:?}");
    });
}

#[test]
fn the_attestation_reports_the_lowered_quotas() {
    let env = workdir("quota-env").join("envelope.json");
    let out = Sandbox::new()
        .args(["--envelope", s(&env)])
        .run(&["/bin/true"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let e = envelope(&env);
    let kernel = &e["provenance"]["attestation"]["kernel"];
    let limits = kernel["limits"].as_array().unwrap();
    let inotify = limits
        .iter()
        .find(|l| l["limit"] == "inotify-instances")
        .unwrap_or_else(|| panic!("no inotify limit: {limits:?}"));
    let want = std::fs::read_to_string("/proc/sys/user/max_inotify_instances")
        .unwrap()
        .trim()
        .parse::<u64>()
        .unwrap()
        / 4;
    assert_eq!(inotify["requested"], want.max(1).to_string(), "{inotify}");
    assert!(
        inotify["mechanism"].as_str().unwrap().contains("read back"),
        "{inotify}"
    );
    let gaps = kernel["gaps"].to_string();
    assert!(gaps.contains("epoll"), "{gaps}");
}
