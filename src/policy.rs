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

/// The largest size any limit takes: 1 EiB (1048576T), far past any machine's memory or
/// disk, and well inside what the kernel's counters and rlimits hold.
pub const MAX_SIZE: u64 = 1 << 60;

impl Size {
    /// The number of bytes a size's text states (K/M/G/T are binary), before any range
    /// check: a negative or huge value is kept, for the range check to name.
    pub fn bytes_in(text: &str) -> Result<f64, String> {
        let t = text.trim();
        let (sign, body) = match t.strip_prefix('-') {
            Some(rest) => (-1.0, rest),
            None => (1.0, t.strip_prefix('+').unwrap_or(t)),
        };
        let split = body
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(body.len());
        let (num, unit) = body.split_at(split);
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
        Ok(sign * n * mult as f64)
    }
}

/// Bytes in the largest binary unit that states them exactly ("8M", "1048576T", "1536").
pub fn human_size(bytes: u64) -> String {
    for (shift, unit) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] {
        if bytes >= 1 << shift && bytes % (1 << shift) == 0 {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// What a limit counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Measure {
    /// Bytes: a `Size`.
    Bytes,
    /// A whole number (processes, descriptors).
    Count,
}

/// The valid range of one limit. Every value — a flag, a profile key, a cool-workflow
/// policy's — is checked against it before anything starts, and a value outside it is an
/// error naming the flag or key and the range (exit 125), never a set-up failure later.
/// (`timeout` and `cpu` are seconds, checked by `check_timeout`.)
#[derive(Debug)]
pub struct LimitRange {
    /// The key as a profile spells it; the flag is `--KEY`.
    pub key: &'static str,
    pub measure: Measure,
    pub min: u64,
    pub max: u64,
    /// Why the range is what it is.
    pub why: &'static str,
}

/// The valid range of each size and count limit (README "Limits"; docs/containment.md).
pub const LIMIT_RANGES: &[LimitRange] = &[
    LimitRange {
        key: "memory",
        measure: Measure::Bytes,
        min: 8 << 20,
        max: MAX_SIZE,
        why: "below 8M the sandbox's own set-up (its init and the read-back, before the command starts) can be OOM-killed",
    },
    LimitRange {
        key: "pids",
        measure: Measure::Count,
        min: 2,
        max: 4_194_304,
        why: "the sandbox's init and the command are two processes; 4194304 is the kernel's PID_MAX_LIMIT",
    },
    LimitRange {
        key: "nofile",
        measure: Measure::Count,
        min: 16,
        max: 1_048_576,
        why: "the read-back inside the sandbox and the dynamic loader need descriptors besides 0, 1 and 2; 1048576 is the kernel's default fs.nr_open, and no more than cw-exec's own hard limit (ulimit -Hn) can bind",
    },
    LimitRange {
        key: "fsize",
        measure: Measure::Bytes,
        min: 1,
        max: MAX_SIZE,
        why: "a size in bytes",
    },
    LimitRange {
        key: "output-limit",
        measure: Measure::Bytes,
        min: 1,
        max: MAX_SIZE,
        why: "a size in bytes",
    },
];

impl LimitRange {
    /// The range of `key` (a `LIMIT_RANGES` key).
    pub fn of(key: &str) -> &'static LimitRange {
        LIMIT_RANGES
            .iter()
            .find(|r| r.key == key)
            .expect("a limit with a range")
    }

    fn show(&self, n: u64) -> String {
        match self.measure {
            Measure::Bytes => human_size(n),
            Measure::Count => n.to_string(),
        }
    }

    /// "must be between 8M and 1048576T: below 8M ..."
    pub fn describe(&self) -> String {
        let bytes = match self.measure {
            Measure::Bytes if self.min != 1 => format!(" ({} to {} bytes)", self.min, self.max),
            Measure::Bytes => " bytes".to_string(),
            Measure::Count => String::new(),
        };
        format!(
            "must be between {} and {}{bytes}: {}",
            self.show(self.min),
            self.show(self.max),
            self.why
        )
    }

    /// Checks a value (bytes or a count, before rounding to a whole number of bytes).
    pub fn check(&self, value: f64, shown: &str) -> Result<u64, String> {
        if value.is_finite() && value >= self.min as f64 && value <= self.max as f64 {
            Ok(value as u64)
        } else {
            Err(format!("{shown} is out of range: {}", self.describe()))
        }
    }

    /// Parses and checks a value's text: a size for a byte limit, a whole number for a count.
    pub fn parse(&self, text: &str) -> Result<u64, String> {
        let value = match self.measure {
            Measure::Bytes => Size::bytes_in(text)?,
            Measure::Count => {
                let t = text.trim();
                match t.parse::<i128>() {
                    Ok(n) => n as f64,
                    // All digits but too long for i128: out of range, not malformed.
                    Err(_)
                        if t.strip_prefix('-')
                            .unwrap_or(t)
                            .bytes()
                            .all(|b| b.is_ascii_digit())
                            && !t.is_empty() =>
                    {
                        f64::INFINITY
                    }
                    Err(_) => return Err(format!("{text:?} is not a whole number")),
                }
            }
        };
        self.check(value, text.trim())
    }
}

