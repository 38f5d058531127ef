//! cw-exec's own file I/O, by descriptor: reading the files it is handed (profiles,
//! manifests, requests) and writing its envelope and attestation.
//!
//! Any of these may lie where a sandbox (of this run, or of an earlier one) can write. So:
//!
//! - **Reads** take only a regular file: `lstat`, then `open(O_NONBLOCK|O_NOFOLLOW)`, then
//!   `fstat` again (still regular, same device and inode), then a bounded read. A FIFO, a
//!   device, a file swapped for a symlink or one too large is a precise error, never a hang.
//! - **Writes** go through a directory descriptor ([`Dir`]) the caller opened before the
//!   sandbox started: no name is looked up by path after that, except to check that the path
//!   still leads to the same directory ([`Dir::still_at_path`], `openat2` with
//!   `RESOLVE_NO_SYMLINKS`). A file is replaced by writing a temporary name nobody can
//!   predict and `renameat`-ing it over the target, which replaces whatever is there (a
//!   symlink included) without following it. Nothing here follows a symlink.
//!
//! No knowledge of plans, policies or how a directory was resolved.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, AT_FDCWD};
use nix::fcntl::{openat, openat2, renameat, AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, fstatat, mkdirat, FileStat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};

/// The largest manifest or run request cw-exec reads.
pub const MAX_DOCUMENT: u64 = 4 << 20;
/// The largest profile file cw-exec reads.
pub const MAX_PROFILE: u64 = 1 << 20;

