//! The docker command lines Common Fabric's harness sends (`../shared/contracts/common-fabric.md`),
//! parsed exactly: what the contract lists is accepted, anything else is an error naming it
//! (exit 125). Pure: no I/O but reading an `--env NAME` from cw-exec's own environment.

use serde::{Deserialize, Serialize};

/// One invocation of the front end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invocation {
    Create(CreateArgs),
    /// `start --attach [--interactive] ID`.
    Start {
        id: String,
        interactive: bool,
    },
    /// `wait ID...`.
    Wait {
        ids: Vec<String>,
    },
    /// `rm [-f] ID...`.
    Rm {
        force: bool,
        ids: Vec<String>,
    },
    /// `info --format {{json .Runtimes}}`.
    Info,
    /// `inspect ID...`.
    Inspect {
        ids: Vec<String>,
    },
    /// `--help`, `help`, no arguments.
    Help,
}

/// A `--mount type=bind,src=HOST,dst=SANDBOX[,readonly]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    pub src: String,
    pub dst: String,
    pub readonly: bool,
}

/// The network modes the front end accepts. `bridge` (docker's and Common Fabric's default)
/// is refused: widening it to `host` silently would expose the host's loopback services.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    None,
    Host,
}

/// `create`'s arguments, as recorded in the state directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateArgs {
    /// `-i`: the container's stdin is attached when `start --interactive` asks for it.
    pub interactive: bool,
    pub runtime: Option<String>,
    pub network: Network,
    pub user: Option<(u32, u32)>,
    pub mounts: Vec<Mount>,
    pub workdir: Option<String>,
    /// `--env` pairs, in order (a later one for the same name wins).
    pub env: Vec<(String, String)>,
    pub image: String,
    pub argv: Vec<String>,
}

/// How `bridge` (or no `--network`) is refused: the harness's setting that fixes it.
pub const BRIDGE_REFUSED: &str = "--network bridge is refused: cw-exec does not give a sandbox a bridged network, and widening it to the host's would expose the host's loopback services; set CF_HARNESS_DOCKER_NETWORK_MODE=none (no network at all) or CF_HARNESS_DOCKER_NETWORK_MODE=host (the host's network, unrestricted) in the harness's environment";

const CREATE_ACCEPTS: &str = "create accepts -i, --runtime R, --network none|host, --user UID:GID, --mount type=bind,src=HOST,dst=SANDBOX[,readonly], -w DIR, --env/-e K=V, then IMAGE and the command";

/// Parses everything after the program name (`docker ARGS` or `cw-exec docker ARGS`).
pub fn parse(args: &[String]) -> Result<Invocation, String> {
    let Some((sub, rest)) = args.split_first() else {
        return Ok(Invocation::Help);
    };
    match sub.as_str() {
        "create" => parse_create(rest).map(Invocation::Create),
        "start" => parse_start(rest),
        "wait" => Ok(Invocation::Wait {
            ids: ids("wait", rest)?,
        }),
        "rm" => parse_rm(rest),
        "info" => parse_info(rest),
        "inspect" => Ok(Invocation::Inspect {
            ids: ids("inspect", rest)?,
        }),
        "help" | "--help" | "-h" => Ok(Invocation::Help),
        other => Err(format!(
            "{other:?} is not supported: cw-exec's docker front end implements create, start --attach, wait, rm -f, info --format {{{{json .Runtimes}}}} and inspect"
        )),
    }
}

/// A flag's value: `--flag=value`, or the next argument.
fn value<'a>(
    flag: &str,
    inline: Option<&'a str>,
    rest: &mut impl Iterator<Item = &'a String>,
) -> Result<&'a str, String> {
    match inline {
        Some(v) => Ok(v),
        None => rest
            .next()
            .map(String::as_str)
            .ok_or_else(|| format!("{flag}: a value is expected after it")),
    }
}

