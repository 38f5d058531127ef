//! cool-workflow's ExecutionResultEnvelope, built from a plan and a run's outcome.
//! Field names, evidence strings and summaries follow ../shared/contracts/cool-workflow.md
//! exactly; cw-exec's additions live inside `provenance.attestation.kernel` and
//! `provenance.handle.metadata`, where CW keeps what it does not interpret.

use serde_json::{json, Value};

use crate::attest::{self, Verdict};
use crate::model::{names, Dimension, Failing, PolicyFacts};
use crate::plan::Plan;
use crate::supervise::Outcome;

pub const BACKEND_ID: &str = "cw-exec";

/// The refusal code for a sandbox that cannot be built or proven.
pub const UNENFORCEABLE: &str = "sandbox-unenforceable";

/// How the envelope names cw-exec's role: `local` when it wraps a command itself
/// (`cw-exec run`), `delegating` when CW delegates a request to it (`cw-exec exec`).
#[derive(Clone, Copy)]
pub enum Kind {
    Local,
    Delegating,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Local => "local",
            Kind::Delegating => "delegating",
        }
    }
}

/// sha256 of nothing: the digest of a command that produced no stdout.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

pub fn evidence_completed(
    command_line: &str,
    exit_code: Option<i32>,
    stdout_sha256: &str,
) -> Vec<String> {
    vec![
        format!("command:{command_line}"),
        format!(
            "exitCode:{}",
            exit_code
                .map(|c| c.to_string())
                .unwrap_or_else(|| "null".into())
        ),
        format!("stdoutSha256:sha256:{stdout_sha256}"),
    ]
}

pub fn evidence_refused(code: &str, profile_id: &str) -> Vec<String> {
    vec![
        format!("refused:{code}"),
        format!("backend:{BACKEND_ID}"),
        format!("sandbox:{profile_id}"),
    ]
}

/// The attestation object. As in cool-workflow, `enforced`, `attested` and `unenforceable`
/// partition the *required* dimensions, and `guarantees` labels all five; the kernel
/// section (when there is one) proves each dimension, required or not.
pub fn attestation(
    facts: &PolicyFacts,
    enforced: &[Dimension],
    unenforceable: &[Dimension],
    kind: Kind,
    kernel: Option<Value>,
    mut notes: Vec<String>,
) -> Value {
    let enforced: Vec<Dimension> = facts
        .required
        .iter()
        .copied()
        .filter(|d| enforced.contains(d))
        .collect();
    let unenforceable: Vec<Dimension> = facts
        .required
        .iter()
        .copied()
        .filter(|d| unenforceable.contains(d))
        .collect();
    let guarantees: serde_json::Map<String, Value> = Dimension::ALL
        .iter()
        .map(|d| {
            (
                d.as_str().to_string(),
                json!(if enforced.contains(d) {
                    "enforced"
                } else {
                    "absent"
                }),
            )
        })
        .collect();
    let status = if !unenforceable.is_empty() {
        "refused"
    } else if !enforced.is_empty() {
        "enforced"
    } else {
        "attested"
    };
    notes.splice(0..0, facts.notes.iter().cloned());
    let mut out = json!({
        "schemaVersion": 1,
        "backendId": BACKEND_ID,
        "locality": "local",
        "kind": kind.as_str(),
        "sandboxProfileId": facts.profile_id,
        "required": names(&facts.required),
        "enforced": names(&enforced),
        "attested": [],
        "unenforceable": names(&unenforceable),
        "status": status,
        "guarantees": guarantees,
        "enforcedByCW": facts.enforced_by_cw,
        "hostRequired": facts.host_required,
        "recordedAt": attest::now_iso8601(),
        "notes": notes,
    });
    if let Some(k) = kernel {
        out["kernel"] = k;
    }
    out
}

