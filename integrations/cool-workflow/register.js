"use strict";
// Registers cw-exec as a cool-workflow execution backend, with no change to cool-workflow.
//
//   NODE_OPTIONS="--require /path/to/cw-exec/integrations/cool-workflow/register.js" cw ...
//   cw run ... --backend cw-exec          (or CW_BACKEND=cw-exec)
//
// cool-workflow's public extension seam is `registerBackend(driver)` in its execution-backend
// registry module. This file is preloaded before cool-workflow starts, so it waits for that
// module to load (wherever cool-workflow is installed) and registers a `delegating` driver
// whose run spawns `cw-exec exec --request -` and returns the envelope cw-exec prints.
//
// Environment:
//   CW_EXEC_BIN   the cw-exec binary (default: `cw-exec` on PATH)

const Module = require("node:module");
const { spawnSync } = require("node:child_process");

const BACKEND_ID = "cw-exec";
const CW_EXEC = process.env.CW_EXEC_BIN || "cw-exec";
const REGISTRY_RE = /execution-backend[\\/]registry\.js$/;
const DIMENSIONS = ["read", "write", "command", "network", "env"];

/** Runs cw-exec synchronously (cool-workflow's runBackend is synchronous). */
function cwExec(args, input) {
  const result = spawnSync(CW_EXEC, args, {
    input,
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
    stdio: ["pipe", "pipe", "pipe"],
  });
  if (result.error) return { error: result.error.message };
  if (result.stderr) process.stderr.write(result.stderr);
  try {
    return { value: JSON.parse(result.stdout) };
  } catch (e) {
    return { error: `cw-exec ${args.join(" ")} printed no JSON (exit ${result.status}): ${e.message}` };
  }
}

/** The driver spec, from cw-exec's own descriptor of what this kernel can enforce. */
function driverSpec() {
  const shown = cwExec(["backend", "show", BACKEND_ID]);
  const d = shown.value;
  if (!d) {
    return {
      id: BACKEND_ID,
      title: "cw-exec (unavailable)",
      description: `cw-exec could not be run: ${shown.error}`,
      kind: "delegating",
      locality: "local",
      default: false,
      delegate: BACKEND_ID,
      readiness: "unavailable",
      support: Object.fromEntries(DIMENSIONS.map((dim) => [dim, "unsupported"])),
    };
  }
  return {
    id: d.id,
    title: d.title,
    description: d.description,
    kind: d.kind,
    locality: d.locality,
    default: d.default,
    delegate: d.delegate,
    readiness: d.readiness,
    support: Object.fromEntries(d.capabilities.map((cap) => [cap.dimension, cap.support])),
  };
}

function refused(ctx, code, reason) {
  const evidence = [`refused:${code}`, `backend:${BACKEND_ID}`, `sandbox:${ctx.policy.id}`];
  const attestation = ctx.attestation || {};
  return {
    schemaVersion: 1,
    status: "refused",
    result: { summary: `${ctx.label}: refused (${code}) — ${reason}`, findings: [], evidence },
    evidence,
    provenance: {
      schemaVersion: 1,
      backendId: BACKEND_ID,
      locality: "local",
      kind: "delegating",
      attestation: { ...attestation, status: "refused", notes: [...(attestation.notes || []), `refused: ${code}`] },
      handle: ctx.handle,
    },
  };
}

const driver = {
  spec: driverSpec(),
  // Agent hops carry their binary in delegation.command, so a command is not required here;
  // cw-exec itself refuses with no-command when neither is present.
  commandlessDelegate: true,
  buildHandle(request) {
    const delegation = request.delegation || {};
    const command = request.command || delegation.command;
    const args = request.command ? request.args || [] : delegation.args || request.args || [];
    return { kind: "process", ref: [CW_EXEC, "exec", "--request", "-"].join(" "), metadata: { command, args } };
  },
  delegateRun(ctx) {
    const ran = cwExec(["exec", "--request", "-"], JSON.stringify(ctx.request));
    if (!ran.value) return refused(ctx, "delegation-failed", ran.error);
    return ran.value;
  },
  probe() {
    const probed = cwExec(["backend", "probe", BACKEND_ID]);
    if (!probed.value) return { checks: [{ name: "cw-exec", ok: false, detail: probed.error }], readiness: "unavailable", reason: probed.error };
    const p = probed.value;
    return { checks: p.checks, readiness: p.readiness, reason: p.reason };
  },
};

let registered = false;
function registerInto(registry) {
  if (registered || !registry || typeof registry.registerBackend !== "function") return;
  registry.registerBackend(driver);
  registered = true;
}

// Wait for cool-workflow's registry module, wherever it is installed.
const originalLoad = Module._load;
Module._load = function load(request, parent, isMain) {
  const exports = originalLoad.apply(this, arguments);
  if (!registered) {
    try {
      const filename = Module._resolveFilename(request, parent, isMain);
      if (REGISTRY_RE.test(filename)) registerInto(exports);
    } catch {
      // Not resolvable as a file (a builtin, say): not the registry.
    }
  }
  return exports;
};

module.exports = { driver, registerInto, BACKEND_ID };
