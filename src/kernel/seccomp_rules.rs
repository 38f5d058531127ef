//! seccomp: the kernel attack surface a sandboxed program has no business with, and for
//! `--net none` every socket family but AF_UNIX.
//!
//! Denials return an errno rather than killing, so programs fail cleanly and report why:
//! EPERM for everything, except `clone3` and `openat2`, which get ENOSYS so that libc falls
//! back to `clone` and `openat`, whose flags and mode (unlike theirs, behind a pointer) the
//! filter can inspect.
//!
//! Two groups of argument rules matter beyond attack surface:
//! - set-id bits: for a root caller, root inside is root on the host, so a set-user-ID file
//!   the sandbox left in its write set would make any local user root after the run
//!   (`nosuid` inside the view does not help: the file persists on the host). Every call
//!   that sets a mode (the chmod family) or creates a file with one (open/openat with
//!   O_CREAT or O_TMPFILE, creat, mkdir*, mknod*) is refused when the mode has S_ISUID or
//!   S_ISGID. File capabilities need CAP_SETFCAP, which the command never holds.
//! - native code (policy `exec.native_code = false`): no executable memory that the
//!   program could have written, so an allowed interpreter cannot run native code it made.
//!
//! This file holds the rules and builds the program from them. It stands alone (no
//! `crate::` path) because the build script compiles it too: `build.rs` builds every
//! variant of the program at build time (`seccomp::SeccompProgram::compile` then only looks
//! one up), and the unit tests check each precompiled program equals this file's build.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op,
    SeccompCondition as Cond, SeccompFilter, SeccompRule, TargetArch,
};

/// Socket families the program leaves allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Families {
    /// AF_UNIX only (`--net none`).
    Unix,
    /// AF_UNIX, AF_INET, AF_INET6 (`--net loopback`, the allowlist).
    UnixAndInet,
    /// Every family (`--net host`).
    Any,
}

impl Families {
    #[cfg_attr(not(test), allow(dead_code))] // the build script's and the tests'
    pub const ALL: [Families; 3] = [Families::Unix, Families::UnixAndInet, Families::Any];
}

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

/// Terminal ioctls refused on every descriptor; compared on the low 32 bits only, because
/// the kernel truncates the request number to 32 bits (so `TIOCSTI | 1<<32` is still
/// TIOCSTI):
/// - TIOCSTI and TIOCLINUX push input into a terminal (even the sandbox's own pty: what is
///   typed there comes from the caller alone);
/// - TIOCSCTTY takes a terminal as controlling terminal: the command's process takes its
///   own pty before seccomp, and nothing inside takes another (nor its own back after a
///   setsid);
/// - TIOCSETD changes the line discipline: module autoloading and rarely used kernel code
///   (n_gsm, n_hdlc) that no program in a sandbox needs.
///
/// Every other terminal ioctl stays allowed, so job control and terminal modes work: the
/// kernel confines TIOCSPGRP and TIOCGPGRP to the caller's controlling terminal, and the
/// only terminal in the view is the sandbox's own (see `kernel::pty`).
#[allow(clippy::unnecessary_cast)] // the ioctl request type differs between libc targets
const TERMINAL_DENIED: &[u64] = &[
    libc::TIOCSTI as u64,
    0x541C, // TIOCLINUX
    libc::TIOCSCTTY as u64,
    libc::TIOCSETD as u64,
];

/// Set-user-ID and set-group-ID: either bit in a mode argument is refused.
const SETID_BITS: [u64; 2] = [libc::S_ISUID as u64, libc::S_ISGID as u64];

/// `__O_TMPFILE`, the bit that makes `O_TMPFILE` (which is `__O_TMPFILE | O_DIRECTORY`): an
/// unnamed file that `linkat` can give a name later, so its mode counts like O_CREAT's.
const O_TMPFILE_BIT: u64 = 0o20_000_000;

/// Calls that take a mode, with the index of the mode argument and, for the open family,
/// of the flags argument (the mode only counts when the flags create a file).
const MODE_CALLS: &[(&str, libc::c_long, u8, Option<u8>)] = &[
    ("chmod", libc::SYS_chmod, 1, None),
    ("fchmod", libc::SYS_fchmod, 1, None),
    ("fchmodat", libc::SYS_fchmodat, 2, None),
    ("fchmodat2", libc::SYS_fchmodat2, 2, None),
    ("creat", libc::SYS_creat, 1, None),
    ("mkdir", libc::SYS_mkdir, 1, None),
    ("mkdirat", libc::SYS_mkdirat, 2, None),
    ("mknod", libc::SYS_mknod, 1, None),
    ("mknodat", libc::SYS_mknodat, 2, None),
    ("open", libc::SYS_open, 2, Some(1)),
    ("openat", libc::SYS_openat, 3, Some(2)),
];

