"""IMDB reviews (book 3.5, 4.4, 6.x) as Keras `imdb.load_data` gives them, built from the raw reviews.

Keras' pre-tokenised `imdb.npz` is used when present (`npz`). Without it, the 50,000 labelled
reviews of `aclImdb_v1.tar.gz` (or its labelled-only re-pack) are tokenised here, straight from
the tar, into the same kind of sequences:

- words: Keras `text_to_word_sequence` (lower-case, punctuation -> space, `<br />` -> `br`), then
  each word -> its rank in Keras' `imdb_word_index.json` (the file `imdb.npz` was made with).
  Words missing from the index are **dropped** (0.54% of the tokens, mostly rare names such as
  "ponyo"): they have no rank to encode, and OOV (2) keeps its Keras meaning, "a rank beyond
  `num_words`".
- so the vocabulary ranks and the `[1] + [rank + 3]`, ranks >= num_words -> 2 encoding are those
  of `imdb.npz`; the tokens are not verified identical to it, and the **document order differs**:
  the npz's original order is unknown, so documents are taken as neg then pos within each split,
  by review id (`<id>_<rating>.txt`), which is deterministic for any copy of the tar.
- then the Keras 2.0.8 shuffle the book ran: `RandomState(113)` permutation of the training set
  and, as 2.0.8 reseeds with `seed * 2` for the test set, `RandomState(226)` for the test set.
  (Current Keras continues the seed-113 generator instead: another test order, same metrics.)
- labels: pos = 1, neg = 0, float32 (the book's `astype('float32')`).

Tokenising takes ~12 s (2 cores), so its result (word ranks in file order, independent of
`num_words`) is cached as an npz whose name holds the sha256 of both source files and
`PREPARATION_VERSION`: a changed source or a changed recipe can never meet a stale cache.
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import torch

from dlwp.data.base import Split, check_target_names, make_targets, require_file
from dlwp.data.text import (
    KERAS_SEED,
    Ragged,
    WordIndexDataModule,
    keras_encode,
    keras_permutation,
    load_object_npz,
    read_npz_cache,
    sha256_file,
    synthetic_documents,
    text_to_word_sequence,
    write_npz_cache,
)
from dlwp.errors import DataMissingError

PREPARATION_VERSION = 2
"""Bump whenever tokenising, document order or what is kept changes: it is part of the cache key.
2: each review's 1-10 rating (from its file name) is kept too."""
REVIEWS_PER_SPLIT = 25000
TEST_SEED = 2 * KERAS_SEED
"""Keras 2.0.8 shuffles the test set with `np.random.seed(seed * 2)`."""
_MEMBER = re.compile(r"^(?:\./)?aclImdb/(train|test)/(neg|pos)/(\d+)_(\d+)\.txt$")
_SPLITS = ("train", "test")


class Reviews(NamedTuple):
    """One split as prepared: word ranks, 0/1 labels, each review's distinct ranks (for multi-hot)
    and its 1-10 rating (None for Keras' imdb.npz, which has no ratings)."""

    ranks: Ragged
    labels: np.ndarray
    distinct: Ragged | None = None
    ratings: np.ndarray | None = None


TARGETS = {
    "sentiment": lambda labels, ratings: torch.from_numpy(labels.astype(np.float32)),  # 0/1, as the book
    # stars - 5.5: centred, so a regression head starts at the middle of the scale, not 5.5 stars
    # off (4 epochs of RMSprop would not move its bias that far); errors are in stars all the same
    "rating": lambda labels, ratings: torch.from_numpy(ratings.astype(np.float32) - 5.5),
    "rating_class": lambda labels, ratings: torch.from_numpy(ratings.astype(np.int64) - 1),  # 0-9
}


