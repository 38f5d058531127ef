//! A fresh network namespace made on a thread of its own, so that the kernel's setup of it
//! runs while the caller does other work.
//!
//! Creating a network namespace is the most expensive part of creating a sandbox's
//! namespaces (~0.6 ms here: every per-namespace network subsystem initialises, under a
//! global mutex). `clone(CLONE_NEWNET)` does that work in the cloning process, serially.
//! Namespaces belong to tasks, not processes, so one thread can `unshare(CLONE_NEWNET)`
//! alone while the main thread goes on; the main thread then enters it just for its
//! `clone`, so that the child is born in it, and returns to its own (`Fresh::enter`, `Fresh::leave`).
//!
//! The namespace is owned by the caller's user namespace, not the sandbox's: the sandbox's
//! root holds no capability over it (it cannot bring an interface up, nor change its
//! sysctls). That is why only a sandbox that needs nothing configured in it (no network
//! at all) is given one made this way.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Mutex;
use std::thread::JoinHandle;

use nix::sched::{setns, unshare, CloneFlags};

/// A network namespace being made, or made, on another thread.
pub struct Pending(Mutex<Option<JoinHandle<Result<Fresh, String>>>>);

/// A fresh, empty network namespace, and the one the calling thread was in.
pub struct Fresh {
    pub fresh: OwnedFd,
    home: OwnedFd,
}

impl Pending {
    /// Starts making one. A thread that cannot be started leaves nothing behind.
    pub fn start() -> Result<Pending, String> {
        use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow};
        // The thread is born with every signal blocked (a new thread inherits its creator's
        // mask): blocking them only as its first step would leave a moment, before it runs,
        // in which the kernel could hand it a signal the main thread has blocked by then (and
        // reads through its signalfd), whose default action would then end cw-exec.
        let mut before = SigSet::empty();
        pthread_sigmask(
            SigmaskHow::SIG_SETMASK,
            Some(&SigSet::all()),
            Some(&mut before),
        )
        .map_err(|e| format!("blocking signals: {e}"))?;
        let started = std::thread::Builder::new()
            .name("cw-exec-netns".into())
            .stack_size(64 << 10)
            .spawn(make)
            .map(|handle| Pending(Mutex::new(Some(handle))))
            .map_err(|e| format!("starting a thread: {e}"));
        pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&before), None)
            .map_err(|e| format!("restoring the signal mask: {e}"))?;
        started
    }

    /// The namespace, once made; `None` when it was taken already. An error says why the
    /// kernel refused (the caller creates the namespace at clone time instead).
    pub fn take(&self) -> Option<Result<Fresh, String>> {
        let handle = self.0.lock().ok()?.take()?;
        Some(
            handle
                .join()
                .unwrap_or_else(|_| Err("the thread making it panicked".into())),
        )
    }
}

fn make() -> Result<Fresh, String> {
    // Every signal stays with the main thread (cw-exec reads them through a signalfd once
    // it has blocked them): this thread must not take one and its default action.
    let _ = nix::sys::signal::SigSet::all().thread_block();
    crate::timings::mark("network namespace: its thread runs");
    let home = namespace_of_this_thread().map_err(|e| format!("its own: {e}"))?;
    unshare(CloneFlags::CLONE_NEWNET).map_err(|e| format!("unshare(CLONE_NEWNET): {e}"))?;
    let fresh = namespace_of_this_thread().map_err(|e| format!("the new one: {e}"))?;
    crate::timings::mark("network namespace: made on its thread");
    Ok(Fresh { fresh, home })
}

fn namespace_of_this_thread() -> std::io::Result<OwnedFd> {
    File::open("/proc/thread-self/ns/net").map(OwnedFd::from)
}

impl Fresh {
    /// Moves the calling thread into the fresh namespace: a process it then creates is
    /// born there.
    pub fn enter(&self) -> Result<(), String> {
        setns(self.fresh.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| format!("entering it: {e}"))
    }

    /// Moves the calling thread back to the namespace it was in before `enter`.
    pub fn leave(&self) -> Result<(), String> {
        setns(self.home.as_fd(), CloneFlags::CLONE_NEWNET)
            .map_err(|e| format!("returning to cw-exec's own: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn here() -> std::path::PathBuf {
        std::fs::read_link("/proc/thread-self/ns/net").unwrap()
    }

    /// The thread that enters the fresh namespace is in it, then back in its own; the
    /// fresh one is not the caller's. Without the privilege to make one, it says why.
    #[test]
    fn a_thread_enters_the_fresh_namespace_and_returns() {
        let before = here();
        let made = Pending::start().unwrap().take().unwrap();
        let fresh = match made {
            Ok(fresh) => fresh,
            Err(e) => {
                assert!(!nix::unistd::geteuid().is_root(), "{e}");
                assert!(e.contains("EPERM"), "{e}");
                return;
            }
        };
        fresh.enter().unwrap();
        let inside = here();
        assert_ne!(inside, before);
        fresh.leave().unwrap();
        assert_eq!(here(), before);
    }

    #[test]
    fn it_is_taken_once() {
        let pending = Pending::start().unwrap();
        assert!(pending.take().is_some());
        assert!(pending.take().is_none());
    }
}
