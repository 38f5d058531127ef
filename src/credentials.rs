//! Host credentials: the one list of paths the mount view masks when a grant covers them
//! without naming them (see docs/mount-view.md). A profile adds to it with `credentials = [...]`.
//!
//! A pattern is an absolute path, or `~/...` for a path in a home directory (the caller's
//! `$HOME`, `/root`, and every directory in `/home`). A `*` may appear in the last component
//! only (`/etc/*.keytab`, `~/.cargo/credentials*`).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// System credentials.
pub const SYSTEM: &[&str] = &[
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/sudoers",
    "/etc/sudoers.d",
    "/etc/ssh",
    "/etc/ssl/private",
    "/etc/security/opasswd",
    "/etc/*.keytab",
    "/etc/krb5kdc",
    "/etc/wireguard",
    "/etc/NetworkManager/system-connections",
    "/etc/cw-exec",
    "/var/backups",
    "/var/lib/sss/secrets",
    "/root",
    "/home",
];

/// Credentials in a home directory: keys, tokens, cloud and registry logins, shell
/// histories (which hold pasted secrets), keyrings and browser profiles.
pub const HOME: &[&str] = &[
    "~/.ssh",
    "~/.gnupg",
    "~/.aws",
    "~/.azure",
    "~/.config/gcloud",
    "~/.kube",
    "~/.docker/config.json",
    "~/.netrc",
    "~/.git-credentials",
    "~/.config/git/credentials",
    "~/.config/gh",
    "~/.config/hub",
    "~/.npmrc",
    "~/.yarnrc.yml",
    "~/.pypirc",
    "~/.config/pip/pip.conf",
    "~/.cargo/credentials*",
    "~/.gem/credentials",
    "~/.m2/settings-security.xml",
    "~/.vault-token",
    "~/.terraform.d/credentials.tfrc.json",
    "~/.config/cw-exec",
    "~/.password-store",
    "~/.local/share/keyrings",
    "~/.pki",
    "~/.mozilla",
    "~/.thunderbird",
    "~/.config/google-chrome",
    "~/.config/chromium",
    "~/.config/BraveSoftware",
    "~/.config/microsoft-edge",
    "~/.bash_history",
    "~/.zsh_history",
    "~/.sh_history",
    "~/.history",
    "~/.python_history",
    "~/.node_repl_history",
    "~/.psql_history",
    "~/.mysql_history",
    "~/.sqlite_history",
    "~/.rediscli_history",
    "~/.lesshst",
    "~/.local/share/fish/fish_history",
];

/// The home directories `~/` patterns apply to: the caller's, root's, and each in /home.
pub fn homes(caller_home: &Path) -> Vec<PathBuf> {
    let mut out = vec![caller_home.to_path_buf(), PathBuf::from("/root")];
    let _ = list_dir(Path::new("/home"), |name, _| {
        out.push(Path::new("/home").join(OsStr::from_bytes(name)));
    });
    out.sort();
    out.dedup();
    out
}

/// Checks a profile's pattern (absolute or `~/`, `*` in the last component only).
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    let rest = pattern
        .strip_prefix("~/")
        .or_else(|| pattern.strip_prefix('/'))
        .ok_or_else(|| format!("{pattern:?}: must be an absolute path or start with ~/"))?;
    let (dir, _) = rest.rsplit_once('/').unwrap_or(("", rest));
    if rest.is_empty() || dir.contains('*') || rest.split('/').any(|c| c == ".." || c == ".") {
        return Err(format!(
            "{pattern:?}: a credential path names a file or directory; `*` only in its last component, no `.` or `..`"
        ));
    }
    Ok(())
}

/// The credential paths of this host, lexically: each pattern (`~/` applied to every home),
/// normalized, a `*` possibly left in its last component. Built without touching the file
/// system: `covers` and `names` are lexical, and `find` looks for what exists.
///
/// Held as trees of path components (byte strings: normalized paths compare component by
/// component as bytes, much more cheaply than `Path` does): one of absolute paths, and one
/// of the `~/` patterns that applies beneath each home. A lookup walks a path down them;
/// `find` walks them over the file system.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    absolute: Node,
    /// The homes, as components.
    homes: Vec<Vec<Vec<u8>>>,
    /// The `~/` patterns, relative to a home.
    in_home: Node,
}

