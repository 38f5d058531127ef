//! read and write dimensions: each violation attempted from inside the sandbox, with the
//! errno checked inside and the host side checked unchanged.

mod common;
use common::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

/// A file of the caller's real home (the tests' HOME is /root as root): invisible inside,
/// where HOME is private.
fn home_marker() -> Option<std::path::PathBuf> {
    if !is_root() {
        return None;
    }
    let marker = std::path::PathBuf::from(format!("/root/.cwx-home-marker-{}", test_id()));
    std::fs::write(&marker, "host home").unwrap();
    Some(marker)
}

#[test]
fn host_credentials_are_absent() {
    let sb = Sandbox::new();
    for path in [
        "/etc/shadow",
        "/etc/gshadow",
        "/etc/sudoers",
        "/etc/ssh",
        "/home",
    ] {
        assert_eq!(sb.attempt(&["read", path]), "ENOENT", "{path}");
    }
    // /root exists inside as the private HOME, empty: the real one's files are not there.
    if let Some(marker) = home_marker() {
        assert_eq!(sb.attempt(&["read", marker.to_str().unwrap()]), "ENOENT");
        let out = sb.run(&["/bin/ls", "-A", "/root"]);
        assert_eq!(stdout(&out), "", "{}", stderr(&out));
        std::fs::remove_file(marker).unwrap();
    }
}

#[test]
fn runtime_allowance_is_readable_but_not_writable() {
    let sb = Sandbox::new();
    assert_eq!(sb.attempt(&["read", "/etc/passwd"]), "ok");
    assert_eq!(sb.attempt(&["read", "/usr/bin/env"]), "ok");
    assert_eq!(sb.attempt(&["write", "/etc/passwd"]), "EROFS");
    assert_eq!(sb.attempt(&["write", "/usr/bin/cw-exec-planted"]), "EROFS");
}

#[test]
fn the_view_root_cannot_be_listed_or_written() {
    let sb = Sandbox::new();
    assert_eq!(sb.attempt(&["list", "/"]), "EACCES");
    assert_eq!(sb.attempt(&["write", "/planted"]), "EROFS");
    assert_eq!(sb.attempt(&["mkdir", "/planted"]), "EROFS");
}

#[test]
fn ungranted_host_paths_are_absent_and_granted_ones_readable() {
    let base = workdir("grants");
    std::fs::create_dir_all(base.join("granted")).unwrap();
    std::fs::create_dir_all(base.join("secret")).unwrap();
    write_file(&base.join("granted/ok.txt"), "fine");
    write_file(&base.join("secret/key"), "s3cret");
    let sb = Sandbox::new()
        .arg("--read")
        .arg(base.join("granted").to_str().unwrap());
    assert_eq!(
        sb.attempt(&["read", base.join("granted/ok.txt").to_str().unwrap()]),
        "ok"
    );
    assert_eq!(
        sb.attempt(&["list", base.join("granted").to_str().unwrap()]),
        "ok"
    );
    assert_eq!(
        sb.attempt(&["read", base.join("secret/key").to_str().unwrap()]),
        "ENOENT"
    );
    // Read-only grant: no writes, no creation, no deletion.
    assert_eq!(
        sb.attempt(&["write", base.join("granted/ok.txt").to_str().unwrap()]),
        "EROFS"
    );
    assert_eq!(
        sb.attempt(&["unlink", base.join("granted/ok.txt").to_str().unwrap()]),
        "EROFS"
    );
    assert_eq!(
        std::fs::read_to_string(base.join("granted/ok.txt")).unwrap(),
        "fine"
    );
}

#[test]
fn symlink_out_of_a_grant_does_not_reach_the_target() {
    let base = workdir("symlink");
    std::fs::create_dir_all(base.join("granted")).unwrap();
    std::fs::create_dir_all(base.join("secret")).unwrap();
    write_file(&base.join("secret/key"), "s3cret");
    std::os::unix::fs::symlink("../secret/key", base.join("granted/link")).unwrap();
    std::os::unix::fs::symlink("/etc/shadow", base.join("granted/shadow")).unwrap();
    let sb = Sandbox::new()
        .arg("--write")
        .arg(base.join("granted").to_str().unwrap());
    assert_eq!(
        sb.attempt(&["read", base.join("granted/link").to_str().unwrap()]),
        "ENOENT"
    );
    assert_eq!(
        sb.attempt(&["read", base.join("granted/shadow").to_str().unwrap()]),
        "ENOENT"
    );
    // A symlink made inside the sandbox toward a read-only path does not make it writable.
    let link = base.join("granted/to-passwd");
    assert_eq!(
        sb.attempt(&["symlink", "/etc/passwd", link.to_str().unwrap()]),
        "ok"
    );
    assert_eq!(sb.attempt(&["write", link.to_str().unwrap()]), "EROFS");
}

