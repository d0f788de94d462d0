"""Staging a dataset to the embedded S3 server: ``defects stage`` vs. a serial boto3 loop.

Both upload the same files to the same embedded moto server (in this process, as with
``defects stage``). The baseline is the tutorials' loop: one ``upload_file`` after another
with a default boto3 client. ``defects stage`` is :func:`defects.pipeline.stage`: packing
the splits into tar shards (timed), the bucket check, a listing, parallel transfers and the
MD5 check afterwards. Staging the unchanged dataset again must cost almost nothing: only the
listing.
"""

from __future__ import annotations

import shutil
import statistics
import time
from pathlib import Path

import boto3

import defects
from benchmarks import datasets
from benchmarks.context import Context
from benchmarks.report import Result, percent, times
from defects.dataset import shards
from defects.settings import resolve
from defects.storage import Layout, open_embedded, s3

KEYS = {
    "staging": "Staging: defects stage vs serial boto3",
    "restaging": "Re-staging the unchanged dataset",
}
TARGETS = {
    "staging": ">= 5x the serial loop",
    "restaging": "<= 5 % of the first staging",
}
TARGET_SPEEDUP = 5.0
TARGET_RESTAGE_FRACTION = 0.05
_REGION = "us-east-1"
_BASELINE_BUCKET = "tutorial"
# Rounds per side: single uploads to the emulator vary by a third from run to run.
_ROUNDS = 3


def _serial_upload(
    endpoint: str, bucket: str, items: list[tuple[Path, str]]
) -> tuple[float, float]:
    """The tutorial's way: one ``upload_file`` after another into a new bucket. Its wall and
    CPU seconds."""
    tutorial = boto3.client(
        "s3",
        region_name=_REGION,
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    tutorial.create_bucket(Bucket=bucket)
    started, cpu_started = time.perf_counter(), time.process_time()
    for path, key in items:
        tutorial.upload_file(str(path), bucket, key)
    return time.perf_counter() - started, time.process_time() - cpu_started


def run(context: Context) -> list[Result]:
    count = context.sizes.staging_files
    context.say(f"staging: writing {count} files of 100-300 KB")
    dataset = datasets.staging_files(context.work_dir / "staging", count)
    items = [(dataset.root / entry["path"], entry["path"]) for entry in dataset.files()]
    megabytes = sum(int(entry["bytes"]) for entry in dataset.files()) / 1e6

    serial_runs: list[float] = []
    stage_runs: list[float] = []
    restage_runs: list[float] = []
    serial_cpu = stage_cpu = 0.0
    with open_embedded(Layout("unused", "defects"), _REGION) as server:
        endpoint = str(server.endpoint)
        # The two sides take turns, each into a bucket of its own; the medians are reported.
        for turn in range(1, _ROUNDS + 1):
            context.say(f"staging: round {turn}/{_ROUNDS}: serial upload_file of {count} files")
            seconds, cpu = _serial_upload(endpoint, f"{_BASELINE_BUCKET}-{turn}", items)
            serial_runs.append(seconds)
            serial_cpu += cpu
            context.say(f"staging: round {turn}/{_ROUNDS}: defects stage, then again unchanged")
            settings = resolve(
                {"backend": "process", "s3_endpoint": endpoint, "bucket": f"staged-{turn}"},
                environ={},
            )
            with defects.create_backend(settings).open_storage() as store:
                # Packing the shards is part of the first staging.
                shutil.rmtree(dataset.root / shards.SHARDS_DIR, ignore_errors=True)
                started, cpu_started = time.perf_counter(), time.process_time()
                defects.stage(dataset, store)
                stage_runs.append(time.perf_counter() - started)
                stage_cpu += time.process_time() - cpu_started
                started = time.perf_counter()
                defects.stage(dataset, store)
                restage_runs.append(time.perf_counter() - started)
                location = store.layout.dataset(dataset.dataset_id)
                staged = len(s3.list_etags(store.s3, location))
    serial_seconds = statistics.median(serial_runs)
    stage_seconds = statistics.median(stage_runs)
    restage_seconds = statistics.median(restage_runs)
    # Over all rounds, not the median round's (see the figures below).
    serial_load = serial_cpu / sum(serial_runs)
    stage_load = stage_cpu / sum(stage_runs)
    packed = shards.shards_for(dataset)
    if sum(shard.images for shard in packed) != count or staged != len(packed) + 1:
        raise RuntimeError(f"{staged} objects staged, expected {len(packed)} shards and a manifest")
    speedup = serial_seconds / stage_seconds
    restage_fraction = restage_seconds / stage_seconds
    figures = {
        "files": count,
        "shards": len(packed),
        "megabytes": round(megabytes, 1),
        "serial_seconds": round(serial_seconds, 3),
        "serial_files_per_second": round(count / serial_seconds, 1),
        "stage_seconds": round(stage_seconds, 3),
        "stage_files_per_second": round(count / stage_seconds, 1),
        "restage_seconds": round(restage_seconds, 3),
        "rounds": _ROUNDS,
        "serial_seconds_each": [round(x, 3) for x in serial_runs],
        "stage_seconds_each": [round(x, 3) for x in stage_runs],
        # CPU seconds of this process (the uploader and the in-process S3 server) per wall
        # second: near the core count, the upload is bound by CPU, not by waiting.
        "serial_cpu_per_wall_second": round(serial_load, 2),
        "stage_cpu_per_wall_second": round(stage_load, 2),
    }
    return [
        Result(
            key="staging",
            benchmark="staging",
            title=KEYS["staging"],
            measured=f"{stage_seconds:.1f} s ({count / stage_seconds:.0f} files/s, defects stage)",
            baseline=f"{serial_seconds:.1f} s ({count / serial_seconds:.0f} files/s, serial loop)",
            ratio=speedup,
            ratio_text=times(speedup),
            target=TARGETS["staging"],
            met=speedup >= TARGET_SPEEDUP,
            figures=figures,
            note=(
                f"{count} files, {megabytes:.0f} MB, to the embedded moto server, which runs in "
                f"the uploader's process as with `defects stage` (which packs them into "
                f"{len(packed)} tar shards first); medians of {_ROUNDS} alternating rounds "
                f"(serial {', '.join(f'{x:.1f}' for x in serial_runs)} s; defects stage "
                f"{', '.join(f'{x:.2f}' for x in stage_runs)} s); CPU use per wall second: "
                f"serial {serial_load:.2f}, defects stage "
                f"{stage_load:.2f} (on loopback, uploads wait on CPU, not on "
                "the network)."
            ),
        ),
        Result(
            key="restaging",
            benchmark="staging",
            title=KEYS["restaging"],
            measured=f"{restage_seconds:.2f} s (every object skipped)",
            baseline=f"{stage_seconds:.1f} s (first staging)",
            ratio=restage_fraction,
            ratio_text=percent(restage_fraction),
            target=TARGETS["restaging"],
            met=restage_fraction <= TARGET_RESTAGE_FRACTION,
            figures=figures,
        ),
    ]
