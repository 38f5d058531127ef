//! Phase timestamps for `--timings`: where the time of a run goes. Marks are taken with
//! CLOCK_MONOTONIC, which every process of the run shares, so marks from cw-exec, init and
//! the command's process line up; the command's process sends its (and, by inheritance,
//! init's) marks to cw-exec before exec.

use std::sync::Mutex;

static MARKS: Mutex<Vec<(String, u64)>> = Mutex::new(Vec::new());

/// Nanoseconds on the monotonic clock.
pub fn now_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

/// Records that `phase` just ended.
pub fn mark(phase: &str) {
    if let Ok(mut m) = MARKS.lock() {
        m.push((phase.to_string(), now_ns()));
    }
}

/// The marks recorded in this process (and inherited from its parent at fork).
pub fn take() -> Vec<(String, u64)> {
    MARKS
        .lock()
        .map(|mut m| std::mem::take(&mut *m))
        .unwrap_or_default()
}

/// Prints the marks as a table of phase durations, on stderr.
pub fn print(mut marks: Vec<(String, u64)>) {
    marks.sort_by_key(|(_, t)| *t);
    // The sandbox's processes are forks of cw-exec and carry copies of its early marks.
    marks.dedup();
    let Some(start) = marks.first().map(|(_, t)| *t) else {
        return;
    };
    eprintln!("cw-exec timings (ms since start; phase duration):");
    let mut prev = start;
    for (phase, t) in &marks {
        eprintln!(
            "  {:>8.3}  {:>7.3}  {phase}",
            (t - start) as f64 / 1e6,
            (t - prev) as f64 / 1e6
        );
        prev = *t;
    }
}
