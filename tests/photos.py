"""Small photos for tests, drawn from seeds: the same seed gives the same bytes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("good", "oil", "scratch", "stain")


def photo(path: Path, seed: int, mode: str = "RGB", size: tuple[int, int] = (48, 32)) -> Path:
    """Noise of ``size`` in ``mode``, saved in the format of ``path``'s suffix."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, size=(size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(pixels, "RGB")
    if mode != "RGB":
        image = image.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    formats = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".webp": "WEBP"}
    fmt = formats.get(path.suffix.lower(), "HEIF" if path.suffix == ".heic" else "TIFF")
    if fmt == "HEIF":
        from pillow_heif import register_heif_opener

        register_heif_opener()
    image.save(path, format=fmt)
    return path


def class_photos(
    root: Path, per_class: int = 6, folder_names: dict[str, str] | None = None
) -> Path:
    """``per_class`` photos in a folder for each of the four classes (renamed by
    ``folder_names``)."""
    folder_names = folder_names or {}
    for class_index, name in enumerate(CLASSES):
        folder = root / folder_names.get(name, name)
        for i in range(per_class):
            suffix = ".png" if name == "good" else ".jpg"
            photo(folder / f"{name}_{i:03d}{suffix}", seed=class_index * 100 + i)
    return root


def class_folders(root: Path, names: tuple[str, ...], per_class: int = 4) -> Path:
    """``per_class`` JPEGs in a folder for each of ``names``."""
    for index, name in enumerate(names):
        for i in range(per_class):
            photo(root / name / f"{i}.jpg", seed=index * 10 + i)
    return root
