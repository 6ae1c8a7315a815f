"""Keras 2.0.8 text utilities, vectorised, and the compact storage the word-index datasets share.

IMDB and Reuters come as ragged lists of word ranks. Here they live as one flat array plus offsets
(`Ragged`), are turned into Keras `load_data` indices by `keras_encode`, and are served either as
`pad_sequences` matrices (book chapter 6) or as multi-hot vectors (book 3.5, 3.6, 4.4). A multi-hot
training set would be 25,000 x 10,000 floats (1 GB); instead each row keeps only its *set* of
indices (`index_sets`) and `multi_hot` expands whole batches as they are served.
"""

from __future__ import annotations

import os
import tempfile
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from dlwp.data.base import InMemoryDataModule
from dlwp.errors import ConfigError, DataMissingError
from dlwp.record import sha256_file

FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'
"""Keras' default `filters`: each becomes a space. The apostrophe is not one ("isn't" stays a word)."""
PAD = -1
"""Padding of `index_sets` rows; never a word index, so it cannot be confused with index 0."""
KERAS_SEED = 113
"""`load_data(seed=113)` of imdb, reuters and boston_housing."""

_TRANSLATIONS: dict[str, dict[int, int]] = {}


def text_to_word_sequence(text: str, filters: str = FILTERS, lower: bool = True, split: str = " ") -> list[str]:
    """Keras 2.0.8 `text_to_word_sequence`: lower-case, filters -> `split`, split on `split` only.

    As in Keras, only `split` separates words: a `\\r` or a non-breaking space stays inside a word
    (`\\t` and `\\n` are filters, so they do separate). `<br />` becomes the word `br`.
    """
    if lower:
        text = text.lower()
    table = _TRANSLATIONS.get(filters + split)
    if table is None:
        table = _TRANSLATIONS[filters + split] = str.maketrans(filters, split * len(filters))
    return [word for word in text.translate(table).split(split) if word]


@dataclass(frozen=True)
class Ragged:
    """Variable-length integer sequences: row i is `values[offsets[i]:offsets[i + 1]]`."""

    values: np.ndarray
    offsets: np.ndarray

    @classmethod
    def from_lists(cls, seqs: Sequence[Sequence[int]], dtype: type = np.int64) -> Ragged:
        lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
        offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        values = np.fromiter(chain.from_iterable(seqs), dtype=dtype, count=int(offsets[-1]))
        return cls(values, offsets)

    @classmethod
    def of(cls, seqs: Ragged | Sequence[Sequence[int]]) -> Ragged:
        return seqs if isinstance(seqs, Ragged) else cls.from_lists(seqs)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.values[self.offsets[i] : self.offsets[i + 1]]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def row_ids(self, dtype: type = np.int64) -> np.ndarray:
        """The row of every value."""
        return np.repeat(np.arange(len(self), dtype=dtype), self.lengths)

    def positions(self) -> np.ndarray:
        """The position of every value within its row."""
        return np.arange(len(self.values)) - np.repeat(self.offsets[:-1], self.lengths)

    def take(self, rows: np.ndarray) -> Ragged:
        """Rows `rows`, in that order (one gather, no per-row Python)."""
        rows = np.asarray(rows, dtype=np.int64)
        lengths = self.lengths[rows]
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        starts = np.repeat(self.offsets[:-1][rows] - offsets[:-1], lengths)
        return Ragged(self.values[starts + np.arange(offsets[-1])], offsets)

    def distinct(self) -> Ragged:
        """Each row's distinct values, ascending: one sort of (row, value) keys for all rows."""
        if not len(self.values):
            return self
        low = int(self.values.min())
        span = int(self.values.max()) - low + 1
        key_type = np.int32 if len(self) * span < np.iinfo(np.int32).max else np.int64  # int32 sorts faster
        keys = self.row_ids(key_type) * key_type(span) + (self.values - low).astype(key_type)
        keys.sort()
        keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]
        rows, values = np.divmod(keys, key_type(span))
        offsets = np.zeros(len(self) + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=len(self)), out=offsets[1:])
        return Ragged((values + low).astype(self.values.dtype), offsets)

    def where(self, keep: np.ndarray) -> Ragged:
        """The values where the boolean `keep` is true, rows kept (possibly empty)."""
        kept = np.zeros(len(self.values) + 1, dtype=np.int64)
        np.cumsum(keep, out=kept[1:])
        return Ragged(self.values[keep], kept[self.offsets])

    def reversed(self) -> Ragged:
        """Each row in reverse order (book 6.3's `[x[::-1] for x in x_train]`)."""
        flipped = self.offsets[:-1].repeat(self.lengths) + (
            np.repeat(self.lengths, self.lengths) - 1 - self.positions()
        )
        return Ragged(self.values[flipped], self.offsets)

    def tolist(self) -> list[list[int]]:
        return [self[i].tolist() for i in range(len(self))]


