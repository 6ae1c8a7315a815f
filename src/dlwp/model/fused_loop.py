"""Keras 2.0.8's recurrent loop without dropout, run eagerly or compiled 24 steps at a time.

Why compile: on 2 CPU cores a GRU(32) step over 128 windows is ~10 kernels of ~16 µs each, and
those launches, not the arithmetic, set the time (docs/PERFORMANCE.md, "dlwp vs ... Keras").
Inductor fuses each step's element-wise ops into one C++ loop between the two matmuls.

Why 24 steps a chunk (measured on a Jena batch, 128 x 240 x 14, GRU(32), forward and backward;
docs/PERFORMANCE.md, "Compiled recurrent loops"): one compiled step costs more in dispatch than
it saves (x0.9 of eager); the whole 240-step loop runs at x1.8 but takes 330 s to compile; 24
steps run at x1.8-2 and compile in ~60 s (~5 s when inductor's on-disk cache already holds them).
Values and gradients are eager's up to float rounding; off by default, so eager runs stay
bit-identical to the recorded ones.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Callable

import torch
import torch.nn.functional as F

from dlwp.errors import ConfigError

CHUNK_STEPS = 24


def _simplernn(xp, h, c, u, relu):
    z = torch.addmm(xp, h, u)
    return (z.relu() if relu else z.tanh()), None


def _lstm(xp, h, c, u, relu):
    """Gates ordered (i, f, o, c) and pre-scaled by 1.2: Keras' hard_sigmoid is hardsigmoid(1.2 x)."""
    n = h.shape[1]
    z = torch.addmm(xp, h, u)
    i, f, o = F.hardsigmoid(z[:, : 3 * n]).chunk(3, dim=-1)
    act = torch.relu if relu else torch.tanh
    c = torch.addcmul(f * c, i, act(z[:, 3 * n :]))
    return o * act(c), c


def _gru(xp, h, c, u, relu):
    """Keras 2.0.8's GRU: the reset gate scales h before the recurrent matmul."""
    n = h.shape[1]
    z, r = F.hardsigmoid(torch.addmm(xp[:, : 2 * n], h, u[:, : 2 * n])).chunk(2, dim=-1)
    hh = torch.addmm(xp[:, 2 * n :], r * h, u[:, 2 * n :])
    hh = hh.relu() if relu else hh.tanh()
    return torch.lerp(hh, h, z), None  # z h + (1 - z) hh


STEPS = {"simplernn": _simplernn, "lstm": _lstm, "gru": _gru}
Loop = tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]
"""(last h, last c or None, every step's h or None)"""


def loop(step: Callable, keep: bool, xp: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None, u) -> Loop:
    """`xp [B, T, gates*n]` (input projections, bias included) -> (last h, last c, every h if `keep`);
    `step(x, h, c, u) -> (h, c)`: one of STEPS here, or a dropout step with its masks as `u`."""
    outputs = []
    # unbind, not xp[:, t]: the backward of each slice would write a whole zero tensor of xp's
    # size (quadratic in the length); unbind's backward stacks once
    for x in xp.unbind(1):
        h, c = step(x, h, c, u)
        if keep:
            outputs.append(h)
    return h, c, (torch.stack(outputs, dim=1) if keep else None)


def _step(kind: str, relu: bool) -> Callable:
    def step(x, h, c, u):
        return STEPS[kind](x, h, c, u, relu)

    return step


@functools.cache
def check_cpu_compiler(setting: str = "compile: true") -> None:
    """Inductor builds C++ for the CPU; without a compiler it fails deep inside the first step."""
    if not any(shutil.which(c) for c in (os.environ.get("CXX", ""), "g++", "c++", "clang++") if c):
        raise ConfigError(f"{setting} on the CPU needs a C++ compiler for torch.compile (none of $CXX, g++, c++, "
                          f"clang++ is on PATH): install one (`apt-get install g++`) or drop {setting}")  # fmt: skip


@functools.cache
def _compiled(kind: str, relu: bool, keep: bool):
    """One compiled chunk function per variant, so that their recompilations (train / no-grad,
    a last batch or chunk of another size) count against separate caches."""

    def chunk(xp, h, c, u):
        return loop(_step(kind, relu), keep, xp, h, c, u)

    return torch.compile(chunk)


def run(kind: str, relu: bool, keep: bool, xp: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None,
        u: torch.Tensor, compiled: bool = False) -> Loop:  # fmt: skip
    """`loop`, eagerly, or compiled `CHUNK_STEPS` steps at a time."""
    if not compiled:
        return loop(_step(kind, relu), keep, xp, h, c, u)
    if xp.device.type == "cpu":
        check_cpu_compiler()
    chunk, outputs = _compiled(kind, relu, keep), []
    for part in xp.split(CHUNK_STEPS, dim=1):
        h, c, out = chunk(part, h, c, u)
        if keep:
            outputs.append(out)
    return h, c, (torch.cat(outputs, dim=1) if keep else None)
