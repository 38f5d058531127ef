//! The typed core: plain data with no I/O, which every layer above speaks. Dimensions,
//! access and grants, the network mode, the policy facts an attestation states, symlinks met
//! while resolving, and the one `Refusal` type every front end renders in its own dialect.
//! Nothing here imports another module of cw-exec.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Exit status of a refusal or a failure before exec.
pub const EXIT_REFUSED: i32 = 125;
/// Exit status when the command could not be executed.
pub const EXIT_CANNOT_EXECUTE: i32 = 126;
/// Exit status when the command was not found.
pub const EXIT_NOT_FOUND: i32 = 127;
/// Exit status when the wall-clock limit expired.
pub const EXIT_TIMEOUT: i32 = 124;
/// Exit status when the CPU limit ended the run: 128 + SIGXCPU, whether the whole-sandbox
/// accounting or a process's RLIMIT_CPU stopped it first (README "Exit codes").
pub const EXIT_CPU: i32 = 128 + libc::SIGXCPU;

/// One of the five things a policy restricts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dimension {
    Read,
    Write,
    Command,
    Network,
    Env,
}

impl Dimension {
    /// All five, in the order attestations list them.
    pub const ALL: [Dimension; 5] = [
        Dimension::Read,
        Dimension::Write,
        Dimension::Command,
        Dimension::Network,
        Dimension::Env,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Read => "read",
            Dimension::Write => "write",
            Dimension::Command => "command",
            Dimension::Network => "network",
            Dimension::Env => "env",
        }
    }
}

impl std::fmt::Display for Dimension {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The names of dimensions, for messages and JSON.
pub fn names(dims: &[Dimension]) -> Vec<&'static str> {
    dims.iter().map(|d| d.as_str()).collect()
}

/// The dimensions Landlock is the mechanism for.
pub const LANDLOCK_DIMENSIONS: [Dimension; 3] =
    [Dimension::Read, Dimension::Write, Dimension::Command];

/// How a sandbox is built: with namespaces and a mount view (the full tier), or — where user
/// namespaces are denied (containers under a default seccomp profile, hardened hosts) — with
/// Landlock, seccomp and process containment alone, each weaker point named in the gaps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Namespaces,
    Landlock,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Namespaces => "namespaces",
            Tier::Landlock => "landlock",
        }
    }
}

/// Which tiers a policy accepts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TierChoice {
    /// The namespace tier where it is available, else the Landlock tier (with a notice).
    #[default]
    Auto,
    /// The namespace tier or nothing: refused where user namespaces are unavailable.
    Namespaces,
    /// The Landlock tier, by choice (the cheapest fully enforcing mode).
    Landlock,
}

impl TierChoice {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "auto" => Ok(TierChoice::Auto),
            "namespaces" => Ok(TierChoice::Namespaces),
            "landlock" => Ok(TierChoice::Landlock),
            other => Err(format!(
                "unknown tier {other:?}: expected auto, namespaces or landlock"
            )),
        }
    }
}

/// Network policy for the sandbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NetMode {
    /// No network at all: a fresh network namespace with no interface up, no TCP through
    /// Landlock, and no socket family but AF_UNIX through seccomp.
    None,
    /// A private loopback interface inside a fresh network namespace.
    Loopback,
    /// The host's network, unrestricted (network is then not a required dimension).
    Host,
    /// Only through cw-exec's egress proxy, to the names the policy allows: a fresh network
    /// namespace with loopback, where the proxy's socket is the only way out.
    Allowlist,
}

impl NetMode {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "none" => Ok(NetMode::None),
            "loopback" => Ok(NetMode::Loopback),
            "host" => Ok(NetMode::Host),
            "allowlist" => Ok(NetMode::Allowlist),
            other => Err(format!(
                "unknown network mode {other:?}: expected none, loopback, host, or allow=NAMES"
            )),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            NetMode::None => "none",
            NetMode::Loopback => "loopback",
            NetMode::Host => "host",
            NetMode::Allowlist => "allowlist",
        }
    }
}

impl std::fmt::Display for NetMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Access granted beneath a path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Access {
    pub read: bool,
    pub write: bool,
    pub exec: bool,
}

impl Access {
    pub fn describe(self) -> String {
        let mut parts = vec![];
        if self.read || self.write {
            parts.push("read");
        }
        if self.write {
            parts.push("write");
        }
        if self.exec {
            parts.push("exec");
        }
        parts.join("+")
    }
}

