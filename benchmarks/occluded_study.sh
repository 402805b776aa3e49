#!/usr/bin/env bash
# The occlusion study of issue #13: IGOAS, PCB and the batch-occlusion baselines against the BoT baseline, each
# trained with the same budget (the presets' 18 epochs of P16×K4 on the pretrained EfficientNet-Lite0 at 128×64),
# on real Occluded-Duke and on the synthetic occluded set, then benchmarked: clean R1 / mAP / mINP, the corruption
# mix (3 passes; query, gallery, both), the occlusion family; IGOAS and the baseline also trained and tested on
# holistic Market-1501 and DukeMTMC-reID; the two IGOAS branches' maps on occluded queries; the tables.
#
#   bash benchmarks/occluded_study.sh [PRESET ...]     # default: the eight presets, IGOAS and its baseline first
#   python benchmarks/occluded_table.py --out runs/occluded   # the tables for docs/benchmarks.md
#
# Every step resumes: a finished training (its train.log says "done") is not repeated, a half-finished one continues
# from its state.pt, a benchmark folder skips its finished cells. The same command finishes an interrupted study;
# adding a preset later costs only that preset. Any preset works (the dataset is set here), e.g. the from-scratch
# versions (cpu_small's half-width ResNet-18, 60 epochs):
#   OUT=runs/occluded_small HOLISTIC="cpu_small igoas_cpu_small" MAPS="igoas_cpu_small cpu_small" \
#   bash benchmarks/occluded_study.sh cpu_small cpu_small_batch_erasing cpu_small_batch_dropblock \
#       cpu_small_slow_dropblock cpu_small_igo igoas_cpu_small pcb_cpu_small
# Environment (defaults in brackets):
#   OUT         [runs/occluded]   <dataset>/{models,mix,occlusion}/<preset>, maps/, logs/, data/
#   OCC         [real/data/Occluded_Duke]   MARKET [real/data/market1501]   DUKE [real/data/dukemtmc]
#   TRAIN_ARGS  [train.eval_period=0]  overrides of every training (evaluate once, at the end: the final
#               weights are benchmarked, no choice of epoch on the test set)
#   STEPS       [occluded synthetic holistic maps]   which parts to run
#   OCC_SEVERITIES [1,3]            severities of the occlusion family
#   HOLISTIC    [bot_lite0 igoas_lite0]   presets also trained and tested on Market-1501 and DukeMTMC-reID
#   MAPS        [igoas_lite0 igoas_lite0_occmask bot_lite0]   Occluded-Duke models whose maps are drawn on occluded queries
#   SYNTH_IDS   [220]               identities of the synthetic occluded set (half train), made once in OUT/data
#   THREADS     [0]                 torch threads of each training (0 = torch's default)
#   KEEP        [unset]             a repository folder the result files are copied into after each benchmark
#               (benchmarks/keep_results.py; e.g. benchmarks/results/occluded)
set -euo pipefail

OUT=${OUT:-runs/occluded}
OCC=${OCC:-real/data/Occluded_Duke}
MARKET=${MARKET:-real/data/market1501}
DUKE=${DUKE:-real/data/dukemtmc}
TRAIN_ARGS=${TRAIN_ARGS:-'train.eval_period=0'}
STEPS=${STEPS:-occluded synthetic holistic maps}
OCC_SEVERITIES=${OCC_SEVERITIES:-1,3}
HOLISTIC=${HOLISTIC:-bot_lite0 igoas_lite0}
MAPS=${MAPS:-igoas_lite0 igoas_lite0_occmask bot_lite0}
SYNTH_IDS=${SYNTH_IDS:-220}
THREADS=${THREADS:-0}
PRESETS=("$@")
if [ ${#PRESETS[@]} -eq 0 ]; then
    # the issue's bar first (IGOAS against the baseline), then the other baselines: on 2 CPU cores a study spans
    # many sessions (docs/benchmarks.md#occluded), and the first two models answer the main question
    PRESETS=(bot_lite0 igoas_lite0 igoas_lite0_occmask pcb_lite0 bot_lite0_batch_erasing bot_lite0_batch_dropblock
             bot_lite0_slow_dropblock bot_lite0_igo igoas_lite0_noocc)
fi
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=occluded_common.sh
source "$HERE/occluded_common.sh"
need() { [ -d "$1" ] || { echo "occluded_study: dataset folder $1 not found (set OCC / MARKET / DUKE)" >&2; exit 2; }; }

if has occluded; then
    need "$OCC"
    study_on occluded_duke "$OCC"
fi

if has synthetic; then
    make_synth
    study_on synthetic "$SYNTH"
fi

if has holistic; then
    need "$MARKET"; need "$DUKE"
    for p in $HOLISTIC; do
        train_one "$p" market1501 "$MARKET"
        bench_one "$p" market1501 "$MARKET" clean
        train_one "$p" dukemtmc "$DUKE"
        bench_one "$p" dukemtmc "$DUKE" clean
    done
fi

if has maps; then
    # the paper's figures 8-9: where each IGOAS branch responds on occluded queries (the clean column is the real
    # Occluded-Duke query, itself occluded), next to the BoT baseline's last stage, plus two synthetic occluders
    ckpts=()
    for p in $MAPS; do
        [ -f "$OUT/occluded_duke/models/$p/best.safetensors" ] && ckpts+=(--checkpoint "$p=$OUT/occluded_duke/models/$p")
    done
    if [ ${#ckpts[@]} -gt 0 ]; then
        echo "[$(stamp)] branch maps on occluded queries -> $OUT/maps"
        robustreid viz actmap "${ckpts[@]}" --dataset occluded_duke --root "$OCC" --out "$OUT/maps" --queries 8 \
            --corruptions occlusion_object:3,occlusion_pedestrian:3 >> "$OUT/logs/maps.log" 2>&1
    fi
fi
echo "[$(stamp)] tables: python benchmarks/occluded_table.py --out $OUT"
