"""CI runs the browser tests: with ROBUSTREID_REQUIRE_BROWSER=1 (set by .ci/run) a test that skips for want of
Chromium fails instead; other skips stay skips, and without the variable a skip is a skip."""

from pathlib import Path

import pytest
from _pytest.reports import TestReport

import conftest

REPO = Path(__file__).resolve().parents[1]


def _skipped(reason):
    return TestReport("tests/test_x.py::test_x", ("tests/test_x.py", 1, "test_x"), {}, "skipped",
                      ("tests/test_x.py", 1, f"Skipped: {reason}"), "setup")


class _Outcome:
    def __init__(self, report):
        self.report = report

    def get_result(self):
        return self.report


def _through_hook(report):
    hook = conftest.pytest_runtest_makereport(None, None)
    next(hook)
    with pytest.raises(StopIteration):
        hook.send(_Outcome(report))
    return report


@pytest.mark.parametrize("require", [True, False])
def test_browser_skip_fails_only_when_required(monkeypatch, require):
    monkeypatch.setattr(conftest, "REQUIRE_BROWSER", require)
    browser = _through_hook(_skipped("needs /usr/bin/chromium (apt-get install chromium)"))
    driver = _through_hook(_skipped("needs chromium and chromedriver"))
    other = _through_hook(_skipped("CUDA only"))
    assert other.skipped
    if require:
        assert browser.failed and driver.failed
        assert "ROBUSTREID_REQUIRE_BROWSER is set" in str(browser.longrepr) and "chromium" in str(browser.longrepr)
    else:
        assert browser.skipped and driver.skipped


def test_ci_script_installs_the_browser_and_requires_it():
    script = (REPO / ".ci" / "run").read_text()
    assert "apt-get install -y" in script and "chromium chromium-driver" in script
    assert "export ROBUSTREID_REQUIRE_BROWSER=1" in script
    assert script.index("ROBUSTREID_REQUIRE_BROWSER=1") < script.index("make test")