/// What each limit that ended or cut the run did, with how it was asked for and the exit
/// code it gives (README "Exit codes"): the envelope's notes, and cw-exec's stderr.
pub fn limit_notes(plan: &Plan, outcome: &Outcome) -> Vec<String> {
    let asked = |limit: &str, unit: &str| {
        plan.limits
            .reports
            .iter()
            .find(|r| r.limit == limit)
            .map(|r| format!("{}{unit} ({})", r.requested, r.asked))
            .unwrap_or_default()
    };
    // How a limit's signal reached the command: directly, or as a shell's exit code for a
    // child it killed (128 + the signal).
    let by_signal = |sig: i32, name: &str| {
        if outcome.signal == Some(sig) {
            format!("the command was killed by {name}")
        } else {
            format!(
                "the command exited {} (128 + {name}: how a shell reports a child killed by it)",
                128 + sig
            )
        }
    };
    let mut notes = vec![];
    if outcome.cpu_exceeded {
        let how = if outcome.signal == Some(libc::SIGKILL) {
            "cw-exec's whole-sandbox accounting saw it and killed the process tree".to_string()
        } else {
            format!(
                "a process reached RLIMIT_CPU first: {}",
                by_signal(libc::SIGXCPU, "SIGXCPU")
            )
        };
        notes.push(format!(
            "cpu: the sandbox used up its CPU time limit of {}: {how} (exit {})",
            asked("cpu", ""),
            crate::model::EXIT_CPU
        ));
    }
    if outcome.oom_killed {
        notes.push(format!(
            "memory: the sandbox reached its memory limit of {}; the kernel OOM-killed a process (exit 137 if that was the command, else the command's own code)",
            asked("memory", " bytes")
        ));
    }
    if outcome.pids_refused > 0 {
        notes.push(format!(
            "pids: the sandbox reached its limit of {}; the kernel refused {} fork/clone calls (EAGAIN); the exit code is the command's",
            asked("pids", " processes"),
            outcome.pids_refused
        ));
    }
    if outcome.fsize_exceeded {
        notes.push(format!(
            "fsize: a process wrote past the file size limit of {}: {} (exit {})",
            asked("fsize", " bytes"),
            by_signal(libc::SIGXFSZ, "SIGXFSZ"),
            128 + libc::SIGXFSZ
        ));
    }
    if outcome.output_dropped > 0 {
        notes.push(format!(
            "output truncated: {} bytes of stdout and stderr past the output limit of {} were dropped; stdoutSha256 covers the {} stdout bytes passed through; the exit code is the command's",
            outcome.output_dropped,
            asked("output", " bytes"),
            outcome.stdout_bytes
        ));
    }
    notes
}

/// Adds to each limit entry of the attestation's kernel section what the kernel held in the
/// limit files cw-exec wrote for it, as read back right after each write: `observed`, an
/// object of file name to value (`{"pids.max": "64"}`). Only limits a cgroup enforces have
/// it; every other field is unchanged.
fn add_observed_limits(kernel: &mut Value, observed: &[(&'static str, &'static str, String)]) {
    let Some(entries) = kernel["limits"].as_array_mut() else {
        return;
    };
    for (limit, file, value) in observed {
        if let Some(entry) = entries.iter_mut().find(|e| e["limit"] == *limit) {
            if !entry["observed"].is_object() {
                entry["observed"] = json!({});
            }
            entry["observed"][*file] = json!(value);
        }
    }
}

