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


@dataclass(frozen=True)
class _Phone:
    # Centre in pixels, rotation, and half sizes of the body and the screen in phone axes.
    cx: float
    cy: float
    cos: float
    sin: float
    half_len: float
    half_wid: float
    radius: float
    screen_half_len: float
    screen_half_wid: float
    screen_radius: float

    def to_image(self, u: float, v: float) -> tuple[float, float]:
        return (self.cx + u * self.cos - v * self.sin, self.cy + u * self.sin + v * self.cos)

    def reach(self) -> tuple[float, float]:
        return (
            self.half_len * abs(self.cos) + self.half_wid * abs(self.sin),
            self.half_len * abs(self.sin) + self.half_wid * abs(self.cos),
        )


@dataclass(frozen=True)
class _Render:
    # Channel-first 8-bit planes, and the screen coverage (0..1) of the pixels in a window
    # whose top-left corner is at `origin` (x, y).
    planes: npt.NDArray[np.uint8]
    window: Array
    origin: tuple[int, int]

    @property
    def screen(self) -> Array:
        coverage = np.zeros(self.planes.shape[1:], np.float32)
        x0, y0 = self.origin
        coverage[y0 : y0 + self.window.shape[0], x0 : x0 + self.window.shape[1]] = self.window
        return coverage


@dataclass(frozen=True)
class _Canvas:
    # The lit photo (channel-first, in 8-bit units) that defects are painted on.
    image: Array
    phone: _Phone
    scale: float
    light_x: Array
    light_y: Array
    balance: Array


@dataclass(frozen=True)
class _Patch:
    # A pixel window of the canvas, offsets of its pixel centres from a point, the screen
    # coverage there and the gain from surface reflectance to pixel value.
    rows: slice
    cols: slice
    dx: Array
    dy: Array
    cover: Array
    gain: Array

    def paint(self, canvas: _Canvas, target: Array, alpha: Array) -> None:
        region = canvas.image[:, self.rows, self.cols]
        region += (target[:, None, None] * self.gain - region) * (alpha * self.cover)[None]

    def add(self, canvas: _Canvas, light: Array) -> None:
        canvas.image[:, self.rows, self.cols] += light * (self.gain * self.cover[None])


def _u(rng: np.random.Generator, low: float, high: float) -> float:
    return float(rng.uniform(low, high))


