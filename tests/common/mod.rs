//! Shared test fixture: copies of cw-exec and the `violate` helper in a world-readable
//! directory (so an unprivileged user can run them too), per-test work directories, and a
//! builder for sandboxed runs.
#![allow(dead_code)]

pub mod attack;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

pub struct Fixture {
    pub dir: PathBuf,
    pub bin: PathBuf,
    pub cw: PathBuf,
    pub violate: PathBuf,
}

extern "C" fn remove_fixture() {
    if let Some(f) = FIXTURE.get() {
        let _ = std::fs::remove_dir_all(&f.dir);
    }
}

static FIXTURE: OnceLock<Fixture> = OnceLock::new();

pub fn fixture() -> &'static Fixture {
    FIXTURE.get_or_init(|| {
        let dir = PathBuf::from(format!("/var/tmp/cwx-test-{}", std::process::id()));
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(dir.join("work")).unwrap();
        for d in [&dir, &bin] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::set_permissions(dir.join("work"), std::fs::Permissions::from_mode(0o777)).unwrap();
        let built = PathBuf::from(env!("CARGO_BIN_EXE_cw-exec"));
        let violate_built = built.parent().unwrap().join("examples/violate");
        {
            // `cargo test` builds examples, but `cargo test --test NAME` and nextest do not,
            // and a stale helper would test old code: always bring it up to date.
            let status = Command::new(env!("CARGO"))
                .args(["build", "--example", "violate"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .expect("running cargo build --example violate");
            assert!(
                status.success() && violate_built.exists(),
                "could not build {}",
                violate_built.display()
            );
        }
        let cw = bin.join("cw-exec");
        let violate = bin.join("violate");
        std::fs::copy(&built, &cw).unwrap();
        std::fs::copy(&violate_built, &violate).unwrap();
        unsafe { libc::atexit(remove_fixture) };
        Fixture {
            dir,
            bin,
            cw,
            violate,
        }
    })
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory, writable by everyone (so the unprivileged user can use it too).
pub fn workdir(name: &str) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let d = fixture().dir.join("work").join(format!("{name}-{n}"));
    std::fs::create_dir_all(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
    d
}

pub fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

pub const TEST_USER: &str = "cwexec-test";

/// The unprivileged test user (created when running as root), or None with the reason.
pub fn unprivileged_user() -> Result<(u32, u32), String> {
    static USER: OnceLock<Result<(u32, u32), String>> = OnceLock::new();
    USER.get_or_init(|| {
        if !is_root() {
            return Ok(unsafe { (libc::getuid(), libc::getgid()) });
        }
        if nix::unistd::User::from_name(TEST_USER)
            .ok()
            .flatten()
            .is_none()
        {
            let out = Command::new("useradd")
                .args([
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    TEST_USER,
                ])
                .output()
                .map_err(|e| format!("useradd: {e}"))?;
            // 9: already exists (another test binary created it meanwhile).
            if !out.status.success() && out.status.code() != Some(9) {
                return Err(format!(
                    "useradd failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
        let user = nix::unistd::User::from_name(TEST_USER)
            .ok()
            .flatten()
            .ok_or_else(|| format!("user {TEST_USER} not found after useradd"))?;
        Ok((user.uid.as_raw(), user.gid.as_raw()))
    })
    .clone()
}

/// A sandboxed run under construction.
#[derive(Clone)]
pub struct Sandbox {
    pub args: Vec<String>,
    pub cwd: PathBuf,
    pub user: Option<(u32, u32)>,
    pub env: Vec<(String, String)>,
    /// A program cw-exec is started through (`wrapper cw-exec ARGS`).
    pub wrapper: Option<PathBuf>,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox {
            args: vec![],
            cwd: workdir("cwd"),
            user: None,
            env: vec![],
            wrapper: None,
        }
    }

    /// Starts cw-exec through `wrapper` (which execs its arguments).
    pub fn wrapped(mut self, wrapper: &Path) -> Self {
        self.wrapper = Some(wrapper.to_path_buf());
        self
    }
    pub fn arg(mut self, a: impl AsRef<str>) -> Self {
        self.args.push(a.as_ref().to_string());
        self
    }
    pub fn args<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, args: I) -> Self {
        for a in args {
            self.args.push(a.as_ref().to_string());
        }
        self
    }
    pub fn cwd(mut self, dir: &Path) -> Self {
        self.cwd = dir.to_path_buf();
        self
    }
    pub fn user(mut self, ids: (u32, u32)) -> Self {
        self.user = Some(ids);
        self
    }
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    pub fn command(&self, sub: &str, cmd: &[&str]) -> Command {
        let mut c = self.plain(&[sub]);
        c.args(&self.args).arg("--").args(cmd);
        c
    }

    /// `cw-exec ARGS` with this sandbox's identity and environment (no `--`, no run flags).
    pub fn plain(&self, args: &[&str]) -> Command {
        let f = fixture();
        let mut c = match &self.wrapper {
            Some(w) => {
                let mut c = Command::new(w);
                c.arg(&f.cw);
                c
            }
            None => Command::new(&f.cw),
        };
        c.args(args).current_dir(&self.cwd);
        c.env("HOME", "/root");
        if let Some((uid, gid)) = self.user {
            c.uid(uid).gid(gid);
            c.env("HOME", "/nonexistent");
            unsafe {
                c.pre_exec(|| {
                    // Drop supplementary groups too, so the user is really unprivileged.
                    if libc::setgroups(0, std::ptr::null()) != 0 && libc::geteuid() == 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        // The test's own variables last: they win over the defaults above.
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c.stdin(Stdio::null());
        c
    }

    /// Runs `cw-exec run ARGS -- CMD...`.
    pub fn run(&self, cmd: &[&str]) -> Output {
        self.command("run", cmd).output().expect("spawning cw-exec")
    }

    /// Runs the violate helper inside the sandbox (its directory granted read+exec).
    pub fn violate(&self, action: &[&str]) -> Output {
        let f = fixture();
        let mut sb = self.clone();
        sb.args.push("--read".into());
        sb.args.push(f.bin.to_string_lossy().into_owned());
        if sb.args.iter().any(|a| a == "--exec")
            || sb
                .args
                .windows(2)
                .any(|w| w[0] == "--profile" && w[1] == "locked-down")
        {
            sb.args.push("--exec".into());
            sb.args.push(f.violate.to_string_lossy().into_owned());
        }
        let mut cmd = vec![f.violate.to_str().unwrap()];
        cmd.extend_from_slice(action);
        sb.run(&cmd)
    }

    /// The violate helper's one-line answer; panics (showing stderr) unless cw-exec exited 0.
    pub fn attempt(&self, action: &[&str]) -> String {
        let out = self.violate(action);
        assert!(
            out.status.success(),
            "violate {action:?} under {:?}: exit {:?}\nstdout: {}\nstderr: {}",
            self.args,
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `cw-exec ARGS` (no sandbox subcommand assumptions).
pub fn cw(args: &[&str]) -> Output {
    Command::new(&fixture().cw)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Reads the envelope a run wrote.
pub fn envelope(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

pub fn write_file(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).unwrap();
}

/// The test calling this, as `binary::test` (libtest names each test's thread after it).
pub fn test_id() -> String {
    let exe = std::env::current_exe().ok();
    let stem = exe
        .as_ref()
        .and_then(|e| e.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Cargo names test binaries `NAME-<16 hex digits>`.
    let binary = match stem.rsplit_once('-') {
        Some((name, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            name.to_string()
        }
        _ => stem,
    };
    let thread = std::thread::current();
    format!("{binary}::{}", thread.name().unwrap_or("unknown"))
}

/// Where skips are recorded: `$CWX_SKIP_LOG` (set by scripts/test, which prints them in its
/// summary and fails if one of them was expected to run on this machine), else a log in
/// cargo's temporary directory for tests.
pub fn skip_log() -> PathBuf {
    std::env::var_os("CWX_SKIP_LOG")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("cwx-skips.log"))
}

/// Records that (part of) the calling test did not run, and why: prints `SKIPPED ...` and
/// appends `binary::test<TAB>why` to the skip log. Return from the test (or skip the part)
/// right after calling it. A skip is visible in scripts/test's summary, never a silent pass.
pub fn skip(why: &str) {
    use std::io::Write;
    let id = test_id();
    eprintln!("SKIPPED {id}: {why}");
    let line = format!("{id}\t{}\n", why.replace(['\n', '\t'], " "));
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(skip_log())
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        panic!("recording the skip in {}: {e}", skip_log().display());
    }
}

/// Skips (returns true, recording why) when not running as root.
pub fn skip_unless_root(what: &str) -> bool {
    if is_root() {
        return false;
    }
    skip(&format!(
        "{what}: needs root (it attacks root-owned state or creates the test user)"
    ));
    true
}

/// Runs `case` as the current user and, when that is root, again as the unprivileged test
/// user: each limit and containment check must hold for both.
pub fn as_each_identity(mut case: impl FnMut(Sandbox, &str)) {
    case(
        Sandbox::new(),
        if is_root() { "root" } else { "current user" },
    );
    if is_root() {
        match unprivileged_user() {
            Ok(ids) => case(Sandbox::new().user(ids), TEST_USER),
            Err(why) => skip(&format!("unprivileged variant: {why}")),
        }
    }
}

/// cgroups of runs whose cw-exec has exited, in any hierarchy (there must be none). Runs
/// still in progress (other tests, in parallel) have a live pid in their name.
/// Cgroups left by a SIGKILLed cw-exec are swept by a later run (one in eight, at random):
/// runs sandboxes until none is left (or 200 runs: then the leftovers, for the assertion).
/// A run sweeps only where it makes cgroups itself, so as root every other run has `--cpu`
/// (its accounting cgroup is on the unified hierarchy, where the default limits make none):
/// a test that SIGKILLs cw-exec in a `--cpu` run leaves one there.
pub fn leftover_cgroups_after_sweeps() -> Vec<std::path::PathBuf> {
    for round in 0..200 {
        let left = leftover_cgroups();
        if left.is_empty() {
            return left;
        }
        let sb = if is_root() && round % 2 == 1 {
            Sandbox::new().args(["--cpu", "100"])
        } else {
            Sandbox::new()
        };
        let _ = sb.run(&["/bin/true"]);
    }
    leftover_cgroups()
}

pub fn leftover_cgroups() -> Vec<std::path::PathBuf> {
    run_cgroup_dirs()
        .into_iter()
        .filter(|(_, pid)| {
            // Alive: signalable, or another user's (EPERM: a plain user running the suite
            // cannot signal root's runs, which are not leftovers).
            let alive = unsafe { libc::kill(*pid as i32, 0) } == 0
                || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
            !alive
        })
        .map(|(dir, _)| dir)
        .collect()
}

/// The cgroups of the run whose cw-exec has pid `pid` (`cw-exec-<pid>-*`), in every
/// hierarchy, sorted.
pub fn run_cgroups_of(pid: u32) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = run_cgroup_dirs()
        .into_iter()
        .filter(|(_, of)| *of == pid)
        .map(|(dir, _)| dir)
        .collect();
    found.sort();
    found
}

/// Every run cgroup (`cw-exec-<pid>-*`) under /sys/fs/cgroup, with the pid of the cw-exec
/// that made it (0 when the name holds none); a run cgroup's own children are not looked at.
fn run_cgroup_dirs() -> Vec<(PathBuf, u32)> {
    let mut found = vec![];
    let mut stack = vec![PathBuf::from("/sys/fs/cgroup")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if !ft.is_dir() {
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(rest) = name.strip_prefix("cw-exec-") {
                let pid = rest
                    .split('-')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(0);
                found.push((e.path(), pid));
            } else if stack.len() < 10_000 {
                stack.push(e.path());
            }
        }
    }
    found
}

/// An unprivileged process (`ids`) that swaps `dir/name` for a symlink to `target` and back,
/// as fast as it can, until `dir/stop` exists: the attacker of the start-up races. The
/// system's python3 runs it (the test user cannot reach a per-user installation).
pub fn spawn_symlink_swapper(
    python: &Path,
    dir: &Path,
    name: &str,
    target: &Path,
    ids: (u32, u32),
) -> std::process::Child {
    let attack = format!(
        "import os, random, time\nos.chdir({dir:?})\nwhile not os.path.exists('stop'):\n  try:\n    os.rename({name:?},'real'); os.symlink({target:?},{name:?}); time.sleep(random.random() / 500); os.unlink({name:?}); os.rename('real',{name:?})\n  except OSError: pass\n  time.sleep(random.random() / 200)\n",
        dir = dir.to_str().unwrap(),
        target = target.to_str().unwrap()
    );
    Command::new(python)
        .args(["-c", &attack])
        .uid(ids.0)
        .gid(ids.1)
        .stdin(Stdio::null())
        .spawn()
        .unwrap()
}

/// A FIFO `dir/tripwire` that every user may open for writing, and its read end, opened
/// (non-blocking) first, so that a writer opening it later does not block.
pub fn fifo_for_everyone(dir: &Path) -> (PathBuf, std::fs::File) {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join("tripwire");
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o666)).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path)
        .unwrap();
    (path, reader)
}

/// A FIFO that the sandbox's processes hold open for writing (a script's `exec 3>FIFO`,
/// inherited by everything it starts). Reading it to end of file is the positive signal that
/// every holder is gone, and anything a survivor writes to it is read before that: no
/// "sleep, then check nothing happened".
pub struct Tripwire {
    pub path: PathBuf,
    reader: std::fs::File,
}

impl Tripwire {
    /// Creates the FIFO in `dir` (writable by everyone) and opens its read end, so a writer
    /// opening it later does not block.
    pub fn new(dir: &Path) -> Tripwire {
        let (path, reader) = fifo_for_everyone(dir);
        // Blocking from here on: a read waits for data or for the last writer to close.
        let flags = nix::fcntl::fcntl(&reader, nix::fcntl::FcntlArg::F_GETFL).unwrap();
        let flags = nix::fcntl::OFlag::from_bits_truncate(flags) & !nix::fcntl::OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(&reader, nix::fcntl::FcntlArg::F_SETFL(flags)).unwrap();
        Tripwire { path, reader }
    }

    /// Everything written to the FIFO if no process holds it open any more at this moment;
    /// Err naming what was read if a writer is still there. No waiting: for "gone by now".
    pub fn closed_now(self) -> Result<String, String> {
        use std::io::Read;
        let mut reader = self.reader;
        let flags = nix::fcntl::fcntl(&reader, nix::fcntl::FcntlArg::F_GETFL).unwrap();
        let flags = nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(&reader, nix::fcntl::FcntlArg::F_SETFL(flags)).unwrap();
        let mut text = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => return Ok(String::from_utf8_lossy(&text).into_owned()),
                Ok(n) => text.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    return Err(format!(
                        "{} still held open (read so far: {:?}): a process of the run is alive",
                        self.path.display(),
                        String::from_utf8_lossy(&text)
                    ))
                }
                Err(e) => return Err(format!("reading {}: {e}", self.path.display())),
            }
        }
    }

    /// Everything written to the FIFO, once no process holds it open any more. Call it only
    /// after a writer has opened it (a line it wrote was seen, or the run that opened it
    /// ended): with no writer yet it returns at once. Err if it is still held after
    /// `limit`: a failure only, never a pass.
    pub fn wait_closed(self, limit: std::time::Duration) -> Result<String, String> {
        use std::io::Read;
        let (tx, rx) = std::sync::mpsc::channel();
        let mut reader = self.reader;
        std::thread::spawn(move || {
            let mut text = String::new();
            let r = reader.read_to_string(&mut text).map(|_| text);
            let _ = tx.send(r);
        });
        match rx.recv_timeout(limit) {
            Ok(Ok(text)) => Ok(text),
            Ok(Err(e)) => Err(format!("reading {}: {e}", self.path.display())),
            Err(_) => Err(format!(
                "{} still held open after {limit:?}: a process survived",
                self.path.display()
            )),
        }
    }
}

/// Lower-case hex of some bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of some bytes, in lower-case hex (as the envelope's stdoutSha256 has it).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(bytes))
}

/// An example program (examples/NAME.rs), built and copied next to cw-exec in the fixture
/// (world-readable, so the unprivileged user can run it too).
pub fn example(name: &str) -> PathBuf {
    let f = fixture();
    let copy = f.bin.join(name);
    static BUILT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap();
    if !built.iter().any(|b| b == name) {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--example", name])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("running cargo build --example");
        let target = PathBuf::from(env!("CARGO_BIN_EXE_cw-exec"));
        let exe = target.parent().unwrap().join("examples").join(name);
        assert!(status.success() && exe.exists(), "could not build {name}");
        copy_executable(&exe, &copy);
        built.push(name.to_string());
    }
    copy
}

/// The children of `pid`, from the host's /proc: every thread's list (a process forked by
/// a thread other than the first is only in that thread's).
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut out = vec![];
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            let listed = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            out.extend(
                listed
                    .split_whitespace()
                    .filter_map(|c| c.parse::<u32>().ok()),
            );
        }
    }
    out
}

/// Kills (by its pid, which this test started) and reaps a child when dropped: a failing
/// assertion does not leave the child running, nor a zombie.
pub struct Reaped(pub std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Copies an executable that tests will run, in a child process (`cp`): a copy written by
/// this (multi-threaded) test process would leave its write descriptor in every child another
/// test thread forks meanwhile, until that child's execve, and running the copy then fails
/// with ETXTBSY.
pub fn copy_executable(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("--")
        .arg(from)
        .arg(to)
        .status()
        .expect("running cp");
    assert!(status.success(), "cp {} {}", from.display(), to.display());
}

/// A script in a fresh world-readable directory that execs `refuse RULES -- "$@"`: cw-exec
/// started through it runs with those system calls refused (examples/refuse.rs).
pub fn refusing(rules: &[&str]) -> PathBuf {
    let dir = workdir("refuse");
    let script = dir.join("refusing.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nexec {} {} -- \"$@\"\n",
            example("refuse").display(),
            rules.join(" ")
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

/// A pty pair opened by the test: (master, slave path).
pub fn open_pty() -> (std::os::fd::OwnedFd, String) {
    use std::os::fd::FromRawFd;
    unsafe {
        let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        assert!(master >= 0, "posix_openpt");
        assert_eq!(libc::grantpt(master), 0);
        assert_eq!(libc::unlockpt(master), 0);
        let mut name = [0 as libc::c_char; 128];
        assert_eq!(libc::ptsname_r(master, name.as_mut_ptr(), name.len()), 0);
        let path = std::ffi::CStr::from_ptr(name.as_ptr())
            .to_string_lossy()
            .into_owned();
        (std::os::fd::OwnedFd::from_raw_fd(master), path)
    }
}
