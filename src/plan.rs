//! The plan: a policy lowered onto this host and kernel. Paths are resolved once here,
//! the seccomp program is compiled here, and the mechanism for each dimension is chosen
//! here, before anything is forked. Building a plan has no side effects, so `explain`
//! prints exactly what `run` would do.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::os::fd::AsFd;
use std::sync::Arc;

use serde::Serialize;

use crate::credentials::{Credentials, Found};
use crate::kernel::landlock::LandlockAbi;
use crate::kernel::mount_view::{Bind, PrivateDir, View};
use crate::kernel::pathfd::{self, Held};
use crate::kernel::seccomp::SeccompProgram;
use crate::limits::{Limits, LimitsPlan};
use crate::model::{
    Access, BindSpec, Dimension, Grant, Mask, NetMode, PolicyFacts, Refusal, Tier, TierChoice,
    LANDLOCK_DIMENSIONS,
};
use crate::policy::{check_env_name, HomeMode, LimitsPolicy, Profile, Tokens};

/// The sandbox's /tmp: always a private tmpfs, never the host's (`$tmp` names it). Host paths
/// beneath /tmp can still be granted; they are bound on top of it.
pub use crate::kernel::mount_view::PRIVATE_TMP;

/// The sandbox's /dev/shm: always a private directory of the run's tmpfs (POSIX shared memory
/// and semaphores work); the host's is never granted (it is a channel to host processes).
pub const PRIVATE_SHM: &str = "/dev/shm";

/// The default `PATH` inside the sandbox: the system directories, nothing user-writable.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What a request asks for: a profile plus the `run` flags that add to it.
#[derive(Clone, Debug, Default)]
pub struct Request {
    pub profile: Option<String>,
    pub read: Vec<String>,
    pub write: Vec<String>,
    pub exec: Vec<String>,
    pub net: Option<NetMode>,
    pub env: Vec<String>,
    pub setenv: Vec<String>,
    pub cwd: Option<PathBuf>,
    /// Limits from flags; each overrides the profile's `[limits]` value.
    pub limits: LimitsPolicy,
    pub command: Vec<String>,
    /// How the environment starts.
    pub env_base: EnvBase,
    /// Names removed last, whatever added them (cool-workflow's `env.deny`: deny wins).
    pub env_deny: Vec<String>,
    /// Forward provider-key variables and USER, as cool-workflow does for agents.
    pub forward_provider_keys: Option<bool>,
    /// Follow symlinks in grants and `--cwd` that someone else could have placed.
    pub follow_symlinks: bool,
    /// Host paths bound at other sandbox paths (`--bind`; added to the profile's `bind`).
    pub binds: Vec<BindSpec>,
    /// The identity to run the command as (`--user UID:GID`): the caller's own, or any when
    /// cw-exec runs as root.
    pub user: Option<(u32, u32)>,
    /// Host paths no sandbox may see or change (a front end's private state, a label
    /// store), with what each is: a grant at or beneath one is refused, and so is a write
    /// grant covering one and any bind overlapping one; a read grant covering one gets it
    /// masked, like cw-exec's signing key.
    pub protected: Vec<(PathBuf, String)>,
    /// Grant the command's own installation (and its script interpreter's) as a separately
    /// attested allowance: the directory of the resolved binary.
    pub agent_install: bool,
    /// The cool-workflow policy this request was lowered from, if any.
    pub cw: Option<PolicyFacts>,
    /// Record and print phase timings.
    pub timings: bool,
    /// Programs of an exec allowlist given as command lines (cool-workflow's
    /// `execute.allow`): each entry's first word is resolved on the sandbox's PATH, with its
    /// interpreter chain, into exec grants. Any entry turns the exec allowlist on.
    pub exec_programs: Vec<String>,
    /// Variables set exactly as given (no token expansion), before the command is looked up
    /// on PATH: a Raxcell request's `command.env` (with `EnvBase::Given`).
    pub env_literal: Vec<(String, String)>,
    /// Which containment tiers the caller accepts (`--tier`); the profile's `tier` otherwise.
    pub tier: Option<TierChoice>,
    /// The egress allowlist (`--net allow=...`), deny entries and pinned names, added to the
    /// profile's `[network]` table.
    pub net_allow: Vec<String>,
    pub net_deny: Vec<String>,
    pub net_resolve: Vec<String>,
    /// With `--net loopback`: the only TCP ports the sandbox may listen on.
    pub allow_bind: Vec<u16>,
    /// Why the Landlock tier is used when the namespace tier was tried first and failed at
    /// run time (set by `supervise::run_falling_back`).
    pub tier_fallback: Option<String>,
    /// Seconds between forwarding SIGTERM, SIGINT or SIGHUP and killing the whole tree
    /// (`--kill-after`; None: `DEFAULT_KILL_AFTER`).
    pub kill_after: Option<f64>,
}

impl Request {
    /// Whether an exec allowlist is in force: the profile has one, or the request adds to one.
    pub fn exec_allowlist(&self, profile: &Profile) -> bool {
        profile.exec.allow.is_some() || !self.exec.is_empty() || !self.exec_programs.is_empty()
    }

    /// The network mode: the request's, else the profile's, else none.
    pub fn net_mode(&self, profile: &Profile) -> NetMode {
        self.net.or(profile.net).unwrap_or(NetMode::None)
    }
}

/// Where the sandbox's environment starts from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EnvBase {
    /// cw-exec's own: PATH (system directories), HOME, LANG, TERM if set, TMPDIR.
    #[default]
    Scratch,
    /// cool-workflow's: with `inherit`, all of cw-exec's environment; without, PATH and
    /// HOME as cw-exec has them.
    CoolWorkflow { inherit: bool },
    /// Nothing but PATH (the system directories): the request's `env_literal` is the rest
    /// (a Raxcell request: exactly `command.env` plus PATH).
    Given,
}

/// Prefixes of the provider-key variables cool-workflow forwards to agents.
pub const PROVIDER_KEY_PREFIXES: &[&str] = &[
    "CW_",
    "ANTHROPIC_",
    "OPENAI_",
    "GEMINI_",
    "DEEPSEEK_",
    "CODEX_",
    "GOOGLE_",
    "COHERE_",
    "MISTRAL_",
    "OLLAMA_",
    "AZURE_",
    "AWS_",
];

/// cool-workflow's own secrets, which never reach any child whatever the policy says.
pub const NEVER_FORWARD: &[&str] = &[
    "CW_RELEASE_VERDICT_PRIVKEY",
    "CW_WORKBENCH_TOKEN",
    "CW_BENCH_TRACE_FILE",
];

fn bad(message: impl Into<String>) -> Refusal {
    Refusal::bad(message)
}

impl Grant {
    /// A grant of a directory of the sandbox's own tmpfs (the private tmp, `/dev/shm`, a
    /// private HOME): nothing on the host to hold; the Landlock rule is made in the view.
    fn internal(path: &str, requested: &str, access: Access) -> Grant {
        Grant {
            path: PathBuf::from(path),
            requested: requested.into(),
            access,
            is_dir: true,
            per_run: true,
            identity: None,
            held: None,
            links: vec![],
        }
    }

    /// An entry of an expanded grant that was left out (the caller cannot read it): no
    /// access, nothing held. `requested_grants` takes these out into `Plan::skipped`.
    fn skipped(path: &Path) -> Grant {
        Grant {
            path: path.to_path_buf(),
            requested: String::new(),
            access: Access::default(),
            is_dir: false,
            per_run: false,
            identity: None,
            held: None,
            links: vec![],
        }
    }

    fn is_skipped(&self) -> bool {
        self.access == Access::default() && self.held.is_none() && !self.per_run
    }

    /// A grant of a resolved host object.
    fn held(held: Held, requested: String, access: Access) -> Grant {
        Grant {
            path: held.path,
            requested,
            access,
            is_dir: held.is_dir,
            per_run: false,
            identity: Some(held.identity),
            held: Some(Arc::new(held.fd)),
            links: held.links,
        }
    }
}

/// The runtime allowance: what a normal program needs to start. Read-only; executable
/// unless an exec allowlist is in force (then only the dynamic loader is). Entries that do
/// not exist on this host are skipped. It deliberately contains no credentials: not
/// /etc/shadow, /etc/gshadow, /etc/sudoers*, /etc/ssh, /etc/ssl/private, /root, /home.
pub const RUNTIME_READ: &[&str] = &[
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/timezone",
    "/etc/locale.alias",
    "/etc/locale.conf",
    "/etc/ssl/certs",
    "/etc/ssl/openssl.cnf",
    "/etc/ca-certificates",
    "/etc/ca-certificates.conf",
    "/etc/pki/tls/certs",
    "/etc/pki/ca-trust",
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/etc/host.conf",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/gai.conf",
    "/etc/services",
    "/etc/protocols",
    "/etc/mime.types",
    "/etc/alternatives",
    "/etc/terminfo",
    "/etc/inputrc",
    "/etc/os-release",
];

/// Device nodes bound into the sandbox's /dev. The first three are writable (writes go
/// nowhere); the random devices are read-only.
pub const RUNTIME_DEVICES: &[(&str, bool)] = &[
    ("/dev/null", true),
    ("/dev/zero", true),
    ("/dev/full", true),
    ("/dev/random", false),
    ("/dev/urandom", false),
];

/// ELF interpreters of the architecture cw-exec runs on: executable even under an exec
/// allowlist, since the kernel opens the loader of every dynamically linked program with an
/// exec check. Another architecture's loader runs nothing here (its programs do not execute
/// natively), so it is neither looked for nor granted.
#[cfg(target_arch = "x86_64")]
const DYNAMIC_LOADERS: &[&str] = &["/lib64/ld-linux-x86-64.so.2", "/lib/ld-musl-x86_64.so.1"];
#[cfg(target_arch = "aarch64")]
const DYNAMIC_LOADERS: &[&str] = &["/lib/ld-linux-aarch64.so.1"];
#[cfg(target_arch = "riscv64")]
const DYNAMIC_LOADERS: &[&str] = &["/lib/ld-linux-riscv64-lp64d.so.1"];
#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64"
)))]
const DYNAMIC_LOADERS: &[&str] = &[];

/// Shared-library directories: under an exec allowlist, the only part of the runtime
/// allowance mounted exec, because the loader maps libraries with mmap(PROT_EXEC), which
/// `noexec` refuses. Everything else there (/usr/bin, /usr/sbin, /usr/libexec, /usr/local/bin,
/// ...) is mounted noexec, so `ld.so FILE` cannot map a program from it either. Whatever
/// executables lie inside these directories (/usr/lib/git-core/*, /usr/lib/jvm/*/bin/*, ...)
/// stay mappable: a gap the attestation names.
pub const LIBRARY_DIRS: &[&str] = &[
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/usr/lib",
    "/usr/lib32",
    "/usr/lib64",
    "/usr/libx32",
    "/usr/local/lib",
    "/usr/local/lib64",
];

/// One program of an exec allowlist given as a command line (`Request::exec_programs`).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProgramGrant {
    /// The allowlist entry it came from (first word: the program).
    pub entry: String,
    /// The program resolved on the sandbox's PATH (symlinks followed).
    pub program: PathBuf,
    /// What the kernel must also execute to run it: its `#!` interpreter (and, through
    /// `env`, the program env starts), and each ELF's program interpreter (PT_INTERP).
    pub interpreter_chain: Vec<PathBuf>,
}

/// A fully lowered policy.
pub struct Plan {
    pub profile_id: String,
    pub argv: Vec<String>,
    /// The command resolved on the sandbox's PATH: what execve receives.
    pub command_path: PathBuf,
    pub cwd: PathBuf,
    /// The private tmp (`$tmp`).
    pub tmp: PathBuf,
    pub grants: Vec<Grant>,
    pub runtime: Vec<Grant>,
    /// The wrapped agent's own installation (and its interpreter's), attested apart.
    pub agent_install: Vec<Grant>,
    /// Credential paths a grant covers without naming them, masked in the view.
    pub masks: Vec<Mask>,
    /// With `--net loopback --allow-bind PORT`: the only ports the sandbox may bind.
    pub allow_bind: Vec<u16>,
    /// With `net = allowlist`: the policy of the egress proxy.
    pub proxy: Option<crate::netpolicy::NetPolicy>,
    /// How the sandbox is built, what the policy accepted, and why this tier (when not the
    /// namespace tier by default).
    pub tier: Tier,
    pub tier_choice: TierChoice,
    pub tier_reason: Option<String>,
    /// The Landlock tier's per-run directory on the host (`tmp/`, `home/`, the canary).
    pub run_dir: Option<PathBuf>,
    /// Landlock tier: grants replaced by grants of their entries, around the credentials
    /// beneath them (grant, credentials left out).
    pub split: Vec<(PathBuf, Vec<PathBuf>)>,
    /// Entries of an expanded grant (`--read /`) the caller cannot read, left out.
    pub skipped: Vec<PathBuf>,
    /// The caller's home path, when HOME is a private directory of the run's tmpfs there.
    pub private_home: Option<PathBuf>,
    /// The directory of cw-exec's signing key (physical path), if it exists.
    pub signing_key_dir: Option<PathBuf>,
    /// Directories between a write grant and the signing key's directory, made mount points
    /// in the view so that no sandbox can rename them (and plant a key where cw-exec looks).
    pub key_pins: Vec<PathBuf>,
    /// The cool-workflow policy this plan was lowered from, if any.
    pub cw: Option<PolicyFacts>,
    /// Send phase timings back from the sandbox.
    pub timings: bool,
    pub exec_allowlist: bool,
    /// The programs an allowlist given as command lines resolved to (also in `grants`).
    pub exec_programs: Vec<ProgramGrant>,
    /// Under an exec allowlist: a readable file, executable by mode and mount, that is not
    /// on the allowlist. The read-back attempts to execute it (see `readback::collect`).
    pub exec_probe: Option<PathBuf>,
    pub net: NetMode,
    /// The child's whole environment, built from scratch.
    pub env: BTreeMap<String, String>,
    /// Which names the policy lets reach execve, stated apart from `env` so the read-back
    /// is checked against the policy rather than against itself.
    pub env_rule: EnvRule,
    pub timeout: Option<Duration>,
    /// After cw-exec forwards SIGTERM, SIGINT or SIGHUP, how long the command gets before the
    /// whole tree is killed (`--kill-after`).
    pub kill_after: Duration,
    pub limits: LimitsPlan,
    pub landlock: LandlockAbi,
    pub seccomp: SeccompProgram,
    /// Executable memfds are refused through vm.memfd_noexec=2 (else through seccomp).
    pub memfd_sysctl: bool,
    /// `exec.native_code`: false when seccomp refuses executable memory the program wrote.
    pub native_code: bool,
    /// Under an exec allowlist, LIBRARY_DIRS as they resolve on this host (existing ones
    /// only); empty without one (nothing is mounted noexec then).
    pub library_dirs: Vec<PathBuf>,
    /// Per-user kernel quotas lowered for the sandbox (see `kernel::quotas`).
    pub quotas: Vec<crate::kernel::quotas::Quota>,
    /// The caller's identity, kept inside the user namespace.
    pub uid: u32,
    pub gid: u32,
    /// Host paths bound at other paths in the sandbox (`--bind`, a profile's `bind`).
    pub binds: Vec<SandboxBind>,
    /// The identity the command runs as when it is not the caller's (`--user`, as root).
    pub run_as: Option<(u32, u32)>,
}

impl Drop for Plan {
    /// The descriptors the plan holds (one per host grant, some forty) are closed in a few
    /// `close_range` calls, one per run of consecutive numbers, instead of one `close` each at
    /// the end of every run. One still shared elsewhere is left to its other owner.
    fn drop(&mut self) {
        let grants = self
            .grants
            .iter_mut()
            .chain(&mut self.runtime)
            .chain(&mut self.agent_install)
            .chain(self.binds.iter_mut().map(|b| &mut b.grant));
        let fds = grants
            .filter_map(|g| g.held.take())
            .filter_map(|fd| Arc::try_unwrap(fd).ok())
            .collect();
        crate::sys::close_all(fds);
    }
}

/// A host object bound at another path in the sandbox. Its Landlock rule is built from the
/// descriptor of the host object (rules attach to inodes, so it holds at the sandbox path).
#[derive(Clone, Debug)]
pub struct SandboxBind {
    /// The host side, resolved and held as any grant (`path` is the host path).
    pub grant: Grant,
    /// Where it appears in the sandbox.
    pub sandbox: PathBuf,
}

