"""Nietzsche's text as character windows (book 8.1): predict the next character from the last 60.

The book lower-cases the corpus (600,893 characters, 57 distinct), cuts a window every `step` = 3
characters (`range(0, len(text) - maxlen, step)`: 200,278 windows) and one-hot encodes them all
into a 200,278 x 60 x 57 array. Here the text is kept once as character codes; a split is its
window start positions with their next characters, and each batch of starts becomes its windows
of codes by index arithmetic (`batch_transform`). The one-hot encoding is the network's first layer
(`one_hot`), per batch. The book trains on every window and validates on none; `val_size` can
hold out the last windows (`val_from: tail`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dlwp.data.base import InMemoryDataModule, Split, require_file
from dlwp.errors import ConfigError, DataMissingError


def read_corpus(path: Path, lower: bool = True) -> str:
    require_file(path, "nietzsche")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise DataMissingError(f"nietzsche: {path} is not a readable UTF-8 text ({err}); replace it") from err
    return text.lower() if lower else text


class CharWindowsDataModule(InMemoryDataModule):
    """Character windows of a text; see the module doc.

    Args:
        path: the text file (`nietzsche/nietzsche.txt`).
        maxlen: characters a window holds (book: 60).
        step: a window starts every `step` characters (book: 3).
        lower: lower-case the corpus first (book: yes).
        **kwargs: see `InMemoryDataModule`.
    """

    dataset = "nietzsche"

    def __init__(self, path: str, maxlen: int = 60, step: int = 3, lower: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        if maxlen < 1 or step < 1:
            raise ConfigError(f"data.maxlen={maxlen}, data.step={step}: both must be >= 1")
        self.path, self.maxlen, self.step, self.lower = Path(path), maxlen, step, lower
        self.batch_transform = self._windows
        self._codes: dict[str, torch.Tensor] = {}

    def files(self) -> list[Path]:
        return [self.path]

    def load(self) -> dict[str, Split]:
        text = read_corpus(self.path, self.lower)
        if len(text) <= self.maxlen:
            raise ConfigError(f"{self.path.name} has {len(text)} characters: too short for data.maxlen={self.maxlen}")
        self.chars = sorted(set(text))  # the book's `chars`: sorted, so index = rank
        lookup = np.zeros(max(map(ord, self.chars)) + 1, dtype=np.int64)
        lookup[[ord(c) for c in self.chars]] = np.arange(len(self.chars))
        codes = torch.from_numpy(lookup[np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)])
        self._codes = {"cpu": codes}
        self.corpus_length = len(text)
        starts = torch.arange(0, len(text) - self.maxlen, self.step, dtype=torch.int64)
        return {"train": (starts, codes[starts + self.maxlen].clone())}

    @property
    def vocabulary(self) -> list[str]:
        """The characters, by code (what a sampler decodes with)."""
        self.setup("fit")
        return self.chars

    def encode(self, text: str) -> torch.Tensor:
        """Codes of `text` (lower-cased as the corpus); an unknown character is an error naming it."""
        self.setup("fit")
        text = text.lower() if self.lower else text
        index = {c: i for i, c in enumerate(self.chars)}
        unknown = sorted({c for c in text if c not in index})
        if unknown:
            raise ConfigError(f"characters {unknown} are not in the corpus's {len(self.chars)}")
        return torch.tensor([index[c] for c in text], dtype=torch.int64)

    def seed_window(self, seed: int) -> torch.Tensor:
        """`maxlen` codes from a random place in the corpus (the book's `random.randint` start),
        drawn from `seed`: the seed text of a sample."""
        self.setup("fit")
        codes = self._codes["cpu"]
        generator = torch.Generator().manual_seed(seed)
        start = int(torch.randint(0, len(codes) - self.maxlen - 1, (1,), generator=generator))
        return codes[start : start + self.maxlen]

    def decode(self, codes: torch.Tensor) -> str:
        return "".join(self.chars[c] for c in codes.tolist())

    def _windows(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Window starts -> `[B, maxlen]` character codes, gathered from the one code array."""
        starts, targets = batch
        codes = self._codes_on(starts.device)
        return codes[starts[:, None] + torch.arange(self.maxlen, device=starts.device)], targets

    def _codes_on(self, device: torch.device) -> torch.Tensor:
        key = str(device)
        if key not in self._codes:
            self._codes[key] = self._codes["cpu"].to(device)
        return self._codes[key]

    def baselines(self) -> dict[str, float]:
        """The unigram entropy of the next characters (nats): the loss of a model that ignores the
        window and predicts character frequencies; what a learning network must beat."""
        _, targets = self.splits["train"]
        p = torch.bincount(targets, minlength=len(self.chars)).double() / len(targets)
        p = p[p > 0]
        return {"unigram_entropy": float(-(p * p.log()).sum())}
