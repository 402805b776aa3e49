#!/usr/bin/env bash
# The FED study (issue #14): the ablation on the pretrained EfficientNet-Lite0 at 128×64, one budget for every step
# (bot_lite0's: 18 epochs of P16×K4, Adam 3.5e-4, ×0.1 at epoch 14):
#
#   bot_lite0       the baseline (BoT on Lite0, random erasing)
#   fed_lite0_npo   + NPO only (the baseline with NPO instead of random erasing)
#   fed_lite0_oem   + NPO + OEM (FED's stripe head with occlusion scores, two views; no memory bank, no FDM)
#   fed_lite0       full FED (+ memory bank + FDM)
#
# each trained and benchmarked on Occluded-Duke and on the synthetic occluded set: clean R1 / mAP / mINP, the
# corruption mix (3 passes; query, gallery, both: on these sets the joint occlusion × corruption setting), the
# occlusion family (severities OCC_SEVERITIES), for fed_lite0 its f′ against its FDM output
# (benchmarks/fed_eval_features.py, the released log's comparison), and for the models with an OEM whether its
# scores find the occluders (benchmarks/fed_oem_scores.py). The baseline and full FED are also trained and
# tested on holistic Market-1501.
#
#   bash benchmarks/fed_study.sh [PRESET ...]             # default: the four presets, baseline and full FED first
#   python benchmarks/fed_table.py --out runs/occluded     # the ablation tables for docs/benchmarks.md
#   python benchmarks/occluded_table.py --out runs/occluded --method fed_lite0 --bar 2   # FED in the joint table
#
# It shares the layout, the synthetic set and the defaults of benchmarks/occluded_study.sh (issue #13): with the same
# OUT the baseline bot_lite0 is trained once for both studies, and FED joins that study's joint occlusion ×
# corruption table. Every step resumes: a finished training (its train.log says "done") is not repeated, a
# half-finished one continues from its state.pt, a benchmark folder skips its finished cells, a features JSON is
# kept. Environment (defaults in brackets):
#   OUT         [runs/occluded]   <dataset>/{models,mix,occlusion,features}/<preset>, data/, logs/
#   OCC         [real/data/Occluded_Duke]   MARKET [real/data/market1501]
#   TRAIN_ARGS  [train.eval_period=0]  overrides of every training (evaluate once, at the end: the final weights
#               are benchmarked, no epoch is chosen on the test set)
#   STEPS       [occluded synthetic holistic]   which parts to run
#   OEM_PRESETS [fed_lite0 fed_lite0_oem]   (the OEM analysis)
#   OCC_SEVERITIES [1,3]   HOLISTIC [bot_lite0 fed_lite0]   SYNTH_IDS [220]   THREADS [0] (torch threads, 0 = default)
#   KEEP        [unset]   a repository folder the result files are copied into after each benchmark
#               (benchmarks/keep_results.py; e.g. benchmarks/results/occluded)
set -euo pipefail

OUT=${OUT:-runs/occluded}
OCC=${OCC:-real/data/Occluded_Duke}
MARKET=${MARKET:-real/data/market1501}
TRAIN_ARGS=${TRAIN_ARGS:-'train.eval_period=0'}
STEPS=${STEPS:-occluded synthetic holistic}
OCC_SEVERITIES=${OCC_SEVERITIES:-1,3}
HOLISTIC=${HOLISTIC:-bot_lite0 fed_lite0}
OEM_PRESETS=${OEM_PRESETS:-fed_lite0 fed_lite0_oem}
SYNTH_IDS=${SYNTH_IDS:-220}
THREADS=${THREADS:-0}
PRESETS=("$@")
if [ ${#PRESETS[@]} -eq 0 ]; then
    # the bar first (full FED against the baseline), then the ablation's intermediate steps
    PRESETS=(bot_lite0 fed_lite0 fed_lite0_npo fed_lite0_oem)
fi
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=occluded_common.sh
source "$HERE/occluded_common.sh"
need() { [ -d "$1" ] || { echo "fed_study: dataset folder $1 not found (set OCC / MARKET)" >&2; exit 2; }; }

# after a full benchmark: fed_lite0's f′ against its FDM output, and for the models with an OEM whether its scores
# find the occluders of the occlusion family (both files kept once written)
bench_extra() {
    local p=$1 ds=$2 root=$3 m=$4 log=$5
    mkdir -p "$OUT/$ds/features"
    if [ "$p" = fed_lite0 ]; then
        echo "[$(stamp)] $ds/$p: f′ against the FDM output"
        python "$HERE/fed_eval_features.py" --checkpoint "$m" --dataset "$ds" --root "$root" \
            --out "$OUT/$ds/features/$p.json" >> "$log" 2>&1
    fi
    case " $OEM_PRESETS " in *" $p "*)
        echo "[$(stamp)] $ds/$p: OEM scores against the pasted occluders"
        python "$HERE/fed_oem_scores.py" --checkpoint "$p=$m" --dataset "$ds" --root "$root" \
            --severities "$OCC_SEVERITIES" --out "$OUT/$ds/features/oem_$p.json" >> "$log" 2>&1 ;;
    esac
}

if has occluded; then
    need "$OCC"
    study_on occluded_duke "$OCC"
fi

if has synthetic; then
    make_synth  # the occlusion study's set, same command
    study_on synthetic "$SYNTH"
fi

if has holistic; then
    need "$MARKET"
    for p in $HOLISTIC; do
        train_one "$p" market1501 "$MARKET"
        bench_one "$p" market1501 "$MARKET" clean
    done
fi
echo "[$(stamp)] tables: python benchmarks/fed_table.py --out $OUT"
