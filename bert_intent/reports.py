"""What training did, in numbers a practitioner reads: per-epoch history, summary, report files."""

import json
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score

from bert_intent.confidence import RELIABILITY_BINS, expected_calibration_error
from bert_intent.settings import Settings

REPORT_FILE = "classification_report.json"
CONFUSION_FILE = "confusion_matrix.json"
CURVES_FILE = "training_curves.png"
HISTORY_FILE = "history.json"
RELIABILITY_FILE = "reliability_diagram.png"
HISTOGRAM_FILE = "confidence_histograms.png"


@dataclass
class ConfidenceReport:
    """Calibrated confidences (messages x intents) of the validation messages, with their true intent
    ids, and of generated gibberish; the recommended threshold."""

    validation_ids: np.ndarray
    validation_confidences: np.ndarray
    gibberish_confidences: np.ndarray
    threshold: float

    def gibberish_caught(self) -> float:
        """The share of gibberish whose top confidence is below the threshold."""
        return float(np.mean(self.gibberish_confidences.max(axis=-1) < self.threshold))

    def kept(self) -> float:
        """The share of validation messages whose top confidence reaches the threshold."""
        return float(np.mean(self.validation_confidences.max(axis=-1) >= self.threshold))

    def expected_calibration_error(self) -> float:
        top = self.validation_confidences.max(axis=-1)
        return expected_calibration_error(top, self.correct())

    def correct(self) -> np.ndarray:
        """Whether each validation message's top intent is its true one."""
        return self.validation_confidences.argmax(axis=-1) == self.validation_ids


def scores(true_ids: Sequence[int], predicted_ids: Sequence[int]) -> Dict[str, float]:
    """Accuracy and macro-F1 (the fair measure when intents are imbalanced)."""
    return {
        "accuracy": float(accuracy_score(true_ids, predicted_ids)),
        "macro_f1": float(f1_score(true_ids, predicted_ids, average="macro", zero_division=0)),
    }


def epoch_history(log_history: List[Dict[str, Any]]) -> List[Dict[str, float]]:
    """One row per epoch from Trainer's log: mean training loss, validation loss and scores."""
    train_losses: Dict[int, List[float]] = defaultdict(list)
    validation: Dict[int, Dict[str, float]] = {}
    for entry in log_history:
        epoch = math.ceil(entry.get("epoch", 0) - 1e-9)  # a step logged at epoch 2.4 belongs to epoch 3
        if "loss" in entry:
            train_losses[epoch].append(float(entry["loss"]))
        if "eval_loss" in entry:
            validation[epoch] = {
                "validation_loss": float(entry["eval_loss"]),
                "accuracy": float(entry["eval_accuracy"]),
                "macro_f1": float(entry["eval_macro_f1"]),
                **({"entity_f1": float(entry["eval_entity_f1"])} if "eval_entity_f1" in entry else {}),
            }
    return [
        {"epoch": epoch, **({"train_loss": float(np.mean(train_losses[epoch]))} if epoch in train_losses else {}),
         **validation.get(epoch, {})}
        for epoch in sorted(set(train_losses) | set(validation))
    ]


def training_summary(
    history: List[Dict[str, float]],
    best_epoch: Optional[int],
    settings: Settings,
    optimizer_steps: int,
    train_size: int,
    validation_size: int,
) -> Dict[str, Any]:
    """Epochs run and, with validation, the best epoch (the one kept) and its scores."""
    summary: Dict[str, Any] = {
        "epochs_run": history[-1]["epoch"] if history else 0,
        "epochs": settings.epochs,
        "optimizer_steps": optimizer_steps,
        "train_examples": train_size,
        "validation_examples": validation_size,
    }
    if best_epoch is not None:
        best = next(row for row in history if row["epoch"] == best_epoch)
        summary.update(
            best_epoch=best["epoch"], validation_accuracy=best["accuracy"], validation_macro_f1=best["macro_f1"]
        )
        if "entity_f1" in best:
            summary.update(validation_entity_f1=best["entity_f1"])
    return summary


def summary_line(summary: Dict[str, Any]) -> str:
    """The training log's closing line: what ran, what the held-out examples chose and how each part did."""
    line = (
        f"Trained {summary['epochs_run']} of {summary['epochs']} epochs ({summary['epochs_reason']}"
        f"{'; stopped early' if summary['epochs_run'] < summary['epochs'] else ''}) at learning rate "
        f"{summary['learning_rate']:.1e} ({summary['learning_rate_reason']})"
    )
    gibberish = f"catches {summary['gibberish_caught']:.1%} of {summary['gibberish_checks']} generated gibberish messages"
    threshold = f"fallback threshold: {summary['recommended_threshold']:.2f}, applied by BertFallbackClassifier"
    if "best_epoch" not in summary:
        return line + (
            "; nothing was held out (validation_split is 0, or no intent has 4 examples), so the last epoch is "
            f"kept and the heads' weights and the calibration are the priors; {threshold} (the prior; it {gibberish})."
        )
    parts, intents, tags = summary["held_out_parts"], summary["intent_weights"], summary["tag_weights"]
    tag_part = (
        f"; entity span F1: tagger {parts['encoder_entity_f1']:.3f}, n-grams {parts['ngrams_entity_f1']:.3f}, "
        f"combined {parts['served_entity_f1']:.3f}, weights {tags['encoder']:.2f} and {tags['ngrams']:.2f}, "
        f"decoded {parts['decoded_entity_f1']:.3f} with the training tags' transitions weighted {summary['tag_transition_weight']:.2f}"
        if "served_entity_f1" in parts else ""
    )
    return line + (
        f"; kept epoch {summary['best_epoch']}, the best of the encoder head's own held-out macro-F1 "
        f"({summary['validation_macro_f1']:.3f}{_entity_part(summary)}) on {summary['validation_examples']} held-out "
        f"examples. On them: encoder head alone {parts['encoder']:.3f}{_cross_fitted_part(parts)}, "
        f"n-gram head alone {parts['ngrams']:.3f}, "
        f"served {parts['served']:.3f} (weights chosen: encoder {intents['encoder']:.2f}, n-grams {intents['ngrams']:.2f})"
        f"{tag_part}; calibrated on them, expected calibration error {summary['expected_calibration_error']:.3f}; "
        f"{threshold} (keeps {summary['threshold_kept']:.0%} of them, {gibberish})."
    )


