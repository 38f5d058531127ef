//! cool-workflow's ExecutionResultEnvelope, built from a plan and a run's outcome.
//! Field names, evidence strings and summaries follow ../shared/contracts/cool-workflow.md
//! exactly; cw-exec's additions live inside `provenance.attestation.kernel` and
//! `provenance.handle.metadata`, where CW keeps what it does not interpret.

use serde_json::{json, Value};

use crate::attest::{self, Verdict, DIMENSIONS};
use crate::plan::Plan;
use crate::supervise::Outcome;

pub const BACKEND_ID: &str = "cw-exec";

/// The refusal code for a sandbox that cannot be built or proven.
pub const UNENFORCEABLE: &str = "sandbox-unenforceable";

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

/// The attestation object, with the kernel section.
pub fn attestation(
    plan: &Plan,
    verdict: &Verdict,
    refused: bool,
    kernel: Value,
    notes: Vec<String>,
) -> Value {
    let attested: Vec<&str> = DIMENSIONS
        .iter()
        .copied()
        .filter(|d| !verdict.enforced.contains(d) && !verdict.required.contains(d))
        .collect();
    let status = if refused {
        "refused"
    } else if !verdict.enforced.is_empty() {
        "enforced"
    } else {
        "attested"
    };
    json!({
        "schemaVersion": 1,
        "backendId": BACKEND_ID,
        "locality": "local",
        "kind": "local",
        "sandboxProfileId": plan.profile_id,
        "required": verdict.required,
        "enforced": if refused { vec![] } else { verdict.enforced.clone() },
        "attested": attested,
        "unenforceable": verdict.unenforceable,
        "status": status,
        "enforcedByCW": [],
        "hostRequired": [],
        "recordedAt": attest::now_iso8601(),
        "notes": notes,
        "kernel": kernel,
    })
}

/// The envelope for a run that got as far as a plan.
pub fn for_run(plan: &Plan, outcome: &Outcome, label: &str) -> Value {
    let mut verdict = match &outcome.readback {
        Some(rb) => attest::verdict(plan, rb),
        None => Verdict {
            required: attest::required(plan),
            ..Default::default()
        },
    };
    let refused = outcome.refusal.is_some();
    if refused && verdict.unenforceable.is_empty() {
        // Nothing was proven because the sandbox never got as far as the read-back.
        verdict.unenforceable = verdict.required.clone();
    }
    let kernel = attest::kernel_section(plan, outcome.readback.as_ref(), &verdict);
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
    if outcome.cpu_exceeded {
        notes.push(
            "cpu: the sandbox exceeded its CPU time limit; the process tree was killed".into(),
        );
    }
    if outcome.oom_killed {
        notes.push(
            "memory: the sandbox reached its memory limit; the kernel OOM-killed a process".into(),
        );
    }
    if outcome.output_dropped > 0 {
        notes.push(format!(
            "output truncated: {} bytes past the output limit were dropped; stdoutSha256 covers the {} stdout bytes passed through",
            outcome.output_dropped, outcome.stdout_bytes
        ));
    }
    let attestation = attestation(plan, &verdict, refused, kernel, notes);
    let metadata = json!({
        "exitCode": outcome.exit_code,
        "childExitCode": outcome.child_code,
        "signal": outcome.signal,
        "timedOut": outcome.timed_out,
        "cpuLimitExceeded": outcome.cpu_exceeded,
        "oomKilled": outcome.oom_killed,
        "outputTruncated": outcome.output_dropped > 0,
        "outputDroppedBytes": outcome.output_dropped,
        "durationMs": outcome.duration.as_millis() as u64,
        "stdoutBytes": outcome.stdout_bytes,
    });
    if let Some((step, message)) = &outcome.refusal {
        let reason = format!("{step}: {message}");
        return refused_envelope(
            &plan.profile_id,
            label,
            UNENFORCEABLE,
            &reason,
            attestation,
            Some(metadata),
        );
    }
    let sha = outcome.stdout_sha256.clone().unwrap_or_default();
    let evidence = evidence_completed(&plan.command_line(), outcome.child_code, &sha);
    let (status, summary) = if outcome.exit_code == 0 {
        ("completed", format!("{label}: completed (exit 0)"))
    } else {
        let shown = outcome
            .child_code
            .map(|c| c.to_string())
            .unwrap_or_else(|| outcome.exit_code.to_string());
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
            "kind": "local",
            "attestation": attestation,
            "handle": { "kind": "process", "metadata": metadata },
        },
    })
}

/// A refusal envelope: nothing was executed.
pub fn refused_envelope(
    profile_id: &str,
    label: &str,
    code: &str,
    reason: &str,
    attestation: Value,
    metadata: Option<Value>,
) -> Value {
    let evidence = evidence_refused(code, profile_id);
    let mut provenance = json!({
        "schemaVersion": 1,
        "backendId": BACKEND_ID,
        "locality": "local",
        "kind": "local",
        "attestation": attestation,
    });
    if let Some(m) = metadata {
        provenance["handle"] = json!({ "kind": "process", "metadata": m });
    }
    json!({
        "schemaVersion": 1,
        "status": "refused",
        "result": { "summary": format!("{label}: refused ({code}) — {reason}"), "findings": [], "evidence": evidence },
        "evidence": evidence,
        "provenance": provenance,
    })
}

/// An attestation for a request refused before a plan existed (bad input, no Landlock).
pub fn bare_refusal_attestation(profile_id: &str, reason: &str, unenforceable: &[&str]) -> Value {
    json!({
        "schemaVersion": 1,
        "backendId": BACKEND_ID,
        "locality": "local",
        "kind": "local",
        "sandboxProfileId": profile_id,
        "required": ["read", "write", "env"],
        "enforced": [],
        "attested": [],
        "unenforceable": unenforceable,
        "status": "refused",
        "enforcedByCW": [],
        "hostRequired": [],
        "recordedAt": attest::now_iso8601(),
        "notes": [reason],
    })
}
