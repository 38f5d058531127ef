//! Where an envelope goes: `--envelope FILE|-` and a cool-workflow worker's
//! `<logsDir>/cw-exec-attestation.json`. Opened before the sandbox starts (an unusable
//! destination is a refusal, not a lost attestation), written after it has ended, through
//! descriptors held since before it started (see `fsio`), so nothing the sandbox did to the
//! path in between is followed. A destination that cannot be written makes cw-exec exit 125.

use std::ffi::OsString;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::fsio::{self, Dir};
use crate::kernel::pathfd;

/// The attestation's file name in a worker's logs directory.
pub const ATTESTATION_FILE: &str = "cw-exec-attestation.json";

pub enum Sink {
    /// `--envelope -`.
    Stderr,
    /// A descriptor the caller passed (`/dev/fd/N`, `/dev/stdout`, `/dev/stderr`), or a
    /// FIFO or terminal it named outside the write set: opened at start, written in place.
    Stream { shown: String, file: File },
    /// A regular file: written beside its name in the directory held open since start, then
    /// renamed over it (whatever is at the name then, a symlink included, is replaced).
    File {
        dir: Dir,
        name: OsString,
        shown: String,
    },
}

/// The descriptor a descriptor path names: `/dev/stdout`, `/dev/stderr`, `/dev/fd/N`,
/// `/proc/self/fd/N`, `/proc/thread-self/fd/N`.
fn descriptor_number(target: &str) -> Option<i32> {
    match target {
        "/dev/stdout" => return Some(1),
        "/dev/stderr" => return Some(2),
        _ => {}
    }
    ["/dev/fd/", "/proc/self/fd/", "/proc/thread-self/fd/"]
        .iter()
        .find_map(|p| target.strip_prefix(p))
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.parse().ok())
}

/// Resolves a directory once, before the sandbox starts, and holds it. Symlinks on the way
/// are the caller's spelling and are followed (`pathfd::resolve`) only when nobody but root
/// and the caller could have placed them, and not when one lies inside `write_roots` (the
/// write grants of this run, where a sandbox of this or an earlier run could have planted
/// it) and leads out of that grant: the same rule as for grants.
pub fn open_dir(path: &Path, write_roots: &[PathBuf]) -> std::io::Result<Dir> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()?.join(path)
    };
    let held = pathfd::resolve(&abs)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", abs.display())))?;
    let uid = nix::unistd::getuid().as_raw();
    for link in &held.links {
        if let Some(why) = link.untrusted_because(uid, write_roots, &held.path) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "{}: resolves through the symlink {} -> {}, and {why}; cw-exec does not follow it (name the target instead)",
                    abs.display(),
                    link.at.display(),
                    link.target.display()
                ),
            ));
        }
    }
    Dir::new(held.fd, held.path)
}

fn inside(path: &Path, set: &[PathBuf]) -> bool {
    set.iter().any(|w| path.starts_with(w))
}

