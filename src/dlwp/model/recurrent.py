"""Recurrent layers (book chapter 6): SimpleRNN, LSTM and GRU, each in two implementations.

- `keras`: Keras 2.0.8's equations exactly: `hard_sigmoid` gates (clip(0.2x + 0.5, 0, 1)), the
  GRU's reset gate applied *before* its recurrent matmul, Gal-style `dropout` /
  `recurrent_dropout` (one mask per gate, drawn once per sequence and kept over time). The input
  projections of all time steps are one matmul; only the recurrent part loops over time.
- `torch`: `nn.RNN` / `nn.LSTM` / `nn.GRU` (fused kernels, cuDNN on GPUs): sigmoid gates, torch's
  GRU formulation, no recurrent dropout (`dropout` is refused rather than silently ignored).

Both take `[batch, time, features]` (Keras' layout) and start from Keras' initialisation: glorot-
uniform input kernels, orthogonal recurrent kernels, zero biases, the LSTM's forget bias at 1.
They return the last output `[batch, units]`, or every step's `[batch, time, units]` with
`return_sequences`. Keras' gate order is kept inside the `keras` weights: LSTM i, f, c, o; GRU z, r, h.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from dlwp.errors import ConfigError
from dlwp.model import fused_loop, native_rnn
from dlwp.model.gru_scan import KerasGRUScan

Kind = Literal["simplernn", "lstm", "gru"]
GATES = {"simplernn": 1, "lstm": 4, "gru": 3}


def hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """Keras 2.0.8's: clip(0.2 x + 0.5, 0, 1)."""
    return (0.2 * x + 0.5).clamp(0.0, 1.0)


