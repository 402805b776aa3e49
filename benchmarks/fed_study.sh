#!/usr/bin/env bash
# The FED study (issue #14): the ablation on the pretrained EfficientNet-Lite0 at 128×64, one budget for every step
# (bot_lite0's: 18 epochs of P16×K4, Adam 3.5e-4, ×0.1 at epoch 14):
#
#   bot_lite0       the baseline (BoT on Lite0, random erasing)
#   fed_lite0_npo   + NPO only (the baseline with NPO instead of random erasing)
#   fed_lite0_oem   + NPO + OEM (FED's stripe head with occlusion scores, two views; no memory bank, no FDM)
#   fed_lite0       full FED (+ memory bank + FDM)
#
# on Occluded-Duke and on the synthetic occluded set; for each: clean R1 / mAP / mINP and the corruption mix
# (3 passes; query, gallery and both sides; on Occluded-Duke this is the joint occlusion × corruption setting), the
# occlusion family (severities OCC_SEVERITIES), and for the FED models f′ against the FDM output
# (benchmarks/fed_eval_features.py). The baseline and full FED are also trained and tested on holistic Market-1501.
#
#   bash benchmarks/fed_study.sh [PRESET ...]          # default: the four presets above, in order
#   python benchmarks/fed_table.py --out runs/fed_study  # the Markdown tables for docs/benchmarks.md
#
# Every step resumes: a trained model (best.safetensors) is not retrained, a half-trained one continues from its
# state.pt, a benchmark folder skips its finished cells, a features JSON is kept. Environment [defaults]:
#   OUT       [runs/fed_study]             <set>/models/<preset>, <set>/bench/<preset>, <set>/occlusion/<preset>,
#                                          <set>/features/<preset>.json, logs/
#   OCC_DUKE  [real/data/Occluded_Duke]    MARKET [real/data/market1501]
#   SYNTH     [data/synth_occluded]        made with `robustreid synth --occluded --seed 0` when missing
#   SETS      [occluded_duke synthetic]    HOLISTIC [bot_lite0 fed_lite0] (trained and tested on MARKET too)
#   TRAIN_ARGS ['']                        overrides given to every `robustreid train` (e.g. train.threads=2)
#   OCC_SEVERITIES [1,3]
set -euo pipefail

OUT=${OUT:-runs/fed_study}
OCC_DUKE=${OCC_DUKE:-real/data/Occluded_Duke}
MARKET=${MARKET:-real/data/market1501}
SYNTH=${SYNTH:-data/synth_occluded}
SETS=${SETS:-occluded_duke synthetic}
HOLISTIC=${HOLISTIC:-bot_lite0 fed_lite0}
TRAIN_ARGS=${TRAIN_ARGS:-}
OCC_SEVERITIES=${OCC_SEVERITIES:-1,3}
PRESETS=("$@")
if [ ${#PRESETS[@]} -eq 0 ]; then
    PRESETS=(bot_lite0 fed_lite0_npo fed_lite0_oem fed_lite0)
fi
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$OUT/logs"
stamp() { date -u +%H:%M:%S; }

# dataset name and root of a study set
set_data() {
    case "$1" in
        occluded_duke) DS=occluded_duke; ROOT=$OCC_DUKE ;;
        synthetic)     DS=synthetic;     ROOT=$SYNTH ;;
        market1501)    DS=market1501;    ROOT=$MARKET ;;
        *) echo "fed_study: unknown set $1 (occluded_duke, synthetic)" >&2; exit 2 ;;
    esac
}

# train PRESET on a set (resumable)
train_on() {  # set preset
    local m="$OUT/$1/models/$2" log="$OUT/logs/train_$1_$2.log"
    set_data "$1"
    if [ -f "$m/best.safetensors" ]; then
        echo "[$(stamp)] $1/$2: trained"
    elif [ -f "$m/state.pt" ]; then   # its own config.yaml carries the preset and the overrides
        echo "[$(stamp)] $1/$2: resuming training"
        robustreid train --resume --out "$m" >> "$log" 2>&1
    else
        echo "[$(stamp)] $1/$2: training"
        (set -f; robustreid train "$2" data.dataset="$DS" data.root="$ROOT" $TRAIN_ARGS --out "$m" >> "$log" 2>&1)
    fi
}

if [[ " $SETS " == *" synthetic "* ]] && [ ! -f "$SYNTH/manifest.json" ]; then
    echo "[$(stamp)] synthesising the occluded set in $SYNTH"
    robustreid synth --out "$SYNTH" --occluded --seed 0 >> "$OUT/logs/synth.log" 2>&1
fi
for d in $SETS; do
    set_data "$d"
    [ -d "$ROOT" ] || { echo "fed_study: dataset folder $ROOT ($d) not found (set OCC_DUKE / SYNTH)" >&2; exit 2; }
done

for s in $SETS; do
    for p in "${PRESETS[@]}"; do
        train_on "$s" "$p"
        set_data "$s"
        m="$OUT/$s/models/$p"; blog="$OUT/logs/bench_${s}_${p}.log"
        echo "[$(stamp)] $s/$p: clean + corruption mix (3 passes, query / gallery / both)"
        robustreid bench --checkpoint "$p=$m" --dataset "$DS" --root "$ROOT" --out "$OUT/$s/bench/$p" \
            --mode mix --mix-passes 3 --no-progress >> "$blog" 2>&1
        echo "[$(stamp)] $s/$p: occlusion family, severities $OCC_SEVERITIES"
        robustreid bench --checkpoint "$p=$m" --dataset "$DS" --root "$ROOT" --out "$OUT/$s/occlusion/$p" \
            --mode sweep --corruptions occlusion --severities "$OCC_SEVERITIES" --no-progress >> "$blog" 2>&1
        if [ "$p" = fed_lite0 ]; then  # the released log's finding: f′ evaluates better than the FDM output
            mkdir -p "$OUT/$s/features"
            python "$HERE/fed_eval_features.py" --checkpoint "$m" --dataset "$DS" --root "$ROOT" \
                --out "$OUT/$s/features/$p.json" >> "$blog" 2>&1
        fi
    done
done

for p in $HOLISTIC; do
    [[ " ${PRESETS[*]} " == *" $p "* ]] || continue
    train_on market1501 "$p"
    echo "[$(stamp)] market1501/$p: holistic Market-1501, clean"
    robustreid bench --checkpoint "$p=$OUT/market1501/models/$p" --dataset market1501 --root "$MARKET" \
        --out "$OUT/market1501/bench/$p" --protocols clean --no-progress >> "$OUT/logs/bench_market1501_$p.log" 2>&1
done
echo "[$(stamp)] done; tables: python benchmarks/fed_table.py --out $OUT"
