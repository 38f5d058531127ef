//! cw-exec: run a command under a policy the kernel enforces, and attest what it enforced.
//!
//! Layers, bottom to top (docs/architecture.md; `scripts/layers` checks that nothing imports
//! upward): the typed core (`model`, `sys`, `jcs`, `timings`) → host facilities (`kernel/*`,
//! `fsio`, `sink`, `credentials`, `policy`, `limits`, `signing`) → `plan` → read-back and
//! verdict (`readback`, `attest`) → containment (`containment`, `child`, `supervise`) →
//! rendering (`envelope`, `seal`) → front ends (`cli/*`, `cw/*`, `probe`).
#![deny(unsafe_code)]
// The C runtime calls `main` (defined by `c_main!` in sys) directly: Rust's runtime start,
// whose stack-overflow handler costs every run a read of /proc/self/maps, does not run.
#![cfg_attr(not(test), no_main)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod attest;
mod child;
mod cli;
mod containment;
mod credentials;
mod cw;
mod docker;
mod envelope;
mod fsio;
mod jcs;
mod kernel;
mod limits;
mod model;
mod netpolicy;
mod plan;
mod policy;
mod probe;
mod proxy;
mod raxcell;
mod readback;
mod seal;
mod signing;
mod sink;
mod supervise;
#[allow(unsafe_code)]
mod sys;
mod timings;

use clap::Parser;

#[cfg(not(test))]
crate::c_main!(entry);

/// The process's work: `dispatch`'s status, or 125 for a panic.
#[cfg_attr(test, allow(dead_code))]
fn entry() -> i32 {
    // A panic is cw-exec failing, never the command's result: exit 125, not Rust's 101. (The
    // one that happens in practice: a diagnostic written to a stderr that cannot take it,
    // such as /dev/full, after the envelope on that stderr already failed.)
    let code = std::panic::catch_unwind(dispatch).unwrap_or(model::EXIT_REFUSED);
    std::process::exit(code);
}

/// Parses the command line and runs the subcommand; returns the exit status.
fn dispatch() -> i32 {
    if raxcell::invoked_as_provider() {
        let args: Vec<String> = std::env::args().skip(1).collect();
        return raxcell::main(&args);
    }
    if docker::invoked_as_docker() {
        let args: Vec<String> = std::env::args().skip(1).collect();
        return docker::main(&args);
    }
    // `cw-exec run ...` as it is usually written is parsed without clap (cli/fast.rs).
    if let Some(args) = cli::fast::run_args(std::env::args_os()) {
        return cli::run::run(&args);
    }
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => model::EXIT_REFUSED,
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let code = match cli.command {
        cli::Command::Run(args) => cli::run::run(&args),
        cli::Command::Explain(args) => cli::explain::explain(&args),
        cli::Command::Probe { json } => crate::probe::main(json),
        cli::Command::Profile(cmd) => cli::profile::profile(cmd),
        cli::Command::Exec { request } => crate::cw::exec::exec(&request),
        cli::Command::Backend(cmd) => crate::cw::backend::backend(cmd),
        cli::Command::Verify {
            file,
            nonce,
            command,
            since,
            key,
        } => cli::verify::verify(&cli::verify::VerifyArgs {
            file: &file,
            nonce: nonce.as_deref(),
            command: command.as_deref(),
            since: since.as_deref(),
            key: key.as_deref(),
        }),
        cli::Command::Key(cli::KeyCommand::Show) => cli::verify::key_show(),
        cli::Command::Raxcell { args } => raxcell::main(&args),
        cli::Command::Docker { args } => docker::main(&args),
    };
    code
}
