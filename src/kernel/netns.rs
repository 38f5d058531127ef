//! Network namespaces: a fresh one made by a helper process beside the caller, then joined.
//!
//! Making a network namespace is the most expensive step of a sandbox's start (~0.5 ms of
//! kernel work on the development VM: every networking subsystem's per-namespace set-up),
//! and the kernel does it in the context of the process that asks. Asked by `clone`, it
//! delays everything after it. Asked by a helper process with nothing else to do, it runs
//! on another CPU while the caller builds the mount view, and the caller joins the finished
//! namespace (`setns` through a pidfd) when it needs it.
//!
//! The helper is a child of the caller in the caller's user namespace, so the network
//! namespace is owned by that user namespace exactly as one made by `clone` would be. It
//! makes the namespace, says whether it could, and waits; the caller joins, then ends it.
//! On x86_64 it shares the caller's memory (`sys::spawn_network_namespace_maker`: raw
//! system calls only), so starting it copies none of the caller's page tables and leaves no
//! copy-on-write faults for the caller to take while it builds the view; elsewhere it is a
//! fork.
//! It never outlives the caller's use of it: it holds every privilege the caller holds in
//! the sandbox's user namespace, unconfined, so it must be gone (killed and reaped) before
//! anything of the sandbox's command runs: `join` kills it, dropping the `NetnsMaker`
//! reaps it, and the caller drops it before it starts the command.

use std::os::fd::{AsFd, OwnedFd};

use nix::sched::CloneFlags;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use crate::sys;

/// A helper process making a network namespace (see the module's text).
pub struct NetnsMaker {
    pid: Pid,
    /// The helper's answer: four bytes, 0 or the errno of its `unshare(CLONE_NEWNET)`.
    answer: OwnedFd,
    /// The stack a helper sharing the caller's memory runs on: unmapped (a field, dropped
    /// after `drop` has reaped the helper) only once the helper is gone.
    _stack: Option<sys::SharedStack>,
}

impl NetnsMaker {
    /// Forks the helper. The caller must be single-threaded (see
    /// `sys::clone_into_namespaces`).
    pub fn spawn() -> std::io::Result<NetnsMaker> {
        let (answer_read, answer_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        // The helper's copy of the write end is its only one once this returns: its death
        // before it answers reads as end of file.
        if let Some((pid, stack)) = sys::spawn_network_namespace_maker(answer_write.as_fd())? {
            return Ok(NetnsMaker {
                pid,
                answer: answer_read,
                _stack: Some(stack),
            });
        }
        match sys::clone_into_namespaces(0)? {
            Some(pid) => Ok(NetnsMaker {
                pid,
                answer: answer_read,
                _stack: None,
            }),
            None => {
                drop(answer_read);
                // Dumpable, as forked: setns through a pidfd needs ptrace access to the
                // target, which a non-dumpable process refuses unless the caller holds
                // CAP_SYS_PTRACE over its memory's (the host's) user namespace. Nothing of the
                // sandbox exists yet to attach to it, and it is gone before anything does.
                let errno = match nix::sched::unshare(CloneFlags::CLONE_NEWNET) {
                    Ok(()) => 0,
                    Err(e) => e as i32,
                };
                let _ = nix::unistd::write(&answer_write, &errno.to_ne_bytes());
                drop(answer_write);
                // Until the caller has joined the namespace and kills this process (or the
                // caller, PID 1 of the sandbox, ends, which kills it too). No signal has a
                // handler here, so pause returns only to be called again.
                loop {
                    nix::unistd::pause();
                }
            }
        }
    }

    /// The helper's pid.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Moves the caller into the helper's network namespace, then kills the helper. Its
    /// exit (a whole process's teardown, ~0.1 ms) runs on another CPU meanwhile; dropping
    /// the `NetnsMaker` waits for it (reaps).
    pub fn join(&mut self) -> Result<(), String> {
        let joined = self.enter();
        let _ = kill(self.pid, Signal::SIGKILL);
        joined
    }

    fn enter(&self) -> Result<(), String> {
        let mut answer = [0u8; 4];
        let n = loop {
            match nix::unistd::read(&self.answer, &mut answer) {
                Err(nix::errno::Errno::EINTR) => continue,
                other => break other.map_err(|e| format!("reading the helper's answer: {e}"))?,
            }
        };
        if n != answer.len() {
            return Err("the helper making the network namespace ended without answering".into());
        }
        match i32::from_ne_bytes(answer) {
            0 => {}
            errno => {
                return Err(format!(
                    "unshare(CLONE_NEWNET): {}",
                    nix::errno::Errno::from_raw(errno).desc()
                ))
            }
        }
        let pidfd = sys::pidfd_open(self.pid).map_err(|e| format!("pidfd_open: {e}"))?;
        setns_net(&pidfd)
    }
}

fn setns_net(pidfd: &OwnedFd) -> Result<(), String> {
    nix::sched::setns(pidfd.as_fd(), CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("setns(CLONE_NEWNET) into the helper's namespace: {e}"))
}

impl Drop for NetnsMaker {
    /// Kills the helper (again, after `join`) and reaps it: once dropped, it is gone.
    fn drop(&mut self) {
        let _ = kill(self.pid, Signal::SIGKILL);
        while let Err(nix::errno::Errno::EINTR) = waitpid(self.pid, None) {}
    }
}