def keras_permutation(n: int, seed: int = KERAS_SEED) -> np.ndarray:
    """The order Keras `load_data` gives n samples: `RandomState(seed).permutation(n)`.

    Keras 2.0.8 reseeds the global RNG and `np.random.shuffle`s x, then reseeds and shuffles y;
    shuffle and `permutation` draw the same swaps, so `x[perm]` is that same order.
    """
    return np.random.RandomState(seed).permutation(n)


def keras_encode(
    ranks: Ragged | Sequence[Sequence[int]],
    num_words: int | None = None,
    start_char: int | None = 1,
    oov_char: int | None = 2,
    index_from: int = 3,
) -> Ragged:
    """Keras `imdb/reuters.load_data` indices: `[start_char] + [r + index_from]`, then >= num_words -> oov.

    So 0 is left for padding, 1 starts every sequence, 2 is "out of vocabulary" and rank r is
    r + 3. Like Keras, `num_words=None` keeps every word; `oov_char=None` drops rare words instead.
    """
    ranks = Ragged.of(ranks)
    dtype = np.result_type(ranks.values.dtype, np.int32)  # int32 input stays int32: half the memory traffic
    values = ranks.values.astype(dtype) + dtype.type(index_from)
    offsets = ranks.offsets
    if start_char is not None:
        offsets = ranks.offsets + np.arange(len(ranks.offsets))
        out = np.empty(offsets[-1], dtype=dtype)
        out[offsets[:-1]] = start_char
        is_word = np.ones(offsets[-1], dtype=bool)
        is_word[offsets[:-1]] = False
        out[is_word] = values
        values = out
    if num_words is not None:
        rare = values >= num_words
        if oov_char is not None:
            np.putmask(values, rare, oov_char)
        elif rare.any():
            return Ragged(values, offsets).where(~rare)
    return Ragged(values, offsets)


PAD_BLOCK_ROWS = 2048  # rows padded together: bounds the index array to 2048 x maxlen


def pad_sequences(
    seqs: Ragged | Sequence[Sequence[int]],
    maxlen: int | None = None,
    dtype: str | type = "int32",
    padding: Literal["pre", "post"] = "pre",
    truncating: Literal["pre", "post"] = "pre",
    value: float = 0,
) -> np.ndarray:
    """Keras `pad_sequences`: an [N, maxlen] array. The defaults pad *and truncate* at the front,
    i.e. keep the **last** maxlen words (the book's "cut off the reviews after" notwithstanding).
    `maxlen=None` pads to the longest sequence.
    """
    if padding not in ("pre", "post") or truncating not in ("pre", "post"):
        raise ValueError(f"padding and truncating must be 'pre' or 'post', got {padding!r}, {truncating!r}")
    seqs = Ragged.of(seqs)
    lengths = seqs.lengths
    if maxlen is None:
        maxlen = int(lengths.max()) if len(lengths) else 0
    if maxlen < 1 and len(seqs.values):
        raise ValueError(f"maxlen must be >= 1, got {maxlen}")
    out = np.full((len(seqs), maxlen), value, dtype=dtype)
    if not len(seqs.values):
        return out
    kept = np.minimum(lengths, maxlen)
    first = (lengths - kept) if truncating == "pre" else np.zeros_like(kept)  # the first kept word of a row
    column = (maxlen - kept) if padding == "pre" else np.zeros_like(kept)  # ... and its column
    # out[i, j] = values[offsets[i] + first[i] + j - column[i]] for column[i] <= j < column[i] + kept[i]:
    # a gather per block of rows (a scatter of every word by row and column took ~0.5 s for IMDB's 25,000)
    shift = seqs.offsets[:-1] + first - column
    j = np.arange(maxlen)
    for start in range(0, len(seqs), PAD_BLOCK_ROWS):
        rows = slice(start, start + PAD_BLOCK_ROWS)
        inside = (j >= column[rows, None]) & (j < (column + kept)[rows, None])
        index = np.where(inside, shift[rows, None] + j, 0)
        np.copyto(out[rows], seqs.values[index], where=inside, casting="unsafe")
    return out


