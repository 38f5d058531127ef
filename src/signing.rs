//! The signing key and the signed statement: an Ed25519 key per host (root, `/etc/cw-exec/`)
//! or per user (`$XDG_CONFIG_HOME/cw-exec/`), created by cw-exec before any sandbox of that
//! user has run, masked in every mount view, and never used when a sandbox of the run could
//! have written it. See docs/attestation.md ("Signature").
//!
//! What is signed is a small statement, serialized with JCS (RFC 8785): the run id, the
//! time, the caller's nonce, the evidence triple, and a SHA-256 digest of the JCS form of
//! each member of the attestation object. Digests per member (rather than the attestation
//! whole) let `verify` name the member that was changed; the signature binds them all.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use nix::errno::Errno;
use nix::fcntl::{openat, OFlag};
use nix::sys::stat::{fstat, mkdirat, FileStat, Mode};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::fsio::{self, Dir};
use crate::jcs;
use crate::model::hex;

/// The statement's type tag: a verifier refuses any other.
pub const STATEMENT_TYPE: &str = "cw-exec.attestation.v1";
const KEY_FILE: &str = "signing.key";
/// The longest nonce accepted (bytes).
pub const MAX_NONCE: usize = 256;

/// Why there is no key to sign with.
#[derive(Debug)]
pub enum KeyError {
    /// There is nowhere to keep one (no home, a read-only file system): runs are unsigned,
    /// and say so.
    Unavailable(String),
    /// Something is at the key's place that cw-exec will not trust: it refuses to run.
    Untrusted(String),
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyError::Unavailable(m) | KeyError::Untrusted(m) => f.write_str(m),
        }
    }
}

/// The directory that holds the signing key of `uid`: `/etc/cw-exec` for root, else
/// `$XDG_CONFIG_HOME/cw-exec` (an absolute `XDG_CONFIG_HOME`, as the XDG spec requires) or
/// `$HOME/.config/cw-exec`. Lexical: nothing is resolved.
pub fn key_dir(uid: u32) -> Option<PathBuf> {
    if uid == 0 {
        return Some(PathBuf::from("/etc/cw-exec"));
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            let home = crate::credentials::home_dir();
            (home != Path::new("/")).then(|| home.join(".config"))
        })?;
    Some(crate::kernel::pathfd::normalize(&config.join("cw-exec")))
}

/// A loaded signing key.
pub struct Key {
    /// The secret seed as read from the key file. The key pair is derived from it when it is
    /// first used: deriving the public key is a scalar multiplication (tens of microseconds),
    /// which a run that signs nothing never needs.
    seed: Seed,
    signing: std::sync::OnceLock<SigningKey>,
    /// The key's directory, physically resolved (what the mount view masks).
    pub dir: PathBuf,
}

/// A secret seed, overwritten when dropped (as `SigningKey` is).
struct Seed([u8; 32]);

impl Drop for Seed {
    fn drop(&mut self) {
        self.0 = [0; 32];
        std::hint::black_box(&self.0);
    }
}

impl Key {
    fn new(seed: [u8; 32], dir: PathBuf) -> Key {
        Key {
            seed: Seed(seed),
            signing: std::sync::OnceLock::new(),
            dir,
        }
    }

    fn signing(&self) -> &SigningKey {
        self.signing
            .get_or_init(|| SigningKey::from_bytes(&self.seed.0))
    }

    pub fn public(&self) -> VerifyingKey {
        self.signing().verifying_key()
    }

    pub fn key_id(&self) -> String {
        key_id(&self.public())
    }

    pub fn file(&self) -> PathBuf {
        self.dir.join(KEY_FILE)
    }

    /// The caller's key: loaded if it exists and is trustworthy, created (with `create`) if
    /// it does not.
    pub fn open_or_create(uid: u32, create: bool) -> Result<Key, KeyError> {
        let lexical = key_dir(uid).ok_or_else(|| {
            KeyError::Unavailable(
                "no place for a signing key: HOME is / or unset and XDG_CONFIG_HOME is not set"
                    .into(),
            )
        })?;
        if !create && !lexical.exists() {
            return Err(KeyError::Unavailable(format!(
                "{} does not exist",
                lexical.display()
            )));
        }
        let dir = open_key_dir(&lexical, uid)?;
        let key = match load(&dir, uid)? {
            Some(k) => k,
            None if create => self::create(&dir, uid)?,
            None => {
                return Err(KeyError::Unavailable(format!(
                    "{} does not exist",
                    dir.path().join(KEY_FILE).display()
                )))
            }
        };
        Ok(Key::new(key, dir.path().to_path_buf()))
    }
}

