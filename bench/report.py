#!/usr/bin/env python3
"""Summarise a bench/run.sh run: table on stdout, <out>.json with every figure, <out>.png chart.

Input: --rounds FILE, JSON lines {"round", "target", "loadavg1_before", "wrk": {...}} where "wrk"
is the line bench/report.lua prints (latencies in microseconds). The run's settings and the
Portcullis RSS come from BENCH_* environment variables set by run.sh; machine information and
tool versions are collected here.
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys

TARGETS = [
    ("upstream", "a", "nginx return 200 (upstream)"),
    ("nginx", "b", "nginx reverse proxy"),
    ("apache", "c", "Apache + mod_auth_openidc"),
    ("portcullis", "d", "Portcullis"),
    ("portcullis-nocache", "e", "Portcullis, decision cache off"),
]
OTHER_CPU_WARN_PCT = 15  # this VM's kernel DAMON thread (kdamond) alone takes ~8%
STEAL_WARN_PCT = 5  # time the hypervisor gave to other guests
RSS_LIMIT_BYTES = 60 * 1000 * 1000  # "RSS < 60 MB", decimal megabytes (the stricter reading)


def sh(*cmd):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    out = (p.stdout + p.stderr).strip()
    return out.splitlines()[0].strip() if out else None


def machine_info():
    cpu = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_kb = None
    try:
        with open("/proc/meminfo") as f:
            mem_kb = int(f.readline().split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "kernel": platform.release(),
        "os": sh("sh", "-c", ". /etc/os-release && echo \"$PRETTY_NAME\""),
        "cpu": cpu,
        "mem_total_kb": mem_kb,
        "loadavg_at_report": open("/proc/loadavg").read().split()[:3],
    }


def versions():
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--"], capture_output=True).returncode != 0
    commit = sh("git", "rev-parse", "--short", "HEAD")
    return {
        "nginx": sh("/usr/sbin/nginx", "-v"),
        "apache": sh("/usr/sbin/apache2", "-v"),
        "mod_auth_openidc": sh("dpkg-query", "-W", "-f", "${Version}", "libapache2-mod-auth-openidc"),
        "wrk": sh("wrk", "-v"),
        "nats_server": sh(os.environ.get("BENCH_NATS_SERVER", "nats-server"), "--version"),
        "node": sh("node", "--version"),
        "rustc": sh("rustc", "--version"),
        "portcullis_commit": (commit + ("+dirty" if dirty else "")) if commit else None,
    }


def settings():
    e = os.environ.get
    return {
        "rounds": int(e("BENCH_ROUNDS_N", "0")) or None,
        "decision_cache_known": e("BENCH_DECISION_CACHE_KNOWN") != "false",
        "duration": e("BENCH_DURATION_S"),
        "warmup": e("BENCH_WARMUP_S"),
        "wrk_threads": int(e("BENCH_THREADS_N", "0")),
        "wrk_connections": int(e("BENCH_CONNECTIONS_N", "0")),
        "keepalive": True,
        "nginx_upstream_workers": 1,
        "nginx_proxy_workers": e("BENCH_PROXY_WORKERS"),
        "apache_mpm": "event",
        "order": "targets interleaved; round r runs target m*(i+r-1) mod n at position i, with a step m coprime to n that changes every round",
        "pause_before_each_run_s": e("BENCH_PAUSE_S"),
    }


def rss():
    out = {}
    for item in filter(None, os.environ.get("BENCH_RSS", "").split(",")):
        name, hwm, now = item.split(":")
        out[name] = {"VmHWM_kb": int(hwm or 0), "VmRSS_kb": int(now or 0)}
    return out


def ratio(x, y):
    return x / y if x is not None and y else None


def fmt(x, spec):
    return format("-", ">" + spec.split(".")[0]) if x is None else format(x, spec)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", required=True)
    ap.add_argument("--out", required=True, help="path prefix: writes <out>.json and <out>.png")
    ap.add_argument("--strict", action="store_true", help="exit 1 when an acceptance target fails")
    args = ap.parse_args()

    rows = [json.loads(line) for line in open(args.rounds) if line.strip()]
    targets = {}
    for name, letter, label in TARGETS:
        rounds = []
        for row in rows:
            if row["target"] != name:
                continue
            w = row["wrk"]
            secs = w["duration_us"] / 1e6
            rounds.append({
                "round": row["round"],
                "req_per_s": w["requests"] / secs,
                "p50_ms": w["p50_us"] / 1e3,
                "p90_ms": w["p90_us"] / 1e3,
                "p99_ms": w["p99_us"] / 1e3,
                "p999_ms": w["p999_us"] / 1e3,
                "max_ms": w["max_us"] / 1e3,
                "errors": w["errors"],
                "loadavg1_before": row.get("loadavg1_before"),
                "cpu": row.get("cpu"),
                "response_bytes_expected": row.get("response_bytes"),
                "response_bytes_seen": w["bytes"] / w["requests"] if w["requests"] else None,
                "wrk": w,
            })
        med = lambda k: statistics.median(r[k] for r in rounds) if rounds else None  # noqa: E731
        targets[name] = {
            "letter": letter,
            "label": label,
            "rounds": rounds,
            "median": {k: med(k) for k in ("req_per_s", "p50_ms", "p90_ms", "p99_ms", "p999_ms")},
            "other_cpu_pct_median": statistics.median(r["cpu"]["other_pct"] for r in rounds)
            if rounds and all(r["cpu"] for r in rounds) else None,
            # the most the hypervisor took in any round (0 on bare metal; older runs lack it)
            "steal_pct_max": max((r["cpu"].get("steal_pct", 0) for r in rounds if r["cpu"]), default=None),
            "req_per_s_min": min((r["req_per_s"] for r in rounds), default=None),
            "req_per_s_max": max((r["req_per_s"] for r in rounds), default=None),
            "errors_total": sum(sum(r["errors"].values()) for r in rounds),
            "status_errors_total": sum(r["errors"]["status"] for r in rounds),
            # every response must be the verified 200 "ok" one: same size (a redirect or an error
            # page differs), allowing 2% for a response cut short when wrk stops
            "wrong_responses": [r["round"] for r in rounds if not r["response_bytes_expected"]
                                or abs(r["response_bytes_seen"] - r["response_bytes_expected"])
                                > 0.02 * r["response_bytes_expected"]],
        }
        targets[name]["valid"] = bool(rounds) and not targets[name]["status_errors_total"] \
            and not targets[name]["wrong_responses"]

    base_a, base_b = targets["upstream"]["median"], targets["nginx"]["median"]
    for t in targets.values():
        m = t["median"]
        t["ratios"] = {
            "req_per_s_vs_upstream": ratio(m["req_per_s"], base_a["req_per_s"]),
            "req_per_s_vs_nginx": ratio(m["req_per_s"], base_b["req_per_s"]),
            "p99_vs_upstream": ratio(m["p99_ms"], base_a["p99_ms"]),
            "p99_vs_nginx": ratio(m["p99_ms"], base_b["p99_ms"]),
        }

    mem = rss()
    d, c, e = targets["portcullis"], targets["apache"], targets["portcullis-nocache"]
    hwm_bytes = mem.get("portcullis", {}).get("VmHWM_kb", 0) * 1024 or None
    hwm_nocache_bytes = mem.get("portcullis-nocache", {}).get("VmHWM_kb", 0) * 1024 or None
    checks = [
        ("(d) req/s >= 0.9 x nginx (b)", d["ratios"]["req_per_s_vs_nginx"], ">=", 0.9, ["portcullis", "nginx"]),
        ("(d) p99 <= 1.5 x nginx (b)", d["ratios"]["p99_vs_nginx"], "<=", 1.5, ["portcullis", "nginx"]),
        ("(d) req/s >= 2 x Apache (c)", ratio(d["median"]["req_per_s"], c["median"]["req_per_s"]), ">=", 2.0,
         ["portcullis", "apache"]),
        ("(e) req/s >= 0.5 x nginx (b)", e["ratios"]["req_per_s_vs_nginx"], ">=", 0.5, ["portcullis-nocache", "nginx"]),
        ("(d) peak RSS < 60 MB", hwm_bytes / 1e6 if hwm_bytes else None, "<", RSS_LIMIT_BYTES / 1e6, []),
        ("(e) peak RSS < 60 MB", hwm_nocache_bytes / 1e6 if hwm_nocache_bytes else None, "<",
         RSS_LIMIT_BYTES / 1e6, []),
    ]
    acceptance = []
    for name, value, op, limit, involved in checks:
        invalid = [t for t in involved if not targets[t]["valid"]]
        if "portcullis-nocache" in involved and os.environ.get("BENCH_DECISION_CACHE_KNOWN") == "false":
            invalid.append("portcullis-nocache (decision_cache unknown to this build)")
        if value is None or invalid:
            verdict = None
        else:
            verdict = {">=": value >= limit, "<=": value <= limit, "<": value < limit}[op]
        acceptance.append({"check": name, "value": value, "op": op, "limit": limit, "pass": verdict,
                           "invalid_because": invalid or None})

    sets = settings()
    sets["rounds"] = sets["rounds"] or len({row["round"] for row in rows})
    result = {
        "generated_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "settings": sets,
        "machine": machine_info(),
        "versions": versions(),
        "targets": targets,
        "rss": mem,
        "acceptance": acceptance,
        "note": "All servers and the load generator share one machine: compare ratios within a run.",
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out + ".json", "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")

    # ---- table ----
    s = result["settings"]
    print()
    print(f"wrk -t{s['wrk_threads']} -c{s['wrk_connections']} -d{s['duration']} --latency, keep-alive; "
          f"median of {s['rounds']} interleaved rounds; {result['machine']['nproc']} cores shared by everything")
    head = (f"{'':4}{'target':32}{'req/s':>9}{'spread':>8}{'p50 ms':>8}{'p99 ms':>8}"
            f"{'req/s÷a':>9}{'req/s÷b':>9}{'p99÷a':>7}{'p99÷b':>7}{'errors':>8}{'other CPU':>10}{'steal':>7}")
    print(head)
    print("-" * len(head))
    for name, letter, label in TARGETS:
        t = targets[name]
        m, r = t["median"], t["ratios"]
        spread = None
        if t["rounds"] and m["req_per_s"]:
            spread = 100 * (t["req_per_s_max"] - t["req_per_s_min"]) / m["req_per_s"]
        print(f"({letter}) {label:32}{fmt(m['req_per_s'], '9.0f')}{fmt(spread, '7.0f')}%"
              f"{fmt(m['p50_ms'], '8.2f')}{fmt(m['p99_ms'], '8.2f')}"
              f"{fmt(r['req_per_s_vs_upstream'], '9.2f')}{fmt(r['req_per_s_vs_nginx'], '9.2f')}"
              f"{fmt(r['p99_vs_upstream'], '7.2f')}{fmt(r['p99_vs_nginx'], '7.2f')}{t['errors_total']:8d}"
              f"{fmt(t['other_cpu_pct_median'], '9.0f')}%{fmt(t['steal_pct_max'], '6.0f')}%")
    print("spread = (max - min) / median of req/s over the rounds; errors = wrk socket errors + HTTP >= 400;")
    print("other CPU = share of the machine used by processes outside the benchmark during the rounds (median);")
    print("steal = share the hypervisor gave to other guests in the target's worst round (max)")
    stolen = [(r["round"], t["letter"], r["cpu"]["steal_pct"]) for t in targets.values() for r in t["rounds"]
              if r["cpu"] and r["cpu"].get("steal_pct", 0) > STEAL_WARN_PCT]
    if stolen:
        worst = ", ".join(f"round {rnd} ({letter}) {p:.0f}%" for rnd, letter, p in sorted(stolen, key=lambda x: -x[2])[:3])
        print(f"NOISY: the hypervisor took more than {STEAL_WARN_PCT}% of the CPU in {len(stolen)} measurements"
              f" (worst: {worst}); compare runs, not single rounds")
    noisy = [(r["round"], t["letter"], r["cpu"]) for t in targets.values() for r in t["rounds"]
             if r["cpu"] and r["cpu"]["other_pct"] > OTHER_CPU_WARN_PCT]
    if noisy:
        print(f"NOISY: other processes used more than {OTHER_CPU_WARN_PCT}% of the machine during {len(noisy)} of "
              f"{sum(len(t['rounds']) for t in targets.values())} measurements; the worst:")
        for rnd, letter, cpu in sorted(noisy, key=lambda x: -x[2]["other_pct"])[:3]:
            top = ", ".join(f"{n} {p:.0f}%" for n, p in cpu.get("other_top", {}).items())
            print(f"  round {rnd} ({letter}): other {cpu['other_pct']:.0f}% ({top})")
    for name, m in mem.items():
        print(f"{name} RSS: peak (VmHWM) {m['VmHWM_kb'] / 1024:.1f} MiB, at end (VmRSS) {m['VmRSS_kb'] / 1024:.1f} MiB")
    print()
    print("acceptance targets:")
    failed = False
    for a in acceptance:
        verdict = {True: "PASS", False: "FAIL", None: "N/A "}[a["pass"]]
        failed |= a["pass"] is not True
        extra = f"  (not valid: {', '.join(a['invalid_because'])})" if a["invalid_because"] else ""
        print(f"  {verdict}  {a['check']:32} measured {fmt(a['value'], '.2f')} (limit {a['op']} {a['limit']:g}){extra}")
    print()

    try:
        chart(result, args.out + ".png")
        print(f"wrote {args.out}.json and {args.out}.png")
    except ImportError as err:
        print(f"wrote {args.out}.json (no chart: {err})")

    if not all(t["valid"] for t in targets.values()):
        print("some targets did not serve 200 ok throughout the load: their figures are not valid", file=sys.stderr)
        sys.exit(1)
    if args.strict and failed:
        sys.exit(1)


def chart(result, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n, _, _ in TARGETS]
    t = result["targets"]
    labels = [f"({t[n]['letter']}) {t[n]['label']}".replace(" (upstream)", "\n(upstream)")
              .replace(" reverse", "\nreverse").replace(" + ", "\n+ ").replace(", ", ",\n") for n in names]
    colors = ["#9e9e9e", "#4caf50", "#ff9800", "#1e88e5", "#90caf9"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5.2))
    for ax, key, title, unit in ((ax1, "req_per_s", "Throughput (median)", "requests/s"),
                                 (ax2, "p99_ms", "p99 latency (median)", "ms")):
        values = [t[n]["median"][key] or 0 for n in names]
        bars = ax.bar(range(len(names)), values, color=colors, edgecolor="black", linewidth=0.5)
        for i, n in enumerate(names):
            pts = [r[key] for r in t[n]["rounds"]]
            ax.scatter([i] * len(pts), pts, color="black", s=10, zorder=3)
        for b, v, n in zip(bars, values, names):
            top = max([v] + [r[key] for r in t[n]["rounds"]])  # above the highest dot
            ax.annotate(f"{v:,.0f}" if key == "req_per_s" else f"{v:.2f}", (b.get_x() + b.get_width() / 2, top),
                        ha="center", va="bottom", fontsize=8, xytext=(0, 4), textcoords="offset points")
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(labels, fontsize=7.5)
        ax.set_title(title)
        ax.set_ylabel(unit)
        ax.grid(axis="y", alpha=0.3)
    s, m = result["settings"], result["machine"]
    fig.suptitle(f"Portcullis load benchmark: wrk -t{s['wrk_threads']} -c{s['wrk_connections']} -d{s['duration']}, "
                 f"{s['rounds']} rounds (dots), {m['nproc']} shared cores, {result['generated_at']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