/// A credential that exists on this host, where it physically is: a credential path that is
/// a symlink is its target; one beneath a symlinked directory is beneath that directory's
/// target. What a mask hides, and what the grants are compared with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub path: PathBuf,
    pub is_dir: bool,
}

/// The components of a path, `.` and empty ones dropped, `..` applied (lexically).
fn components(path: &[u8]) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = Vec::new();
    for name in path.split(|b| *b == b'/') {
        match name {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            name => out.push(name),
        }
    }
    out
}

impl Credentials {
    /// The patterns applied to this host's homes.
    pub fn new(patterns: &[&str], homes: &[PathBuf]) -> Credentials {
        let mut out = Credentials {
            homes: homes
                .iter()
                .map(|h| {
                    components(h.as_os_str().as_bytes())
                        .into_iter()
                        .map(<[u8]>::to_vec)
                        .collect()
                })
                .collect(),
            ..Credentials::default()
        };
        for pattern in patterns {
            match pattern.strip_prefix("~/") {
                Some(rest) => out.in_home.insert(&components(rest.as_bytes())),
                None => out.absolute.insert(&components(pattern.as_bytes())),
            }
        }
        out
    }

    /// Adds a path that is a credential wherever it appears (the signing key's directory, a
    /// path a front end protects).
    pub fn add(&mut self, path: PathBuf) {
        let mut node = &mut self.absolute;
        // A `*` here is a character of the name, not a glob.
        for name in components(path.as_os_str().as_bytes()) {
            node = node.children.entry(name.to_vec()).or_default();
        }
        node.credential = true;
    }

    /// Whether `test` holds for a tree that applies to `path` (given as components), with
    /// what of the path lies beneath that tree's root: the absolute tree, and the home tree
    /// beneath each home the path is in.
    fn any_tree(&self, path: &[&[u8]], test: impl Fn(&Node, &[&[u8]]) -> bool) -> bool {
        test(&self.absolute, path)
            || self.homes.iter().any(|home| {
                path.len() >= home.len()
                    && home.iter().zip(path).all(|(h, p)| h.as_slice() == *p)
                    && test(&self.in_home, &path[home.len()..])
            })
    }

    /// Whether `path` is a credential path: one of them exactly, or a glob's match.
    pub fn names(&self, path: &Path) -> bool {
        let path = components(path.as_os_str().as_bytes());
        self.any_tree(&path, Node::names)
    }

    /// Whether `path` is a credential path or lies beneath one.
    pub fn covers(&self, path: &Path) -> bool {
        let path = components(path.as_os_str().as_bytes());
        self.any_tree(&path, Node::covers)
    }

    /// The credentials that exist on this host (see `Found`), sorted. The trees are walked
    /// over the file system, the home one from each home as it physically resolves: a
    /// directory is looked into only if it exists, by listing it when it holds a glob or
    /// many credential names, else name by name (`lstat`). A credential path or a directory
    /// on the way that is a symlink (a home included) is handed to `resolve`, which gives
    /// where it physically leads (and whether that is a directory), or None to leave it out.
    pub fn find(&self, resolve: &dyn Fn(&Path) -> Option<(PathBuf, bool)>) -> Vec<Found> {
        let mut out = Vec::new();
        self.absolute.find(Path::new("/"), None, resolve, &mut out);
        for home in &self.homes {
            let mut lexical = PathBuf::from("/");
            lexical.extend(home.iter().map(|n| OsStr::from_bytes(n)));
            // A home with no symlink on the way is opened (to be read) in one step; one
            // reached through a symlink, or not readable, is resolved first.
            let how = OpenHow::new()
                .flags(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
                .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS | ResolveFlag::RESOLVE_NO_MAGICLINKS);
            match nix::fcntl::openat2(nix::fcntl::AT_FDCWD, &lexical, how) {
                Ok(fd) => self
                    .in_home
                    .find(&lexical, Some(fd.as_fd()), resolve, &mut out),
                Err(Errno::ENOENT | Errno::ENOTDIR) => {}
                Err(_) => {
                    if let Some((physical, true)) = resolve(&lexical) {
                        self.in_home.find(&physical, None, resolve, &mut out);
                    }
                }
            }
        }
        out.sort_by(|a, b| a.path.as_os_str().cmp(b.path.as_os_str()));
        out.dedup_by(|a, b| a.path == b.path);
        out
    }
}