/// The key id: the first 16 bytes of the SHA-256 of the public key, in hex.
pub fn key_id(public: &VerifyingKey) -> String {
    hex(&Sha256::digest(public.as_bytes())[..16])
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// A public key given as 64 hex digits.
pub fn parse_public(text: &str) -> Result<VerifyingKey, String> {
    let bytes: [u8; 32] = unhex(text.trim())
        .and_then(|b| b.try_into().ok())
        .ok_or("not an Ed25519 public key (64 hex digits)")?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| format!("not an Ed25519 public key: {e}"))
}

fn untrusted(path: &Path, why: impl std::fmt::Display) -> KeyError {
    KeyError::Untrusted(format!(
        "the signing key at {} is not trusted: {why}. If you did not put it there, a process \
         (a sandbox with write access, say) did: inspect it, remove it, and cw-exec creates a \
         new key on its next run",
        path.display()
    ))
}

/// Owned by `uid` (or root) and closed to group and others.
fn private_to(st: &FileStat, uid: u32) -> Result<(), String> {
    if st.st_uid != uid && st.st_uid != 0 {
        return Err(format!("owned by uid {}, not {uid}", st.st_uid));
    }
    if st.st_mode & 0o077 != 0 {
        return Err(format!(
            "mode {:04o} gives group or others access (must be 0700 for the directory, 0600 for the key)",
            st.st_mode & 0o7777
        ));
    }
    Ok(())
}

/// Opens (creating what is missing, mode 0700) the key directory. The parent of the
/// directory cw-exec owns (the config directory) is resolved once, and the descriptor that
/// resolution holds is the one everything below is opened from; a symlink on the way that
/// another user could have placed is refused. Below it nothing is followed.
fn open_key_dir(lexical: &Path, uid: u32) -> Result<Dir, KeyError> {
    let unavailable = |what: &Path, e: &dyn std::fmt::Display| {
        KeyError::Unavailable(format!("{}: {e}", what.display()))
    };
    let (Some(config), Some(name)) = (lexical.parent(), lexical.file_name()) else {
        return Err(KeyError::Unavailable(format!(
            "{}: no parent",
            lexical.display()
        )));
    };
    // The config directory may be missing itself ($HOME/.config on a fresh account): its
    // parent (HOME, /etc) must exist.
    let (base, missing, held): (&Path, Option<&OsStr>, _) =
        match crate::kernel::pathfd::resolve(config) {
            Ok(held) => (config, None, held),
            Err(_) => {
                let base = config.parent().unwrap_or(config);
                let held =
                    crate::kernel::pathfd::resolve(base).map_err(|e| unavailable(base, &e))?;
                (base, config.file_name(), held)
            }
        };
    if let Some(link) = held.links.iter().find(|l| l.placeable_by_others(uid)) {
        return Err(untrusted(
            lexical,
            format!(
                "the way to it passes the symlink {}, which another user could have placed",
                link.at.display()
            ),
        ));
    }
    if !held.is_dir {
        return Err(unavailable(
            base,
            &format!("{}: {}", held.path.display(), Errno::ENOTDIR.desc()),
        ));
    }
    let dir = match missing {
        None => child_dir(held.fd.as_fd(), &held.path, name, true, uid)?,
        Some(missing) => {
            let config = child_dir(held.fd.as_fd(), &held.path, missing, false, uid)?;
            child_dir(config.as_fd(), config.path(), name, true, uid)?
        }
    };
    if let Ok(mut opened) = OPENED.lock() {
        *opened = Some((lexical.to_path_buf(), dir.path().to_path_buf()));
    }
    Ok(dir)
}

/// The key directory this process opened last: its lexical path (`key_dir`) and where it
/// physically is. The plan masks that directory (`physical_key_dir`) without resolving it a
/// second time.
static OPENED: std::sync::Mutex<Option<(PathBuf, PathBuf)>> = std::sync::Mutex::new(None);

