//! The static analysis behind `prepare-run`'s decisions: which paths a Raxcell command would
//! read or write, and which path words cannot be known before it runs (`~`, `$VAR`, `$(...)`,
//! backticks). It looks at the argv, `sh`/`bash -c` scripts (parsed by a real POSIX shell
//! parser, so quoting, redirections, `;`/`&&`/`|`, subshells, loops and `cd` are what the
//! shell would see), the common file tools, and inline python/node/perl/ruby code.
//!
//! It is **advisory**: it lets Praxis ask for approval before anything runs. It is not the
//! enforcement — a path it misses (hidden in a script file, computed at run time) is still
//! outside the sandbox's view and Landlock rules, and the kernel denies it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use conch_parser::ast;
use conch_parser::lexer::Lexer;
use conch_parser::parse::DefaultParser;

use crate::plan::normalize;

/// A path the command would touch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Effect {
    /// Absolute and lexically normalized (relative paths against the working directory the
    /// command would have there, `cd` included).
    pub path: PathBuf,
    pub read: bool,
    pub write: bool,
    /// What touches it (`cat`, `redirection >`, `python -c`, ...).
    pub via: String,
    /// The command creates a directory there (`mkdir`, `install -d`).
    pub creates_dir: bool,
}

/// A word in a path position whose value is only known when the command runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dynamic {
    /// The token as written (`~/x`, `$OUT/log`, `$(...)`).
    pub token: String,
    /// In a position the command writes.
    pub write: bool,
    pub via: String,
}

#[derive(Debug, Default)]
pub struct Analysis {
    /// In the order they were found; one entry per path (accesses merged).
    pub effects: Vec<Effect>,
    pub dynamic: Vec<Dynamic>,
    /// What could not be analysed (a script that does not parse, a command name only known at
    /// run time): the kernel still decides, but nothing was asked in advance.
    pub notes: Vec<String>,
}

/// Paths no decision is asked for: the system directories the reference exempts (/usr, /bin,
/// /lib, /lib64, /etc, and their siblings), the device nodes every run has, the sandbox's own
/// /proc, /dev/shm (always private), and what does not exist on the host beneath /tmp, which
/// inside is a private scratch tmpfs (an existing host file there is asked for: only a grant
/// makes it visible).
/// A write to the system directories is still denied by the kernel (read-only).
pub fn exempt(path: &Path) -> bool {
    if path == Path::new("/tmp") || (path.starts_with("/tmp") && path.symlink_metadata().is_err()) {
        return true;
    }
    const EXEMPT: &[&str] = &[
        "/usr",
        "/bin",
        "/sbin",
        "/lib",
        "/lib32",
        "/lib64",
        "/libx32",
        "/etc",
        "/dev/shm",
        "/dev/null",
        "/dev/zero",
        "/dev/full",
        "/dev/random",
        "/dev/urandom",
        "/dev/stdin",
        "/dev/stdout",
        "/dev/stderr",
        "/dev/fd",
        "/dev/tty",
        "/proc/self",
        "/proc/thread-self",
    ];
    EXEMPT.iter().any(|e| path.starts_with(e))
}

/// Analyses `argv` as it would run in `cwd` with exactly `env`, with `stdin` as its input (a
/// shell reading its script from stdin is analysed too).
pub fn analyse(
    argv: &[String],
    cwd: &Path,
    env: &BTreeMap<String, String>,
    stdin: Option<&str>,
) -> Analysis {
    let mut w = Walker {
        cwd: cwd.to_path_buf(),
        vars: BTreeMap::new(),
        env,
        positional: vec![],
        functions: BTreeSet::new(),
        out: Analysis::default(),
        depth: 0,
    };
    let words: Vec<Word> = argv.iter().map(|a| Word::literal(a)).collect();
    w.command(&words, stdin);
    w.out
}

/// The deepest nesting of shell scripts (`sh -c "sh -c '...'"`) followed.
const MAX_DEPTH: usize = 8;

/// Scripts nested deeper than this (brackets, braces, quotes counted roughly) are not parsed:
/// the parser is recursive.
const MAX_NESTING: usize = 64;

/// Scripts longer than this are not parsed.
const MAX_SCRIPT: usize = 256 << 10;

/// How many values of a `for` loop's literal list its body is analysed with.
const MAX_FOR_VALUES: usize = 32;

/// One shell word, as far as it can be known before the command runs.
#[derive(Clone, Debug, Default)]
struct Word {
    /// The value the shell would pass (literal parts, known variables substituted).
    text: String,
    /// The word as written, for messages and the raw token of a dynamic word.
    raw: String,
    /// A part is only known at run time.
    dynamic: bool,
    /// It has unquoted glob characters: `text` is a pattern.
    glob: bool,
}

impl Word {
    fn literal(s: &str) -> Word {
        Word {
            text: s.to_string(),
            raw: s.to_string(),
            dynamic: false,
            glob: false,
        }
    }

    /// A piece of this word (an option's attached value), with its flags.
    fn part(&self, text: &str) -> Word {
        Word {
            text: text.to_string(),
            raw: if self.dynamic {
                self.raw.clone()
            } else {
                text.to_string()
            },
            dynamic: self.dynamic,
            glob: self.glob,
        }
    }
}

/// How a path operand is used.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Use {
    Read,
    Write,
    ReadWrite,
}

impl Use {
    fn read(self) -> bool {
        matches!(self, Use::Read | Use::ReadWrite)
    }
    fn write(self) -> bool {
        matches!(self, Use::Write | Use::ReadWrite)
    }
}

/// An option and its value, as `split_options` found it.
struct Opt {
    name: String,
    value: Option<Word>,
}

/// Splits arguments into options and operands. `takes_value` names the options (short `-o`
/// or long `--output`) whose value is the next argument or attached (`-ofile`,
/// `--output=file`); other options are flags. `--` ends the options.
fn split_options(args: &[Word], takes_value: &[&str]) -> (Vec<Opt>, Vec<Word>) {
    let mut opts = vec![];
    let mut operands = vec![];
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        let t = a.text.as_str();
        i += 1;
        if t == "--" {
            operands.extend(args[i..].iter().cloned());
            break;
        }
        if a.dynamic || !t.starts_with('-') || t == "-" {
            operands.push(a.clone());
            continue;
        }
        if let Some(long) = t.strip_prefix("--") {
            match long.split_once('=') {
                Some((name, value)) => opts.push(Opt {
                    name: format!("--{name}"),
                    value: Some(a.part(value)),
                }),
                None => {
                    let value = if takes_value.contains(&t) && i < args.len() {
                        i += 1;
                        Some(args[i - 1].clone())
                    } else {
                        None
                    };
                    opts.push(Opt {
                        name: t.to_string(),
                        value,
                    });
                }
            }
            continue;
        }
        // A cluster of short options: the first that takes a value takes the rest of the
        // cluster, or the next argument.
        let chars: Vec<char> = t[1..].chars().collect();
        for (k, c) in chars.iter().enumerate() {
            let name = format!("-{c}");
            if takes_value.contains(&name.as_str()) {
                let rest: String = chars[k + 1..].iter().collect();
                let value = if !rest.is_empty() {
                    Some(a.part(&rest))
                } else if i < args.len() {
                    i += 1;
                    Some(args[i - 1].clone())
                } else {
                    None
                };
                opts.push(Opt { name, value });
                break;
            }
            opts.push(Opt { name, value: None });
        }
    }
    (opts, operands)
}

fn has(opts: &[Opt], names: &[&str]) -> bool {
    opts.iter().any(|o| names.contains(&o.name.as_str()))
}

fn values<'o>(opts: &'o [Opt], names: &'o [&str]) -> impl Iterator<Item = &'o Word> + 'o {
    opts.iter()
        .filter(move |o| names.contains(&o.name.as_str()))
        .filter_map(|o| o.value.as_ref())
}

