"""Shared test settings: small thread pools (2-core CI machine), deterministic torch."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


# CI sets ROBUSTREID_REQUIRE_BROWSER=1 (.ci/run installs Chromium): there a browser test that skips for want of
# Chromium or its driver fails instead, so that the headless-browser checks run on every submission.
REQUIRE_BROWSER = os.environ.get("ROBUSTREID_REQUIRE_BROWSER", "") not in ("", "0")


def _skip_reason(report) -> str:
    lr = report.longrepr
    return str(lr[2] if isinstance(lr, tuple) and len(lr) == 3 else lr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_BROWSER and report.skipped and any(w in _skip_reason(report).lower()
                                                  for w in ("chromium", "chromedriver", "browser")):
        report.outcome = "failed"
        report.longrepr = f"ROBUSTREID_REQUIRE_BROWSER is set but the browser test skipped: {_skip_reason(report)}"
