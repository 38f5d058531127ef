//! Resource limits, attempted from inside the sandbox, as root and as an unprivileged user.
//! The attestation must name the mechanism that enforced each one.

mod common;
use common::*;

/// The mechanism of `limit` in an envelope; empty when there is none (a refused run's
/// envelope, for a limit no mechanism here could bind, has no limits at all).
fn limit_mechanism(env: &serde_json::Value, limit: &str) -> String {
    env["provenance"]["attestation"]["kernel"]["limits"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
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
        let e = envelope(&env);
        let mech = limit_mechanism(&e, "pids");
        assert!(
            mech.contains("pids") || mech.contains("RLIMIT_NPROC"),
            "{who}: {mech}"
        );
        if mech.starts_with("cgroup") {
            // The pids cgroup counts the forks it refused: cw-exec says so, and keeps the
            // command's own exit code (the helper reports EAGAIN and exits 0).
            assert_eq!(out.status.code(), Some(0), "{who}");
            assert!(
                stderr(&out).contains(
                    "cw-exec: pids: the sandbox reached its limit of 20 processes (--pids)"
                ),
                "{who}: {}",
                stderr(&out)
            );
            assert!(
                e["provenance"]["handle"]["metadata"]["pidsRefused"]
                    .as_u64()
                    .unwrap()
                    > 0,
                "{who}"
            );
        }
    });
}

#[test]
fn allocating_past_the_memory_limit_fails() {
    as_each_identity(|sb, who| {
        let env = workdir("mem").join("e.json");
        let out = sb
            .args(["--memory", "64M", "--envelope", env.to_str().unwrap()])
            .violate(&["alloc", "512"]);
        if out.status.code() == Some(125) {
            // An explicit limit that no cgroup can bind is refused, never downgraded.
            return assert_refused_for(&out, "memory", who);
        }
        let text = stdout(&out);
        let e = envelope(&env);
        let mech = limit_mechanism(&e, "memory");
        if mech.starts_with("cgroup") {
            // The kernel OOM-kills inside the sandbox's cgroup.
            assert_eq!(out.status.code(), Some(137), "{who}: {text}");
            assert!(
                stderr(&out).contains("cw-exec: memory: the sandbox reached its memory limit of 67108864 bytes (--memory)"),
                "{who}: {}",
                stderr(&out)
            );
            assert_eq!(
                e["provenance"]["handle"]["metadata"]["oomKilled"], true,
                "{who}"
            );
        } else {
            panic!("{who}: an explicit --memory ran under {mech}: {text}");
        }
    });
}

/// A refusal of the run for the explicit limit `limit`: exit 125, nothing executed, and the
/// message names the limit and the missing mechanism.
fn assert_refused_for(out: &std::process::Output, limit: &str, who: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(125), "{who}: {err}");
    assert!(
        err.contains(&format!("limit {limit}")) && err.contains("cgroup"),
        "{who}: the refusal must name the limit and the missing cgroup: {err}"
    );
    assert!(
        stdout(out).is_empty(),
        "{who}: nothing may run: {}",
        stdout(out)
    );
}

/// The limit entry of an envelope's attestation.
fn limit_entry(env: &serde_json::Value, limit: &str) -> serde_json::Value {
    env["provenance"]["attestation"]["kernel"]["limits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["limit"] == limit)
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "no {limit} entry in {}",
                env["provenance"]["attestation"]["kernel"]["limits"]
            )
        })
}