impl SandboxBind {
    /// What the attestation and `explain` state about it.
    pub fn describe(&self, abi: LandlockAbi) -> serde_json::Value {
        use crate::kernel::landlock::FlagNames;
        serde_json::json!({
            "host": self.grant.path,
            "requested": self.grant.requested,
            "sandbox": self.sandbox,
            "access": self.grant.access.describe(),
            "landlock": abi.rights(self.grant.access, self.grant.is_dir).names(),
            "identity": self.grant.identity,
        })
    }

    /// The host path behind a sandbox path at or beneath this bind's, if it is one.
    pub fn host_of(&self, sandbox_path: &Path) -> Option<PathBuf> {
        let rel = sandbox_path.strip_prefix(&self.sandbox).ok()?;
        Some(if rel.as_os_str().is_empty() {
            self.grant.path.clone()
        } else {
            self.grant.path.join(rel)
        })
    }
}

impl Plan {
    /// Lowers a request. Every granted path must exist, except the private tmp.
    pub fn build(req: &Request) -> Result<Plan, Refusal> {
        // Descriptors held for the run stay clear of the lowest numbers (see
        // `keep_low_descriptors_free`); released when the plan is built.
        let _low = LowRoom(keep_low_descriptors_free());
        // A cool-workflow policy stands in for the default profile; an explicit one adds to it.
        let (profile_id, profile) = match (&req.profile, &req.cw) {
            (Some(name), _) => Profile::load(name).map_err(bad)?,
            (None, Some(cw)) => (cw.profile_id.clone(), Profile::default()),
            (None, None) => Profile::load("default").map_err(bad)?,
        };
        if req.command.is_empty() {
            return Err(bad(
                "no command given: cw-exec run [OPTIONS] -- COMMAND [ARGS...]",
            ));
        }
        let follow_symlinks = req.follow_symlinks || profile.follow_symlinks;
        let here =
            std::env::current_dir().map_err(|e| bad(format!("the current directory: {e}")))?;
        let home = home_dir();
        let uid = nix::unistd::getuid().as_raw();
        let gid = nix::unistd::getgid().as_raw();
        let tier_choice = req.tier.or(profile.tier).unwrap_or_default();
        let (tier, tier_reason) = choose_tier(tier_choice, req.tier_fallback.as_deref())?;
        // The Landlock tier has no mount view: its private directories are a fresh per-run
        // directory on the host (created, and removed, by `supervise`).
        let run_dir = (tier == Tier::Landlock).then(landlock_run_dir);
        let tmp = match &run_dir {
            Some(dir) => dir.join("tmp"),
            None => PathBuf::from(PRIVATE_TMP),
        };
        // `cwd` is the host directory the working directory is (what `$cwd` means);
        // `view_cwd` where the command starts in the view (a sandbox path inside a bind).
        let (cwd, cwd_links, view_cwd, binds) = place_cwd_and_binds(
            req,
            &profile,
            &here,
            &home,
            &tmp,
            req.exec_allowlist(&profile),
        )?;
        let run_as = run_as(req.user, uid, gid)?;
        if tier == Tier::Landlock && (!binds.is_empty() || run_as.is_some()) {
            return Err(Refusal::dimensions(
                &[],
                "landlock tier",
                format!(
                    "{} needs the sandbox's own mount and user namespaces, which this tier does not have ({})",
                    if binds.is_empty() { "--user with another identity" } else { "a bind at another sandbox path (--bind, a docker --mount)" },
                    tier_reason.as_deref().unwrap_or("landlock tier")
                ),
            ));
        }

        // The environment first: PATH decides where the command is found.
        let mut env = base_environment(req, &profile, &home, &tmp)?;
        // A PATH set by `--setenv` (or the profile's env.set) is the one the command is
        // looked up on, as it is the one the command gets.
        let set_path = req
            .setenv
            .iter()
            .rev()
            .find_map(|pair| pair.strip_prefix("PATH="))
            .map(|v| ("--setenv PATH", v.to_string()))
            .or_else(|| {
                profile
                    .env
                    .set
                    .get("PATH")
                    .map(|v| ("env.set PATH", v.clone()))
            });
        let search_path = match set_path {
            Some((field, value)) => Tokens {
                cwd: &cwd,
                home: &home,
                tmp: &tmp,
                command: None,
            }
            .expand(&value)
            .map_err(|e| bad(format!("{field}: {e}")))?,
            None => env
                .get("PATH")
                .cloned()
                .unwrap_or_else(|| DEFAULT_PATH.to_string()),
        };
        // A command inside a bind is found (and executed) at its sandbox path; `$command`
        // and the agent's installation are its host path.
        let (command_path, command_host) =
            resolve_command_in_view(&req.command[0], &cwd, &view_cwd, &search_path, &binds)?;
        let tokens = Tokens {
            cwd: &cwd,
            home: &home,
            tmp: &tmp,
            command: Some(&command_host),
        };
        let mut set: Vec<(String, String, String)> = profile
            .env
            .set
            .iter()
            .map(|(k, v)| ("env.set".to_string(), k.clone(), v.clone()))
            .collect();
        for pair in &req.setenv {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| bad(format!("--setenv {pair:?}: expected NAME=VALUE")))?;
            set.push(("--setenv".to_string(), k.to_string(), v.to_string()));
        }
        for (field, name, value) in set {
            check_env_name(&name).map_err(|e| bad(format!("{field}: {e}")))?;
            let value = tokens
                .expand(&value)
                .map_err(|e| bad(format!("{field} {name}: {e}")))?;
            if value.contains('\0') {
                return Err(bad(format!("{field} {name}: value contains a NUL byte")));
            }
            env.insert(name, value);
        }
        for name in &req.env_deny {
            env.remove(name);
        }

        // Filesystem grants.
        let exec_allowlist = req.exec_allowlist(&profile);
        crate::timings::mark("plan: profile, environment, command found");
        let mut grants = requested_grants(req, &profile, &tokens, &cwd, exec_allowlist)?;
        let skipped: Vec<PathBuf> = grants
            .iter()
            .filter(|g| g.is_skipped())
            .map(|g| g.path.clone())
            .collect();
        grants.retain(|g| !g.is_skipped());
        let private_home = home_grants(
            &profile,
            &home,
            &tmp,
            run_dir.as_deref(),
            &cwd,
            exec_allowlist,
            &mut grants,
        )?;
        if let (Some(private), Tier::Landlock) = (&private_home, tier) {
            // No mount puts a private HOME at the home's path here: HOME names another one.
            if env.contains_key("HOME") {
                env.insert("HOME".into(), private.to_string_lossy().into_owned());
            }
        }

        // Symlinks nobody but root and the caller could have placed are followed; others
        // (in another user's reach, or inside this run's own write set, where a previous
        // sandbox could have planted them) only when the caller says so.
        let write_roots: Vec<PathBuf> = grants
            .iter()
            .chain(binds.iter().map(|b| &b.grant))
            .filter(|g| g.access.write && !g.per_run)
            .map(|g| g.path.clone())
            .collect();
        if !follow_symlinks {
            let cwd_named = match &req.cwd {
                Some(dir) => format!("--cwd {}", dir.display()),
                None => "the working directory".into(),
            };
            check_links(&cwd_named, &cwd, &cwd_links, &write_roots, uid)?;
            for g in grants.iter().chain(binds.iter().map(|b| &b.grant)) {
                check_links(&g.requested, &g.path, &g.links, &write_roots, uid)?;
            }
        }

        // The signing key's directory: never granted, masked wherever a grant covers it, and
        // where a write grant covers it, its ancestors are pinned (see `key_pins`).
        let signing_key_dir = crate::signing::physical_key_dir(uid);
        if let Some(key_dir) = &signing_key_dir {
            if let Some(g) = grants
                .iter()
                .find(|g| g.path.starts_with(key_dir) && !g.per_run)
            {
                return Err(bad(format!(
                    "{}: {} holds cw-exec's signing key, which no sandbox may see",
                    g.requested,
                    key_dir.display()
                )));
            }
        }
        // Paths a front end protects are kept like the key; the key itself may be covered by
        // a write grant (masked and pinned below), but a bind may not reach it.
        let protected: Vec<(PathBuf, String)> = req
            .protected
            .iter()
            .map(|(path, what)| {
                let physical = pathfd::resolve(path)
                    .map(|h| h.path)
                    .unwrap_or_else(|_| normalize(path));
                (physical, what.clone())
            })
            .collect();
        let protected_masks = check_protected(&protected, &grants, &binds)?;
        let key_only: Vec<(PathBuf, String)> = signing_key_dir
            .iter()
            .map(|d| (d.clone(), "cw-exec's signing key".to_string()))
            .collect();
        check_protected(&key_only, &[], &binds)?;
        let key_pins = match tier {
            Tier::Namespaces => key_pins(signing_key_dir.as_deref(), &write_roots),
            // No mounts: a grant that covers the key is split around it instead (below).
            Tier::Landlock => vec![],
        };

        let homes = crate::credentials::homes(&home);
        let mut patterns: Vec<&str> = crate::credentials::SYSTEM
            .iter()
            .chain(crate::credentials::HOME)
            .copied()
            .collect();
        patterns.extend(profile.credentials.iter().map(String::as_str));
        // Lexical: nothing is looked up until the masks are decided (`credential_masks`).
        let mut credentials = Credentials::new(&patterns, &homes);
        for path in signing_key_dir.iter().chain(&protected_masks) {
            credentials.add(path.clone());
        }
        // Interpreter chains are followed only for an allowlist of programs and the agent's
        // installation: only they need the loaders.
        let loaders = if req.exec_programs.is_empty() && !req.agent_install {
            vec![]
        } else {
            known_loaders()
        };
        let chains = ChainContext {
            cwd: &cwd,
            search_path: &search_path,
            write_roots: &write_roots,
            credentials: &credentials,
            uid,
            follow_symlinks,
            loaders: &loaders,
        };
        let exec_programs = program_grants(&req.exec_programs, &chains, &mut grants)?;
        crate::timings::mark("plan: grants resolved");
        let runtime = runtime_allowance(exec_allowlist, &write_roots, &credentials, uid);
        crate::timings::mark("plan: runtime allowance resolved");
        let agent_install = if req.agent_install {
            let mut install = agent_install_grants(&command_host, exec_allowlist, &chains)?;
            script_install_grants(
                &req.command,
                &command_host,
                exec_allowlist,
                &chains,
                &mut install,
            );
            install
        } else {
            vec![]
        };
        check_bind_destinations(
            &binds,
            grants.iter().chain(&agent_install).chain(&runtime),
            (&cwd, &view_cwd),
        )?;
        let found = credentials.find(&|path| {
            pathfd::resolve(path)
                .ok()
                .map(|held| (held.path, held.is_dir))
        });
        let mut masks =
            credential_masks(&found, grants.iter().chain(&agent_install).chain(&runtime));
        masks.extend(bind_masks(&found, &binds));
        masks.sort_by(|a, b| a.path.cmp(&b.path));
        // Landlock only allows: it cannot hide a path beneath a grant. In the Landlock tier a
        // grant covering a credential is replaced by grants of its other entries.
        let mut split = vec![];
        if tier == Tier::Landlock && !masks.is_empty() {
            split = split_around(&mut grants, &masks, &credentials);
            masks.clear();
        }

        // Kernel: Landlock is the read/write/command mechanism; without it nothing is enforced.
        let abi = match crate::sys::landlock_abi() {
            Ok(v) => v,
            Err(e) => {
                return Err(Refusal::dimensions(
                    &LANDLOCK_DIMENSIONS,
                    "landlock",
                    format!(
                        "Landlock is unavailable on this kernel ({}); the read, write and command dimensions cannot be enforced",
                        match e.raw_os_error() {
                            Some(libc::EOPNOTSUPP) => "built in but not enabled at boot: add landlock to the lsm= boot parameter".to_string(),
                            Some(libc::ENOSYS) => "not built into the kernel".to_string(),
                            _ => e.to_string(),
                        }
                    ),
                ))
            }
        };
        if let Some(min) = profile.min_landlock_abi {
            if abi < min {
                return Err(Refusal::dimensions(
                    &LANDLOCK_DIMENSIONS,
                    format!("landlock-abi-{min}"),
                    format!(
                        "profile {profile_id} requires Landlock ABI {min}, this kernel offers ABI {abi}"
                    ),
                ));
            }
        }
        let net = req.net_mode(&profile);
        let proxy = match net {
            NetMode::Allowlist => {
                if !LandlockAbi(abi).has_tcp() {
                    return Err(Refusal::dimensions(
                        &[Dimension::Network],
                        "network allowlist",
                        format!("a network allowlist needs Landlock TCP rules (ABI 4), so that the proxy's port is the only one the sandbox can connect to; this kernel offers ABI {abi}"),
                    ));
                }
                if tier == Tier::Landlock {
                    return Err(Refusal::dimensions(
                        &[Dimension::Network],
                        "landlock tier",
                        format!(
                            "a network allowlist needs the sandbox's own network namespace (the proxy is its only way out), which this tier does not have ({}); Landlock TCP rules alone would let any host on the proxy's port through",
                            tier_reason.as_deref().unwrap_or("landlock tier")
                        ),
                    ));
                }
                let allow: Vec<String> = profile
                    .network
                    .allow
                    .iter()
                    .chain(&req.net_allow)
                    .cloned()
                    .collect();
                let deny: Vec<String> = profile
                    .network
                    .deny
                    .iter()
                    .chain(&req.net_deny)
                    .cloned()
                    .collect();
                let resolve: Vec<String> = profile
                    .network
                    .resolve
                    .iter()
                    .chain(&req.net_resolve)
                    .cloned()
                    .collect();
                // An entry cw-exec cannot express is a network it cannot enforce (as for a
                // cool-workflow policy), not a guess.
                Some(
                    crate::netpolicy::NetPolicy::parse(&allow, &deny, &resolve).map_err(|e| {
                        Refusal::dimensions(&[Dimension::Network], "network allowlist", e)
                    })?,
                )
            }
            _ => {
                if !req.net_deny.is_empty() || !req.net_resolve.is_empty() {
                    return Err(bad(format!(
                        "--net-deny and --net-resolve apply to a network allowlist (--net allow=NAMES); the network mode here is {net}"
                    )));
                }
                None
            }
        };
        if let Some(_policy) = &proxy {
            // Programs that honour proxy settings go through it; the rest have no route out.
            let url = format!("http://{}", crate::netpolicy::proxy_listener());
            for name in PROXY_VARIABLES {
                env.insert(name.to_string(), url.clone());
            }
            for name in ["NO_PROXY", "no_proxy"] {
                env.insert(name.to_string(), "localhost,127.0.0.1".into());
            }
        }
        if !req.allow_bind.is_empty() {
            if net != NetMode::Loopback {
                return Err(bad(format!(
                    "--allow-bind applies to --net loopback (the network mode here is {net})"
                )));
            }
            if !LandlockAbi(abi).has_tcp() {
                return Err(Refusal::dimensions(
                    &[Dimension::Network],
                    "--allow-bind",
                    format!("--allow-bind needs Landlock TCP rules (ABI 4); this kernel offers ABI {abi}"),
                ));
            }
        }
        if tier == Tier::Landlock && net == NetMode::Loopback {
            return Err(Refusal::dimensions(
                &[Dimension::Network],
                "landlock tier",
                format!(
                    "--net loopback needs a network namespace, which this tier does not have ({}); use --net none or host",
                    tier_reason.as_deref().unwrap_or("landlock tier")
                ),
            ));
        }
        if tier == Tier::Landlock && abi < 6 {
            return Err(Refusal::dimensions(
                &LANDLOCK_DIMENSIONS,
                "landlock tier",
                format!(
                    "the Landlock tier needs Landlock ABI 6 (signal and abstract-socket scoping, so the sandbox cannot signal or connect to the caller's other processes); this kernel offers {abi}"
                ),
            ));
        }
        let (timeout, limits) = limits_of(req, &profile, &profile_id, uid)?;
        let kill_after = kill_after_of(req.kill_after).map_err(bad)?;
        // vm.memfd_noexec is per PID namespace: only the namespace tier has its own.
        let memfd_sysctl = tier == Tier::Namespaces && can_set_memfd_sysctl(uid);
        let native_code = profile.exec.native_code();
        crate::timings::mark("plan: masks, landlock ABI, limits");
        let seccomp = SeccompProgram::compile(net, !memfd_sysctl, native_code).map_err(bad)?;

