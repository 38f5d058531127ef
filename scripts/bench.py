#!/usr/bin/env python3
"""cw-exec benchmarks against bare exec and its peers, every comparison interleaved.

Run through scripts/bench, which installs the peers it can (bubblewrap, util-linux's unshare,
GNU time, curl), builds cw-exec (release) and this directory's C programs into target/bench/:
  interleave        the runner: each command once per round, in a fresh random order each
                    round, posix_spawn..wait4 timed (bench/interleave.c)
  landlock-seccomp  a minimal Landlock + seccomp + no_new_privs wrapper (bench/landlock-seccomp.c)
  floor             the reference floor prototype, compiled from ../shared/bench/floor.c when
                    that file is present (reference material, not part of the project)

Measures issue 17's targets: spawn of /bin/true, pass-through of 1 GiB with --envelope,
32 concurrent runs, peak RSS; plus the egress proxy's throughput and cw-exec's phase split.
A peer that is missing or fails its check run is skipped with a note; no number is made up.

Writes docs/bench/results-<date>.json and the generated block of docs/performance.md.
BENCH_QUICK=1: a short smoke pass; writes target/bench/results-<date>-quick.json and prints
the tables, leaving docs/ alone. BENCH_ROUNDS=N: spawn rounds (default 500). BENCH_SEED=N:
the shuffle's seed. BENCH_SKIP=NAME,...: leave these commands out (as if missing).
BENCH_MACHINE_NOTE=TEXT: a description of the machine and what else runs on it, for the record.
Every number is measured in this run; nothing here asserts a timing.
"""

import datetime
import hashlib
import json
import os
import platform
import random
import re
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CW = os.path.join(ROOT, "target", "bench", "cw-exec")  # an installed copy: scripts/bench
BUILD = os.path.join(ROOT, "target", "bench")
RUNNER = os.path.join(BUILD, "interleave")
WRAPPER = os.path.join(BUILD, "landlock-seccomp")
FLOOR = os.path.join(BUILD, "floor")
QUICK = os.environ.get("BENCH_QUICK") == "1"
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "30" if QUICK else "500"))
SEED = int(os.environ.get("BENCH_SEED", str(random.SystemRandom().randrange(1, 2**63))))
SKIP = {n.strip() for n in os.environ.get("BENCH_SKIP", "").split(",") if n.strip()}
# The floor prototype binds these two directories; every peer gets the same ones.
R, T = "/var/tmp/pt/R", "/var/tmp/pt/T"
TRUE = "/bin/true"

NOTES = []  # what was skipped, and why


def note(msg):
    if msg in NOTES:
        return
    NOTES.append(msg)
    print(f"bench: {msg}", file=sys.stderr)


def sh(argv):
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        return (p.stdout or p.stderr).strip().splitlines()[0] if (p.stdout or p.stderr).strip() else ""
    except (OSError, subprocess.TimeoutExpired):
        return None


def check(name, argv, cwd=None):
    """Runs argv once; returns True when it exits 0, else notes why and returns False."""
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=cwd, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        note(f"skipped {name}: {e}")
        return False
    if p.returncode != 0:
        last = (p.stderr.strip().splitlines() or ["(no message)"])[-1]
        note(f"skipped {name}: its check run exited {p.returncode}: {last}")
        return False
    return True


def usable(cmds, cwd=None):
    """Keeps the commands of {name: argv} whose program exists and whose check run succeeds."""
    out = {}
    for name, argv in cmds.items():
        if argv is None:
            continue
        if name in SKIP:
            note(f"skipped {name}: named in BENCH_SKIP")
            continue
        prog = argv[0]
        if not (os.path.isabs(prog) and os.access(prog, os.X_OK)):
            note(f"skipped {name}: {prog} is not installed or not built")
            continue
        if check(name, argv, cwd):
            out[name] = argv
    return out


def write_spec(cmds):
    f = tempfile.NamedTemporaryFile("w", suffix=".tsv", delete=False, dir=BUILD)
    for name, argv in cmds.items():
        assert "," not in name and "\t" not in name and not any("\t" in a or "\n" in a for a in argv)
        f.write("\t".join([name, *argv]) + "\n")
    f.close()
    return f.name


