//! The front end's configuration: the runtime name it answers to, the image aliases that
//! mean "the host runtime", the profile containers run under, and whether (and where) it
//! honours Common Fabric's CFC sidecars. A TOML file; without one, the defaults below.
//!
//! Where: `$CW_EXEC_DOCKER_CONFIG` (an absolute path), else `docker.toml` in cw-exec's own
//! configuration directory — the signing key's (`/etc/cw-exec` for root,
//! `$XDG_CONFIG_HOME/cw-exec` or `~/.config/cw-exec` for others), which no sandbox may see or
//! change. The file must belong to the caller or root and be writable by nobody else.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The runtime name when the configuration names none (never `runsc-cfc`: the harness
/// records the runtime as the posture it ran under).
pub const DEFAULT_RUNTIME: &str = "cw-exec";
/// The image alias for the host runtime when the configuration names none.
pub const DEFAULT_IMAGE: &str = "cw-exec:host";
/// The bundled profile containers run under when the configuration names none.
pub const DEFAULT_PROFILE: &str = "docker";
/// The environment variable naming another configuration file.
pub const CONFIG_ENV: &str = "CW_EXEC_DOCKER_CONFIG";
/// The largest configuration, label policy or label store cw-exec reads.
pub const MAX_FILE: u64 = 1 << 20;

/// The file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    runtime: Option<String>,
    images: Option<Vec<String>>,
    profile: Option<String>,
    export_dir: Option<PathBuf>,
    cfc: Option<CfcFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CfcFile {
    context_dir: PathBuf,
    result_dir: PathBuf,
    label_policy: Option<PathBuf>,
    label_store: Option<PathBuf>,
}

/// The configuration in force.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where it was read from (None: no file, the defaults).
    pub file: Option<PathBuf>,
    pub runtime: String,
    pub images: Vec<String>,
    /// `--profile` of every container (bundled name or file).
    pub profile: String,
    /// A directory that also receives each run's envelope as `<id>.json` (kept after `rm`).
    pub export_dir: Option<PathBuf>,
    pub cfc: Option<Cfc>,
}

/// Where the CFC sidecars are, when the front end honours them.
#[derive(Clone, Debug)]
pub struct Cfc {
    pub context_dir: PathBuf,
    pub result_dir: PathBuf,
    /// Labels of sandbox paths (see `cfc::LabelPolicy`); None: everything unlabelled.
    pub label_policy: Option<PathBuf>,
    /// The labels writable roots took in earlier runs (outside every mount).
    pub label_store: PathBuf,
}

/// Characters the harness accepts in a runtime argument; anything else makes it refuse.
fn harness_safe(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._/=:,-".contains(c))
}

/// The directory cw-exec keeps its own configuration in (the signing key's).
pub fn config_dir() -> Option<PathBuf> {
    crate::signing::key_dir(nix::unistd::getuid().as_raw())
}

/// Where the configuration is read from.
pub fn location() -> Result<Option<PathBuf>, String> {
    if let Some(p) = std::env::var_os(CONFIG_ENV) {
        let p = PathBuf::from(p);
        if !p.is_absolute() {
            return Err(format!(
                "{CONFIG_ENV}={}: must be an absolute path",
                p.display()
            ));
        }
        return Ok(Some(p));
    }
    Ok(config_dir().map(|d| d.join("docker.toml")))
}

