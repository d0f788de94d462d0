"""Nothing lost, nothing let in: S3 that fails, and jobs that share a folder.

- **Faults**: a dataset is staged and downloaded again through a loopback proxy
  (``defects/testing/faulty_s3.py``) that fails 20 % and then 40 % of the requests (500
  InternalError, 503 SlowDown, cut bodies); every object in the server and every downloaded
  file must equal the local shard byte for byte. The full form also runs a tiny process job
  (stage, train, fetch) through it at each rate.
- **SIGKILL**: ``defects run`` jobs killed with SIGKILL at a random moment (20; one in the
  quick form), each then resumed (``train --resume``); every job must end completed, and no
  entry point may outlive its command by more than a few seconds.
- **Concurrency** (full form only): rounds of three ``defects run`` commands started at once
  in a fresh folder (``process``), and of two at once with ``DEFECTS_BACKEND=local``; a
  round passes when every job succeeds and, for local jobs, no container or network of
  theirs is left.

``python -m benchmarks --only reliability`` runs the full form; ``--quick`` only the staging
through the proxy, in a few seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from random import Random
from typing import Any

import defects
from benchmarks import datasets
from benchmarks.context import Context
from benchmarks.overhead import local_image, local_unavailable
from benchmarks.report import Result, skipped
from defects.dataset import shards
from defects.settings import resolve
from defects.storage import Layout, open_embedded, s3, start_emulator
from defects.testing.concurrent_runs import finish, start_runs
from defects.testing.faulty_s3 import FaultyS3

KEYS = {
    "reliability_faults": "S3 faults injected: objects byte-equal",
    "reliability_process": "Concurrent process jobs in a fresh folder",
    "reliability_local": "Concurrent local jobs",
    "reliability_kills": "Jobs killed with SIGKILL at a random moment, then resumed",
}
TARGETS = {
    "reliability_faults": "every object equal",
    "reliability_process": "every round passes",
    "reliability_local": "every round passes",
    "reliability_kills": "every job completed, no entry point left running",
}
RATES = (0.2, 0.4)
ROUNDS = 5
_REGION = "us-east-1"
# Tiny jobs of the network from scratch: these benchmarks measure what jobs do together and
# when they are killed, not the network (tests/integration/test_sigkill.py kills the
# pretrained one too).
_TINY = [
    *("--per-class", "4", "--epochs", "1", "--image-size", "40x24", "--batch-size", "8"),
    *("--model", "scratch"),
]
_FULL_ONLY = "runs in the full form only (python -m benchmarks --only reliability)"


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _staged_through_faults(context: Context, rate: float, seed: int) -> dict[str, Any]:
    """Stage a dataset through the proxy and download it again; compare every object."""
    count = 24 if context.quick else 1200
    dataset = datasets.staging_files(
        context.work_dir / f"faults-{rate}", count, smallest=20_000, largest=60_000, seed=seed
    )
    server, upstream = start_emulator()
    try:
        with (
            FaultyS3(upstream, rate=rate, seed=seed) as proxy,
            open_embedded(Layout(f"faults-{seed}", "defects"), _REGION, proxy.url) as store,
        ):
            channels = defects.stage(dataset, store)
            downloaded = context.work_dir / f"faults-{rate}-downloaded"
            for split, uri in channels.items():
                s3.download(store.s3, s3.S3Uri.parse(uri), downloaded / split)
            injected, requests = Counter(proxy.injected), proxy.requests
        with open_embedded(Layout(f"faults-{seed}", "defects"), _REGION, upstream) as direct:
            location = direct.layout.dataset(dataset.dataset_id)
            prefix = location.key + "/"
            stored = {
                key[len(prefix) :]: _md5(
                    direct.s3.get_object(Bucket=location.bucket, Key=key)["Body"].read()
                )
                for key in s3.list_etags(direct.s3, location)
            }
    finally:
        server.stop()
    expected = {shard.key: shard.md5 for shard in shards.shards_for(dataset)}
    local = {key: _md5((downloaded / key).read_bytes()) for key in expected}
    stored.pop("manifest.json", None)
    return {
        "rate": rate,
        "requests": requests,
        "injected": dict(injected),
        "objects": len(expected),
        "stored_equal": sum(stored.get(key) == md5 for key, md5 in expected.items()),
        "downloaded_equal": sum(local[key] == md5 for key, md5 in expected.items()),
    }


def _job_through_faults(context: Context, rate: float, seed: int) -> dict[str, Any]:
    """A tiny process job (stage, train, fetch) through the proxy; its archives compared."""
    photos = datasets.synthetic_photos(context.data_dir, 4, *context.synthetic_size)
    server, upstream = start_emulator()
    try:
        with FaultyS3(upstream, rate=rate, seed=seed) as proxy:
            name = f"bench-faults-{seed}"
            settings = resolve(
                {"runs_dir": context.work_dir / "runs-faults", "s3_endpoint": proxy.url},
                environ={},
            )
            result = defects.run(
                data=photos,
                settings=settings,
                hyperparameters={
                    "epochs": 1,
                    "image_size": "40x24",
                    "batch_size": 8,
                    "model": "scratch",
                },
                job_name=name,
                data_dir=context.work_dir / "data-faults",
            )
            injected = dict(proxy.injected)
        layout = defects.create_backend(settings).layout()
        with open_embedded(layout, _REGION, upstream) as store:
            output = store.layout.job_output(name)
            equal = sum(
                store.s3.get_object(Bucket=output.bucket, Key=output.join(archive).key)[
                    "Body"
                ].read()
                == (result.run_dir / archive).read_bytes()
                for archive in ("model.tar.gz", "output.tar.gz")
            )
    finally:
        server.stop()
    return {"rate": rate, "injected": injected, "archives": 2, "archives_equal": equal}


def run_faults(context: Context) -> list[Result]:
    rates = RATES[-1:] if context.quick else RATES
    staged = []
    jobs = []
    for seed, rate in enumerate(rates, start=1):
        context.say(f"reliability: staging through a proxy failing {rate:.0%} of requests")
        staged.append(_staged_through_faults(context, rate, seed))
        if not context.quick:
            context.say(f"reliability: a tiny job through a proxy failing {rate:.0%}")
            jobs.append(_job_through_faults(context, rate, seed))
    objects = sum(2 * item["objects"] for item in staged) + sum(j["archives"] for j in jobs)
    equal = sum(item["stored_equal"] + item["downloaded_equal"] for item in staged) + sum(
        j["archives_equal"] for j in jobs
    )
    faults = sum(sum(item["injected"].values()) for item in staged + jobs)
    return [
        Result(
            key="reliability_faults",
            benchmark="reliability",
            title=KEYS["reliability_faults"],
            measured=f"{equal}/{objects} objects equal after {faults} injected faults",
            baseline="no faults: every object equal",
            ratio=equal / objects,
            ratio_text=f"{equal}/{objects}",
            target=TARGETS["reliability_faults"],
            met=equal == objects,
            figures={"staging": staged, "jobs": jobs},
            note="Faults: 500 InternalError, 503 SlowDown and cut bodies, in turn, at "
            + " and ".join(f"{rate:.0%}" for rate in rates)
            + " of the requests; each object is compared in the server and after download.",
        )
    ]


def _environment(**extra: str) -> dict[str, str]:
    root = str(Path(defects.__file__).resolve().parents[1])
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DEFECTS_"))}
    path = os.pathsep.join(p for p in (root, inherited.get("PYTHONPATH", "")) if p)
    return {**inherited, "PYTHONPATH": path, **extra}


def _round(jobs: int, environment: dict[str, str], data: list[str]) -> tuple[bool, list[str]]:
    """``jobs`` runs started at once in a fresh folder: whether all passed, and their names."""
    with tempfile.TemporaryDirectory(prefix="defects-round-") as folder:
        names = [f"round-{index}-{os.urandom(2).hex()}" for index in range(jobs)]
        started = start_runs(Path(folder), names, [*_TINY, *data], environment)
        outcomes = finish(Path(folder), started)
        return all(code == 0 for code, _ in outcomes.values()), names


def _leftovers(names: list[str]) -> int:
    """Containers and networks of these local jobs that are still there."""
    found = 0
    for name in names:
        label = f"label=com.docker.compose.project=sm-{name}"
        for listing in (["ps", "-aq"], ["network", "ls", "-q"]):
            output = subprocess.run(
                ["docker", *listing, "--filter", label], capture_output=True, text=True
            ).stdout
            found += len(output.split())
    return found


def _rounds_result(key: str, jobs: int, passed: int, rounds: int, note: str) -> Result:
    return Result(
        key=key,
        benchmark="reliability",
        title=KEYS[key],
        measured=f"{passed}/{rounds} rounds of {jobs} jobs at once passed",
        baseline=f"{rounds} rounds",
        ratio=passed / rounds,
        ratio_text=f"{passed}/{rounds}",
        target=TARGETS[key],
        met=passed == rounds,
        figures={"jobs_per_round": jobs, "rounds": rounds, "passed": passed},
        note=note,
    )


def run_concurrency(context: Context) -> list[Result]:
    if context.quick:
        return [
            skipped(key, "reliability", KEYS[key], TARGETS[key], _FULL_ONLY)
            for key in ("reliability_process", "reliability_local")
        ]
    results = []
    passed = 0
    for turn in range(1, ROUNDS + 1):
        context.say(f"reliability: round {turn}/{ROUNDS} of 3 process jobs at once")
        passed += _round(3, _environment(DEFECTS_BACKEND="process"), [])[0]
    results.append(
        _rounds_result(
            "reliability_process",
            3,
            passed,
            ROUNDS,
            "Each round in a fresh folder: the "
            "three jobs share the drawn photos, the prepared dataset and its shards.",
        )
    )
    image = local_image()
    reason = local_unavailable(image)
    if reason:
        results.append(
            skipped(
                "reliability_local",
                "reliability",
                KEYS["reliability_local"],
                TARGETS["reliability_local"],
                reason,
            )
        )
        return results
    photos = datasets.synthetic_photos(context.data_dir, 4, *context.synthetic_size)
    local = _environment(DEFECTS_BACKEND="local", DEFECTS_TRAINING_IMAGE=image)
    passed = 0
    for turn in range(1, ROUNDS + 1):
        context.say(f"reliability: round {turn}/{ROUNDS} of 2 local jobs at once")
        ok, names = _round(2, local, ["--data", str(photos)])
        passed += ok and _leftovers(names) == 0
    results.append(
        _rounds_result(
            "reliability_local",
            2,
            passed,
            ROUNDS,
            f"In {image}; a round passes when both "
            "jobs succeed and no container or network of theirs is left.",
        )
    )
    return results


KILLS = 20
# Seconds an entry point may outlive its killed command.
_OUTLIVES = 10.0


def _entry_points(run_dir: Path) -> list[int]:
    script = str((run_dir / "code" / "train.py").resolve())
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and script in (entry / "cmdline").read_text():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _killed_and_resumed(folder: Path, name: str, moment: float) -> tuple[bool, bool, str]:
    """A tiny job killed ``moment`` seconds after it started, then resumed (or started again,
    when it was killed before it had a folder): whether it ended completed, whether its
    entry point outlived the command, and how it went."""
    environment = _environment(DEFECTS_BACKEND="process")
    command = [sys.executable, "-m", "defects"]
    run = [*command, "run", *_TINY, "--epochs", "3", "--job-name", name]
    process = subprocess.Popen(
        run, cwd=folder, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        process.wait(timeout=moment)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.wait()
    run_dir = folder / "runs" / name
    deadline = time.monotonic() + _OUTLIVES
    while _entry_points(run_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    outlived = bool(_entry_points(run_dir))
    if (run_dir / "job.json").is_file():
        again = [*command, "train", "--resume", name]
        how = "resumed"
    else:
        again, how = run, "started again"
    if process.returncode == 0:
        again, how = [], "finished before the kill"
    if again:
        subprocess.run(
            again, cwd=folder, env=environment, capture_output=True, timeout=1200, check=False
        )
    status = (
        json.loads((run_dir / "job.json").read_text()).get("status")
        if (run_dir / "job.json").is_file()
        else None
    )
    return status == "completed", outlived, how


def run_kills(context: Context) -> list[Result]:
    """SIGKILL at random moments over a whole job's life, each job then resumed."""
    kills = 1 if context.quick else KILLS
    random = Random(0)
    completed = outlived = 0
    hows: Counter[str] = Counter()
    with tempfile.TemporaryDirectory(prefix="defects-kills-") as work:
        folder = Path(work)
        # A whole job's length, to draw the moments from.
        started = time.monotonic()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "defects",
                "run",
                *_TINY,
                "--epochs",
                "3",
                "--job-name",
                "whole",
            ],
            cwd=folder,
            env=_environment(DEFECTS_BACKEND="process"),
            capture_output=True,
            check=False,
        )
        length = time.monotonic() - started
        for turn in range(1, kills + 1):
            moment = random.uniform(0.5, length)
            context.say(f"reliability: SIGKILL {turn}/{kills} after {moment:.1f} s")
            done, left, how = _killed_and_resumed(folder, f"kill-{turn}", moment)
            completed += done
            outlived += left
            hows[how] += 1
    return [
        Result(
            key="reliability_kills",
            benchmark="reliability",
            title=KEYS["reliability_kills"],
            measured=f"{completed}/{kills} completed; {outlived} entry point(s) outlived "
            f"their command by more than {_OUTLIVES:.0f} s",
            baseline=f"{kills} jobs",
            ratio=completed / kills,
            ratio_text=f"{completed}/{kills}",
            target=TARGETS["reliability_kills"],
            met=completed == kills and outlived == 0,
            figures={
                "kills": kills,
                "completed": completed,
                "outlived": outlived,
                "job_seconds": round(length, 1),
                **dict(hows),
            },
            note="process backend, tiny jobs of 3 epochs (the network from scratch); each "
            "killed at a moment drawn uniformly over a whole job's length, then `train "
            "--resume` (or started again when killed before it had a folder).",
        )
    ]


def run(context: Context) -> list[Result]:
    return run_faults(context) + run_kills(context) + run_concurrency(context)