fn os_err(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

fn other(kind: io::ErrorKind, message: String) -> io::Error {
    io::Error::new(kind, message)
}

fn file_type(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

/// What a file is, in words, for error messages.
pub fn kind_of(st: &FileStat) -> &'static str {
    match file_type(st) {
        SFlag::S_IFREG => "a regular file",
        SFlag::S_IFDIR => "a directory",
        SFlag::S_IFLNK => "a symbolic link",
        SFlag::S_IFIFO => "a FIFO",
        SFlag::S_IFCHR => "a character device",
        SFlag::S_IFBLK => "a block device",
        SFlag::S_IFSOCK => "a socket",
        _ => "a file of unknown type",
    }
}

pub fn is_regular(st: &FileStat) -> bool {
    file_type(st) == SFlag::S_IFREG
}

pub fn is_dir(st: &FileStat) -> bool {
    file_type(st) == SFlag::S_IFDIR
}

pub fn is_symlink(st: &FileStat) -> bool {
    file_type(st) == SFlag::S_IFLNK
}

/// A FIFO or a character device (a pipe or terminal someone named).
pub fn is_stream(st: &FileStat) -> bool {
    matches!(file_type(st), SFlag::S_IFIFO | SFlag::S_IFCHR)
}

fn same_file(a: &FileStat, b: &FileStat) -> bool {
    a.st_dev == b.st_dev && a.st_ino == b.st_ino
}

/// Opens `path` for reading only if it is a regular file, without ever blocking: the
/// caller's spelling is resolved once (symlinks followed), the result must be a regular
/// file by `lstat`, is opened with `O_NONBLOCK|O_NOFOLLOW`, and must still be the same
/// regular file by `fstat`.
pub fn open_regular(path: &Path) -> io::Result<File> {
    let real = std::fs::canonicalize(path)?;
    let before = fstatat(AT_FDCWD, &real, AtFlags::AT_SYMLINK_NOFOLLOW).map_err(os_err)?;
    if !is_regular(&before) {
        return Err(other(
            io::ErrorKind::InvalidInput,
            format!("not a regular file (it is {})", kind_of(&before)),
        ));
    }
    let flags = OFlag::O_RDONLY
        | OFlag::O_NONBLOCK
        | OFlag::O_NOFOLLOW
        | OFlag::O_NOCTTY
        | OFlag::O_CLOEXEC;
    let fd = openat(AT_FDCWD, &real, flags, Mode::empty()).map_err(|e| match e {
        Errno::ELOOP => other(
            io::ErrorKind::InvalidInput,
            "replaced by a symbolic link while being opened".into(),
        ),
        e => os_err(e),
    })?;
    let after = fstat(&fd).map_err(os_err)?;
    if !is_regular(&after) || !same_file(&before, &after) {
        return Err(other(
            io::ErrorKind::InvalidInput,
            format!(
                "replaced while being opened (now {})",
                if is_regular(&after) {
                    "another file"
                } else {
                    kind_of(&after)
                }
            ),
        ));
    }
    Ok(File::from(fd))
}

/// What the kernel needs besides `path` itself to execute it, read from its first bytes:
/// the interpreter of a `#!` line, or an ELF program's dynamic loader (PT_INTERP).
/// None if it needs nothing else, or if it cannot be read.
pub fn exec_interpreter(path: &Path) -> Option<(String, &'static str)> {
    let mut head = Vec::new();
    open_regular(path)
        .ok()?
        .take(4096)
        .read_to_end(&mut head)
        .ok()?;
    if let Some(line) = head.strip_prefix(b"#!") {
        let line = line.split(|b| *b == b'\n').next().unwrap_or(&[]);
        let text = String::from_utf8_lossy(line);
        let interp = text.split_whitespace().next()?.to_string();
        return Some((interp, "the interpreter its #! line names"));
    }
    // ELF64, little-endian: the PT_INTERP program header names the dynamic loader.
    if head.len() < 64 || &head[..4] != b"\x7fELF" || head[4] != 2 || head[5] != 1 {
        return None;
    }
    let u = |at: usize, n: usize| -> Option<u64> {
        let bytes = head.get(at..at + n)?;
        Some(bytes.iter().rev().fold(0u64, |acc, b| acc << 8 | *b as u64))
    };
    let (phoff, phentsize, phnum) = (u(0x20, 8)? as usize, u(0x36, 2)? as usize, u(0x38, 2)?);
    for i in 0..phnum as usize {
        let ph = phoff + i * phentsize;
        if u(ph, 4)? == 3 {
            let (off, size) = (u(ph + 8, 8)? as usize, u(ph + 32, 8)? as usize);
            let name = head.get(off..off + size)?;
            let name = String::from_utf8_lossy(name)
                .trim_end_matches('\0')
                .to_string();
            return Some((name, "the dynamic loader it is linked to use"));
        }
    }
    None
}

/// Why `execve(path)` failed with `errno`, in words, from what the failing process can see
/// (inside the sandbox: its view). A missing `#!` interpreter or dynamic loader is named
/// instead of blaming the file; a directory is called one; "the exec allowlist" is
/// mentioned only when there is one.
pub fn exec_failure_message(path: &Path, errno: i32, allowlist: bool) -> String {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display();
    let desc = Errno::from_raw(errno).desc();
    let meta = std::fs::metadata(path).ok();
    let interp = || {
        meta.as_ref()
            .filter(|m| m.is_file())
            .and(exec_interpreter(path))
    };
    match errno {
        libc::ENOENT | libc::ENOTDIR => match (&meta, interp()) {
            (None, _) => format!("{shown}: {desc} (not present in the sandbox's view: grant its directory with --read or --exec)"),
            (Some(_), Some((interp, what))) => format!(
                "{shown}: cannot be run: {what}, {interp}, is missing or not visible in the sandbox ({desc}): install it, or grant its directory with --read or --exec"
            ),
            (Some(_), None) => format!("{shown}: cannot be run: it is present, but what it needs to run (a #! interpreter or its dynamic loader) is missing or not visible in the sandbox ({desc})"),
        },
        libc::EACCES => {
            let why = match &meta {
                Some(m) if m.is_dir() => "it is a directory, not a program".to_string(),
                Some(m) if !m.is_file() => "it is not a regular file".into(),
                Some(m) if m.permissions().mode() & 0o111 == 0 => {
                    "it is not executable: no execute permission in its mode".into()
                }
                _ => match (allowlist, interp().filter(|(_, what)| what.contains("#!"))) {
                    (true, Some((interp, what))) => {
                        format!("denied: it, or {what} ({interp}), is not on the exec allowlist")
                    }
                    (true, None) => "denied: not on the exec allowlist".into(),
                    (false, _) => "denied: its filesystem is mounted noexec, or a directory on the way may not be searched".into(),
                },
            };
            format!("{shown}: {desc} ({why})")
        }
        _ => format!("{shown}: {desc}"),
    }
}

/// Reads at most `limit` bytes from `reader`; more is an error, not a truncation.
pub fn read_limited(reader: impl Read, limit: u64) -> io::Result<Vec<u8>> {
    // Room for a small file up front: read in one go, not in growing probes.
    let mut out = Vec::with_capacity(limit.saturating_add(1).min(16 << 10) as usize);
    reader.take(limit + 1).read_to_end(&mut out)?;
    if out.len() as u64 > limit {
        return Err(other(
            io::ErrorKind::InvalidData,
            format!("larger than {limit} bytes, the most cw-exec reads"),
        ));
    }
    Ok(out)
}

/// A whole regular file of at most `limit` bytes, as text.
pub fn read_text(path: &Path, limit: u64) -> io::Result<String> {
    let bytes = read_limited(open_regular(path)?, limit)?;
    String::from_utf8(bytes).map_err(|_| other(io::ErrorKind::InvalidData, "not UTF-8 text".into()))
}

/// A directory, held open (`O_PATH`) since before the sandbox started. Every later access
/// is relative to this descriptor; `path` is where it was found (no symlinks in it).
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
    st: FileStat,
}

