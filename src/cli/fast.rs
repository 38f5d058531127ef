//! `cw-exec run ...` parsed without clap, for the common command line. Building clap's
//! command tree (every subcommand and flag) and parsing with it took ~0.15 ms of each run
//! (measured with uprobes on a release build, docs/performance.md), a tenth of the floor a
//! whole sandboxed run is measured against.
//!
//! Only what can be parsed exactly as clap parses it is taken here: `run` first, then long
//! flags of `RunArgs`, each `--flag VALUE` or `--flag=VALUE` with a value that is not empty
//! and does not start with `-`, a single-valued flag at most once, every value converted by
//! the same parser clap is given, all of it valid UTF-8, and a non-empty command after `--`.
//! Anything else (help, an unknown or short flag, a repeated flag, a value a parser refuses,
//! no command) returns None, and clap parses the command line as before, with its own
//! messages. `tests` below checks the two against each other.

use std::ffi::OsString;

use super::{NetArg, RunArgs};
use crate::policy::{count_flag, size_flag};

/// How a flag of `RunArgs` takes its value.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Takes {
    /// A switch: no value.
    Nothing,
    /// One value, the flag at most once.
    One,
    /// One value each time, the flag any number of times.
    Many,
}

fn takes(flag: &str) -> Option<Takes> {
    Some(match flag {
        "follow-symlinks" | "timings" => Takes::Nothing,
        "read" | "write" | "exec" | "net-deny" | "net-resolve" | "allow-bind" | "env"
        | "setenv" | "bind" => Takes::Many,
        "profile" | "manifest" | "net" | "cwd" | "tier" | "user" | "timeout" | "kill-after"
        | "memory" | "pids" | "cpu" | "nofile" | "fsize" | "output-limit" | "envelope"
        | "nonce" => Takes::One,
        _ => return None,
    })
}

/// `value_parser!(u16).range(1..)`: clap parses an i64 and checks the range.
fn port(text: &str) -> Option<u16> {
    text.parse::<i64>()
        .ok()
        .filter(|p| (1..=i64::from(u16::MAX)).contains(p))
        .map(|p| p as u16)
}

/// Sets `flag` to `value` in `args`; None where clap's parser would refuse it.
fn set(args: &mut RunArgs, flag: &str, value: &str) -> Option<()> {
    match flag {
        "read" => args.read.push(value.into()),
        "write" => args.write.push(value.into()),
        "exec" => args.exec.push(value.into()),
        "net-deny" => args.net_deny.push(value.into()),
        "net-resolve" => args.net_resolve.push(value.into()),
        "allow-bind" => args.allow_bind.push(port(value)?),
        "env" => args.env.push(value.into()),
        "setenv" => args.setenv.push(value.into()),
        "bind" => args.bind.push(crate::model::BindSpec::parse(value).ok()?),
        "profile" => args.profile = Some(value.into()),
        "manifest" => args.manifest = Some(value.into()),
        "net" => args.net = Some(NetArg::parse(value).ok()?),
        "cwd" => args.cwd = Some(value.into()),
        "tier" => args.tier = Some(crate::model::TierChoice::parse(value).ok()?),
        "user" => args.user = Some(crate::model::parse_user(value).ok()?),
        "timeout" => args.timeout = Some(value.parse().ok()?),
        "kill-after" => args.kill_after = Some(value.parse().ok()?),
        "memory" => args.memory = Some(size_flag("memory")(value).ok()?),
        "pids" => args.pids = Some(count_flag("pids")(value).ok()?),
        "cpu" => args.cpu = Some(value.parse().ok()?),
        "nofile" => args.nofile = Some(count_flag("nofile")(value).ok()?),
        "fsize" => args.fsize = Some(size_flag("fsize")(value).ok()?),
        "output-limit" => args.output_limit = Some(size_flag("output-limit")(value).ok()?),
        "envelope" => args.envelope = Some(value.into()),
        "nonce" => args.nonce = Some(value.into()),
        "follow-symlinks" => args.follow_symlinks = true,
        "timings" => args.timings = true,
        _ => return None,
    }
    Some(())
}

fn empty() -> RunArgs {
    RunArgs {
        profile: None,
        manifest: None,
        read: vec![],
        write: vec![],
        exec: vec![],
        net: None,
        net_deny: vec![],
        net_resolve: vec![],
        allow_bind: vec![],
        env: vec![],
        setenv: vec![],
        cwd: None,
        tier: None,
        follow_symlinks: false,
        bind: vec![],
        user: None,
        timeout: None,
        kill_after: None,
        memory: None,
        pids: None,
        cpu: None,
        nofile: None,
        fsize: None,
        output_limit: None,
        timings: false,
        envelope: None,
        nonce: None,
        command: vec![],
    }
}

