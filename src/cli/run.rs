//! `cw-exec run`: the policy from a profile, flags or a cool-workflow manifest, lowered to a
//! plan, contained, run, and attested to `--envelope` (and a worker's logs).

use std::path::PathBuf;

use super::{
    deliver, fail, plan_failure, refuse, report, requested_write_set, write_set, Refused, RunArgs,
};
use crate::plan::Plan;
use crate::{cw, envelope, seal, sink, supervise};

/// `cw-exec run`: plan, contain, run, attest.
pub fn run(args: &RunArgs) -> i32 {
    crate::timings::mark("cw-exec started");
    let label = args.command.join(" ");
    let envelope_to = args.envelope.as_deref();
    if args.nonce.is_some() && envelope_to.is_none() && args.manifest.is_none() {
        return fail("--nonce: there is nothing to sign without --envelope (or --manifest)");
    }
    // The key exists before any sandbox of this run does (so that none can plant one).
    let signer = match seal::Signer::open(args.nonce.as_deref()) {
        Ok(s) => s,
        Err(e) => return refuse(&Refused::bad(e), &label, envelope_to, &[], None),
    };
    crate::timings::mark("signing key opened");
    let (request, policy) = match args.lowered() {
        Ok(r) => r,
        Err(refusal) => return refuse(&refusal, &label, envelope_to, &[], Some(&signer)),
    };
    // A worker whose policy allows logs keeps its attestation there.
    let logs_dir = policy.as_ref().and_then(cw::SandboxPolicy::logs_dir);
    if let Some(policy) = &policy {
        let write_set: Vec<PathBuf> = request.write.iter().map(PathBuf::from).collect();
        if let Err(e) = cw::prepare_outputs(policy, &write_set) {
            let refusal = Refused {
                profile_id: policy.id.clone(),
                ..Refused::bad(e)
            };
            return refuse(&refusal, &label, envelope_to, &write_set, Some(&signer));
        }
    }
    let plan = match Plan::build(&request) {
        Ok(plan) => plan,
        Err(err) => {
            let (sinks, errors) = sink::open(
                envelope_to,
                logs_dir.as_deref(),
                &requested_write_set(&request),
            );
            return plan_failure(&request, &label, err, sinks, errors, Some(&signer));
        }
    };
    if let Err(e) = signer.check_plan(&plan) {
        return refuse(
            &Refused::bad(e),
            &label,
            envelope_to,
            &write_set(&plan),
            None,
        );
    }
    crate::timings::mark("plan: seccomp program compiled, signing key checked");
    // The destinations are opened now, before the sandbox exists, and held.
    let (sinks, errors) = sink::open(envelope_to, logs_dir.as_deref(), &write_set(&plan));
    if let Some(e) = errors.first() {
        return fail(e);
    }
    let capture = supervise::Capture {
        stdout: !sinks.is_empty() || plan.limits.output.is_some(),
        forward_stdout: true,
        stderr: plan.limits.output.is_some(),
    };
    let (plan, outcome) = supervise::run_falling_back(&request, plan, capture);
    report(&plan, &outcome);
    if outcome.exit_code != 0 && outcome.refusal.is_none() {
        super::hints::print(&plan);
    }
    // The envelope is built only when it goes somewhere (it costs half a millisecond).
    let code = if sinks.is_empty() {
        outcome.exit_code
    } else {
        let envelope = envelope::for_run(&plan, &outcome, &label, envelope::Kind::Local);
        deliver(sinks, envelope, outcome.exit_code, Some(&signer))
    };
    if plan.timings {
        crate::timings::mark("envelope written");
        let mut marks = crate::timings::take();
        marks.extend(outcome.marks.iter().cloned());
        crate::timings::print(marks);
    }
    code
}
