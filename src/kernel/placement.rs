//! CPU placement of the processes that build a sandbox: which CPU each may run on while the
//! sandbox is built, and the caller's own set given back before the command starts.
//!
//! Why: the kernel places a new process on its parent's CPU (observed on 6.18 with the
//! other CPU idle), so init, whose mount view is the longest step of a start, waited there
//! until cw-exec had written the identity maps and made the cgroups (~0.25 ms) — while the
//! other CPU idled. So, while the sandbox is built: init runs on every allowed CPU but the
//! one cw-exec is on, and the helper making the network namespace (`kernel::netns`) on
//! cw-exec's, where cw-exec soon sleeps. Init gives itself the caller's whole set back
//! before it starts the command, which therefore runs where the caller's processes may:
//! nothing of this is visible to the sandbox.
//!
//! Placement is only ever a speed-up: where it cannot be made (one allowed CPU, an
//! affinity call refused), everything runs where the kernel puts it. The one step that must
//! not fail silently is giving the set back (`Placement::restore`): a command pinned to one
//! CPU would be a command slowed without anyone asking. A refused give-back is an error only
//! where init was in fact narrowed: a host that refuses every affinity call never let it be.

use nix::sched::{sched_getaffinity, sched_getcpu, sched_setaffinity, CpuSet};
use nix::unistd::Pid;

/// The caller's CPU set and the two sets carved from it while the sandbox is built.
pub struct Placement {
    /// The caller's own set, which the command gets.
    caller: CpuSet,
    /// Every CPU of `caller` but the one cw-exec was on when it made the placement.
    init: CpuSet,
    /// That one CPU.
    helper: CpuSet,
}

impl Placement {
    /// Made by cw-exec just before it starts init; None where there is nothing to spread
    /// (one allowed CPU, or the calls fail).
    pub fn new() -> Option<Placement> {
        let caller = sched_getaffinity(Pid::from_raw(0)).ok()?;
        let here = sched_getcpu().ok()?;
        if !caller.is_set(here).ok()? {
            return None;
        }
        let mut init = caller;
        init.unset(here).ok()?;
        if !(0..CpuSet::count()).any(|cpu| init.is_set(cpu).unwrap_or(false)) {
            return None;
        }
        let mut helper = CpuSet::new();
        helper.set(here).ok()?;
        Some(Placement {
            caller,
            init,
            helper,
        })
    }

    /// cw-exec, once init exists: init moves off cw-exec's CPU (at once: a narrowed set
    /// migrates a running or queued process). A refusal leaves init where it is.
    pub fn place_init(&self, init: Pid) {
        let _ = sched_setaffinity(init, &self.init);
    }

    /// Init, once the helper exists: the helper moves to cw-exec's CPU. A refusal leaves
    /// it beside init.
    pub fn place_helper(&self, helper: Pid) {
        let _ = sched_setaffinity(helper, &self.helper);
    }

    /// Init, before it starts the command: the caller's whole set back, for init and
    /// everything it starts. Err only where init is not on the caller's set afterwards.
    pub fn restore(&self) -> nix::Result<()> {
        restore_with(
            &self.caller,
            |set| sched_setaffinity(Pid::from_raw(0), set),
            || sched_getaffinity(Pid::from_raw(0)),
        )
    }
}

/// `Placement::restore` with its two calls given (`set` the calling thread's set, `get` it).
/// A refused `set` is an error only if the thread is not on `caller` already: a host that
/// refuses affinity calls altogether (a seccomp profile such as systemd's
/// `SystemCallFilter=~@resources`) refused cw-exec's placement of init too, so init never
/// left the caller's set and the command runs there, as it did before placement existed.
fn restore_with(
    caller: &CpuSet,
    set: impl FnOnce(&CpuSet) -> nix::Result<()>,
    get: impl FnOnce() -> nix::Result<CpuSet>,
) -> nix::Result<()> {
    match set(caller) {
        Ok(()) => Ok(()),
        Err(refused) => match get() {
            Ok(now) if now == *caller => Ok(()),
            _ => Err(refused),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A refused restore is an error exactly when the thread is not on the caller's set:
    /// never narrowed (every affinity call refused), the command runs; narrowed, the run is
    /// refused rather than run pinned; where the set cannot even be read, refused too.
    #[test]
    fn a_refused_restore_fails_only_when_the_set_is_not_the_callers() {
        let mut caller = CpuSet::new();
        caller.set(0).unwrap();
        caller.set(1).unwrap();
        let mut narrowed = CpuSet::new();
        narrowed.set(1).unwrap();
        let refused = |_: &CpuSet| Err(nix::errno::Errno::EPERM);
        assert_eq!(restore_with(&caller, refused, || Ok(caller)), Ok(()));
        assert_eq!(
            restore_with(&caller, refused, || Ok(narrowed)),
            Err(nix::errno::Errno::EPERM)
        );
        assert_eq!(
            restore_with(&caller, refused, || Err(nix::errno::Errno::EPERM)),
            Err(nix::errno::Errno::EPERM)
        );
        // A restore that works is not checked again.
        assert_eq!(
            restore_with(&caller, |_| Ok(()), || panic!("read again")),
            Ok(())
        );
    }

    #[test]
    fn the_sets_split_the_callers_and_restore_gives_it_back() {
        let Some(p) = Placement::new() else {
            // One CPU allowed: nothing to spread, and nothing changed.
            return;
        };
        for cpu in 0..CpuSet::count() {
            let caller = p.caller.is_set(cpu).unwrap();
            let init = p.init.is_set(cpu).unwrap();
            let helper = p.helper.is_set(cpu).unwrap();
            assert!(!(init && helper), "cpu {cpu} in both");
            assert_eq!(caller, init || helper, "cpu {cpu}");
        }
        // On this test's thread alone (pid 0 is the calling thread): narrowed, then back.
        sched_setaffinity(Pid::from_raw(0), &p.init).unwrap();
        let narrowed = sched_getaffinity(Pid::from_raw(0)).unwrap();
        p.restore().unwrap();
        assert_eq!(narrowed, p.init);
        assert_eq!(sched_getaffinity(Pid::from_raw(0)).unwrap(), p.caller);
    }
}
