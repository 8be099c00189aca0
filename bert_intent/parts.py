"""Which part of a trained model decides ("why did it say that"):

    python -m bert_intent.parts MODEL.tar.gz TEST_NLU.yml

reads the BertIntentClassifier from a Rasa model archive, classifies the test file's messages (those of
intents the model does not know, and of multi-intents, which no single part scores, are skipped and
counted) and prints the intent accuracy of the encoder head alone, the n-gram head alone, both heads
combined (the closed set, before the confidences' familiarity and nearness) and the served model (the
intent Rasa gets: a message it reads as two requests, or as none of its intents, counts as wrong), each
also as the mean of its per-intent accuracies (every intent counted equally, however many test messages
it has), with the weights training chose. The last line is a JSON object with the keys `encoder`,
`ngrams`, `combined`, `served`, `per_intent_mean`, `messages`, `skipped`, `intent_weights`, `tag_weights`
and `calibration`.
"""

import argparse
import json
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from bert_intent import entities, held_out
from bert_intent.errors import BertIntentError
from bert_intent.model import IntentModel
from bert_intent.model_files import METADATA_FILE

# The parts read alone: the network's output that scores the intents.
NETWORK_PARTS = {"encoder": "encoder_log_probs", "ngrams": "ngram_log_probs", "combined": "logits"}
# Each part's line in the report; the served model is read as it serves (`IntentModel.predict`).
PART_LABELS = {"encoder": "encoder head alone", "ngrams": "n-gram head alone", "combined": "heads combined", "served": "served"}


def evaluate(model: IntentModel, texts: Sequence[str], intents: Sequence[str]) -> Dict[str, Any]:
    """Intent accuracy of each part on the messages of intents `model` knows (a torch-loaded or
    trained model), also as the mean of its per-intent accuracies, the number of messages skipped, and
    what training chose."""
    if model.network is None:
        raise BertIntentError("This model has a single intent and no entities: it has no parts to compare.")
    known = [(text, intent) for text, intent in zip(texts, intents) if intent in model.labels]
    result: Dict[str, Any] = {"messages": len(known), "skipped": len(texts) - len(known)}
    if known:
        known_texts = [text for text, _ in known]
        outputs = held_out.outputs(model.network, model.tokenizer, known_texts, model.settings.max_length, model.settings.batch_size)
        truth = np.array([model.labels.index(intent) for _, intent in known])
        predicted = {part: outputs[output].argmax(axis=-1) for part, output in NETWORK_PARTS.items()}
        served = model.confidences(known_texts)  # the single intents, then the joined ones; all 0: no intent
        predicted["served"] = np.where(served.max(axis=1) > 0, served.argmax(axis=1), -1)
        result.update({part: float(np.mean(predicted[part] == truth)) for part in predicted})
        result["per_intent_mean"] = {part: per_intent_mean(truth, predicted[part]) for part in predicted}
    return {
        **result,
        "intent_weights": model.combinations[0].to_dict(),
        "tag_weights": model.combinations[1].to_dict(),
        "tag_transition_weight": model.summary.get("tag_transition_weight", 0.0),
        "calibration": model.calibration.to_dict(),
    }


def per_intent_mean(truth: Sequence[Any], predicted: Sequence[Any]) -> float:
    """The mean over the true intents of each one's accuracy (macro recall): every intent counts equally,
    whatever its share of the messages."""
    from sklearn.metrics import recall_score

    return float(recall_score(truth, predicted, labels=sorted(set(truth)), average="macro", zero_division=0))


def evaluate_entities(
    model: IntentModel, texts: Sequence[str], annotations: Sequence[Sequence[Dict[str, Any]]]
) -> Dict[str, Any]:
    """Span F1 of each tag head alone and of both combined (each token's most probable tag; Rasa's
    entity dicts as `annotations`, one list per text) and of the entities the model finds (`decoded`:
    the best valid tag sequence, with the tag transitions), the number of annotations skipped because the
    model does not know their entity type (no head can tag them), and the weights training chose."""
    if not model.entity_types:
        raise BertIntentError("This model extracts no entities: it has no tag heads to compare.")
    # `token_tags` leaves annotations of unknown types untagged (as problems); they are counted here.
    known = set(model.entity_types)
    skipped = sum(entities.EntityType.of(annotation) not in known for message in annotations for annotation in message)
    max_length = model.settings.max_length
    offsets = model.tokenizer(list(texts), truncation=True, max_length=max_length, return_offsets_mapping=True)["offset_mapping"]
    truth = [entities.token_tags(text, text_offsets, text_annotations, model.entity_types)[0]
             for text, text_offsets, text_annotations in zip(texts, offsets, annotations)]
    outputs = held_out.outputs(model.network, model.tokenizer, texts, max_length, model.settings.batch_size)
    result: Dict[str, Any] = {
        f"{part}_entity_f1": entities.span_f1(truth, [log_probs.argmax(axis=-1) for log_probs in outputs[name]])
        for part, name in (("encoder", "encoder_tag_log_probs"), ("ngrams", "ngram_tag_log_probs"), ("served", "tag_logits"))
    }
    decoded = [entities.token_tags(text, text_offsets, found, model.entity_types)[0]
               for text, text_offsets, found in zip(texts, offsets, model.predict(texts).entities)]
    result["decoded_entity_f1"] = entities.span_f1(truth, decoded)
    return {
        **result, "skipped_entities": skipped, "tag_weights": model.combinations[1].to_dict(),
        "tag_transition_weight": model.summary.get("tag_transition_weight", 0.0),
    }


