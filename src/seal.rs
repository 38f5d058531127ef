//! The front ends' side of signing: which key a run signs with (or why it cannot), and
//! sealing each envelope before it is written. (`verify` and `key show`: `cli::verify`.)

use serde_json::Value;

use crate::plan::Plan;
use crate::signing::{self, Key, KeyError, Seal};

/// The signing side of one run.
pub struct Signer {
    key: Result<Key, String>,
    /// Set when the plan shows that the key must not be used for this run.
    withdrawn: std::cell::OnceCell<String>,
    nonce: Option<String>,
    run_id: String,
}

impl Signer {
    /// Opens (or creates, before any sandbox of this run exists) the caller's key. A key
    /// cw-exec cannot trust is a refusal; no place for a key leaves the run unsigned, unless
    /// the caller gave a nonce (asked for a signed attestation): then that is a refusal too.
    pub fn open(nonce: Option<&str>) -> Result<Signer, String> {
        if let Some(n) = nonce {
            signing::check_nonce(n)?;
        }
        let key = match Key::open_or_create(nix::unistd::getuid().as_raw(), true) {
            Ok(k) => Ok(k),
            Err(KeyError::Untrusted(m)) => return Err(m),
            Err(KeyError::Unavailable(m)) if nonce.is_some() => {
                return Err(format!(
                    "--nonce asks for a signed attestation, but there is no signing key: {m}"
                ))
            }
            Err(KeyError::Unavailable(m)) => Err(format!("no signing key: {m}")),
        };
        Ok(Signer {
            key,
            withdrawn: std::cell::OnceCell::new(),
            nonce: nonce.map(str::to_string),
            run_id: signing::new_run_id(),
        })
    }

    /// A key inside the run's write set could have been written by the sandbox: it is not
    /// used. With a nonce, that is a refusal.
    pub fn check_plan(&self, plan: &Plan) -> Result<(), String> {
        let Ok(key) = &self.key else {
            return Ok(());
        };
        let inside = plan
            .host_write_grants()
            .find(|g| key.dir.starts_with(&g.path));
        let Some(grant) = inside else {
            return Ok(());
        };
        let why = format!(
            "the signing key {} lies inside this run's write grant {}: a sandbox could write it",
            key.file().display(),
            grant.path.display()
        );
        if self.nonce.is_some() {
            return Err(format!(
                "--nonce asks for a signed attestation, but {why}; keep XDG_CONFIG_HOME (or HOME) out of the write grants"
            ));
        }
        let _ = self.withdrawn.set(why);
        Ok(())
    }

    /// Signs the envelope, or notes why it is unsigned (also on stderr).
    pub fn seal(&self, envelope: &mut Value) {
        let key = match (&self.key, self.withdrawn.get()) {
            (Ok(_), Some(why)) => Err(why),
            (Ok(key), None) => Ok(key),
            (Err(why), _) => Err(why),
        };
        match key {
            Ok(key) => {
                let signed_at = crate::attest::now_iso8601();
                signing::sign_envelope(
                    envelope,
                    key,
                    &Seal {
                        run_id: &self.run_id,
                        signed_at: &signed_at,
                        nonce: self.nonce.as_deref(),
                    },
                );
            }
            Err(why) => {
                eprintln!("cw-exec: the attestation is not signed: {why}");
                if let Some(notes) = envelope["provenance"]["attestation"]["notes"].as_array_mut() {
                    notes.push(Value::from(format!("unsigned: {why}")));
                }
            }
        }
    }
}
