//! Descriptor 0 when output is captured: with `--output-limit` or `--envelope` (the stdout
//! hash), the command's stdin is a pipe cw-exec feeds from its own stdin, or /dev/null, never
//! the caller's descriptor, which may be writable (a socketpair, as node wires a child's
//! stdio, or a terminal) and would carry output past the limit and outside the hash.

mod common;
use common::*;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};

/// Runs `cw-exec run ARGS -- CMD` with stdin one end of a socketpair; returns the output and
/// everything that arrived at the other end (read to EOF once cw-exec is gone).
fn run_with_socket_stdin(sb: Sandbox, cmd: &[&str]) -> (std::process::Output, Vec<u8>) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let mut command = sb.command("run", cmd);
    command
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = command.spawn().unwrap();
    drop(command); // our copy of their end, or the read below never ends
                   // Read while it runs, so a writer is never blocked on a full socket.
    let reader = std::thread::spawn(move || {
        let mut received = vec![];
        let mut ours = ours;
        ours.read_to_end(&mut received).map(|_| received)
    });
    let out = child.wait_with_output().unwrap();
    (out, reader.join().unwrap().unwrap())
}

#[test]
fn output_written_to_stdin_does_not_reach_the_caller() {
    // Before: 1 MiB reached the caller through descriptor 0 under --output-limit 1K, outside
    // stdoutSha256, and the envelope said nothing was dropped.
    as_each_identity(|sb, who| {
        let env = workdir("stdin-socket").join("e.json");
        let sb = sb.args(["--output-limit", "1K", "--envelope", env.to_str().unwrap()]);
        let (out, received) = run_with_socket_stdin(
            sb,
            &[
                "/bin/sh",
                "-c",
                "head -c 1048576 /dev/zero >&0; echo rc=$?; readlink /proc/self/fd/0",
            ],
        );
        assert!(
            received.len() <= 1024,
            "{who}: {} bytes reached the caller through stdin",
            received.len()
        );
        assert!(received.is_empty(), "{who}: {} bytes", received.len());
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(0), "{who}: {}", stderr(&out));
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("rc=1"),
            "{who}: the write must fail: {text}"
        );
        assert!(
            lines.next().unwrap_or_default().starts_with("pipe:"),
            "{who}: {text}"
        );
        assert!(
            stderr(&out).contains("Bad file descriptor"),
            "{who}: EBADF expected: {}",
            stderr(&out)
        );
        let e = envelope(&env);
        assert_eq!(
            e["provenance"]["handle"]["metadata"]["stdin"], "relayed through a pipe",
            "{who}"
        );
        assert_eq!(
            e["evidence"][2],
            format!("stdoutSha256:sha256:{}", sha256_hex(text.as_bytes())),
            "{who}"
        );
    });
}

#[test]
fn stdin_still_reaches_the_command() {
    as_each_identity(|sb, who| {
        // echo hi | cw-exec run --envelope x -- cat
        let env = workdir("stdin-pipe").join("e.json");
        let mut child = sb
            .clone()
            .args(["--envelope", env.to_str().unwrap()])
            .command("run", &["cat"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"hi\n").unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(stdout(&out), "hi\n", "{who}: {}", stderr(&out));
        assert_eq!(
            envelope(&env)["evidence"][2],
            format!("stdoutSha256:sha256:{}", sha256_hex(b"hi\n")),
            "{who}"
        );

        // Many times the pipe's size, under an output limit: backpressure, and EOF at the end
        // (sha256sum prints only once its input ends).
        let data: Vec<u8> = (0..4u32 << 20).map(|i| (i * 7 % 251) as u8).collect();
        let mut child = sb
            .clone()
            .args(["--output-limit", "1K"])
            .command("run", &["sha256sum"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        let body = data.clone();
        let writer = std::thread::spawn(move || input.write_all(&body));
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        assert_eq!(
            stdout(&out).split_whitespace().next(),
            Some(sha256_hex(&data).as_str()),
            "{who}: {}",
            stderr(&out)
        );
    });
}

#[test]
fn stdin_is_dev_null_or_untouched() {
    as_each_identity(|sb, who| {
        // Captured, with cw-exec's stdin /dev/null: /dev/null (read-only), nothing to relay.
        let out = sb.clone().args(["--output-limit", "1M"]).run(&[
            "/bin/sh",
            "-c",
            "readlink /proc/self/fd/0; echo x >&0; echo rc=$?",
        ]);
        assert_eq!(stdout(&out), "/dev/null\nrc=1\n", "{who}: {}", stderr(&out));

        // Nothing captured: the caller's descriptor, untouched (nothing is limited or hashed,
        // so writing to it claims nothing false).
        let (out, received) = run_with_socket_stdin(
            sb.clone(),
            &[
                "/bin/sh",
                "-c",
                "printf untouched >&0; readlink /proc/self/fd/0",
            ],
        );
        assert!(
            stdout(&out).starts_with("socket:"),
            "{who}: {}",
            stdout(&out)
        );
        assert_eq!(received, b"untouched", "{who}");
    });
}

/// cw-exec started with a standard descriptor closed: the closed number is opened on
/// /dev/null before anything else (`sys::standard_start`, what Rust's runtime start did
/// before cw-exec stopped running it), so no file cw-exec opens later takes it: the envelope
/// does not become its stderr (a refusal's message written into the envelope), and the
/// command gets /dev/null there, not one of cw-exec's files.
#[test]
fn closed_standard_descriptors_become_dev_null() {
    as_each_identity(|sb, who| {
        let env = workdir("closed-stdio").join("e.json");
        let _ = std::fs::remove_file(&env);
        let with_closed_stderr = |command: Command| {
            let mut sh = Command::new("/bin/sh");
            sh.arg("-c")
                .arg(r#"exec "$0" "$@" 2>&-"#)
                .arg(command.get_program())
                .args(command.get_args());
            for (k, v) in command.get_envs() {
                match v {
                    Some(v) => sh.env(k, v),
                    None => sh.env_remove(k),
                };
            }
            if let Some(dir) = command.get_current_dir() {
                sh.current_dir(dir);
            }
            sh
        };
        let sb = sb.args(["--envelope", env.to_str().unwrap()]);
        let out = with_closed_stderr(sb.command(
            "run",
            &["/bin/sh", "-c", "readlink /proc/self/fd/2; echo oops >&2"],
        ))
        .output()
        .unwrap();
        assert_eq!(out.status.code(), Some(0), "{who}: {}", stderr(&out));
        assert_eq!(stdout(&out), "/dev/null\n", "{who}");
        let text = std::fs::read_to_string(&env).unwrap();
        assert!(
            serde_json::from_str::<serde_json::Value>(&text).is_ok(),
            "{who}: the envelope is not JSON: {text}"
        );

        // A refusal's message goes to /dev/null, not into the envelope it writes.
        let refused = with_closed_stderr(
            sb.clone()
                .args(["--memory", "1"])
                .command("run", &["/bin/true"]),
        )
        .output()
        .unwrap();
        assert_eq!(refused.status.code(), Some(125), "{who}");
        let text = std::fs::read_to_string(&env).unwrap();
        assert!(
            serde_json::from_str::<serde_json::Value>(&text).is_ok(),
            "{who}: the refusal's envelope is not JSON: {text}"
        );
    });
}