        // Only an exec allowlist mounts anything noexec: the shared-library directories
        // matter only then.
        let library_dirs = if exec_allowlist {
            library_dirs()
        } else {
            vec![]
        };
        let exec_probe = if exec_allowlist {
            exec_probe_target(&grants, &agent_install, &runtime, &library_dirs)
        } else {
            None
        };
        let env_rule = EnvRule::of(req, &profile);

        Ok(Plan {
            profile_id,
            argv: req.command.clone(),
            command_path,
            cwd: view_cwd,
            tmp,
            grants,
            runtime,
            agent_install,
            masks,
            skipped,
            private_home,
            signing_key_dir,
            key_pins,
            cw: req.cw.clone(),
            timings: req.timings,
            exec_allowlist,
            exec_programs,
            exec_probe,
            net,
            env,
            env_rule,
            timeout,
            kill_after,
            limits,
            landlock: LandlockAbi(abi),
            seccomp,
            memfd_sysctl,
            native_code,
            library_dirs,
            quotas: crate::kernel::quotas::plan()
                .into_iter()
                .filter(|q| {
                    // Without a user namespace only the rlimit-backed quotas can be lowered.
                    tier == Tier::Namespaces
                        || matches!(q.mechanism, crate::kernel::quotas::Mechanism::Rlimit(_))
                })
                .collect(),
            proxy,
            allow_bind: req.allow_bind.clone(),
            tier,
            tier_choice,
            tier_reason,
            run_dir,
            split,
            uid,
            gid,
            binds,
            run_as,
        })
    }

    /// Required dimensions: a cool-workflow policy's own (see `cw::SandboxPolicy::required`);
    /// otherwise read, write and env always (cw-exec always builds the environment from
    /// scratch), command when an exec allowlist is in force, network unless `--net host`.
    pub fn required(&self) -> Vec<Dimension> {
        if let Some(cw) = &self.cw {
            return cw.required.clone();
        }
        required_native(self.exec_allowlist, self.net)
    }

    /// The policy facts the attestation states.
    pub fn facts(&self) -> PolicyFacts {
        match &self.cw {
            Some(facts) => facts.clone(),
            None => PolicyFacts {
                profile_id: self.profile_id.clone(),
                required: self.required(),
                enforced_by_cw: vec![],
                host_required: vec![],
                notes: vec![],
            },
        }
    }

    /// The mount view this plan asks for, as the kernel facility takes it.
    pub fn view(&self) -> View {
        View {
            binds: view_binds(self),
            masks: self.masks.clone(),
            key_dir: self.signing_key_dir.clone(),
            pins: self.key_pins.clone(),
            // The symlinks of bind sources are host spellings, not sandbox paths.
            links: self
                .grants
                .iter()
                .chain(self.agent_install.iter())
                .chain(self.runtime.iter())
                .flat_map(|g| g.links.iter())
                .map(|l| (l.at.clone(), l.target.clone()))
                .collect(),
            tmp_exec: self.tmp_exec(),
            tmpfs_size: self.limits.tmpfs_size,
            private: self.private_dirs(),
            cwd: self.cwd.clone(),
        }
    }

    /// The file the read-back's probes try to read and write: covered by no grant.
    pub fn canary(&self) -> PathBuf {
        match &self.run_dir {
            Some(dir) => dir.join("canary"),
            None => PathBuf::from(crate::kernel::mount_view::CANARY),
        }
    }

    /// The private directories besides /tmp: `/dev/shm` always, HOME when private.
    fn private_dirs(&self) -> Vec<PrivateDir> {
        let mut out = vec![PrivateDir {
            path: PathBuf::from(PRIVATE_SHM),
            mode: 0o1777,
            exec: false,
            owner: None,
            what: "/dev/shm",
        }];
        if let Some(home) = &self.private_home {
            out.push(PrivateDir {
                path: home.clone(),
                mode: 0o700,
                exec: self.tmp_exec(),
                owner: self.run_as,
                what: "HOME",
            });
        }
        out
    }

    /// Whether a runtime-allowance path is mounted exec in the view: always without an
    /// exec allowlist; under one, only shared-library directories (and what lies beneath
    /// them). Exec grants are mounted exec whatever this says.
    pub fn runtime_mount_exec(&self, path: &Path) -> bool {
        !self.exec_allowlist || self.library_dirs.iter().any(|d| path.starts_with(d))
    }

    /// Whether programs may be executed from the private tmp.
    pub fn tmp_exec(&self) -> bool {
        self.grants
            .iter()
            .any(|g| g.per_run && g.path == self.tmp && g.access.exec)
    }

    /// The host paths the sandbox may write: write grants and writable binds (the private
    /// tmpfs directories are not host paths).
    pub fn host_write_grants(&self) -> impl Iterator<Item = &Grant> {
        self.grants
            .iter()
            .chain(self.binds.iter().map(|b| &b.grant))
            .filter(|g| g.access.write && !g.per_run)
    }

    /// Every grant the sandbox applies (Landlock rules), user grants first, binds last.
    pub fn all_grants(&self) -> impl Iterator<Item = &Grant> {
        self.grants
            .iter()
            .chain(self.agent_install.iter())
            .chain(self.runtime.iter())
            .chain(self.binds.iter().map(|b| &b.grant))
    }

    /// The environment as execve wants it.
    pub fn envp(&self) -> Vec<CString> {
        self.env
            .iter()
            .map(|(k, v)| CString::new(format!("{k}={v}")).expect("checked for NUL when planned"))
            .collect()
    }

    pub fn argv_c(&self) -> Result<Vec<CString>, String> {
        self.argv
            .iter()
            .map(|a| {
                CString::new(a.as_bytes())
                    .map_err(|_| format!("argument {a:?} contains a NUL byte"))
            })
            .collect()
    }

    /// The command line as cool-workflow's evidence spells it.
    pub fn command_line(&self) -> String {
        self.argv.join(" ")
    }
}

/// Occupies every free descriptor below the smallest RLIMIT_NOFILE a run may ask for
/// (`nofile`'s range in the policy: 16) while the plan opens the descriptors it
/// holds for the run (the grants: some forty), so that they are numbered above it.
///
/// The sandbox's command inherits them (close-on-exec, closed only by its execve) and runs its
/// read-back after its RLIMIT_NOFILE applies: opening /proc/self/status then needs a free
/// descriptor below that limit, and containment keeps one for it (the set-id probe's memfd,
/// made before the rlimits and closed just before the read-back). Had the grants taken
/// descriptors 3 to 15, none would be free. (Resolving used to open and close `/` around
/// every path, which left descriptor 3 free by accident; this makes the room on purpose.)
/// At most fourteen `dup`s and `close`s.
fn keep_low_descriptors_free() -> Vec<std::os::fd::OwnedFd> {
    use std::os::fd::AsRawFd;
    let lowest_nofile = crate::policy::LimitRange::of("nofile").min;
    let mut kept = Vec::new();
    let mut next = nix::fcntl::open(
        "/",
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ok();
    while let Some(fd) = next.take() {
        if u64::try_from(fd.as_raw_fd()).map_or(true, |n| n >= lowest_nofile) {
            break; // closed here: it is above the room kept
        }
        next = fd.try_clone().ok();
        kept.push(fd);
    }
    kept
}

/// The room `keep_low_descriptors_free` made, given back when dropped: consecutive
/// descriptors, closed with one `close_range` (one per run of numbers).
struct LowRoom(Vec<std::os::fd::OwnedFd>);

impl Drop for LowRoom {
    fn drop(&mut self) {
        crate::sys::close_all(std::mem::take(&mut self.0));
    }
}

/// The binds the view needs, parents before children, leaving out any path whose nearest
/// bound ancestor already has the same flags.
fn view_binds(plan: &Plan) -> Vec<Bind> {
    let bind = |g: &Grant, runtime: bool| {
        let device = if is_plain(g.path.as_os_str().as_bytes()) {
            plain_beneath(&g.path, Path::new("/dev"))
        } else {
            g.path.starts_with("/dev")
        };
        Bind {
            path: g.path.clone(),
            source: None,
            writable: g.access.write && !device,
            // Runtime entries keep exec at the mount level only where shared libraries
            // live (they must be mmap-able PROT_EXEC); under an exec allowlist the rest is
            // noexec, so `ld.so FILE` cannot map a program from there.
            exec: (g.access.exec || (runtime && plan.runtime_mount_exec(&g.path))) && !device,
            device,
            is_dir: g.is_dir,
            expect: g.identity.map(|i| (i.dev, i.ino)),
        }
    };
    let mut wanted: Vec<Bind> = plan
        .grants
        .iter()
        .chain(plan.agent_install.iter())
        .filter(|g| g.identity.is_some())
        .map(|g| bind(g, false))
        .chain(
            plan.runtime
                .iter()
                .filter(|g| g.identity.is_some())
                .map(|g| bind(g, true)),
        )
        .collect();
    // Every path is plain, as the resolver gives them (else `Path`'s own comparisons): the
    // sorts and the nesting below compare bytes, without parsing components.
    let plain = wanted
        .iter()
        .all(|b| is_plain(b.path.as_os_str().as_bytes()))
        && plan
            .masks
            .iter()
            .all(|m| is_plain(m.path.as_os_str().as_bytes()));
    let beneath = |path: &Path, dir: &Path| {
        if plain {
            plain_beneath(path, dir)
        } else {
            path.starts_with(dir)
        }
    };
    if plain {
        wanted.sort_by(|a, b| plain_order(&a.path, &b.path));
    } else {
        wanted.sort_by(|a, b| a.path.cmp(&b.path));
    }
    wanted.dedup_by(|later, earlier| {
        if later.path == earlier.path {
            earlier.writable |= later.writable;
            earlier.exec |= later.exec;
            true
        } else {
            false
        }
    });
    let mut out: Vec<Bind> = Vec::new();
    // The binds kept so far that are ancestors of the path at hand, shallowest first (indices
    // into `out`): paths are sorted component by component, so everything beneath a path
    // follows it directly, and a kept bind that is not an ancestor of this path is an
    // ancestor of no later one. Its top is the deepest bind above the path: one pass, not a
    // search of every kept bind for each.
    let mut above: Vec<usize> = Vec::new();
    for bind in wanted {
        while let Some(&top) = above.last() {
            if beneath(&bind.path, &out[top].path) {
                break;
            }
            above.pop();
        }
        let parent = above.last().map(|&i| &out[i]);
        // A mask between the parent and this path hides the parent's view of it: bind again.
        let masked_between = plan.masks.iter().any(|m| {
            beneath(&bind.path, &m.path)
                && parent.map(|p| beneath(&m.path, &p.path)).unwrap_or(true)
        });
        if let (Some(parent), false) = (parent, masked_between) {
            if parent.writable == bind.writable
                && parent.exec == bind.exec
                && parent.device == bind.device
            {
                continue;
            }
        }
        above.push(out.len());
        out.push(bind);
    }
    if plan.binds.is_empty() {
        // Sorted already.
        return out;
    }
    // Binds at other sandbox paths overlap nothing else in the view (checked when planned).
    out.extend(plan.binds.iter().map(|b| Bind {
        path: b.sandbox.clone(),
        source: Some(b.grant.path.clone()),
        writable: b.grant.access.write,
        exec: b.grant.access.exec,
        device: false,
        is_dir: b.grant.is_dir,
        expect: b.grant.identity.map(|i| (i.dev, i.ino)),
    }));
    if plain
        && plan
            .binds
            .iter()
            .all(|b| is_plain(b.sandbox.as_os_str().as_bytes()))
    {
        out.sort_by(|a, b| plain_order(&a.path, &b.path));
    } else {
        out.sort_by(|a, b| a.path.cmp(&b.path));
    }
    out
}

/// Whether a path is a plain absolute one: `/`, or `/` and names joined by single `/`, with
/// no `.` or `..` name and no trailing `/` (what `normalize` and the resolver give).
fn is_plain(path: &[u8]) -> bool {
    path == b"/"
        || (path.first() == Some(&b'/')
            && path[1..]
                .split(|b| *b == b'/')
                .all(|name| !name.is_empty() && name != b"." && name != b".."))
}

/// `Path::cmp` (component by component) of two plain paths (`is_plain`), without parsing
/// components: their component order is byte order with `/` below every other byte (a name
/// that is a prefix of another sorts first, as does a path that is a prefix of another at
/// a `/`).
fn plain_order(a: &Path, b: &Path) -> std::cmp::Ordering {
    let key = |c: &u8| if *c == b'/' { 0 } else { u16::from(*c) + 1 };
    let (x, y) = (a.as_os_str().as_bytes(), b.as_os_str().as_bytes());
    x.iter().map(key).cmp(y.iter().map(key))
}

/// `path.starts_with(dir)` (at or beneath, by components) of two plain paths, by bytes.
fn plain_beneath(path: &Path, dir: &Path) -> bool {
    path.as_os_str().as_bytes() == dir.as_os_str().as_bytes() || strictly_beneath(path, dir)
}

/// The grants the profile and the flags ask for, tokens expanded, each resolved once and
/// held (see `resolve_grant`), merged by path.
fn requested_grants(
    req: &Request,
    profile: &Profile,
    tokens: &Tokens<'_>,
    cwd: &Path,
    exec_allowlist: bool,
) -> Result<Vec<Grant>, Refusal> {
    let mut grants: Vec<Grant> = Vec::new();
    let no_exec_list = Vec::new();
    let lists: [(&str, &Vec<String>, Access); 6] = [
        (
            "read",
            &profile.read,
            Access {
                read: true,
                write: false,
                exec: !exec_allowlist,
            },
        ),
        (
            "--read",
            &req.read,
            Access {
                read: true,
                write: false,
                exec: !exec_allowlist,
            },
        ),
        (
            "write",
            &profile.write,
            Access {
                read: true,
                write: true,
                exec: !exec_allowlist,
            },
        ),
        (
            "--write",
            &req.write,
            Access {
                read: true,
                write: true,
                exec: !exec_allowlist,
            },
        ),
        (
            "exec",
            profile.exec.allow.as_ref().unwrap_or(&no_exec_list),
            Access {
                read: true,
                write: false,
                exec: true,
            },
        ),
        (
            "--exec",
            &req.exec,
            Access {
                read: true,
                write: false,
                exec: true,
            },
        ),
    ];
    for (field, list, access) in lists {
        for text in list.iter() {
            let expanded = tokens
                .expand(text)
                .map_err(|e| bad(format!("{field}: {e}")))?;
            for grant in resolve_grant(tokens.tmp, field, text, &expanded, cwd, access)? {
                merge_grant(&mut grants, grant);
            }
        }
    }
    Ok(grants)
}

/// HOME inside the sandbox, by the profile's `home`: the real home granted read-only or
/// read-write, or (private, the default) an empty directory of the run's tmpfs at its path —
/// unless a grant names the home itself, which then stands. Also the private `/dev/shm`'s
/// Landlock grant, and the caller's git identity when the profile reads it. Returns the
/// private home's path, if HOME is private.
fn home_grants(
    profile: &Profile,
    home: &Path,
    tmp: &Path,
    run_dir: Option<&Path>,
    cwd: &Path,
    exec_allowlist: bool,
    grants: &mut Vec<Grant>,
) -> Result<Option<PathBuf>, Refusal> {
    let scratch = |exec: bool| Access {
        read: true,
        write: true,
        exec,
    };
    if run_dir.is_none() {
        // (The Landlock tier cannot mount one: no /dev/shm at all, a named gap.)
        merge_grant(
            grants,
            Grant::internal(PRIVATE_SHM, PRIVATE_SHM, scratch(false)),
        );
    }
    let home_text = home.to_string_lossy().into_owned();
    let mut private = None;
    match profile.home {
        HomeMode::Read | HomeMode::Write => {
            let write = profile.home == HomeMode::Write;
            let field = if write {
                "home = \"write\""
            } else {
                "home = \"read\""
            };
            let access = Access {
                read: true,
                write,
                exec: !exec_allowlist,
            };
            for grant in resolve_grant(tmp, field, &home_text, &home_text, cwd, access)? {
                merge_grant(grants, grant);
            }
        }
        HomeMode::Private if home != Path::new("/") || run_dir.is_some() => {
            if !grants.iter().any(|g| g.path == home && !g.per_run) {
                let tmp_exec = grants
                    .iter()
                    .any(|g| g.per_run && g.path == tmp && g.access.exec);
                let at = match run_dir {
                    Some(dir) => dir.join("home"),
                    None => home.to_path_buf(),
                };
                let text = at.to_string_lossy().into_owned();
                merge_grant(
                    grants,
                    Grant::internal(&text, &home_text, scratch(tmp_exec)),
                );
                private = Some(at);
            }
        }
        HomeMode::Private => {}
    }
    if profile.git_identity {
        let config = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .unwrap_or_else(|| home.join(".config"));
        for file in [home.join(".gitconfig"), config.join("git/config")] {
            if !file.is_file() {
                continue;
            }
            let text = file.to_string_lossy().into_owned();
            let read = Access {
                read: true,
                write: false,
                exec: false,
            };
            // An identity file that cannot be read is left out, not fatal.
            if let Ok(found) = resolve_grant(tmp, "git_identity", &text, &text, cwd, read) {
                for grant in found {
                    merge_grant(grants, grant);
                }
            }
        }
    }
    Ok(private)
}

/// The variables that point programs at the egress proxy.
pub const PROXY_VARIABLES: [&str; 6] = [
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
];

/// The tier a policy gets here: the namespace tier unless user namespaces are known to be
/// unavailable (then the Landlock tier, if the policy accepts it, else a refusal naming why).
fn choose_tier(
    choice: TierChoice,
    fallback: Option<&str>,
) -> Result<(Tier, Option<String>), Refusal> {
    let denied = fallback
        .map(str::to_string)
        .or_else(crate::kernel::userns::denied_by_sysctl);
    match (choice, denied) {
        (TierChoice::Landlock, _) => Ok((Tier::Landlock, Some("chosen by the policy".into()))),
        (TierChoice::Auto, Some(why)) => Ok((Tier::Landlock, Some(why))),
        (TierChoice::Namespaces, Some(why)) => Err(Refusal::dimensions(
            &[],
            "user namespaces",
            format!(
                "the policy requires the namespace tier (tier = \"namespaces\" or --tier namespaces), and user namespaces are unavailable here: {why}"
            ),
        )),
        (_, None) => Ok((Tier::Namespaces, None)),
    }
}

/// A fresh, unpredictable per-run directory for the Landlock tier (created by `supervise`).
fn landlock_run_dir() -> PathBuf {
    let mut id = [0u8; 8];
    let _ = crate::sys::random_bytes(&mut id);
    PathBuf::from(format!(
        "/tmp/cw-exec-run-{}-{}",
        std::process::id(),
        crate::model::hex(&id)
    ))
}

/// Landlock tier: replaces each grant that covers a credential (without naming it) by grants
/// of its entries, recursing into entries that hold credentials and leaving the credentials
/// (and symlinks) out. Returns what was split and around what. Entries created later are not
/// covered: the attestation says so.
fn split_around(
    grants: &mut Vec<Grant>,
    masks: &[Mask],
    credentials: &Credentials,
) -> Vec<(PathBuf, Vec<PathBuf>)> {
    let hidden: Vec<&Path> = masks.iter().map(|m| m.path.as_path()).collect();
    let mut out = vec![];
    let covering: Vec<Grant> = grants
        .iter()
        .filter(|g| {
            !g.per_run
                && hidden
                    .iter()
                    .any(|h| h.starts_with(&g.path) && *h != g.path)
        })
        .cloned()
        .collect();
    for g in covering {
        grants.retain(|x| x.path != g.path);
        let mut added = vec![];
        expand_around(&g, &g.path, &hidden, credentials, &mut added);
        for grant in added {
            merge_grant(grants, grant);
        }
        out.push((
            g.path.clone(),
            hidden
                .iter()
                .filter(|h| h.starts_with(&g.path))
                .map(|h| h.to_path_buf())
                .collect(),
        ));
    }
    out
}

fn expand_around(
    g: &Grant,
    dir: &Path,
    hidden: &[&Path],
    credentials: &Credentials,
    out: &mut Vec<Grant>,
) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for entry in paths {
        if hidden.iter().any(|h| *h == entry) || credentials.names(&entry) {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(&entry) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            continue;
        }
        if meta.is_dir() && hidden.iter().any(|h| h.starts_with(&entry)) {
            expand_around(g, &entry, hidden, credentials, out);
            continue;
        }
        if let Ok(held) = pathfd::resolve(&entry) {
            if held.path == entry {
                out.push(Grant::held(held, g.requested.clone(), g.access));
            }
        }
    }
}

