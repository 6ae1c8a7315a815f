"""Sampling text from a next-character model (book 8.1), the same for the per-epoch samples and
`dlwp generate`.

The book's `sample(preds, temperature)` reweights the softmax output as `exp(log(p) / T)`,
renormalised, and draws one character. That equals `softmax(logits / T)`, which is what is computed
here (in float64, from the logits: no `log(0)`); `T = 0` means the argmax (the limit). Draws come
from a `torch.Generator` seeded by the caller, so the same seed gives the same text.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def reweight(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Probabilities `softmax(logits / T)` in float64 (`T > 0`)."""
    if temperature <= 0:
        raise ValueError(f"temperature {temperature}: reweighting needs T > 0 (T = 0 is the argmax)")
    return torch.softmax(logits.double() / temperature, dim=-1)


def next_codes(logits: torch.Tensor, temperatures: Sequence[float], generator: torch.Generator) -> torch.Tensor:
    """One code per row of `logits` [rows, vocabulary], row i drawn at `temperatures[i]`."""
    picks = []
    for row, t in zip(logits, temperatures, strict=True):
        if t == 0:
            picks.append(row.argmax())
        else:
            picks.append(torch.multinomial(reweight(row, t), 1, generator=generator)[0])
    return torch.stack(picks)


@torch.no_grad()
def sample_text(network: nn.Module, seed_codes: torch.Tensor, length: int, temperatures: Sequence[float],
                vocabulary: Sequence[str], maxlen: int, seed: int = 0) -> list[str]:  # fmt: skip
    """`length` characters after `seed_codes` at each temperature (one batch row per temperature):
    each step feeds the last `maxlen` codes, as the book's loop feeds `generated_text[-60:]`."""
    if len(seed_codes) < maxlen:
        raise ValueError(f"the seed text has {len(seed_codes)} characters; the model reads {maxlen}")
    generator = torch.Generator().manual_seed(seed)
    device = next(network.parameters()).device
    window = seed_codes[-maxlen:].to(device).repeat(len(temperatures), 1)
    out = []
    training = network.training
    network.eval()
    try:
        for _ in range(length):
            logits = network(window).float().cpu()
            codes = next_codes(logits, temperatures, generator)
            out.append(codes)
            window = torch.cat([window[:, 1:], codes.to(device)[:, None]], dim=1)
    finally:
        network.train(training)
    generated = torch.stack(out, dim=1) if out else torch.empty(len(temperatures), 0, dtype=torch.int64)
    return ["".join(vocabulary[c] for c in row.tolist()) for row in generated]
