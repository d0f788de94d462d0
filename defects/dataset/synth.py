"""Synthetic phone-surface inspection photos, laid out like the public Kaggle defect dataset."""

from __future__ import annotations

import io
import math
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from defects.dataset.scene import (
    Canvas,
    Patch,
    Phone,
    Render,
    bump,
    centres,
    cloth,
    coverage,
    phone_axes,
    place_phone,
    resize,
    rounded_box_sdf,
    screen_shade,
    smoothstep,
    uniform,
)

CLASS_NAMES: tuple[str, ...] = ("good", "oil", "scratch", "stain")

MIN_SIZE = 64
JPEG_QUALITY = 92

# The public dataset names its files with a per-class prefix; good photos are PNGs.
_PREFIX = {"good": "", "oil": "Oil_", "scratch": "Scr_", "stain": "Sta_"}
_SUFFIX = {"good": ".png", "oil": ".jpg", "scratch": ".jpg", "stain": ".jpg"}

# Fields are float32 at run time; numpy's stubs widen scalar arithmetic to float64.
Array = npt.NDArray[np.floating[Any]]


@dataclass(frozen=True)
class SynthReport:
    out_dir: Path
    # The number of images written for each class.
    counts: dict[str, int]
    width: int
    height: int


def _patch(canvas: Canvas, cx: float, cy: float, reach: float) -> Patch | None:
    # The pixel window around a point, with the screen coverage of each of its pixels.
    _, height, width = canvas.image.shape
    x0, x1 = max(int(cx - reach), 0), min(int(cx + reach) + 2, width)
    y0, y1 = max(int(cy - reach), 0), min(int(cy + reach) + 2, height)
    if x0 >= x1 or y0 >= y1:
        return None
    xs = np.arange(x0, x1, dtype=np.float32) + 0.5
    ys = np.arange(y0, y1, dtype=np.float32) + 0.5
    phone = canvas.phone
    u, v = phone_axes(phone, xs, ys)
    cover = coverage(
        rounded_box_sdf(u, v, phone.screen_half_len, phone.screen_half_wid, phone.screen_radius)
    )
    xi, yi = min(max(int(cx), 0), width - 1), min(max(int(cy), 0), height - 1)
    gain = canvas.balance * (canvas.light_x[xi] + canvas.light_y[yi])
    return Patch(
        rows=slice(y0, y1),
        cols=slice(x0, x1),
        dx=(xs - cx)[None, :],
        dy=(ys - cy)[:, None],
        cover=cover,
        gain=gain[:, None, None],
    )


def _blob_distance(
    rng: np.random.Generator, dx: Array, dy: Array, radius: float, wobble: float
) -> Array:
    # Radial distance to an irregular closed outline r(theta) built from a few harmonics.
    rho = np.sqrt(dx * dx + dy * dy)
    theta = np.arctan2(dy, dx)
    edge = np.ones_like(theta)
    for k in (2, 3, 4, 5):
        edge += uniform(rng, 0.0, wobble) / k * np.cos(k * theta + uniform(rng, 0.0, 2 * math.pi))
    return rho - radius * edge


def _screen_point(rng: np.random.Generator, phone: Phone, margin: float) -> tuple[float, float]:
    mu = max(phone.screen_half_len - margin, 1.0)
    mv = max(phone.screen_half_wid - margin, 1.0)
    return phone.to_image(uniform(rng, -mu, mu), uniform(rng, -mv, mv))


def _add_oil(rng: np.random.Generator, canvas: Canvas) -> None:
    scale = canvas.scale
    radius = uniform(rng, 0.02, 0.05) * 360.0 * scale
    cx, cy = _screen_point(rng, canvas.phone, radius * 1.3)
    patch = _patch(canvas, cx, cy, radius * 1.7 + 3)
    if patch is None:
        return
    dx, dy = patch.dx, patch.dy
    # A union of a few lobes makes the smear irregular.
    dist = _blob_distance(rng, dx, dy, radius * uniform(rng, 0.55, 0.75), 0.45)
    for _ in range(int(rng.integers(1, 3))):
        ox, oy = rng.uniform(-0.5, 0.5, 2) * radius
        lobe = _blob_distance(rng, dx - ox, dy - oy, radius * uniform(rng, 0.35, 0.6), 0.5)
        np.minimum(dist, lobe, out=dist)
    soft = max(0.15 * radius, 0.8)
    inside = smoothstep(0.5 - dist / (2.0 * soft))
    rim = bump(dist / max(0.08 * radius, 1.0 * scale))
    gloss_dir = uniform(rng, 0.0, 2 * math.pi)
    gloss = 0.75 + 0.25 * np.clip(
        (dx * math.cos(gloss_dir) + dy * math.sin(gloss_dir)) / radius, -1.0, 1.0
    )
    # A faint rainbow tint on the rim, as thin oil films show.
    rim_tint = (1.0 + rng.normal(0.0, 0.2, 3)).astype(np.float32)[:, None, None]
    film = uniform(rng, 0.08, 0.16) * inside * gloss
    patch.add(canvas, film[None] + rim_tint * (uniform(rng, 0.08, 0.16) * rim)[None])


