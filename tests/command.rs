//! command dimension: the exec allowlist, exec from memory and from writable places, and
//! the seccomp-denied kernel surface.

mod common;
use common::*;

#[test]
fn exec_allowlist_blocks_unlisted_binaries() {
    let sb = Sandbox::new().args(["--exec", "/usr/bin/true"]);
    // The listed binary runs; an unlisted one in the runtime allowance does not.
    assert_eq!(sb.attempt(&["exec", "/usr/bin/true"]), "");
    assert_eq!(sb.attempt(&["exec", "/usr/bin/false"]), "EACCES");
    assert_eq!(
        sb.attempt(&["exec", "/bin/sh", "-c", "echo escaped"]),
        "EACCES"
    );
}

#[test]
fn exec_from_a_writable_place_fails_under_an_allowlist() {
    let sb = Sandbox::new().args(["--exec", "/usr/bin/true"]);
    let out = sb.violate(&["exec", "/bin/sh"]);
    assert_eq!(stdout(&out).trim(), "EACCES");
    // Copy an allowed binary into the private tmp and run the copy: the copy is not on the
    // allowlist. "copied" proves the copy exists, so 126 (found, not executable) is the
    // denial and not a missing file (127).
    let sb = Sandbox::new().args(["--exec", "/usr/bin/dash", "--exec", "/usr/bin/cp"]);
    let out = sb.run(&[
        "/bin/sh",
        "-c",
        "cp /usr/bin/true \"$TMPDIR/t\" && echo copied && \"$TMPDIR/t\"; echo rc=$?",
    ]);
    assert_eq!(stdout(&out), "copied\nrc=126\n", "{}", stderr(&out));
    // The same through a write grant: execve is refused, and so is the loader trick,
    // because the grant is mounted noexec (the loader cannot map the copy PROT_EXEC).
    let w = workdir("writable");
    let sb = Sandbox::new().args(["--exec", "/usr/bin/true", "--write", w.to_str().unwrap()]);
    let copy = w.join("true-copy");
    assert_eq!(
        sb.attempt(&["copy", "/usr/bin/true", copy.to_str().unwrap()]),
        "ok"
    );
    assert!(copy.is_file(), "the copy did not reach the host");
    assert_eq!(sb.attempt(&["exec", copy.to_str().unwrap()]), "EACCES");
    let out = sb.violate(&["ldso-exec", copy.to_str().unwrap()]);
    assert_eq!(
        (out.status.code(), stdout(&out).as_str()),
        (Some(127), ""),
        "ld.so ran a noexec file: {}",
        stderr(&out)
    );
    let expected = format!(
        "{}: error while loading shared libraries: {}: failed to map segment from shared object",
        copy.display(),
        copy.display()
    );
    assert_eq!(stderr(&out).trim(), expected);
    // Control: the loader itself works here, on a file of an exec-capable mount.
    let out = sb.violate(&["ldso-exec", "/usr/bin/true"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn noexec_stops_execve_and_the_loader_but_not_an_interpreter_reading_a_script() {
    // What the command gaps say, attempted: a script in a noexec write grant cannot be
    // executed, but an allowed interpreter runs it when told to read it.
    as_each_identity(|sb, who| {
        let w = workdir("noexec-script");
        let script = w.join("evil.sh");
        write_file(&script, "echo evil ran\n");
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .unwrap();
        let env = w.join("e.json");
        let s = script.to_str().unwrap();
        let out = sb
            .args(["--exec", "/usr/bin/dash", "--write", w.to_str().unwrap()])
            .args(["--envelope", env.to_str().unwrap()])
            .run(&["/bin/sh", "-c", &format!("{s}; echo rc=$?; sh {s}")]);
        assert_eq!(
            stdout(&out),
            "rc=126\nevil ran\n",
            "{who}: {}",
            stderr(&out)
        );
        let a = &envelope(&env)["provenance"]["attestation"];
        assert!(a["enforced"]
            .as_array()
            .unwrap()
            .contains(&"command".into()));
        let gaps: Vec<&str> = a["kernel"]["gaps"]["command"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g.as_str().unwrap())
            .collect();
        assert!(
            gaps.iter()
                .any(|g| g.contains("noexec") && g.contains("does not stop an allowed interpreter")),
            "{who}: {gaps:#?}"
        );
        assert!(
            !gaps.iter().any(|g| g.contains("which stops this")),
            "{who}: {gaps:#?}"
        );
    });
}

#[test]
fn exec_from_memory_fails() {
    // Root's sandboxes get vm.memfd_noexec=2 (memfd_create without MFD_NOEXEC_SEAL: EACCES);
    // anyone else's get seccomp's refusal of that call instead (EPERM).
    as_each_identity(|sb, who| {
        let by_sysctl = who == "root" && std::path::Path::new("/proc/sys/vm/memfd_noexec").exists();
        let want = if by_sysctl { "EACCES" } else { "EPERM" };
        for extra in [vec![], vec!["--exec", "/usr/bin/true"]] {
            let sb = sb.clone().args(&extra);
            assert_eq!(sb.attempt(&["memfd-exec"]), want, "{who} with {extra:?}");
        }
    });
}

#[test]
fn without_an_allowlist_readable_files_execute() {
    let sb = Sandbox::new();
    let out = sb.run(&[
        "/bin/sh",
        "-c",
        "cp /usr/bin/true \"$TMPDIR/t\" && \"$TMPDIR/t\" && echo ran",
    ]);
    assert_eq!(stdout(&out).trim(), "ran", "{}", stderr(&out));
}

#[test]
fn kernel_attack_surface_is_denied() {
    let sb = Sandbox::new();
    for action in ["io-uring", "bpf", "perf", "keyctl", "userfaultfd"] {
        assert_eq!(sb.attempt(&[action]), "EPERM", "{action}");
    }
    assert_eq!(sb.attempt(&["clone3"]), "ENOSYS");
}

#[test]
fn namespaces_mounts_and_root_changes_are_denied() {
    let sb = Sandbox::new();
    for ns in ["user", "net", "mount", "pid"] {
        assert_eq!(sb.attempt(&["unshare", ns]), "EPERM", "unshare {ns}");
    }
    assert_eq!(sb.attempt(&["clone-newuser"]), "EPERM");
    assert_eq!(sb.attempt(&["setns", "/proc/self/ns/net"]), "EPERM");
    assert_eq!(sb.attempt(&["mount", "/tmp"]), "EPERM");
    assert_eq!(sb.attempt(&["umount", "/usr"]), "EPERM");
    assert_eq!(sb.attempt(&["chroot", "/usr"]), "EPERM");
}

#[test]
fn no_capability_survives_and_uid_0_cannot_regain_any() {
    let sb = Sandbox::new();
    let out = sb.violate(&["status"]);
    let status = stdout(&out);
    for key in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        let line = status.lines().find(|l| l.starts_with(key)).unwrap();
        assert!(line.ends_with("0000000000000000"), "{line}");
    }
    assert!(status.lines().any(|l| l == "NoNewPrivs:\t1"));
    assert!(status.lines().any(|l| l == "Seccomp:\t2"));
    // setuid to another user needs CAP_SETUID, which nobody inside has.
    let got = sb.attempt(&["setuid", "12345"]);
    assert!(got == "EPERM" || got == "EINVAL", "{got}");
}

#[test]
fn device_ioctls_are_denied_even_on_granted_devices() {
    // /dev/null is granted read and write; an ioctl on it reaches the driver without the
    // sandbox (ENOTTY) but Landlock's IOCTL_DEV right is never granted (EACCES).
    assert_eq!(
        Sandbox::new().attempt(&["ioctl-tcgets", "/dev/null"]),
        "EACCES"
    );
}

#[test]
fn the_exec_probe_proves_the_allowlist_or_the_run_is_refused() {
    // Even with the whole host granted for reading, a file off the allowlist is found and
    // execve of it is refused: command is proven.
    let env = workdir("exec-probe").join("e.json");
    let out = Sandbox::new()
        .args(["--read", "/", "--exec", "/usr/bin/true"])
        .args(["--envelope", env.to_str().unwrap()])
        .run(&["/usr/bin/true"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let a = &envelope(&env)["provenance"]["attestation"];
    assert!(a["enforced"]
        .as_array()
        .unwrap()
        .contains(&"command".into()));
    let k = &a["kernel"];
    let probe = k["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "exec-outside-allowlist")
        .unwrap();
    assert_eq!(probe["got"], "EACCES", "{probe}");
    assert!(k["execProbe"].is_string());
    // An allowlist covering every executable file of the runtime leaves nothing to attempt:
    // not proven, so refused, and nothing runs.
    let w = workdir("exec-probe-none");
    let marker = w.join("ran");
    let env = w.join("e.json");
    let out = Sandbox::new()
        .args(["--exec", "/usr", "--write", w.to_str().unwrap()])
        .args(["--envelope", env.to_str().unwrap()])
        .run(&["/usr/bin/touch", marker.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(!marker.exists());
    let a = &envelope(&env)["provenance"]["attestation"];
    assert_eq!(a["unenforceable"], serde_json::json!(["command"]));
}
