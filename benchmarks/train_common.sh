# The resumable training step shared by the study scripts (sourced, not run on its own): market_study.sh,
# occluded_study.sh and fed_study.sh (through occluded_common.sh) decide in one place what "trained" means.
#
#   train_or_resume LABEL MODEL_DIR LOG PRESET [OVERRIDE ...]
#
# A finished training (its train.log has the trainer's final " done: {" line) is not repeated; a half-finished one
# (state.pt present) continues from its own config.yaml, which carries the preset and the overrides given when it
# started (new overrides are not applied to a resume); otherwise PRESET is trained with the overrides into MODEL_DIR.
# best.safetensors is not a sign of a finished run: a training that evaluates every few epochs writes it early.
# Output of the trainer goes to LOG; one line per step to stdout.

stamp() { date -u +%H:%M:%S; }

train_or_resume() {
    local label=$1 m=$2 log=$3
    shift 3
    if [ -f "$m/train.log" ] && grep -q ' done: {' "$m/train.log"; then
        echo "[$(stamp)] $label: trained"
    elif [ -f "$m/state.pt" ]; then
        echo "[$(stamp)] $label: resuming training"
        robustreid train --resume --out "$m" >> "$log" 2>&1
    else
        echo "[$(stamp)] $label: training"
        robustreid train "$@" --out "$m" >> "$log" 2>&1
    fi
}
