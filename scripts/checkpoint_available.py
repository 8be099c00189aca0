"""Exit 0 when the checkpoint a Rasa config fine-tunes can be loaded here, else explain why and exit 1.

Usage: python scripts/checkpoint_available.py config.yml

Loadable means a local directory, a copy in the Hugging Face cache, or a Hub (or HF_ENDPOINT mirror)
that answers. A config that trains from scratch (`pretrained: false`) needs no checkpoint.
"""

import sys
from pathlib import Path

import huggingface_hub
import yaml

from bert_intent.settings import DEFAULTS

COMPONENT = "bert_intent.BertIntentClassifier"


def unavailable_reason(config_path: Path) -> str:
    """Why the config's checkpoint cannot be loaded; empty when it can."""
    config = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    component = next((entry for entry in config.get("pipeline") or [] if entry.get("name") == COMPONENT), None)
    if component is None:
        return f"{config_path} has no {COMPONENT} in its pipeline."
    settings = {**DEFAULTS, **component}
    if not settings["pretrained"] or Path(settings["model_name"]).is_dir():
        return ""
    model_name = settings["model_name"]
    if isinstance(huggingface_hub.try_to_load_from_cache(model_name, "config.json"), str):
        return ""
    try:
        huggingface_hub.model_info(model_name, timeout=10)
    except Exception as error:  # offline mode, DNS, proxy, HTTP errors: all mean "cannot download"
        return f"'{model_name}' is not in the Hugging Face cache and the Hub cannot be reached ({error})."
    return ""


if __name__ == "__main__":
    reason = unavailable_reason(Path(sys.argv[1]))
    if reason:
        print(reason)
    sys.exit(1 if reason else 0)
