//! The egress allowlist (`--net allow=...`): an upstream HTTP server the test starts on a host
//! loopback address is reached through cw-exec's proxy by an allowed name, and by nothing
//! else: a denied name gets 403 and no TCP connection upstream, a direct connect fails, a
//! name resolving to a private address is refused unless the address is named, deny beats
//! allow, wildcards match at label boundaries; the envelope lists each decision; the proxy
//! is gone with the run; a cool-workflow allowlist policy runs.

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn code(out: &std::process::Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// A tiny HTTP server on 127.0.0.1 (host network): answers every request with `body`, and
/// counts the TCP connections it accepted.
struct Upstream {
    port: u16,
    connections: Arc<AtomicUsize>,
    body: String,
}

fn upstream() -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let body = format!("hello-upstream-{}", test_id());
    let (count, text) = (connections.clone(), body.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            count.fetch_add(1, Ordering::SeqCst);
            let text = text.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                    text.len(),
                    text
                );
            });
        }
    });
    Upstream {
        port,
        connections,
        body,
    }
}

fn has(tool: &str) -> bool {
    ["/usr/bin", "/bin"]
        .iter()
        .any(|d| Path::new(d).join(tool).exists())
}

#[test]
fn an_allowed_name_gets_through_and_nothing_else_does() {
    if !has("curl") {
        return skip("curl is not installed");
    }
    let up = upstream();
    let p = up.port;
    as_each_identity(|sb, who| {
        let env = workdir("egress").join("out.json");
        let sb = sb.args([
            "--net",
            &format!("allow=up.test:{p},*.domain.test:{p},127.0.0.1:{p},vm:{p}"),
            "--net-deny",
            "bad.domain.test",
            "--net-resolve",
            "up.test=127.0.0.1",
            "--net-resolve",
            "a.domain.test=127.0.0.1",
            "--net-resolve",
            "bad.domain.test=127.0.0.1",
            "--net-resolve",
            "evil-domain.test=127.0.0.1",
        ]);
        // An allowed name reaches the upstream through the proxy the environment names.
        let out = sb
            .clone()
            .args(["--envelope", env.to_str().unwrap()])
            .run(&["curl", "-s", &format!("http://up.test:{p}/x")]);
        assert_eq!(code(&out), 0, "{who}: {}", stderr(&out));
        assert_eq!(stdout(&out), up.body, "{who}");

        let before = up.connections.load(Ordering::SeqCst);
        let status = |url: &str| {
            let out = sb.run(&[
                "curl",
                "-s",
                "--noproxy",
                "",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                url,
            ]);
            stdout(&out)
        };
        // Not on the list, denied by name, a wildcard's look-alike, a name resolving to
        // loopback without the address being named (`vm` and `localhost` are in /etc/hosts).
        for url in [
            format!("http://other.test:{p}/"),
            format!("http://bad.domain.test:{p}/"),
            format!("http://evil-domain.test:{p}/"),
            format!("http://up.test:{}/", p as u32 + 1),
            // Allowed by name, but /etc/hosts resolves it to 127.0.0.1: not named, refused.
            format!("http://vm:{p}/"),
        ] {
            assert_eq!(status(&url), "403", "{who}: {url}");
        }
        assert_eq!(
            up.connections.load(Ordering::SeqCst),
            before,
            "{who}: a refused request reached the upstream"
        );
        // The wildcard at a label boundary, and the address named explicitly.
        assert_eq!(
            status(&format!("http://a.domain.test:{p}/")),
            "200",
            "{who}"
        );
        assert_eq!(status(&format!("http://127.0.0.1:{p}/")), "200", "{who}");

        // The refusal says what to add.
        let out = sb.run(&["curl", "-s", &format!("http://other.test:{p}/")]);
        assert!(
            stdout(&out).contains(&format!("--net allow=other.test:{p}")),
            "{who}: {}",
            stdout(&out)
        );
        // A direct connection, around the proxy: Landlock allows TCP only to the proxy.
        let before = up.connections.load(Ordering::SeqCst);
        assert_eq!(
            sb.attempt(&["tcp-connect", "127.0.0.1", &p.to_string()]),
            "EACCES",
            "{who}"
        );
        assert_eq!(up.connections.load(Ordering::SeqCst), before, "{who}");

        // The envelope: enforced, with each decision.
        let a = envelope(&env)["provenance"]["attestation"].clone();
        assert!(
            a["enforced"]
                .as_array()
                .unwrap()
                .contains(&"network".into()),
            "{who}: {}",
            a["kernel"]["dimensions"]["network"]
        );
        let decisions = a["kernel"]["network"]["decisions"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(decisions.len(), 1, "{who}: {decisions:?}");
        assert_eq!(decisions[0]["host"], "up.test");
        assert_eq!(decisions[0]["allowed"], true);
        assert!(decisions[0]["bytesDown"].as_u64().unwrap() > 0);
    });
    // Nothing of the proxy is left on the host.
    assert!(std::net::TcpStream::connect("127.0.0.1:3128").is_err());
}

#[test]
fn refusals_are_recorded_and_summarised() {
    if !has("curl") {
        return skip("curl is not installed");
    }
    let up = upstream();
    let p = up.port;
    let env = workdir("egress-deny").join("out.json");
    let out = Sandbox::new()
        .args([
            "--net",
            &format!("allow=up.test:{p}"),
            "--net-resolve",
            "vm.test=127.0.0.1",
            "--envelope",
            env.to_str().unwrap(),
        ])
        .run(&[
            "sh",
            "-c",
            &format!(
                "curl -s -o /dev/null http://vm:{p}/; curl -s -o /dev/null http://denied.test/"
            ),
        ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("2 connection(s) refused"),
        "{}",
        stderr(&out)
    );
    let decisions =
        envelope(&env)["provenance"]["attestation"]["kernel"]["network"]["decisions"].clone();
    let text = decisions.to_string();
    assert!(text.contains("\"host\":\"vm\""), "{text}");
    assert!(text.contains("\"host\":\"denied.test\""), "{text}");
    assert!(!text.contains("\"allowed\":true"), "{text}");
}

#[test]
fn connect_tunnels_and_python_honour_the_proxy() {
    if !Path::new("/usr/bin/python3").exists() {
        return skip("python3: /usr/bin/python3 is not installed");
    }
    let up = upstream();
    let p = up.port;
    as_each_identity(|sb, who| {
        let sb = sb.args([
            "--net",
            &format!("allow=up.test:{p}"),
            "--net-resolve",
            "up.test=127.0.0.1",
        ]);
        let script = format!(
            "import urllib.request, socket\n\
             print(urllib.request.urlopen('http://up.test:{p}/').read().decode())\n\
             s = socket.create_connection(('127.0.0.1', 3128))\n\
             s.sendall(b'CONNECT up.test:{p} HTTP/1.1\\r\\nHost: up.test:{p}\\r\\n\\r\\n')\n\
             head = s.recv(4096)\n\
             assert head.startswith(b'HTTP/1.1 200'), head\n\
             s.sendall(b'GET / HTTP/1.1\\r\\nHost: up.test\\r\\n\\r\\n')\n\
             data = b''\n\
             while True:\n\
             \x20   c = s.recv(4096)\n\
             \x20   if not c: break\n\
             \x20   data += c\n\
             print(data.split(b'\\r\\n\\r\\n', 1)[1].decode())\n"
        );
        let out = sb.run(&["/usr/bin/python3", "-c", &script]);
        assert_eq!(code(&out), 0, "{who}: {}", stderr(&out));
        assert_eq!(stdout(&out), format!("{0}\n{0}\n", up.body), "{who}");
    });
}

#[test]
fn bad_allowlists_are_precise_errors_and_other_modes_refuse_allowlist_flags() {
    for (args, needle) in [
        (vec!["--net", "allow=*.bad*.test"], "network allow"),
        (vec!["--net", "allow=host:99999"], "port"),
        (vec!["--net", "allowlist"], "give the names"),
        (vec!["--net", "none", "--net-deny", "x.test"], "--net-deny"),
        (
            vec!["--net", "allow=x.test", "--net-resolve", "x.test=nope"],
            "--net-resolve",
        ),
    ] {
        let out = Sandbox::new().args(args.iter().copied()).run(&["true"]);
        assert_eq!(code(&out), 125, "{args:?}");
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    }
    // The landlock tier has no network namespace to confine the proxy's clients to: refused.
    let out = Sandbox::new()
        .args(["--tier", "landlock", "--net", "allow=x.test"])
        .run(&["true"]);
    assert_eq!(code(&out), 125);
    assert!(
        stderr(&out).contains("network namespace"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn loopback_with_allow_bind_listens_on_the_listed_port_only() {
    as_each_identity(|sb, who| {
        let lo = sb
            .clone()
            .args(["--net", "loopback", "--allow-bind", "8081"]);
        assert_eq!(lo.attempt(&["tcp-listen", "8081"]), "ok", "{who}");
        assert_eq!(lo.attempt(&["tcp-listen", "8082"]), "EACCES", "{who}");
        // Without it a private loopback listens anywhere, as before.
        let plain = sb.clone().args(["--net", "loopback"]);
        assert_eq!(plain.attempt(&["tcp-listen", "8082"]), "ok", "{who}");
        // Only with loopback.
        let out = sb.clone().args(["--allow-bind", "8081"]).run(&["true"]);
        assert_eq!(code(&out), 125, "{who}");
        assert!(stderr(&out).contains("--allow-bind"), "{}", stderr(&out));
    });
}