/// The environment before `env.set`/`--setenv`: the base (from scratch, or cool-workflow's),
/// forwarded provider keys, exposed names, minus denied ones and cw-exec's own secrets.
fn base_environment(
    req: &Request,
    profile: &Profile,
    home: &Path,
    tmp: &Path,
) -> Result<BTreeMap<String, String>, Refusal> {
    let parent = |name: &str| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned());
    let mut env = BTreeMap::new();
    match req.env_base {
        EnvBase::Scratch => {
            env.insert("PATH".to_string(), DEFAULT_PATH.to_string());
            env.insert("HOME".to_string(), home.to_string_lossy().into_owned());
            env.insert(
                "LANG".to_string(),
                parent("LANG").unwrap_or_else(|| "C.UTF-8".to_string()),
            );
            if let Some(term) = parent("TERM") {
                env.insert("TERM".to_string(), term);
            }
            env.insert("TMPDIR".to_string(), tmp.to_string_lossy().into_owned());
        }
        EnvBase::CoolWorkflow { inherit: true } => {
            for (k, v) in std::env::vars_os() {
                env.insert(
                    k.to_string_lossy().into_owned(),
                    v.to_string_lossy().into_owned(),
                );
            }
        }
        EnvBase::CoolWorkflow { inherit: false } => {
            for name in ["PATH", "HOME"] {
                if let Some(v) = parent(name) {
                    env.insert(name.to_string(), v);
                }
            }
        }
        EnvBase::Given => {
            env.insert("PATH".to_string(), DEFAULT_PATH.to_string());
        }
    }
    if req
        .forward_provider_keys
        .or(profile.env.forward_provider_keys)
        .unwrap_or(false)
    {
        for (k, v) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if PROVIDER_KEY_PREFIXES
                .iter()
                .any(|p| k.to_ascii_uppercase().starts_with(p))
            {
                env.insert(k, v.to_string_lossy().into_owned());
            }
        }
        if let (Some(user), false) = (parent("USER"), env.contains_key("USER")) {
            env.insert("USER".to_string(), user);
        }
    }
    for (field, name) in profile
        .env
        .expose
        .iter()
        .map(|n| ("env.expose", n))
        .chain(req.env.iter().map(|n| ("--env", n)))
    {
        check_env_name(name).map_err(|e| bad(format!("{field}: {e}")))?;
        if let Some(value) = std::env::var_os(name) {
            env.insert(name.clone(), value.to_string_lossy().into_owned());
        }
    }
    for name in req
        .env_deny
        .iter()
        .map(String::as_str)
        .chain(NEVER_FORWARD.iter().copied())
    {
        env.remove(name);
    }
    for (name, value) in &req.env_literal {
        check_env_name(name).map_err(|e| bad(format!("env: {e}")))?;
        if value.contains('\0') {
            return Err(bad(format!("env {name}: value contains a NUL byte")));
        }
        env.insert(name.clone(), value.clone());
    }
    Ok(env)
}

/// The working directory and the binds, resolved in the order they depend on each other. A
/// `--cwd` inside a bind's sandbox path is that sandbox path, backed by the host directory
/// behind it (which `$cwd` then names); binds' host paths are then taken relative to (and
/// `$cwd` in them is) the directory cw-exec runs in. Otherwise `--cwd` is a host path as
/// always, and binds' host paths are relative to it. Returns the host working directory,
/// the symlinks met resolving it, the working directory in the view, and the binds.
fn place_cwd_and_binds(
    req: &Request,
    profile: &Profile,
    here: &Path,
    home: &Path,
    tmp: &Path,
    exec_allowlist: bool,
) -> Result<(PathBuf, Vec<crate::model::Link>, PathBuf, Vec<SandboxBind>), Refusal> {
    let mut specs: Vec<(&str, &BindSpec)> = vec![];
    let parsed: Vec<BindSpec> = profile
        .bind
        .iter()
        .map(|t| BindSpec::parse(t).map_err(|e| bad(format!("bind: {e}"))))
        .collect::<Result<_, _>>()?;
    specs.extend(parsed.iter().map(|b| ("bind", b)));
    specs.extend(req.binds.iter().map(|b| ("--bind", b)));
    for (i, (field, a)) in specs.iter().enumerate() {
        for (other_field, b) in &specs[..i] {
            if a.sandbox.starts_with(&b.sandbox) || b.sandbox.starts_with(&a.sandbox) {
                return Err(bad(format!(
                    "{field} {}:{}: its sandbox path overlaps that of {other_field} {}:{} (bind destinations may not lie at, above or beneath each other)",
                    a.host,
                    a.sandbox.display(),
                    b.host,
                    b.sandbox.display()
                )));
            }
        }
    }
    let in_bind = req
        .cwd
        .as_ref()
        .map(|d| normalize(&here.join(d)))
        .filter(|p| specs.iter().any(|(_, b)| p.starts_with(&b.sandbox)));
    if let (Some(sandbox_cwd), Some(dir)) = (in_bind, &req.cwd) {
        let binds = resolve_binds(&specs, here, home, tmp, exec_allowlist)?;
        let named = format!("--cwd {}", dir.display());
        let (bind, host) = binds
            .iter()
            .find_map(|b| b.host_of(&sandbox_cwd).map(|h| (b, h)))
            .expect("the working directory lies in a bind");
        let held = pathfd::resolve(&host).map_err(|e| {
            bad(format!(
                "{named}: {e} (it is {} on the host, in the bind of {} at {})",
                host.display(),
                bind.grant.path.display(),
                bind.sandbox.display()
            ))
        })?;
        if !held.path.starts_with(&bind.grant.path) {
            return Err(bad(format!(
                "{named}: resolves to {} through a symlink, out of the bind of {} at {}",
                held.path.display(),
                bind.grant.path.display(),
                bind.sandbox.display()
            )));
        }
        if !held.is_dir {
            return Err(bad(format!("{named}: not a directory")));
        }
        // Where it resolved to, seen from the sandbox (symlinks inside the bind followed).
        let rel = held
            .path
            .strip_prefix(&bind.grant.path)
            .expect("checked to lie in the bind");
        let view = if rel.as_os_str().is_empty() {
            bind.sandbox.clone()
        } else {
            bind.sandbox.join(rel)
        };
        return Ok((held.path, held.links, view, binds));
    }
    let (cwd, links) = match &req.cwd {
        Some(dir) => {
            let held = pathfd::resolve(&here.join(dir))
                .map_err(|e| bad(format!("--cwd {}: {e}", dir.display())))?;
            if !held.is_dir {
                return Err(bad(format!("--cwd {}: not a directory", dir.display())));
            }
            (held.path, held.links)
        }
        None => (here.to_path_buf(), vec![]),
    };
    let binds = resolve_binds(&specs, &cwd, home, tmp, exec_allowlist)?;
    Ok((cwd.clone(), links, cwd, binds))
}

/// Resolves each bind's host side once and holds it, checked as a grant of the same access
/// is (readable, and writable unless `:ro`; never the host's shared memory; never host
/// kernel state when writable). The host's root cannot be bound elsewhere.
fn resolve_binds(
    specs: &[(&str, &BindSpec)],
    cwd: &Path,
    home: &Path,
    tmp: &Path,
    exec_allowlist: bool,
) -> Result<Vec<SandboxBind>, Refusal> {
    let tokens = Tokens {
        cwd,
        home,
        tmp,
        command: None,
    };
    let mut out = vec![];
    for (field, spec) in specs {
        let named = format!(
            "{field} {}:{}{}",
            spec.host,
            spec.sandbox.display(),
            if spec.read_only { ":ro" } else { "" }
        );
        let expanded = tokens
            .expand(&spec.host)
            .map_err(|e| bad(format!("{named}: {e}")))?;
        let joined = cwd.join(&expanded);
        let held = pathfd::resolve(&joined).map_err(|e| bad(format!("{named}: {e}")))?;
        if held.path == Path::new("/") {
            return Err(bad(format!(
                "{named}: the host's root cannot be bound at another path (grant what the command needs with --read or --write)"
            )));
        }
        if held.path.starts_with(PRIVATE_SHM) {
            return Err(bad(format!(
                "{named}: {} is the host's shared memory, a channel to the host's processes: it is never granted",
                held.path.display()
            )));
        }
        let access = Access {
            read: true,
            write: !spec.read_only,
            exec: !exec_allowlist,
        };
        if access.write {
            if let Some(what) = kernel_state(&held).map_err(|e| bad(format!("{named}: {e}")))? {
                return Err(bad(format!(
                    "{named}: {} is {what}, host kernel state: it is never writable in the sandbox (add :ro)",
                    held.path.display()
                )));
            }
        }
        let mut need = libc::R_OK;
        if held.is_dir {
            need |= libc::X_OK;
        }
        if access.write {
            need |= libc::W_OK;
        }
        crate::sys::access_fd(held.fd.as_fd(), need).map_err(|e| {
            bad(format!(
                "{named}: {e} ({})",
                if access.write {
                    "needs read and write access, or add :ro"
                } else {
                    "needs read access"
                }
            ))
        })?;
        let requested = normalize(&joined).to_string_lossy().into_owned();
        out.push(SandboxBind {
            grant: Grant::held(held, requested, access),
            sandbox: spec.sandbox.clone(),
        });
    }
    Ok(out)
}

/// `--user UID:GID`: None when it is the caller's own identity (or not given); another
/// identity only when cw-exec runs as root, since an unprivileged user namespace can map
/// nothing but the caller's own ids.
fn run_as(user: Option<(u32, u32)>, uid: u32, gid: u32) -> Result<Option<(u32, u32)>, Refusal> {
    match user {
        None => Ok(None),
        Some(ids) if ids == (uid, gid) => Ok(None),
        Some(ids) if uid == 0 => Ok(Some(ids)),
        Some((u, g)) => Err(bad(format!(
            "--user {u}:{g}: cw-exec runs as {uid}:{gid}, not as root, and an unprivileged user namespace can map only the caller's own identity: --user {uid}:{gid} is the only one it can honour (run cw-exec as root to run the command as another user)"
        ))),
    }
}

/// Finds the command as `resolve_command` does, but in the view: a name with a `/` is taken
/// relative to the view's working directory, and a path (or a PATH directory) inside a bind
/// is looked up on the host behind it. Returns the path execve gets (in the view) and the
/// host path (what `$command` names).
fn resolve_command_in_view(
    name: &str,
    cwd: &Path,
    view_cwd: &Path,
    path_var: &str,
    binds: &[SandboxBind],
) -> Result<(PathBuf, PathBuf), Refusal> {
    let host_of = |p: &Path| binds.iter().find_map(|b| b.host_of(p));
    if binds.is_empty() {
        let found = resolve_command(name, cwd, path_var)?;
        return Ok((found.clone(), found));
    }
    if name.contains('/') {
        let in_view = normalize(&view_cwd.join(name));
        if let Some(host) = host_of(&in_view) {
            if host.exists() {
                return Ok((in_view, host));
            }
            return Err(Refusal::not_found(format!(
                "{name}: No such file or directory"
            )));
        }
        let found = resolve_command(&in_view.to_string_lossy(), cwd, path_var)?;
        return Ok((found.clone(), found));
    }
    for dir in path_var.split(':').filter(|d| !d.is_empty()) {
        let candidate = Path::new(dir).join(name);
        let host = host_of(&candidate).unwrap_or_else(|| candidate.clone());
        let found = std::fs::metadata(&host)
            .map(|m| m.is_file())
            .unwrap_or(false)
            && nix::unistd::access(&host, nix::unistd::AccessFlags::X_OK).is_ok();
        if found {
            return Ok((candidate, host));
        }
    }
    Err(Refusal::not_found(format!(
        "{name}: command not found on the sandbox PATH ({path_var})"
    )))
}

