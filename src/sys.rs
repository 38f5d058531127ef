//! Every `unsafe` block in cw-exec lives here, each with the reason it is sound.
//! Everything else calls these safe wrappers, `nix`, `landlock` or `seccompiler`.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::unistd::Pid;

/// A system call's return value as a result: a negative one (the C library's -1) is the
/// error in errno.
fn check<T: Into<i64>>(ret: T) -> io::Result<i64> {
    let ret = ret.into();
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// `clone(2)` with fork semantics (no new stack: the child runs on a copy of the parent's)
/// into the namespaces named by `flags`. Returns `None` in the child.
///
/// The caller must be single-threaded: the child gets a copy of only the calling thread,
/// so a lock held by another thread (the allocator's, say) would stay locked forever.
/// cw-exec starts no threads before this point.
pub fn clone_into_namespaces(flags: libc::c_int) -> io::Result<Option<Pid>> {
    // SAFETY: raw clone with a NULL stack behaves like fork(2): the child continues on a
    // copy-on-write copy of this stack. The pointer arguments (parent_tid, child_tid, tls)
    // are NULL and unused because no CLONE_*TID/SETTLS flags are passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_int>(),
            std::ptr::null_mut::<libc::c_int>(),
            0 as libc::c_ulong,
        )
    };
    fork_result(ret)
}

/// `struct clone_args` of clone3(2), up to `cgroup` (CLONE_ARGS_SIZE_VER2).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `clone3(2)` with fork semantics into the namespaces named by `flags` and, born there,
/// into the cgroup v2 directory `cgroup` (CLONE_INTO_CGROUP, Linux 5.7): no migration, so
/// none of the global lock a write to `cgroup.procs` takes. Returns `None` in the child.
/// Same contract as `clone_into_namespaces` (single-threaded caller).
pub fn clone_into_cgroup(
    flags: libc::c_int,
    cgroup: std::os::fd::BorrowedFd<'_>,
) -> io::Result<Option<Pid>> {
    use std::os::fd::AsRawFd;
    let mut args = CloneArgs {
        flags: flags as u32 as u64 | CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..Default::default()
    };
    // SAFETY: clone3 with no stack and no CLONE_VM behaves like fork(2): the child continues
    // on a copy-on-write copy of this stack. `args` is a valid clone_args of the size passed,
    // alive for the call; no pointer field is set (no CLONE_*TID, PIDFD or SETTLS flag).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    fork_result(ret)
}

/// The stack of a `spawn_sharing_memory` child: generous for the command's set-up (Landlock
/// rules, the read-back and its JSON); untouched pages cost nothing.
const SHARED_SPAWN_STACK: usize = 4 << 20;

/// Starts a process that shares this one's memory until it calls `execve` (or ends), like
/// `vfork(2)` (`clone(CLONE_VM | CLONE_VFORK)` on a stack of its own): no page tables are
/// copied, no page is faulted in twice. The caller is suspended until then. `child` runs in
/// the new process; its return value is the process's exit status (it normally never
/// returns: it calls execve). Returns the new process's pid, once it has exec'd or ended.
///
/// Sound only under the conditions the SAFETY comments below state, which the caller
/// keeps: the calling process is single-threaded, and `child` ends only by execve, by
/// returning, or by a signal — never by `std::process::exit`, whose exit handlers would run
/// on (and tear down) the suspended caller's state. A panic in `child` is caught here and
/// ends the process with status 125.
pub fn spawn_sharing_memory(child: &mut dyn FnMut() -> i32) -> io::Result<Pid> {
    extern "C" fn trampoline(arg: *mut libc::c_void) -> libc::c_int {
        // SAFETY: `arg` is the `&mut &mut dyn FnMut` passed to clone below, which stays
        // alive because the parent is suspended (CLONE_VFORK) until this process execs or
        // exits; nothing else uses it meanwhile.
        let child = unsafe { &mut *(arg as *mut &mut dyn FnMut() -> i32) };
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child))
            .unwrap_or(crate::model::EXIT_REFUSED);
        // SAFETY: _exit ends this process without running exit handlers or destructors
        // (which would act on the suspended parent's memory); always sound.
        unsafe { libc::_exit(code) }
    }
    // SAFETY: a fresh anonymous private mapping; the result is checked for MAP_FAILED.
    let stack = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            SHARED_SPAWN_STACK,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if stack == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // A guard page at the low end: an overflow faults instead of writing into other memory.
    // SAFETY: the first page of the mapping made above.
    if unsafe { libc::mprotect(stack, 4096, libc::PROT_NONE) } != 0 {
        let e = io::Error::last_os_error();
        // SAFETY: the whole mapping made above, used by nothing.
        unsafe { libc::munmap(stack, SHARED_SPAWN_STACK) };
        return Err(e);
    }
    let mut child = child;
    // SAFETY: glibc's clone switches to the new stack (its top: stacks grow down on every
    // architecture cw-exec builds for) and calls `trampoline` there. CLONE_VM shares this
    // process's memory; CLONE_VFORK suspends this thread until the child execs or exits, so
    // no two threads of control ever use the shared memory (heap, allocator, thread-locals)
    // at once: this process is single-threaded (the caller's contract) and suspended. The
    // child's file table, fs state, credentials, Landlock domain and seccomp filters are its
    // own (no CLONE_FILES, CLONE_FS, CLONE_THREAD), so what it restricts is itself alone.
    // `&mut child` outlives the child's use of it (see trampoline).
    let pid = unsafe {
        libc::clone(
            trampoline,
            (stack as *mut u8).add(SHARED_SPAWN_STACK) as *mut libc::c_void,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            &mut child as *mut &mut dyn FnMut() -> i32 as *mut libc::c_void,
        )
    };
    let result = if pid == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(Pid::from_raw(pid))
    };
    // SAFETY: the child has exec'd (its memory is its own now) or ended: nothing uses the
    // stack any more.
    unsafe { libc::munmap(stack, SHARED_SPAWN_STACK) };
    result
}

/// System calls made without libc, for a process that shares the caller's memory but not
/// its thread-local storage: libc's wrappers write `errno` (a thread-local) on failure,
/// which there would be the caller's own, written behind its back.
#[cfg(target_arch = "x86_64")]
mod raw {
    /// A system call with no argument.
    ///
    /// # Safety
    /// As the system call `nr` itself: it may have any effect on the process.
    pub unsafe fn call0(nr: libc::c_long) -> libc::c_long {
        let ret: libc::c_long;
        // SAFETY: the x86_64 system call convention (number and result in rax; rcx and r11
        // clobbered); the stack is not used. The caller answers for what `nr` does.
        unsafe {
            core::arch::asm!("syscall", inlateout("rax") nr => ret,
                lateout("rcx") _, lateout("r11") _, options(nostack));
        }
        ret
    }

    /// A system call with one argument (see `call0`).
    ///
    /// # Safety
    /// As `call0`.
    pub unsafe fn call1(nr: libc::c_long, a1: libc::c_long) -> libc::c_long {
        let ret: libc::c_long;
        // SAFETY: as in `call0`; the argument in rdi.
        unsafe {
            core::arch::asm!("syscall", inlateout("rax") nr => ret, in("rdi") a1,
                lateout("rcx") _, lateout("r11") _, options(nostack));
        }
        ret
    }

    /// A system call with three arguments (see `call0`).
    ///
    /// # Safety
    /// As `call0`; pointer arguments must be valid for what `nr` does with them.
    pub unsafe fn call3(
        nr: libc::c_long,
        a1: libc::c_long,
        a2: libc::c_long,
        a3: libc::c_long,
    ) -> libc::c_long {
        let ret: libc::c_long;
        // SAFETY: as in `call0`; the arguments in rdi, rsi, rdx.
        unsafe {
            core::arch::asm!("syscall", inlateout("rax") nr => ret, in("rdi") a1, in("rsi") a2,
                in("rdx") a3, lateout("rcx") _, lateout("r11") _, options(nostack));
        }
        ret
    }
}

/// The stack a process made by `spawn_network_namespace_maker` runs on: mapped for as long
/// as it may run. Its owner kills and reaps that process before dropping it.
pub struct SharedStack(
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] *mut libc::c_void,
);

/// Bytes of a `SharedStack` (a guard page below them): the maker's one frame and the system
/// calls' need a few hundred.
#[cfg(target_arch = "x86_64")]
const MAKER_STACK: usize = 64 << 10;

impl Drop for SharedStack {
    fn drop(&mut self) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the mapping `spawn_network_namespace_maker` made, whose process its owner
        // has reaped: nothing runs on it any more.
        unsafe {
            libc::munmap(self.0, MAKER_STACK + 4096);
        }
    }
}

