//! seccomp: the kernel attack surface a sandboxed program has no business with, and for
//! `--net none` every socket family but AF_UNIX.
//!
//! Denials return an errno rather than killing, so programs fail cleanly and report why:
//! EPERM for everything, except `clone3`, which gets ENOSYS so that glibc falls back to
//! `clone`, whose flags (unlike clone3's, behind a pointer) the filter can inspect.
//!
//! The program is compiled once, before the sandbox is built (the plan holds it), and
//! installed as the very last step before the read-back and `execve`.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op,
    SeccompCondition as Cond, SeccompFilter, SeccompRule, TargetArch,
};
use sha2::{Digest, Sha256};

use crate::policy::NetMode;

/// Syscalls denied outright with EPERM, grouped by why.
const DENIED: &[(&str, &[libc::c_long])] = &[
    (
        "io_uring: a second syscall interface that bypasses syscall filtering",
        &[
            libc::SYS_io_uring_setup,
            libc::SYS_io_uring_enter,
            libc::SYS_io_uring_register,
        ],
    ),
    (
        "bpf and perf: kernel attack surface",
        &[libc::SYS_bpf, libc::SYS_perf_event_open],
    ),
    (
        "kernel keyrings",
        &[libc::SYS_keyctl, libc::SYS_add_key, libc::SYS_request_key],
    ),
    (
        "userfaultfd: a staple of kernel exploits",
        &[libc::SYS_userfaultfd],
    ),
    (
        "tracing and reading other processes",
        &[
            libc::SYS_ptrace,
            libc::SYS_process_vm_readv,
            libc::SYS_process_vm_writev,
            libc::SYS_pidfd_getfd,
            libc::SYS_process_madvise,
            libc::SYS_kcmp,
        ],
    ),
    (
        "kernel replacement and modules",
        &[
            libc::SYS_kexec_load,
            libc::SYS_kexec_file_load,
            libc::SYS_init_module,
            libc::SYS_finit_module,
            libc::SYS_delete_module,
        ],
    ),
    (
        "mounts and root changes",
        &[
            libc::SYS_mount,
            libc::SYS_umount2,
            libc::SYS_pivot_root,
            libc::SYS_chroot,
            libc::SYS_fsopen,
            libc::SYS_fsconfig,
            libc::SYS_fsmount,
            libc::SYS_fspick,
            libc::SYS_move_mount,
            libc::SYS_open_tree,
            libc::SYS_mount_setattr,
        ],
    ),
    ("namespaces", &[libc::SYS_setns]),
    (
        "file handles (open_by_handle_at escapes bind mounts)",
        &[libc::SYS_name_to_handle_at, libc::SYS_open_by_handle_at],
    ),
    (
        "host administration",
        &[
            libc::SYS_reboot,
            libc::SYS_swapon,
            libc::SYS_swapoff,
            libc::SYS_acct,
            libc::SYS_quotactl,
            libc::SYS_settimeofday,
            libc::SYS_clock_settime,
            libc::SYS_clock_adjtime,
            libc::SYS_adjtimex,
            libc::SYS_syslog,
            libc::SYS_vhangup,
            libc::SYS_iopl,
            libc::SYS_ioperm,
            libc::SYS_fanotify_init,
            libc::SYS_lookup_dcookie,
        ],
    ),
];

/// Namespace-creating flags of clone(2) and unshare(2).
const NAMESPACE_FLAGS: &[u64] = &[
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
    libc::CLONE_NEWCGROUP as u64,
    0x80, // CLONE_NEWTIME
];

/// ioctls that push input into a terminal; compared on the low 32 bits only, because the
/// kernel truncates the request number to 32 bits (so `TIOCSTI | 1<<32` is still TIOCSTI).
#[allow(clippy::unnecessary_cast)] // the ioctl request type differs between libc targets
const TERMINAL_INJECTION: &[u64] = &[libc::TIOCSTI as u64, 0x541C /* TIOCLINUX */];

/// The compiled seccomp programs (one per action), ready to install.
#[derive(Clone)]
pub struct SeccompProgram {
    pub filters: Vec<BpfProgram>,
    /// sha256 over every instruction of every filter, in install order.
    pub sha256: String,
    /// Human-readable list of what the filters deny, for `explain` and the attestation.
    pub denies: Vec<String>,
}

