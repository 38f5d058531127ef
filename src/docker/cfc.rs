//! Common Fabric's information-flow (CFC) sidecars, as far as cw-exec can be honest.
//!
//! cw-exec does not track flows per syscall. It reports a sound over-approximation instead:
//! the result's confidentiality is the union of
//! - the labels of the invocation context (`cfcInputLabels`, `promptSlotInfluenceLabels`);
//! - the labels of everything readable in the view: the label policy's entries for sandbox
//!   paths (a pattern that could match anything at or beneath a readable root, or a root
//!   beneath it, taints that root), and the labels the label store holds for host paths a
//!   root overlaps (what earlier runs wrote there);
//! - an explicit unknown atom for what cw-exec cannot vouch for: a network other than none,
//!   no invocation context, and (when the policy says `unlabelled = "unknown"`) a readable
//!   root nothing labels;
//!
//! with integrity `[]` (claims nothing). A context whose labels claim integrity is refused.
//! After the run every writable root takes the result's label in the store (kept outside
//! every mount: no sandbox can see or change it).
//!
//! Labels are kept as the JSON the harness uses: confidentiality is an AND of clauses (an
//! atom, or `{anyOf: [...]}`), joined by union; clauses are compared by their canonical
//! (JCS) text.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{json, Value};

use super::config::{read_trusted, Cfc};
use crate::model::NetMode;
use crate::plan::Plan;

/// The atom for a network other than none: anything could have come in.
pub const UNKNOWN_NETWORK: &str = "cw-exec:unknown:network";
/// The atom for a run without an invocation context: its inputs' labels are unknown.
pub const UNKNOWN_INPUTS: &str = "cw-exec:unknown:no-invocation-context";
/// The atom for a readable root nothing labels, when the policy says unlabelled is unknown.
pub const UNKNOWN_UNLABELLED: &str = "cw-exec:unknown:unlabelled-source";

/// A confidentiality label: clauses, deduplicated by canonical text, in first-seen order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Conf {
    clauses: Vec<Value>,
    keys: Vec<String>,
}

impl Conf {
    pub fn join(&mut self, clauses: &[Value]) {
        for c in clauses {
            let key = crate::jcs::canonical(c);
            if !self.keys.contains(&key) {
                self.keys.push(key);
                self.clauses.push(c.clone());
            }
        }
    }

    pub fn atom(&mut self, atom: &str) {
        self.join(&[Value::from(atom)]);
    }

    pub fn is_public(&self) -> bool {
        self.clauses.is_empty()
    }

    pub fn clauses(&self) -> &[Value] {
        &self.clauses
    }
}

/// Checks one clause: an atom (a non-empty string or object) or `{anyOf: [atoms]}`.
fn check_clause(c: &Value) -> Result<(), String> {
    match c {
        Value::String(s) if !s.is_empty() => Ok(()),
        Value::Object(m) if !m.is_empty() => Ok(()),
        other => Err(format!(
            "{}: not a confidentiality clause (an atom or {{anyOf: [...]}})",
            crate::jcs::canonical(other)
        )),
    }
}

