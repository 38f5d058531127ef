//! Policy types and parsing. No side effects: nothing here touches the filesystem except
//! reading a profile file the user named.
//!
//! A profile is a TOML file with the same fields as the `run` flags; flags add to a profile.
//! Unknown keys are errors (`deny_unknown_fields`), so a typo can never silently widen or
//! narrow a policy.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

pub use crate::model::NetMode;

/// The `[env]` table of a profile.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvPolicy {
    /// Names copied from cw-exec's own environment when set there.
    #[serde(default)]
    pub expose: Vec<String>,
    /// Variables set to a fixed value (path tokens are expanded in values).
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// Forward provider-key variables (CW_, ANTHROPIC_, OPENAI_, ... prefixes) and USER, as
    /// cool-workflow does for agents. Default: off, except with `--manifest`.
    #[serde(default)]
    pub forward_provider_keys: Option<bool>,
}

/// A size: bytes as an integer, or a string with a binary suffix ("512M", "2G", "64k").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size(pub u64);

impl Size {
    pub fn parse(text: &str) -> Result<Size, String> {
        let t = text.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" | "kib" => 1 << 10,
            "m" | "mb" | "mib" => 1 << 20,
            "g" | "gb" | "gib" => 1 << 30,
            "t" | "tb" | "tib" => 1 << 40,
            other => {
                return Err(format!(
                    "{text:?}: unknown size unit {other:?} (use K, M, G or T)"
                ))
            }
        };
        let n: f64 = num
            .parse()
            .map_err(|_| format!("{text:?} is not a size (examples: 1048576, 512M, 2G)"))?;
        let bytes = n * mult as f64;
        if !(1.0..1.8e19).contains(&bytes) {
            return Err(format!("{text:?} is not a positive size"));
        }
        Ok(Size(bytes as u64))
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(0) => Err(serde::de::Error::custom("a size must be positive")),
            Raw::Int(n) => Ok(Size(n)),
            Raw::Text(t) => Size::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

/// The `[limits]` table of a profile; the same as the `run` flags of the same names.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsPolicy {
    /// Wall-clock seconds; the whole tree is killed when it expires (exit 124).
    pub timeout: Option<f64>,
    /// Memory of the whole sandbox.
    pub memory: Option<Size>,
    /// Processes (and threads) of the whole sandbox.
    pub pids: Option<u64>,
    /// CPU seconds of the whole sandbox.
    pub cpu: Option<f64>,
    /// Open files per process.
    pub nofile: Option<u64>,
    /// Largest file a process may write.
    pub fsize: Option<Size>,
    /// Total stdout+stderr relayed; past it output is dropped and the envelope says so.
    #[serde(rename = "output-limit")]
    pub output_limit: Option<Size>,
    /// Keys of this table that must bind as asked (whole sandbox for memory, pids and cpu),
    /// or the run is refused. A key not listed is defence in depth: applied with the best
    /// mechanism this host offers and attested as exactly that. Flags are always required.
    #[serde(default)]
    pub required: Vec<String>,
}

/// The keys of `[limits]` (as a profile spells them) that `limits.required` may name.
pub const LIMIT_KEYS: &[&str] = &[
    "timeout",
    "memory",
    "pids",
    "cpu",
    "nofile",
    "fsize",
    "output-limit",
];

impl LimitsPolicy {
    /// Checks every value set; `name` turns a key into how the caller spells it (a profile's
    /// `limits.pids`, a flag's `--pids`), so the error names the culprit either way.
    pub fn check(&self, name: impl Fn(&str) -> String) -> Result<(), String> {
        for (key, seconds) in [("timeout", self.timeout), ("cpu", self.cpu)] {
            if let Some(t) = seconds {
                check_timeout(t).map_err(|e| format!("{}: {e}", name(key)))?;
            }
        }
        for (key, count) in [("pids", self.pids), ("nofile", self.nofile)] {
            if count == Some(0) {
                return Err(format!("{}: must be at least 1", name(key)));
            }
        }
        for key in &self.required {
            if !LIMIT_KEYS.contains(&key.as_str()) {
                return Err(format!(
                    "{}: {key:?} is not a limit (limits are {})",
                    name("required"),
                    LIMIT_KEYS.join(", ")
                ));
            }
            if !self.is_set(key) {
                return Err(format!(
                    "{}: names {key:?}, but {} is not set",
                    name("required"),
                    name(key)
                ));
            }
        }
        Ok(())
    }

    /// Whether the limit `key` (a `LIMIT_KEYS` entry) has a value here.
    pub fn is_set(&self, key: &str) -> bool {
        match key {
            "timeout" => self.timeout.is_some(),
            "memory" => self.memory.is_some(),
            "pids" => self.pids.is_some(),
            "cpu" => self.cpu.is_some(),
            "nofile" => self.nofile.is_some(),
            "fsize" => self.fsize.is_some(),
            "output-limit" => self.output_limit.is_some(),
            _ => false,
        }
    }

