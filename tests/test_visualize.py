"""Seeing inside networks (book 5.4, 8.2, 8.3): each procedure on a tiny network against what it
must compute, then the commands end to end with the offline ImageNet backbone on scikit-image's
photos (nothing downloaded)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from conftest import dlwp
from dlwp.errors import CheckpointError, ConfigError, DataMissingError
from dlwp.visualize import images, layers
from dlwp.visualize.networks import Inspected


def tiny(classes: int = 5, seed: int = 0) -> Inspected:
    """conv -> ReLU -> conv -> ReLU -> global average -> linear: small enough to check by hand."""
    torch.manual_seed(seed)
    net = nn.Sequential()
    net.add_module("conv1", nn.Conv2d(3, 6, 3, padding=1))
    net.add_module("act1", nn.ReLU())
    net.add_module("conv2", nn.Conv2d(6, 4, 3, padding=1))
    net.add_module("act2", nn.ReLU())
    net.add_module("pool", nn.AdaptiveAvgPool2d(1))
    net.add_module("flat", nn.Flatten())
    net.add_module("fc", nn.Linear(4, classes))
    net.eval().requires_grad_(False)
    return Inspected(net, lambda x: x, {"backbone": "tiny"}, aliases={"block1_conv1": "act1"})


# -- the procedures, on a tiny network ------------------------------------------------------------


@pytest.mark.parametrize("score", ["logit", "probability"])
def test_gradcam_matches_the_hand_computed_map(score):
    """For A -> global average -> linear W, d logit_c / dA_k = W[c, k] / (h w): the channel
    weights are known in closed form (for the probability, p_c (W_c - Σ_j p_j W_j) / (h w))."""
    from dlwp.visualize.gradcam import gradcam

    net = tiny()
    image = torch.rand(3, 12, 10, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a = net.network[:4](image[None])[0]  # act2's output, [4, 12, 10]
        probs = net.network(image[None]).softmax(-1)[0]
    w = net.network.fc.weight
    c = int(probs.argmax())
    alpha = w[c] if score == "logit" else probs[c] * (w[c] - probs @ w)
    alpha = alpha / (a.shape[1] * a.shape[2])
    expected = (a * alpha[:, None, None]).mean(0).relu()
    expected = expected / expected.max()

    explained = gradcam(net, image, "act2", score=score)
    assert explained.class_index == c
    assert torch.allclose(explained.probabilities, probs, atol=1e-6)
    assert torch.allclose(explained.heatmap, expected, atol=1e-5)
    other = gradcam(net, image, "act2", class_index=(c + 1) % 5, score=score)
    assert not torch.allclose(other.heatmap, explained.heatmap), "another class has another map"
    with pytest.raises(ConfigError, match=r"class_index=7: the network has 5 classes"):
        gradcam(net, image, "act2", class_index=7)


def test_filter_patterns_ascend_and_are_seeded():
    from dlwp.visualize.filters import layer_grid, patterns

    net = tiny()
    x, history = patterns(
        net, "act2", [0, 1, 2, 3], size=16, steps=10, step=30.0, generator=torch.Generator().manual_seed(0)
    )
    assert len(history) == 11 and history[-1] > 1.1 * history[0] and all(b > a for a, b in itertools.pairwise(history))
    again, _ = patterns(
        net, "act2", [0, 1, 2, 3], size=16, steps=10, step=30.0, generator=torch.Generator().manual_seed(0)
    )
    assert torch.equal(x, again)
    grid = layer_grid(x, columns=2, margin=5)
    assert grid.shape == (3, 16 * 2 + 5, 16 * 2 + 5) and float(grid.min()) >= 0 and float(grid.max()) <= 1
    with pytest.raises(ConfigError, match=r"layer 'act2' has 4 filters; asked for filter 9"):
        patterns(net, "act2", [9], size=16, steps=1)


def test_a_forward_pass_stops_after_the_last_layer_it_needs():
    net = tiny()
    calls = []
    net.network.fc.register_forward_hook(lambda *_: calls.append("fc"))
    with layers.capture(net.find(["act1"])) as outputs:
        assert layers.run(net.network, torch.rand(1, 3, 8, 8), outputs) is None
        assert outputs["act1"].shape == (1, 6, 8, 8)
    assert calls == [], "nothing after act1 ran"


def test_deep_dream_ascends_each_octave_at_the_books_scales():
    from dlwp.visualize.dream import deep_dream, octave_shapes

    assert octave_shapes(350, 350, 3, 1.4) == [(178, 178), (250, 250), (350, 350)]  # book 8.2's printed shapes
    net = tiny()
    image = torch.rand(3, 40, 30, generator=torch.Generator().manual_seed(0))
    dreamt, history = deep_dream(net, image, {"act1": 0.5, "act2": 2.0}, octaves=2, iterations=6, step=0.05,
                                 max_loss=None)  # fmt: skip
    assert dreamt.shape == image.shape and float(dreamt.min()) >= 0 and float(dreamt.max()) <= 1
    assert [len(h) for h in history] == [6, 6] and all(h[-1] > h[0] for h in history)
    coefficients = {"act1": 0.5, "act2": 2.0}
    _, free = deep_dream(net, image, coefficients, octaves=1, iterations=6, step=0.05, max_loss=None)
    _, stopped = deep_dream(net, image, coefficients, octaves=1, iterations=50, step=0.05, max_loss=free[0][2])
    assert stopped[0] == free[0][:4], "an octave ends at the first loss above max_loss"


def test_style_transfer_loss_falls_and_its_parts_are_the_books():
    from dlwp.visualize.style import StyleLoss, Weights, gram, total_variation, transfer

    x = torch.arange(2 * 3 * 3, dtype=torch.float32).view(1, 2, 3, 3)
    assert torch.equal(gram(x), x[0].flatten(1) @ x[0].flatten(1).T)
    flat = torch.zeros(1, 3, 4, 4)
    assert float(total_variation(flat)) == 0.0
    step = flat.clone()
    step[..., 2:] = 1.0  # one vertical edge: each of 3 rows x 3 channels has one (dx² = 1) term
    assert float(total_variation(step)) == pytest.approx(3 * 3 * 1.0)

    net = tiny()
    g = torch.Generator().manual_seed(0)
    content, style = torch.rand(1, 3, 24, 24, generator=g) * 255, torch.rand(1, 3, 24, 24, generator=g) * 255
    loss_fn = StyleLoss(net, content, style, "act2", ["act1", "act2"], Weights())
    with torch.no_grad():
        initial, parts = loss_fn(content)
    assert parts["content"] == 0.0 and parts["style"] > 0
    result, losses = transfer(loss_fn, content, iterations=4, max_eval=10)
    assert result.shape == content.shape
    assert losses[-1] < losses[0] < float(initial) and float(initial) / losses[-1] > 10


# -- inputs, layers and errors ---------------------------------------------------------------------


def test_images_load_from_files_and_scikit_image_and_bad_ones_are_explained(tmp_path):
    image, path = images.load("skimage:chelsea", size=(50, 60))
    assert image.shape == (3, 50, 60) and path.name == "chelsea.png"
    assert images.load("skimage:coffee", height=40)[0].shape == (3, 40, 60)  # 400x600, aspect kept
    assert max(images.load("skimage:astronaut", max_side=64)[0].shape[1:]) == 64
    with pytest.raises(ConfigError, match=r"scikit-image has no photo 'elephant'; it has .*chelsea"):
        images.load("skimage:elephant")
    with pytest.raises(DataMissingError, match=r"no such file"):
        images.load(str(tmp_path / "missing.jpg"))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(DataMissingError, match=r"broken\.jpg is not a readable image"):
        images.load(str(broken))


def test_an_unknown_layer_lists_the_valid_ones_book_names_included():
    net = tiny()
    assert net.find(["block1_conv1"])["block1_conv1"] is net.network.act1
    with pytest.raises(
        ConfigError, match=r"layer 'block9_conv9' does not exist .* valid layers: block1_conv1, conv1, act1"
    ):
        net.find(["block9_conv9"])


def test_vgg_book_names_map_onto_torchvisions_layers():
    from torchvision.models import vgg16, vgg19

    from dlwp.model.backbones import BACKBONES

    for name, build in (("vgg16", vgg16), ("vgg19", vgg19)):
        modules = dict(build(weights=None).named_modules())
        aliases = BACKBONES[name].aliases
        assert all(isinstance(modules[aliases[f"block{b}_conv1"]], nn.ReLU) for b in range(1, 6))
        assert all(isinstance(modules[aliases[f"block{b}_pool"]], nn.MaxPool2d) for b in range(1, 6))
    assert BACKBONES["vgg16"].aliases["block5_conv3"] == "features.29"  # book 5.4's Grad-CAM layer
    assert BACKBONES["vgg19"].aliases["block5_conv2"] == "features.31"  # book 8.3's content layer


def test_missing_backbone_weights_say_where_to_put_them(tmp_path, monkeypatch):
    from dlwp.visualize.networks import open_backbone

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for name, file in (("vgg19", "vgg19-dcbb9e9d.pth"), ("inception_v3", "inception_v3_google-0cc3c7bd.pth")):
        with pytest.raises(CheckpointError, match=rf"{file} not found.*hub/checkpoints/{file}"):
            open_backbone(name, download=False)
    with pytest.raises(ConfigError, match=r"backbone='resnet1000' is not registered; known: efficientnet_lite0"):
        open_backbone("resnet1000")


def test_inception_weights_of_torchvisions_format_load_into_the_registered_network(tmp_path):
    """The file format torchvision publishes (a state dict with AuxLogits), written here from a
    freshly initialised network: it loads into both the whole network and the feature extractor."""
    from torchvision.models import inception_v3

    from dlwp.model.backbones import BACKBONES

    source = inception_v3(weights=None, aux_logits=True, init_weights=False)
    path = tmp_path / "inception.pth"
    torch.save(source.state_dict(), path)
    spec = BACKBONES["inception_v3"]
    whole, features = spec.build(classifier=True), spec.build(classifier=False)
    spec.load(whole, path)
    spec.load(features, path)
    assert torch.equal(whole.Mixed_7c.branch1x1.conv.weight, source.Mixed_7c.branch1x1.conv.weight)
    x = torch.rand(1, 3, 120, 120)
    with torch.no_grad():
        assert features.eval()(x).shape == (1, 2048, 2, 2)
    torch.save({"something": torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match=r"not a torchvision Inception v3 state dict"):
        spec.load(spec.build(classifier=True), path)


# -- the commands, end to end ----------------------------------------------------------------------


def latest(runs: Path, kind: str) -> Path:
    (run_dir,) = sorted((runs / kind).iterdir())[-1:]
    return run_dir


def test_gradcam_command_explains_a_real_photo_offline_and_reports_it(tmp_path):
    """No arguments beyond where to write: the offline backbone on scikit-image's cat."""
    proc = dlwp("visualize", "gradcam", f"paths.runs_dir={tmp_path}", "progress=false")
    run_dir = latest(tmp_path, "visualize")
    rec = json.loads((run_dir / "run.json").read_text())
    assert rec["status"] == "completed" and rec["kind"] == "visualize-gradcam"
    assert rec["metrics"]["top"][0]["class"] in ("Egyptian cat", "tiger cat", "tabby, tabby cat")
    assert "Egyptian cat" in proc.stdout
    assert rec["network"]["backbone"] == "efficientnet_lite0" and len(rec["network"]["sha256"]) == 64
    assert rec["inputs"]["image"]["spec"] == "skimage:chelsea" and len(rec["inputs"]["image"]["sha256"]) == 64
    assert rec["git"]["commit"] and rec["seed"] == 0 and rec["config"]["what"] == "gradcam"
    heat = images.load(str(run_dir / "images" / "heatmap.png"))[0]
    assert heat.shape[1:] == (7, 7) and float(heat.max()) == 1.0  # bn2's 7x7 map at 224 px
    assert {"input.png", "overlay.png", "gradcam.png"} <= set(rec["images"])

    dlwp("report", str(run_dir))
    summary = (run_dir / "report" / "summary.md").read_text()
    assert "![overlay](../images/overlay.png)" in summary and "Egyptian cat" in summary