impl SeccompProgram {
    /// `forbid_exec_memfd`: refuse memfd_create without MFD_NOEXEC_SEAL. Landlock does not
    /// mediate exec of a memfd; where cw-exec cannot set vm.memfd_noexec=2 for the sandbox's
    /// PID namespace (only the host's root may write that sysctl), this is the fallback.
    pub fn compile(net: NetMode, forbid_exec_memfd: bool) -> Result<SeccompProgram, String> {
        let arch = TargetArch::try_from(std::env::consts::ARCH)
            .map_err(|e| format!("seccomp: unsupported architecture: {e}"))?;
        let mut eperm: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
        let mut denies = Vec::new();
        for (why, calls) in DENIED {
            for nr in *calls {
                eperm.insert(*nr, vec![]);
            }
            denies.push(format!("{} ({} syscalls)", why, calls.len()));
        }
        let any_flag = |arg: u8| -> Result<Vec<SeccompRule>, String> {
            NAMESPACE_FLAGS
                .iter()
                .map(|flag| rule(vec![cond(arg, Len::Qword, Op::MaskedEq(*flag), *flag)?]))
                .collect()
        };
        eperm.insert(libc::SYS_unshare, any_flag(0)?);
        eperm.insert(libc::SYS_clone, any_flag(0)?);
        denies.push("namespace creation via clone/unshare flags; clone3 answers ENOSYS".into());
        eperm.insert(
            libc::SYS_ioctl,
            TERMINAL_INJECTION
                .iter()
                .map(|req| rule(vec![cond(1, Len::Dword, Op::Eq, *req)?]))
                .collect::<Result<_, _>>()?,
        );
        denies.push("terminal input injection (ioctl TIOCSTI, TIOCLINUX)".into());
        if forbid_exec_memfd {
            const MFD_NOEXEC_SEAL: u64 = 0x8;
            eperm.insert(
                libc::SYS_memfd_create,
                vec![rule(vec![cond(
                    1,
                    Len::Dword,
                    Op::MaskedEq(MFD_NOEXEC_SEAL),
                    0,
                )?])?],
            );
            denies.push("memfd_create without MFD_NOEXEC_SEAL (executable memfds)".into());
        }
        let allowed_families: &[u64] = match net {
            NetMode::None => &[libc::AF_UNIX as u64],
            NetMode::Loopback => &[
                libc::AF_UNIX as u64,
                libc::AF_INET as u64,
                libc::AF_INET6 as u64,
            ],
            NetMode::Host => &[],
        };
        if !allowed_families.is_empty() {
            let conds = allowed_families
                .iter()
                .map(|family| cond(0, Len::Dword, Op::Ne, *family))
                .collect::<Result<Vec<_>, _>>()?;
            eperm.insert(libc::SYS_socket, vec![rule(conds.clone())?]);
            eperm.insert(libc::SYS_socketpair, vec![rule(conds)?]);
            denies.push(format!(
                "socket families other than {}",
                if net == NetMode::None {
                    "AF_UNIX"
                } else {
                    "AF_UNIX, AF_INET, AF_INET6"
                }
            ));
        }

        let mut enosys: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
        enosys.insert(libc::SYS_clone3, vec![]);

        let build = |rules, errno: i32| -> Result<BpfProgram, String> {
            let filter = SeccompFilter::new(
                rules,
                SeccompAction::Allow,
                SeccompAction::Errno(errno as u32),
                arch,
            )
            .map_err(|e| format!("seccomp: {e}"))?;
            let program: BpfProgram = filter.try_into().map_err(|e| format!("seccomp: {e}"))?;
            deny_x32(program)
        };
        let filters = vec![build(eperm, libc::EPERM)?, build(enosys, libc::ENOSYS)?];
        denies.push("x32 syscall numbers (the filter is written for x86_64 numbers)".into());

        let mut hasher = Sha256::new();
        for program in &filters {
            for insn in program {
                hasher.update(insn.code.to_le_bytes());
                hasher.update([insn.jt, insn.jf]);
                hasher.update(insn.k.to_le_bytes());
            }
        }
        let sha256 = hex(&hasher.finalize());
        Ok(SeccompProgram {
            filters,
            sha256,
            denies,
        })
    }

    /// Installs every filter on the calling thread. no_new_privs must already be set.
    pub fn install(&self) -> Result<(), String> {
        for program in &self.filters {
            seccompiler::apply_filter(program).map_err(|e| format!("seccomp: {e}"))?;
        }
        Ok(())
    }
}

fn rule(conditions: Vec<Cond>) -> Result<SeccompRule, String> {
    SeccompRule::new(conditions).map_err(|e| format!("seccomp: {e}"))
}

fn cond(arg: u8, len: Len, op: Op, value: u64) -> Result<Cond, String> {
    Cond::new(arg, len, op, value).map_err(|e| format!("seccomp: {e}"))
}

/// seccompiler checks the architecture first (AUDIT_ARCH_X86_64, else kill), but on x86_64
/// the x32 ABI shares that architecture value and offsets syscall numbers by 0x4000_0000,
/// which would slip past every number the filter lists. Insert, right after the arch check,
/// "syscall number >= 0x4000_0000 → EPERM". The inserted block sits between the arch check
/// (whose jumps stay inside it) and the rest (whose jumps are relative and stay inside it),
/// so no jump offset changes.
fn deny_x32(mut program: BpfProgram) -> Result<BpfProgram, String> {
    if std::env::consts::ARCH != "x86_64" {
        return Ok(program);
    }
    const BPF_LD_W_ABS: u16 = 0x20;
    const BPF_JMP_JGE_K: u16 = 0x05 | 0x30;
    const BPF_RET_K: u16 = 0x06;
    let arch_check_len = 3;
    let shape_ok = program.len() > arch_check_len
        && program[0].code == BPF_LD_W_ABS
        && program[0].k == 4 // offsetof(struct seccomp_data, arch)
        && program[2].code == BPF_RET_K;
    if !shape_ok {
        return Err("seccomp: unexpected program layout from seccompiler; refusing to guess where the architecture check ends".into());
    }
    let insn = |code, jt, jf, k| seccompiler::sock_filter { code, jt, jf, k };
    let block = [
        insn(BPF_LD_W_ABS, 0, 0, 0), // A = seccomp_data.nr
        insn(BPF_JMP_JGE_K, 0, 1, 0x4000_0000),
        insn(
            BPF_RET_K,
            0,
            0,
            libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
        ),
    ];
    program.splice(arch_check_len..arch_check_len, block);
    Ok(program)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_for_every_net_mode_with_distinct_hashes() {
        let none = SeccompProgram::compile(NetMode::None, false).unwrap();
        let lo = SeccompProgram::compile(NetMode::Loopback, false).unwrap();
        let host = SeccompProgram::compile(NetMode::Host, false).unwrap();
        assert_ne!(
            none.sha256,
            SeccompProgram::compile(NetMode::None, true).unwrap().sha256
        );
        assert_eq!(none.filters.len(), 2);
        assert_ne!(none.sha256, lo.sha256);
        assert_ne!(lo.sha256, host.sha256);
    }
}