    /// Whether `key` must bind as asked: listed in `required` (for a profile; flags are
    /// required by nature and the caller says so).
    pub fn requires(&self, key: &str) -> bool {
        self.required.iter().any(|k| k == key)
    }
}

/// A sandbox profile: what a bundled `policies/*.toml` or a user's profile file contains.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// One line on what the profile is for.
    #[serde(default)]
    pub description: String,
    /// Paths readable (files and directory listing) beneath.
    #[serde(default)]
    pub read: Vec<String>,
    /// Paths readable and writable (create, delete, rename, truncate) beneath.
    #[serde(default)]
    pub write: Vec<String>,
    /// Exec policy: the allowlist as a list (`exec = ["$command"]`), or a table
    /// (`[exec]` with `allow = [...]` and `native_code = false`).
    #[serde(default)]
    pub exec: ExecPolicy,
    /// Network mode; `none` when absent.
    #[serde(default)]
    pub net: Option<NetMode>,
    /// Resource limits and the timeout.
    #[serde(default)]
    pub limits: LimitsPolicy,
    /// Refuse to run unless the kernel offers at least this Landlock ABI.
    #[serde(default)]
    pub min_landlock_abi: Option<u32>,
    #[serde(default)]
    pub env: EnvPolicy,
    /// More credential paths to mask when a grant covers them without naming them (absolute,
    /// or `~/` for every home directory; `*` in the last component). Added to the built-in
    /// list (`cw-exec explain` shows the masks).
    #[serde(default)]
    pub credentials: Vec<String>,
    /// Follow symlinks in grants and `--cwd` that another user, or this run's sandbox, could
    /// have placed (default false: such a grant is refused, naming the symlink).
    #[serde(default)]
    pub follow_symlinks: bool,
    /// What HOME is inside the sandbox (it always exists): `private` (default), `read`,
    /// `write`.
    #[serde(default)]
    pub home: HomeMode,
    /// Read the caller's git identity — `~/.gitconfig` and `$XDG_CONFIG_HOME/git/config`
    /// (default `~/.config/git/config`), when present, read-only — so commits made inside
    /// have an author. Never the credential store.
    #[serde(default)]
    pub git_identity: bool,
    /// Which containment tiers the profile accepts: `auto` (default), `namespaces` (refuse
    /// rather than run weaker where user namespaces are unavailable), `landlock`.
    #[serde(default)]
    pub tier: Option<crate::model::TierChoice>,
    /// With `net = "allowlist"`: the names the egress proxy lets the sandbox reach.
    #[serde(default)]
    pub network: NetworkPolicy,
}

/// The `[network]` table of a profile (used with `net = "allowlist"`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkPolicy {
    /// `host`, `host:port`, `*.domain[:port]`, IP addresses; an entry without a port allows
    /// 80 and 443.
    #[serde(default)]
    pub allow: Vec<String>,
    /// The same forms; deny wins over allow.
    #[serde(default)]
    pub deny: Vec<String>,
    /// Names pinned to addresses (`NAME=ADDRESS`), which then count as named explicitly.
    #[serde(default)]
    pub resolve: Vec<String>,
}

/// What HOME is inside the sandbox.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HomeMode {
    /// An empty, writable directory of the run's own tmpfs at the caller's home path (the
    /// caller's files are not there; what the command writes there is gone with the run).
    /// A grant of the real home, or of paths beneath it, is bound on top.
    #[default]
    Private,
    /// The caller's real home, read-only (credential paths in it masked).
    Read,
    /// The caller's real home, read-write (credential paths masked; cw-exec's signing key
    /// protected, and runs that may write it are not signed with it).
    Write,
}

/// The `exec` key of a profile. Two spellings, the same meaning:
///
/// ```toml
/// exec = ["$command"]            # the allowlist alone
///
/// [exec]                         # or a table
/// allow = ["$command"]
/// native_code = false
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecPolicy {
    /// Exec allowlist. Absent: any readable file may be executed. Present (even empty):
    /// only these files, or files beneath these directories, may be executed.
    pub allow: Option<Vec<String>>,
    /// Whether a program may make executable memory it wrote itself (anonymous executable
    /// mappings, writable+executable mappings, mprotect to PROT_EXEC, executable memfds):
    /// what JITs (node, Java, PyPy) need, and what lets an allowed interpreter run native
    /// code that is on no allowlist. Absent: true.
    pub native_code: Option<bool>,
}

