"""The training progress bar: what its count means."""

from __future__ import annotations

import lightning as L
import torch

from dlwp.callbacks import ThrottledProgressBar
from dlwp.data.batches import GroupedBatches, TensorBatches


class _Idle(L.LightningModule):
    """Counts the batches it is handed; takes no optimiser step."""

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.batches = 0

    def training_step(self, batch, batch_idx):
        self.batches += len(batch) if isinstance(batch, list) else 1

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit(group: int) -> tuple[ThrottledProgressBar, _Idle]:
    split = (torch.arange(20.0)[:, None], torch.zeros(20))
    batches = TensorBatches(split, batch_size=2)  # 10 batches
    loader = GroupedBatches(batches, group) if group > 1 else batches
    bar, module = ThrottledProgressBar(), _Idle()
    trainer = L.Trainer(max_epochs=1, callbacks=[bar], logger=False, enable_checkpointing=False,
                        enable_model_summary=False, accelerator="cpu")  # fmt: skip
    trainer.fit(module, train_dataloaders=loader)
    return bar, module


def test_a_bar_over_grouped_batches_counts_calls_and_says_how_many_batches_each_holds():
    bar, module = _fit(group=4)
    assert module.batches == 10  # every batch was handed over, in 3 calls (4 + 4 + 2)
    shown = bar.train_progress_bar
    assert shown.total == 3 and shown.n == 3
    assert shown.unit == "call" and "(4 batches a call)" in shown.desc


def test_a_bar_over_single_batches_keeps_lightnings_wording():
    bar, module = _fit(group=1)
    shown = bar.train_progress_bar
    assert module.batches == 10 and shown.total == 10
    assert shown.unit == "it" and "batches a call" not in shown.desc