fn open_dir_flags() -> OFlag {
    OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

/// For `openat2(RESOLVE_NO_SYMLINKS)`, which refuses every symlink itself (with ELOOP).
fn resolve_flags() -> OFlag {
    OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC
}

fn resolve_error(e: Errno) -> &'static str {
    match e {
        Errno::ELOOP => "it now passes through a symbolic link",
        Errno::ENOENT => "it no longer exists",
        e => e.desc(),
    }
}

fn remove_in(dirfd: &OwnedFd, name: &OsStr) -> io::Result<bool> {
    match unlinkat(dirfd, name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) => Ok(true),
        Err(Errno::ENOENT) => Ok(false),
        Err(Errno::EISDIR) => match unlinkat(dirfd, name, UnlinkatFlags::RemoveDir) {
            Ok(()) => Ok(true),
            Err(e) => Err(os_err(e)),
        },
        Err(e) => Err(os_err(e)),
    }
}

/// A name for a temporary file that no other process can predict (std's hash keys are
/// seeded from the kernel's random source).
fn unpredictable_name(name: &OsStr) -> OsString {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    let mut out = OsString::from(".");
    out.push(name);
    out.push(format!(".cw-exec-{:016x}.tmp", h.finish()));
    out
}

impl Dir {
    /// Takes a directory descriptor (`O_PATH` will do) and the physical path it was found at
    /// (no symlinks in it): how the caller resolved it is the caller's business.
    pub fn new(fd: OwnedFd, path: PathBuf) -> io::Result<Dir> {
        let st = fstat(&fd).map_err(os_err)?;
        if !is_dir(&st) {
            return Err(other(
                io::ErrorKind::InvalidInput,
                format!(
                    "{}: not a directory (it is {})",
                    path.display(),
                    kind_of(&st)
                ),
            ));
        }
        Ok(Dir { fd, path, st })
    }

