//! The sandbox's own terminal: a pseudo-terminal pair cw-exec opens when its stdin and
//! stdout are terminals and nothing captures stdout. The command's process makes the slave
//! its controlling terminal; cw-exec relays bytes between the master and its own terminal,
//! which it puts in raw mode (restored on every way out but SIGKILL), and copies the window
//! size across on SIGWINCH. Ctrl-C, Ctrl-Z and job control then happen inside, on a terminal
//! that belongs to the sandbox alone: the caller's terminal is never the sandbox's
//! controlling terminal and never one of its descriptors.
//!
//! Plain data and host calls only: which process does what is `containment`'s and
//! `supervise`'s business.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Mutex, Once};

use nix::fcntl::OFlag;
use nix::sys::stat::{Mode, SFlag};
use nix::sys::termios::{self, SetArg, Termios};

use crate::kernel::mount_view::Bind;
use crate::sys;

/// The controlling-terminal device: opening it yields the opener's controlling terminal,
/// which inside the sandbox can only be its own pty (or none: ENXIO).
pub const DEV_TTY: &str = "/dev/tty";

/// What the sandbox's side needs to know about its terminal (crosses into init as is).
#[derive(Clone, Debug)]
pub struct SandboxTerminal {
    /// The pty slave's path (`/dev/pts/N`), the same on the host and in the view.
    pub slave: PathBuf,
    /// Device and inode of the slave: the object init binds at that path.
    pub slave_identity: (u64, u64),
    /// Device and inode of the host's /dev/tty, when it is the character device 5:0.
    pub dev_tty: Option<(u64, u64)>,
}

impl SandboxTerminal {
    /// Binds for the mount view: the slave at its own path (so `tty` and ttyname(3) name
    /// it) and /dev/tty. No other terminal is in the view: not /dev/ptmx, not the rest of
    /// /dev/pts, not the caller's terminal.
    pub fn binds(&self) -> Vec<Bind> {
        let device = |path: PathBuf, identity: (u64, u64)| Bind {
            path,
            source: None,
            writable: false, // a read-only mount does not stop writing to a device
            exec: false,
            device: true,
            is_dir: false,
            expect: Some(identity),
        };
        let mut binds = vec![device(self.slave.clone(), self.slave_identity)];
        if let Some(identity) = self.dev_tty {
            binds.push(device(PathBuf::from(DEV_TTY), identity));
        }
        binds
    }

    /// Device files the command may open by path, read, write and drive with ioctls.
    pub fn device_paths(&self) -> Vec<PathBuf> {
        let mut paths = vec![self.slave.clone()];
        if self.dev_tty.is_some() {
            paths.push(PathBuf::from(DEV_TTY));
        }
        paths
    }
}

/// Whether `fd` is a terminal.
pub fn is_terminal(fd: BorrowedFd<'_>) -> bool {
    nix::unistd::isatty(fd).unwrap_or(false)
}

/// One run's pty pair.
pub struct Pty {
    /// cw-exec's side.
    pub master: OwnedFd,
    /// The sandbox's side, until init has its copies (cw-exec closes its own right after
    /// the clone, so the master reads end-of-file (EIO) once the sandbox is gone).
    pub slave: OwnedFd,
    pub sandbox: SandboxTerminal,
}

fn identity(fd: BorrowedFd<'_>) -> io::Result<(libc::stat, (u64, u64))> {
    let st = nix::sys::stat::fstat(fd)?;
    let id = (st.st_dev, st.st_ino);
    Ok((st, id))
}

fn is_char_device(st: &libc::stat) -> bool {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFCHR
}

