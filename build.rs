//! Builds every variant of the seccomp program at build time (see src/kernel/seccomp.rs):
//! planning a run then looks its program up instead of compiling it.

#[allow(dead_code)]
#[path = "src/kernel/seccomp_rules.rs"]
mod seccomp_rules;

use std::fmt::Write;

fn main() {
    println!("cargo:rerun-if-changed=src/kernel/seccomp_rules.rs");
    println!("cargo:rerun-if-changed=build.rs");
    let out =
        std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("seccomp_programs.rs");
    // The rules use this build host's libc constants and architecture: only when they are
    // the target's. Otherwise the table is empty and cw-exec compiles at run time.
    let native = std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok(std::env::consts::ARCH)
        && std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && cfg!(target_os = "linux");
    let mut text = String::from("&[\n");
    if native {
        for families in seccomp_rules::Families::ALL {
            for memfd in [false, true] {
                for native_code in [false, true] {
                    let (program, denies) = seccomp_rules::build(families, memfd, native_code)
                        .unwrap_or_else(|e| panic!("seccomp program {families:?}: {e}"));
                    let _ = write!(text, "(Families::{families:?}, {memfd}, {native_code}, &[");
                    for i in &program {
                        let _ = write!(text, "({}, {}, {}, {}),", i.code, i.jt, i.jf, i.k);
                    }
                    text.push_str("], &[");
                    for d in &denies {
                        let _ = write!(text, "{d:?},");
                    }
                    text.push_str("]),\n");
                }
            }
        }
    }
    text.push(']');
    std::fs::write(&out, text).unwrap();
}
