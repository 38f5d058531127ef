//! How init builds the mount view (issue 17, fourth session): each bind cloned from a
//! descriptor of its host directory, held once for all its siblings; the view's root and
//! every private directory on one tmpfs, whose own root no path of the view reaches; mount
//! points of file binds made as hard links of one empty file, whose name is gone before
//! the command runs.

mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// The host directory of a grant is held as a descriptor and its last name cloned beneath
/// it: an unprivileged attacker who swaps that directory (not the granted name itself) for a
/// symlink to a directory holding a secret under the same names never gets the secret bound,
/// for a granted directory or a granted file. Each run either binds the real object, is
/// refused when planning, or is refused by init's check.
#[test]
fn a_grant_whose_directory_is_swapped_for_a_symlink_during_start_up_is_never_bound() {
    if skip_unless_root("racing an unprivileged attacker against a root run") {
        return;
    }
    let python = Path::new("/usr/bin/python3");
    if !python.exists() {
        skip("parent-swap race: python3 (the attacker) is not installed");
        return;
    }
    let ids = unprivileged_user().unwrap();
    // The prize: the same names as the grants, beneath a directory only root may enter
    // (the attacker can point a symlink at it, not read it).
    let secret = fixture()
        .dir
        .join(format!("secret-parent-swap-{}", std::process::id()));
    std::fs::create_dir_all(secret.join("data")).unwrap();
    std::fs::write(secret.join("data/s"), "TOPSECRET").unwrap();
    std::fs::write(secret.join("f"), "TOPSECRET").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o700)).unwrap();
    let base = workdir("parent-swap");
    let mid = base.join("mid");
    std::fs::create_dir_all(mid.join("data")).unwrap();
    std::fs::write(mid.join("data/s"), "public").unwrap();
    std::fs::write(mid.join("f"), "public").unwrap();
    std::fs::set_permissions(&mid, std::fs::Permissions::from_mode(0o777)).unwrap();
    // The attacker may write `base`: it swaps `mid` for a symlink to the secret's directory
    // and back, as fast as it can.
    let mut attacker = spawn_symlink_swapper(python, &base, "mid", &secret, ids);
    let (mut ran, mut refused, mut late) = (0, 0, 0);
    for round in 0..150 {
        let (grant, read) = if round % 2 == 0 {
            (mid.join("data"), mid.join("data/s"))
        } else {
            (mid.join("f"), mid.join("f"))
        };
        // The working directory elsewhere: a grant of `base` would bring `mid` in whole
        // (what the host has there at any moment, live), and the grant would be no bind of
        // its own.
        let out = Sandbox::new()
            .args(["--read", grant.to_str().unwrap()])
            .run(&[
                "/bin/sh",
                "-c",
                &format!("cat {} 2>/dev/null; true", read.display()),
            ]);
        assert!(
            !stdout(&out).contains("TOPSECRET"),
            "the secret was bound in place of the grant: {}",
            stderr(&out)
        );
        match out.status.code() {
            Some(0) => ran += 1,
            Some(125) if stderr(&out).contains("mount view") => late += 1,
            Some(125) => refused += 1,
            other => panic!("unexpected exit {other:?}: {}", stderr(&out)),
        }
    }
    std::fs::write(base.join("stop"), "").unwrap();
    attacker.wait().unwrap();
    eprintln!(
        "parent-swap race: {ran} runs bound the real object, {refused} refused when planning, {late} refused by init's check"
    );
}