def interleave(mode, cmds, rounds, warmup, cwd=None, concurrency=None, runs=None):
    """Runs target/bench/interleave; returns {name: [row...]}, rows being the CSV's fields
    after the name (spawn: seconds, status; batch: seconds, runs, failures, the machine's CPU
    busy and idle seconds over the batch), indexed by round."""
    spec = write_spec(cmds)
    out = spec[:-4] + ".csv"
    args = [RUNNER, mode, str(SEED), str(rounds), str(warmup)]
    if mode == "batch":
        args += [str(concurrency), str(runs)]
    try:
        subprocess.run(args + [spec, out], check=True, cwd=cwd)
        rows = {name: [None] * rounds for name in cmds}
        for line in open(out):
            f = line.strip().split(",")
            # spawn: seconds, status; batch: seconds, runs, failures, CPU busy and idle seconds.
            rows[f[1]][int(f[0])] = [float(f[2])] + [int(x) for x in f[3:5]] + [float(x) for x in f[5:]]
        return rows
    finally:
        for p in (spec, out):
            if os.path.exists(p):
                os.unlink(p)


def quantile(xs, q):
    """Linear interpolation between closest ranks of sorted xs."""
    xs = sorted(xs)
    if len(xs) == 1:
        return xs[0]
    pos = q * (len(xs) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summary(xs):
    return {
        "n": len(xs),
        "mean": statistics.fmean(xs),
        "median": statistics.median(xs),
        "p5": quantile(xs, 0.05),
        "p95": quantile(xs, 0.95),
        "stdev": statistics.pstdev(xs),
    }


def paired(rows, a, b, f):
    """Per-round f(a's row, b's row) over the rounds where both succeeded: median and mean."""
    vals = [f(x, y) for x, y in zip(rows[a], rows[b]) if x is not None and y is not None and x[-1] == 0 and y[-1] == 0]
    if not vals:
        return None
    return {"median": statistics.median(vals), "mean": statistics.fmean(vals), "rounds": len(vals)}


def cw(*args, tail=(TRUE,)):
    return [CW, "run", *args, "--", *tail]


FULL = ["--read", R, "--write", T, "--net", "none", "--timeout", "10"]
BWRAP = shutil.which("bwrap")
UNSHARE = shutil.which("unshare")


def spawn_commands():
    """Issue 17's spawn comparison, one policy shape: read-only system, R readable, T writable,
    no network, a clean environment where the tool offers one."""
    bwrap = None
    if BWRAP:
        bwrap = [BWRAP, "--ro-bind", "/", "/", "--bind", T, T, "--dev", "/dev", "--proc", "/proc",
                 "--unshare-all", "--unshare-user", "--die-with-parent", "--new-session", "--clearenv",
                 "--cap-drop", "ALL", TRUE]
    unshare = None
    if UNSHARE:
        # All seven namespace kinds, root mapped, a fresh /proc; no mount view, no Landlock/seccomp.
        unshare = [UNSHARE, "--user", "--map-root-user", "--mount", "--pid", "--fork", "--net", "--ipc",
                   "--uts", "--cgroup", "--mount-proc", TRUE]
    floor_present = os.path.exists(FLOOR)
    if not floor_present:
        note("skipped the reference floor rows: target/bench/floor was not built (its source, "
             "../shared/bench/floor.c or BENCH_FLOOR_SRC, is absent or did not compile: see scripts/bench's output)")
    if not BWRAP:
        note("skipped bwrap: not installed")
    if not UNSHARE:
        note("skipped unshare: not installed")
    return {
        "bare": [TRUE],
        "unshare": unshare,
        "bwrap": bwrap,
        "landlock-seccomp wrapper": [WRAPPER, "-r", R, "-w", T, "--", TRUE],
        "reference floor": [FLOOR, "-1", "UVEPNITCnLZcsF", "--", TRUE] if floor_present else None,
        "reference floor + cgroup limits": [FLOOR, "-1", "UVEPNITCnLZcsFG", "--", TRUE] if floor_present else None,
        "reference floor (landlock tier shape)": [FLOOR, "-1", "LZncsF", "--", TRUE] if floor_present else None,
        "cw-exec full": cw(*FULL),
        "cw-exec full + limits": cw(*FULL, "--memory", "256M", "--pids", "64"),
        "cw-exec landlock tier": cw("--tier", "landlock", *FULL),
    }


SPAWN_WHAT = {
    "bare": "`/bin/true` itself",
    "unshare": "`unshare --user --map-root-user --mount --pid --fork --net --ipc --uts --cgroup --mount-proc` (namespaces only)",
    "bwrap": "`bwrap --ro-bind / / --bind T T --dev /dev --proc /proc --unshare-all --unshare-user --die-with-parent --new-session --clearenv --cap-drop ALL`",
    "landlock-seccomp wrapper": "`target/bench/landlock-seccomp -r R -w T` (bench/landlock-seccomp.c: Landlock with / read-only, R read-only, T read-write, no TCP, scopes; no_new_privs; a 45-call seccomp deny filter; execve)",
    "reference floor": "`floor -1 UVEPNITCnLZcsF` (../shared/bench/floor.c: seven namespaces, tmpfs-root view, Landlock, seccomp, capability drop, init + command)",
    "reference floor + cgroup limits": "the same plus `G`: a cgroup v1 memory+pids group made, limited, joined and removed",
    "reference floor (landlock tier shape)": "`floor -1 LZncsF`: Landlock, seccomp, no_new_privs, capability drop, setsid, init + command, no namespaces",
    "cw-exec full": "`cw-exec run --read R --write T --net none --timeout 10`",
    "cw-exec full + limits": "the same with `--memory 256M --pids 64`",
    "cw-exec landlock tier": "the same with `--tier landlock` (no namespaces)",
}


def spawn(work):
    cmds = usable(spawn_commands(), cwd=T)
    print(f"spawn: {len(cmds)} commands x {ROUNDS} rounds, interleaved ...", file=sys.stderr)
    rows = interleave("spawn", cmds, ROUNDS, 3 if QUICK else 20, cwd=T)
    out = {}
    for name, rs in rows.items():
        ok = [r[0] * 1000 for r in rs if r is not None and r[1] == 0]
        failed = sum(1 for r in rs if r is not None and r[1] != 0)
        if not ok:
            note(f"spawn: every run of {name} failed; no numbers for it")
            continue
        out[name] = {**summary(ok), "failed": failed, "argv": cmds[name]}
    for ref in ("reference floor", "bwrap", "landlock-seccomp wrapper"):
        if ref not in out:
            continue
        key = {"reference floor": "floor", "bwrap": "bwrap", "landlock-seccomp wrapper": "wrapper"}[ref]
        for name in out:
            out[name][f"x_{key}"] = {
                "of_medians": out[name]["median"] / out[ref]["median"],
                "of_means": out[name]["mean"] / out[ref]["mean"],
                "per_round": paired(rows, name, ref, lambda a, b: a[0] / b[0]),
            }
    return out


PHASE_GAP = 0.05


def phases(runs):
    """Where the time goes inside cw-exec: --timings of the full shape, per phase. The runs are
    PHASE_GAP apart: a cgroup migration finds the kernel's fast path when another one happened
    moments before, so back-to-back runs would hide the cost an isolated run (and a run in the
    interleaved measurement, between other tools) pays."""
    durations, order = {}, []
    for _ in range(runs):
        time.sleep(PHASE_GAP)
        err = subprocess.run(cw("--timings", *FULL), capture_output=True, text=True, cwd=T).stderr
        for line in err.splitlines():
            m = re.match(r"\s+([\d.]+)\s+([\d.]+)\s+(.*)$", line)
            if m:
                name = m.group(3)
                if name not in durations:
                    durations[name] = []
                    order.append(name)
                durations[name].append(float(m.group(2)))
    return [{"phase": n, "median_ms": statistics.median(durations[n]), "mean_ms": statistics.fmean(durations[n]), "runs": len(durations[n])} for n in order]


def make_file(path, mib, random_bytes):
    with open(path, "wb") as f:
        block = os.urandom(1 << 20) if random_bytes else bytes(1 << 20)
        for _ in range(mib):
            f.write(block)


def passthrough(work, mib, rounds):
    """mib MiB of random data: `cat | cat` against `cw-exec run --envelope` (stdout relayed and
    SHA-256 hashed) piped into the same `cat`, interleaved pairs."""
    data = os.path.join(work, "data.bin")
    env_file = os.path.join(work, "envelope.json")
    make_file(data, mib, True)
    q = shlex.quote
    cw_cmd = " ".join(q(a) for a in cw("--read", work, "--net", "none", "--envelope", env_file, tail=("cat", data)))
    cmds = {"cat | cat": ["/bin/sh", "-c", f"cat {q(data)} | cat > /dev/null"],
            "cw-exec --envelope": ["/bin/sh", "-c", f"{cw_cmd} | cat > /dev/null"]}
    if BWRAP:
        cmds["bwrap"] = ["/bin/sh", "-c", f"{BWRAP} --ro-bind / / --dev /dev --unshare-all cat {q(data)} | cat > /dev/null"]
    cmds = usable(cmds, cwd=work)
    out = {"mib": mib}
    if "cat | cat" not in cmds or "cw-exec --envelope" not in cmds:
        note("pass-through: not measured (a check run failed)")
        os.unlink(data)
        return out
    print(f"pass-through: {mib} MiB x {rounds} rounds, interleaved ...", file=sys.stderr)
    rows = interleave("spawn", cmds, rounds, 1, cwd=work)
    for name, rs in rows.items():
        secs = [r[0] for r in rs if r[1] == 0]
        if secs:
            out[name] = {**summary([mib / s for s in secs]), "failed": len(rs) - len(secs)}
    for name in cmds:
        if name != "cat | cat" and name in out:
            out[name]["x_cat"] = {
                "of_medians": out[name]["median"] / out["cat | cat"]["median"],
                "per_round": paired(rows, name, "cat | cat", lambda a, b: b[0] / a[0]),
            }
    rss = rss_of(["/bin/sh", "-c", f"{cw_cmd} | cat > /dev/null"], work)
    if rss is not None:
        out["cw-exec --envelope"]["peak_rss_kib"] = rss
    os.unlink(data)
    return out


TIME = "/usr/bin/time"


def rss_of(argv, cwd):
    """Peak RSS in KiB by GNU time: the largest of the process and the descendants it waited
    for, as `/usr/bin/time -f %M` reports it (for sh -c '... | ...': the largest in the pipe)."""
    with tempfile.NamedTemporaryFile(suffix=".rss", dir=BUILD) as f:
        p = subprocess.run([TIME, "-f", "%M", "-o", f.name, *argv], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if p.returncode != 0:
            return None
        return int(open(f.name).read().split()[-1])


def peak_rss(cmds, rounds):
    if not os.access(TIME, os.X_OK):
        note("peak RSS: not measured (GNU time is not installed at /usr/bin/time)")
        return {}
    print(f"peak RSS: {len(cmds)} commands x {rounds} rounds, interleaved ...", file=sys.stderr)
    vals = {name: [] for name in cmds}
    rng = random.Random(SEED)
    for _ in range(rounds):
        names = list(cmds)
        rng.shuffle(names)
        for name in names:
            v = rss_of(cmds[name], T)
            if v is not None:
                vals[name].append(v)
    return {name: {"median_kib": statistics.median(v), "min_kib": min(v), "max_kib": max(v), "n": len(v)} for name, v in vals.items() if v}


def concurrency(spawn_cmds, level, runs, rounds):
    """runs /bin/true runs with `level` of them in flight, per tool, tools interleaved by round."""
    cmds = {k: spawn_cmds[k] for k in ("bare", "bwrap", "reference floor", "cw-exec full") if k in spawn_cmds}
    print(f"concurrency: {level} in flight, {runs} runs per batch, {rounds} rounds ...", file=sys.stderr)
    rows = interleave("batch", cmds, rounds, 0 if QUICK else 1, cwd=T, concurrency=level, runs=runs)
    out = {"level": level, "runs_per_batch": runs, "tools": {}}
    for name, rs in rows.items():
        rps = [r[1] / r[0] for r in rs]
        out["tools"][name] = {
            **summary(rps),
            "failed_runs": sum(r[2] for r in rs),
            # CPU time per run, all CPUs (whatever else ran is counted too), and the share of
            # the batch the CPUs sat idle: near 0, the runs are bound by CPU time, not by a
            # lock or a wait (a contended lock that sleeps leaves CPUs idle).
            "cpu_ms_per_run": statistics.median(r[3] * 1000 / r[1] for r in rs),
            "idle_share": statistics.median(r[4] / (r[3] + r[4]) for r in rs if r[3] + r[4] > 0),
        }
    for ref, key in (("bwrap", "x_bwrap"), ("reference floor", "x_floor")):
        if ref in rows:
            for name in rows:
                out["tools"][name][key] = {
                    "of_medians": out["tools"][name]["median"] / out["tools"][ref]["median"],
                    "per_round": paired(rows, name, ref, lambda a, b: b[0] / a[0]),
                }
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proxy_throughput(work, mib, rounds):
    """mib MiB over HTTP from a server on the host's loopback: curl directly, and curl inside
    cw-exec through its egress proxy (--net allow=...), interleaved."""
    curl = shutil.which("curl")
    if not curl:
        note("egress proxy: not measured (curl is not installed)")
        return {}
    data = os.path.join(work, "big.bin")
    make_file(data, mib, False)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                              cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        cmds = usable({
            "curl direct": [curl, "-sf", "-o", "/dev/null", f"http://127.0.0.1:{port}/big.bin"],
            "curl through the proxy": cw("--net", f"allow=up.test:{port}", "--net-resolve", "up.test=127.0.0.1",
                                         tail=(curl, "-sf", "-o", "/dev/null", f"http://up.test:{port}/big.bin")),
        }, cwd=work)
        if len(cmds) < 2:
            note("egress proxy: not measured (a check run failed)")
            return {}
        print(f"egress proxy: {mib} MiB x {rounds} rounds, interleaved ...", file=sys.stderr)
        rows = interleave("spawn", cmds, rounds, 0, cwd=work)
    finally:
        server.kill()
        server.wait()
        os.unlink(data)
    out = {"mib": mib}
    for name, rs in rows.items():
        ok = [mib / r[0] for r in rs if r[1] == 0]
        if ok:
            out[name] = {**summary(ok), "failed": len(rs) - len(ok)}
    if "curl direct" not in out or "curl through the proxy" not in out:
        note("egress proxy: every run of one side failed; no ratio")
        return out
    out["curl through the proxy"]["x_direct"] = {
        "of_medians": out["curl through the proxy"]["median"] / out["curl direct"]["median"],
        "per_round": paired(rows, "curl through the proxy", "curl direct", lambda a, b: b[0] / a[0]),
    }
    return out


def load():
    la = os.getloadavg()
    psi = None
    try:
        m = re.search(r"some avg10=([\d.]+) avg60=([\d.]+)", open("/proc/pressure/cpu").read())
        psi = {"some_avg10": float(m.group(1)), "some_avg60": float(m.group(2))}
    except (OSError, AttributeError):
        pass
    return {"loadavg_1_5_15": [round(x, 2) for x in la], "cpu_pressure": psi, "time": datetime.datetime.now().isoformat(timespec="seconds")}


def floor_source():
    """Which floor.c the reference floor was built from (scripts/bench's default, or BENCH_FLOOR_SRC)."""
    src = os.environ.get("BENCH_FLOOR_SRC") or os.path.join(ROOT, "..", "shared", "bench", "floor.c")
    if not (os.path.exists(FLOOR) and os.path.exists(src)):
        return None
    return {"path": os.path.abspath(src), "sha256": hashlib.sha256(open(src, "rb").read()).hexdigest()}


def machine():
    cpu = ""
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = int(re.search(r"MemTotal:\s+(\d+)", open("/proc/meminfo").read()).group(1))
    mounts = open("/proc/self/mountinfo").read()
    commit = sh(["git", "-C", ROOT, "describe", "--always", "--dirty"])
    return {
        "kernel": platform.release(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "uid": os.getuid(),
        "cgroup": "v2" if " - cgroup2 " in mounts and " - cgroup " not in mounts else ("v1" if " - cgroup2 " not in mounts else "hybrid"),
        "cgroup2_favordynmods": "favordynmods" in mounts,
        "commit": commit,
        "src_commit": sh(["git", "-C", ROOT, "log", "-1", "--format=%h", "--", "src", "Cargo.toml", "Cargo.lock", "build.rs", "build"]),
        "reference_floor_source": floor_source(),
        "note": os.environ.get("BENCH_MACHINE_NOTE") or None,
        "versions": {
            "cw-exec": sh([CW, "--version"]),
            "bwrap": sh([BWRAP, "--version"]) if BWRAP else None,
            "unshare": sh([UNSHARE, "--version"]) if UNSHARE else None,
            "gcc": sh(["gcc", "--version"]),
            "curl": sh(["curl", "--version"]) if shutil.which("curl") else None,
        },
    }


def f2(x):
    return "—" if x is None else f"{x:.2f}"


def ratio(d, key, inverse=False):
    """'median / mean' of a ratio entry, '—' when absent."""
    r = d.get(key)
    if not r:
        return "—"
    pr = r.get("per_round")
    s = f"{r['of_medians']:.2f}"
    if "of_means" in r:
        s += f" / {r['of_means']:.2f}"
    if pr:
        s += f" ({pr['median']:.2f})"
    return s


def table(header, rows):
    def cell(c):
        return c.replace("|", "\\|")  # a pipe in a cell (also in code) would split it

    return ("| " + " | ".join(map(cell, header)) + " |\n|" + "---|" * len(header) + "\n"
            + "".join("| " + " | ".join(map(cell, r)) + " |\n" for r in rows))


def targets(res):
    s, pt, cc, rss = res["spawn"], res["passthrough"], res["concurrency"], res["peak_rss"]
    out = []

    def spawn_target(name, label, limit):
        if name not in s or "x_floor" not in s[name]:
            out.append({"target": label, "measured": None, "met": None, "why": "not measured: " + ("the reference floor is absent" if name in s else f"{name} failed")})
            return
        x = s[name]["x_floor"]
        bw = s[name].get("x_bwrap")
        out.append({"target": label, "measured": x["of_medians"], "mean": x["of_means"],
                    "per_round": x["per_round"]["median"] if x["per_round"] else None,
                    "x_bwrap": bw["of_medians"] if bw else None, "met": x["of_medians"] <= limit})

    spawn_target("cw-exec full", "full enforcement ≤ 1.2 × reference floor (spawn of /bin/true)", 1.2)
    spawn_target("cw-exec full + limits", "with --memory 256M --pids 64 ≤ 1.35 × reference floor", 1.35)
    label = f"pass-through with --envelope ≥ 0.6 × cat | cat ({pt.get('mib')} MiB)"
    if "cw-exec --envelope" in pt and "x_cat" in pt["cw-exec --envelope"]:
        x = pt["cw-exec --envelope"]["x_cat"]
        out.append({"target": label, "measured": x["of_medians"], "per_round": x["per_round"]["median"] if x["per_round"] else None, "met": x["of_medians"] >= 0.6})
    else:
        out.append({"target": label, "measured": None, "met": None, "why": "not measured"})
    label = f"{cc.get('level', 32)} concurrent runs ≥ 1.5 × bwrap's runs per second"
    t = cc.get("tools", {})
    if "cw-exec full" in t and "x_bwrap" in t["cw-exec full"]:
        x = t["cw-exec full"]["x_bwrap"]
        out.append({"target": label, "measured": x["of_medians"], "per_round": x["per_round"]["median"] if x["per_round"] else None, "met": x["of_medians"] >= 1.5})
    else:
        out.append({"target": label, "measured": None, "met": None, "why": "not measured: bwrap or cw-exec missing"})
    label = "peak RSS of cw-exec full (/usr/bin/time %M, MiB) ≤ 2.5"
    if "cw-exec full" in rss:
        v = rss["cw-exec full"]["median_kib"] / 1024
        bw = rss.get("bwrap", {}).get("median_kib")
        out.append({"target": label, "measured": v, "x_bwrap": (v * 1024 / bw) if bw else None, "met": v <= 2.5})
    else:
        out.append({"target": label, "measured": None, "met": None, "why": "not measured"})
    return out


def busy(l, cpus):
    p = l.get("cpu_pressure")
    return l["loadavg_1_5_15"][0] > 0.5 * cpus or (p is not None and p["some_avg60"] > 10)


def markdown(res, date):
    m, s = res["machine"], res["spawn"]
    l0, l1 = res["load"]["start"], res["load"]["end"]

    def loadtxt(l):
        p = l["cpu_pressure"]
        return f"load average {l['loadavg_1_5_15'][0]:.2f}/{l['loadavg_1_5_15'][1]:.2f}/{l['loadavg_1_5_15'][2]:.2f}" + (f", CPU pressure {p['some_avg60']:.0f}% (60 s)" if p else "")

    md = [
        f"Measured {date}{' (BENCH_QUICK: a smoke pass, too few rounds to read much into)' if res['quick'] else ''} by `scripts/bench`; "
        f"cw-exec built from `{m.get('src_commit') or m['commit']}` (the last commit touching src/, build.rs, build/ or Cargo.*), "
        f"on {m['cpus']} CPUs ({m['cpu']}), {m['memory_gib']} GiB, Linux {m['kernel']}, uid {m['uid']}, cgroup {m['cgroup']}"
        + (f" ({m['note']})" if m.get("note") else "") + ". "
        f"Load: {loadtxt(l0)} at the start, {loadtxt(l1)} at the end. "
        + ("**The machine was busy**: other jobs shared its CPUs during the run, so absolute "
           "times are noisy and spreads wide; compare only ratios within this run. "
           if busy(l0, m["cpus"]) or busy(l1, m["cpus"]) else "The machine was otherwise quiet. ")
        + f"Every comparison is interleaved (each command once per round, a fresh random order each round; seed {res['seed']}). "
        f"Raw data: `{os.path.relpath(res['path'], ROOT)}`.\n",
        "\n**Issue 17's targets** (ratios of medians; the mean ratio and the median of per-round ratios beside)\n\n",
    ]
    rows = []
    for t in res["targets"]:
        if t["measured"] is None:
            rows.append([t["target"], t["why"], "—", "—", "not measured"])
            continue
        extra = []
        if t.get("mean") is not None:
            extra.append(f"mean {t['mean']:.2f}")
        if t.get("per_round") is not None:
            extra.append(f"per round {t['per_round']:.2f}")
        rows.append([t["target"], f"{t['measured']:.2f}", ", ".join(extra) or "—", f2(t.get("x_bwrap")), "yes" if t["met"] else "**no**"])
    md.append(table(["target", "measured", "also", "× bwrap", "met"], rows))

    rounds = res.get("rounds") or max(d["n"] + d["failed"] for d in s.values())
    md.append(f"\n**Spawn of `/bin/true`** ({rounds} rounds; ms; ratios: of medians / of means (median of per-round ratios))\n\n")
    rows = []
    for name, d in s.items():
        rows.append([name, f"{d['mean']:.2f}", f"{d['median']:.2f}", f"{d['p5']:.2f}", f"{d['p95']:.2f}",
                     ratio(d, "x_floor"), ratio(d, "x_bwrap"), str(d["failed"])])
    md.append(table(["command", "mean", "median", "p5", "p95", "× floor", "× bwrap", "failed"], rows))
    md.append("\nR = `/var/tmp/pt/R`, T = `/var/tmp/pt/T`; every command runs `/bin/true` with T as its working directory.\n\n")
    md.append(table(["command", "what runs"], [[n, SPAWN_WHAT[n]] for n in s]))
    if "cw-exec landlock tier" in s and "x_wrapper" in s["cw-exec landlock tier"]:
        md.append(f"\ncw-exec's landlock tier costs {ratio(s['cw-exec landlock tier'], 'x_wrapper')} × the minimal Landlock + seccomp wrapper.\n")

    pt = res["passthrough"]
    if "cw-exec --envelope" in pt:
        md.append(f"\n**Pass-through of {pt['mib']} MiB** (random data from the page cache into a pipe drained by `cat`; MiB/s; ratio to `cat | cat`: of medians (median of per-round ratios))\n\n")
        rows = [[n, f"{d['median']:.0f}", f"{d['mean']:.0f}", f"{d['p5']:.0f}", f"{d['p95']:.0f}", ratio(d, "x_cat") if "x_cat" in d else "1.00"]
                for n, d in pt.items() if isinstance(d, dict)]
        md.append(table(["command", "median", "mean", "p5", "p95", "× cat | cat"], rows))
        if "peak_rss_kib" in pt["cw-exec --envelope"]:
            md.append(f"\nPeak RSS while relaying and hashing it: {pt['cw-exec --envelope']['peak_rss_kib']} KiB (the largest process in the pipe).\n")

    cc = res["concurrency"]
    if cc.get("tools"):
        md.append(f"\n**{cc['level']} concurrent runs of `/bin/true`** ({cc['runs_per_batch']} runs per batch, {cc['rounds']} rounds; runs per second; ratio: of medians (median of per-round ratios); "
                  "CPU per run: the machine's busy CPU time over a batch (all CPUs, /proc/stat) per run, median of batches; idle: the share of a batch the CPUs sat idle, median)\n\n")
        rows = [[n, f"{d['median']:.0f}", f"{d['mean']:.0f}", f"{d['p5']:.0f}", f"{d['p95']:.0f}", ratio(d, "x_bwrap"), ratio(d, "x_floor"),
                 f"{d['cpu_ms_per_run']:.2f}" if "cpu_ms_per_run" in d else "", f"{d['idle_share'] * 100:.0f} %" if "idle_share" in d else "", str(d["failed_runs"])]
                for n, d in cc["tools"].items()]
        md.append(table(["command", "median", "mean", "p5", "p95", "× bwrap", "× floor", "CPU ms per run", "idle", "failed runs"], rows))

    if res["peak_rss"]:
        md.append(f"\n**Peak RSS** (`/usr/bin/time -f %M`, which includes the command and GNU time's forked copy; KiB over {res['peak_rss_rounds']} interleaved rounds)\n\n")
        md.append(table(["command", "median", "min", "max"], [[n, f"{d['median_kib']:.0f}", str(d["min_kib"]), str(d["max_kib"])] for n, d in res["peak_rss"].items()]))

    px = res["proxy_throughput"]
    if "curl through the proxy" in px:
        md.append(f"\n**Egress proxy**: {px['mib']} MiB over HTTP from Python's http.server on the host's loopback, spawn included (MiB/s)\n\n")
        md.append(table(["command", "median", "mean", "× direct"], [
            [n, f"{px[n]['median']:.0f}", f"{px[n]['mean']:.0f}", ratio(px[n], "x_direct") if "x_direct" in px[n] else "1.00"]
            for n in ("curl direct", "curl through the proxy")]))

    if res["phases"]:
        md.append(f"\n**Where cw-exec's time goes** (`cw-exec run --timings`, full shape, {res['phases'][0]['runs']} runs {PHASE_GAP * 1000:.0f} ms apart, "
                  "so that none finds a cgroup migration's fast path left by the run before; ms per phase)\n\n")
        md.append(table(["phase ends", "median", "mean"], [[p["phase"], f"{p['median_ms']:.3f}", f"{p['mean_ms']:.3f}"] for p in res["phases"]]))

    if res["notes"]:
        md.append("\n**Skipped**\n\n" + "".join(f"- {n}\n" for n in res["notes"]))
    return "".join(md)


def main():
    if not os.access(RUNNER, os.X_OK) or not os.access(CW, os.X_OK):
        sys.exit("bench: target/bench/interleave or target/bench/cw-exec is missing: run scripts/bench, which builds them")
    os.makedirs(R, exist_ok=True)
    os.makedirs(T, exist_ok=True)
    work = tempfile.mkdtemp(prefix="cwx-bench-", dir="/var/tmp")
    os.chmod(work, 0o755)
    date = datetime.date.today().isoformat()
    res = {"date": date, "quick": QUICK, "seed": SEED, "rounds": ROUNDS, "load": {"start": load()}, "machine": machine()}
    try:
        res["spawn"] = spawn(work)
        print("phases ...", file=sys.stderr)
        res["phases"] = phases(20 if QUICK else 100)
        res["passthrough"] = passthrough(work, 128 if QUICK else 1024, 3 if QUICK else 12)
        spawn_cmds = {n: d["argv"] for n, d in res["spawn"].items()}
        level, runs, rounds = 32, 64 if QUICK else 256, 2 if QUICK else 12
        res["concurrency"] = concurrency(spawn_cmds, level, runs, rounds)
        res["concurrency"]["rounds"] = rounds
        res["peak_rss_rounds"] = 3 if QUICK else 25
        res["peak_rss"] = peak_rss(spawn_cmds, res["peak_rss_rounds"])
        res["proxy_throughput"] = proxy_throughput(work, 128 if QUICK else 1024, 2 if QUICK else 8)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res["load"]["end"] = load()
    res["targets"] = targets(res)
    res["notes"] = NOTES
    if QUICK:
        path = os.path.join(BUILD, f"results-{date}-quick.json")
    else:
        os.makedirs(os.path.join(ROOT, "docs", "bench"), exist_ok=True)
        path = os.path.join(ROOT, "docs", "bench", f"results-{date}.json")
    res["path"] = path
    md = markdown(res, date)
    with open(path, "w") as f:
        json.dump({k: v for k, v in res.items() if k != "path"}, f, indent=2)
        f.write("\n")
    print(f"wrote {path}", file=sys.stderr)
    print(md)
    if QUICK:
        print("BENCH_QUICK: docs/performance.md left as it is", file=sys.stderr)
        return
    write_block(md)


def write_block(md):
    """Replaces the generated block of docs/performance.md (between its bench markers)."""
    doc = os.path.join(ROOT, "docs", "performance.md")
    text = open(doc).read()
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    text = text[: text.index(start) + len(start)] + "\n" + md + "\n" + text[text.index(end):]
    with open(doc, "w") as f:
        f.write(text)
    print("updated the generated block of docs/performance.md", file=sys.stderr)


def render(path):
    """bench.py --render docs/bench/results-DATE.json: the generated block again from a results
    file (after a change of layout), without measuring anything."""
    res = json.load(open(path))
    res["path"] = os.path.abspath(path)
    res.setdefault("notes", [])
    write_block(markdown(res, res["date"]))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--render":
        render(sys.argv[2])
    else:
        main()