/// Tools whose operands are all files they read (with the options that take a value).
const READERS: &[(&str, &[&str])] = &[
    ("cat", &[]),
    ("tac", &["-s"]),
    ("head", &["-n", "-c"]),
    ("tail", &["-n", "-c", "-s", "--pid"]),
    (
        "less",
        &[
            "-p", "-x", "-y", "-b", "-h", "-j", "-z", "-o", "-O", "-t", "-T",
        ],
    ),
    ("more", &["-n", "-p"]),
    ("wc", &["--files0-from"]),
    (
        "nl",
        &["-b", "-d", "-f", "-h", "-i", "-l", "-n", "-s", "-v", "-w"],
    ),
    ("od", &["-A", "-j", "-N", "-S", "-t", "-w"]),
    ("xxd", &["-c", "-g", "-l", "-o", "-s"]),
    ("hexdump", &["-e", "-f", "-n", "-s"]),
    ("strings", &["-n", "-t", "-e"]),
    ("md5sum", &[]),
    ("sha1sum", &[]),
    ("sha224sum", &[]),
    ("sha256sum", &[]),
    ("sha384sum", &[]),
    ("sha512sum", &[]),
    ("b2sum", &["-l"]),
    ("cksum", &["-a", "-l"]),
    ("sum", &[]),
    ("cmp", &["-i", "-n"]),
    (
        "diff",
        &["-C", "-U", "-I", "-x", "-X", "-F", "-L", "--label"],
    ),
    ("comm", &["--output-delimiter"]),
    ("paste", &["-d"]),
    ("cut", &["-b", "-c", "-d", "-f"]),
    ("file", &["-e", "-F", "-f", "-m", "-P"]),
    ("stat", &["-c", "-f", "--format", "--printf"]),
    ("ls", &["-I", "-T", "-w", "--hide", "--ignore"]),
    ("du", &["-B", "-d", "-t", "-X", "--exclude"]),
    ("source", &[]),
    (".", &[]),
    ("fold", &["-w"]),
    ("fmt", &["-p", "-w", "-g"]),
    ("expand", &["-t"]),
    ("unexpand", &["-t"]),
    ("base64", &["-w"]),
    ("column", &["-c", "-s", "-o", "-N", "-t"]),
    ("rev", &[]),
    ("shuf", &["-n", "-o", "--random-source"]),
    ("jq", &[]),
    ("zcat", &[]),
    ("bzcat", &[]),
    ("xzcat", &[]),
];

/// Shell builtins and keywords: never looked up on PATH.
const BUILTINS: &[&str] = &[
    ":", ".", "[", "alias", "bg", "break", "builtin", "cd", "command", "continue", "declare",
    "echo", "eval", "exec", "exit", "export", "false", "fg", "getopts", "hash", "jobs", "kill",
    "let", "local", "printf", "pushd", "popd", "pwd", "read", "readonly", "return", "set", "shift",
    "source", "test", "times", "trap", "true", "type", "typeset", "ulimit", "umask", "unalias",
    "unset", "wait",
];

struct Walker<'e> {
    cwd: PathBuf,
    /// Variables the script assigned: the value when it is known, None when it is not.
    vars: BTreeMap<String, Option<String>>,
    env: &'e BTreeMap<String, String>,
    /// `$0`, `$1`, ... of the script being walked.
    positional: Vec<String>,
    functions: BTreeSet<String>,
    out: Analysis,
    depth: usize,
}