def _add_stain(rng: np.random.Generator, canvas: Canvas) -> None:
    radius = uniform(rng, 0.01, 0.02) * 360.0 * canvas.scale
    cx, cy = _screen_point(rng, canvas.phone, radius * 1.5)
    patch = _patch(canvas, cx, cy, radius * 1.8 + 3)
    if patch is None:
        return
    stretch = uniform(rng, 0.75, 1.0)
    dist = _blob_distance(rng, patch.dx, patch.dy / stretch, radius, 0.25)
    soft = max(0.3 * radius, 0.8)
    alpha = uniform(rng, 0.65, 0.95) * smoothstep(0.5 - dist / (2.0 * soft))
    if rng.random() < 0.6:
        colour = np.array([0.80, 0.70, 0.54], np.float32) * uniform(rng, 0.55, 0.95)
    else:
        colour = np.full(3, uniform(rng, 0.2, 0.35), np.float32)
    patch.paint(canvas, colour, alpha)


def _add_scratch(rng: np.random.Generator, canvas: Canvas) -> None:
    scale = canvas.scale
    length = uniform(rng, 0.10, 0.30) * 360.0 * scale
    length = min(length, 1.6 * canvas.phone.screen_half_wid)
    cx, cy = _screen_point(rng, canvas.phone, length / 2.0 + 2.0)
    angle = uniform(rng, 0.0, math.pi)
    bend = uniform(rng, -0.15, 0.15) * length
    # A quadratic Bezier curve through the centre, sampled as a short polyline.
    t = np.linspace(0.0, 1.0, 13)
    ax, ay = math.cos(angle), math.sin(angle)
    px = (t - 0.5) * length * ax - 4.0 * t * (1.0 - t) * bend * ay
    py = (t - 0.5) * length * ay + 4.0 * t * (1.0 - t) * bend * ax
    reach = 4.0 * scale + 2.0
    patch = _patch(canvas, cx, cy, length / 2.0 + abs(bend) + reach + 2.0)
    if patch is None:
        return
    dx, dy = patch.dx[0], patch.dy[:, 0]
    dist = np.full((dy.size, dx.size), np.inf, np.float32)
    along = np.zeros_like(dist)
    # Each segment only needs the distance over its own small neighbourhood.
    for i in range(len(t) - 1):
        sx, sy = float(px[i]), float(py[i])
        ex, ey = float(px[i + 1]) - sx, float(py[i + 1]) - sy
        c0, c1 = np.searchsorted(dx, [min(sx, sx + ex) - reach, max(sx, sx + ex) + reach])
        r0, r1 = np.searchsorted(dy, [min(sy, sy + ey) - reach, max(sy, sy + ey) + reach])
        if c0 >= c1 or r0 >= r1:
            continue
        ox = dx[None, c0:c1] - sx
        oy = dy[r0:r1, None] - sy
        seg = np.clip((ox * ex + oy * ey) / (ex * ex + ey * ey + 1e-9), 0.0, 1.0)
        d = np.hypot(ox - seg * ex, oy - seg * ey)
        closer = d < dist[r0:r1, c0:c1]
        dist[r0:r1, c0:c1][closer] = d[closer]
        along[r0:r1, c0:c1][closer] = ((i + seg) / (len(t) - 1))[closer]
    half = uniform(rng, 0.5, 1.0) * scale
    core = np.clip(half + 0.5 - dist, 0.0, 1.0)
    halo = 0.25 * bump(dist / (4.0 * scale))
    # The glint varies along the scratch and fades out at both ends.
    phase = uniform(rng, 0.0, 2 * math.pi)
    glint = (0.7 + 0.3 * np.sin(2 * math.pi * uniform(rng, 0.5, 2.0) * along + phase)) * np.clip(
        np.minimum(along, 1.0 - along) * 12.0, 0.0, 1.0
    )
    alpha = uniform(rng, 0.45, 0.85) * np.clip(core + halo, 0.0, 1.0) * glint
    patch.paint(canvas, np.full(3, 0.92, np.float32), alpha)