/// Starts a process that shares this process's memory (no copy of its page tables, nor the
/// copy-on-write faults that one costs this process afterwards) and only makes a network
/// namespace: `unshare(CLONE_NEWNET)`, then 0 or the errno (four bytes, native order) to
/// `answer`, then `pause` until a signal kills it. Every one of those is a raw system call
/// (`raw`): no libc, no thread-local, no allocation, nothing written but its own stack.
/// Its file table, credentials and namespaces are its own copies (no CLONE_FILES, CLONE_FS,
/// CLONE_THREAD), so the namespace it makes is its own until a caller joins it; it is in
/// the caller's user namespace, which owns the new network namespace. Elsewhere than
/// x86_64: Ok(None), and the caller forks instead.
pub fn spawn_network_namespace_maker(
    answer: std::os::fd::BorrowedFd<'_>,
) -> io::Result<Option<(Pid, SharedStack)>> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::os::fd::AsRawFd;
        extern "C" fn maker(arg: *mut libc::c_void) -> libc::c_int {
            let answer = arg as libc::c_long;
            // SAFETY: raw system calls on this process's own state: a network namespace of
            // its own, a write of a local array to the descriptor number it was given (its
            // copy of the caller's), a pause. Nothing else of the shared memory is touched.
            unsafe {
                let ret = raw::call1(libc::SYS_unshare, libc::CLONE_NEWNET as libc::c_long);
                let errno: i32 = if ret < 0 { -ret as i32 } else { 0 };
                let bytes = errno.to_ne_bytes();
                raw::call3(
                    libc::SYS_write,
                    answer,
                    bytes.as_ptr() as libc::c_long,
                    bytes.len() as libc::c_long,
                );
                loop {
                    raw::call0(libc::SYS_pause);
                }
            }
        }
        // SAFETY: a fresh anonymous private mapping; the result is checked for MAP_FAILED.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                MAKER_STACK + 4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let stack = SharedStack(base);
        // A guard page at the low end: an overflow faults instead of writing into other memory.
        // SAFETY: the first page of the mapping made above.
        check(unsafe { libc::mprotect(base, 4096, libc::PROT_NONE) })?;
        // SAFETY: glibc's clone switches to the new stack (its top) and calls `maker` there,
        // which makes only raw system calls and never returns; glibc touches nothing
        // thread-local in the child. CLONE_VM shares this process's memory, of which `maker`
        // writes only its own stack (the mapping above, kept until the caller has reaped
        // it). The argument is the descriptor's number, passed by value.
        let pid = unsafe {
            libc::clone(
                maker,
                (base as *mut u8).add(MAKER_STACK + 4096) as *mut libc::c_void,
                libc::CLONE_VM | libc::SIGCHLD,
                answer.as_raw_fd() as libc::c_long as *mut libc::c_void,
            )
        };
        check(pid)?;
        Ok(Some((Pid::from_raw(pid), stack)))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = answer;
        Ok(None)
    }
}

/// `pidfd_open(2)` (Linux 5.3): a descriptor for the process `pid`, through which
/// `setns(2)` (Linux 5.8) joins its namespaces without a path under /proc.
pub fn pidfd_open(pid: Pid) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes two integers; a non-negative result is a new descriptor
    // owned by nothing else, which the OwnedFd takes at once.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0 as libc::c_uint) };
    check(ret)?;
    // SAFETY: see above.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(ret as libc::c_int) })
}

/// `pidfd_send_signal(2)` (Linux 5.1): sends `signal` to exactly the process `pidfd` refers
/// to, never to another that took its pid after it ended (ESRCH once it has ended).
pub fn pidfd_send_signal(
    pidfd: std::os::fd::BorrowedFd<'_>,
    signal: nix::sys::signal::Signal,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: integer arguments and a NULL siginfo (the kernel then fills in a kill's);
    // no memory of ours is read or written.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal as libc::c_int,
            std::ptr::null::<libc::siginfo_t>(),
            0 as libc::c_uint,
        )
    };
    check(ret).map(drop)
}

/// What a fork-like clone returned: the child's pid in the parent, None in the child.
fn fork_result(ret: libc::c_long) -> io::Result<Option<Pid>> {
    match ret {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(None),
        pid => Ok(Some(Pid::from_raw(pid as libc::pid_t))),
    }
}

pub const MOUNT_ATTR_RDONLY: u64 = 0x0000_0001;
pub const MOUNT_ATTR_NOSUID: u64 = 0x0000_0002;
pub const MOUNT_ATTR_NODEV: u64 = 0x0000_0004;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x0000_0008;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `mount_setattr(2)` (Linux 5.12): change per-mount flags on `path`, and with `recursive`
/// on every mount beneath it, in one call. Used to turn a bind mount read-only / noexec
/// without having to restate (and risk clearing) the flags the kernel locked on it.
pub fn mount_setattr(path: &Path, recursive: bool, set: u64, clear: u64) -> io::Result<()> {
    let c_path = cstring(path)?;
    let flags = libc::AT_NO_AUTOMOUNT | if recursive { libc::AT_RECURSIVE } else { 0 };
    mount_setattr_at(libc::AT_FDCWD, &c_path, flags, set, clear, 0)
}

/// `mount_setattr(2)` as `mount_setattr`, and in the same call (the same walk of the tree)
/// makes the mounts' propagation private (`MS_PRIVATE`): no mount event reaches them from, or
/// leaves them for, any other mount.
pub fn mount_setattr_private(path: &Path, recursive: bool, set: u64, clear: u64) -> io::Result<()> {
    let c_path = cstring(path)?;
    let flags = libc::AT_NO_AUTOMOUNT | if recursive { libc::AT_RECURSIVE } else { 0 };
    mount_setattr_at(libc::AT_FDCWD, &c_path, flags, set, clear, libc::MS_PRIVATE)
}

/// The one `mount_setattr(2)` call: `dirfd` + `path` (or an empty path with AT_EMPTY_PATH).
fn mount_setattr_at(
    dirfd: libc::c_int,
    path: &std::ffi::CStr,
    flags: libc::c_int,
    set: u64,
    clear: u64,
    propagation: u64,
) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation,
        userns_fd: 0,
    };
    // SAFETY: path is a valid NUL-terminated string and attr a properly laid-out struct
    // mount_attr, both outliving the call; the struct's size is passed alongside.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dirfd,
            path.as_ptr(),
            flags as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    check(ret).map(drop)
}

/// Marks every descriptor from `first` upward close-on-exec, so nothing but 0, 1, 2
/// crosses `execve` into the sandbox (Linux 5.11 `CLOSE_RANGE_CLOEXEC`).
pub fn cloexec_from(first: u32) -> io::Result<()> {
    // SAFETY: close_range takes plain integers; CLOSE_RANGE_CLOEXEC closes nothing, it
    // only sets FD_CLOEXEC, so no descriptor Rust still owns is invalidated.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC as libc::c_uint,
        )
    };
    check(ret).map(drop)
}

/// Closes descriptors this process owns: each run of consecutive numbers with one
/// `close_range` (Linux 5.9), instead of one `close` each.
pub fn close_all(fds: Vec<std::os::fd::OwnedFd>) {
    use std::os::fd::IntoRawFd;
    let mut raw: Vec<std::os::fd::RawFd> = fds.into_iter().map(IntoRawFd::into_raw_fd).collect();
    raw.sort_unstable();
    let mut start = 0;
    while start < raw.len() {
        let mut end = start;
        while end + 1 < raw.len() && raw[end + 1] == raw[end] + 1 {
            end += 1;
        }
        // SAFETY: every descriptor in raw[start..=end] was owned by the caller and given up
        // (`into_raw_fd`), so nothing else closes or uses it; the range is exactly those
        // numbers, consecutive, so no other descriptor is closed.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_close_range,
                raw[start] as libc::c_uint,
                raw[end] as libc::c_uint,
                0 as libc::c_uint,
            )
        };
        if ret == -1 {
            for fd in &raw[start..=end] {
                // SAFETY: as above; close_range closed none of them (it fails before closing).
                unsafe { libc::close(*fd) };
            }
        }
        start = end + 1;
    }
}

/// The ranges of descriptor numbers (first, last; both included) that leave out exactly
/// the numbers in `kept`: every gap before, between and after them.
fn ranges_around(kept: &mut [libc::c_uint]) -> Vec<(libc::c_uint, libc::c_uint)> {
    kept.sort_unstable();
    let mut ranges = vec![];
    let mut next: libc::c_uint = 0;
    for &fd in kept.iter() {
        if fd > next {
            ranges.push((next, fd - 1));
        }
        next = next.max(fd.saturating_add(1));
    }
    if kept.last() != Some(&libc::c_uint::MAX) {
        ranges.push((next, libc::c_uint::MAX));
    }
    ranges
}

/// How a process that has given up its descriptors ends (`end_holding_nothing`).
pub enum Ending {
    /// `exit` with this status.
    Exit(i32),
    /// Waits until a signal kills it (its parent-death signal, say).
    Killed,
}

