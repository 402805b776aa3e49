"""The study scripts' shared resumable training step (benchmarks/train_common.sh), run with a stand-in trainer."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMMON = ROOT / "benchmarks" / "train_common.sh"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def _fake_trainer(tmp_path: Path, body: str) -> dict:
    """An environment whose `robustreid` is a bash script running ``body``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "robustreid"
    fake.write_text(f"#!/usr/bin/env bash\n{body}\n")
    fake.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def _run_step(tmp_path: Path, model_dir: Path, *overrides: str) -> tuple[str, list[str]]:
    """Source train_common.sh and call train_or_resume with a fake `robustreid` that records its argv."""
    calls = tmp_path / "calls.txt"
    env = {**_fake_trainer(tmp_path, f'echo "$*" >> "{calls}"'), "ARGS": " ".join(overrides)}
    script = (f'set -euo pipefail; source "{COMMON}"; '
              f'(set -f; train_or_resume lbl "{model_dir}" "{tmp_path / "log.txt"}" preset_x $ARGS)')
    out = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, check=True).stdout
    return out, calls.read_text().splitlines() if calls.exists() else []


def _half_or_finished(tmp_path: Path, log_text: str, *extra: str) -> Path:
    """A model folder with a training state, a train.log of ``log_text`` and the ``extra`` files."""
    m = tmp_path / "m"
    m.mkdir()
    for name in ("state.pt", *extra):
        (m / name).touch()
    (m / "train.log").write_text(log_text)
    return m


def test_fresh_run_trains_the_preset_with_unglobbed_overrides(tmp_path):
    (tmp_path / "s1").touch()  # a file that the pattern s[12] would match if the overrides were globbed
    out, calls = _run_step(tmp_path, tmp_path / "m", "solver.steps=[12,17]", "s[12]")
    assert "lbl: training" in out
    assert calls == [f"train preset_x solver.steps=[12,17] s[12] --out {tmp_path / 'm'}"]


def test_half_trained_run_resumes_and_ignores_new_overrides(tmp_path):
    # best.safetensors is written early by a training that evaluates every few epochs: not finished
    m = _half_or_finished(tmp_path, "INFO: epoch 3/20 it 10/188\n", "best.safetensors")
    out, calls = _run_step(tmp_path, m, "solver.epochs=99")
    assert "lbl: resuming training" in out
    assert calls == [f"train --resume --out {m}"]


def test_finished_run_is_not_repeated(tmp_path):
    m = _half_or_finished(tmp_path, "2026-12-02 08:00:00 INFO: done: {\"mAP\": 0.4}\n")
    out, calls = _run_step(tmp_path, m)
    assert "lbl: trained" in out
    assert calls == []


def test_a_failing_training_stops_the_study(tmp_path):
    env = _fake_trainer(tmp_path, "exit 3")
    script = f'set -euo pipefail; source "{COMMON}"; train_or_resume lbl "{tmp_path / "m"}" "{tmp_path / "l"}" p; echo after'
    proc = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True)
    assert proc.returncode == 3 and "after" not in proc.stdout