/// The signing key's directory of `uid` as it physically resolves, if it exists: the one
/// this process opened (`Key::open_or_create`), else resolved now.
pub fn physical_key_dir(uid: u32) -> Option<PathBuf> {
    let lexical = key_dir(uid)?;
    let opened = OPENED.lock().ok().and_then(|opened| {
        opened
            .as_ref()
            .filter(|(l, _)| *l == lexical)
            .map(|(_, physical)| physical.clone())
    });
    opened.or_else(|| {
        crate::kernel::pathfd::resolve(&lexical)
            .ok()
            .filter(|h| h.is_dir)
            .map(|h| h.path)
    })
}

/// The subdirectory `name` of the directory `dir` (found at `dir_path`), created if missing
/// (0700); never a symlink. The key's own directory (`private`) must be private to `uid`.
fn child_dir(
    dir: BorrowedFd<'_>,
    dir_path: &Path,
    name: &OsStr,
    private: bool,
    uid: u32,
) -> Result<Dir, KeyError> {
    let path = dir_path.join(name);
    let open = || {
        openat(
            dir,
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
    };
    // Opened first: it exists on every run but the first.
    let opened = match open() {
        Err(Errno::ENOENT) => {
            match mkdirat(dir, name, Mode::from_bits_truncate(0o700)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => {
                    return Err(KeyError::Unavailable(format!(
                        "{}: {}",
                        path.display(),
                        e.desc()
                    )))
                }
            }
            open()
        }
        other => other,
    };
    let fd: OwnedFd = opened.map_err(|e| match e {
        Errno::ELOOP | Errno::ENOTDIR => untrusted(&path, "it is not a directory (a symlink?)"),
        e => KeyError::Unavailable(format!("{}: {}", path.display(), e.desc())),
    })?;
    let child = Dir::new(fd, path.clone()).map_err(|e| KeyError::Unavailable(e.to_string()))?;
    if private {
        private_to(child.stat(), uid).map_err(|why| untrusted(&path, why))?;
    }
    Ok(child)
}

/// Reads the key if there is one: a regular file, one link, private to `uid`, holding 64 hex
/// digits. Anything else there is refused, never replaced.
fn load(dir: &Dir, uid: u32) -> Result<Option<[u8; 32]>, KeyError> {
    let path = dir.path().join(KEY_FILE);
    let fd: OwnedFd = match openat(
        dir.as_fd(),
        KEY_FILE,
        OFlag::O_RDONLY
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_NOCTTY
            | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(None),
        Err(Errno::ELOOP) => return Err(untrusted(&path, "it is a symbolic link")),
        Err(e) => return Err(untrusted(&path, e.desc())),
    };
    let st = fstat(&fd).map_err(|e| untrusted(&path, e.desc()))?;
    if !fsio::is_regular(&st) {
        return Err(untrusted(&path, format!("it is {}", fsio::kind_of(&st))));
    }
    if st.st_nlink != 1 {
        return Err(untrusted(
            &path,
            format!("it has {} hard links", st.st_nlink),
        ));
    }
    private_to(&st, uid).map_err(|why| untrusted(&path, why))?;
    let bytes =
        fsio::read_limited(std::fs::File::from(fd), 256).map_err(|e| untrusted(&path, e))?;
    let text = String::from_utf8(bytes).map_err(|_| untrusted(&path, "not text"))?;
    let seed: [u8; 32] = unhex(text.trim_end_matches('\n'))
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| untrusted(&path, "not an Ed25519 secret key (64 hex digits)"))?;
    Ok(Some(seed))
}

