//! The front end's private state: one directory per container, named by its 64-hex id,
//! in `$XDG_RUNTIME_DIR/cw-exec/docker` (or `/run/cw-exec/docker` for root without one).
//! Every directory of it is created mode 0700 and checked (a directory, not a symlink,
//! owned by the caller, no group or other bits) each time it is opened; files in it are
//! read and replaced through directory descriptors, never following a symlink. No sandbox
//! can see or write it: the plan refuses any grant or bind that reaches it and masks it where
//! a read grant covers it.
//!
//! An entry holds `spec.json` (what `create` validated), `lock` (held by a running `start`,
//! so `wait` can wait for it and `rm -f` knows it runs), `start.json` (that start's pid),
//! `status.json` (how the run ended), `envelope.json` (its signed attestation) and
//! `cfc-result.json` (the CFC result, if one was written).

use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, Flock, FlockArg, OFlag};
use nix::sys::stat::{fstat, mkdirat, FileStat, Mode};

use crate::fsio::{self, Dir};

/// The file names of an entry.
pub const SPEC: &str = "spec.json";
pub const LOCK: &str = "lock";
pub const START: &str = "start.json";
pub const STATUS: &str = "status.json";
pub const ENVELOPE: &str = "envelope.json";
pub const CFC_RESULT: &str = "cfc-result.json";

/// The largest state file read (an envelope with its attestation is some 30 KiB).
const MAX_STATE_FILE: u64 = 4 << 20;

/// Where the state lives for this caller.
pub fn location() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        if dir.is_absolute() {
            return Ok(dir.join("cw-exec").join("docker"));
        }
    }
    if nix::unistd::geteuid().is_root() {
        return Ok(PathBuf::from("/run/cw-exec/docker"));
    }
    Err("XDG_RUNTIME_DIR is not set (or not absolute): the docker front end keeps its state in $XDG_RUNTIME_DIR/cw-exec/docker (root: /run/cw-exec/docker)".into())
}

/// Whether a text is a container id: 64 lower-case hex digits.
pub fn is_id(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A new random id.
pub fn new_id() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    crate::sys::random_bytes(&mut bytes).map_err(|e| format!("getrandom: {e}"))?;
    Ok(crate::model::hex(&bytes))
}

/// Checks a directory of the state: owned by the caller, nobody else may enter it.
fn check_private(st: &FileStat, path: &Path) -> Result<(), String> {
    let me = nix::unistd::geteuid().as_raw();
    if !fsio::is_dir(st) || st.st_uid != me || st.st_mode & 0o077 != 0 {
        return Err(format!(
            "{}: not trusted: the docker front end's state must be a directory of uid {me} with mode 0700 (it is {} of uid {}, mode {:o}); remove it to start afresh",
            path.display(),
            fsio::kind_of(st),
            st.st_uid,
            st.st_mode & 0o7777
        ));
    }
    Ok(())
}

/// Opens (creating, 0700, when `create`) the directory `name` in `parent`, without
/// following a symlink, and checks it is private.
fn private_child(parent: &Dir, name: &str, create: bool) -> Result<Option<Dir>, String> {
    let path = parent.path().join(name);
    if create {
        match mkdirat(parent, name, Mode::from_bits_truncate(0o700)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(format!("{}: {}", path.display(), e.desc())),
        }
    } else if parent
        .lstat(OsStr::new(name))
        .map_err(|e| format!("{}: {e}", path.display()))?
        .is_none()
    {
        return Ok(None);
    }
    let dir = parent
        .child_dir(OsStr::new(name), false)
        .map_err(|e| e.to_string())?;
    let st = fstat(&dir).map_err(|e| format!("{}: {}", path.display(), e.desc()))?;
    check_private(&st, &path)?;
    Ok(Some(dir))
}

/// The state directory.
pub struct State {
    dir: Dir,
}