/// A process's last act: closes every descriptor but `keep` (and `late`), writes `last` to
/// `keep`, closes that (and then `late`) too, then ends as `ending` says. Whoever reads
/// `last` knows that the process no longer holds anything it had opened or inherited (a
/// pipe someone waits to read end of file on, a file that keeps a mount busy, a lock) but
/// `late`: a descriptor whose close may block (the last reference to a detached mount waits
/// for an RCU grace period) and that holds nothing of anyone else's, closed after the write
/// so that its reader need not wait for that. Never returns, so no owner of a descriptor
/// closed here uses or closes it again. The caller must be single-threaded (no other thread
/// may be using a descriptor meanwhile).
pub fn end_holding_nothing(
    keep: std::os::fd::BorrowedFd<'_>,
    late: Option<std::os::fd::RawFd>,
    last: &[u8],
    ending: Ending,
) -> ! {
    use std::os::fd::AsRawFd;
    let keep = keep.as_raw_fd() as libc::c_uint;
    let mut kept = vec![keep];
    kept.extend(late.and_then(|fd| libc::c_uint::try_from(fd).ok()));
    for (first, last) in ranges_around(&mut kept) {
        // SAFETY: close_range takes plain integers. The descriptors it closes may belong to
        // owners elsewhere in this process; this function never returns and the caller is
        // single-threaded, so none of them is used or closed again.
        let ret = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0 as libc::c_uint) };
        if ret == -1 {
            // Before Linux 5.9: one at a time, up to the descriptor limit.
            let limit = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
                .map(|(soft, _)| soft.min(1 << 20) as libc::c_uint)
                .unwrap_or(1024);
            for fd in first..last.min(limit.saturating_sub(1)).saturating_add(1) {
                // SAFETY: as above.
                unsafe { libc::close(fd as libc::c_int) };
            }
        }
    }
    let mut sent = 0;
    while sent < last.len() {
        // SAFETY: writes from a live slice of the given length to a descriptor this
        // function still holds (`keep`).
        let n = unsafe {
            libc::write(
                keep as libc::c_int,
                last[sent..].as_ptr() as *const libc::c_void,
                last.len() - sent,
            )
        };
        match n {
            n if n > 0 => sent += n as usize,
            -1 if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
            _ => break, // the reader is gone: nothing to tell
        }
    }
    // SAFETY: as for the others above.
    unsafe { libc::close(keep as libc::c_int) };
    if let Some(fd) = late.filter(|fd| *fd as libc::c_uint != keep) {
        // SAFETY: as above: `late` was given up to this function, which never returns.
        unsafe { libc::close(fd) };
    }
    match ending {
        Ending::Exit(status) => std::process::exit(status),
        Ending::Killed => loop {
            // SAFETY: pause takes no argument and only waits for a signal.
            unsafe { libc::pause() };
        },
    }
}

const SECBIT_NOROOT: libc::c_ulong = 1 << 0;
const SECBIT_NOROOT_LOCKED: libc::c_ulong = 1 << 1;
const SECBIT_NO_SETUID_FIXUP: libc::c_ulong = 1 << 2;
const SECBIT_NO_SETUID_FIXUP_LOCKED: libc::c_ulong = 1 << 3;
const SECBIT_KEEP_CAPS_LOCKED: libc::c_ulong = 1 << 5;
const SECBIT_NO_CAP_AMBIENT_RAISE: libc::c_ulong = 1 << 6;
const SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED: libc::c_ulong = 1 << 7;

/// Locks the securebits so that uid 0 never regains capabilities on execve (NOROOT), a
/// setuid transition never grants any, and ambient capabilities cannot be raised.
/// Needs CAP_SETPCAP, so it runs before capabilities are dropped.
pub fn lock_securebits() -> io::Result<()> {
    let bits = SECBIT_NOROOT
        | SECBIT_NOROOT_LOCKED
        | SECBIT_NO_SETUID_FIXUP
        | SECBIT_NO_SETUID_FIXUP_LOCKED
        | SECBIT_KEEP_CAPS_LOCKED
        | SECBIT_NO_CAP_AMBIENT_RAISE
        | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
    // SAFETY: PR_SET_SECUREBITS takes an integer argument and touches no memory of ours.
    let ret = unsafe { libc::prctl(libc::PR_SET_SECUREBITS, bits, 0, 0, 0) };
    check(ret).map(drop)
}

/// Brings the loopback interface of the current network namespace up
/// (`SIOCSIFFLAGS` on `lo`), the whole of `--net loopback`'s set-up.
pub fn loopback_up() -> io::Result<()> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: socket() takes integers; the returned descriptor is owned by `sock` at once.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    check(raw)?;
    // SAFETY: `raw` is a descriptor socket() just returned to us and nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: ifreq is plain old data; all-zero is a valid value for every field.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: the union field written is the one SIOCSIFFLAGS reads; `req` outlives the
    // ioctl, which reads (and for SIOCGIFFLAGS writes) only within the struct.
    unsafe {
        check(libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req))?;
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        check(libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req))?;
    }
    Ok(())
}

/// Calls `io_uring_setup(2)` with invalid arguments and returns the errno. With the
/// seccomp filter installed this is EPERM; without it the kernel answers EFAULT (or
/// ENOSYS where io_uring is compiled out). Used as a read-back probe of the live filter.
/// Tries to map one page of anonymous memory readable and executable, unmapping it again if
/// that worked: 0, or the errno. The read-back's proof that `exec.native_code = false` holds.
pub fn exec_anonymous_mmap_errno() -> i32 {
    const LEN: usize = 4096;
    // SAFETY: a fresh anonymous private mapping at an address the kernel chooses overlaps
    // nothing of ours; nothing is read or written through it, and it is unmapped at once.
    unsafe {
        let addr = libc::mmap(
            std::ptr::null_mut(),
            LEN,
            libc::PROT_READ | libc::PROT_EXEC,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if addr == libc::MAP_FAILED {
            return io::Error::last_os_error().raw_os_error().unwrap_or(0);
        }
        libc::munmap(addr, LEN);
    }
    0
}

pub fn io_uring_setup_errno() -> i32 {
    // SAFETY: entries=0 and a NULL params pointer: the kernel rejects the call without
    // writing anywhere (or seccomp rejects it before the kernel looks at it).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_io_uring_setup,
            0 as libc::c_uint,
            std::ptr::null_mut::<libc::c_void>(),
        )
    };
    if ret == -1 {
        io::Error::last_os_error().raw_os_error().unwrap_or(0)
    } else {
        0
    }
}

/// Attempts `execve(path)` with an argv pointer that cannot be read, and returns the errno.
/// Since Linux 6.8 execve opens the file first, so every check on executing it (mode bits,
/// a noexec mount, LSMs such as Landlock's Execute right) answers before the kernel reads
/// argv; if all of them pass, reading argv fails with EFAULT. Either way nothing of the file
/// is loaded and this process carries on. (Before 6.8 argv was read first: EFAULT always.)
pub fn execve_unreadable_argv(path: &std::ffi::CStr) -> i32 {
    // An address below mmap_min_addr: never mapped, so the kernel cannot read argv there.
    let unreadable = 8usize as *const *const libc::c_char;
    // SAFETY: `path` is a valid C string; the kernel only reads through the argv and envp
    // pointers (a NULL envp is an empty environment), and a failed read of argv ends the call
    // with EFAULT before the point of no return, so the process image is never replaced.
    let ret = unsafe { libc::execve(path.as_ptr(), unreadable, std::ptr::null()) };
    if ret == -1 {
        io::Error::last_os_error().raw_os_error().unwrap_or(0)
    } else {
        0
    }
}

/// Overwrites the strings of the environment this process was started with. A forked
/// process keeps its parent's initial environment block in memory, and the kernel serves
/// `/proc/PID/environ` straight from that block; init, a fork of cw-exec that never execs,
/// must not expose cw-exec's environment that way.
pub fn scrub_initial_environment() {
    extern "C" {
        static mut environ: *const *mut libc::c_char;
    }
    // SAFETY: this process is single-threaded here (init of the sandbox, just forked), so
    // nothing reads the environment concurrently. Each entry is a NUL-terminated string in
    // writable memory (the initial stack or a libc allocation); we only overwrite bytes
    // before its terminator with zeros, never past it.
    unsafe {
        let mut entry = environ;
        if entry.is_null() {
            return;
        }
        while !(*entry).is_null() {
            let s = *entry;
            let len = libc::strlen(s);
            std::ptr::write_bytes(s, 0, len);
            entry = entry.add(1);
        }
    }
}

