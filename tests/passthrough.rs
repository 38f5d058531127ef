//! Pass-through of a captured stdout (`--envelope`): the caller gets the command's bytes,
//! byte for byte, and the envelope's `stdoutSha256` and `stdoutBytes` cover exactly the bytes
//! cw-exec passed on, whatever the size, the pace of the reader, a non-blocking descriptor,
//! or a reader that goes away part-way.

mod common;
use common::*;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Stdio;

/// The line `yes` repeats in these tests: 63 bytes, so chunk and pipe boundaries fall
/// inside lines.
const LINE: &str = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// The first `len` bytes of `yes LINE`.
fn expected(len: usize) -> Vec<u8> {
    let line = format!("{LINE}\n");
    line.as_bytes().iter().copied().cycle().take(len).collect()
}

/// `yes LINE | head -c LEN` in the sandbox, as a shell command.
fn generate(len: usize) -> String {
    format!("yes {LINE} | head -c {len}")
}

fn metadata(e: &serde_json::Value) -> &serde_json::Value {
    &e["provenance"]["handle"]["metadata"]
}

/// A pipe (read end, write end); the write end goes to cw-exec as its stdout.
fn pipe() -> (std::fs::File, OwnedFd) {
    let mut fds = [0; 2];
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    use std::os::fd::FromRawFd;
    unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            OwnedFd::from_raw_fd(fds[1]),
        )
    }
}

#[test]
fn large_stdout_reaches_the_caller_whole_and_is_hashed_exactly() {
    // Many hashing chunks and relay buffers long, in sizes that align with none of them.
    let len = 9_000_001;
    as_each_identity(|sb, who| {
        let env = workdir("pass-large").join("e.json");
        let out =
            sb.args(["--envelope", env.to_str().unwrap()])
                .run(&["/bin/sh", "-c", &generate(len)]);
        assert_eq!(out.status.code(), Some(0), "{who}: {}", stderr(&out));
        assert!(out.stdout == expected(len), "{who}: stdout differs");
        let e = envelope(&env);
        assert_eq!(
            e["evidence"][2],
            format!("stdoutSha256:sha256:{}", sha256_hex(&out.stdout)),
            "{who}"
        );
        assert_eq!(metadata(&e)["stdoutBytes"], len as u64, "{who}");
    });
}

#[test]
fn a_non_blocking_stdout_gets_everything() {
    // The caller's stdout is a pipe with O_NONBLOCK set (as node and some event loops leave
    // it) and a slow reader: cw-exec waits for room rather than failing the write (before:
    // EAGAIN closed the command's stdout part-way, and the command got EPIPE).
    let len = 4_000_000;
    as_each_identity(|sb, who| {
        let env = workdir("pass-nonblock").join("e.json");
        let (mut read, write) = pipe();
        let flags = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_GETFL) };
        assert_eq!(
            unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) },
            0
        );
        let mut command = sb.args(["--envelope", env.to_str().unwrap()]).command(
            "run",
            &[
                "/bin/sh",
                "-c",
                &format!("{}; echo rc=$? >&2", generate(len)),
            ],
        );
        command.stdout(Stdio::from(write)).stderr(Stdio::piped());
        let child = command.spawn().unwrap();
        drop(command);
        let reader = std::thread::spawn(move || {
            let mut got = vec![];
            let mut chunk = vec![0; 16 << 10];
            loop {
                match read.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => got.extend_from_slice(&chunk[..n]),
                    Err(e) => panic!("{e}"),
                }
                // A slow reader: the pipe fills and cw-exec's writes would block.
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
            got
        });
        let out = child.wait_with_output().unwrap();
        let got = reader.join().unwrap();
        assert_eq!(out.status.code(), Some(0), "{who}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("rc=0"),
            "{who}: the command's writes must all succeed: {}",
            stderr(&out)
        );
        assert_eq!(got.len(), len, "{who}");
        assert!(got == expected(len), "{who}: stdout differs");
        let e = envelope(&env);
        assert_eq!(
            e["evidence"][2],
            format!("stdoutSha256:sha256:{}", sha256_hex(&got)),
            "{who}"
        );
        assert_eq!(metadata(&e)["stdoutBytes"], len as u64, "{who}");
    });
}

#[test]
fn a_reader_that_goes_away_gets_exactly_what_was_hashed() {
    // The reader takes 1 MiB and closes: cw-exec's next write fails (EPIPE), it closes the
    // command's stdout, and the envelope covers exactly the bytes its writes delivered: what
    // the reader took plus at most what the pipe held when it closed, never a whole buffer
    // that was read from the command but not delivered.
    let take = 1 << 20;
    let len = 50_000_000;
    as_each_identity(|sb, who| {
        let env = workdir("pass-gone").join("e.json");
        let (mut read, write) = pipe();
        let capacity = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_GETPIPE_SZ) };
        assert!(capacity > 0);
        let mut command = sb
            .args(["--envelope", env.to_str().unwrap()])
            .command("run", &["/bin/sh", "-c", &generate(len)]);
        command.stdout(Stdio::from(write)).stderr(Stdio::piped());
        let child = command.spawn().unwrap();
        drop(command);
        let mut got = vec![0; take];
        read.read_exact(&mut got).unwrap();
        drop(read);
        let out = child.wait_with_output().unwrap();
        let e = envelope(&env);
        let passed = metadata(&e)["stdoutBytes"].as_u64().unwrap() as usize;
        assert!(
            passed >= take && passed <= take + capacity as usize,
            "{who}: {passed} bytes counted as passed on; the reader took {take}, the pipe holds {capacity}: {}",
            stderr(&out)
        );
        assert!(passed < len, "{who}: the command's stdout was not cut");
        assert!(got == expected(take), "{who}: stdout differs");
        assert_eq!(
            e["evidence"][2],
            format!("stdoutSha256:sha256:{}", sha256_hex(&expected(passed))),
            "{who}"
        );
    });
}