/// Checks the protected paths (a front end's state, cw-exec's signing key), as they
/// physically resolve, against the grants and binds: a grant at or beneath one, a write grant
/// covering one, or a bind overlapping one is refused. Returns those a read grant covers, to
/// be masked.
fn check_protected(
    protected: &[(PathBuf, String)],
    grants: &[Grant],
    binds: &[SandboxBind],
) -> Result<Vec<PathBuf>, Refusal> {
    let mut masks = vec![];
    for (path, what) in protected {
        for g in grants.iter().filter(|g| !g.per_run) {
            if g.path.starts_with(path) {
                return Err(bad(format!(
                    "{}: {} holds {what}, which no sandbox may see",
                    g.requested,
                    path.display()
                )));
            }
            if path.starts_with(&g.path) {
                if g.access.write {
                    return Err(bad(format!(
                        "{}: this write grant covers {} ({what}), which no sandbox may change",
                        g.requested,
                        path.display()
                    )));
                }
                if !masks.contains(path) {
                    masks.push(path.clone());
                }
            }
        }
        for b in binds {
            if b.grant.path.starts_with(path) || path.starts_with(&b.grant.path) {
                return Err(bad(format!(
                    "bind of {} at {}: it overlaps {} ({what}), which no sandbox may see",
                    b.grant.requested,
                    b.sandbox.display(),
                    path.display()
                )));
            }
        }
    }
    Ok(masks)
}

/// Where a bind may not appear in the view: at, above or beneath anything else the view
/// holds — a grant (at its own path), the runtime allowance, the symlinks recreated there,
/// the sandbox's own /proc, /dev, /tmp, /dev/shm and private HOME, cw-exec's own names in
/// the view's root — and not above the working directory (unless that is inside a bind).
fn check_bind_destinations<'a>(
    binds: &[SandboxBind],
    grants: impl Iterator<Item = &'a Grant> + Clone,
    (host_cwd, view_cwd): (&Path, &Path),
) -> Result<(), Refusal> {
    let overlaps = |a: &Path, b: &Path| a.starts_with(b) || b.starts_with(a);
    for b in binds {
        let named = format!("bind of {} at {}", b.grant.requested, b.sandbox.display());
        for own in ["/proc", "/dev", "/tmp", "/sys"] {
            if overlaps(&b.sandbox, Path::new(own)) {
                return Err(bad(format!(
                    "{named}: the sandbox path would shadow {own} (the sandbox has its own /proc, /dev and /tmp; /sys is host state): choose another sandbox path"
                )));
            }
        }
        if b.sandbox
            .components()
            .nth(1)
            .is_some_and(|c| c.as_os_str().to_string_lossy().starts_with(".cw-exec"))
        {
            return Err(bad(format!(
                "{named}: names beginning with .cw-exec in the sandbox's root are cw-exec's own"
            )));
        }
        for g in grants.clone() {
            let what = if g.per_run {
                "a private directory or the /proc of the sandbox"
            } else {
                "a grant or the runtime allowance"
            };
            let mut clash = overlaps(&b.sandbox, &g.path).then(|| g.path.clone());
            if !g.per_run && clash.is_none() {
                let requested = PathBuf::from(&g.requested);
                if requested.is_absolute() && overlaps(&b.sandbox, &requested) {
                    clash = Some(requested);
                }
            }
            clash = clash.or_else(|| {
                g.links
                    .iter()
                    .find(|l| overlaps(&b.sandbox, &l.at))
                    .map(|l| l.at.clone())
            });
            if let Some(at) = clash {
                return Err(bad(format!(
                    "{named}: the sandbox path overlaps {} ({what}, which the view holds at that path): binds may not lie at, above or beneath it",
                    at.display()
                )));
            }
        }
        if host_cwd == view_cwd && host_cwd.starts_with(&b.sandbox) {
            return Err(bad(format!(
                "{named}: the working directory {} lies beneath the sandbox path, where the bind would replace it (give --cwd as a sandbox path)",
                host_cwd.display()
            )));
        }
    }
    Ok(())
}

/// Credentials beneath a bind's host side (see `credential_masks`), masked at the sandbox
/// path they appear at (unless the bind names the credential exactly).
fn bind_masks(found: &[Found], binds: &[SandboxBind]) -> Vec<Mask> {
    let mut out: Vec<Mask> = vec![];
    for cred in found {
        for b in binds {
            if !masks_credential(&b.grant.path, &cred.path) {
                continue;
            }
            let Ok(rel) = cred.path.strip_prefix(&b.grant.path) else {
                continue;
            };
            let at = b.sandbox.join(rel);
            if !out.iter().any(|m| m.path == at) {
                out.push(Mask {
                    path: at,
                    is_dir: cred.is_dir,
                });
            }
        }
    }
    out
}

/// The limits of a run: flags over the profile, each marked explicit (binds as asked or is
/// refused) or a profile default; and the wall-clock timeout.
fn limits_of(
    req: &Request,
    profile: &Profile,
    profile_id: &str,
    uid: u32,
) -> Result<(Option<Duration>, LimitsPlan), Refusal> {
    // Profile values were checked when the profile was parsed; the flags are checked here.
    let rl = &req.limits;
    rl.check(|key| format!("--{key}")).map_err(bad)?;
    let pl = &profile.limits;
    let timeout = rl.timeout.or(pl.timeout).map(Duration::from_secs_f64);
    let cpu = rl.cpu.or(pl.cpu).map(Duration::from_secs_f64);
    // A limit is explicit when a flag sets it or the profile lists it in limits.required:
    // then it binds as asked or the run is refused. Otherwise it is a profile default.
    let mut explicit = BTreeMap::new();
    for (report, key) in [
        ("memory", "memory"),
        ("pids", "pids"),
        ("cpu", "cpu"),
        ("nofile", "nofile"),
        ("fsize", "fsize"),
        ("output", "output-limit"),
    ] {
        if rl.is_set(key) {
            explicit.insert(report, format!("--{key}"));
        } else if pl.is_set(key) && pl.requires(key) {
            explicit.insert(
                report,
                format!("profile {profile_id}: limits.{key} (required)"),
            );
        }
    }
    let wanted = Limits {
        memory: rl.memory.or(pl.memory).map(|s| s.0),
        pids: rl.pids.or(pl.pids),
        cpu,
        nofile: rl.nofile.or(pl.nofile),
        fsize: rl.fsize.or(pl.fsize).map(|s| s.0),
        output: rl.output_limit.or(pl.output_limit).map(|s| s.0),
        explicit,
    };
    let limits = crate::limits::plan(&wanted, uid)
        .map_err(|(limit, message)| Refusal::limit(limit, message))?;
    Ok((timeout, limits))
}

/// How long the command gets after a forwarded SIGTERM, SIGINT or SIGHUP when no
/// `--kill-after` says otherwise.
pub const DEFAULT_KILL_AFTER: Duration = Duration::from_secs(10);
/// The longest `--kill-after` (a day): past it, the flag is a mistake.
pub const MAX_KILL_AFTER: f64 = 86_400.0;

/// `--kill-after SECONDS`: 0 (kill as soon as the signal is forwarded) up to a day.
pub fn kill_after_of(seconds: Option<f64>) -> Result<Duration, String> {
    match seconds {
        None => Ok(DEFAULT_KILL_AFTER),
        Some(s) if s.is_finite() && (0.0..=MAX_KILL_AFTER).contains(&s) => {
            Ok(Duration::from_secs_f64(s))
        }
        Some(s) => Err(format!(
            "--kill-after {s}: not a number of seconds in [0, {MAX_KILL_AFTER}] (0 kills the tree as soon as a signal is forwarded)"
        )),
    }
}

/// The native rule for required dimensions, from the two facts it depends on (known before
/// any kernel is asked, so a refusal before a plan exists states the same required set a run
/// would).
pub fn required_native(exec_allowlist: bool, net: NetMode) -> Vec<Dimension> {
    Dimension::ALL
        .into_iter()
        .filter(|d| match d {
            Dimension::Command => exec_allowlist,
            Dimension::Network => net != NetMode::Host,
            _ => true,
        })
        .collect()
}

/// Only the host's root may write vm.memfd_noexec for the sandbox's PID namespace (the
/// sysctl checks the global root uid), and only Linux >= 6.3 has it; everyone else gets the
/// seccomp fallback.
fn can_set_memfd_sysctl(uid: u32) -> bool {
    uid == 0 && Path::new("/proc/sys/vm/memfd_noexec").exists()
}

pub use crate::credentials::home_dir;

/// Finds the command the way execvp would, on the sandbox's PATH (not the caller's).
fn resolve_command(name: &str, cwd: &Path, path_var: &str) -> Result<PathBuf, Refusal> {
    let is_exec_file = |p: &Path| {
        std::fs::metadata(p).map(|m| m.is_file()).unwrap_or(false)
            && nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).is_ok()
    };
    if name.is_empty() {
        return Err(Refusal::not_found("the command is empty"));
    }
    if name.contains('/') {
        let p = cwd.join(name);
        if p.exists() {
            return Ok(p);
        }
        return Err(Refusal::not_found(format!(
            "{name}: No such file or directory"
        )));
    }
    for dir in path_var.split(':').filter(|d| !d.is_empty()) {
        let candidate = Path::new(dir).join(name);
        if is_exec_file(&candidate) {
            return Ok(candidate);
        }
    }
    Err(Refusal::not_found(format!(
        "{name}: command not found on the sandbox PATH ({path_var})"
    )))
}

/// Top-level entries a grant of `/` leaves out: the sandbox has its own /proc, /dev and /tmp;
/// /sys is host kernel state; /root and /home hold credentials and are granted only by name.
const ROOT_EXPANSION_SKIPS: &[&str] = &["/proc", "/dev", "/tmp", "/sys", "/root", "/home"];

/// Resolves one grant to the paths it covers: usually one; a grant of `/` becomes one grant
/// per top-level entry (except ROOT_EXPANSION_SKIPS), so the view is still separate binds.
/// Each path is resolved once, to a held descriptor (see `kernel::pathfd`).
fn resolve_grant(
    private_tmp: &Path,
    field: &str,
    text: &str,
    expanded: &str,
    cwd: &Path,
    access: Access,
) -> Result<Vec<Grant>, Refusal> {
    let joined = cwd.join(expanded);
    let raw = normalize(&joined);
    let named = if expanded == text {
        text.to_string()
    } else {
        format!("{text} ({expanded})")
    };
    let requested = raw.to_string_lossy().into_owned();
    if raw == Path::new(PRIVATE_TMP) || raw == private_tmp {
        return Ok(vec![Grant::internal(
            &private_tmp.to_string_lossy(),
            &requested,
            access,
        )]);
    }
    let held = pathfd::resolve(&joined).map_err(|e| bad(format!("{field} {named}: {e}")))?;
    if held.path == Path::new("/") {
        let entries = std::fs::read_dir("/").map_err(|e| bad(format!("{field} {named}: {e}")))?;
        let mut out = vec![Grant::internal(
            &private_tmp.to_string_lossy(),
            PRIVATE_TMP,
            access,
        )];
        let mut children: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        children.sort();
        for child in children {
            if ROOT_EXPANSION_SKIPS
                .iter()
                .any(|skip| child == Path::new(skip))
            {
                continue;
            }
            // An entry the caller cannot read (`/lost+found`, a 0700 home of another user) is
            // not part of "everything the caller can read": skipped, and listed by `explain`.
            let need = if access.write {
                nix::unistd::AccessFlags::R_OK | nix::unistd::AccessFlags::W_OK
            } else {
                nix::unistd::AccessFlags::R_OK
            };
            if nix::unistd::access(&child, need) == Err(nix::errno::Errno::EACCES) {
                out.push(Grant::skipped(&child));
                continue;
            }
            let child_text = child.to_string_lossy().into_owned();
            out.extend(resolve_grant(
                private_tmp,
                field,
                &child_text,
                &child_text,
                cwd,
                access,
            )?);
        }
        return Ok(out);
    }
    if held.path.starts_with(PRIVATE_SHM) {
        return Err(bad(format!(
            "{field} {named}: {} is the host's shared memory, a channel to the host's processes: it is never granted (the sandbox has its own, private /dev/shm)",
            held.path.display()
        )));
    }
    if access.write {
        if let Some(what) = kernel_state(&held).map_err(|e| bad(format!("{field} {named}: {e}")))? {
            return Err(bad(format!(
                "{field} {named}: {} is {what}, host kernel state: it is never writable in the sandbox (grant it read-only, or not at all)",
                held.path.display()
            )));
        }
    }
    let mut need = libc::R_OK;
    if held.is_dir {
        need |= libc::X_OK;
    }
    if access.write {
        need |= libc::W_OK;
    }
    // Only an exec grant must name something executable; read and write grants merely
    // allow execution of what is executable beneath them.
    if field.ends_with("exec") && !held.is_dir {
        need |= libc::X_OK;
    }
    crate::sys::access_fd(held.fd.as_fd(), need).map_err(|e| {
        bad(format!(
            "{field} {named}: {e} ({})",
            if access.write {
                "needs read and write access"
            } else {
                "needs read access"
            }
        ))
    })?;
    Ok(vec![Grant::held(held, requested, access)])
}

/// File systems that are host kernel state: never writable inside, whatever the grants say.
pub const KERNEL_STATE_FS: &[(i64, &str)] = &[
    (0x6265_6572, "sysfs"),
    (0x0027_e0eb, "cgroup"),
    (0x6367_7270, "cgroup2"),
    (0x9fa0, "proc"),
    (0x7363_6673, "securityfs"),
    (0x6462_6720, "debugfs"),
    (0x7472_6163, "tracefs"),
    (0xcafe_4a11, "bpf"),
    (0x6265_6570, "configfs"),
    (0xde5e_81e4, "efivarfs"),
    (0x6165_676c, "pstore"),
    (0x4249_4e4d, "binfmt_misc"),
    (0x6573_5543, "fusectl"),
    (0xf97c_ff8c, "selinuxfs"),
    (0x4341_5d53, "smackfs"),
    (0x6e73_6673, "nsfs"),
];

/// Why a resolved path is host kernel state, if it is: its file system, or its place (beneath
/// /sys or /proc, whatever is mounted there — /sys/fs/cgroup is a tmpfs on cgroup v1 hosts).
/// Asked of write grants only (one `fstatfs` of the held descriptor).
fn kernel_state(held: &Held) -> std::io::Result<Option<String>> {
    let magic = held.fs_magic()?;
    if let Some((_, name)) = KERNEL_STATE_FS.iter().find(|(m, _)| *m == magic) {
        return Ok(Some(format!("on a {name} file system")));
    }
    Ok(["/sys", "/proc"]
        .iter()
        .find(|p| held.path.starts_with(p))
        .map(|p| format!("beneath {p}")))
}

/// Refuses a resolution that followed a symlink someone other than root and the caller could
/// have placed: owned by another user or in a directory another user may write, or lying
/// inside a write grant of this run (where a sandboxed process, in this run or an earlier
/// one, could have planted it) unless what it leads to stays inside that same grant.
fn check_links(
    named: &str,
    resolved: &Path,
    links: &[crate::model::Link],
    write_roots: &[PathBuf],
    uid: u32,
) -> Result<(), Refusal> {
    for link in links {
        if let Some(why) = link.untrusted_because(uid, write_roots, resolved) {
            return Err(bad(format!(
                "{named}: resolves through the symlink {} -> {}, and {why}; refusing to follow it (--follow-symlinks, or follow_symlinks = true in the profile, follows it anyway)",
                link.at.display(),
                link.target.display()
            )));
        }
    }
    Ok(())
}

/// Whether a resolved host path may serve as an allowance cw-exec derives itself (the runtime
/// allowance, the agent's installation): never through a symlink someone else or a sandbox
/// could have placed, never inside the write set, never at or beneath a credential path.
fn derivable(held: &Held, write_roots: &[PathBuf], credentials: &Credentials, uid: u32) -> bool {
    // Physical paths all: at or beneath, by bytes (see `strictly_beneath`).
    let within = |path: &Path, root: &Path| {
        path.as_os_str().as_bytes() == root.as_os_str().as_bytes() || strictly_beneath(path, root)
    };
    let planted = held
        .links
        .iter()
        .any(|l| l.placeable_by_others(uid) || write_roots.iter().any(|w| within(&l.at, w)));
    !planted
        && !write_roots.iter().any(|w| within(&held.path, w))
        && !credentials.covers(&held.path)
}

