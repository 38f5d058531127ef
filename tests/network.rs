//! network dimension: TCP/UDP/raw/packet sockets, host loopback services, abstract and
//! pathname Unix sockets. Host-side listeners check that nothing arrived.

mod common;
use common::*;
use std::net::{TcpListener, UdpSocket};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};

#[test]
fn net_none_denies_every_socket_family_but_unix() {
    let sb = Sandbox::new();
    for (family, ty) in [
        ("inet", "stream"),
        ("inet", "dgram"),
        ("inet6", "stream"),
        ("inet", "raw"),
        ("packet", "raw"),
        ("netlink", "raw"),
    ] {
        assert_eq!(
            sb.attempt(&["socket", family, ty]),
            "EPERM",
            "{family} {ty}"
        );
    }
    assert_eq!(sb.attempt(&["socket", "unix", "stream"]), "ok");
}

/// Each run without network has a network namespace of its own: neither the host's nor
/// another live sandbox's.
#[test]
fn each_run_without_network_has_a_network_namespace_of_its_own() {
    use std::io::{BufRead, BufReader};
    let host = std::fs::read_link("/proc/self/ns/net").unwrap();
    as_each_identity(|sb, who| {
        // Both alive at once: each prints its namespace, then waits for stdin to close.
        let mut children: Vec<_> = (0..2)
            .map(|_| {
                sb.command(
                    "run",
                    &["sh", "-c", "readlink /proc/self/ns/net; read x; exit 0"],
                )
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
            })
            .collect();
        let seen: Vec<String> = children
            .iter_mut()
            .map(|c| {
                let mut line = String::new();
                BufReader::new(c.stdout.as_mut().unwrap())
                    .read_line(&mut line)
                    .unwrap();
                line.trim().to_string()
            })
            .collect();
        for mut c in children {
            drop(c.stdin.take());
            assert!(c.wait().unwrap().success(), "{who}");
        }
        for ns in &seen {
            assert!(ns.starts_with("net:["), "{who}: {ns:?}");
            assert_ne!(std::path::Path::new(ns), host, "{who}: the host's");
        }
        assert_ne!(seen[0], seen[1], "{who}: two sandboxes share one");
    });
}

#[test]
fn host_loopback_services_are_unreachable() {
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    tcp.set_nonblocking(true).unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_nonblocking(true).unwrap();
    let tport = tcp.local_addr().unwrap().port().to_string();
    let uport = udp.local_addr().unwrap().port().to_string();

    let none = Sandbox::new();
    assert_eq!(none.attempt(&["tcp-connect", "127.0.0.1", &tport]), "EPERM");
    assert_eq!(none.attempt(&["udp-send", "127.0.0.1", &uport]), "EPERM");

    // A private loopback: the host's listener does not exist there.
    let lo = Sandbox::new().args(["--net", "loopback"]);
    assert_eq!(
        lo.attempt(&["tcp-connect", "127.0.0.1", &tport]),
        "ECONNREFUSED"
    );
    assert_eq!(lo.attempt(&["udp-send", "127.0.0.1", &uport]), "ok");
    assert_eq!(lo.attempt(&["socket", "inet", "raw"]), "EPERM");
    assert_eq!(lo.attempt(&["socket", "packet", "raw"]), "EPERM");

    assert!(
        tcp.accept().is_err(),
        "a connection reached the host listener"
    );
    let mut buf = [0u8; 16];
    assert!(
        udp.recv_from(&mut buf).is_err(),
        "a datagram reached the host socket"
    );
}

#[test]
fn loopback_mode_has_a_working_private_loopback() {
    let lo = Sandbox::new().args(["--net", "loopback"]);
    let out = lo.violate(&["tcp-listen", "4555"]);
    assert_eq!(stdout(&out).trim(), "ok", "{}", stderr(&out));
}

#[test]
fn abstract_unix_sockets_of_the_host_are_unreachable() {
    let name = format!("cwexec-test-{}", std::process::id());
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let listener = UnixListener::bind_addr(&addr).unwrap();
    listener.set_nonblocking(true).unwrap();
    // Another network namespace has its own abstract socket namespace.
    assert_eq!(
        Sandbox::new().attempt(&["abstract-connect", &name]),
        "ECONNREFUSED"
    );
    // With the host network, Landlock's scope (ABI 6) still keeps it out.
    let host = Sandbox::new().args(["--net", "host"]);
    let got = host.attempt(&["abstract-connect", &name]);
    if landlock_abi() >= 6 {
        assert_eq!(got, "EPERM");
    } else {
        skip(&format!(
            "abstract-socket scope under --net host: Landlock ABI {} < 6",
            landlock_abi()
        ));
    }
    assert!(
        listener.accept().is_err(),
        "a connection reached the host's abstract socket"
    );
}

