"""Chapter 8, 8.1: the character windows of Nietzsche's text, temperature sampling, the char-LSTM
task and `dlwp generate`."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from conftest import MIRROR, dlwp, metric_rows, mirror_data_dir, record, run_dirs
from dlwp.errors import ConfigError
from dlwp.sampling import next_codes, reweight, sample_text

NIETZSCHE = MIRROR / "nietzsche" / "nietzsche.txt"
needs_text = pytest.mark.skipif(not NIETZSCHE.is_file(), reason=f"the mirror's {NIETZSCHE} is absent")


@pytest.fixture(scope="module")
def text_data_dir(tmp_path_factory):
    return mirror_data_dir(tmp_path_factory, "nietzsche/nietzsche.txt")


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
    # torch's fused LSTM (impl=torch, the same equations) halves the time; the Keras-equation loop
    # is trained in test_chapter6's synthetic-review tests
    dlwp("train", "task=nietzsche_char_lstm", f"paths.data_dir={text_data_dir}", "data.subset=3000",
         "trainer.max_epochs=4", "callbacks.samples.length=40", "model.layers.1.impl=torch", runs=tmp_path)  # fmt: skip
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


# -- 8.4: the VAE ---------------------------------------------------------------------------------


def test_vae_has_the_book_s_size_and_keras_same_padding():
    from dlwp.model.vae import VAE

    net = VAE([1, 28, 28])
    assert sum(p.numel() for p in net.parameters()) == 550_629, "the book's summary"
    x = torch.zeros(1, 1, 28, 28)
    x[..., 0, 0] = 1.0  # Keras' stride-2 'same' pads right/bottom only: output (0, 0) reads rows/columns 0-2
    conv1 = nn.functional.relu(net.encoder.conv1(x))
    out = net.encoder.conv2(nn.functional.pad(conv1, (0, 1, 0, 1)))
    assert out.shape[-2:] == (14, 14)
    assert net.decoder(torch.zeros(3, 2)).shape == (3, 1, 28, 28)
    # channels-last (the task's `trainer.channels_last`; the decoder converts its transposed
    # convolution's input to match): the same reconstruction as in NCHW
    z = torch.randn(4, 2)
    nchw = net.decoder(z)
    net.to(memory_format=torch.channels_last)
    nhwc = net.decoder(z)
    torch.testing.assert_close(nhwc, nchw, rtol=1e-5, atol=1e-5)


def test_vae_loss_is_the_book_s_and_sampling_follows_the_option():
    from dlwp.model.vae import VAE
    from dlwp.task.vae import VAETask

    task = VAETask(VAE([1, 28, 28]), seed=0)
    x = torch.rand(4, 1, 28, 28)
    outputs = {"logits": torch.randn(4, 1, 28, 28) * 3, "z_mean": torch.randn(4, 2), "z_log_var": torch.randn(4, 2)}
    p = torch.sigmoid(outputs["logits"]).clamp(1e-7, 1 - 1e-7).double().numpy().ravel()
    t = x.double().numpy().ravel()
    xent = -(t * np.log(p) + (1 - t) * np.log(1 - p)).mean()  # K.flatten + binary_crossentropy
    m, v = outputs["z_mean"].double().numpy(), outputs["z_log_var"].double().numpy()
    kl = -5e-4 * (1 + v - m**2 - np.exp(v)).mean(axis=-1)
    loss = task.objective(outputs, x, task.train_metrics)
    assert abs(float(loss) - (xent + kl).mean()) < 1e-5
    for sampling, std in (("book", 4.0), ("standard", 2.0)):  # z_log_var = log 4: exp(v) = 4, exp(v / 2) = 2
        net = VAE([1, 28, 28], sampling=sampling)
        # stubs: an encoder that ignores the pixels, a decoder that hands back the sampled z
        net.encoder.forward = lambda x: (torch.zeros(len(x), 2), torch.full((len(x), 2), math.log(4.0)))
        net.decoder = nn.Identity()
        z = [net(torch.zeros(20000, 1, 1, 1))["logits"]]
        assert abs(float(z[0].std()) - std) < 0.1


def test_mnist_vae_learns_draws_its_latent_grid_and_decodes_points(mnist_data_dir, tmp_path):
    """Book 8.4 on 2,000 real digits, 2 epochs: the validation loss falls below the loss of the
    mean training image (a reconstruction that ignores its input); figure 8.14's grid is written;
    `dlwp generate` decodes given latent points."""
    dlwp("train", "task=mnist_vae", f"paths.data_dir={mnist_data_dir}", "data.subset=2000", "trainer.max_epochs=2",
         runs=tmp_path)  # fmt: skip
    (run_dir,) = run_dirs(tmp_path, "mnist_vae")
    rows, rec = metric_rows(run_dir), record(run_dir)
    assert rows[-1]["val/loss"] < rows[0]["val/loss"]
    assert rec["metrics"]["best"]["val/loss"]["value"] < rec["baselines"]["mean_image_bce"] - 0.015
    from PIL import Image

    with Image.open(run_dir / "latent_grid.png") as grid:
        assert grid.size == (15 * 28, 15 * 28)
    out = generate_in_process(f"ckpt_path={run_dir}", f"paths.data_dir={mnist_data_dir}",
                              f"paths.runs_dir={tmp_path}", "latent=[[0,0],[1,-1],[-2,2]]",
                              f"out={tmp_path / 'decoded.png'}")  # fmt: skip
    with Image.open(out["image"]) as decoded:
        assert decoded.size == (3 * 28, 28)
    with pytest.raises(ConfigError, match="give points of 2 numbers each"):
        generate_in_process(f"ckpt_path={run_dir}", f"paths.runs_dir={tmp_path}", "latent=[[0,0,1]]")


# -- 8.5: the DCGAN ---------------------------------------------------------------------------------


def test_dcgan_networks_have_the_book_s_sizes_and_shapes():
    from dlwp.model.dcgan import DCGAN

    net = DCGAN()
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert (count(net.generator), count(net.discriminator)) == (6_264_579, 790_913), "the book's summaries"
    images = net(torch.randn(2, 32))
    assert images.shape == (2, 3, 32, 32) and images.abs().max() <= 1, "tanh images of 32 x 32"
    assert net.discriminator(images).shape == (2, 1)
    leaky = [m for m in net.modules() if isinstance(m, nn.LeakyReLU)]
    assert leaky and all(m.negative_slope == 0.3 for m in leaky), "Keras' LeakyReLU default slope"


def test_image_distances_are_zero_for_one_distribution_and_grow_apart():
    from dlwp.task.image_distance import frechet_distance, kernel_distance

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(20000, 4, generator=g), torch.randn(20000, 4, generator=g)
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-6)
    assert frechet_distance(a, b) < 0.01
    assert frechet_distance(a, b + torch.tensor([1.0, 2.0, 0, 0])) == pytest.approx(5.0, abs=0.05)  # |mu|^2
    assert frechet_distance(a, 2 * b) == pytest.approx(4 * (1 + 4 - 2 * 2), abs=0.1)  # d (s_a - s_b)^2
    assert abs(kernel_distance(a, b, subset_size=500)) < 0.01
    assert kernel_distance(a, b + 1, subset_size=500) > 0.1


def test_dcgan_trains_both_networks_writes_sample_grids_and_measures_quality(tmp_path):
    """Book 8.5's loop at small widths on synthetic frogs (a colour pattern under noise): both
    losses finite, the discriminator separates real from generated images (its loss falls below
    chance, log 2), the generator's loss rises against it, and each epoch writes a grid of 16.
    With a dlwp classifier run as the feature space, each epoch also measures generated against
    real images, above the floor two real sets give."""
    dlwp("train", "task=cifar10_convnet", "data.source=synthetic", "data.subset=300", "data.val_size=100",
         "trainer.max_epochs=1", runs=tmp_path / "classifier")  # fmt: skip
    (classifier,) = run_dirs(tmp_path / "classifier", "cifar10_convnet")
    dlwp("train", "task=cifar_frogs_dcgan", "data.source=synthetic", "data.subset=200", "trainer.max_epochs=2",
         "task.samples_every_n_epochs=1", "model.generator_filters=16", "model.seed_filters=8",
         "model.discriminator_filters=16", f"task.quality_classifier={classifier}", "task.quality_images=50",
         runs=tmp_path)  # fmt: skip
    (run_dir,) = run_dirs(tmp_path, "cifar_frogs_dcgan")
    rows = metric_rows(run_dir)
    assert all(math.isfinite(r[k]) for r in rows for k in ("train/d_loss", "train/a_loss"))
    assert rows[-1]["train/d_loss"] < math.log(2) and rows[-1]["train/a_loss"] > rows[0]["train/a_loss"]
    assert all(r["quality/fid"] > 2 * r["quality/fid_real"] and r["quality/kid"] > r["quality/kid_real"]
               for r in rows)  # fmt: skip
    assert (run_dir / "quality.png").stat().st_size > 10_000
    too_many = dlwp("train", "task=cifar_frogs_dcgan", "data.source=synthetic", "data.subset=200",
                    f"task.quality_classifier={classifier}", "task.quality_images=150", runs=tmp_path,
                    check=False)  # fmt: skip
    assert too_many.returncode != 0 and "task.quality_images=150 needs 300 real training images" in too_many.stderr
    from PIL import Image

    for epoch in (1, 2):
        with Image.open(run_dir / "samples" / f"epoch_{epoch:03d}.png") as grid:
            assert grid.size == (8 * 32, 2 * 32)
    assert not (run_dir / "checkpoints" / "best.ckpt").exists() and (run_dir / "checkpoints" / "last.ckpt").exists()
    gen = [f"ckpt_path={run_dir}", f"paths.runs_dir={tmp_path}", "images=4", "seed=1"]  # `dlwp generate`, in-process
    a, b = (generate_in_process(*gen, f"out={tmp_path / name}") for name in ("a.png", "b.png"))
    c = generate_in_process(*gen[:-1], "seed=2", f"out={tmp_path / 'c.png'}")
    assert torch.equal(a["images"], b["images"]) and not torch.equal(a["images"], c["images"])
    assert a["images"].shape == (4, 3, 32, 32) and a["images"].min() >= 0 and a["images"].max() <= 1
    with Image.open(tmp_path / "a.png") as picture:
        assert picture.size == (4 * 32, 32)
    with pytest.raises(ConfigError, match=r"give points of 32 numbers each"):
        generate_in_process(*gen, "latent=[[0,1]]")