    /// Opens a directory by a path that must contain no symlink at all (`openat2` with
    /// `RESOLVE_NO_SYMLINKS`).
    pub fn open_physical(path: &Path) -> io::Result<Dir> {
        let fd = openat2(
            AT_FDCWD,
            path,
            OpenHow::new()
                .flags(resolve_flags())
                .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS),
        )
        .map_err(|e| {
            other(
                io::Error::from_raw_os_error(e as i32).kind(),
                format!("{}: {}", path.display(), resolve_error(e)),
            )
        })?;
        Dir::new(fd, path.to_path_buf())
    }

    /// Where the directory was found before the run (symlinks resolved).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What `fstat` said of the directory when it was opened.
    pub fn stat(&self) -> &FileStat {
        &self.st
    }

    /// What is at `name` in this directory (not following a symlink), if anything.
    pub fn lstat(&self, name: &OsStr) -> io::Result<Option<FileStat>> {
        match fstatat(&self.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st)),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(os_err(e)),
        }
    }

    /// Whether the caller may create and remove entries here (the kernel's answer for this
    /// process's identity; root passes unless the filesystem is read-only).
    pub fn writable(&self) -> io::Result<()> {
        use nix::unistd::{faccessat, AccessFlags};
        faccessat(
            &self.fd,
            ".",
            AccessFlags::W_OK | AccessFlags::X_OK,
            AtFlags::empty(),
        )
        .map_err(os_err)
    }

    /// The subdirectory `name`, created (mode 0777 less the umask) if it does not exist;
    /// a symbolic link there is an error, never followed.
    pub fn child_dir(&self, name: &OsStr, create: bool) -> io::Result<Dir> {
        if create {
            match mkdirat(&self.fd, name, Mode::from_bits_truncate(0o777)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(os_err(e)),
            }
        }
        let here = self.path.join(name);
        let fd = openat(&self.fd, name, open_dir_flags(), Mode::empty()).map_err(|e| {
            let why = match (e, self.lstat(name)) {
                (Errno::ELOOP | Errno::ENOTDIR, Ok(Some(st))) if is_symlink(&st) => {
                    "a symbolic link; cw-exec does not follow it".to_string()
                }
                (Errno::ENOTDIR, Ok(Some(st))) => {
                    format!("not a directory (it is {})", kind_of(&st))
                }
                (e, _) => e.desc().to_string(),
            };
            other(
                io::Error::from_raw_os_error(e as i32).kind(),
                format!("{}: {why}", here.display()),
            )
        })?;
        let st = fstat(&fd).map_err(os_err)?;
        Ok(Dir { fd, path: here, st })
    }

    /// Creates the empty regular file `name` (mode 0666 less the umask) unless something is
    /// there already; never follows a symlink. Returns whether it created it.
    pub fn create_empty_file(&self, name: &OsStr) -> io::Result<bool> {
        let flags = OFlag::O_WRONLY
            | OFlag::O_CREAT
            | OFlag::O_EXCL
            | OFlag::O_NOFOLLOW
            | OFlag::O_NOCTTY
            | OFlag::O_CLOEXEC;
        match openat(&self.fd, name, flags, Mode::from_bits_truncate(0o666)) {
            Ok(_) => Ok(true),
            Err(Errno::EEXIST) => Ok(false),
            Err(e) => Err(os_err(e)),
        }
    }

    /// Opens the FIFO or terminal at `name` for writing, without following a symlink and
    /// without blocking (a FIFO with no reader is an error, not a hang); the returned
    /// descriptor blocks again for writing.
    pub fn open_stream(&self, name: &OsStr) -> io::Result<File> {
        let before = self.lstat(name)?.ok_or_else(|| os_err(Errno::ENOENT))?;
        let flags = OFlag::O_WRONLY
            | OFlag::O_NONBLOCK
            | OFlag::O_NOFOLLOW
            | OFlag::O_NOCTTY
            | OFlag::O_CLOEXEC;
        let fd = openat(&self.fd, name, flags, Mode::empty()).map_err(|e| match e {
            Errno::ENXIO if file_type(&before) == SFlag::S_IFIFO => other(
                io::ErrorKind::InvalidInput,
                "a FIFO with no reader (open its reading end before cw-exec starts)".into(),
            ),
            e => os_err(e),
        })?;
        let after = fstat(&fd).map_err(os_err)?;
        if !is_stream(&after) || !same_file(&before, &after) {
            return Err(other(
                io::ErrorKind::InvalidInput,
                "replaced while being opened".into(),
            ));
        }
        let fl = fcntl(&fd, FcntlArg::F_GETFL).map_err(os_err)?;
        let fl = OFlag::from_bits_truncate(fl) & !OFlag::O_NONBLOCK;
        fcntl(&fd, FcntlArg::F_SETFL(fl)).map_err(os_err)?;
        Ok(File::from(fd))
    }

    /// Whether `path` still leads to this directory, resolved without following any
    /// symbolic link (`openat2` with `RESOLVE_NO_SYMLINKS`).
    pub fn still_at_path(&self) -> io::Result<()> {
        let fd = openat2(
            AT_FDCWD,
            &self.path,
            OpenHow::new()
                .flags(resolve_flags())
                .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS),
        )
        .map_err(|e| {
            other(
                io::ErrorKind::Other,
                format!(
                    "{} was moved or replaced during the run ({})",
                    self.path.display(),
                    resolve_error(e)
                ),
            )
        })?;
        let st = fstat(&fd).map_err(os_err)?;
        if !same_file(&st, &self.st) {
            return Err(other(
                io::ErrorKind::Other,
                format!(
                    "{} was moved or replaced during the run (it is no longer the directory cw-exec opened before the run)",
                    self.path.display()
                ),
            ));
        }
        Ok(())
    }

    /// Replaces whatever is at `name` (a file, a symlink, a FIFO: never followed) with a
    /// regular file holding `bytes`: written under a temporary name nobody can predict, then
    /// `renameat` over `name`, then checked to be in place.
    pub fn replace_file(&self, name: &OsStr, bytes: &[u8]) -> io::Result<()> {
        let flags = OFlag::O_WRONLY
            | OFlag::O_CREAT
            | OFlag::O_EXCL
            | OFlag::O_NOFOLLOW
            | OFlag::O_NOCTTY
            | OFlag::O_CLOEXEC;
        let mut attempt = 0;
        let (tmp, fd) = loop {
            let tmp = unpredictable_name(name);
            match openat(
                &self.fd,
                tmp.as_os_str(),
                flags,
                Mode::from_bits_truncate(0o666),
            ) {
                Ok(fd) => break (tmp, fd),
                Err(Errno::EEXIST) if attempt < 8 => attempt += 1,
                Err(e) => return Err(os_err(e)),
            }
        };
        let written = (|| {
            let st = fstat(&fd).map_err(os_err)?;
            let mut f = File::from(fd);
            f.write_all(bytes)?;
            // close(2) reports write-back errors some filesystems defer (ENOSPC, EDQUOT).
            nix::unistd::close(f).map_err(os_err)?;
            renameat(&self.fd, tmp.as_os_str(), &self.fd, name).map_err(os_err)?;
            match self.lstat(name)? {
                Some(now) if same_file(&now, &st) => Ok(()),
                _ => Err(other(
                    io::ErrorKind::Other,
                    "replaced by another process right after being written".into(),
                )),
            }
        })();
        if written.is_err() {
            let _ = unlinkat(&self.fd, tmp.as_os_str(), UnlinkatFlags::NoRemoveDir);
        }
        written
    }

    /// Removes `name` from the directory that this one's path leads to *now*, if that path
    /// resolves without following any symbolic link: for when this directory was moved or
    /// replaced during the run and something else sits at its path.
    pub fn remove_at_path(&self, name: &OsStr) -> io::Result<bool> {
        Dir::open_physical(&self.path)?.remove(name)
    }

    /// Removes whatever is at `name` (an empty directory included), through this
    /// descriptor. Returns whether something was there.
    pub fn remove(&self, name: &OsStr) -> io::Result<bool> {
        remove_in(&self.fd, name)
    }
}

