#!/usr/bin/env bash
# The robust-training study on real data (issue #8): train each cpu_small_<aug> preset on Market-1501 with the same
# budget, benchmark it (clean + mix protocol with 3 passes, the occlusion family, DukeMTMC-reID clean), then the
# correlation between corruption robustness and cross-dataset mAP over all the models, and one HTML report.
#
#   bash benchmarks/market_study.sh [PRESET ...]        # default: every preset of the study, in order
#
# Every step resumes: a finished model (its train.log says "done") is not retrained, a half-trained one continues
# from its state.pt, a benchmark folder skips its finished cells. So the same command finishes an interrupted
# study, and adding a preset later costs only that preset. Environment (defaults in brackets):
#   OUT          [runs/study]            models/<preset>, market/<preset>, occlusion/<preset>, duke/<preset>, ...
#   MARKET       [real/data/market1501]  DUKE [real/data/dukemtmc]
#   TRAIN_ARGS   [20-epoch schedule]     overrides given to every `robustreid train`
#   OCC_SEVERITIES [1,3]                 severities of the occlusion family (both sides and one side)
set -euo pipefail

OUT=${OUT:-runs/study}
MARKET=${MARKET:-real/data/market1501}
DUKE=${DUKE:-real/data/dukemtmc}
TRAIN_ARGS=${TRAIN_ARGS:-'solver.epochs=20 solver.steps=[12,17] solver.warmup_epochs=2 train.eval_period=0'}
OCC_SEVERITIES=${OCC_SEVERITIES:-1,3}
PRESETS=("$@")
if [ ${#PRESETS[@]} -eq 0 ]; then
    PRESETS=(cpu_small_plain cpu_small cpu_small_patch cpu_small_cil cpu_small_igo cpu_small_npo cpu_small_noise
             cpu_small_corrupt)
fi
for d in "$MARKET" "$DUKE"; do
    [ -d "$d" ] || { echo "market_study: dataset folder $d not found (set MARKET / DUKE)" >&2; exit 2; }
done
mkdir -p "$OUT"/{models,market,occlusion,duke,logs}
# shellcheck source=train_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/train_common.sh"

for p in "${PRESETS[@]}"; do
    m="$OUT/models/$p"
    (set -f; train_or_resume "$p" "$m" "$OUT/logs/train_$p.log" "$p" $TRAIN_ARGS data.root="$MARKET")
    echo "[$(stamp)] $p: Market-1501 clean + mix (3 passes, query / gallery / both)"
    robustreid bench --checkpoint "$p=$m" --dataset market1501 --root "$MARKET" --out "$OUT/market/$p" \
        --mode mix --mix-passes 3 >> "$OUT/logs/bench_$p.log" 2>&1
    echo "[$(stamp)] $p: occlusion family, severities $OCC_SEVERITIES"
    robustreid bench --checkpoint "$p=$m" --dataset market1501 --root "$MARKET" --out "$OUT/occlusion/$p" \
        --mode sweep --corruptions occlusion --severities "$OCC_SEVERITIES" >> "$OUT/logs/bench_$p.log" 2>&1
    echo "[$(stamp)] $p: DukeMTMC-reID clean (cross-dataset)"
    robustreid bench --checkpoint "$p=$m" --dataset dukemtmc --root "$DUKE" --out "$OUT/duke/$p" \
        --protocols clean >> "$OUT/logs/bench_$p.log" 2>&1
done

# analysis over every model benchmarked so far (not only the presets of this invocation)
runs=(); cross=()
for d in "$OUT"/market/*/; do
    p=$(basename "$d")
    [ -f "$d/results.csv" ] && [ -f "$OUT/duke/$p/results.csv" ] || continue
    runs+=("$OUT/market/$p"); cross+=(--cross "$OUT/duke/$p")
done
if [ ${#runs[@]} -gt 0 ]; then
    echo "[$(stamp)] correlation over ${#runs[@]} models"
    robustreid analyze correlation "${runs[@]}" "${cross[@]}" --out "$OUT/correlation" | tee "$OUT/correlation.txt"
    occ=(); for d in "$OUT"/occlusion/*/; do [ -f "$d/results.csv" ] && occ+=("${d%/}"); done
    robustreid report "${runs[@]}" "${occ[@]}" --title "Robust training on Market-1501" --out "$OUT/report.html"
    echo "[$(stamp)] report: $OUT/report.html"
fi