fn parse_create(args: &[String]) -> Result<CreateArgs, String> {
    let mut out = CreateArgs {
        interactive: false,
        runtime: None,
        network: Network::None,
        user: None,
        mounts: vec![],
        workdir: None,
        env: vec![],
        image: String::new(),
        argv: vec![],
    };
    let mut network: Option<String> = None;
    let mut it = args.iter();
    let mut image = None;
    while let Some(arg) = it.next() {
        if arg == "--" {
            image = it.next();
            break;
        }
        if !arg.starts_with('-') || arg == "-" {
            image = Some(arg);
            break;
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v)),
            _ => (arg.as_str(), None),
        };
        match flag {
            "-i" | "--interactive" if inline.is_none() => out.interactive = true,
            "--runtime" => out.runtime = Some(value(flag, inline, &mut it)?.to_string()),
            "--network" | "--net" => network = Some(value(flag, inline, &mut it)?.to_string()),
            "--user" => {
                let v = value(flag, inline, &mut it)?;
                out.user = Some(
                    crate::model::parse_user(v)
                        .map_err(|e| format!("--user {v}: {e} (names are not looked up)"))?,
                );
            }
            "--mount" => out.mounts.push(parse_mount(value(flag, inline, &mut it)?)?),
            "-w" | "--workdir" => out.workdir = Some(value(flag, inline, &mut it)?.to_string()),
            "-e" | "--env" => {
                if let Some(pair) = parse_env(value(flag, inline, &mut it)?)? {
                    out.env.push(pair);
                }
            }
            "-t" | "--tty" => {
                return Err(format!(
                    "{flag}: no terminal is allocated: the harness reads the container's output as bytes (drop -t)"
                ))
            }
            f if f.starts_with('-') && !f.starts_with("--") && f.len() > 2 => {
                return Err(format!(
                    "{f}: combined short flags are not accepted ({CREATE_ACCEPTS})"
                ))
            }
            f => return Err(format!("unknown flag {f} ({CREATE_ACCEPTS})")),
        }
    }
    let Some(image) = image else {
        return Err(format!("no image given ({CREATE_ACCEPTS})"));
    };
    out.image = image.clone();
    out.argv = it.cloned().collect();
    if out.argv.is_empty() {
        return Err(format!(
            "image {image}: no command given (a host runtime has no image default command)"
        ));
    }
    out.network = match network.as_deref() {
        Some("none") => Network::None,
        Some("host") => Network::Host,
        Some("bridge") | Some("default") | None => return Err(BRIDGE_REFUSED.to_string()),
        Some(other) => {
            return Err(format!(
                "--network {other}: unknown network mode (cw-exec accepts none or host; set CF_HARNESS_DOCKER_NETWORK_MODE to one of them)"
            ))
        }
    };
    Ok(out)
}

/// `type=bind,src=HOST,dst=SANDBOX[,readonly]` (docker's spellings `source`, `target`,
/// `destination`, `ro`, `readonly=true|false` too). Paths are taken verbatim (spaces occur);
/// a comma inside a path cannot be told from a separator and is an error.
pub fn parse_mount(text: &str) -> Result<Mount, String> {
    let mut kind = None;
    let (mut src, mut dst, mut readonly) = (None, None, false);
    for field in text.split(',') {
        let (key, val) = match field.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (field, None),
        };
        match (key, val) {
            ("type", Some(v)) => kind = Some(v),
            ("src" | "source", Some(v)) => src = Some(v),
            ("dst" | "destination" | "target", Some(v)) => dst = Some(v),
            ("readonly" | "ro", None) => readonly = true,
            ("readonly" | "ro", Some("true" | "1")) => readonly = true,
            ("readonly" | "ro", Some("false" | "0")) => readonly = false,
            _ => {
                return Err(format!(
                    "--mount {text}: {field:?} is not understood (type=bind,src=HOST,dst=SANDBOX[,readonly]; a path may not contain a comma)"
                ))
            }
        }
    }
    match kind {
        Some("bind") => {}
        Some(other) => {
            return Err(format!(
                "--mount {text}: type={other} is not supported (only type=bind)"
            ))
        }
        None => return Err(format!("--mount {text}: type=bind is required")),
    }
    let src = src.ok_or_else(|| format!("--mount {text}: src= is required"))?;
    let dst = dst.ok_or_else(|| format!("--mount {text}: dst= is required"))?;
    if !src.starts_with('/') {
        return Err(format!(
            "--mount {text}: src {src:?} must be an absolute host path"
        ));
    }
    crate::model::BindSpec::new(src, dst, readonly).map_err(|e| format!("--mount {text}: {e}"))?;
    Ok(Mount {
        src: src.to_string(),
        dst: dst.to_string(),
        readonly,
    })
}

/// `K=V`, or `K` alone: the value of K in cw-exec's own environment, if set (as docker does).
fn parse_env(text: &str) -> Result<Option<(String, String)>, String> {
    let (name, value) = match text.split_once('=') {
        Some((n, v)) => (n, Some(v.to_string())),
        None => (text, None),
    };
    crate::policy::check_env_name(name).map_err(|e| format!("--env {text:?}: {e}"))?;
    if value.as_deref().is_some_and(|v| v.contains('\0')) {
        return Err(format!("--env {name}: the value contains a NUL byte"));
    }
    let value = match value {
        Some(v) => v,
        None => match std::env::var(name) {
            Ok(v) => v,
            Err(_) => return Ok(None),
        },
    };
    Ok(Some((name.to_string(), value)))
}

