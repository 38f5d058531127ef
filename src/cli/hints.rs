//! What a failed run could not see: each path named on the command line (the resolved
//! command, every argument that names a path, `--opt=PATH` values) and the working directory
//! that exists on the host but is not visible in the sandbox, with the flag that would grant
//! it. Printed on stderr after a run that failed; stdout stays the child's.

use std::path::{Path, PathBuf};

use crate::plan::Plan;

/// Places the sandbox has its own of (or never shows): not reported.
const OWN_TREES: &[&str] = &["/proc", "/sys", "/dev"];

/// The paths the command line names, resolved against the working directory, in order and
/// without repeats: the command as resolved, each argument containing a `/` (or the value of
/// an `--opt=value` argument containing one), then the working directory.
fn named(plan: &Plan) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = vec![plan.command_path.clone()];
    for arg in plan.argv.iter().skip(1) {
        let word = match arg.split_once('=') {
            Some((opt, value)) if opt.starts_with('-') => value,
            _ if arg.starts_with('-') => continue,
            _ => arg.as_str(),
        };
        if word.contains('/') {
            out.push(plan.cwd.join(word));
        }
    }
    out.push(plan.cwd.clone());
    let mut seen = vec![];
    out.retain(|p| {
        let new = !seen.contains(p);
        seen.push(p.clone());
        new
    });
    out
}

/// Whether a resolved host path is visible in the sandbox: the deepest grant covering it
/// (user grants, the agent's installation, the runtime allowance; never the private tmp) is
/// deeper than any credential mask covering it.
fn visible(plan: &Plan, path: &Path) -> bool {
    // A bind's host side is not at its host path in the view; its sandbox path is.
    if plan.binds.iter().any(|b| path.starts_with(&b.sandbox)) {
        return true;
    }
    let grant = plan
        .all_grants()
        .filter(|g| !plan.binds.iter().any(|b| std::ptr::eq(&b.grant, *g)))
        .filter(|g| !g.per_run && path.starts_with(&g.path))
        .map(|g| g.path.components().count())
        .max();
    let mask = plan
        .masks
        .iter()
        .filter(|m| path.starts_with(&m.path))
        .map(|m| m.path.components().count())
        .max();
    match (grant, mask) {
        (Some(g), Some(m)) => g > m,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// The paths named on the command line (and the working directory) that exist on the host
/// but are not visible in the sandbox, each resolved (symlinks followed).
pub fn unseen(plan: &Plan) -> Vec<PathBuf> {
    let mut out = vec![];
    for path in named(plan) {
        let Ok(resolved) = std::fs::canonicalize(&path) else {
            continue; // not on the host either
        };
        // The sandbox's /tmp is always its own: granting "/tmp" grants that, not the host's.
        if OWN_TREES.iter().any(|t| resolved.starts_with(t))
            || resolved == Path::new(crate::plan::PRIVATE_TMP)
        {
            continue;
        }
        if !visible(plan, &resolved) && !out.contains(&resolved) {
            out.push(resolved);
        }
    }
    out
}

/// Prints one line per path the failed run could not see, with the flag that grants it.
pub fn print(plan: &Plan) {
    for path in unseen(plan) {
        let what = if path == plan.cwd {
            "the working directory"
        } else {
            "named on the command line"
        };
        let p = path.display();
        eprintln!(
            "cw-exec: hint: {p} ({what}) exists on the host but is not visible in the sandbox; --read {p} would grant it (--write {p} to modify it)"
        );
    }
}