impl Walker<'_> {
    fn effect(&mut self, path: PathBuf, how: Use, via: &str) {
        let creates_dir = how.write() && matches!(via, "mkdir" | "install -d");
        if let Some(e) = self.out.effects.iter_mut().find(|e| e.path == path) {
            e.read |= how.read();
            e.write |= how.write();
            e.creates_dir |= creates_dir;
            return;
        }
        self.out.effects.push(Effect {
            path,
            read: how.read(),
            write: how.write(),
            via: via.to_string(),
            creates_dir,
        });
    }

    fn dynamic(&mut self, token: &str, write: bool, via: &str) {
        if !self.out.dynamic.iter().any(|d| d.token == token) {
            self.out.dynamic.push(Dynamic {
                token: token.to_string(),
                write,
                via: via.to_string(),
            });
        }
    }

    fn note(&mut self, note: String) {
        if !self.out.notes.contains(&note) {
            self.out.notes.push(note);
        }
    }

    fn absolute(&self, text: &str) -> PathBuf {
        normalize(&self.cwd.join(text))
    }

    /// A word in a path position.
    fn path(&mut self, w: &Word, how: Use, via: &str) {
        if w.dynamic {
            self.dynamic(&w.raw, how.write(), via);
            return;
        }
        if w.text.is_empty() || w.text == "-" {
            return;
        }
        let text = if w.glob {
            // A pattern: what it can match lies in the directory of its literal prefix.
            let cut = w.text.find(['*', '?', '[']).unwrap_or(w.text.len());
            let prefix = &w.text[..cut];
            match prefix.rfind('/') {
                Some(0) => "/".to_string(),
                Some(i) => prefix[..i].to_string(),
                None => ".".to_string(),
            }
        } else {
            w.text.clone()
        };
        let path = self.absolute(&text);
        self.effect(path, how, via);
    }

    fn lookup(&self, name: &str) -> Option<Option<String>> {
        if let Some(v) = self.vars.get(name) {
            return Some(v.clone());
        }
        if let Some(v) = self.env.get(name) {
            return Some(Some(v.clone()));
        }
        if name == "PWD" {
            return Some(Some(self.cwd.to_string_lossy().into_owned()));
        }
        None
    }

    /// One command, its words already expanded as far as they can be.
    fn command(&mut self, words: &[Word], stdin: Option<&str>) {
        let Some(first) = words.first() else {
            return;
        };
        let args = &words[1..];
        if first.dynamic {
            self.note(format!(
                "the command name {} is only known at run time: what it touches was not analysed",
                first.raw
            ));
            return;
        }
        let name = first.text.as_str();
        let base = name.rsplit('/').next().unwrap_or(name);
        if name.contains('/') {
            self.path(first, Use::Read, "program");
        } else if !BUILTINS.contains(&name) && !self.functions.contains(name) {
            if let Some(found) = self.on_path(name) {
                self.effect(found, Use::Read, "program");
            }
        }
        if self.functions.contains(name) {
            return;
        }
        let via = base.to_string();
        match base {
            "env" => {
                let (opts, rest) = split_options_until_command(args, &["-u", "-C", "-S"]);
                if let Some(dir) = values(&opts, &["-C", "--chdir"]).next().cloned() {
                    self.path(&dir, Use::Read, "env -C");
                }
                let start = rest
                    .iter()
                    .position(|w| w.dynamic || !w.text.contains('='))
                    .unwrap_or(rest.len());
                self.command(&rest[start..], stdin);
            }
            "nice" | "nohup" | "stdbuf" | "time" | "command" | "exec" | "builtin" | "ionice"
            | "setsid" | "chrt" | "taskset" => {
                let takes: &[&str] = match base {
                    "nice" => &["-n"],
                    "stdbuf" => &["-i", "-o", "-e"],
                    "ionice" => &["-c", "-n", "-p"],
                    "time" => &["-f", "-o"],
                    _ => &[],
                };
                let (opts, rest) = split_options_until_command(args, takes);
                if base == "time" {
                    for o in values(&opts, &["-o", "--output"])
                        .cloned()
                        .collect::<Vec<_>>()
                    {
                        self.path(&o, Use::Write, "time -o");
                    }
                }
                if base == "command" && has(&opts, &["-v", "-V"]) {
                    return;
                }
                let skip = match base {
                    // chrt PRIORITY COMMAND, taskset MASK COMMAND
                    "chrt" | "taskset" => 1,
                    _ => 0,
                };
                self.command(rest.get(skip..).unwrap_or(&[]), stdin);
            }
            "timeout" => {
                let (_, rest) = split_options_until_command(args, &["-s", "-k"]);
                self.command(rest.get(1..).unwrap_or(&[]), stdin);
            }
            "sh" | "bash" | "dash" | "zsh" | "ksh" | "ash" | "mksh" | "busybox"
                if base != "busybox" || args.first().map(|a| a.text.as_str()) == Some("sh") =>
            {
                let args = if base == "busybox" { &args[1..] } else { args };
                self.shell(base, args, stdin);
            }
            "busybox" => self.command(args, stdin),
            "cd" | "pushd" => self.cd(args),
            "export" | "readonly" | "declare" | "typeset" | "local" => {
                for a in args {
                    if let Some((n, v)) = a.text.split_once('=') {
                        let value = (!a.dynamic && !a.glob).then(|| v.to_string());
                        self.vars.insert(n.to_string(), value);
                    }
                }
            }
            "grep" | "egrep" | "fgrep" | "rg" | "zgrep" => {
                let takes = &[
                    "-e",
                    "-f",
                    "-m",
                    "-A",
                    "-B",
                    "-C",
                    "-d",
                    "-D",
                    "--regexp",
                    "--file",
                    "--include",
                    "--exclude",
                    "--exclude-dir",
                    "--label",
                    "-g",
                    "-t",
                    "-T",
                    "--glob",
                    "--type",
                ];
                let (opts, mut operands) = split_options(args, takes);
                for f in values(&opts, &["-f", "--file"])
                    .cloned()
                    .collect::<Vec<_>>()
                {
                    self.path(&f, Use::Read, &via);
                }
                if !has(&opts, &["-e", "-f", "--regexp", "--file"]) && !operands.is_empty() {
                    operands.remove(0);
                }
                self.paths(&operands, Use::Read, &via);
            }
            "awk" | "gawk" | "mawk" | "nawk" => {
                let (opts, mut operands) = split_options(args, &["-f", "-v", "-F", "--file"]);
                for f in values(&opts, &["-f", "--file"])
                    .cloned()
                    .collect::<Vec<_>>()
                {
                    self.path(&f, Use::Read, &via);
                }
                if !has(&opts, &["-f", "--file"]) && !operands.is_empty() {
                    operands.remove(0);
                }
                operands.retain(|w| !w.text.contains('='));
                self.paths(&operands, Use::Read, &via);
            }
            "sed" => self.sed(args),
            "perl" | "ruby" => {
                self.interpreter(base, args, &["-e", "-E"], &["-I", "-M", "-m", "-r"])
            }
            "sort" => {
                let takes = &["-o", "-k", "-t", "-T", "-S", "--output", "--files0-from"];
                let (opts, operands) = split_options(args, takes);
                for o in values(&opts, &["-o", "--output"])
                    .cloned()
                    .collect::<Vec<_>>()
                {
                    self.path(&o, Use::Write, "sort -o");
                }
                self.paths(&operands, Use::Read, &via);
            }
            "uniq" => {
                let (_, operands) = split_options(args, &["-f", "-s", "-w"]);
                if let Some(input) = operands.first() {
                    self.path(input, Use::Read, &via);
                }
                if let Some(output) = operands.get(1) {
                    self.path(output, Use::Write, &via);
                }
            }
            "tee" => {
                let (_, operands) = split_options(args, &[]);
                self.paths(&operands, Use::Write, &via);
            }
            "touch" | "mkdir" | "rm" | "rmdir" | "unlink" | "shred" | "truncate" | "mkfifo" => {
                let takes: &[&str] = match base {
                    "touch" => &["-d", "-t", "-r", "--reference", "--date"],
                    "mkdir" | "mkfifo" => &["-m", "--mode"],
                    "shred" => &["-n", "-s", "--random-source"],
                    "truncate" => &["-s", "-r", "--size", "--reference"],
                    _ => &[],
                };
                let (opts, operands) = split_options(args, takes);
                for r in values(&opts, &["-r", "--reference"])
                    .cloned()
                    .collect::<Vec<_>>()
                {
                    self.path(&r, Use::Read, &via);
                }
                self.paths(&operands, Use::Write, &via);
            }
            "chmod" | "chown" | "chgrp" => {
                let (opts, mut operands) = split_options(args, &[]);
                if !opts.iter().any(|o| o.name == "--reference") && !operands.is_empty() {
                    operands.remove(0);
                }
                self.paths(&operands, Use::Write, &via);
            }
            "cp" | "install" | "rsync" | "ln" | "mv" => self.copy(base, args),
            "dd" => {
                for a in args {
                    if let Some(v) = a.text.strip_prefix("if=") {
                        self.path(&a.part(v), Use::Read, "dd if=");
                    } else if let Some(v) = a.text.strip_prefix("of=") {
                        self.path(&a.part(v), Use::Write, "dd of=");
                    }
                }
            }
            "tar" => self.tar(args),
            "curl" => {
                let takes = &[
                    "-o",
                    "-T",
                    "-K",
                    "-d",
                    "-H",
                    "-X",
                    "-u",
                    "-A",
                    "-e",
                    "-F",
                    "-x",
                    "-m",
                    "-w",
                    "--output",
                    "--upload-file",
                    "--config",
                    "--output-dir",
                    "--data",
                    "--header",
                    "--request",
                    "--user",
                    "--user-agent",
                    "--form",
                    "--proxy",
                    "--max-time",
                    "--write-out",
                    "--data-binary",
                    "--cookie-jar",
                    "-c",
                    "-b",
                ];
                let (opts, _) = split_options(args, takes);
                for o in values(
                    &opts,
                    &["-o", "--output", "--output-dir", "-c", "--cookie-jar"],
                )
                .cloned()
                .collect::<Vec<_>>()
                {
                    self.path(&o, Use::Write, "curl");
                }
                for i in values(&opts, &["-T", "--upload-file", "-K", "--config"])
                    .cloned()
                    .collect::<Vec<_>>()
                {
                    self.path(&i, Use::Read, "curl");
                }
            }
            "wget" => {
                let takes = &[
                    "-O",
                    "-P",
                    "-i",
                    "-o",
                    "-a",
                    "--output-document",
                    "--directory-prefix",
                    "--input-file",
                    "--output-file",
                    "--append-output",
                ];
                let (opts, _) = split_options(args, takes);
                for o in values(
                    &opts,
                    &[
                        "-O",
                        "--output-document",
                        "-P",
                        "--directory-prefix",
                        "-o",
                        "--output-file",
                        "-a",
                        "--append-output",
                    ],
                )
                .cloned()
                .collect::<Vec<_>>()
                {
                    self.path(&o, Use::Write, "wget");
                }
                for i in values(&opts, &["-i", "--input-file"])
                    .cloned()
                    .collect::<Vec<_>>()
                {
                    self.path(&i, Use::Read, "wget");
                }
            }
            "find" => {
                // Starting points: the operands before the first expression.
                for a in args {
                    if !a.dynamic && (a.text.starts_with('-') || a.text == "(" || a.text == "!") {
                        break;
                    }
                    self.path(a, Use::Read, &via);
                }
            }
            b if b.starts_with("python") || b.starts_with("pypy") => {
                self.interpreter("python", args, &["-c"], &["-m", "-W", "-X", "-Q"])
            }
            "node" | "nodejs" | "bun" => self.interpreter(
                "node",
                args,
                &["-e", "--eval", "-p", "--print"],
                &[
                    "-r",
                    "--require",
                    "--import",
                    "--loader",
                    "--input-type",
                    "-C",
                    "--conditions",
                ],
            ),
            _ => {
                if let Some((_, takes)) = READERS.iter().find(|(n, _)| *n == base) {
                    let (_, operands) = split_options(args, takes);
                    if base == "jq" {
                        // The filter comes first.
                        self.paths(operands.get(1..).unwrap_or(&[]), Use::Read, &via);
                    } else {
                        self.paths(&operands, Use::Read, &via);
                    }
                    return;
                }
                // Anything else: an absolute path among its arguments that exists here is
                // taken as read (a program's arguments are not known to be files).
                for a in args {
                    if a.dynamic || a.glob {
                        continue;
                    }
                    let text = match a.text.split_once('=') {
                        Some((opt, v)) if opt.starts_with('-') => v,
                        _ => a.text.as_str(),
                    };
                    if text.starts_with('/') && Path::new(text).symlink_metadata().is_ok() {
                        let path = normalize(Path::new(text));
                        self.effect(path, Use::Read, &via);
                    }
                }
            }
        }
    }

    fn paths(&mut self, words: &[Word], how: Use, via: &str) {
        for w in words {
            self.path(w, how, via);
        }
    }

    /// Where a program name is found on the command's PATH (not exempt paths' business).
    fn on_path(&self, name: &str) -> Option<PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        let path = self
            .lookup("PATH")
            .flatten()
            .unwrap_or_else(|| crate::plan::DEFAULT_PATH.to_string());
        path.split(':')
            .filter(|d| d.starts_with('/'))
            .map(|d| Path::new(d).join(name))
            .find(|p| {
                std::fs::metadata(p)
                    .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                    .unwrap_or(false)
            })
            .map(|p| normalize(&p))
    }

    fn cd(&mut self, args: &[Word]) {
        let (_, operands) = split_options(args, &[]);
        let target = match operands.first() {
            Some(w) if w.text == "-" && !w.dynamic => return,
            Some(w) => w.clone(),
            None => match self.lookup("HOME") {
                Some(Some(home)) => Word::literal(&home),
                _ => Word {
                    raw: "~".into(),
                    dynamic: true,
                    ..Default::default()
                },
            },
        };
        if target.dynamic {
            self.dynamic(&target.raw, false, "cd");
            return;
        }
        self.path(&target, Use::Read, "cd");
        if !target.glob {
            self.cwd = self.absolute(&target.text);
        }
    }

    fn sed(&mut self, args: &[Word]) {
        // -i takes an optional attached suffix (-i.bak), never the next argument.
        let in_place = args.iter().any(|a| {
            !a.dynamic
                && (a.text.starts_with("-i")
                    || a.text.starts_with("--in-place")
                    || (a.text.starts_with('-')
                        && !a.text.starts_with("--")
                        && a.text.len() > 1
                        && a.text[1..].chars().all(|c| c.is_ascii_alphabetic())
                        && a.text[1..].contains('i')
                        && !a.text[1..].contains(['e', 'f'])))
        });
        let rest: Vec<Word> = args
            .iter()
            .filter(|a| {
                a.dynamic || !(a.text.starts_with("-i") || a.text.starts_with("--in-place"))
            })
            .cloned()
            .collect();
        let (opts, mut operands) =
            split_options(&rest, &["-e", "-f", "-l", "--expression", "--file"]);
        for f in values(&opts, &["-f", "--file"])
            .cloned()
            .collect::<Vec<_>>()
        {
            self.path(&f, Use::Read, "sed -f");
        }
        if !has(&opts, &["-e", "-f", "--expression", "--file"]) && !operands.is_empty() {
            operands.remove(0);
        }
        let how = if in_place { Use::ReadWrite } else { Use::Read };
        self.paths(&operands, how, if in_place { "sed -i" } else { "sed" });
    }

    fn copy(&mut self, base: &str, args: &[Word]) {
        let takes: &[&str] = match base {
            "install" => &[
                "-m",
                "-o",
                "-g",
                "-t",
                "-S",
                "--mode",
                "--owner",
                "--group",
                "--target-directory",
                "--suffix",
            ],
            "rsync" => &[
                "-e",
                "--rsh",
                "-f",
                "--filter",
                "--exclude",
                "--include",
                "-T",
                "--temp-dir",
                "--exclude-from",
                "--include-from",
                "--files-from",
                "--rsync-path",
                "--log-file",
                "-B",
                "--block-size",
            ],
            _ => &["-t", "-S", "--target-directory", "--suffix"],
        };
        let (opts, operands) = split_options(args, takes);
        // rsync's remote operands (host:path) are not local paths.
        let operands: Vec<Word> = operands
            .into_iter()
            .filter(|w| {
                base != "rsync"
                    || w.dynamic
                    || !w.text.split('/').next().unwrap_or("").contains(':')
            })
            .collect();
        let via = base.to_string();
        if base == "install" && has(&opts, &["-d", "--directory"]) {
            self.paths(&operands, Use::Write, "install -d");
            return;
        }
        let target: Vec<Word> = values(&opts, &["-t", "--target-directory"])
            .cloned()
            .collect();
        let (sources, dest): (&[Word], Option<&Word>) = match (target.first(), operands.len()) {
            (Some(t), _) => (&operands[..], Some(t)),
            (None, 0) => (&[], None),
            (None, 1) if base == "ln" => (&operands[..], None),
            (None, n) => (&operands[..n - 1], operands.last()),
        };
        let symbolic = base == "ln" && has(&opts, &["-s", "--symbolic"]);
        let source_use = if base == "mv" { Use::Write } else { Use::Read };
        if !symbolic {
            self.paths(sources, source_use, &via);
        }
        match dest {
            Some(d) => self.path(d, Use::Write, &via),
            // `ln -s TARGET` creates the link in the working directory.
            None if base == "ln" => {
                if let Some(s) = sources.first() {
                    if !s.dynamic {
                        let name = s
                            .text
                            .trim_end_matches('/')
                            .rsplit('/')
                            .next()
                            .unwrap_or("");
                        self.path(&Word::literal(name), Use::Write, &via);
                    }
                }
            }
            None => {}
        }
    }

    fn tar(&mut self, args: &[Word]) {
        let mut args: Vec<Word> = args.to_vec();
        // Old style: the first argument is a cluster of options without a dash (`tar czf x`).
        if let Some(first) = args.first_mut() {
            if !first.dynamic
                && !first.text.starts_with('-')
                && first.text.chars().all(|c| c.is_ascii_alphabetic())
            {
                first.text = format!("-{}", first.text);
            }
        }
        let (opts, operands) = split_options(
            &args,
            &[
                "-f",
                "-C",
                "-T",
                "-X",
                "--file",
                "--directory",
                "--files-from",
                "--exclude-from",
            ],
        );
        let creating = has(
            &opts,
            &[
                "-c",
                "-r",
                "-u",
                "-A",
                "--create",
                "--append",
                "--update",
                "--concatenate",
            ],
        );
        let (archive, members) = if creating {
            (Use::Write, Use::Read)
        } else {
            (Use::Read, Use::Write)
        };
        for f in values(&opts, &["-f", "--file"])
            .cloned()
            .collect::<Vec<_>>()
        {
            self.path(&f, archive, "tar -f");
        }
        for d in values(&opts, &["-C", "--directory"])
            .cloned()
            .collect::<Vec<_>>()
        {
            self.path(&d, members, "tar -C");
        }
        for l in values(&opts, &["-T", "-X", "--files-from", "--exclude-from"])
            .cloned()
            .collect::<Vec<_>>()
        {
            self.path(&l, Use::Read, "tar");
        }
        if creating {
            self.paths(&operands, Use::Read, "tar");
        }
    }

    /// python/node/perl/ruby: inline code (`-c`, `-e`, ...) is scanned for path literals; a
    /// script file is read.
    fn interpreter(&mut self, lang: &str, args: &[Word], code_opts: &[&str], takes: &[&str]) {
        let all: Vec<&str> = code_opts.iter().chain(takes).copied().collect();
        // perl/ruby -i[ext]: in-place editing of the files.
        let in_place = matches!(lang, "perl" | "ruby")
            && args.iter().any(|a| {
                !a.dynamic
                    && a.text.starts_with('-')
                    && !a.text.starts_with("--")
                    && a.text[1..]
                        .chars()
                        .take_while(|c| *c != 'e')
                        .any(|c| c == 'i')
            });
        let cleaned: Vec<Word> = args
            .iter()
            .filter_map(|a| {
                let short = !a.dynamic && a.text.starts_with('-') && !a.text.starts_with("--");
                if in_place && short && a.text.contains('i') {
                    // Drop the i and its suffix, keep the rest of the cluster (-pi -> -p,
                    // -i.bak -> nothing, -pie -> -pe).
                    let keep: String = a.text[1..].chars().take_while(|c| *c != 'i').collect();
                    let after = a.text[1..].split_once('i').map(|x| x.1).unwrap_or("");
                    let tail = if after.ends_with('e') { "e" } else { "" };
                    let rest = format!("{keep}{tail}");
                    (!rest.is_empty()).then(|| a.part(&format!("-{rest}")))
                } else {
                    Some(a.clone())
                }
            })
            .collect();
        let (opts, operands) = split_options_until_command(&cleaned, &all);
        let codes: Vec<Word> = values(&opts, code_opts).cloned().collect();
        let module = has(&opts, &["-m"]) && lang == "python";
        let via = format!("{lang} {}", code_opts[0]);
        for code in &codes {
            if code.dynamic {
                self.note(format!(
                    "{lang} code {} is only known at run time",
                    code.raw
                ));
                continue;
            }
            for (path, how) in inline_paths(&code.text, lang) {
                let w = Word::literal(&path);
                self.path(&w, how, &via);
            }
        }
        let files = if codes.is_empty() && !module {
            // The first operand is the script; the rest are its arguments.
            if let Some(script) = operands.first() {
                self.path(script, Use::Read, lang);
            }
            operands.get(1..).unwrap_or(&[])
        } else {
            &operands[..]
        };
        if in_place {
            self.paths(files, Use::ReadWrite, &format!("{lang} -i"));
        }
    }

    fn shell(&mut self, name: &str, args: &[Word], stdin: Option<&str>) {
        let mut i = 0;
        let mut c = false;
        while i < args.len() {
            let a = &args[i];
            if a.dynamic {
                break;
            }
            let t = a.text.as_str();
            if t == "--" || t == "-" {
                i += 1;
                break;
            }
            if let Some(long) = t.strip_prefix("--") {
                i += if matches!(long, "rcfile" | "init-file") {
                    2
                } else {
                    1
                };
                continue;
            }
            if (t.starts_with('-') || t.starts_with('+')) && t.len() > 1 {
                c |= t[1..].contains('c');
                // -o OPTION / -O OPTION take the next argument.
                i += if t[1..].contains(['o', 'O']) { 2 } else { 1 };
                continue;
            }
            break;
        }
        let via = format!("{name} -c");
        if c {
            let Some(script) = args.get(i) else { return };
            if script.dynamic {
                self.note(format!(
                    "the script {} is only known at run time",
                    script.raw
                ));
                return;
            }
            // sh -c SCRIPT [ARG0 [ARG1 ...]]: $0, $1, ... A dynamic one leaves them unknown.
            let rest = &args[i + 1..];
            let positional: Vec<String> = if rest.is_empty() || rest.iter().any(|w| w.dynamic) {
                vec![name.to_string()]
            } else {
                rest.iter().map(|w| w.text.clone()).collect()
            };
            self.script(&script.text, positional, &via);
        } else if let Some(file) = args.get(i) {
            // The script's own content is not analysed: the kernel decides what it may touch.
            self.path(file, Use::Read, name);
        } else if let Some(text) = stdin {
            self.script(text, vec![name.to_string()], &format!("{name} (stdin)"));
        }
    }

    fn script(&mut self, text: &str, positional: Vec<String>, via: &str) {
        if self.depth >= MAX_DEPTH {
            self.note(format!(
                "{via}: scripts nested deeper than {MAX_DEPTH} are not analysed"
            ));
            return;
        }
        if text.len() > MAX_SCRIPT || rough_nesting(text) > MAX_NESTING {
            self.note(format!(
                "{via}: the script is too large or too deeply nested to analyse"
            ));
            return;
        }
        let saved_positional = std::mem::replace(&mut self.positional, positional);
        let saved_vars = std::mem::take(&mut self.vars);
        let saved_functions = std::mem::take(&mut self.functions);
        let saved_cwd = self.cwd.clone();
        self.depth += 1;
        let parser = DefaultParser::new(Lexer::new(text.chars()));
        for item in parser {
            match item {
                Ok(cmd) => self.top(&cmd),
                Err(e) => {
                    self.note(format!(
                        "{via}: the script could not be parsed past this point ({e}); the rest was not analysed"
                    ));
                    break;
                }
            }
        }
        self.depth -= 1;
        self.positional = saved_positional;
        self.vars = saved_vars;
        self.functions = saved_functions;
        self.cwd = saved_cwd;
    }

    fn top(&mut self, cmd: &ast::TopLevelCommand<String>) {
        let list = match &cmd.0 {
            ast::Command::Job(l) | ast::Command::List(l) => l,
        };
        self.listable(&list.first);
        for next in &list.rest {
            match next {
                ast::AndOr::And(c) | ast::AndOr::Or(c) => self.listable(c),
            }
        }
    }

    fn listable(&mut self, cmd: &ast::DefaultListableCommand) {
        match cmd {
            ast::ListableCommand::Single(p) => self.pipeable(p),
            ast::ListableCommand::Pipe(_, parts) => {
                // Each part runs in a subshell: a cd there does not carry over.
                for p in parts {
                    let cwd = self.cwd.clone();
                    self.pipeable(p);
                    self.cwd = cwd;
                }
            }
        }
    }

    fn pipeable(&mut self, cmd: &ast::DefaultPipeableCommand) {
        match cmd {
            ast::PipeableCommand::Simple(s) => self.simple(s),
            ast::PipeableCommand::Compound(c) => self.compound(c),
            ast::PipeableCommand::FunctionDef(name, body) => {
                self.functions.insert(name.clone());
                // The body is analysed once, where it is defined, with unknown arguments.
                let positional = std::mem::take(&mut self.positional);
                let cwd = self.cwd.clone();
                self.compound(body);
                self.cwd = cwd;
                self.positional = positional;
            }
        }
    }

    fn commands(&mut self, cmds: &[ast::TopLevelCommand<String>]) {
        for c in cmds {
            self.top(c);
        }
    }

    fn compound(&mut self, cmd: &ast::DefaultCompoundCommand) {
        self.compound_kind(&cmd.kind);
        for r in &cmd.io {
            self.redirect(r);
        }
    }

    fn compound_kind(&mut self, kind: &ast::DefaultCompoundCommandKind) {
        match kind {
            ast::CompoundCommandKind::Brace(cmds) => self.commands(cmds),
            ast::CompoundCommandKind::Subshell(cmds) => {
                let cwd = self.cwd.clone();
                let vars = self.vars.clone();
                self.commands(cmds);
                self.cwd = cwd;
                self.vars = vars;
            }
            ast::CompoundCommandKind::While(gb) | ast::CompoundCommandKind::Until(gb) => {
                self.commands(&gb.guard);
                self.commands(&gb.body);
            }
            ast::CompoundCommandKind::If {
                conditionals,
                else_branch,
            } => {
                for gb in conditionals {
                    self.commands(&gb.guard);
                    self.commands(&gb.body);
                }
                if let Some(e) = else_branch {
                    self.commands(e);
                }
            }
            ast::CompoundCommandKind::For { var, words, body } => {
                let values: Option<Vec<Word>> = words
                    .as_ref()
                    .map(|ws| ws.iter().map(|w| self.word(w)).collect());
                match values {
                    Some(vals)
                        if !vals.is_empty()
                            && vals.len() <= MAX_FOR_VALUES
                            && vals.iter().all(|v| !v.dynamic && !v.glob) =>
                    {
                        for v in vals {
                            self.vars.insert(var.clone(), Some(v.text));
                            self.commands(body);
                        }
                    }
                    _ => {
                        self.vars.insert(var.clone(), None);
                        self.commands(body);
                    }
                }
            }
            ast::CompoundCommandKind::Case { word, arms } => {
                let _ = self.word(word);
                for arm in arms {
                    self.commands(&arm.body);
                }
            }
        }
    }

    fn simple(&mut self, cmd: &ast::DefaultSimpleCommand) {
        let mut assigned: Vec<(String, Word)> = vec![];
        let mut words: Vec<Word> = vec![];
        let mut redirects = vec![];
        for x in &cmd.redirects_or_env_vars {
            match x {
                ast::RedirectOrEnvVar::Redirect(r) => redirects.push(r),
                ast::RedirectOrEnvVar::EnvVar(name, value) => {
                    let w = value.as_ref().map(|v| self.word(v)).unwrap_or_default();
                    assigned.push((name.clone(), w));
                }
            }
        }
        for x in &cmd.redirects_or_cmd_words {
            match x {
                ast::RedirectOrCmdWord::Redirect(r) => redirects.push(r),
                ast::RedirectOrCmdWord::CmdWord(w) => {
                    let w = self.word(w);
                    words.push(w);
                }
            }
        }
        if words.is_empty() {
            for (name, w) in assigned {
                let value = (!w.dynamic && !w.glob).then_some(w.text);
                self.vars.insert(name, value);
            }
        } else {
            self.command(&words, None);
        }
        for r in redirects {
            self.redirect(r);
        }
    }

    fn redirect(&mut self, r: &ast::DefaultRedirect) {
        let (word, how, op) = match r {
            ast::Redirect::Read(_, w) => (w, Use::Read, "<"),
            ast::Redirect::Write(_, w) => (w, Use::Write, ">"),
            ast::Redirect::Clobber(_, w) => (w, Use::Write, ">|"),
            ast::Redirect::Append(_, w) => (w, Use::Write, ">>"),
            ast::Redirect::ReadWrite(_, w) => (w, Use::ReadWrite, "<>"),
            ast::Redirect::DupRead(_, w) => (w, Use::Read, "<&"),
            ast::Redirect::DupWrite(_, w) => (w, Use::Write, ">&"),
            ast::Redirect::Heredoc(_, w) => {
                // The body is text, but its substitutions run.
                let _ = self.word(w);
                return;
            }
        };
        let w = self.word(word);
        let dup = matches!(r, ast::Redirect::DupRead(..) | ast::Redirect::DupWrite(..));
        if dup && !w.dynamic && (w.text == "-" || w.text.chars().all(|c| c.is_ascii_digit())) {
            return;
        }
        self.path(&w, how, &format!("redirection {op}"));
    }

    /// Expands a word as far as it is known; command substitutions in it are walked (they
    /// run too).
    fn word(&mut self, w: &ast::TopLevelWord<String>) -> Word {
        let mut out = Word::default();
        match &w.0 {
            ast::ComplexWord::Single(part) => self.word_part(part, &mut out),
            ast::ComplexWord::Concat(parts) => {
                for part in parts {
                    self.word_part(part, &mut out);
                }
            }
        }
        // `~user` is another user's home: not known here.
        if out.raw.starts_with('~') && out.raw.len() > 1 && !out.raw[1..].starts_with('/') {
            out.dynamic = true;
        }
        out
    }

    fn word_part(&mut self, w: &ast::DefaultWord, out: &mut Word) {
        match w {
            ast::Word::Simple(s) => self.simple_word(s, out, false),
            ast::Word::DoubleQuoted(parts) => {
                out.raw.push('"');
                for s in parts {
                    self.simple_word(s, out, true);
                }
                out.raw.push('"');
            }
            ast::Word::SingleQuoted(s) => {
                out.text.push_str(s);
                out.raw.push('\'');
                out.raw.push_str(s);
                out.raw.push('\'');
            }
        }
    }

    fn simple_word(&mut self, s: &ast::DefaultSimpleWord, out: &mut Word, quoted: bool) {
        use ast::SimpleWord as S;
        match s {
            S::Literal(l) => {
                out.text.push_str(l);
                out.raw.push_str(l);
            }
            S::Escaped(l) => {
                out.text.push_str(l);
                out.raw.push('\\');
                out.raw.push_str(l);
            }
            S::Param(p) => {
                out.raw.push_str(&render_param(p));
                match self.param(p) {
                    Some(v) => out.text.push_str(&v),
                    None => out.dynamic = true,
                }
            }
            S::Subst(sub) => {
                out.dynamic = true;
                out.raw.push_str(&self.subst(sub));
            }
            S::Star | S::Question | S::SquareOpen | S::SquareClose => {
                let c = match s {
                    S::Star => '*',
                    S::Question => '?',
                    S::SquareOpen => '[',
                    _ => ']',
                };
                out.text.push(c);
                out.raw.push(c);
                out.glob |= !quoted && c != ']';
            }
            S::Tilde => {
                out.raw.push('~');
                if quoted || !out.text.is_empty() {
                    out.text.push('~');
                } else {
                    match self.lookup("HOME") {
                        Some(Some(home)) => out.text.push_str(&home),
                        _ => out.dynamic = true,
                    }
                }
            }
            S::Colon => {
                out.text.push(':');
                out.raw.push(':');
            }
        }
    }

    fn param(&self, p: &ast::DefaultParameter) -> Option<String> {
        match p {
            ast::Parameter::Var(name) => self.lookup(name).flatten(),
            ast::Parameter::Positional(n) => self.positional.get(*n as usize).cloned(),
            _ => None,
        }
    }

    /// Renders a substitution for messages, walking the commands it runs.
    fn subst(&mut self, sub: &ast::DefaultParameterSubstitution) -> String {
        use ast::ParameterSubstitution as P;
        match sub {
            P::Command(cmds) => {
                let cwd = self.cwd.clone();
                self.commands(cmds);
                self.cwd = cwd;
                "$(...)".into()
            }
            P::Len(p) => format!("${{#{}}}", render_param(p).trim_start_matches('$')),
            P::Arith(_) => "$((...))".into(),
            P::Default(_, p, _)
            | P::Assign(_, p, _)
            | P::Error(_, p, _)
            | P::Alternative(_, p, _)
            | P::RemoveSmallestSuffix(p, _)
            | P::RemoveLargestSuffix(p, _)
            | P::RemoveSmallestPrefix(p, _)
            | P::RemoveLargestPrefix(p, _) => {
                format!("${{{}...}}", render_param(p).trim_start_matches('$'))
            }
        }
    }
}