impl ExecPolicy {
    pub fn native_code(&self) -> bool {
        self.native_code.unwrap_or(true)
    }
}

impl<'de> Deserialize<'de> for ExecPolicy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            allow: Option<Vec<String>>,
            native_code: Option<bool>,
        }
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = ExecPolicy;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of paths, or a table with `allow` (a list of paths) and `native_code` (true or false)")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<ExecPolicy, A::Error> {
                let allow =
                    Vec::<String>::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))?;
                Ok(ExecPolicy {
                    allow: Some(allow),
                    native_code: None,
                })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<ExecPolicy, A::Error> {
                let t = Table::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(ExecPolicy {
                    allow: t.allow,
                    native_code: t.native_code,
                })
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// The bundled profiles, compiled into the binary so `--profile NAME` never depends on
/// where cw-exec was installed.
pub const BUNDLED: &[(&str, &str)] = &[
    // `default` is `readonly`: one file, two names.
    ("default", include_str!("../policies/readonly.toml")),
    ("readonly", include_str!("../policies/readonly.toml")),
    (
        "workspace-write",
        include_str!("../policies/workspace-write.toml"),
    ),
    ("locked-down", include_str!("../policies/locked-down.toml")),
    ("agent", include_str!("../policies/agent.toml")),
    ("ci", include_str!("../policies/ci.toml")),
    ("raxcell", include_str!("../policies/raxcell.toml")),
];

impl Profile {
    /// Parses profile text; `origin` names the file or bundled profile in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Profile, String> {
        let profile: Profile = toml::from_str(text)
            .map_err(|e| format!("profile {origin}: {}", e.to_string().trim()))?;
        profile
            .limits
            .check(|key| format!("profile {origin}: limits.{key}"))?;
        for name in &profile.env.expose {
            check_env_name(name).map_err(|e| format!("profile {origin}: env.expose: {e}"))?;
        }
        for name in profile.env.set.keys() {
            check_env_name(name).map_err(|e| format!("profile {origin}: env.set: {e}"))?;
        }
        for pattern in &profile.credentials {
            crate::credentials::check_pattern(pattern)
                .map_err(|e| format!("profile {origin}: credentials: {e}"))?;
        }
        Ok(profile)
    }

    /// Loads a bundled profile by name, or a profile file by path (anything containing
    /// `/` or ending in `.toml` is a path).
    pub fn load(name_or_path: &str) -> Result<(String, Profile), String> {
        if let Some((name, text)) = BUNDLED.iter().find(|(n, _)| *n == name_or_path) {
            return Ok((name.to_string(), Profile::parse(text, name)?));
        }
        if name_or_path.contains('/') || name_or_path.ends_with(".toml") {
            let path = Path::new(name_or_path);
            let text = crate::fsio::read_text(path, crate::fsio::MAX_PROFILE)
                .map_err(|e| format!("profile {name_or_path}: {e}"))?;
            let id = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| name_or_path.to_string());
            return Ok((id, Profile::parse(&text, name_or_path)?));
        }
        Err(format!(
            "unknown profile {name_or_path:?}: bundled profiles are {}; a profile file path must contain '/' or end in .toml",
            BUNDLED.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
        ))
    }
}

pub fn check_timeout(seconds: f64) -> Result<(), String> {
    if seconds.is_finite() && seconds > 0.0 && seconds <= 31_536_000.0 {
        Ok(())
    } else {
        Err(format!(
            "{seconds} is not a number of seconds in (0, 31536000]"
        ))
    }
}

/// An environment variable name must be non-empty and free of `=` and NUL, or execve
/// would receive a different variable than the one named.
pub fn check_env_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.contains('=') || name.contains('\0') {
        Err(format!("{name:?} is not a valid environment variable name"))
    } else {
        Ok(())
    }
}

/// Values the path tokens stand for in one run.
pub struct Tokens<'a> {
    pub cwd: &'a Path,
    pub home: &'a Path,
    pub tmp: &'a Path,
    /// The resolved command (absolute, symlinks followed), when it could be resolved.
    pub command: Option<&'a Path>,
}

