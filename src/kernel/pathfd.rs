//! Host paths held as descriptors. A path is resolved once, component by component, without
//! ever following a symlink implicitly: each symlink met on the way is read and recorded (who
//! owns it, who may write the directory it sits in), so the caller can decide whether to
//! trust it. The result is an `O_PATH` descriptor of the object, with its device, inode and
//! mount id: everything later (Landlock rules, binds, access checks) uses the descriptor or
//! verifies an object against that identity, never the name again.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::fcntl::{openat, openat2, readlinkat, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, FileStat, Mode, SFlag};

/// Symlinks followed in one resolution before giving up (the kernel's own limit).
const MAX_LINKS: usize = 40;

pub use crate::model::{Identity, Link};

/// A resolved host path.
#[derive(Debug)]
pub struct Held {
    /// `O_PATH | O_CLOEXEC` descriptor of the object.
    pub fd: OwnedFd,
    /// The physical path (no symlinks, no `.` or `..`).
    pub path: PathBuf,
    pub identity: Identity,
    pub is_dir: bool,
    /// `statfs` magic of the file system the object lives on.
    pub fs_magic: i64,
    /// Every symlink followed, in order.
    pub links: Vec<Link>,
}

fn o_path() -> OFlag {
    OFlag::O_PATH | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW
}

fn identity_of(fd: BorrowedFd<'_>, st: &FileStat) -> io::Result<Identity> {
    Ok(Identity {
        dev: st.st_dev,
        ino: st.st_ino,
        mnt_id: crate::sys::mount_id(fd)?,
    })
}

/// The identity of the object behind a descriptor.
pub fn identity(fd: BorrowedFd<'_>) -> io::Result<Identity> {
    let st = fstat(fd)?;
    identity_of(fd, &st)
}

fn is_dir(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFDIR
}

fn is_symlink(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFLNK
}

fn held(fd: OwnedFd, path: PathBuf, links: Vec<Link>) -> io::Result<Held> {
    let st = fstat(&fd)?;
    let fs_magic = nix::sys::statfs::fstatfs(&fd)?.filesystem_type().0 as i64;
    Ok(Held {
        identity: identity_of(fd.as_fd(), &st)?,
        is_dir: is_dir(&st),
        fd,
        path,
        fs_magic,
        links,
    })
}

/// Resolves an absolute host path. One `openat2(RESOLVE_NO_SYMLINKS)` when no symlink is on
/// the way (the common case); otherwise a walk, one component at a time, recording each link.
pub fn resolve(path: &Path) -> io::Result<Held> {
    if !path.is_absolute() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not an absolute path",
        ));
    }
    let root = nix::fcntl::open("/", o_path() | OFlag::O_DIRECTORY, Mode::empty())?;
    let lexical = normalize(path);
    // `..` after a symlink means the link's physical parent: only the walk gets that right.
    let has_dotdot = path.components().any(|c| c == Component::ParentDir);
    if !has_dotdot {
        // Without O_NOFOLLOW, so a trailing symlink is refused (ELOOP) like any other.
        let how = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        match openat2(&root, relative(&lexical), how) {
            Ok(fd) => return held(fd, lexical, vec![]),
            Err(nix::errno::Errno::ELOOP) => {}
            Err(e) => return Err(e.into()),
        }
    }
    walk(root, path)
}

fn relative(path: &Path) -> &Path {
    let rel = path.strip_prefix("/").unwrap_or(path);
    if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    }
}

fn walk(root: OwnedFd, path: &Path) -> io::Result<Held> {
    let mut pending: VecDeque<OsString> = names(path);
    let mut cur = root.try_clone()?;
    let mut cur_path = PathBuf::from("/");
    let mut links = Vec::new();
    while let Some(name) = pending.pop_front() {
        if name == ".." {
            if cur_path.pop() {
                cur = openat(&cur, "..", o_path() | OFlag::O_DIRECTORY, Mode::empty())?;
            }
            continue;
        }
        let fd = openat(&cur, name.as_os_str(), o_path(), Mode::empty())?;
        let st = fstat(&fd)?;
        if is_symlink(&st) {
            if links.len() >= MAX_LINKS {
                return Err(io::Error::from_raw_os_error(libc::ELOOP));
            }
            let target = PathBuf::from(readlinkat(&fd, "")?);
            let dir = fstat(&cur)?;
            links.push(Link {
                at: cur_path.join(&name),
                target: target.clone(),
                owner: st.st_uid,
                dir_owner: dir.st_uid,
                dir_group: dir.st_gid,
                dir_mode: dir.st_mode & 0o7777,
            });
            for (i, n) in names(&target).into_iter().enumerate() {
                pending.insert(i, n);
            }
            if target.is_absolute() {
                cur = root.try_clone()?;
                cur_path = PathBuf::from("/");
            }
            continue;
        }
        if !pending.is_empty() && !is_dir(&st) {
            return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
        }
        cur = fd;
        cur_path.push(&name);
    }
    held(cur, cur_path, links)
}

fn names(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect()
}

/// Opens `path` (absolute, as resolved earlier) beneath the directory `root` without following
/// any symlink: in the sandbox's own mount namespace, the host tree sits beneath `root`.
pub fn reopen_beneath(root: BorrowedFd<'_>, path: &Path) -> io::Result<OwnedFd> {
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
        .resolve(
            ResolveFlag::RESOLVE_NO_SYMLINKS
                | ResolveFlag::RESOLVE_NO_MAGICLINKS
                | ResolveFlag::RESOLVE_BENEATH,
        );
    Ok(openat2(root, relative(path), how)?)
}

/// Lexically normalizes an absolute path (drops `.` and resolves `..`), for paths that must
/// not or cannot be resolved on the host: the private tmp, and paths inside the mount view.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for comp in path.components() {
        match comp {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(c) => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_through_symlinks_and_records_them() {
        let dir = std::env::temp_dir().join(format!("cwx-pathfd-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("real/sub")).unwrap();
        std::os::unix::fs::symlink("real", dir.join("link")).unwrap();
        let held = resolve(&dir.join("link/sub")).unwrap();
        assert_eq!(
            held.path,
            std::fs::canonicalize(dir.join("real/sub")).unwrap()
        );
        assert!(held.is_dir);
        assert_eq!(held.links.len(), 1);
        assert_eq!(held.links[0].target, Path::new("real"));
        let direct = resolve(&dir.join("real/sub")).unwrap();
        assert!(direct.links.is_empty());
        assert_eq!(direct.identity.ino, held.identity.ino);
        // `..` after a symlink is the physical parent.
        let up = resolve(&dir.join("link/sub/..")).unwrap();
        assert_eq!(up.path, std::fs::canonicalize(dir.join("real")).unwrap());
        assert!(resolve(&dir.join("missing")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reopen_beneath_refuses_symlinks() {
        let dir = std::env::temp_dir().join(format!("cwx-pathfd2-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("real")).unwrap();
        std::os::unix::fs::symlink("real", dir.join("link")).unwrap();
        let root = nix::fcntl::open("/", o_path() | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        assert!(reopen_beneath(root.as_fd(), &dir.join("real")).is_ok());
        let err = reopen_beneath(root.as_fd(), &dir.join("link")).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