#[test]
fn explicit_limits_without_a_whole_sandbox_mechanism_are_refused() {
    // Unprivileged, with no cgroup delegated: --memory and --cpu cannot bind the whole
    // sandbox (RLIMIT_DATA ignores tmpfs, shared memory and memfd; RLIMIT_CPU is per
    // process), and a profile key listed in limits.required is as explicit as a flag.
    let Ok(ids) = unprivileged_user() else {
        skip("explicit-limit refusals: no unprivileged user");
        return;
    };
    let dir = workdir("explicit");
    let marker = dir.join("ran");
    let required = dir.join("required.toml");
    write_file(
        &required,
        "write = [\"$tmp\"]\n[limits]\nmemory = \"64M\"\nrequired = [\"memory\"]\n",
    );
    let cases: [(&[&str], &str, &str); 3] = [
        (&["--memory", "64M"], "memory", "--memory"),
        (&["--cpu", "1"], "cpu", "--cpu"),
        (
            &["--profile", required.to_str().unwrap()],
            "memory",
            "limits.memory (required)",
        ),
    ];
    for (args, limit, asked) in cases {
        let env = dir.join(format!("{limit}.json"));
        let sb = Sandbox::new().user(ids).args(args).args([
            "--write",
            dir.to_str().unwrap(),
            "--envelope",
            env.to_str().unwrap(),
        ]);
        let out = sb.run(&["/bin/sh", "-c", &format!("touch {}", marker.display())]);
        if out.status.code() == Some(0) {
            let entry = limit_entry(&envelope(&env), limit);
            assert!(
                entry["wholeSandbox"] == true && entry["explicit"] == true,
                "an explicit {limit} ran without binding the whole sandbox: {entry}"
            );
            skip(&format!(
                "{limit} refusal: a cgroup is delegated to {TEST_USER} here"
            ));
            continue;
        }
        assert_refused_for(&out, limit, TEST_USER);
        assert!(stderr(&out).contains(asked), "{asked}: {}", stderr(&out));
        assert!(!marker.exists(), "{args:?}: the command ran");
        let e = envelope(&env);
        assert_eq!(e["status"], "refused");
        // A limit is not a dimension: the policy's own required set, no dimension at fault,
        // and the limit named.
        let a = &e["provenance"]["attestation"];
        // (Every case here: network none, no exec allowlist.)
        let required = serde_json::json!(["read", "write", "network", "env"]);
        assert_eq!(a["required"], required, "{asked}");
        assert_eq!(a["unenforceable"], serde_json::json!([]), "{asked}");
        assert_eq!(a["kernel"]["refusal"]["limit"], limit, "{asked}");
        assert_eq!(
            a["kernel"]["refusal"]["dimensions"],
            serde_json::json!([]),
            "{asked}"
        );
    }
}

#[test]
fn explicit_memory_limit_binds_tmpfs_and_memfd() {
    // RLIMIT_DATA never saw these: a run under --memory 64M held 1 GiB in /tmp or a memfd.
    // With the limit bound by a cgroup, 200 MiB cannot be held: the writer is OOM-killed,
    // or the write fails.
    as_each_identity(|sb, who| {
        let dir = workdir("memfill");
        let name = format!("cwx-fill-{}", std::process::id());
        for target in [format!("/tmp/{name}"), "memfd".to_string()] {
            let env = dir.join("e.json");
            let out = sb
                .clone()
                .args(["--memory", "64M", "--envelope", env.to_str().unwrap()])
                .violate(&["fill", &target, "200"]);
            if out.status.code() == Some(125) {
                assert_refused_for(&out, "memory", who);
                continue;
            }
            let e = envelope(&env);
            let entry = limit_entry(&e, "memory");
            assert_eq!(entry["wholeSandbox"], true, "{who}: {entry}");
            assert_eq!(entry["explicit"], true, "{who}: {entry}");
            let coverage = entry["coverage"].as_str().unwrap();
            assert!(
                coverage.contains("tmpfs") && coverage.contains("memfd"),
                "{who}: {coverage}"
            );
            let text = stdout(&out);
            if out.status.code() == Some(137) {
                assert_eq!(
                    e["provenance"]["handle"]["metadata"]["oomKilled"], true,
                    "{who} {target}"
                );
            } else {
                // Stopped at the /tmp size (the memory limit): ENOSPC before 64 MiB.
                let mut parts = text.split_whitespace();
                let errno = parts.next().unwrap_or_default();
                let mib: u32 = parts.next().and_then(|n| n.parse().ok()).unwrap_or(999);
                assert!(
                    (errno == "ENOSPC" || errno == "ENOMEM") && mib <= 64,
                    "{who} {target}: {text} (exit {:?}) {}",
                    out.status.code(),
                    stderr(&out)
                );
            }
            // The host saw nothing: the file lived in the sandbox's own /tmp.
            assert!(
                !std::path::Path::new("/tmp").join(&name).exists(),
                "{who}: the sandbox's /tmp reached the host's"
            );
        }
        assert_eq!(
            leftover_cgroups(),
            Vec::<std::path::PathBuf>::new(),
            "{who}"
        );
    });
}