/// What identifies a file system object: the device and inode, and the mount it was found
/// on (mount ids are per mount namespace).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    pub dev: u64,
    pub ino: u64,
    pub mnt_id: u64,
}

/// A symlink met while resolving.
#[derive(Clone, Debug)]
pub struct Link {
    /// Where the link is (its parent physically resolved, so no symlinks in it).
    pub at: PathBuf,
    /// What it points to, as stored.
    pub target: PathBuf,
    /// The link's owner.
    pub owner: u32,
    /// The owner, group and mode of the directory holding it: who could have placed it.
    pub dir_owner: u32,
    pub dir_group: u32,
    pub dir_mode: u32,
}

impl Link {
    /// Whether a user other than root and `caller` could have created or replaced this link:
    /// it is owned by someone else, or it sits in a directory that someone else may write
    /// (group- or world-writable, unless sticky — in a sticky directory only the link's owner
    /// may replace it — or owned by someone else).
    pub fn placeable_by_others(&self, caller: u32) -> bool {
        let trusted = |uid: u32| uid == 0 || uid == caller;
        let sticky = self.dir_mode & 0o1000 != 0;
        let others_write =
            self.dir_mode & 0o002 != 0 || (self.dir_mode & 0o020 != 0 && self.dir_group != 0);
        !trusted(self.owner) || !trusted(self.dir_owner) || (others_write && !sticky)
    }

    /// Why this link, met while resolving to `resolved`, must not be followed without the
    /// caller's say-so, if it must not: someone other than root and `caller` could have placed
    /// it, or it lies inside one of `write_roots` (where a sandbox could have planted it) and
    /// leads out of that root.
    pub fn untrusted_because(
        &self,
        caller: u32,
        write_roots: &[PathBuf],
        resolved: &Path,
    ) -> Option<String> {
        if self.placeable_by_others(caller) {
            return Some(format!(
                "another user could have placed it (link owner uid {}, in a directory of uid {} with mode {:o})",
                self.owner, self.dir_owner, self.dir_mode
            ));
        }
        write_roots
            .iter()
            .find(|w| self.at.starts_with(w) && !resolved.starts_with(w))
            .map(|w| {
                format!(
                    "it lies inside {}, which this run may write, and leads out of it",
                    w.display()
                )
            })
    }
}

/// One path the sandbox may use, resolved on the host.
#[derive(Clone, Debug, Serialize)]
pub struct Grant {
    /// The path as resolved (absolute, symlinks followed): what is mounted and ruled.
    pub path: PathBuf,
    /// The absolute path as requested (tokens expanded, symlinks not followed): the mount
    /// view recreates the symlinks along it so the requested spelling works inside too.
    pub requested: String,
    pub access: Access,
    pub is_dir: bool,
    /// The private tmp (a tmpfs made for this run), not a host path.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub per_run: bool,
    /// Device, inode and mount id of the object when it was resolved: init binds only an
    /// object with this device and inode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    /// The `O_PATH` descriptor held since the path was resolved: the Landlock rule is built
    /// from it, never from the name.
    #[serde(skip)]
    pub held: Option<Arc<OwnedFd>>,
    /// The symlinks followed to resolve the requested spelling (recreated in the view).
    #[serde(skip)]
    pub links: Vec<Link>,
}

/// A host path bound at another path in the sandbox (`--bind HOST:SANDBOX[:ro]`, a profile's
/// `bind`, a docker `--mount`): what was asked for, before anything is resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindSpec {
    /// The host source as given (path tokens allowed).
    pub host: String,
    /// Where it appears in the sandbox: absolute, without `.` or `..`.
    pub sandbox: PathBuf,
    pub read_only: bool,
}

impl BindSpec {
    /// Parses `HOST:SANDBOX`, `HOST:SANDBOX:ro` or `HOST:SANDBOX:rw`. Neither path may contain
    /// a `:` (use the docker front end's `--mount src=,dst=` for such paths).
    pub fn parse(text: &str) -> Result<BindSpec, String> {
        let parts: Vec<&str> = text.split(':').collect();
        let (host, sandbox, read_only) = match parts.as_slice() {
            [h, s] => (*h, *s, false),
            [h, s, "ro"] => (*h, *s, true),
            [h, s, "rw"] => (*h, *s, false),
            [_, _, other] => {
                return Err(format!(
                    "{text:?}: unknown bind option {other:?} (expected ro or rw)"
                ))
            }
            _ => {
                return Err(format!(
                    "{text:?}: expected HOST:SANDBOX or HOST:SANDBOX:ro (paths without ':')"
                ))
            }
        };
        BindSpec::new(host, sandbox, read_only).map_err(|e| format!("{text:?}: {e}"))
    }

