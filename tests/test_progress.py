"""The one progress bar: shown on a terminal when asked, silent otherwise,
bytes in KiB/MiB, a client's wait notices as its postfix."""

from __future__ import annotations

import io
import os

import pytest

from pe_toolkit.client.pacing import WaitNotice
from pe_toolkit.progress import interactive, progress_bar


@pytest.fixture
def terminal():
    """A real pseudo-terminal to draw on, and what was drawn."""
    main, side = os.openpty()
    with os.fdopen(side, "w", encoding="utf-8") as out:
        drawn: list[str] = []

        def read() -> str:
            out.flush()
            os.set_blocking(main, False)
            try:
                while chunk := os.read(main, 65536):
                    drawn.append(chunk.decode("utf-8", "replace"))
            except BlockingIOError:
                pass
            return "".join(drawn)

        yield out, read
    os.close(main)


def test_drawn_on_a_terminal_with_the_conventions(terminal):
    out, read = terminal
    assert interactive(out)
    with progress_bar(3 * 2**20, "load", "B", file=out) as bar:
        assert not bar.disable and bar.unit_scale and bar.unit_divisor == 1024
        bar.update(2**20)
        bar.refresh()
        shown = read()
    assert "load" in shown and "1.00M/3.00M" in shown and "B/s" in shown
    with progress_bar(10, "analyze", "conv", file=out) as bar:
        assert not bar.unit_scale and bar.unit_divisor == 1000
        bar.update(4)
        bar.refresh()
        assert "4/10" in read() and "conv" in read()
    assert not bar.leave  # cleared when done


def test_silent_when_not_asked_or_not_watched(terminal):
    out, _ = terminal
    with progress_bar(10, "x", file=out, enabled=False) as bar:
        assert bar.disable
    log = io.StringIO()  # a file or pipe: nobody watches the redraws
    assert not interactive(log)
    with progress_bar(10, "x", "conv", file=log) as bar:
        assert bar.disable
        bar.update(10)
    assert log.getvalue() == ""


def test_iterable_passes_through(terminal):
    out, _ = terminal
    with progress_bar(3, "folds", iterable=iter("abc"), file=out) as bar:
        assert list(bar) == ["a", "b", "c"] and bar.n == 3


def test_wait_notices_become_the_postfix_while_the_bar_runs(terminal):
    out, _ = terminal
    notice = WaitNotice(after=1.0)
    with progress_bar(None, "export e1", "B", waits=notice, file=out) as bar:
        notice.retry(30.0, None, 1)
        assert "backing off" in bar.postfix
    notice.succeeded()
    notice.retry(30.0, None, 2)  # announced again, but the bar is gone
    assert "backing off" in bar.postfix and notice._bars == []