/// The agent's own installation: the directory of the resolved binary (symlinks followed)
/// and, for a script, what the kernel runs to start it (its interpreter chain: the `#!`
/// interpreter *file*, `env` and the program it names, an ELF loader), file by file.
/// Readable (and executable without an allowlist); under an allowlist the files themselves
/// are executable. Nothing is derived from a file the sandbox could have written (inside the
/// write set, or reached through a symlink someone else could have placed), and nothing at
/// or beneath a credential path.
fn agent_install_grants(
    command: &Path,
    exec_allowlist: bool,
    ctx: &ChainContext<'_>,
) -> Result<Vec<Grant>, Refusal> {
    let real = pathfd::resolve(command).map_err(|e| bad(format!("{}: {e}", command.display())))?;
    if !derivable(&real, ctx.write_roots, ctx.credentials, ctx.uid) {
        return Ok(vec![]);
    }
    let read_only = |exec| Access {
        read: true,
        write: false,
        exec,
    };
    let mut out: Vec<Grant> = vec![];
    let dir = real.path.parent().unwrap_or(Path::new("/")).to_path_buf();
    // The installation's directory, unless that is the root or a home directory: then only
    // the file (an agent that is a lone script in $HOME gets no grant of all of $HOME).
    let homes = crate::credentials::homes(&home_dir());
    if dir != Path::new("/") && !homes.contains(&dir) {
        if let Ok(held_dir) = pathfd::resolve(&dir) {
            if derivable(&held_dir, ctx.write_roots, ctx.credentials, ctx.uid) {
                let requested = dir.to_string_lossy().into_owned();
                merge_grant(
                    &mut out,
                    Grant::held(held_dir, requested, read_only(!exec_allowlist)),
                );
            }
        }
    }
    let mut chain: Vec<Held> = vec![];
    ctx.add(&real, &mut chain, 0)
        .map_err(|e| bad(format!("{}: {e}", real.path.display())))?;
    for held in std::iter::once(real).chain(chain) {
        if held.is_dir {
            continue;
        }
        let requested = held.path.to_string_lossy().into_owned();
        merge_grant(&mut out, Grant::held(held, requested, read_only(true)));
    }
    Ok(out)
}

/// Interpreters whose first operand is a program file: `node agent.js`, `python3 tool.py`.
/// Matched on the command's name as given and as resolved, version suffixes ignored
/// (`python3.12`, `ruby3.2`).
const SCRIPT_INTERPRETERS: &[&str] = &[
    "node", "nodejs", "bun", "deno", "tsx", "ts-node", "python", "pypy", "ruby", "perl", "php",
    "lua", "luajit", "Rscript", "sh", "bash", "dash", "zsh", "ksh",
];

/// Options after which the next word is the option's value, not the script.
const OPTIONS_WITH_VALUE: &[&str] = &[
    "-r",
    "--require",
    "--import",
    "--loader",
    "--experimental-loader",
    "-C",
    "--conditions",
    "--env-file",
    "--title",
    "--input-type",
    "-W",
    "-X",
    "-I",
];

/// Options that give the program inline (or as a module to search for): no script file follows.
const INLINE_PROGRAM_OPTIONS: &[&str] = &["-e", "--eval", "-p", "--print", "-c", "-m", "-E"];

/// Files whose presence makes a directory a package (the script's installation).
const PACKAGE_MARKERS: &[&str] = &["package.json", "pyproject.toml", "setup.py"];

fn is_script_interpreter(name: &str) -> bool {
    let base = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    SCRIPT_INTERPRETERS.contains(&base) || SCRIPT_INTERPRETERS.contains(&name)
}

/// The script an interpreter is given on the command line (`node /opt/agents/agent.js ...`),
/// as written: the first operand after the interpreter's options, skipping a `run`
/// subcommand (bun, deno). None when the command is no known interpreter, or the program is
/// given inline (`-e`, `-c`, `-m`, ...).
pub fn interpreter_script<'a>(argv: &'a [String], command_path: &Path) -> Option<&'a str> {
    let named = |p: &Path| {
        p.file_name()
            .map(|n| is_script_interpreter(&n.to_string_lossy()))
            .unwrap_or(false)
    };
    let first = Path::new(argv.first()?);
    let resolved = std::fs::canonicalize(command_path).unwrap_or_default();
    if !named(first) && !named(command_path) && !named(&resolved) {
        return None;
    }
    let mut words = argv[1..].iter();
    let mut subcommand_skipped = false;
    while let Some(word) = words.next() {
        if word == "--" {
            return words.next().map(String::as_str);
        }
        if INLINE_PROGRAM_OPTIONS.contains(&word.as_str()) {
            return None;
        }
        if OPTIONS_WITH_VALUE.contains(&word.as_str()) {
            words.next();
            continue;
        }
        if word.starts_with('-') && word.len() > 1 {
            continue;
        }
        if word == "run" && !subcommand_skipped {
            subcommand_skipped = true;
            continue;
        }
        return Some(word);
    }
    None
}

/// The script an interpreter is given on the operator's command line is part of the agent's
/// installation (read-only; executable only without an exec allowlist): the file, and when it
/// lies inside a package (nearest ancestor with `package.json`, `pyproject.toml` or
/// `setup.py`) that package's directory. Never a file or package in the write set, reached
/// through a symlink someone else could have placed, or at or beneath a credential path; the
/// package directory never when it is `/`, a home directory, or the working directory or an
/// ancestor of it (that is the workspace, not an installation: only the file is granted).
fn script_install_grants(
    argv: &[String],
    command_path: &Path,
    exec_allowlist: bool,
    ctx: &ChainContext<'_>,
    out: &mut Vec<Grant>,
) {
    let Some(script) = interpreter_script(argv, command_path) else {
        return;
    };
    let Ok(held) = pathfd::resolve(&ctx.cwd.join(script)) else {
        return; // not there: the run's failure hints name it
    };
    if held.is_dir || !derivable(&held, ctx.write_roots, ctx.credentials, ctx.uid) {
        return;
    }
    let access = Access {
        read: true,
        write: false,
        exec: !exec_allowlist,
    };
    let package = held.path.ancestors().skip(1).find(|dir| {
        PACKAGE_MARKERS.iter().any(|m| {
            std::fs::symlink_metadata(dir.join(m))
                .map(|meta| meta.is_file())
                .unwrap_or(false)
        })
    });
    let homes = crate::credentials::homes(&home_dir());
    let package = package
        .filter(|dir| *dir != Path::new("/") && !homes.iter().any(|h| h == dir))
        .filter(|dir| !ctx.cwd.starts_with(dir))
        .and_then(|dir| pathfd::resolve(dir).ok())
        .filter(|dir| derivable(dir, ctx.write_roots, ctx.credentials, ctx.uid));
    let requested = held.path.to_string_lossy().into_owned();
    merge_grant(out, Grant::held(held, requested, access));
    if let Some(dir) = package {
        let requested = dir.path.to_string_lossy().into_owned();
        merge_grant(out, Grant::held(dir, requested, access));
    }
}

/// Which environment names may reach execve, derived from the policy alone: the base
/// (cw-exec's scratch set, or cool-workflow's), the names exposed and set, the forwarded
/// provider-key prefixes, and the denied names. `Plan::env` is built by a separate path;
/// the verdict checks what execve receives against this rule.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvRule {
    /// Every name not denied may pass (cool-workflow's `env.inherit: true`).
    pub any: bool,
    pub names: std::collections::BTreeSet<String>,
    pub prefixes: Vec<String>,
    pub denied: std::collections::BTreeSet<String>,
}

impl EnvRule {
    pub fn of(req: &Request, profile: &Profile) -> EnvRule {
        let mut rule = EnvRule::default();
        let base: &[&str] = match req.env_base {
            EnvBase::Scratch => &["PATH", "HOME", "LANG", "TERM", "TMPDIR"],
            EnvBase::CoolWorkflow { inherit: true } => {
                rule.any = true;
                &[]
            }
            EnvBase::CoolWorkflow { inherit: false } => &["PATH", "HOME"],
            EnvBase::Given => &["PATH"],
        };
        rule.names.extend(base.iter().map(|n| n.to_string()));
        if req
            .forward_provider_keys
            .or(profile.env.forward_provider_keys)
            .unwrap_or(false)
        {
            rule.prefixes = PROVIDER_KEY_PREFIXES
                .iter()
                .map(|p| p.to_string())
                .collect();
            rule.names.insert("USER".into());
        }
        rule.names.extend(profile.env.expose.iter().cloned());
        rule.names.extend(req.env.iter().cloned());
        let set: std::collections::BTreeSet<String> = profile
            .env
            .set
            .keys()
            .cloned()
            .chain(
                req.setenv
                    .iter()
                    .filter_map(|kv| kv.split_once('=').map(|(k, _)| k.to_string())),
            )
            .chain(req.env_literal.iter().map(|(k, _)| k.clone()))
            .collect();
        rule.names.extend(set.iter().cloned());
        if req.net_mode(profile) == NetMode::Allowlist {
            rule.names
                .extend(PROXY_VARIABLES.iter().map(|n| n.to_string()));
            rule.names
                .extend(["NO_PROXY".to_string(), "no_proxy".to_string()]);
        }
        // cool-workflow's own secrets never come from cw-exec's environment; the caller may
        // still set one explicitly. `deny` wins over everything.
        rule.denied.extend(
            NEVER_FORWARD
                .iter()
                .filter(|n| !set.contains(**n))
                .map(|n| n.to_string()),
        );
        rule.denied.extend(req.env_deny.iter().cloned());
        rule
    }

    pub fn allows(&self, name: &str) -> bool {
        if self.denied.contains(name) {
            return false;
        }
        let upper = name.to_ascii_uppercase();
        self.any
            || self.names.contains(name)
            || self.prefixes.iter().any(|p| upper.starts_with(p.as_str()))
    }
}

/// How many interpreters deep the kernel follows (`#!` within `#!`, plus the ELF loader).
const MAX_INTERPRETER_DEPTH: usize = 5;

/// The dynamic loaders present here, resolved.
fn known_loaders() -> Vec<PathBuf> {
    DYNAMIC_LOADERS
        .iter()
        .filter_map(|l| pathfd::resolve(Path::new(l)).ok().map(|h| h.path))
        .collect()
}

/// What an allowlist's programs are resolved against.
struct ChainContext<'a> {
    cwd: &'a Path,
    search_path: &'a str,
    /// The write set: nothing found there is trusted to name what else may execute.
    write_roots: &'a [PathBuf],
    credentials: &'a Credentials,
    uid: u32,
    /// The caller's opt-in to following symlinks others could have placed (as for grants).
    follow_symlinks: bool,
    loaders: &'a [PathBuf],
}

/// Resolves an allowlist given as command lines into programs and their interpreter chains,
/// each added to `grants` as an exec grant of the held file. An entry whose program cannot be
/// resolved, or whose chain cannot be determined without trusting a file the sandbox (or
/// another user) could have written, is a refusal naming the command dimension.
fn program_grants(
    entries: &[String],
    ctx: &ChainContext<'_>,
    grants: &mut Vec<Grant>,
) -> Result<Vec<ProgramGrant>, Refusal> {
    let exec = Access {
        read: true,
        write: false,
        exec: true,
    };
    let mut out: Vec<ProgramGrant> = vec![];
    for entry in entries {
        let Some(word) = entry.split_whitespace().next() else {
            continue; // an empty entry matches no command line
        };
        let refuse = |why: String| {
            Refusal::dimensions(
                &[Dimension::Command],
                "exec allowlist",
                format!("execute.allow entry {entry:?}: program {word}: {why}; cw-exec cannot express it as a kernel exec allowlist"),
            )
        };
        let found =
            resolve_command(word, ctx.cwd, ctx.search_path).map_err(|e| refuse(e.to_string()))?;
        let program =
            pathfd::resolve(&found).map_err(|e| refuse(format!("{}: {e}", found.display())))?;
        if program.is_dir {
            return Err(refuse(format!("{} is a directory", program.path.display())));
        }
        if !ctx.follow_symlinks {
            // Named by the policy, so checked as a grant is.
            check_links(
                word,
                &program.path,
                &program.links,
                ctx.write_roots,
                ctx.uid,
            )
            .map_err(|e| refuse(e.to_string()))?;
        }
        if out.iter().any(|p| p.program == program.path) {
            continue;
        }
        let mut chain: Vec<Held> = vec![];
        ctx.add(&program, &mut chain, 0).map_err(refuse)?;
        out.push(ProgramGrant {
            entry: entry.clone(),
            program: program.path.clone(),
            interpreter_chain: chain.iter().map(|h| h.path.clone()).collect(),
        });
        for held in std::iter::once(program).chain(chain) {
            let requested = held.path.to_string_lossy().into_owned();
            merge_grant(grants, Grant::held(held, requested, exec));
        }
    }
    Ok(out)
}

/// What the kernel executes to run `program`, besides the program itself: for a `#!` script
/// its interpreter (and through `/usr/bin/env NAME`, env and NAME on the sandbox's PATH),
/// recursively; for an ELF binary its program interpreter (PT_INTERP). Every path is
/// resolved (held). Nothing is derived from a file the sandbox could have written, except an
/// ELF loader that is one of the known dynamic loaders (executable under any allowlist).
#[cfg(test)]
fn interpreter_chain(program: &Path, ctx: &ChainContext<'_>) -> Result<Vec<PathBuf>, String> {
    let held = pathfd::resolve(program).map_err(|e| format!("{}: {e}", program.display()))?;
    let mut chain = vec![];
    ctx.add(&held, &mut chain, 0)?;
    Ok(chain.into_iter().map(|h| h.path).collect())
}