/// Creates a key: 32 random bytes, written 0600 under a temporary name and renamed into place
/// only if nothing took the name meanwhile (then that is loaded and checked instead).
fn create(dir: &Dir, uid: u32) -> Result<[u8; 32], KeyError> {
    let unavailable = |e: &dyn std::fmt::Display| {
        KeyError::Unavailable(format!(
            "creating {}: {e}",
            dir.path().join(KEY_FILE).display()
        ))
    };
    let mut seed = [0u8; 32];
    crate::sys::random_bytes(&mut seed).map_err(|e| unavailable(&e))?;
    let mut id = [0u8; 8];
    crate::sys::random_bytes(&mut id).map_err(|e| unavailable(&e))?;
    let tmp = format!(".{KEY_FILE}.{}.tmp", hex(&id));
    let fd: OwnedFd = openat(
        dir.as_fd(),
        tmp.as_str(),
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )
    .map_err(|e| unavailable(&e.desc()))?;
    let written = (|| -> io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::from(fd);
        f.write_all(format!("{}\n", hex(&seed)).as_bytes())?;
        f.sync_all()?;
        nix::unistd::close(f).map_err(io::Error::from)?;
        // No replacing: if another cw-exec created the key meanwhile, that one stands.
        match nix::fcntl::renameat2(
            dir.as_fd(),
            tmp.as_str(),
            dir.as_fd(),
            KEY_FILE,
            nix::fcntl::RenameFlags::RENAME_NOREPLACE,
        ) {
            Ok(()) | Err(Errno::EEXIST) => Ok(()),
            Err(e) => Err(e.into()),
        }
    })();
    let _ = nix::unistd::unlinkat(
        dir.as_fd(),
        tmp.as_str(),
        nix::unistd::UnlinkatFlags::NoRemoveDir,
    );
    written.map_err(|e| unavailable(&e))?;
    load(dir, uid)?.ok_or_else(|| unavailable(&"vanished right after being created"))
}

/// What a signature binds, besides the attestation: who asked (the nonce), which run, when.
pub struct Seal<'a> {
    pub run_id: &'a str,
    pub signed_at: &'a str,
    pub nonce: Option<&'a str>,
}

/// SHA-256 (hex) of the JCS form of each member of the attestation but `signature`.
fn digests(attestation: &Map<String, Value>) -> Map<String, Value> {
    attestation
        .iter()
        .filter(|(k, _)| k.as_str() != "signature")
        .map(|(k, v)| {
            (
                k.clone(),
                json!(hex(&Sha256::digest(jcs::canonical(v).as_bytes()))),
            )
        })
        .collect()
}

/// The statement that is signed, and its canonical bytes.
fn statement(
    key_id: &str,
    seal: &Seal<'_>,
    evidence: &Value,
    digests: Map<String, Value>,
) -> Vec<u8> {
    let statement = json!({
        "type": STATEMENT_TYPE,
        "keyId": key_id,
        "runId": seal.run_id,
        "signedAt": seal.signed_at,
        "nonce": seal.nonce,
        "evidence": evidence,
        "attestation": digests,
    });
    jcs::canonical(&statement).into_bytes()
}

/// Signs an envelope in place: `provenance.attestation.signature`, and, for cool-workflow
/// (which keeps `provenance.handle` and drops `provenance.attestation`), the attestation and
/// the same signature in `provenance.handle.metadata`.
pub fn sign_envelope(envelope: &mut Value, key: &Key, seal: &Seal<'_>) {
    let evidence = envelope["evidence"].clone();
    let Some(attestation) = envelope["provenance"]["attestation"].as_object_mut() else {
        return;
    };
    attestation.remove("signature");
    let key_id = key.key_id();
    let digests = digests(attestation);
    let message = statement(&key_id, seal, &evidence, digests.clone());
    let signature: Signature = key.signing().sign(&message);
    let block = json!({
        "alg": "ed25519",
        "type": STATEMENT_TYPE,
        "canonicalization": "JCS (RFC 8785)",
        "keyId": key_id,
        "publicKey": hex(key.public().as_bytes()),
        "runId": seal.run_id,
        "signedAt": seal.signed_at,
        "nonce": seal.nonce,
        "evidence": evidence,
        "digests": digests,
        "value": hex(&signature.to_bytes()),
    });
    attestation.insert("signature".into(), block.clone());
    let copy = Value::Object(attestation.clone());
    if let Some(metadata) = envelope["provenance"]["handle"]["metadata"].as_object_mut() {
        let mut copy = copy;
        copy.as_object_mut().map(|a| a.remove("signature"));
        metadata.insert("attestation".into(), copy);
        metadata.insert("signature".into(), block);
    }
}

/// What the verifier asks for, besides a good signature.
#[derive(Default)]
pub struct Expect<'a> {
    pub nonce: Option<&'a str>,
    pub command: Option<&'a str>,
    /// Signed no earlier than this (seconds since the epoch).
    pub not_before: Option<i64>,
    /// Signed no later than this.
    pub not_after: Option<i64>,
}