    /// A bind from its parts; the sandbox path must be absolute and normal (no `.`, `..`,
    /// doubled or trailing `/`), and not `/`.
    pub fn new(host: &str, sandbox: &str, read_only: bool) -> Result<BindSpec, String> {
        if host.is_empty() {
            return Err("the host path is empty".into());
        }
        if host.contains('\0') || sandbox.contains('\0') {
            return Err("a path contains a NUL byte".into());
        }
        let dest = Path::new(sandbox);
        let normal = sandbox.starts_with('/')
            && sandbox.len() > 1
            && !sandbox.ends_with('/')
            && !sandbox.contains("//")
            && dest.components().all(|c| {
                matches!(
                    c,
                    std::path::Component::RootDir | std::path::Component::Normal(_)
                )
            })
            && !sandbox.split('/').any(|c| c == ".");
        if !normal {
            return Err(format!(
                "sandbox path {sandbox:?}: must be an absolute path other than / without '.' or '..' components"
            ));
        }
        Ok(BindSpec {
            host: host.to_string(),
            sandbox: dest.to_path_buf(),
            read_only,
        })
    }
}

/// `UID:GID`, both numeric (`--user`, docker's `--user`).
pub fn parse_user(text: &str) -> Result<(u32, u32), String> {
    let parse = |n: &str| n.parse::<u32>().ok().filter(|v| *v != u32::MAX);
    match text.split_once(':') {
        Some((u, g)) => match (parse(u), parse(g)) {
            (Some(u), Some(g)) => Ok((u, g)),
            _ => Err(format!(
                "{text:?}: expected UID:GID, two numbers in [0, 4294967294]"
            )),
        },
        None => Err(format!(
            "{text:?}: expected UID:GID (numeric; names are not looked up)"
        )),
    }
}

/// A credential path covered by a grant that does not name it: masked in the view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Mask {
    pub path: PathBuf,
    #[serde(rename = "isDir")]
    pub is_dir: bool,
}

/// The policy facts an attestation states, whether or not a plan was made. A plan lowered
/// from a cool-workflow policy carries them; otherwise they follow from the plan.
#[derive(Clone, Debug)]
pub struct PolicyFacts {
    pub profile_id: String,
    pub required: Vec<Dimension>,
    pub enforced_by_cw: Vec<String>,
    pub host_required: Vec<String>,
    pub notes: Vec<String>,
}

/// What a refusal is about, when it is about enforcement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failing {
    /// These dimensions cannot be enforced here (in `Dimension::ALL` order); none for a
    /// refusal that is about something else (bad input, a denied command).
    Dimensions(Vec<Dimension>),
    /// This limit has no mechanism that binds as asked; no dimension is at fault.
    Limit(String),
}

/// The kinds of refusal, with cool-workflow's codes (which every front end reports).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusalCode {
    /// The request is malformed: a bad profile, flag, path or document.
    BadInput,
    /// The command is not on the policy's command allowlist.
    CommandDenied,
    /// What is required cannot be enforced (or proven) here: a dimension, or a limit.
    Unenforceable,
    /// There is no command to run.
    NoCommand,
    /// The command was not found (or is not visible in the sandbox).
    CommandNotFound,
}

impl RefusalCode {
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalCode::BadInput => "backend-not-runnable",
            RefusalCode::CommandDenied => "sandbox-command-denied",
            RefusalCode::Unenforceable => "sandbox-unenforceable",
            RefusalCode::NoCommand | RefusalCode::CommandNotFound => "no-command",
        }
    }
}

/// Why nothing was (or will be) executed. One type from the plan to every front end: the CLI
/// prints it and exits with `exit_status`, cool-workflow gets a refused envelope, a protocol
/// front end its own denial.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: RefusalCode,
    pub failing: Failing,
    /// The mechanism or set-up step that failed (`landlock`, `cgroups`, `mount view`), if any.
    pub mechanism: Option<String>,
    pub message: String,
}

impl Refusal {
    /// Bad input: names the culprit.
    pub fn bad(message: impl Into<String>) -> Refusal {
        Refusal {
            code: RefusalCode::BadInput,
            failing: Failing::Dimensions(vec![]),
            mechanism: None,
            message: message.into(),
        }
    }

