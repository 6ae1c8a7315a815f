"""Keras `reuters.npz` rebuilt from the raw Reuters-21578 SGML, with Keras' own recipe.

Keras never published how `reuters.npz` was made beyond its old `make_reuters_dataset`; this is
that recipe: read `reut2-000.sgm` ... `reut2-021.sgm` in order; for every `<TOPICS>` element that
is not empty take its first topic and the text of the `<BODY>` that follows; keep the topics
with at least 15 wires, numbered in order of first appearance; fit a default Keras `Tokenizer`
on the kept bodies (word ranks by count, ties in order of first appearance) and turn each body
into its ranks. The result is 11,228 wires, 46 topics and 30,979 words, as in the Keras file, and
equal, array for array, to the shared mirror's `reuters_rebuilt.npz`; it differs from the Keras
file only in the ranks of some words with tied counts (docs/DATA.md).

Building takes ~2 s on 2 cores and is cached beside the archive, keyed by its sha256 and
`RECIPE_VERSION`.
"""

from __future__ import annotations

import hashlib
import re
import tarfile
import zlib
from pathlib import Path

import numpy as np

from dlwp.data.base import require_file
from dlwp.data.text import Ragged, read_npz_cache, text_to_word_sequence, write_npz_cache
from dlwp.errors import DataMissingError
from dlwp.record import sha256_file

RECIPE_VERSION = 1
"""Bump whenever parsing, filtering or tokenising changes: it is part of the cache key."""
MIN_WIRES_PER_TOPIC = 15
_SGML = re.compile(r"(?:^|/)reut2-(\d{3})\.sgm$")


def parse_wires(sgml: str) -> list[tuple[str, str]]:
    """(first topic, body) of every wire with a non-empty `<TOPICS>`, as Keras' recipe scans them.

    The scan is Keras' string search, not an SGML parser: after each `<TOPICS>`, the topic is the
    text up to the next `</` (so `<D>a</D><D>b</D>` gives `a`), and the body is the text between
    the next `<BODY>` and the `</` after it (for a wire without a body that is the next wire's
    body, exactly as Keras' search found it).
    """
    wires = []
    tag, body_tag = "<TOPICS>", "<BODY>"
    position = sgml.find(tag)
    while position >= 0:
        rest = sgml[position + len(tag) :]
        topics = rest[: rest.find("</")]
        if topics:
            body = rest[rest.find(body_tag) + len(body_tag) :]
            wires.append((topics.replace("<D>", "", 1), body[: body.find("</")]))
        position = sgml.find(tag, position + len(tag))
    return wires


def wire_titles(sgml: str) -> list[str]:
    """The `<TITLE>` of each wire `parse_wires` returns, in the same order: the first title after
    the wire's `<TOPICS>` and before the body that scan found; "" for a wire without one."""
    titles = []
    tag = "<TOPICS>"
    position = sgml.find(tag)
    while position >= 0:
        rest = sgml[position + len(tag) :]
        if rest[: rest.find("</")]:
            body, title = rest.find("<BODY>"), rest.find("<TITLE>")
            found = 0 <= title < (body if body >= 0 else len(rest))
            titles.append(rest[title + 7 : rest.find("</TITLE>", title)] if found else "")
        position = sgml.find(tag, position + len(tag))
    return titles


def title_ranks(archive: Path, word_index: dict[str, int]) -> Ragged:
    """The kept wires' titles (same wires and order as `build`), as ranks of `build`'s word index
    (the bodies' vocabulary; a title word no body has is dropped)."""
    texts = read_texts(archive)
    wires = [wire for number in sorted(texts) for wire in parse_wires(texts[number])]
    titles = [title for number in sorted(texts) for title in wire_titles(texts[number])]
    counts: dict[str, int] = {}
    for topic, _ in wires:
        counts[topic] = counts.get(topic, 0) + 1
    kept = [title for (topic, _), title in zip(wires, titles, strict=True) if counts[topic] >= MIN_WIRES_PER_TOPIC]
    return Ragged.from_lists([[word_index[w] for w in text_to_word_sequence(t) if w in word_index] for t in kept],
                             dtype=np.int32)  # fmt: skip


def read_texts(archive: Path) -> dict[int, str]:
    """`reut2-NNN.sgm` number -> its text, all 22 of them, from the Reuters-21578 tarball."""
    require_file(archive, "reuters")
    texts: dict[int, str] = {}
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                match = _SGML.search(member.name)
                if match and member.isfile():
                    texts[int(match.group(1))] = tar.extractfile(member).read().decode("latin-1")
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise DataMissingError(f"reuters: {archive} is corrupt or not a tarball ({err}). Replace it.") from err
    if sorted(texts) != list(range(22)):
        raise DataMissingError(
            f"reuters: {archive} holds {len(texts)} of the 22 files reut2-000.sgm ... reut2-021.sgm; "
            "it is not the Reuters-21578 distribution. Replace it with a good copy."
        )
    return texts


def build(archive: Path) -> tuple[Ragged, np.ndarray, dict[str, int]]:
    """(word ranks per wire, topic ids, word index) from the Reuters-21578 tarball."""
    texts = read_texts(archive)
    wires = [wire for number in sorted(texts) for wire in parse_wires(texts[number])]
    counts: dict[str, int] = {}
    for topic, _ in wires:
        counts[topic] = counts.get(topic, 0) + 1
    topic_ids: dict[str, int] = {}
    labels, bodies = [], []
    for topic, body in wires:
        if counts[topic] >= MIN_WIRES_PER_TOPIC:
            labels.append(topic_ids.setdefault(topic, len(topic_ids)))
            bodies.append(text_to_word_sequence(body))
    word_counts: dict[str, int] = {}  # insertion-ordered: ties keep their first appearance
    for words in bodies:
        for word in words:
            word_counts[word] = word_counts.get(word, 0) + 1
    ranked = sorted(word_counts.items(), key=lambda item: item[1], reverse=True)  # stable, as Keras'
    word_index = {word: rank for rank, (word, _) in enumerate(ranked, start=1)}
    ranks = Ragged.from_lists([[word_index[w] for w in words] for words in bodies], dtype=np.int32)
    return ranks, np.asarray(labels, dtype=np.int64), word_index


def prepare(archive: Path, cache_dir: Path | None) -> tuple[Ragged, np.ndarray]:
    """`build`'s ranks and labels, through a cache keyed by the archive's sha256 and the recipe."""
    require_file(archive, "reuters")
    if cache_dir is None:
        ranks, labels, _ = build(archive)
        return ranks, labels
    key = hashlib.sha256(f"reuters-sgml v{RECIPE_VERSION}\n{sha256_file(archive)}".encode()).hexdigest()
    cache = Path(cache_dir) / f"reuters_wires_{key[:20]}.npz"
    cached = read_npz_cache(cache, key, "reuters")
    if cached is not None and {"values", "offsets", "labels"} <= cached.keys():
        return Ragged(cached["values"], cached["offsets"]), cached["labels"]
    ranks, labels, _ = build(archive)
    write_npz_cache(cache, key, {"values": ranks.values, "offsets": ranks.offsets, "labels": labels}, "reuters")
    return ranks, labels
