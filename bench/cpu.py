#!/usr/bin/env python3
"""CPU accounting for bench/run.sh: how much of the machine did processes *outside* the
benchmark use while a round ran (a compiler, a browser test, another benchmark...)?

  cpu.py snapshot FILE SHELL_PID PGID...   write a snapshot of every process's CPU time to FILE
  cpu.py delta BEFORE_FILE AFTER_FILE      print {"busy_pct", "bench_pct", "other_pct", "steal_pct"}

bench = the processes in the given process groups (the servers) and the shell's reaped children
(wrk, which has exited by the second snapshot). other = every other process, summed from its own
utime+stime+cutime+cstime (so a compiler that started and exited during the round counts through
its parent's cutime), except the kernel's ksoftirqd threads: they mostly carry the benchmark's
own loopback traffic. busy = all non-idle time in /proc/stat (it includes softirq and steal).
steal = time the hypervisor gave this machine's virtual CPUs to someone else: on a shared host
the benchmark's processes ran that much less, and no process here shows it.
Percentages are of all cores over the round.
"""

import json
import os
import sys


def snapshot(shell_pid, pgids):
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (guest is already inside user)
    total = sum(fields[:8])
    busy = total - fields[3] - fields[4]
    pgids = set(pgids)
    bench, others = 0, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        rest = stat[stat.rindex(")") + 2:].split()  # fields from 3 (state) on
        pgid = int(rest[2])
        utime, stime, cutime, cstime = (int(x) for x in rest[11:15])
        starttime = rest[19]
        if pgid in pgids:
            bench += utime + stime + cutime + cstime
        elif int(entry) == shell_pid:
            bench += cutime + cstime  # the shell's reaped children: wrk
            others[f"{entry}/{starttime}"] = [utime + stime, comm]
        elif not comm.startswith("ksoftirqd/"):
            # kworker names carry their current work item (kworker/u8:0-events): keep the kind
            others[f"{entry}/{starttime}"] = [utime + stime + cutime + cstime, comm.split("-")[0].split("/")[0]]
    return {"total": total, "busy": busy, "steal": fields[7], "bench": bench, "others": others}


def delta(before, after):
    total = max(after["total"] - before["total"], 1)
    busy = after["busy"] - before["busy"]
    steal = after.get("steal", 0) - before.get("steal", 0)
    bench = after["bench"] - before["bench"]
    by_name = {}
    for key, (t, name) in after["others"].items():
        by_name[name] = by_name.get(name, 0) + t - before["others"].get(key, [0])[0]
    for key, (t, name) in before["others"].items():
        if key not in after["others"]:
            # exited and reaped: its whole lifetime moved into the parent's cutime, of which
            # only the part after the first snapshot belongs to this round
            by_name[name] = by_name.get(name, 0) - t
    other = sum(by_name.values())
    pct = lambda x: round(100.0 * max(x, 0) / total, 1)  # noqa: E731
    top = sorted(((t, n) for n, t in by_name.items() if t > 0), reverse=True)[:3]
    return {"busy_pct": pct(busy), "bench_pct": pct(bench), "other_pct": pct(other),
            "steal_pct": pct(steal), "other_top": {n: pct(t) for t, n in top}}


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "snapshot":
        with open(sys.argv[2], "w") as f:
            json.dump(snapshot(int(sys.argv[3]), [int(x) for x in sys.argv[4:]]), f)
    elif len(sys.argv) == 4 and sys.argv[1] == "delta":
        with open(sys.argv[2]) as a, open(sys.argv[3]) as b:
            print(json.dumps(delta(json.load(a), json.load(b))))
    else:
        sys.exit(f"usage: {sys.argv[0]} snapshot FILE SHELL_PID PGID... | delta BEFORE_FILE AFTER_FILE")


if __name__ == "__main__":
    main()