#[test]
fn pathname_unix_sockets_outside_grants_are_absent() {
    let dir = workdir("sock");
    let path = dir.join("host.sock");
    let listener = UnixListener::bind(&path).unwrap();
    listener.set_nonblocking(true).unwrap();
    for net in ["none", "host"] {
        let sb = Sandbox::new().args(["--net", net]);
        assert_eq!(
            sb.attempt(&["unix-connect", path.to_str().unwrap()]),
            "ENOENT",
            "--net {net}"
        );
    }
    for sys in [
        "/run/systemd/private",
        "/var/run/docker.sock",
        "/run/dbus/system_bus_socket",
    ] {
        assert_eq!(
            Sandbox::new().attempt(&["unix-connect", sys]),
            "ENOENT",
            "{sys}"
        );
    }
    assert!(listener.accept().is_err());
}

fn landlock_abi() -> i64 {
    unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32,
        )
    }
}

/// The network namespace is made by a helper process of init (`kernel::netns`), beside the
/// mount view. It must be the sandbox's own user namespace's, as one made by clone is (else
/// root in the sandbox could not even bring loopback up, or a host namespace would own it),
/// and the helper, which holds every privilege in that user namespace unconfined, must be
/// gone before the command runs: the command sees no process but init and itself.
#[test]
fn the_network_namespace_is_the_sandboxs_own_and_its_maker_is_gone() {
    use std::io::{BufRead, BufReader};
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    const NS_GET_USERNS: libc::c_ulong = 0xb701;
    as_each_identity(|sb, who| {
        for _ in 0..10 {
            let mut child = sb
                .command(
                    "run",
                    &[
                        "sh",
                        "-c",
                        // Globbing is a shell builtin: no other process exists meanwhile.
                        "for p in /proc/[0-9]*; do echo \"${p#/proc/}\"; done; echo \"self $$\"; echo end; read x; exit 0",
                    ],
                )
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let mut lines = Vec::new();
            let mut out = BufReader::new(child.stdout.take().unwrap());
            loop {
                let mut line = String::new();
                if out.read_line(&mut line).unwrap() == 0 {
                    break;
                }
                if line.trim() == "end" {
                    break;
                }
                lines.push(line.trim().to_string());
            }
            // From the host: the command's network namespace and who owns it.
            let init = children_of(child.id());
            assert_eq!(init.len(), 1, "{who}: cw-exec's children {init:?}");
            let command = children_of(init[0]);
            assert_eq!(command.len(), 1, "{who}: init's children {command:?}");
            let ns = std::fs::File::open(format!("/proc/{}/ns/net", command[0])).unwrap();
            let owner = unsafe { libc::ioctl(ns.as_raw_fd(), NS_GET_USERNS) };
            assert!(
                owner >= 0,
                "{who}: NS_GET_USERNS: {}",
                std::io::Error::last_os_error()
            );
            let owner_ino = std::fs::metadata(format!("/proc/self/fd/{owner}"))
                .unwrap()
                .ino();
            unsafe { libc::close(owner) };
            let sandbox_userns = std::fs::metadata(format!("/proc/{}/ns/user", command[0]))
                .unwrap()
                .ino();
            let host_net = std::fs::metadata("/proc/self/ns/net").unwrap().ino();
            assert_ne!(ns.metadata().unwrap().ino(), host_net, "{who}: the host's");
            assert_eq!(
                owner_ino, sandbox_userns,
                "{who}: owned by another user namespace"
            );
            drop(child.stdin.take());
            let status = child.wait().unwrap();
            assert!(status.success(), "{who}: {status:?} {lines:?}");

            let me = lines
                .iter()
                .find_map(|l| l.strip_prefix("self "))
                .unwrap_or_else(|| panic!("{who}: {lines:?}"))
                .to_string();
            let mut pids: Vec<&str> = lines
                .iter()
                .filter(|l| !l.starts_with("self "))
                .map(String::as_str)
                .collect();
            pids.sort();
            let mut expected = vec!["1", me.as_str()];
            expected.sort();
            assert_eq!(pids, expected, "{who}: processes the command sees");
        }
    });
}

/// Where the network namespace cannot be made (here a seccomp filter refusing unshare,
/// examples/refuse.rs, as a container runtime's profile may, while clone may still create
/// namespaces), the run is refused before anything executes, never run on the host's
/// network; `--net host` needs none and runs.
#[test]
fn a_network_namespace_that_cannot_be_made_refuses_the_run() {
    let dir = workdir("netns-refused");
    let marker = dir.join("executed");
    let touch = format!("touch {}", marker.display());
    as_each_identity(|sb, who| {
        let _ = std::fs::remove_file(&marker);
        let sb = sb
            .wrapped(&refusing(&["unshare"]))
            .args(["--write", dir.to_str().unwrap()]);
        let out = sb.run(&["sh", "-c", &touch]);
        assert_eq!(out.status.code(), Some(125), "{who}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("network namespace")
                && stderr(&out).contains("unshare(CLONE_NEWNET)"),
            "{who}: {}",
            stderr(&out)
        );
        assert!(!marker.exists(), "{who}: the command ran");
        let host = sb
            .clone()
            .args(["--net", "host"])
            .run(&["sh", "-c", &touch]);
        assert_eq!(host.status.code(), Some(0), "{who}: {}", stderr(&host));
        assert!(marker.exists(), "{who}");
    });
    assert_eq!(leftover_cgroups(), Vec::<std::path::PathBuf>::new());
}