/// The view's root and the private directories share one tmpfs, but no mount of the view
/// has that tmpfs's own root (where they sit side by side) as its root: from inside, nothing
/// written to /tmp can be reached at another path, and the view's root holds no name init
/// used while building it.
#[test]
fn the_run_tmpfs_root_and_build_names_are_unreachable() {
    as_each_identity(|sb, who| {
        let out = sb.run(&[
            "/bin/sh",
            "-c",
            "cat /proc/self/mountinfo; for n in .cw-exec-mount-point .cw-exec-private .cw-exec-oldroot v p0; do test -e /$n || test -L /$n && echo present:$n; done; true",
        ]);
        assert_eq!(out.status.code(), Some(0), "{who}: {}", stderr(&out));
        let text = stdout(&out);
        assert!(!text.contains("present:"), "{who}: {text}");
        // mountinfo: id parent major:minor root mount-point options ...
        let fields = |line: &str| -> (String, String, String) {
            let f: Vec<&str> = line.split(' ').collect();
            (f[2].to_string(), f[3].to_string(), f[4].to_string())
        };
        let lines: Vec<&str> = text.lines().filter(|l| l.contains(" - ")).collect();
        let (root_dev, _, _) = lines
            .iter()
            .map(|l| fields(l))
            .find(|(_, _, at)| at == "/")
            .unwrap_or_else(|| panic!("{who}: no / in {text}"));
        let tmp = lines
            .iter()
            .map(|l| fields(l))
            .find(|(_, _, at)| at == "/tmp")
            .unwrap_or_else(|| panic!("{who}: no /tmp in {text}"));
        assert_eq!(tmp.0, root_dev, "{who}: /tmp is the run's tmpfs: {text}");
        for (dev, root, at) in lines.iter().map(|l| fields(l)) {
            if dev == root_dev {
                assert_ne!(
                    root, "/",
                    "{who}: {at} shows the run's tmpfs's own root: {text}"
                );
            }
        }
    });
}

/// The run's tmpfs is mounted on the host's /tmp while the view's root is made: a grant
/// beneath the host's /tmp is still bound (the tmpfs's own mount is detached from the host's
/// tree before any bind), and the sandbox's /tmp around it is private.
#[test]
fn a_grant_beneath_the_host_tmp_is_bound() {
    let dir = Path::new("/tmp").join(format!("cwx-mv-host-tmp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(dir.join("f"), "on the host").unwrap();
    std::fs::set_permissions(dir.join("f"), std::fs::Permissions::from_mode(0o644)).unwrap();
    as_each_identity(|sb, who| {
        let out = sb.args(["--read", dir.to_str().unwrap()]).run(&[
            "/bin/sh",
            "-c",
            &format!(
                "cat {}/f; echo; echo private > /tmp/mine && cat /tmp/mine",
                dir.display()
            ),
        ]);
        assert_eq!(
            stdout(&out),
            "on the host\nprivate\n",
            "{who}: {}",
            stderr(&out)
        );
    });
    assert!(!Path::new("/tmp/mine").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `--bind /tmp:/hosttmp:ro` binds the host's /tmp, on which the run's tmpfs was mounted while
/// the view was built: the bind shows the host's files, not the tmpfs's root.
#[test]
fn a_bind_of_the_host_tmp_shows_the_host_tmp() {
    let marker = Path::new("/tmp").join(format!("cwx-mv-marker-{}", std::process::id()));
    std::fs::write(&marker, "host").unwrap();
    std::fs::set_permissions(&marker, std::fs::Permissions::from_mode(0o644)).unwrap();
    let name = marker.file_name().unwrap().to_str().unwrap().to_string();
    as_each_identity(|sb, who| {
        let out = sb.args(["--bind", "/tmp:/hosttmp:ro"]).run(&[
            "/bin/sh",
            "-c",
            &format!("cat /hosttmp/{name}; echo; grep ' /hosttmp ' /proc/self/mountinfo"),
        ]);
        assert_eq!(out.status.code(), Some(0), "{who}: {}", stderr(&out));
        let text = stdout(&out);
        assert!(text.starts_with("host\n"), "{who}: {text}");
        // One mount at /hosttmp: the host's, nothing stacked on it.
        assert_eq!(text.lines().count(), 2, "{who}: {text}");
    });
    std::fs::remove_file(&marker).unwrap();
}
