"""What the fleet's processes cost, read from /proc: CPU seconds and resident memory of each role's
process tree, and the whole machine's busy share (Linux only)."""
from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

from tests.fleet_processes import FleetProcesses


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def process_tree(root: int) -> list[int]:
    children = defaultdict(list)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        children[int(fields[1])].append(int(stat.parent.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) one process has used so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def cpu_seconds(fleet: FleetProcesses) -> dict:
    """CPU time (user + system) used so far by each role's process tree, and by this process
    (the emulator, the support-staff clients, the event watcher and the bare receiver)."""
    out = {role: sum(process_cpu_seconds(pid) for pid in process_tree(proc.pid)) for role, proc in fleet.procs.items()}
    out["bench process (emulator, clients)"] = process_cpu_seconds(os.getpid())
    return out


def machine_cpu() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, all CPUs: PostgreSQL, Redis and neighbours too."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def memory(fleet: FleetProcesses) -> dict:
    out = {}
    for role, proc in fleet.procs.items():
        per_process = {pid: rss_kb(pid) for pid in process_tree(proc.pid)}
        out[role] = {"rss_mb": round(sum(per_process.values()) / 1024, 1), "processes": len(per_process),
                     "per_process_mb": [round(kb / 1024, 1) for kb in per_process.values()]}
    return out
