"""Builds, caches and calls the C loops of Keras' GRU and LSTM (`native/keras_*.c`) through ctypes.

Why C and not torch ops: on 2 CPU cores a GRU(32) step is ~10 torch kernels whose dispatch, not
their arithmetic, sets the time; the C loop does a step in a few microseconds
(docs/PERFORMANCE.md, "Native recurrent loops"). Why ctypes and not a torch C++ extension: the
files need no torch headers, so they compile in under a second with any C compiler, and ctypes
releases the GIL, so the batch runs on several threads from Python.

Each library is built once per source, compiler and CPU (`-march=native`) into `native/` of
dlwp's cache (`dlwp.cache`: `$DLWP_CACHE_DIR`, default `~/.cache/dlwp`). Without a working C
compiler `load()` returns None after one warning, and the layer runs its torch ops; `state()`
says which happened, for the run record.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from torch.autograd.function import once_differentiable

from dlwp.cache import cache_root

SOURCES = Path(__file__).with_name("native")
FLAGS = ["-O3", "-march=native", "-std=gnu11", "-shared", "-fPIC"]
BLOCK = 16  # samples per partial recurrent-kernel gradient (common.h's BLOCK)
GATES = {"gru": 3, "lstm": 4}
MAX_KERNEL_FLOATS = 3 * 64 * 64
"""Native loops only where the recurrent kernel fits beside the state in a core's L1/L2 (48 KB in
float32): each sample streams it once a step, so a larger one loses to torch's batched matmuls
(2 cores, forward and backward of a batch of 128: GRU(32) x2.2 and GRU(64) x2 faster than torch
ops, LSTM(32) x2; LSTM(64) x0.9, LSTM(128) x0.7; docs/PERFORMANCE.md)."""
SAVED = {"gru": (1, 2, 1, 1), "lstm": (1, 4, 1, 0)}
"""Widths, in units, of what each cell's forward keeps for its backward: GRU h, (z, r), candidate,
r * h; LSTM h, (i, f, o, g), c (the fourth slot unused)."""
_STATE: dict[str, str] = {}
"""`cell/precision` -> the library this process loaded, or why it could not."""
_ARGS = [ctypes.c_int] * 5 + [ctypes.c_void_p] * 3 + [ctypes.c_int] + [ctypes.c_void_p] * 4
_BACKWARD_ARGS = [ctypes.c_int] * 5 + [ctypes.c_void_p] * 6 + [ctypes.c_int] + [ctypes.c_void_p] * 3


def _compiler() -> str | None:
    for name in (os.environ.get("CC", ""), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _cpu_key() -> str:
    """What `-march=native` depends on: the CPU's model and feature flags (Linux), else the machine."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return "\n".join(sorted({line for line in lines if line.startswith(("model name", "flags"))}))
    except OSError:
        return f"{platform.machine()} {platform.processor()}"


def cache_dir() -> Path:
    return cache_root() / "native"


def _build(cc: str, cell: str, precision: str) -> Path:
    """Compile one cell in one precision (`f32`, `f64`) into the cache, atomically (parallel runs
    may race for it)."""
    source = SOURCES / f"keras_{cell}.c"
    real = ["-DREAL=float"] if precision == "f32" else ["-DREAL=double", "-DREAL_IS_DOUBLE"]
    defines = [*real, f"-DNAME(x)=x##_{precision}"]
    version = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout
    texts = [source.read_text(), (SOURCES / "common.h").read_text()]
    key = hashlib.sha256("\0".join([*texts, *FLAGS, *defines, version, _cpu_key()]).encode()).hexdigest()
    target = cache_dir() / f"keras_{cell}_{precision}_{key[:16]}.so"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            built = Path(tmp) / target.name
            result = subprocess.run([cc, *FLAGS, *defines, str(source), "-o", str(built), "-lm"],
                                    capture_output=True, text=True)  # fmt: skip
            if result.returncode:
                raise RuntimeError(f"{cc} failed on {source}:\n{result.stderr.strip()}")
            os.replace(built, target)
    return target