#[test]
fn profile_default_limits_run_and_are_attested_exactly() {
    // The default profile's memory limit is defence in depth: it never refuses a run, and
    // where no cgroup binds it the attestation says it is per process and what it misses.
    as_each_identity(|sb, who| {
        let env = workdir("default-limits").join("e.json");
        let out = sb
            .args(["--envelope", env.to_str().unwrap()])
            .run(&["/bin/true"]);
        assert_eq!(out.status.code(), Some(0), "{who}: {}", stderr(&out));
        let e = envelope(&env);
        let memory = limit_entry(&e, "memory");
        assert_eq!(memory["explicit"], false, "{who}: {memory}");
        let coverage = memory["coverage"].as_str().unwrap();
        if memory["mechanism"] == "RLIMIT_DATA" {
            assert_eq!(memory["wholeSandbox"], false, "{who}");
            assert!(
                coverage.contains("RLIMIT_DATA per process")
                    && coverage.contains("tmpfs, shared memory and memfd not covered"),
                "{who}: {coverage}"
            );
        } else {
            assert!(
                memory["mechanism"].as_str().unwrap().starts_with("cgroup"),
                "{who}: {memory}"
            );
            assert_eq!(memory["wholeSandbox"], true, "{who}");
        }
        for l in e["provenance"]["attestation"]["kernel"]["limits"]
            .as_array()
            .unwrap()
        {
            assert!(
                !l["coverage"].as_str().unwrap_or_default().is_empty(),
                "{who}: {l}"
            );
        }
    });
}

#[test]
fn profile_default_memory_applies_per_process_where_no_cgroup_binds() {
    // Not listed in limits.required: applied with RLIMIT_DATA instead of refusing.
    as_each_identity(|sb, who| {
        let dir = workdir("mem-default");
        let p = dir.join("p.toml");
        write_file(&p, "[limits]\nmemory = \"64M\"\n");
        let env = dir.join("e.json");
        let out = sb
            .args([
                "--profile",
                p.to_str().unwrap(),
                "--envelope",
                env.to_str().unwrap(),
            ])
            .violate(&["alloc", "512"]);
        let e = envelope(&env);
        if limit_mechanism(&e, "memory").starts_with("cgroup") {
            assert_eq!(out.status.code(), Some(137), "{who}");
        } else {
            assert_eq!(limit_mechanism(&e, "memory"), "RLIMIT_DATA", "{who}");
            assert_eq!(stdout(&out).trim(), "ENOMEM", "{who}: {}", stderr(&out));
        }
    });
}

#[test]
fn the_private_tmp_is_sized() {
    // A tmpfs without size= may take half of the host's RAM; the sandbox's /tmp holds at
    // most the memory limit (here a profile default of 32M): ENOSPC past it.
    as_each_identity(|sb, who| {
        let dir = workdir("tmpsize");
        let p = dir.join("p.toml");
        write_file(&p, "write = [\"$tmp\"]\n[limits]\nmemory = \"32M\"\n");
        let env = dir.join("e.json");
        let out = sb
            .args([
                "--profile",
                p.to_str().unwrap(),
                "--envelope",
                env.to_str().unwrap(),
            ])
            .violate(&["fill", "/tmp/big", "64"]);
        let e = envelope(&env);
        let views = e["provenance"]["attestation"]["kernel"]["mountView"].to_string();
        assert!(views.contains("size=33554432"), "{who}: {views}");
        let text = stdout(&out);
        if out.status.code() == Some(137) {
            // Root: the 32M cgroup also holds the writer's own pages, so it may be OOM-killed
            // before the tmpfs is full.
            assert!(
                limit_mechanism(&e, "memory").starts_with("cgroup"),
                "{who}: {text}"
            );
        } else {
            assert_eq!(text.trim(), "ENOSPC 32", "{who}: {}", stderr(&out));
        }
    });
    // Without a memory limit: a quarter of the host's RAM.
    let dir = workdir("tmpsize-nolimit");
    let p = dir.join("p.toml");
    write_file(&p, "write = [\"$tmp\"]\n");
    let out = Sandbox::new()
        .args(["--profile", p.to_str().unwrap()])
        .run(&["/bin/sh", "-c", "grep ' /tmp ' /proc/self/mountinfo"]);
    let ram_kib: u64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    let want_kib = ((ram_kib * 1024 / 4) & !4095) / 1024;
    assert!(
        stdout(&out).contains(&format!("size={want_kib}k")),
        "{}: want size={want_kib}k",
        stdout(&out)
    );
}

#[test]
fn required_limits_are_checked_by_profile_check() {
    let dir = workdir("required-check");
    for (text, ok, needle) in [
        (
            "[limits]\nmemory = \"2G\"\nrequired = [\"memory\"]\n",
            true,
            "",
        ),
        (
            "[limits]\nrequired = [\"memory\"]\n",
            false,
            "limits.memory is not set",
        ),
        (
            "[limits]\nmemory = \"64M\"\nrequired = [\"memroy\"]\n",
            false,
            "memroy",
        ),
    ] {
        let p = dir.join("p.toml");
        write_file(&p, text);
        let out = cw(&["profile", "check", p.to_str().unwrap()]);
        assert_eq!(out.status.success(), ok, "{text}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{text}: {}", stderr(&out));
    }
}