class IMDBDataModule(WordIndexDataModule):
    """25,000 train / 25,000 test reviews with Keras `imdb.load_data(num_words)` indices; see the module doc.

    Args:
        word_index: Keras' `imdb_word_index.json` (word -> frequency rank, 1 = most frequent).
        reviews: `aclImdb_v1.tar.gz` or its labelled-only re-pack; read in place (`train/unsup`
            is ignored), never extracted.
        npz: Keras' pre-tokenised `imdb.npz`; used instead of the two files above when it exists.
        num_words, encoding, maxlen: see `WordIndexDataModule`.
        targets: `sentiment` (0/1, the book's), or `rating` (each review's 1-10 stars, from its
            file name, minus 5.5: centred for a regression head, errors still in stars) /
            `rating_class` (the rating as 10 classes, 0-9), or a list of these for a multi-output
            task (named targets). Ratings need the raw reviews, not `imdb.npz`.
        cache_dir: where tokenised reviews are cached; None: `.cache/` beside `reviews`. When it
            is not writable the reviews are tokenised on every load (with a warning).
        allow_unverified_pickle: `imdb.npz` stores pickled objects; load one whose sha256 is not
            recorded in the registry only when this is true.
        **kwargs: see `InMemoryDataModule`.
    """

    dataset = "imdb"

    def __init__(
        self,
        word_index: str,
        reviews: str,
        npz: str | None = None,
        num_words: int = 10000,
        encoding: Literal["multi_hot", "sequence"] = "multi_hot",
        maxlen: int | None = None,
        cache_dir: str | None = None,
        allow_unverified_pickle: bool = False,
        targets: Any = "sentiment",
        **kwargs,
    ) -> None:
        super().__init__(num_words=num_words, encoding=encoding, maxlen=maxlen, **kwargs)
        self.targets_spec = check_target_names(targets, TARGETS)
        self.word_index, self.reviews = Path(word_index), Path(reviews)
        self.npz = Path(npz) if npz is not None else None
        self.cache_dir = Path(cache_dir) if cache_dir is not None else self.reviews.parent / ".cache"
        self.allow_unverified_pickle = allow_unverified_pickle

    def _use_npz(self) -> bool:
        return self.npz is not None and self.npz.is_file()

    def files(self) -> list[Path]:
        return [self.npz] if self._use_npz() else [self.word_index, self.reviews]

    def reviews_by_split(self) -> dict[str, Reviews]:
        """Word ranks and 0/1 labels per split, unshuffled: the content of `imdb.npz`."""
        if self._use_npz():
            keys = ("x_train", "y_train", "x_test", "y_test")
            arrays = load_object_npz(self.npz, "imdb", keys, self.allow_unverified_pickle)
            return {s: Reviews(Ragged.from_lists(arrays[f"x_{s}"]), arrays[f"y_{s}"].astype(np.int8)) for s in _SPLITS}
        return prepare_reviews(self.word_index, self.reviews, self.cache_dir)

    def load(self) -> dict[str, Split]:
        data = self.reviews_by_split()
        splits = {}
        for split, seed in (("train", KERAS_SEED), ("test", TEST_SEED)):
            reviews = data[split]
            if len(reviews.ranks) != REVIEWS_PER_SPLIT:
                source = self.npz if self._use_npz() else self.reviews
                raise DataMissingError(
                    f"imdb: {source} holds {len(reviews.ranks)} {split} reviews, expected {REVIEWS_PER_SPLIT}; "
                    "it is incomplete. Replace it with a good copy (`dlwp data fetch imdb`)."
                )
            order = keras_permutation(REVIEWS_PER_SPLIT, seed)
            # multi-hot needs only each review's distinct words: fewer to shuffle, encode and pack
            distinct = self.encoding == "multi_hot" and reviews.distinct is not None
            ranks = reviews.distinct if distinct else reviews.ranks
            x = self.inputs(keras_encode(ranks.take(order), self.num_words), presorted=distinct)
            splits[split] = (
                x,
                self._targets(reviews.labels[order], None if reviews.ratings is None else reviews.ratings[order]),
            )
        return splits

    def _targets(self, labels: np.ndarray, ratings: np.ndarray | None):
        names = [self.targets_spec] if isinstance(self.targets_spec, str) else self.targets_spec
        if ratings is None and any(n.startswith("rating") for n in names):
            raise DataMissingError(
                f"imdb: data.targets={self.targets_spec} needs each review's rating, which {self.npz} does not hold: "
                "ratings come from the raw reviews' file names (set data.npz=null to read the raw reviews)"
            )
        return make_targets(self.targets_spec, TARGETS, labels, ratings)

    def synthetic(self) -> dict[str, Split]:
        """25,000/25,000 balanced reviews of ~230 words (log-normal, 10-1,840), marker words per label."""
        rng = np.random.default_rng(1234)
        splits = {}
        for split in _SPLITS:
            labels = rng.permutation(np.repeat([0, 1], REVIEWS_PER_SPLIT // 2))
            docs = synthetic_documents(REVIEWS_PER_SPLIT, labels, 2, self.num_words, 230.0, rng)
            ratings = np.where(labels == 1, rng.integers(7, 11, len(labels)), rng.integers(1, 5, len(labels)))
            splits[split] = (self.inputs(docs), self._targets(labels, ratings))
        return splits


def prepare_reviews(word_index: Path, reviews: Path, cache_dir: Path | None) -> dict[str, Reviews]:
    """`tokenise_reviews`, through a cache keyed by the sources' sha256 and `PREPARATION_VERSION`."""
    require_file(word_index, "imdb")
    require_file(reviews, "imdb")
    if cache_dir is None:
        return tokenise_reviews(word_index, reviews)
    key = hashlib.sha256(
        f"imdb-reviews v{PREPARATION_VERSION}\n{sha256_file(word_index)}\n{sha256_file(reviews)}".encode()
    ).hexdigest()
    cache = Path(cache_dir) / f"imdb_reviews_{key[:20]}.npz"
    cached = _read_cache(cache, key)
    if cached is not None:
        return cached
    data = tokenise_reviews(word_index, reviews)
    _write_cache(cache, key, data)
    return data


def iter_reviews(reviews: Path) -> Iterator[tuple[str, bool, int, int, list[str]]]:
    """(split, positive, review id, rating, words) of every labelled review in the aclImdb tar, in
    the tar's order; words by Keras' `text_to_word_sequence`. A corrupt tar is named."""
    try:
        with tarfile.open(reviews, "r:gz") as tar:
            for member in tar:
                match = _MEMBER.match(member.name)
                if match is None or not member.isfile():
                    continue
                split, sentiment, review_id, rating = match.groups()
                text = tar.extractfile(member).read().decode("utf-8")
                yield split, sentiment == "pos", int(review_id), int(rating), text_to_word_sequence(text)
    except (tarfile.TarError, EOFError, zlib.error, OSError, UnicodeDecodeError) as err:
        raise DataMissingError(
            f"imdb: {reviews} is corrupt or not the aclImdb tarball ({err}). Replace it with a good copy."
        ) from err


def tokenise_reviews(word_index: Path, reviews: Path) -> dict[str, Reviews]:
    """Ranks of every labelled review, per split: neg then pos, each by review id; see the module doc."""
    index = read_word_index(word_index)
    found: dict[str, list[tuple[bool, int, list[int], int]]] = {s: [] for s in _SPLITS}
    for split, positive, review_id, rating, words in iter_reviews(reviews):
        found[split].append((positive, review_id, [r for r in map(index.get, words) if r is not None], rating))
    out = {}
    for split, docs in found.items():
        docs.sort(key=lambda d: (d[0], d[1]))
        labels = np.fromiter((d[0] for d in docs), dtype=np.int8, count=len(docs))
        ranks = Ragged.from_lists([d[2] for d in docs], dtype=np.int32)
        ratings = np.fromiter((d[3] for d in docs), dtype=np.int8, count=len(docs))
        out[split] = Reviews(ranks, labels, ranks.distinct(), ratings)
    return out


def read_word_index(path: Path) -> dict[str, int]:
    require_file(path, "imdb")
    try:
        index = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(index, dict) or not all(isinstance(r, int) for r in index.values()):
            raise ValueError("not a mapping of words to integer ranks")
    except (ValueError, UnicodeDecodeError) as err:
        raise DataMissingError(f"imdb: {path} is not a Keras word index ({err}). Replace it with a good copy.") from err
    return index


def _read_cache(path: Path, key: str) -> dict[str, Reviews] | None:
    arrays = read_npz_cache(path, key, "imdb")
    if arrays is None:
        return None
    try:
        return {
            s: Reviews(
                Ragged(arrays[f"{s}_values"], arrays[f"{s}_offsets"]),
                arrays[f"{s}_labels"],
                Ragged(arrays[f"{s}_distinct_values"], arrays[f"{s}_distinct_offsets"]),
                arrays[f"{s}_ratings"],
            )
            for s in _SPLITS
        }
    except KeyError as err:
        warnings.warn(f"imdb: ignoring unreadable cache {path} (no {err}); rebuilding it", stacklevel=3)
        return None


def _write_cache(path: Path, key: str, data: dict[str, Reviews]) -> None:
    arrays: dict[str, np.ndarray] = {}
    for split, (ranks, labels, distinct, ratings) in data.items():
        arrays |= {f"{split}_values": ranks.values, f"{split}_offsets": ranks.offsets, f"{split}_labels": labels,
                   f"{split}_ratings": ratings}  # fmt: skip
        arrays |= {f"{split}_distinct_values": distinct.values, f"{split}_distinct_offsets": distinct.offsets}
    write_npz_cache(path, key, arrays, "imdb")