impl Tokens<'_> {
    /// Expands a leading `$cwd`, `$home`, `$tmp`, `$command` or `$command_dir`, which may be
    /// followed by `/more/path`. Anything else starting with `$` is an error, so a typo is
    /// never taken as a relative path.
    pub fn expand(&self, text: &str) -> Result<String, String> {
        let Some(rest) = text.strip_prefix('$') else {
            return Ok(text.to_string());
        };
        let (name, tail) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let base: &Path = match name {
            "cwd" => self.cwd,
            "home" => self.home,
            "tmp" => self.tmp,
            "command" | "command_dir" => {
                let cmd = self.command.ok_or_else(|| {
                    format!(
                        "{text}: ${name} is used but the command could not be resolved to a file"
                    )
                })?;
                if name == "command" {
                    cmd
                } else {
                    cmd.parent().unwrap_or(Path::new("/"))
                }
            }
            _ => {
                return Err(format!(
                "{text}: unknown token ${name} (known: $cwd, $home, $tmp, $command, $command_dir)"
            ))
            }
        };
        let mut out = base.to_string_lossy().into_owned();
        if !tail.is_empty() {
            out.push_str(tail);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bundled_profile_parses() {
        for (name, text) in BUNDLED {
            Profile::parse(text, name).unwrap();
        }
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Profile::parse("reed = [\"/x\"]\n", "t.toml").unwrap_err();
        assert!(err.contains("reed"), "{err}");
    }

    #[test]
    fn unknown_env_key_is_named() {
        let err = Profile::parse("[env]\nexpsoe = []\n", "t.toml").unwrap_err();
        assert!(err.contains("expsoe"), "{err}");
    }

    #[test]
    fn bad_net_mode_is_an_error() {
        assert!(Profile::parse("net = \"lan\"\n", "t.toml").is_err());
    }

    #[test]
    fn exec_is_a_list_or_a_table() {
        let list = Profile::parse("exec = [\"/bin/sh\"]\n", "t").unwrap();
        assert_eq!(list.exec.allow, Some(vec!["/bin/sh".to_string()]));
        assert!(list.exec.native_code());
        let table =
            Profile::parse("[exec]\nallow = [\"/bin/sh\"]\nnative_code = false\n", "t").unwrap();
        assert_eq!(table.exec.allow, Some(vec!["/bin/sh".to_string()]));
        assert!(!table.exec.native_code());
        let dotted = Profile::parse("exec.native_code = false\n", "t").unwrap();
        assert_eq!(dotted.exec.allow, None);
        assert!(!dotted.exec.native_code());
        assert!(Profile::parse("", "t").unwrap().exec.native_code());
        let err = Profile::parse("[exec]\nnative-code = false\n", "t.toml").unwrap_err();
        assert!(
            err.contains("native-code") && err.contains("native_code"),
            "{err}"
        );
        let err = Profile::parse("[exec]\nnative_code = \"no\"\n", "t.toml").unwrap_err();
        assert!(err.contains("native_code") || err.contains("bool"), "{err}");
        assert!(Profile::parse("exec = \"/bin/sh\"\n", "t").is_err());
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(Size::parse("512M").unwrap().0, 512 << 20);
        assert_eq!(Size::parse("2G").unwrap().0, 2 << 30);
        assert_eq!(Size::parse("1.5k").unwrap().0, 1536);
        assert_eq!(Size::parse("4096").unwrap().0, 4096);
        assert!(Size::parse("12Q").is_err());
        assert!(Size::parse("0").is_err());
        let p = Profile::parse(
            "[limits]\nmemory = \"1G\"\npids = 10\noutput-limit = 1024\n",
            "t",
        )
        .unwrap();
        assert_eq!(p.limits.memory, Some(Size(1 << 30)));
        assert!(Profile::parse("[limits]\nmemroy = 1\n", "t")
            .unwrap_err()
            .contains("memroy"));
    }

    #[test]
    fn required_limits_must_be_known_and_set() {
        let p = Profile::parse(
            "[limits]\nmemory = \"2G\"\npids = 10\nrequired = [\"memory\"]\n",
            "t",
        )
        .unwrap();
        assert!(p.limits.requires("memory") && !p.limits.requires("pids"));
        let err = Profile::parse("[limits]\nrequired = [\"memroy\"]\n", "t").unwrap_err();
        assert!(
            err.contains("limits.required") && err.contains("memroy"),
            "{err}"
        );
        let err = Profile::parse("[limits]\nrequired = [\"cpu\"]\n", "t").unwrap_err();
        assert!(err.contains("limits.cpu is not set"), "{err}");
        assert!(Profile::parse("[limits]\nrequired = \"memory\"\n", "t").is_err());
    }

    #[test]
    fn tokens_compose() {
        let t = Tokens {
            cwd: Path::new("/w"),
            home: Path::new("/h"),
            tmp: Path::new("/t"),
            command: Some(Path::new("/usr/bin/x")),
        };
        assert_eq!(t.expand("$cwd/target").unwrap(), "/w/target");
        assert_eq!(t.expand("$tmp").unwrap(), "/t");
        assert_eq!(t.expand("$command_dir").unwrap(), "/usr/bin");
        assert_eq!(t.expand("/abs").unwrap(), "/abs");
        assert!(t.expand("$cwdx").unwrap_err().contains("$cwdx"));
    }
}