/// `personality(2)`'s READ_IMPLIES_EXEC: every later PROT_READ mapping becomes executable
/// without PROT_EXEC ever appearing in an argument.
const READ_IMPLIES_EXEC: u64 = 0x040_0000;
/// `shmat(2)`'s SHM_EXEC: an executable mapping of a System V segment the program wrote.
const SHM_EXEC: u64 = 0o100_000;

/// The filter, and a human-readable list of what it denies. `forbid_exec_memfd`: refuse
/// memfd_create without MFD_NOEXEC_SEAL. `native_code`: false refuses every way to
/// executable memory the program could have written (see `native_code_rules`).
pub fn build(
    families: Families,
    forbid_exec_memfd: bool,
    native_code: bool,
) -> Result<(BpfProgram, Vec<String>), String> {
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
        TERMINAL_DENIED
            .iter()
            .map(|req| rule(vec![cond(1, Len::Dword, Op::Eq, *req)?]))
            .collect::<Result<_, _>>()?,
    );
    denies.push("terminal input injection (ioctl TIOCSTI, TIOCLINUX), taking a controlling terminal (TIOCSCTTY), line disciplines (TIOCSETD)".into());
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
    for (nr, rules) in setid_rules()? {
        eperm.insert(nr, rules);
    }
    denies.push(format!(
            "set-user-ID and set-group-ID mode bits on {} (a set-id file left in the write set would carry the caller's host identity); {}",
            MODE_CALLS
                .iter()
                .map(|(name, _, _, flags)| if flags.is_some() {
                    format!("{name} with O_CREAT or O_TMPFILE")
                } else {
                    name.to_string()
                })
                .collect::<Vec<_>>()
                .join(", "),
            "openat2 answers ENOSYS (its mode is behind a pointer; libc falls back to openat)"
        ));
    if !native_code {
        for (nr, rules) in native_code_rules()? {
            eperm.insert(nr, rules);
        }
        denies.push("executable memory the program could have written (exec.native_code = false): mmap with PROT_EXEC of anonymous memory or with PROT_WRITE, mprotect and pkey_mprotect with PROT_EXEC, shmat with SHM_EXEC, personality(READ_IMPLIES_EXEC), memfd_create and memfd_secret".into());
    }
    let allowed_families: &[u64] = match families {
        Families::Unix => &[libc::AF_UNIX as u64],
        Families::UnixAndInet => &[
            libc::AF_UNIX as u64,
            libc::AF_INET as u64,
            libc::AF_INET6 as u64,
        ],
        Families::Any => &[],
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
            if families == Families::Unix {
                "AF_UNIX"
            } else {
                "AF_UNIX, AF_INET, AF_INET6"
            }
        ));
    }

    let filter = SeccompFilter::new(
        eperm,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(|e| format!("seccomp: {e}"))?;
    let program: BpfProgram = filter.try_into().map_err(|e| format!("seccomp: {e}"))?;
    // One filter per run: the calls answered ENOSYS are checked in the same program,
    // right after the architecture check (`after_arch_check`).
    let program = after_arch_check(program)?;
    denies.push("x32 syscall numbers (the filter is written for x86_64 numbers)".into());
    Ok((program, denies))
}

/// For every call in MODE_CALLS: refuse a mode with S_ISUID or S_ISGID, and for the open
/// family only when the flags create a file (O_CREAT, or O_TMPFILE). Conditions of one rule
/// are ANDed, rules ORed, so each (creating flag, set-id bit) pair is one rule.
fn setid_rules() -> Result<Vec<(libc::c_long, Vec<SeccompRule>)>, String> {
    let bit = |arg: u8, bit: u64| cond(arg, Len::Dword, Op::MaskedEq(bit), bit);
    let mut out = Vec::new();
    for (_, nr, mode_arg, flags_arg) in MODE_CALLS {
        let mut rules = Vec::new();
        for setid in SETID_BITS {
            match flags_arg {
                None => rules.push(rule(vec![bit(*mode_arg, setid)?])?),
                Some(flags) => {
                    for creating in [libc::O_CREAT as u64, O_TMPFILE_BIT] {
                        rules.push(rule(vec![bit(*flags, creating)?, bit(*mode_arg, setid)?])?);
                    }
                }
            }
        }
        out.push((*nr, rules));
    }
    Ok(out)
}

