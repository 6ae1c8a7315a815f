"""Small pieces with exact expected behaviour: parity details, records, paths, checkpoints."""

from __future__ import annotations

import math
import os

import pytest
import torch
import torch.nn.functional as F

from dlwp.checkpoints import load, resolve
from dlwp.errors import CheckpointError
from dlwp.model.dense import DenseNet
from dlwp.paths import claim_dir
from dlwp.record import best_of, redact_argv
from dlwp.task.heads import binary_loss
from dlwp.task.metrics import Accuracy, BatchMean, MeanAbsoluteError
from dlwp.task.optim import build_optimizer


def test_keras_init_glorot_uniform_kernels_zero_biases():
    net = DenseNet(784, [512], 10)
    first = net.net[0]
    bound = math.sqrt(6 / (784 + 512))
    assert first.weight.abs().max() <= bound and first.weight.abs().max() > 0.9 * bound
    assert torch.count_nonzero(first.bias) == 0


def test_rmsprop_uses_keras_rho():
    opt = build_optimizer(DenseNet(4, [], 2).parameters(), "rmsprop", 1e-3, 0.9, 1e-8, 0.0, 0.0, [0.9, 0.999])
    assert isinstance(opt, torch.optim.RMSprop)
    assert opt.defaults["alpha"] == 0.9 and opt.defaults["eps"] == 1e-8


def test_keras_binary_loss_equals_bce_until_it_clips():
    z, y = torch.tensor([-3.0, 0.5, 4.0]), torch.tensor([0.0, 1.0, 1.0])
    assert binary_loss(z, y, keras_clip=True) == pytest.approx(F.binary_cross_entropy_with_logits(z, y).item())
    confident_wrong = torch.tensor([40.0], requires_grad=True)
    loss = binary_loss(confident_wrong, torch.tensor([0.0]), keras_clip=True)
    assert loss.item() == pytest.approx(-math.log(1e-7), rel=1e-4)  # capped at -log(1e-7), as Keras
    loss.backward()
    assert confident_wrong.grad.item() == 0.0  # and no gradient beyond the clip


@pytest.mark.parametrize("keras_clip", [True, False])
def test_binary_loss_of_bf16_logits_is_computed_in_float32(keras_clip):
    """Under bf16 autocast a Dense layer's logits are bf16; log(p) must not be rounded to them."""
    z = torch.linspace(-4, 4, 41).to(torch.bfloat16).requires_grad_()
    y = (torch.arange(41) % 2).float()
    loss = binary_loss(z, y, keras_clip)
    loss.backward()
    z32 = z.detach().float().requires_grad_()
    reference = binary_loss(z32, y, keras_clip)
    reference.backward()
    assert loss.dtype == torch.float32 and loss.item() == reference.item()
    assert torch.equal(z.grad.float(), z32.grad.to(torch.bfloat16).float())


def test_l2_penalty_is_keras_l2_on_hidden_kernels():
    net = DenseNet(3, [4, 4], 1, l2=0.001)
    expected = 0.001 * sum(m.weight.square().sum() for m in (net.net[0], net.net[2]))
    assert net.regularization_loss().item() == pytest.approx(expected.item())
    assert DenseNet(3, [4], 1).regularization_loss() is None


def test_keras_accuracy_definitions():
    multi = Accuracy("multiclass")
    multi.update(torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]]), torch.tensor([1, 1, 1]))
    assert multi.compute().item() == pytest.approx(2 / 3)
    binary = Accuracy("binary")
    logits = torch.logit(torch.tensor([0.5, 0.51, 0.2]))
    binary.update(logits, torch.tensor([1.0, 1.0, 0.0]))  # round(0.5) == 0, as Keras
    assert binary.compute().item() == pytest.approx(2 / 3)
    loss = BatchMean()
    loss.update(torch.tensor(1.0), 3)
    loss.update(torch.tensor(2.0), 1)
    assert loss.compute().item() == pytest.approx(1.25)  # weighted by batch size, like Keras' progbar
    mae = MeanAbsoluteError()
    mae.update(torch.tensor([[1.0], [3.0]]), torch.tensor([2.0, 2.0]))
    assert mae.compute().item() == pytest.approx(1.0)