/// A clap value parser for the flag of a size limit (`--memory`, `--fsize`, `--output-limit`):
/// its text parsed and range-checked, so the error names the flag (clap adds it) and range.
pub fn size_flag(key: &'static str) -> impl Fn(&str) -> Result<Size, String> + Clone + Send + Sync {
    move |text| LimitRange::of(key).parse(text).map(Size)
}

/// A clap value parser for the flag of a count limit (`--pids`, `--nofile`).
pub fn count_flag(key: &'static str) -> impl Fn(&str) -> Result<u64, String> + Clone + Send + Sync {
    move |text| LimitRange::of(key).parse(text)
}

/// Deserializes a profile's size limit: an integer (bytes), a float, or a string with a
/// unit, range-checked with the key named.
fn de_size<'de, D: serde::Deserializer<'de>>(
    d: D,
    key: &'static str,
) -> Result<Option<Size>, D::Error> {
    de_limit(d, key).map(|n| n.map(Size))
}

fn de_limit<'de, D: serde::Deserializer<'de>>(
    d: D,
    key: &'static str,
) -> Result<Option<u64>, D::Error> {
    struct Visit(&'static LimitRange);
    impl serde::de::Visitor<'_> for Visit {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            match self.0.measure {
                Measure::Bytes => write!(
                    f,
                    "limits.{}: a size (bytes, or a string such as \"512M\"), {}",
                    self.0.key,
                    self.0.describe()
                ),
                Measure::Count => write!(
                    f,
                    "limits.{}: a whole number, {}",
                    self.0.key,
                    self.0.describe()
                ),
            }
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<u64, E> {
            self.visit_f64(v as f64)
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<u64, E> {
            self.visit_f64(v as f64)
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<u64, E> {
            if self.0.measure == Measure::Count && v.fract() != 0.0 {
                return Err(E::custom(format!(
                    "limits.{}: {v} is not a whole number",
                    self.0.key
                )));
            }
            self.0
                .check(v, &format!("{v}"))
                .map_err(|e| E::custom(format!("limits.{}: {e}", self.0.key)))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<u64, E> {
            if self.0.measure == Measure::Count {
                return Err(E::invalid_type(serde::de::Unexpected::Str(v), &self));
            }
            self.0
                .parse(v)
                .map_err(|e| E::custom(format!("limits.{}: {e}", self.0.key)))
        }
    }
    d.deserialize_any(Visit(LimitRange::of(key))).map(Some)
}

fn de_memory<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Size>, D::Error> {
    de_size(d, "memory")
}
fn de_fsize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Size>, D::Error> {
    de_size(d, "fsize")
}
fn de_output_limit<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Size>, D::Error> {
    de_size(d, "output-limit")
}
fn de_pids<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    de_limit(d, "pids")
}
fn de_nofile<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    de_limit(d, "nofile")
}

