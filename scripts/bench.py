#!/usr/bin/env python3
"""cw-exec benchmarks, side by side with bare exec and peers, in one run.

Run through scripts/bench (which installs hyperfine, bubblewrap and firejail and builds
cw-exec). Writes docs/bench/results-<date>.json and the tables in docs/performance.md.
Every number is a ratio measured in the same run; nothing here asserts a timing.
"""

import datetime
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CW = os.path.join(ROOT, "target", "release", "cw-exec")
RUNS = int(os.environ.get("BENCH_RUNS", "300"))
QUICK = os.environ.get("BENCH_QUICK") == "1"


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=True, check=True, capture_output=True, text=True, **kw).stdout


def hyperfine(commands, runs, warmup=20, extra=()):
    """Runs hyperfine on {name: command}; returns {name: stats in ms}."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    args = ["hyperfine", "-N", "--style", "none", "--warmup", str(warmup), "--runs", str(runs), "--export-json", out, *extra]
    for name, cmd in commands.items():
        args += ["--command-name", name, cmd]
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    data = json.load(open(out))
    os.unlink(out)
    result = {}
    for r in data["results"]:
        times = sorted(t * 1000 for t in r["times"])
        result[r["command"]] = {
            "mean_ms": statistics.fmean(times),
            "median_ms": statistics.median(times),
            "p95_ms": times[int(0.95 * (len(times) - 1))],
            "stddev_ms": statistics.pstdev(times),
            "runs": len(times),
        }
    return result


def machine():
    cpu = ""
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = int(re.search(r"MemTotal:\s+(\d+)", open("/proc/meminfo").read()).group(1))
    favordynmods = "favordynmods" in open("/proc/self/mountinfo").read()
    return {
        "kernel": platform.release(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "uid": os.getuid(),
        "cgroup2_favordynmods": favordynmods,
        "versions": {
            "cw-exec": sh(f"{CW} --version").strip(),
            "bwrap": sh("bwrap --version").strip(),
            "firejail": sh("firejail --version").splitlines()[0].strip(),
            "hyperfine": sh("hyperfine --version").strip(),
        },
    }


def spawn(work, cheapest_profile):
    """1. Spawn overhead of /bin/true and /bin/sh -c : under each tool, same policy:
    read-only system, one writable directory, no network, scrubbed environment."""
    unshare = "unshare -n" if os.getuid() == 0 else "unshare -rn"
    bwrap = (
        "bwrap --unshare-all --die-with-parent --new-session --cap-drop ALL --clearenv "
        "--ro-bind /usr /usr --symlink usr/bin /bin --symlink usr/lib /lib --symlink usr/lib64 /lib64 "
        f"--symlink usr/sbin /sbin --ro-bind /etc /etc --proc /proc --dev /dev --bind {work} {work} --chdir {work}"
    )
    tools = {
        "bare": "",
        "wrapper (env)": "/usr/bin/env",
        "unshare -n": unshare,
        "bwrap": bwrap,
        "firejail": "firejail --noprofile --net=none --quiet",
        "cw-exec full": f"{CW} run --profile default --write {work} --",
        "cw-exec cheapest": f"{CW} run --profile {cheapest_profile} --write {work} --",
        # The tier for hosts without user namespaces, and the cheapest fully enforcing mode:
        # compare it with "wrapper (env)" (one extra exec) — target about 1.5x a minimal
        # Landlock + seccomp wrapper (docs/scale.md).
        "cw-exec landlock tier": f"{CW} run --tier landlock --profile {cheapest_profile} --write {work} --",
    }
    out = {}
    for label, target in [("/bin/true", "/bin/true"), ("/bin/sh -c :", "/bin/sh -c :")]:
        cmds = {name: f"{prefix} {target}".strip() for name, prefix in tools.items()}
        stats = hyperfine(cmds, RUNS)
        for name in stats:
            stats[name]["ratio_to_bare"] = stats[name]["mean_ms"] / stats["bare"]["mean_ms"]
            stats[name]["ratio_to_bwrap"] = stats[name]["mean_ms"] / stats["bwrap"]["mean_ms"]
            stats[name]["ratio_to_wrapper"] = stats[name]["mean_ms"] / stats["wrapper (env)"]["mean_ms"]
        out[label] = stats
    return out


def phases(work, runs):
    """2. Where the time goes inside cw-exec: --timings, averaged over many runs."""
    totals, order = {}, []
    for _ in range(runs):
        err = subprocess.run([CW, "run", "--timings", "--write", work, "--", "/bin/true"], capture_output=True, text=True).stderr
        for line in err.splitlines():
            m = re.match(r"\s+([\d.]+)\s+([\d.]+)\s+(.*)$", line)
            if m:
                name = m.group(3)
                if name not in totals:
                    totals[name] = []
                    order.append(name)
                totals[name].append(float(m.group(2)))
    return [{"phase": n, "mean_ms": statistics.fmean(totals[n])} for n in order]


def throughput(work, size_mib):
    """3. size_mib of data through `cat` in pass-through mode, stdout hashed by cw-exec."""
    data = os.path.join(work, "data.bin")
    with open(data, "wb") as f:
        block = os.urandom(1 << 20)
        for _ in range(size_mib):
            f.write(block)
    env_file = os.path.join(work, "envelope.json")
    # Every variant writes into a pipe that a second `cat` drains, as a caller reading the
    # sandboxed command's stdout would.
    bwrap = "bwrap --unshare-all --ro-bind / / --dev /dev"
    cmds = {
        "bare cat": f"sh -c 'cat {data} | cat > /dev/null'",
        "bwrap cat": f"sh -c '{bwrap} cat {data} | cat > /dev/null'",
        "cw-exec cat (stdout hashed)": f"sh -c '{CW} run --read {work} --envelope {env_file} -- cat {data} | cat > /dev/null'",
    }
    stats = hyperfine(cmds, 5 if not QUICK else 2, warmup=1)
    for name in stats:
        stats[name]["mib_per_s"] = size_mib / (stats[name]["mean_ms"] / 1000)
        stats[name]["ratio_to_bare"] = stats["bare cat"]["mean_ms"] / stats[name]["mean_ms"]
    rss = subprocess.run(
        f"/usr/bin/time -f %M -o {work}/rss {CW} run --read {work} --envelope {env_file} -- cat {data} | cat > /dev/null",
        shell=True, check=True)
    os.unlink(data)
    return stats, int(open(f"{work}/rss").read().split()[-1])


def proxy_throughput(work, size_mib):
    """3b. size_mib downloaded over HTTP from a server on the host's loopback: directly, and
    from inside cw-exec through its egress proxy (--net allow=...)."""
    data = os.path.join(work, "big.bin")
    with open(data, "wb") as f:
        block = bytes(1 << 20)
        for _ in range(size_mib):
            f.write(block)
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", "18099", "--bind", "127.0.0.1"],
        cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    time.sleep(1)
    try:
        url = "http://up.test:18099/big.bin"
        cmds = {
            "curl direct": "curl -s -o /dev/null http://127.0.0.1:18099/big.bin",
            "curl through the proxy": f"{CW} run --net allow=up.test:18099 --net-resolve up.test=127.0.0.1 -- curl -s -o /dev/null {url}",
        }
        stats = hyperfine(cmds, 3 if QUICK else 10, warmup=1)
        for name in stats:
            stats[name]["mib_per_s"] = size_mib / (stats[name]["mean_ms"] / 1000)
            stats[name]["ratio_to_direct"] = stats["curl direct"]["mean_ms"] / stats[name]["mean_ms"]
        return stats
    finally:
        server.kill()
        os.unlink(data)


def scale(work, cheapest_profile, levels, per_level):
    """4. N concurrent sandboxed runs: runs per second, and each tool's own peak RSS."""
    bwrap = f"bwrap --unshare-all --die-with-parent --ro-bind / / --dev /dev --proc /proc --bind {work} {work} /bin/true"
    tools = {
        "cw-exec": [CW, "run", "--profile", cheapest_profile, "--write", work, "--", "/bin/true"],
        "bwrap": bwrap.split(),
    }
    out = {}
    for name, argv in tools.items():
        out[name] = {}
        for n in levels:
            t0 = time.perf_counter()
            running, done = [], 0
            while done < per_level:
                while len(running) < n and done + len(running) < per_level:
                    running.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                running.pop(0).wait()
                done += 1
            for p in running:
                p.wait()
            out[name][str(n)] = {"runs_per_s": per_level / (time.perf_counter() - t0)}
        out[name]["peak_rss_kib"] = peak_rss(argv)
    return out


