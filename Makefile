.PHONY: setup test

# Create .venv (Python 3.8-3.10, found on PATH or in pyenv) and install bert-intent with its dev extras.
setup:
	bash scripts/setup.sh

# Run the whole test suite, the real `rasa train` -> parse round trip included.
test:
	.venv/bin/python -m pytest
