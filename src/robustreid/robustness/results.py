"""The benchmark's result files: DIR/results.csv (one row per finished cell) and DIR/results.jsonl (same rows).

Each row is written atomically (the file always holds whole rows), so an interrupted run loses at most the cell in
progress, and a re-run skips every cell already present. The CSV is the source of truth; the JSONL is made to
match it when a run starts.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

from ..utils.io import append_line_atomic, atomic_write_text, remove_stale_temporaries

KEY_COLUMNS = ("model", "dataset", "protocol", "corruption", "severity", "pass")
METRIC_COLUMNS = ("R1", "R5", "R10", "mAP", "mINP")
#: queries evaluated / skipped (no true match in the gallery) / whose rank was decided by a tie with a wrong match
#: (broken by gallery index): empty (JSON null) in rows written before these columns existed
COUNT_COLUMNS = ("num_valid", "num_skipped", "num_tied")
COLUMNS = KEY_COLUMNS + ("family", "seed") + METRIC_COLUMNS + (
    "num_query", "num_gallery", "extract_s", "corrupt_s", "metrics_s") + COUNT_COLUMNS
_INT = {"severity", "pass", "seed", "num_query", "num_gallery"}
_OPT_INT = set(COUNT_COLUMNS)
_FLOAT = set(METRIC_COLUMNS) | {"extract_s", "corrupt_s", "metrics_s"}

Key = Tuple[str, str, str, str, int, int]


def row_key(row: Dict) -> Key:
    return (str(row["model"]), str(row["dataset"]), str(row["protocol"]), str(row["corruption"]),
            int(row["severity"]), int(row["pass"]))


def _typed(row: Dict) -> Dict:
    out = {}
    for k in COLUMNS:
        v = row.get(k, "")
        if k in _INT:
            v = int(float(v)) if v not in ("", None) else 0
        elif k in _OPT_INT:
            v = int(float(v)) if v not in ("", None) else None
        elif k in _FLOAT:
            v = float(v) if v not in ("", None) else math.nan
        else:
            v = str(v)
        out[k] = v
    return out


def _csv_line(row: Dict) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([_fmt(row.get(k, "")) for k in COLUMNS])
    return buf.getvalue()


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)  # exact round-trip
    return str(v)


def read_results(run_dir: str | Path) -> List[Dict]:
    """All rows of DIR/results.csv, typed (ints, floats); [] when there is none yet."""
    path = Path(run_dir) / "results.csv"
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = set(KEY_COLUMNS + METRIC_COLUMNS) - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: not a robustreid results file (missing columns {', '.join(sorted(missing))})")
        return [_typed(r) for r in reader]


class ResultStore:
    """Append-only, atomic, resumable store of the finished cells of one run directory."""

    def __init__(self, run_dir: str | Path):
        self.dir = Path(run_dir)
        self.csv_path = self.dir / "results.csv"
        self.jsonl_path = self.dir / "results.jsonl"
        remove_stale_temporaries(self.dir)  # left by a run killed mid-write
        self.rows: List[Dict] = read_results(self.dir)
        self.done = {row_key(r) for r in self.rows}
        self._upgrade_csv()
        self._sync_jsonl()

    def _upgrade_csv(self) -> None:
        """A results.csv written with fewer columns (an older version) is rewritten with today's header, its rows
        unchanged (the new columns empty), so that rows appended now line up with the header."""
        if not self.csv_path.exists():
            return
        with open(self.csv_path, newline="", encoding="utf-8") as f:
            header = next(csv.reader(f), [])
        if tuple(header) != COLUMNS:
            atomic_write_text(self.csv_path, ",".join(COLUMNS) + "\n" + "".join(_csv_line(r) for r in self.rows))

    def _sync_jsonl(self) -> None:
        """Make results.jsonl hold exactly the CSV's rows (a crash between the two writes is repaired here)."""
        existing: Dict[Key, Dict] = {}
        if self.jsonl_path.exists():
            for line in self.jsonl_path.read_text(encoding="utf-8").splitlines():
                try:
                    r = json.loads(line)
                    existing[row_key(r)] = r
                except (ValueError, KeyError, TypeError):
                    continue
        want = [existing.get(row_key(r), r) for r in self.rows]
        text = "".join(json.dumps(r, sort_keys=False) + "\n" for r in want)
        current = self.jsonl_path.read_text(encoding="utf-8") if self.jsonl_path.exists() else None
        if text != (current or ""):
            atomic_write_text(self.jsonl_path, text)

    def __contains__(self, key: Key) -> bool:
        return key in self.done

    def append(self, row: Dict) -> None:
        row = _typed(row)
        key = row_key(row)
        if key in self.done:
            return
        append_line_atomic(self.csv_path, _csv_line(row), header=",".join(COLUMNS))
        append_line_atomic(self.jsonl_path, json.dumps(row))
        self.rows.append(row)
        self.done.add(key)

    def select(self, **where) -> List[Dict]:
        return [r for r in self.rows if all(r.get(k) == v for k, v in where.items())]


def load_runs(run_dirs: Iterable[str | Path]) -> Tuple[List[Dict], List[Dict]]:
    """(rows of all runs, run.json of each run) — rows carry ``run_dir``."""
    rows: List[Dict] = []
    metas: List[Dict] = []
    for d in run_dirs:
        d = Path(d)
        if not (d / "results.csv").exists():
            raise FileNotFoundError(f"{d}: no results.csv — not a benchmark run directory (run `robustreid bench` "
                                    f"with --out {d} first)")
        meta_path = d / "run.json"
        meta: Optional[Dict] = None
        if meta_path.exists():
            try:
                meta = json.loads(meta_path.read_text(encoding="utf-8"))
            except ValueError as e:
                raise ValueError(f"{meta_path}: not valid JSON ({e})") from None
        meta = dict(meta or {})
        meta["run_dir"] = str(d)
        metas.append(meta)
        for r in read_results(d):
            r["run_dir"] = str(d)
            rows.append(r)
    return rows, metas
