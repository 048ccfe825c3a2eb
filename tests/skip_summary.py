"""The run's last word on what it did not test (a pytest plugin).

A green run that skipped the warehouse or the browser tests must say so:
one line naming each group of skipped tests (by module) and why.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path


def _reason(report) -> str:
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return text.removeprefix("Skipped: ").strip()


def pytest_terminal_summary(terminalreporter) -> None:
    skipped = terminalreporter.stats.get("skipped", [])
    if not skipped:
        return
    counts: Counter[str] = Counter()
    reasons: dict[str, str] = {}
    for report in skipped:
        group = Path(report.nodeid.split("::", 1)[0]).stem
        counts[group] += 1
        reasons.setdefault(group, _reason(report))
    parts = [f"{group} ({n}: {reasons[group]})" for group, n in sorted(counts.items())]
    terminalreporter.write_line("skipped groups: " + "; ".join(parts))
