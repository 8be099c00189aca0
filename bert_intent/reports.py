"""What training did, in numbers a practitioner reads: per-epoch history, summary, report files."""

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, List, Sequence

import numpy as np
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score

REPORT_FILE = "classification_report.json"
CONFUSION_FILE = "confusion_matrix.json"
CURVES_FILE = "training_curves.png"
HISTORY_FILE = "history.json"


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
            }
    return [
        {"epoch": epoch, **({"train_loss": float(np.mean(train_losses[epoch]))} if epoch in train_losses else {}),
         **validation.get(epoch, {})}
        for epoch in sorted(set(train_losses) | set(validation))
    ]


def write_reports(
    directory: Path,
    labels: Sequence[str],
    true_ids: Sequence[int],
    predicted_ids: Sequence[int],
    history: List[Dict[str, float]],
) -> None:
    """Per-intent report and confusion matrix on the validation set (JSON), the history, and its plot."""
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


def _write_json(path: Path, content: Any) -> None:
    path.write_text(json.dumps(content, ensure_ascii=False, indent=2), encoding="utf-8")


def _plot_curves(path: Path, history: List[Dict[str, float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    from matplotlib import pyplot

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
