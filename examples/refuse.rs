//! Runs a command with some system calls refused (EPERM) and everything else allowed, as a
//! host's seccomp profile may (systemd's `SystemCallFilter=~@resources` refuses
//! `sched_setaffinity`, for example). Each rule is a call's name, alone (every call refused)
//! or with `=N` (refused only when its first argument, as a 32-bit value, is N). The filter is inherited by
//! everything the command starts: cw-exec, its init and the sandbox's command alike.
//!
//! usage: refuse RULE... -- COMMAND [ARGS...]
//!   e.g. refuse sched_setaffinity -- cw-exec run -- true
//!        refuse sched_setaffinity=0 prctl=36 -- cw-exec run -- true

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

fn usage() -> ! {
    eprintln!("usage: refuse RULE... -- COMMAND [ARGS...] (RULE: NAME or NAME=ARG0)");
    std::process::exit(2);
}

fn number(name: &str) -> i64 {
    match name {
        "sched_setaffinity" => libc::SYS_sched_setaffinity,
        "prctl" => libc::SYS_prctl,
        "unshare" => libc::SYS_unshare,
        "setns" => libc::SYS_setns,
        "pidfd_open" => libc::SYS_pidfd_open,
        other => {
            eprintln!("refuse: unknown system call {other}");
            usage()
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(split) = args.iter().position(|a| a == "--") else {
        usage()
    };
    let (rules_text, command) = (&args[..split], &args[split + 1..]);
    if rules_text.is_empty() || command.is_empty() {
        usage();
    }
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for rule in rules_text {
        let (name, arg) = match rule.split_once('=') {
            Some((n, a)) => (n, Some(a.parse::<u64>().unwrap_or_else(|_| usage()))),
            None => (rule.as_str(), None),
        };
        let entry = rules.entry(number(name)).or_default();
        if let Some(value) = arg {
            let condition =
                SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, value)
                    .expect("condition");
            entry.push(SeccompRule::new(vec![condition]).expect("rule"));
        }
    }
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
    let err = std::process::Command::new(&command[0])
        .args(&command[1..])
        .exec();
    eprintln!("refuse: {}: {err}", command[0]);
    std::process::exit(127);
}