/// The address ranges the kernel serves as `/proc/PID/cmdline` (argument strings) and
/// `/proc/PID/environ` (environment strings) of this process: fields 48–51 of
/// `/proc/self/stat` (arg_start, arg_end, env_start, env_end).
fn arg_env_ranges() -> Option<[(usize, usize); 2]> {
    let stat = read_kernel_file(None, Path::new("/proc/self/stat"), 1024).ok()?;
    let stat = String::from_utf8_lossy(&stat);
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<usize> = rest
        .split_whitespace()
        .skip(45) // field 3 (state) is the first after ')'; field 48 is the 46th
        .take(4)
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    if f.len() != 4 {
        return None;
    }
    Some([(f[0], f[1]), (f[2], f[3])])
}

/// Whether [start, end) lies within one writable private mapping of this process, as
/// `maps` (the text of /proc/self/maps) lists them.
fn writable_mapping_holds(maps: &str, start: usize, end: usize) -> bool {
    maps.lines().any(|line| {
        let mut parts = line.split_whitespace();
        let (Some(range), Some(perms)) = (parts.next(), parts.next()) else {
            return false;
        };
        let Some((lo, hi)) = range.split_once('-') else {
            return false;
        };
        let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
        else {
            return false;
        };
        perms.starts_with("rw") && perms.ends_with('p') && lo <= start && end <= hi
    })
}

/// `struct procmap_query` of `PROCMAP_QUERY` (Linux 6.11, include/uapi/linux/fs.h).
#[repr(C)]
#[derive(Default)]
struct ProcmapQuery {
    size: u64,
    query_flags: u64,
    query_addr: u64,
    vma_start: u64,
    vma_end: u64,
    vma_flags: u64,
    vma_page_size: u64,
    vma_offset: u64,
    inode: u64,
    dev_major: u32,
    dev_minor: u32,
    vma_name_size: u32,
    build_id_size: u32,
    vma_name_addr: u64,
    build_id_addr: u64,
}

/// `_IOWR('f', 17, struct procmap_query)`.
const PROCMAP_QUERY: libc::c_ulong =
    0xC000_0000 | ((std::mem::size_of::<ProcmapQuery>() as libc::c_ulong) << 16) | (0x66 << 8) | 17;
const PROCMAP_QUERY_VMA_READABLE: u64 = 0x01;
const PROCMAP_QUERY_VMA_WRITABLE: u64 = 0x02;
const PROCMAP_QUERY_VMA_SHARED: u64 = 0x08;

/// Whether [start, end) lies within one readable, writable, private mapping of this process,
/// asked of the kernel for the mapping that covers `start` (`ioctl(PROCMAP_QUERY)` on
/// /proc/self/maps, `maps`): the facts a line of /proc/self/maps shows, without generating
/// the whole file as text. None where the kernel does not answer that query (older than
/// 6.11); then the text is read instead.
fn writable_private_vma(
    maps: std::os::fd::BorrowedFd<'_>,
    start: usize,
    end: usize,
) -> Option<bool> {
    use std::os::fd::AsRawFd;
    let mut q = ProcmapQuery {
        size: std::mem::size_of::<ProcmapQuery>() as u64,
        query_addr: start as u64,
        ..Default::default()
    };
    // SAFETY: PROCMAP_QUERY reads and writes one `struct procmap_query`, whose size is in its
    // first field; `q` is a live, exclusively borrowed value of that layout. No name or build
    // id is asked for (their sizes and addresses are 0), so the kernel writes nowhere else.
    let ret = unsafe {
        libc::ioctl(
            maps.as_raw_fd(),
            PROCMAP_QUERY as _,
            &mut q as *mut ProcmapQuery,
        )
    };
    if ret == -1 {
        return match io::Error::last_os_error().raw_os_error() {
            // No mapping covers `start`.
            Some(libc::ENOENT) => Some(false),
            _ => None,
        };
    }
    let rw = PROCMAP_QUERY_VMA_READABLE | PROCMAP_QUERY_VMA_WRITABLE;
    Some(
        q.vma_flags & rw == rw
            && q.vma_flags & PROCMAP_QUERY_VMA_SHARED == 0
            && q.vma_start <= start as u64
            && end as u64 <= q.vma_end,
    )
}

/// Overwrites the argument strings this process was started with (what the kernel serves
/// as `/proc/PID/cmdline`, readable by every process that can see this one) with `name`
/// and zeros, the environment strings (`/proc/PID/environ`) with zeros, and sets the
/// command name (`comm`, `/proc/PID/status`) to `name`. Init, a fork of cw-exec that never
/// execs, would otherwise show the sandbox cw-exec's whole command line: every flag, with
/// `--setenv` values. Returns an error (and changes nothing) if the kernel's ranges are not
/// in writable memory of this process.
pub fn scrub_initial_arguments(name: &std::ffi::CStr) -> io::Result<()> {
    let ranges = arg_env_ranges().ok_or_else(|| {
        io::Error::other("/proc/self/stat has no argument and environment ranges")
    })?;
    // The mappings: asked of the kernel for each range (PROCMAP_QUERY), or, where it lacks
    // that, read once as text for both.
    let maps_fd = nix::fcntl::open(
        "/proc/self/maps",
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ok();
    let mut maps_text: Option<String> = None;
    let mut holds = |start: usize, end: usize| {
        if let Some(answer) = maps_fd
            .as_ref()
            .and_then(|fd| writable_private_vma(std::os::fd::AsFd::as_fd(fd), start, end))
        {
            return answer;
        }
        let maps = maps_text.get_or_insert_with(|| {
            read_kernel_file(None, Path::new("/proc/self/maps"), 16 * 1024)
                .map(|m| String::from_utf8_lossy(&m).into_owned())
                .unwrap_or_default()
        });
        writable_mapping_holds(maps, start, end)
    };
    for (start, end) in ranges {
        if start > end || (start < end && !holds(start, end)) {
            return Err(io::Error::other(format!(
                "the range {start:#x}-{end:#x} of /proc/self/stat is not writable memory of this process"
            )));
        }
    }
    let [(arg_start, arg_end), (env_start, env_end)] = ranges;
    let bytes = name.to_bytes_with_nul();
    // SAFETY: both ranges were just checked to lie inside a writable private mapping of this
    // process (the initial stack, where the kernel placed argv and envp). This process is
    // single-threaded here (init of the sandbox, just forked), and nothing holds a Rust
    // reference into those bytes: std keeps only raw pointers to the argument strings, which
    // read as empty (or as `name`) afterwards. Only bytes inside the ranges are written.
    unsafe {
        std::ptr::write_bytes(arg_start as *mut u8, 0, arg_end - arg_start);
        std::ptr::write_bytes(env_start as *mut u8, 0, env_end - env_start);
        // The name, its terminator left in place (the range was zeroed), if it fits.
        let keep = bytes.len().min(arg_end - arg_start);
        if keep > 1 {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), arg_start as *mut u8, keep - 1);
        }
    }
    nix::sys::prctl::set_name(name).map_err(io::Error::from)
}

/// The Landlock ABI version the running kernel offers: `landlock_create_ruleset(NULL, 0,
/// LANDLOCK_CREATE_RULESET_VERSION)`. 0 when Landlock is not built in or not enabled at boot;
/// the error says which.
pub fn landlock_abi() -> Result<u32, io::Error> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a NULL attribute pointer and size 0 the kernel reads no memory; the
    // VERSION flag makes it return the ABI number instead of creating a ruleset.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    check(ret).map(|n| n as u32)
}

/// `landlock_add_rule(ruleset, LANDLOCK_RULE_PATH_BENEATH, {allowed, parent}, 0)`: `allowed`
/// (LANDLOCK_ACCESS_FS_* bits) beneath the object behind `parent` (an `O_PATH` descriptor
/// will do). The kernel checks the rule itself: rights the ruleset does not handle, or
/// directory rights on a non-directory, are EINVAL; a descriptor that is not a file is EBADF.
pub fn landlock_add_path_rule(
    ruleset: std::os::fd::BorrowedFd<'_>,
    parent: std::os::fd::BorrowedFd<'_>,
    allowed: u64,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    /// `struct landlock_path_beneath_attr` (packed: 12 bytes).
    #[repr(C, packed)]
    struct PathBeneathAttr {
        allowed_access: u64,
        parent_fd: i32,
    }
    const LANDLOCK_RULE_PATH_BENEATH: libc::c_int = 1;
    let attr = PathBeneathAttr {
        allowed_access: allowed,
        parent_fd: parent.as_raw_fd(),
    };
    // SAFETY: a packed landlock_path_beneath_attr, the struct of LANDLOCK_RULE_PATH_BENEATH.
    unsafe { landlock_add_rule(ruleset, LANDLOCK_RULE_PATH_BENEATH, &attr) }
}

