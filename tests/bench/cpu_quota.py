"""A CPU quota for one process, the way Kubernetes applies `limits.cpu`.

The kubelet turns a container's `limits.cpu: 1` into a CFS quota on the
container's cgroup: 100 ms of CPU time per 100 ms period (cgroup v1
`cpu.cfs_quota_us` / `cpu.cfs_period_us`, cgroup v2 `cpu.max`). Rust's
`std::thread::available_parallelism`, which tokio sizes its runtime from,
reads that quota, so a proxy started inside such a cgroup runs one worker.

`CpuQuota` makes a child cgroup with the quota, and `wrap` prefixes a
command so that the process joins the cgroup before it execs the binary
(same pid): the quota is in place when the runtime is built, as in a pod.
`remove` deletes the cgroup once the process has exited. Needs root (or a
delegated, writable cgroup); `CpuQuotaUnavailable` says why not.
"""

from __future__ import annotations

import os
from pathlib import Path

V1_ROOT = Path("/sys/fs/cgroup/cpu")
V2_ROOT = Path("/sys/fs/cgroup")
PERIOD_US = 100_000


class CpuQuotaUnavailable(RuntimeError):
    pass


class CpuQuota:
    """A child cgroup limited to `cpus` CPUs (cgroup v1, else v2)."""

    def __init__(self, name: str, cpus: float = 1.0):
        self.cpus = cpus
        quota_us = int(cpus * PERIOD_US)
        if (V1_ROOT / "cpu.cfs_quota_us").is_file():
            self.version, self.dir = 1, own_v1_group() / name
            knobs = [("cpu.cfs_period_us", str(PERIOD_US)), ("cpu.cfs_quota_us", str(quota_us))]
        elif "cpu" in read(V2_ROOT / "cgroup.controllers").split():
            # The root is the one v2 group that may hold processes and still
            # hand the cpu controller to its children.
            self.version, self.dir = 2, V2_ROOT / name
            if "cpu" not in read(V2_ROOT / "cgroup.subtree_control").split():
                write(V2_ROOT / "cgroup.subtree_control", "+cpu")
            knobs = [("cpu.max", f"{quota_us} {PERIOD_US}")]
        else:
            raise CpuQuotaUnavailable(why_not() or "no cgroup cpu controller")
        try:
            self.dir.mkdir(exist_ok=True)
        except OSError as err:
            raise CpuQuotaUnavailable(f"cannot create {self.dir}: {err.strerror}") from err
        try:
            for knob, value in knobs:
                write(self.dir / knob, value)
        except CpuQuotaUnavailable:
            self.stop()
            raise

    def describe(self) -> str:
        knob = "cpu.cfs_quota_us/cpu.cfs_period_us" if self.version == 1 else "cpu.max"
        return f"cgroup v{self.version} {knob} = {int(self.cpus * PERIOD_US)}/{PERIOD_US} µs"

    def wrap(self, argv: list[str]) -> list[str]:
        """`argv`, started inside the cgroup under its own pid."""
        return ["sh", "-c", 'echo $$ > "$0" && exec "$@"', str(self.dir / "cgroup.procs"), *argv]

    def throttling(self) -> dict:
        """Periods run and throttled so far, and the time throttled (µs)."""
        stat = dict(line.split() for line in read(self.dir / "cpu.stat").splitlines() if line.strip())
        throttled_us = int(stat.get("throttled_usec", 0)) if self.version == 2 else \
            int(stat.get("throttled_time", 0)) // 1000
        return {"periods": int(stat.get("nr_periods", 0)), "throttled": int(stat.get("nr_throttled", 0)),
                "throttled_us": throttled_us}

    def stop(self) -> None:
        """Removes the cgroup (its process must have exited)."""
        try:
            self.dir.rmdir()
        except FileNotFoundError:
            pass
        except OSError as err:
            print(f"[bench] could not remove {self.dir}: {err.strerror}", flush=True)


def own_v1_group() -> Path:
    """Our own cgroup in the v1 cpu hierarchy, so the quota nests under any we run in."""
    for line in read(Path("/proc/self/cgroup")).splitlines():
        _, controllers, path = line.split(":", 2)
        if "cpu" in controllers.split(","):
            group = V1_ROOT / path.lstrip("/")
            if group.is_dir():
                return group
    return V1_ROOT


def read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def write(path: Path, text: str) -> None:
    try:
        path.write_text(text)
    except OSError as err:
        raise CpuQuotaUnavailable(f"cannot write {text!r} to {path}: {err.strerror}") from err


def why_not() -> str | None:
    """None when this machine has a cgroup CPU controller we may write to."""
    if (V1_ROOT / "cpu.cfs_quota_us").is_file():
        root = own_v1_group()
    elif "cpu" in read(V2_ROOT / "cgroup.controllers").split():
        root = V2_ROOT
    else:
        return "no cgroup cpu controller (v1 /sys/fs/cgroup/cpu, or v2 with cpu in cgroup.controllers)"
    return None if os.access(root, os.W_OK) else f"{root} is not writable (run as root)"