def test_best_of_uses_min_for_losses_and_max_for_accuracy():
    rows = [{"epoch": 1, "val/loss": 0.5, "val/acc": 0.8, "time/epoch_s": 1.0},
            {"epoch": 2, "val/loss": 0.4, "val/acc": 0.7, "time/epoch_s": 0.5}]  # fmt: skip
    best = best_of(rows)
    assert best["val/loss"] == {"value": 0.4, "epoch": 2} and best["val/acc"] == {"value": 0.8, "epoch": 1}
    assert "time/epoch_s" not in best


def test_credentials_on_the_command_line_are_redacted():
    argv = ["train", "seed=1", "+logger.api_key=abc", "WANDB_TOKEN=x", "hydra.job.env_set.PASSWORD=p"]
    assert redact_argv(argv) == ["train", "seed=1", "+logger.api_key=<redacted>", "WANDB_TOKEN=<redacted>",
                                 "hydra.job.env_set.PASSWORD=<redacted>"]  # fmt: skip


def test_claim_dir_never_reuses_a_directory(tmp_path):
    dirs = [claim_dir(tmp_path, stamp="2026-01-01_00-00-00") for _ in range(3)]
    assert [d.name for d in dirs] == ["2026-01-01_00-00-00", "2026-01-01_00-00-00-1", "2026-01-01_00-00-00-2"]


def test_checkpoint_resolution_and_refusals(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        resolve(str(tmp_path / "x.ckpt"), tmp_path, "digits_dense")
    with pytest.raises(CheckpointError, match="no run of task 'digits_dense'"):
        resolve("last", tmp_path, "digits_dense")
    run = tmp_path / "digits_dense" / "r1" / "checkpoints"
    run.mkdir(parents=True)
    (run / "best.ckpt").write_bytes(b"")
    assert resolve(str(run.parent), tmp_path, "digits_dense", prefer="best") == run / "best.ckpt"
    plain = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {}}, plain)
    with pytest.raises(CheckpointError, match="not a dlwp checkpoint"):
        load(plain)


class _Payload:
    """Unpickling this would run a command; a safe loader must refuse before it happens."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_checkpoints_with_pickled_code_are_refused(tmp_path):
    evil, marker = tmp_path / "evil.ckpt", tmp_path / "pwned"
    torch.save({"dlwp": {}, "state_dict": {}, "payload": _Payload(marker)}, evil)
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load(evil)
    assert not marker.exists()


def test_reported_loss_includes_the_l2_penalty_as_keras_does():
    from dlwp.task import SupervisedTask

    torch.manual_seed(0)
    plain = SupervisedTask(DenseNet(5, [4, 4], 1), seed=0, problem="binary")
    regularised = SupervisedTask(DenseNet(5, [4, 4], 1, l2=0.001), seed=0, problem="binary")
    regularised.network.load_state_dict(plain.network.state_dict())
    batch = (torch.randn(8, 5), torch.randint(0, 2, (8,)).float())
    penalty = regularised.network.regularization_loss()
    difference = regularised._step("train", batch, 1) - plain._step("train", batch, 1)
    assert difference.item() == pytest.approx(penalty.item(), rel=1e-5) and penalty.item() > 0


def test_deterministic_trainers_skip_torch_nan_filling_of_fresh_memory(tmp_path):
    """Deterministic mode stays on (bit-identical reruns), without its ~30 fill kernels per step."""
    from omegaconf import OmegaConf

    from dlwp.trainer import build_trainer

    cfg = OmegaConf.create({"trainer": {"accelerator": "cpu", "devices": 1, "deterministic": True, "max_epochs": 1}})
    try:
        build_trainer(cfg, tmp_path, callbacks=[], loggers=[])
        assert torch.are_deterministic_algorithms_enabled()
        assert not torch.utils.deterministic.fill_uninitialized_memory
    finally:
        torch.use_deterministic_algorithms(False)
        torch.utils.deterministic.fill_uninitialized_memory = True