/// The arguments of `cw-exec run ...` (`argv`, the program name first), or None when clap
/// is to parse them.
pub fn run_args(argv: impl IntoIterator<Item = OsString>) -> Option<RunArgs> {
    let argv: Vec<String> = argv
        .into_iter()
        .map(OsString::into_string)
        .collect::<Result<_, _>>()
        .ok()?;
    let mut rest = argv.get(1..)?.iter();
    if rest.next()? != "run" {
        return None;
    }
    let mut args = empty();
    let mut seen: Vec<&str> = vec![];
    while let Some(arg) = rest.next() {
        if arg == "--" {
            args.command = rest.cloned().collect();
            return (!args.command.is_empty()).then_some(args);
        }
        let (flag, inline) = match arg.strip_prefix("--")?.split_once('=') {
            Some((flag, value)) => (flag, Some(value)),
            None => (arg.strip_prefix("--")?, None),
        };
        let kind = takes(flag)?;
        if kind != Takes::Many {
            if seen.contains(&flag) {
                return None;
            }
            seen.push(flag);
        }
        let value = match (kind, inline) {
            (Takes::Nothing, None) => "",
            (Takes::Nothing, Some(_)) => return None,
            (_, Some(v)) => v,
            (_, None) => rest.next()?.as_str(),
        };
        if kind != Takes::Nothing && (value.is_empty() || value.starts_with('-')) {
            return None;
        }
        set(&mut args, flag, value)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// What clap makes of `line`, in the form the fast parser's result is compared in.
    fn by_clap(line: &[&str]) -> Option<String> {
        match super::super::Cli::try_parse_from(line) {
            Ok(super::super::Cli {
                command: super::super::Command::Run(args),
            }) => Some(format!("{args:?}")),
            _ => None,
        }
    }

    fn fast(line: &[&str]) -> Option<String> {
        run_args(line.iter().map(OsString::from)).map(|a| format!("{a:?}"))
    }

    #[test]
    fn the_fast_parser_agrees_with_clap_or_leaves_it_to_clap() {
        let taken: &[&[&str]] = &[
            &["cw-exec", "run", "--", "/bin/true"],
            &[
                "cw-exec",
                "run",
                "--read",
                "/var/tmp/pt/R",
                "--write",
                "/var/tmp/pt/T",
                "--net",
                "none",
                "--timeout",
                "10",
                "--",
                "/bin/true",
            ],
            &[
                "cw-exec",
                "run",
                "--read=/a",
                "--read",
                "/b",
                "--exec=/bin",
                "--",
                "sh",
                "-c",
                "echo --read",
            ],
            &[
                "cw-exec",
                "run",
                "--net",
                "allow=registry.example,*.example:443",
                "--net-deny",
                "x.example",
                "--net-resolve",
                "a.example=127.0.0.1",
                "--",
                "x",
            ],
            &[
                "cw-exec",
                "run",
                "--net",
                "loopback",
                "--allow-bind",
                "8080",
                "--allow-bind=+9",
                "--",
                "x",
            ],
            &[
                "cw-exec", "run", "--env", "PATH", "--setenv", "A=b=c", "--cwd", "/tmp", "--tier",
                "landlock", "--", "x",
            ],
            &[
                "cw-exec",
                "run",
                "--follow-symlinks",
                "--timings",
                "--bind",
                "/a:/b:ro",
                "--user",
                "1000:1000",
                "--",
                "x",
                "--",
                "y",
            ],
            &[
                "cw-exec",
                "run",
                "--timeout",
                "1.5",
                "--kill-after",
                "0",
                "--cpu",
                "2e1",
                "--memory",
                "256M",
                "--pids",
                "64",
                "--nofile",
                "64",
                "--fsize",
                "1G",
                "--output-limit",
                "1K",
                "--",
                "x",
            ],
            &[
                "cw-exec",
                "run",
                "--envelope",
                "/tmp/e.json",
                "--nonce",
                "abc",
                "--profile",
                "locked-down",
                "--manifest",
                "m.json",
                "--",
                "x",
            ],
            &["cw-exec", "run", "--timeout", "inf", "--", "x"],
        ];
        for line in taken {
            let clap = by_clap(line);
            assert!(clap.is_some(), "clap refuses {line:?}");
            assert_eq!(fast(line), clap, "{line:?}");
        }
        // Left to clap (which accepts some and refuses others, with its own messages).
        let left: &[&[&str]] = &[
            &["cw-exec", "run", "/bin/true"],
            &["cw-exec", "run", "--"],
            &["cw-exec", "run", "--read", "/a"],
            &["cw-exec", "run", "--help"],
            &["cw-exec", "run", "-h"],
            &["cw-exec", "--version"],
            &["cw-exec", "explain", "--", "x"],
            &["cw-exec", "run", "--reed", "/a", "--", "x"],
            &[
                "cw-exec",
                "run",
                "--timeout",
                "1",
                "--timeout",
                "2",
                "--",
                "x",
            ],
            &["cw-exec", "run", "--timings", "--timings", "--", "x"],
            &["cw-exec", "run", "--timings=true", "--", "x"],
            &["cw-exec", "run", "--timeout", "-1", "--", "x"],
            &["cw-exec", "run", "--timeout", "soon", "--", "x"],
            &["cw-exec", "run", "--read", "--", "x"],
            &["cw-exec", "run", "--read=", "--", "x"],
            &["cw-exec", "run", "--read", "-x", "--", "x"],
            &["cw-exec", "run", "--net", "sometimes", "--", "x"],
            &["cw-exec", "run", "--net", "allowlist", "--", "x"],
            &["cw-exec", "run", "--allow-bind", "0", "--", "x"],
            &["cw-exec", "run", "--allow-bind", "65536", "--", "x"],
            &["cw-exec", "run", "--memory", "1K", "--", "x"],
            &["cw-exec", "run", "--pids", "1", "--", "x"],
            &["cw-exec", "run", "--user", "root", "--", "x"],
            &["cw-exec", "run", "--bind", "/a", "--", "x"],
            &["cw-exec", "run", "--tier", "chroot", "--", "x"],
        ];
        for line in left {
            assert_eq!(fast(line), None, "{line:?}");
        }
        // Whatever the fast parser takes, clap parses to the same arguments.
        for line in taken.iter().chain(left) {
            if let Some(f) = fast(line) {
                assert_eq!(Some(f), by_clap(line), "{line:?}");
            }
        }
    }

    #[test]
    fn arguments_that_are_not_utf8_are_left_to_clap() {
        use std::os::unix::ffi::OsStringExt;
        let line = vec![
            OsString::from("cw-exec"),
            OsString::from("run"),
            OsString::from("--"),
            OsString::from_vec(vec![0xff, b'x']),
        ];
        assert!(run_args(line).is_none());
    }
}