impl ChainContext<'_> {
    /// Resolves an interpreter cw-exec derived (not one the policy named): it must be
    /// derivable, like the runtime allowance — no symlink someone else or a sandbox could
    /// have placed, not in the write set, not a credential.
    fn derive(&self, path: &Path, from: &Path) -> Result<Held, String> {
        let held = pathfd::resolve(path).map_err(|e| {
            format!(
                "{}: its interpreter {}: {e}",
                from.display(),
                path.display()
            )
        })?;
        if held.is_dir {
            return Err(format!(
                "{}: its interpreter {} is a directory",
                from.display(),
                path.display()
            ));
        }
        if !derivable(&held, self.write_roots, self.credentials, self.uid)
            && !self.loaders.contains(&held.path)
        {
            return Err(format!(
                "{}: its interpreter {} lies in the write set or a credential path, or is reached through a symlink someone else could have placed",
                from.display(),
                path.display()
            ));
        }
        Ok(held)
    }

    /// Appends what runs `file` (not `file` itself) to `chain`.
    fn add(&self, file: &Held, chain: &mut Vec<Held>, depth: usize) -> Result<(), String> {
        if depth >= MAX_INTERPRETER_DEPTH {
            return Err(format!(
                "{}: more than {MAX_INTERPRETER_DEPTH} interpreters deep",
                file.path.display()
            ));
        }
        // A file the sandbox or another user could have written may name no interpreter
        // but a known loader: its contents are not the policy's.
        let trusted = derivable(file, self.write_roots, self.credentials, self.uid);
        let mut reader = open_held(file)?;
        let mut head = Vec::with_capacity(512);
        std::io::Read::read_to_end(&mut std::io::Read::take(&mut reader, 512), &mut head)
            .map_err(|e| format!("{}: {e}", file.path.display()))?;
        if head.starts_with(b"\x7fELF") {
            let Some(interp) = elf_interpreter(&reader, &file.path)? else {
                return Ok(()); // statically linked
            };
            let known = pathfd::resolve(&interp)
                .map(|h| self.loaders.contains(&h.path))
                .unwrap_or(false);
            if !trusted && !known {
                return Err(format!(
                    "{} lies in the write set (or is reached through a symlink another user could have placed) and names ELF interpreter {}, which is not a known dynamic loader: cw-exec does not derive exec grants from such a file",
                    file.path.display(),
                    interp.display()
                ));
            }
            let held = self.derive(&interp, &file.path)?;
            let path = held.path.clone();
            if chain.iter().any(|h| h.path == path) {
                return Ok(());
            }
            chain.push(held);
            if known {
                return Ok(());
            }
            let held = pathfd::resolve(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            return self.add(&held, chain, depth + 1);
        }
        let Some(rest) = head.strip_prefix(b"#!") else {
            return Err(format!(
                "{} is neither an ELF binary nor a #! script: what runs it cannot be determined",
                file.path.display()
            ));
        };
        if !trusted {
            return Err(format!(
                "{} is a script in the write set (or reached through a symlink another user could have placed): its interpreter would be taken from a file the sandbox can rewrite",
                file.path.display()
            ));
        }
        let Some(end) = rest.iter().position(|b| *b == b'\n') else {
            return Err(format!(
                "{}: #! line without an end in its first 510 bytes",
                file.path.display()
            ));
        };
        let line = String::from_utf8_lossy(&rest[..end]).into_owned();
        let blank = |c: char| c == ' ' || c == '\t' || c == '\r';
        let line = line.trim_matches(blank);
        // As the kernel splits it: the interpreter, then everything else as one argument.
        let (interp, arg) = match line.split_once([' ', '\t']) {
            Some((i, rest)) => (i, rest.trim_matches(blank)),
            None => (line, ""),
        };
        if !interp.starts_with('/') {
            return Err(format!(
                "{}: #! interpreter {interp:?} is not an absolute path",
                file.path.display()
            ));
        }
        let mut next = vec![self.derive(Path::new(interp), &file.path)?];
        if Path::new(interp).file_name() == Some(std::ffi::OsStr::new("env")) {
            let name = env_program(arg)
                .map_err(|why| format!("{}: #!{line}: {why}", file.path.display()))?;
            let found = resolve_command(&name, self.cwd, self.search_path)
                .map_err(|e| format!("{}: #!{line}: {e}", file.path.display()))?;
            next.push(self.derive(&found, &file.path)?);
        }
        for held in next {
            if chain.iter().any(|h| h.path == held.path) {
                continue;
            }
            let again =
                pathfd::resolve(&held.path).map_err(|e| format!("{}: {e}", held.path.display()))?;
            chain.push(held);
            self.add(&again, chain, depth + 1)?;
        }
        Ok(())
    }
}

/// The program a `#!/usr/bin/env ARG` line starts. The kernel passes everything after the
/// interpreter as one argument: a plain NAME, or `-S` followed by words that env splits
/// (leading NAME=VALUE assignments skipped). Any other option is refused rather than guessed.
fn env_program(arg: &str) -> Result<String, String> {
    if arg.is_empty() {
        return Err("env without a program".into());
    }
    if !arg.starts_with('-') {
        return Ok(arg.to_string());
    }
    let Some(rest) = arg.strip_prefix("-S") else {
        return Err(format!(
            "env option {:?} is not interpreted by cw-exec (only -S is)",
            arg.split_whitespace().next().unwrap_or(arg)
        ));
    };
    let word = rest
        .split_whitespace()
        .find(|w| !w.contains('='))
        .ok_or_else(|| "env -S without a program".to_string())?;
    if word.starts_with('-') {
        return Err(format!(
            "env -S option {word:?} is not interpreted by cw-exec"
        ));
    }
    Ok(word.to_string())
}

/// Opens a held file for reading through its descriptor (the object resolved, never the
/// name again), without blocking on a FIFO; regular files only.
fn open_held(held: &Held) -> Result<std::fs::File, String> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    // The held object itself first: a device or FIFO is never opened at all.
    let st =
        nix::sys::stat::fstat(&held.fd).map_err(|e| format!("{}: {e}", held.path.display()))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(format!("{}: not a regular file", held.path.display()));
    }
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(format!("/proc/self/fd/{}", held.fd.as_raw_fd()))
        .map_err(|e| format!("{}: {e}", held.path.display()))?;
    let meta = f
        .metadata()
        .map_err(|e| format!("{}: {e}", held.path.display()))?;
    if !meta.is_file() {
        return Err(format!("{}: not a regular file", held.path.display()));
    }
    Ok(f)
}

/// An ELF file's program interpreter (PT_INTERP), or None for a static binary.
/// Little-endian ELF32 and ELF64 (the architectures cw-exec runs on).
fn elf_interpreter(f: &std::fs::File, path: &Path) -> Result<Option<PathBuf>, String> {
    use std::os::unix::fs::FileExt;
    let bad = |what: &str| format!("{}: {what}", path.display());
    let mut ehdr = [0u8; 64];
    f.read_exact_at(&mut ehdr, 0)
        .map_err(|_| bad("truncated ELF header"))?;
    if ehdr[5] != 1 {
        return Err(bad("big-endian ELF is not supported"));
    }
    let u16_at = |b: &[u8], o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as u64;
    let u32_at = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap()) as u64;
    let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    let (phoff, phentsize, phnum, wide) = match ehdr[4] {
        1 => (
            u32_at(&ehdr, 0x1c),
            u16_at(&ehdr, 0x2a),
            u16_at(&ehdr, 0x2c),
            false,
        ),
        2 => (
            u64_at(&ehdr, 0x20),
            u16_at(&ehdr, 0x36),
            u16_at(&ehdr, 0x38),
            true,
        ),
        _ => return Err(bad("unknown ELF class")),
    };
    let min_entsize = if wide { 56 } else { 32 };
    if phnum > 1024 || phentsize < min_entsize || phentsize > 256 {
        return Err(bad("implausible ELF program headers"));
    }
    const PT_INTERP: u64 = 3;
    for i in 0..phnum {
        let mut ph = [0u8; 56];
        let ph = &mut ph[..min_entsize as usize];
        f.read_exact_at(ph, phoff + i * phentsize)
            .map_err(|_| bad("truncated ELF program headers"))?;
        if u32_at(ph, 0) != PT_INTERP {
            continue;
        }
        let (offset, size) = if wide {
            (u64_at(ph, 8), u64_at(ph, 32))
        } else {
            (u32_at(ph, 4), u32_at(ph, 16))
        };
        if size == 0 || size > 4096 {
            return Err(bad("implausible PT_INTERP"));
        }
        let mut name = vec![0u8; size as usize];
        f.read_exact_at(&mut name, offset)
            .map_err(|_| bad("truncated PT_INTERP"))?;
        let end = name.iter().position(|b| *b == 0).unwrap_or(name.len());
        return Ok(Some(PathBuf::from(std::ffi::OsStr::from_bytes(
            &name[..end],
        ))));
    }
    Ok(None)
}

/// The target of the exec probe under an allowlist: a regular file with every execute bit,
/// inside a runtime allowance directory that stays mounted exec under an allowlist (a
/// shared-library directory: the dynamic loader's own comes first), beneath no user grant if
/// possible (which could be noexec), and not on the allowlist. None if there is no such file;
/// the command dimension then cannot be proven.
fn exec_probe_target(
    grants: &[Grant],
    agent_install: &[Grant],
    runtime: &[Grant],
    library_dirs: &[PathBuf],
) -> Option<PathBuf> {
    let on_allowlist = |p: &Path| {
        grants
            .iter()
            .chain(agent_install)
            .chain(runtime)
            .any(|g| g.access.exec && p.starts_with(&g.path))
    };
    let user_granted = |p: &Path| {
        grants
            .iter()
            .chain(agent_install)
            .any(|g| p.starts_with(&g.path))
    };
    let in_runtime = |p: &Path| {
        library_dirs.iter().any(|d| p.starts_with(d))
            && runtime.iter().any(|g| {
                g.is_dir
                    && g.access.read
                    && !g.path.starts_with("/dev")
                    && g.path != Path::new("/proc")
                    && p.starts_with(&g.path)
            })
    };
    let mut dirs: Vec<PathBuf> = DYNAMIC_LOADERS
        .iter()
        .filter_map(|l| std::fs::canonicalize(l).ok())
        .filter_map(|l| l.parent().map(Path::to_path_buf))
        .chain(library_dirs.iter().cloned())
        .collect();
    dirs.dedup();
    // Beneath no user grant first; then beneath one too (`--read /` covers the runtime: the
    // mount of a runtime directory granted again keeps exec, and if the chosen file's mount
    // is noexec after all, the probe says "inconclusive" and proves nothing).
    for avoid_user_grants in [true, false] {
        for dir in &dirs {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten().take(4096) {
                let Ok(meta) = entry.metadata() else { continue };
                let path = entry.path();
                if meta.is_file()
                    && meta.mode() & 0o111 == 0o111
                    && in_runtime(&path)
                    && !(avoid_user_grants && user_granted(&path))
                    && !on_allowlist(&path)
                {
                    return Some(path);
                }
            }
        }
    }
    None
}

/// Every directory strictly between a write root and the key directory beneath it: renaming
/// one (or the key directory, masked and so a mount point too) would let a sandbox put its own
/// key where cw-exec looks for one. A mount point cannot be renamed (EBUSY).
fn key_pins(key_dir: Option<&Path>, write_roots: &[PathBuf]) -> Vec<PathBuf> {
    let mut pins: Vec<PathBuf> = Vec::new();
    let Some(key_dir) = key_dir else {
        return pins;
    };
    for root in write_roots.iter().filter(|r| key_dir.starts_with(r)) {
        let mut dir = key_dir.parent();
        while let Some(d) = dir.filter(|d| d.starts_with(root) && *d != root.as_path()) {
            if !pins.iter().any(|p| p == d) {
                pins.push(d.to_path_buf());
            }
            dir = d.parent();
        }
    }
    pins.sort();
    pins
}

/// Whether a mask at `credential` (a physical path) matters for a grant of `grant` (a
/// physical path): the grant covers it without naming it. Lexical, on physical paths, and
/// component by component (`/root/.sshx` is not beneath `/root/.ssh`).
///
/// Why a lexical test on physical paths is sound: Landlock rules and bind mounts attach to
/// the resolved objects, never to names. What a grant exposes is exactly the tree beneath
/// its physical path; a symlink inside a grant that points at a credential is resolved when
/// the sandbox follows it, to the credential's own path, which no grant's rule (and, in the
/// namespace tier, no bind) covers: it is refused without a mask. A credential only needs a
/// mask where its own physical path lies strictly beneath a grant's. The other way round, a
/// grant inside a credential directory (`--read ~/.ssh/known_hosts`) names what it grants
/// and needs no mask: the credential is not covered. What makes the paths physical is
/// `Credentials::find`: a credential path that is a symlink (or lies beneath a symlinked
/// directory) is compared at its target.
fn masks_credential(grant: &Path, credential: &Path) -> bool {
    strictly_beneath(credential, grant)
}

/// Whether `path` lies strictly beneath `dir`, both physical (normalized) paths: a byte
/// prefix that ends at a component boundary. (What `Path::starts_with` decides, without
/// parsing components: the plan compares every credential with every grant.)
fn strictly_beneath(path: &Path, dir: &Path) -> bool {
    let (path, dir) = (path.as_os_str().as_bytes(), dir.as_os_str().as_bytes());
    path.len() > dir.len()
        && path.starts_with(dir)
        && (dir.ends_with(b"/") || path[dir.len()] == b'/')
}

