"""What the benchmark's machine offers int8 inference: the CPU, the instruction sets ONNX Runtime's
integer kernels depend on, and the formulation the fast path chose there (`models.int8`)."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

# the flags (as /proc/cpuinfo names them) that decide how u8×s8 products are added up
INT8_FLAGS = ("avx2", "avx512bw", "avx512_vnni", "avx_vnni", "avx_vnni_int8", "amx_int8", "asimddp")


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields in /proc/cpuinfo (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_report() -> dict[str, Any]:
    """The CPU model, its int8-relevant flags, and the integer formulation the fast path runs."""
    from models.int8 import computes_exactly, integer_kernel

    info = _cpuinfo()
    flags = set((info.get("flags") or info.get("Features") or "").split())
    return {
        "model": info.get("model name") or platform.processor() or platform.machine(),
        "machine": platform.machine(),
        "int8_flags": [flag for flag in INT8_FLAGS if flag in flags],
        "u8s8_exact": computes_exactly("u8s8"),
        "integer_kernel": integer_kernel(),
    }


def format_cpu(cpu: dict[str, Any]) -> str:
    flags = " ".join(cpu["int8_flags"]) or "none of " + " ".join(INT8_FLAGS)
    why = "exact here" if cpu["u8s8_exact"] else "u8×s8 saturates here"
    kernel = cpu["integer_kernel"]
    return f"CPU {cpu['model']} ({cpu['machine']}); int8 flags: {flags}; integer kernel {kernel} ({why})"
