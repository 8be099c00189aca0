#!/usr/bin/env bash
# `make demo`: train the example bot and talk to it in `rasa shell`.
#
# It fine-tunes bert-base-chinese (example_bot/config.yml) when the checkpoint is cached or the Hugging
# Face Hub can be reached. Otherwise it says so and trains a small BERT from scratch instead
# (example_bot/config_offline.yml). An optional argument names another copy of the bot to use.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="$root/.venv/bin/python"
cd "${1:-$root/example_bot}"

config=config.yml
if ! reason="$("$python" "$root/scripts/checkpoint_available.py" "$config")"; then
    cat >&2 <<MESSAGE

################################################################################
  NO PRETRAINED CHECKPOINT: $reason
  Training a small BERT FROM SCRATCH instead (config_offline.yml). It works, but it
  is less accurate than fine-tuning bert-base-chinese. For the real model, run this
  where the Hub is reachable, set HF_ENDPOINT to a mirror, or put a local copy of
  the checkpoint in model_name in config.yml (see the README).
################################################################################

MESSAGE
    config=config_offline.yml
fi

"$python" -m rasa train --config "$config"
exec "$python" -m rasa shell