/// Whether a name matches a glob's `prefix*suffix`.
fn glob_matches(name: &[u8], prefix: &[u8], suffix: &[u8]) -> bool {
    name.len() >= prefix.len() + suffix.len() && name.starts_with(prefix) && name.ends_with(suffix)
}

/// Directories in which at least this many names are wanted are listed (`getdents`) rather
/// than asked name by name (one `lstat` each).
const LIST_AT: usize = 12;

/// What an entry is, as far as finding credentials goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Dir,
    Symlink,
    Other,
}

impl Kind {
    fn of_mode(mode: u32) -> Kind {
        match mode & libc::S_IFMT {
            libc::S_IFDIR => Kind::Dir,
            libc::S_IFLNK => Kind::Symlink,
            _ => Kind::Other,
        }
    }

    fn of_d_type(d_type: u8) -> Option<Kind> {
        match d_type {
            libc::DT_DIR => Some(Kind::Dir),
            libc::DT_LNK => Some(Kind::Symlink),
            libc::DT_UNKNOWN => None,
            _ => Some(Kind::Other),
        }
    }
}

/// The entries of a directory, with their `d_type` (`DT_UNKNOWN` where the file system does
/// not say), read with `getdents64` into one buffer: no per-entry allocation for names that
/// are not kept.
fn list_dir(dir: &Path, keep: impl FnMut(&[u8], u8)) -> Result<(), Errno> {
    let fd = nix::fcntl::open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    list_fd(fd.as_fd(), keep)
}

/// `list_dir` of a directory opened for reading.
fn list_fd(fd: BorrowedFd<'_>, keep: impl FnMut(&[u8], u8)) -> Result<(), Errno> {
    crate::sys::for_each_dir_entry(fd, keep)
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
}

