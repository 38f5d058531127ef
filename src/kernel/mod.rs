//! One file per kernel facility. The order they are applied in is in `child::contain`.

pub mod cgroup;
pub mod landlock;
pub mod mount_view;
pub mod pathfd;
pub mod quotas;
pub mod seccomp;
