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