/// `landlock_add_rule(ruleset, LANDLOCK_RULE_NET_PORT, {allowed, port}, 0)`: `allowed`
/// (LANDLOCK_ACCESS_NET_* bits) for TCP port `port`.
pub fn landlock_add_port_rule(
    ruleset: std::os::fd::BorrowedFd<'_>,
    port: u16,
    allowed: u64,
) -> io::Result<()> {
    /// `struct landlock_net_port_attr`.
    #[repr(C)]
    struct NetPortAttr {
        allowed_access: u64,
        port: u64,
    }
    const LANDLOCK_RULE_NET_PORT: libc::c_int = 2;
    let attr = NetPortAttr {
        allowed_access: allowed,
        port: u64::from(port),
    };
    // SAFETY: a landlock_net_port_attr, the struct of LANDLOCK_RULE_NET_PORT.
    unsafe { landlock_add_rule(ruleset, LANDLOCK_RULE_NET_PORT, &attr) }
}

/// `landlock_add_rule(ruleset, rule_type, attr, 0)` for the two callers above.
///
/// # Safety
/// `attr` must be the attribute struct the kernel defines for `rule_type`, laid out as the
/// kernel reads it.
unsafe fn landlock_add_rule<Attr>(
    ruleset: std::os::fd::BorrowedFd<'_>,
    rule_type: libc::c_int,
    attr: &Attr,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: `attr` is a live attribute struct of `rule_type` (this function's contract),
    // which the kernel only reads during the call; the ruleset descriptor is borrowed, so
    // open for its duration.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset.as_raw_fd(),
            rule_type,
            attr as *const Attr,
            0u32,
        )
    };
    check(ret).map(drop)
}

/// `landlock_restrict_self(ruleset, 0)`: the calling thread (and what it starts) is
/// restricted by the ruleset from now on. no_new_privs (or CAP_SYS_ADMIN) is the caller's.
pub fn landlock_restrict_self(ruleset: std::os::fd::BorrowedFd<'_>) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: integer arguments only.
    let ret = unsafe { libc::syscall(libc::SYS_landlock_restrict_self, ruleset.as_raw_fd(), 0u32) };
    check(ret).map(drop)
}

/// Restores default dispositions for the signals this process ignores and unblocks every
/// signal: ignored signals and the signal mask survive execve (the Rust runtime ignores
/// SIGPIPE, a caller may have left any signal ignored, SIGRTMIN+n too, and cw-exec blocks
/// the signals it forwards), and the sandboxed command must see none of that. `ignored` is
/// what the kernel says this process ignores (the `SigIgn` mask of /proc/self/status, signal
/// N at bit N-1, 1..=64): execve itself resets every caught signal to its default and keeps
/// only ignored ones, so only those are reset here, one call each. Without the mask (None),
/// every signal.
pub fn reset_signals_for_exec_given(ignored: Option<u64>) {
    use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow};
    let ignored = ignored.unwrap_or(u64::MAX);
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP || ignored & (1u64 << (sig - 1)) == 0 {
            continue;
        }
        let _ = default_disposition(sig);
    }
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}

/// What cw-exec keeps of the Rust runtime's start, which it does not run (`c_main!`): each
/// of the standard descriptors 0, 1 and 2 that is closed is opened on /dev/null (so that no
/// file cw-exec opens later takes its number and receives what is meant for stdout or
/// stderr), and SIGPIPE is ignored (a write to a pipe whose reader left fails with EPIPE,
/// which cw-exec reports, rather than killing it). What it leaves out is the runtime's
/// stack-overflow handler: installing it reads /proc/self/maps (glibc's
/// `pthread_getattr_np` for the main thread) and maps an alternate signal stack at every
/// start, ~40 µs (issue 17). Without it an overflow of cw-exec's stack ends it by SIGSEGV at
/// the kernel's guard gap instead of a message and SIGABRT: a crash either way, never a
/// result. Returns false when a closed descriptor could not be replaced (the caller exits).
#[cfg_attr(test, allow(dead_code))]
pub fn standard_start() -> bool {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: poll reads and writes three pollfd structs of a live local array, whose length
    // is passed; a timeout of 0 returns at once.
    let polled = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 0) };
    for p in &fds {
        // POLLNVAL is also poll's answer for an open O_PATH descriptor (poll does not look
        // at those), which a caller may pass as a standard descriptor: only fcntl's EBADF
        // says closed. (Asked only where poll failed or said POLLNVAL: no cost otherwise.)
        let closed = (polled < 0 || p.revents & libc::POLLNVAL != 0) && {
            // SAFETY: fcntl with an integer argument only.
            let ret = unsafe { libc::fcntl(p.fd, libc::F_GETFD) };
            ret == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::EBADF)
        };
        if closed {
            // SAFETY: open with a NUL-terminated literal path; the lowest free number, which
            // is this one (those below it are open or were just opened).
            let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR, 0) };
            if fd != p.fd {
                return false;
            }
        }
    }
    // SAFETY: SIG_IGN runs no code of ours; SIGPIPE is not a signal glibc reserves.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    true
}

/// Defines the C `main` the C runtime calls (the crate is `#![no_main]`): it does what
/// `standard_start` keeps of Rust's start and returns `$entry()`'s status. The exported
/// symbol is why this lives here: `#[no_mangle]` counts as unsafe code, which is allowed only
/// in this module.
#[macro_export]
macro_rules! c_main {
    ($entry:path) => {
        #[allow(unsafe_code)]
        #[no_mangle]
        extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
            if !$crate::sys::standard_start() {
                return $crate::model::EXIT_REFUSED;
            }
            $entry()
        }
    };
}

/// Sets the disposition of signal `sig` (1..=64) to SIG_DFL with `rt_sigaction` directly:
/// glibc's wrapper refuses the two signals it reserves for itself (32, 33), which a caller may
/// still have left ignored.
pub fn default_disposition(sig: libc::c_int) -> io::Result<()> {
    // The kernel's `struct sigaction` (handler, flags, restorer where the architecture has
    // one, mask): all zero is SIG_DFL with no flags and an empty mask, whatever the layout.
    let act = [0u64; 4];
    // SAFETY: rt_sigaction reads one zeroed kernel `struct sigaction` (at most 32 bytes on
    // every architecture) from a live local and writes nothing (no old action asked for); the
    // mask size is the kernel's (64 signals, 8 bytes). SIG_DFL runs no code of ours.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            sig,
            act.as_ptr(),
            std::ptr::null_mut::<libc::c_void>(),
            8usize,
        )
    };
    check(ret)?;
    Ok(())
}

/// What one `statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)` says about the object behind a
/// descriptor: its type and mode, device and inode, and mount id (recorded in the plan and the
/// attestation).
#[derive(Clone, Copy, Debug)]
pub struct FdStat {
    /// `st_mode`: file type and permission bits.
    pub mode: u32,
    /// `st_dev`, encoded as `stat` encodes it.
    pub dev: u64,
    pub ino: u64,
    pub mnt_id: u64,
}

/// `statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, mask)`: the object behind `fd` itself
/// (an `O_PATH` descriptor will do). The caller checks `stx_mask` for what it needs.
fn statx_fd(fd: std::os::fd::BorrowedFd<'_>, mask: u32) -> io::Result<libc::statx> {
    use std::os::fd::AsRawFd;
    // SAFETY: statx is plain old data, all-zero is a valid value.
    let mut buf: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: `buf` is a live, exclusively borrowed statx the kernel writes at most
    // size_of::<statx>() bytes into; the path is a static NUL-terminated string.
    let ret = unsafe {
        libc::statx(
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
            mask,
            &mut buf,
        )
    };
    check(ret)?;
    Ok(buf)
}

/// One `statx` of the object behind `fd` (an `O_PATH` descriptor will do), asking for exactly
/// the type, inode and mount id (the device comes with every statx).
pub fn fd_stat(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<FdStat> {
    let buf = statx_fd(
        fd,
        libc::STATX_TYPE | libc::STATX_MODE | libc::STATX_INO | libc::STATX_MNT_ID,
    )?;
    let wanted = libc::STATX_TYPE | libc::STATX_INO | libc::STATX_MNT_ID;
    if buf.stx_mask & wanted != wanted {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "statx did not report the type, inode and mount id",
        ));
    }
    Ok(FdStat {
        mode: u32::from(buf.stx_mode),
        dev: libc::makedev(buf.stx_dev_major, buf.stx_dev_minor),
        ino: buf.stx_ino,
        mnt_id: buf.stx_mnt_id,
    })
}

/// `getdents64(fd, buf)`: as many directory entries (`linux_dirent64` records) as fit in
/// `buf`; 0 at the end of the directory.
pub fn getdents64(fd: std::os::fd::BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`, a live, exclusively
    // borrowed buffer of that length.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_getdents64,
            fd.as_raw_fd(),
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    check(ret).map(|n| n as usize)
}

/// Every entry of a directory opened for reading, as its name and `d_type` (`DT_UNKNOWN`
/// where the file system does not say), `.` and `..` left out: `getdents64` into one
/// buffer, no allocation per entry. An error of the listing (or a malformed record, EIO)
/// ends it.
pub fn for_each_dir_entry(
    fd: std::os::fd::BorrowedFd<'_>,
    mut keep: impl FnMut(&[u8], u8),
) -> io::Result<()> {
    let mut buf = [0u8; 8192];
    loop {
        let n = getdents64(fd, &mut buf)?;
        if n == 0 {
            return Ok(());
        }
        // linux_dirent64: d_ino (8), d_off (8), d_reclen (2), d_type (1), d_name (NUL-ended).
        let mut at = 0;
        while at + 19 <= n {
            let reclen = usize::from(u16::from_ne_bytes([buf[at + 16], buf[at + 17]]));
            if reclen < 19 || at + reclen > n {
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
            let raw = &buf[at + 19..at + reclen];
            let name = &raw[..raw.iter().position(|b| *b == 0).unwrap_or(raw.len())];
            if name != b"." && name != b".." {
                keep(name, buf[at + 18]);
            }
            at += reclen;
        }
    }
}

/// `faccessat2(fd, "", mode, AT_EMPTY_PATH)`: may the caller (real ids) access the object
/// behind an `O_PATH` descriptor with `mode` (R_OK, W_OK, X_OK)? Checked on the object, not
/// on a name that could be swapped afterwards.
pub fn access_fd(fd: std::os::fd::BorrowedFd<'_>, mode: libc::c_int) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: integer arguments and a static NUL-terminated empty string.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_faccessat2,
            fd.as_raw_fd(),
            c"".as_ptr(),
            mode,
            libc::AT_EMPTY_PATH,
        )
    };
    check(ret).map(drop)
}

/// The unique (never reused, Linux 6.8) id of the mount behind `fd`
/// (`statx(fd, "", AT_EMPTY_PATH, STATX_MNT_ID_UNIQUE)`), for `has_submounts`. An error where
/// the kernel does not know the field.
pub fn mount_id_unique(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<u64> {
    let buf = statx_fd(fd, libc::STATX_MNT_ID_UNIQUE)?;
    if buf.stx_mask & libc::STATX_MNT_ID_UNIQUE == 0 {
        return Err(io::Error::from_raw_os_error(libc::ENOSYS));
    }
    Ok(buf.stx_mnt_id)
}

/// The unique id (Linux 6.8) of the mount a path is on, the path's last component not
/// followed if it is a symlink (`statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW,
/// STATX_MNT_ID_UNIQUE)`), for `statmount`. An error where the kernel does not know the field.
pub fn path_mount_id_unique(path: &std::ffi::CStr) -> io::Result<u64> {
    // SAFETY: statx is plain old data, all-zero is a valid value.
    let mut buf: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: `buf` is a live, exclusively borrowed statx the kernel writes at most
    // size_of::<statx>() bytes into; `path` is a NUL-terminated string borrowed for the call.
    let ret = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
            libc::STATX_MNT_ID_UNIQUE,
            &mut buf,
        )
    };
    check(ret)?;
    if buf.stx_mask & libc::STATX_MNT_ID_UNIQUE == 0 {
        return Err(io::Error::from_raw_os_error(libc::ENOSYS));
    }
    Ok(buf.stx_mnt_id)
}

/// What `statmount(2)` says about one mount: its file system's magic, where it is mounted
/// (relative to the caller's root, as /proc/self/mountinfo shows it), and the file system's
/// own options (`show_options`, e.g. `memory` for a cgroup v1 hierarchy) where the kernel
/// reports them (Linux 6.11).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountFacts {
    pub magic: u64,
    pub mount_point: Vec<u8>,
    pub options: Option<Vec<u8>>,
}

/// `statmount(2)` (Linux 6.8; the same number on every architecture's unified table).
const SYS_STATMOUNT: libc::c_long = 457;

/// `struct mnt_id_req`, first version (24 bytes), which `statmount` and `listmount` take:
/// the mount's unique id and what is asked of it.
#[repr(C)]
struct MntIdReq {
    size: u32,
    spare: u32,
    mnt_id: u64,
    param: u64,
}

impl MntIdReq {
    fn new(mnt_id: u64, param: u64) -> MntIdReq {
        MntIdReq {
            size: std::mem::size_of::<MntIdReq>() as u32,
            spare: 0,
            mnt_id,
            param,
        }
    }
}

/// `statmount(2)` of the mount with unique id `mnt_id` in the caller's mount namespace: one
/// mount, described by the kernel, without reading the whole mount table. An error where the
/// kernel lacks the call, refuses it, or leaves out the magic or the mount point.
pub fn statmount(mnt_id: u64) -> io::Result<MountFacts> {
    const SB_BASIC: u64 = 0x1;
    const MNT_POINT: u64 = 0x10;
    const MNT_OPTS: u64 = 0x80;
    // struct statmount (include/uapi/linux/mount.h): offsets of the fields read here; the
    // strings follow the 512-byte fixed part, each field an offset into them.
    const MASK: usize = 8;
    const SB_MAGIC: usize = 24;
    const MNT_OPTS_AT: usize = 4;
    const MNT_POINT_AT: usize = 108;
    const STRINGS: usize = 512;
    #[repr(C, align(8))]
    struct Buf([u8; 4096]);
    let req = MntIdReq::new(mnt_id, SB_BASIC | MNT_POINT | MNT_OPTS);
    let mut buf = Buf([0; 4096]);
    // SAFETY: `req` is a properly laid-out struct mnt_id_req whose size field says how much
    // the kernel may read; the kernel writes at most `buf.0.len()` bytes into `buf`, a live,
    // exclusively borrowed buffer of that length.
    let ret = unsafe {
        libc::syscall(
            SYS_STATMOUNT,
            &req as *const MntIdReq,
            buf.0.as_mut_ptr(),
            buf.0.len(),
            0 as libc::c_uint,
        )
    };
    check(ret)?;
    let b = &buf.0;
    let u32_at = |at: usize| u32::from_ne_bytes(b[at..at + 4].try_into().expect("4 bytes"));
    let u64_at = |at: usize| u64::from_ne_bytes(b[at..at + 8].try_into().expect("8 bytes"));
    let size = (u32_at(0) as usize).min(b.len());
    let string = |field: usize| -> Option<Vec<u8>> {
        let start = STRINGS.checked_add(u32_at(field) as usize)?;
        let rest = b.get(start..size)?;
        let len = rest.iter().position(|c| *c == 0)?;
        Some(rest[..len].to_vec())
    };
    let mask = u64_at(MASK);
    let missing = || io::Error::new(io::ErrorKind::Unsupported, "statmount left a field out");
    if mask & SB_BASIC == 0 || mask & MNT_POINT == 0 {
        return Err(missing());
    }
    Ok(MountFacts {
        magic: u64_at(SB_MAGIC),
        mount_point: string(MNT_POINT_AT).ok_or_else(missing)?,
        // No options at all leaves the bit clear (a cgroup2 mount without any): empty.
        options: if mask & MNT_OPTS != 0 {
            Some(string(MNT_OPTS_AT).ok_or_else(missing)?)
        } else {
            None
        },
    })
}

/// `listmount(2)` (Linux 6.8; the same number on every architecture's unified table).
const SYS_LISTMOUNT: libc::c_long = 458;

/// Whether the mount with unique id `mnt_id` (in the caller's mount namespace) has any mount
/// beneath it: `listmount(2)` asked for at most one child. An error where the kernel lacks the
/// call or refuses it; the caller then reads the mount table instead.
pub fn has_submounts(mnt_id: u64) -> io::Result<bool> {
    let req = MntIdReq::new(mnt_id, 0);
    let mut child: u64 = 0;
    // SAFETY: `req` is a properly laid-out struct mnt_id_req whose size field says how much
    // the kernel may read; `child` has room for exactly the one id asked for (nr = 1).
    let ret = unsafe {
        libc::syscall(
            SYS_LISTMOUNT,
            &req as *const MntIdReq,
            &mut child as *mut u64,
            1usize,
            0 as libc::c_uint,
        )
    };
    check(ret)?;
    Ok(ret > 0)
}

const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x0000_0004;

/// `open_tree(fd, "", OPEN_TREE_CLONE | AT_EMPTY_PATH | AT_RECURSIVE)`: a detached copy of the
/// mount tree at the object behind `fd` (which must belong to the caller's mount namespace).
/// Binding from this descriptor binds exactly the object that was verified, whatever the
/// name now points to.
pub fn clone_tree(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: integer arguments and a static NUL-terminated empty string; on success the
    // kernel returns a new descriptor that we own at once.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            fd.as_raw_fd(),
            c"".as_ptr(),
            OPEN_TREE_CLONE
                | libc::O_CLOEXEC as libc::c_uint
                | libc::AT_EMPTY_PATH as libc::c_uint
                | libc::AT_RECURSIVE as libc::c_uint,
        )
    };
    check(ret)?;
    // SAFETY: `ret` is a descriptor open_tree just returned to us and nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as libc::c_int) })
}

