//! User namespaces: the identity maps of a new user namespace.

use nix::unistd::Pid;

/// Maps the caller's uid/gid to themselves inside the new user namespace. Root maps the
/// whole range so file ownership reads the same inside; everyone else may map only
/// themselves (and must give up setgroups to do so).
pub fn write_id_maps(pid: Pid, uid: u32, gid: u32) -> Result<(), String> {
    let write = |file: &str, text: &str| {
        std::fs::write(format!("/proc/{pid}/{file}"), text)
            .map_err(|e| format!("writing {file}: {e}"))
    };
    if uid == 0 {
        write("uid_map", "0 0 4294967295\n")?;
        write("gid_map", "0 0 4294967295\n")?;
    } else {
        write("setgroups", "deny")?;
        write("uid_map", &format!("{uid} {uid} 1\n"))?;
        write("gid_map", &format!("{gid} {gid} 1\n"))?;
    }
    Ok(())
}

/// Why this host's settings deny the caller new user namespaces, if they do: read from the
/// sysctls that say so (a seccomp filter that refuses `clone(CLONE_NEWUSER)`, as container
/// runtimes install, shows only when the clone is attempted).
pub fn denied_by_sysctl() -> Option<String> {
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .map(|v| v.trim().to_string())
    };
    if read("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        return Some(
            "user.max_user_namespaces is 0 (raise it: sysctl user.max_user_namespaces=15000)"
                .into(),
        );
    }
    if nix::unistd::geteuid().is_root() {
        return None;
    }
    if read("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        return Some(
            "kernel.unprivileged_userns_clone is 0 (Debian: sysctl kernel.unprivileged_userns_clone=1)"
                .into(),
        );
    }
    if read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref() == Some("1") {
        return Some(
            "AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns=1; Ubuntu: allow cw-exec with an AppArmor profile granting userns, or set the sysctl to 0)"
                .into(),
        );
    }
    None
}
