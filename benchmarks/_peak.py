"""Shared by the memory benchmarks: run a command in a fresh process and measure it."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

__all__ = ["peak_run", "save_report"]


def peak_run(cmd: list[str]) -> dict:
    """Run ``cmd`` under a fresh ``python -c`` parent, so the peak RSS measured is the command's own.

    Returns:
        ``{"seconds", "peak_rss_mb"}`` (wall time of the command, its peak resident set size).
    """
    probe = (
        "import json, resource, subprocess, sys, time; t = time.monotonic(); "
        "subprocess.run(sys.argv[1:], check=True); "
        "print(json.dumps([time.monotonic() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss]))"
    )
    done = subprocess.run([sys.executable, "-c", probe, *cmd], check=True, capture_output=True, text=True)
    seconds, peak_kb = json.loads(done.stdout.strip().splitlines()[-1])
    return {"seconds": round(seconds, 2), "peak_rss_mb": round(peak_kb / 1024, 1)}


def save_report(path: str | Path, **fields) -> None:
    """Write ``{"machine", "command", **fields}`` as JSON to ``path`` (folders made) and say so."""
    report = {
        "machine": f"{platform.machine()} {platform.processor()}, {os.cpu_count()} cpus",
        "command": " ".join(sys.argv),
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps({**report, **fields}, indent=1))
    print(f"wrote {path}")