/// `open_tree(dirfd, name, OPEN_TREE_CLONE | AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT
/// [| AT_RECURSIVE])`: a detached copy of the mount (with `recursive`, the mount tree) at
/// `name` beneath the directory `dirfd` (which must belong to the caller's mount namespace).
/// `name`'s last component is not followed if it is a symlink: give a single component, so
/// that nothing on the way can be one.
pub fn clone_tree_at(
    dirfd: std::os::fd::BorrowedFd<'_>,
    name: &std::ffi::CStr,
    recursive: bool,
) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: integer arguments and a NUL-terminated string that outlives the call; on
    // success the kernel returns a new descriptor that we own at once.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            dirfd.as_raw_fd(),
            name.as_ptr(),
            OPEN_TREE_CLONE
                | libc::O_CLOEXEC as libc::c_uint
                | libc::AT_SYMLINK_NOFOLLOW as libc::c_uint
                | libc::AT_NO_AUTOMOUNT as libc::c_uint
                | if recursive {
                    libc::AT_RECURSIVE as libc::c_uint
                } else {
                    0
                },
        )
    };
    check(ret)?;
    // SAFETY: `ret` is a descriptor open_tree just returned to us and nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as libc::c_int) })
}

/// `mount_setattr(fd, "", AT_EMPTY_PATH [| AT_RECURSIVE], ...)`: per-mount flags on a
/// (detached) mount tree, before it is attached anywhere.
pub fn mount_setattr_fd(
    fd: std::os::fd::BorrowedFd<'_>,
    recursive: bool,
    set: u64,
    clear: u64,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let flags = libc::AT_EMPTY_PATH | if recursive { libc::AT_RECURSIVE } else { 0 };
    mount_setattr_at(fd.as_raw_fd(), c"", flags, set, clear, 0)
}

/// `move_mount(fd, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH)`: attaches a detached
/// mount tree at `target`. The target's final component is not followed if it is a symlink.
pub fn attach_tree(tree: std::os::fd::BorrowedFd<'_>, target: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let c_target = cstring(target)?;
    // SAFETY: integer arguments and NUL-terminated strings that outlive the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            c_target.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    check(ret).map(drop)
}

/// A close-on-exec duplicate (numbered 3 or above) of descriptor `fd`, which the caller of
/// cw-exec named (`--envelope /dev/fd/N`). EBADF when it is not open.
pub fn dup_inherited_fd(fd: std::os::fd::RawFd) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) reads no memory; on a number that is not an open
    // descriptor it fails with EBADF. On success the new descriptor is ours alone, so
    // `OwnedFd` may own (and eventually close) it; `fd` itself is left untouched.
    let dup = unsafe {
        let ret = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3);
        (ret >= 0).then(|| std::os::fd::OwnedFd::from_raw_fd(ret))
    };
    dup.ok_or_else(io::Error::last_os_error)
}

/// Fills `buf` from the kernel's random source (`getrandom(2)`, blocking until it is
/// seeded, which it is long before anyone runs cw-exec).
pub fn random_bytes(buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: getrandom writes at most `rest.len()` bytes into `rest`, a live,
        // exclusively borrowed buffer of that length.
        let ret = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if ret < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        filled += ret as usize;
    }
    Ok(())
}

/// Receives one message over a Unix stream socket into `buf` (one `recvmsg`: the bytes one
/// `sendmsg` wrote, up to `buf.len()`), with every descriptor it carries (SCM_RIGHTS, at most
/// `MAX_RECEIVED_FDS`; a message that carried more is an error, never descriptors silently
/// dropped). `Ok(None)`: the other end closed. Returns the number of bytes received.
pub fn receive_message_fds(
    channel: std::os::fd::BorrowedFd<'_>,
    buf: &mut [u8],
) -> io::Result<Option<(usize, Vec<std::os::fd::OwnedFd>)>> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};
    use std::os::fd::{AsRawFd, FromRawFd};
    let mut iov = [std::io::IoSliceMut::new(buf)];
    // Room for as many descriptors as one message can carry at all (the kernel's
    // SCM_MAX_FD), so the control data is never truncated: nix reports a truncated one as an
    // error from `cmsgs()` without giving the descriptors the kernel did install, which
    // then stayed open in this process, owned by nothing. Past `MAX_RECEIVED_FDS` they are
    // all received, then closed, and the message refused.
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; SCM_MAX_FD]);
    let msg = recvmsg::<UnixAddr>(
        channel.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut fds = vec![];
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(raw) = cmsg {
            for raw in raw {
                // SAFETY: the kernel just installed this descriptor in our table for us
                // (SCM_RIGHTS, with MSG_CMSG_CLOEXEC); nothing else owns it.
                fds.push(unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) });
            }
        }
    }
    if msg.flags.contains(MsgFlags::MSG_CTRUNC) || fds.len() > MAX_RECEIVED_FDS {
        return Err(io::Error::other(
            "a message carried more descriptors than expected",
        ));
    }
    if msg.bytes == 0 {
        return Ok(None);
    }
    Ok(Some((msg.bytes, fds)))
}

/// The most descriptors `receive_message_fds` takes from one message.
pub const MAX_RECEIVED_FDS: usize = 8;

/// The most descriptors one SCM_RIGHTS message can carry (the kernel's `SCM_MAX_FD`).
const SCM_MAX_FD: usize = 253;

/// Receives one descriptor sent over a Unix socket (SCM_RIGHTS) with a one-byte tag; None
/// when the other end closed first, sent none, or sent more than `receive_message_fds` takes.
pub fn receive_fd(channel: &std::os::fd::OwnedFd) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::AsFd;
    let mut tag = [0u8; 1];
    let (_, fds) = receive_message_fds(channel.as_fd(), &mut tag)
        .ok()
        .flatten()?;
    fds.into_iter().next()
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Whether this process's permitted capability set is empty (`capget`).
pub fn no_permitted_capabilities() -> io::Result<bool> {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget writes two CapData (the v3 layout) into `data`, which is exactly that,
    // and reads the header, which lives for the call.
    let ret = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(data.iter().all(|d| d.permitted == 0))
}

/// Empties the bounding set: one `PR_CAPBSET_DROP` per capability the kernel knows (which
/// needs CAP_SETPCAP).
pub fn empty_bounding_set() -> io::Result<()> {
    // Upward from 0 until the kernel answers EINVAL: its capabilities are numbered
    // 0..=CAP_LAST_CAP without a gap, and PR_CAPBSET_DROP refuses a number past the last
    // with EINVAL (and nothing else with it), so the first EINVAL means every one is
    // dropped — without reading /proc/sys/kernel/cap_last_cap for the number.
    for cap in 0..=63 as libc::c_ulong {
        // SAFETY: prctl with integer arguments only.
        let ret = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
        if ret < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINVAL) {
                return Ok(());
            }
            return Err(e);
        }
    }
    Ok(())
}

/// Empties the effective, permitted and inheritable sets in one `capset`, and the ambient set
/// (`PR_CAP_AMBIENT_CLEAR_ALL`). (The bounding set: `empty_bounding_set`.)
pub fn clear_capabilities() -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    check(unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    })?;
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [CapData::default(); 2];
    // SAFETY: capset reads the header and two CapData (the v3 layout), all of which live for
    // the call.
    check(unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) }).map(drop)
}

/// `ioctl(fd, TIOCSCTTY, 0)`: makes the terminal behind `fd` the calling process's
/// controlling terminal. The caller must be a session leader without one, and the terminal
/// nobody's controlling terminal (0: never steal it, whatever the caller's privilege).
pub fn set_controlling_terminal(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: TIOCSCTTY takes an integer argument, not a pointer; no memory is touched.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0 as libc::c_int) };
    check(ret)?;
    Ok(())
}

/// `ioctl(fd, TIOCGWINSZ)`: the terminal's window size.
pub fn window_size(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<libc::winsize> {
    use std::os::fd::AsRawFd;
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `struct winsize` through the pointer, which points to a
    // live, exclusively borrowed value of that type.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut size) };
    check(ret)?;
    Ok(size)
}

/// `ioctl(fd, TIOCSWINSZ)`: sets the terminal's window size (the kernel sends SIGWINCH to
/// its foreground process group when the size changes).
pub fn set_window_size(fd: std::os::fd::BorrowedFd<'_>, size: &libc::winsize) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: TIOCSWINSZ reads one `struct winsize` through the pointer, which points to a
    // live value of that type.
    let ret = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TIOCSWINSZ,
            size as *const libc::winsize,
        )
    };
    check(ret)?;
    Ok(())
}

