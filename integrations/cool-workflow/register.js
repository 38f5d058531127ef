"use strict";
// Puts every process cool-workflow (CW) starts for a worker under cw-exec, with that worker's
// policy, exactly once, with no change to CW. One line:
//
//   export NODE_OPTIONS="--require /path/to/cw-exec/integrations/cool-workflow/register.js"
//
// What it does, in each kind of node process it is preloaded into:
//
// * CW itself (the process that loads CW's execution-backend registry module):
//   - overrides CW's built-in `agent` driver by id (registerBackend replaces by id). Serial hops
//     run `cw-exec run --manifest <worker manifest> --envelope <private file> -- <agent argv>`:
//     the agent seam, not `cw-exec exec --request`, because an agent hop is the agent itself
//     (its installation is an allowance, execute "none" means "nothing but itself", provider
//     keys are forwarded as CW forwards them), CW substitutes {{manifest}} etc. in its argv,
//     CW needs the agent's own stdout to read its report (model, usage), and the worker keeps
//     its attestation in logs/cw-exec-attestation.json. The returned envelope is cw-exec's,
//     untouched; CW's report keys (reportedModel, ...) are only added to handle.metadata
//     beside cw-exec's, never over them.
//   - settles concurrent rounds (`preparedAgentOutcome`: the agent already ran in CW's batch
//     child) from the envelope cw-exec wrote for that worker in this shim's private directory,
//     checked against the outcome; no envelope, no hop.
//   - overrides the local drivers `node`, `bun` and `shell` (reached through runBackend) with
//     delegating drivers that run the request through `cw-exec exec --request -` (CW's
//     backend contract: its gate, its env rule) and return cw-exec's envelope with the kernel
//     evidence, instead of CW's static attest table.
//   - registers `cw-exec` itself as a backend (`cw-exec exec --request -`).
// * Any process where it is preloaded (outside a cw-exec sandbox): CW_AGENT_COMMAND, unless
//   already wrapped, becomes `cw-exec run --manifest {{manifest}} -- <command>`, so the
//   command CW hands its batch child goes through cw-exec with the worker's manifest.
// * CW's node children (the batch child; marked by CWEXEC_SHIM_STATE, which CW's process sets
//   once its registry loaded and its children inherit): every process they start must be a
//   `cw-exec run` wrapper; it gets `--envelope` in the private directory; anything else is
//   refused (an exception at the spawn call, which CW reports as a failed spawn).
// * Inside a cw-exec sandbox (hostname "cw-exec", no_new_privs, a seccomp filter): nothing.
//   The process is already contained; cw-exec refuses nested sandboxes by design.
//
// Exactly once: a command whose argv is `cw-exec run ...` is never wrapped again, and the
// environment handed to cw-exec loses this file's `--require` (from NODE_OPTIONS) and the
// marker, so a node agent in the sandbox does not load the shim at all.
//
// Fails closed: if cw-exec is missing or not ready, every hop and every run through the
// overridden drivers is refused with the reason; nothing runs unsandboxed.
//
// Environment:
//   CW_EXEC_BIN   the cw-exec binary (default: `cw-exec` on PATH); no whitespace in it, since CW
//                 splits CW_AGENT_COMMAND on whitespace.

const Module = require("node:module");
const childProcess = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const crypto = require("node:crypto");

const BACKEND_ID = "cw-exec";
const CW_EXEC = process.env.CW_EXEC_BIN || "cw-exec";
const STATE_ENV = "CWEXEC_SHIM_STATE";
const REGISTRY_RE = /execution-backend[\\/]registry\.js$/;
const DIMENSIONS = ["read", "write", "command", "network", "env"];
const LOCAL_DRIVERS = ["node", "bun", "shell"];
const DEFAULT_TIMEOUT_MS = 600000;
const MAX_BUFFER = 64 * 1024 * 1024;
const SHIM_FILE = realpath(__filename);

// The child_process functions as they were before this shim touched them: the shim's own
// calls (cw-exec itself) never go through the batch-child guard below.
const original = {};
for (const name of ["spawn", "spawnSync", "execFile", "execFileSync", "exec", "execSync", "fork"]) {
  original[name] = childProcess[name];
}