#[test]
fn spinning_past_the_cpu_limit_is_stopped() {
    as_each_identity(|sb, who| {
        let env = workdir("cpu").join("e.json");
        let out = sb
            .args(["--cpu", "1", "--envelope", env.to_str().unwrap()])
            .violate(&["spin", "20"]);
        if out.status.code() == Some(125) {
            // Explicit: no cgroup accounts this user's CPU time, and RLIMIT_CPU is per process.
            assert_refused_for(&out, "cpu", who);
            return;
        }
        // One exit code, 152 (128 + SIGXCPU), whether cw-exec's whole-sandbox accounting or
        // RLIMIT_CPU stopped it first, and a message naming the limit.
        assert_eq!(out.status.code(), Some(152), "{who}: {}", stderr(&out));
        assert!(
            stderr(&out)
                .contains("cw-exec: cpu: the sandbox used up its CPU time limit of 1.000s (--cpu)"),
            "{who}: {}",
            stderr(&out)
        );
        assert!(!stdout(&out).contains("spun"), "{who}: the spin finished");
        let entry = limit_entry(&envelope(&env), "cpu");
        assert_eq!(entry["wholeSandbox"], true, "{who}: {entry}");
        assert!(
            entry["mechanism"].as_str().unwrap().contains("RLIMIT_CPU"),
            "{who}"
        );
    });
}

#[test]
fn profile_default_cpu_applies_per_process_where_no_cgroup_accounts_it() {
    as_each_identity(|sb, who| {
        let dir = workdir("cpu-default");
        let p = dir.join("p.toml");
        write_file(&p, "[limits]\ncpu = 1\n");
        let env = dir.join("e.json");
        let out = sb
            .args([
                "--profile",
                p.to_str().unwrap(),
                "--envelope",
                env.to_str().unwrap(),
            ])
            .violate(&["spin", "20"]);
        assert_eq!(out.status.code(), Some(152), "{who}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("cw-exec: cpu: the sandbox used up its CPU time limit"),
            "{who}: {}",
            stderr(&out)
        );
        let entry = limit_entry(&envelope(&env), "cpu");
        assert_eq!(entry["explicit"], false, "{who}");
        if entry["wholeSandbox"] == false {
            assert!(
                entry["coverage"]
                    .as_str()
                    .unwrap()
                    .starts_with("RLIMIT_CPU per process"),
                "{who}: {entry}"
            );
        }
    });
}

#[test]
fn cpu_limit_binds_the_whole_sandbox_where_cgroups_account_it() {
    // Three processes each stay under a per-process limit (1.5 CPU seconds each, counted in
    // CPU time, not wall time, so a loaded host cannot keep them under the total); only
    // whole-sandbox accounting stops them.
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
            &format!("{v} spin-cpu 1.5 & {v} spin-cpu 1.5 & {v} spin-cpu 1.5 & wait"),
        ]);
    let e = envelope(&env);
    if !limit_mechanism(&e, "cpu").starts_with("cgroup") {
        skip("whole-sandbox CPU limit: no cgroup CPU accounting usable by this user");
        return;
    }
    assert_eq!(out.status.code(), Some(152), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains("cw-exec: cpu: the sandbox used up its CPU time limit of 1.000s (--cpu)"),
        "{}",
        stderr(&out)
    );
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
        // SIGXFSZ kills by default (153, and cw-exec says why); a program that ignores it
        // gets EFBIG.
        assert!(
            out.status.code() == Some(153) || stdout(&out).trim() == "EFBIG",
            "{who}: {:?} {}",
            out.status.code(),
            stdout(&out)
        );
        if out.status.code() == Some(153) {
            assert!(
                stderr(&out).contains("cw-exec: fsize: a process wrote past the file size limit of 1048576 bytes (--fsize): the command was killed by SIGXFSZ (exit 153)"),
                "{who}: {}",
                stderr(&out)
            );
        }
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
        let sha = sha256_hex(&out.stdout);
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
        assert!(
            stderr(&out).contains("cw-exec: output truncated: 900000 bytes of stdout and stderr past the output limit of 100000 bytes (--output-limit) were dropped"),
            "{who}: {}",
            stderr(&out)
        );
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

