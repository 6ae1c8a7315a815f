"""Book 6.1c: IMDB from the raw review texts through Keras' `Tokenizer`, with few training samples.

The book reads `aclImdb/train/{neg,pos}`, fits `Tokenizer(num_words=10000)` on all 25,000 training
texts ("Found 88582 unique tokens"), pads to 100 words, shuffles, and keeps the first 200 reviews
for training and the next 10,000 for validation; the test set is `aclImdb/test`, tokenised with the
same word index. Here:

- Keras 2.0.8's `Tokenizer`: words ranked by count over the training texts (ties: first
  appearance, Python's stable sort), index 1 = most frequent; `texts_to_sequences` drops words
  of rank >= num_words; `pad_sequences(maxlen)` keeps the last words.
- Texts in a fixed order (neg then pos, by review id) instead of `os.listdir`'s; the book's shuffle
  was unseeded, this one is seeded by the run's seed (each seed draws its own 200 reviews).
- Pretrained embeddings: with `glove`, the data module builds the book's `embedding_matrix` from
  its word index and loads it into the network's first Embedding (`init_network`).

Reading the tar takes ~15 s; the encoded reviews are cached, keyed by the tar's sha256, num_words
and `PREPARATION_VERSION`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dlwp.data.base import InMemoryDataModule, Split, require_file
from dlwp.data.imdb import iter_reviews
from dlwp.data.text import Ragged, pad_sequences, read_npz_cache, sha256_file, write_npz_cache
from dlwp.errors import ConfigError

PREPARATION_VERSION = 1


def read_reviews(reviews: Path) -> tuple[dict[str, tuple[Ragged, np.ndarray]], list[str], np.ndarray]:
    """Every labelled review as ids into a list of distinct words, per split (neg then pos, by id),
    with 0/1 labels; the words; and the ids of the training texts' words in order of first
    appearance (Keras' counting order: its `word_counts` is an OrderedDict)."""
    vocab: dict[str, int] = {}
    found: dict[str, list[tuple[bool, int, np.ndarray]]] = {"train": [], "test": []}
    for split, positive, review_id, _, words in iter_reviews(reviews):
        ids = np.fromiter((vocab.setdefault(w, len(vocab)) for w in words), dtype=np.int32, count=len(words))
        found[split].append((positive, review_id, ids))
    out = {}
    for split, docs in found.items():
        docs.sort(key=lambda d: (d[0], d[1]))
        out[split] = (Ragged.from_lists([d[2] for d in docs], dtype=np.int32), np.array([d[0] for d in docs], np.int8))
    ids, first = np.unique(out["train"][0].values, return_index=True)
    return out, list(vocab), ids[np.argsort(first, kind="stable")]


class KerasTokenizer:
    """Keras 2.0.8 `Tokenizer(num_words)` over texts given as word ids (`read_reviews`)."""

    def __init__(self, num_words: int) -> None:
        self.num_words = num_words

    def fit(self, train: Ragged, words: list[str], by_appearance: np.ndarray) -> KerasTokenizer:
        """Count each word over the training texts; rank by count, ties by first appearance."""
        counts = np.bincount(train.values, minlength=len(words))
        ranked = by_appearance[np.argsort(-counts[by_appearance], kind="stable")]  # stable: ties keep appearance
        ranked = ranked[counts[ranked] > 0]
        self.index_of = np.zeros(len(words), dtype=np.int64)  # word id -> Keras index (0: not in the index)
        self.index_of[ranked] = np.arange(1, len(ranked) + 1)
        self.word_index = {words[i]: r for r, i in enumerate(ranked.tolist(), start=1)}
        return self

    def encode(self, texts: Ragged) -> Ragged:
        """`texts_to_sequences`: each word -> its index; unknown words and indices >= num_words dropped."""
        index = self.index_of[texts.values]
        return Ragged(index, texts.offsets).where((index > 0) & (index < self.num_words))


class IMDBTextDataModule(InMemoryDataModule):
    """Book 6.1c's data; see the module doc.

    Args:
        reviews: `aclImdb_v1.tar.gz` (or its labelled-only re-pack), read in place.
        num_words: the tokenizer's `num_words` (book: 10,000).
        maxlen: `pad_sequences` length (book: 100).
        train_samples: reviews to train on, after the shuffle (book: 200).
        val_samples: the next reviews, to validate on (book: 10,000).
        glove: a GloVe file (`glove.6B.100d.txt`, `.txt.gz` or `glove.6B.zip`); null: no
            pretrained embedding (book 6.1c's second model).
        glove_dim: its vector width (book: 100).
        cache_dir: where encoded reviews are cached; None: `.cache/` beside `reviews`.
        **kwargs: see `InMemoryDataModule`.
    """

    dataset = "imdb"

    def __init__(self, reviews: str, num_words: int = 10000, maxlen: int = 100, train_samples: int = 200,
                 val_samples: int = 10000, glove: str | None = None, glove_dim: int = 100,
                 cache_dir: str | None = None, **kwargs) -> None:  # fmt: skip
        super().__init__(**kwargs)
        if train_samples < 1 or val_samples < 0 or train_samples + val_samples > 25000:
            raise ConfigError(f"data.train_samples + data.val_samples must fit in 25,000 reviews, got "
                              f"{train_samples} + {val_samples}")  # fmt: skip
        self.reviews, self.num_words, self.maxlen = Path(reviews), num_words, maxlen
        self.train_samples, self.val_samples = train_samples, val_samples
        self.glove, self.glove_dim = (Path(glove) if glove else None), glove_dim
        self.cache_dir = Path(cache_dir) if cache_dir else self.reviews.parent / ".cache"
        self.word_index: dict[str, int] = {}

    def files(self) -> list[Path]:
        return [self.reviews, *([self.glove] if self.glove else [])]

    def load(self) -> dict[str, Split]:
        require_file(self.reviews, "imdb")
        encoded, labels, self.word_index = self._encoded()
        order = np.random.RandomState(self.seed).permutation(len(labels["train"]))  # the book's shuffle, seeded
        cut = self.train_samples
        parts = {"train": order[:cut], "val": order[cut : cut + self.val_samples]}
        x = {s: torch.from_numpy(pad_sequences(encoded[s], self.maxlen, dtype=np.int64)) for s in ("train", "test")}
        y = {s: torch.from_numpy(labels[s].astype(np.float32)) for s in ("train", "test")}
        splits = {name: (x["train"][rows], y["train"][rows]) for name, rows in parts.items() if len(rows)}
        splits["test"] = (x["test"], y["test"])
        return splits

    def _encoded(self) -> tuple[dict[str, Ragged], dict[str, np.ndarray], dict[str, int]]:
        key = hashlib.sha256(f"imdb-text v{PREPARATION_VERSION} {self.num_words}\n{sha256_file(self.reviews)}".encode())
        key = key.hexdigest()
        cache = self.cache_dir / f"imdb_text_{key[:20]}.npz"
        arrays = read_npz_cache(cache, key, "imdb")
        if arrays is not None:
            splits = {s: Ragged(arrays[f"{s}_values"], arrays[f"{s}_offsets"]) for s in ("train", "test")}
            words = arrays["words"].tolist()
            word_index = {word: i for i, word in enumerate(words, start=1)}
            return splits, {s: arrays[f"{s}_labels"] for s in splits}, word_index
        texts, words, by_appearance = read_reviews(self.reviews)
        tokenizer = KerasTokenizer(self.num_words).fit(texts["train"][0], words, by_appearance)
        splits = {s: tokenizer.encode(texts[s][0]) for s in texts}
        labels = {s: texts[s][1] for s in texts}
        ranked = sorted(tokenizer.word_index, key=tokenizer.word_index.__getitem__)
        arrays = {"words": np.array(ranked[: self.num_words - 1])}  # indices 1 .. num_words - 1
        for s in splits:
            arrays |= {f"{s}_values": splits[s].values, f"{s}_offsets": splits[s].offsets, f"{s}_labels": labels[s]}
        write_npz_cache(cache, key, arrays, "imdb")
        return splits, labels, {w: i for w, i in tokenizer.word_index.items() if i < self.num_words}

    def init_network(self, network: nn.Module) -> dict[str, Any] | None:
        """Book 6.1c: GloVe's vectors into the network's first Embedding (`layers[0].set_weights`)."""
        if self.glove is None:
            return None
        from dlwp.data.glove import embedding_matrix

        embedding = next((m for m in network.modules() if isinstance(m, nn.Embedding)), None)
        if embedding is None:
            raise ConfigError("data.glove is set, but the network has no Embedding layer to put GloVe's vectors in")
        if tuple(embedding.weight.shape) != (self.num_words, self.glove_dim):
            raise ConfigError(f"data.glove: the Embedding is {list(embedding.weight.shape)}, but GloVe's matrix is "
                              f"[{self.num_words}, {self.glove_dim}] (data.num_words, data.glove_dim)")  # fmt: skip
        matrix, found = embedding_matrix(self.glove, self.word_index, self.num_words, self.glove_dim)
        with torch.no_grad():
            embedding.weight.copy_(torch.from_numpy(matrix))
        return {"glove": str(self.glove), "words_found": found, "words": self.num_words - 1,
                "trainable": embedding.weight.requires_grad}  # fmt: skip
