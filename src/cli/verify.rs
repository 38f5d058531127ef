//! `cw-exec verify` and `cw-exec key show`: checking a signed envelope, and the public key
//! to hand to whoever checks.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::model::EXIT_REFUSED;
use crate::signing::{self, Expect, Key};

/// How far in the future a signature may lie and still be inside a `--since` window (clock
/// steps between hosts).
const CLOCK_SKEW_SECS: i64 = 60;

/// `cw-exec key show`: the caller's public key and its id (created if there is none yet).
pub fn key_show() -> i32 {
    match Key::open_or_create(nix::unistd::getuid().as_raw(), true) {
        Ok(key) => {
            let shown = serde_json::json!({
                "alg": "ed25519",
                "keyId": key.key_id(),
                "publicKey": crate::model::hex(key.public().as_bytes()),
                "keyFile": key.file(),
            });
            println!(
                "{}",
                serde_json::to_string_pretty(&shown).unwrap_or_default()
            );
            0
        }
        Err(e) => {
            eprintln!("cw-exec: key show: {e}");
            EXIT_REFUSED
        }
    }
}

/// What `cw-exec verify` was asked.
pub struct VerifyArgs<'a> {
    pub file: &'a str,
    pub nonce: Option<&'a str>,
    pub command: Option<&'a str>,
    pub since: Option<&'a str>,
    pub key: Option<&'a str>,
}

/// `cw-exec verify`: exit 0 and `valid: ...` on stdout, or 1 and `invalid: <reason>`; 125 for
/// bad arguments (a `--since` or `--key` that cannot be used).
pub fn verify(args: &VerifyArgs<'_>) -> i32 {
    let bad = |m: String| {
        eprintln!("cw-exec: verify: {m}");
        EXIT_REFUSED
    };
    let public = match args.key {
        Some(k) => match public_key_arg(k) {
            Ok(p) => p,
            Err(e) => return bad(format!("--key {k}: {e}")),
        },
        None => match Key::open_or_create(nix::unistd::getuid().as_raw(), false) {
            Ok(key) => key.public(),
            Err(e) => return bad(format!("no --key given and no local key to use: {e}")),
        },
    };
    let mut expect = Expect {
        nonce: args.nonce,
        command: args.command,
        ..Default::default()
    };
    if let Some(since) = args.since {
        let Some(secs) = signing::parse_duration(since) else {
            return bad(format!(
                "--since {since}: not a duration (a whole number with s, m, h or d, e.g. 10m)"
            ));
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        expect.not_before = Some(now.saturating_sub(secs));
        expect.not_after = Some(now + CLOCK_SKEW_SECS);
    }
    let text = if args.file == "-" {
        crate::fsio::read_limited(std::io::stdin().lock(), crate::fsio::MAX_DOCUMENT)
            .and_then(|b| String::from_utf8(b).map_err(std::io::Error::other))
    } else {
        crate::fsio::read_text(Path::new(args.file), crate::fsio::MAX_DOCUMENT)
    };
    let outcome = text
        .map_err(|e| format!("{}: {e}", args.file))
        .and_then(|t| {
            serde_json::from_str::<Value>(&t).map_err(|e| format!("{}: not JSON: {e}", args.file))
        })
        .and_then(|envelope| signing::verify(&envelope, &public, &expect));
    match outcome {
        Ok(v) => {
            let mut checked = vec![];
            if args.nonce.is_some() {
                checked.push("nonce");
            }
            if args.command.is_some() {
                checked.push("command");
            }
            if args.since.is_some() {
                checked.push("time window");
            }
            println!(
                "valid: key {}, run {}, signed at {}, {}{}; checked: signature ({}){}",
                v.key_id,
                v.run_id,
                v.signed_at,
                v.command
                    .as_deref()
                    .map(|c| format!("command {c:?}"))
                    .unwrap_or_else(|| "a refusal (no command ran)".into()),
                v.nonce
                    .as_deref()
                    .map(|n| format!(", nonce {n:?}"))
                    .unwrap_or_default(),
                v.copies.join(", "),
                checked.iter().map(|c| format!(", {c}")).collect::<String>()
            );
            0
        }
        Err(reason) => {
            println!("invalid: {reason}");
            1
        }
    }
}

/// A public key: 64 hex digits, or a file holding them or `key show`'s JSON.
fn public_key_arg(arg: &str) -> Result<ed25519_dalek::VerifyingKey, String> {
    if let Ok(k) = signing::parse_public(arg) {
        return Ok(k);
    }
    let text = crate::fsio::read_text(&PathBuf::from(arg), 64 * 1024)
        .map_err(|e| format!("neither 64 hex digits nor a readable file ({e})"))?;
    if let Ok(v) = serde_json::from_str::<Value>(&text) {
        if let Some(k) = v["publicKey"].as_str() {
            return signing::parse_public(k);
        }
    }
    signing::parse_public(&text)
}
