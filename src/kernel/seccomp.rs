//! seccomp: the program every sandboxed command runs under (the rules, and why each is
//! there: `seccomp_rules`), as installed, hashed and described for the attestation.
//!
//! Every variant of the program is compiled by the build script (`build.rs`, from
//! `seccomp_rules.rs`, which compiles the rules into BPF itself: a binary search over
//! syscall numbers), so planning a run looks its program up instead of compiling it;
//! where the build could not (a cross-compilation: the build script's libc constants are
//! the build host's), it is compiled here at run time, from the same rules.
//! The program is installed as the very last step before the read-back and `execve`.

use seccompiler::BpfProgram;
use sha2::{Digest, Sha256};

use super::seccomp_rules::{self, Families};
use crate::model::NetMode;

/// Every variant built at build time: (families, forbid_exec_memfd, native_code,
/// instructions as (code, jt, jf, k), what it denies).
type Precompiled = (
    Families,
    bool,
    bool,
    &'static [(u16, u8, u8, u32)],
    &'static [&'static str],
);
static PRECOMPILED: &[Precompiled] = include!(concat!(env!("OUT_DIR"), "/seccomp_programs.rs"));

/// The compiled seccomp program (one filter), ready to install.
#[derive(Clone)]
pub struct SeccompProgram {
    pub filters: Vec<BpfProgram>,
    /// sha256 over every instruction of every filter, in install order (computed when first
    /// shown: see `ProgramDigest`).
    pub sha256: ProgramDigest,
    /// Human-readable list of what the filters deny, for `explain` and the attestation.
    pub denies: Vec<String>,
}

/// The sha256 of a program's instructions (each as code, jt, jf, k, little-endian), as hex,
/// computed the first time it is shown (the attestation, `explain`): a run that writes
/// neither never hashes. (The sha2 crate's first hash asks the CPU for SHA extensions with
/// `cpuid`, which in a virtual machine traps to the hypervisor: about 25 µs per run here.)
#[derive(Clone)]
pub struct ProgramDigest {
    /// The bytes hashed.
    bytes: Vec<u8>,
    hex: std::sync::OnceLock<String>,
}

impl ProgramDigest {
    fn of(filters: &[BpfProgram]) -> ProgramDigest {
        let mut bytes = Vec::with_capacity(filters.iter().map(|p| p.len() * 8).sum());
        for program in filters {
            for insn in program {
                bytes.extend_from_slice(&insn.code.to_le_bytes());
                bytes.extend_from_slice(&[insn.jt, insn.jf]);
                bytes.extend_from_slice(&insn.k.to_le_bytes());
            }
        }
        ProgramDigest {
            bytes,
            hex: std::sync::OnceLock::new(),
        }
    }

    /// The digest, as lowercase hex.
    pub fn as_str(&self) -> &str {
        self.hex
            .get_or_init(|| crate::model::hex(&Sha256::digest(&self.bytes)))
    }
}

impl PartialEq for ProgramDigest {
    fn eq(&self, other: &ProgramDigest) -> bool {
        self.as_str() == other.as_str()
    }
}

impl std::fmt::Display for ProgramDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for ProgramDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl serde::Serialize for ProgramDigest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl SeccompProgram {
    /// `forbid_exec_memfd`: refuse memfd_create without MFD_NOEXEC_SEAL. Landlock does not
    /// mediate exec of a memfd; where cw-exec cannot set vm.memfd_noexec=2 for the sandbox's
    /// PID namespace (only the host's root may write that sysctl), this is the fallback.
    ///
    /// `native_code`: false refuses every way to executable memory the program could have
    /// written (see `seccomp_rules::native_code_rules`).
    pub fn compile(
        net: NetMode,
        forbid_exec_memfd: bool,
        native_code: bool,
    ) -> Result<SeccompProgram, String> {
        let families = match net {
            NetMode::None => Families::Unix,
            NetMode::Loopback | NetMode::Allowlist => Families::UnixAndInet,
            NetMode::Host => Families::Any,
        };
        let precompiled = PRECOMPILED
            .iter()
            .find(|(f, m, n, _, _)| (*f, *m, *n) == (families, forbid_exec_memfd, native_code));
        let (program, denies) = match precompiled {
            Some((_, _, _, insns, denies)) => (
                insns
                    .iter()
                    .map(|&(code, jt, jf, k)| seccompiler::sock_filter { code, jt, jf, k })
                    .collect(),
                denies.iter().map(|d| d.to_string()).collect(),
            ),
            None => {
                let (insns, denies) =
                    seccomp_rules::build(families, forbid_exec_memfd, native_code)?;
                let program = insns
                    .iter()
                    .map(|i| seccompiler::sock_filter {
                        code: i.code,
                        jt: i.jt,
                        jf: i.jf,
                        k: i.k,
                    })
                    .collect();
                (program, denies)
            }
        };
        let filters: Vec<BpfProgram> = vec![program];
        let sha256 = ProgramDigest::of(&filters);
        Ok(SeccompProgram {
            filters,
            sha256,
            denies,
        })
    }

