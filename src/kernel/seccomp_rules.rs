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
//! This file holds the rules (`rules`: each syscall's verdict, as data) and compiles them
//! into one classic BPF program (`compile`: an architecture check, a binary search over
//! syscall numbers, argument comparisons only for the calls that have rules; see
//! docs/seccomp.md, "The program"). It stands alone (no `crate::` path) because the build
//! script compiles it too: `build.rs` builds every variant of the program at build time
//! (`seccomp::SeccompProgram::compile` then only looks one up), and the unit tests check
//! each precompiled program equals this file's build, and run every variant in a BPF
//! interpreter against the rules and against the program seccompiler built from the same
//! tables until 2026-11-29.

use std::collections::BTreeMap;

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
            // Port I/O: x86 only.
            #[cfg(target_arch = "x86_64")]
            libc::SYS_iopl,
            #[cfg(target_arch = "x86_64")]
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
/// The calls older than their `at` forms (chmod, creat, mkdir, mknod, open) exist on x86_64
/// only: newer architectures (aarch64, riscv64) have just the `at` forms.
const MODE_CALLS: &[(&str, libc::c_long, u8, Option<u8>)] = &[
    #[cfg(target_arch = "x86_64")]
    ("chmod", libc::SYS_chmod, 1, None),
    ("fchmod", libc::SYS_fchmod, 1, None),
    ("fchmodat", libc::SYS_fchmodat, 2, None),
    ("fchmodat2", SYS_FCHMODAT2, 2, None),
    #[cfg(target_arch = "x86_64")]
    ("creat", libc::SYS_creat, 1, None),
    #[cfg(target_arch = "x86_64")]
    ("mkdir", libc::SYS_mkdir, 1, None),
    ("mkdirat", libc::SYS_mkdirat, 2, None),
    #[cfg(target_arch = "x86_64")]
    ("mknod", libc::SYS_mknod, 1, None),
    ("mknodat", libc::SYS_mknodat, 2, None),
    #[cfg(target_arch = "x86_64")]
    ("open", libc::SYS_open, 2, Some(1)),
    ("openat", libc::SYS_openat, 3, Some(2)),
];

/// fchmodat2(2) (Linux 6.6): one number on every architecture (the shared table from 425
/// on), which the libc crate names for x86_64 but not yet for every other.
const SYS_FCHMODAT2: libc::c_long = 452;

/// `personality(2)`'s READ_IMPLIES_EXEC: every later PROT_READ mapping becomes executable
/// without PROT_EXEC ever appearing in an argument.
const READ_IMPLIES_EXEC: u64 = 0x040_0000;
/// `shmat(2)`'s SHM_EXEC: an executable mapping of a System V segment the program wrote.
const SHM_EXEC: u64 = 0o100_000;

/// One classic BPF instruction, laid out as the kernel's `struct sock_filter`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// A 32-bit half of a 64-bit syscall argument. Classic BPF loads 32 bits at a time, so a
/// comparison of a whole argument is one comparison on each half; a rule compares the
/// halves it names and no others (the other half may hold anything).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Half {
    Low,
    High,
}

/// A test of one half of an argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Test {
    Eq(u32),
    Ne(u32),
    /// At least one of these bits is set.
    AnyBit(u32),
    /// None of these bits is set.
    NoBit(u32),
    /// Every one of these bits is set.
    AllBits(u32),
}

/// One condition: `test` holds for `half` of argument `arg` (0..=5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cond {
    pub arg: u8,
    pub half: Half,
    pub test: Test,
}

/// A rule holds when every one of its conditions does (an empty rule is refused: say
/// `Verdict::Eperm`).
pub type Rule = Vec<Cond>;

/// What the program answers for one syscall number. Numbers the rules do not name are
/// allowed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Eperm,
    Enosys,
    /// EPERM when at least one of the rules holds, else allowed.
    EpermIf(Vec<Rule>),
}

/// The verdict of every syscall number the rules name (x86_64 numbers on x86_64).
pub type Calls = BTreeMap<u32, Verdict>;

/// The filter, and a human-readable list of what it denies. `forbid_exec_memfd`: refuse
/// memfd_create without MFD_NOEXEC_SEAL. `native_code`: false refuses every way to
/// executable memory the program could have written (see `native_code_rules`).
pub fn build(
    families: Families,
    forbid_exec_memfd: bool,
    native_code: bool,
) -> Result<(Vec<Insn>, Vec<String>), String> {
    let (calls, denies) = rules(families, forbid_exec_memfd, native_code);
    Ok((compile(&calls)?, denies))
}