/// Loads the configuration (the defaults when there is no file at the default place; a
/// file named by `$CW_EXEC_DOCKER_CONFIG` must exist).
pub fn load() -> Result<Config, String> {
    let named = std::env::var_os(CONFIG_ENV).is_some();
    let path = location()?;
    let text = match &path {
        Some(p) if named || std::fs::symlink_metadata(p).is_ok() => Some(read_trusted(p)?),
        _ => None,
    };
    let file: File = match &text {
        Some(t) => toml::from_str(t).map_err(|e| {
            format!(
                "{}: {}",
                path.as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                e.to_string().trim()
            )
        })?,
        None => File::default(),
    };
    let origin = path
        .as_ref()
        .filter(|_| text.is_some())
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "the default configuration".into());
    let runtime = file.runtime.unwrap_or_else(|| DEFAULT_RUNTIME.into());
    if !harness_safe(&runtime) || runtime.contains('/') {
        return Err(format!(
            "{origin}: runtime {runtime:?}: use letters, digits, '.', '_' or '-'"
        ));
    }
    let images = file.images.unwrap_or_else(|| vec![DEFAULT_IMAGE.into()]);
    if images.is_empty() || images.iter().any(|i| i.is_empty()) {
        return Err(format!("{origin}: images: at least one non-empty alias"));
    }
    let cfc = match file.cfc {
        None => None,
        Some(c) => {
            for (key, dir) in [
                ("context_dir", &c.context_dir),
                ("result_dir", &c.result_dir),
            ] {
                let text = dir.to_string_lossy();
                if !dir.is_absolute() || !harness_safe(&text) {
                    return Err(format!(
                        "{origin}: cfc.{key} {text:?}: must be an absolute path of the characters A-Z a-z 0-9 . _ / = : , - (the harness refuses any other in a runtime argument)"
                    ));
                }
            }
            for (key, p) in [
                ("label_policy", c.label_policy.as_ref()),
                ("label_store", c.label_store.as_ref()),
            ] {
                if p.is_some_and(|p| !p.is_absolute()) {
                    return Err(format!("{origin}: cfc.{key}: must be an absolute path"));
                }
            }
            let label_store = match c.label_store {
                Some(s) => s,
                None => config_dir()
                    .map(|d| d.join("docker-labels.json"))
                    .ok_or_else(|| {
                        format!("{origin}: cfc.label_store: no configuration directory to keep it in; name one")
                    })?,
            };
            Some(Cfc {
                context_dir: c.context_dir,
                result_dir: c.result_dir,
                label_policy: c.label_policy,
                label_store,
            })
        }
    };
    if file.export_dir.as_ref().is_some_and(|d| !d.is_absolute()) {
        return Err(format!("{origin}: export_dir: must be an absolute path"));
    }
    Ok(Config {
        file: path.filter(|_| text.is_some()),
        runtime,
        images,
        profile: file.profile.unwrap_or_else(|| DEFAULT_PROFILE.into()),
        export_dir: file.export_dir,
        cfc,
    })
}

impl Config {
    /// The `runtimeArgs` `info` lists: the CFC directories, only when they are honoured.
    pub fn runtime_args(&self) -> Vec<String> {
        match &self.cfc {
            Some(c) => vec![
                format!("--cfc-invocation-context-dir={}", c.context_dir.display()),
                format!("--cfc-result-dir={}", c.result_dir.display()),
            ],
            None => vec![],
        }
    }

    /// Paths no container may see or change: the configuration itself and what it names.
    pub fn protected(&self) -> Vec<(PathBuf, String)> {
        let mut out = vec![];
        if let Some(f) = &self.file {
            out.push((f.clone(), "the docker front end's configuration".into()));
        }
        if let Some(c) = &self.cfc {
            out.push((c.context_dir.clone(), "the CFC invocation contexts".into()));
            out.push((c.result_dir.clone(), "the CFC results".into()));
            out.push((c.label_store.clone(), "the CFC label store".into()));
            if let Some(p) = &c.label_policy {
                out.push((p.clone(), "the CFC label policy".into()));
            }
        }
        if let Some(d) = &self.export_dir {
            out.push((d.clone(), "the exported envelopes".into()));
        }
        out
    }
}

/// Reads a file cw-exec trusts for its own decisions: a regular file (never a FIFO, never
/// blocking), of the caller or root, that nobody else may write.
pub fn read_trusted(path: &Path) -> Result<String, String> {
    let f = crate::fsio::open_regular(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let meta = f
        .metadata()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let me = nix::unistd::geteuid().as_raw();
    if (meta.uid() != me && meta.uid() != 0) || meta.mode() & 0o022 != 0 {
        return Err(format!(
            "{}: not trusted: it must belong to uid {me} or root and be writable by nobody else (owner uid {}, mode {:o})",
            path.display(),
            meta.uid(),
            meta.mode() & 0o7777
        ));
    }
    let bytes =
        crate::fsio::read_limited(f, MAX_FILE).map_err(|e| format!("{}: {e}", path.display()))?;
    String::from_utf8(bytes).map_err(|_| format!("{}: not UTF-8 text", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn harness_safe_is_the_harness_character_set() {
        assert!(harness_safe("/run/cf/ctx-1"));
        assert!(harness_safe("a.b_c=d:e,f-g"));
        assert!(!harness_safe("/run/cf dir"));
        assert!(!harness_safe("/run/é"));
        assert!(!harness_safe(""));
    }
}
