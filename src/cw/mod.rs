//! cool-workflow (CW) integration: its sandbox policy, worker manifest and run request,
//! lowered onto a cw-exec request, and its command gate (here); its `exec --request` contract
//! (`exec`); its backend descriptor and probe payloads (`backend`). Shapes and strings follow
//! ../shared/contracts/cool-workflow.md exactly.

pub mod backend;
pub mod exec;

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::model::{Dimension, NetMode, PolicyFacts, Refusal};
use crate::plan::{EnvBase, Request};

/// The backend id cw-exec registers under in CW.
pub use crate::envelope::BACKEND_ID;

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerOutput {
    #[serde(default)]
    pub result: bool,
    #[serde(default)]
    pub artifacts: bool,
    #[serde(default)]
    pub logs: bool,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Execute {
    pub mode: String,
    #[serde(default)]
    pub allow: Vec<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Network {
    pub mode: String,
    #[serde(default)]
    pub allow: Vec<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Env {
    pub inherit: bool,
    #[serde(default)]
    pub expose: Vec<String>,
    #[serde(default)]
    pub deny: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Enforcement {
    #[serde(default, rename = "enforcedByCW")]
    pub enforced_by_cw: Vec<String>,
    #[serde(default)]
    pub host_required: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyMetadata {
    pub cwd: Option<PathBuf>,
    pub result_path: Option<PathBuf>,
    pub artifacts_dir: Option<PathBuf>,
    pub logs_dir: Option<PathBuf>,
}

/// CW's resolved sandbox policy (`request.sandboxPolicy`, `manifest.json`'s `sandboxPolicy`).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SandboxPolicy {
    pub id: String,
    #[serde(default)]
    pub read_paths: Vec<PathBuf>,
    #[serde(default)]
    pub write_paths: Vec<PathBuf>,
    pub worker_output: WorkerOutput,
    pub execute: Execute,
    pub network: Network,
    pub env: Env,
    #[serde(default)]
    pub enforcement: Enforcement,
    #[serde(default)]
    pub metadata: Option<PolicyMetadata>,
}

impl SandboxPolicy {
    /// CW's required dimensions: read and write always; command unless execute.mode is
    /// "any"; network unless network.mode is "any"; env when env.inherit is false.
    pub fn required(&self) -> Vec<Dimension> {
        let mut r = vec![Dimension::Read, Dimension::Write];
        if self.execute.mode != "any" {
            r.push(Dimension::Command);
        }
        if self.network.mode != "any" {
            r.push(Dimension::Network);
        }
        if !self.env.inherit {
            r.push(Dimension::Env);
        }
        r
    }

    /// What the attestation states about this policy.
    pub fn facts(&self, notes: Vec<String>) -> PolicyFacts {
        PolicyFacts {
            profile_id: self.id.clone(),
            required: self.required(),
            enforced_by_cw: self.enforcement.enforced_by_cw.clone(),
            host_required: self.enforcement.host_required.clone(),
            notes,
        }
    }

    /// The effective write set: writePaths + resultPath/artifactsDir/logsDir as workerOutput
    /// allows them.
    pub fn effective_write_set(&self) -> Vec<PathBuf> {
        let mut out = self.write_paths.clone();
        if let Some(m) = &self.metadata {
            let wo = &self.worker_output;
            for (allowed, path) in [
                (wo.result, &m.result_path),
                (wo.artifacts, &m.artifacts_dir),
                (wo.logs, &m.logs_dir),
            ] {
                if let (true, Some(p)) = (allowed, path) {
                    out.push(p.clone());
                }
            }
        }
        out
    }

    /// Where the attestation goes when the policy allows the worker's logs.
    pub fn logs_dir(&self) -> Option<PathBuf> {
        self.worker_output
            .logs
            .then(|| self.metadata.as_ref()?.logs_dir.clone())
            .flatten()
    }

    /// CW's command gate: None if `command` may run, else why not. Exact whole-string match
    /// against execute.allow; mode "none" denies everything; an empty command is denied.
    pub fn command_denied(&self, command_line: &str) -> Option<String> {
        let normalized = command_line.trim();
        if normalized.is_empty() {
            return Some("empty command".into());
        }
        match self.execute.mode.as_str() {
            "none" => Some(format!(
                "command execution is denied by sandbox profile {}",
                self.id
            )),
            "allowlist" if !self.execute.allow.iter().any(|a| a == normalized) => Some(format!(
                "command is outside sandbox profile {} allowlist",
                self.id
            )),
            _ => None,
        }
    }
}

/// A worker's `manifest.json`: its policy and effective write set.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub sandbox_policy: SandboxPolicy,
    #[serde(default)]
    pub allowed_paths: Option<Vec<PathBuf>>,
}

/// CW's run request (`runBackend(request)`).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRequest {
    #[serde(default)]
    pub command: Option<String>,
    #[serde(default)]
    pub args: Option<Vec<String>>,
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    pub sandbox_policy: SandboxPolicy,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub delegation: Option<Delegation>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct Delegation {
    #[serde(default)]
    pub command: Option<String>,
    #[serde(default)]
    pub args: Option<Vec<String>>,
}

impl RunRequest {
    /// The command and arguments, from `command`/`args` or (agent hops) `delegation`; a
    /// command string with spaces and no args is split on whitespace, as CW does.
    pub fn argv(&self) -> Vec<String> {
        let d = self.delegation.clone().unwrap_or_default();
        let command = self
            .command
            .clone()
            .filter(|c| !c.trim().is_empty())
            .or(d.command.filter(|c| !c.trim().is_empty()));
        let Some(command) = command else {
            return vec![];
        };
        let args = if self.command.is_some() {
            self.args.clone()
        } else {
            d.args.or(self.args.clone())
        };
        match args {
            Some(args) => std::iter::once(command).chain(args).collect(),
            None => command.split_whitespace().map(str::to_string).collect(),
        }
    }

    pub fn label(&self) -> String {
        self.label
            .clone()
            .or_else(|| self.command.clone())
            .unwrap_or_else(|| format!("{BACKEND_ID}-execution"))
    }
}

/// A policy cw-exec cannot express: refuse rather than guess.
fn inexpressible(dimension: Dimension, message: String) -> Refusal {
    Refusal::dimensions(&[dimension], "cool-workflow policy", message)
}

/// Lowers a CW policy onto a cw-exec request. `write_set` is the effective write set
/// (a manifest's `allowedPaths`, or computed from the policy). `wrapped_agent`: the command
/// is the agent itself (the `--manifest` seam), so its own installation is an allowance and
/// execute "none" means "nothing but itself".
pub fn lower(
    policy: &SandboxPolicy,
    write_set: &[PathBuf],
    wrapped_agent: bool,
) -> Result<Request, Refusal> {
    let net = match policy.network.mode.as_str() {
        "none" => NetMode::None,
        "any" => NetMode::Host,
        // Served by cw-exec's egress proxy: the names (`host`, `*.domain`, `host:port`) are
        // checked, resolved and connected to by cw-exec; nothing else leaves the sandbox.
        "allowlist" => NetMode::Allowlist,
        other => {
            return Err(inexpressible(
                Dimension::Network,
                format!("unknown network.mode {other:?}"),
            ))
        }
    };
    let mut notes = vec![];
    let mut exec_programs = vec![];
    let exec = match policy.execute.mode.as_str() {
        "any" => vec![],
        "none" if wrapped_agent => vec!["$command".to_string()],
        "none" => vec![], // the gate refuses every command before anything runs
        "allowlist" => {
            // The kernel part: each entry's program, with its interpreter chain, is all
            // that may be executed. The arguments part is the gate (`command_denied`).
            exec_programs = policy.execute.allow.clone();
            notes.push(format!(
                "execute.allowlist: the kernel enforces the program set (an exec allowlist of each entry's program, resolved on the sandbox PATH, with its interpreter chain){}; the exact match of the whole command line, arguments included, is cool-workflow's gate, {}",
                if wrapped_agent { ", plus the agent itself" } else { "" },
                if wrapped_agent {
                    "which cw-exec does not apply to the agent (cool-workflow started it), nor to anything the agent runs"
                } else {
                    "which cw-exec applied to the top-level command only: programs it starts are restricted to the program set, with any arguments"
                }
            ));
            if wrapped_agent {
                vec!["$command".to_string()]
            } else {
                vec![]
            }
        }
        other => {
            return Err(inexpressible(
                Dimension::Command,
                format!("unknown execute.mode {other:?}"),
            ))
        }
    };
    let text = |p: &PathBuf| p.to_string_lossy().into_owned();
    Ok(Request {
        read: policy.read_paths.iter().map(text).collect(),
        write: write_set.iter().map(text).collect(),
        exec,
        net: Some(net),
        net_allow: if net == NetMode::Allowlist {
            policy.network.allow.clone()
        } else {
            vec![]
        },
        env: policy.env.expose.clone(),
        env_base: EnvBase::CoolWorkflow {
            inherit: policy.env.inherit,
        },
        env_deny: policy.env.deny.clone(),
        forward_provider_keys: wrapped_agent.then_some(true),
        agent_install: wrapped_agent,
        cw: Some(policy.facts(notes)),
        exec_programs,
        ..Default::default()
    })
}

/// Called before a run (never by `explain`, which has no side effects).
/// CW's worker outputs may not exist yet when the worker starts (result.md is written by
/// the agent). A path must exist to be granted, so create the ones the policy names, as the
/// caller: the result file empty, the artifacts and logs directories empty. Nothing else is
/// created; any other missing path stays an error. Everything is done through a descriptor
/// of the parent directory (symlinks on the way followed only as `sink::open_dir` allows),
/// and nothing is created through a symlink: a name that exists, as anything, is left alone.
pub fn prepare_outputs(policy: &SandboxPolicy, write_set: &[PathBuf]) -> Result<(), String> {
    let Some(m) = &policy.metadata else {
        return Ok(());
    };
    for (path, is_dir) in [
        (&m.result_path, false),
        (&m.artifacts_dir, true),
        (&m.logs_dir, true),
    ] {
        let Some(path) = path.as_ref().filter(|p| write_set.contains(p)) else {
            continue;
        };
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            continue;
        };
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        let dir = match crate::sink::open_dir(parent, write_set) {
            Ok(dir) => dir,
            // A missing parent: the grant reports the missing path.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let made = match dir.lstat(name) {
            Ok(Some(_)) => Ok(()),
            Ok(None) if is_dir => dir.child_dir(name, true).map(drop),
            Ok(None) => dir.create_empty_file(name).map(drop),
            Err(e) => Err(e),
        };
        made.map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Dimension::*;
    use serde_json::json;

    fn policy(execute: &str, allow: &[&str]) -> SandboxPolicy {
        serde_json::from_value(json!({
            "schemaVersion": 1, "id": "p", "title": "t", "readPaths": [], "writePaths": [],
            "workerOutput": {"result": true, "artifacts": false, "logs": true},
            "execute": {"mode": execute, "allow": allow},
            "network": {"mode": "none"}, "env": {"inherit": false, "expose": []},
            "enforcement": {"enforcedByCW": [], "hostRequired": []}, "hostInstructions": [],
            "resolvedAt": "2026-01-01T00:00:00.000Z",
            "metadata": {"resultPath": "/w/result.md", "logsDir": "/w/logs", "artifactsDir": "/w/artifacts"}
        }))
        .unwrap()
    }

    #[test]
    fn gate_is_an_exact_whole_string_match() {
        let p = policy("allowlist", &["npm test"]);
        assert!(p.command_denied("npm test").is_none());
        assert!(p.command_denied("  npm test ").is_none());
        assert!(p.command_denied("npm test --x").is_some());
        assert!(p.command_denied("").is_some());
        assert_eq!(
            policy("none", &[]).command_denied("true").unwrap(),
            "command execution is denied by sandbox profile p"
        );
        assert!(policy("any", &[]).command_denied("anything").is_none());
    }

    #[test]
    fn effective_write_set_follows_worker_output() {
        let p = policy("any", &[]);
        assert_eq!(
            p.effective_write_set(),
            vec![PathBuf::from("/w/result.md"), PathBuf::from("/w/logs")]
        );
        assert_eq!(p.logs_dir(), Some(PathBuf::from("/w/logs")));
        assert_eq!(p.required(), [Read, Write, Network, Env]);
    }
}
