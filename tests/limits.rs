//! Resource limits, attempted from inside the sandbox, as root and as an unprivileged user.
//! The attestation must name the mechanism that enforced each one.

mod common;
use common::*;

fn limit_mechanism(env: &serde_json::Value, limit: &str) -> String {
    env["provenance"]["attestation"]["kernel"]["limits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["limit"] == limit)
        .map(|l| l["mechanism"].as_str().unwrap().to_string())
        .unwrap_or_default()
}

#[test]
fn fork_bomb_stops_at_the_pids_limit() {
    as_each_identity(|sb, who| {
        let env = workdir("pids").join("e.json");
        let out = sb
            .args(["--pids", "20", "--envelope", env.to_str().unwrap()])
            .violate(&["forkbomb"]);
        let text = stdout(&out);
        let mut parts = text.split_whitespace();
        assert_eq!(
            parts.next(),
            Some("EAGAIN"),
            "{who}: {text} {}",
            stderr(&out)
        );
        let made: u32 = parts.next().unwrap().parse().unwrap();
        assert!(made < 20, "{who}: {made} processes under --pids 20");
        let mech = limit_mechanism(&envelope(&env), "pids");
        assert!(
            mech.contains("pids") || mech.contains("RLIMIT_NPROC"),
            "{who}: {mech}"
        );
    });
}

#[test]
fn allocating_past_the_memory_limit_fails() {
    as_each_identity(|sb, who| {
        let env = workdir("mem").join("e.json");
        let out = sb
            .args(["--memory", "64M", "--envelope", env.to_str().unwrap()])
            .violate(&["alloc", "512"]);
        let text = stdout(&out);
        let e = envelope(&env);
        let mech = limit_mechanism(&e, "memory");
        if mech.starts_with("cgroup") {
            // The kernel OOM-kills inside the sandbox's cgroup.
            assert_eq!(out.status.code(), Some(137), "{who}: {text}");
            assert_eq!(
                e["provenance"]["handle"]["metadata"]["oomKilled"], true,
                "{who}"
            );
        } else {
            assert_eq!(mech, "RLIMIT_DATA", "{who}");
            assert_eq!(text.trim(), "ENOMEM", "{who}: {}", stderr(&out));
        }
    });
}

#[test]
fn spinning_past_the_cpu_limit_is_stopped() {
    as_each_identity(|sb, who| {
        let env = workdir("cpu").join("e.json");
        let out = sb
            .args(["--cpu", "1", "--envelope", env.to_str().unwrap()])
            .violate(&["spin", "20"]);
        // SIGXCPU from RLIMIT_CPU (152), or SIGKILL from cw-exec's whole-sandbox accounting (137).
        let code = out.status.code();
        assert!(
            code == Some(152) || code == Some(137),
            "{who}: exit {code:?}"
        );
        assert!(!stdout(&out).contains("spun"), "{who}: the spin finished");
        assert!(
            limit_mechanism(&envelope(&env), "cpu").contains("RLIMIT_CPU"),
            "{who}"
        );
    });
}

#[test]
fn cpu_limit_binds_the_whole_sandbox_where_cgroups_account_it() {
    // Two processes each stay under a per-process limit; only whole-sandbox accounting stops them.
    let env = workdir("cpu2").join("e.json");
    let f = fixture();
    let v = f.violate.to_str().unwrap();
    let out = Sandbox::new()
        .args([
            "--cpu",
            "1",
            "--envelope",
            env.to_str().unwrap(),
            "--read",
            f.bin.to_str().unwrap(),
        ])
        .run(&[
            "/bin/sh",
            "-c",
            &format!("{v} spin 1.5 & {v} spin 1.5 & {v} spin 1.5 & wait"),
        ]);
    let e = envelope(&env);
    if !limit_mechanism(&e, "cpu").starts_with("cgroup") {
        eprintln!("SKIPPED whole-sandbox CPU limit: no cgroup CPU accounting usable by this user");
        return;
    }
    assert_eq!(out.status.code(), Some(137), "{}", stderr(&out));
    assert_eq!(
        e["provenance"]["handle"]["metadata"]["cpuLimitExceeded"],
        true
    );
    assert!(!stdout(&out).contains("spun"));
}

#[test]
fn open_files_stop_at_the_nofile_limit() {
    as_each_identity(|sb, who| {
        let text = sb.args(["--nofile", "32"]).attempt(&["open-many"]);
        let mut parts = text.split_whitespace();
        assert_eq!(parts.next(), Some("EMFILE"), "{who}: {text}");
        let n: u32 = parts.next().unwrap().parse().unwrap();
        assert!(n <= 32, "{who}: {n}");
    });
}

#[test]
fn files_stop_at_the_fsize_limit() {
    as_each_identity(|sb, who| {
        let dir = workdir("fsize");
        let f = dir.join("big");
        let out = sb
            .args(["--fsize", "1M", "--write", dir.to_str().unwrap()])
            .violate(&["write-bytes", f.to_str().unwrap(), "4194304"]);
        // SIGXFSZ kills by default (153); a program that ignores it gets EFBIG.
        assert!(
            out.status.code() == Some(153) || stdout(&out).trim() == "EFBIG",
            "{who}: {:?} {}",
            out.status.code(),
            stdout(&out)
        );
        assert!(
            std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0) <= 1 << 20,
            "{who}"
        );
    });
}

#[test]
fn output_past_the_limit_is_dropped_and_recorded() {
    as_each_identity(|sb, who| {
        let env = workdir("out").join("e.json");
        let limit = 100_000usize;
        let out = sb
            .args([
                "--output-limit",
                &limit.to_string(),
                "--envelope",
                env.to_str().unwrap(),
            ])
            .violate(&["echo-bytes", "1000000"]);
        assert_eq!(out.status.code(), Some(0), "{who}");
        assert_eq!(out.stdout.len(), limit, "{who}");
        let expected: Vec<u8> = (0..=255u8).cycle().take(limit).collect();
        assert_eq!(
            out.stdout, expected,
            "{who}: the passed-through prefix must be exact"
        );
        use sha2::Digest;
        let sha: String = sha2::Sha256::digest(&out.stdout)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let e = envelope(&env);
        assert_eq!(
            e["evidence"][2],
            format!("stdoutSha256:sha256:{sha}"),
            "{who}"
        );
        let meta = &e["provenance"]["handle"]["metadata"];
        assert_eq!(meta["outputTruncated"], true, "{who}");
        assert_eq!(meta["outputDroppedBytes"], 900_000, "{who}");
        let notes = e["provenance"]["attestation"]["notes"].to_string();
        assert!(notes.contains("output truncated"), "{who}: {notes}");
    });
}

#[test]
fn limits_can_come_from_a_profile() {
    let dir = workdir("profile-limits");
    let p = dir.join("limited.toml");
    write_file(&p, "read = [\"$cwd\"]\n[limits]\npids = 20\nnofile = 32\n");
    let text = Sandbox::new()
        .args(["--profile", p.to_str().unwrap()])
        .attempt(&["open-many"]);
    assert!(text.starts_with("EMFILE"), "{text}");
}

#[test]
fn no_cgroup_is_left_behind() {
    if skip_unless_root("cgroup cleanup") {
        return;
    }
    for args in [
        vec!["--pids", "50"],
        vec!["--memory", "64M", "--timeout", "0.3"],
        vec!["--cpu", "1"],
    ] {
        let _ = Sandbox::new()
            .args(&args)
            .run(&["/bin/sh", "-c", "sleep 5"]);
    }
    assert_eq!(leftover_cgroups(), Vec::<std::path::PathBuf>::new());
}