/// Every label inside `v` (an object with `confidentiality` or `integrity`), wherever it is.
fn labels_in<'a>(v: &'a Value, out: &mut Vec<&'a serde_json::Map<String, Value>>) {
    match v {
        Value::Object(m) => {
            if m.contains_key("confidentiality") || m.contains_key("integrity") {
                out.push(m);
            } else {
                for x in m.values() {
                    labels_in(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| labels_in(x, out)),
        _ => {}
    }
}

/// What an invocation context contributes: its labels' confidentiality; an integrity claim
/// in any of them is a refusal (cw-exec cannot carry integrity through a run).
pub fn context_labels(context: &Value) -> Result<Vec<Value>, String> {
    if context["type"] != "cf-harness.cfc-invocation-context" || context["version"] != 1 {
        return Err("not a cf-harness.cfc-invocation-context of version 1".to_string());
    }
    let mut out = vec![];
    for key in ["cfcInputLabels", "promptSlotInfluenceLabels"] {
        let mut labels = vec![];
        labels_in(&context[key], &mut labels);
        for label in labels {
            match label.get("integrity") {
                None | Some(Value::Null) => {}
                Some(Value::Array(a)) if a.is_empty() => {}
                Some(other) => {
                    return Err(format!(
                        "{key}: a label claims integrity ({}): cw-exec cannot carry integrity through a run, so it refuses such a context",
                        crate::jcs::canonical(other)
                    ))
                }
            }
            match label.get("confidentiality") {
                None | Some(Value::Null) => {}
                Some(Value::Array(a)) => {
                    for c in a {
                        check_clause(c).map_err(|e| format!("{key}: {e}"))?;
                        out.push(c.clone());
                    }
                }
                Some(other) => {
                    return Err(format!(
                        "{key}: confidentiality {} is not a list of clauses",
                        crate::jcs::canonical(other)
                    ))
                }
            }
        }
    }
    Ok(out)
}

/// The label policy file: labels of sandbox paths.
///
/// ```toml
/// unlabelled = "public"          # or "unknown": a readable root nothing labels
/// [[path]]
/// pattern = "/workspace/secrets/**"
/// confidentiality = ["team-a", { anyOf = ["x", "y"] }]
/// ```
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelPolicy {
    #[serde(default)]
    pub unlabelled: Unlabelled,
    #[serde(default)]
    pub path: Vec<PathLabel>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unlabelled {
    #[default]
    Public,
    Unknown,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathLabel {
    /// A sandbox path; `*`, `?` and `[` in a component make it a pattern.
    pub pattern: String,
    pub confidentiality: Vec<toml::Value>,
}

impl PathLabel {
    /// The literal part of the pattern: the components before the first with a wildcard.
    fn prefix(&self) -> PathBuf {
        let mut out = PathBuf::from("/");
        for c in self.pattern.split('/').filter(|c| !c.is_empty()) {
            if c.contains(['*', '?', '[']) {
                break;
            }
            out.push(c);
        }
        out
    }

    /// Whether something this pattern matches may lie at, beneath or above `root`.
    fn may_touch(&self, root: &Path) -> bool {
        let p = self.prefix();
        root.starts_with(&p) || p.starts_with(root)
    }
}

impl LabelPolicy {
    pub fn load(path: &Path) -> Result<LabelPolicy, String> {
        let text = read_trusted(path)?;
        let policy: LabelPolicy = toml::from_str(&text)
            .map_err(|e| format!("{}: {}", path.display(), e.to_string().trim()))?;
        for p in &policy.path {
            if !p.pattern.starts_with('/') {
                return Err(format!(
                    "{}: pattern {:?}: must be an absolute sandbox path",
                    path.display(),
                    p.pattern
                ));
            }
            for c in p.clauses()? {
                check_clause(&c).map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
        Ok(policy)
    }
}

impl PathLabel {
    fn clauses(&self) -> Result<Vec<Value>, String> {
        self.confidentiality
            .iter()
            .map(|v| serde_json::to_value(v).map_err(|e| e.to_string()))
            .collect()
    }
}

/// The label store: host path → the confidentiality its writes last took.
#[derive(Debug, Default, serde::Serialize, Deserialize)]
pub struct Store {
    pub version: u32,
    pub labels: BTreeMap<PathBuf, Vec<Value>>,
}

impl Store {
    pub fn load(path: &Path) -> Result<Store, String> {
        if std::fs::symlink_metadata(path).is_err() {
            return Ok(Store {
                version: 1,
                labels: BTreeMap::new(),
            });
        }
        let text = read_trusted(path)?;
        let store: Store = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a label store: {e}", path.display()))?;
        if store.version != 1 {
            return Err(format!(
                "{}: label store version {} unknown",
                path.display(),
                store.version
            ));
        }
        Ok(store)
    }
}

/// A readable root of the view: where it appears, what it is on the host, whether it is the
/// runtime allowance (public unless the policy says otherwise).
pub struct Root {
    pub sandbox: PathBuf,
    pub host: PathBuf,
    pub runtime: bool,
    pub writable: bool,
}

/// The roots of a plan's view that hold host data (the private tmp, /dev/shm, HOME and /proc
/// are the run's own and start empty).
pub fn roots(plan: &Plan) -> Vec<Root> {
    let mut out = vec![];
    for g in plan.grants.iter().chain(plan.agent_install.iter()) {
        if !g.per_run {
            out.push(Root {
                sandbox: g.path.clone(),
                host: g.path.clone(),
                runtime: false,
                writable: g.access.write,
            });
        }
    }
    for g in plan.runtime.iter().filter(|g| !g.per_run) {
        out.push(Root {
            sandbox: g.path.clone(),
            host: g.path.clone(),
            runtime: true,
            writable: false,
        });
    }
    for b in &plan.binds {
        out.push(Root {
            sandbox: b.sandbox.clone(),
            host: b.grant.path.clone(),
            runtime: false,
            writable: b.grant.access.write,
        });
    }
    out
}

/// The label of a run: see the module's documentation.
pub fn result_label(
    inputs: Option<&[Value]>,
    roots: &[Root],
    policy: &LabelPolicy,
    store: &Store,
    net: NetMode,
) -> Result<Conf, String> {
    let mut conf = Conf::default();
    match inputs {
        Some(clauses) => conf.join(clauses),
        None => conf.atom(UNKNOWN_INPUTS),
    }
    if net != NetMode::None {
        conf.atom(UNKNOWN_NETWORK);
    }
    for root in roots {
        let mut labelled = false;
        for p in policy.path.iter().filter(|p| p.may_touch(&root.sandbox)) {
            conf.join(&p.clauses()?);
            labelled = true;
        }
        for (host, clauses) in &store.labels {
            if host.starts_with(&root.host) || root.host.starts_with(host) {
                conf.join(clauses);
                labelled = true;
            }
        }
        if !labelled && !root.runtime && policy.unlabelled == Unlabelled::Unknown {
            conf.atom(UNKNOWN_UNLABELLED);
        }
    }
    Ok(conf)
}

/// The result file's JSON.
pub fn result_json(id: &str, wait_status: Option<i32>, conf: &Conf) -> Value {
    let string = if conf.is_public() {
        "{conf: ⊤, integ: ∅}".to_string()
    } else {
        format!(
            "{{conf: {}, integ: ∅}}",
            crate::jcs::canonical(&Value::from(conf.clauses().to_vec()))
        )
    };
    let mut out = json!({
        "version": 1,
        "containerId": id,
        "sandboxId": format!("cw-exec:{id}"),
        "cfcTaint": {
            "string": string,
            "xattrJSON": {"confidentiality": conf.clauses(), "integrity": []},
        },
    });
    if let Some(code) = wait_status {
        out["waitStatus"] = json!(code);
    }
    out
}

/// Records the label every writable root took, under the store's lock.
pub fn update_store(cfc: &Cfc, roots: &[Root], conf: &Conf) -> Result<(), String> {
    use std::os::fd::AsFd;
    let writable: Vec<&Root> = roots.iter().filter(|r| r.writable).collect();
    if writable.is_empty() {
        return Ok(());
    }
    let store_path = &cfc.label_store;
    let (parent, name) = match (store_path.parent(), store_path.file_name()) {
        (Some(p), Some(n)) => (p, n),
        _ => return Err(format!("{}: not a file path", store_path.display())),
    };
    let held =
        crate::kernel::pathfd::resolve(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    let dir = crate::fsio::Dir::new(held.fd, held.path).map_err(|e| e.to_string())?;
    let mut lock_name = name.to_os_string();
    lock_name.push(".lock");
    dir.create_empty_file(&lock_name)
        .map_err(|e| format!("{}: {e}", parent.join(&lock_name).display()))?;
    let lock_fd = nix::fcntl::openat(
        dir.as_fd(),
        lock_name.as_os_str(),
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| format!("{}: {}", parent.join(&lock_name).display(), e.desc()))?;
    let _lock = nix::fcntl::Flock::lock(lock_fd, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| format!("{}: {}", parent.join(&lock_name).display(), e.desc()))?;
    let mut store = Store::load(store_path)?;
    store.version = 1;
    for root in writable {
        store
            .labels
            .insert(root.host.clone(), conf.clauses().to_vec());
    }
    let mut bytes = serde_json::to_vec_pretty(&store).map_err(|e| e.to_string())?;
    bytes.push(b'\n');
    dir.replace_file(name, &bytes)
        .map_err(|e| format!("{}: {e}", store_path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(sandbox: &str, host: &str, runtime: bool) -> Root {
        Root {
            sandbox: sandbox.into(),
            host: host.into(),
            runtime,
            writable: !runtime,
        }
    }

    #[test]
    fn nothing_labelled_is_public_and_labels_join_by_union() {
        let roots = [
            root("/workspace", "/h/ws", false),
            root("/usr", "/usr", true),
        ];
        let none = LabelPolicy::default();
        let store = Store::default();
        let c = result_label(Some(&[]), &roots, &none, &store, NetMode::None).unwrap();
        assert!(c.is_public());
        let r = result_json("id", Some(0), &c);
        assert_eq!(r["cfcTaint"]["string"], "{conf: ⊤, integ: ∅}");
        assert_eq!(r["cfcTaint"]["xattrJSON"]["confidentiality"], json!([]));
        assert_eq!(r["cfcTaint"]["xattrJSON"]["integrity"], json!([]));
        // Inputs, unknown network, no context: each adds, duplicates collapse.
        let inputs = [json!("a"), json!({"anyOf": ["b", "c"]}), json!("a")];
        let c = result_label(Some(&inputs), &roots, &none, &store, NetMode::Host).unwrap();
        assert_eq!(
            c.clauses(),
            [
                json!("a"),
                json!({"anyOf": ["b", "c"]}),
                json!(UNKNOWN_NETWORK)
            ]
        );
        let c = result_label(None, &roots, &none, &store, NetMode::None).unwrap();
        assert_eq!(c.clauses(), [json!(UNKNOWN_INPUTS)]);
    }

    #[test]
    fn policy_patterns_and_stored_labels_taint_overlapping_roots() {
        let policy: LabelPolicy = toml::from_str(
            "unlabelled = \"unknown\"\n[[path]]\npattern = \"/workspace/secret/**\"\nconfidentiality = [\"s\"]\n[[path]]\npattern = \"/data/*.csv\"\nconfidentiality = [{ anyOf = [\"x\", \"y\"] }]\n",
        )
        .unwrap();
        let mut store = Store::default();
        store.labels.insert("/h/ws/out".into(), vec![json!("w")]);
        let roots = [
            root("/workspace", "/h/ws", false),
            root("/usr", "/usr", true),
        ];
        let c = result_label(Some(&[]), &roots, &policy, &store, NetMode::None).unwrap();
        assert_eq!(c.clauses(), [json!("s"), json!("w")]);
        // A root nothing labels is unknown under `unlabelled = "unknown"`; the runtime
        // allowance stays public.
        let roots = [
            root("/elsewhere", "/h/e", false),
            root("/usr", "/usr", true),
        ];
        let c = result_label(Some(&[]), &roots, &policy, &store, NetMode::None).unwrap();
        assert_eq!(c.clauses(), [json!(UNKNOWN_UNLABELLED)]);
        let roots = [root("/data", "/h/d", false)];
        let c = result_label(Some(&[]), &roots, &policy, &store, NetMode::None).unwrap();
        assert_eq!(c.clauses(), [json!({"anyOf": ["x", "y"]})]);
    }

    #[test]
    fn contexts_with_integrity_are_refused() {
        let ctx = |labels: Value| {
            json!({"type": "cf-harness.cfc-invocation-context", "version": 1,
                   "cfcInputLabels": {"version": 1, "entries": labels}})
        };
        let ok =
            ctx(json!([{"path": ["stdin"], "label": {"confidentiality": ["p"], "integrity": []}}]));
        assert_eq!(context_labels(&ok).unwrap(), [json!("p")]);
        let bad = ctx(json!([{"path": ["x"], "label": {"integrity": ["trusted"]}}]));
        assert!(context_labels(&bad)
            .unwrap_err()
            .contains("claims integrity"));
        assert!(context_labels(&json!({"type": "other", "version": 1})).is_err());
        let nothing = ctx(json!([]));
        assert_eq!(context_labels(&nothing).unwrap(), Vec::<Value>::new());
    }
}
