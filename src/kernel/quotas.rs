//! Per-user kernel quotas the sandbox would otherwise share with the caller's other processes.
//!
//! Some kernel counts are kept per user, and a user namespace does not make them private:
//! inotify instances and watches (and fanotify groups and marks, and namespaces) are
//! "ucounts", charged to the (user namespace, uid) that asks *and to every ancestor*, where
//! the sandbox's user namespace counts as its owner, the caller's uid. A sandbox holding 128
//! inotify instances left every other process of the caller's uid on the host — root's too
//! — unable to create one (EMFILE) for the rest of the run.
//!
//! Each user namespace has its own maxima (`/proc/sys/user/*`, writable with
//! CAP_SYS_RESOURCE in that namespace, which the sandbox's init holds), checked at every
//! level on the way up. So a lower maximum in the sandbox's namespace caps the sandbox's
//! share, while the host's maximum still bounds the sum. The same holds for the rlimit-backed
//! ucounts (RLIMIT_MSGQUEUE bytes, RLIMIT_SIGPENDING signals): the limit each sandboxed
//! process carries is compared with the count of the whole (sandbox namespace, uid), so
//! lowering it in the command's process (inherited by everything it starts) caps the sandbox.
//!
//! What stays shared (named in the attestation's gaps): the caller's uid keeps only what the
//! sandbox does not use; counts kept in the uid's `user_struct` rather than in ucounts are
//! global per uid and have no per-namespace maximum (epoll watches, pipe buffer pages,
//! SCM_RIGHTS descriptors in flight).
//!
//! These are defence in depth: applied where possible, read back, and attested exactly as
//! read back. A value that could not be lowered is reported as such, never a refusal.

use std::os::fd::AsFd;

use nix::sys::resource::{getrlimit, setrlimit, Resource, RLIM_INFINITY};
use serde::{Deserialize, Serialize};

/// The fraction of the caller's own maximum the sandbox gets for counts it may need.
pub const SHARE_DIVISOR: u64 = 4;

/// Where a quota lives.
#[derive(Clone, Debug)]
pub enum Mechanism {
    /// Files under /proc/sys/user/ of the sandbox's user namespace, all set to the value.
    UserSysctls(Vec<&'static str>),
    /// An rlimit of the command's process (and so of everything it starts).
    Rlimit(Resource),
}

/// One quota lowered for the sandbox.
#[derive(Clone, Debug)]
pub struct Quota {
    /// The name the attestation's `limits` uses.
    pub limit: &'static str,
    pub mechanism: Mechanism,
    /// The value set inside the sandbox.
    pub value: u64,
    /// The caller's own value the sandbox's was derived from (None: a fixed value).
    pub caller: Option<u64>,
}

/// What the command's process read back for one quota.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QuotaReadback {
    pub limit: String,
    /// The value read back (one per sysctl file, or the rlimit's soft and hard values);
    /// an error text where reading failed.
    pub values: Vec<String>,
}

/// Where a user namespace's quotas are (its own, seen from a process in it).
const USER_SYSCTL_DIR: &str = "/proc/sys/user";

const NAMESPACE_SYSCTLS: &[&str] = &[
    "max_user_namespaces",
    "max_mnt_namespaces",
    "max_pid_namespaces",
    "max_net_namespaces",
    "max_ipc_namespaces",
    "max_uts_namespaces",
    "max_cgroup_namespaces",
    "max_time_namespaces",
];

/// The quotas for this run: a quarter of the caller's own maximum for counts a program may
/// legitimately need (inotify, message-queue bytes, queued signals), zero for what the
/// seccomp filter already refuses (fanotify groups and marks, new namespaces: defence in
/// depth). Reads the caller's values from /proc/sys/user and its own rlimits; a value that
/// cannot be read, or a file this kernel does not have, is left out (and so neither lowered
/// nor claimed).
pub fn plan() -> Vec<Quota> {
    plan_in(std::path::Path::new(USER_SYSCTL_DIR))
}