impl Sink {
    /// `--envelope TARGET`. `untrusted` is the write set of the run: symlinks inside it are
    /// not followed on the way to the directory, and a FIFO there is replaced, not written.
    pub fn envelope(target: &str, untrusted: &[PathBuf]) -> Result<Sink, String> {
        let bad = |e: &dyn std::fmt::Display| format!("--envelope {target}: {e}");
        if target == "-" {
            return Ok(Sink::Stderr);
        }
        if let Some(n) = descriptor_number(target) {
            let fd = crate::sys::dup_inherited_fd(n)
                .map_err(|e| bad(&format!("descriptor {n}: {e}")))?;
            let fl = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETFL)
                .map_err(|e| bad(&format!("descriptor {n}: {e}")))?;
            if fl & libc::O_ACCMODE == libc::O_RDONLY {
                return Err(bad(&format!("descriptor {n} is not open for writing")));
            }
            return Ok(Sink::Stream {
                shown: target.to_string(),
                file: File::from(fd),
            });
        }
        let path = Path::new(target);
        let name = path
            .file_name()
            .ok_or_else(|| bad(&"names no file"))?
            .to_os_string();
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let dir = open_dir(parent, untrusted).map_err(|e| bad(&e))?;
        let shown = dir.path().join(&name).display().to_string();
        match dir.lstat(&name).map_err(|e| bad(&e))? {
            Some(st) if fsio::is_dir(&st) => Err(bad(&"is a directory")),
            Some(st) if fsio::is_stream(&st) && !inside(dir.path(), untrusted) => {
                let file = dir.open_stream(&name).map_err(|e| bad(&e))?;
                Ok(Sink::Stream { shown, file })
            }
            Some(st)
                if !(fsio::is_regular(&st) || fsio::is_symlink(&st) || fsio::is_stream(&st)) =>
            {
                Err(bad(&format!(
                    "is {}; the envelope goes to a regular file, a FIFO or a terminal",
                    fsio::kind_of(&st)
                )))
            }
            _ => {
                dir.writable()
                    .map_err(|e| bad(&format!("cannot write in {}: {e}", dir.path().display())))?;
                Ok(Sink::File { dir, name, shown })
            }
        }
    }

    /// A worker's attestation in its logs directory, which is created if missing. The logs
    /// directory itself must not be a symlink.
    pub fn attestation(logs_dir: &Path, untrusted: &[PathBuf]) -> Result<Sink, String> {
        let bad = |e: &dyn std::fmt::Display| format!("logs directory {}: {e}", logs_dir.display());
        let leaf = logs_dir
            .file_name()
            .ok_or_else(|| bad(&"names no directory"))?;
        let parent = match logs_dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let dir = open_dir(parent, untrusted)
            .and_then(|d| d.child_dir(leaf, true))
            .map_err(|e| bad(&e))?;
        dir.writable()
            .map_err(|e| bad(&format!("cannot write in it: {e}")))?;
        let name = OsString::from(ATTESTATION_FILE);
        let shown = dir.path().join(&name).display().to_string();
        Ok(Sink::File { dir, name, shown })
    }

    fn write(self, text: &[u8]) -> Result<(), String> {
        match self {
            Sink::Stderr => std::io::stderr()
                .write_all(text)
                .map_err(|e| format!("stderr: {e}")),
            Sink::Stream { shown, mut file } => {
                file.write_all(text).map_err(|e| format!("{shown}: {e}"))
            }
            Sink::File { dir, name, shown } => {
                let Err(e) = dir
                    .still_at_path()
                    .and_then(|()| dir.replace_file(&name, text))
                else {
                    return Ok(());
                };
                // Whatever is at the name now is not cw-exec's: remove it, or say so.
                let removed = match dir.still_at_path() {
                    Ok(()) => dir.remove(&name),
                    Err(_) => dir.remove_at_path(&name),
                };
                let after = match removed {
                    Ok(true) => format!("removed what was at {shown}"),
                    Ok(false) => format!("nothing is at {shown}"),
                    Err(r) => format!(
                        "COULD NOT remove what is at {shown} ({r}): whatever is there was not written by cw-exec"
                    ),
                };
                Err(format!("{shown}: {e}; {after}"))
            }
        }
    }
}

/// Opens every destination; each one that cannot be opened is an error message.
pub fn open(
    envelope: Option<&str>,
    logs_dir: Option<&Path>,
    untrusted: &[PathBuf],
) -> (Vec<Sink>, Vec<String>) {
    let mut sinks = vec![];
    let mut errors = vec![];
    for opened in [
        envelope.map(|t| Sink::envelope(t, untrusted)),
        logs_dir.map(|d| Sink::attestation(d, untrusted)),
    ]
    .into_iter()
    .flatten()
    {
        match opened {
            Ok(s) => sinks.push(s),
            Err(e) => errors.push(e),
        }
    }
    (sinks, errors)
}

/// Writes the envelope to every sink. False (each failure said on stderr) if any failed:
/// cw-exec then exits 125, never the command's code.
#[must_use]
pub fn write_all(sinks: Vec<Sink>, envelope: &serde_json::Value) -> bool {
    let mut text = serde_json::to_string_pretty(envelope).unwrap_or_default();
    text.push('\n');
    let mut ok = true;
    for sink in sinks {
        if let Err(e) = sink.write(text.as_bytes()) {
            // Best effort: this stderr may be the destination that just failed.
            let _ = writeln!(
                std::io::stderr(),
                "cw-exec: the envelope could not be written: {e}"
            );
            ok = false;
        }
    }
    ok
}