def peak_rss(argv):
    """Peak RSS (KiB) of one run, via GNU time: the largest of the process and the
    descendants it waited for (for cw-exec: itself, init and the command)."""
    err = subprocess.run(["/usr/bin/time", "-f", "%M", *argv], capture_output=True, text=True).stderr
    return int(err.strip().splitlines()[-1])


def table(rows, cols):
    head = "| " + " | ".join(c for c, _ in cols) + " |\n|" + "---|" * len(cols) + "\n"
    return head + "".join("| " + " | ".join(f(r) for _, f in cols) + " |\n" for r in rows)


def main():
    work = tempfile.mkdtemp(prefix="cwx-bench-", dir="/var/tmp")
    os.chmod(work, 0o755)
    cheapest = os.path.join(work, "cheapest.toml")
    with open(cheapest, "w") as f:
        f.write('description = "All five dimensions, no cgroup limits."\nread = ["$cwd"]\nwrite = ["$tmp"]\nnet = "none"\n')
    os.chdir(work)
    date = datetime.date.today().isoformat()
    results = {"date": date, "machine": machine()}
    print("spawn overhead ...", file=sys.stderr)
    results["spawn"] = spawn(work, cheapest)
    print("phases ...", file=sys.stderr)
    results["phases"] = phases(work, 20 if QUICK else 100)
    print("proxy throughput ...", file=sys.stderr)
    results["proxy_throughput"] = proxy_throughput(work, 128 if QUICK else 1024)
    print("throughput ...", file=sys.stderr)
    results["throughput"], results["throughput_rss_kib"] = throughput(work, 128 if QUICK else 1024)
    print("scale ...", file=sys.stderr)
    results["scale"] = scale(work, cheapest, [1, 2, 8, 32], 64 if QUICK else 256)
    results["rss_kib"] = {
        "cw-exec (supervisor, /bin/true)": peak_rss([CW, "run", "--profile", cheapest, "--", "/bin/true"]),
        "cw-exec (1 GiB pass-through, hashed)": results["throughput_rss_kib"],
        "bwrap (/bin/true)": peak_rss(["bwrap", "--unshare-all", "--ro-bind", "/", "/", "--dev", "/dev", "/bin/true"]),
    }
    shutil.rmtree(work, ignore_errors=True)

    t = results["spawn"]["/bin/true"]
    results["targets"] = {
        "full <= 0.5 x bwrap (/bin/true mean)": {"value": t["cw-exec full"]["ratio_to_bwrap"], "met": t["cw-exec full"]["ratio_to_bwrap"] <= 0.5},
        "cheapest <= 1.5 x minimal wrapper": {"value": t["cw-exec cheapest"]["ratio_to_wrapper"], "met": t["cw-exec cheapest"]["ratio_to_wrapper"] <= 1.5},
        "throughput >= 0.8 x bare cat": {
            "value": results["throughput"]["cw-exec cat (stdout hashed)"]["ratio_to_bare"],
            "met": results["throughput"]["cw-exec cat (stdout hashed)"]["ratio_to_bare"] >= 0.8,
        },
        "cw-exec RSS <= 8 MiB": {"value": results["rss_kib"]["cw-exec (supervisor, /bin/true)"] / 1024, "met": results["rss_kib"]["cw-exec (supervisor, /bin/true)"] <= 8192},
    }

    os.makedirs(os.path.join(ROOT, "docs", "bench"), exist_ok=True)
    path = os.path.join(ROOT, "docs", "bench", f"results-{date}.json")
    with open(path, "w") as f:
        json.dump(results, f, indent=2)
    print(f"wrote {path}", file=sys.stderr)

    md = [f"Measured {date} on {results['machine']['cpus']} CPUs ({results['machine']['cpu']}), "
          f"{results['machine']['memory_gib']} GiB, Linux {results['machine']['kernel']}, uid {results['machine']['uid']}, "
          f"cgroup2 favordynmods={'on' if results['machine']['cgroup2_favordynmods'] else 'off'}; {RUNS} runs per command. "
          f"Raw data: `docs/bench/results-{date}.json`.\n"]
    for label, stats in results["spawn"].items():
        md.append(f"\n**Spawn: `{label}`** (ms)\n\n")
        md.append(table(stats.items(), [
            ("tool", lambda r: r[0]),
            ("mean", lambda r: f"{r[1]['mean_ms']:.2f}"),
            ("median", lambda r: f"{r[1]['median_ms']:.2f}"),
            ("p95", lambda r: f"{r[1]['p95_ms']:.2f}"),
            ("× bare", lambda r: f"{r[1]['ratio_to_bare']:.2f}"),
            ("× bwrap", lambda r: f"{r[1]['ratio_to_bwrap']:.2f}"),
        ]))
    md.append("\n**Where cw-exec's time goes** (`--timings`, mean of runs, ms)\n\n")
    md.append(table(results["phases"], [("phase ends", lambda r: r["phase"]), ("ms", lambda r: f"{r['mean_ms']:.3f}")]))
    md.append("\n**Throughput through `cat`** (pass-through; cw-exec hashes stdout)\n\n")
    md.append(table(results["throughput"].items(), [
        ("command", lambda r: r[0]),
        ("MiB/s", lambda r: f"{r[1]['mib_per_s']:.0f}"),
        ("× bare cat", lambda r: f"{r[1]['ratio_to_bare']:.2f}"),
    ]))
    md.append("\n**Scale: concurrent runs of `/bin/true`** (runs per second)\n\n")
    levels = ["1", "2", "8", "32"]
    md.append(table(results["scale"].items(), [("tool", lambda r: r[0])] + [(f"N={n}", (lambda n: lambda r: f"{r[1][n]['runs_per_s']:.0f}")(n)) for n in levels] + [("peak RSS, one run (KiB)", lambda r: str(r[1]["peak_rss_kib"]))]))
    md.append("\n**Targets**\n\n")
    md.append(table(results["targets"].items(), [
        ("target", lambda r: r[0]),
        ("measured", lambda r: f"{r[1]['value']:.2f}"),
        ("met", lambda r: "yes" if r[1]["met"] else "**no**"),
    ]))
    doc = os.path.join(ROOT, "docs", "performance.md")
    text = open(doc).read()
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    text = text[: text.index(start) + len(start)] + "\n" + "".join(md) + "\n" + text[text.index(end):]
    with open(doc, "w") as f:
        f.write(text)
    print("updated docs/performance.md", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--scale-worker":
        scale_worker(sys.argv[5:], int(sys.argv[2]), int(sys.argv[3]))
    else:
        main()