/// The rules as data: each syscall's verdict, and what they deny in words.
pub fn rules(
    families: Families,
    forbid_exec_memfd: bool,
    native_code: bool,
) -> (Calls, Vec<String>) {
    let mut calls = Calls::new();
    let mut denies = Vec::new();
    for (why, list) in DENIED {
        for n in *list {
            calls.insert(nr(*n), Verdict::Eperm);
        }
        denies.push(format!("{} ({} syscalls)", why, list.len()));
    }
    // clone's and unshare's flags are a 64-bit argument: any namespace flag set.
    let namespaces = any_bit64(0, single_bits(NAMESPACE_FLAGS));
    calls.insert(nr(libc::SYS_unshare), Verdict::EpermIf(namespaces.clone()));
    calls.insert(nr(libc::SYS_clone), Verdict::EpermIf(namespaces));
    denies.push("namespace creation via clone/unshare flags; clone3 answers ENOSYS".into());
    // The request compared on its low 32 bits (see TERMINAL_DENIED).
    calls.insert(
        nr(libc::SYS_ioctl),
        Verdict::EpermIf(
            TERMINAL_DENIED
                .iter()
                .map(|req| vec![low(1, Test::Eq(dword(*req)))])
                .collect(),
        ),
    );
    denies.push("terminal input injection (ioctl TIOCSTI, TIOCLINUX), taking a controlling terminal (TIOCSCTTY), line disciplines (TIOCSETD)".into());
    if forbid_exec_memfd {
        const MFD_NOEXEC_SEAL: u32 = 0x8;
        calls.insert(
            nr(libc::SYS_memfd_create),
            Verdict::EpermIf(vec![vec![low(1, Test::NoBit(MFD_NOEXEC_SEAL))]]),
        );
        denies.push("memfd_create without MFD_NOEXEC_SEAL (executable memfds)".into());
    }
    for (n, verdict) in setid_rules() {
        calls.insert(n, verdict);
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
        // After the memfd rule: memfd_create is refused outright here.
        for (n, verdict) in native_code_rules() {
            calls.insert(n, verdict);
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
        // One rule: the family (low 32 bits) is none of the allowed ones.
        let rule: Rule = allowed_families
            .iter()
            .map(|family| low(0, Test::Ne(dword(*family))))
            .collect();
        calls.insert(nr(libc::SYS_socket), Verdict::EpermIf(vec![rule.clone()]));
        calls.insert(nr(libc::SYS_socketpair), Verdict::EpermIf(vec![rule]));
        denies.push(format!(
            "socket families other than {}",
            if families == Families::Unix {
                "AF_UNIX"
            } else {
                "AF_UNIX, AF_INET, AF_INET6"
            }
        ));
    }
    // Last, so that nothing above overrides them: their flags and mode are behind a pointer
    // the filter cannot read; libc falls back to clone and openat, which the rules inspect.
    calls.insert(nr(libc::SYS_clone3), Verdict::Enosys);
    calls.insert(nr(libc::SYS_openat2), Verdict::Enosys);
    denies.push("x32 syscall numbers (the filter is written for x86_64 numbers)".into());
    (calls, denies)
}

/// For every call in MODE_CALLS: refuse a mode with S_ISUID or S_ISGID, and for the open
/// family only when the flags create a file (O_CREAT, or O_TMPFILE). Mode and flags are
/// compared on their low 32 bits (both are 32-bit types; the kernel ignores the rest).
fn setid_rules() -> Vec<(u32, Verdict)> {
    let setid = single_bits(&SETID_BITS);
    let creating = single_bits(&[libc::O_CREAT as u64, O_TMPFILE_BIT]);
    MODE_CALLS
        .iter()
        .map(|(_, n, mode_arg, flags_arg)| {
            let mut rule = Vec::new();
            if let Some(flags) = flags_arg {
                rule.push(low(*flags, Test::AnyBit(dword(creating))));
            }
            rule.push(low(*mode_arg, Test::AnyBit(dword(setid))));
            (nr(*n), Verdict::EpermIf(vec![rule]))
        })
        .collect()
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
///
/// Every argument is compared on its low 32 bits (prot, flags, shmflg and persona are
/// 32-bit types).
fn native_code_rules() -> Vec<(u32, Verdict)> {
    let exec = dword(libc::PROT_EXEC as u64);
    let write_exec = dword((libc::PROT_WRITE | libc::PROT_EXEC) as u64);
    let anonymous = dword(libc::MAP_ANONYMOUS as u64);
    vec![
        (
            nr(libc::SYS_mmap),
            Verdict::EpermIf(vec![
                vec![
                    low(2, Test::AllBits(exec)),
                    low(3, Test::AllBits(anonymous)),
                ],
                vec![low(2, Test::AllBits(write_exec))],
            ]),
        ),
        (
            nr(libc::SYS_mprotect),
            Verdict::EpermIf(vec![vec![low(2, Test::AllBits(exec))]]),
        ),
        (
            nr(libc::SYS_pkey_mprotect),
            Verdict::EpermIf(vec![vec![low(2, Test::AllBits(exec))]]),
        ),
        (
            nr(libc::SYS_shmat),
            Verdict::EpermIf(vec![vec![low(2, Test::AllBits(dword(SHM_EXEC)))]]),
        ),
        (
            nr(libc::SYS_personality),
            Verdict::EpermIf(vec![vec![
                low(0, Test::Ne(0xffff_ffff)),
                low(0, Test::AllBits(dword(READ_IMPLIES_EXEC))),
            ]]),
        ),
        (nr(libc::SYS_memfd_create), Verdict::Eperm),
        (nr(libc::SYS_memfd_secret), Verdict::Eperm),
    ]
}

fn nr(n: libc::c_long) -> u32 {
    u32::try_from(n).expect("seccomp: a syscall number is a small non-negative number")
}

/// A constant compared with a 32-bit half.
fn dword(v: u64) -> u32 {
    u32::try_from(v).expect("seccomp: a 32-bit comparison with a constant wider than 32 bits")
}

fn low(arg: u8, test: Test) -> Cond {
    Cond {
        arg,
        half: Half::Low,
        test,
    }
}

/// The union of flags that are each one bit: "any of them set" is then the same as "one of
/// them fully set", which is what the rules mean.
fn single_bits(flags: &[u64]) -> u64 {
    flags.iter().fold(0, |all, flag| {
        assert!(flag.is_power_of_two(), "seccomp: {flag:#x} is not one bit");
        all | flag
    })
}

/// Any of `bits` set in a 64-bit argument: one rule per half holding some of them.
fn any_bit64(arg: u8, bits: u64) -> Vec<Rule> {
    [(Half::Low, bits as u32), (Half::High, (bits >> 32) as u32)]
        .into_iter()
        .filter(|(_, b)| *b != 0)
        .map(|(half, b)| {
            vec![Cond {
                arg,
                half,
                test: Test::AnyBit(b),
            }]
        })
        .collect()
}

// Classic BPF opcodes (linux/bpf_common.h) and offsets into `struct seccomp_data`.
const LD_W_ABS: u16 = 0x20;
const ALU_AND_K: u16 = 0x54;
const JMP_JA: u16 = 0x05;
const JMP_JEQ_K: u16 = 0x15;
const JMP_JGE_K: u16 = 0x35;
const JMP_JSET_K: u16 = 0x45;
const RET_K: u16 = 0x06;
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;
const DATA_ARGS: u32 = 16;
/// On x86_64 the x32 ABI shares the architecture value and offsets its numbers by this.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// The return values of the program.
pub const RET_ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
pub const RET_KILL_PROCESS: u32 = libc::SECCOMP_RET_KILL_PROCESS;
pub const fn ret_errno(errno: i32) -> u32 {
    libc::SECCOMP_RET_ERRNO | (errno as u32 & libc::SECCOMP_RET_DATA)
}

/// AUDIT_ARCH_* (linux/audit.h) of the architecture this is built for.
pub fn audit_arch() -> Result<u32, String> {
    match std::env::consts::ARCH {
        "x86_64" => Ok(62 | 0x8000_0000 | 0x4000_0000),
        "aarch64" => Ok(183 | 0x8000_0000 | 0x4000_0000),
        "riscv64" => Ok(243 | 0x8000_0000 | 0x4000_0000),
        other => Err(format!("seccomp: unsupported architecture: {other}")),
    }
}

/// The program for `calls`:
///
/// 1. `A = arch`; not this build's architecture → KILL_PROCESS.
/// 2. `A = nr`; a binary search (JGE) over the numbers where the verdict changes: every
///    interval of numbers with one verdict is one leaf (on x86_64, `nr >= 0x40000000`, the
///    x32 numbers, is the last: EPERM). A leaf is a jump target after the tree: a return,
///    or the block of a syscall with argument rules (one block for calls whose rules are
///    equal).
/// 3. The blocks: for each rule in turn, each condition loads its half of its argument
///    (unless A holds it already) and tests it: JEQ for Eq/Ne, JSET for bits (one bit, or
///    "any of"), AND then JEQ for "all of" several bits. A failing condition goes to the
///    next rule (after the last: ALLOW); the last condition of a rule holding → EPERM.
/// 4. The returns: ALLOW, EPERM, ENOSYS, each once.
///
/// Every jump is forward and within 255 instructions (the program is refused otherwise).
pub fn compile(calls: &Calls) -> Result<Vec<Insn>, String> {
    let x86_64 = std::env::consts::ARCH == "x86_64";
    let mut asm = Asm::default();
    let mut rets: Vec<(u32, usize)> = Vec::new();
    let mut ret = |asm: &mut Asm, value: u32| match rets.iter().find(|(v, _)| *v == value) {
        Some((_, label)) => *label,
        None => {
            let label = asm.label();
            rets.push((value, label));
            label
        }
    };
    let allow = ret(&mut asm, RET_ALLOW);
    let eperm = ret(&mut asm, ret_errno(libc::EPERM));
    let enosys = ret(&mut asm, ret_errno(libc::ENOSYS));

    // The intervals: (first number, leaf label); blocks: (label, rules), one per distinct rules.
    let mut blocks: Vec<(usize, &[Rule])> = Vec::new();
    let mut intervals: Vec<(u32, usize)> = Vec::new();
    let push = |intervals: &mut Vec<(u32, usize)>, first: u32, leaf: usize| {
        if intervals.last().map(|(_, l)| *l) != Some(leaf) {
            intervals.push((first, leaf));
        }
    };
    let mut next = 0u32;
    for (&n, verdict) in calls {
        if x86_64 && n >= X32_SYSCALL_BIT {
            return Err(format!("seccomp: syscall number {n:#x} is an x32 number"));
        }
        if n > next {
            push(&mut intervals, next, allow);
        }
        let leaf = match verdict {
            Verdict::Eperm => eperm,
            Verdict::Enosys => enosys,
            Verdict::EpermIf(rules) => {
                if rules.is_empty() || rules.iter().any(|r| r.is_empty()) {
                    return Err(format!(
                        "seccomp: syscall {n}: an empty rule list or rule (say Verdict::Eperm)"
                    ));
                }
                match blocks.iter().find(|(_, r)| *r == rules.as_slice()) {
                    Some((label, _)) => *label,
                    None => {
                        let label = asm.label();
                        blocks.push((label, rules));
                        label
                    }
                }
            }
        };
        push(&mut intervals, n, leaf);
        next = n + 1;
    }
    push(&mut intervals, next, allow);
    if x86_64 {
        push(&mut intervals, X32_SYSCALL_BIT, eperm);
    }

    asm.stmt(LD_W_ABS, DATA_ARCH);
    asm.jump(JMP_JEQ_K, audit_arch()?, To::Skip(1), To::Next);
    asm.stmt(RET_K, RET_KILL_PROCESS);
    asm.stmt(LD_W_ABS, DATA_NR);
    if let To::Label(leaf) = tree(&mut asm, &intervals) {
        asm.ja(leaf); // one interval: the whole tree is a leaf
    }
    for (label, rules) in &blocks {
        asm.place(*label);
        block(&mut asm, rules, eperm, allow)?;
    }
    for (value, label) in &rets {
        if asm.used(*label) {
            asm.place(*label);
            asm.stmt(RET_K, *value);
        }
    }
    asm.assemble()
}

/// Emits the search over `intervals` (sorted, the first starting at 0) and returns where
/// it starts: `To::Next` when it emitted a node here, or the leaf's label for one interval.
fn tree(asm: &mut Asm, intervals: &[(u32, usize)]) -> To {
    if let [(_, leaf)] = intervals {
        return To::Label(*leaf);
    }
    let mid = intervals.len() / 2;
    let node = asm.ops.len();
    asm.ops.push(Op::Stmt(0, 0)); // the node, filled in below
    let below = tree(asm, &intervals[..mid]);
    let at_or_above = match &intervals[mid..] {
        [(_, leaf)] => To::Label(*leaf),
        right => {
            let label = asm.label();
            asm.place(label);
            tree(asm, right);
            To::Label(label)
        }
    };
    asm.ops[node] = Op::Jump(JMP_JGE_K, intervals[mid].0, at_or_above, below);
    To::Next
}

/// The code of one syscall's rules: EPERM when one holds, else ALLOW.
fn block(asm: &mut Asm, rules: &[Rule], eperm: usize, allow: usize) -> Result<(), String> {
    let mut a: Option<(u8, Half)> = None; // what the accumulator holds, when known
    for (i, rule) in rules.iter().enumerate() {
        let next = if i + 1 == rules.len() {
            allow
        } else {
            asm.label()
        };
        let mut at_next = Vec::new(); // what A holds at each jump to `next`
        for (j, c) in rule.iter().enumerate() {
            if a != Some((c.arg, c.half)) {
                asm.stmt(LD_W_ABS, arg_offset(c)?);
                a = Some((c.arg, c.half));
            }
            let holds = if j + 1 == rule.len() {
                To::Label(eperm)
            } else {
                To::Next
            };
            let fails = To::Label(next);
            match c.test {
                Test::Eq(v) => asm.jump(JMP_JEQ_K, v, holds, fails),
                Test::Ne(v) => asm.jump(JMP_JEQ_K, v, fails, holds),
                Test::AnyBit(m) => asm.jump(JMP_JSET_K, m, holds, fails),
                Test::NoBit(m) => asm.jump(JMP_JSET_K, m, fails, holds),
                Test::AllBits(m) if m.is_power_of_two() => asm.jump(JMP_JSET_K, m, holds, fails),
                Test::AllBits(m) => {
                    asm.stmt(ALU_AND_K, m);
                    a = None;
                    asm.jump(JMP_JEQ_K, m, holds, fails);
                }
            }
            at_next.push(a);
        }
        if next != allow {
            asm.place(next);
            a = if at_next.iter().all(|x| *x == at_next[0]) {
                at_next[0]
            } else {
                None
            };
        }
    }
    Ok(())
}

/// Offset of a half of an argument in `struct seccomp_data` (args are u64 in native byte
/// order).
fn arg_offset(c: &Cond) -> Result<u32, String> {
    if c.arg > 5 {
        return Err(format!("seccomp: argument {} (0..=5)", c.arg));
    }
    let high_first = cfg!(target_endian = "big");
    let high = (c.half == Half::High) != high_first;
    Ok(DATA_ARGS + 8 * u32::from(c.arg) + if high { 4 } else { 0 })
}

/// Where a jump goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum To {
    /// The next instruction.
    Next,
    /// Skip this many instructions.
    Skip(u8),
    Label(usize),
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Label(usize),
    Stmt(u16, u32),
    Jump(u16, u32, To, To),
    Ja(usize),
}

/// A tiny assembler: instructions with labelled forward jumps.
#[derive(Default)]
struct Asm {
    ops: Vec<Op>,
    labels: usize,
}

impl Asm {
    fn label(&mut self) -> usize {
        self.labels += 1;
        self.labels - 1
    }

    fn place(&mut self, label: usize) {
        self.ops.push(Op::Label(label));
    }

    fn stmt(&mut self, code: u16, k: u32) {
        self.ops.push(Op::Stmt(code, k));
    }

    fn jump(&mut self, code: u16, k: u32, jt: To, jf: To) {
        self.ops.push(Op::Jump(code, k, jt, jf));
    }

    fn ja(&mut self, label: usize) {
        self.ops.push(Op::Ja(label));
    }

    fn used(&self, label: usize) -> bool {
        self.ops.iter().any(|op| match op {
            Op::Jump(_, _, jt, jf) => *jt == To::Label(label) || *jf == To::Label(label),
            Op::Ja(l) => *l == label,
            _ => false,
        })
    }

    /// Instructions, with every label resolved to a forward offset.
    fn assemble(self) -> Result<Vec<Insn>, String> {
        let mut at = vec![None; self.labels];
        let mut pc = 0usize;
        for op in &self.ops {
            match op {
                Op::Label(l) => at[*l] = Some(pc),
                _ => pc += 1,
            }
        }
        if pc > 4096 {
            return Err(format!(
                "seccomp: {pc} instructions (the kernel takes 4096)"
            ));
        }
        let offset = |pc: usize, to: To| -> Result<u32, String> {
            let target = match to {
                To::Next => return Ok(0),
                To::Skip(n) => return Ok(n.into()),
                To::Label(l) => at[l].ok_or("seccomp: a jump to a label never placed")?,
            };
            target
                .checked_sub(pc + 1)
                .map(|o| o as u32)
                .ok_or_else(|| "seccomp: a backward jump".to_string())
        };
        let mut out = Vec::with_capacity(pc);
        for op in &self.ops {
            let pc = out.len();
            let insn = match *op {
                Op::Label(_) => continue,
                Op::Stmt(code, k) => Insn {
                    code,
                    jt: 0,
                    jf: 0,
                    k,
                },
                Op::Ja(label) => Insn {
                    code: JMP_JA,
                    jt: 0,
                    jf: 0,
                    k: offset(pc, To::Label(label))?,
                },
                Op::Jump(code, k, jt, jf) => {
                    let short = |to| {
                        u8::try_from(offset(pc, to)?).map_err(|_| {
                            format!("seccomp: a conditional jump of more than 255 instructions at {pc} (the program grew past what one search reaches; split it)")
                        })
                    };
                    Insn {
                        code,
                        jt: short(jt)?,
                        jf: short(jf)?,
                        k,
                    }
                }
            };
            out.push(insn);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    //! The program against the rules: a classic BPF interpreter runs each variant's program
    //! on every syscall number 0..=600, the x32 numbers, a foreign architecture, and for each
    //! argument rule boundary values of its arguments (matching, not matching, the other
    //! half set, bits around every mask); the answer must be what the rules say (`expected`,
    //! read straight from the `Calls`) and what the program seccompiler built from the same
    //! tables before cw-exec compiled its own (`reference`) answers.

    use super::*;

    /// cw-exec's own number for fchmodat2 is the one libc names (where it names one).
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn fchmodat2_is_the_number_libc_names() {
        assert_eq!(SYS_FCHMODAT2, libc::SYS_fchmodat2);
    }

    /// `struct seccomp_data`: nr, arch, instruction_pointer, args[6], native byte order.
    fn data(nr: u32, arch: u32, args: [u64; 6]) -> [u8; 64] {
        let mut d = [0u8; 64];
        d[0..4].copy_from_slice(&nr.to_ne_bytes());
        d[4..8].copy_from_slice(&arch.to_ne_bytes());
        d[8..16].copy_from_slice(&0x7fff_1234_5678u64.to_ne_bytes());
        for (i, a) in args.iter().enumerate() {
            d[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
        }
        d
    }

    /// Runs a classic BPF program as the kernel's seccomp does (every instruction seccomp
    /// accepts); panics on anything the kernel would refuse (an unknown opcode, a load
    /// outside or misaligned in seccomp_data, a jump out of the program, falling off its
    /// end). Returns the action and the number of instructions executed.
    pub(super) fn run(program: &[Insn], data: &[u8; 64]) -> (u32, usize) {
        assert!(!program.is_empty() && program.len() <= 4096);
        let (mut a, mut x, mut mem) = (0u32, 0u32, [0u32; 16]);
        let mut pc = 0usize;
        let mut steps = 0;
        loop {
            let i = *program.get(pc).expect("fell off the end of the program");
            steps += 1;
            pc += 1;
            let operand = if i.code & 0x08 != 0 { x } else { i.k };
            match i.code {
                0x20 => {
                    let k = i.k as usize;
                    assert!(k % 4 == 0 && k + 4 <= 64, "load at {k}");
                    a = u32::from_ne_bytes(data[k..k + 4].try_into().unwrap());
                }
                0x80 => a = 64,  // ld len
                0x81 => x = 64,  // ldx len
                0x00 => a = i.k, // ld imm
                0x01 => x = i.k, // ldx imm
                0x60 => a = mem[i.k as usize],
                0x61 => x = mem[i.k as usize],
                0x02 => mem[i.k as usize] = a,
                0x03 => mem[i.k as usize] = x,
                0x07 => x = a, // tax
                0x87 => a = x, // txa
                0x06 => return (i.k, steps),
                0x16 => return (a, steps),
                c if c & 0x07 == 0x04 => {
                    a = match c & 0xf0 {
                        0x00 => a.wrapping_add(operand),
                        0x10 => a.wrapping_sub(operand),
                        0x20 => a.wrapping_mul(operand),
                        0x30 => a.checked_div(operand).expect("division by zero"),
                        0x40 => a | operand,
                        0x50 => a & operand,
                        0x60 => a.checked_shl(operand).unwrap_or(0),
                        0x70 => a.checked_shr(operand).unwrap_or(0),
                        0x80 => a.wrapping_neg(),
                        0x90 => a.checked_rem(operand).expect("division by zero"),
                        0xa0 => a ^ operand,
                        op => panic!("ALU op {op:#x}"),
                    }
                }
                0x05 => pc += i.k as usize, // ja
                c if c & 0x07 == 0x05 => {
                    let taken = match c & 0xf0 {
                        0x10 => a == operand,
                        0x20 => a > operand,
                        0x30 => a >= operand,
                        0x40 => a & operand != 0,
                        op => panic!("jump op {op:#x}"),
                    };
                    pc += usize::from(if taken { i.jt } else { i.jf });
                }
                c => panic!("opcode {c:#x}"),
            }
            assert!(pc < program.len(), "jump past the end");
        }
    }

    fn holds(test: Test, x: u32) -> bool {
        match test {
            Test::Eq(v) => x == v,
            Test::Ne(v) => x != v,
            Test::AnyBit(m) => x & m != 0,
            Test::NoBit(m) => x & m == 0,
            Test::AllBits(m) => x & m == m,
        }
    }

    /// What the rules say, read from `calls` without any BPF.
    fn expected(calls: &Calls, arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        if arch != audit_arch().unwrap() {
            return RET_KILL_PROCESS;
        }
        if std::env::consts::ARCH == "x86_64" && nr >= X32_SYSCALL_BIT {
            return ret_errno(libc::EPERM);
        }
        let half = |c: &Cond| {
            let v = args[usize::from(c.arg)];
            match c.half {
                Half::Low => v as u32,
                Half::High => (v >> 32) as u32,
            }
        };
        match calls.get(&nr) {
            None => RET_ALLOW,
            Some(Verdict::Eperm) => ret_errno(libc::EPERM),
            Some(Verdict::Enosys) => ret_errno(libc::ENOSYS),
            Some(Verdict::EpermIf(rules)) => {
                if rules
                    .iter()
                    .any(|r| r.iter().all(|c| holds(c.test, half(c))))
                {
                    ret_errno(libc::EPERM)
                } else {
                    RET_ALLOW
                }
            }
        }
    }

    fn variants() -> impl Iterator<Item = (Families, bool, bool)> {
        Families::ALL.into_iter().flat_map(|f| {
            [false, true]
                .into_iter()
                .flat_map(move |m| [false, true].into_iter().map(move |n| (f, m, n)))
        })
    }

    /// 32-bit values around a constant a rule compares with.
    fn around(c: u32) -> Vec<u32> {
        let mut v = vec![
            c,
            !c,
            c.wrapping_add(1),
            c.wrapping_sub(1),
            c | 1,
            c | 0x8000_0000,
        ];
        for bit in 0..32 {
            if c & (1 << bit) != 0 {
                v.push(c & !(1 << bit)); // one bit of a mask missing
                v.push(1 << bit); // only that bit
            }
        }
        v
    }

    /// Argument vectors for a syscall with rules: each argument a rule compares takes values
    /// around every constant compared with it, in its low half and in its high half, with
    /// the other half 0 or all ones (every combination, when a rule compares two
    /// arguments); the other arguments, 0 or all ones.
    fn boundary_args(rules: &[Rule]) -> Vec<[u64; 6]> {
        let mut per_arg: [Vec<u64>; 6] = Default::default();
        for (arg, values) in per_arg.iter_mut().enumerate() {
            let consts: Vec<u32> = rules
                .iter()
                .flatten()
                .filter(|c| usize::from(c.arg) == arg)
                .map(|c| match c.test {
                    Test::Eq(v) | Test::Ne(v) => v,
                    Test::AnyBit(m) | Test::NoBit(m) | Test::AllBits(m) => m,
                })
                .collect();
            let mut halves = vec![0u32, u32::MAX];
            if !consts.is_empty() {
                halves.push(consts.iter().fold(0, |a, c| a | c));
            }
            for c in &consts {
                halves.extend(around(*c));
            }
            halves.sort_unstable();
            halves.dedup();
            for h in &halves {
                for other in [0u32, u32::MAX] {
                    values.push(u64::from(other) << 32 | u64::from(*h));
                    values.push(u64::from(*h) << 32 | u64::from(other));
                }
            }
            values.sort_unstable();
            values.dedup();
        }
        let mut compared: Vec<usize> = rules.iter().flatten().map(|c| c.arg.into()).collect();
        compared.sort_unstable();
        compared.dedup();
        let mut out = Vec::new();
        for filler in [0u64, u64::MAX] {
            let mut combos = vec![[filler; 6]];
            for arg in &compared {
                combos = combos
                    .into_iter()
                    .flat_map(|c| {
                        per_arg[*arg].iter().map(move |v| {
                            let mut c = c;
                            c[*arg] = *v;
                            c
                        })
                    })
                    .collect();
            }
            out.extend(combos);
        }
        out
    }

    /// A deterministic generator of varied 64-bit values.
    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn every_variant_answers_what_the_rules_and_seccompiler_say() {
        let arch = audit_arch().unwrap();
        let foreign = [0x4000_0003u32 /* AUDIT_ARCH_I386 */, 0, arch ^ 1];
        let mut numbers: Vec<u32> = (0..=600).collect();
        if std::env::consts::ARCH == "x86_64" {
            numbers.extend((0..=600).map(|n| n | X32_SYSCALL_BIT));
            numbers.extend([0x3fff_ffff, 0x7fff_ffff, 0x8000_0000, u32::MAX]);
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for (families, memfd, native) in variants() {
            let what = format!("{families:?} memfd={memfd} native_code={native}");
            let (calls, _) = rules(families, memfd, native);
            let (program, denies) = build(families, memfd, native).unwrap();
            let (old, old_denies) = reference::build(families, memfd, native).unwrap();
            assert_eq!(denies, old_denies, "{what}");
            let check = |arch: u32, nr: u32, args: [u64; 6]| {
                let d = data(nr, arch, args);
                let want = expected(&calls, arch, nr, args);
                let (got, _) = run(&program, &d);
                let (old_got, _) = run(&old, &d);
                assert_eq!(
                    got, want,
                    "{what}: nr {nr:#x} arch {arch:#x} args {args:#x?}"
                );
                assert_eq!(
                    old_got, want,
                    "{what} (seccompiler): nr {nr:#x} args {args:#x?}"
                );
            };
            for &nr in &numbers {
                for args in [[0; 6], [u64::MAX; 6], [1 << 32; 6]] {
                    check(arch, nr, args);
                }
                for _ in 0..4 {
                    let args = [(); 6].map(|_| xorshift(&mut seed));
                    check(arch, nr, args);
                }
                for f in foreign {
                    check(f, nr, [0; 6]);
                }
            }
            for (&nr, verdict) in &calls {
                if let Verdict::EpermIf(rules) = verdict {
                    let args = boundary_args(rules);
                    assert!(args.len() >= 40, "{what}: {nr}: {} cases", args.len());
                    for a in args {
                        check(arch, nr, a);
                        if std::env::consts::ARCH == "x86_64" {
                            check(arch, nr | X32_SYSCALL_BIT, a);
                        }
                        check(foreign[0], nr, a);
                    }
                }
            }
        }
    }

    /// What the rules mean, spelled out case by case (so the rules are checked against
    /// intent, not only the program against the rules).
    #[test]
    #[allow(clippy::unnecessary_cast)] // the ioctl request type differs between libc targets
    fn named_cases() {
        let arch = audit_arch().unwrap();
        let eperm = ret_errno(libc::EPERM);
        let enosys = ret_errno(libc::ENOSYS);
        let answer = |variant: (Families, bool, bool), nr: libc::c_long, args: [u64; 6]| {
            let (program, _) = build(variant.0, variant.1, variant.2).unwrap();
            run(&program, &data(nr as u32, arch, args)).0
        };
        let plain = (Families::Unix, false, true);
        let a = |x: &[u64]| {
            let mut v = [0u64; 6];
            v[..x.len()].copy_from_slice(x);
            v
        };
        assert_eq!(answer(plain, libc::SYS_read, a(&[0])), RET_ALLOW);
        assert_eq!(answer(plain, libc::SYS_io_uring_setup, a(&[])), eperm);
        assert_eq!(answer(plain, libc::SYS_clone3, a(&[])), enosys);
        assert_eq!(answer(plain, libc::SYS_openat2, a(&[])), enosys);
        if std::env::consts::ARCH == "x86_64" {
            assert_eq!(answer(plain, libc::SYS_read | 0x4000_0000, a(&[])), eperm);
        }
        let (program, _) = build(Families::Any, false, true).unwrap();
        let i386_read = run(&program, &data(3, 0x4000_0003, [0; 6])).0;
        assert_eq!(i386_read, RET_KILL_PROCESS);
        let newuser = libc::CLONE_NEWUSER as u64;
        assert_eq!(answer(plain, libc::SYS_clone, a(&[newuser | 17])), eperm);
        assert_eq!(
            answer(plain, libc::SYS_clone, a(&[17 | 1 << 40])),
            RET_ALLOW
        );
        assert_eq!(answer(plain, libc::SYS_unshare, a(&[0x80])), eperm); // CLONE_NEWTIME
        assert_eq!(answer(plain, libc::SYS_unshare, a(&[0x200])), RET_ALLOW); // CLONE_FS
        let tiocsti = libc::TIOCSTI as u64;
        assert_eq!(
            answer(plain, libc::SYS_ioctl, a(&[0, tiocsti | 1 << 32])),
            eperm
        );
        assert_eq!(
            answer(plain, libc::SYS_ioctl, a(&[0, libc::TCGETS as u64])),
            RET_ALLOW
        );
        let inet = libc::AF_INET as u64;
        assert_eq!(answer(plain, libc::SYS_socket, a(&[inet])), eperm);
        assert_eq!(
            answer(plain, libc::SYS_socket, a(&[1 | 1 << 32])),
            RET_ALLOW
        ); // AF_UNIX
        let lo = (Families::UnixAndInet, false, true);
        assert_eq!(answer(lo, libc::SYS_socket, a(&[inet])), RET_ALLOW);
        assert_eq!(answer(lo, libc::SYS_socketpair, a(&[16])), eperm); // AF_NETLINK
        assert_eq!(
            answer((Families::Any, false, true), libc::SYS_socket, a(&[16])),
            RET_ALLOW
        );
        let creat = libc::O_CREAT as u64;
        assert_eq!(
            answer(plain, libc::SYS_openat, a(&[0, 0, creat, 0o4755])),
            eperm
        );
        assert_eq!(
            answer(plain, libc::SYS_openat, a(&[0, 0, O_TMPFILE_BIT, 0o2755])),
            eperm
        );
        assert_eq!(
            answer(plain, libc::SYS_openat, a(&[0, 0, 0, 0o6755])),
            RET_ALLOW
        );
        assert_eq!(
            answer(plain, libc::SYS_openat, a(&[0, 0, creat, 0o1777])),
            RET_ALLOW
        );
        assert_eq!(answer(plain, libc::SYS_fchmod, a(&[3, 0o4755])), eperm);
        assert_eq!(
            answer(plain, libc::SYS_fchmod, a(&[3, 0o755 | 1 << 40])),
            RET_ALLOW
        );
        assert_eq!(answer(plain, libc::SYS_memfd_create, a(&[0, 0])), RET_ALLOW);
        let memfd = (Families::Unix, true, true);
        assert_eq!(answer(memfd, libc::SYS_memfd_create, a(&[0, 0])), eperm);
        assert_eq!(answer(memfd, libc::SYS_memfd_create, a(&[0, 8])), RET_ALLOW);
        let no_native = (Families::Unix, true, false);
        assert_eq!(answer(no_native, libc::SYS_memfd_create, a(&[0, 8])), eperm);
        let (r, w, x) = (
            libc::PROT_READ as u64,
            libc::PROT_WRITE as u64,
            libc::PROT_EXEC as u64,
        );
        let (private, anon) = (libc::MAP_PRIVATE as u64, libc::MAP_ANONYMOUS as u64);
        let mmap =
            |variant, prot, flags| answer(variant, libc::SYS_mmap, a(&[0, 4096, prot, flags]));
        assert_eq!(mmap(no_native, r | x, private), RET_ALLOW);
        assert_eq!(mmap(no_native, r | x, private | anon), eperm);
        assert_eq!(mmap(no_native, w | x, private), eperm);
        assert_eq!(mmap(no_native, r | w, private | anon), RET_ALLOW);
        assert_eq!(mmap(plain, r | w | x, private | anon), RET_ALLOW);
        assert_eq!(
            answer(no_native, libc::SYS_mprotect, a(&[0, 0, r | x])),
            eperm
        );
        let persona = libc::SYS_personality;
        assert_eq!(answer(no_native, persona, a(&[0xffff_ffff])), RET_ALLOW);
        assert_eq!(answer(no_native, persona, a(&[READ_IMPLIES_EXEC])), eperm);
        assert_eq!(answer(plain, persona, a(&[READ_IMPLIES_EXEC])), RET_ALLOW);
    }

    /// The point of compiling it ourselves: a short program, few instructions per syscall.
    #[test]
    fn the_program_is_small_and_shallow() {
        let arch = audit_arch().unwrap();
        for (families, memfd, native) in variants() {
            let (program, _) = build(families, memfd, native).unwrap();
            let (old, _) = reference::build(families, memfd, native).unwrap();
            let (calls, _) = rules(families, memfd, native);
            let steps = |p: &[Insn], nr: u32| run(p, &data(nr, arch, [0; 6])).1;
            let worst = (0..=600)
                .filter(|n| !calls.contains_key(n))
                .map(|n| steps(&program, n));
            let worst = worst.max().unwrap();
            let old_worst = (0..=600).map(|n| steps(&old, n)).max().unwrap();
            eprintln!(
                "{families:?} memfd={memfd} native_code={native}: {} instructions (seccompiler: {}), at most {worst} run for a call without argument rules (seccompiler: {old_worst})",
                program.len(),
                old.len()
            );
            assert!(program.len() < 256, "{}", program.len());
            assert!(worst <= 14, "{worst}");
        }
    }

    /// The program seccompiler built from the same tables until cw-exec compiled its own
    /// (the code as it was, 2026-11-29): the reference the new program is checked against.
    mod reference {
        use std::collections::BTreeMap;

        use seccompiler::{
            BpfProgram, SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op,
            SeccompCondition as Cond, SeccompFilter, SeccompRule, TargetArch,
        };

        use super::super::*;

        pub fn build(
            families: Families,
            forbid_exec_memfd: bool,
            native_code: bool,
        ) -> Result<(Vec<Insn>, Vec<String>), String> {
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
            let program = after_arch_check(program)?;
            denies.push("x32 syscall numbers (the filter is written for x86_64 numbers)".into());
            let program = program
                .iter()
                .map(|i| Insn {
                    code: i.code,
                    jt: i.jt,
                    jf: i.jf,
                    k: i.k,
                })
                .collect();
            Ok((program, denies))
        }

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
                                rules.push(rule(vec![
                                    bit(*flags, creating)?,
                                    bit(*mode_arg, setid)?,
                                ])?);
                            }
                        }
                    }
                }
                out.push((*nr, rules));
            }
            Ok(out)
        }

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

        fn after_arch_check(mut program: BpfProgram) -> Result<BpfProgram, String> {
            const BPF_LD_W_ABS: u16 = 0x20;
            const BPF_JMP_JGE_K: u16 = 0x05 | 0x30;
            const BPF_JMP_JEQ_K: u16 = 0x05 | 0x10;
            const BPF_RET_K: u16 = 0x06;
            let arch_check_len = 3;
            let shape_ok = program.len() > arch_check_len
                && program[0].code == BPF_LD_W_ABS
                && program[0].k == 4
                && program[2].code == BPF_RET_K;
            if !shape_ok {
                return Err("seccomp: unexpected program layout from seccompiler".into());
            }
            let insn = |code, jt, jf, k| seccompiler::sock_filter { code, jt, jf, k };
            let errno = |e: i32| libc::SECCOMP_RET_ERRNO | e as u32;
            let mut block = vec![insn(BPF_LD_W_ABS, 0, 0, 0)];
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
    }
}