/// The command (root in its user namespace) cannot move itself out of the run's cgroups:
/// no cgroup file system is in its view to write to or can be mounted, no descriptor of one
/// reaches it (cw-exec's held parents and init's `tasks` descriptors stay theirs), and after
/// trying, its memory and pids cgroups are still the run's. Nothing is left behind.
#[test]
fn the_command_cannot_leave_the_runs_cgroups() {
    if skip_unless_root("the run's cgroups (cgroups are made for root here)") {
        return;
    }
    let script = "\
        for f in /sys/fs/cgroup/memory/tasks /sys/fs/cgroup/pids/tasks \
                 /sys/fs/cgroup/memory/cgroup.procs /sys/fs/cgroup/unified/cgroup.procs; do \
            (echo 0 > $f) 2>/dev/null && echo moved $f; \
        done; \
        mkdir -p /tmp/m && mount -t cgroup -o memory,pids cgroup /tmp/m 2>/dev/null && echo mounted; \
        mount -t cgroup2 cgroup2 /tmp/m 2>/dev/null && echo mounted2; \
        ls /proc/self/fd | tr '\\n' ' '; echo; cat /proc/self/cgroup";
    let out = Sandbox::new()
        .args(["--memory", "64M", "--pids", "50"])
        .run(&["/bin/sh", "-c", script]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text} {}", stderr(&out));
    assert!(
        !text.contains("moved") && !text.contains("mounted"),
        "{text}"
    );
    // ls's own descriptors: 0-2 and the directory it lists.
    assert!(text.lines().any(|l| l == "0 1 2 3 "), "{text}");
    for controller in ["memory", "pids"] {
        let line = text
            .lines()
            .find(|l| l.split(':').nth(1) == Some(controller))
            .unwrap_or_else(|| panic!("no {controller} line: {text}"));
        assert!(
            line.split(':').nth(2).unwrap().starts_with("/cw-exec-"),
            "{controller}: the command is not in the run's cgroup: {line}"
        );
    }
    assert_eq!(leftover_cgroups(), Vec::<std::path::PathBuf>::new());
}

/// The attestation states each cgroup limit as the kernel holds it — read back from the
/// kernel right after cw-exec wrote it (`observed`, file by file) — not as it was asked: the
/// very values the kernel's files hold while the command runs, read here from the host. A
/// memory limit that is not a whole number of pages is held (and observed) rounded down to
/// one; the rest of the entry is unchanged.
#[test]
fn the_attestation_observes_the_limits_the_kernel_holds() {
    use std::io::{BufRead, Write};
    if skip_unless_root("the run's cgroups are read from the host") {
        return;
    }
    let page = 4096u64; // this host's (the kernel rounds to its page size)
    for memory in ["256M", "268439553"] {
        let asked: u64 = if memory == "256M" {
            256 << 20
        } else {
            268_439_553
        };
        let held = (asked - asked % page).to_string();
        let env = workdir("observed").join("e.json");
        let mut child = Sandbox::new()
            .args(["--memory", memory, "--pids", "64"])
            .args(["--envelope", env.to_str().unwrap()])
            .command("run", &["/bin/sh", "-c", "echo ready; read x"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The command runs only once every limit is in place: "ready" means they are.
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "ready\n", "{memory}");
        let mut kernel = std::collections::BTreeMap::new();
        for dir in run_cgroups_of(child.id()) {
            for file in [
                "memory.limit_in_bytes",
                "memory.memsw.limit_in_bytes",
                "memory.max",
                "memory.swap.max",
                "pids.max",
            ] {
                if let Ok(v) = std::fs::read_to_string(dir.join(file)) {
                    kernel.insert(file.to_string(), serde_json::json!(v.trim()));
                }
            }
        }
        child.stdin.as_mut().unwrap().write_all(b"\n").unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{memory}: {}", stderr(&out));
        let e = envelope(&env);
        let (mem, pids) = (limit_entry(&e, "memory"), limit_entry(&e, "pids"));
        if !mem["mechanism"].as_str().unwrap().starts_with("cgroup")
            || !pids["mechanism"].as_str().unwrap().starts_with("cgroup")
        {
            skip("no memory and pids cgroups here");
            return;
        }
        // The kernel's files, as the host reads them: the limit, rounded to a page.
        let limit_file = ["memory.limit_in_bytes", "memory.max"]
            .into_iter()
            .find(|f| kernel.contains_key(*f))
            .unwrap_or_else(|| panic!("{memory}: no memory limit file found: {kernel:?}"));
        assert_eq!(kernel[limit_file], held, "{memory}");
        assert_eq!(kernel["pids.max"], "64", "{memory}");
        // The attestation says exactly that, file by file.
        let mut observed = mem["observed"].as_object().cloned().unwrap_or_default();
        observed.extend(pids["observed"].as_object().cloned().unwrap_or_default());
        // (The command's cgroup membership, also observed, is checked by
        // the_attestation_observes_the_commands_membership_of_the_run_cgroups.)
        let observed: std::collections::BTreeMap<String, serde_json::Value> = observed
            .into_iter()
            .filter(|(file, _)| file != "cgroup")
            .collect();
        assert_eq!(observed, kernel, "{memory}: {mem} {pids}");
        // Every other field is as it was: what was asked, not what is held.
        assert_eq!(mem["requested"], asked.to_string(), "{mem}");
        assert_eq!(pids["requested"], "64", "{pids}");
        assert!(
            mem.get("coverage").is_some() && mem["wholeSandbox"] == true,
            "{mem}"
        );
    }
    assert_eq!(leftover_cgroups(), Vec::<std::path::PathBuf>::new());
}

/// The path of `controller`'s hierarchy in a /proc/PID/cgroup text (v1: the line listing it).
fn cgroup_line(text: &str, controller: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        controllers
            .split(',')
            .any(|c| c == controller)
            .then(|| path.to_string())
    })
}