impl Pty {
    /// Opens a pty pair (posix_openpt, grantpt, unlockpt). The slave starts with the outer
    /// terminal's modes and window size, as script(1) and ssh do, so the erase and
    /// interrupt characters and the line width are the ones the caller's terminal has.
    pub fn open(outer: BorrowedFd<'_>) -> io::Result<Pty> {
        let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
            .map_err(|e| io::Error::other(format!("posix_openpt: {e}")))?;
        nix::pty::grantpt(&master).map_err(|e| io::Error::other(format!("grantpt: {e}")))?;
        nix::pty::unlockpt(&master).map_err(|e| io::Error::other(format!("unlockpt: {e}")))?;
        let path =
            nix::pty::ptsname_r(&master).map_err(|e| io::Error::other(format!("ptsname: {e}")))?;
        let master = OwnedFd::from(master);
        // O_NOCTTY: the slave must not become cw-exec's controlling terminal (cw-exec may be
        // a session leader without one); the command's process takes it (TIOCSCTTY).
        let slave = nix::fcntl::open(
            path.as_str(),
            OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io::Error::other(format!("{path}: {e}")))?;
        let (st, slave_identity) = identity(slave.as_fd())?;
        if !is_char_device(&st) {
            return Err(io::Error::other(format!("{path}: not a character device")));
        }
        if let Ok(modes) = termios::tcgetattr(outer) {
            let _ = termios::tcsetattr(&slave, SetArg::TCSANOW, &modes);
        }
        copy_window_size(outer, master.as_fd());
        Ok(Pty {
            master,
            slave,
            sandbox: SandboxTerminal {
                slave: PathBuf::from(path),
                slave_identity,
                dev_tty: dev_tty_identity(),
            },
        })
    }
}

/// Copies the outer terminal's window size to the sandbox's (through its master); the
/// kernel sends SIGWINCH to the sandbox's foreground process group when it changed.
pub fn copy_window_size(outer: BorrowedFd<'_>, master: BorrowedFd<'_>) {
    if let Ok(size) = sys::window_size(outer) {
        let _ = sys::set_window_size(master, &size);
    }
}

/// The host's /dev/tty, if it is what it should be (character device 5:0), opened without
/// following a symlink.
fn dev_tty_identity() -> Option<(u64, u64)> {
    let fd = nix::fcntl::open(
        DEV_TTY,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let (st, id) = identity(fd.as_fd()).ok()?;
    (is_char_device(&st) && st.st_rdev == libc::makedev(5, 0)).then_some(id)
}

/// The outer terminal and the modes to give back to it. One at a time per process; the
/// panic hook reads it too, so a panic still restores the terminal even where it does not
/// unwind (a panic inside a destructor, or a build with `panic = "abort"`).
static SAVED: Mutex<Option<(OwnedFd, libc::termios)>> = Mutex::new(None);

fn restore_saved() {
    let mut saved = SAVED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((fd, modes)) = saved.take() {
        let _ = termios::tcsetattr(&fd, SetArg::TCSANOW, &Termios::from(modes));
    }
}

/// The outer terminal in raw mode for as long as this guard lives: every byte (Ctrl-C,
/// Ctrl-Z, Ctrl-\ included) goes to the sandbox's terminal, whose line discipline turns
/// them into signals for the sandbox's foreground process group. Dropping it, or a panic,
/// restores the modes the terminal had. SIGKILL of cw-exec leaves the terminal raw (no
/// process can act on its own SIGKILL; shells such as bash restore their terminal after a
/// job killed by a signal, or `stty sane` does).
pub struct RawMode {
    raw: libc::termios,
}

impl RawMode {
    pub fn enter(outer: BorrowedFd<'_>) -> io::Result<RawMode> {
        let saved = termios::tcgetattr(outer)?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        let kept = outer.try_clone_to_owned()?;
        *SAVED.lock().unwrap_or_else(|p| p.into_inner()) = Some((kept, saved.into()));
        static HOOK: Once = Once::new();
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                restore_saved();
                previous(info)
            }));
        });
        // TCSANOW: input the caller typed ahead stays queued and reaches the sandbox.
        if let Err(e) = termios::tcsetattr(outer, SetArg::TCSANOW, &raw) {
            restore_saved();
            return Err(e.into());
        }
        Ok(RawMode { raw: raw.into() })
    }

    /// Raw again (after SIGCONT: whoever stopped cw-exec may have reset the terminal).
    pub fn reapply(&self) {
        let saved = SAVED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((fd, _)) = saved.as_ref() {
            let _ = termios::tcsetattr(fd, SetArg::TCSANOW, &Termios::from(self.raw));
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        restore_saved();
    }
}
