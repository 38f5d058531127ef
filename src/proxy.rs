//! The egress proxy of `--net allow=...`: served by cw-exec, outside the sandbox, on a
//! listening socket init created inside the sandbox's network namespace (so it is reachable
//! only from there, on 127.0.0.1, and nothing on the host can use it). HTTP CONNECT for TLS,
//! absolute-form requests for plain HTTP. Each request's name is checked against the policy
//! *before* anything is resolved; the name is resolved here (or pinned), every address is
//! checked, and only a checked address is connected to. Every decision is recorded.
//!
//! std threads: one accepting, one per connection relaying with poll. Nothing runs unless
//! the policy asks for a proxy.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use serde::Serialize;

use crate::netpolicy::{Denial, NetPolicy};

/// The largest request head read before deciding (request line and headers).
const MAX_HEAD: usize = 64 * 1024;
/// How long a client may take to send its request head, and an upstream to accept.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Connections served at once; past it the proxy answers 503, so a sandbox cannot make
/// cw-exec start threads without bound.
const MAX_CONNECTIONS: usize = 256;

/// One decision of the proxy, as the attestation lists it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub host: String,
    pub port: u16,
    pub method: String,
    pub allowed: bool,
    /// The allow entry that let it through, or why it was refused.
    pub rule: String,
    /// The address connected to (allowed only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    pub bytes_up: u64,
    pub bytes_down: u64,
}

/// A running proxy.
pub struct Proxy {
    accept: JoinHandle<()>,
    /// Written to stop the accept loop.
    stop: OwnedFd,
    state: Arc<State>,
}

struct State {
    policy: NetPolicy,
    decisions: Mutex<Vec<Decision>>,
    /// Open connections (client, upstream), shut down when the run ends.
    open: Mutex<Vec<TcpStream>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    active: std::sync::atomic::AtomicUsize,
}

impl Proxy {
    /// Serves `listener` (a listening TCP socket) under `policy` until `finish`.
    pub fn start(listener: OwnedFd, policy: NetPolicy) -> Result<Proxy, String> {
        let (stop_read, stop_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| format!("proxy: pipe: {e}"))?;
        let listener = std::net::TcpListener::from(listener);
        let state = Arc::new(State {
            policy,
            decisions: Mutex::new(vec![]),
            open: Mutex::new(vec![]),
            workers: Mutex::new(vec![]),
            active: std::sync::atomic::AtomicUsize::new(0),
        });
        let st = state.clone();
        let accept = std::thread::Builder::new()
            .name("cw-exec proxy".into())
            .spawn(move || accept_loop(listener, stop_read, st))
            .map_err(|e| format!("proxy: thread: {e}"))?;
        Ok(Proxy {
            accept,
            stop: stop_write,
            state,
        })
    }

    /// Stops accepting, shuts every open connection, waits for every thread, and returns the
    /// decisions. Nothing of the proxy is left afterwards.
    pub fn finish(self) -> Vec<Decision> {
        let _ = nix::unistd::write(&self.stop, b"x");
        let _ = self.accept.join();
        if let Ok(open) = self.state.open.lock() {
            for conn in open.iter() {
                let _ = conn.shutdown(std::net::Shutdown::Both);
            }
        }
        let workers: Vec<JoinHandle<()>> = self
            .state
            .workers
            .lock()
            .map(|mut w| w.drain(..).collect())
            .unwrap_or_default();
        for w in workers {
            let _ = w.join();
        }
        self.state
            .decisions
            .lock()
            .map(|d| d.clone())
            .unwrap_or_default()
    }
}

fn accept_loop(listener: std::net::TcpListener, stop: OwnedFd, state: Arc<State>) {
    loop {
        let mut fds = [
            PollFd::new(listener.as_fd(), PollFlags::POLLIN),
            PollFd::new(stop.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return,
        }
        if fds[1].revents().map(|r| !r.is_empty()).unwrap_or(false) {
            return;
        }
        let Ok((mut client, _)) = listener.accept() else {
            continue;
        };
        use std::sync::atomic::Ordering;
        if state.active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            state.active.fetch_sub(1, Ordering::SeqCst);
            let _ = respond(
                &mut client,
                503,
                "Service Unavailable",
                &format!("cw-exec proxy: more than {MAX_CONNECTIONS} connections at once\n"),
            );
            continue;
        }
        let st = state.clone();
        if let Ok(handle) = std::thread::Builder::new()
            .name("cw-exec proxy conn".into())
            .spawn(move || {
                serve(client, st.clone());
                st.active.fetch_sub(1, Ordering::SeqCst);
            })
        {
            if let Ok(mut w) = state.workers.lock() {
                w.push(handle);
            }
        }
    }
}