class NativeLoops:
    """One cell's two loops in one precision, the batch split between threads in whole blocks."""

    def __init__(self, library: ctypes.CDLL, cell: str, precision: str) -> None:
        self.cell = cell
        self.forward_fn = getattr(library, f"{cell}_forward_{precision}")
        self.backward_fn = getattr(library, f"{cell}_backward_{precision}")
        self.forward_fn.argtypes, self.forward_fn.restype = _ARGS, None
        self.backward_fn.argtypes, self.backward_fn.restype = _BACKWARD_ARGS, None

    @staticmethod
    def _run(fn, shape: tuple[int, int, int], pointers: list) -> None:
        batch = shape[0]
        blocks = -(-batch // BLOCK)
        threads = max(1, min(torch.get_num_threads(), blocks))
        if threads == 1:
            fn(*shape, 0, batch, *pointers)
            return
        per = -(-blocks // threads) * BLOCK
        bounds = [(start, min(start + per, batch)) for start in range(0, batch, per)]
        list(_pool(os.getpid()).map(lambda b: fn(*shape, b[0], b[1], *pointers), bounds))

    def forward(self, xp: torch.Tensor, u: torch.Tensor, m: torch.Tensor | None, relu: bool) -> list[torch.Tensor]:
        """`xp [B, T, gates n]`, `u [n, gates n]`, `m [gates, B, n] | None` -> what the backward
        needs, the outputs `[B, T, n]` first (see the C files)."""
        if u.dtype != xp.dtype or (m is not None and m.dtype != xp.dtype):
            raise TypeError(f"the native {self.cell} loop takes one dtype, got xp {xp.dtype}, u {u.dtype}")
        batch, steps, width = xp.shape
        n = width // GATES[self.cell]
        xp, u = xp.contiguous(), u.contiguous()
        m = None if m is None else m.contiguous()
        saved = [xp.new_empty(batch, steps, k * n) if k else None for k in SAVED[self.cell]]
        self._run(self.forward_fn, (batch, steps, n), [_ptr(xp), _ptr(u), _ptr(m), int(relu), *map(_ptr, saved)])
        return [t for t in saved if t is not None]

    def backward(self, grad: torch.Tensor, saved: list[torch.Tensor], m: torch.Tensor | None, relu: bool,
                 u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """-> (d loss / d xp `[B, T, gates n]`, d loss / d u `[n, gates n]`)."""
        batch, steps, n = saved[0].shape
        grad, ut = grad.contiguous(), u.t().contiguous()
        dxp = grad.new_empty(batch, steps, u.shape[1])
        du = grad.new_zeros(-(-batch // BLOCK), n, u.shape[1])
        slots = [*saved, None][:4]
        pointers = [_ptr(grad), *map(_ptr, slots), _ptr(m), int(relu), _ptr(ut), _ptr(dxp), _ptr(du)]
        self._run(self.backward_fn, (batch, steps, n), pointers)
        return dxp, du.sum(0)


def _ptr(t: torch.Tensor | None) -> int | None:
    if t is None:
        return None
    if not t.is_contiguous() or t.device.type != "cpu":
        raise ValueError("the native recurrent loops take contiguous CPU tensors")
    return t.data_ptr()


@functools.cache
def _pool(pid: int) -> ThreadPoolExecutor:
    """The threads that run a batch's blocks, one pool per process: a forked child (a DataLoader
    worker, a launcher's job) has none of its parent's threads. (Defensive: CPython 3.11's pool
    was seen to work in a child anyway, so no test can show the difference.)"""
    return ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="dlwp-rnn")


@functools.cache
def load(cell: str, dtype: torch.dtype) -> NativeLoops | None:
    """A cell's loops for float32 or float64, built on first use; None (one warning) if they cannot be."""
    precision = {torch.float32: "f32", torch.float64: "f64"}.get(dtype)
    if precision is None:
        return None
    cc = _compiler()
    try:
        if cc is None:
            raise RuntimeError("no C compiler on PATH ($CC, cc, gcc or clang)")
        library = _build(cc, cell, precision)
        loops = NativeLoops(ctypes.CDLL(str(library)), cell, precision)
        _STATE[f"{cell}/{precision}"] = library.name
        return loops
    except (RuntimeError, OSError) as error:
        _STATE[f"{cell}/{precision}"] = f"unavailable: {error}"
        warnings.warn(f"the native {cell.upper()} loop is unavailable ({error}); running it in torch ops, 2-4x "
                      "slower on CPUs. Install (or fix) a C compiler, e.g. `apt-get install gcc`, to get it "
                      "back.", stacklevel=2)  # fmt: skip
        return None


def state() -> dict[str, str]:
    """What run.json records: the native libraries this process loaded (`keras_gru_f32_<key>.so`:
    the key names source, flags, compiler and CPU), or why one could not be (its layers ran torch
    ops, whose results differ in the last bits)."""
    return dict(_STATE)


def loops_for(cell: str, t: torch.Tensor) -> NativeLoops | None:
    """A cell's C code for this input, or None where there is none: GPUs, 16-bit tensors, a
    SimpleRNN, no C compiler."""
    if t.device.type != "cpu" or cell not in GATES:
        return None
    return load(cell, t.dtype)


def fits(cell: str, units: int) -> bool:
    """Whether the C loops pay for a layer of this size (`MAX_KERNEL_FLOATS`)."""
    return GATES[cell] * units * units <= MAX_KERNEL_FLOATS


class NativeScan(torch.autograd.Function):
    """`(xp [B, T, gates n], u [n, gates n], masks [gates, B, n] | None, relu, loops) -> h [B, T, n]`:
    a whole recurrent layer through a cell's C loops, with their hand-written backward. `xp` holds
    every step's input projection (bias in) and `u` the recurrent kernel, gates in the order and
    scale of `KerasRecurrent._fused`; `masks`, the recurrent-dropout masks, in that order too."""

    @staticmethod
    def forward(ctx, xp, u, masks, relu: bool, loops: NativeLoops) -> torch.Tensor:
        m = None if masks is None else masks.to(xp.dtype).contiguous()  # C reads them as xp's type
        saved = loops.forward(xp, u.to(xp.dtype), m, relu)
        ctx.save_for_backward(u, m, *saved)
        ctx.relu, ctx.loops = relu, loops
        return saved[0]

    @staticmethod
    @once_differentiable  # the C backward builds no graph: a second derivative fails loudly, not silently
    def backward(ctx, grad_out: torch.Tensor):
        u, m, *saved = ctx.saved_tensors
        dxp, du = ctx.loops.backward(grad_out, saved, m, ctx.relu, u.to(grad_out.dtype))
        return dxp, du.to(u.dtype), None, None, None
