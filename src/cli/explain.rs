//! `cw-exec explain`: the plan as text — paths, mounts, Landlock rules, seccomp, env,
//! limits and known gaps — without running anything.

use super::{fail, RunArgs};
use crate::plan::Plan;

/// `cw-exec explain`.
pub fn explain(args: &RunArgs) -> i32 {
    let request = match args.lowered() {
        Ok((request, _)) => request,
        Err(refused) => return fail(refused.refusal.message),
    };
    let plan = match Plan::build(&request) {
        Ok(plan) => plan,
        Err(refusal) => {
            eprintln!("cw-exec: {refusal}");
            return refusal.exit_status();
        }
    };
    print!("{}", describe(&plan));
    0
}

/// The plan as text, for `cw-exec explain`.
pub fn describe(plan: &Plan) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "profile      {}", plan.profile_id);
    let _ = writeln!(
        s,
        "command      {} (execve {})",
        plan.command_line(),
        plan.command_path.display()
    );
    let _ = writeln!(
        s,
        "tier         {}{}",
        plan.tier.as_str(),
        plan.tier_reason
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    );
    for (grant, around) in &plan.split {
        let _ = writeln!(
            s,
            "split        {} into its entries, around {} (Landlock cannot hide a path beneath a grant; entries created later are not covered)",
            grant.display(),
            around
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Some(policy) = &plan.proxy {
        let d = policy.describe();
        let _ = writeln!(
            s,
            "egress       only through cw-exec's proxy at {}: allow {}, deny {}, resolve {}",
            d["proxy"].as_str().unwrap_or_default(),
            d["allow"],
            d["deny"],
            d["resolve"]
        );
    }
    let _ = writeln!(s, "cwd          {}", plan.cwd.display());
    let _ = writeln!(
        s,
        "home         {}",
        match &plan.private_home {
            Some(h) => format!(
                "{} (private: an empty directory of the run's tmpfs; profile key home = \"read\" or \"write\" for the real one)",
                h.display()
            ),
            None => "as granted".to_string(),
        }
    );
    for skipped in &plan.skipped {
        let _ = writeln!(
            s,
            "skipped      {} (the caller cannot read it: left out of the expanded grant)",
            skipped.display()
        );
    }
    let _ = writeln!(
        s,
        "private tmp  {} (a tmpfs of this sandbox, gone when it ends; at most {} bytes)",
        plan.tmp.display(),
        plan.limits.tmpfs_size
    );
    let _ = writeln!(s, "network      {}", plan.net);
    let _ = writeln!(
        s,
        "exec         {}",
        if plan.exec_allowlist {
            "allowlist (only files marked exec)"
        } else {
            "any readable file"
        }
    );
    if !plan.native_code {
        let _ = writeln!(
            s,
            "native code  refused: no executable memory the program writes (exec.native_code = false)"
        );
    }
    if let Some(t) = plan.timeout {
        let _ = writeln!(s, "timeout      {:.3}s", t.as_secs_f64());
    }
    for r in &plan.limits.reports {
        let _ = writeln!(
            s,
            "limit        {} = {} by {}{} [{}]\n               covers: {}",
            r.limit,
            r.requested,
            r.mechanism,
            if r.whole_sandbox {
                ""
            } else {
                " (per process)"
            },
            if r.explicit {
                "explicit: binds as asked"
            } else {
                "profile default: best available"
            },
            r.coverage
        );
    }
    for q in &plan.quotas {
        let _ = writeln!(
            s,
            "quota        {} = {} by {} ({})",
            q.limit,
            q.value,
            q.mechanism(),
            q.coverage()
        );
    }
    let _ = writeln!(s, "\ngrants (Landlock ABI {}):", plan.landlock.0);
    for g in &plan.grants {
        let _ = writeln!(
            s,
            "  {:<14} {}{}",
            g.access.describe(),
            g.path.display(),
            if g.requested != g.path.to_string_lossy() {
                format!("  (from {})", g.requested)
            } else {
                String::new()
            }
        );
    }
    if !plan.binds.is_empty() {
        let _ = writeln!(
            s,
            "\nbinds (host path at another sandbox path; Landlock rule from the host object):"
        );
        for b in &plan.binds {
            let _ = writeln!(
                s,
                "  {:<14} {} -> {}",
                b.grant.access.describe(),
                b.grant.path.display(),
                b.sandbox.display()
            );
        }
    }
    if let Some((uid, gid)) = plan.run_as {
        let _ = writeln!(
            s,
            "\nruns as     {uid}:{gid} (--user; the caller is {}:{})",
            plan.uid, plan.gid
        );
    }
    let _ = writeln!(s, "\nruntime allowance:");
    for g in &plan.runtime {
        let _ = writeln!(s, "  {:<14} {}", g.access.describe(), g.path.display());
    }
    let _ = writeln!(s, "\nmount view:");
    for m in crate::kernel::mount_view::describe(&plan.view()) {
        let _ = writeln!(s, "  {m}");
    }
    let _ = writeln!(
        s,
        "\nseccomp ({} filters, sha256 {}):",
        plan.seccomp.filters.len(),
        plan.seccomp.sha256
    );
    for d in &plan.seccomp.denies {
        let _ = writeln!(s, "  deny {d}");
    }
    let _ = writeln!(s, "\nenvironment (built from scratch; names only):");
    let _ = writeln!(
        s,
        "  {}",
        plan.env.keys().cloned().collect::<Vec<_>>().join(" ")
    );
    let _ = writeln!(
        s,
        "\nrequired dimensions: {}",
        crate::model::names(&plan.required()).join(", ")
    );
    for (dim, gaps) in crate::attest::gaps(plan) {
        for g in gaps {
            let _ = writeln!(s, "  gap ({dim}): {g}");
        }
    }
    s
}
