//! `cw-exec exec --request`: cool-workflow's backend contract. Gate order as in CW: the
//! command allowlist (exact whole-string match), then enforceability, then a missing command.
//! Every outcome is one envelope on stdout.

use serde_json::Value;

use crate::cli::{fail, refusal_envelope, report, say_refused, Refused};
use crate::cw;
use crate::envelope;
use crate::fsio;
use crate::model::{names, Failing, Refusal, RefusalCode, EXIT_NOT_FOUND, EXIT_REFUSED};
use crate::plan::Plan;
use crate::seal;
use crate::supervise;

/// The message cool-workflow's own backends give for a dimension they cannot enforce, or a
/// limit.
fn cannot_enforce(refusal: &Refusal) -> String {
    let how = match &refusal.mechanism {
        Some(m) => format!("{m}: {}", refusal.message),
        None => refusal.message.clone(),
    };
    match &refusal.failing {
        Failing::Dimensions(dims) => format!(
            "Backend {} cannot enforce or attest required sandbox dimension(s): {} ({how})",
            cw::BACKEND_ID,
            names(dims).join(", ")
        ),
        Failing::Limit(limit) => format!(
            "Backend {} cannot enforce limit {limit} ({how})",
            cw::BACKEND_ID
        ),
    }
}

/// `cw-exec exec --request FILE|-`.
pub fn exec(source: &str) -> i32 {
    let read = if source == "-" {
        fsio::read_limited(std::io::stdin().lock(), fsio::MAX_DOCUMENT).and_then(|b| {
            String::from_utf8(b)
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
        })
    } else {
        fsio::read_text(std::path::Path::new(source), fsio::MAX_DOCUMENT)
    };
    let text = match read {
        Ok(t) => t,
        Err(e) => return fail(format!("--request {source}: {e}")),
    };
    let request: cw::RunRequest = match serde_json::from_str(&text) {
        Ok(r) => r,
        Err(e) => {
            return fail(format!(
                "--request {source}: not a cool-workflow run request: {e}"
            ))
        }
    };
    let kind = envelope::Kind::Delegating;
    let policy = &request.sandbox_policy;
    let label = request.label();
    let argv = request.argv();
    // The key exists before any sandbox of this request does; an untrusted one refuses it.
    let (signer, key_refusal) = match seal::Signer::open(None) {
        Ok(s) => (Some(s), None),
        Err(e) => (None, Some(e)),
    };
    let print = |v: &Value, signer: Option<&seal::Signer>| {
        let mut v = v.clone();
        if let Some(signer) = signer {
            signer.seal(&mut v);
        }
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default())
    };
    // Every refusal here prints its envelope and ends the request.
    let refused = |refusal: Refusal| {
        let refused = Refused {
            refusal,
            profile_id: policy.id.clone(),
            required: policy.required(),
            logs_dir: None,
        };
        print(&refusal_envelope(&refused, &label, kind), signer.as_ref());
        EXIT_REFUSED
    };
    if let Some(e) = key_refusal {
        return refused(Refusal::bad(e));
    }

    if !argv.is_empty() {
        if let Some(denied) = policy.command_denied(&argv.join(" ")) {
            return refused(Refusal::other(RefusalCode::CommandDenied, denied));
        }
    }
    let mut req = match cw::lower(policy, &policy.effective_write_set(), false) {
        Ok(r) => r,
        Err(refusal) => {
            let message = format!(
                "Backend {} cannot enforce or attest required sandbox dimension(s): {} ({})",
                cw::BACKEND_ID,
                names(&refusal.dimensions_at_fault()).join(", "),
                refusal.message
            );
            return refused(Refusal { message, ..refusal });
        }
    };
    if argv.is_empty() {
        let message = format!("Backend {} requires a command to execute", cw::BACKEND_ID);
        return refused(Refusal::other(RefusalCode::NoCommand, message));
    }
    if let Err(e) = cw::prepare_outputs(policy, &policy.effective_write_set()) {
        return refused(Refusal::bad(e));
    }
    req.command = argv;
    req.cwd = request
        .cwd
        .clone()
        .or_else(|| policy.metadata.as_ref().and_then(|m| m.cwd.clone()));
    req.limits.timeout = request.timeout_ms.map(|ms| ms as f64 / 1000.0);
    let plan = match Plan::build(&req) {
        Ok(plan) => plan,
        Err(refusal) if refusal.code == RefusalCode::CommandNotFound => {
            // CW's local drivers report a command that cannot be spawned as a failed run.
            let message = refusal.message;
            eprintln!("cw-exec: {message}");
            let facts = policy.facts(vec![]);
            let att = envelope::attestation(
                &facts,
                &[],
                &[],
                kind,
                None,
                vec![format!("exec failed: {message}")],
            );
            let handle = serde_json::json!({"kind": "process", "ref": req.command.join(" "), "metadata": {"exitCode": EXIT_NOT_FOUND}});
            print(
                &envelope::completed(
                    &req.command.join(" "),
                    Some(EXIT_NOT_FOUND),
                    envelope::EMPTY_SHA256,
                    &label,
                    att,
                    handle,
                    kind,
                ),
                signer.as_ref(),
            );
            return EXIT_NOT_FOUND;
        }
        Err(refusal) if refusal.code == RefusalCode::Unenforceable => {
            let refusal = Refusal {
                message: cannot_enforce(&refusal),
                mechanism: None,
                ..refusal
            };
            say_refused(&refusal);
            return refused(refusal);
        }
        Err(refusal) => return refused(refusal),
    };
    let capture = supervise::Capture {
        stdout: true,
        forward_stdout: false,
        stderr: false,
    };
    if let Some(Err(e)) = signer.as_ref().map(|s| s.check_plan(&plan)) {
        return refused(Refusal::bad(e));
    }
    let (plan, outcome) = supervise::run_falling_back(&req, plan, capture);
    report(&plan, &outcome);
    print(
        &envelope::for_run(&plan, &outcome, &label, kind),
        signer.as_ref(),
    );
    outcome.exit_code
}
