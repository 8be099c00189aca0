"""How well the held-out examples stand for a test file, read with the n-gram head alone.

    .venv/bin/python benchmarks/held_out_split.py [--datasets bot cais] [--k 10 all] [--draws 3] [--splits 6]

Training holds out `validation_split` (10 %) of each intent's examples (`held_out.split`) and fits on
them the heads' weights and the calibration; the served model then refits its closed-form heads on
every example. Whether those fits carry over to new messages depends on two things this script
measures with the closed-form n-gram head (`heads.NgramHead`, seconds per fit, no encoder training):

- `held-out` against `test`: the head fitted on the training split, read on the held-out examples and
  on the test file. Over several split seeds, their gap shows whether the held-out examples are as
  hard as the test file (noise averages out over the seeds; a gap that does not is a difference
  between the training file and the test file).
- `refit`: the same head fitted on every example, read on the test file: what the served model gains
  from refitting (the held-out fits see the head without it).

Datasets and draws as in `few_shot.py` (the same examples per k and draw; joined intents left out);
the tokenizer is the pretrained stand-in's (../shared/models/zh-bert-mini-proxy). Printed per k and
draw: the medians over the split seeds, and each seed's held-out accuracy. Without ../shared (or
$SHARED_DIR) the script says so and exits.
"""

import argparse
import statistics
import sys
from pathlib import Path
from typing import List, Sequence

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))
sys.path.insert(0, str(REPOSITORY / "benchmarks"))

from few_shot import DATASETS, PROXY, SHARED, draw  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["bot", "cais"], choices=sorted(DATASETS))
    parser.add_argument("--k", nargs="+", default=["10", "all"])
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--splits", type=int, default=6)
    arguments = parser.parse_args()
    if not (PROXY / "config.json").is_file():
        print(f"{SHARED} has no pretrained stand-in: skipping.")
        return

    import torch
    from transformers import AutoTokenizer

    from bert_intent import encoding, heads, held_out
    from bert_intent.hashing import ngram_buckets
    from bert_intent.settings import DEFAULTS

    tokenizer = AutoTokenizer.from_pretrained(str(PROXY))

    def buckets(texts: Sequence[str]) -> List[torch.Tensor]:
        inputs = encoding.tokenize(tokenizer, list(texts), 64, return_tensors="pt", padding=True, offsets=False)
        return list(ngram_buckets(inputs["input_ids"], inputs["attention_mask"]))

    def accuracy(head: heads.NgramHead, texts: Sequence[str], label_ids: Sequence[int]) -> float:
        with torch.no_grad():
            predicted = head(*buckets(texts)).argmax(dim=-1)
        return float((predicted == torch.tensor(label_ids)).float().mean())

    def fitted(texts: Sequence[str], label_ids: Sequence[int], intents: int) -> heads.NgramHead:
        head = heads.NgramHead(intents)
        head.fit(*buckets(texts), label_ids, balanced=True)
        return head

    print(f"{'data':<5} {'k':>4} {'draw':>4} {'held out':>8} {'held-out':>8} {'test':>6} {'refit':>6}  held-out per split seed")
    for dataset in arguments.datasets:
        train_file, test_file = DATASETS[dataset]()
        for k in arguments.k:
            for seed in range(1, arguments.draws + 1 if k != "all" else 2):
                examples = [(text, intent) for text, intent in draw(train_file, None if k == "all" else int(k), seed)
                            if "+" not in intent]
                labels = sorted({intent for _, intent in examples})
                texts, label_ids = [text for text, _ in examples], [labels.index(intent) for _, intent in examples]
                test = [(text, labels.index(intent)) for text, intent in test_file if intent in labels]
                test_texts, test_ids = [text for text, _ in test], [label for _, label in test]
                held, tested = [], []
                for split_seed in range(1, arguments.splits + 1):
                    train, validation = held_out.split(label_ids, DEFAULTS["validation_split"], split_seed)
                    head = fitted([texts[i] for i in train], [label_ids[i] for i in train], len(labels))
                    held.append(accuracy(head, [texts[i] for i in validation], [label_ids[i] for i in validation]))
                    tested.append(accuracy(head, test_texts, test_ids))
                refit = accuracy(fitted(texts, label_ids, len(labels)), test_texts, test_ids)
                print(f"{dataset:<5} {k:>4} {seed:>4} {len(validation):>8} {statistics.median(held):>8.3f} "
                      f"{statistics.median(tested):>6.3f} {refit:>6.3f}  {' '.join(f'{value:.3f}' for value in held)}")


if __name__ == "__main__":
    main()