#[test]
fn hardlink_and_rename_tricks_fail() {
    let base = workdir("links");
    let ro = base.join("ro");
    let rw = base.join("rw");
    std::fs::create_dir_all(&ro).unwrap();
    std::fs::create_dir_all(&rw).unwrap();
    write_file(&ro.join("file"), "original");
    write_file(&rw.join("mine"), "mine");
    let sb = Sandbox::new().args([
        "--read",
        ro.to_str().unwrap(),
        "--write",
        rw.to_str().unwrap(),
    ]);
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    // Hardlink a read-only file into the writable tree, then write through it.
    let hl = sb.attempt(&["link", &s(&ro.join("file")), &s(&rw.join("hl"))]);
    assert!(hl == "EXDEV" || hl == "EACCES", "link: {hl}");
    // Move a read-only file into the writable tree, or a writable one over a read-only one.
    let mv = sb.attempt(&["rename", &s(&ro.join("file")), &s(&rw.join("stolen"))]);
    assert!(
        mv == "EXDEV" || mv == "EACCES" || mv == "EROFS",
        "rename out: {mv}"
    );
    let mv = sb.attempt(&["rename", &s(&rw.join("mine")), &s(&ro.join("file"))]);
    assert!(
        mv == "EXDEV" || mv == "EACCES" || mv == "EROFS",
        "rename over: {mv}"
    );
    // Hardlink to the system password file.
    let hl = sb.attempt(&["link", "/etc/passwd", &s(&rw.join("passwd"))]);
    assert!(hl == "EXDEV" || hl == "EACCES", "link passwd: {hl}");
    assert_eq!(
        std::fs::read_to_string(ro.join("file")).unwrap(),
        "original"
    );
    assert!(!rw.join("hl").exists() && !rw.join("stolen").exists() && !rw.join("passwd").exists());
}

#[test]
fn write_grant_allows_create_modify_delete_inside_only() {
    let base = workdir("rw");
    let rw = base.join("rw");
    std::fs::create_dir_all(&rw).unwrap();
    let sb = Sandbox::new().args(["--write", rw.to_str().unwrap()]);
    let f = rw.join("new.txt");
    assert_eq!(sb.attempt(&["write", f.to_str().unwrap()]), "ok");
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "violated\n");
    assert_eq!(sb.attempt(&["truncate", f.to_str().unwrap()]), "ok");
    assert_eq!(sb.attempt(&["mkdir", rw.join("d").to_str().unwrap()]), "ok");
    assert_eq!(
        sb.attempt(&[
            "rename",
            f.to_str().unwrap(),
            rw.join("d/moved").to_str().unwrap()
        ]),
        "ok"
    );
    assert_eq!(
        sb.attempt(&["unlink", rw.join("d/moved").to_str().unwrap()]),
        "ok"
    );
    // Next to the write grant, nothing: the parent exists in the view only as a read-only
    // skeleton directory.
    assert_eq!(
        sb.attempt(&["write", base.join("sibling").to_str().unwrap()]),
        "EROFS"
    );
    assert!(!base.join("sibling").exists());
}

#[test]
fn root_metadata_writes_outside_the_write_set_fail() {
    if skip_unless_root("root metadata test") {
        return;
    }
    let base = workdir("meta");
    let f = base.join("rootfile");
    write_file(&f, "x");
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    let before = std::fs::metadata(&f).unwrap();
    let sb = Sandbox::new().args(["--read", base.to_str().unwrap()]);
    let p = f.to_str().unwrap();
    for action in ["chmod", "chown", "setxattr", "utimes", "truncate", "append"] {
        assert_eq!(sb.attempt(&[action, p]), "EROFS", "{action}");
    }
    for sys in ["/etc/passwd", "/usr/bin/env"] {
        assert_eq!(sb.attempt(&["chmod", sys]), "EROFS", "chmod {sys}");
        assert_eq!(sb.attempt(&["chown", sys]), "EROFS", "chown {sys}");
    }
    let after = std::fs::metadata(&f).unwrap();
    assert_eq!(before.mode(), after.mode());
    assert_eq!(before.mtime(), after.mtime());
    assert_eq!(before.uid(), after.uid());
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "x");
}

