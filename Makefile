.PHONY: setup test demo

# Create .venv (Python 3.8-3.10, found on PATH or in pyenv) and install bert-intent with its dev extras.
setup:
	bash scripts/setup.sh

# Run the whole test suite: every example_bot journey through the real rasa CLI included.
test:
	.venv/bin/python -m pytest

# Train example_bot and talk to it in `rasa shell` (sets up .venv first if it is missing).
demo:
	[ -x .venv/bin/python ] || bash scripts/setup.sh
	bash scripts/demo.sh