/// A verified statement.
#[derive(Debug)]
pub struct Verified {
    pub key_id: String,
    pub run_id: String,
    pub signed_at: String,
    pub command: Option<String>,
    pub nonce: Option<String>,
    pub copies: Vec<&'static str>,
}

/// Verifies every signed copy of the attestation an envelope carries (there must be one),
/// against `public`; then that they are the same run and that the checks hold. The error is
/// one line saying what is wrong.
pub fn verify(
    envelope: &Value,
    public: &VerifyingKey,
    expect: &Expect<'_>,
) -> Result<Verified, String> {
    let provenance = &envelope["provenance"];
    let mut copies: Vec<(&'static str, &Value, &Value)> = vec![];
    if let Some(att) = provenance.get("attestation") {
        copies.push(("provenance.attestation", att, &att["signature"]));
    }
    let metadata = &provenance["handle"]["metadata"];
    if let Some(att) = metadata.get("attestation") {
        copies.push((
            "provenance.handle.metadata.attestation",
            att,
            &metadata["signature"],
        ));
    }
    if copies.is_empty() {
        return Err("no attestation in the envelope".into());
    }
    let mut verified: Vec<Verified> = vec![];
    for (place, att, block) in &copies {
        let v = verify_copy(place, att, block, public)?;
        verified.push(v);
    }
    let first = &verified[0];
    if let Some(other) = verified
        .iter()
        .find(|v| v.run_id != first.run_id || v.signed_at != first.signed_at)
    {
        return Err(format!(
            "the envelope's two signed attestations are of different runs ({} and {}): one was swapped in",
            first.run_id, other.run_id
        ));
    }
    // The envelope's plain evidence must be what was signed.
    let signed_evidence = &copies[0].2["evidence"];
    for (place, shown) in [
        ("evidence", &envelope["evidence"]),
        ("result.evidence", &envelope["result"]["evidence"]),
    ] {
        if !shown.is_null() && shown != signed_evidence {
            return Err(format!(
                "tampered field: {place} differs from the signed evidence"
            ));
        }
    }
    let mut out = verified.into_iter().next().expect("one copy at least");
    out.copies = copies.iter().map(|c| c.0).collect();
    if let Some(want) = expect.nonce {
        match &out.nonce {
            Some(n) if n == want => {}
            Some(n) => {
                return Err(format!(
                    "replayed or foreign: signed for nonce {n:?}, not {want:?}"
                ))
            }
            None => {
                return Err(format!(
                    "replayed or foreign: signed without a nonce, not for {want:?}"
                ))
            }
        }
    }
    if let Some(want) = expect.command {
        match &out.command {
            Some(c) if c == want => {}
            Some(c) => return Err(format!("another command: signed for {c:?}, not {want:?}")),
            None => return Err(format!("no command ran (a refusal), not {want:?}")),
        }
    }
    if expect.not_before.is_some() || expect.not_after.is_some() {
        let at = parse_time(&out.signed_at)
            .ok_or_else(|| format!("signedAt {:?} is not a time cw-exec writes", out.signed_at))?;
        if let Some(nb) = expect.not_before {
            if at < nb {
                return Err(format!(
                    "outside the window: signed at {}, too long ago",
                    out.signed_at
                ));
            }
        }
        if let Some(na) = expect.not_after {
            if at > na {
                return Err(format!(
                    "outside the window: signed at {}, in the future",
                    out.signed_at
                ));
            }
        }
    }
    Ok(out)
}

fn verify_copy(
    place: &str,
    attestation: &Value,
    block: &Value,
    public: &VerifyingKey,
) -> Result<Verified, String> {
    let Some(att) = attestation.as_object() else {
        return Err(format!("{place}: the attestation is not an object"));
    };
    if block.is_null() {
        let why = att
            .get("notes")
            .and_then(Value::as_array)
            .and_then(|n| {
                n.iter()
                    .filter_map(Value::as_str)
                    .find(|s| s.starts_with("unsigned:"))
            })
            .map(|s| format!(" ({s})"))
            .unwrap_or_default();
        return Err(format!("{place}: not signed{why}"));
    }
    let field = |name: &str| -> Result<&str, String> {
        block[name]
            .as_str()
            .ok_or_else(|| format!("{place}: the signature has no {name}"))
    };
    if block["alg"] != "ed25519" || block["type"] != STATEMENT_TYPE {
        return Err(format!(
            "{place}: not a cw-exec signature (alg {}, type {})",
            block["alg"], block["type"]
        ));
    }
    let key_id = field("keyId")?;
    let expected_id = self::key_id(public);
    if key_id != expected_id {
        return Err(format!(
            "wrong key: signed by key {key_id}, verifying with key {expected_id}"
        ));
    }
    let seal = Seal {
        run_id: field("runId")?,
        signed_at: field("signedAt")?,
        nonce: match &block["nonce"] {
            Value::Null => None,
            Value::String(s) => Some(s.as_str()),
            _ => return Err(format!("{place}: the signature's nonce is not a string")),
        },
    };
    let value: [u8; 64] = unhex(field("value")?)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| format!("{place}: the signature value is not 128 hex digits"))?;
    let evidence = &block["evidence"];
    let Some(signed) = block["digests"].as_object() else {
        return Err(format!("{place}: the signature has no digests"));
    };
    // First the signature over what the block says was signed; then the attestation against
    // those (now authentic) digests, member by member, to name what changed.
    let message = statement(key_id, &seal, evidence, signed.clone());
    if public
        .verify(&message, &Signature::from_bytes(&value))
        .is_err()
    {
        return Err(format!("{place}: tampered: the signature does not match the signed statement (its run id, time, nonce, evidence or digests were changed)"));
    }
    let ours = digests(att);
    let mut changed: Vec<String> = ours
        .iter()
        .filter(|(k, v)| signed.get(*k) != Some(v))
        .map(|(k, _)| k.clone())
        .chain(signed.keys().filter(|k| !ours.contains_key(*k)).cloned())
        .collect();
    changed.sort();
    if !changed.is_empty() {
        return Err(format!(
            "tampered field: {} changed since it was signed",
            changed
                .iter()
                .map(|k| format!("{place}.{k}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let command = evidence
        .as_array()
        .and_then(|e| {
            e.iter()
                .filter_map(Value::as_str)
                .find_map(|s| s.strip_prefix("command:"))
        })
        .map(str::to_string);
    Ok(Verified {
        key_id: key_id.into(),
        run_id: seal.run_id.into(),
        signed_at: seal.signed_at.into(),
        command,
        nonce: seal.nonce.map(str::to_string),
        copies: vec![],
    })
}

/// Seconds since the epoch of a time in the form cw-exec writes (`2026-11-29T15:55:47.123Z`).
pub fn parse_time(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || !s.ends_with('Z')
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm), the inverse of attest::now_iso8601.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// A duration like `90`, `90s`, `10m`, `2h`, `7d`, in seconds.
pub fn parse_duration(s: &str) -> Option<i64> {
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: i64 = digits.parse().ok()?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// A nonce as the caller gave it: 1 to MAX_NONCE bytes, no control characters.
pub fn check_nonce(nonce: &str) -> Result<(), String> {
    if nonce.is_empty() || nonce.len() > MAX_NONCE || nonce.chars().any(char::is_control) {
        return Err(format!(
            "--nonce: must be 1 to {MAX_NONCE} bytes of text without control characters (got {} bytes)",
            nonce.len()
        ));
    }
    Ok(())
}

/// A fresh run id: 16 random bytes in hex.
pub fn new_run_id() -> String {
    let mut id = [0u8; 16];
    if crate::sys::random_bytes(&mut id).is_err() {
        // The clock and pid are unique enough for an id that is not a secret.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        return format!("{t:032x}{:08x}", std::process::id());
    }
    hex(&id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Key {
        Key::new([7u8; 32], PathBuf::from("/nonexistent"))
    }

    fn envelope() -> Value {
        json!({
            "schemaVersion": 1,
            "status": "completed",
            "result": {"summary": "x", "evidence": ["command:make test", "exitCode:0", "stdoutSha256:sha256:00"]},
            "evidence": ["command:make test", "exitCode:0", "stdoutSha256:sha256:00"],
            "provenance": {
                "attestation": {"enforced": ["read", "write"], "kernel": {"landlock": {"abi": 7}}, "notes": []},
                "handle": {"kind": "process", "metadata": {"exitCode": 0}},
            },
        })
    }

    fn signed(nonce: Option<&str>) -> Value {
        let mut e = envelope();
        sign_envelope(
            &mut e,
            &key(),
            &Seal {
                run_id: "r1",
                signed_at: "2026-11-29T15:55:47.123Z",
                nonce,
            },
        );
        e
    }

    #[test]
    fn a_signed_envelope_verifies_in_both_places() {
        let e = signed(Some("n1"));
        let v = verify(
            &e,
            &key().public(),
            &Expect {
                nonce: Some("n1"),
                command: Some("make test"),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(v.copies.len(), 2);
        // cool-workflow keeps only the handle: that alone verifies.
        let mut handle_only = e.clone();
        handle_only["provenance"]
            .as_object_mut()
            .unwrap()
            .remove("attestation");
        verify(&handle_only, &key().public(), &Expect::default()).unwrap();
    }

    #[test]
    fn each_change_is_caught_and_named() {
        let e = signed(Some("n1"));
        let mut t = e.clone();
        t["provenance"]["attestation"]["enforced"] = json!(["read", "write", "command"]);
        let err = verify(&t, &key().public(), &Expect::default()).unwrap_err();
        assert!(
            err.contains("tampered field: provenance.attestation.enforced"),
            "{err}"
        );
        let mut t = e.clone();
        t["provenance"]["handle"]["metadata"]["attestation"]["kernel"]["landlock"]["abi"] =
            json!(9);
        let err = verify(&t, &key().public(), &Expect::default()).unwrap_err();
        assert!(
            err.contains("tampered field: provenance.handle.metadata.attestation.kernel"),
            "{err}"
        );
        let mut t = e.clone();
        t["provenance"]["attestation"]["extra"] = json!(true);
        let err = verify(&t, &key().public(), &Expect::default()).unwrap_err();
        assert!(err.contains(".extra"), "{err}");
        let mut t = e.clone();
        t["evidence"][1] = json!("exitCode:1");
        assert!(verify(&t, &key().public(), &Expect::default())
            .unwrap_err()
            .contains("evidence"));
        let other = SigningKey::from_bytes(&[8u8; 32]).verifying_key();
        assert!(verify(&e, &other, &Expect::default())
            .unwrap_err()
            .contains("wrong key"));
        let err = verify(
            &e,
            &key().public(),
            &Expect {
                nonce: Some("n2"),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(err.contains("replayed"), "{err}");
        let err = verify(
            &e,
            &key().public(),
            &Expect {
                command: Some("rm -rf /"),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(err.contains("another command"), "{err}");
        let at = parse_time("2026-11-29T15:55:47.123Z").unwrap();
        let err = verify(
            &e,
            &key().public(),
            &Expect {
                not_before: Some(at + 1),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(err.contains("outside the window"), "{err}");
        // Swapping in another run's signed attestation for one copy.
        let mut other_run = envelope();
        sign_envelope(
            &mut other_run,
            &key(),
            &Seal {
                run_id: "r2",
                signed_at: "2026-11-29T15:55:48.000Z",
                nonce: Some("n1"),
            },
        );
        let mut t = e.clone();
        t["provenance"]["handle"]["metadata"] =
            other_run["provenance"]["handle"]["metadata"].clone();
        assert!(verify(&t, &key().public(), &Expect::default())
            .unwrap_err()
            .contains("different runs"));
        // The nonce in the signature block changed to the verifier's.
        let mut t = e.clone();
        t["provenance"]["attestation"]["signature"]["nonce"] = json!("n2");
        assert!(verify(
            &t,
            &key().public(),
            &Expect {
                nonce: Some("n2"),
                ..Default::default()
            }
        )
        .is_err());
    }

    #[test]
    fn times_and_durations_parse() {
        assert_eq!(parse_time("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(parse_time("2000-03-01T00:00:01.000Z"), Some(951_868_801));
        assert_eq!(parse_time("garbage"), None);
        assert_eq!(parse_duration("10m"), Some(600));
        assert_eq!(parse_duration("90"), Some(90));
        assert_eq!(parse_duration("1w"), None);
    }
}
