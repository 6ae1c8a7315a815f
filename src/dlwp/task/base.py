"""What every book task's LightningModule shares: named optimisers, epoch-level metrics, seeding.

A task class is chosen in config by `task._target_` (`problem:` alone means
`dlwp.task.SupervisedTask`); its constructor's arguments are its config schema, as for networks and
data modules. A new kind of training (a GAN, a VAE) is a new small subclass of `BookTask`.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from torch import nn
from torchmetrics import Metric

from dlwp import compat
from dlwp.config.schema import OptimizerConfig
from dlwp.data import tree
from dlwp.data.batches import BatchGroup
from dlwp.task import optim
from dlwp.task.metrics import BatchMean
from dlwp.task.optim import OptimizerSlot, make_slot

STAGES = ("train", "val", "test")


class BookTask(L.LightningModule):
    """A network and how it is trained: subclasses define the loss and metrics (`objective`,
    `make_metrics`), predictions, scores and baselines.

    Metrics are torchmetrics objects updated every step and logged once per epoch as
    `stage/metric` (`train/loss`, `val/acc`, `val/sentiment/acc` ...): training figures are the
    running mean over the epoch's batches, as Keras reports them; reported losses include the
    network's regularisation penalty, as Keras' do.

    Args:
        network: the `nn.Module` that maps a batch of inputs (a tensor or a dict of named
            tensors) to outputs (logits; a dict for named outputs).
        seed: the run's seed; each epoch reseeds dropout from `(seed, epoch)` so that a run
            resumed from a checkpoint continues exactly as an uninterrupted one.
        optimizer: the `OptimizerConfig` of the network's optimiser (dlwp.config.schema).
        freeze: glob patterns of parameter names (`base.*`) that are not trained
            (`requires_grad=False`) and left out of the optimiser (book 5.3's frozen base).
        unfreeze: patterns taken back out of `freeze` (book 5.3's fine-tuned block5).
    """

    def __init__(self, network: nn.Module, seed: int, optimizer: OptimizerConfig | None = None,
                 freeze: list[str] | None = None, unfreeze: list[str] | None = None) -> None:  # fmt: skip
        super().__init__()
        self.network = network
        self.seed = seed
        self.optimizer_config = _plain(optimizer if optimizer is not None else OptimizerConfig())
        self.frozen = optim.freeze(network, list(freeze or []), list(unfreeze or []))
        self.automatic_optimization = False  # see training_step
        self._direct = False
        self.accumulate = 1
        """Batches whose gradients are summed before an optimiser step (trainer.accumulate_grad_batches)."""
        self._pending = 0
        self._epoch_losses: list[float] = []
        """The train/loss of each epoch of this fit, for the divergence checks."""
        self._wrapped_optimizers: dict[str, Any] = {}
        self.slots: dict[str, OptimizerSlot] = {}
        self._schedule_states: dict[str, Any] = {}
        self.memory_format = torch.contiguous_format
        self.cuda_graphs = False
        """`trainer.compile=reduce_overhead`: each step tells CUDA graph trees where it begins."""
        # A network may add a penalty to the loss (Keras' kernel_regularizer) by defining
        # `regularization_loss()`; it returns None when it has none, so the step skips it.
        penalty = getattr(network, "regularization_loss", None)
        self.regularized = penalty is not None and penalty() is not None
        self.run_config: dict[str, Any] | None = None
        """The run's config, stored in every checkpoint so `dlwp eval` can rebuild this model."""

    def register_metrics(self) -> None:
        """`train_metrics`, `val_metrics`, ...: {"loss": ..., "acc": ...} per stage (one ModuleDict
        keyed by stage is impossible: `train` is a Module method). Called by subclasses once their
        heads exist."""
        for stage in STAGES:
            setattr(self, f"{stage}_metrics", nn.ModuleDict({"loss": BatchMean(), **self.make_metrics()}))

    _PLAIN = compat.PLAIN_ATTRIBUTES | {"_pending"}

    def __setattr__(self, name: str, value: Any) -> None:
        # Lightning sets `_current_fx_name` around every hook call, ~40 times a training step, and
        # `optimise` counts `_pending` every batch; nn.Module's generic __setattr__ costs
        # microseconds each time. They are plain attributes.
        if name in self._PLAIN:
            self.__dict__[name] = value
        else:
            super().__setattr__(name, value)

    # -- what a task defines -------------------------------------------------------------------
    def make_metrics(self) -> dict[str, Metric]:
        """Metrics besides the total loss, by name after the stage (`acc` -> `val/acc`)."""
        raise NotImplementedError

    def objective(self, outputs: tree.Part, targets: tree.Part, metrics: nn.ModuleDict) -> torch.Tensor:
        """The loss to minimise (without the network's penalty); updates `metrics` but `loss`."""
        raise NotImplementedError

    def predict(self, outputs: tree.Part) -> tree.Part:
        """Network outputs -> what the book's model outputs (probabilities, or values)."""
        raise NotImplementedError

    def score(self, predictions: tree.Part, targets: tree.Part) -> dict[str, float]:
        """Keras' loss and metrics of (averaged) predictions, by name after the stage."""
        raise NotImplementedError

    def prediction_loss(self, predictions: tree.Part, targets: tree.Part) -> torch.Tensor:
        """`score`'s loss as a differentiable tensor (ensemble weights are fitted to it)."""
        raise NotImplementedError

    def baselines(self, train: tree.Part, test: tree.Part) -> dict[str, float]:
        """Trivial results on `test` from the training targets alone (majority class, mean...)."""
        raise NotImplementedError

    def check_batch(self, batch) -> None:
        """Raise a `ConfigError` naming the config key when the network's outputs and the data's
        targets do not fit this task (called on a real batch before training)."""

    def example_outputs(self, inputs: tree.Part) -> tree.Part:
        """The network's outputs for `inputs` in evaluation mode, without gradients or any effect
        on training (no batch-norm statistics updated)."""
        training = self.network.training
        self.network.eval()
        try:
            with torch.no_grad():
                return self.network(inputs)
        finally:
            self.network.train(training)

    def optimizer_specs(self) -> dict[str, tuple[list[tuple[str, nn.Parameter]], dict[str, Any]]]:
        """Each named optimiser: the (name, parameter) pairs it trains and its config."""
        return {"main": (list(self.network.named_parameters()), self.optimizer_config)}

    # -- shared mechanics ----------------------------------------------------------------------
    def use_channels_last(self) -> None:
        """Weights and 4-D inputs in channels-last layout from now on (`trainer.channels_last`)."""
        self.memory_format = torch.channels_last
        self.network.to(memory_format=torch.channels_last)

    def compiled_parts(self) -> list[nn.Module]:
        """The modules this task calls directly: what `trainer.compile` compiles."""
        return [self.network]

    def compile_network(self, mode: str) -> None:
        """Each of `compiled_parts` through `torch.compile` in place (`nn.Module.compile`: its
        `state_dict` keys stay those of the eager module, so checkpoints load either way)."""
        if not torch.cuda.is_available():
            from dlwp.model.fused_loop import check_cpu_compiler

            check_cpu_compiler("trainer.compile")
        for part in self.compiled_parts():
            part.compile(mode=mode)
        self.cuda_graphs = mode == "reduce-overhead"

    def begin_step(self) -> None:
        """A new step: under CUDA graphs the last step's graph outputs may now be overwritten (a
        step calls its networks several times, so the graph trees cannot tell steps apart)."""
        if self.cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()

    def formatted(self, inputs: tree.Part) -> tree.Part:
        if self.memory_format is torch.contiguous_format:
            return inputs
        return tree.apply(lambda t: t.contiguous(memory_format=self.memory_format) if t.dim() == 4 else t, inputs)

    def forward(self, inputs: tree.Part) -> tree.Part:
        return self.network(self.formatted(inputs))

    def metric_names(self) -> list[str]:
        """Every `stage/metric` this task logs."""
        return [f"{stage}/{name}" for stage in STAGES for name in getattr(self, f"{stage}_metrics")]

    def _step(self, stage: str, batch, batch_idx: int) -> torch.Tensor:
        self.begin_step()
        inputs, targets = batch
        outputs = self.network(self.formatted(inputs))
        metrics = getattr(self, f"{stage}_metrics")
        loss = self.objective(outputs, targets, metrics)
        if self.regularized:
            loss = loss + self.network.regularization_loss()
        compat.fast_update(metrics["loss"], loss.detach(), tree.length(targets))
        if batch_idx == 0:
            # Logging a Metric object registers it: Lightning calls its compute() once at epoch end,
            # over every update of the epoch. Once per epoch is enough, and `self.log` on every
            # step would cost more than the step itself for the book's small networks.
            for name, metric in metrics.items():
                self.log(
                    f"{stage}/{name}",
                    metric,
                    on_step=False,
                    on_epoch=True,
                    prog_bar=stage != "test" and "/" not in name,
                )
        return loss

    def training_step(self, batch, batch_idx):
        """One optimiser step per batch; `batch` may be a `BatchGroup` (`data.batches_per_call`)."""
        for i, one in enumerate(batch if isinstance(batch, BatchGroup) else [batch]):
            loss = self._step("train", one, batch_idx + i)
            self.optimise(self.slots["main"], loss)

    def optimise(self, slot: OptimizerSlot, loss: torch.Tensor) -> None:
        """Backward and, every `accumulate` batches, clip (Keras' `clipnorm`/`clipvalue`), step, and
        advance a per-step schedule.

        On one process without a gradient scaler the step talks to torch directly (`_direct`):
        Lightning's backward and optimiser wrappers call several callback hooks per step, which
        cost as much as a whole step of the book's small networks; with DDP or 16-bit AMP
        Lightning's own path is used.
        """
        lightning_optimizer = self._lightning_optimizer(slot)
        if self.accumulate > 1:
            loss = loss / self.accumulate
        if self._pending == 0:
            slot.optimizer.zero_grad(set_to_none=True)
        if torch.is_autocast_enabled(self.device.type):  # checked first: entering a context costs ~6 µs a step
            # a training step runs inside autocast (bf16-mixed), and the backward's ops would be
            # autocast again, a cast around each small kernel (x0.5 on the Jena GRU); outside it they
            # run in the dtypes of their forward ops (docs/PERFORMANCE.md, bfloat16 on the CPU)
            with torch.autocast(self.device.type, enabled=False):
                self._backward(loss)
        else:
            self._backward(loss)
        self._pending += 1
        if self._pending == self.accumulate:
            self._step_optimizer(slot, lightning_optimizer)

    def _backward(self, loss: torch.Tensor) -> None:
        if self._direct:
            loss.backward()
        else:
            self.manual_backward(loss)

    def _step_optimizer(self, slot: OptimizerSlot, lightning_optimizer) -> None:
        self._pending = 0
        if self._direct:
            slot.clip()
            compat.counted_step(lightning_optimizer, slot.optimizer.step)
        else:
            if slot.clipnorm is not None:
                self.clip_gradients(
                    lightning_optimizer, gradient_clip_val=slot.clipnorm, gradient_clip_algorithm="norm"
                )
            if slot.clipvalue is not None:
                self.clip_gradients(
                    lightning_optimizer, gradient_clip_val=slot.clipvalue, gradient_clip_algorithm="value"
                )
            lightning_optimizer.step()
        if slot.schedule is not None and slot.schedule.per_step:
            slot.schedule.step()

    def _lightning_optimizer(self, slot: OptimizerSlot):
        """Lightning's wrapper of `slot`'s optimiser: looked up once per fit (`on_train_start`)."""
        return self._wrapped_optimizers.get(slot.name) or self._wrapped_optimizer_lookup(slot.name)

    def _wrapped_optimizer_lookup(self, name: str):
        optimizers = self.optimizers()
        optimizers = optimizers if isinstance(optimizers, list) else [optimizers]
        return optimizers[list(self.slots).index(name)]

    def on_train_start(self) -> None:
        self._epoch_losses = []
        precision = str(self.trainer.precision)
        direct = self.trainer.world_size == 1 and precision not in ("16-mixed", "16", "16-true")
        self._direct = direct and compat.LIGHTNING_OK
        # Lightning wraps the optimisers once per fit, before this hook: looked up once, not per batch.
        self._wrapped_optimizers = {name: self._wrapped_optimizer_lookup(name) for name in self.slots}

    def on_train_end(self) -> None:
        self._wrapped_optimizers = {}

    def validation_step(self, batch, batch_idx):
        self._step("val", batch, batch_idx)

    def test_step(self, batch, batch_idx):
        self._step("test", batch, batch_idx)

    def predict_step(self, batch, batch_idx):
        return self.predict(self(batch[0]))

    def on_train_epoch_start(self) -> None:
        torch.manual_seed(self.seed * 100_003 + 7919 * (self.current_epoch + 1))
        for name, slot in self.slots.items():
            if slot.schedule is not None:  # the learning rate this epoch trains with, in metrics.csv
                self.log(f"lr/{name}", slot.optimizer.param_groups[0]["lr"], on_step=False, on_epoch=True)

    def on_train_epoch_end(self) -> None:
        """Finish the epoch's optimisation (a partial accumulation, epoch-level schedules), then stop
        a diverged run at the end of the epoch it diverged in, with a message that says so: the
        epochs after a NaN loss learn nothing, and a sweep must see the trial fail."""
        if self._pending:
            slot = self.slots["main"]
            self._step_optimizer(slot, self._lightning_optimizer(slot))
        metrics = {k: float(v) for k, v in self.trainer.callback_metrics.items()}
        for slot in self.slots.values():
            if slot.schedule is not None and not slot.schedule.per_step:
                slot.schedule.epoch_end(metrics)
        loss = float(self.train_metrics["loss"].compute())  # the value Lightning logs (cached)
        self._epoch_losses.append(loss)
        check_divergence(self, self._epoch_losses, self.current_epoch + 1)

    def loss_ceiling(self) -> float | None:
        """The largest value the training loss can take (a clipped cross-entropy's), or None."""
        return None

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.run_config is not None:
            checkpoint["dlwp"] = {"config": self.run_config}
        schedules = {n: s.schedule.state_dict() for n, s in self.slots.items() if s.schedule is not None}
        if schedules:
            checkpoint.setdefault("dlwp", {})["schedules"] = schedules

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # called before configure_optimizers on resume: kept until the schedules exist
        self._schedule_states = dict(checkpoint.get("dlwp", {}).get("schedules", {}))

    def configure_optimizers(self):
        max_epochs = self.trainer.max_epochs if self._trainer is not None else None
        self.slots = {name: make_slot(name, params, config, max_epochs)
                      for name, (params, config) in self.optimizer_specs().items()}  # fmt: skip
        for name, state in self._schedule_states.items():
            if name in self.slots and self.slots[name].schedule is not None:
                self.slots[name].schedule.load_state_dict(state)
        return [slot.optimizer for slot in self.slots.values()]


STUCK_EPOCHS = 3
"""Epochs with an unchanged training loss after which a run counts as not learning."""
LEARNT_LOSS = 1e-4
"""A training loss below this has converged: a loss that no longer moves there is not "stuck"."""


def check_divergence(task: BookTask, losses: list[float], epoch: int) -> None:
    """Stop a diverged run at the end of the epoch it diverged in, with a message that says so: the
    epochs after it learn nothing, and a sweep must see the trial fail. Its signs: a NaN or
    infinite loss or weight; a mean loss at the ceiling of Keras' clipped loss, which stays finite
    however far the weights have gone (`lr=1e9` gives 14.1 of at most 16.1); a loss that has not
    moved at all for `STUCK_EPOCHS` epochs (saturated outputs, dead units), unless it has reached
    ~0 (below `LEARNT_LOSS`: the training set is learnt, as on digits after a few hundred epochs)."""
    from dlwp.errors import TrainingDivergedError

    fix = "Lower task.optimizer.lr, or clip gradients (task.optimizer.clipnorm)."
    loss = losses[-1]
    if not math.isfinite(loss):
        raise TrainingDivergedError(f"train/loss is {loss} at epoch {epoch}: the optimisation diverged. {fix}")
    broken = [name for name, p in task.named_parameters() if not bool(torch.isfinite(p).all())]
    if broken:
        raise TrainingDivergedError(
            f"{len(broken)} weight tensor(s) hold NaN or inf after epoch {epoch} ({', '.join(broken[:3])}): "
            f"the optimisation diverged. {fix}"
        )
    ceiling = task.loss_ceiling()
    if ceiling is not None and loss >= 0.5 * ceiling:
        raise TrainingDivergedError(
            f"train/loss is {loss:.4f} at epoch {epoch}, near the ceiling of Keras' clipped loss ({ceiling:.2f}): "
            f"the network predicts the wrong class with certainty for most samples; the optimisation diverged. {fix}"
        )
    recent = losses[-STUCK_EPOCHS:]
    learnt = abs(loss) < LEARNT_LOSS  # a loss this close to 0 has nothing left to move: converged, not stuck
    if len(recent) == STUCK_EPOCHS and not learnt and max(recent) - min(recent) <= 1e-7 * max(1.0, abs(loss)):
        raise TrainingDivergedError(
            f"train/loss has stayed at {loss:.6g} for {STUCK_EPOCHS} epochs (to epoch {epoch}): the network is not "
            f"learning (saturated outputs or dead units, typically after a too-large step). {fix}"
        )


def _plain(config) -> dict[str, Any]:
    """An optimiser config (dataclass, DictConfig or dict) as a plain dict with string enums."""
    import dataclasses

    from omegaconf import OmegaConf

    if dataclasses.is_dataclass(config) or OmegaConf.is_config(config):
        return OmegaConf.to_container(OmegaConf.structured(config), resolve=True, enum_to_str=True)
    return {k: getattr(v, "value", v) for k, v in dict(config).items()}