/// Whether this host has v1 memory and pids hierarchies at their conventional places (where
/// the tests below make and bind-mount cgroups).
fn v1_memory_and_pids() -> bool {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    cgroup_line(&own, "memory").is_some()
        && cgroup_line(&own, "pids").is_some()
        && std::path::Path::new("/sys/fs/cgroup/memory/tasks").exists()
        && std::path::Path::new("/sys/fs/cgroup/pids/tasks").exists()
}

/// A v1 cgroup made by the test (root) in each of `hierarchies`, at `rel` beneath the
/// hierarchy's root, its directory and `tasks`/`cgroup.procs` given to `owner` (a delegated
/// cgroup: its owner may move itself in and make cgroups beneath it). Removed when dropped,
/// deepest first, down to the first directory the test made.
struct TestCgroup {
    made: Vec<std::path::PathBuf>,
}

impl TestCgroup {
    fn make(hierarchies: &[&str], rel: &str, owner: Option<(u32, u32)>) -> TestCgroup {
        let mut made = vec![];
        for h in hierarchies {
            let root = std::path::Path::new("/sys/fs/cgroup").join(h);
            let mut dir = root.clone();
            for part in rel.split('/').filter(|p| !p.is_empty()) {
                dir.push(part);
                if !dir.exists() {
                    std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
                    made.push(dir.clone());
                }
            }
            if let Some((uid, gid)) = owner {
                for p in [dir.clone(), dir.join("tasks"), dir.join("cgroup.procs")] {
                    std::os::unix::fs::chown(&p, Some(uid), Some(gid))
                        .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                }
            }
        }
        TestCgroup { made }
    }
}

impl Drop for TestCgroup {
    /// Each cgroup made, children first: whatever cgroups appeared beneath it meanwhile (a
    /// host's process manager may make some) go too, and a cgroup whose last process is still
    /// exiting is retried for a while (bounded), so that no run of the suite leaves one behind.
    fn drop(&mut self) {
        fn remove_tree(dir: &std::path::Path) -> bool {
            if let Ok(entries) = std::fs::read_dir(dir) {
                for e in entries.flatten() {
                    if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                        remove_tree(&e.path());
                    }
                }
            }
            for _ in 0..200 {
                match std::fs::remove_dir(dir) {
                    Ok(()) => return true,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return true,
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
                }
            }
            false
        }
        for dir in self.made.iter().rev() {
            remove_tree(dir);
        }
    }
}

/// A wrapper cw-exec is started through (`wrapper cw-exec ARGS`), as root: moves itself into
/// `cgroup` (v1 memory and pids, beneath their roots) where given, bind-mounts
/// `memory_from` over the v1 memory hierarchy in a mount namespace of its own where given,
/// and runs cw-exec as `user` where given.
fn wrapper(
    dir: &std::path::Path,
    cgroup: Option<&str>,
    memory_from: Option<&std::path::Path>,
    user: Option<(u32, u32)>,
) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let mut script = String::from("#!/bin/sh\nset -e\n");
    if let Some(rel) = cgroup {
        for h in ["memory", "pids"] {
            script.push_str(&format!("echo $$ > /sys/fs/cgroup/{h}{rel}/cgroup.procs\n"));
        }
    }
    let drop = match user {
        Some((uid, gid)) => format!("setpriv --reuid={uid} --regid={gid} --clear-groups -- "),
        None => String::new(),
    };
    match memory_from {
        Some(from) => script.push_str(&format!(
            "exec unshare -m --propagation private sh -c 'mount --bind \"$0\" /sys/fs/cgroup/memory && exec {drop}\"$@\"' {} \"$@\"\n",
            from.display()
        )),
        None => script.push_str(&format!("exec {drop}\"$@\"\n")),
    }
    let path = dir.join("wrapper.sh");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// How a sandbox of `as_each_identity` is started for the tests below: root runs cw-exec in