/// Like `split_options`, but the first operand ends the options: what follows belongs to the
/// command it names (`env -u X cmd -x`, `python -c CODE -x`).
fn split_options_until_command(args: &[Word], takes_value: &[&str]) -> (Vec<Opt>, Vec<Word>) {
    let end = {
        let mut i = 0;
        while i < args.len() {
            let a = &args[i];
            if a.dynamic || !a.text.starts_with('-') || a.text == "-" {
                break;
            }
            if a.text == "--" {
                break;
            }
            let attached = if a.text.starts_with("--") {
                a.text.contains('=')
            } else {
                // A short cluster whose value-taking option is not last has its value attached.
                let chars: Vec<char> = a.text[1..].chars().collect();
                match chars
                    .iter()
                    .position(|c| takes_value.contains(&format!("-{c}").as_str()))
                {
                    Some(k) => k + 1 < chars.len(),
                    None => true,
                }
            };
            let takes =
                !attached || (a.text.starts_with("--") && takes_value.contains(&a.text.as_str()));
            i += if takes && !a.text.contains('=') { 2 } else { 1 };
        }
        i.min(args.len())
    };
    let (opts, mut rest) = split_options(&args[..end], takes_value);
    let tail = match args.get(end) {
        Some(a) if !a.dynamic && a.text == "--" => &args[end + 1..],
        _ => &args[end..],
    };
    rest.extend(tail.iter().cloned());
    (opts, rest)
}

