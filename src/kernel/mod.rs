//! One file per kernel facility, each seeing only the typed core. The order they are applied in is in `containment`.

pub mod cgroup;
pub mod landlock;
pub mod mount_view;
pub mod netns;
pub mod pathfd;
pub mod placement;
pub mod pty;
pub mod quotas;
pub mod seccomp;
pub mod seccomp_rules;
pub mod userns;
