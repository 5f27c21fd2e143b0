"""Audio-tagging metric for `evaluate`: macro mAP (AudioSet style) and, for single-label data, accuracy.

Load it offline by path: `evaluate.load(whisper_at_hf.metrics.AUDIO_TAGGING_METRIC)`.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
Macro mean average precision over classes, as reported for AudioSet: for every class with at least one positive
reference, the average precision of the scores (area under the step precision-recall curve, tied scores grouped),
then the mean over those classes. When every reference has exactly one positive class, top-1 accuracy is added.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: per-class scores, shape (N, C) (logits or probabilities; only the order matters).
    references: multi-hot targets, shape (N, C) (values > 0.5 count as positive).
Returns:
    mAP: macro mean average precision over classes with positives.
    num_classes_scored: how many classes had positives.
    accuracy: top-1 accuracy, only when every reference has exactly one positive.
Example:
    >>> metric = evaluate.load("path/to/whisper_at_hf/metrics/audio_tagging")
    >>> metric.compute(predictions=[[0.9, 0.1], [0.2, 0.7]], references=[[1, 0], [0, 1]])
    {'mAP': 1.0, 'num_classes_scored': 2, 'accuracy': 1.0}
"""

_CITATION = """
@inproceedings{gong_whisperat,
  author={Gong, Yuan and Khurana, Sameer and Karlinsky, Leonid and Glass, James},
  title={Whisper-AT: Noise-Robust Automatic Speech Recognizers are Also Strong General Audio Event Taggers},
  year={2023},
  booktitle={Proc. Interspeech 2023}
}
"""


def average_precision(scores: np.ndarray, positives: np.ndarray) -> float:
    """Average precision of one class: sum over score thresholds of (recall step) x precision."""
    order = np.argsort(-scores, kind="mergesort")
    scores, positives = scores[order], positives[order].astype(np.float64)
    last_of_tie = np.r_[np.where(np.diff(scores))[0], len(scores) - 1]
    true_pos = np.cumsum(positives)[last_of_tie]
    precision = true_pos / (last_of_tie + 1)
    recall = true_pos / true_pos[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class AudioTagging(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float32")),
                    "references": datasets.Sequence(datasets.Value("float32")),
                }
            ),
        )

    def _compute(self, predictions, references):
        scores = np.asarray(predictions, dtype=np.float64)
        targets = np.asarray(references, dtype=np.float64) > 0.5
        if scores.ndim != 2 or scores.shape != targets.shape:
            raise ValueError(f"predictions {scores.shape} and references {targets.shape} must both be (N, C)")
        scored = [c for c in range(targets.shape[1]) if targets[:, c].any()]
        if not scored:
            raise ValueError("No class has a positive reference: mAP is undefined.")
        result = {
            "mAP": float(np.mean([average_precision(scores[:, c], targets[:, c]) for c in scored])),
            "num_classes_scored": len(scored),
        }
        if np.all(targets.sum(axis=1) == 1):
            result["accuracy"] = float(np.mean(scores.argmax(axis=1) == targets.argmax(axis=1)))
        return result
