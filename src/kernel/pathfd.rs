//! Host paths held as descriptors. A path is resolved once, without ever following a symlink
//! implicitly: each symlink met on the way is read and recorded (who owns it, who may write
//! the directory it sits in), so the caller can decide whether to trust it. The result is an
//! `O_PATH` descriptor of the object, with its device, inode and mount id: everything later
//! (Landlock rules, binds, access checks) uses the descriptor or verifies an object against
//! that identity, never the name again.
//!
//! Cost: a path without symlinks is one `openat2(RESOLVE_NO_SYMLINKS)` and one `statx`. A
//! path with symlinks is walked: after each symlink, whatever is left is tried again in one
//! `openat2`, so only the stretch up to the next symlink goes component by component.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, openat2, readlinkat, OFlag, OpenHow, ResolveFlag, AT_FDCWD};
use nix::sys::stat::{fstatat, FileStat, Mode, SFlag};

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
    /// Every symlink followed, in order.
    pub links: Vec<Link>,
}

impl Held {
    /// `statfs` magic of the file system the object lives on (asked only where it matters:
    /// a write grant must not be host kernel state).
    pub fn fs_magic(&self) -> io::Result<i64> {
        Ok(nix::sys::statfs::fstatfs(&self.fd)?.filesystem_type().0 as i64)
    }
}

/// `openat2` flags of every step: an `O_PATH` descriptor, and no symlink followed anywhere
/// (a symlink on the way, the last component included, is ELOOP).
fn no_symlinks() -> OpenHow {
    OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS | ResolveFlag::RESOLVE_NO_MAGICLINKS)
}

/// The identity of the object behind a descriptor (one `statx`).
#[cfg(test)]
pub fn identity(fd: BorrowedFd<'_>) -> io::Result<Identity> {
    let st = crate::sys::fd_stat(fd)?;
    Ok(Identity {
        dev: st.dev,
        ino: st.ino,
        mnt_id: st.mnt_id,
    })
}

fn is_dir(mode: u32) -> bool {
    SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits()) == SFlag::S_IFDIR
}

fn held(fd: OwnedFd, path: PathBuf, links: Vec<Link>) -> io::Result<Held> {
    let st = crate::sys::fd_stat(fd.as_fd())?;
    Ok(Held {
        identity: Identity {
            dev: st.dev,
            ino: st.ino,
            mnt_id: st.mnt_id,
        },
        is_dir: is_dir(st.mode),
        fd,
        path,
        links,
    })
}

/// Resolves an absolute host path: one `openat2(RESOLVE_NO_SYMLINKS)` when no symlink is on
/// the way (the common case); otherwise a walk that records each link.
pub fn resolve(path: &Path) -> io::Result<Held> {
    if !path.is_absolute() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not an absolute path",
        ));
    }
    walk(path)
}

/// The directory a walk is in: the root (named by absolute paths from AT_FDCWD, so that no
/// descriptor of it is opened) or a held directory.
enum Cur {
    Root,
    Dir(OwnedFd),
}

impl Cur {
    /// The descriptor and the name to hand an `*at` call for `rel` in this directory.
    fn at<'a>(&'a self, rel: &Path) -> (BorrowedFd<'a>, PathBuf) {
        match self {
            Cur::Root => (AT_FDCWD, Path::new("/").join(rel)),
            Cur::Dir(fd) => (fd.as_fd(), rel.to_path_buf()),
        }
    }

    fn open(&self, rel: &Path) -> Result<OwnedFd, Errno> {
        let (dir, name) = self.at(rel);
        openat2(dir, &name, no_symlinks())
    }

    fn stat(&self) -> Result<FileStat, Errno> {
        match self {
            Cur::Root => fstatat(AT_FDCWD, "/", nix::fcntl::AtFlags::empty()),
            Cur::Dir(fd) => nix::sys::stat::fstat(fd),
        }
    }
}

