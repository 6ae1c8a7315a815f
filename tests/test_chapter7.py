"""Chapter 7's building blocks (7.1.4, 7.3.1-7.3.2) as modules, and the CIFAR-10 tasks made of them."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import dlwp, metric_rows, record, run_dirs
from dlwp.errors import ConfigError
from dlwp.model.blocknet import BlockNet
from dlwp.model.blocks import InceptionModule, ResidualBlock, SeparableConv2d, batch_norm


def test_batch_norm_has_keras_defaults():
    keras, torch_style = batch_norm(8), batch_norm(8, "torch")
    assert (keras.momentum, keras.eps) == (0.01, 1e-3), "Keras' momentum 0.99 is torch's 0.01"
    assert (torch_style.momentum, torch_style.eps) == (0.1, 1e-5)
    with pytest.raises(ConfigError, match="choose keras or torch"):
        batch_norm(8, "tf")


def test_residual_shortcut_is_the_identity_only_when_shapes_match():
    x = torch.randn(2, 16, 9, 9)
    same = ResidualBlock(16, 16)
    assert isinstance(same.shortcut, nn.Identity) and same(x).shape == (2, 16, 9, 9)
    with torch.no_grad():  # with the body's last convolution zeroed the block is its input, relu'd body aside
        for p in same.body.parameters():
            p.zero_()
    assert torch.equal(same(x), x), "identity shortcut: output = body + x"
    wider = ResidualBlock(16, 32)
    assert isinstance(wider.shortcut, nn.Conv2d) and wider.shortcut.stride == (1, 1) and wider(x).shape == (2, 32, 9, 9)
    down = ResidualBlock(16, 32, downsample=True)  # book 7.3.1: pool after the convolutions, 1x1 stride-2 shortcut
    assert down.shortcut.stride == (2, 2) and down(x).shape == (2, 32, 5, 5)


def test_inception_branches_line_up_and_concatenate():
    module = InceptionModule(12, 8, strides=2)
    out = module(torch.randn(2, 12, 15, 15))
    assert out.shape == (2, 32, 8, 8) and module.out_channels == 32, "4 branches x 8 filters, ceil(15 / 2)"
    assert InceptionModule(12, 8, strides=1)(torch.randn(1, 12, 6, 6)).shape == (1, 32, 6, 6)


def test_separable_convolution_is_depthwise_then_pointwise():
    conv = SeparableConv2d(8, 16, 3)
    assert sum(p.numel() for p in conv.parameters()) == 3 * 3 * 8 + 8 * 16 + 16, "Keras' SeparableConv2D count"
    x = torch.randn(1, 8, 6, 6)
    assert conv(x).shape == (1, 16, 4, 4)
    # each output channel of the depthwise step sees only its own input channel
    x2 = x.clone()
    x2[:, 3] += 1.0
    diff = (conv.depthwise(x2) - conv.depthwise(x)).abs().sum(dim=(0, 2, 3))
    assert diff[3] > 0 and diff[torch.arange(8) != 3].sum() == 0


def test_blocknet_states_what_does_not_fit():
    image = [3, 16, 16]
    with pytest.raises(ConfigError, match=r"layers\[0\]: type 'resnet' is not a layer; choose from conv"):
        BlockNet([{"type": "resnet", "filters": 8}], image)
    with pytest.raises(ConfigError, match=r"layers\[1\]: dense needs \[features\]"):
        BlockNet([{"type": "conv", "filters": 8}, {"type": "dense", "units": 2}], image)
    with pytest.raises(ConfigError, match=r"residual has no argument 'stride'; it takes filters, downsample"):
        BlockNet([{"type": "residual", "filters": 8, "stride": 2}], image)
    net = BlockNet([{"type": "conv", "filters": 8, "batch_norm": True}, {"type": "global_avgpool"},
                    {"type": "dropout", "rate": 0.5}, {"type": "dense", "units": 2}], image)  # fmt: skip
    assert net.out_shape == (2,) and net.training, "built in training mode"
    assert net.layers[0][0].bias is None and isinstance(net.layers[0][1], nn.BatchNorm2d), "conv -> BN -> relu"


@pytest.mark.parametrize("task", ["cifar10_resnet", "cifar10_inception", "cifar10_separable"])
def test_cifar10_block_networks_learn(task, tmp_path):
    """Each network as its task declares it, on the data module's synthetic CIFAR-10 (a colour
    pattern per class under noise): validation accuracy far above the majority class. Batch norm
    in torch's style here: evaluation uses the running statistics, and with Keras' momentum (0.99)
    they need hundreds of steps to catch up (with torch's 0.1, ~40 steps: validation accuracy sits
    near chance for the first 2 epochs of 19 steps, then jumps)."""
    dlwp("train", f"task={task}", "data.source=synthetic", "data.test_size=200", "data.val_size=200",
         "data.subset=500", "trainer.max_epochs=4", "data.batch_size=16", "model.batch_norm=torch",
         runs=tmp_path)  # fmt: skip
    (run_dir,) = run_dirs(tmp_path, task)
    rec, rows = record(run_dir), metric_rows(run_dir)
    assert rows[-1]["train/loss"] < rows[0]["train/loss"]
    assert rec["metrics"]["best"]["val/acc"]["value"] > rec["baselines"]["majority_acc"] + 0.3
    assert rec["data"]["sizes"]["test"] > 0 and "test/acc" in rec["metrics"]["final"]


def test_cifar10_resnet_augmented_learns_and_shows_its_augmentation(tmp_path):
    """The residual net's full-training recipe (shift/flip augmentation, cosine decay) on the
    synthetic CIFAR-10: it learns, the rate decays to 0 over the run, and the run holds the
    augmentation figure."""
    dlwp("train", "task=cifar10_resnet_augmented", "data.source=synthetic", "data.test_size=200",
         "data.val_size=200", "data.subset=500", "trainer.max_epochs=4", "data.batch_size=16",
         "model.batch_norm=torch", runs=tmp_path)  # fmt: skip
    (run_dir,) = run_dirs(tmp_path, "cifar10_resnet_augmented")
    rec, rows = record(run_dir), metric_rows(run_dir)
    assert rows[-1]["train/loss"] < rows[0]["train/loss"]
    assert rec["metrics"]["best"]["val/acc"]["value"] > rec["baselines"]["majority_acc"] + 0.3
    assert rec["augmentation_figure"] == "augmentation.png" and (run_dir / "augmentation.png").stat().st_size > 10_000
    lrs = [row["lr/main"] for row in rows]
    assert lrs[0] == pytest.approx(1e-3) and lrs == sorted(lrs, reverse=True) and lrs[-1] < 0.2e-3, lrs
    assert "lr/main" not in rec["metrics"]["best"], "a rate is not a metric with a best epoch"


def test_batch_shift_flip_moves_each_image_as_the_per_image_augmentation_does():
    """The in-memory (whole-batch) augmentation and the per-image one of image folders give the
    same pixels for the same draws: shifts with the nearest pixel as fill, then the flip."""
    from dlwp.data.images import BatchShiftFlip, random_shift_flip

    images = torch.randint(0, 256, (6, 3, 8, 10), dtype=torch.uint8)
    augment = BatchShiftFlip(0.25, hflip=True)
    seeds = range(6)
    uniforms = torch.stack([torch.cat([torch.rand(2, generator=g), torch.rand(1, generator=g)])
                            for g in (torch.Generator().manual_seed(s) for s in seeds)])  # fmt: skip
    batch = augment(images, uniforms)
    for i, s in enumerate(seeds):
        one, _ = random_shift_flip((images[i], 0), torch.Generator().manual_seed(s), 0.25, True)
        assert torch.equal(batch[i], one), i
    assert not torch.equal(batch, images) and batch.dtype == torch.uint8
    assert torch.equal(BatchShiftFlip(0.0, hflip=False)(images, uniforms), images)
    with pytest.raises(ConfigError, match=r"data.shift is a fraction of the image size in \[0, 1\), got 4"):
        BatchShiftFlip(4, hflip=False)


def test_in_memory_augmentation_is_a_function_of_seed_epoch_and_position_on_any_number_of_ranks():
    """Each epoch draws new shifts; the same epoch draws the same ones again (a resumed run); two
    DDP ranks together augment exactly the samples one process does; evaluation batches are not
    augmented."""
    from dlwp.data.batches import TensorBatches
    from dlwp.data.images import BatchShiftFlip

    x = torch.randint(0, 256, (40, 3, 8, 8), dtype=torch.uint8)
    split = (x, torch.arange(40))
    augment = BatchShiftFlip(0.25, hflip=True)

    def epoch(k, rank=0, world_size=1, augmented=True):
        batches = TensorBatches(split, 10, shuffle=True, seed=3, rank=rank, world_size=world_size,
                                augment=augment if augmented else None)  # fmt: skip
        batches.sampler.set_epoch(k)
        return list(batches)

    first, again, second = epoch(0), epoch(0), epoch(1)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(first, second, strict=True))
    plain = epoch(0, augmented=False)
    assert all(torch.equal(a[1], b[1]) for a, b in zip(first, plain, strict=True)), "the same samples in order"
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(first, plain, strict=True))
    ranks = [epoch(0, rank, 2) for rank in (0, 1)]
    for one, zero, one_rank in zip(first, *ranks, strict=True):
        assert torch.equal(one[0], torch.cat([zero[0], one_rank[0]])), "rank parts of the same draws"


# -- shared weights (7.1.5-7.1.6) ------------------------------------------------------------------


def test_siamese_branches_are_one_encoder():
    from dlwp.model.convnet import ConvNet
    from dlwp.model.siamese import SiameseNet

    encoder = ConvNet([1, 28, 28], [8], 16, hidden=[])
    net = SiameseNet(encoder, 16, [8], merge="difference")
    own = sum(p.numel() for p in encoder.parameters())
    assert sum(p.numel() for p in net.parameters()) == own + 16 * 8 + 8 + 8 + 1, "one encoder's weights, not two"
    x = torch.rand(3, 1, 28, 28)
    net({"left": x, "right": torch.rand(3, 1, 28, 28)}).sum().backward()
    first = next(encoder.parameters())
    assert first.grad is not None and first.grad.abs().sum() > 0, "both branches train the same tensors"
    same = net({"left": x, "right": x})
    with torch.no_grad():
        first.add_(1.0)  # one change to the shared encoder moves both branches: |a - b| stays 0
    assert torch.allclose(net({"left": x, "right": x}), same)
    with pytest.raises(ConfigError, match=r"model.inputs=\['left', 'right'\]: the data provides a, b"):
        net({"a": x, "b": x})


def test_pairs_are_fixed_by_their_seed_and_half_are_the_same_class():
    from dlwp.data.pairs import make_pairs

    y = torch.arange(200) % 10
    x = y.float()[:, None]  # each "image" is its label
    inputs, same = make_pairs(x, y, seed=3)
    assert torch.equal(same, (inputs["left"] == inputs["right"]).long().flatten())
    assert same[0::2].all() and not same[1::2].any(), "even pairs same class, odd pairs another"
    again, _ = make_pairs(x, y, seed=3)
    other, _ = make_pairs(x, y, seed=4)
    assert torch.equal(again["right"], inputs["right"]) and not torch.equal(other["right"], inputs["right"])


def test_mnist_siamese_learns_same_or_different(tmp_path):
    dlwp("train", "task=mnist_siamese", "data.source=synthetic", "data.subset=2000", "data.val_size=500",
         "trainer.max_epochs=3", runs=tmp_path)  # fmt: skip
    (run_dir,) = run_dirs(tmp_path, "mnist_siamese")
    rec = record(run_dir)
    assert rec["metrics"]["best"]["val/acc"]["value"] > rec["baselines"]["majority_acc"] + 0.3
    out = dlwp("train", "task=mnist_siamese", "data.source=synthetic", "data.subset=200", "data.val_size=50",
               "model.inputs=[left,image]", runs=tmp_path / "bad", check=False)  # fmt: skip
    assert out.returncode != 0 and "model.inputs=['left', 'image']: the data provides left, right" in out.stderr


# -- several inputs (7.1.2) -------------------------------------------------------------------------


def test_each_wire_keeps_its_own_title():
    from dlwp.data.reuters_raw import parse_wires, wire_titles

    sgml = ("<REUTERS><TOPICS><D>cocoa</D></TOPICS><TEXT><TITLE>BAHIA COCOA REVIEW</TITLE><BODY>Showers."
            "</BODY></TEXT></REUTERS><REUTERS><TOPICS></TOPICS><TEXT><TITLE>NO TOPIC</TITLE><BODY>x</BODY>"
            "</TEXT></REUTERS><REUTERS><TOPICS><D>grain</D></TOPICS><TEXT TYPE='UNPROC'><BODY>Wheat.</BODY>"
            "</TEXT></REUTERS>")  # fmt: skip
    assert [topic for topic, _ in parse_wires(sgml)] == ["cocoa", "grain"]
    assert wire_titles(sgml) == ["BAHIA COCOA REVIEW", ""], "a wire without a title does not take the next one's"


def test_reuters_title_body_model_reads_both_inputs_and_learns(tmp_path):
    from dlwp.model.multi_input import MultiInputDense

    net = MultiInputDense(["title", "body"], 20, [4], [3], 2)
    assert set(net.encoders) == {"title", "body"} and net.encoders["title"] is not net.encoders["body"]
    with pytest.raises(ConfigError, match=r"model.inputs=\['title', 'body'\]: the data provides title"):
        net({"title": torch.zeros(1, 20)})
    dlwp("train", "task=reuters_title_body", "data.source=synthetic", "data.subset=1500", "data.val_size=300",
         "trainer.max_epochs=4", "data.batch_size=64", runs=tmp_path)  # fmt: skip
    (run_dir,) = run_dirs(tmp_path, "reuters_title_body")
    rec = record(run_dir)
    assert rec["metrics"]["final"]["test/acc"] > rec["baselines"]["majority_acc"] + 0.2
