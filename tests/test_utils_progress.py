"""Progress bars: a redrawn bar on a terminal, plain lines every few seconds in a log."""

import io

import pytest

from robustreid.utils import progress as P


class _Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


@pytest.fixture
def clock(monkeypatch):
    c = _Clock()
    monkeypatch.setattr("tqdm.std.time", c)  # tqdm reads its clock through this name
    monkeypatch.delenv(P.ENV_STYLE, raising=False)
    return c


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_log_output_gets_one_line_per_interval_and_a_last_line(clock):
    out = io.StringIO()  # not a terminal
    bar = P.progress_bar(total=100, desc="work", unit="img", file=out, interval=5.0)
    assert isinstance(bar, P.LineProgress)
    for _ in range(100):  # 100 updates over 25 s: lines at 0, 5, 10, 15, 20 and 25 s (100 %), none more on close
        clock.t += 0.25
        bar.update(1)
        bar.set_postfix(loss=1.0)  # refreshes at will in tqdm; must not add lines
    bar.close()
    text = out.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert all(line.startswith("work: ") for line in lines)
    assert len(lines) == 6, lines
    assert lines[0].startswith("work:   0% 0/100")
    assert "100% 100/100" in lines[-1] and "img/s" in lines[-1]


def test_short_job_in_a_log_prints_a_first_and_a_last_line(clock):
    out = io.StringIO()
    with P.progress_bar(range(3), desc="quick", file=out, leave=False) as bar:
        for _ in bar:
            clock.t += 0.01
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and "0/3" in lines[0] and "3/3" in lines[1]


def test_unknown_total_prints_counts(clock):
    out = io.StringIO()
    bar = P.progress_bar(desc="stream", file=out, interval=1.0)
    clock.t += 2
    bar.update(7)
    bar.close()
    lines = out.getvalue().splitlines()
    assert lines[-1].startswith("stream: 7 ")
    assert "%" not in out.getvalue()


def test_terminal_keeps_the_redrawn_bar(clock, monkeypatch):
    tty = _Tty()
    bar = P.progress_bar(total=10, desc="tty", file=tty)
    assert not isinstance(bar, P.LineProgress)
    bar.update(10)
    bar.close()
    assert "\r" in tty.getvalue()  # frames redraw one line
    # the environment variable forces lines, e.g. for a recorded terminal session
    monkeypatch.setenv(P.ENV_STYLE, "lines")
    assert P.use_lines(tty) is True
    monkeypatch.setenv(P.ENV_STYLE, "bar")
    assert P.use_lines(io.StringIO()) is False


def test_corrupt_writer_progress_in_a_log_is_lines(tmp_path, capsys, monkeypatch):
    """A real call site: the dataset writer's bar, with stderr captured (not a terminal)."""
    monkeypatch.delenv(P.ENV_STYLE, raising=False)
    from robustreid.corruptions.writer import corrupt_dataset
    from robustreid.data import load_dataset
    from robustreid.data.synthetic import generate

    generate(tmp_path / "ds", identities=3, cameras=2, images_per_id=2, seed=0, progress=False)
    ds = load_dataset("synthetic", tmp_path / "ds")
    corrupt_dataset(ds, tmp_path / "out", ["contrast"], "1", mode="sweep", seed=0, progress=True)
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = [line for line in err.splitlines() if line.startswith("corrupt ")]
    assert 1 <= len(lines) <= 3 and "100%" in lines[-1]


def test_every_bar_goes_through_the_helper():
    """No module builds a tqdm bar itself (it would flood logs with frames): they all call progress_bar."""
    from pathlib import Path

    import robustreid

    pkg = Path(robustreid.__file__).parent
    direct = [str(f.relative_to(pkg)) for f in pkg.rglob("*.py")
              if f.name != "progress.py" and "tqdm" in f.read_text(encoding="utf-8")]
    assert direct == [], f"use robustreid.utils.progress.progress_bar instead of tqdm in {direct}"
