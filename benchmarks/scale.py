"""Datasets larger than memory: whether memory stays flat as the dataset grows, what
streaming costs against caching, and how staging scales.

Synthetic 640x360 JPEGs at 1,000, 5,000 and 20,000 (60 and 240 in the quick form), each run
as a whole ``defects run`` (``--model scratch --epochs 1``: the memory of the data's path,
whichever network trains) against an S3 server of its own (``defects s3 serve``), so that
three processes are measured apart, each by its peak resident set (``VmHWM``): the command,
the entry point and, at the largest size, the server. Staging time comes from the command's
own log line. On the smallest size the entry point also trains the same shards twice, cached
and streamed (``--cache_mb 0``), side by side.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks import datasets
from benchmarks.context import Context
from benchmarks.entrypoint import run_entry_point
from benchmarks.report import Result, times

KEYS = {
    "scale_job_memory": "Memory: a whole job at the largest size against the smallest",
    "scale_entry_point_memory": "Memory: the entry point at the largest size against the smallest",
    "scale_streaming": "Training: streamed against cached, the same data",
    "scale_staging": "Staging: the largest size against the smallest",
}
TARGETS = {
    "scale_job_memory": "<= 1.3x",
    "scale_entry_point_memory": "<= 1.3x",
    "scale_streaming": ">= 0.8x the cached img/s",
    "scale_staging": "<= 20x the time for 20x the files",
}
SIZES = (1000, 5000, 20000)
QUICK_SIZES = (60, 240)
_STAGED = re.compile(r"Staged dataset \S+ \((\d+) images in (\d+) shards\).* in ([\d.]+) s")


def _peak_kb(pid: int) -> int | None:
    """A process's peak resident set so far (VmHWM), in kB; None once it has gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
    return int(found.group(1)) if found else None


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def _run_job(folder: Path, photos: Path, environment: dict[str, str], log: Path) -> dict[str, Any]:
    """``defects run`` on ``photos``; the peaks of the command and of its entry point."""
    command = [
        sys.executable, "-m", "defects", "run", "--data", str(photos), "--model", "scratch",
        "--epochs", "1", "--job-name", "scale",
    ]  # fmt: skip
    peaks = {"command_kb": 0, "entry_point_kb": 0}
    entry_point: int | None = None
    with log.open("w") as output:
        process = subprocess.Popen(
            command, cwd=folder, env=environment, stdout=output, stderr=subprocess.STDOUT
        )
        while process.poll() is None:
            peaks["command_kb"] = max(peaks["command_kb"], _peak_kb(process.pid) or 0)
            if entry_point is None:
                entry_point = next(iter(_children(process.pid)), None)
            if entry_point is not None:
                peaks["entry_point_kb"] = max(peaks["entry_point_kb"], _peak_kb(entry_point) or 0)
            time.sleep(0.2)
    text = log.read_text()
    if process.returncode != 0:
        raise RuntimeError(f"defects run failed (log: {log.name}): {text[-500:]}")
    staged = _STAGED.search(" ".join(text.split()))
    return {
        **peaks,
        "staging_seconds": float(staged.group(3)) if staged else None,
        "shards": int(staged.group(2)) if staged else None,
    }


