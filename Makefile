.PHONY: setup test test-fast demo

# Create .venv (Python 3.8-3.10, found on PATH or in pyenv) and install bert-intent with its dev extras.
setup:
	bash scripts/setup.sh

# Run the whole test suite: every example_bot journey through the real rasa CLI included.
test:
	.venv/bin/python -m pytest

# The unit tests only (no training, no rasa CLI): for development, about a minute.
test-fast:
	.venv/bin/python -m pytest -m "not slow and not training"

# Train example_bot and talk to it in `rasa shell` (sets up .venv first if it is missing).
demo:
	[ -x .venv/bin/python ] || bash scripts/setup.sh
	bash scripts/demo.sh
