"""Reuters newswires, 46 topics (book 3.6), as Keras `reuters.load_data(num_words, test_split=0.2)` gives them.

The wires (word-rank lists and topic ids) come from a Keras-layout npz or, with `from_raw`, are
rebuilt from the raw Reuters-21578 SGML with Keras' recipe (`dlwp.data.reuters_raw`). They are
shuffled as Keras does (`RandomState(113)` permutation of x and y together, which equals 2.0.8's
reseed-and-shuffle of each), then split at `int(len * (1 - test_split))`: 8,982 train / 2,246 test. Indices
are `[1] + [rank + 3]`, ranks >= num_words -> 2; labels int64 0-45 (the book one-hot encodes them,
which `categorical_crossentropy` on integer labels makes unnecessary).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch

from dlwp.data.base import Split, require_file
from dlwp.data.text import (
    Ragged,
    WordIndexDataModule,
    keras_encode,
    keras_permutation,
    load_object_npz,
    synthetic_documents,
)
from dlwp.errors import ConfigError, DataMissingError

NUM_CLASSES = 46
NUM_WIRES = 11228


class ReutersDataModule(WordIndexDataModule):
    """Reuters newswires with Keras indices; x as `multi_hot` (book 3.6) or padded `sequence`.

    Args:
        path: Keras-layout `reuters.npz` (`x`: object array of rank lists, `y`: topics 0-45).
        raw: the Reuters-21578 tarball (`reut2-000.sgm` ... `reut2-021.sgm`), read when `from_raw`.
        from_raw: rebuild the wires from `raw` instead of reading `path` (cached beside it).
        num_words, encoding, maxlen: see `WordIndexDataModule`.
        test_split: fraction held out as the test set, from the end of the shuffled wires (Keras').
        allow_unverified_pickle: the npz stores pickled objects, so only a file whose sha256 is
            recorded in the registry (canonical or a variant) is loaded unless this is true.
        **kwargs: see `InMemoryDataModule`.
    """

    dataset = "reuters"

    def __init__(
        self,
        path: str,
        raw: str | None = None,
        from_raw: bool = False,
        num_words: int = 10000,
        test_split: float = 0.2,
        encoding: Literal["multi_hot", "sequence"] = "multi_hot",
        maxlen: int | None = None,
        allow_unverified_pickle: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(num_words=num_words, encoding=encoding, maxlen=maxlen, **kwargs)
        if not 0 < test_split < 1:
            raise ConfigError(f"data.test_split must lie strictly between 0 and 1, got {test_split}")
        self.path, self.test_split = Path(path), test_split
        if from_raw and raw is None:
            raise ConfigError("data.from_raw=true needs data.raw: the path of the Reuters-21578 tarball")
        self.raw, self.from_raw = (Path(raw) if raw is not None else None), from_raw
        self.allow_unverified_pickle = allow_unverified_pickle

    def files(self) -> list[Path]:
        return [self.raw] if self.from_raw else [self.path]

    def load(self) -> dict[str, Split]:
        if self.from_raw:
            from dlwp.data import reuters_raw

            ranks, topics = reuters_raw.prepare(self.raw, self.raw.parent / ".cache")
            order = keras_permutation(len(topics))
            return self._split(keras_encode(ranks.take(order), self.num_words), torch.from_numpy(topics[order]))
        require_file(self.path, "reuters")
        arrays = load_object_npz(self.path, "reuters", ("x", "y"), self.allow_unverified_pickle)
        wires, topics = arrays["x"], arrays["y"]
        if wires.ndim != 1 or topics.shape != wires.shape or len(wires) == 0:
            raise DataMissingError(
                f"reuters: {self.path} has x {wires.shape} and y {topics.shape}; expected two arrays of "
                f"{NUM_WIRES} (Keras layout). Replace it with a good copy."
            )
        order = keras_permutation(len(wires))
        indices = keras_encode(Ragged.from_lists(wires).take(order), self.num_words)
        labels = torch.from_numpy(topics[order].astype(np.int64))
        return self._split(indices, labels)

    def _split(self, indices: Ragged, labels: torch.Tensor) -> dict[str, Split]:
        """Keras' split point; each split encoded on its own, as the book pads train and test apart."""
        n_train = int(len(indices) * (1 - self.test_split))
        rows = np.arange(len(indices))
        return {
            "train": (self.inputs(indices.take(rows[:n_train])), labels[:n_train]),
            "test": (self.inputs(indices.take(rows[n_train:])), labels[n_train:]),
        }

    def synthetic(self) -> dict[str, Split]:
        """11,228 wires of ~145 words in 46 topics with skewed frequencies (1/rank), marker words per topic."""
        rng = np.random.default_rng(1234)
        prior = 1.0 / np.arange(1, NUM_CLASSES + 1)
        labels = rng.choice(NUM_CLASSES, size=NUM_WIRES, p=prior / prior.sum())
        docs = synthetic_documents(NUM_WIRES, labels, NUM_CLASSES, self.num_words, 145.0, rng)
        return self._split(docs, torch.from_numpy(labels.astype(np.int64)))