/// One directory of the tree of credential paths: the names wanted in it.
#[derive(Clone, Debug, Default)]
struct Node {
    /// This path is itself a credential.
    credential: bool,
    children: BTreeMap<Vec<u8>, Node>,
    /// (prefix, suffix) of each glob in this directory.
    globs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Node {
    /// Inserts a path given as its components beneath this node; a `*` in the last one
    /// makes it a glob.
    fn insert(&mut self, names: &[&[u8]]) {
        let Some((last, dirs)) = names.split_last() else {
            return;
        };
        let mut node = self;
        for name in dirs {
            node = node.children.entry(name.to_vec()).or_default();
        }
        match last.iter().position(|b| *b == b'*') {
            None => node.children.entry(last.to_vec()).or_default().credential = true,
            Some(star) => {
                let glob = (last[..star].to_vec(), last[star + 1..].to_vec());
                if !node.globs.contains(&glob) {
                    node.globs.push(glob);
                }
            }
        }
    }

    /// Whether the path `names` beneath this node is a credential (exactly, or a glob's
    /// match).
    fn names(&self, names: &[&[u8]]) -> bool {
        let Some((last, dirs)) = names.split_last() else {
            return false;
        };
        let mut node = self;
        for name in dirs {
            match node.children.get(*name) {
                Some(child) => node = child,
                None => return false,
            }
        }
        node.children.get(*last).is_some_and(|c| c.credential) || node.matches_glob(last)
    }

    /// Whether the path `names` beneath this node is a credential or lies beneath one.
    fn covers(&self, names: &[&[u8]]) -> bool {
        let mut node = self;
        for name in names {
            if node.matches_glob(name) {
                return true;
            }
            match node.children.get(*name) {
                Some(child) if child.credential => return true,
                Some(child) => node = child,
                None => return false,
            }
        }
        false
    }

    fn matches_glob(&self, name: &[u8]) -> bool {
        self.globs
            .iter()
            .any(|(prefix, suffix)| glob_matches(name, prefix, suffix))
    }

    /// The wanted entries of `dir` (a physical path; `fd`, if given, a descriptor of it open
    /// for reading) that exist, with what they are.
    fn present(&self, dir: &Path, fd: Option<BorrowedFd<'_>>) -> Vec<(Vec<u8>, Kind)> {
        let lstat = |name: &[u8]| {
            let st = match fd {
                Some(fd) => nix::sys::stat::fstatat(
                    fd,
                    OsStr::from_bytes(name),
                    nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
                ),
                None => nix::sys::stat::lstat(&dir.join(OsStr::from_bytes(name))),
            };
            st.ok().map(|st| Kind::of_mode(st.st_mode))
        };
        let by_name = || {
            self.children
                .keys()
                .filter_map(|name| lstat(name).map(|kind| (name.clone(), kind)))
                .collect()
        };
        if self.globs.is_empty() && self.children.len() < LIST_AT {
            return by_name();
        }
        let mut out = vec![];
        let keep = |name: &[u8], d_type: u8| {
            if self.children.contains_key(name) || self.matches_glob(name) {
                if let Some(kind) = Kind::of_d_type(d_type).or_else(|| lstat(name)) {
                    out.push((name.to_vec(), kind));
                }
            }
        };
        let listed = match fd {
            Some(fd) => list_fd(fd, keep),
            None => list_dir(dir, keep),
        };
        match listed {
            Ok(()) => out,
            // Not there (or not a directory): nothing beneath it either.
            Err(Errno::ENOENT | Errno::ENOTDIR) => vec![],
            // Not listable (searchable, perhaps): name by name; a glob cannot be matched.
            Err(_) => by_name(),
        }
    }

    fn find(
        &self,
        dir: &Path,
        fd: Option<BorrowedFd<'_>>,
        resolve: &dyn Fn(&Path) -> Option<(PathBuf, bool)>,
        out: &mut Vec<Found>,
    ) {
        for (name, kind) in self.present(dir, fd) {
            let child = self.children.get(&name);
            let is_credential = child.is_some_and(|c| c.credential) || self.matches_glob(&name);
            let descend = child.filter(|c| !c.children.is_empty() || !c.globs.is_empty());
            if !is_credential && descend.is_none() {
                continue;
            }
            let here = dir.join(OsStr::from_bytes(&name));
            let (path, is_dir) = if kind == Kind::Symlink {
                match resolve(&here) {
                    Some(found) => found,
                    None => continue,
                }
            } else {
                (here, kind == Kind::Dir)
            };
            if let Some(child) = descend.filter(|_| is_dir) {
                child.find(&path, None, resolve, out);
            }
            if is_credential {
                out.push(Found { path, is_dir });
            }
        }
    }
}

/// The caller's home: `$HOME`, else the passwd entry, else `/`.
pub fn home_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(home);
    }
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.dir)
        .unwrap_or_else(|| PathBuf::from("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_checked() {
        assert!(check_pattern("~/.myapp/token").is_ok());
        assert!(check_pattern("/etc/*.keytab").is_ok());
        assert!(check_pattern("relative").is_err());
        assert!(check_pattern("/etc/*/x").is_err());
        assert!(check_pattern("~/../x").is_err());
    }

    #[test]
    fn home_patterns_apply_to_each_home() {
        let homes = vec![PathBuf::from("/h/a"), PathBuf::from("/h/b/")];
        let creds = Credentials::new(
            &["~/.ssh", "/etc/shadow", "/etc//x/", "~/.cargo/c*s"],
            &homes,
        );
        assert!(creds.names(Path::new("/h/a/.ssh")));
        assert!(creds.names(Path::new("/h/b/.ssh")));
        assert!(creds.names(Path::new("/etc/shadow")));
        assert!(creds.names(Path::new("/etc/x")));
        assert!(creds.names(Path::new("/h/b/.cargo/credentials")));
        assert!(creds.names(Path::new("/h/b/.cargo/cs")));
        assert!(!creds.names(Path::new("/h/b/.cargo/c")));
        assert!(!creds.names(Path::new("/h/b/.cargo/config")));
        assert!(!creds.names(Path::new("/h/c/.ssh")));
    }

    /// `covers` is component by component: a sibling sharing a prefix is not beneath.
    #[test]
    fn coverage_is_by_component() {
        let mut creds = Credentials::new(&["~/.ssh", "/etc/*.keytab"], &[PathBuf::from("/root")]);
        creds.add(PathBuf::from("/etc/cw-exec"));
        for (path, covered) in [
            ("/root/.ssh", true),
            ("/root/.ssh/id_rsa", true),
            ("/root/.ssh/a/b", true),
            ("/root/.sshx", false),
            ("/root/.sshx/id_rsa", false),
            ("/root/.ss", false),
            ("/root", false),
            ("/", false),
            ("/etc/krb5.keytab", true),
            ("/etc/krb5.keytab/x", true),
            ("/etc/keytab", false),
            ("/etc/a/b.keytab", false),
            ("/etc/cw-exec", true),
            ("/etc/cw-exec/signing.key", true),
            ("/etc/cw-exec2", false),
        ] {
            assert_eq!(creds.covers(Path::new(path)), covered, "{path}");
        }
    }

    /// `find` reports what exists, where it physically is: a credential that is a symlink at
    /// its target, one beneath a symlinked directory beneath the directory's target; globs
    /// matched against the directory's entries; nothing for what does not exist.
    #[test]
    fn find_reports_physical_paths() {
        use std::os::unix::fs::symlink;
        let dir = std::env::temp_dir().join(format!("cwx-creds-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let home = dir.join("home");
        let keys = dir.join("keys");
        let dotfiles = dir.join("dotfiles/config");
        for d in [&home, &keys, &dotfiles.join("gh")] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::create_dir_all(home.join(".cargo")).unwrap();
        std::fs::write(home.join(".cargo/credentials.toml"), "t").unwrap();
        std::fs::write(home.join(".cargo/config.toml"), "c").unwrap();
        std::fs::write(home.join(".netrc"), "n").unwrap();
        symlink(&keys, home.join(".ssh")).unwrap();
        symlink(&dotfiles, home.join(".config")).unwrap();
        symlink(dir.join("nowhere"), home.join(".npmrc")).unwrap();
        let homes = vec![home.clone()];
        let creds = Credentials::new(
            &[
                "~/.ssh",
                "~/.netrc",
                "~/.npmrc",
                "~/.aws",
                "~/.config/gh",
                "~/.cargo/credentials*",
            ],
            &homes,
        );
        let resolve = |p: &Path| {
            std::fs::canonicalize(p)
                .ok()
                .map(|c| (c.clone(), c.is_dir()))
        };
        let mut found = creds.find(&resolve);
        found.sort_by(|a, b| a.path.cmp(&b.path));
        let canon = |p: PathBuf| std::fs::canonicalize(p).unwrap();
        let mut want = vec![
            Found {
                path: canon(keys.clone()),
                is_dir: true,
            },
            Found {
                path: canon(home.join(".netrc")),
                is_dir: false,
            },
            Found {
                path: canon(dotfiles.join("gh")),
                is_dir: true,
            },
            Found {
                path: canon(home.join(".cargo/credentials.toml")),
                is_dir: false,
            },
        ];
        want.sort_by(|a, b| a.path.cmp(&b.path));
        assert_eq!(found, want);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
