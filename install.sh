#!/usr/bin/env bash
# Everything bornfield needs on a fresh Debian machine with Python 3.11: ABINIT (for DFT labels)
# from Debian, then the Python package. torch is pinned first so pip takes the CPU build.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v abinit >/dev/null 2>&1 || [ ! -d /usr/share/abinit/psp ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq abinit abinit-data >/dev/null
fi
python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[dev,baselines]"
