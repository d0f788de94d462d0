"""The scene of a synthetic inspection photo: a phone on cloth, its screen and the light
on it, as float fields that the defect painters in :mod:`.synth` draw into."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

# Fields are float32 at run time; numpy's stubs widen scalar arithmetic to float64.
Array = npt.NDArray[np.floating[Any]]


@dataclass(frozen=True)
class Phone:
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
class Render:
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
class Canvas:
    # The lit photo (channel-first, in 8-bit units) that defects are painted on.
    image: Array
    phone: Phone
    scale: float
    light_x: Array
    light_y: Array
    balance: Array


@dataclass(frozen=True)
class Patch:
    # A pixel window of the canvas, offsets of its pixel centres from a point, the screen
    # coverage there and the gain from surface reflectance to pixel value.
    rows: slice
    cols: slice
    dx: Array
    dy: Array
    cover: Array
    gain: Array

    def paint(self, canvas: Canvas, target: Array, alpha: Array) -> None:
        region = canvas.image[:, self.rows, self.cols]
        region += (target[:, None, None] * self.gain - region) * (alpha * self.cover)[None]

    def add(self, canvas: Canvas, light: Array) -> None:
        canvas.image[:, self.rows, self.cols] += light * (self.gain * self.cover[None])


def uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(rng.uniform(low, high))


def smoothstep(x: Array) -> Array:
    t = np.clip(x, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def bump(x: Array) -> Array:
    # A cheap bell curve: 1 at zero, falling smoothly to 0 at |x| >= 1.
    t = np.clip(1.0 - x * x, 0.0, 1.0)
    return t * t


def rounded_box_sdf(u: Array, v: Array, half_u: float, half_v: float, radius: float) -> Array:
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


def coverage(distance: Array) -> Array:
    # Anti-aliased coverage of a pixel from its signed distance, in place.
    np.subtract(0.5, distance, out=distance)
    return np.clip(distance, 0.0, 1.0, out=distance)


def phone_axes(phone: Phone, xs: Array, ys: Array) -> tuple[Array, Array]:
    # Phone coordinates (u along the long side) of the points on the grid xs x ys.
    rx = xs - phone.cx
    ry = ys - phone.cy
    u = np.add((rx * phone.cos)[None, :], (ry * phone.sin)[:, None])
    v = np.subtract((ry * phone.cos)[:, None], (rx * phone.sin)[None, :])
    return u, v


def centres(start: int, count: int, step: float) -> Array:
    return ((np.arange(count, dtype=np.float32) + 0.5) * step + start).astype(np.float32)


def resize(values: Array, width: int, height: int, method: Image.Resampling) -> Array:
    return np.array(Image.fromarray(values).resize((width, height), method), dtype=np.float32)


def cloth(rng: np.random.Generator, phone: Phone, width: int, height: int) -> Array:
    # Grey cloth (folds, blotches and a horizontal grain) with the phone's soft contact shadow.
    # Each part lives on a grid as coarse as it allows and is interpolated to full size once.
    scale = height / 360.0
    cells_w = max(int(width / (8 * scale)), 2)
    cells_h = max(int(height / (8 * scale)), 2)
    folds = rng.standard_normal((height // 90 + 2, width // 90 + 2), dtype=np.float32)
    low = uniform(rng, 0.02, 0.06) * resize(folds, cells_w, cells_h, Image.Resampling.BICUBIC)
    low += uniform(rng, 0.01, 0.025) * rng.standard_normal((cells_h, cells_w), dtype=np.float32)
    low += 1.0
    low *= uniform(rng, 0.34, 0.62)

    # The shadow is offset a little, as if lit from one side.
    step = max(int(4 * scale), 1)
    cols, rows = -(-width // step), -(-height // step)
    shaded = resize(low, cols, rows, Image.Resampling.BICUBIC)
    off_u, off_v = rng.uniform(-3.0, 3.0, 2) * scale
    u, v = phone_axes(phone, centres(0, cols, step), centres(0, rows, step))
    u -= off_u
    v -= off_v
    distance = rounded_box_sdf(u, v, phone.half_len, phone.half_wid, phone.radius)
    darkness = uniform(rng, 0.15, 0.4)
    shaded *= 1.0 - darkness + darkness * smoothstep(distance / (7.0 * scale))

    # Fibres: uniform noise on cells a few pixels wide and one pixel tall, stretched sideways.
    grain_w = max(int(width / (uniform(rng, 2.0, 3.5) * scale)), 2)
    grain_h = max(int(height / scale), 2)
    cloth = resize(shaded, grain_w, grain_h, Image.Resampling.BILINEAR)
    fibres = rng.random((grain_h, grain_w), dtype=np.float32)
    fibres -= 0.5
    fibres *= uniform(rng, 0.02, 0.04) * math.sqrt(12.0) * float(low.mean())
    cloth += fibres
    return resize(cloth, width, height, Image.Resampling.BILINEAR)


def place_phone(rng: np.random.Generator, width: int, height: int) -> Phone:
    angle = math.radians(uniform(rng, -10.0, 10.0))
    cos, sin = math.cos(angle), math.sin(angle)
    aspect = uniform(rng, 1.95, 2.2)
    half_wid = uniform(rng, 0.5, 0.8) * height / 2.0
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
    cx = uniform(rng, box_w, max(width - box_w, box_w + 1e-3))
    cy = uniform(rng, box_h, max(height - box_h, box_h + 1e-3))
    radius = uniform(rng, 0.12, 0.22) * half_wid
    side = uniform(rng, 0.04, 0.09) * half_wid
    end = uniform(rng, 0.08, 0.2) * half_wid
    return Phone(
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


def screen_shade(rng: np.random.Generator, phone: Phone, u: Array, v: Array) -> Array:
    # A dark screen with a faint reflection gradient and sometimes a large, smooth glare.
    phi = uniform(rng, 0.0, 2.0 * math.pi)
    across = (u * math.cos(phi) + v * math.sin(phi)) / phone.screen_half_len
    shade = uniform(rng, 0.0, 0.05) * (0.5 + 0.5 * np.clip(across, -1.0, 1.0))
    shade += uniform(rng, 0.015, 0.035)
    if rng.random() < 0.6:
        gu = uniform(rng, -0.7, 0.7) * phone.screen_half_len
        gv = uniform(rng, -0.6, 0.6) * phone.screen_half_wid
        su = uniform(rng, 0.7, 1.5) * phone.screen_half_wid
        sv = su * uniform(rng, 0.6, 1.4)
        shade += uniform(rng, 0.02, 0.07) * bump(np.hypot((u - gu) / su, (v - gv) / sv))
    if rng.random() < 0.4:
        # A broad diagonal band, like a window reflected in the glass.
        psi = uniform(rng, 0.0, math.pi)
        offset = uniform(rng, -0.6, 0.6) * phone.screen_half_len
        band_w = uniform(rng, 0.3, 0.7) * phone.screen_half_wid
        band = (u * math.cos(psi) + v * math.sin(psi) - offset) / band_w
        shade += uniform(rng, 0.015, 0.04) * bump(band)
    return shade