_DEFECTS: dict[str, tuple[Callable[[np.random.Generator, Canvas], None], int, int]] = {
    "oil": (_add_oil, 1, 3),
    "scratch": (_add_scratch, 1, 3),
    "stain": (_add_stain, 1, 4),
}


def _render(
    rng: np.random.Generator, cls: str, width: int, height: int, *, defects: bool = True
) -> Render:
    """Draw one photo; `defects=False` draws the very same scene with a clean screen."""
    if cls not in CLASS_NAMES:
        raise ValueError(f"Unknown class {cls!r}; expected one of {', '.join(CLASS_NAMES)}.")
    # Separate streams keep the scene and the noise identical whether or not defects are drawn.
    scene_rng, defect_rng, noise_rng = rng.spawn(3)
    scale = height / 360.0
    phone = place_phone(scene_rng, width, height)
    photo = cloth(scene_rng, phone, width, height)

    # Only the pixels around the phone need the per-pixel geometry; the smooth screen shading
    # is computed on a coarse grid and interpolated.
    reach_x, reach_y = phone.reach()
    x0, x1 = max(int(phone.cx - reach_x - 2), 0), min(int(phone.cx + reach_x + 3), width)
    y0, y1 = max(int(phone.cy - reach_y - 2), 0), min(int(phone.cy + reach_y + 3), height)
    step = max(int(4 * scale), 1)
    cols, rows = -(-(x1 - x0) // step), -(-(y1 - y0) // step)
    coarse_u, coarse_v = phone_axes(phone, centres(x0, cols, step), centres(y0, rows, step))
    shade = screen_shade(scene_rng, phone, coarse_u, coarse_v)
    screen = resize(shade, cols * step, rows * step, Image.Resampling.BILINEAR)
    screen = screen[: y1 - y0, : x1 - x0]

    u, v = phone_axes(phone, centres(x0, x1 - x0, 1.0), centres(y0, y1 - y0, 1.0))
    body_a = rounded_box_sdf(u, v, phone.half_len, phone.half_wid, phone.radius)
    screen_a = coverage(
        rounded_box_sdf(u, v, phone.screen_half_len, phone.screen_half_wid, phone.screen_radius)
    )
    # The frame: a light or dark bezel with a sheen along its length and a thin bright edge.
    if scene_rng.random() < 0.5:
        bezel = 0.8 * uniform(scene_rng, 0.85, 1.1)
    else:
        bezel = 0.07 * uniform(scene_rng, 0.8, 2.0)
    layer = u
    layer *= bezel * uniform(scene_rng, -0.12, 0.12) / phone.half_len
    layer += bezel
    rim = body_a + 1.5 * scale
    rim *= 1.0 / (1.5 * scale)
    layer += uniform(scene_rng, 0.1, 0.3) * bump(rim)
    body_a = coverage(body_a)

    region = photo[y0:y1, x0:x1]
    layer -= region
    layer *= body_a
    region += layer
    screen -= region
    screen *= screen_a
    region += screen

    # Uneven light (exposure, a linear gradient and a vignette) and the camera's white balance.
    gx = np.linspace(-1.0, 1.0, width, dtype=np.float32)
    gy = np.linspace(-1.0, 1.0, height, dtype=np.float32)
    phi = uniform(scene_rng, 0.0, 2.0 * math.pi)
    slope = uniform(scene_rng, 0.0, 0.2)
    vignette = uniform(scene_rng, 0.0, 0.15)
    exposure = uniform(scene_rng, 0.85, 1.15) * 255.0
    light_x = (1.0 + slope * math.cos(phi) * gx - vignette * gx * gx) * exposure
    light_y = (slope * math.sin(phi) * gy - vignette * gy * gy) * exposure
    balance = (1.0 + scene_rng.normal(0.0, 0.015, 3)).astype(np.float32)
    photo *= np.add(light_x[None, :], light_y[:, None])
    image = np.empty((3, height, width), np.float32)
    for channel in range(3):
        np.multiply(photo, balance[channel], out=image[channel])

    canvas = Canvas(image, phone, scale, light_x, light_y, balance)
    if defects and cls in _DEFECTS:
        draw, low, high = _DEFECTS[cls]
        for _ in range(int(defect_rng.integers(low, high + 1))):
            draw(defect_rng, canvas)

    # Uniform sensor noise with a standard deviation of 1-3 levels, added without temporaries.
    spread = uniform(noise_rng, 1.0, 3.0) * math.sqrt(3.0) / 127.5
    noise = noise_rng.integers(0, 256, image.shape, dtype=np.uint8)
    image *= 1.0 / spread
    image += noise
    image *= spread
    image += 0.5 - 127.5 * spread
    np.clip(image, 0.0, 255.0, out=image)
    return Render(planes=image.astype(np.uint8), window=screen_a, origin=(x0, y0))


def _draw(
    rng: np.random.Generator, cls: str, width: int, height: int, *, defects: bool = True
) -> npt.NDArray[np.uint8]:
    planes = _render(rng, cls, width, height, defects=defects).planes
    return np.ascontiguousarray(planes.transpose(1, 2, 0))


def _png(pixels: npt.NDArray[np.uint8]) -> bytes:
    # A minimal RGB PNG writer with the "sub" filter on every row and fast deflate: Pillow's
    # per-row adaptive filter choice costs several times more for these noisy photos.
    height, width, _ = pixels.shape
    rows = pixels.reshape(height, width * 3)
    data = np.empty((height, width * 3 + 1), np.uint8)
    data[:, 0] = 1
    data[:, 1:4] = rows[:, :3]
    np.subtract(rows[:, 3:], rows[:, :-3], out=data[:, 4:])

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            chunk(b"IHDR", header),
            chunk(b"IDAT", zlib.compress(data.tobytes(), 1)),
            chunk(b"IEND", b""),
        )
    )


