"""What a model must beat: the trivial baselines of a task's test split, recorded with every run.

Book 3.6 prints the accuracy of a random classifier (~0.18 on Reuters) next to its result; smoke
tests assert that learning beats the majority class (classification) or the mean target
(regression). Both come from the data alone.
"""

from __future__ import annotations

import torch


def baselines(problem: str, train_y: torch.Tensor, test_y: torch.Tensor) -> dict[str, float]:
    if problem == "regression":
        mean = train_y.float().mean()
        return {"mean_target_mae": (test_y.float() - mean).abs().mean().item()}
    if problem == "multiclass":
        classes = int(max(train_y.max(), test_y.max())) + 1
        train_counts = torch.bincount(train_y.long(), minlength=classes)
        test_freq = torch.bincount(test_y.long(), minlength=classes).double() / len(test_y)
        return {
            "majority_acc": test_freq[train_counts.argmax()].item(),
            # book 3.6's shuffled-labels classifier; its expected accuracy is sum_c p_c^2
            "random_acc": test_freq.square().sum().item(),
        }
    y = test_y.float().reshape(len(test_y), -1)
    majority = (train_y.float().reshape(len(train_y), -1).mean(0) > 0.5).float()
    p = y.mean(0)
    return {
        "majority_acc": (y == majority).float().mean().item(),
        "random_acc": (p.square() + (1 - p).square()).mean().item(),
    }