impl AsFd for Dir {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("cw-exec-fsio-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn reads_refuse_fifos_devices_and_oversize_files() {
        let d = scratch("reads");
        let fifo = d.join("fifo");
        nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o600)).unwrap();
        let e = read_text(&fifo, 10).unwrap_err().to_string();
        assert!(e.contains("not a regular file (it is a FIFO)"), "{e}");
        let e = read_text(Path::new("/dev/zero"), 10)
            .unwrap_err()
            .to_string();
        assert!(e.contains("a character device"), "{e}");
        std::fs::write(d.join("big"), [b'x'; 11]).unwrap();
        let e = read_text(&d.join("big"), 10).unwrap_err().to_string();
        assert!(e.contains("larger than 10 bytes"), "{e}");
        symlink(d.join("big"), d.join("link")).unwrap();
        assert_eq!(read_text(&d.join("link"), 11).unwrap(), "x".repeat(11));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn replace_never_follows_the_final_symlink() {
        let d = scratch("replace");
        std::fs::create_dir(d.join("out")).unwrap();
        std::fs::write(d.join("victim"), "untouched").unwrap();
        symlink(d.join("victim"), d.join("out/env.json")).unwrap();
        let dir = Dir::open_physical(&d.join("out")).unwrap();
        dir.replace_file(OsStr::new("env.json"), b"{}\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(d.join("victim")).unwrap(),
            "untouched"
        );
        assert_eq!(
            std::fs::read_to_string(d.join("out/env.json")).unwrap(),
            "{}\n"
        );
        assert_eq!(std::fs::read_dir(d.join("out")).unwrap().count(), 1);
        // The directory swapped for a symlink after it was opened: detected, not followed.
        std::fs::rename(d.join("out"), d.join("out.moved")).unwrap();
        symlink(&d, d.join("out")).unwrap();
        let e = dir.still_at_path().unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        assert!(Dir::open_physical(&d.join("out")).is_err());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn children_are_made_and_removed_without_following_symlinks() {
        let d = scratch("children");
        std::fs::create_dir(d.join("elsewhere")).unwrap();
        symlink(d.join("elsewhere"), d.join("logs")).unwrap();
        let dir = Dir::open_physical(&d).unwrap();
        let e = dir
            .child_dir(OsStr::new("logs"), true)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("a symbolic link; cw-exec does not follow it"),
            "{e}"
        );
        assert!(!dir.create_empty_file(OsStr::new("logs")).unwrap());
        assert!(dir.create_empty_file(OsStr::new("result.md")).unwrap());
        assert!(dir.child_dir(OsStr::new("artifacts"), true).is_ok());
        assert!(dir.remove(OsStr::new("logs")).unwrap());
        assert!(d.join("elsewhere").is_dir());
        assert!(!dir.remove(OsStr::new("logs")).unwrap());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
