# Steps shared by benchmarks/occluded_study.sh and benchmarks/fed_study.sh (sourced by both, not run on its own): the
# layout OUT/<dataset>/{models,mix,occlusion}/<preset>, OUT/logs, the synthetic occluded set in OUT/data, resumable
# training and benchmarking. Expects OUT, STEPS, TRAIN_ARGS, THREADS, OCC_SEVERITIES, SYNTH_IDS and PRESETS set by the
# study; a study may define bench_extra PRESET DATASET ROOT MODEL_DIR LOG, run after a full (not clean-only) benchmark.
# With KEEP set (a folder of the repository, e.g. benchmarks/results/occluded) the result files are copied there after
# each model's benchmark (benchmarks/keep_results.py), so that they outlive the study machine once committed.

# shellcheck source=train_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/train_common.sh"

COMMON_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SYNTH="$OUT/data/synth_occluded"
mkdir -p "$OUT/logs"
has() { case " $STEPS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# train PRESET on DATASET at ROOT into OUT/DATASET/models/PRESET (resumable: train_common.sh)
train_one() {
    local p=$1 ds=$2 root=$3
    # TRAIN_ARGS split into words, unglobbed (solver.steps=[12,17] is not a pattern)
    (set -f; train_or_resume "$ds/$p" "$OUT/$ds/models/$p" "$OUT/logs/train_${ds}_$p.log" "$p" $TRAIN_ARGS \
        data.dataset="$ds" data.root="$root" train.threads="$THREADS")
}

# benchmark OUT/DATASET/models/PRESET: clean + mix (3 passes) and, unless "clean", the occlusion family (+ bench_extra)
bench_one() {
    local p=$1 ds=$2 root=$3 what=${4:-full} m="$OUT/$2/models/$1" log="$OUT/logs/bench_$2_$1.log"
    if [ "$what" = clean ]; then
        echo "[$(stamp)] $ds/$p: clean"
        robustreid bench --checkpoint "$p=$m" --dataset "$ds" --root "$root" --out "$OUT/$ds/mix/$p" \
            --protocols clean --no-progress >> "$log" 2>&1
        keep_results
        return
    fi
    echo "[$(stamp)] $ds/$p: clean + corruption mix (3 passes; query / gallery / both)"
    robustreid bench --checkpoint "$p=$m" --dataset "$ds" --root "$root" --out "$OUT/$ds/mix/$p" \
        --mode mix --mix-passes 3 --no-progress >> "$log" 2>&1
    echo "[$(stamp)] $ds/$p: occlusion family, severities $OCC_SEVERITIES"
    robustreid bench --checkpoint "$p=$m" --dataset "$ds" --root "$root" --out "$OUT/$ds/occlusion/$p" \
        --mode sweep --corruptions occlusion --severities "$OCC_SEVERITIES" --no-progress >> "$log" 2>&1
    if declare -F bench_extra > /dev/null; then
        bench_extra "$p" "$ds" "$root" "$m" "$log"
    fi
    keep_results
}

# copy the result files into KEEP, when set (each dataset folder's path written as $DATA/<its name>)
keep_results() {
    if [ -n "${KEEP:-}" ]; then
        local d data=()
        for d in "${OCC:-}" "${MARKET:-}" "${DUKE:-}"; do
            if [ -n "$d" ]; then data+=(--data "$d"); fi
        done
        python "$COMMON_DIR/keep_results.py" --out "$OUT" --to "$KEEP" "${data[@]}" > /dev/null
    fi
}

# train and benchmark every preset of PRESETS on DATASET at ROOT
study_on() {
    local ds=$1 root=$2 p
    for p in "${PRESETS[@]}"; do
        train_one "$p" "$ds" "$root"
        bench_one "$p" "$ds" "$root"
    done
}

# the synthetic occluded set (SYNTH_IDS identities), made once in OUT/data and shared by the studies
make_synth() {
    if [ ! -f "$SYNTH/manifest.json" ] && [ ! -d "$SYNTH/query" ]; then
        echo "[$(stamp)] synthetic occluded set: $SYNTH_IDS identities"
        robustreid synth --out "$SYNTH" --identities "$SYNTH_IDS" --cameras 6 --images-per-id 12 --seed 0 \
            --occluded >> "$OUT/logs/synth.log" 2>&1
    fi
}
