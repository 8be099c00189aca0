"""Training time of the example bot with bert-base-chinese's architecture, through `rasa train nlu`.

    .venv/bin/python benchmarks/train_speed.py [--epochs 2 0] [--systems today ours ours-frozen]
                                               [--today-ref 10681a8] [--rounds 1]

The network is bert-base-chinese's architecture (12 layers, hidden 768) with random weights and
bert-base-chinese's tokenizer (read from the pretrained stand-in ../shared/models/zh-bert-mini-proxy,
which shares its vocabulary): the Hub is out of reach, and the time does not depend on the weights.
The data is example_bot/data/nlu.yml as it is; each run is `rasa train nlu` in a fresh subprocess,
the systems taking turns within each round so that a noisy machine weighs on all of them alike.

Systems:
- `today`: the component at `--today-ref` (10681a8: before the speed work of this issue);
- `ours`: this checkout's component, defaults only (`mixed_precision: auto`: bf16 where the CPU
  computes it, float32 elsewhere);
- `ours-frozen`: the same with `freeze_embeddings: true`;
- `ours-float32`: the same with `mixed_precision: "no"` (float32 training on any CPU).

`--epochs 2` fixes two epochs, where the fixed costs show; `0` is the component's own choice.
Printed per run and as medians over the rounds (seconds): the whole `rasa train nlu`; loading the
checkpoint; the closed-form heads' fits; the optimizer steps with their evaluations (transformers'
`Trainer.train`); the held-out fits after the steps (representations, weights, calibration,
multi-intent decision); the threshold's check against 1000 generated gibberish messages as the served
model scores them (`held_out.checked_against_served`); the export (`IntentModel.save`); the rest
(tokenizing, Rasa); then the steps taken and the ratio of the whole to `today`'s in the same round.
Without ../shared (or $SHARED_DIR) it says so and exits.
"""

import argparse
import functools
import importlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_inference import BERT_BASE_CHINESE  # noqa: E402
from few_shot import PROXY, REPOSITORY, export_package, run_job, train_nlu_model, worker_or_skip  # noqa: E402

NLU_DATA = REPOSITORY / "example_bot" / "data" / "nlu.yml"
SETTINGS = {"today": {}, "ours": {}, "ours-frozen": {"freeze_embeddings": True}, "ours-float32": {"mixed_precision": "no"}}
# (module, attribute, phase): the functions whose time is summed per phase where the version has them;
# a call inside another timed call counts for the outer one only.
TIMED = (
    ("bert_intent.checkpoints", "starting_point", "load"),
    ("bert_intent.training", "_fit_closed_form_heads", "closed-form fits"),
    ("transformers", "Trainer.train", "steps"),
    ("bert_intent.held_out", "outputs", "held-out fits"),
    ("bert_intent.held_out", "fit", "held-out fits"),
    ("bert_intent.multi_intent", "fit_on_held_out", "held-out fits"),
    ("bert_intent.held_out", "checked_against_served", "threshold check"),
    ("bert_intent.model", "IntentModel.save", "export"),
)
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
PHASES = tuple(dict.fromkeys(phase for _, _, phase in TIMED))
COLUMNS = ("seconds",) + PHASES + ("rest", "optimizer steps")


# The phases of the timed calls under way (a nested call counts for the outer one only).
_active: List[str] = []


def timed(function: Callable[..., Any], phase: str, spent: Dict[str, float], steps: List[int]) -> Callable[..., Any]:
    """`function`, adding the seconds of each outermost timed call to `spent[phase]` (and a Trainer's
    steps to `steps`)."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if _active:
            return function(*args, **kwargs)
        _active.append(phase)
        started = time.perf_counter()
        try:
            result = function(*args, **kwargs)
        finally:
            spent[phase] += time.perf_counter() - started
            _active.pop()
        if phase == "steps":
            steps.append(int(result.global_step))
        return result

    return wrapper


def worker(job: Dict[str, Any]) -> Dict[str, Any]:
    """Train the example bot with `job`'s pipeline through `rasa train nlu`; the time of each phase."""
    spent = {phase: 0.0 for phase in PHASES}
    steps: List[int] = []
    for module_name, attribute, phase in TIMED:
        owner: Any = importlib.import_module(module_name)
        *path, name = attribute.split(".")
        for part in path:
            owner = getattr(owner, part)
        if hasattr(owner, name):
            setattr(owner, name, timed(getattr(owner, name), phase, spent, steps))
    with tempfile.TemporaryDirectory(prefix="train-speed-") as scratch:
        started = time.perf_counter()
        train_nlu_model(Path(scratch), NLU_DATA, job["pipeline"], job["seed"])
        seconds = time.perf_counter() - started
    return {"seconds": seconds, **spent, "rest": seconds - sum(spent.values()), "optimizer steps": sum(steps)}


def random_bert_base(directory: Path) -> Path:
    """bert-base-chinese's architecture with random weights and its tokenizer, saved as a checkpoint."""
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    BertModel(BertConfig(**BERT_BASE_CHINESE)).save_pretrained(directory)
    for name in TOKENIZER_FILES:
        if (PROXY / name).is_file():
            shutil.copy(PROXY / name, directory / name)
    return directory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", nargs="+", type=int, default=[2, 0], help="0: the component's own choice")
    parser.add_argument("--systems", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--today-ref", default="10681a8", help="git revision of the `today` component")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if worker_or_skip(arguments.worker, worker):
        return
    print(f"{os.cpu_count()} CPUs; torch threads as the machine gives them", flush=True)
    with tempfile.TemporaryDirectory(prefix="train-speed-today-") as today, \
            tempfile.TemporaryDirectory(prefix="train-speed-bert-base-") as checkpoint:
        roots = {"today": Path(today), **{system: REPOSITORY for system in SETTINGS if system != "today"}}
        if "today" in arguments.systems:
            export_package(arguments.today_ref, today)
        random_bert_base(Path(checkpoint))
        header = f"{'epochs':<7} {'system':<12} " + " ".join(f"{column:>{max(8, len(column))}}" for column in COLUMNS) + " vs today"
        for epochs in arguments.epochs:
            runs: Dict[str, List[Dict[str, Any]]] = {system: [] for system in arguments.systems}
            for round_number in range(1, arguments.rounds + 1):
                for system in arguments.systems:
                    component = {"name": "bert_intent.BertIntentClassifier", "model_name": checkpoint,
                                 **SETTINGS[system], **({"epochs": epochs} if epochs else {})}
                    job = {"name": f"{system} epochs {epochs or 'auto'} round {round_number}", "seed": 1,
                           "pipeline": [component]}
                    runs[system].append(run_job(job, roots[system], __file__))
                    print(f"  {job['name']}: " + json.dumps({key: round(value, 1) for key, value in runs[system][-1].items()}),
                          flush=True)
            print(header, flush=True)
            for system, results in runs.items():
                median = {column: statistics.median(result[column] for result in results) for column in COLUMNS}
                ratios = [ours["seconds"] / base["seconds"] for ours, base in zip(results, runs.get("today", []))]
                ratio = f"{statistics.median(ratios):>7.2f}x" if ratios else ""
                print(f"{epochs or 'auto':<7} {system:<12} "
                      + " ".join(f"{median[column]:>{max(8, len(column))}.1f}" for column in COLUMNS) + f" {ratio}", flush=True)


if __name__ == "__main__":
    main()