impl State {
    /// Opens the state directory, creating `cw-exec/docker` (0700 each) beneath the runtime
    /// directory when `create`. None when it does not exist and `create` is false.
    pub fn open(create: bool) -> Result<Option<State>, String> {
        let path = location()?;
        let (base, parent_name) = (
            path.parent()
                .and_then(Path::parent)
                .unwrap_or(Path::new("/")),
            "cw-exec",
        );
        let held = crate::kernel::pathfd::resolve(base).map_err(|e| {
            format!(
                "{}: {e} (the runtime directory the docker front end's state lives in)",
                base.display()
            )
        })?;
        let base = Dir::new(held.fd, held.path).map_err(|e| e.to_string())?;
        let Some(parent) = private_child(&base, parent_name, create)? else {
            return Ok(None);
        };
        Ok(private_child(&parent, "docker", create)?.map(|dir| State { dir }))
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Creates a new entry with a fresh id (and its lock file).
    pub fn create_entry(&self) -> Result<Entry, String> {
        for _ in 0..8 {
            let id = new_id()?;
            match mkdirat(&self.dir, id.as_str(), Mode::from_bits_truncate(0o700)) {
                Ok(()) => {}
                Err(Errno::EEXIST) => continue,
                Err(e) => return Err(format!("{}/{id}: {}", self.path().display(), e.desc())),
            }
            let entry = self
                .entry(&id)?
                .ok_or_else(|| format!("{}/{id}: vanished", self.path().display()))?;
            entry
                .dir
                .create_empty_file(OsStr::new(LOCK))
                .map_err(|e| format!("{}: {e}", entry.file(LOCK).display()))?;
            return Ok(entry);
        }
        Err("could not find an unused container id".into())
    }

    /// The entry of `id`, if there is one (an id that is not 64 hex digits has none).
    pub fn entry(&self, id: &str) -> Result<Option<Entry>, String> {
        if !is_id(id) {
            return Ok(None);
        }
        Ok(private_child(&self.dir, id, false)?.map(|dir| Entry {
            id: id.to_string(),
            dir,
        }))
    }

    /// Removes an entry and everything in it (only plain files are expected there).
    pub fn remove_entry(&self, entry: Entry) -> Result<(), String> {
        let path = entry.path().to_path_buf();
        let listing = openat(
            &entry.dir,
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| format!("{}: {}", path.display(), e.desc()))?;
        let names: Vec<std::ffi::OsString> =
            std::fs::read_dir(format!("/proc/self/fd/{}", listing.as_raw_fd()))
                .map_err(|e| format!("{}: {e}", path.display()))?
                .flatten()
                .map(|e| e.file_name())
                .collect();
        for name in names {
            entry
                .dir
                .remove(&name)
                .map_err(|e| format!("{}: {e}", path.join(&name).display()))?;
        }
        self.dir
            .remove(OsStr::new(&entry.id))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(())
    }
}

/// One container's directory.
pub struct Entry {
    pub id: String,
    dir: Dir,
}

impl Entry {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Reads a regular file of the entry (None if absent); never follows a symlink, never
    /// blocks on a FIFO.
    pub fn read(&self, name: &str) -> Result<Option<Vec<u8>>, String> {
        let fd = match openat(
            &self.dir,
            name,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(None),
            Err(e) => return Err(format!("{}: {}", self.file(name).display(), e.desc())),
        };
        let st = fstat(&fd).map_err(|e| format!("{}: {}", self.file(name).display(), e.desc()))?;
        if !fsio::is_regular(&st) {
            return Err(format!(
                "{}: not a regular file (it is {})",
                self.file(name).display(),
                fsio::kind_of(&st)
            ));
        }
        let mut out = vec![];
        std::fs::File::from(fd)
            .take(MAX_STATE_FILE + 1)
            .read_to_end(&mut out)
            .map_err(|e| format!("{}: {e}", self.file(name).display()))?;
        if out.len() as u64 > MAX_STATE_FILE {
            return Err(format!("{}: too large", self.file(name).display()));
        }
        Ok(Some(out))
    }

    /// Reads and parses a JSON file of the entry.
    pub fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Option<T>, String> {
        match self.read(name)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| format!("{}: {e}", self.file(name).display())),
        }
    }

    /// Replaces a file of the entry (written under a temporary name, renamed into place).
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<(), String> {
        self.dir
            .replace_file(OsStr::new(name), bytes)
            .map_err(|e| format!("{}: {e}", self.file(name).display()))
    }

    pub fn write_json<T: serde::Serialize>(&self, name: &str, value: &T) -> Result<(), String> {
        let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| e.to_string())?;
        bytes.push(b'\n');
        self.write(name, &bytes)
    }

    /// The lock file, opened for locking (never following a symlink).
    fn lock_file(&self) -> Result<OwnedFd, String> {
        openat(
            &self.dir,
            LOCK,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| format!("{}: {}", self.file(LOCK).display(), e.desc()))
    }

    /// Takes the lock exclusively without waiting: Ok(None) when a start holds it.
    pub fn try_lock(&self) -> Result<Option<Flock<OwnedFd>>, String> {
        match Flock::lock(self.lock_file()?, FlockArg::LockExclusiveNonblock) {
            Ok(l) => Ok(Some(l)),
            Err((_, Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, e)) => Err(format!("{}: {}", self.file(LOCK).display(), e.desc())),
        }
    }

    /// Waits until no start holds the lock (it ended, or died: the kernel releases a dead
    /// process's locks).
    pub fn wait_unlocked(&self) -> Result<(), String> {
        loop {
            match Flock::lock(self.lock_file()?, FlockArg::LockShared) {
                Ok(_) => return Ok(()),
                Err((_, Errno::EINTR)) => continue,
                Err((_, e)) => return Err(format!("{}: {}", self.file(LOCK).display(), e.desc())),
            }
        }
    }
}

impl AsFd for Entry {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.dir.as_fd()
    }
}