def test_activations_of_a_trained_image_run_and_errors_for_non_image_runs(tmp_path):
    dlwp("train", "task=cats_dogs_scratch", "data.source=synthetic", "data.image_size=[40,40]",
         "model.input_shape=[3,40,40]", "model.channels=[8,8]", "model.hidden=[8]", "data.steps_per_epoch=2",
         "data.num_workers=0", "trainer.max_epochs=1", "test=false", runs=tmp_path)  # fmt: skip
    (image_run,) = sorted((tmp_path / "cats_dogs_scratch").iterdir())
    out = tmp_path / "vis"
    dlwp("visualize", "activations", f"ckpt_path={image_run}", f"paths.runs_dir={out}", "image=skimage:chelsea")
    rec = json.loads((latest(out, "visualize") / "run.json").read_text())
    # the first layers' outputs, as Keras' layers had them: ReLU'd convolutions and poolings
    assert list(rec["metrics"]["layers"]) == ["features.1", "features.2", "features.4", "features.5"]
    assert rec["metrics"]["layers"]["features.1"] == [8, 38, 38]
    assert rec["network"]["task"] == "cats_dogs_scratch" and len(rec["network"]["sha256"]) == 64
    assert len(list((latest(out, "visualize") / "images").glob("0*_features.*.png"))) == 4

    bad = dlwp("visualize", "activations", f"ckpt_path={image_run}", f"paths.runs_dir={out}", "layers=[features.9]",
               check=False)  # fmt: skip
    assert bad.returncode == 2 and "layer 'features.9' does not exist" in bad.stderr and "features.1" in bad.stderr
    dlwp("train", "task=digits_dense", "trainer.max_epochs=1", "test=false", runs=tmp_path)
    (dense_run,) = sorted((tmp_path / "digits_dense").iterdir())
    refused = dlwp("visualize", "activations", f"ckpt_path={dense_run}", f"paths.runs_dir={out}", check=False)
    assert (
        refused.returncode == 2
        and "is a checkpoint of task 'digits_dense', whose network does not take images" in refused.stderr
    )
    bare = dlwp("visualize", f"paths.runs_dir={out}", check=False)
    assert bare.returncode == 2 and "say what to show: dlwp visualize activations|filters|gradcam" in bare.stderr
    unknown = dlwp("visualize", "shapes", f"paths.runs_dir={out}", check=False)
    assert unknown.returncode != 0 and "activations" in unknown.stderr and "gradcam" in unknown.stderr