fn parse_start(args: &[String]) -> Result<Invocation, String> {
    let (mut attach, mut interactive, mut id) = (false, false, None);
    for arg in args {
        match arg.as_str() {
            "-a" | "--attach" => attach = true,
            "-i" | "--interactive" => interactive = true,
            "-ai" | "-ia" => (attach, interactive) = (true, true),
            f if f.starts_with('-') => {
                return Err(format!(
                    "start: unknown flag {f} (start accepts --attach, --interactive and one ID)"
                ))
            }
            other if id.is_none() => id = Some(other.to_string()),
            other => return Err(format!("start: one container at a time ({other:?})")),
        }
    }
    if !attach {
        return Err(
            "start: only start --attach is supported (cw-exec supervises the sandbox from the start process)".into(),
        );
    }
    let id = id.ok_or("start: no container ID given")?;
    Ok(Invocation::Start { id, interactive })
}

fn parse_rm(args: &[String]) -> Result<Invocation, String> {
    let mut force = false;
    let mut rest = vec![];
    for arg in args {
        match arg.as_str() {
            "-f" | "--force" => force = true,
            f if f.starts_with('-') => {
                return Err(format!("rm: unknown flag {f} (rm accepts -f and IDs)"))
            }
            _ => rest.push(arg.clone()),
        }
    }
    Ok(Invocation::Rm {
        force,
        ids: ids("rm", &rest)?,
    })
}

fn parse_info(args: &[String]) -> Result<Invocation, String> {
    let mut it = args.iter();
    let mut format = None;
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v)),
            _ => (arg.as_str(), None),
        };
        match flag {
            "-f" | "--format" => format = Some(value(flag, inline, &mut it)?),
            other => {
                return Err(format!(
                    "info: {other:?} is not supported (only info --format {{{{json .Runtimes}}}})"
                ))
            }
        }
    }
    let compact: String = format
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    if compact != "{{json.Runtimes}}" {
        return Err(format!(
            "info: only --format {{{{json .Runtimes}}}} is supported (got {:?})",
            format.unwrap_or("no --format")
        ));
    }
    Ok(Invocation::Info)
}

