//! Runs a command with `unshare(2)` refused (EPERM) and everything else allowed, as a
//! seccomp profile that lets `clone` create namespaces but not `unshare` would. cw-exec's
//! init makes the sandbox's network namespace with `unshare` (`kernel::netns`), so under
//! this a run that needs one must be refused, never run without it (tests/network.rs).
//!
//! usage: no-unshare COMMAND [ARGS...]

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;

use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        eprintln!("usage: no-unshare COMMAND [ARGS...]");
        std::process::exit(2);
    }
    let mut rules = BTreeMap::new();
    rules.insert(libc::SYS_unshare, vec![]);
    let program: BpfProgram = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        TargetArch::x86_64,
    )
    .expect("filter")
    .try_into()
    .expect("bpf");
    seccompiler::apply_filter(&program).expect("installing the filter");
    let err = std::process::Command::new(&args[0]).args(&args[1..]).exec();
    eprintln!("no-unshare: {}: {err}", args[0]);
    std::process::exit(127);
}