/// the test's own cgroups; the unprivileged user in a v1 memory and pids cgroup delegated to
/// it (cgroups are made for root only here otherwise), entered by a wrapper that then drops
/// to the user. (sandbox, the cgroup cw-exec runs in as /proc/self/cgroup shows it per
/// hierarchy, the delegated cgroup if any.)
fn started_as(
    mut sb: Sandbox,
    dir: &std::path::Path,
    memory_from: Option<&std::path::Path>,
) -> (Sandbox, Option<String>, Option<TestCgroup>) {
    let Some(ids) = sb.user.take() else {
        if memory_from.is_some() {
            let w = wrapper(dir, None, memory_from, None);
            sb = sb.wrapped(&w);
        }
        return (sb, None, None);
    };
    let rel = format!(
        "/cwx-deleg-{}-{}",
        std::process::id(),
        dir.file_name().unwrap().to_string_lossy()
    );
    let delegated = TestCgroup::make(&["memory", "pids"], &rel, Some(ids));
    let w = wrapper(dir, Some(&rel), memory_from, Some(ids));
    let sb = sb.wrapped(&w).env("HOME", "/nonexistent");
    (sb, Some(rel), Some(delegated))
}

/// The command's process is a member of the run's memory and pids cgroups, and the
/// attestation records that membership as the command read it (its /proc/self/cgroup, just
/// before execve, checked there against the path cw-exec sent with the cgroups:
/// `observed.cgroup`): the very cgroup the host sees the command's process in (/proc/PID/cgroup
/// from the host, while it runs). With its own cgroup namespace (rooted at cw-exec's cgroup,
/// read from the host too) the path recorded is the run's cgroup relative to cw-exec's; in
/// the Landlock tier (none) it is the host's path itself. As root, and as the unprivileged
/// user in a cgroup delegated to it.
#[test]
fn the_attestation_observes_the_commands_membership_of_the_run_cgroups() {
    use std::io::{BufRead, Write};
    if skip_unless_root("the run's cgroups are read from the host") {
        return;
    }
    if !v1_memory_and_pids() {
        skip("no v1 memory and pids hierarchies here");
        return;
    }
    as_each_identity(|sb, who| {
        for tier in ["namespaces", "landlock"] {
            let dir = workdir("membership");
            let env = dir.join("e.json");
            let (sb, delegated, _cgroup) = started_as(sb.clone(), &dir, None);
            let mut child = sb
                .args(["--tier", tier, "--memory", "256M", "--pids", "64"])
                .args(["--envelope", env.to_str().unwrap()])
                .command("run", &["/bin/sh", "-c", "echo ready; read x"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            // The wrapper execs cw-exec: the same process.
            let cw_exec = child.id();
            let mut line = String::new();
            std::io::BufReader::new(child.stdout.as_mut().unwrap())
                .read_line(&mut line)
                .unwrap();
            assert_eq!(line, "ready\n", "{who} {tier}");
            // cw-exec's own cgroups (the sandbox's cgroup namespace is rooted there), and
            // the command's process (the shell) among the run's, as the host sees them.
            let own = std::fs::read_to_string(format!("/proc/{cw_exec}/cgroup")).unwrap();
            let dirs = run_cgroups_of(cw_exec);
            let mut command = None;
            for dir in &dirs {
                let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
                for pid in procs.split_whitespace() {
                    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                    if cmdline.starts_with(b"/bin/sh\0-c\0echo ready") {
                        command = Some(pid.to_string());
                    }
                }
            }
            let host_view = command
                .map(|pid| std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap())
                .unwrap_or_default();
            child.stdin.as_mut().unwrap().write_all(b"\n").unwrap();
            let out = child.wait_with_output().unwrap();
            assert_eq!(out.status.code(), Some(0), "{who} {tier}: {}", stderr(&out));
            let e = envelope(&env);
            assert_eq!(e["status"], "completed", "{who} {tier}");
            assert!(
                !host_view.is_empty(),
                "{who} {tier}: command not found in {dirs:?}"
            );
            for controller in ["memory", "pids"] {
                let entry = limit_entry(&e, controller);
                assert!(
                    entry["mechanism"]
                        .as_str()
                        .unwrap()
                        .starts_with("cgroup-v1"),
                    "{who} {tier}: {entry}"
                );
                let recorded = entry["observed"]["cgroup"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{who} {tier}: no cgroup observed: {entry}"))
                    .to_string();
                let host = cgroup_line(&host_view, controller).unwrap();
                let ours = cgroup_line(&own, controller).unwrap();
                if let Some(rel) = &delegated {
                    assert_eq!(
                        &ours, rel,
                        "{who} {tier}: cw-exec is not in the delegated cgroup"
                    );
                }
                let want = if tier == "namespaces" {
                    // The run's cgroup, relative to the namespace's root: cw-exec's cgroup.
                    format!("{}{recorded}", ours.trim_end_matches('/'))
                } else {
                    recorded.clone()
                };
                assert_eq!(host, want, "{who} {tier} {controller}: {host_view}");
                let name = recorded.rsplit('/').next().unwrap();
                assert!(
                    name.starts_with(&format!("cw-exec-{cw_exec}-")),
                    "{who} {tier} {controller}: {recorded}"
                );
                assert!(
                    dirs.iter()
                        .any(|d| d.ends_with(host.trim_start_matches('/'))),
                    "{who} {tier} {controller}: {host} not among {dirs:?}"
                );
            }
        }
    });
    assert_eq!(leftover_cgroups(), Vec::<std::path::PathBuf>::new());
}

/// A command the kernel shows outside the run's cgroups never runs: its process reads its
/// /proc/self/cgroup before execve, finds it is not where cw-exec said it must be, and the
/// run is refused (exit 125) — nothing of the command executed (the file it would have made
/// is not there), the run's cgroups removed.
///
/// The case is real, not a seam: cw-exec runs with a v1 memory hierarchy bind-mounted from a
/// subtree (`mount --bind <hierarchy>/<elsewhere> /sys/fs/cgroup/memory`, as a container
/// without a cgroup namespace has it), so the cgroup it makes beneath what it takes for its
/// own (`<mount point>/<its /proc/self/cgroup path>`) is really `<elsewhere>/<that path>/…`,
/// not beneath its own cgroup. The limit is written and read back there without a fault;
/// only the command's membership, seen from the sandbox, shows the difference. Both tiers,
/// as root and as the unprivileged user (in a delegated cgroup).
#[test]
fn a_command_outside_the_run_cgroups_is_refused_before_execve() {
    if skip_unless_root("the cgroups are made and bind-mounted by root") {
        return;
    }
    if !v1_memory_and_pids() {
        skip("no v1 memory and pids hierarchies here");
        return;
    }
    let test_own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    as_each_identity(|sb, who| {
        for tier in ["namespaces", "landlock"] {
            let dir = workdir("outside");
            let marker = dir.join("ran");
            let elsewhere = format!(
                "/cwx-elsewhere-{}-{}",
                std::process::id(),
                dir.file_name().unwrap().to_string_lossy()
            );
            let memory_from = std::path::Path::new("/sys/fs/cgroup/memory").join(&elsewhere[1..]);
            // cw-exec's memory cgroup as its /proc/self/cgroup will show it, and the same
            // path beneath <elsewhere>, where the bind mount makes cw-exec make the run's.
            let (sb, delegated, _cgroup) = started_as(sb.clone(), &dir, Some(&memory_from));
            let own = delegated
                .clone()
                .unwrap_or_else(|| cgroup_line(&test_own, "memory").unwrap());
            let _elsewhere = TestCgroup::make(
                &["memory"],
                &format!("{elsewhere}{}", own.trim_end_matches('/')),
                delegated.as_ref().and(unprivileged_user().ok()),
            );
            let env = dir.join("e.json");
            let out = sb
                .args(["--tier", tier, "--memory", "64M"])
                .args(["--write", dir.to_str().unwrap()])
                .args(["--envelope", env.to_str().unwrap()])
                .run(&["/bin/sh", "-c", &format!("echo ran > {}", marker.display())]);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(125), "{who} {tier}: {err}");
            assert!(
                !marker.exists(),
                "{who} {tier}: the command ran although it was outside the run's cgroups"
            );
            assert!(stdout(&out).is_empty(), "{who} {tier}: {}", stdout(&out));
            assert!(
                err.contains("does not prove the command is in the run's cgroups")
                    && err.contains("the cgroup v1 memory hierarchy")
                    && err.contains(&format!("{elsewhere}{}", own.trim_end_matches('/'))),
                "{who} {tier}: {err}"
            );
            let e = envelope(&env);
            assert_eq!(e["status"], "refused", "{who} {tier}: {e}");
            // The run's cgroup, made beneath <elsewhere>, is gone.
            let mut stack = vec![memory_from.clone()];
            while let Some(d) = stack.pop() {
                for entry in std::fs::read_dir(&d).unwrap().flatten() {
                    if entry.file_type().unwrap().is_dir() {
                        let name = entry.file_name().to_string_lossy().into_owned();
                        assert!(
                            !name.starts_with("cw-exec-"),
                            "{who} {tier}: left {}",
                            entry.path().display()
                        );
                        stack.push(entry.path());
                    }
                }
            }
        }
    });
    assert_eq!(leftover_cgroups(), Vec::<std::path::PathBuf>::new());
}
