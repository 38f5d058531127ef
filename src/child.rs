//! Inside the sandbox: init (PID 1 of the new PID namespace) and the command's process,
//! running the steps `containment` lists for each (the whole order is there).
//!
//! Process layout:
//!   cw-exec (host namespaces, supervises)
//!     └─ init   PID 1 in new user+mount+PID+IPC+UTS namespaces: builds the mount
//!        │      view, joins the network namespace, brings up loopback, then only reaps
//!        │      and forwards signals
//!        ├─ network helper   PID 2 (unless --net host): makes the network namespace
//!        │      (`kernel::netns`); killed and reaped before the command starts
//!        └─ command   PID 3 (2 with --net host): restricts itself, reads back, execs
//! When init exits the kernel kills everything left in the PID namespace, and init dies
//! with cw-exec (PR_SET_PDEATHSIG), so no process outlives the run.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::attest;
use crate::containment;
use crate::kernel::placement::Placement;
use crate::kernel::pty::SandboxTerminal;
use crate::model::{exec_failure_status, Dimension, Tier, EXIT_REFUSED};
use crate::plan::Plan;
use crate::readback::{KernelReadback, StepError};
use crate::sys;

/// Messages from inside the sandbox to cw-exec, one JSON object per line on the report pipe:
/// `{"kind": ..., "body": {...}}`, the kind first. (Adjacently tagged: with the tag first,
/// the body is read in one pass; an internally tagged enum buffers the whole message, the
/// read-back's every map and list, before reading it again.)
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", content = "body", rename_all = "kebab-case")]
pub enum Message {
    /// A containment step failed; nothing was executed.
    SetupError { step: String, message: String },
    /// The read-back did not prove a required dimension; nothing was executed.
    Refused {
        readback: Box<KernelReadback>,
        unenforceable: Vec<Dimension>,
    },
    /// Every restriction is in place; execve comes next.
    Readback { readback: Box<KernelReadback> },
    /// execve failed with this errno.
    ExecError { errno: i32, message: String },
    /// The command ended, and every other process of the run is gone: init killed and reaped
    /// them all and closed its own copies of the output streams (`containment::end_the_run`),
    /// so cw-exec may return without waiting for init's own exit.
    Exit {
        code: Option<i32>,
        signal: Option<i32>,
        /// Init moved itself out of the run's cgroups (they are empty: removable now).
        left_cgroups: bool,
    },
    /// Phase marks of init and the command's process (`--timings`).
    Timings { marks: Vec<(String, u64)> },
}

/// Signals cw-exec forwards to the command, and the one that means "timeout: TERM the tree".
pub const FORWARDED: [Signal; 4] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
];
pub const TERMINATE_TREE: Signal = Signal::SIGUSR1;

struct Reporter(std::fs::File);

impl Reporter {
    fn send(&mut self, message: &Message) {
        // A failed write means cw-exec is gone; PDEATHSIG ends us shortly.
        let _ = self.0.write_all(&Self::line(message));
    }

    /// A message as the report pipe carries it: one JSON line.
    fn line(message: &Message) -> Vec<u8> {
        let mut line = serde_json::to_vec(message).unwrap_or_default();
        line.push(b'\n');
        line
    }
}

/// Init: PID 1 of the sandbox. Never returns. `terminal`: the sandbox's own pty, when it
/// has one (descriptors 0 and 1, and 2 when cw-exec's stderr is a terminal, are its slave).
pub fn init_main(
    plan: &Plan,
    terminal: Option<&SandboxTerminal>,
    host_ns: &BTreeMap<String, u64>,
    placement: Option<&Placement>,
    (go, report): (OwnedFd, OwnedFd),
    proxy_channel: Option<OwnedFd>,
) -> ! {
    let mut reporter = Reporter(std::fs::File::from(report));
    // Init's end of the go channel outlives a failed step's report: cw-exec reads init's
    // report when a write to init fails (`supervise::abandon_after_init`), after it has
    // killed init, so the channel must not close (failing that write) before the report is
    // written.
    let mut go = Some(go);
    let code = match init(
        plan,
        terminal,
        host_ns,
        placement,
        &mut go,
        &mut reporter,
        proxy_channel,
    ) {
        Ok(code) => code,
        Err((step, message)) => {
            reporter.send(&Message::SetupError { step, message });
            EXIT_REFUSED
        }
    };
    if plan.tier == Tier::Landlock {
        // No PID namespace ends the rest of the run with init: init does.
        containment::kill_descendants();
    }
    std::process::exit(code)
}