function realpath(p) {
  try {
    return fs.realpathSync(p);
  } catch {
    return path.resolve(p);
  }
}

function sha256(data) {
  return crypto.createHash("sha256").update(data).digest("hex");
}

// ---------------------------------------------------------------------------------------------
// Where this process is.
// ---------------------------------------------------------------------------------------------

/** Inside a cw-exec sandbox: its own UTS namespace named "cw-exec", no_new_privs, seccomp. */
function insideSandbox() {
  try {
    if (os.hostname() !== "cw-exec") return false;
    const status = fs.readFileSync("/proc/self/status", "utf8");
    return /^NoNewPrivs:\s*1\s*$/m.test(status) && /^Seccomp:\s*2\s*$/m.test(status);
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Argv and environment.
// ---------------------------------------------------------------------------------------------

function isCwExec(file) {
  if (!file) return false;
  const f = String(file);
  return path.basename(f) === "cw-exec" || f === CW_EXEC || (f.includes("/") && realpath(f) === realpath(CW_EXEC));
}

/** A command already wrapped: `cw-exec run ...`. Never wrapped again. */
function isWrapped(argv) {
  return argv.length >= 2 && isCwExec(argv[0]) && argv[1] === "run";
}

/** The options of a wrapped `cw-exec run` (before `--`), as [name, value] pairs. */
function runOptions(argv) {
  const out = [];
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--") break;
    if (!a.startsWith("--")) continue;
    const eq = a.indexOf("=");
    if (eq > 0) out.push([a.slice(0, eq), a.slice(eq + 1)]);
    else out.push([a, argv[i + 1]]);
  }
  return out;
}

function runOption(argv, name) {
  const found = runOptions(argv).find(([n]) => n === name);
  return found ? found[1] : undefined;
}

/** A wrapped argv with `--envelope FILE` (and `--timeout`) added after `run` when absent. */
function completeWrapper(argv, envelopeFile, timeoutMs) {
  const extra = [];
  if (envelopeFile && runOption(argv, "--envelope") === undefined) extra.push("--envelope", envelopeFile);
  if (timeoutMs && runOption(argv, "--timeout") === undefined) extra.push("--timeout", String(timeoutMs / 1000));
  return [argv[0], "run", ...extra, ...argv.slice(2)];
}

function wrap(argv, manifestPath, envelopeFile, timeoutMs) {
  return completeWrapper([CW_EXEC, "run", "--manifest", manifestPath, "--", ...argv], envelopeFile, timeoutMs);
}

/** NODE_OPTIONS split as node splits it (double quotes group, backslash escapes in them). */
function splitNodeOptions(text) {
  const out = [];
  let cur = null;
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === "\\" && i + 1 < text.length) cur += text[++i];
      else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') {
      quoted = true;
      cur = cur === null ? "" : cur;
    } else if (/\s/.test(c)) {
      if (cur !== null) out.push(cur);
      cur = null;
    } else {
      cur = (cur === null ? "" : cur) + c;
    }
  }
  if (cur !== null) out.push(cur);
  return out;
}