fn ids(sub: &str, args: &[String]) -> Result<Vec<String>, String> {
    if let Some(f) = args.iter().find(|a| a.starts_with('-')) {
        return Err(format!("{sub}: unknown flag {f} ({sub} accepts IDs only)"));
    }
    if args.is_empty() {
        return Err(format!("{sub}: no container ID given"));
    }
    Ok(args.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    /// The harness's create line, as the contract spells it.
    #[test]
    fn the_harness_create_line_parses() {
        let inv = parse(&v(&[
            "create",
            "-i",
            "--runtime",
            "cw-exec",
            "--network",
            "none",
            "--user",
            "1000:1000",
            "--mount",
            "type=bind,src=/home/u/my project,dst=/workspace",
            "--mount",
            "type=bind,src=/opt/data,dst=/data,readonly",
            "-w",
            "/workspace",
            "--env",
            "A=1",
            "--env",
            "B=x=y",
            "cw-exec:host",
            "/bin/sh",
            "-lc",
            "echo hi; pwd",
            "/bin/sh",
        ]))
        .unwrap();
        let Invocation::Create(c) = inv else {
            panic!("{inv:?}")
        };
        assert!(c.interactive);
        assert_eq!(c.runtime.as_deref(), Some("cw-exec"));
        assert_eq!(c.network, Network::None);
        assert_eq!(c.user, Some((1000, 1000)));
        assert_eq!(
            c.mounts,
            [
                Mount {
                    src: "/home/u/my project".into(),
                    dst: "/workspace".into(),
                    readonly: false
                },
                Mount {
                    src: "/opt/data".into(),
                    dst: "/data".into(),
                    readonly: true
                }
            ]
        );
        assert_eq!(c.workdir.as_deref(), Some("/workspace"));
        assert_eq!(
            c.env,
            [("A".into(), "1".into()), ("B".into(), "x=y".into())]
        );
        assert_eq!(c.image, "cw-exec:host");
        assert_eq!(c.argv, ["/bin/sh", "-lc", "echo hi; pwd", "/bin/sh"]);
        // `--flag=value` spellings; options after the image belong to the command.
        let Invocation::Create(c) = parse(&v(&[
            "create",
            "--network=host",
            "--runtime=cw-exec",
            "--mount=type=bind,source=/a,target=/b,ro",
            "cw-exec:host",
            "ls",
            "-la",
            "--network",
        ]))
        .unwrap() else {
            panic!()
        };
        assert_eq!(c.network, Network::Host);
        assert!(c.mounts[0].readonly);
        assert_eq!(c.argv, ["ls", "-la", "--network"]);
        assert!(!c.interactive);
    }

    #[test]
    fn bridge_and_everything_outside_the_contract_is_refused_with_a_reason() {
        let e = |args: &[&str]| parse(&v(args)).unwrap_err();
        for net in [&["--network", "bridge"][..], &[]] {
            let mut args = vec!["create"];
            args.extend_from_slice(net);
            args.extend_from_slice(&["cw-exec:host", "true"]);
            let err = e(&args);
            assert!(
                err.contains("CF_HARNESS_DOCKER_NETWORK_MODE=none")
                    && err.contains("CF_HARNESS_DOCKER_NETWORK_MODE=host"),
                "{err}"
            );
        }
        let base = ["create", "--network", "none"];
        let with = |extra: &[&str]| {
            let mut a = base.to_vec();
            a.extend_from_slice(extra);
            e(&a)
        };
        assert!(with(&["-t", "img", "sh"]).contains("no terminal"));
        assert!(with(&["-it", "img", "sh"]).contains("combined short flags"));
        assert!(with(&["--privileged", "img", "sh"]).contains("unknown flag --privileged"));
        assert!(with(&["--network=container:x", "img", "sh"]).contains("unknown network mode"));
        assert!(with(&["--user", "root", "img", "sh"]).contains("--user root"));
        assert!(with(&["img"]).contains("no command"));
        assert!(with(&[]).contains("no image"));
        assert!(with(&["--mount", "type=volume,src=/a,dst=/b", "i", "sh"]).contains("type=volume"));
        assert!(with(&["--mount", "type=bind,src=/a,b,dst=/c", "i", "sh"]).contains("comma"));
        assert!(with(&["--mount", "type=bind,src=a,dst=/c", "i", "sh"]).contains("absolute"));
        assert!(with(&["--mount", "type=bind,src=/a,dst=c", "i", "sh"]).contains("absolute"));
        assert!(with(&["--mount", "type=bind,src=/a", "i", "sh"]).contains("dst= is required"));
        assert!(with(&["--env", "=x", "i", "sh"]).contains("--env"));
        assert!(with(&["-w"]).contains("a value is expected"));
        assert!(e(&["pull", "x"]).contains("not supported"));
        assert!(e(&["run", "x"]).contains("not supported"));
    }

    #[test]
    fn start_wait_rm_info_inspect() {
        assert_eq!(
            parse(&v(&["start", "--attach", "--interactive", "abc"])).unwrap(),
            Invocation::Start {
                id: "abc".into(),
                interactive: true
            }
        );
        assert_eq!(
            parse(&v(&["start", "--attach", "abc"])).unwrap(),
            Invocation::Start {
                id: "abc".into(),
                interactive: false
            }
        );
        assert!(parse(&v(&["start", "abc"]))
            .unwrap_err()
            .contains("--attach"));
        assert!(parse(&v(&["start", "--attach"]))
            .unwrap_err()
            .contains("no container ID"));
        assert_eq!(
            parse(&v(&["wait", "a"])).unwrap(),
            Invocation::Wait {
                ids: vec!["a".into()]
            }
        );
        assert_eq!(
            parse(&v(&["rm", "-f", "a", "b"])).unwrap(),
            Invocation::Rm {
                force: true,
                ids: vec!["a".into(), "b".into()]
            }
        );
        assert!(parse(&v(&["rm", "-v", "a"])).is_err());
        for format in [
            &["--format", "{{json .Runtimes}}"][..],
            &["--format={{ json .Runtimes }}"],
            &["-f", "{{json .Runtimes}}"],
        ] {
            let mut a = vec!["info"];
            a.extend_from_slice(format);
            assert_eq!(parse(&v(&a)).unwrap(), Invocation::Info, "{format:?}");
        }
        assert!(parse(&v(&["info"])).is_err());
        assert!(parse(&v(&["info", "--format", "{{json .}}"])).is_err());
        assert_eq!(parse(&v(&[])).unwrap(), Invocation::Help);
        assert!(parse(&v(&["inspect"])).is_err());
    }
}
