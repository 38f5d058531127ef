//! Test helper (built by `cargo test`): attempts one operation and prints `ok`, or the
//! errno name the kernel answered (`EACCES`, `EPERM`, ...), then exits 0. The integration
//! tests run it inside the sandbox to attempt each violation for real.
//!
//!   violate ACTION [ARGS...]
//!
//! This is test code, not part of cw-exec: it calls libc directly where that is the point.

use std::ffi::CString;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;

fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

fn errno_name(e: i32) -> String {
    format!("{:?}", nix::errno::Errno::from_raw(e))
}

/// Prints `ok` for a non-negative return, else the errno name.
fn report(ret: i64) {
    if ret < 0 {
        println!(
            "{}",
            errno_name(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
        );
    } else {
        println!("ok");
    }
}

fn result<T>(r: std::io::Result<T>) {
    match r {
        Ok(_) => println!("ok"),
        Err(e) => println!(
            "{}",
            e.raw_os_error()
                .map(errno_name)
                .unwrap_or_else(|| e.to_string())
        ),
    }
}

/// mmap's answer as `report` wants it.
fn mmap_ret(m: *mut libc::c_void) -> i64 {
    if m == libc::MAP_FAILED {
        -1
    } else {
        0
    }
}

/// A number as the `raw` actions take it: decimal, `0x` hexadecimal, `0o` octal, or negative.
fn number(x: &str) -> u64 {
    if let Some(h) = x.strip_prefix("0x") {
        u64::from_str_radix(h, 16).expect("a hexadecimal number")
    } else if let Some(o) = x.strip_prefix("0o") {
        u64::from_str_radix(o, 8).expect("an octal number")
    } else if x.starts_with('-') {
        x.parse::<i64>().expect("a number") as u64
    } else {
        x.parse::<u64>().expect("a number")
    }
}

fn family(name: &str) -> i32 {
    match name {
        "unix" => libc::AF_UNIX,
        "inet" => libc::AF_INET,
        "inet6" => libc::AF_INET6,
        "packet" => libc::AF_PACKET,
        "netlink" => libc::AF_NETLINK,
        other => panic!("unknown family {other}"),
    }
}

fn sock_type(name: &str) -> i32 {
    match name {
        "stream" => libc::SOCK_STREAM,
        "dgram" => libc::SOCK_DGRAM,
        "raw" => libc::SOCK_RAW,
        other => panic!("unknown type {other}"),
    }
}

fn sockaddr_in(host: &str, port: u16) -> libc::sockaddr_in {
    let ip: std::net::Ipv4Addr = host.parse().unwrap();
    let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sa.sin_family = libc::AF_INET as u16;
    sa.sin_port = port.to_be();
    sa.sin_addr.s_addr = u32::from_ne_bytes(ip.octets());
    sa
}

fn unix_addr(path: &[u8], abstract_name: bool) -> (libc::sockaddr_un, u32) {
    let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    sa.sun_family = libc::AF_UNIX as u16;
    let offset = if abstract_name { 1 } else { 0 };
    for (i, b) in path.iter().enumerate() {
        sa.sun_path[i + offset] = *b as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>()
        + path.len()
        + offset
        + if abstract_name { 0 } else { 1 };
    (sa, len as u32)
}

fn exec(path: &str, args: &[String]) {
    let argv: Vec<CString> = std::iter::once(path.to_string())
        .chain(args.iter().cloned())
        .map(|a| c(&a))
        .collect();
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];
    unsafe { libc::execve(argv[0].as_ptr(), ptrs.as_ptr(), envp.as_ptr()) };
    report(-1);
}

/// One raw system call that sets or creates with a mode (never through libc's wrappers, which
/// may route one call to another): `mode_call NAME PATH OCTAL`. For `tmpfile`, PATH is the
/// directory; a file made with O_TMPFILE is linked in as PATH/tmpfile so the host can see it.
fn mode_call(name: &str, path: &str, mode: &str) -> i64 {
    let mode = u32::from_str_radix(mode, 8).expect("an octal mode");
    let p = c(path);
    let at = libc::AT_FDCWD as i64;
    let creating = (libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC) as i64;
    let m = mode as i64;
    // SAFETY (test helper): every pointer is a live NUL-terminated string or a local struct.
    unsafe {
        match name {
            #[cfg(target_arch = "x86_64")]
            "chmod" => libc::syscall(libc::SYS_chmod, p.as_ptr(), m),
            "fchmodat" => libc::syscall(libc::SYS_fchmodat, at, p.as_ptr(), m),
            // fchmodat2: 452 on every architecture (libc names it for x86_64 only).
            "fchmodat2" => libc::syscall(452, at, p.as_ptr(), m, 0),
            "fchmod" => {
                let fd = libc::open(p.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return -1;
                }
                libc::syscall(libc::SYS_fchmod, fd, m)
            }
            #[cfg(target_arch = "x86_64")]
            "open" => libc::syscall(libc::SYS_open, p.as_ptr(), creating, m),
            "openat" => libc::syscall(libc::SYS_openat, at, p.as_ptr(), creating, m),
            #[cfg(target_arch = "x86_64")]
            "creat" => libc::syscall(libc::SYS_creat, p.as_ptr(), m),
            #[cfg(target_arch = "x86_64")]
            "mkdir" => libc::syscall(libc::SYS_mkdir, p.as_ptr(), m),
            "mkdirat" => libc::syscall(libc::SYS_mkdirat, at, p.as_ptr(), m),
            #[cfg(target_arch = "x86_64")]
            "mknod" => libc::syscall(libc::SYS_mknod, p.as_ptr(), libc::S_IFREG as i64 | m, 0),
            "mknodat" => libc::syscall(
                libc::SYS_mknodat,
                at,
                p.as_ptr(),
                libc::S_IFREG as i64 | m,
                0,
            ),
            "openat2" => {
                #[repr(C)]
                struct OpenHow {
                    flags: u64,
                    mode: u64,
                    resolve: u64,
                }
                let how = OpenHow {
                    flags: creating as u64,
                    mode: m as u64,
                    resolve: 0,
                };
                libc::syscall(
                    libc::SYS_openat2,
                    at,
                    p.as_ptr(),
                    &how as *const OpenHow,
                    std::mem::size_of::<OpenHow>(),
                )
            }
            "tmpfile" => {
                let fd = libc::syscall(
                    libc::SYS_openat,
                    at,
                    p.as_ptr(),
                    (libc::O_TMPFILE | libc::O_WRONLY | libc::O_CLOEXEC) as i64,
                    m,
                );
                if fd < 0 {
                    return -1;
                }
                let from = c(&format!("/proc/self/fd/{fd}"));
                let to = c(&format!("{path}/tmpfile"));
                libc::linkat(
                    libc::AT_FDCWD,
                    from.as_ptr(),
                    libc::AT_FDCWD,
                    to.as_ptr(),
                    libc::AT_SYMLINK_FOLLOW,
                ) as i64
            }
            other => panic!("unknown mode call {other}"),
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a = |i: usize| args.get(i).cloned().unwrap_or_default();
    let p = |i: usize| c(&a(i));
    match a(0).as_str() {
        "noop" => println!("executed"),
        "read" => result(std::fs::File::open(a(1)).and_then(|mut f| {
            let mut b = [0u8; 1];
            f.read(&mut b)
        })),
        "list" => result(std::fs::read_dir(a(1)).map(|d| d.count())),
        "write" => result(std::fs::write(a(1), b"violated\n")),
        "append" => result(std::fs::OpenOptions::new().append(true).open(a(1))),
        "truncate" => report(unsafe { libc::truncate(p(1).as_ptr(), 0) } as i64),
        "unlink" => report(unsafe { libc::unlink(p(1).as_ptr()) } as i64),
        "rmdir" => report(unsafe { libc::rmdir(p(1).as_ptr()) } as i64),
        "mkdir" => report(unsafe { libc::mkdir(p(1).as_ptr(), 0o755) } as i64),
        "rename" => report(unsafe { libc::rename(p(1).as_ptr(), p(2).as_ptr()) } as i64),
        "link" => report(unsafe { libc::link(p(1).as_ptr(), p(2).as_ptr()) } as i64),
        "symlink" => report(unsafe { libc::symlink(p(1).as_ptr(), p(2).as_ptr()) } as i64),
        "chmod" => report(unsafe { libc::chmod(p(1).as_ptr(), 0o777) } as i64),
        "chown" => {
            report(unsafe { libc::chown(p(1).as_ptr(), libc::getuid(), libc::getgid()) } as i64)
        }
        "setxattr" => report(unsafe {
            libc::setxattr(
                p(1).as_ptr(),
                c("user.cwexec").as_ptr(),
                b"x".as_ptr() as *const _,
                1,
                0,
            )
        } as i64),
        "utimes" => report(unsafe { libc::utimes(p(1).as_ptr(), std::ptr::null()) } as i64),
        "mknod" => {
            report(
                unsafe { libc::mknod(p(1).as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) }
                    as i64,
            )
        }
        "mkfifo" => report(unsafe { libc::mkfifo(p(1).as_ptr(), 0o644) } as i64),
        "mode-call" => report(mode_call(&a(1), &a(2), &a(3))),
        "setxattr-cap" => {
            // A version-2 file capability granting CAP_SETUID, effective on execve.
            let mut blob = [0u8; 20];
            blob[..4].copy_from_slice(&(0x0200_0000u32 | 1).to_le_bytes());
            blob[4..8].copy_from_slice(&(1u32 << 7/* CAP_SETUID */).to_le_bytes());
            report(unsafe {
                libc::setxattr(
                    p(1).as_ptr(),
                    c("security.capability").as_ptr(),
                    blob.as_ptr() as *const _,
                    blob.len(),
                    0,
                )
            } as i64)
        }
        "exec-memory" => {
            // Ways to executable memory with contents of one's own choosing: prints ok or the
            // errno of the one named.
            const PAGE: usize = 4096;
            let anon = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
            let rw = libc::PROT_READ | libc::PROT_WRITE;
            report(unsafe {
                match a(1).as_str() {
                    "mmap-anon-rx" => mmap_ret(libc::mmap(
                        std::ptr::null_mut(),
                        PAGE,
                        libc::PROT_READ | libc::PROT_EXEC,
                        anon,
                        -1,
                        0,
                    )),
                    "mmap-anon-rwx" => mmap_ret(libc::mmap(
                        std::ptr::null_mut(),
                        PAGE,
                        rw | libc::PROT_EXEC,
                        anon,
                        -1,
                        0,
                    )),
                    "mprotect-rx" => {
                        let m = libc::mmap(std::ptr::null_mut(), PAGE, rw, anon, -1, 0);
                        libc::mprotect(m, PAGE, libc::PROT_READ | libc::PROT_EXEC) as i64
                    }
                    "pkey-mprotect-rx" => {
                        let m = libc::mmap(std::ptr::null_mut(), PAGE, rw, anon, -1, 0);
                        libc::syscall(
                            libc::SYS_pkey_mprotect,
                            m,
                            PAGE,
                            libc::PROT_READ | libc::PROT_EXEC,
                            -1,
                        )
                    }
                    "mmap-file-rwx" => {
                        // A private writable and executable mapping of the loader itself.
                        let fd = libc::open(
                            c("/lib64/ld-linux-x86-64.so.2").as_ptr(),
                            libc::O_RDONLY | libc::O_CLOEXEC,
                        );
                        mmap_ret(libc::mmap(
                            std::ptr::null_mut(),
                            PAGE,
                            rw | libc::PROT_EXEC,
                            libc::MAP_PRIVATE,
                            fd,
                            0,
                        ))
                    }
                    "mmap-memfd-rx" => {
                        let fd = libc::memfd_create(c("x").as_ptr(), libc::MFD_CLOEXEC | 8);
                        if fd < 0 {
                            -1
                        } else {
                            libc::ftruncate(fd, PAGE as i64);
                            mmap_ret(libc::mmap(
                                std::ptr::null_mut(),
                                PAGE,
                                libc::PROT_READ | libc::PROT_EXEC,
                                libc::MAP_SHARED,
                                fd,
                                0,
                            ))
                        }
                    }
                    "mmap-dev-zero-rx" => {
                        let fd = libc::open(c("/dev/zero").as_ptr(), libc::O_RDONLY);
                        if fd < 0 {
                            -1
                        } else {
                            mmap_ret(libc::mmap(
                                std::ptr::null_mut(),
                                PAGE,
                                libc::PROT_READ | libc::PROT_EXEC,
                                libc::MAP_PRIVATE,
                                fd,
                                0,
                            ))
                        }
                    }
                    "shmat-exec" => {
                        let id = libc::shmget(libc::IPC_PRIVATE, PAGE, libc::IPC_CREAT | 0o700);
                        if id < 0 {
                            -1
                        } else {
                            let m = libc::shmat(id, std::ptr::null(), libc::SHM_EXEC);
                            let errno = std::io::Error::last_os_error();
                            libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut());
                            if m as isize == -1 {
                                *libc::__errno_location() = errno.raw_os_error().unwrap_or(0);
                                -1
                            } else {
                                0
                            }
                        }
                    }
                    "read-implies-exec" => libc::syscall(libc::SYS_personality, 0x040_0000i64),
                    "proc-self-mem" => {
                        libc::open(c("/proc/self/mem").as_ptr(), libc::O_RDWR | libc::O_CLOEXEC)
                            as i64
                    }
                    other => panic!("unknown exec-memory route {other}"),
                }
            })
        }
        "run-jit" => {
            // Writes `mov eax, 42; ret` into anonymous memory, makes it executable and calls
            // it: prints "ran 42" if native code from memory ran, else the failing errno.
            const PAGE: usize = 4096;
            unsafe {
                let m = libc::mmap(
                    std::ptr::null_mut(),
                    PAGE,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                );
                if m == libc::MAP_FAILED {
                    return report(-1);
                }
                let code: [u8; 6] = [0xb8, 42, 0, 0, 0, 0xc3];
                std::ptr::copy_nonoverlapping(code.as_ptr(), m as *mut u8, code.len());
                if libc::mprotect(m, PAGE, libc::PROT_READ | libc::PROT_EXEC) != 0 {
                    return report(-1);
                }
                let f: extern "C" fn() -> i32 = std::mem::transmute(m);
                println!("ran {}", f());
            }
        }
        "inotify-fill" => {
            // Opens inotify instances until the kernel refuses; prints the errno and how many
            // it got, then holds them until stdin closes.
            let mut n = 0;
            let errno = loop {
                if unsafe { libc::inotify_init1(libc::IN_CLOEXEC) } < 0 {
                    break std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
                }
                n += 1;
                if n > 1_000_000 {
                    break 0;
                }
            };
            println!("{} {n}", errno_name(errno));
            use std::io::Write;
            let _ = std::io::stdout().flush();
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
        }
        "inotify-once" => report(unsafe { libc::inotify_init1(libc::IN_CLOEXEC) } as i64),
        "sysctl" => match std::fs::read_to_string(a(1)) {
            Ok(v) => println!("{}", v.trim()),
            Err(e) => result::<()>(Err(e)),
        },
        "exec" => exec(&a(1), &args[2..]),
        "ldso-exec" => exec("/lib64/ld-linux-x86-64.so.2", &args[1..]),
        "memfd-exec" => unsafe {
            let fd = libc::memfd_create(c("x").as_ptr(), 0);
            if fd < 0 {
                return report(-1);
            }
            let bytes = std::fs::read("/proc/self/exe").unwrap();
            libc::write(fd, bytes.as_ptr() as *const _, bytes.len());
            let argv = [c("violate"), c("noop")];
            let ptrs = [argv[0].as_ptr(), argv[1].as_ptr(), std::ptr::null()];
            let envp: [*const libc::c_char; 1] = [std::ptr::null()];
            libc::fexecve(fd, ptrs.as_ptr(), envp.as_ptr());
            report(-1)
        },
        "copy" => result(std::fs::copy(a(1), a(2))),
        "socket" => {
            // Raw sockets need a real protocol, or the kernel answers EPROTONOSUPPORT before
            // it gets to the permission check.
            let protocol = match (a(1).as_str(), a(2).as_str()) {
                ("inet" | "inet6", "raw") => libc::IPPROTO_ICMP,
                ("packet", _) => (libc::ETH_P_ALL as u16).to_be() as i32,
                _ => 0,
            };
            report(unsafe { libc::socket(family(&a(1)), sock_type(&a(2)), protocol) } as i64)
        }
        "tcp-connect" => unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            if fd < 0 {
                return report(-1);
            }
            let sa = sockaddr_in(&a(1), a(2).parse().unwrap());
            report(libc::connect(
                fd,
                &sa as *const _ as *const libc::sockaddr,
                std::mem::size_of_val(&sa) as u32,
            ) as i64)
        },
        "tcp-listen" => unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            if fd < 0 {
                return report(-1);
            }
            let sa = sockaddr_in("127.0.0.1", a(1).parse().unwrap());
            if libc::bind(
                fd,
                &sa as *const _ as *const libc::sockaddr,
                std::mem::size_of_val(&sa) as u32,
            ) < 0
            {
                return report(-1);
            }
            report(libc::listen(fd, 1) as i64)
        },
        "udp-send" => unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
            if fd < 0 {
                return report(-1);
            }
            let sa = sockaddr_in(&a(1), a(2).parse().unwrap());
            report(libc::sendto(
                fd,
                b"x".as_ptr() as *const _,
                1,
                0,
                &sa as *const _ as *const libc::sockaddr,
                std::mem::size_of_val(&sa) as u32,
            ) as i64)
        },
        "unix-connect" | "abstract-connect" => unsafe {
            let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
            if fd < 0 {
                return report(-1);
            }
            let (sa, len) = unix_addr(a(1).as_bytes(), a(0) == "abstract-connect");
            report(libc::connect(fd, &sa as *const _ as *const libc::sockaddr, len) as i64)
        },
        "io-uring" => report(unsafe {
            let mut params = [0u8; 120];
            libc::syscall(libc::SYS_io_uring_setup, 4u32, params.as_mut_ptr())
        }),
        "bpf" => report(unsafe { libc::syscall(libc::SYS_bpf, 0, std::ptr::null::<u8>(), 0) }),
        "perf" => report(unsafe {
            libc::syscall(
                libc::SYS_perf_event_open,
                std::ptr::null::<u8>(),
                0,
                -1,
                -1,
                0,
            )
        }),
        "keyctl" => report(unsafe { libc::syscall(libc::SYS_keyctl, 0, 0, 0, 0, 0) }),
        "userfaultfd" => report(unsafe { libc::syscall(libc::SYS_userfaultfd, 0) }),
        "unshare" => {
            let flag = match a(1).as_str() {
                "user" => libc::CLONE_NEWUSER,
                "net" => libc::CLONE_NEWNET,
                "mount" => libc::CLONE_NEWNS,
                "pid" => libc::CLONE_NEWPID,
                other => panic!("unknown namespace {other}"),
            };
            report(unsafe { libc::unshare(flag) } as i64)
        }
        "clone-newuser" => report(unsafe {
            libc::syscall(
                libc::SYS_clone,
                (libc::CLONE_NEWUSER | libc::SIGCHLD) as u64,
                0,
                0,
                0,
                0,
            )
        }),
        "clone3" => report(unsafe { libc::syscall(libc::SYS_clone3, std::ptr::null::<u8>(), 0) }),
        "setns" => report(unsafe {
            let fd = libc::open(p(1).as_ptr(), libc::O_RDONLY);
            libc::setns(fd, 0)
        } as i64),
        "mount" => report(unsafe {
            libc::mount(
                c("none").as_ptr(),
                p(1).as_ptr(),
                c("tmpfs").as_ptr(),
                0,
                std::ptr::null(),
            )
        } as i64),
        "umount" => report(unsafe { libc::umount2(p(1).as_ptr(), libc::MNT_DETACH) } as i64),
        "chroot" => report(unsafe { libc::chroot(p(1).as_ptr()) } as i64),
        "ptrace" => {
            report(unsafe { libc::ptrace(libc::PTRACE_ATTACH, a(1).parse::<i32>().unwrap(), 0, 0) })
        }
        "kill" => {
            report(unsafe { libc::kill(a(1).parse().unwrap(), a(2).parse().unwrap()) } as i64)
        }
        // Everything a process may try on another one (PID a(1)): a pidfd, a descriptor taken
        // through it, ptrace, its memory, a signal, its /proc entries that give access to its
        // descriptors and environment. One `call=answer` each, on one line.
        "reach-pid" => {
            let pid: i32 = a(1).parse().unwrap();
            let answer = |ret: i64| {
                if ret < 0 {
                    errno_name(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
                } else {
                    "ok".to_string()
                }
            };
            let mut said = vec![];
            let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
            said.push(format!("pidfd_open={}", answer(pidfd)));
            if pidfd >= 0 {
                let got = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd, 0, 0) };
                said.push(format!("pidfd_getfd={}", answer(got)));
                let sent = unsafe {
                    libc::syscall(
                        libc::SYS_pidfd_send_signal,
                        pidfd,
                        0,
                        std::ptr::null::<u8>(),
                        0,
                    )
                };
                said.push(format!("pidfd_send_signal={}", answer(sent)));
            }
            let traced = unsafe { libc::ptrace(libc::PTRACE_ATTACH, pid, 0, 0) };
            said.push(format!("ptrace={}", answer(traced)));
            let mut byte = [0u8; 1];
            let local = libc::iovec {
                iov_base: byte.as_mut_ptr() as *mut libc::c_void,
                iov_len: 1,
            };
            let remote = libc::iovec {
                iov_base: 0x400000 as *mut libc::c_void,
                iov_len: 1,
            };
            let read = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
            said.push(format!("process_vm_readv={}", answer(read as i64)));
            let signalled = unsafe { libc::kill(pid, 0) };
            said.push(format!("kill={}", answer(signalled as i64)));
            let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count());
            said.push(format!(
                "proc_fd={}",
                match fds {
                    Ok(_) => "ok".to_string(),
                    Err(e) => errno_name(e.raw_os_error().unwrap_or(0)),
                }
            ));
            let environ = std::fs::read(format!("/proc/{pid}/environ"));
            said.push(format!(
                "proc_environ={}",
                match environ {
                    Ok(_) => "ok".to_string(),
                    Err(e) => errno_name(e.raw_os_error().unwrap_or(0)),
                }
            ));
            println!("{}", said.join(" "));
        }
        "setuid" => report(unsafe { libc::setuid(a(1).parse().unwrap()) } as i64),
        #[allow(clippy::unnecessary_cast)]
        "tiocsti" => report(unsafe {
            let request: u64 =
                libc::TIOCSTI as u64 | if a(2) == "high" { 0xdead_0000_0000 } else { 0 };
            let ch: libc::c_char = b'x' as libc::c_char;
            libc::syscall(
                libc::SYS_ioctl,
                a(1).parse::<i32>().unwrap(),
                request,
                &ch as *const libc::c_char,
            )
        }),
        "env" => {
            for (k, v) in std::env::vars_os() {
                println!("{}={}", k.to_string_lossy(), v.to_string_lossy());
            }
        }
        "grep-environ" => {
            // Reads every /proc/PID/environ this process can and reports any holding NEEDLE.
            let needle = a(1);
            let mut hits = vec![];
            for entry in std::fs::read_dir("/proc").unwrap().flatten() {
                let name = entry.file_name();
                if !name.as_bytes().iter().all(u8::is_ascii_digit) {
                    continue;
                }
                if let Ok(bytes) = std::fs::read(entry.path().join("environ")) {
                    if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                        hits.push(name.to_string_lossy().into_owned());
                    }
                }
            }
            println!(
                "{}",
                if hits.is_empty() {
                    "none".to_string()
                } else {
                    hits.join(",")
                }
            );
        }
        "pids" => {
            let mut pids: Vec<u32> = std::fs::read_dir("/proc")
                .unwrap()
                .flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
                .collect();
            pids.sort();
            println!(
                "{}",
                pids.iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            );
        }
        "fds" => {
            let mut fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
                .unwrap()
                .flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
                .collect();
            fds.sort();
            // The last descriptor is the directory being listed.
            fds.pop();
            println!(
                "{}",
                fds.iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            );
        }
        "status" => print!("{}", std::fs::read_to_string("/proc/self/status").unwrap()),
        "ns" => println!(
            "{}",
            std::fs::metadata(format!("/proc/self/ns/{}", a(1)))
                .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
                .unwrap_or(0)
        ),
        "exit" => std::process::exit(a(1).parse().unwrap()),
        "signal" => unsafe {
            libc::kill(libc::getpid(), a(1).parse().unwrap());
            std::thread::sleep(std::time::Duration::from_secs(5));
        },
        "sleep" => std::thread::sleep(std::time::Duration::from_secs_f64(a(1).parse().unwrap())),
        "swap-loop" => {
            // A racing attacker (run outside any sandbox): until STOP exists (or its parent
            // is gone), swap directory DIR for a symlink to TARGET and back. Prints "ready"
            // after the first swap.
            let (dir, target, stop) = (a(1), a(2), a(3));
            let moved = format!("{dir}.moved");
            let mut first = true;
            let parent = std::os::unix::process::parent_id();
            while std::fs::symlink_metadata(&stop).is_err()
                && std::os::unix::process::parent_id() == parent
            {
                let _ = std::fs::rename(&dir, &moved);
                let _ = std::os::unix::fs::symlink(&target, &dir);
                for _ in 0..2000 {
                    std::hint::spin_loop();
                }
                let _ = std::fs::remove_file(&dir);
                let _ = std::fs::rename(&moved, &dir);
                if first {
                    println!("ready");
                    use std::io::Write;
                    let _ = std::io::stdout().flush();
                    first = false;
                }
            }
        }
        "echo-bytes" => {
            use std::io::Write;
            let n: usize = a(1).parse().unwrap();
            let chunk: Vec<u8> = (0..=255u8).cycle().take(65536).collect();
            let mut out = std::io::stdout().lock();
            let mut left = n;
            while left > 0 {
                let k = left.min(chunk.len());
                out.write_all(&chunk[..k]).unwrap();
                left -= k;
            }
        }
        "forkbomb" => {
            // Forks children that wait on a pipe until a fork fails; prints the errno and
            // how many children were made, then lets them all exit.
            let mut fds = [0; 2];
            unsafe { libc::pipe(fds.as_mut_ptr()) };
            let mut made = 0;
            let errno = loop {
                match unsafe { libc::fork() } {
                    -1 => break std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
                    0 => unsafe {
                        let mut b = 0u8;
                        libc::close(fds[1]);
                        libc::read(fds[0], &mut b as *mut u8 as *mut _, 1);
                        libc::_exit(0);
                    },
                    _ => made += 1,
                }
                if made > 100_000 {
                    break 0;
                }
            };
            unsafe { libc::close(fds[1]) };
            while unsafe { libc::wait(std::ptr::null_mut()) } > 0 {}
            println!("{} {made}", errno_name(errno));
        }
        "alloc" => {
            // Allocates and touches MiB of memory; prints ok, or the errno if refused.
            let mib: usize = a(1).parse().unwrap();
            let mut blocks: Vec<Vec<u8>> = vec![];
            for _ in 0..mib {
                let mut v: Vec<u8> = Vec::new();
                if v.try_reserve_exact(1 << 20).is_err() {
                    println!("ENOMEM");
                    return;
                }
                v.resize(1 << 20, 1);
                blocks.push(v);
            }
            println!("ok {}", blocks.len());
        }
        "spin-cpu" => {
            // Spins until this process has used SECONDS of CPU time, however loaded the
            // machine is (wall-clock spinning uses less CPU the busier the host).
            let want = std::time::Duration::from_secs_f64(a(1).parse().unwrap());
            let used = || {
                let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
                unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
                std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
            };
            let mut x = 0u64;
            while used() < want {
                for _ in 0..100_000 {
                    x = x.wrapping_add(1);
                }
            }
            println!("spun {}", x > 0);
        }
        "spin" => {
            // Burns SECONDS of this process's own CPU time (not wall-clock time, which on a
            // loaded machine may hold much less CPU), then prints "spun true".
            let want = std::time::Duration::from_secs_f64(a(1).parse().unwrap());
            let cpu_time = || {
                nix::time::clock_gettime(nix::time::ClockId::CLOCK_PROCESS_CPUTIME_ID)
                    .map(std::time::Duration::from)
                    .unwrap_or_default()
            };
            let mut x = 0u64;
            while cpu_time() < want {
                for _ in 0..10_000 {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            println!("spun {}", x > 0);
        }
        "open-many" => {
            let mut files = vec![];
            let errno = loop {
                match std::fs::File::open("/dev/null") {
                    Ok(f) => files.push(f),
                    Err(e) => break e.raw_os_error().unwrap_or(0),
                }
                if files.len() > 1_000_000 {
                    break 0;
                }
            };
            println!("{} {}", errno_name(errno), files.len());
        }
        "write-bytes" => {
            use std::io::Write;
            let n: usize = a(2).parse().unwrap();
            let r = std::fs::File::create(a(1)).and_then(|mut f| f.write_all(&vec![b'x'; n]));
            result(r);
        }
        "fill" => {
            // Writes MIB mebibytes into PATH, or into a memfd for "memfd", and keeps them;
            // prints "ok MIB", or the errno and how many whole MiB went in first.
            use std::io::Write;
            use std::os::fd::FromRawFd;
            let mib: usize = a(2).parse().unwrap();
            let file = if a(1) == "memfd" {
                const MFD_NOEXEC_SEAL: libc::c_uint = 0x8;
                let fd = unsafe {
                    libc::memfd_create(
                        c"violate-fill".as_ptr(),
                        libc::MFD_CLOEXEC | MFD_NOEXEC_SEAL,
                    )
                };
                if fd < 0 {
                    Err(std::io::Error::last_os_error())
                } else {
                    Ok(unsafe { std::fs::File::from_raw_fd(fd) })
                }
            } else {
                std::fs::File::create(a(1))
            };
            let mut file = match file {
                Ok(f) => f,
                Err(e) => return result::<()>(Err(e)),
            };
            let chunk = vec![0x5au8; 1 << 20];
            for done in 0..mib {
                if let Err(e) = file.write_all(&chunk) {
                    println!("{} {done}", errno_name(e.raw_os_error().unwrap_or(0)));
                    return;
                }
            }
            println!("ok {mib}");
        }
        "proc-grep" => {
            // proc-grep PIDS FILES HEX...: PIDS is "1" or "all", FILES a comma-separated list
            // of /proc/PID files; the needles come hex-encoded so this process's own command
            // line does not contain them. Prints /proc/1/cmdline (NULs as spaces), then every
            // PID/FILE holding a needle, or "none".
            let needles: Vec<Vec<u8>> = args[3..]
                .iter()
                .map(|h| {
                    (0..h.len())
                        .step_by(2)
                        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
                        .collect()
                })
                .collect();
            let pids: Vec<String> = if a(1) == "all" {
                std::fs::read_dir("/proc")
                    .unwrap()
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
                    .collect()
            } else {
                vec![a(1)]
            };
            let init = std::fs::read("/proc/1/cmdline").unwrap_or_default();
            println!(
                "{}",
                String::from_utf8_lossy(&init).replace('\0', " ").trim()
            );
            let mut hits = vec![];
            for pid in &pids {
                for file in a(2).split(',') {
                    let Ok(bytes) = std::fs::read(format!("/proc/{pid}/{file}")) else {
                        continue;
                    };
                    if needles
                        .iter()
                        .any(|n| bytes.windows(n.len()).any(|w| w == n.as_slice()))
                    {
                        hits.push(format!("{pid}/{file}"));
                    }
                }
            }
            println!(
                "{}",
                if hits.is_empty() {
                    "none".to_string()
                } else {
                    hits.join(",")
                }
            );
        }
        "ioctl-tcgets" => report(unsafe {
            let fd = libc::open(p(1).as_ptr(), libc::O_RDWR);
            if fd < 0 {
                -1
            } else {
                let mut t: libc::termios = std::mem::zeroed();
                libc::ioctl(fd, libc::TCGETS, &mut t) as i64
            }
        }),
        // Becomes a session leader without a controlling terminal (as setsid(1) would),
        // then tries to take the terminal on descriptor FD as its controlling terminal.
        "tiocsctty" => report(unsafe {
            libc::setsid();
            libc::ioctl(a(1).parse::<i32>().unwrap(), libc::TIOCSCTTY, 0) as i64
        }),
        // Sets the line discipline of the terminal on FD to N_TTY (what it already is).
        "tiocsetd" => report(unsafe {
            let ldisc: libc::c_int = 0;
            libc::ioctl(a(1).parse::<i32>().unwrap(), libc::TIOCSETD, &ldisc) as i64
        }),
        "tiocsti-path" => report(unsafe {
            let fd = libc::open(p(1).as_ptr(), libc::O_RDWR);
            if fd < 0 {
                -1
            } else {
                let ch: libc::c_char = b'x' as libc::c_char;
                libc::ioctl(fd, libc::TIOCSTI, &ch as *const libc::c_char) as i64
            }
        }),
        // Copies SRC to DST (mode 0755), then executes DST with the action `noop`: prints
        // "executed" if it ran, else the errno of the copy or of execve.
        "copy-exec" => {
            use std::os::unix::fs::PermissionsExt;
            let copied = std::fs::copy(a(1), a(2)).and_then(|_| {
                std::fs::set_permissions(a(2), std::fs::Permissions::from_mode(0o755))
            });
            match copied {
                Ok(()) => exec(&a(2), &["noop".to_string()]),
                Err(e) => result(Err::<(), _>(e)),
            }
        }
        // One raw system call: `raw NR [ARG...]`, each a number (decimal, 0x hex, or
        // negative) or `path:TEXT` (a pointer to that NUL-terminated string). The number and
        // arguments go to the kernel as given, all 64 bits of each.
        "raw" => {
            let strings: Vec<CString> = args[2..]
                .iter()
                .filter_map(|x| x.strip_prefix("path:").map(c))
                .collect();
            let mut next_string = strings.iter();
            let mut v = [0u64; 6];
            for (i, x) in args[2..].iter().enumerate().take(6) {
                v[i] = if x.starts_with("path:") {
                    next_string.next().unwrap().as_ptr() as u64
                } else {
                    number(x)
                };
            }
            report(unsafe {
                libc::syscall(
                    number(&a(1)) as libc::c_long,
                    v[0],
                    v[1],
                    v[2],
                    v[3],
                    v[4],
                    v[5],
                )
            })
        }
        // One system call through the 32-bit entry (`int $0x80`, the i386 ABI, whose numbers
        // differ: 20 is getpid): `int80 NR [ARG...]`. Prints ok or the errno; a seccomp
        // filter that refuses the architecture kills the process instead.
        #[cfg(target_arch = "x86_64")]
        "int80" => {
            let mut v = [0u32; 3];
            for (i, x) in args[2..].iter().enumerate().take(3) {
                v[i] = number(x) as u32;
            }
            let mut ret: u32 = number(&a(1)) as u32;
            // SAFETY (test helper): a system call through the compatibility entry; the
            // registers it clobbers (r8-r11 are zeroed by the kernel on that path) are named.
            unsafe {
                std::arch::asm!(
                    "push rbx",
                    "mov ebx, {b:e}",
                    "int 0x80",
                    "pop rbx",
                    b = in(reg) v[0],
                    inout("eax") ret,
                    in("ecx") v[1],
                    in("edx") v[2],
                    lateout("r8") _, lateout("r9") _, lateout("r10") _, lateout("r11") _,
                );
            }
            let ret = ret as i32;
            if ret < 0 {
                println!("{}", errno_name(-ret));
            } else {
                println!("ok");
            }
        }
        other => {
            eprintln!("violate: unknown action {other:?}");
            std::process::exit(2);
        }
    }
}