def index_sets(seqs: Ragged, num_words: int, presorted: bool = False) -> torch.Tensor:
    """Each row's distinct indices padded with `PAD` to [N, width]: the compact form of a multi-hot matrix.

    int16 when the indices fit: IMDB takes 25,000 x ~600 x 2 B = 30 MB instead of 1 GB of floats.
    `presorted`: the rows are `Ragged.distinct` rows passed through `keras_encode`, so their only
    repeats (OOV 2s) are adjacent and one comparison removes them instead of a sort.
    """
    if len(seqs.values) and (seqs.values.min() < 0 or seqs.values.max() >= num_words):
        raise ValueError(f"indices must lie in [0, {num_words - 1}]")
    if presorted:
        values = seqs.values
        repeat = np.zeros(len(values), dtype=bool)
        repeat[1:] = values[1:] == values[:-1]
        repeat[seqs.offsets[:-1][seqs.lengths > 0]] = False  # never across rows
        seqs = seqs.where(~repeat)
    else:
        seqs = seqs.distinct()
    lengths = seqs.lengths
    width = max(int(lengths.max()) if len(lengths) else 0, 1)
    dtype = np.int16 if num_words <= np.iinfo(np.int16).max else np.int32
    out = np.full((len(seqs), width), PAD, dtype=dtype)
    out.reshape(-1)[seqs.row_ids() * width + seqs.positions()] = seqs.values
    return torch.from_numpy(out)


def multi_hot(sets: torch.Tensor, num_words: int) -> torch.Tensor:
    """float32 [B, num_words], 1.0 at every index of each row (the book's `vectorize_sequences`).

    Padding (`PAD`) sets nothing; column 0 is set only where a row really holds index 0.
    """
    idx = sets.long()
    out = torch.zeros(len(idx), num_words, dtype=torch.float32, device=idx.device)
    out.scatter_(1, idx.clamp(min=0), 1.0)
    out[:, 0] = (idx == 0).any(1).float()
    return out


