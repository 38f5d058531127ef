//! cool-workflow's backend payloads for cw-exec: the descriptor, the probe result, and the
//! `backend` subcommand that prints them.

use serde_json::{json, Value};

use crate::cli::{fail, BackendCommand};
use crate::envelope::BACKEND_ID;

/// The dimensions this kernel can enforce, from `cw-exec probe`'s checks.
pub fn enforceable() -> Vec<(&'static str, bool, String)> {
    crate::probe::dimensions(&crate::probe::checks())
}

/// CW's BackendDescriptor for cw-exec, with capabilities from this kernel's probe.
pub fn descriptor() -> Value {
    let dims = enforceable();
    let ready = dims.iter().all(|(_, ok, _)| *ok);
    let capabilities: Vec<Value> = dims
        .iter()
        .map(|(d, ok, how)| json!({"dimension": d, "support": if *ok { "enforce" } else { "unsupported" }, "detail": how}))
        .collect();
    let enforces: Vec<&str> = dims
        .iter()
        .filter(|(_, ok, _)| *ok)
        .map(|(d, _, _)| *d)
        .collect();
    json!({
        "schemaVersion": 1,
        "id": BACKEND_ID,
        "title": "cw-exec (kernel-enforced sandbox)",
        "description": "Runs each command under Landlock, seccomp and namespaces, enforcing read, write, command, network and env with kernel primitives before exec; refuses when the kernel cannot enforce a required dimension; attests what the kernel reported from inside the sandbox.",
        "kind": "delegating",
        "locality": "local",
        "default": false,
        "capabilities": capabilities,
        "enforces": enforces,
        "attests": [],
        "delegate": BACKEND_ID,
        "readiness": if ready { "ready" } else { "unavailable" },
    })
}

/// CW's BackendProbeResult for cw-exec.
pub fn probe_result() -> Value {
    let checks = crate::probe::checks();
    let dims = crate::probe::dimensions(&checks);
    let ready = dims.iter().all(|(_, ok, _)| *ok);
    let enforces: Vec<&str> = dims
        .iter()
        .filter(|(_, ok, _)| *ok)
        .map(|(d, _, _)| *d)
        .collect();
    let mut out = json!({
        "schemaVersion": 1,
        "backendId": BACKEND_ID,
        "locality": "local",
        "kind": "delegating",
        "readiness": if ready { "ready" } else { "unavailable" },
        "ready": ready,
        "enforces": enforces,
        "attests": [],
        "checks": checks.iter().map(|c| json!({"name": c.name, "ok": c.ok, "detail": c.detail})).collect::<Vec<_>>(),
    });
    if !ready {
        let missing: Vec<String> = checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect();
        out["reason"] = json!(format!(
            "cannot enforce every dimension here ({})",
            missing.join("; ")
        ));
    }
    out
}

/// `cw-exec backend list | show ID | probe [ID]`.
pub fn backend(cmd: BackendCommand) -> i32 {
    let print =
        |v: &serde_json::Value| println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    let not_found = |id: &str| {
        fail(format!(
            "Execution backend not found: {id} (available: {})",
            BACKEND_ID
        ))
    };
    match cmd {
        BackendCommand::List => {
            print(
                &serde_json::json!({"schemaVersion": 1, "default": BACKEND_ID, "backends": [descriptor()]}),
            );
            0
        }
        BackendCommand::Show { id } if id == BACKEND_ID => {
            print(&descriptor());
            0
        }
        BackendCommand::Probe { id: Some(id) } if id == BACKEND_ID => {
            print(&probe_result());
            0
        }
        BackendCommand::Probe { id: None } => {
            print(
                &serde_json::json!({"schemaVersion": 1, "default": BACKEND_ID, "probes": [probe_result()]}),
            );
            0
        }
        BackendCommand::Show { id } | BackendCommand::Probe { id: Some(id) } => not_found(&id),
    }
}
