"""The host-side data steps as a user runs them: draw synthetic photos, prepare a folder
(validate and split), and stage a prepared dataset in S3 as tar shards. Each shows progress
and says what it did; the work itself is in :mod:`.synth`, :mod:`.prepare` and
:mod:`.shards`. A pretrained model's ImageNet weights are staged like data
(:func:`stage_weights`): converted once, uploaded content-addressed, given to the entry point
as its ``pretrained`` channel."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from defects.console import log, progress
from defects.dataset import DATA_DIR, folders, shards
from defects.dataset.manifest import SPLITS, PreparedDataset, load_manifest
from defects.errors import ConfigError, DataError
from defects.storage import Layout, S3Uri, Storage, s3
from defects.training import contract

# In a folder of drawn photos once all of them are there.
_COMPLETE = ".complete"


def synthesize(
    out_dir: Path | None = None,
    per_class: int = 100,
    seed: int = 0,
    width: int = 640,
    height: int = 360,
    data_dir: Path = DATA_DIR,
) -> Path:
    """Draw synthetic photos; reuses an identical earlier set."""
    if per_class < 1:
        raise ConfigError(f"--per-class must be at least 1, got {per_class}.")
    size = {"per_class": per_class, "seed": seed, "width": width, "height": height}
    if out_dir is not None:
        _drawn(_draw(out_dir, **size), size, out_dir)
        return out_dir
    # Shared by every job that asks for the same photos: drawn once, then reused.
    target = data_dir / "synthetic" / f"n{per_class}-s{seed}-{width}x{height}"
    with folders.exclusive(target, "another job is drawing the same photos"):
        if (target / _COMPLETE).exists():
            log.info("Reusing synthetic data in %s.", target)
            return target
        with folders.built_in_place(target) as partial:
            total = _draw(partial, **size)
            (partial / _COMPLETE).touch()
    # Named once the photos are in place: the folder they were drawn in is gone by now.
    _drawn(total, size, target)
    return target


def _drawn(total: int, size: dict[str, int], folder: Path) -> None:
    log.info(
        "Drew %d synthetic photos (%dx%d) in %s.", total, size["width"], size["height"], folder
    )


def _draw(target: Path, per_class: int, seed: int, width: int, height: int) -> int:
    """Draw the photos into ``target``; returns how many."""
    from defects.dataset.synth import CLASS_NAMES
    from defects.dataset.synth import synthesize as draw

    total = per_class * len(CLASS_NAMES)
    with progress("Drawing synthetic photos", total) as advance:
        try:
            draw(
                target,
                per_class=per_class,
                seed=seed,
                width=width,
                height=height,
                progress=lambda done, _total: advance(1),
            )
        except ValueError as error:
            raise DataError(str(error), hint="Choose an empty or new output folder.") from error
    return total


def prepare(
    source: Path,
    out_dir: Path | None = None,
    classes: Sequence[str] | None = None,
    seed: int = 0,
    data_dir: Path = DATA_DIR,
) -> PreparedDataset:
    """Validate and split ``source`` (or reuse it when it is already a prepared dataset)."""
    from defects.dataset.prepare import prepare as prepare_folder

    already = load_manifest(source) if source.is_dir() else None
    if already is not None:
        return already
    with progress("Checking images", None) as advance:
        dataset = prepare_folder(
            source,
            out_dir,
            classes=classes,
            seed=seed,
            data_dir=data_dir,
            advance=advance,
            on_total=advance.set_total,
        )
    for item in dataset.skipped:
        log.warning("Skipped %s: %s", item["source"], item["reason"])
    if dataset.manifest.get("ignored_folders"):
        log.info(
            "Ignored folders (not classes): %s", ", ".join(dataset.manifest["ignored_folders"])
        )
    log.info(dataset.summary())
    return dataset


def stage(dataset: PreparedDataset, store: Storage) -> dict[str, str]:
    """Upload the splits, as tar shards, to ``s3://<bucket>/<prefix>/datasets/<id>/``;
    returns the channel URIs. Each shard is uploaded while the next one is packed."""
    started = time.perf_counter()
    # The local files first: a damaged prepared dataset fails before any S3 traffic.
    try:
        count, packed = shards.open_shards(dataset)
    except FileNotFoundError as error:
        raise DataError(
            f"The prepared file {error.filename} is missing.",
            hint="Prepare the source folder again with `defects prepare`.",
        ) from error
    s3.ensure_bucket(store.s3, store.layout.bucket, store.region)
    location = store.layout.dataset(dataset.dataset_id)
    staged: list[shards.Shard] = []

    def items() -> Iterator[s3.UploadItem]:
        manifest_path = dataset.root / "manifest.json"
        yield s3.UploadItem(
            manifest_path, location.join("manifest.json").key, s3.md5_of(manifest_path)
        )
        for shard in packed:
            staged.append(shard)
            yield s3.UploadItem(shard.path, location.join(shard.key).key, shard.md5)

    with progress(f"Staging to {location}", count + 1) as advance:
        report = s3.upload(store.s3, store.layout.bucket, items(), location.key, advance)
    log.info(
        "Staged dataset %s (%d images in %d shards): %d object(s) uploaded (%.1f MB), "
        "%d already there, in %.1f s.",
        dataset.dataset_id,
        sum(shard.images for shard in staged),
        len(staged),
        report.transferred,
        report.bytes / 1e6,
        report.skipped,
        time.perf_counter() - started,
    )
    return store.layout.channels(dataset.dataset_id, SPLITS)


def weights_files(models: Iterable[str], data_dir: str | Path = DATA_DIR) -> dict[str, Path]:
    """The converted ImageNet weights each pretrained model among ``models`` needs, by the
    name they take in the pretrained channel (converted once into ``data/pretrained/``)."""
    from defects.dataset import pretrained

    variants = sorted(
        {contract.PRETRAINED_WEIGHTS[m] for m in models if m in contract.PRETRAINED_WEIGHTS}
    )
    files: dict[str, Path] = {}
    for variant in variants:
        converted = pretrained.convert(Path(data_dir) / "pretrained", variant)
        name = contract.weights_name(variant)
        files[name] = converted
        files[name + contract.DIGEST_SUFFIX] = pretrained.digest_file(converted)
    return files


def weights_location(files: Mapping[str, Path], layout: Layout) -> S3Uri:
    """Where the weights go in S3: named by their content, so a change is a new folder."""
    digests = [
        path.read_text().split()[0]
        for name, path in sorted(files.items())
        if name.endswith(contract.DIGEST_SUFFIX)
    ]
    variants = [
        name.removesuffix(contract.WEIGHTS_SUFFIX)
        for name in sorted(files)
        if name.endswith(contract.WEIGHTS_SUFFIX)
    ]
    digest = hashlib.sha256(" ".join(digests).encode()).hexdigest()[:16]
    return layout.pretrained(f"{'+'.join(variants)}-{digest}")


def stage_weights(
    models: Iterable[str], store: Storage, data_dir: str | Path = DATA_DIR
) -> dict[str, str]:
    """The pretrained channel of a job whose model is among ``models``: the weights staged
    to ``s3://<bucket>/<prefix>/pretrained/<name>-<digest>/`` (skipped when there already);
    no channel when no model needs pretrained weights."""
    files = weights_files(models, data_dir)
    if not files:
        return {}
    location = weights_location(files, store.layout)
    items = [
        s3.UploadItem(path, location.join(name).key, s3.md5_of(path))
        for name, path in sorted(files.items())
    ]
    s3.ensure_bucket(store.s3, store.layout.bucket, store.region)
    report = s3.upload(store.s3, store.layout.bucket, items, location.key)
    log.info(
        "Pretrained weights in %s: %d file(s) uploaded, %d already there.",
        location,
        report.transferred,
        report.skipped,
    )
    return {contract.PRETRAINED_CHANNEL: str(location)}
