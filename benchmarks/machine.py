"""What this machine can do: cores, clock, vector units, and an estimate of its peak FLOP/s."""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path
from typing import Any

_CPUINFO = Path("/proc/cpuinfo")
_MAX_FREQUENCY = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")


def parse_cpuinfo(text: str) -> dict[str, Any]:
    """The first processor's model name, clock (MHz) and flags from ``/proc/cpuinfo`` text."""
    model = ""
    megahertz = 0.0
    flags: set[str] = set()
    for line in text.splitlines():
        name, _, value = line.partition(":")
        name, value = name.strip(), value.strip()
        if name == "model name" and not model:
            model = value
        elif name == "cpu MHz" and not megahertz:
            with contextlib.suppress(ValueError):
                megahertz = float(value)
        elif name == "flags" and not flags:
            flags = set(value.split())
    return {"model": model, "megahertz": megahertz, "flags": flags}


def flops_per_cycle(flags: set[str]) -> int:
    """fp32 FLOPs one core can retire per cycle with two FMA units of its widest vectors.

    An FMA counts as two FLOPs: AVX-512 gives 16 lanes x 2 x 2 units = 64, AVX2 with FMA
    8 x 2 x 2 = 32, AVX without FMA 8 x 2 (an add and a multiply unit) = 16, SSE 8.
    """
    if "avx512f" in flags:
        return 64
    if {"avx2", "fma"} <= flags:
        return 32
    if "avx" in flags:
        return 16
    return 8


def _vector_units(flags: set[str]) -> str:
    if "avx512f" in flags:
        units = "AVX-512"
    elif "avx2" in flags:
        units = "AVX2"
    elif "avx" in flags:
        units = "AVX"
    else:
        units = "SSE"
    if "fma" in flags:
        units += "+FMA"
    if "avx512_bf16" in flags:
        units += ", AVX512_BF16"
    if "amx_bf16" in flags:
        units += ", AMX-BF16"
    return units


def describe(cpuinfo: str | None = None, cores: int | None = None) -> dict[str, Any]:
    """This machine, with an estimated fp32 peak: cores x GHz x FLOPs per cycle."""
    this_machine = cpuinfo is None
    if cpuinfo is None:
        try:
            cpuinfo = _CPUINFO.read_text()
        except OSError:
            cpuinfo = ""
    info = parse_cpuinfo(cpuinfo)
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0
        cores = cores or os.cpu_count() or 1
    megahertz = info["megahertz"]
    if this_machine:
        # The rated maximum, where the kernel exposes it, beats the momentary clock.
        with contextlib.suppress(OSError, ValueError):
            megahertz = int(_MAX_FREQUENCY.read_text()) / 1000.0
    flags: set[str] = info["flags"]
    per_cycle = flops_per_cycle(flags)
    gigahertz = round(megahertz / 1000.0, 2)
    peak = cores * gigahertz * per_cycle
    units = _vector_units(flags)
    bf16 = "avx512_bf16" in flags or "amx_bf16" in flags
    return {
        "cpu": info["model"] or platform.processor() or "unknown",
        "cores": cores,
        "gigahertz": gigahertz,
        "vector_units": units,
        "avx512": "avx512f" in flags,
        "bf16_instructions": bf16,
        "fp32_flops_per_cycle_per_core": per_cycle,
        "peak_gflops_estimate": round(peak, 1),
        "python": platform.python_version(),
        "summary": (
            f"{info['model'] or 'unknown CPU'}, {cores} cores at {gigahertz:.2f} GHz, {units}; "
            f"fp32 peak ~{peak:.0f} GFLOP/s (estimate: {cores} cores x {gigahertz:.2f} GHz x "
            f"{per_cycle} FLOP/cycle)"
        ),
    }
