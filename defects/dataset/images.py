"""One photo checked: read, fully decoded, and converted when the entry point could not read
it as it is (anything but an 8-bit RGB JPEG or PNG becomes an 8-bit RGB PNG)."""

from __future__ import annotations

import functools
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

# The image files a source may hold, by format. Anything but an 8-bit RGB JPEG or PNG is
# converted to PNG (the first frame of an animated or multi-page file).
IMAGE_FORMATS = {
    "JPEG": (".jpg", ".jpeg"),
    "PNG": (".png",),
    "BMP": (".bmp",),
    "WEBP": (".webp",),
    "TIFF": (".tif", ".tiff"),
    "HEIF": (".heic", ".heif"),
}
IMAGE_SUFFIXES = tuple(suffix for suffixes in IMAGE_FORMATS.values() for suffix in suffixes)
FORMAT_NAMES = "JPEG, PNG, BMP, WebP, TIFF or HEIC"
# Decompression-bomb guard: far above any inspection photo.
Image.MAX_IMAGE_PIXELS = 120_000_000


@dataclass(frozen=True)
class CheckedImage:
    source: Path
    relative: str
    class_name: str
    reason: str = ""
    sha256: str = ""
    md5: str = ""
    width: int = 0
    height: int = 0
    size: int = 0
    # Set when the image must be converted; holds the converted PNG bytes (or, once
    # prepare has written them aside, the file that holds them: ``spooled``).
    converted: bytes | None = None
    spooled: str = ""
    conversion: str = ""


@functools.cache
def _read_heif() -> None:
    """Let Pillow open HEIC/HEIF files (once, when the first image is checked)."""
    from pillow_heif import register_heif_opener

    register_heif_opener()


def check_image(path: Path, relative: str = "", class_name: str = "") -> CheckedImage:
    """Read and fully decode one file; ``reason`` says why it cannot be used, if so."""
    _read_heif()
    skipped = CheckedImage(path, relative, class_name)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        return _replace(skipped, reason=f"unsupported file type {path.suffix or '(none)'}")
    try:
        contents = path.read_bytes()
    except OSError as error:
        return _replace(skipped, reason=f"cannot be read: {error.strerror or error}")
    if not contents:
        return _replace(skipped, reason="empty file (0 bytes)")
    try:
        with Image.open(io.BytesIO(contents)) as image:
            image.load()
            image_format = image.format or ""
            mode = image.mode
            width, height = image.size
            unusable = _unusable(image_format, mode)
            converted, conversion = (None, "") if unusable else _convert(image, image_format)
    except UnidentifiedImageError:
        return _replace(skipped, reason=f"not an image (no {FORMAT_NAMES} content)")
    except Image.DecompressionBombError as error:
        return _replace(skipped, reason=f"image too large: {error}")
    except (OSError, SyntaxError, ValueError) as error:
        return _replace(skipped, reason=f"unreadable or truncated image: {error}")
    if unusable:
        return _replace(skipped, reason=unusable)
    if min(width, height) < 16:
        return _replace(skipped, reason=f"too small ({width}x{height})")
    payload = converted if converted is not None else contents
    return CheckedImage(
        source=path,
        relative=relative,
        class_name=class_name,
        sha256=hashlib.sha256(payload).hexdigest(),
        md5=hashlib.md5(payload, usedforsecurity=False).hexdigest(),
        width=width,
        height=height,
        size=len(payload),
        converted=converted,
        conversion=conversion,
    )


def _replace(checked: CheckedImage, reason: str) -> CheckedImage:
    return CheckedImage(checked.source, checked.relative, checked.class_name, reason=reason)


def _unusable(image_format: str, mode: str) -> str:
    """Why an image of this format and pixel mode cannot be used; empty when it can."""
    if image_format not in IMAGE_FORMATS:
        return f"unsupported image format {image_format} ({mode})"
    if mode in {"F", "I;16S"} or mode.startswith("I;32"):
        return f"unsupported pixel mode {mode} (save it as 8- or 16-bit)"
    return ""


def _convert(image: Image.Image, image_format: str) -> tuple[bytes | None, str]:
    """8-bit RGB JPEG/PNG pass through (``None``); anything else becomes an 8-bit RGB PNG,
    with a description of the conversion."""
    if image.mode == "RGB" and image_format in {"JPEG", "PNG"}:
        return None, ""
    frames = getattr(image, "n_frames", 1)
    if image.mode in {"I;16", "I;16B", "I;16L", "I"}:
        pixels = np.asarray(image, dtype=np.uint32)
        peak = 65535 if image.mode.startswith("I;16") or pixels.max() > 255 else 255
        scaled = (pixels.astype(np.float64) * 255.0 / peak).round().astype(np.uint8)
        rgb = Image.fromarray(scaled, mode="L").convert("RGB")
        description = f"16-bit {image.mode} to 8-bit RGB"
    elif image.mode in {"RGBA", "LA", "PA"} or (image.mode == "P" and "transparency" in image.info):
        # Transparent pixels become white, as an image viewer shows them.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        rgb = Image.alpha_composite(background, rgba).convert("RGB")
        description = f"{image.mode} to RGB on white"
    else:
        rgb = image.convert("RGB")
        description = f"{image_format} {image.mode} to RGB"
    buffer = io.BytesIO()
    rgb.save(buffer, format="PNG", compress_level=1)
    first = f" (the first of {frames} frames)" if frames > 1 else ""
    return buffer.getvalue(), description + " PNG" + first