    /// Installs every filter on the calling thread. no_new_privs must already be set.
    pub fn install(&self) -> Result<(), String> {
        for program in &self.filters {
            seccompiler::apply_filter(program).map_err(|e| format!("seccomp: {e}"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The build script's programs are exactly what the rules build now, for every variant
    /// (a stale build, or a build script that drifted from the rules, fails here); what
    /// each program answers is checked against the rules in `seccomp_rules::tests`.
    #[test]
    fn precompiled_programs_equal_the_rules() {
        assert_eq!(
            PRECOMPILED.len(),
            12,
            "every variant is precompiled on this host"
        );
        for families in Families::ALL {
            for memfd in [false, true] {
                for native in [false, true] {
                    let (program, denies) = seccomp_rules::build(families, memfd, native).unwrap();
                    let (_, _, _, insns, pre_denies) = PRECOMPILED
                        .iter()
                        .find(|(f, m, n, _, _)| (*f, *m, *n) == (families, memfd, native))
                        .unwrap();
                    let insns: Vec<_> = insns.to_vec();
                    let built: Vec<_> = program.iter().map(|i| (i.code, i.jt, i.jf, i.k)).collect();
                    assert_eq!(insns, built, "{families:?} {memfd} {native}");
                    assert_eq!(pre_denies.to_vec(), denies, "{families:?} {memfd} {native}");
                    // And what is installed is that program, instruction for instruction.
                    let net = match families {
                        Families::Unix => NetMode::None,
                        Families::UnixAndInet => NetMode::Loopback,
                        Families::Any => NetMode::Host,
                    };
                    let installed = SeccompProgram::compile(net, memfd, native).unwrap();
                    let installed: Vec<_> = installed.filters[0]
                        .iter()
                        .map(|i| (i.code, i.jt, i.jf, i.k))
                        .collect();
                    assert_eq!(installed, built, "{families:?} {memfd} {native}");
                }
            }
        }
    }

    #[test]
    fn compiles_for_every_net_mode_with_distinct_hashes() {
        let none = SeccompProgram::compile(NetMode::None, false, true).unwrap();
        let lo = SeccompProgram::compile(NetMode::Loopback, false, true).unwrap();
        let host = SeccompProgram::compile(NetMode::Host, false, true).unwrap();
        assert_ne!(
            none.sha256,
            SeccompProgram::compile(NetMode::None, true, true)
                .unwrap()
                .sha256
        );
        assert_ne!(
            none.sha256,
            SeccompProgram::compile(NetMode::None, false, false)
                .unwrap()
                .sha256
        );
        assert_eq!(none.filters.len(), 1);
        assert_ne!(none.sha256, lo.sha256);
        assert_ne!(lo.sha256, host.sha256);
    }

    /// The digest, computed when first shown, is the sha256 of every instruction (code, jt,
    /// jf, k, little-endian) of every filter in install order, as it was computed eagerly.
    #[test]
    fn the_lazy_digest_is_the_instructions_sha256() {
        for (net, memfd, native) in [(NetMode::None, false, true), (NetMode::Host, true, false)] {
            let p = SeccompProgram::compile(net, memfd, native).unwrap();
            let mut hasher = Sha256::new();
            for program in &p.filters {
                for insn in program {
                    hasher.update(insn.code.to_le_bytes());
                    hasher.update([insn.jt, insn.jf]);
                    hasher.update(insn.k.to_le_bytes());
                }
            }
            let want = crate::model::hex(&hasher.finalize());
            assert_eq!(p.sha256.as_str(), want);
            assert_eq!(p.sha256.to_string(), want);
            assert_eq!(
                serde_json::to_value(&p.sha256).unwrap(),
                serde_json::json!(want)
            );
        }
    }
}