fn render_param(p: &ast::DefaultParameter) -> String {
    use ast::Parameter as P;
    match p {
        P::At => "$@".into(),
        P::Star => "$*".into(),
        P::Pound => "$#".into(),
        P::Question => "$?".into(),
        P::Dash => "$-".into(),
        P::Dollar => "$$".into(),
        P::Bang => "$!".into(),
        P::Positional(n) if *n < 10 => format!("${n}"),
        P::Positional(n) => format!("${{{n}}}"),
        P::Var(name) => format!("${name}"),
    }
}

/// An upper bound of how deeply a script nests, counting brackets and quotes without parsing.
fn rough_nesting(text: &str) -> usize {
    let mut depth: usize = 0;
    let mut max = 0;
    for c in text.chars() {
        match c {
            '(' | '{' | '[' => depth += 1,
            ')' | '}' | ']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        max = max.max(depth);
    }
    max + text.matches('`').count() / 2
}

/// Paths in inline code: string literals that look like paths (absolute, or `./`, `../`),
/// each with how the call it is an argument of uses it.
fn inline_paths(code: &str, lang: &str) -> Vec<(String, Use)> {
    let literals = string_literals(code, lang);
    let mut out = vec![];
    for (k, lit) in literals.iter().enumerate() {
        let s = lit.text.as_str();
        let pathlike = (s.starts_with('/') && s.len() > 1 && !s.starts_with("//"))
            || s.starts_with("./")
            || s.starts_with("../");
        if !pathlike || s.contains(['\n', '\0']) || lit.interpolated {
            continue;
        }
        out.push((lit.text.clone(), usage(code, &literals, k)));
    }
    out
}

struct Literal {
    text: String,
    start: usize,
    end: usize,
    /// A template or f-string with substitutions: not a fixed path.
    interpolated: bool,
}

/// The string literals of python/js/perl/ruby code, skipping comments.
fn string_literals(code: &str, lang: &str) -> Vec<Literal> {
    let b: Vec<char> = code.chars().collect();
    // Byte offsets of each char, for slicing `code` later.
    let offsets: Vec<usize> = code
        .char_indices()
        .map(|(i, _)| i)
        .chain([code.len()])
        .collect();
    let hash_comments = lang != "node";
    let mut out = vec![];
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if hash_comments && c == '#' {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if !hash_comments && c == '/' && b.get(i + 1) == Some(&'/') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if !hash_comments && c == '/' && b.get(i + 1) == Some(&'*') {
            i += 2;
            while i + 1 < b.len() && !(b[i] == '*' && b[i + 1] == '/') {
                i += 1;
            }
            i += 2;
            continue;
        }
        if c == '\'' || c == '"' || (c == '`' && lang == "node") {
            let triple = lang == "python" && b.get(i + 1) == Some(&c) && b.get(i + 2) == Some(&c);
            let prefix_f = lang == "python" && i > 0 && b[i - 1].eq_ignore_ascii_case(&'f');
            let open = if triple { 3 } else { 1 };
            let start = i;
            i += open;
            let mut text = String::new();
            let mut interpolated = prefix_f && code[offsets[start]..].contains('{');
            loop {
                if i >= b.len() {
                    break;
                }
                if b[i] == '\\' && i + 1 < b.len() {
                    text.push(b[i + 1]);
                    i += 2;
                    continue;
                }
                if b[i] == c && (!triple || (b.get(i + 1) == Some(&c) && b.get(i + 2) == Some(&c)))
                {
                    i += open;
                    break;
                }
                if c == '`' && b[i] == '$' && b.get(i + 1) == Some(&'{') {
                    interpolated = true;
                }
                if !triple && c != '`' && b[i] == '\n' {
                    break;
                }
                text.push(b[i]);
                i += 1;
            }
            if prefix_f && !text.contains('{') {
                interpolated = false;
            }
            out.push(Literal {
                text,
                start: offsets[start],
                end: offsets[i.min(b.len())],
                interpolated,
            });
            continue;
        }
        i += 1;
    }
    out
}

/// Calls whose first argument they write (create, change, remove).
const WRITE_CALLS: &[&str] = &[
    "writeFileSync",
    "writeFile",
    "appendFileSync",
    "appendFile",
    "createWriteStream",
    "mkdirSync",
    "mkdir",
    "rmSync",
    "rm",
    "rmdirSync",
    "rmdir",
    "unlinkSync",
    "unlink",
    "truncateSync",
    "truncate",
    "makedirs",
    "remove",
    "removedirs",
    "rmtree",
    "mkfifo",
    "chmod",
    "chmodSync",
    "chown",
    "chownSync",
    "utime",
    "utimesSync",
    "touch",
    "mkdtemp",
    "write_text",
    "write_bytes",
    "open_write",
];

/// Calls whose second argument they write (copy, move, link); a move also removes its first.
const COPY_CALLS: &[&str] = &[
    "copyFileSync",
    "copyFile",
    "cpSync",
    "cp",
    "copy",
    "copy2",
    "copyfile",
    "copytree",
    "renameSync",
    "rename",
    "move",
    "replace",
    "symlinkSync",
    "symlink",
    "linkSync",
    "link",
];
const MOVE_CALLS: &[&str] = &["renameSync", "rename", "move", "replace"];

/// How the call a literal is an argument of uses it.
fn usage(code: &str, literals: &[Literal], k: usize) -> Use {
    let lit = &literals[k];
    // The call: the innermost unclosed '(' before the literal, and which argument it is.
    let before = &code[..lit.start];
    let mut depth = 0i32;
    let mut arg_index = 0;
    let mut open = None;
    for (i, c) in before.char_indices().rev() {
        if literals.iter().any(|l| l.start <= i && i < l.end) {
            continue;
        }
        match c {
            ')' | ']' | '}' => depth += 1,
            '(' | '[' | '{' if depth > 0 => depth -= 1,
            '(' => {
                open = Some(i);
                break;
            }
            '[' | '{' => break,
            ',' if depth == 0 => arg_index += 1,
            _ => {}
        }
    }
    let Some(open) = open else {
        return Use::Read;
    };
    let name: String = code[..open]
        .trim_end()
        .chars()
        .rev()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '.')
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let func = name.rsplit('.').next().unwrap_or("");
    // The rest of the call's arguments: a mode such as 'w' or 'a+' makes it a write.
    let after = &code[lit.end..];
    let mut depth = 0i32;
    let mut close = after.len();
    for (i, c) in after.char_indices() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' if depth == 0 => {
                close = i;
                break;
            }
            ')' | ']' | '}' => depth -= 1,
            _ => {}
        }
    }
    let rest_of_call = &after[..close];
    let tail = after[close..].trim_start_matches(')').trim_start();
    let mode_writes = literals.iter().any(|l| {
        l.start >= lit.end
            && l.end <= lit.end + close
            && !l.text.is_empty()
            && l.text.len() <= 4
            && l.text.chars().all(|c| "rwabxt+sU".contains(c))
            && l.text.contains(['w', 'a', 'x', '+'])
    }) || rest_of_call.contains("O_WRONLY")
        || rest_of_call.contains("O_RDWR")
        || rest_of_call.contains("O_CREAT");
    if func == "open" || func == "openSync" || func == "fopen" || func == "File" {
        return if mode_writes { Use::Write } else { Use::Read };
    }
    if WRITE_CALLS.contains(&func) && arg_index == 0 {
        return Use::Write;
    }
    if COPY_CALLS.contains(&func) {
        return match arg_index {
            0 if MOVE_CALLS.contains(&func) => Use::Write,
            0 => Use::Read,
            _ => Use::Write,
        };
    }
    // Path('/x').write_text(...), Path('/x').open('w'), Path('/x').mkdir() ...
    let method: String = tail
        .strip_prefix('.')
        .unwrap_or("")
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    if !method.is_empty() {
        if WRITE_CALLS.contains(&method.as_str()) {
            return Use::Write;
        }
        if method == "open" {
            let args = &tail[1 + method.len()..];
            let writes = string_literals(args, "python")
                .first()
                .map(|l| l.text.contains(['w', 'a', 'x', '+']) && l.text.len() <= 4)
                .unwrap_or(false);
            return if writes { Use::Write } else { Use::Read };
        }
    }
    Use::Read
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(argv: &[&str], cwd: &str) -> Analysis {
        run_env(argv, cwd, &[])
    }

    fn run_env(argv: &[&str], cwd: &str, env: &[(&str, &str)]) -> Analysis {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        let env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        analyse(&argv, Path::new(cwd), &env, None)
    }

    /// The effects as "r PATH", "w PATH" or "rw PATH", programs found on PATH left out.
    fn effects(a: &Analysis) -> Vec<String> {
        a.effects
            .iter()
            .filter(|e| e.via != "program" || !exempt(&e.path))
            .map(|e| {
                let how = match (e.read, e.write) {
                    (true, true) => "rw",
                    (false, true) => "w",
                    _ => "r",
                };
                format!("{how} {}", e.path.display())
            })
            .collect()
    }

    fn dynamic(a: &Analysis) -> Vec<String> {
        a.dynamic.iter().map(|d| d.token.clone()).collect()
    }

    fn sh(script: &str) -> Analysis {
        run(&["sh", "-c", script], "/w")
    }

    #[test]
    fn plain_argv_file_tools() {
        assert_eq!(
            effects(&run(&["cat", "/a/b", "rel"], "/w")),
            ["r /a/b", "r /w/rel"]
        );
        assert_eq!(
            effects(&run(&["head", "-n", "5", "/x/y"], "/w")),
            ["r /x/y"],
            "-n takes a value"
        );
        assert_eq!(
            effects(&run(&["grep", "-r", "/pattern", "/src"], "/w")),
            ["r /src"]
        );
        assert_eq!(
            effects(&run(&["grep", "-e", "p", "-f", "/pats", "/f1"], "/w")),
            ["r /pats", "r /f1"]
        );
        assert_eq!(
            effects(&run(&["awk", "-v", "x=1", "{print}", "/in", "y=2"], "/w")),
            ["r /in"]
        );
        assert_eq!(effects(&run(&["touch", "/o/new"], "/w")), ["w /o/new"]);
        assert_eq!(
            effects(&run(&["mkdir", "-p", "-m", "755", "d"], "/w")),
            ["w /w/d"]
        );
        assert_eq!(
            effects(&run(&["rm", "-rf", "/o/x", "--", "-y"], "/w")),
            ["w /o/x", "w /w/-y"]
        );
        assert_eq!(effects(&run(&["chmod", "644", "/o/f"], "/w")), ["w /o/f"]);
        assert_eq!(effects(&run(&["chown", "a:b", "/o/f"], "/w")), ["w /o/f"]);
        assert_eq!(effects(&run(&["tee", "-a", "/o/log"], "/w")), ["w /o/log"]);
        assert_eq!(
            effects(&run(&["sort", "-o", "/o/s", "/i"], "/w")),
            ["w /o/s", "r /i"]
        );
        assert_eq!(effects(&run(&["uniq", "/i", "/o"], "/w")), ["r /i", "w /o"]);
    }

    #[test]
    fn copies_and_moves() {
        assert_eq!(
            effects(&run(&["cp", "-r", "/src", "/dst"], "/w")),
            ["r /src", "w /dst"]
        );
        assert_eq!(
            effects(&run(&["cp", "-t", "/dst", "a", "b"], "/w")),
            ["r /w/a", "r /w/b", "w /dst"]
        );
        assert_eq!(effects(&run(&["mv", "/a", "/b"], "/w")), ["w /a", "w /b"]);
        assert_eq!(
            effects(&run(&["ln", "-s", "/target", "/o/link"], "/w")),
            ["w /o/link"]
        );
        assert_eq!(effects(&run(&["ln", "-s", "/t/name"], "/w")), ["w /w/name"]);
        assert_eq!(
            effects(&run(&["install", "-m", "755", "f", "/o/bin/f"], "/w")),
            ["r /w/f", "w /o/bin/f"]
        );
        assert_eq!(
            effects(&run(&["install", "-d", "/o/a", "/o/b"], "/w")),
            ["w /o/a", "w /o/b"]
        );
        assert_eq!(
            effects(&run(&["rsync", "-a", "host:/r", "/local/", "/dst"], "/w")),
            ["r /local", "w /dst"]
        );
        assert_eq!(
            effects(&run(&["dd", "if=/i", "of=/o", "bs=1M"], "/w")),
            ["r /i", "w /o"]
        );
        assert_eq!(
            effects(&run(&["tar", "czf", "/o/a.tgz", "src"], "/w")),
            ["w /o/a.tgz", "r /w/src"]
        );
        assert_eq!(
            effects(&run(&["tar", "-xf", "/i/a.tar", "-C", "/o"], "/w")),
            ["r /i/a.tar", "w /o"]
        );
    }

    #[test]
    fn sed_and_perl_in_place_write() {
        assert_eq!(
            effects(&run(&["sed", "-i", "s/a/b/", "/f"], "/w")),
            ["rw /f"]
        );
        assert_eq!(
            effects(&run(&["sed", "-i.bak", "-e", "s/a/b/", "/f"], "/w")),
            ["rw /f"]
        );
        assert_eq!(effects(&run(&["sed", "s/a/b/", "/f"], "/w")), ["r /f"]);
        assert_eq!(
            effects(&run(&["sed", "-n", "-f", "/s.sed", "/f"], "/w")),
            ["r /s.sed", "r /f"]
        );
        assert_eq!(
            effects(&run(&["perl", "-pi", "-e", "s/a/b/", "/f"], "/w")),
            ["rw /f"]
        );
        assert_eq!(
            effects(&run(&["perl", "-i.orig", "-pe", "s/a/b/", "/f"], "/w")),
            ["rw /f"]
        );
    }

    #[test]
    fn shell_scripts_are_parsed_not_split() {
        assert_eq!(
            effects(&sh(
                "cat /a 'b c' > /o/out 2>&1; echo x >> log && wc -l < /i/in"
            )),
            ["r /a", "r /w/b c", "w /o/out", "w /w/log", "r /i/in"]
        );
        // Quoting: a single-quoted $HOME is a literal path, a redirection inside quotes is
        // not a redirection.
        assert_eq!(
            effects(&sh("cat '$HOME' \"a>b\"")),
            ["r /w/$HOME", "r /w/a>b"]
        );
        assert!(dynamic(&sh("cat '$HOME'")).is_empty());
        // Pipelines, subshells, brace groups, if, while, functions.
        assert_eq!(
            effects(&sh(
                "cat /a | tee /o/t | sort -o /o/s; (cat /b); { rm /c; }"
            )),
            ["r /a", "w /o/t", "w /o/s", "r /b", "w /c"]
        );
        assert_eq!(
            effects(&sh("if test -f /x; then cat /y; else touch /z; fi; while read l; do echo $l >> /q; done < /in")),
            ["r /y", "w /z", "w /q", "r /in"]
        );
        assert_eq!(effects(&sh("f() { rm /r; }; f")), ["w /r"]);
        // Command substitutions run too.
        assert_eq!(effects(&sh("echo $(cat /s)")), ["r /s"]);
    }

    #[test]
    fn cd_moves_relative_paths_and_does_not_leak_out_of_subshells() {
        assert_eq!(
            effects(&sh("cd /other && cat f; (cd /sub; cat g); cat h")),
            ["r /other", "r /other/f", "r /sub", "r /sub/g", "r /other/h"]
        );
        assert_eq!(effects(&sh("cd .. && touch x")), ["r /", "w /x"]);
    }

    #[test]
    fn dynamic_path_words_are_named_raw() {
        assert_eq!(dynamic(&sh("cat ~/notes")), ["~/notes"]);
        assert_eq!(dynamic(&sh("echo hi > $OUT/log")), ["$OUT/log"]);
        assert_eq!(dynamic(&sh("cat \"${DIR}\"/x")), ["\"$DIR\"/x"]);
        assert_eq!(dynamic(&sh("cat `pwd`/f")), ["$(...)/f"]);
        assert_eq!(dynamic(&sh("cat $(pwd)/f")), ["$(...)/f"]);
        assert_eq!(dynamic(&sh("cd ~")), ["~"]);
        assert_eq!(dynamic(&sh("cd")), ["~"]);
        assert_eq!(dynamic(&sh("cat ~other/f")), ["~other/f"]);
        // Not path positions: echo's arguments, a grep pattern.
        assert!(dynamic(&sh("echo $HOME ~; grep $PAT /f")).is_empty());
    }

    #[test]
    fn known_variables_are_substituted() {
        // From the command's environment (it is exactly command.env), and literal assignments.
        let a = run_env(&["sh", "-c", "cat ~/.x $HOME/y"], "/w", &[("HOME", "/h")]);
        assert_eq!(effects(&a), ["r /h/.x", "r /h/y"]);
        assert!(a.dynamic.is_empty());
        assert_eq!(
            effects(&sh("D=/data; cat $D/f \"$D\"/g")),
            ["r /data/f", "r /data/g"]
        );
        assert_eq!(
            effects(&sh("for f in /a /b; do cat $f; done")),
            ["r /a", "r /b"]
        );
        assert_eq!(
            dynamic(&sh("for f in *.txt; do cat \"$f\"; done")),
            ["\"$f\""]
        );
        assert_eq!(dynamic(&sh("D=$(pwd); cat $D/f")), ["$D/f"]);
        // Positional parameters of sh -c SCRIPT ARG0 ARGS.
        assert_eq!(
            effects(&run(&["sh", "-c", "cat \"$1\"", "sh", "/p/f"], "/w")),
            ["r /p/f"]
        );
        // An assignment in a subshell does not outlive it.
        assert_eq!(dynamic(&sh("(D=/x); cat $D")), ["$D"]);
    }

    #[test]
    fn globs_touch_their_directory() {
        assert_eq!(effects(&sh("cat /data/*.csv")), ["r /data"]);
        assert_eq!(effects(&sh("rm -f /o/build-*/x")), ["w /o"]);
        assert_eq!(effects(&sh("cat *.txt")), ["r /w"]);
        assert_eq!(effects(&sh("cat '/lit/*.txt'")), ["r /lit/*.txt"]);
    }

    #[test]
    fn shells_wrappers_and_nesting() {
        assert_eq!(effects(&run(&["bash", "-lc", "cat /a"], "/w")), ["r /a"]);
        assert_eq!(
            effects(&run(
                &["/bin/sh", "-e", "-o", "pipefail", "-c", "touch /t"],
                "/w"
            )),
            ["w /t"]
        );
        assert_eq!(
            effects(&run(&["env", "-i", "A=1", "cat", "/e"], "/w")),
            ["r /e"]
        );
        assert_eq!(
            effects(&run(&["env", "-u", "B", "A=1", "cat", "/e"], "/w")),
            ["r /e"]
        );
        assert_eq!(
            effects(&run(&["timeout", "-s", "KILL", "5", "cat", "/t"], "/w")),
            ["r /t"]
        );
        assert_eq!(
            effects(&run(&["nice", "-n", "5", "rm", "/n"], "/w")),
            ["w /n"]
        );
        assert_eq!(effects(&sh("sh -c 'bash -c \"cat /deep\"'")), ["r /deep"]);
        // A script file is read; its content is the kernel's business.
        assert_eq!(
            effects(&run(&["bash", "/s/x.sh", "/arg"], "/w")),
            ["r /s/x.sh"]
        );
        // A shell reading its script from stdin.
        let argv = vec!["sh".to_string()];
        let a = analyse(
            &argv,
            Path::new("/w"),
            &BTreeMap::new(),
            Some("cat /from-stdin\n"),
        );
        assert_eq!(effects(&a), ["r /from-stdin"]);
    }

    #[test]
    fn inline_python_and_node() {
        assert_eq!(
            effects(&run(
                &[
                    "python3",
                    "-c",
                    "open('/r').read(); open('/w1', 'w').write('x'); open(\"/w2\", mode='a')"
                ],
                "/w"
            )),
            ["r /r", "w /w1", "w /w2"]
        );
        assert_eq!(
            effects(&run(&["python3", "-c", "import os, shutil; os.makedirs('/d'); shutil.copy('/s', '/t'); os.rename('/m', './n')"], "/w")),
            ["w /d", "r /s", "w /t", "w /m", "w /w/n"]
        );
        assert_eq!(
            effects(&run(
                &[
                    "python3",
                    "-c",
                    "from pathlib import Path; Path('/p').write_text('x'); Path('/q').read_text()"
                ],
                "/w"
            )),
            ["w /p", "r /q"]
        );
        assert_eq!(
            effects(&run(&["node", "-e", "const fs=require('fs'); fs.writeFileSync('/o', fs.readFileSync('/i')); // '/comment'"], "/w")),
            ["w /o", "r /i"]
        );
        assert_eq!(
            effects(&run(
                &[
                    "node",
                    "-e",
                    "fs.appendFileSync(`/t/${x}`, 'y'); fs.openSync('/f', 'w')"
                ],
                "/w"
            )),
            ["w /f"]
        );
        // Not paths: URLs, regexes, a lone slash; f-strings with substitutions.
        assert!(effects(&run(
            &[
                "python3",
                "-c",
                "print('/'); u='http://x/y'; open(f'/a/{n}')"
            ],
            "/w"
        ))
        .is_empty());
        // A script file is read; its arguments are not taken as paths.
        assert_eq!(
            effects(&run(&["python3", "-u", "/s/x.py", "/not-a-path"], "/w")),
            ["r /s/x.py"]
        );
        assert!(effects(&run(&["python3", "-m", "pytest", "-q"], "/w")).is_empty());
        // Inside a shell script too.
        assert_eq!(effects(&sh("python3 -c \"open('/x','w')\"")), ["w /x"]);
    }

    #[test]
    fn a_script_that_does_not_parse_is_noted_not_guessed() {
        let a = sh("cat /a; if then fi");
        assert_eq!(effects(&a), ["r /a"]);
        assert!(a.notes[0].contains("could not be parsed"), "{:?}", a.notes);
        let deep = format!("{}true{}", "(".repeat(500), ")".repeat(500));
        let a = sh(&deep);
        assert!(
            a.notes[0].contains("too large or too deeply nested"),
            "{:?}",
            a.notes
        );
        let a = sh("$CMD /x");
        assert!(
            a.notes[0].contains("only known at run time"),
            "{:?}",
            a.notes
        );
    }

    #[test]
    fn exemptions_are_the_system_and_scratch_paths() {
        for p in [
            "/usr/bin/x",
            "/etc/hosts",
            "/lib64/ld.so",
            "/dev/null",
            "/tmp/x",
            "/proc/self/fd/1",
        ] {
            assert!(exempt(Path::new(p)), "{p}");
        }
        for p in [
            "/home/u/x",
            "/var/tmp/x",
            "/dev/sda",
            "/proc/1/environ",
            "/usrx",
        ] {
            assert!(!exempt(Path::new(p)), "{p}");
        }
        // A host file beneath /tmp is only visible through a grant: it is asked for.
        let host = std::env::temp_dir().join(format!("cwx-exempt-{}", std::process::id()));
        std::fs::write(&host, "x").unwrap();
        let asked = !exempt(&host);
        std::fs::remove_file(&host).unwrap();
        assert!(asked, "{}", host.display());
    }
}