#[test]
fn device_nodes_cannot_be_created() {
    let base = workdir("mknod");
    let sb = Sandbox::new().args(["--write", base.to_str().unwrap()]);
    let node = base.join("null");
    let got = sb.attempt(&["mknod", node.to_str().unwrap()]);
    assert!(
        got == "EPERM" || got == "EACCES",
        "mknod in write set: {got}"
    );
    assert_eq!(sb.attempt(&["mknod", "/dev/evil"]), "EROFS");
    assert!(!node.exists());
}

#[test]
fn tmp_is_private_and_gone_after_the_run() {
    let marker = format!("cwexec-private-{}", std::process::id());
    let host_file = std::path::Path::new("/tmp").join(format!("{marker}-host"));
    std::fs::write(&host_file, "host").unwrap();
    let script =
        format!("echo hi > /tmp/{marker} && cat /tmp/{marker} && echo \"$TMPDIR\" && ls -A /tmp");
    // Even `--write /tmp` names the private tmp, not the host's.
    for extra in [vec![], vec!["--write", "/tmp"]] {
        let out = Sandbox::new().args(&extra).run(&["/bin/sh", "-c", &script]);
        assert!(out.status.success(), "{}", stderr(&out));
        let text = stdout(&out);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[..2], ["hi", "/tmp"], "{text}");
        // Only what the sandbox wrote (and the skeleton of granted paths beneath /tmp).
        assert!(
            !text.contains(&format!("{marker}-host")),
            "host /tmp visible: {text}"
        );
        assert!(
            !std::path::Path::new("/tmp").join(&marker).exists(),
            "private tmp leaked to the host"
        );
    }
    std::fs::remove_file(&host_file).unwrap();
    // A host path beneath /tmp can still be granted: it is bound on top of the private tmp.
    let granted = std::path::Path::new("/tmp").join(format!("{marker}-granted"));
    std::fs::create_dir_all(&granted).unwrap();
    std::fs::write(granted.join("f"), "granted").unwrap();
    let out = Sandbox::new()
        .args(["--read", granted.to_str().unwrap()])
        .run(&["/bin/cat", granted.join("f").to_str().unwrap()]);
    assert_eq!(stdout(&out), "granted", "{}", stderr(&out));
    std::fs::remove_dir_all(&granted).unwrap();
    // Gone after the run: a later run's /tmp holds nothing an earlier run wrote there. Its
    // own file in the listing shows the listing itself works.
    let list = |name: &str| {
        let out = Sandbox::new().run(&[
            "/bin/sh",
            "-c",
            &format!("echo x > /tmp/{marker}-{name} && ls -A /tmp"),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    assert!(list("first").contains(&format!("{marker}-first")));
    let second = list("second");
    assert!(second.contains(&format!("{marker}-second")), "{second}");
    assert!(
        !second.contains(&format!("{marker}-first")),
        "an earlier run's /tmp survived: {second}"
    );
}

#[test]
fn devices_in_the_runtime_allowance_work() {
    let sb = Sandbox::new();
    let out = sb.run(&[
        "/bin/sh",
        "-c",
        "echo x > /dev/null && head -c 4 /dev/urandom | wc -c",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "4");
}

#[test]
fn credentials_stay_unreadable_when_a_grant_covers_them() {
    // --read /etc brings /etc/shadow into the view; it is masked unless named itself.
    let sb = Sandbox::new().args(["--read", "/etc"]);
    assert_eq!(sb.attempt(&["read", "/etc/passwd"]), "ok");
    for cred in ["/etc/shadow", "/etc/gshadow", "/etc/sudoers", "/etc/ssh"] {
        if std::path::Path::new(cred).exists() {
            let action = if std::path::Path::new(cred).is_dir() {
                "list"
            } else {
                "read"
            };
            assert_eq!(sb.attempt(&[action, cred]), "EACCES", "{cred}");
        }
    }
    // Running from / reads "$cwd" = /: everything but /root and /home, credentials masked.
    let sb = Sandbox::new().cwd(std::path::Path::new("/"));
    assert_eq!(sb.attempt(&["read", "/etc/shadow"]), "EACCES");
    if let Some(marker) = home_marker() {
        // /root is the private HOME there: empty.
        assert_eq!(sb.attempt(&["read", marker.to_str().unwrap()]), "ENOENT");
        std::fs::remove_file(marker).unwrap();
    }
    assert_eq!(sb.attempt(&["list", "/home"]), "ENOENT");
    // Named explicitly, a credential is granted like any path.
    if is_root() {
        let sb = Sandbox::new().args(["--read", "/etc", "--read", "/etc/shadow"]);
        assert_eq!(sb.attempt(&["read", "/etc/shadow"]), "ok");
    }
}

/// Mount propagation, on a host whose mounts are shared (as under systemd): a mount the host
/// makes beneath a granted directory while the sandbox runs never appears in the view, and the
/// view's mount table has no shared or slave mount. The host side is a mount namespace of
/// util-linux `unshare --propagation shared`, so the test's own host stays untouched.
#[test]
fn host_mount_events_do_not_reach_the_view() {
    if skip_unless_root("making a shared mount namespace for the host side") {
        return;
    }
    let unshare = std::path::Path::new("/usr/bin/unshare");
    if !unshare.exists() {
        skip("mount propagation: util-linux unshare is not installed");
        return;
    }
    let dir = workdir("propagation");
    let sub = dir.join("sub");
    let flags = workdir("propagation-flags");
    std::fs::create_dir(&sub).unwrap();
    let (started, ready) = (flags.join("started"), flags.join("ready"));
    // Inside: announce the view is up, wait for the host's mount, then list what is there.
    let inside = flags.join("inside.sh");
    std::fs::write(
        &inside,
        format!(
            "touch {started}\nwhile [ ! -e {ready} ]; do sleep 0.01; done\n\
             echo \"entries:$(ls -A {sub})\"\n\
             echo \"propagating:$(grep -cE 'shared:|master:' /proc/self/mountinfo)\"\n",
            started = started.display(),
            ready = ready.display(),
            sub = sub.display()
        ),
    )
    .unwrap();
    let sb = Sandbox::new().args([
        "--read",
        dir.to_str().unwrap(),
        "--write",
        flags.to_str().unwrap(),
        "--timeout",
        "30",
    ]);
    let run = sb.command("run", &["/bin/sh", inside.to_str().unwrap()]);
    let cw_line = std::iter::once(run.get_program())
        .chain(run.get_args())
        .map(|a| format!("'{}'", a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ");
    // The host side: start the run, wait until its view is built, mount a tmpfs beneath the
    // grant and put a file there, then let the command look.
    let host = format!(
        "{cw_line} > {out} 2>&1 & \
         while [ ! -e {started} ] && kill -0 $! 2>/dev/null; do sleep 0.01; done; \
         mount -t tmpfs -o size=64k cwexec-test {sub} && touch {sub}/HOSTMOUNT; \
         touch {ready}; wait $!; status=$?; umount -l {sub}; exit $status",
        out = flags.join("out").display(),
        started = started.display(),
        ready = ready.display(),
        sub = sub.display()
    );
    let status = std::process::Command::new(unshare)
        .args([
            "-m",
            "--propagation",
            "shared",
            "--",
            "/bin/sh",
            "-c",
            &host,
        ])
        .current_dir(&dir)
        .status()
        .unwrap();
    let out = std::fs::read_to_string(flags.join("out")).unwrap_or_default();
    assert!(status.success(), "{out}");
    assert!(
        out.contains("entries:\n"),
        "the host's mount reached the view: {out}"
    );
    assert!(out.contains("propagating:0"), "{out}");
    assert!(
        !sub.join("HOSTMOUNT").exists(),
        "the host side's mount leaked out of its namespace"
    );
}

/// Root's run under a hardened host's umask (077), with the command as another identity
/// (`--user`): the view's own directories are 0755 whatever that umask (they were 0700 and
/// root's, so the command could reach nothing and the run was refused), and the command still
/// starts with the caller's umask.
#[test]
fn the_views_directories_keep_their_modes_under_a_strict_umask() {
    use std::os::unix::process::CommandExt;
    if skip_unless_root("running the command as another identity (--user)") {
        return;
    }
    let (uid, gid) = match unprivileged_user() {
        Ok(ids) => ids,
        Err(why) => return skip(&why),
    };
    let sb = Sandbox::new().args(["--user", &format!("{uid}:{gid}")]);
    let mut cmd = sb.command(
        "run",
        &["/bin/sh", "-c", "stat -c '%a %n' / /etc /dev; umask; id -u"],
    );
    // SAFETY: umask is async-signal-safe; the closure touches nothing else.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0o077);
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!("755 /\n755 /etc\n755 /dev\n0077\n{uid}\n"),
        "{}",
        stderr(&out)
    );
}