fn step<T, E: std::fmt::Display>(name: &str, r: Result<T, E>) -> Result<T, StepError> {
    r.map_err(|e| (name.to_string(), e.to_string()))
}

fn init(
    plan: &Plan,
    terminal: Option<&SandboxTerminal>,
    host_ns: &BTreeMap<String, u64>,
    placement: Option<&Placement>,
    go_channel: &mut Option<OwnedFd>,
    reporter: &mut Reporter,
    proxy_channel: Option<OwnedFd>,
) -> Result<i32, StepError> {
    let Some(go) = go_channel.as_ref() else {
        return Ok(EXIT_REFUSED);
    };
    containment::init_own_process_group()?;
    // The signals init waits for must be blocked, or sigwait would not see them (and, for
    // PID 1, unblocked signals without a handler are discarded).
    let mut wanted = SigSet::empty();
    wanted.add(Signal::SIGCHLD);
    wanted.add(TERMINATE_TREE);
    for sig in FORWARDED {
        wanted.add(sig);
    }
    step("blocking signals", wanted.thread_block())?;
    // Before the wait for cw-exec below: the helper inherits the blocked signals, and its
    // start costs init nothing while cw-exec writes the identity maps.
    let network = containment::init_starts_network(plan, placement)?;
    // Once, here, while cw-exec writes the identity maps (init needs none of the set: it
    // never execs): the command's process inherits the empty set.
    step(
        "init: emptying the bounding set",
        containment::empty_bounding_set(),
    )?;

    // Die with cw-exec. Then wait until it has written our uid/gid maps; EOF instead of the
    // byte means cw-exec died before that, so stop.
    step(
        "parent-death signal",
        nix::sys::prctl::set_pdeathsig(Signal::SIGKILL),
    )?;
    // cw-exec may have died before that, once it had written all init waits for (still
    // readable): no signal would come, and init would run the sandbox unsupervised, then
    // outlive it.
    if containment::cw_exec_died(go) {
        return Ok(EXIT_REFUSED);
    }
    let cw_exec = nix::unistd::getppid();
    let mut byte = [0u8; 1];
    if step("waiting for cw-exec", nix::unistd::read(go, &mut byte))? != 1 {
        return Ok(EXIT_REFUSED);
    }
    crate::timings::mark("init: released by cw-exec");
    let containment::InitReady {
        proc_handle,
        network_helper,
        quotas,
    } = containment::init_steps(plan, network, proxy_channel, terminal)?;
    let (mut leave, membership, ruleset) = match containment::init_join_limits(go)? {
        containment::Released::Abandoned => return Ok(EXIT_REFUSED),
        containment::Released::Limits {
            leave,
            membership,
            ruleset,
        } => (leave, membership, ruleset),
    };
    *go_channel = None;
    crate::timings::mark("init: cgroups joined");
    // The helper that made the network namespace was killed when init joined it; reaped
    // here, so that nothing but init runs in the sandbox when the command starts.
    drop(network_helper);
    if let Some(p) = placement {
        step("init: the caller's CPU set back", p.restore())?;
    }
    // The command's process shares init's memory until its execve (init waits meanwhile):
    // no copy of cw-exec's address space is made for a process that replaces it at once.
    // It takes the /proc handle (its own copy of the descriptor; init closes its copy after
    // its last report, `containment::report_the_end`).
    let proc_handle_fd = proc_handle.as_raw_fd();
    let ruleset_fd = ruleset.as_raw_fd();
    // Landlock tier: no PID namespace ends the run with init, so from the command's start
    // cw-exec's death is TERMINATE_TREE, not SIGKILL: blocked, it waits for init's loop,
    // which kills and reaps every process of the run, as past a timeout. Switched here and
    // not earlier, so that a cw-exec dying during the set-up still ends init at once, before
    // any command exists. cw-exec dying before the switch SIGKILLs init; after it, leaves
    // TERMINATE_TREE pending; the check below catches a death the switch raced with.
    if plan.tier == Tier::Landlock {
        step(
            "parent-death signal for the run",
            nix::sys::prctl::set_pdeathsig(TERMINATE_TREE),
        )?;
        if nix::unistd::getppid() != cw_exec {
            return Ok(EXIT_REFUSED);
        }
    }
    let mut handles = Some((proc_handle, ruleset));
    let command = step(
        "starting the command's process",
        sys::spawn_sharing_memory(&mut || match handles.take() {
            Some((proc_handle, ruleset)) => command_main(
                plan,
                terminal,
                host_ns,
                reporter,
                containment::CommandHandles {
                    proc_handle,
                    ruleset,
                    quotas: &quotas,
                },
                membership.as_ref(),
            ),
            None => EXIT_REFUSED,
        }),
    )?;
    // The command's process took both handles (its own copies of the descriptors, closed by
    // its execve at the latest); init's copy of the ruleset goes now, its copy of the /proc
    // handle after its last report.
    let _ = nix::unistd::close(ruleset_fd);
    // Init needs no privilege from here on (the command's process drops its own).
    step(
        "init: dropping capabilities",
        containment::drop_capabilities(),
    )?;
    // The command's process ended (exit code or signal): what both ways of seeing it do.
    let mut command_ended = |end| -> ! {
        the_command_ended(
            plan,
            terminal,
            reporter,
            proc_handle_fd,
            leave.take(),
            cw_exec,
            end,
        )
    };

    loop {
        let sig = match wanted.wait() {
            Ok(sig) => sig,
            Err(_) => continue,
        };
        match sig {
            Signal::SIGCHLD => {
                while let Ok(status) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                    if let Some(end) = command_status(command, status) {
                        command_ended(end);
                    }
                    if status == WaitStatus::StillAlive {
                        break;
                    }
                }
            }
            s if s == TERMINATE_TREE => match plan.tier {
                // kill(-1) from PID 1 reaches every other process in the namespace.
                Tier::Namespaces => {
                    let _ = kill(Pid::from_raw(-1), Signal::SIGTERM);
                }
                // Without a PID namespace kill(-1) would reach the caller's other processes:
                // only the run's own (init is their subreaper). They are reaped as they are
                // killed, the command's process among them: its end is seen here, never
                // again by a SIGCHLD.
                Tier::Landlock => {
                    let reaped = containment::kill_descendants();
                    if let Some(end) = reaped.into_iter().find_map(|s| command_status(command, s)) {
                        command_ended(end);
                    }
                }
            },
            s => {
                // The command's whole process group (it is its session's leader, so the
                // group's id is its pid): a shell's children get the signal as they would
                // from a terminal, not only the shell. Before the command's setsid the
                // group does not exist yet; then the command alone.
                if kill(Pid::from_raw(-command.as_raw()), s) == Err(nix::errno::Errno::ESRCH) {
                    let _ = kill(command, s);
                }
            }
        }
    }
}