    /// These dimensions cannot be enforced through `mechanism`.
    pub fn dimensions(
        dims: &[Dimension],
        mechanism: impl Into<String>,
        message: impl Into<String>,
    ) -> Refusal {
        Refusal {
            code: RefusalCode::Unenforceable,
            failing: Failing::Dimensions(dims.to_vec()),
            mechanism: Some(mechanism.into()),
            message: message.into(),
        }
    }

    /// This limit cannot bind as asked.
    pub fn limit(limit: impl Into<String>, message: impl Into<String>) -> Refusal {
        let limit = limit.into();
        Refusal {
            code: RefusalCode::Unenforceable,
            mechanism: Some(format!("limit {limit}")),
            failing: Failing::Limit(limit),
            message: message.into(),
        }
    }

    /// The command was not found.
    pub fn not_found(message: impl Into<String>) -> Refusal {
        Refusal {
            code: RefusalCode::CommandNotFound,
            failing: Failing::Dimensions(vec![]),
            mechanism: None,
            message: message.into(),
        }
    }

    /// A refusal of another kind, about no dimension.
    pub fn other(code: RefusalCode, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            failing: Failing::Dimensions(vec![]),
            mechanism: None,
            message: message.into(),
        }
    }

    /// The dimensions at fault (none for a limit).
    pub fn dimensions_at_fault(&self) -> Vec<Dimension> {
        match &self.failing {
            Failing::Dimensions(d) => d.clone(),
            Failing::Limit(_) => vec![],
        }
    }

    /// The CLI's exit status: 127 for a command not found, else 125.
    pub fn exit_status(&self) -> i32 {
        match self.code {
            RefusalCode::CommandNotFound => EXIT_NOT_FOUND,
            _ => EXIT_REFUSED,
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Lower-case hex of some bytes (digests, keys, ids).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The exit status for an `execve` that failed with `errno`: 127 when there is nothing to
/// execute by that name, 126 when it exists but cannot be executed.
pub fn exec_failure_status(errno: i32) -> i32 {
    match errno {
        libc::ENOENT | libc::ENOTDIR => EXIT_NOT_FOUND,
        _ => EXIT_CANNOT_EXECUTE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_map_to_codes_and_exit_statuses() {
        let r = Refusal::dimensions(&[Dimension::Read, Dimension::Write], "landlock", "no");
        assert_eq!(
            (r.code.as_str(), r.exit_status()),
            ("sandbox-unenforceable", 125)
        );
        assert_eq!(
            r.dimensions_at_fault(),
            vec![Dimension::Read, Dimension::Write]
        );
        let l = Refusal::limit("memory", "no cgroup");
        assert_eq!(l.dimensions_at_fault(), vec![]);
        assert_eq!(l.mechanism.as_deref(), Some("limit memory"));
        assert_eq!(Refusal::not_found("x").exit_status(), 127);
        assert_eq!(Refusal::not_found("x").code.as_str(), "no-command");
        assert_eq!(Refusal::bad("x").code.as_str(), "backend-not-runnable");
        assert_eq!(
            Refusal::other(RefusalCode::CommandDenied, "x")
                .code
                .as_str(),
            "sandbox-command-denied"
        );
        assert_eq!(exec_failure_status(libc::ENOENT), 127);
        assert_eq!(exec_failure_status(libc::EACCES), 126);
    }

    #[test]
    fn bind_specs_parse_or_name_what_is_wrong() {
        let b = BindSpec::parse("/srv/data:/data:ro").unwrap();
        assert_eq!(
            (b.host.as_str(), b.sandbox.as_path(), b.read_only),
            ("/srv/data", Path::new("/data"), true)
        );
        assert!(!BindSpec::parse("$cwd:/workspace").unwrap().read_only);
        assert!(!BindSpec::parse("a:/w:rw").unwrap().read_only);
        for (bad, why) in [
            ("/a", "expected HOST:SANDBOX"),
            ("/a:/b:ro:x", "expected HOST:SANDBOX"),
            ("/a:/b:rx", "unknown bind option"),
            (":/b", "host path is empty"),
            ("/a:b", "absolute"),
            ("/a:/", "absolute"),
            ("/a:/b/../c", "absolute"),
            ("/a:/b/./c", "absolute"),
            ("/a:/b/", "absolute"),
            ("/a://b", "absolute"),
        ] {
            let e = BindSpec::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn dimensions_name_and_parse_in_order() {
        assert_eq!(
            names(&Dimension::ALL),
            ["read", "write", "command", "network", "env"]
        );
    }
}
