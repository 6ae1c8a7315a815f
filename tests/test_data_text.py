"""Text datasets (IMDB, Reuters) and Boston housing: Keras 2.0.8 loader semantics, compact multi-hot
storage, synthetic sources with a learnable signal, and the book's facts on the real mirror."""

from __future__ import annotations

import io
import json
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import MIRROR
from dlwp.data import imdb as imdb_module
from dlwp.data.boston import BostonHousingDataModule
from dlwp.data.imdb import IMDBDataModule, prepare_reviews
from dlwp.data.reuters import ReutersDataModule
from dlwp.data.text import (
    PAD,
    Ragged,
    index_sets,
    keras_encode,
    keras_permutation,
    multi_hot,
    pad_sequences,
    text_to_word_sequence,
)
from dlwp.errors import ConfigError, DataMissingError


# -- Keras 2.0.8, transcribed: the reference the vectorised code must match -------------------------
def keras_pad_sequences(sequences, maxlen=None, padding="pre", truncating="pre", value=0):
    maxlen = max(len(s) for s in sequences) if maxlen is None else maxlen
    x = np.ones((len(sequences), maxlen), dtype=np.int64) * value
    for idx, s in enumerate(sequences):
        if not len(s):
            continue
        trunc = s[-maxlen:] if truncating == "pre" else s[:maxlen]
        if padding == "post":
            x[idx, : len(trunc)] = trunc
        else:
            x[idx, -len(trunc) :] = trunc
    return x


def keras_index(xs, num_words, start_char=1, oov_char=2, index_from=3):
    xs = [[start_char] + [w + index_from for w in x] for x in xs]
    return [[oov_char if w >= num_words else w for w in x] for x in xs]


def keras_shuffle(seed, *arrays):
    """2.0.8: reseed the global RNG and shuffle each array in place (global state restored after)."""
    state = np.random.get_state()
    try:
        for a in arrays:
            np.random.seed(seed)
            np.random.shuffle(a)
    finally:
        np.random.set_state(state)


def object_array(lists) -> np.ndarray:
    out = np.empty(len(lists), dtype=object)
    out[:] = [list(x) for x in lists]
    return out


# -- text utilities -----------------------------------------------------------------------------------
def test_text_to_word_sequence_is_keras():
    text = "This movie<br /><br />is GREAT! Isn't it?\tYes...it-is (10/10)"
    assert text_to_word_sequence(text) == [
        "this", "movie", "br", "br", "is", "great", "isn't", "it", "yes", "it", "is", "10", "10",
    ]  # fmt: skip
    # Keras splits on " " only: \t and \n are filters, but \r and non-breaking spaces stay in words
    assert text_to_word_sequence("a\rb  c\nd\xa0e") == ["a\rb", "c", "d\xa0e"]


def test_keras_encode_start_char_offset_and_oov():
    encoded = keras_encode([[1, 5, 9996, 9997, 20000], [], [7]], num_words=10000)
    assert encoded.tolist() == [[1, 4, 8, 9999, 2, 2], [1], [1, 10]]
    rng = np.random.default_rng(0)
    ranks = Ragged.from_lists([rng.integers(1, 30000, rng.integers(0, 50)).tolist() for _ in range(200)])
    encoded = keras_encode(ranks, num_words=10000)
    assert encoded.values.min() >= 1 and encoded.values.max() <= 9999
    assert encoded.tolist() == keras_index(ranks.tolist(), 10000)
    assert keras_encode([[1, 9997]], num_words=None).tolist() == [[1, 4, 10000]]
    assert keras_encode([[1, 9997, 2]], num_words=10000, oov_char=None).tolist() == [[1, 4, 5]]


@pytest.mark.parametrize("padding", ["pre", "post"])
@pytest.mark.parametrize("truncating", ["pre", "post"])
def test_pad_sequences_matches_keras(padding, truncating):
    rng = np.random.default_rng(1)
    seqs = [rng.integers(1, 100, rng.integers(0, 12)).tolist() for _ in range(300)]
    for maxlen in (None, 1, 5, 20):
        got = pad_sequences(seqs, maxlen, dtype=np.int64, padding=padding, truncating=truncating)
        assert np.array_equal(got, keras_pad_sequences(seqs, maxlen, padding, truncating))


def test_pad_sequences_defaults_keep_the_last_words():
    assert pad_sequences([[1, 2, 3, 4, 5], [6, 7], []], maxlen=3).tolist() == [[3, 4, 5], [0, 6, 7], [0, 0, 0]]
    assert pad_sequences([[1, 2, 3, 4, 5], [6, 7]]).dtype == np.int32  # Keras' default dtype


def test_ragged_take_distinct_where():
    r = Ragged.from_lists([[5, 3, 5, 1], [], [2, 2], [9]])
    assert r.take(np.array([3, 0, 1])).tolist() == [[9], [5, 3, 5, 1], []]
    assert r.distinct().tolist() == [[1, 3, 5], [], [2], [9]]
    assert r.where(r.values != 5).tolist() == [[3, 1], [], [2, 2], [9]]


def test_keras_permutation_is_the_2_0_8_reseed_and_shuffle():
    x = object_array([[i] * (i % 3) for i in range(1000)])
    y = np.arange(1000)
    expected_x, expected_y = x.copy(), y.copy()
    keras_shuffle(113, expected_x, expected_y)
    order = keras_permutation(1000)
    assert [list(v) for v in x[order]] == [list(v) for v in expected_x]
    assert np.array_equal(y[order], expected_y)


def test_multi_hot_exact_matrix():
    sets = index_sets(Ragged.from_lists([[1, 4, 4, 2], [3], [], [0, 5]]), num_words=6)
    assert sets.dtype == torch.int16 and (sets[2] == PAD).all()
    assert multi_hot(sets, 6).tolist() == [
        [0, 1, 1, 0, 1, 0],
        [0, 0, 0, 1, 0, 0],
        [0, 0, 0, 0, 0, 0],  # padding sets nothing, not even column 0
        [1, 0, 0, 0, 0, 1],  # a real index 0 does
    ]
    assert multi_hot(sets, 6).dtype == torch.float32


def test_multi_hot_equals_the_books_vectorize_sequences():
    rng = np.random.default_rng(2)
    ranks = Ragged.from_lists([rng.zipf(1.3, rng.integers(1, 80)).tolist() for _ in range(300)])
    encoded = keras_encode(ranks, num_words=1000)
    expected = np.zeros((300, 1000), dtype=np.float32)
    for i, seq in enumerate(encoded.tolist()):
        expected[i, seq] = 1.0  # book 3.5 `vectorize_sequences`
    assert np.array_equal(multi_hot(index_sets(encoded, 1000), 1000).numpy(), expected)
    presorted = index_sets(keras_encode(ranks.distinct(), num_words=1000), 1000, presorted=True)
    assert np.array_equal(multi_hot(presorted, 1000).numpy(), expected)


def test_index_sets_rejects_out_of_range_indices():
    with pytest.raises(ValueError, match="indices must lie in"):
        index_sets(Ragged.from_lists([[1, 10]]), num_words=10)


def test_bad_options_fail_at_construction():
    with pytest.raises(ConfigError, match="num_words"):
        ReutersDataModule(path="x.npz", num_words=3)
    with pytest.raises(ConfigError, match="test_split"):
        ReutersDataModule(path="x.npz", test_split=1.0)
    with pytest.raises(ConfigError, match="maxlen"):
        IMDBDataModule(word_index="w.json", reviews="r.tar.gz", encoding="sequence", maxlen=0)


# -- synthetic sources: real formats, learnable signal -------------------------------------------------
def nearest_mean_accuracy(dm, num_classes: int) -> float:
    """Class means of the (multi-hot) training batches; test accuracy of the nearest mean."""
    sums, counts = None, torch.zeros(num_classes)
    for x, y in dm._loader("train", train=True):
        one_hot = torch.nn.functional.one_hot(y.long(), num_classes).float()
        sums = one_hot.T @ x if sums is None else sums + one_hot.T @ x
        counts += one_hot.sum(0)
    means = sums / counts.clamp(min=1).unsqueeze(1)
    correct = total = 0
    for x, y in dm.test_dataloader():
        scores = 2 * x @ means.T - (means**2).sum(1)
        correct += (scores.argmax(1) == y.long()).sum().item()
        total += len(y)
    return correct / total


def test_synthetic_imdb_format_and_signal():
    dm = IMDBDataModule(word_index="absent.json", reviews="absent.tar.gz", source="synthetic", batch_size=1000)
    dm.setup()
    assert dm.data_files() == []
    (x, y), (x_test, y_test) = dm.splits["train"], dm.splits["test"]
    assert x.shape[0] == x_test.shape[0] == 25000 and x.dtype == torch.int16
    assert y.dtype == torch.float32 and y.sum() == 12500 and y_test.sum() == 12500
    real = x[x != PAD]
    assert real.min() == 1 and real.max() <= 9999 and (x == 1).any(1).all()
    batch_x, batch_y = next(iter(dm._loader("train", train=True)))
    assert batch_x.shape == (1000, 10000) and batch_x.dtype == torch.float32 and batch_y.shape == (1000,)
    small = IMDBDataModule(word_index="a", reviews="b", source="synthetic", subset=3000, eval_batch_size=1000)
    small.setup()
    assert nearest_mean_accuracy(small, 2) > 0.8  # chance: 0.5

    seq = IMDBDataModule(word_index="a", reviews="b", source="synthetic", encoding="sequence", maxlen=500)
    seq.setup()
    xs = seq.splits["train"][0]
    assert xs.shape == (25000, 500) and xs.dtype == torch.int64 and seq.batch_transform is None
    words = (xs > 0).sum(1)
    assert 150 < words.float().mean() < 350 and words.min() >= 10  # realistic review lengths
    short = words < 500  # not truncated: the start char 1 comes right after the padding
    assert (xs[short].gather(1, (500 - words[short]).unsqueeze(1)) == 1).all()


def test_synthetic_reuters_format_and_signal():
    dm = ReutersDataModule(path="absent.npz", source="synthetic", batch_size=1000, eval_batch_size=1000)
    dm.setup()
    assert dm.sizes() == {"train": 8982, "test": 2246}
    y = dm.splits["train"][1]
    assert y.dtype == torch.int64 and y.min() == 0 and y.max() == 45 and len(y.unique()) == 46
    assert nearest_mean_accuracy(dm, 46) > 0.5  # the most frequent class alone gives ~0.23


def test_synthetic_boston_format_and_signal():
    dm = BostonHousingDataModule(path="absent.npz", source="synthetic")
    dm.setup()
    (x, y), (x_test, y_test) = dm.splits["train"], dm.splits["test"]
    assert x.shape == (404, 13) and x_test.shape == (102, 13) and x.dtype == y.dtype == torch.float32
    assert y.shape == (404,) and y.min() >= 5 and y.max() <= 50
    assert torch.allclose(x.mean(0), torch.zeros(13), atol=1e-5)  # standardised with the train statistics
    assert torch.allclose(x.std(0, unbiased=False), torch.ones(13))
    design = torch.cat([x, torch.ones(404, 1)], 1).double()
    w = torch.linalg.lstsq(design, y.double().unsqueeze(1)).solution
    pred = (torch.cat([x_test, torch.ones(102, 1)], 1).double() @ w).squeeze(1)
    r2 = 1 - ((pred - y_test) ** 2).sum() / ((y_test - y_test.mean()) ** 2).sum()
    assert r2 > 0.5


# -- Reuters: the pickle gate and Keras semantics on a small file --------------------------------------
def write_reuters_like(path: Path, n: int = 50) -> tuple[list[list[int]], np.ndarray]:
    rng = np.random.default_rng(3)
    wires = [rng.integers(1, 40, rng.integers(1, 9)).tolist() for _ in range(n)]
    topics = rng.integers(0, 46, n)
    np.savez(path, x=object_array(wires), y=topics)
    return wires, topics


def test_unverified_pickle_is_refused_unless_allowed(tmp_path):
    path = tmp_path / "reuters.npz"
    wires, topics = write_reuters_like(path)
    with pytest.raises(DataMissingError, match=r"(?s)pickled.*sha256.*allow_unverified_pickle=true"):
        ReutersDataModule(path=str(path)).setup()
    dm = ReutersDataModule(path=str(path), num_words=20, encoding="sequence", allow_unverified_pickle=True)
    dm.setup()
    x, y = object_array(wires), topics.copy()
    keras_shuffle(113, x, y)
    n_train = int(50 * 0.8)
    encoded = keras_index(list(x), 20)
    assert torch.equal(dm.splits["train"][0], torch.from_numpy(keras_pad_sequences(encoded[:n_train])))
    assert torch.equal(dm.splits["test"][0], torch.from_numpy(keras_pad_sequences(encoded[n_train:])))
    assert dm.splits["train"][1].tolist() == y[:n_train].tolist()