def _encode(planes: npt.NDArray[np.uint8], suffix: str) -> bytes:
    # Every photo goes through JPEG once, so good PNGs carry the same compression artefacts as
    # the defect JPEGs and the file format cannot give the class away.
    image = Image.merge("RGB", [Image.fromarray(plane) for plane in planes])
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    if suffix == ".jpg":
        return buffer.getvalue()
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return _png(np.asarray(decoded.convert("RGB")))


def _image_rng(seed: int, class_index: int, index: int) -> np.random.Generator:
    # Each image has its own stream, so it depends neither on per_class nor on drawing order.
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(class_index, index)))


def _file_name(cls: str, index: int) -> str:
    return f"{_PREFIX[cls]}{index:04d}{_SUFFIX[cls]}"


def synthesize(
    out_dir: Path,
    per_class: int = 100,
    seed: int = 0,
    width: int = 640,
    height: int = 360,
    progress: Callable[[int, int], None] | None = None,
) -> SynthReport:
    """Write `per_class` synthetic photos of every class under `out_dir/<class>/`.

    The same seed gives byte-identical files. Raises ValueError if `out_dir` exists and is not
    an empty directory, if `per_class` < 1, if `seed` < 0 or if the size is below 64x64.
    """
    out_dir = Path(out_dir)
    if per_class < 1:
        raise ValueError(f"per_class must be at least 1, got {per_class}.")
    if width < MIN_SIZE or height < MIN_SIZE:
        raise ValueError(
            f"Images must be at least {MIN_SIZE}x{MIN_SIZE} pixels, got {width}x{height}."
        )
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}.")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ValueError(
            f"Output directory {out_dir} already exists and is not empty; "
            "choose a new directory or remove it first."
        )

    total = per_class * len(CLASS_NAMES)
    done = 0
    counts: dict[str, int] = {}
    for class_index, cls in enumerate(CLASS_NAMES):
        class_dir = out_dir / cls
        class_dir.mkdir(parents=True, exist_ok=True)
        for index in range(1, per_class + 1):
            render = _render(_image_rng(seed, class_index, index), cls, width, height)
            path = class_dir / _file_name(cls, index)
            path.write_bytes(_encode(render.planes, path.suffix))
            done += 1
            if progress is not None:
                progress(done, total)
        counts[cls] = per_class
    return SynthReport(out_dir=out_dir, counts=counts, width=width, height=height)
