"""Chapter 8, 8.1: the character windows of Nietzsche's text, temperature sampling, the char-LSTM
task and `dlwp generate`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from conftest import MIRROR, dlwp, metric_rows, record, run_dirs
from dlwp.errors import ConfigError
from dlwp.sampling import next_codes, reweight, sample_text

NIETZSCHE = MIRROR / "nietzsche" / "nietzsche.txt"
needs_text = pytest.mark.skipif(not NIETZSCHE.is_file(), reason=f"the mirror's {NIETZSCHE} is absent")


@pytest.fixture(scope="module")
def text_data_dir(tmp_path_factory):
    if not NIETZSCHE.is_file():
        pytest.skip(f"the mirror's {NIETZSCHE} is absent")
    data_dir = tmp_path_factory.mktemp("data")
    (data_dir / "nietzsche").mkdir()
    (data_dir / "nietzsche" / "nietzsche.txt").symlink_to(NIETZSCHE)
    return data_dir


@needs_text
def test_windows_have_the_book_s_counts_and_index_the_text():
    from dlwp.data.nietzsche import CharWindowsDataModule

    dm = CharWindowsDataModule(path=str(NIETZSCHE), batch_size=128)
    dm.setup("fit")
    text = NIETZSCHE.read_text(encoding="utf-8").lower()
    starts, targets = dm.splits["train"]
    # the book prints: Corpus length: 600893, Number of sequences: 200278, Unique characters: 57
    assert (dm.corpus_length, len(starts), len(dm.chars)) == (600893, 200278, 57)
    assert dm.chars == sorted(set(text))
    windows, y = dm.batch_transform((starts[[0, 1, -1]], targets[[0, 1, -1]]))
    for row, start, target in zip(windows, starts[[0, 1, -1]].tolist(), y.tolist(), strict=True):
        assert "".join(dm.chars[c] for c in row.tolist()) == text[start : start + 60]
        assert dm.chars[target] == text[start + 60]
    assert starts[1] - starts[0] == 3 and int(starts[-1]) == len(text) - 60 - 1 - (len(text) - 61) % 3
    assert 2.5 < dm.baselines()["unigram_entropy"] < 3.5, "English letters: ~2.9 nats"


def test_reweighting_is_the_book_s_formula():
    p = torch.softmax(torch.randn(57, dtype=torch.float64), 0)
    logits = p.log() + 3.0  # any shift: softmax ignores it
    for t in (0.2, 0.5, 1.0, 1.2):
        book = np.exp(np.log(p.numpy()) / t)
        book /= book.sum()  # the book's sample(): log(preds) / T, exp, normalise
        np.testing.assert_allclose(reweight(logits, t).numpy(), book, rtol=1e-12)


class NextIsPlusOne(nn.Module):
    """A fixed "language model": the next code is most likely the last one plus 1 (mod 5)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(3.0))

    def forward(self, x):
        return self.scale * nn.functional.one_hot((x[:, -1] + 1) % 5, 5).float()


def test_temperature_zero_is_the_argmax_and_a_seed_fixes_the_text():
    vocabulary, net = list("abcde"), NextIsPlusOne()
    seed = torch.tensor([0, 1, 2])
    [greedy] = sample_text(net, seed, 12, [0.0], vocabulary, maxlen=3)
    assert greedy == "deabcdeabcde"
    a = sample_text(net, seed, 200, [1.0, 1.2], vocabulary, maxlen=3, seed=7)
    assert a == sample_text(net, seed, 200, [1.0, 1.2], vocabulary, maxlen=3, seed=7)
    assert a != sample_text(net, seed, 200, [1.0, 1.2], vocabulary, maxlen=3, seed=8)
    assert a[0] != greedy * 17, "at T = 1 not every draw is the argmax"
    low = next_codes(torch.tensor([[0.0, 5.0, 0.0]] * 2000), [0.2] * 2000, torch.Generator().manual_seed(0))
    assert (low == 1).float().mean() > 0.99, "a low temperature sharpens towards the argmax"
    with pytest.raises(ValueError, match="seed text has 2 characters; the model reads 3"):
        sample_text(net, seed[:2], 5, [1.0], vocabulary, maxlen=3)


def test_char_lstm_learns_below_the_unigram_entropy_and_generates(text_data_dir, tmp_path):
    """Book 8.1's network on 3,000 of the real windows, 4 epochs: the training loss falls below
    what predicting character frequencies gives; each epoch writes its samples; `dlwp generate`
    samples the checkpoint reproducibly."""
    dlwp("train", "task=nietzsche_char_lstm", f"paths.data_dir={text_data_dir}", "data.subset=3000",
         "trainer.max_epochs=4", "callbacks.samples.length=40", runs=tmp_path)  # fmt: skip
    (run_dir,) = run_dirs(tmp_path, "nietzsche_char_lstm")
    rows, rec = metric_rows(run_dir), record(run_dir)
    entropy = rec["baselines"]["unigram_entropy"]
    assert rows[-1]["train/loss"] < rows[0]["train/loss"] and rows[-1]["train/loss"] < entropy - 0.3
    samples = sorted((run_dir / "samples").glob("epoch_*.txt"))
    assert [p.name for p in samples] == [f"epoch_{e:03d}.txt" for e in range(1, 5)]
    lines = samples[-1].read_text(encoding="utf-8").splitlines()
    assert [ln for ln in lines if ln.startswith("------ temperature")] == [
        f"------ temperature: {t}" for t in (0.2, 0.5, 1.0, 1.2)
    ]
    gen = [f"ckpt_path={run_dir}", f"paths.data_dir={text_data_dir}", f"paths.runs_dir={tmp_path}", "length=50",
           "temperature=1.0", "seed=3"]  # fmt: skip
    first = dlwp("generate", *gen).stdout  # once as users run it; the rest in-process
    assert len(first.rstrip("\n")) == 60 + 50
    assert generate_in_process(*gen)["text"] == first.rstrip("\n")[60:], "the same seed, the same text"
    assert generate_in_process(*gen[:-1], "seed=4")["text"] != first.rstrip("\n")[60:]
    seeded = generate_in_process(*gen, "seed_text='" + "the " * 15 + "'")
    assert seeded["seed_text"] == "the " * 15
    with pytest.raises(ConfigError, match="seed_text has 5 characters"):
        generate_in_process(*gen, "seed_text=short")


def generate_in_process(*overrides: str) -> dict:
    from hydra import compose, initialize_config_dir

    from dlwp.config.schema import register
    from dlwp.generate import generate
    from dlwp.paths import conf_dir, register_resolvers

    register()
    register_resolvers()
    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        return generate(compose("generate", overrides=list(overrides)))


def test_generate_refuses_a_checkpoint_that_generates_nothing(tmp_path):
    dlwp("train", "task=digits_dense", "trainer.max_epochs=1", runs=tmp_path)
    (run_dir,) = run_dirs(tmp_path, "digits_dense")
    with pytest.raises(ConfigError, match="'digits_dense', which generates nothing"):
        generate_in_process(f"ckpt_path={run_dir}", f"paths.runs_dir={tmp_path}")
