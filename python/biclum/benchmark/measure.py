"""Time and memory of one method run: CPU seconds of this process and its children, and peak resident memory of
this process and its descendants (Linux /proc; NaN elsewhere)."""
from __future__ import annotations

import os
import resource
from typing import Dict, List, Union


def _status_kb(pid: Union[int, str], key: str) -> float:
    """A ``/proc/<pid>/status`` memory field in kB (NaN when unreadable, e.g. not Linux or process gone)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return float(line.split()[1])
    except OSError:
        pass
    return float("nan")


def _descendants(root: int) -> List[int]:
    children: Dict[int, List[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


class _PeakMemory:
    """Peak memory of this process and its descendants while a block runs.

    ``peak_mb`` = max(this process's VmHWM, the largest sampled sum of VmRSS over this process and its descendant
    processes (every ``interval`` s)). /proc/self VmHWM is exact for this process (a fresh address space after
    exec, unlike ``ru_maxrss``, which keeps the parent's size across fork/exec); child processes (Rscript) are
    covered by the sampling. Linux only; NaN elsewhere.
    """

    def __init__(self, interval: float = 0.2):
        self.interval = interval
        self.sampled_kb = 0.0
        self._stop = None
        self._thread = None

    def _sample(self) -> None:
        pid = os.getpid()
        while not self._stop.wait(self.interval):
            total = _status_kb(pid, "VmRSS")
            for c in _descendants(pid):
                rss = _status_kb(c, "VmRSS")
                if rss == rss:
                    total += rss
            self.sampled_kb = max(self.sampled_kb, total)

    def __enter__(self):
        import threading

        self._stop = threading.Event()
        if os.path.isdir("/proc"):
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return False

    @property
    def peak_mb(self) -> float:
        return max(_status_kb("self", "VmHWM"), self.sampled_kb) / 1024.0


def _cpu_s() -> float:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime

