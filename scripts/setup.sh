#!/usr/bin/env bash
# Create .venv with a Python 3.8-3.10 interpreter (Rasa 3.6's range) and install bert-intent with its
# dev extras. Looks on PATH first, then in pyenv's installed versions.
set -euo pipefail
cd "$(dirname "$0")/.."

supported() {  # prints the interpreter's absolute path if it runs and is 3.8-3.10
    "$1" -c 'import sys, venv; assert (3, 8) <= sys.version_info[:2] <= (3, 10); print(sys.executable)' 2>/dev/null
}

frozen_here() {  # whether benchmarks/constraints.txt's versions are for this interpreter (3.10, Linux x86-64)
    "$1" -c 'import platform, sys
assert sys.version_info[:2] == (3, 10) and platform.system() == "Linux" and platform.machine() == "x86_64"' 2>/dev/null
}

find_python() {
    local candidate
    for candidate in python3.10 python3.9 python3.8 python3 python; do
        command -v "$candidate" >/dev/null 2>&1 && supported "$candidate" && return 0
    done
    if command -v pyenv >/dev/null 2>&1; then
        for candidate in $(ls -d "$(pyenv root)"/versions/3.{10,9,8}.*/bin/python 2>/dev/null | sort -rV); do
            supported "$candidate" && return 0
        done
    fi
    return 1
}

if [ -e .venv ] && ! supported .venv/bin/python >/dev/null; then
    echo "error: .venv exists but its Python is not 3.8-3.10 (or is broken)." >&2
    echo "Move it away or delete it (e.g. 'rm -rf .venv'), then run this again." >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    python=$(find_python) || {
        echo "error: bert-intent needs Python 3.8, 3.9 or 3.10 (Rasa 3.6 supports no other)." >&2
        echo "Install one (e.g. 'pyenv install 3.10') and run this again." >&2
        exit 1
    }
    # Rasa (TensorFlow) and PyTorch from PyPI take 7.5 GB once installed; pip's downloads come on top while
    # it runs (measured at most 8.4 GB in all with the frozen versions, 13.5 GB while resolving the newest).
    need_gb=14
    frozen_here "$python" && need_gb=9
    free_gb=$(df -Pk . | awk 'NR==2 {print int($4 / 1024 / 1024)}')
    if [ "$free_gb" -lt "$need_gb" ]; then
        echo "error: installing needs about $need_gb GB free on the disk holding $(pwd); $free_gb GB are free." >&2
        echo "Free some space (e.g. old virtual environments or clones), then run this again." >&2
        exit 1
    fi
    echo "Creating .venv with $python"
    "$python" -m venv .venv
fi
# pip's cache is left off: it would hold the downloads (about 4 GB) a second time.
.venv/bin/python -m pip install --no-cache-dir --upgrade --quiet pip
# Where benchmarks/constraints.txt was frozen (Python 3.10 on Linux x86-64), install exactly its versions:
# those the tests and benchmarks last ran with, found without pip trying (and downloading) several PyTorch
# releases. PyTorch goes first, in a run of its own: pip keeps every download until its run ends, so two
# runs need less free disk at once. Elsewhere pip takes the newest releases pyproject.toml allows.
# (No array for the pins: under `set -u`, macOS's bash 3.2 calls an empty one unbound.)
if frozen_here .venv/bin/python; then
    .venv/bin/python -m pip install --no-cache-dir --constraint benchmarks/constraints.txt torch
    .venv/bin/python -m pip install --no-cache-dir --constraint benchmarks/constraints.txt -e '.[dev]'
else
    .venv/bin/python -m pip install --no-cache-dir -e '.[dev]'
fi
echo "Done: .venv is ready. Run the tests with: make test"