/// The envelope for a run that got as far as a plan.
pub fn for_run(plan: &Plan, outcome: &Outcome, label: &str, kind: Kind) -> Value {
    let facts = plan.facts();
    let verdict = match &outcome.readback {
        Some(rb) => attest::verdict(plan, rb),
        None => Verdict {
            required: plan.required(),
            ..Default::default()
        },
    };
    let mut kernel = attest::kernel_section(plan, outcome.readback.as_ref(), &verdict);
    add_observed_limits(&mut kernel, &outcome.limits_observed);
    if let Some(policy) = &plan.proxy {
        let mut network = policy.describe();
        network["decisions"] = json!(outcome.net_decisions);
        kernel["network"] = network;
    }
    let mut notes = vec![];
    if outcome.timed_out {
        notes.push(format!(
            "timeout: killed after {:.3}s (limit {:.3}s)",
            outcome.duration.as_secs_f64(),
            plan.timeout.map(|t| t.as_secs_f64()).unwrap_or(0.0)
        ));
    }
    if let Some(e) = &outcome.exec_error {
        notes.push(format!("exec failed: {e}"));
    }
    notes.extend(limit_notes(plan, outcome));
    if let (Some(grace), Some(sig)) = (outcome.killed_after, outcome.forwarded) {
        notes.push(format!(
            "signal: the command had not ended {}s (kill-after) after signal {sig} was forwarded; the process tree was killed",
            grace.as_secs_f64()
        ));
    }
    // A refusal means nothing was run: nothing counts as enforced for it, and what was not
    // proven (everything, if the sandbox was never built) is unenforceable.
    let (enforced, unenforceable) = match &outcome.refusal {
        None => {
            let missing = facts
                .required
                .iter()
                .copied()
                .filter(|d| !verdict.enforced.contains(d))
                .collect();
            (verdict.enforced.clone(), missing)
        }
        Some(_) if !verdict.unenforceable.is_empty() => (vec![], verdict.unenforceable.clone()),
        // The sandbox's limits could not be put in place: a limit, not a dimension, failed.
        Some(r) if matches!(r.failing, Failing::Limit(_)) => (vec![], vec![]),
        Some(_) => (vec![], facts.required.clone()),
    };
    let attestation = attestation(
        &facts,
        &enforced,
        &unenforceable,
        kind,
        Some(kernel.clone()),
        notes,
    );
    let handle = json!({
        "kind": "process",
        "ref": plan.command_line(),
        "metadata": {
            "command": plan.argv.first(),
            "args": plan.argv.get(1..).unwrap_or(&[]),
            "exitCode": outcome.exit_code,
            "childExitCode": outcome.child_code,
            "signal": outcome.signal,
            "timedOut": outcome.timed_out,
            "cpuLimitExceeded": outcome.cpu_exceeded,
            "oomKilled": outcome.oom_killed,
            "fsizeExceeded": outcome.fsize_exceeded,
            "pidsRefused": outcome.pids_refused,
            "outputTruncated": outcome.output_dropped > 0,
            "outputDroppedBytes": outcome.output_dropped,
            "durationMs": outcome.duration.as_millis() as u64,
            "stdoutBytes": outcome.stdout_bytes,
            "stdin": outcome.stdin,
            "kernel": kernel,
        },
    });
    if let Some(refusal) = &outcome.refusal {
        let reason = format!(
            "{}: {}",
            refusal.mechanism.as_deref().unwrap_or("set-up"),
            refusal.message
        );
        return refused(
            &facts.profile_id,
            label,
            UNENFORCEABLE,
            &reason,
            attestation,
            Some(handle),
            kind,
        );
    }
    let sha = outcome
        .stdout_sha256
        .clone()
        .unwrap_or_else(|| EMPTY_SHA256.into());
    completed(
        &plan.command_line(),
        outcome.child_code,
        &sha,
        label,
        attestation,
        handle,
        kind,
    )
}

/// A completed or failed envelope.
pub fn completed(
    command_line: &str,
    exit_code: Option<i32>,
    stdout_sha256: &str,
    label: &str,
    attestation: Value,
    handle: Value,
    kind: Kind,
) -> Value {
    let evidence = evidence_completed(command_line, exit_code, stdout_sha256);
    let (status, summary) = if exit_code == Some(0) {
        ("completed", format!("{label}: completed (exit 0)"))
    } else {
        let shown = exit_code
            .map(|c| c.to_string())
            .unwrap_or_else(|| "null".into());
        ("failed", format!("{label}: failed (exit {shown})"))
    };
    json!({
        "schemaVersion": 1,
        "status": status,
        "result": { "summary": summary, "findings": [], "evidence": evidence },
        "evidence": evidence,
        "provenance": {
            "schemaVersion": 1,
            "backendId": BACKEND_ID,
            "locality": "local",
            "kind": kind.as_str(),
            "attestation": attestation,
            "handle": handle,
        },
    })
}

/// A refusal envelope: nothing was executed.
pub fn refused(
    profile_id: &str,
    label: &str,
    code: &str,
    reason: &str,
    mut attestation: Value,
    handle: Option<Value>,
    kind: Kind,
) -> Value {
    let evidence = evidence_refused(code, profile_id);
    attestation["status"] = json!("refused");
    if let Some(notes) = attestation["notes"].as_array_mut() {
        notes.push(json!(format!("refused: {code}")));
    }
    let mut provenance = json!({
        "schemaVersion": 1,
        "backendId": BACKEND_ID,
        "locality": "local",
        "kind": kind.as_str(),
        "attestation": attestation,
    });
    if let Some(h) = handle {
        provenance["handle"] = h;
    }
    json!({
        "schemaVersion": 1,
        "status": "refused",
        "result": { "summary": format!("{label}: refused ({code}) — {reason}"), "findings": [], "evidence": evidence },
        "evidence": evidence,
        "provenance": provenance,
    })
}
