"""GloVe word vectors (book 6.1c) into an embedding matrix for a vocabulary.

Reads `glove.6B.<d>d.txt` (one word and its d floats per line) plain, gzipped, or inside
`glove.6B.zip`. Row i of the matrix is the vector of the word whose index is i; words GloVe does
not know keep a zero row, as the book's `embedding_matrix` does (row 0, padding, stays zero too).
"""

from __future__ import annotations

import gzip
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from dlwp.errors import DataMissingError


def _lines(path: Path, dim: int) -> Iterator[str]:
    if path.suffix == ".zip":
        member = f"glove.6B.{dim}d.txt"
        with zipfile.ZipFile(path) as archive:
            if member not in archive.namelist():
                raise DataMissingError(f"glove: {path} has no {member} (it holds {', '.join(archive.namelist())})")
            with archive.open(member) as raw:
                yield from io.TextIOWrapper(raw, encoding="utf-8")
    elif path.suffix == ".gz":
        with gzip.open(path, "rt", encoding="utf-8") as f:
            yield from f
    else:
        with path.open(encoding="utf-8") as f:
            yield from f


def embedding_matrix(path: Path, word_index: dict[str, int], num_words: int, dim: int) -> tuple[np.ndarray, int]:
    """`[num_words, dim]` float32: GloVe's vector of every word with index < num_words, zero
    elsewhere; and how many of those words GloVe had."""
    path = Path(path)
    if not path.is_file():
        raise DataMissingError(f"glove: {path} does not exist; `dlwp data fetch glove` gets glove.6B.zip (822 MB)")
    matrix = np.zeros((num_words, dim), dtype=np.float32)
    found = 0
    try:
        for number, line in enumerate(_lines(path, dim), start=1):
            word, _, rest = line.rstrip("\n").partition(" ")
            index = word_index.get(word)
            if index is None or index >= num_words:
                continue
            values = rest.split(" ")
            if len(values) != dim:
                raise DataMissingError(
                    f"glove: {path} line {number} ({word!r}) has {len(values)} values, expected {dim}: "
                    f"a {len(values)}-d file, or data.glove_dim is wrong"
                )
            try:
                matrix[index] = np.asarray(values, dtype=np.float32)
            except ValueError as err:
                raise DataMissingError(f"glove: {path} line {number} ({word!r}) is malformed: {err}") from err
            found += 1
    except (OSError, EOFError, zipfile.BadZipFile, UnicodeDecodeError) as err:
        raise DataMissingError(f"glove: {path} is unreadable or corrupt ({err}); replace it") from err
    return matrix, found