def test_missing_reuters_says_how_to_get_it(tmp_path):
    with pytest.raises(DataMissingError, match="dlwp data fetch reuters"):
        ReutersDataModule(path=str(tmp_path / "reuters.npz")).setup()


# -- IMDB: tokenising the raw reviews, the cache, the npz path -----------------------------------------
WORD_INDEX = {"the": 1, "movie": 2, "br": 3, "is": 4, "great": 5, "isn't": 6, "bad": 7, "a": 8}


def write_tar(path: Path, reviews: dict[str, str]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, text in reviews.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.fixture
def tiny_imdb(tmp_path) -> tuple[Path, Path, dict[str, str]]:
    reviews = {
        "aclImdb/README": "not a review",
        "aclImdb/train/pos/10_8.txt": "The movie is GREAT!<br /><br />Isn't it?",
        "aclImdb/train/pos/2_9.txt": "A great movie",
        "aclImdb/train/neg/0_1.txt": "Bad, bad movie. Unknownword.",
        "aclImdb/train/unsup/0_0.txt": "the the the",
        "aclImdb/test/neg/5_2.txt": "the movie is bad",
        "aclImdb/test/pos/1_10.txt": "great",
    }
    (tmp_path / "imdb_word_index.json").write_text(json.dumps(WORD_INDEX))
    write_tar(tmp_path / "aclImdb_v1.tar.gz", reviews)
    return tmp_path / "imdb_word_index.json", tmp_path / "aclImdb_v1.tar.gz", reviews


def test_reviews_are_tokenised_in_a_fixed_order(tiny_imdb, tmp_path):
    word_index, tar, _ = tiny_imdb
    data = prepare_reviews(word_index, tar, cache_dir=None)
    # neg before pos, then by review id (2 before 10); unknown words dropped; unsup ignored
    assert data["train"].ranks.tolist() == [[7, 7, 2], [8, 5, 2], [1, 2, 4, 5, 3, 3, 6]]
    assert data["train"].labels.tolist() == [0, 1, 1]
    assert data["test"].ranks.tolist() == [[1, 2, 4, 7], [5]] and data["test"].labels.tolist() == [0, 1]
    assert data["train"].distinct.tolist() == [[2, 7], [2, 5, 8], [1, 2, 3, 4, 5, 6]]


def test_cache_is_used_and_a_changed_source_is_not_served_stale(tiny_imdb, tmp_path, monkeypatch):
    word_index, tar, reviews = tiny_imdb
    cache = tmp_path / "cache"
    first = prepare_reviews(word_index, tar, cache)
    assert len(list(cache.glob("imdb_reviews_*.npz"))) == 1 and not list(cache.glob("*.tmp"))

    def must_not_tokenise(*args):
        raise AssertionError("the cache should have been used")

    with monkeypatch.context() as m:
        m.setattr(imdb_module, "tokenise_reviews", must_not_tokenise)
        cached = prepare_reviews(word_index, tar, cache)
    assert cached["train"].ranks.tolist() == first["train"].ranks.tolist()

    write_tar(tar, reviews | {"aclImdb/test/pos/1_10.txt": "great great movie"})  # same name, new content
    changed = prepare_reviews(word_index, tar, cache)
    assert changed["test"].ranks.tolist() == [[1, 2, 4, 7], [5, 5, 2]]
    assert len(list(cache.glob("imdb_reviews_*.npz"))) == 2

    (tmp_path / "imdb_word_index.json").write_text(json.dumps(WORD_INDEX | {"great": 9}))
    assert prepare_reviews(word_index, tar, cache)["test"].ranks.tolist() == [[1, 2, 4, 7], [9, 9, 2]]


def test_unreadable_or_unwritable_cache_is_rebuilt_with_a_warning(tiny_imdb, tmp_path):
    word_index, tar, _ = tiny_imdb
    cache = tmp_path / "cache"
    expected = prepare_reviews(word_index, tar, cache)["train"].ranks.tolist()
    (cached,) = cache.glob("imdb_reviews_*.npz")
    cached.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable cache"):
        assert prepare_reviews(word_index, tar, cache)["train"].ranks.tolist() == expected
    (tmp_path / "a_file").write_text("")
    with pytest.warns(UserWarning, match="cannot write the cache"):
        assert prepare_reviews(word_index, tar, tmp_path / "a_file" / "cache")["train"].ranks.tolist() == expected


def test_incomplete_or_corrupt_reviews_are_named(tiny_imdb, tmp_path):
    word_index, tar, _ = tiny_imdb
    dm = IMDBDataModule(word_index=str(word_index), reviews=str(tar), cache_dir=str(tmp_path / "c"))
    with pytest.raises(DataMissingError, match="holds 3 train reviews, expected 25000"):
        dm.setup()
    tar.write_bytes(b"not a tarball")
    with pytest.raises(DataMissingError, match="corrupt or not the aclImdb tarball"):
        prepare_reviews(word_index, tar, None)
    with pytest.raises(DataMissingError, match="dlwp data fetch imdb"):
        prepare_reviews(tmp_path / "absent.json", tar, None)


def test_imdb_npz_follows_keras_2_0_8(tmp_path):
    """Keras' imdb.npz path: seed 113 for train, seed 226 for test (2.0.8), [1] + [r + 3], OOV 2."""
    rng = np.random.default_rng(4)
    raw = {s: [rng.integers(1, 30, rng.integers(1, 6)).tolist() for _ in range(25000)] for s in ("train", "test")}
    labels = {s: rng.integers(0, 2, 25000) for s in ("train", "test")}
    path = tmp_path / "imdb.npz"
    arrays = {f"x_{s}": object_array(raw[s]) for s in raw} | {f"y_{s}": labels[s] for s in raw}
    np.savez(path, **arrays)
    kwargs = {"word_index": "absent.json", "reviews": "absent.tar.gz", "npz": str(path), "num_words": 20}
    with pytest.raises(DataMissingError, match="pickled"):
        IMDBDataModule(**kwargs).setup()
    dm = IMDBDataModule(**kwargs, encoding="sequence", maxlen=8, allow_unverified_pickle=True)
    assert dm.files() == [path]
    dm.setup()
    for split, seed in (("train", 113), ("test", 226)):
        x, y = arrays[f"x_{split}"].copy(), arrays[f"y_{split}"].copy()
        keras_shuffle(seed, x, y)
        expected = keras_pad_sequences(keras_index(list(x), 20), maxlen=8)
        assert torch.equal(dm.splits[split][0], torch.from_numpy(expected))
        assert torch.equal(dm.splits[split][1], torch.from_numpy(y.astype(np.float32)))


# -- the real mirror: the book's facts -----------------------------------------------------------------
def mirror_file(relative: str) -> Path:
    path = MIRROR / relative
    if not path.is_file():
        pytest.skip(f"{path} not available")
    return path


def test_real_boston_housing_split_and_first_targets():
    path = mirror_file("boston_housing/boston_housing.npz")
    dm = BostonHousingDataModule(path=str(path), standardize=False)
    dm.setup()
    assert dm.sizes() == {"train": 404, "test": 102}
    (x, y), (_, y_test) = dm.splits["train"], dm.splits["test"]
    assert y[:3].tolist() == pytest.approx([15.2, 42.3, 50.0])  # book 3.7, Keras docs
    assert y_test[:3].tolist() == pytest.approx([7.2, 18.8, 19.0])
    first = [1.23247, 0.0, 8.14, 0.0, 0.538, 6.142, 91.7, 3.9769, 4.0, 307.0, 21.0, 396.9, 18.72]
    assert x[0].tolist() == pytest.approx(first, rel=1e-6)
    std = BostonHousingDataModule(path=str(path))
    std.setup()
    raw_train = x.double()
    expected = (dm.splits["test"][0].double() - raw_train.mean(0)) / raw_train.std(0, unbiased=False)
    assert torch.allclose(std.splits["test"][0].double(), expected, atol=1e-5)  # train statistics only
    assert torch.allclose(std.splits["train"][0].mean(0), torch.zeros(13), atol=1e-5)


@pytest.fixture(scope="session")
def reuters_path(tmp_path_factory) -> Path:
    """The mirror's rebuilt npz under the canonical name, as a symlink (recorded variant: no opt-in)."""
    source = mirror_file("reuters/reuters_rebuilt.npz")
    link = tmp_path_factory.mktemp("data") / "reuters" / "reuters.npz"
    link.parent.mkdir()
    link.symlink_to(source)
    return link


def test_real_reuters_split_classes_and_keras_indices(reuters_path):
    dm = ReutersDataModule(path=str(reuters_path))
    dm.setup()
    assert dm.sizes() == {"train": 8982, "test": 2246}
    (x, y), (x_test, y_test) = dm.splits["train"], dm.splits["test"]
    assert len(torch.cat([y, y_test]).unique()) == 46 and len(y.unique()) == 46 and y.max() == 45
    assert x.max() == 9999 and x_test.max() <= 9999
    with np.load(reuters_path, allow_pickle=True) as npz:  # Keras 2.0.8 load_data, transcribed
        xs, labels = npz["x"], npz["y"]
    keras_shuffle(113, xs, labels)
    encoded = keras_index(list(xs), 10000)
    assert y.tolist() == labels[:8982].tolist() and y_test.tolist() == labels[8982:].tolist()
    got = [sorted(v for v in row if v != PAD) for row in x.tolist() + x_test.tolist()]
    assert got == [sorted(set(s)) for s in encoded]
    seq = ReutersDataModule(path=str(reuters_path), encoding="sequence", maxlen=100)
    seq.setup()
    assert torch.equal(seq.splits["train"][0], torch.from_numpy(keras_pad_sequences(encoded[:8982], 100)))


def row(ragged, i: int) -> list[int]:
    return ragged.values[ragged.offsets[i] : ragged.offsets[i + 1]].tolist()


def test_reuters_rebuilt_from_the_raw_sgml_equals_the_keras_layout_npz(reuters_path, tmp_path):
    """The raw Reuters-21578 build (Keras' recipe) gives exactly the wires, topics and word index
    of the mirror's npz; through the data module, the same tensors as reading that npz."""
    from dlwp.data import reuters_raw

    archive = mirror_file("reuters/reuters21578.tar.gz")
    ranks, labels, word_index = reuters_raw.build(archive)
    with np.load(reuters_path, allow_pickle=True) as npz:
        xs, ys = npz["x"], npz["y"]
    assert (len(ranks), len(set(labels.tolist())), len(word_index)) == (11228, 46, 30979)
    assert labels.tolist() == ys.tolist()
    assert all(row(ranks, i) == list(xs[i]) for i in range(len(xs)))
    assert word_index == json.loads(mirror_file("reuters/reuters_word_index_rebuilt.json").read_text())
    link = tmp_path / "reuters21578.tar.gz"
    link.symlink_to(archive)
    from_raw = ReutersDataModule(path=str(reuters_path), raw=str(link), from_raw=True)
    from_npz = ReutersDataModule(path=str(reuters_path))
    from_raw.setup(), from_npz.setup()
    for split in ("train", "test"):
        assert all(torch.equal(a, b) for a, b in zip(from_raw.splits[split], from_npz.splits[split], strict=True))
    assert from_raw.data_files() == [link]
    assert list((tmp_path / ".cache").glob("reuters_wires_*.npz")), "the build is cached beside the archive"


def test_reuters_raw_recipe_first_topic_min_count_and_tie_order(tmp_path):
    """Keras' make_reuters_dataset on a generated Distribution: first topic of each wire, topics
    with >= 15 wires numbered by first appearance, word ranks by count with ties by appearance."""
    from dlwp.data import reuters_raw

    def wire(topics: str, body: str) -> str:
        return f'<REUTERS TOPICS="YES">\n<TOPICS>{topics}</TOPICS>\n<TEXT><BODY>{body}</BODY></TEXT>\n</REUTERS>\n'

    files = {n: "" for n in range(22)}
    files[0] = wire("<D>grain</D>", "zeta alpha zeta") + wire("", "no topic: skipped")
    files[1] = "".join(wire("<D>cocoa</D><D>grain</D>", "Alpha, beta!") for _ in range(15))
    files[2] = "".join(wire("<D>grain</D>", "beta zeta") for _ in range(14)) + wire("<D>rare</D>", "x")
    archive = tmp_path / "reuters21578.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for n, text in files.items():
            data = text.encode("latin-1")
            info = tarfile.TarInfo(f"reuters21578/reut2-{n:03d}.sgm")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    ranks, labels, word_index = reuters_raw.build(archive)
    assert labels.tolist() == [0] + [1] * 15 + [0] * 14, "grain first seen, cocoa second; 'rare' (1 wire) dropped"
    assert word_index == {"beta": 1, "zeta": 2, "alpha": 3}, "29 betas; 16 zetas tie 16 alphas: first seen first"
    assert row(ranks, 0) == [2, 3, 2] and row(ranks, 1) == [3, 1]
    (tmp_path / "broken.tar.gz").write_bytes(b"not a tarball")
    with pytest.raises(DataMissingError, match="corrupt or not a tarball"):
        reuters_raw.build(tmp_path / "broken.tar.gz")


@pytest.fixture(scope="session")
def imdb_dir(tmp_path_factory) -> Path:
    """imdb/ with symlinks to the mirror's word index and reviews; its cache lands in this tmp dir."""
    word_index = mirror_file("imdb/imdb_word_index.json")
    reviews = mirror_file("imdb/aclImdb_v1_labeled.tar.gz")
    folder = tmp_path_factory.mktemp("data") / "imdb"
    folder.mkdir()
    (folder / "imdb_word_index.json").symlink_to(word_index)
    (folder / "aclImdb_v1.tar.gz").symlink_to(reviews)
    return folder


def real_imdb(folder: Path, **kwargs) -> IMDBDataModule:
    return IMDBDataModule(
        word_index=str(folder / "imdb_word_index.json"),
        reviews=str(folder / "aclImdb_v1.tar.gz"),
        npz=str(folder / "imdb.npz"),  # absent: the raw reviews are used
        **kwargs,
    )


def test_real_imdb_sizes_indices_labels_and_cache(imdb_dir):
    start = time.perf_counter()
    dm = real_imdb(imdb_dir)
    dm.setup()
    prepared = time.perf_counter() - start
    assert dm.files() == [imdb_dir / "imdb_word_index.json", imdb_dir / "aclImdb_v1.tar.gz"]
    assert dm.sizes() == {"train": 25000, "test": 25000}
    (x, y), (x_test, y_test) = dm.splits["train"], dm.splits["test"]
    assert x.max() == 9999 and x_test.max() == 9999 and x[x != PAD].min() == 1  # book 3.5 cell 8: 9999
    assert y.sum() == 12500 and y_test.sum() == 12500 and y.dtype == torch.float32
    assert 0 < y[:100].sum() < 100  # shuffled, not 12,500 negatives first
    assert len(list((imdb_dir / ".cache").glob("imdb_reviews_*.npz"))) == 1

    start = time.perf_counter()
    again = real_imdb(imdb_dir)
    again.setup()
    cached = time.perf_counter() - start
    print(f"\nIMDB: prepared in {prepared:.1f} s, cached load {cached:.2f} s")
    assert cached < 2.0, f"cached load took {cached:.2f} s (target < 1 s)"
    for split in ("train", "test"):
        assert all(torch.equal(a, b) for a, b in zip(dm.splits[split], again.splits[split], strict=True))

    batch_x, _ = next(iter(again._loader("train", train=True)))
    assert batch_x.shape == (again.batch_size, 10000) and batch_x.dtype == torch.float32
    assert (batch_x[:, 1] == 1).all() and (batch_x[:, 0] == 0).all() and set(batch_x.unique().tolist()) == {0.0, 1.0}


def test_real_imdb_rows_are_the_keras_encoding_of_the_shuffled_reviews(imdb_dir):
    dm = real_imdb(imdb_dir, encoding="sequence", maxlen=200)
    dm.setup()
    reviews = prepare_reviews(imdb_dir / "imdb_word_index.json", imdb_dir / "aclImdb_v1.tar.gz", imdb_dir / ".cache")
    for split, seed in (("train", 113), ("test", 226)):
        ranks, labels, _, ratings = reviews[split]
        # aclImdb's file names: <id>_<rating>.txt, 1-4 for negative reviews and 7-10 for positive ones
        assert set(np.unique(ratings[labels == 1])) == {7, 8, 9, 10} and set(np.unique(ratings[labels == 0])) == {
            1,
            2,
            3,
            4,
        }
        order = keras_permutation(25000, seed)
        rows = [0, 1, 2, 12345, 24999]
        expected = keras_pad_sequences(keras_index([ranks[order[i]].tolist() for i in rows], 10000), 200)
        assert torch.equal(dm.splits[split][0][rows], torch.from_numpy(expected))
        assert dm.splits[split][1][rows].tolist() == labels[order[rows]].tolist()
    named = real_imdb(imdb_dir, encoding="sequence", maxlen=200, targets=["sentiment", "rating", "rating_class"])
    named.setup()
    y = named.splits["test"][1]
    assert torch.equal(y["sentiment"], dm.splits["test"][1]), "the same reviews in the same order"
    stars = y["rating"] + 5.5  # the rating target is centred
    assert torch.equal(y["rating_class"], stars.long() - 1) and torch.equal(y["sentiment"], (stars > 5).float())
