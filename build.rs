//! Builds every variant of the seccomp program at build time (see src/kernel/seccomp.rs):
//! planning a run then looks its program up instead of compiling it.
//!
//! And link options for the cw-exec binary that make each run start faster and touch fewer
//! pages (docs/performance.md, "Pass-through, memory and start-up"; `link_options`).

#[allow(dead_code)]
#[path = "src/kernel/seccomp_rules.rs"]
mod seccomp_rules;

use std::fmt::Write;

fn main() {
    link_options();
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

/// - `build/hot-text.ld`: the functions a typical run executes are placed together, before
///   the rest of `.text`, so a run maps about half as many pages of the binary (the kernel
///   maps 64 KiB around each page fault of a file). The list is made by `scripts/hot-text`;
///   a function missing from it only costs a page fault, never correctness.
/// - the unwinder linked statically (`libgcc_eh.a`) instead of `libgcc_s.so.1`: one shared
///   library less to load and relocate at every start (~0.1 ms), where the C compiler has it.
fn link_options() {
    println!("cargo:rerun-if-changed=build/hot-text.ld");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return;
    }
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let script = std::path::Path::new(&manifest).join("build/hot-text.ld");
    // `-Wl,` splits at commas: a path with one cannot be passed this way.
    if script.is_file() && !script.to_string_lossy().contains(',') {
        println!("cargo:rustc-link-arg-bins=-Wl,-T,{}", script.display());
    }
    // A static build (.cargo/config.toml) links the unwinder statically anyway.
    let static_build = std::env::var("CARGO_CFG_TARGET_FEATURE")
        .is_ok_and(|features| features.split(',').any(|f| f == "crt-static"));
    if std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu")
        && !static_build
        && static_unwinder_available()
    {
        println!("cargo:rustc-link-lib=static:-bundle=gcc_eh");
    }
}

/// Whether the C compiler that links has `libgcc_eh.a` (gcc installs it; a clang-only
/// system may not, and then libgcc_s.so.1 stays, as before).
fn static_unwinder_available() -> bool {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    std::process::Command::new(cc)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .is_some_and(|p| {
            std::path::Path::new(&p).is_absolute() && std::path::Path::new(&p).is_file()
        })
}