def _smoothstep(x: Array) -> Array:
    t = np.clip(x, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _bump(x: Array) -> Array:
    # A cheap bell curve: 1 at zero, falling smoothly to 0 at |x| >= 1.
    t = np.clip(1.0 - x * x, 0.0, 1.0)
    return t * t


def _rounded_box_sdf(u: Array, v: Array, half_u: float, half_v: float, radius: float) -> Array:
    # Signed distance in pixels to a rounded rectangle centred on the origin (negative inside).
    # The arithmetic is in place because fresh large arrays are what costs most here.
    qu = np.abs(u)
    qu -= half_u - radius
    qv = np.abs(v)
    qv -= half_v - radius
    inside = np.maximum(qu, qv)
    np.minimum(inside, 0.0, out=inside)
    np.maximum(qu, 0.0, out=qu)
    np.maximum(qv, 0.0, out=qv)
    qu *= qu
    qv *= qv
    qu += qv
    np.sqrt(qu, out=qu)
    qu += inside
    qu -= radius
    return qu


def _coverage(distance: Array) -> Array:
    # Anti-aliased coverage of a pixel from its signed distance, in place.
    np.subtract(0.5, distance, out=distance)
    return np.clip(distance, 0.0, 1.0, out=distance)


def _phone_axes(phone: _Phone, xs: Array, ys: Array) -> tuple[Array, Array]:
    # Phone coordinates (u along the long side) of the points on the grid xs x ys.
    rx = xs - phone.cx
    ry = ys - phone.cy
    u = np.add((rx * phone.cos)[None, :], (ry * phone.sin)[:, None])
    v = np.subtract((ry * phone.cos)[:, None], (rx * phone.sin)[None, :])
    return u, v


def _centres(start: int, count: int, step: float) -> Array:
    return ((np.arange(count, dtype=np.float32) + 0.5) * step + start).astype(np.float32)


def _resize(values: Array, width: int, height: int, method: Image.Resampling) -> Array:
    return np.array(Image.fromarray(values).resize((width, height), method), dtype=np.float32)


def _cloth(rng: np.random.Generator, phone: _Phone, width: int, height: int) -> Array:
    # Grey cloth (folds, blotches and a horizontal grain) with the phone's soft contact shadow.
    # Each part lives on a grid as coarse as it allows and is interpolated to full size once.
    scale = height / 360.0
    cells_w = max(int(width / (8 * scale)), 2)
    cells_h = max(int(height / (8 * scale)), 2)
    folds = rng.standard_normal((height // 90 + 2, width // 90 + 2), dtype=np.float32)
    low = _u(rng, 0.02, 0.06) * _resize(folds, cells_w, cells_h, Image.Resampling.BICUBIC)
    low += _u(rng, 0.01, 0.025) * rng.standard_normal((cells_h, cells_w), dtype=np.float32)
    low += 1.0
    low *= _u(rng, 0.34, 0.62)

    # The shadow is offset a little, as if lit from one side.
    step = max(int(4 * scale), 1)
    cols, rows = -(-width // step), -(-height // step)
    shaded = _resize(low, cols, rows, Image.Resampling.BICUBIC)
    off_u, off_v = rng.uniform(-3.0, 3.0, 2) * scale
    u, v = _phone_axes(phone, _centres(0, cols, step), _centres(0, rows, step))
    u -= off_u
    v -= off_v
    distance = _rounded_box_sdf(u, v, phone.half_len, phone.half_wid, phone.radius)
    darkness = _u(rng, 0.15, 0.4)
    shaded *= 1.0 - darkness + darkness * _smoothstep(distance / (7.0 * scale))

    # Fibres: uniform noise on cells a few pixels wide and one pixel tall, stretched sideways.
    grain_w = max(int(width / (_u(rng, 2.0, 3.5) * scale)), 2)
    grain_h = max(int(height / scale), 2)
    cloth = _resize(shaded, grain_w, grain_h, Image.Resampling.BILINEAR)
    fibres = rng.random((grain_h, grain_w), dtype=np.float32)
    fibres -= 0.5
    fibres *= _u(rng, 0.02, 0.04) * math.sqrt(12.0) * float(low.mean())
    cloth += fibres
    return _resize(cloth, width, height, Image.Resampling.BILINEAR)


def _place_phone(rng: np.random.Generator, width: int, height: int) -> _Phone:
    angle = math.radians(_u(rng, -10.0, 10.0))
    cos, sin = math.cos(angle), math.sin(angle)
    aspect = _u(rng, 1.95, 2.2)
    half_wid = _u(rng, 0.5, 0.8) * height / 2.0
    # The phone lies in landscape; shrink it until its rotated bounding box fits the frame.
    fit = min(
        0.96 * width / 2.0 / (aspect * half_wid * abs(cos) + half_wid * abs(sin)),
        0.96 * height / 2.0 / (aspect * half_wid * abs(sin) + half_wid * abs(cos)),
        1.0,
    )
    half_wid *= fit
    half_len = aspect * half_wid
    box_w = half_len * abs(cos) + half_wid * abs(sin)
    box_h = half_len * abs(sin) + half_wid * abs(cos)
    cx = _u(rng, box_w, max(width - box_w, box_w + 1e-3))
    cy = _u(rng, box_h, max(height - box_h, box_h + 1e-3))
    radius = _u(rng, 0.12, 0.22) * half_wid
    side = _u(rng, 0.04, 0.09) * half_wid
    end = _u(rng, 0.08, 0.2) * half_wid
    return _Phone(
        cx=cx,
        cy=cy,
        cos=cos,
        sin=sin,
        half_len=half_len,
        half_wid=half_wid,
        radius=radius,
        screen_half_len=half_len - end,
        screen_half_wid=half_wid - side,
        screen_radius=max(radius - side, 0.04 * half_wid),
    )


def _screen_shade(rng: np.random.Generator, phone: _Phone, u: Array, v: Array) -> Array:
    # A dark screen with a faint reflection gradient and sometimes a large, smooth glare.
    phi = _u(rng, 0.0, 2.0 * math.pi)
    across = (u * math.cos(phi) + v * math.sin(phi)) / phone.screen_half_len
    shade = _u(rng, 0.0, 0.05) * (0.5 + 0.5 * np.clip(across, -1.0, 1.0))
    shade += _u(rng, 0.015, 0.035)
    if rng.random() < 0.6:
        gu = _u(rng, -0.7, 0.7) * phone.screen_half_len
        gv = _u(rng, -0.6, 0.6) * phone.screen_half_wid
        su = _u(rng, 0.7, 1.5) * phone.screen_half_wid
        sv = su * _u(rng, 0.6, 1.4)
        shade += _u(rng, 0.02, 0.07) * _bump(np.hypot((u - gu) / su, (v - gv) / sv))
    if rng.random() < 0.4:
        # A broad diagonal band, like a window reflected in the glass.
        psi = _u(rng, 0.0, math.pi)
        offset = _u(rng, -0.6, 0.6) * phone.screen_half_len
        band_w = _u(rng, 0.3, 0.7) * phone.screen_half_wid
        band = (u * math.cos(psi) + v * math.sin(psi) - offset) / band_w
        shade += _u(rng, 0.015, 0.04) * _bump(band)
    return shade


def _patch(canvas: _Canvas, cx: float, cy: float, reach: float) -> _Patch | None:
    # The pixel window around a point, with the screen coverage of each of its pixels.
    _, height, width = canvas.image.shape
    x0, x1 = max(int(cx - reach), 0), min(int(cx + reach) + 2, width)
    y0, y1 = max(int(cy - reach), 0), min(int(cy + reach) + 2, height)
    if x0 >= x1 or y0 >= y1:
        return None
    xs = np.arange(x0, x1, dtype=np.float32) + 0.5
    ys = np.arange(y0, y1, dtype=np.float32) + 0.5
    phone = canvas.phone
    u, v = _phone_axes(phone, xs, ys)
    cover = _coverage(
        _rounded_box_sdf(u, v, phone.screen_half_len, phone.screen_half_wid, phone.screen_radius)
    )
    xi, yi = min(max(int(cx), 0), width - 1), min(max(int(cy), 0), height - 1)
    gain = canvas.balance * (canvas.light_x[xi] + canvas.light_y[yi])
    return _Patch(
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
        edge += _u(rng, 0.0, wobble) / k * np.cos(k * theta + _u(rng, 0.0, 2 * math.pi))
    return rho - radius * edge


def _screen_point(rng: np.random.Generator, phone: _Phone, margin: float) -> tuple[float, float]:
    mu = max(phone.screen_half_len - margin, 1.0)
    mv = max(phone.screen_half_wid - margin, 1.0)
    return phone.to_image(_u(rng, -mu, mu), _u(rng, -mv, mv))


def _add_oil(rng: np.random.Generator, canvas: _Canvas) -> None:
    scale = canvas.scale
    radius = _u(rng, 0.02, 0.05) * 360.0 * scale
    cx, cy = _screen_point(rng, canvas.phone, radius * 1.3)
    patch = _patch(canvas, cx, cy, radius * 1.7 + 3)
    if patch is None:
        return
    dx, dy = patch.dx, patch.dy
    # A union of a few lobes makes the smear irregular.
    dist = _blob_distance(rng, dx, dy, radius * _u(rng, 0.55, 0.75), 0.45)
    for _ in range(int(rng.integers(1, 3))):
        ox, oy = rng.uniform(-0.5, 0.5, 2) * radius
        lobe = _blob_distance(rng, dx - ox, dy - oy, radius * _u(rng, 0.35, 0.6), 0.5)
        np.minimum(dist, lobe, out=dist)
    soft = max(0.15 * radius, 0.8)
    inside = _smoothstep(0.5 - dist / (2.0 * soft))
    rim = _bump(dist / max(0.08 * radius, 1.0 * scale))
    gloss_dir = _u(rng, 0.0, 2 * math.pi)
    gloss = 0.75 + 0.25 * np.clip(
        (dx * math.cos(gloss_dir) + dy * math.sin(gloss_dir)) / radius, -1.0, 1.0
    )
    # A faint rainbow tint on the rim, as thin oil films show.
    rim_tint = (1.0 + rng.normal(0.0, 0.2, 3)).astype(np.float32)[:, None, None]
    film = _u(rng, 0.08, 0.16) * inside * gloss
    patch.add(canvas, film[None] + rim_tint * (_u(rng, 0.08, 0.16) * rim)[None])


def _add_stain(rng: np.random.Generator, canvas: _Canvas) -> None:
    radius = _u(rng, 0.01, 0.02) * 360.0 * canvas.scale
    cx, cy = _screen_point(rng, canvas.phone, radius * 1.5)
    patch = _patch(canvas, cx, cy, radius * 1.8 + 3)
    if patch is None:
        return
    stretch = _u(rng, 0.75, 1.0)
    dist = _blob_distance(rng, patch.dx, patch.dy / stretch, radius, 0.25)
    soft = max(0.3 * radius, 0.8)
    alpha = _u(rng, 0.65, 0.95) * _smoothstep(0.5 - dist / (2.0 * soft))
    if rng.random() < 0.6:
        colour = np.array([0.80, 0.70, 0.54], np.float32) * _u(rng, 0.55, 0.95)
    else:
        colour = np.full(3, _u(rng, 0.2, 0.35), np.float32)
    patch.paint(canvas, colour, alpha)


def _add_scratch(rng: np.random.Generator, canvas: _Canvas) -> None:
    scale = canvas.scale
    length = _u(rng, 0.10, 0.30) * 360.0 * scale
    length = min(length, 1.6 * canvas.phone.screen_half_wid)
    cx, cy = _screen_point(rng, canvas.phone, length / 2.0 + 2.0)
    angle = _u(rng, 0.0, math.pi)
    bend = _u(rng, -0.15, 0.15) * length
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
    half = _u(rng, 0.5, 1.0) * scale
    core = np.clip(half + 0.5 - dist, 0.0, 1.0)
    halo = 0.25 * _bump(dist / (4.0 * scale))
    # The glint varies along the scratch and fades out at both ends.
    phase = _u(rng, 0.0, 2 * math.pi)
    glint = (0.7 + 0.3 * np.sin(2 * math.pi * _u(rng, 0.5, 2.0) * along + phase)) * np.clip(
        np.minimum(along, 1.0 - along) * 12.0, 0.0, 1.0
    )
    alpha = _u(rng, 0.45, 0.85) * np.clip(core + halo, 0.0, 1.0) * glint
    patch.paint(canvas, np.full(3, 0.92, np.float32), alpha)


_DEFECTS: dict[str, tuple[Callable[[np.random.Generator, _Canvas], None], int, int]] = {
    "oil": (_add_oil, 1, 3),
    "scratch": (_add_scratch, 1, 3),
    "stain": (_add_stain, 1, 4),
}


def _render(
    rng: np.random.Generator, cls: str, width: int, height: int, *, defects: bool = True
) -> _Render:
    """Draw one photo; `defects=False` draws the very same scene with a clean screen."""
    if cls not in CLASS_NAMES:
        raise ValueError(f"Unknown class {cls!r}; expected one of {', '.join(CLASS_NAMES)}.")
    # Separate streams keep the scene and the noise identical whether or not defects are drawn.
    scene_rng, defect_rng, noise_rng = rng.spawn(3)
    scale = height / 360.0
    phone = _place_phone(scene_rng, width, height)
    photo = _cloth(scene_rng, phone, width, height)

    # Only the pixels around the phone need the per-pixel geometry; the smooth screen shading
    # is computed on a coarse grid and interpolated.
    reach_x, reach_y = phone.reach()
    x0, x1 = max(int(phone.cx - reach_x - 2), 0), min(int(phone.cx + reach_x + 3), width)
    y0, y1 = max(int(phone.cy - reach_y - 2), 0), min(int(phone.cy + reach_y + 3), height)
    step = max(int(4 * scale), 1)
    cols, rows = -(-(x1 - x0) // step), -(-(y1 - y0) // step)
    coarse_u, coarse_v = _phone_axes(phone, _centres(x0, cols, step), _centres(y0, rows, step))
    shade = _screen_shade(scene_rng, phone, coarse_u, coarse_v)
    screen = _resize(shade, cols * step, rows * step, Image.Resampling.BILINEAR)
    screen = screen[: y1 - y0, : x1 - x0]

    u, v = _phone_axes(phone, _centres(x0, x1 - x0, 1.0), _centres(y0, y1 - y0, 1.0))
    body_a = _rounded_box_sdf(u, v, phone.half_len, phone.half_wid, phone.radius)
    screen_a = _coverage(
        _rounded_box_sdf(u, v, phone.screen_half_len, phone.screen_half_wid, phone.screen_radius)
    )
    # The frame: a light or dark bezel with a sheen along its length and a thin bright edge.
    if scene_rng.random() < 0.5:
        bezel = 0.8 * _u(scene_rng, 0.85, 1.1)
    else:
        bezel = 0.07 * _u(scene_rng, 0.8, 2.0)
    layer = u
    layer *= bezel * _u(scene_rng, -0.12, 0.12) / phone.half_len
    layer += bezel
    rim = body_a + 1.5 * scale
    rim *= 1.0 / (1.5 * scale)
    layer += _u(scene_rng, 0.1, 0.3) * _bump(rim)
    body_a = _coverage(body_a)

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
    phi = _u(scene_rng, 0.0, 2.0 * math.pi)
    slope = _u(scene_rng, 0.0, 0.2)
    vignette = _u(scene_rng, 0.0, 0.15)
    exposure = _u(scene_rng, 0.85, 1.15) * 255.0
    light_x = (1.0 + slope * math.cos(phi) * gx - vignette * gx * gx) * exposure
    light_y = (slope * math.sin(phi) * gy - vignette * gy * gy) * exposure
    balance = (1.0 + scene_rng.normal(0.0, 0.015, 3)).astype(np.float32)
    photo *= np.add(light_x[None, :], light_y[:, None])
    image = np.empty((3, height, width), np.float32)
    for channel in range(3):
        np.multiply(photo, balance[channel], out=image[channel])

    canvas = _Canvas(image, phone, scale, light_x, light_y, balance)
    if defects and cls in _DEFECTS:
        draw, low, high = _DEFECTS[cls]
        for _ in range(int(defect_rng.integers(low, high + 1))):
            draw(defect_rng, canvas)

    # Uniform sensor noise with a standard deviation of 1-3 levels, added without temporaries.
    spread = _u(noise_rng, 1.0, 3.0) * math.sqrt(3.0) / 127.5
    noise = noise_rng.integers(0, 256, image.shape, dtype=np.uint8)
    image *= 1.0 / spread
    image += noise
    image *= spread
    image += 0.5 - 127.5 * spread
    np.clip(image, 0.0, 255.0, out=image)
    return _Render(planes=image.astype(np.uint8), window=screen_a, origin=(x0, y0))


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