/// The `[limits]` table of a profile; the same as the `run` flags of the same names.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsPolicy {
    /// Wall-clock seconds; the whole tree is killed when it expires (exit 124).
    pub timeout: Option<f64>,
    /// Memory of the whole sandbox.
    #[serde(default, deserialize_with = "de_memory")]
    pub memory: Option<Size>,
    /// Processes (and threads) of the whole sandbox.
    #[serde(default, deserialize_with = "de_pids")]
    pub pids: Option<u64>,
    /// CPU seconds of the whole sandbox.
    pub cpu: Option<f64>,
    /// Open files per process.
    #[serde(default, deserialize_with = "de_nofile")]
    pub nofile: Option<u64>,
    /// Largest file a process may write.
    #[serde(default, deserialize_with = "de_fsize")]
    pub fsize: Option<Size>,
    /// Total stdout+stderr relayed; past it output is dropped and the envelope says so.
    #[serde(rename = "output-limit", default, deserialize_with = "de_output_limit")]
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
        for (key, value) in [
            ("memory", self.memory.map(|s| s.0)),
            ("pids", self.pids),
            ("nofile", self.nofile),
            ("fsize", self.fsize.map(|s| s.0)),
            ("output-limit", self.output_limit.map(|s| s.0)),
        ] {
            if let Some(v) = value {
                let range = LimitRange::of(key);
                range
                    .check(v as f64, &range.show(v))
                    .map_err(|e| format!("{}: {e}", name(key)))?;
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
    /// Host paths bound at other paths in the sandbox: `"HOST:SANDBOX"` (read-write) or
    /// `"HOST:SANDBOX:ro"`; path tokens in HOST. The same as `--bind`.
    #[serde(default)]
    pub bind: Vec<String>,
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
    ("docker", include_str!("../policies/docker.toml")),
];

impl Profile {
    /// Parses profile text; `origin` names the file or bundled profile in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Profile, String> {
        let profile: Profile = toml::from_str(text)
            .map_err(|e| format!("profile {origin}: {}", e.to_string().trim()))?;
        profile
            .limits
            .check(|key| format!("profile {origin}: limits.{key}"))?;
        let lists = [
            ("read", Some(&profile.read)),
            ("write", Some(&profile.write)),
            ("exec", profile.exec.allow.as_ref()),
        ];
        for (key, list) in lists {
            if list.is_some_and(|l| l.iter().any(|p| p.is_empty())) {
                return Err(format!(
                    "profile {origin}: {key}: an empty path names nothing (for the working directory, say \"$cwd\")"
                ));
            }
        }
        for name in &profile.env.expose {
            check_env_name(name).map_err(|e| format!("profile {origin}: env.expose: {e}"))?;
        }
        for name in profile.env.set.keys() {
            check_env_name(name).map_err(|e| format!("profile {origin}: env.set: {e}"))?;
        }
        for spec in &profile.bind {
            crate::model::BindSpec::parse(spec)
                .map_err(|e| format!("profile {origin}: bind: {e}"))?;
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
        if let Some(name) = ["default", "readonly"].iter().find(|n| **n == name_or_path) {
            return Ok((name.to_string(), Profile::readonly()));
        }
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

impl Profile {
    /// `readonly` (also `default`, the profile of every run without `--profile`), exactly as
    /// `Profile::parse` makes it of policies/readonly.toml, built without the TOML parser: the
    /// parse and its first use of the parser's code cost every default run 0.05–0.09 ms. The
    /// unit test `the_built_readonly_profile_is_the_parsed_one` fails if the file and this
    /// differ in anything (every field, compared through `Debug`).
    fn readonly() -> Profile {
        Profile {
            description: "Deny by default: read the working directory; no writes outside the private tmp; no network; scrubbed env. Also the default profile.".into(),
            read: vec!["$cwd".into()],
            write: vec!["$tmp".into()],
            net: Some(NetMode::None),
            limits: LimitsPolicy {
                memory: Some(Size(2 << 30)),
                pids: Some(256),
                nofile: Some(1024),
                ..LimitsPolicy::default()
            },
            ..Profile::default()
        }
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
        // Paths here are text: a token standing for a path that is not UTF-8 cannot be
        // expanded faithfully, and a lossy spelling would name another path (or none).
        let mut out = base
            .to_str()
            .ok_or_else(|| {
                format!(
                    "{text}: ${name} is {}, which is not valid UTF-8, and paths in profiles and flags are text: run from (or --cwd) a directory whose path is UTF-8",
                    base.to_string_lossy()
                )
            })?
            .to_string();
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
        let size = |t: &str| Size::bytes_in(t).unwrap();
        assert_eq!(size("512M"), (512u64 << 20) as f64);
        assert_eq!(size("2G"), (2u64 << 30) as f64);
        assert_eq!(size("1.5k"), 1536.0);
        assert_eq!(size("4096"), 4096.0);
        assert_eq!(size("-5"), -5.0);
        assert!(Size::bytes_in("12Q").is_err());
        assert!(Size::bytes_in("lots").is_err());
        assert_eq!(human_size(8 << 20), "8M");
        assert_eq!(human_size(MAX_SIZE), "1048576T");
        assert_eq!(human_size(1536), "1536");
        let p = Profile::parse(
            "[limits]\nmemory = \"1G\"\npids = 10\noutput-limit = 1024\n",
            "t",
        )
        .unwrap();
        assert_eq!(p.limits.memory, Some(Size(1 << 30)));
        assert_eq!(p.limits.pids, Some(10));
        assert!(Profile::parse("[limits]\nmemroy = 1\n", "t")
            .unwrap_err()
            .contains("memroy"));
    }

    #[test]
    fn every_limit_has_a_range_named_in_its_error() {
        let memory = LimitRange::of("memory");
        assert_eq!(memory.parse("8M").unwrap(), 8 << 20);
        for bad in ["1", "1M", "-5", "0", "99999999999T", "2000000T"] {
            let e = memory.parse(bad).unwrap_err();
            assert!(
                e.contains("out of range") && e.contains("between 8M and 1048576T"),
                "{bad}: {e}"
            );
        }
        let pids = LimitRange::of("pids");
        assert_eq!(pids.parse("2").unwrap(), 2);
        for bad in [
            "1",
            "0",
            "-5",
            "4194305",
            "99999999999999999999999999999999999999999999",
        ] {
            let e = pids.parse(bad).unwrap_err();
            assert!(e.contains("between 2 and 4194304"), "{bad}: {e}");
        }
        assert!(pids
            .parse("2.5")
            .unwrap_err()
            .contains("not a whole number"));
        let nofile = LimitRange::of("nofile");
        assert!(nofile
            .parse("3")
            .unwrap_err()
            .contains("between 16 and 1048576"));
        assert!(LimitRange::of("fsize").parse("0").is_err());
        assert_eq!(LimitRange::of("output-limit").parse("1").unwrap(), 1);
        for (text, needle) in [
            (
                "[limits]\nmemory = -5\n",
                "limits.memory: -5 is out of range",
            ),
            (
                "[limits]\nmemory = \"1\"\n",
                "limits.memory: 1 is out of range",
            ),
            ("[limits]\nmemory = 1\n", "limits.memory: 1 is out of range"),
            ("[limits]\npids = 1\n", "limits.pids: 1 is out of range"),
            ("[limits]\npids = -1\n", "limits.pids: -1 is out of range"),
            (
                "[limits]\npids = 2.5\n",
                "limits.pids: 2.5 is not a whole number",
            ),
            (
                "[limits]\nnofile = 99999999999\n",
                "limits.nofile: 99999999999 is out of range",
            ),
            ("[limits]\nfsize = true\n", "limits.fsize: a size"),
            (
                "[limits]\noutput-limit = 0\n",
                "limits.output-limit: 0 is out of range",
            ),
        ] {
            let e = Profile::parse(text, "t").unwrap_err();
            assert!(e.contains(needle), "{text}: {e}");
            assert!(!e.contains("untagged"), "{text}: {e}");
        }
        let flags = LimitsPolicy {
            pids: Some(1),
            ..Default::default()
        };
        let e = flags.check(|k| format!("--{k}")).unwrap_err();
        assert!(e.starts_with("--pids: 1 is out of range"), "{e}");
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
        use std::os::unix::ffi::OsStrExt;
        let odd = Path::new(std::ffi::OsStr::from_bytes(b"/w/d\xff"));
        let t = Tokens { cwd: odd, ..t };
        let e = t.expand("$cwd").unwrap_err();
        assert!(e.contains("not valid UTF-8") && e.contains("$cwd"), "{e}");
        assert_eq!(t.expand("$tmp").unwrap(), "/t");
    }

    /// The bundled `readonly` (and `default`) profile built in code is the one its file
    /// parses to, field by field.
    #[test]
    fn the_built_readonly_profile_is_the_parsed_one() {
        for name in ["default", "readonly"] {
            let text = BUNDLED.iter().find(|(n, _)| *n == name).unwrap().1;
            let parsed = Profile::parse(text, name).unwrap();
            let (id, loaded) = Profile::load(name).unwrap();
            assert_eq!(id, name);
            assert_eq!(format!("{loaded:#?}"), format!("{parsed:#?}"), "{name}");
        }
    }
}