/// What the client asked for.
struct Ask {
    method: String,
    host: String,
    port: u16,
    /// For plain HTTP: the request head rewritten to origin form, to send upstream.
    forward: Option<Vec<u8>>,
    /// Bytes the client sent after the head (a request body's start).
    rest: Vec<u8>,
}

fn serve(mut client: TcpStream, state: Arc<State>) {
    let _ = client.set_read_timeout(Some(HEAD_TIMEOUT));
    let ask = match read_request(&mut client) {
        Ok(a) => a,
        Err(why) => {
            let _ = respond(
                &mut client,
                400,
                "Bad Request",
                &format!("cw-exec proxy: {why}\n"),
            );
            return;
        }
    };
    let _ = client.set_read_timeout(None);
    let mut decision = Decision {
        host: ask.host.clone(),
        port: ask.port,
        method: ask.method.clone(),
        allowed: false,
        rule: String::new(),
        address: None,
        bytes_up: 0,
        bytes_down: 0,
    };
    let upstream = match connect_checked(&state.policy, &ask.host, ask.port) {
        Ok((stream, entry, addr)) => {
            decision.allowed = true;
            decision.rule = entry;
            decision.address = Some(addr.to_string());
            stream
        }
        Err(denial) => {
            decision.rule = denial.reason.clone();
            let body = match &denial.to_allow {
                Some(entry) => format!(
                    "cw-exec: {}:{} refused: {}.\nTo allow it, add the network allowlist entry {entry:?} (--net allow={entry}).\n",
                    ask.host, ask.port, denial.reason
                ),
                None => format!(
                    "cw-exec: {}:{} refused: {}.\n",
                    ask.host, ask.port, denial.reason
                ),
            };
            let _ = respond(&mut client, 403, "Forbidden", &body);
            record(&state, decision);
            return;
        }
    };
    let mut upstream = upstream;
    let mut up = 0u64;
    if ask.method == "CONNECT" {
        if client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .is_err()
        {
            record(&state, decision);
            return;
        }
    } else if let Some(head) = &ask.forward {
        if upstream.write_all(head).is_err() {
            record(&state, decision);
            return;
        }
        up += head.len() as u64;
    }
    if !ask.rest.is_empty() && upstream.write_all(&ask.rest).is_ok() {
        up += ask.rest.len() as u64;
    }
    if let (Ok(c), Ok(u)) = (client.try_clone(), upstream.try_clone()) {
        if let Ok(mut open) = state.open.lock() {
            open.push(c);
            open.push(u);
        }
    }
    let (u, d) = relay(&mut client, &mut upstream);
    decision.bytes_up = up + u;
    decision.bytes_down = d;
    record(&state, decision);
}

fn record(state: &State, decision: Decision) {
    if let Ok(mut d) = state.decisions.lock() {
        d.push(decision);
    }
}

fn respond(client: &mut TcpStream, code: u16, reason: &str, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    client.write_all(head.as_bytes())?;
    client.write_all(body.as_bytes())
}

/// Reads the request head and works out what is asked for.
fn read_request(client: &mut TcpStream) -> Result<Ask, String> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        let n = client
            .read(&mut chunk)
            .map_err(|e| format!("reading the request: {e}"))?;
        if n == 0 {
            return Err("the client closed the connection before a request".into());
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 128];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let method = req.method.unwrap_or("").to_string();
                let target = req.path.unwrap_or("").to_string();
                let rest = buf[len..].to_vec();
                if method == "CONNECT" {
                    let (host, port) = split_host_port(&target, None)
                        .ok_or_else(|| format!("CONNECT target {target:?} is not host:port"))?;
                    return Ok(Ask {
                        method,
                        host,
                        port,
                        forward: None,
                        rest,
                    });
                }
                let Some(after) = target.strip_prefix("http://") else {
                    return Err(format!(
                        "{method} {target}: only absolute http:// URLs and CONNECT are proxied (https goes through CONNECT)"
                    ));
                };
                let (authority, path) = match after.find('/') {
                    Some(i) => (&after[..i], &after[i..]),
                    None => (after, "/"),
                };
                let (host, port) = split_host_port(authority, Some(80))
                    .ok_or_else(|| format!("{target:?}: no host"))?;
                // The head upstream: origin-form target, the same headers.
                let mut head = format!("{method} {path} HTTP/1.{}\r\n", req.version.unwrap_or(1));
                for h in req.headers.iter() {
                    if h.name.eq_ignore_ascii_case("proxy-connection")
                        || h.name.eq_ignore_ascii_case("proxy-authorization")
                    {
                        continue;
                    }
                    head.push_str(h.name);
                    head.push_str(": ");
                    head.push_str(&String::from_utf8_lossy(h.value));
                    head.push_str("\r\n");
                }
                head.push_str("\r\n");
                return Ok(Ask {
                    method,
                    host,
                    port,
                    forward: Some(head.into_bytes()),
                    rest,
                });
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => continue,
            Ok(httparse::Status::Partial) => return Err("request head too large".into()),
            Err(e) => return Err(format!("not an HTTP request: {e}")),
        }
    }
}