def _server(environment: dict[str, str], folder: Path) -> tuple[subprocess.Popen[str], str]:
    """``defects s3 serve`` on a free port, and its endpoint."""
    process = subprocess.Popen(
        [sys.executable, "-m", "defects", "s3", "serve", "--port", "0"],
        cwd=folder,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:
        found = re.search(r"(http://127\.0\.0\.1:\d+)", line)
        if found:
            # Read the rest of what it says as it says it: a full pipe would block the
            # server on its next log line (its request log fills one on a large dataset).
            threading.Thread(target=process.stdout.read, daemon=True).start()
            return process, found.group(1)
    raise RuntimeError("defects s3 serve did not say where it listens")


def _streaming(context: Context, photos: Path) -> dict[str, float]:
    """Train img/s of the same shards, cached and streamed, in turn."""
    from defects.dataset.prepare import prepare
    from defects.dataset.shards import shards_for

    dataset = prepare(photos, data_dir=context.work_dir / "streaming-data")
    channels: dict[str, Path] = {}
    for shard in shards_for(dataset):
        folder = context.work_dir / "streaming-channels" / shard.split
        folder.mkdir(parents=True, exist_ok=True)
        (folder / shard.name).write_bytes(shard.path.read_bytes())
        channels[shard.split] = folder
    rates: dict[str, float] = {}
    for name, budget in (("cached", 2048), ("streamed", 0)):
        context.say(f"scale: training {name} on {len(dataset.files())} images")
        run = run_entry_point(
            context.work_dir / f"streaming-{name}",
            {k: v for k, v in channels.items() if k != "test"},
            {"model": "scratch", "epochs": 3, "image_size": context.synthetic_image_size,
             "cache_mb": budget},
            context.log_dir / f"scale-{name}.log",
        )  # fmt: skip
        steady = run.steady_epoch_seconds
        rates[name] = run.train_images / steady if steady else 0.0
    return rates


def run(context: Context) -> list[Result]:
    sizes = QUICK_SIZES if context.quick else SIZES
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DEFECTS_"))},
        "PYTHONUNBUFFERED": "1",
    }
    measured: dict[int, dict[str, Any]] = {}
    server, endpoint = _server(environment, context.work_dir)
    try:
        for size in sizes:
            per_class = -(-size // 4)
            context.say(f"scale: drawing {per_class * 4} photos of 640x360")
            photos = datasets.synthetic_photos(context.data_dir, per_class, 640, 360)
            folder = context.work_dir / f"scale-{size}"
            folder.mkdir(parents=True, exist_ok=True)
            context.say(f"scale: defects run on {per_class * 4} photos")
            measured[size] = _run_job(
                folder,
                photos,
                {**environment, "AWS_ENDPOINT_URL_S3": endpoint},
                context.log_dir / f"scale-{size}.log",
            )
        server_kb = _peak_kb(server.pid)
    finally:
        # SIGTERM, which defects handles like Ctrl-C: a benchmark started in the background
        # by a shell starts its children with SIGINT ignored.
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    smallest, largest = measured[sizes[0]], measured[sizes[-1]]
    rates = _streaming(
        context, datasets.synthetic_photos(context.data_dir, -(-sizes[0] // 4), 640, 360)
    )
    figures = {
        "sizes": {str(size): found for size, found in measured.items()},
        "server_peak_kb_at_largest": server_kb,
    }
    return _results(sizes, smallest, largest, rates, figures)


def _ratio_result(
    key: str, measured: str, ratio: float, met: bool, figures: dict[str, Any], note: str
) -> Result:
    return Result(
        key=key,
        benchmark="scale",
        title=KEYS[key],
        measured=measured,
        ratio=ratio,
        ratio_text=times(ratio),
        target=TARGETS[key],
        met=met,
        figures=figures,
        note=note,
    )


def _results(
    sizes: tuple[int, ...],
    smallest: dict[str, Any],
    largest: dict[str, Any],
    rates: dict[str, float],
    figures: dict[str, Any],
) -> list[Result]:
    low, high = sizes[0], sizes[-1]
    job = largest["command_kb"] + largest["entry_point_kb"]
    job_small = smallest["command_kb"] + smallest["entry_point_kb"]
    entry = largest["entry_point_kb"] / max(1, smallest["entry_point_kb"])
    staging = (largest["staging_seconds"] or 0) / max(1e-9, smallest["staging_seconds"] or 0)
    streaming = rates["streamed"] / max(1e-9, rates["cached"])
    note = f"{high} against {low} photos (640x360 JPEGs); peaks in MB: " + ", ".join(
        f"{size}: command {found['command_kb'] / 1024:.0f}, entry point "
        f"{found['entry_point_kb'] / 1024:.0f}"
        for size, found in figures["sizes"].items()
    )
    server = figures["server_peak_kb_at_largest"]
    return [
        _ratio_result(
            "scale_job_memory",
            f"{job / 1024:.0f} MB at {high} against {job_small / 1024:.0f} MB at {low}",
            job / max(1, job_small),
            job <= 1.3 * job_small,
            figures,
            note + (f"; the S3 server peaked at {server / 1024:.0f} MB" if server else ""),
        ),
        _ratio_result(
            "scale_entry_point_memory",
            f"{largest['entry_point_kb'] / 1024:.0f} MB against "
            f"{smallest['entry_point_kb'] / 1024:.0f} MB",
            entry,
            entry <= 1.3,
            figures,
            note,
        ),
        _ratio_result(
            "scale_streaming",
            f"streamed {rates['streamed']:.0f} img/s against cached {rates['cached']:.0f} img/s",
            streaming,
            streaming >= 0.8,
            {"images_per_second": rates},
            f"{low} photos at the automatic size, epochs after the first",
        ),
        _ratio_result(
            "scale_staging",
            f"{largest['staging_seconds']:.1f} s for {high} files against "
            f"{smallest['staging_seconds']:.1f} s for {low}",
            staging,
            staging <= high / low,
            figures,
            f"{high // low}x the files",
        ),
    ]