/// `plan` with the caller's sysctls read from `dir` (/proc/sys/user; a test names its own).
///
/// Which files exist is one listing of the directory (`getdents64`): only the two inotify
/// maxima are read, for their values. The zero quotas need no value, and each file of
/// /proc/sys costs a lookup, an open and the read that generates it (about 4 µs warm, more
/// in a fresh process): reading ten of them only to learn they exist cost more than the
/// listing. A directory that cannot be listed falls back to reading each file: a file that
/// cannot be read is then left out, as before.
pub fn plan_in(dir: &std::path::Path) -> Vec<Quota> {
    use nix::fcntl::OFlag;
    let mut out = Vec::new();
    let share = |caller: u64| (caller / SHARE_DIVISOR).max(1);
    let dir_fd = nix::fcntl::open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ok();
    let read_user_sysctl = |name: &str| match &dir_fd {
        Some(fd) => read_user_sysctl_in(Some(fd.as_fd()), name),
        None => {
            let raw = crate::sys::read_sysctl(None, &dir.join(name))?;
            Ok(String::from_utf8_lossy(&raw).trim().to_string())
        }
    };
    // The names the kernel lists; None where the listing failed (each file is then tried).
    let listed: Option<Vec<Vec<u8>>> = dir_fd.as_ref().and_then(|fd| {
        let mut names = Vec::new();
        crate::sys::for_each_dir_entry(fd.as_fd(), |name, _| names.push(name.to_vec()))
            .ok()
            .map(|()| names)
    });
    let is_listed =
        |names: &Vec<Vec<u8>>, name: &str| names.iter().any(|n| n.as_slice() == name.as_bytes());
    let exists = |name: &str| match &listed {
        Some(names) => is_listed(names, name),
        None => read_user_sysctl(name).is_ok(),
    };
    for (limit, file) in [
        ("inotify-instances", &["max_inotify_instances"]),
        ("inotify-watches", &["max_inotify_watches"]),
    ] {
        // Not listed: not read either (its read would fail the same way).
        if listed
            .as_ref()
            .is_some_and(|names| !is_listed(names, file[0]))
        {
            continue;
        }
        if let Some(caller) = read_user_sysctl(file[0]).ok().and_then(|v| v.parse().ok()) {
            out.push(Quota {
                limit,
                mechanism: Mechanism::UserSysctls(file.to_vec()),
                value: share(caller),
                caller: Some(caller),
            });
        }
    }
    for (limit, files) in [
        (
            "fanotify",
            &["max_fanotify_groups", "max_fanotify_marks"] as &'static [&'static str],
        ),
        ("namespaces", NAMESPACE_SYSCTLS),
    ] {
        let present: Vec<&'static str> = files.iter().copied().filter(|f| exists(f)).collect();
        if !present.is_empty() {
            out.push(Quota {
                limit,
                mechanism: Mechanism::UserSysctls(present),
                value: 0,
                caller: None,
            });
        }
    }
    for (limit, resource) in [
        ("msgqueue-bytes", Resource::RLIMIT_MSGQUEUE),
        ("sigpending", Resource::RLIMIT_SIGPENDING),
    ] {
        if let Ok((soft, _)) = getrlimit(resource) {
            if soft != RLIM_INFINITY {
                out.push(Quota {
                    limit,
                    mechanism: Mechanism::Rlimit(resource),
                    value: share(soft),
                    caller: Some(soft),
                });
            }
        }
    }
    out
}

/// Writes the sysctl quotas in the calling process's user namespace (init of the sandbox,
/// with /proc of the sandbox mounted) and reads each back through the descriptor it was
/// written through (one `pread` from offset 0: a sysctl's value is generated afresh at each
/// read), before the descriptor is closed: what the kernel holds, as `read_back` reports it
/// (the rlimit quotas are the command's own, read back there). Best effort: a value that
/// could not be written shows in what was read back; a file that could not be opened, by
/// the error. Must come after every namespace init creates, since it forbids new ones —
/// detached mounts (`open_tree` with OPEN_TREE_CLONE, `fsmount`) included: each is an
/// anonymous mount namespace, counted against `user.max_mnt_namespaces` — and before /proc
/// is sealed read-only; nothing in the sandbox can change them afterwards (no process of it
/// holds CAP_SYS_RESOURCE, and /proc is read-only).
pub fn lower_in_namespace(quotas: &[Quota]) -> Vec<QuotaReadback> {
    // Every file through one descriptor of the directory: /proc/sys/user is looked up once.
    let dir = user_sysctl_dir();
    quotas
        .iter()
        .filter_map(|q| match &q.mechanism {
            Mechanism::UserSysctls(files) => Some((q, files)),
            Mechanism::Rlimit(_) => None,
        })
        .map(|(q, files)| {
            let value = q.value.to_string();
            QuotaReadback {
                limit: q.limit.to_string(),
                values: files
                    .iter()
                    .map(|f| {
                        write_and_read_back(
                            dir.as_ref().map(|d| d.as_fd()),
                            &user_sysctl_path(dir.is_some(), f),
                            value.as_bytes(),
                        )
                        .unwrap_or_else(|e| e.to_string())
                    })
                    .collect(),
            }
        })
        .collect()
}

/// One sysctl file: opened for reading and writing, `value` written, and the value then in
/// force read back through the same descriptor (`read_through`).
fn write_and_read_back(
    dir: Option<std::os::fd::BorrowedFd<'_>>,
    path: &std::path::Path,
    value: &[u8],
) -> std::io::Result<String> {
    use nix::fcntl::OFlag;
    let fd = nix::fcntl::openat(
        dir.unwrap_or(nix::fcntl::AT_FDCWD),
        path,
        OFlag::O_RDWR | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    // A refused write leaves the old value, which the read shows.
    let _ = nix::unistd::write(&fd, value);
    read_through(fd.as_fd())
}

/// A sysctl's value, read from the kernel through an open descriptor of its file: one
/// `pread` from offset 0, which must return the whole value (shorter than the buffer and
/// ending with its newline), trimmed.
fn read_through(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<String> {
    let mut buf = [0u8; 64];
    let n = nix::sys::uio::pread(fd, &mut buf, 0)?;
    if !crate::sys::sysctl_value_complete(&buf[..n], buf.len()) {
        return Err(std::io::Error::other(format!(
            "not a whole value: {:?}",
            String::from_utf8_lossy(&buf[..n])
        )));
    }
    Ok(String::from_utf8_lossy(&buf[..n]).trim().to_string())
}

/// Lowers the rlimit quotas of the calling process (soft and hard: the command cannot raise
/// them again, having no CAP_SYS_RESOURCE). Best effort, like `lower_in_namespace`.
pub fn lower_rlimits(quotas: &[Quota]) {
    for q in quotas {
        if let Mechanism::Rlimit(resource) = q.mechanism {
            let _ = setrlimit(resource, q.value, q.value);
        }
    }
}

/// Every quota as read back: the sysctl ones as init read them back when it wrote them
/// (`from_init`, what `lower_in_namespace` returned; a quota missing there was not read
/// back), the rlimit ones in the calling process (the command's, before execve).
pub fn read_back(quotas: &[Quota], from_init: &[QuotaReadback]) -> Vec<QuotaReadback> {
    quotas
        .iter()
        .map(|q| QuotaReadback {
            limit: q.limit.to_string(),
            values: match &q.mechanism {
                Mechanism::UserSysctls(_) => from_init
                    .iter()
                    .find(|r| r.limit == q.limit)
                    .map(|r| r.values.clone())
                    .unwrap_or_else(|| vec!["not read back".to_string()]),
                Mechanism::Rlimit(resource) => match getrlimit(*resource) {
                    Ok((soft, hard)) => vec![soft.to_string(), hard.to_string()],
                    Err(e) => vec![e.to_string()],
                },
            },
        })
        .collect()
}

impl Quota {
    /// Whether the read-back shows the value in force.
    pub fn holds(&self, rb: &QuotaReadback) -> bool {
        !rb.values.is_empty() && rb.values.iter().all(|v| *v == self.value.to_string())
    }

    /// How the quota is set, in words, for `explain` and the attestation.
    pub fn mechanism(&self) -> String {
        match &self.mechanism {
            Mechanism::UserSysctls(files) => format!(
                "{} in the sandbox's user namespace",
                files
                    .iter()
                    .map(|f| format!("user.{f}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Mechanism::Rlimit(resource) => format!("{resource:?} of every sandboxed process"),
        }
    }

    /// What the quota bounds and what it leaves shared.
    pub fn coverage(&self) -> String {
        let whole = match &self.mechanism {
            Mechanism::UserSysctls(_) => "the whole sandbox's count (its user namespace)",
            Mechanism::Rlimit(_) => "the whole sandbox's count (its user namespace and uid)",
        };
        match self.caller {
            Some(c) => format!(
                "bounds {whole} at 1/{SHARE_DIVISOR} of the caller's {c}; what the sandbox uses is charged to the caller's uid on the host as well, whose other processes keep the rest"
            ),
            None => format!(
                "bounds {whole} at zero; defence in depth: the seccomp filter refuses the calls that would use them"
            ),
        }
    }
}

/// `/proc/sys/user` as an `O_PATH` descriptor, so each file of it is one short lookup
/// (None where it cannot be opened: each file is then named by its whole path, and fails or
/// not on its own, as before).
fn user_sysctl_dir() -> Option<std::os::fd::OwnedFd> {
    use nix::fcntl::OFlag;
    nix::fcntl::open(
        USER_SYSCTL_DIR,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ok()
}

fn user_sysctl_path(in_dir: bool, name: &str) -> std::path::PathBuf {
    if in_dir {
        name.into()
    } else {
        format!("/proc/sys/user/{name}").into()
    }
}

/// One file of /proc/sys/user, read from the kernel (one open, one read, one close: see
/// `sys::read_sysctl`), trimmed.
fn read_user_sysctl_in(
    dir: Option<std::os::fd::BorrowedFd<'_>>,
    name: &str,
) -> std::io::Result<String> {
    let raw = crate::sys::read_sysctl(dir, &user_sysctl_path(dir.is_some(), name))?;
    Ok(String::from_utf8_lossy(&raw).trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sysctls(q: &[Quota], limit: &str) -> Option<Vec<&'static str>> {
        q.iter()
            .find(|q| q.limit == limit)
            .map(|q| match &q.mechanism {
                Mechanism::UserSysctls(files) => files.clone(),
                Mechanism::Rlimit(_) => vec![],
            })
    }

    /// Only what the directory lists is planned: a file this kernel does not have is
    /// neither lowered nor claimed, and a value that cannot be parsed is left out.
    #[test]
    fn a_quota_file_that_does_not_exist_is_neither_lowered_nor_claimed() {
        let dir = std::env::temp_dir().join(format!("cwx-quotas-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, value) in [
            ("max_inotify_instances", "128\n"),
            ("max_inotify_watches", "not a number\n"),
            ("max_fanotify_groups", "128\n"),
            ("max_user_namespaces", "1000\n"),
            ("max_time_namespaces", "1000\n"),
            ("unrelated", "1\n"),
        ] {
            std::fs::write(dir.join(name), value).unwrap();
        }
        let q = plan_in(&dir);
        let inotify = q.iter().find(|q| q.limit == "inotify-instances").unwrap();
        assert_eq!((inotify.value, inotify.caller), (32, Some(128)));
        assert!(q.iter().all(|q| q.limit != "inotify-watches"), "{q:?}");
        assert_eq!(
            sysctls(&q, "fanotify").unwrap(),
            vec!["max_fanotify_groups"]
        );
        assert_eq!(
            sysctls(&q, "namespaces").unwrap(),
            vec!["max_user_namespaces", "max_time_namespaces"]
        );
        // None of the sysctl quotas without any file.
        for f in [
            "max_fanotify_groups",
            "max_user_namespaces",
            "max_time_namespaces",
        ] {
            std::fs::remove_file(dir.join(f)).unwrap();
        }
        let q = plan_in(&dir);
        assert!(sysctls(&q, "fanotify").is_none() && sysctls(&q, "namespaces").is_none());
        std::fs::remove_dir_all(&dir).unwrap();
        // A directory that is not there: no sysctl quota at all.
        let q = plan_in(&dir);
        assert!(q
            .iter()
            .all(|q| matches!(q.mechanism, Mechanism::Rlimit(_))));
    }

    /// A value read through a descriptor is accepted only whole: shorter than the buffer and
    /// ending with its newline (anything else is an error, reported as read back).
    #[test]
    fn a_value_read_through_its_descriptor_must_be_whole() {
        let dir = std::env::temp_dir().join(format!("cwx-quota-read-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let read = |content: &[u8]| {
            let path = dir.join("value");
            std::fs::write(&path, content).unwrap();
            let file = std::fs::File::open(&path).unwrap();
            read_through(file.as_fd())
        };
        assert_eq!(read(b"32\n").unwrap(), "32");
        assert!(read(b"32").is_err(), "no newline: perhaps cut short");
        assert!(read(&[b'1'; 64]).is_err(), "a full buffer: perhaps more");
        assert!(read(b"").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// What init writes is what it reads back, through the same descriptor, whatever the
    /// file held before (a file standing in for a sysctl: the write replaces from offset 0).
    #[test]
    fn what_init_writes_it_reads_back_through_the_same_descriptor() {
        let dir = std::env::temp_dir().join(format!("cwx-quota-write-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("max_inotify_instances");
        std::fs::write(&path, b"").unwrap();
        assert_eq!(
            write_and_read_back(None, &path, b"32\n").unwrap(),
            "32",
            "the value written"
        );
        // A file that cannot be opened for writing: the error is what is read back.
        let missing = dir.join("absent");
        assert!(write_and_read_back(None, &missing, b"0\n").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// On this host, the listing plans exactly the files that reading each one finds.
    #[test]
    fn the_listing_plans_what_reading_each_file_finds() {
        let q = plan();
        let planned: Vec<&str> = q
            .iter()
            .flat_map(|q| match &q.mechanism {
                Mechanism::UserSysctls(files) => files.clone(),
                Mechanism::Rlimit(_) => vec![],
            })
            .collect();
        let all = ["max_inotify_instances", "max_inotify_watches"]
            .into_iter()
            .chain(["max_fanotify_groups", "max_fanotify_marks"])
            .chain(NAMESPACE_SYSCTLS.iter().copied());
        for f in all {
            let readable = read_user_sysctl_in(None, f).is_ok();
            assert_eq!(planned.contains(&f), readable, "{f}");
        }
    }
}