/// The credentials to mask: each that exists (see `Credentials::find`: symlinks followed, at
/// its physical path) and lies strictly beneath a grant, unless a grant names it exactly. A
/// grant beneath a masked path is bound on top of the mask.
fn credential_masks<'a>(
    found: &[Found],
    grants: impl Iterator<Item = &'a Grant> + Clone,
) -> Vec<Mask> {
    let host: Vec<&Path> = grants
        .filter(|g| !g.per_run && g.identity.is_some())
        .map(|g| g.path.as_path())
        .collect();
    let mut out: Vec<Mask> = Vec::new();
    for cred in found {
        let covered = host.iter().any(|g| masks_credential(g, &cred.path));
        let named = host
            .iter()
            .any(|g| g.as_os_str().as_bytes() == cred.path.as_os_str().as_bytes());
        if covered && !named && !out.iter().any(|m| m.path == cred.path) {
            out.push(Mask {
                path: cred.path.clone(),
                is_dir: cred.is_dir,
            });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

pub use crate::kernel::pathfd::normalize;

/// Adds a grant, merging access with an earlier grant of the same path.
fn merge_grant(grants: &mut Vec<Grant>, grant: Grant) {
    if let Some(existing) = grants.iter_mut().find(|g| g.path == grant.path) {
        existing.access.read |= grant.access.read;
        existing.access.write |= grant.access.write;
        existing.access.exec |= grant.access.exec;
    } else {
        grants.push(grant);
    }
}

/// The runtime allowance on this host: existing entries only, symlinks resolved, deduplicated,
/// and nothing reached through a symlink someone else or a sandbox could have placed, inside
/// the write set, or at or beneath a credential path.
pub fn runtime_allowance(
    exec_allowlist: bool,
    write_roots: &[PathBuf],
    credentials: &Credentials,
    uid: u32,
) -> Vec<Grant> {
    let mut out: Vec<Grant> = Vec::new();
    // Merged by path, as `merge_grant` does, through an index: some forty entries.
    // (Fixed keys: the paths are this list's, and a random seed costs a getrandom.)
    let mut index: std::collections::HashMap<
        PathBuf,
        usize,
        std::hash::BuildHasherDefault<std::collections::hash_map::DefaultHasher>,
    > = Default::default();
    let mut add = |requested: &str, access: Access| {
        let Ok(held) = pathfd::resolve(Path::new(requested)) else {
            return;
        };
        if !derivable(&held, write_roots, credentials, uid) {
            return;
        }
        match index.get(&held.path) {
            Some(&i) => {
                let existing = &mut out[i].access;
                existing.read |= access.read;
                existing.write |= access.write;
                existing.exec |= access.exec;
            }
            None => {
                index.insert(held.path.clone(), out.len());
                out.push(Grant::held(held, requested.to_string(), access));
            }
        }
    };
    for p in RUNTIME_READ {
        add(
            p,
            Access {
                read: true,
                write: false,
                exec: !exec_allowlist,
            },
        );
    }
    if exec_allowlist {
        // Their own binds, so that they stay exec while the rest of /usr is noexec.
        for p in LIBRARY_DIRS {
            add(
                p,
                Access {
                    read: true,
                    write: false,
                    exec: false,
                },
            );
        }
        for p in DYNAMIC_LOADERS {
            add(
                p,
                Access {
                    read: true,
                    write: false,
                    exec: true,
                },
            );
        }
    }
    for (p, writable) in RUNTIME_DEVICES {
        add(
            p,
            Access {
                read: true,
                write: *writable,
                exec: false,
            },
        );
    }
    out.push(Grant::internal(
        "/proc",
        "/proc (this sandbox's own PID namespace)",
        Access {
            read: true,
            write: false,
            exec: false,
        },
    ));
    out
}

/// LIBRARY_DIRS resolved on this host: existing directories, symlinks followed, no repeats.
fn library_dirs() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = LIBRARY_DIRS
        .iter()
        .filter_map(|d| std::fs::canonicalize(d).ok())
        .filter(|d| d.is_dir())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The namespaces `namespace_inodes` reports.
const NAMESPACES: [&str; 7] = ["user", "mnt", "pid", "net", "ipc", "uts", "cgroup"];

/// Namespace inodes of the calling process, keyed by namespace name: the inode of the nsfs
/// object each `/proc/PID/ns/NAME` link leads to (what `stat` of the link reports).
///
/// One `O_PATH` open of `/proc/PID/ns`, then one `readlinkat` per namespace relative to it:
/// the link reads `NAME:[INODE]`, the inode number nsfs gives that namespace's inode
/// (`ns_get_name` prints `ns->inum`; the nsfs inode's `i_ino` is `ns->inum`). Reading the
/// link names the namespace without following it into nsfs, as `stat` of each full path
/// did (a path walk through /proc each, and an nsfs lookup). A link that does not read as
/// its own name and an inode is left out, as a missing one is.
pub fn namespace_inodes(pid: &str) -> BTreeMap<String, u64> {
    let Ok(dir) = nix::fcntl::open(
        format!("/proc/{pid}/ns").as_str(),
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    ) else {
        return BTreeMap::new();
    };
    NAMESPACES
        .iter()
        .filter_map(|ns| {
            let target = nix::fcntl::readlinkat(&dir, *ns).ok()?;
            let inode = namespace_link_inode(ns, target.as_bytes())?;
            Some((ns.to_string(), inode))
        })
        .collect()
}

/// The inode a namespace link's target `NAME:[INODE]` names, if it names namespace `ns`.
fn namespace_link_inode(ns: &str, target: &[u8]) -> Option<u64> {
    let digits = target
        .strip_prefix(ns.as_bytes())?
        .strip_prefix(b":[")?
        .strip_suffix(b"]")?;
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// A path's bytes as a C string (paths from the plan never contain NUL).
pub fn c_path(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).expect("paths from the filesystem contain no NUL")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory tree under the system's temp directory.
    fn tree(name: &str, subdirs: &[&str]) -> PathBuf {
        let root = std::env::temp_dir().join(format!("cwx-unit-{name}-{}", std::process::id()));
        for d in subdirs {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        root
    }

    fn binds_of(req: Request) -> Vec<Bind> {
        let plan = Plan::build(&Request {
            command: vec!["/bin/true".into()],
            ..req
        })
        .unwrap();
        plan.view().binds
    }

    /// A grant of a host object at `path` (nothing held: only its path matters here).
    fn host_grant(path: &str) -> Grant {
        Grant {
            path: PathBuf::from(path),
            requested: path.into(),
            access: Access {
                read: true,
                write: false,
                exec: false,
            },
            is_dir: true,
            per_run: false,
            identity: Some(crate::model::Identity {
                dev: 1,
                ino: 1,
                mnt_id: 1,
            }),
            held: None,
            links: vec![],
        }
    }

    fn found(path: &str) -> Found {
        Found {
            path: PathBuf::from(path),
            is_dir: true,
        }
    }

    /// Masks are decided lexically on physical paths, component by component: a credential
    /// strictly beneath a grant is masked; one a grant names, or one holding a grant, or a
    /// sibling sharing a prefix, is not.
    #[test]
    fn credential_masks_are_decided_by_coverage() {
        let masked = |grants: &[Grant], creds: &[&str]| -> Vec<PathBuf> {
            let found: Vec<Found> = creds.iter().map(|c| found(c)).collect();
            credential_masks(&found, grants.iter())
                .into_iter()
                .map(|m| m.path)
                .collect()
        };
        let root = host_grant("/root");
        let ssh = host_grant("/root/.ssh");
        let known_hosts = host_grant("/root/.ssh/known_hosts");
        let sshx = host_grant("/root/.sshx");
        // A credential directory inside a grant.
        assert_eq!(
            masked(std::slice::from_ref(&root), &["/root/.ssh"]),
            [PathBuf::from("/root/.ssh")]
        );
        // A grant inside a credential directory: it names what it grants.
        assert!(masked(std::slice::from_ref(&known_hosts), &["/root/.ssh"]).is_empty());
        // ...and with the directory above granted too, the credential is masked and the
        // grant beneath it is bound on top of the mask.
        assert_eq!(
            masked(&[root.clone(), known_hosts.clone()], &["/root/.ssh"]),
            [PathBuf::from("/root/.ssh")]
        );
        // A grant naming the credential exactly is not masked by a grant above it.
        assert!(masked(&[root.clone(), ssh.clone()], &["/root/.ssh"]).is_empty());
        // Siblings with a common prefix are not beneath each other.
        assert!(masked(std::slice::from_ref(&sshx), &["/root/.ssh"]).is_empty());
        assert!(masked(std::slice::from_ref(&ssh), &["/root/.sshx"]).is_empty());
        assert!(masked(&[host_grant("/root/.ss")], &["/root/.ssh"]).is_empty());
        // Nothing outside a grant is masked; private directories of the run are no host grants.
        assert!(masked(&[host_grant("/var/tmp")], &["/etc/shadow", "/root/.ssh"]).is_empty());
        let private = Grant::internal("/root", "/root", Access::default());
        assert!(masked(&[private], &["/root/.ssh"]).is_empty());
        // The grant of everything: each credential once, sorted.
        assert_eq!(
            masked(
                &[host_grant("/")],
                &["/root/.ssh", "/etc/shadow", "/root/.ssh"]
            ),
            [PathBuf::from("/etc/shadow"), PathBuf::from("/root/.ssh")]
        );
    }

    #[test]
    fn bind_masks_appear_at_the_sandbox_path() {
        let bind = |host: &str, sandbox: &str| SandboxBind {
            grant: host_grant(host),
            sandbox: PathBuf::from(sandbox),
        };
        let masked = |binds: &[SandboxBind], creds: &[&str]| -> Vec<PathBuf> {
            let found: Vec<Found> = creds.iter().map(|c| found(c)).collect();
            bind_masks(&found, binds)
                .into_iter()
                .map(|m| m.path)
                .collect()
        };
        assert_eq!(
            masked(&[bind("/data", "/mnt")], &["/data/keys", "/datax/keys"]),
            [PathBuf::from("/mnt/keys")]
        );
        assert!(masked(&[bind("/data/keys", "/mnt")], &["/data/keys"]).is_empty());
        assert!(masked(&[bind("/data/keys/a", "/mnt")], &["/data/keys"]).is_empty());
    }

    #[test]
    fn a_bind_at_another_path_is_bound_from_its_host_object() {
        let root = tree("binds-dest", &["ws/sub", "data"]);
        let p = |s: &str| root.join(s).to_string_lossy().into_owned();
        let plan = Plan::build(&Request {
            command: vec!["/bin/true".into()],
            binds: vec![
                BindSpec::new(&p("ws"), "/workspace", false).unwrap(),
                BindSpec::new(&p("data"), "/srv/data", true).unwrap(),
            ],
            cwd: Some(PathBuf::from("/workspace/sub")),
            ..Default::default()
        })
        .unwrap();
        // The working directory is the sandbox path; `$cwd` (the default profile's read
        // grant) the host directory behind it.
        assert_eq!(plan.cwd, Path::new("/workspace/sub"));
        assert!(plan.grants.iter().any(|g| g.path == root.join("ws/sub")));
        let binds = plan.view().binds;
        let ws = binds
            .iter()
            .find(|b| b.path == Path::new("/workspace"))
            .unwrap();
        assert_eq!(ws.source.as_deref(), Some(root.join("ws").as_path()));
        assert!(ws.writable && ws.expect.is_some());
        let data = binds
            .iter()
            .find(|b| b.path == Path::new("/srv/data"))
            .unwrap();
        assert!(!data.writable);
        // Landlock rules come from the host objects (the held descriptors).
        let ruled: Vec<&Path> = plan.all_grants().map(|g| g.path.as_path()).collect();
        assert!(ruled.contains(&root.join("ws").as_path()));
        assert!(ruled.contains(&root.join("data").as_path()));
        assert!(plan.binds.iter().all(|b| b.grant.held.is_some()));
        // Parents before children, binds among them.
        let paths: Vec<&PathBuf> = binds.iter().map(|b| &b.path).collect();
        let mut sorted = paths.clone();
        sorted.sort();
        assert_eq!(paths, sorted);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn user_is_the_callers_or_any_as_root() {
        assert_eq!(run_as(None, 1000, 1000).unwrap(), None);
        assert_eq!(run_as(Some((1000, 1000)), 1000, 1000).unwrap(), None);
        assert_eq!(run_as(Some((0, 0)), 0, 0).unwrap(), None);
        assert_eq!(run_as(Some((5, 6)), 0, 0).unwrap(), Some((5, 6)));
        let e = run_as(Some((5, 6)), 1000, 1000).unwrap_err();
        assert!(
            e.message.contains("not as root") && e.message.contains("--user 1000:1000"),
            "{}",
            e.message
        );
    }

    #[test]
    fn the_bind_list_has_parents_first_and_no_redundant_children() {
        let root = tree("binds", &["a/same", "a/rw/deeper", "b"]);
        let p = |s: &str| root.join(s).to_string_lossy().into_owned();
        let binds = binds_of(Request {
            read: vec![p("a"), p("a/same"), p("b")],
            write: vec![p("a/rw"), p("a/rw/deeper")],
            ..Default::default()
        });
        let ours: Vec<(String, bool, bool)> = binds
            .iter()
            .filter(|b| b.path.starts_with(&root))
            .map(|b| {
                (
                    b.path.strip_prefix(&root).unwrap().display().to_string(),
                    b.writable,
                    b.exec,
                )
            })
            .collect();
        // a/same has a's flags and a/rw/deeper a/rw's: neither needs its own mount.
        assert_eq!(
            ours,
            [
                ("a".to_string(), false, true),
                ("a/rw".to_string(), true, true),
                ("b".to_string(), false, true),
            ]
        );
        // Every bind carries the identity the plan resolved, so init binds only that object.
        assert!(binds.iter().all(|b| b.expect.is_some()));
        // Parents before children, in path order.
        let paths: Vec<&PathBuf> = binds.iter().map(|b| &b.path).collect();
        let mut sorted = paths.clone();
        sorted.sort();
        assert_eq!(paths, sorted);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn under_an_exec_allowlist_only_libraries_and_exec_grants_are_mounted_exec() {
        let root = tree("binds-exec", &["tools", "data"]);
        let p = |s: &str| root.join(s).to_string_lossy().into_owned();
        let binds = binds_of(Request {
            read: vec![p("data")],
            exec: vec![p("tools"), "/bin/true".into()],
            ..Default::default()
        });
        let find = |path: &Path| binds.iter().find(|b| b.path == path).unwrap();
        assert!(find(&root.join("tools")).exec);
        assert!(!find(&root.join("data")).exec);
        for b in binds.iter().filter(|b| b.path.starts_with("/dev")) {
            assert!(b.device && !b.exec && !b.writable, "{b:?}");
        }
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn env_program_follows_env_or_refuses() {
        assert_eq!(env_program("node").unwrap(), "node");
        assert_eq!(env_program("-S node --flag").unwrap(), "node");
        assert_eq!(env_program("-S A=1 python3 -u").unwrap(), "python3");
        for bad in ["", "-u /secret/dir sh", "-i sh", "-S -i sh", "-S", "-S A=1"] {
            assert!(env_program(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn interpreter_chains_follow_the_kernel() {
        use std::os::unix::fs::PermissionsExt;
        let dir = PathBuf::from(format!("/var/tmp/cwx-chain-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            p
        };
        let canon = |p: &str| std::fs::canonicalize(p).unwrap();
        let sh = canon("/bin/sh");
        let env = canon("/usr/bin/env");
        let loader = canon("/lib64/ld-linux-x86-64.so.2");
        let loaders = known_loaders();
        let ctx = |write_roots: &'static [PathBuf]| ChainContext {
            cwd: Path::new("/"),
            search_path: DEFAULT_PATH,
            write_roots,
            credentials: Box::leak(Box::default()),
            uid: 0,
            follow_symlinks: false,
            loaders: &[],
        };
        let none: &'static [PathBuf] = &[];
        let with_loaders = |w| ChainContext {
            loaders: &loaders,
            ..ctx(w)
        };
        let chain = |p: &Path| interpreter_chain(p, &with_loaders(none));
        assert_eq!(chain(&sh).unwrap(), std::slice::from_ref(&loader));
        let plain = script("plain", "#!/bin/sh\necho hi\n");
        assert_eq!(chain(&plain).unwrap(), [sh.clone(), loader.clone()]);
        let via_env = script("via-env", "#! /usr/bin/env  sh\n");
        assert_eq!(
            chain(&via_env).unwrap(),
            [env.clone(), loader.clone(), sh.clone()]
        );
        let nested = script("nested", &format!("#!{}\n", plain.display()));
        assert_eq!(
            chain(&nested).unwrap(),
            [plain.clone(), sh.clone(), loader.clone()]
        );
        // Five scripts deep is more than the kernel follows.
        let mut deep = nested.clone();
        for i in 0..5 {
            deep = script(&format!("deep{i}"), &format!("#!{}\n", deep.display()));
        }
        assert!(chain(&deep).unwrap_err().contains("interpreters deep"));
        // What cannot be determined, or would be derived from the write set, is refused.
        let text = script("text", "echo not a script\n");
        assert!(chain(&text).unwrap_err().contains("neither an ELF binary"));
        let relative = script("relative", "#!sh\n");
        assert!(chain(&relative)
            .unwrap_err()
            .contains("not an absolute path"));
        let options = script("options", "#!/usr/bin/env -u /etc sh\n");
        assert!(chain(&options).unwrap_err().contains("not interpreted"));
        let roots: &'static [PathBuf] = Box::leak(Box::new([dir.clone()]));
        let writable = ChainContext {
            loaders: &loaders,
            ..ctx(roots)
        };
        let err = interpreter_chain(&plain, &writable).unwrap_err();
        assert!(err.contains("script in the write set"), "{err}");
        // An ELF binary in the write set keeps its (known) loader.
        let copy = dir.join("true-copy");
        std::fs::copy("/usr/bin/true", &copy).unwrap();
        assert_eq!(interpreter_chain(&copy, &writable).unwrap(), [loader]);
        // A FIFO in place of a program does not hang the plan.
        let fifo = dir.join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o755)).unwrap();
        assert!(chain(&fifo).unwrap_err().contains("not a regular file"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn runtime_allowance_holds_no_credentials() {
        let forbidden = [
            "/etc/shadow",
            "/etc/gshadow",
            "/etc/sudoers",
            "/etc/sudoers.d",
            "/etc/ssh",
            "/root",
            "/home",
            "/etc/ssl/private",
        ];
        for exec in [false, true] {
            for g in runtime_allowance(exec, &[], &Credentials::default(), 0) {
                for f in forbidden {
                    assert!(
                        !Path::new(f).starts_with(&g.path),
                        "{} would expose {f}",
                        g.path.display()
                    );
                }
            }
        }
    }

    /// The inodes read from the links are the ones `stat` of each link reports (it follows
    /// the link to the nsfs inode), for this process and another; a target that is not the
    /// namespace's own name and an inode is refused.
    #[test]
    fn namespace_inodes_are_what_stat_of_each_link_reports() {
        for pid in [
            "self".to_string(),
            "1".to_string(),
            std::process::id().to_string(),
        ] {
            let read = namespace_inodes(&pid);
            let stat: BTreeMap<String, u64> = NAMESPACES
                .iter()
                .filter_map(|ns| {
                    std::fs::metadata(format!("/proc/{pid}/ns/{ns}"))
                        .ok()
                        .map(|m| (ns.to_string(), m.ino()))
                })
                .collect();
            assert_eq!(read, stat, "/proc/{pid}/ns");
        }
        assert_eq!(namespace_inodes("self").len(), NAMESPACES.len());
        assert_eq!(
            namespace_link_inode("net", b"net:[4026531840]"),
            Some(4026531840)
        );
        for bad in [
            &b"mnt:[4026531840]"[..],
            b"net:[]",
            b"net:[12x]",
            b"net:[12",
            b"net:12]",
            b"net:[+12]",
            b"net:[12]x",
        ] {
            assert_eq!(namespace_link_inode("net", bad), None, "{bad:?}");
        }
        assert!(namespace_inodes("0").is_empty());
    }

    /// The byte orders the view's binds are sorted and nested with agree with `Path`'s
    /// component order and `starts_with` for plain paths; the others are not plain (the
    /// view compares them with `Path` itself).
    #[test]
    fn byte_path_order_is_component_order() {
        let plain = [
            "/",
            "/a",
            "/a/b",
            "/a-c",
            "/a.b",
            "/a/b-c",
            "/ab",
            "/a b",
            "/a/b/c",
            "/b",
            "/\u{e9}",
            "/a\u{e9}/b",
            "/A",
            "/a/.b",
            "/a/..b",
        ];
        for x in plain {
            assert!(is_plain(x.as_bytes()), "{x}");
            for y in plain {
                let (a, b) = (Path::new(x), Path::new(y));
                assert_eq!(plain_order(a, b), a.cmp(b), "{x} vs {y}");
                assert_eq!(plain_beneath(a, b), a.starts_with(b), "{x} beneath {y}");
            }
        }
        for x in ["/a/", "/a//b", "/a/./b", "/a/../b", "relative", "", "//"] {
            assert!(!is_plain(x.as_bytes()), "{x}");
        }
    }
}