fn split_host_port(authority: &str, default_port: Option<u16>) -> Option<(String, u16)> {
    let authority = authority.rsplit('@').next()?;
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, tail) = rest.split_once(']')?;
        let port = match tail.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None => default_port?,
        };
        return Some((host.to_string(), port));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() => Some((h.to_string(), p.parse().ok()?)),
        _ if !authority.is_empty() => Some((authority.to_string(), default_port?)),
        _ => None,
    }
}

/// Decides on the name, resolves it (or takes its pin), checks each address, and connects to
/// the first checked one that answers. Returns the allow entry and the address.
fn connect_checked(
    policy: &NetPolicy,
    host: &str,
    port: u16,
) -> Result<(TcpStream, String, SocketAddr), Denial> {
    let entry = policy.decide(host, port)?;
    let addrs: Vec<IpAddr> = match (host.parse::<IpAddr>(), policy.pinned(host)) {
        (Ok(ip), _) => vec![ip],
        (_, Some(pin)) => vec![pin],
        _ => (host, port)
            .to_socket_addrs()
            .map(|it| it.map(|a| a.ip()).collect())
            .map_err(|e| Denial {
                reason: format!("{host} does not resolve here ({e})"),
                to_allow: None,
            })?,
    };
    let mut last = None;
    for addr in addrs {
        if let Err(d) = policy.check_address(host, addr, entry) {
            last = Some(d);
            continue;
        }
        let sa = SocketAddr::new(addr, port);
        match TcpStream::connect_timeout(&sa, CONNECT_TIMEOUT) {
            Ok(s) => return Ok((s, entry.text.clone(), sa)),
            Err(e) => {
                last = Some(Denial {
                    reason: format!("allowed by {:?}, but {sa} did not accept: {e}", entry.text),
                    to_allow: None,
                })
            }
        }
    }
    Err(last.unwrap_or(Denial {
        reason: format!("{host} resolved to no address"),
        to_allow: None,
    }))
}

/// Copies both ways until either side ends; returns (bytes up, bytes down).
fn relay(client: &mut TcpStream, upstream: &mut TcpStream) -> (u64, u64) {
    let (mut up, mut down) = (0u64, 0u64);
    let mut buf = vec![0u8; 64 * 1024];
    let mut client_open = true;
    let mut upstream_open = true;
    while client_open || upstream_open {
        let mut fds = vec![];
        if client_open {
            fds.push(PollFd::new(client.as_fd(), PollFlags::POLLIN));
        }
        if upstream_open {
            fds.push(PollFd::new(upstream.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break,
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().map(|r| !r.is_empty()).unwrap_or(false))
            .collect();
        drop(fds);
        let mut i = 0;
        if client_open {
            if ready[i] {
                match client.read(&mut buf) {
                    Ok(0) | Err(_) => {
                        client_open = false;
                        let _ = upstream.shutdown(std::net::Shutdown::Write);
                    }
                    Ok(n) => {
                        if upstream.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        up += n as u64;
                    }
                }
            }
            i += 1;
        }
        if upstream_open && ready[i] {
            match upstream.read(&mut buf) {
                Ok(0) | Err(_) => {
                    upstream_open = false;
                    let _ = client.shutdown(std::net::Shutdown::Write);
                }
                Ok(n) => {
                    if client.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    down += n as u64;
                }
            }
        }
    }
    let _ = client.shutdown(std::net::Shutdown::Both);
    let _ = upstream.shutdown(std::net::Shutdown::Both);
    (up, down)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities_split() {
        assert_eq!(
            split_host_port("a.example:443", None),
            Some(("a.example".into(), 443))
        );
        assert_eq!(
            split_host_port("a.example", Some(80)),
            Some(("a.example".into(), 80))
        );
        assert_eq!(
            split_host_port("[::1]:8080", None),
            Some(("::1".into(), 8080))
        );
        assert_eq!(
            split_host_port("user:pw@h.example:81", None),
            Some(("h.example".into(), 81))
        );
        assert_eq!(split_host_port("a.example", None), None);
    }
}