class WordIndexDataModule(InMemoryDataModule):
    """Shared by IMDB and Reuters: word ranks -> Keras indices -> `multi_hot` or `sequence` tensors.

    Args:
        num_words: keep the `num_words - 3` most frequent words (Keras `num_words`); the rest -> 2.
        encoding: `multi_hot` (book 3.5, 3.6, 4.4: float32 [B, num_words], built per batch) or
            `sequence` (book 6: int64 [N, maxlen] from `pad_sequences`, for embeddings and RNNs).
        maxlen: `sequence` only: `pad_sequences` length (keeps the last maxlen words, Keras'
            default); None pads to the longest sequence, which for IMDB is ~2,500 words.
        reverse: `sequence` only: each text reversed before padding (book 6.3: `x[::-1]`, so the
            first maxlen words are kept, last word first).
        **kwargs: see `InMemoryDataModule`.
    """

    def __init__(
        self,
        num_words: int = 10000,
        encoding: Literal["multi_hot", "sequence"] = "multi_hot",
        maxlen: int | None = None,
        reverse: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if num_words < 4:
            raise ConfigError(f"data.num_words must be >= 4 (0-2 are pad, start, OOV), got {num_words}")
        if encoding not in ("multi_hot", "sequence"):
            raise ConfigError(f"data.encoding must be multi_hot or sequence, got {encoding!r}")
        if maxlen is not None and maxlen < 1:
            raise ConfigError(f"data.maxlen must be >= 1 or null, got {maxlen}")
        if reverse and encoding != "sequence":
            raise ConfigError("data.reverse=true reverses word order, which only data.encoding=sequence keeps")
        self.num_words, self.encoding, self.maxlen, self.reverse = num_words, encoding, maxlen, reverse
        # the base class applies `batch_transform` to every batch when it is set
        self.batch_transform = self._multi_hot_batch if encoding == "multi_hot" else None

    def inputs(self, indices: Ragged, presorted: bool = False) -> torch.Tensor:
        """Keras indices (already `keras_encode`d) -> the stored x of this encoding.

        `presorted`: `keras_encode`d `Ragged.distinct` rows (saves a sort; see `index_sets`).
        """
        if self.encoding == "multi_hot":
            return index_sets(indices, self.num_words, presorted)
        if self.reverse:
            indices = indices.reversed()
        return torch.from_numpy(pad_sequences(indices, self.maxlen, dtype=np.int64))

    def _multi_hot_batch(self, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        return (multi_hot(batch[0], self.num_words), *batch[1:])


def synthetic_documents(
    n: int,
    labels: np.ndarray,
    num_classes: int,
    num_words: int,
    mean_length: float,
    rng: np.random.Generator,
) -> Ragged:
    """Keras-encoded fake documents with a learnable signal, for tests without the data.

    Word ranks follow a Zipf-like law (index rank + 3, and 2 past num_words: ~6% OOV at 10,000),
    every document starts with 1, lengths are log-normal around `mean_length`; each class has 20 marker words of its own
    (mid-frequency ranks, fixed for given sizes) that make up ~5% of its documents' words.
    """
    lengths = np.clip(rng.lognormal(np.log(mean_length), 0.6, n), 10, 8 * mean_length).astype(np.int64)
    total = int(lengths.sum())
    ranks = np.floor(rng.random(total) ** (-1 / 0.3))  # Zipf-like, P(rank > r) = r^-0.3; numpy's zipf is slower
    words = np.minimum(ranks, num_words).astype(np.int64) + 3  # rank r -> index r + 3, as keras_encode
    words[words >= num_words] = 2
    pool = np.arange(min(50, num_words // 2), min(num_words, 2050))
    # the same markers in every call (train and test), whatever `rng` is
    markers = np.random.default_rng(0).choice(pool, size=(num_classes, 20), replace=len(pool) < num_classes * 20)
    row = np.repeat(np.arange(n), lengths)
    marked = rng.random(total) < 0.05
    words[marked] = markers[np.asarray(labels, dtype=np.int64)[row[marked]], rng.integers(0, 20, int(marked.sum()))]
    words[np.concatenate(([0], np.cumsum(lengths)[:-1]))] = 1
    offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    return Ragged(words.astype(np.int64), offsets)


def load_object_npz(path: Path, dataset: str, keys: Sequence[str], allow_unverified: bool) -> dict[str, np.ndarray]:
    """Read a Keras text npz, whose ragged lists are pickled object arrays, only when that is safe.

    Unpickling runs code chosen by whoever wrote the file, so the file must be one whose sha256 is
    recorded for `dataset` in `dlwp.data.registry` (canonical or variant), or the user must opt in.
    """
    from dlwp.data.registry import DATASETS

    digest = sha256_file(path)
    known = set()
    for spec in DATASETS[dataset].files if dataset in DATASETS else ():
        if spec.path.endswith(".npz"):
            known |= {spec.sha256, *(v.sha256 for v in spec.variants)} - {None}
    if digest not in known and not allow_unverified:
        raise DataMissingError(
            f"{dataset}: {path} stores its sequences as pickled Python objects, and its sha256 ({digest}) "
            f"matches no copy of it recorded in dlwp.data.registry, so loading it could run arbitrary code. "
            f"Get a verified copy (`dlwp data fetch {dataset}`), or, if you trust this file, "
            f"set data.allow_unverified_pickle=true."
        )
    try:
        with np.load(path, allow_pickle=True) as npz:
            return {key: npz[key] for key in keys}
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as err:
        raise DataMissingError(
            f"{dataset}: {path} is corrupt or not the expected format ({err}); expected arrays "
            f"{', '.join(keys)}. Replace it with a good copy."
        ) from err


def read_npz_cache(path: Path, key: str, dataset: str) -> dict[str, np.ndarray] | None:
    """The arrays cached at `path` under `key`, or None when absent, stale or unreadable (then the
    caller rebuilds them; an unreadable file gets a warning). No pickles are ever loaded."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            if str(npz["key"]) != key:
                return None
            return {name: npz[name] for name in npz.files if name != "key"}
    except (OSError, ValueError, KeyError, EOFError) as err:
        warnings.warn(f"{dataset}: ignoring unreadable cache {path} ({err}); rebuilding it", stacklevel=3)
        return None


def write_npz_cache(path: Path, key: str, arrays: dict[str, np.ndarray], dataset: str) -> None:
    """Write atomically (tmp file + rename), so a crash or a concurrent run never leaves half a
    cache; a data root that cannot be written only costs a rebuild next time (with a warning)."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=path.name, suffix=".tmp", delete=False) as fh:
            tmp = Path(fh.name)
            np.savez(fh, key=np.array(key), **arrays)
        tmp.chmod(0o644)  # NamedTemporaryFile makes it 0600; others using the data root may read it
        os.replace(tmp, path)
    except OSError as err:
        warnings.warn(f"{dataset}: cannot write the cache {path} ({err}); it will be rebuilt next time", stacklevel=3)
        if tmp is not None:
            tmp.unlink(missing_ok=True)
