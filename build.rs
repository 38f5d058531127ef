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
///   the rest of `.text`, with the IFUNC stubs (`.iplt`) right after them, so a run maps
///   about half as many pages of the binary (the kernel maps 64 KiB around each page fault
///   of a file). The list is made by `scripts/hot-text`;
///   a function missing from it only costs a page fault, never correctness.
/// - `build/layout.ld`: the exception tables, which only an unwind reads, placed after
///   `.eh_frame` instead of before `.rodata`, so the start-up's and the run's reads of
///   read-only data map one 64 KiB window less.
/// - the unwinder linked statically (`libgcc_eh.a`) instead of `libgcc_s.so.1`: one shared
///   library less to load and relocate at every start (~0.1 ms), where the C compiler has it.
/// - in a static build, relative relocations packed (`-z pack-relative-relocs`, DT_RELR):
///   glibc's start-up reads ~1 KiB of relocations instead of ~100 KiB, so a run maps ~130 KiB
///   less and starts ~0.05 ms sooner. Only where a probe linked this way runs correctly
///   (`packed_relocations_work`): a glibc older than 2.36 ignores DT_RELR in a static-pie
///   binary, which would then crash at its first pointer.
fn link_options() {
    println!("cargo:rerun-if-changed=build/hot-text.ld");
    println!("cargo:rerun-if-changed=build/layout.ld");
    println!("cargo:rerun-if-env-changed=CC");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return;
    }
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let script = std::path::Path::new(&manifest).join("build/hot-text.ld");
    let layout = std::path::Path::new(&manifest).join("build/layout.ld");
    for script in [script, layout] {
        // `-Wl,` splits at commas: a path with one cannot be passed this way.
        if script.is_file() && !script.to_string_lossy().contains(',') {
            println!("cargo:rustc-link-arg-bins=-Wl,-T,{}", script.display());
        }
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
    if static_build && packed_relocations_work() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// Whether a static-pie program linked with packed relative relocations runs correctly here:
/// the linker must know the option and the C library's start-up must apply DT_RELR. The
/// probe's table of pointers is relocated only through DT_RELR, so a start-up that ignores
/// it leaves them unrelocated and the probe crashes or fails. Not when cross-compiling (the
/// probe could not run), nor when anything about the probe fails: the option only saves
/// memory and time, never changes behaviour.
fn packed_relocations_work() -> bool {
    if std::env::var("HOST").ok() != std::env::var("TARGET").ok() {
        return false;
    }
    let Some(out) = std::env::var_os("OUT_DIR").map(std::path::PathBuf::from) else {
        return false;
    };
    let source = out.join("relr_probe.c");
    let probe = out.join("relr_probe");
    let program = "static const char *const words[] = {\"packed\", \"relative\", \"ok\"};\n\
                   int main(void) {\n\
                   \x20   volatile int i = 2;\n\
                   \x20   return words[i][0] == 'o' && words[i][1] == 'k' ? 0 : 1;\n\
                   }\n";
    if std::fs::write(&source, program).is_err() {
        return false;
    }
    let linked = std::process::Command::new(c_compiler())
        .args(["-static-pie", "-fPIE", "-Wl,-z,pack-relative-relocs", "-o"])
        .arg(&probe)
        .arg(&source)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    linked
        && std::process::Command::new(&probe)
            .status()
            .is_ok_and(|status| status.success())
}

/// The C compiler the probes use: `$CC`, else `cc` (the one that links, with Rust's defaults).
fn c_compiler() -> String {
    std::env::var("CC").unwrap_or_else(|_| "cc".into())
}

/// Whether the C compiler that links has `libgcc_eh.a` (gcc installs it; a clang-only
/// system may not, and then libgcc_s.so.1 stays, as before).
fn static_unwinder_available() -> bool {
    std::process::Command::new(c_compiler())
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .is_some_and(|p| {
            std::path::Path::new(&p).is_absolute() && std::path::Path::new(&p).is_file()
        })
}
