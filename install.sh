#!/usr/bin/env bash
# Everything bornfield needs on a fresh Debian machine with Python 3.11: ABINIT (for DFT labels)
# from Debian, then the Python package. torch is pinned first so pip takes the CPU build.
# libopenblas0-serial replaces Debian's reference BLAS/LAPACK under ABINIT (one thread per MPI
# rank): SCF 4-7 % faster on 5- and 20-atom CaTiO3, same energies (data/catio3/CARD.md).
# g++: torch.compile's C++ kernels (`bornfield run` compiles by default; `bornfield md --compile`).
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v abinit >/dev/null 2>&1 || [ ! -d /usr/share/abinit/psp ] \
    || [ ! -d /usr/lib/x86_64-linux-gnu/openblas-serial ] || ! command -v g++ >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq abinit abinit-data libopenblas0-serial g++ >/dev/null
fi
python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[dev,baselines]"