/// How the command's process ended, from a wait status (None: another process's status).
fn command_status(command: Pid, status: WaitStatus) -> Option<(Option<i32>, Option<i32>)> {
    match status {
        WaitStatus::Exited(pid, code) if pid == command => Some((Some(code), None)),
        WaitStatus::Signaled(pid, sig, _) if pid == command => Some((None, Some(sig as i32))),
        _ => None,
    }
}

/// The command's process ended (exit `code` or `signal`): the rest of the run goes, and init
/// reports the end holding nothing else (once cw-exec has the report, no process of the run
/// holds a descriptor of the caller's).
fn the_command_ended(
    plan: &Plan,
    terminal: Option<&SandboxTerminal>,
    reporter: &Reporter,
    proc_copy: std::os::fd::RawFd,
    leave: Option<crate::kernel::cgroup::SelfJoin>,
    cw_exec: Pid,
    (code, signal): (Option<i32>, Option<i32>),
) -> ! {
    let left_cgroups = containment::end_the_run(plan.tier, leave);
    // Nothing of the run is left: in the Landlock tier cw-exec's death is SIGKILL again, so
    // that an init lingering for it (below) ends with it; and if cw-exec is gone already
    // (its death was what ended the run), init does not linger at all.
    let cw_exec_lives = plan.tier == Tier::Namespaces
        || (nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).is_ok()
            && nix::unistd::getppid() == cw_exec);
    containment::report_the_end(
        reporter.0.as_fd(),
        Some(proc_copy),
        &Reporter::line(&Message::Exit {
            code,
            signal,
            left_cgroups,
        }),
        left_cgroups && terminal.is_none() && cw_exec_lives,
        code.unwrap_or_else(|| 128 + signal.unwrap_or(0)),
    )
}