def keras_orthogonal_(weight: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Keras' `orthogonal` for a `[rows, cols]` kernel: the Q of an SVD of a normal matrix, so
    rows (or columns, whichever are fewer) are orthonormal."""
    rows, cols = weight.shape
    a = torch.randn(rows, cols, generator=generator, dtype=torch.float64)
    u, _, v = torch.linalg.svd(a, full_matrices=False)
    q = u if u.shape == (rows, cols) else v
    with torch.no_grad():
        weight.copy_(q.to(weight.dtype))
    return weight


def glorot_uniform_(weight: torch.Tensor, fan_in: int, fan_out: int) -> torch.Tensor:
    limit = (6.0 / (fan_in + fan_out)) ** 0.5
    with torch.no_grad():
        return weight.uniform_(-limit, limit)


class KerasRecurrent(nn.Module):
    """One Keras 2.0.8 recurrent layer; weights as Keras stores them: `kernel` [in, gates*units],
    `recurrent_kernel` [units, gates*units], `bias` [gates*units]."""

    use_scan = True  # GRU with dropout: KerasGRUScan's hand-written BPTT; False = autograd per step

    def __init__(self, kind: Kind, in_features: int, units: int, dropout: float = 0.0,
                 recurrent_dropout: float = 0.0, activation: str = "tanh", compiled: bool = False,
                 native: bool = True) -> None:  # fmt: skip
        super().__init__()
        self.kind, self.units, self.compiled, self.native = kind, units, compiled, native
        self.dropout, self.recurrent_dropout = dropout, recurrent_dropout
        self.activation, self.relu = _activation(activation), activation == "relu"
        gates = GATES[kind]
        self.kernel = nn.Parameter(torch.empty(in_features, gates * units))
        self.recurrent_kernel = nn.Parameter(torch.empty(units, gates * units))
        self.bias = nn.Parameter(torch.zeros(gates * units))
        glorot_uniform_(self.kernel, in_features, gates * units)
        keras_orthogonal_(self.recurrent_kernel)
        if kind == "lstm":  # unit_forget_bias=True
            with torch.no_grad():
                self.bias[units : 2 * units] = 1.0

    def _masks(self, like: torch.Tensor, width: int, rate: float) -> torch.Tensor | None:
        """One Gal dropout mask per gate, `[gates, batch, width]`, fixed over time (Keras' `ones
        -> K.dropout`, drawn per gate); None outside training or without dropout."""
        if not self.training or rate <= 0:
            return None
        keep = torch.full((GATES[self.kind], like.shape[0], width), 1.0 - rate, device=like.device, dtype=like.dtype)
        return torch.bernoulli(keep) / (1.0 - rate)

    def forward(self, x: torch.Tensor, return_sequences: bool = False) -> torch.Tensor:
        """Under mixed precision (`trainer.precision=bf16-mixed` / `16-mixed`) the recurrence runs in
        float32: autocast would round its state to 16 bits at each of hundreds of steps, and its
        kernels are too small for 16 bits to be faster (docs/PERFORMANCE.md, bfloat16 on the CPU)."""
        if torch.is_autocast_enabled(x.device.type):
            with torch.autocast(x.device.type, enabled=False):
                return self._forward(x.float(), return_sequences)
        return self._forward(x, return_sequences)

    def _forward(self, x: torch.Tensor, return_sequences: bool) -> torch.Tensor:
        batch, steps, features = x.shape
        units, gates = self.units, GATES[self.kind]
        in_masks = self._masks(x, features, self.dropout)
        rec_masks = self._masks(x, units, self.recurrent_dropout)
        loops = native_rnn.loops_for(self.kind, x) if self.native and not self.compiled else None
        if loops is not None and native_rnn.fits(self.kind, self.units):
            return self._native_scan(loops, x, in_masks, rec_masks, return_sequences)
        if self.kind == "gru" and self.use_scan and (in_masks is not None or rec_masks is not None):
            return self._gru_scan(x, in_masks, rec_masks, return_sequences)
        h = x.new_zeros(batch, units)
        c = x.new_zeros(batch, units) if self.kind == "lstm" else None
        if rec_masks is None and in_masks is None:  # the common case: a few fused ops a step
            kernel, recurrent, bias = self._fused()
            projected = torch.addmm(bias, x.reshape(-1, features), kernel).view(batch, steps, gates * units)
            h, c, out = fused_loop.run(self.kind, self.relu, return_sequences, projected, h, c, recurrent,
                                       self.compiled)  # fmt: skip
            return out if return_sequences else h
        step, recurrent = getattr(self, f"_{self.kind}_step"), rec_masks
        if in_masks is None:  # every gate's input projection of every step in one matmul
            projected = torch.addmm(self.bias, x.reshape(-1, features), self.kernel)
            projected = projected.view(batch, steps, gates * units)
        else:  # a different mask per gate: each gate's projection of its own masked input
            parts = [(x * in_masks[g][:, None, :]) @ self.kernel[:, g * units : (g + 1) * units]
                     for g in range(gates)]  # fmt: skip
            projected = torch.cat(parts, dim=-1) + self.bias
        h, c, out = fused_loop.loop(step, return_sequences, projected, h, c, recurrent)
        return out if return_sequences else h

    def _native_scan(self, loops, x, in_masks, rec_masks, return_sequences):
        """The GRU or LSTM through its C loops (`dlwp.model.native_rnn`), with `_fused`'s weights."""
        kernel, recurrent, bias = self._fused()
        masks = None if rec_masks is None else rec_masks[self._fused_order()]
        out = native_rnn.NativeScan.apply(self._projected(x, in_masks, kernel, bias), recurrent, masks, self.relu,
                                          loops)  # fmt: skip
        return out if return_sequences else out[:, -1]

    def _fused_order(self) -> list[int]:
        """`_fused`'s gates, by Keras' gate index (the LSTM's i, f, o, c from Keras' i, f, c, o)."""
        return [0, 1, 3, 2] if self.kind == "lstm" else list(range(GATES[self.kind]))

    def _projected(self, x, in_masks, kernel, bias) -> torch.Tensor:
        """Every step's input projection `[B, T, gates n]` with `_fused`'s weights; under input
        dropout each gate projects its own masked input."""
        batch, steps, features = x.shape
        n = self.units
        if in_masks is None:
            projected = torch.addmm(bias, x.reshape(-1, features), kernel)
        else:
            parts = [(x * in_masks[k][:, None, :]).reshape(-1, features) @ kernel[:, g * n : (g + 1) * n]
                     for g, k in enumerate(self._fused_order())]  # fmt: skip
            projected = torch.cat(parts, dim=-1) + bias
        return projected.view(batch, steps, -1)

    def _gru_scan(self, x, in_masks, rec_masks, return_sequences):
        """The GRU with dropout through `KerasGRUScan` (hand-written BPTT, x1.7 on 2 CPU cores)."""
        kernel, recurrent, bias = self._fused()
        out = KerasGRUScan.apply(self._projected(x, in_masks, kernel, bias), recurrent, rec_masks, self.relu)
        return out if return_sequences else out[:, -1]

    def _fused(self):
        """(kernel, recurrent kernel, bias) for the fused steps, the scans and the C loops, in as few ops as the
        equations allow: Keras' hard_sigmoid(x) = clip(0.2 x + 0.5, 0, 1) is torch's
        hardsigmoid(1.2 x), and the 1.2 is folded into the weights once per sequence; the LSTM's
        gates are reordered (i, f, o, c) so its three hard-sigmoid gates are one slice."""
        n, w, u, b = self.units, self.kernel, self.recurrent_kernel, self.bias
        if self.kind == "simplernn":
            return w, u, b
        sigmoid_gates = 3 if self.kind == "lstm" else 2
        scale = torch.ones(GATES[self.kind] * n, dtype=u.dtype, device=u.device)
        scale[: sigmoid_gates * n] = 1.2
        if self.kind == "lstm":
            order = torch.cat([torch.arange(0, 2 * n), torch.arange(3 * n, 4 * n), torch.arange(2 * n, 3 * n)])
            w, u, b = w[:, order], u[:, order], b[order]
        return w * scale, u * scale, b * scale

    def _recurrent(self, h: torch.Tensor, masks: torch.Tensor | None, gate: slice | None = None) -> torch.Tensor:
        u = self.recurrent_kernel if gate is None else self.recurrent_kernel[:, gate]
        if masks is None:
            return h @ u
        # each gate sees h through its own mask: per-gate matmuls
        n = self.units
        first = 0 if gate is None else gate.start // n
        count = GATES[self.kind] if gate is None else (gate.stop - gate.start) // n
        return torch.cat([(h * masks[first + g]) @ u[:, g * n : (g + 1) * n] for g in range(count)], dim=-1)

    def _simplernn_step(self, xp, h, c, masks):
        return self.activation(xp + self._recurrent(h, masks)), None

    def _lstm_step(self, xp, h, c, masks):
        z = xp + self._recurrent(h, masks)
        i, f, g, o = z.chunk(4, dim=-1)
        c = hard_sigmoid(f) * c + hard_sigmoid(i) * self.activation(g)
        return hard_sigmoid(o) * self.activation(c), c

    def _gru_step(self, xp, h, c, masks):
        n = self.units
        zr = xp[:, : 2 * n] + self._recurrent(h, masks, slice(0, 2 * n))
        z, r = hard_sigmoid(zr).chunk(2, dim=-1)
        # Keras 2.0.8: the reset gate scales h *before* the recurrent matmul
        rh = r * h if masks is None else r * h * masks[2]
        hh = self.activation(xp[:, 2 * n :] + rh @ self.recurrent_kernel[:, 2 * n :])
        return z * h + (1 - z) * hh, None


class TorchRecurrent(nn.Module):
    """`nn.RNN` / `nn.LSTM` / `nn.GRU` (batch first) with Keras' initialisation."""

    def __init__(self, kind: Kind, in_features: int, units: int, bidirectional: bool = False,
                 activation: str = "tanh") -> None:  # fmt: skip
        super().__init__()
        self.kind = kind
        if kind == "simplernn":
            if activation not in ("tanh", "relu"):
                raise ConfigError(f"impl=torch SimpleRNN supports activation tanh or relu, not {activation!r}")
            self.rnn: nn.RNNBase = nn.RNN(in_features, units, batch_first=True, nonlinearity=activation,
                                          bidirectional=bidirectional)  # fmt: skip
        else:
            if activation != "tanh":
                raise ConfigError(
                    f"impl=torch {kind.upper()} has tanh activations only; use impl=keras for {activation}"
                )
            cls = nn.LSTM if kind == "lstm" else nn.GRU
            self.rnn = cls(in_features, units, batch_first=True, bidirectional=bidirectional)
        gates = GATES[kind]
        for name, p in self.rnn.named_parameters():
            if name.startswith("weight_ih"):  # torch stores [gates*units, in]: glorot over Keras' [in, gates*units]
                glorot_uniform_(p, in_features, gates * units)
            elif name.startswith("weight_hh"):  # torch's [gates*units, units] is Keras' kernel transposed
                with torch.no_grad():
                    p.copy_(keras_orthogonal_(torch.empty(units, gates * units)).T)
            else:
                nn.init.zeros_(p)
                if kind == "lstm" and name.startswith("bias_ih"):  # torch's order i, f, g, o: forget bias 1
                    with torch.no_grad():
                        p[units : 2 * units] = 1.0

    def forward(self, x: torch.Tensor, return_sequences: bool = False) -> torch.Tensor:
        out, state = self.rnn(x)
        if return_sequences:
            return out
        h = state[0] if isinstance(state, tuple) else state  # [directions, batch, units]
        return torch.cat(list(h), dim=-1)


class Recurrent(nn.Module):
    """A recurrent layer as Keras declares one: `LSTM(32, dropout=0.2, recurrent_dropout=0.2)`.

    Args:
        kind: simplernn | lstm | gru.
        in_features: width of each time step's input.
        units: width of the state and of the output.
        impl: `keras` (exact 2.0.8 equations, Gal dropout) or `torch` (fused nn.LSTM/GRU/RNN).
        dropout: Gal dropout of the inputs (keras only).
        recurrent_dropout: Gal dropout of the recurrent state (keras only).
        return_sequences: every step's output, `[batch, time, units]` (to stack another layer).
        go_backwards: read the sequence from its end (Keras' `go_backwards`).
        bidirectional: a forward and a backward layer, outputs concatenated (Keras'
            `Bidirectional(layer)`, `merge_mode='concat'`).
        activation: of the candidate state (Keras' default tanh; book 6.3's stacked GRU uses relu).
        compile: run the loop through `torch.compile`, 24 steps a call (keras only, without
            dropout): x1.4 for the Jena GRU, x1.2 for the char-LSTM on 2 CPU cores, after 30-110 s
            of compiling that inductor caches on disk (`dlwp.model.fused_loop`; a C++ compiler on CPUs).
        native: the Keras GRU's and LSTM's loops, forward and backward, in C on CPUs
            (`dlwp.model.native_rnn`, built on first use by the system's C compiler in under a
            second): x3.3 the torch ops' speed for a whole Jena GRU epoch on 2 cores, the same
            values up to float rounding. Where it does not pay or apply, torch ops run: a
            recurrent kernel over 48 KB (an LSTM over 55 units, a GRU over 64), GPUs, 16-bit
            tensors, `compile: true`, SimpleRNN, no C compiler. False: torch ops everywhere (how
            the results committed before it ran).
    """

    def __init__(
        self,
        kind: Kind,
        in_features: int,
        units: int,
        impl: Literal["keras", "torch"] = "keras",
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        return_sequences: bool = False,
        go_backwards: bool = False,
        bidirectional: bool = False,
        activation: str = "tanh",
        compile: bool = False,
        native: bool = True,
    ) -> None:
        super().__init__()
        if kind not in GATES:
            raise ConfigError(f"recurrent layer {kind!r}: choose simplernn, lstm or gru")
        if impl not in ("keras", "torch"):
            raise ConfigError(f"impl={impl!r}: choose keras (exact Keras 2.0.8 equations) or torch (fused, fast)")
        if impl == "torch" and (dropout or recurrent_dropout):
            raise ConfigError(f"{kind}: impl=torch has no (Gal) dropout or recurrent_dropout; use impl=keras")
        if compile and (impl == "torch" or dropout or recurrent_dropout):
            raise ConfigError(f"{kind}: compile=true compiles the Keras cell's loop without dropout (impl=keras, "
                              "dropout=0, recurrent_dropout=0); torch's fused kernels need no compiling")  # fmt: skip
        for name, rate in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            if not 0 <= rate < 1:
                raise ConfigError(f"{kind}: {name} must lie in [0, 1), got {rate}")
        self.kind, self.impl, self.units = kind, impl, units
        self.return_sequences, self.go_backwards, self.bidirectional = return_sequences, go_backwards, bidirectional
        self.out_features = units * (2 if bidirectional else 1)
        if impl == "torch":
            self.layer: nn.Module = TorchRecurrent(kind, in_features, units, bidirectional, activation)
            self.backward_layer = None
        else:
            self.layer = KerasRecurrent(kind, in_features, units, dropout, recurrent_dropout, activation, compile,
                                        native)  # fmt: skip
            self.backward_layer = (
                KerasRecurrent(kind, in_features, units, dropout, recurrent_dropout, activation, compile, native)
                if bidirectional
                else None
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.go_backwards:
            x = x.flip(1)
        if self.impl == "torch":
            return self.layer(x, self.return_sequences)
        out = self.layer(x, self.return_sequences)
        if self.backward_layer is None:
            return out
        back = self.backward_layer(x.flip(1), self.return_sequences)
        if self.return_sequences:  # Keras reverses the backward layer's sequence back into time order
            back = back.flip(1)
        return torch.cat([out, back], dim=-1)


def _activation(name: str):
    if name == "tanh":
        return torch.tanh
    if name == "relu":
        return torch.relu
    raise ConfigError(f"recurrent activation {name!r}: choose tanh or relu")