/// Reads a small kernel-generated file (under /proc, /proc/sys) whole, relative to `dir`
/// (`None`: the current directory or an absolute path): one `openat`, reads of `capacity`
/// bytes until one returns 0 (end of file), one `close`. Such a file reports size 0, so a
/// generic reader asks for it (`statx`) and then reads in 32, 64, 128... byte steps, several
/// calls that each make the kernel generate the file again; one buffer large enough for the
/// whole of it takes one read and the read that confirms its end.
pub fn read_kernel_file(
    dir: Option<std::os::fd::BorrowedFd<'_>>,
    path: &Path,
    capacity: usize,
) -> io::Result<Vec<u8>> {
    read_kernel_file_until(dir, path, capacity, |_, _| false)
}

/// Reads a kernel tunable's value (a /proc/sys file) relative to `dir`: one `openat`, one
/// `read`, one `close` when the value fits (the usual case). A sysctl's read generates the
/// whole value at once from the start of the file, newline-terminated, and returns as much of
/// it as the buffer holds: a read shorter than the buffer that ends with the newline is the
/// whole value, and the read that would confirm the end (which makes the kernel run the
/// handler again) is not needed. Anything else (a value that filled the buffer, one without
/// its newline) is read on to the end as `read_kernel_file` does.
pub fn read_sysctl(dir: Option<std::os::fd::BorrowedFd<'_>>, path: &Path) -> io::Result<Vec<u8>> {
    read_kernel_file_until(dir, path, 64, sysctl_value_complete)
}

/// Reads a /proc file the kernel generates whole at each read from its start (a
/// `single_open` seq_file, such as /proc/self/cgroup): one `openat`, one `read`, one `close`
/// when it fits in `capacity`. Such a read returns the whole text, or as much of it as the
/// buffer holds: one shorter than the buffer that ends with a newline is all of it, and the
/// read that would confirm the end is not needed (as for a sysctl, `read_sysctl`). Anything
/// else is read on to the end as `read_kernel_file` does.
pub fn read_whole_proc_file(
    dir: Option<std::os::fd::BorrowedFd<'_>>,
    path: &Path,
    capacity: usize,
) -> io::Result<Vec<u8>> {
    read_kernel_file_until(dir, path, capacity, sysctl_value_complete)
}

/// `read_kernel_file`, stopping early once `complete(what was read, the buffer's size)` says
/// the rest would be end of file.
fn read_kernel_file_until(
    dir: Option<std::os::fd::BorrowedFd<'_>>,
    path: &Path,
    capacity: usize,
    complete: impl Fn(&[u8], usize) -> bool,
) -> io::Result<Vec<u8>> {
    use nix::fcntl::{openat, OFlag, AT_FDCWD};
    let fd = openat(
        dir.unwrap_or(AT_FDCWD),
        path,
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    let mut buf = vec![0u8; capacity.max(64)];
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        match nix::unistd::read(&fd, &mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => {
                len += n;
                if complete(&buf[..len], buf.len()) {
                    break;
                }
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    buf.truncate(len);
    Ok(buf)
}

/// Whether `read` (what the reads of a sysctl returned so far, into a buffer of `capacity`
/// bytes) is the whole value: shorter than the buffer and ending with the value's newline.
pub fn sysctl_value_complete(read: &[u8], capacity: usize) -> bool {
    read.len() < capacity && read.ends_with(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pidfd_signals_its_process_and_none_once_it_has_ended() {
        use std::os::fd::AsFd;
        use std::os::unix::process::ExitStatusExt;
        let mut child = std::process::Command::new("sleep")
            .arg("1000")
            .spawn()
            .unwrap();
        let pidfd = pidfd_open(Pid::from_raw(child.id() as i32)).unwrap();
        pidfd_send_signal(pidfd.as_fd(), nix::sys::signal::Signal::SIGKILL).unwrap();
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
        // Reaped: the descriptor names the ended process, whatever takes its pid now.
        let again = pidfd_send_signal(pidfd.as_fd(), nix::sys::signal::Signal::SIGKILL);
        assert_eq!(again.unwrap_err().raw_os_error(), Some(libc::ESRCH));
    }

    #[test]
    fn a_negative_return_is_the_error_in_errno() {
        // SAFETY: closing descriptor -1 touches nothing of ours; it fails with EBADF.
        let ret = unsafe { libc::close(-1) };
        assert_eq!(check(ret).unwrap_err().raw_os_error(), Some(libc::EBADF));
        assert_eq!(check(7i32).unwrap(), 7);
        assert_eq!(check(0i64).unwrap(), 0);
    }

    /// The network namespace maker shares this process's memory and writes none of it but
    /// its own stack: it answers 0 (root: a namespace of its own, not ours) or the errno of
    /// its unshare (EPERM unprivileged), and this thread's errno — which a libc wrapper
    /// failing in the maker would have written, the thread-local being shared — is what
    /// this thread left there.
    #[test]
    fn the_network_namespace_maker_writes_nothing_of_ours() {
        use std::os::fd::AsFd;
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        const SENTINEL: i32 = 4242;
        // SAFETY: this thread's errno location, written and read by this thread.
        unsafe { *libc::__errno_location() = SENTINEL };
        let Some((pid, stack)) = spawn_network_namespace_maker(write.as_fd()).unwrap() else {
            return; // not x86_64: the caller forks instead
        };
        drop(write);
        let mut answer = [0u8; 4];
        let got = nix::unistd::read(&read, &mut answer);
        // SAFETY: as above.
        let errno = unsafe { *libc::__errno_location() };
        let namespaces = (
            std::fs::read_link(format!("/proc/{pid}/ns/net")),
            std::fs::read_link("/proc/self/ns/net"),
        );
        // Gone before anything is checked: a failed check leaves no maker behind.
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
        let status = nix::sys::wait::waitpid(pid, None).unwrap();
        drop(stack);
        assert!(
            matches!(
                status,
                nix::sys::wait::WaitStatus::Signaled(_, nix::sys::signal::Signal::SIGKILL, _)
            ),
            "{status:?}"
        );
        assert_eq!(got, Ok(4));
        match i32::from_ne_bytes(answer) {
            0 => {
                let (theirs, ours) = (namespaces.0.unwrap(), namespaces.1.unwrap());
                assert_ne!(theirs, ours, "the maker's namespace is its own");
            }
            answer => assert_eq!(answer, libc::EPERM, "unshare(CLONE_NEWNET)"),
        }
        assert_eq!(errno, SENTINEL, "the maker wrote this thread's errno");
    }

    /// What `end_holding_nothing` closes: everything but the kept numbers, whatever their
    /// order, repeats and neighbours.
    #[test]
    fn the_ranges_closed_leave_out_exactly_the_kept_descriptors() {
        let max = libc::c_uint::MAX;
        assert_eq!(ranges_around(&mut [5]), [(0, 4), (6, max)]);
        assert_eq!(ranges_around(&mut [0]), [(1, max)]);
        // Kept twice, or side by side: nothing closed between them.
        assert_eq!(ranges_around(&mut [7, 7]), [(0, 6), (8, max)]);
        assert_eq!(ranges_around(&mut [6, 5]), [(0, 4), (7, max)]);
        assert_eq!(ranges_around(&mut [9, 3]), [(0, 2), (4, 8), (10, max)]);
        assert_eq!(ranges_around(&mut [0, 1]), [(2, max)]);
        assert_eq!(ranges_around(&mut [3, max]), [(0, 2), (4, max - 1)]);
    }

    /// A sysctl's value is whole when a read shorter than the buffer ends with its newline;
    /// a full buffer, or no newline yet, means reading on.
    #[test]
    fn a_sysctl_read_stops_only_at_a_whole_value() {
        assert!(sysctl_value_complete(b"128\n", 64));
        assert!(!sysctl_value_complete(b"128", 64));
        assert!(!sysctl_value_complete(&[b'1'; 64], 64));
        let mut full = vec![b'1'; 63];
        full.push(b'\n');
        assert!(!sysctl_value_complete(&full, 64));
        // What one read gives is what reading to the end gives: a real sysctl, and files
        // longer than the first buffer (read on to their end).
        for path in [
            "/proc/sys/kernel/ostype",
            "/proc/sys/user/max_user_namespaces",
        ] {
            let (one, all) = (
                read_sysctl(None, Path::new(path)).unwrap(),
                read_kernel_file(None, Path::new(path), 64).unwrap(),
            );
            assert_eq!(one, all, "{path}");
        }
        let file = std::env::temp_dir().join(format!("cwx-sysctl-{}", std::process::id()));
        for len in [0, 1, 63, 64, 65, 200] {
            let mut value = vec![b'7'; len];
            value.push(b'\n');
            std::fs::write(&file, &value).unwrap();
            assert_eq!(read_sysctl(None, &file).unwrap(), value, "{len}");
        }
        std::fs::remove_file(&file).unwrap();
    }
}