/// The command's process: restrict, read back, exec. Returns only when it cannot exec: its
/// exit status. It shares init's memory until execve (`sys::spawn_sharing_memory`), so it
/// never calls `std::process::exit`. `membership`: where it must be in the run's cgroups, as
/// cw-exec handed it to init with them.
fn command_main(
    plan: &Plan,
    terminal: Option<&SandboxTerminal>,
    host_ns: &BTreeMap<String, u64>,
    reporter: &mut Reporter,
    handles: containment::CommandHandles<'_>,
    membership: Option<&crate::kernel::cgroup::Membership>,
) -> i32 {
    let argv = match plan.argv_c() {
        Ok(a) => a,
        Err(e) => {
            reporter.send(&Message::SetupError {
                step: "arguments".into(),
                message: e,
            });
            return EXIT_REFUSED;
        }
    };
    let envp = plan.envp();
    let command = crate::plan::c_path(&plan.command_path);

    let (readback, ignored_signals) =
        match containment::command_steps(plan, terminal, host_ns, &envp, handles) {
            Ok(rb) => rb,
            Err((step, message)) => {
                reporter.send(&Message::SetupError { step, message });
                return EXIT_REFUSED;
            }
        };
    let verdict = attest::verdict(plan, &readback);
    if verdict.refused() {
        reporter.send(&Message::Refused {
            readback: Box::new(readback),
            unenforceable: verdict.unenforceable.clone(),
        });
        return EXIT_REFUSED;
    }
    // Not in the run's cgroups, exactly as cw-exec made them: refused before execve.
    if let Err(message) = containment::command_in_run_cgroups(plan, membership, &readback) {
        reporter.send(&Message::SetupError {
            step: containment::CGROUPS_STEP.into(),
            message,
        });
        return EXIT_REFUSED;
    }
    reporter.send(&Message::Readback {
        readback: Box::new(readback),
    });
    if plan.timings {
        crate::timings::mark("command: read-back sent; execve next");
        reporter.send(&Message::Timings {
            marks: crate::timings::take(),
        });
    }

    sys::reset_signals_for_exec_given(ignored_signals);
    let err = nix::unistd::execve(&command, &argv, &envp).unwrap_err();
    reporter.send(&Message::ExecError {
        errno: err as i32,
        message: crate::fsio::exec_failure_message(
            &plan.command_path,
            err as i32,
            plan.exec_allowlist,
        ),
    });
    exec_failure_status(err as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every message survives the report pipe's encoding, the kind first.
    #[test]
    fn messages_round_trip_kind_first() {
        let line = serde_json::to_vec(&Message::Exit {
            code: Some(3),
            signal: None,
            left_cgroups: true,
        })
        .unwrap();
        assert!(
            line.starts_with(br#"{"kind":"exit","body":{"#),
            "{}",
            String::from_utf8_lossy(&line)
        );
        match serde_json::from_slice::<Message>(&line).unwrap() {
            Message::Exit {
                code: Some(3),
                signal: None,
                left_cgroups: true,
            } => {}
            other => panic!("{other:?}"),
        }
        let line = serde_json::to_vec(&Message::Timings {
            marks: vec![("a".into(), 1), ("b".into(), 2)],
        })
        .unwrap();
        match serde_json::from_slice::<Message>(&line).unwrap() {
            Message::Timings { marks } => assert_eq!(marks, [("a".into(), 1), ("b".into(), 2)]),
            other => panic!("{other:?}"),
        }
        let line = serde_json::to_vec(&Message::SetupError {
            step: "landlock".into(),
            message: "EINVAL".into(),
        })
        .unwrap();
        match serde_json::from_slice::<Message>(&line).unwrap() {
            Message::SetupError { step, message } => {
                assert_eq!((step.as_str(), message.as_str()), ("landlock", "EINVAL"))
            }
            other => panic!("{other:?}"),
        }
    }
}