def test_dream_and_style_commands_ascend_and_descend_offline(tmp_path):
    dlwp("dream", f"paths.runs_dir={tmp_path}", "max_side=120", "octaves=2", "iterations=4", "progress=false")
    rec = json.loads((latest(tmp_path, "dream") / "run.json").read_text())
    assert [o["shape"] for o in rec["metrics"]["octaves"]] == [[57, 85], [80, 120]]  # coffee is 400x600
    assert all(o["ascended"] for o in rec["metrics"]["octaves"])
    assert {"input.png", "octave_0.png", "octave_1.png", "dream.png"} <= set(rec["images"])

    dlwp("style", f"paths.runs_dir={tmp_path}", "height=64", "iterations=3", "max_eval=5", "progress=false")
    run_dir = latest(tmp_path, "style")
    rec = json.loads((run_dir / "run.json").read_text())
    m = rec["metrics"]
    assert m["loss_last"] < m["loss_first"] < m["loss_initial"]
    assert set(rec["inputs"]) == {"content", "style"} and rec["inputs"]["style"]["spec"] == "skimage:ihc"
    side = images.load(str(run_dir / "images" / "side_by_side.png"))[0]
    assert side.shape == (3, 64, 3 * 64)  # content, style, result; astronaut is square
    rows = (run_dir / "losses.csv").read_text().splitlines()
    assert rows[0] == "iteration,loss,content,style,total_variation" and len(rows) == 4


def test_visualisations_are_logged_to_wandb_offline(tmp_path):
    dlwp("visualize", "gradcam", f"paths.runs_dir={tmp_path}", "logger=wandb", "progress=false", "size=96",
         env={"WANDB_MODE": None, "WANDB_API_KEY": None})  # fmt: skip
    run_dir = latest(tmp_path, "visualize")
    rec = json.loads((run_dir / "run.json").read_text())
    assert rec["wandb"]["status"] == "finished" and rec["wandb"]["mode"] == "offline"
    (offline,) = (run_dir / "wandb").glob("offline-run-*")
    media = list(offline.glob("files/media/images/images/*.png"))
    assert len(media) == 4, media
