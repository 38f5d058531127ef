//! Host credentials: the one list of paths the mount view masks when a grant covers them
//! without naming them (see docs/mount-view.md). A profile adds to it with `credentials = [...]`.
//!
//! A pattern is an absolute path, or `~/...` for a path in a home directory (the caller's
//! `$HOME`, `/root`, and every directory in `/home`). A `*` may appear in the last component
//! only (`/etc/*.keytab`, `~/.cargo/credentials*`).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

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
    if let Ok(entries) = std::fs::read_dir("/home") {
        out.extend(entries.flatten().map(|e| e.path()));
    }
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
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    /// Normalized paths, compared as byte strings (normalized, that is component by
    /// component, and much cheaper than `Path`'s comparison).
    exact: BTreeSet<OsString>,
    /// Each pattern with a `*` in its last component: (directory, prefix, suffix).
    globs: Vec<(OsString, String, String)>,
}

/// A credential that exists on this host, where it physically is: a credential path that is
/// a symlink is its target; one beneath a symlinked directory is beneath that directory's
/// target. What a mask hides, and what the grants are compared with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub path: PathBuf,
    pub is_dir: bool,
}

/// Lexically normalized (no `.`, `..`, repeated or trailing `/`): so that comparing paths as
/// strings compares them component by component.
fn normalized(path: &Path) -> PathBuf {
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

impl Credentials {
    /// The patterns applied to this host's homes.
    pub fn new(patterns: &[&str], homes: &[PathBuf]) -> Credentials {
        let mut out = Credentials::default();
        for pattern in patterns {
            let bases: Vec<PathBuf> = match pattern.strip_prefix("~/") {
                Some(rest) => homes.iter().map(|h| h.join(rest)).collect(),
                None => vec![PathBuf::from(pattern)],
            };
            for base in bases {
                let base = normalized(&base);
                let name = base
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                match name.split_once('*') {
                    None => out.add(base),
                    Some((prefix, suffix)) => {
                        let dir = base.parent().unwrap_or(Path::new("/"));
                        let glob = (
                            dir.as_os_str().to_owned(),
                            prefix.to_string(),
                            suffix.to_string(),
                        );
                        if !out.globs.contains(&glob) {
                            out.globs.push(glob);
                        }
                    }
                }
            }
        }
        out
    }

    /// Adds a path that is a credential wherever it appears (the signing key's directory, a
    /// path a front end protects).
    pub fn add(&mut self, path: PathBuf) {
        self.exact.insert(normalized(&path).into_os_string());
    }

    /// Whether `path` (normalized) is a credential path: one of them exactly, or a glob's
    /// match.
    pub fn names(&self, path: &Path) -> bool {
        self.names_bytes(path.as_os_str().as_bytes())
    }

    fn names_bytes(&self, path: &[u8]) -> bool {
        if self.exact.contains(OsStr::from_bytes(path)) {
            return true;
        }
        let Some(slash) = path.iter().rposition(|b| *b == b'/') else {
            return false;
        };
        let (dir, name) = (&path[..slash.max(1)], &path[slash + 1..]);
        self.globs.iter().any(|(d, prefix, suffix)| {
            d.as_bytes() == dir && glob_matches(name, prefix.as_bytes(), suffix.as_bytes())
        })
    }

    /// Whether `path` (normalized) is a credential path or lies beneath one: a lookup per
    /// ancestor, not a comparison with every credential.
    pub fn covers(&self, path: &Path) -> bool {
        let bytes = path.as_os_str().as_bytes();
        if self.names_bytes(bytes) {
            return true;
        }
        // Each ancestor is a prefix ending before a `/` (the root: "/").
        bytes
            .iter()
            .enumerate()
            .rev()
            .filter(|(_, b)| **b == b'/')
            .any(|(i, _)| self.names_bytes(&bytes[..i.max(1)]))
    }

    /// The credentials that exist on this host (see `Found`), sorted. The tree of credential
    /// paths is walked from `/`: a directory is looked into only if it exists, by listing it
    /// when it holds a glob or many credential names, else name by name (`lstat`). A
    /// credential path or a directory on the way that is a symlink is handed to `resolve`,
    /// which gives where it physically leads (and whether that is a directory), or None to
    /// leave it out.
    pub fn find(&self, resolve: &dyn Fn(&Path) -> Option<(PathBuf, bool)>) -> Vec<Found> {
        let mut root = Node::default();
        for path in &self.exact {
            root.at(Path::new(path)).credential = true;
        }
        for (dir, prefix, suffix) in &self.globs {
            root.at(Path::new(dir))
                .globs
                .push((prefix.clone(), suffix.clone()));
        }
        let mut out = Vec::new();
        root.find(Path::new("/"), resolve, &mut out);
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out.dedup_by(|a, b| a.path == b.path);
        out
    }
}

/// Whether a name matches a glob's `prefix*suffix`.
fn glob_matches(name: &[u8], prefix: &[u8], suffix: &[u8]) -> bool {
    name.len() >= prefix.len() + suffix.len() && name.starts_with(prefix) && name.ends_with(suffix)
}

/// Directories in which at least this many names are wanted are listed (one `getdents`)
/// rather than asked name by name (one `lstat` each).
const LIST_AT: usize = 12;

/// One directory of the tree of credential paths: the names wanted in it.
#[derive(Default)]
struct Node {
    /// This path is itself a credential.
    credential: bool,
    children: BTreeMap<OsString, Node>,
    /// (prefix, suffix) of each glob in this directory.
    globs: Vec<(String, String)>,
}

impl Node {
    /// The node of an absolute path, made as needed.
    fn at(&mut self, path: &Path) -> &mut Node {
        let mut node = self;
        for comp in path.components() {
            if let Component::Normal(name) = comp {
                node = node.children.entry(name.to_os_string()).or_default();
            }
        }
        node
    }

    fn matches_glob(&self, name: &OsStr) -> bool {
        self.globs.iter().any(|(prefix, suffix)| {
            glob_matches(name.as_bytes(), prefix.as_bytes(), suffix.as_bytes())
        })
    }

    /// The wanted entries of `dir` (a physical path) that exist, with their types.
    fn present(&self, dir: &Path) -> Vec<(OsString, std::fs::FileType)> {
        let by_name = || {
            self.children
                .keys()
                .filter_map(|name| {
                    std::fs::symlink_metadata(dir.join(name))
                        .ok()
                        .map(|m| (name.clone(), m.file_type()))
                })
                .collect()
        };
        if self.globs.is_empty() && self.children.len() < LIST_AT {
            return by_name();
        }
        match std::fs::read_dir(dir) {
            Ok(entries) => entries
                .flatten()
                .filter(|e| {
                    let name = e.file_name();
                    self.children.contains_key(&name) || self.matches_glob(&name)
                })
                .filter_map(|e| e.file_type().ok().map(|t| (e.file_name(), t)))
                .collect(),
            // Not there (or not a directory): nothing beneath it either.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => vec![],
            // Not listable (searchable, perhaps): name by name; a glob cannot be matched.
            Err(_) => by_name(),
        }
    }

    fn find(
        &self,
        dir: &Path,
        resolve: &dyn Fn(&Path) -> Option<(PathBuf, bool)>,
        out: &mut Vec<Found>,
    ) {
        for (name, kind) in self.present(dir) {
            let child = self.children.get(&name);
            let is_credential = child.is_some_and(|c| c.credential) || self.matches_glob(&name);
            let descend = child.filter(|c| !c.children.is_empty() || !c.globs.is_empty());
            if !is_credential && descend.is_none() {
                continue;
            }
            let here = dir.join(&name);
            let (path, is_dir) = if kind.is_symlink() {
                match resolve(&here) {
                    Some(found) => found,
                    None => continue,
                }
            } else {
                (here, kind.is_dir())
            };
            if let Some(child) = descend.filter(|_| is_dir) {
                child.find(&path, resolve, out);
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
        let found = creds.find(&resolve);
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
