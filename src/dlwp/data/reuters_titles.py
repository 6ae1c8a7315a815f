"""Reuters wires as two inputs, TITLE and BODY (book 7.1.2's multi-input pattern on real data).

The same 11,228 wires, topics, shuffle and 8,982 / 2,246 split as `ReutersDataModule(from_raw=
true)` (Keras' recipe on the raw Reuters-21578 SGML); each wire also gives its `<TITLE>`, encoded
with the bodies' vocabulary. Inputs are named `title` and `body`; a model may read either or both,
so title-only, body-only and two-input models are compared on identical wires.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dlwp.data.base import Split
from dlwp.data.reuters import NUM_CLASSES, NUM_WIRES, ReutersDataModule
from dlwp.data.text import keras_encode, keras_permutation, multi_hot, synthetic_documents


class ReutersTitleBodyDataModule(ReutersDataModule):
    """`({"title": x, "body": x}, topic)`; see the module doc. Arguments as `ReutersDataModule`'s
    (the raw tarball is always read: the Keras npz has no titles)."""

    def __init__(self, **kwargs) -> None:
        kwargs["from_raw"] = True
        super().__init__(**kwargs)
        if self.encoding == "multi_hot":
            self.batch_transform = self._multi_hot_inputs

    def files(self) -> list[Path]:
        return [self.raw]

    def load(self) -> dict[str, Split]:
        from dlwp.data import reuters_raw

        bodies, topics, word_index = reuters_raw.build(self.raw)
        titles = reuters_raw.title_ranks(self.raw, word_index)
        return self._two_inputs(titles, bodies, topics)

    def synthetic(self) -> dict[str, Split]:
        """The parent's synthetic wires as bodies; titles of ~7 words from the same topic markers."""
        rng = np.random.default_rng(1234)
        prior = 1.0 / np.arange(1, NUM_CLASSES + 1)
        labels = rng.choice(NUM_CLASSES, size=NUM_WIRES, p=prior / prior.sum())
        bodies = synthetic_documents(NUM_WIRES, labels, NUM_CLASSES, self.num_words, 145.0, rng)
        titles = synthetic_documents(NUM_WIRES, labels, NUM_CLASSES, self.num_words, 7.0, rng)
        return self._two_inputs(titles, bodies, labels, encoded=True)

    def _two_inputs(self, titles, bodies, topics, encoded: bool = False) -> dict[str, Split]:
        order = keras_permutation(len(topics))
        if not encoded:  # Keras' shuffle and indices, as ReutersDataModule(from_raw=true)
            titles = keras_encode(titles.take(order), self.num_words)
            bodies = keras_encode(bodies.take(order), self.num_words)
            topics = topics[order]
        labels = torch.from_numpy(np.asarray(topics, dtype=np.int64))
        n_train = int(len(labels) * (1 - self.test_split))
        rows = {"train": np.arange(n_train), "test": np.arange(n_train, len(labels))}
        return {
            split: ({"title": self.inputs(titles.take(r)), "body": self.inputs(bodies.take(r))}, labels[r])
            for split, r in rows.items()
        }

    def _multi_hot_inputs(self, batch):
        inputs, *rest = batch
        return ({name: multi_hot(x, self.num_words) for name, x in inputs.items()}, *rest)