/// Walks `path`. Whatever is left of it is first tried in one `openat2` (the whole path at
/// the start, and the rest after each symlink); when that meets a symlink (ELOOP), the walk
/// goes component by component up to it, reads it, and tries the rest again. `..` after a
/// symlink means the link's physical parent: `..` is always taken component by component.
fn walk(path: &Path) -> io::Result<Held> {
    let mut pending: VecDeque<OsString> = names(path);
    let mut cur = Cur::Root;
    let mut cur_path = PathBuf::from("/");
    let mut links: Vec<Link> = Vec::new();
    let mut try_rest = true;
    while !pending.is_empty() {
        // Set when the last try of the rest ended at its only component: a symlink.
        let mut known_link = false;
        if try_rest && !pending.iter().any(|n| n == "..") {
            try_rest = false;
            let rest: PathBuf = pending.iter().collect();
            match cur.open(&rest) {
                Ok(fd) => {
                    cur_path.push(&rest);
                    return held(fd, cur_path, links);
                }
                Err(Errno::ELOOP) => known_link = pending.len() == 1,
                Err(e) => return Err(e.into()),
            }
        }
        let name = pending.pop_front().expect("not empty");
        if name == ".." {
            if cur_path.pop() {
                cur = if cur_path == Path::new("/") {
                    Cur::Root
                } else {
                    let (dir, up) = cur.at(Path::new(".."));
                    Cur::Dir(openat(
                        dir,
                        &up,
                        OFlag::O_PATH | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW | OFlag::O_DIRECTORY,
                        Mode::empty(),
                    )?)
                };
            }
            continue;
        }
        let opened = if known_link {
            Err(Errno::ELOOP)
        } else {
            cur.open(Path::new(&name))
        };
        match opened {
            Ok(fd) => {
                // A file with components left: the next step fails with ENOTDIR.
                cur = Cur::Dir(fd);
                cur_path.push(&name);
            }
            Err(Errno::ELOOP) => {
                if links.len() >= MAX_LINKS {
                    return Err(io::Error::from_raw_os_error(libc::ELOOP));
                }
                let (dir, at) = cur.at(Path::new(&name));
                let st = fstatat(dir, &at, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)?;
                if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) != SFlag::S_IFLNK {
                    // Replaced meanwhile: what the kernel refused is no longer there.
                    return Err(io::Error::from_raw_os_error(libc::ELOOP));
                }
                let target = PathBuf::from(readlinkat(dir, &at)?);
                let parent = cur.stat()?;
                links.push(Link {
                    at: cur_path.join(&name),
                    target: target.clone(),
                    owner: st.st_uid,
                    dir_owner: parent.st_uid,
                    dir_group: parent.st_gid,
                    dir_mode: parent.st_mode & 0o7777,
                });
                for (i, n) in names(&target).into_iter().enumerate() {
                    pending.insert(i, n);
                }
                if target.is_absolute() {
                    cur = Cur::Root;
                    cur_path = PathBuf::from("/");
                }
                try_rest = true;
            }
            Err(e) => return Err(e.into()),
        }
    }
    match cur {
        Cur::Dir(fd) => held(fd, cur_path, links),
        // Everything resolved back to the root itself.
        Cur::Root => held(
            nix::fcntl::open(
                "/",
                OFlag::O_PATH | OFlag::O_CLOEXEC | OFlag::O_DIRECTORY,
                Mode::empty(),
            )?,
            cur_path,
            links,
        ),
    }
}

fn relative(path: &Path) -> &Path {
    let rel = path.strip_prefix("/").unwrap_or(path);
    if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    }
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

    /// What `resolve` reports, compared with the kernel's own resolution (`canonicalize`,
    /// `stat`, errno) for chains of links: relative, absolute, to files, through `..`.
    #[test]
    fn walks_agree_with_the_kernel() {
        use std::os::unix::fs::{symlink, MetadataExt};
        let dir = std::env::temp_dir().join(format!("cwx-pathfd3-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("a/b/c")).unwrap();
        std::fs::write(dir.join("a/b/c/file"), "x").unwrap();
        symlink("a/b", dir.join("ab")).unwrap();
        symlink(dir.join("a/b/c"), dir.join("abs")).unwrap();
        symlink("../b/c/file", dir.join("a/b/up")).unwrap();
        symlink("ab", dir.join("chain")).unwrap();
        symlink("loop2", dir.join("loop1")).unwrap();
        symlink("loop1", dir.join("loop2")).unwrap();
        for (rel, links) in [
            ("a/b/c/file", 0),
            ("ab/c/file", 1),
            ("abs/file", 1),
            ("a/b/up", 1),
            ("chain/c", 2),
            ("chain/up", 3),
            ("chain/c/../c/./file", 2),
            ("./a//b/c", 0),
        ] {
            let path = dir.join(rel);
            let held = resolve(&path).unwrap_or_else(|e| panic!("{rel}: {e}"));
            assert_eq!(held.path, std::fs::canonicalize(&path).unwrap(), "{rel}");
            assert_eq!(held.links.len(), links, "{rel}");
            let meta = std::fs::metadata(&path).unwrap();
            assert_eq!(held.identity.dev, meta.dev(), "{rel}");
            assert_eq!(held.identity.ino, meta.ino(), "{rel}");
            assert_eq!(held.is_dir, meta.is_dir(), "{rel}");
            assert_eq!(held.identity, identity(held.fd.as_fd()).unwrap(), "{rel}");
        }
        for (rel, errno) in [
            ("a/missing", libc::ENOENT),
            ("ab/missing/x", libc::ENOENT),
            ("a/b/c/file/x", libc::ENOTDIR),
            ("ab/c/file/x", libc::ENOTDIR),
            ("loop1", libc::ELOOP),
            ("loop1/x", libc::ELOOP),
        ] {
            let err = resolve(&dir.join(rel)).unwrap_err();
            assert_eq!(err.raw_os_error(), Some(errno), "{rel}: {err}");
        }
        let root = resolve(Path::new("/")).unwrap();
        assert_eq!(root.path, Path::new("/"));
        assert!(root.is_dir);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reopen_beneath_refuses_symlinks() {
        let dir = std::env::temp_dir().join(format!("cwx-pathfd2-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("real")).unwrap();
        std::os::unix::fs::symlink("real", dir.join("link")).unwrap();
        let root = nix::fcntl::open(
            "/",
            OFlag::O_PATH | OFlag::O_CLOEXEC | OFlag::O_DIRECTORY,
            Mode::empty(),
        )
        .unwrap();
        assert!(reopen_beneath(root.as_fd(), &dir.join("real")).is_ok());
        let err = reopen_beneath(root.as_fd(), &dir.join("link")).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
