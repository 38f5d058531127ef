//! Runs a command the way a container under Docker's default seccomp profile would: creating
//! a user namespace is refused (`clone`/`unshare` with CLONE_NEWUSER → EPERM, `clone3` →
//! ENOSYS, as that profile does), everything else is allowed. Used by tests/tier.rs to put
//! cw-exec where user namespaces are unavailable.
//!
//! usage: no-userns COMMAND [ARGS...]

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

fn filter(rules: BTreeMap<i64, Vec<SeccompRule>>, errno: i32) -> BpfProgram {
    SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(errno as u32),
        TargetArch::x86_64,
    )
    .expect("filter")
    .try_into()
    .expect("bpf")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        eprintln!("usage: no-userns COMMAND [ARGS...]");
        std::process::exit(2);
    }
    let newuser = libc::CLONE_NEWUSER as u64;
    let with_newuser = || {
        SeccompRule::new(vec![SeccompCondition::new(
            0,
            SeccompCmpArgLen::Qword,
            SeccompCmpOp::MaskedEq(newuser),
            newuser,
        )
        .expect("condition")])
        .expect("rule")
    };
    let mut eperm = BTreeMap::new();
    eperm.insert(libc::SYS_clone, vec![with_newuser()]);
    eperm.insert(libc::SYS_unshare, vec![with_newuser()]);
    let mut enosys = BTreeMap::new();
    enosys.insert(libc::SYS_clone3, vec![]);
    seccompiler::apply_filter(&filter(eperm, libc::EPERM)).expect("installing the filter");
    seccompiler::apply_filter(&filter(enosys, libc::ENOSYS)).expect("installing the filter");
    let err = std::process::Command::new(&args[0]).args(&args[1..]).exec();
    eprintln!("no-userns: {}: {err}", args[0]);
    std::process::exit(127);
}
