#!/usr/bin/env bash
# Continues every DFT labelling queue of the shipped datasets, one after another, in priority
# order (data/*/CARD.md): CaZrO3 5-atom with Z*, CaTiO3 20-atom batches 2 and 3 (SCF only),
# CaTiO3 5-atom batch 2 with Z*, the Fig 1 scans with Z*. Each `bornfield label` skips the
# frames already in its output and resumes the structure in flight from its job directory.
#
#   JOBS=/work/runs bash data/label_queue.sh     # job directories (default: runs/label)
#   NP=1 bash data/label_queue.sh                 # MPI ranks per ABINIT run (default 2)
#
#   STATUS=1 bash data/label_queue.sh             # where every queue stands; runs nothing
# Stop with `pkill -TERM -f "bornfield label"`: the SCF in flight is checkpointed and this
# script stops too (the label command exits non-zero); run it again to go on.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-runs/label}
NP=${NP:-2}

label() {  # STRUCTURES OUT JOB [options]
    [ -n "${STATUS:-}" ] || echo "== $(date -u +%FT%TZ) $1 -> $2" >&2
    bornfield label "$1" --out "$2" --job-dir "$JOBS/$3" --preset production --np "$NP" "${@:4}" \
        ${STATUS:+--status}
}

label data/cazro3/structures_5atom_batch1.xyz data/cazro3/cazro3_5atom.xyz \
    cazro3_5atom_b1.job --ids 0,4,1-3,5-19
label data/catio3/structures_20atom_md_batch2.xyz data/catio3/catio3_20atom_md_batch2.xyz \
    catio3_20atom_md_b2.job --no-bec
label data/catio3/structures_20atom_md_batch3.xyz data/catio3/catio3_20atom_md_batch3.xyz \
    catio3_20atom_md_b3.job --no-bec
label data/catio3/structures_5atom_batch2.xyz data/catio3/catio3_5atom_batch2.xyz \
    catio3_5atom_b2.job
label data/catio3/structures_20atom_scan.xyz data/catio3/catio3_20atom_scan.xyz \
    catio3_20atom_scan.job