/// Under `exec.native_code = false`, every way to executable memory whose contents the
/// program chose:
/// - mmap with PROT_EXEC of anonymous memory, and any mmap asking for PROT_WRITE and
///   PROT_EXEC together (a private writable executable mapping of a file is the same thing);
///   a file mapped PROT_EXEC read-only is what the dynamic loader does, and what the mount
///   view's `noexec` governs;
/// - mprotect and pkey_mprotect with PROT_EXEC at all (the filter cannot tell "adding" from
///   "keeping"; the loader maps code with mmap and never mprotects to PROT_EXEC unless a
///   library has text relocations or asks for an executable stack);
/// - shmat with SHM_EXEC;
/// - personality with READ_IMPLIES_EXEC (then PROT_READ means PROT_EXEC); the query
///   `personality(0xffffffff)` stays allowed;
/// - memfd_create and memfd_secret: a memfd can be written, then mapped PROT_EXEC (even one
///   sealed F_SEAL_EXEC: that seal governs the mode bits, not mmap).
fn native_code_rules() -> Result<Vec<(libc::c_long, Vec<SeccompRule>)>, String> {
    let has = |arg: u8, bits: u64| cond(arg, Len::Dword, Op::MaskedEq(bits), bits);
    let exec = libc::PROT_EXEC as u64;
    let write_exec = (libc::PROT_WRITE | libc::PROT_EXEC) as u64;
    Ok(vec![
        (
            libc::SYS_mmap,
            vec![
                rule(vec![has(2, exec)?, has(3, libc::MAP_ANONYMOUS as u64)?])?,
                rule(vec![has(2, write_exec)?])?,
            ],
        ),
        (libc::SYS_mprotect, vec![rule(vec![has(2, exec)?])?]),
        (libc::SYS_pkey_mprotect, vec![rule(vec![has(2, exec)?])?]),
        (libc::SYS_shmat, vec![rule(vec![has(2, SHM_EXEC)?])?]),
        (
            libc::SYS_personality,
            vec![rule(vec![
                cond(0, Len::Dword, Op::Ne, 0xffff_ffff)?,
                has(0, READ_IMPLIES_EXEC)?,
            ])?],
        ),
        (libc::SYS_memfd_create, vec![]),
        (libc::SYS_memfd_secret, vec![]),
    ])
}

fn rule(conditions: Vec<Cond>) -> Result<SeccompRule, String> {
    SeccompRule::new(conditions).map_err(|e| format!("seccomp: {e}"))
}

fn cond(arg: u8, len: Len, op: Op, value: u64) -> Result<Cond, String> {
    Cond::new(arg, len, op, value).map_err(|e| format!("seccomp: {e}"))
}

/// seccompiler checks the architecture first (AUDIT_ARCH_X86_64, else kill), then matches
/// the syscall number against its rules, all with one action (EPERM here). Two checks go in
/// between, right after the arch check, as one self-contained block (its jumps stay inside
/// it; the jumps before it and after it are relative and stay on their side, so no offset
/// changes):
/// - on x86_64 the x32 ABI shares the architecture value and offsets syscall numbers by
///   0x4000_0000, which would slip past every number the filter lists: nr >= 0x4000_0000
///   → EPERM;
/// - `clone3` and `openat2` → ENOSYS (their flags and mode are behind a pointer the filter
///   cannot read; libc falls back to `clone` and `openat`, which the rules inspect).
fn after_arch_check(mut program: BpfProgram) -> Result<BpfProgram, String> {
    const BPF_LD_W_ABS: u16 = 0x20;
    const BPF_JMP_JGE_K: u16 = 0x05 | 0x30;
    const BPF_JMP_JEQ_K: u16 = 0x05 | 0x10;
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
    let errno = |e: i32| libc::SECCOMP_RET_ERRNO | e as u32;
    let mut block = vec![insn(BPF_LD_W_ABS, 0, 0, 0)]; // A = seccomp_data.nr
    if std::env::consts::ARCH == "x86_64" {
        block.push(insn(BPF_JMP_JGE_K, 0, 1, 0x4000_0000));
        block.push(insn(BPF_RET_K, 0, 0, errno(libc::EPERM)));
    }
    block.extend([
        insn(BPF_JMP_JEQ_K, 1, 0, libc::SYS_clone3 as u32),
        insn(BPF_JMP_JEQ_K, 0, 1, libc::SYS_openat2 as u32),
        insn(BPF_RET_K, 0, 0, errno(libc::ENOSYS)),
    ]);
    program.splice(arch_check_len..arch_check_len, block);
    Ok(program)
}
