//! Host credentials: the one list of paths the mount view masks when a grant covers them
//! without naming them (see docs/mount-view.md). A profile adds to it with `credentials = [...]`.
//!
//! A pattern is an absolute path, or `~/...` for a path in a home directory (the caller's
//! `$HOME`, `/root`, and every directory in `/home`). A `*` may appear in the last component
//! only (`/etc/*.keytab`, `~/.cargo/credentials*`).

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

/// Every path on this host the patterns name (existing or not; globs expanded against the
/// directory's entries).
pub fn expand(patterns: &[&str], homes: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for pattern in patterns {
        let bases: Vec<PathBuf> = match pattern.strip_prefix("~/") {
            Some(rest) => homes.iter().map(|h| h.join(rest)).collect(),
            None => vec![PathBuf::from(pattern)],
        };
        for base in bases {
            let name = base
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            match name.split_once('*') {
                None => out.push(base),
                Some((prefix, suffix)) => {
                    let dir = base.parent().unwrap_or(Path::new("/"));
                    let Ok(entries) = std::fs::read_dir(dir) else {
                        continue;
                    };
                    for e in entries.flatten() {
                        let n = e.file_name().to_string_lossy().into_owned();
                        if n.len() >= prefix.len() + suffix.len()
                            && n.starts_with(prefix)
                            && n.ends_with(suffix)
                        {
                            out.push(dir.join(n));
                        }
                    }
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Whether `path` is a credential path or lies beneath one.
pub fn within_credentials(path: &Path, credentials: &[PathBuf]) -> bool {
    credentials.iter().any(|c| path.starts_with(c))
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
    fn home_patterns_expand_per_home() {
        let homes = vec![PathBuf::from("/h/a"), PathBuf::from("/h/b")];
        let got = expand(&["~/.ssh", "/etc/shadow"], &homes);
        assert!(got.contains(&PathBuf::from("/h/a/.ssh")));
        assert!(got.contains(&PathBuf::from("/h/b/.ssh")));
        assert!(got.contains(&PathBuf::from("/etc/shadow")));
    }
}