def load_from_archive(archive: Path, scratch: Path) -> IntentModel:
    """The BertIntentClassifier in a Rasa model archive (unpacked into `scratch`), with its torch network."""
    return IntentModel.load(unpack(archive, scratch), torch.device("cpu"), "torch")


def unpack(archive: Path, scratch: Path) -> Path:
    """Unpack a Rasa model archive into `scratch` (members that would land outside it are skipped) and
    return the folder of its BertIntentClassifier."""
    with tarfile.open(archive) as tar:
        members = [member for member in tar.getmembers() if _safe(member.name) and (member.isfile() or member.isdir())]
        tar.extractall(scratch, members=members)
    found = sorted(path.parent for path in scratch.rglob(METADATA_FILE))
    if not found:
        raise BertIntentError(f"{archive} has no trained BertIntentClassifier (no {METADATA_FILE} in it).")
    return found[0]


def read_nlu(path: Path) -> Tuple[List[str], List[str]]:
    """The (texts, intents) of a Rasa NLU file (entity annotations read as their plain text)."""
    texts, intents, _ = read_annotated_nlu(path)
    return texts, intents


def read_annotated_nlu(path: Path) -> Tuple[List[str], List[str], List[List[Dict[str, Any]]]]:
    """The texts, intents and entity annotations (Rasa's entity dicts, one list per text) of a Rasa NLU file."""
    from rasa.shared.nlu.training_data.loading import load_data

    examples = [message for message in load_data(str(path)).intent_examples if message.get("text")]
    return ([message.get("text") for message in examples], [message.get("intent") for message in examples],
            [list(message.get("entities") or []) for message in examples])


def report(result: Dict[str, Any]) -> List[str]:
    """The lines `main` prints for `evaluate`'s result, the JSON object last."""
    intents, tags = result["intent_weights"], result["tag_weights"]
    lines = [f"{result['messages']} messages of known intents ({result['skipped']} skipped: intents the model does not know, or multi-intents)."]
    if result["messages"]:
        lines += [f"{'part':<20} accuracy  per-intent mean"] + [
            f"{label:<20} {result[part]:.3f}     {result['per_intent_mean'][part]:.3f}"
            for part, label in PART_LABELS.items()
        ]
    lines.append(
        f"Weights chosen in training: intents: encoder {intents['encoder']:.3f}, n-grams {intents['ngrams']:.3f} "
        f"({_fitted(intents)}); entity tags: tagger {tags['encoder']:.3f}, n-grams {tags['ngrams']:.3f} ({_fitted(tags)}), "
        f"their transitions in the decoding {result['tag_transition_weight']:.2f}."
    )
    lines.append(json.dumps(result))
    return lines


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bert_intent.parts", description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="a Rasa model archive (.tar.gz) with a BertIntentClassifier")
    parser.add_argument("nlu", type=Path, help="a Rasa NLU file (YAML) of test messages")
    arguments = parser.parse_args(argv)
    for path in (arguments.model, arguments.nlu):
        if not path.is_file():
            print(f"error: {path} is not a file.", file=sys.stderr)
            return 2
    try:
        with tempfile.TemporaryDirectory(prefix="bert-intent-parts-") as scratch:
            model = load_from_archive(arguments.model, Path(scratch))
        texts, intents = read_nlu(arguments.nlu)
        print("\n".join(report(evaluate(model, texts, intents))))
    except (BertIntentError, tarfile.TarError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def _fitted(weights: Dict[str, Any]) -> str:
    return f"fitted on {weights['fitted_on']} held-out rows" if weights["fitted_on"] else "the prior: nothing was held out"


def _safe(name: str) -> bool:
    """An archive member that stays inside the folder it is unpacked into."""
    return not name.startswith(("/", "\\")) and ".." not in Path(name).parts


if __name__ == "__main__":
    sys.exit(main())