function quoteNodeOption(word) {
  return /[\s"\\]/.test(word) ? `"${word.replace(/["\\]/g, (m) => `\\${m}`)}"` : word;
}

/** NODE_OPTIONS without this file's `--require` / `-r`. */
function withoutShim(nodeOptions) {
  const words = splitNodeOptions(nodeOptions || "");
  const kept = [];
  for (let i = 0; i < words.length; i++) {
    const w = words[i];
    if ((w === "--require" || w === "-r") && i + 1 < words.length && realpath(words[i + 1]) === SHIM_FILE) {
      i++;
      continue;
    }
    if (w.startsWith("--require=") && realpath(w.slice("--require=".length)) === SHIM_FILE) continue;
    kept.push(quoteNodeOption(w));
  }
  return kept.join(" ");
}

/** The environment handed to cw-exec: the shim and its marker removed, nothing else. */
function wrappedEnv(base) {
  const env = { ...(base || process.env) };
  delete env[STATE_ENV];
  if (env.NODE_OPTIONS !== undefined) {
    const rest = withoutShim(env.NODE_OPTIONS);
    if (rest) env.NODE_OPTIONS = rest;
    else delete env.NODE_OPTIONS;
  }
  return env;
}

// ---------------------------------------------------------------------------------------------
// cw-exec itself: descriptor, readiness, private envelopes.
// ---------------------------------------------------------------------------------------------

/** Runs cw-exec synchronously for a JSON payload (CW's runBackend is synchronous). */
function cwExecJson(args, input) {
  const result = original.spawnSync(CW_EXEC, args, {
    input,
    encoding: "utf8",
    maxBuffer: MAX_BUFFER,
    stdio: ["pipe", "pipe", "pipe"],
    env: wrappedEnv(process.env),
  });
  if (result.error) return { error: `cw-exec (${CW_EXEC}) could not be run: ${result.error.message}` };
  if (result.stderr) process.stderr.write(result.stderr);
  try {
    return { value: JSON.parse(result.stdout), status: result.status };
  } catch (e) {
    return { error: `cw-exec ${args.join(" ")} printed no JSON (exit ${result.status}): ${e.message}` };
  }
}

let descriptorCache;
/** cw-exec's own descriptor (what this kernel lets it enforce), or why there is none. */
function descriptor() {
  if (descriptorCache === undefined) {
    const shown = cwExecJson(["backend", "show", BACKEND_ID]);
    descriptorCache = shown.value && Array.isArray(shown.value.capabilities) ? { value: shown.value } : { error: shown.error || "cw-exec printed no descriptor" };
  }
  return descriptorCache;
}

let notReadyCache;
/** Why cw-exec cannot run a sandbox here, or undefined when it is ready (asked once). */
function notReady() {
  if (notReadyCache === undefined) {
    const d = descriptor();
    if (!d.value) {
      notReadyCache = `cw-exec is not available: ${d.error}; set CW_EXEC_BIN or put cw-exec on PATH`;
    } else if (d.value.readiness !== "ready") {
      const probed = cwExecJson(["backend", "probe", BACKEND_ID]);
      notReadyCache = `cw-exec is not ready on this host: ${(probed.value && probed.value.reason) || d.value.readiness}`;
    } else {
      notReadyCache = null;
    }
  }
  return notReadyCache || undefined;
}

function support() {
  const d = descriptor();
  // Unavailable: the driver would enforce through cw-exec, and refuses every run until it can
  // (readiness says "unavailable"); declaring the dimensions lets CW reach the driver, whose
  // refusal names the reason.
  if (!d.value) return Object.fromEntries(DIMENSIONS.map((dim) => [dim, "enforce"]));
  return Object.fromEntries(d.value.capabilities.map((cap) => [cap.dimension, cap.support]));
}

function probe() {
  const probed = cwExecJson(["backend", "probe", BACKEND_ID]);
  if (!probed.value) return { checks: [{ name: "cw-exec", ok: false, detail: probed.error }], readiness: "unavailable", reason: probed.error };
  const p = probed.value;
  return { checks: p.checks, readiness: p.readiness, reason: p.reason };
}

let stateDir = process.env[STATE_ENV];
let stateOwned = false;
/** The private directory (0700) where cw-exec writes the envelopes this shim reads. */
function privateDir() {
  if (!stateDir || !stateOwned) {
    stateDir = fs.mkdtempSync(path.join(os.tmpdir(), "cw-exec-shim-"));
    stateOwned = true;
    process.env[STATE_ENV] = stateDir;
    const dir = stateDir;
    process.on("exit", () => {
      try {
        fs.rmSync(dir, { recursive: true, force: true });
      } catch {
        // best effort
      }
    });
  }
  return stateDir;
}

/** Where cw-exec puts the envelope of the worker with this manifest. */
function envelopeFileIn(dir, manifestPath) {
  return path.join(dir, `${sha256(path.resolve(String(manifestPath))).slice(0, 32)}.json`);
}

function takeEnvelope(file) {
  let text;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
  try {
    fs.unlinkSync(file);
  } catch {
    // already gone
  }
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// CW's shapes (from the contract): agent invocation, substitutions, refusals, reports.
// ---------------------------------------------------------------------------------------------

/** The agent invocation as CW resolves it: delegation, then request, then CW_AGENT_COMMAND. */
function resolveInvocation(request, env = process.env) {
  const delegation = request.delegation || {};
  const envCommand = (env.CW_AGENT_COMMAND || "").trim();
  const endpoint = delegation.endpoint || (env.CW_AGENT_ENDPOINT || "").trim() || undefined;
  const model = delegation.model || (env.CW_AGENT_MODEL || "").trim() || undefined;
  let binary = delegation.command || request.command || undefined;
  let rawArgs = delegation.args ? [...delegation.args] : request.args ? [...request.args] : [];
  if (!binary && envCommand) {
    const parts = envCommand.split(/\s+/).filter(Boolean);
    binary = parts[0];
    if (!delegation.args) rawArgs = parts.slice(1);
  } else if (binary && !delegation.args && /\s/.test(binary)) {
    const parts = binary.split(/\s+/).filter(Boolean);
    binary = parts[0];
    rawArgs = parts.slice(1);
  }
  return { binary, rawArgs, endpoint, model, timeoutMs: request.timeoutMs };
}

function substitutions(request, model) {
  const manifest = request.manifest || {};
  const workerDir = manifest.workerDir || request.cwd || "";
  return {
    manifest: manifest.manifestPath || (workerDir ? path.join(workerDir, "manifest.json") : ""),
    input: manifest.inputPath || "",
    result: manifest.resultPath || "",
    workerDir,
    model: model || "",
    prompt: manifest.prompt || "",
  };
}

function substitute(arg, subst) {
  return String(arg).replace(/\{\{(\w+)\}\}/g, (_, key) => (key in subst ? subst[key] : `{{${key}}}`));
}

/** The agent's own report on its last `{...}` stdout line: model, usage, usageSignature. */
function agentReport(stdout) {
  const text = String(stdout || "").trim();
  const parse = (s) => {
    try {
      const v = JSON.parse(s);
      return v && typeof v === "object" && !Array.isArray(v) ? v : undefined;
    } catch {
      return undefined;
    }
  };
  let obj = parse(text);
  if (!obj) {
    const line = text
      .split(/\r?\n/)
      .reverse()
      .find((l) => l.trim().startsWith("{") && l.trim().endsWith("}"));
    if (line) obj = parse(line.trim());
  }
  if (!obj) return {};
  const usage = obj.usage && typeof obj.usage === "object" ? obj.usage : undefined;
  const model = typeof obj.model === "string" ? obj.model : usage && typeof usage.model === "string" ? usage.model : undefined;
  const usageSignature = typeof obj.usageSignature === "string" ? obj.usageSignature : undefined;
  return { model, usage, usageSignature };
}

/** Adds CW's handle keys beside cw-exec's; every key cw-exec wrote is kept as it wrote it. */
function withCwHandleKeys(envelope, keys) {
  const provenance = envelope && envelope.provenance;
  if (!provenance || !provenance.handle) return envelope;
  const metadata = provenance.handle.metadata || (provenance.handle.metadata = {});
  for (const [k, v] of Object.entries(keys)) {
    if (v !== undefined && !(k in metadata)) metadata[k] = v;
  }
  return envelope;
}

/** A refusal built here (nothing ran): no dimension is claimed as enforced. */
function refused(ctx, code, reason) {
  const policy = ctx.policy || (ctx.request && ctx.request.sandboxPolicy) || {};
  const backendId = (ctx.descriptor && ctx.descriptor.id) || BACKEND_ID;
  const evidence = [`refused:${code}`, `backend:${backendId}`, `sandbox:${policy.id}`];
  const base = ctx.attestation || {};
  const required = base.required || [];
  return {
    schemaVersion: 1,
    status: "refused",
    result: { summary: `${ctx.label}: refused (${code}) — ${reason}`, findings: [], evidence },
    evidence,
    provenance: {
      schemaVersion: 1,
      backendId,
      locality: "local",
      kind: "delegating",
      attestation: {
        ...base,
        backendId,
        enforced: [],
        attested: [],
        unenforceable: required,
        status: "refused",
        guarantees: Object.fromEntries(DIMENSIONS.map((d) => [d, "absent"])),
        notes: [...(base.notes || []), `refused: ${code}`, reason],
      },
      handle: ctx.handle,
    },
  };
}

function streamStderr() {
  if (process.env.CW_NO_STREAM === "1" || process.env.CW_AGENT_STREAM === "0") return false;
  if (process.env.CW_AGENT_STREAM === "1") return true;
  return Boolean(process.stderr.isTTY);
}

// ---------------------------------------------------------------------------------------------
// The drivers.
// ---------------------------------------------------------------------------------------------

/** A serial agent hop: the agent under `cw-exec run --manifest`, its envelope read back. */
function runAgentHop(ctx, inv) {
  const { request } = ctx;
  const subst = substitutions(request, inv.model);
  const argv = [inv.binary, ...inv.rawArgs].map((a) => substitute(a, subst));
  const timeoutMs = inv.timeoutMs || DEFAULT_TIMEOUT_MS;
  const wrapped = isWrapped(argv);
  const manifestPath = wrapped ? runOption(argv, "--manifest") : subst.manifest;
  if (wrapped && runOption(argv, "--envelope") !== undefined) {
    return refused(ctx, "backend-not-runnable", "the agent command already names --envelope; with the preload the shim collects the envelope itself: remove --envelope from it");
  }
  if (!manifestPath && !wrapped) {
    return refused(ctx, "backend-not-runnable", "no worker manifest for this hop (request.manifest has neither manifestPath nor workerDir): the agent cannot be run under its worker's policy");
  }
  const envelopeFile = envelopeFileIn(privateDir(), manifestPath || `${request.taskId || ctx.label}`);
  try {
    fs.unlinkSync(envelopeFile);
  } catch {
    // none left over
  }
  const command = wrapped ? completeWrapper(argv, envelopeFile, timeoutMs) : wrap(argv, manifestPath, envelopeFile, timeoutMs);
  const stream = streamStderr();
  const child = original.spawnSync(command[0], command.slice(1), {
    cwd: request.cwd,
    env: wrappedEnv(process.env),
    encoding: "utf8",
    timeout: timeoutMs + 30000,
    killSignal: "SIGKILL",
    maxBuffer: 32 * 1024 * 1024,
    stdio: ["ignore", "pipe", stream ? "inherit" : "pipe"],
  });
  if (!stream && child.stderr && child.status !== 0) process.stderr.write(child.stderr);
  const envelope = takeEnvelope(envelopeFile);
  if (child.error && !envelope) {
    return refused(ctx, "delegation-failed", `cw-exec (${command[0]}) could not run the agent: ${child.error.message}`);
  }
  if (!envelope) {
    return refused(ctx, "delegation-failed", `cw-exec exited ${child.status === null ? `on signal ${child.signal}` : child.status} without an envelope; the agent's outcome is unattested`);
  }
  const report = agentReport(child.stdout);
  return withCwHandleKeys(envelope, {
    mode: "command",
    model: inv.model,
    reportedModel: report.model && report.model.trim() ? report.model.trim() : "unreported",
    reportedUsage: report.usage,
    usageSignature: report.usageSignature,
  });
}

/** A concurrent round's hop: the agent already ran in CW's batch child (under cw-exec, which
 *  this shim's guard there made sure of); settle it from the envelope cw-exec wrote. */
function settlePrepared(ctx, inv) {
  const { request } = ctx;
  const outcome = request.preparedAgentOutcome;
  const subst = substitutions(request, inv.model);
  const argv = [inv.binary, ...inv.rawArgs].map((a) => substitute(a, subst));
  const manifestPath = isWrapped(argv) ? runOption(argv, "--manifest") : subst.manifest;
  const envelope = manifestPath && stateDir ? takeEnvelope(envelopeFileIn(stateDir, manifestPath)) : undefined;
  if (outcome.spawnError) {
    return refused(ctx, "delegation-failed", `agent process failed to spawn: ${outcome.spawnError}`);
  }
  if (!envelope) {
    return refused(ctx, "delegation-failed", "no cw-exec envelope for this concurrent hop: the batch child did not run the agent under cw-exec with this worker's manifest (and its own --envelope, if the command names one, is not read)");
  }
  const evidence = envelope.evidence || [];
  const exit = evidence.find((e) => e.startsWith("exitCode:"));
  // Refused by cw-exec (nothing ran), or killed (no exit code): cw-exec's envelope says so.
  if (envelope.status === "refused" || exit === "exitCode:null") return envelope;
  if (exit !== `exitCode:${outcome.exitCode === null ? "null" : outcome.exitCode}`) {
    return refused(ctx, "delegation-failed", `the cw-exec envelope (${exit}) does not match the batch outcome (exit ${outcome.exitCode})`);
  }
  const stdout = String(outcome.stdout || "");
  const digest = evidence.find((e) => e.startsWith("stdoutSha256:"));
  // A stdout CW decoded lossily (U+FFFD) cannot be compared byte for byte.
  if (digest !== `stdoutSha256:sha256:${sha256(Buffer.from(stdout, "utf8"))}` && !stdout.includes("\ufffd")) {
    return refused(ctx, "delegation-failed", "the cw-exec envelope's stdout digest does not match the batch outcome's stdout");
  }
  const report = agentReport(stdout);
  return withCwHandleKeys(envelope, {
    mode: "command",
    model: inv.model,
    reportedModel: report.model && report.model.trim() ? report.model.trim() : "unreported",
    reportedUsage: report.usage,
    usageSignature: report.usageSignature,
  });
}

function overrideSpec(previous, id) {
  const prev = (previous && previous.spec) || {};
  const d = descriptor();
  const why = notReady();
  return {
    ...prev,
    id,
    title: `${prev.title || id} (through cw-exec)`,
    description: why
      ? `${why}: every run through this backend is refused.`
      : `${prev.description ? `${prev.description} ` : ""}Runs through cw-exec: read, write, command, network and env enforced by the kernel and attested from inside the sandbox.`,
    kind: "delegating",
    locality: "local",
    default: prev.default === undefined ? id === "node" : prev.default,
    delegate: BACKEND_ID,
    readiness: d.value ? d.value.readiness : "unavailable",
    support: support(),
  };
}

/** The `agent` driver: serial hops and concurrent rounds' prepared outcomes through cw-exec. */
function agentDriver(previous) {
  return {
    ...(previous || {}),
    spec: overrideSpec(previous, "agent"),
    commandlessDelegate: true,
    buildHandle(request) {
      if (previous && typeof previous.buildHandle === "function") return previous.buildHandle(request);
      const inv = resolveInvocation(request);
      if (!inv.binary && !inv.endpoint) return undefined;
      return { kind: "process", ref: inv.binary ? [inv.binary, ...inv.rawArgs].join(" ") : inv.endpoint, metadata: { mode: inv.binary ? "command" : "endpoint", command: inv.binary, args: inv.rawArgs, model: inv.model } };
    },
    delegateRun(ctx) {
      const inv = resolveInvocation(ctx.request);
      if (!inv.binary) {
        // An HTTP agent endpoint runs no local process: CW's own driver posts to it.
        if (inv.endpoint && previous && typeof previous.delegateRun === "function") return previous.delegateRun(ctx);
        return refused(ctx, "delegation-target-missing", `Backend ${ctx.descriptor ? ctx.descriptor.id : "agent"} has no command-template or endpoint configured`);
      }
      const why = notReady();
      if (why) return refused(ctx, "backend-not-ready", `${why}; the agent was not run`);
      if (ctx.request.preparedAgentOutcome) return settlePrepared(ctx, inv);
      return runAgentHop(ctx, inv);
    },
    probe,
  };
}

/** CW's shell driver guard: the line must hold no shell control character. */
function checkShellGuard(command, args) {
  const line = [command, ...args].join(" ").replace(/\{\{[a-zA-Z0-9_.-]+\}\}/g, "");
  if (/[;&|`$(){}<>!\n\r#*?~'"\\]/.test(line)) {
    throw new Error("Shell backend refused: args contain shell control characters. Use the node, bun, or agent backend instead for untrusted inputs.");
  }
}

/** `node`, `bun`, `shell`: the request through `cw-exec exec --request -`. */
function localDriver(previous, id) {
  return {
    ...(previous || {}),
    spec: overrideSpec(previous, id),
    commandlessDelegate: false,
    buildHandle(request) {
      return { kind: "process", ref: `${CW_EXEC} exec --request -`, metadata: { command: request.command, args: request.args || [] } };
    },
    delegateRun(ctx) {
      const why = notReady();
      if (why) return refused(ctx, "backend-not-ready", `${why}; the command was not run`);
      const request = { ...ctx.request, timeoutMs: ctx.request.timeoutMs || DEFAULT_TIMEOUT_MS };
      if (id === "shell") {
        // As CW's shell driver: the guarded line, split on white space, run with no shell.
        const args = (request.args || []).map(String);
        checkShellGuard(String(request.command), args);
        const tokens = [String(request.command), ...args].join(" ").split(/\s+/).filter(Boolean);
        request.command = tokens[0];
        request.args = tokens.slice(1);
      }
      const ran = cwExecJson(["exec", "--request", "-"], JSON.stringify(request));
      if (!ran.value) return refused(ctx, "delegation-failed", ran.error);
      return ran.value;
    },
    probe,
  };
}

/** `cw-exec` itself, selectable by library users: `cw-exec exec --request -`. */
function cwExecDriver() {
  const d = descriptor().value;
  const spec = d
    ? { id: d.id, title: d.title, description: d.description, kind: d.kind, locality: d.locality, default: d.default, delegate: d.delegate, readiness: d.readiness, support: support() }
    : { ...overrideSpec({ spec: { title: "cw-exec", default: false } }, BACKEND_ID), title: "cw-exec (unavailable)" };
  return {
    spec,
    commandlessDelegate: true,
    buildHandle(request) {
      const delegation = request.delegation || {};
      const command = request.command || delegation.command;
      const args = request.command ? request.args || [] : delegation.args || request.args || [];
      return { kind: "process", ref: [CW_EXEC, "exec", "--request", "-"].join(" "), metadata: { command, args } };
    },
    delegateRun(ctx) {
      const why = notReady();
      if (why) return refused(ctx, "backend-not-ready", `${why}; nothing was run`);
      const ran = cwExecJson(["exec", "--request", "-"], JSON.stringify(ctx.request));
      if (!ran.value) return refused(ctx, "delegation-failed", ran.error);
      return ran.value;
    },
    probe,
  };
}

// ---------------------------------------------------------------------------------------------
// Modes.
// ---------------------------------------------------------------------------------------------

let cwMain = false;
let registered = false;

/** Overrides CW's agent and local drivers by id, and registers cw-exec. */
function registerInto(registry) {
  if (registered || !registry || typeof registry.registerBackend !== "function") return;
  cwMain = true;
  privateDir();
  const get = (id) => (typeof registry.getBackendDriver === "function" ? registry.getBackendDriver(id) : undefined);
  registry.registerBackend(cwExecDriver());
  registry.registerBackend(agentDriver(get("agent")));
  for (const id of LOCAL_DRIVERS) registry.registerBackend(localDriver(get(id), id));
  registered = true;
}

/** CW_AGENT_COMMAND through `cw-exec run --manifest {{manifest}} --`, unless already so. */
function wrapAgentCommand() {
  const command = (process.env.CW_AGENT_COMMAND || "").trim();
  if (!command) return;
  if (isWrapped(command.split(/\s+/))) return;
  if (/\s/.test(CW_EXEC)) {
    process.stderr.write(`cw-exec shim: CW_EXEC_BIN ${JSON.stringify(CW_EXEC)} contains white space, which CW_AGENT_COMMAND cannot carry: concurrent rounds will be refused (serial hops are still wrapped)\n`);
    return;
  }
  process.env.CW_AGENT_COMMAND = `${CW_EXEC} run --manifest {{manifest}} -- ${command}`;
}

class UnwrappedSpawn extends Error {
  constructor(file) {
    super(`cw-exec shim: refusing to start ${JSON.stringify(String(file))} unsandboxed: in a process cool-workflow started for its workers, every process must be a \`cw-exec run\` wrapper (set CW_AGENT_COMMAND so the shim wraps it, or wrap it yourself: cw-exec run --manifest {{manifest}} -- ...)`);
    this.code = "ECWEXECUNWRAPPED";
  }
}

/** Normalizes (file, args, options) as child_process does for spawn/execFile. */
function normalize(file, args, options) {
  if (!Array.isArray(args)) {
    options = args;
    args = [];
  }
  return { file, args: (args || []).map(String), options: options && typeof options === "object" ? options : {} };
}

/** The guarded form of a spawn in CW's batch child, or an UnwrappedSpawn to throw. */
function guarded(file, args, options) {
  const argv = [String(file), ...args];
  if (options.shell || !isWrapped(argv)) return new UnwrappedSpawn(options.shell ? `${file} (through a shell)` : file);
  const why = notReady();
  if (why) {
    const e = new Error(`cw-exec shim: refusing to start the agent: ${why}`);
    e.code = "ECWEXECNOTREADY";
    return e;
  }
  const manifestPath = runOption(argv, "--manifest");
  const envelopeFile = manifestPath && stateDir ? envelopeFileIn(stateDir, manifestPath) : undefined;
  if (envelopeFile) {
    try {
      fs.unlinkSync(envelopeFile);
    } catch {
      // none left over
    }
  }
  const completed = completeWrapper(argv, envelopeFile, undefined);
  return { file: completed[0], args: completed.slice(1), options: { ...options, env: wrappedEnv(options.env || process.env) } };
}

/** In CW's node children (the batch child): every spawn is a cw-exec wrapper, or refused. */
function installGuard() {
  // A process whose own CW registry loaded is a CW process (a nested one): not guarded.
  const pass = () => cwMain;
  const viaFileArgs = (name, onRefused) =>
    function guardedCall(file, args, options, ...rest) {
      if (pass()) return original[name].call(this, file, args, options, ...rest);
      const n = normalize(file, args, options);
      const callback = typeof args === "function" ? args : typeof options === "function" ? options : rest.find((r) => typeof r === "function");
      const g = guarded(n.file, n.args, n.options);
      if (g instanceof Error) return onRefused(g);
      return callback ? original[name].call(this, g.file, g.args, g.options, callback) : original[name].call(this, g.file, g.args, g.options);
    };
  const toThrow = (e) => {
    throw e;
  };
  childProcess.spawn = viaFileArgs("spawn", toThrow);
  childProcess.execFile = viaFileArgs("execFile", toThrow);
  childProcess.execFileSync = viaFileArgs("execFileSync", toThrow);
  childProcess.spawnSync = viaFileArgs("spawnSync", (e) => ({ pid: 0, output: null, stdout: null, stderr: null, status: null, signal: null, error: e }));
  for (const name of ["exec", "execSync", "fork"]) {
    childProcess[name] = function refusedCall(first, ...rest) {
      if (pass()) return original[name].call(this, first, ...rest);
      throw new UnwrappedSpawn(first);
    };
  }
}

if (insideSandbox()) {
  // Already contained: wrapping again would be a nested sandbox, which cw-exec refuses.
  module.exports = { inert: true, BACKEND_ID };
} else {
  wrapAgentCommand();
  if (stateDir) installGuard();
  // Wait for CW's registry module, wherever CW is installed.
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
  module.exports = { registerInto, BACKEND_ID, isWrapped, wrappedEnv, withoutShim };
}
