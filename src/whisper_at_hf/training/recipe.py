"""Training-recipe pieces shared by both scripts: collators, balanced sampling, mixup, label smoothing, weight averaging.

Randomness that affects the weights is drawn from generators seeded by `(seed, epoch)` or `(seed, global_step)`,
never from global state, so a run resumed from a checkpoint replays exactly the batches and mixes it would have had.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Sampler

from .data import AudioDecodeError, crop_or_pad, decode_audio
from .features import POOLED_COLUMN

LABELS_KEY = "audio_labels"


# ----------------------------------------------------------------------------------------------------------------------
# Collators
# ----------------------------------------------------------------------------------------------------------------------
class PooledFeatureCollator:
    """Rows of a feature-cache dataset -> `{"pooled_hidden_states": (B, L, T, d) float32, "audio_labels": (B, C)}`."""

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        pooled = torch.stack([torch.as_tensor(np.asarray(row[POOLED_COLUMN])) for row in rows]).float()
        labels = torch.stack([torch.as_tensor(np.asarray(row[LABELS_KEY], dtype=np.float32)) for row in rows])
        return {POOLED_COLUMN: pooled, LABELS_KEY: labels}


class AudioFeatureCollator:
    """Rows with an undecoded audio column -> `{"input_features": (B, 80, 3000), "audio_labels": (B, C)}`.

    Each clip is cropped/zero-padded to `at_time_res` seconds (one tagging window per clip, as in the recipe).
    Rows are expected to be readable (see [`find_unreadable_audio`]).
    """

    def __init__(self, feature_extractor: Any, audio_column: str = "audio", at_time_res: float = 10.0):
        self.feature_extractor = feature_extractor
        self.audio_column = audio_column
        self.at_time_res = at_time_res

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        audios = [crop_or_pad(decode_audio(row[self.audio_column]), self.at_time_res) for row in rows]
        features = self.feature_extractor(
            audios, sampling_rate=self.feature_extractor.sampling_rate, return_tensors="pt"
        ).input_features
        labels = torch.stack([torch.as_tensor(np.asarray(row[LABELS_KEY], dtype=np.float32)) for row in rows])
        return {"input_features": features, LABELS_KEY: labels}


def find_unreadable_audio(dataset: Any, audio_column: str) -> dict[int, str]:
    """`{row: error}` for rows whose audio cannot be decoded (used when features are not cached)."""
    errors = {}
    for row, cell in enumerate(dataset[audio_column]):
        try:
            decode_audio(cell)
        except AudioDecodeError as error:
            errors[row] = str(error)
    return errors


# ----------------------------------------------------------------------------------------------------------------------
# Sampling
# ----------------------------------------------------------------------------------------------------------------------
def balanced_sample_weights(targets: np.ndarray) -> np.ndarray:
    """AudioSet-style balancing: a clip's weight is the sum over its classes of 1 / (class frequency).

    `targets`: multi-hot `(N, C)`. Rows without any positive class get the smallest non-zero weight.
    """
    targets = np.asarray(targets, dtype=np.float64)
    counts = targets.sum(axis=0)
    inverse = np.divide(1.0, counts, out=np.zeros_like(counts), where=counts > 0)
    weights = targets @ inverse
    positive = weights[weights > 0]
    weights[weights <= 0] = positive.min() if positive.size else 1.0
    return weights / weights.sum()


class EpochSampler(Sampler[int]):
    """Shuffles (or, with `weights`, draws with replacement) from a generator seeded by `seed + epoch`.

    Call `set_epoch(epoch)` before each epoch; the order then depends only on `(seed, epoch)`, which makes resuming
    mid-epoch exact.
    """

    def __init__(self, num_rows: int, seed: int = 0, weights: np.ndarray | None = None, shuffle: bool = True):
        self.num_rows = num_rows
        self.seed = seed
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.float64)
        self.shuffle = shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_rows

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        if self.weights is not None:
            order = torch.multinomial(self.weights, self.num_rows, replacement=True, generator=generator)
        elif self.shuffle:
            order = torch.randperm(self.num_rows, generator=generator)
        else:
            order = torch.arange(self.num_rows)
        return iter(order.tolist())


# ----------------------------------------------------------------------------------------------------------------------
# Mixup and label smoothing
# ----------------------------------------------------------------------------------------------------------------------
def step_rng(seed: int, global_step: int, process_index: int = 0) -> np.random.Generator:
    """A random generator that depends only on `(seed, global_step, process_index)`."""
    return np.random.default_rng([seed, global_step, process_index])


def mixup(
    features: torch.Tensor, labels: torch.Tensor, alpha: float, rng: np.random.Generator, probability: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixes each example with a random partner of the batch: `lam * x + (1 - lam) * x[perm]`, labels likewise.

    `lam ~ Beta(alpha, alpha)` per example; each example is mixed with `probability`. Works on any feature shape
    `(B, ...)` (pooled states or log-mel); `labels`: `(B, C)`.
    """
    if alpha <= 0 or features.shape[0] < 2:
        return features, labels
    batch = features.shape[0]
    lam = rng.beta(alpha, alpha, size=batch)
    lam = np.where(rng.random(batch) < probability, lam, 1.0)
    perm = torch.as_tensor(rng.permutation(batch), device=features.device)
    lam_x = torch.as_tensor(lam, dtype=features.dtype, device=features.device).view(batch, *([1] * (features.dim() - 1)))
    lam_y = torch.as_tensor(lam, dtype=labels.dtype, device=labels.device).view(batch, 1)
    return lam_x * features + (1 - lam_x) * features[perm], lam_y * labels + (1 - lam_y) * labels[perm.to(labels.device)]


def smooth_labels(labels: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Multi-label smoothing: positives -> `1 - smoothing`, negatives -> `smoothing` (per class, BCE targets)."""
    if smoothing <= 0:
        return labels
    return labels * (1 - 2 * smoothing) + smoothing


# ----------------------------------------------------------------------------------------------------------------------
# Weight averaging
# ----------------------------------------------------------------------------------------------------------------------
class WeightAverager:
    """Running mean of a module's weights over the epochs from `start_epoch` on (the recipe's late-epoch averaging).

    `update(module, epoch)` after each epoch; `apply(module)` loads the mean. `state_dict()` / `load_state_dict()`
    let it travel with checkpoints.
    """

    def __init__(self, start_epoch: int):
        self.start_epoch = start_epoch
        self.count = 0
        self.average: dict[str, torch.Tensor] | None = None

    def update(self, module: torch.nn.Module, epoch: int) -> bool:
        if epoch < self.start_epoch:
            return False
        current = {key: value.detach().to("cpu", torch.float64).clone() for key, value in module.state_dict().items()}
        if self.average is None:
            self.average = current
        else:
            for key, value in current.items():
                self.average[key] += (value - self.average[key]) / (self.count + 1)
        self.count += 1
        return True

    def apply(self, module: torch.nn.Module) -> bool:
        if self.average is None:
            return False
        reference = module.state_dict()
        module.load_state_dict({key: value.to(reference[key].dtype) for key, value in self.average.items()})
        return True

    def state_dict(self) -> dict[str, Any]:
        return {"start_epoch": self.start_epoch, "count": self.count, "average": copy.deepcopy(self.average)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.start_epoch, self.count, self.average = state["start_epoch"], state["count"], state["average"]