def _cross_fitted_part(parts: Dict[str, float]) -> str:
    if "encoder_cross_fitted" not in parts:
        return ""
    return f" ({parts['encoder_cross_fitted']:.3f} with its epoch chosen on the other half of them)"


def _entity_part(summary: Dict[str, Any]) -> str:
    return f", entity F1 {summary['validation_entity_f1']:.3f}" if "validation_entity_f1" in summary else ""


def write_reports(
    directory: Path,
    labels: Sequence[str],
    true_ids: Sequence[int],
    predicted_ids: Sequence[int],
    history: List[Dict[str, float]],
    confidences: ConfidenceReport,
) -> None:
    """Per-intent report and confusion matrix on the validation set (JSON), the history and its plot,
    the reliability diagram and the confidence histograms (validation messages against gibberish)."""
    directory.mkdir(parents=True, exist_ok=True)
    ids = list(range(len(labels)))
    report = classification_report(
        true_ids, predicted_ids, labels=ids, target_names=list(labels), output_dict=True, zero_division=0
    )
    matrix = confusion_matrix(true_ids, predicted_ids, labels=ids).tolist()
    _write_json(directory / REPORT_FILE, report)
    _write_json(directory / CONFUSION_FILE, {"labels": list(labels), "matrix": matrix})
    _write_json(directory / HISTORY_FILE, history)
    _plot_curves(directory / CURVES_FILE, history)
    _plot_reliability(directory / RELIABILITY_FILE, confidences)
    _plot_histograms(directory / HISTOGRAM_FILE, confidences)


def _write_json(path: Path, content: Any) -> None:
    path.write_text(json.dumps(content, ensure_ascii=False, indent=2), encoding="utf-8")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    from matplotlib import pyplot

    return pyplot


def _plot_reliability(path: Path, report: ConfidenceReport) -> None:
    """Accuracy against mean confidence per confidence bin (a calibrated model lies on the diagonal)."""
    pyplot = _pyplot()
    top = report.validation_confidences.max(axis=-1)
    correct = report.correct()
    bin_ids = np.minimum((top * RELIABILITY_BINS).astype(int), RELIABILITY_BINS - 1)
    used = [bin_id for bin_id in range(RELIABILITY_BINS) if np.any(bin_ids == bin_id)]
    figure, axis = pyplot.subplots(figsize=(5, 5))
    axis.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    axis.bar(
        [(bin_id + 0.5) / RELIABILITY_BINS for bin_id in used],
        [correct[bin_ids == bin_id].mean() for bin_id in used],
        width=1 / RELIABILITY_BINS, edgecolor="black", alpha=0.7, label="accuracy",
    )
    axis.plot([top[bin_ids == bin_id].mean() for bin_id in used], [correct[bin_ids == bin_id].mean() for bin_id in used],
              marker="o", color="tab:red", label="mean confidence vs accuracy")
    axis.set_xlabel("confidence of the predicted intent")
    axis.set_ylabel("accuracy")
    axis.set_title(f"Validation messages (ECE {report.expected_calibration_error():.3f})")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1)
    axis.legend(loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)


def _plot_histograms(path: Path, report: ConfidenceReport) -> None:
    """Top confidences of validation messages (right and wrong) and of generated gibberish."""
    pyplot = _pyplot()
    top = report.validation_confidences.max(axis=-1)
    correct = report.correct()
    figure, axis = pyplot.subplots(figsize=(7, 4))
    bins = np.linspace(0, 1, 21)
    for values, label in (
        (top[correct], "validation, right intent"),
        (top[~correct], "validation, wrong intent"),
        (report.gibberish_confidences.max(axis=-1), "generated gibberish"),
    ):
        if len(values):
            axis.hist(values, bins=bins, alpha=0.5, label=f"{label} ({len(values)})", density=True)
    axis.axvline(report.threshold, color="black", linestyle="--", label=f"recommended threshold {report.threshold:.2f}")
    axis.set_xlabel("confidence of the top intent")
    axis.set_ylabel("density")
    axis.legend(loc="upper center")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)


def _plot_curves(path: Path, history: List[Dict[str, float]]) -> None:
    pyplot = _pyplot()
    figure, loss_axis = pyplot.subplots(figsize=(7, 4))
    for key, label in (("train_loss", "training loss"), ("validation_loss", "validation loss")):
        points = [(row["epoch"], row[key]) for row in history if key in row]
        if points:
            loss_axis.plot(*zip(*points), marker="o", label=label)
    loss_axis.set_xlabel("epoch")
    loss_axis.set_ylabel("loss")
    f1_axis = loss_axis.twinx()
    points = [(row["epoch"], row["macro_f1"]) for row in history if "macro_f1" in row]
    if points:
        f1_axis.plot(*zip(*points), color="tab:green", marker="s", label="validation macro-F1")
    f1_axis.set_ylabel("macro-F1")
    f1_axis.set_ylim(0, 1.05)
    handles = loss_axis.get_legend_handles_labels()[0] + f1_axis.get_legend_handles_labels()[0]
    loss_axis.legend(handles=handles, loc="center right")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
