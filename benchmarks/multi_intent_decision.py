"""Where the multi-intent decision draws its line: single and two-intent messages on its evidence.

    .venv/bin/python benchmarks/multi_intent_decision.py [--cases bot:5:1 bot:10:2 bot:20:1 bot:all:1 cais:all:1]
                                                         [--min-part-tokens N]

A case is data set : single-intent examples per intent (`all`: every one) : draw. Each is trained once,
in-process (`fine_tune`, only `model_name`, to the pretrained stand-in ../shared/models/zh-bert-mini-proxy),
on `multi_intent.py`'s training data of that draw (CAIS: up to 40 per intent), of which k examples per
single intent are drawn (the joined examples are all kept), and tested on `multi_intent.py`'s test
messages: the held-out single-intent messages (the bot's: `few_shot.py`'s test file) and 25 two-intent
messages per multi-intent made of two held-out ones. The messages training fitted its decision on (held-out
singles, the bot's joined examples and held-out pairs put together) are recorded, and the decision is
fitted again on the same scores with beta at most 0 (`highest_beta=0`, as at aaa5258), beside the served
one (beta unbounded). `--min-part-tokens` sets `multi_intent.MIN_PART_TOKENS` for the run (training's
decision fit included; the network trains the same), to compare a part's least length side by side.

Printed per case: the evidence (`multi_intent.evidence_for_two`: log best pair - log best single explanation)
of the fit's messages and of the test's, as quantiles (5 %, 50 %, 90 %, 99 %, highest); the test's
single messages above and two-intent messages at or below a few boundaries; and for each decision its
alpha / beta, single-intent accuracy, single messages read as two and two-intent exact match.
Without ../shared (or $SHARED_DIR) the script says so and exits.
"""

import argparse
import random
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from few_shot import PROXY, SHARED  # noqa: E402
from multi_intent import Example, dataset  # noqa: E402

BOUNDARIES = (-2.0, -1.0, -0.6, -0.4, -0.2, 0.0)


def draw(train: List[Example], k: Optional[int], seed: int) -> List[Example]:
    """Up to k examples of each single intent (all with k None); every joined example."""
    generator, drawn = random.Random(seed), []
    for intent in sorted({example["intent"] for example in train}):
        members = sorted((example for example in train if example["intent"] == intent), key=lambda example: example["text"])
        generator.shuffle(members)
        drawn += members if "+" in intent or k is None else members[:k]
    return drawn


def quantiles(values: np.ndarray) -> str:
    finite = values[np.isfinite(values)]
    return " ".join(f"{value:6.2f}" for value in np.quantile(finite, [0.05, 0.5, 0.9, 0.99, 1.0])) if len(finite) else "-"


def case(name: str, k: Optional[int], seed: int) -> None:
    from bert_intent import multi_intent, settings
    from bert_intent.training import fine_tune

    fitted_on: Dict[str, Any] = {}
    served_fit = multi_intent.fit

    def recording_fit(single: np.ndarray, log_joined: np.ndarray, targets: List[int], share: float) -> multi_intent.Decision:
        fitted_on.update(single=single, log_joined=log_joined, targets=np.asarray(targets), share=share)
        return served_fit(single, log_joined, targets, share)

    train, test = dataset(name, seed, pairs=25, per_intent=40)
    train = draw(train, k, seed)
    multi_intent.fit = recording_fit
    try:
        model = fine_tune([example["text"] for example in train], [example["intent"] for example in train],
                          settings.validate({"model_name": str(PROXY), "random_seed": seed}),
                          annotations=[example["entities"] for example in train])
    finally:
        multi_intent.fit = served_fit
    single, log_joined = model.single_and_pair_scores([example["text"] for example in test])
    gold = [example["intent"] for example in test]
    two = np.array(["+" in intent for intent in gold])
    evidence = multi_intent.evidence_for_two(single, log_joined)
    fit_two = fitted_on["targets"] >= fitted_on["single"].shape[1]
    fit_evidence = multi_intent.evidence_for_two(fitted_on["single"], fitted_on["log_joined"])
    print(f"{name} k={k or 'all'} draw {seed}: {len(train)} training examples; test {int((~two).sum())} single, "
          f"{int(two.sum())} two-intent; the fit {int((~fit_two).sum())} single, {int(fit_two.sum())} two-intent", flush=True)
    print(f"  evidence, q05 q50 q90 q99 max: fit single {quantiles(fit_evidence[~fit_two])} | fit two {quantiles(fit_evidence[fit_two])}")
    print(f"  {' ' * 30}test single {quantiles(evidence[~two])} | test two {quantiles(evidence[two])}")
    print("  test single above / two at or below: "
          + "  ".join(f"{b:+.1f}: {(evidence[~two] > b).sum()}/{(evidence[two] <= b).sum()}" for b in BOUNDARIES))
    decisions = {
        "served": model.decision,
        "beta <= 0": multi_intent.fit(fitted_on["single"], fitted_on["log_joined"], fitted_on["targets"],
                                      fitted_on["share"], highest_beta=0.0),
    }
    for label, decision in decisions.items():
        predicted = [model.intent_names[index] for index in multi_intent.shares(single, log_joined, decision).argmax(axis=1)]
        right = np.array([guess == truth for guess, truth in zip(predicted, gold)])
        read_as_two = sum("+" in guess for guess, truth in zip(predicted, gold) if "+" not in truth)
        print(f"  {label:<10} alpha {decision.alpha:5.2f} beta {decision.beta:5.2f}: single accuracy {right[~two].mean():.3f}, "
              f"single read as two {read_as_two}, two-intent exact match {right[two].mean():.3f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", default=["bot:5:1", "bot:10:2", "bot:20:1", "bot:all:1", "cais:all:1"])
    parser.add_argument("--min-part-tokens", type=int, help="each part's least tokens (default: the package's)")
    arguments = parser.parse_args()
    if arguments.min_part_tokens is not None:
        from bert_intent import multi_intent

        multi_intent.MIN_PART_TOKENS = arguments.min_part_tokens
    if not (SHARED / "models").is_dir():
        print(f"Skipped: {SHARED} (the stand-in checkpoint and CAIS) is not here.")
        return
    for spec in arguments.cases:
        name, k, seed = spec.split(":")
        case(name, None if k == "all" else int(k), int(seed))


if __name__ == "__main__":
    main()
