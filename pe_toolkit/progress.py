"""The one progress bar: tqdm, shown only where someone watches.

Every long call (import, sync, analyze, export, warehouse load, client
jobs and downloads, synthetic data, cross-validation) takes ``progress``
and shows its bar through :func:`progress_bar`, so they all look alike:
the description is what runs, the unit what is counted (``B`` counts bytes
in KiB/MiB), and the bar is cleared when done. It is shown in a Jupyter
kernel (as a widget) and on a terminal; not when output goes to a file, a
pipe or a log, where the redrawn line would only add noise. A client's
wait notice (:class:`~pe_toolkit.client.pacing.WaitNotice`) shows its
short announcements as the bar's postfix.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Iterator
from typing import IO, Any


def interactive(file: IO[str] | None = None) -> bool:
    """Whether a bar would be seen: a Jupyter kernel runs this process, or
    ``file`` (default: standard error) is a terminal."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    # The test tqdm.auto uses to choose its notebook widget.
    if shell is not None and "IPKernelApp" in getattr(shell, "config", {}):
        return True
    stream = sys.stderr if file is None else file
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


@contextlib.contextmanager
def progress_bar(
    total: float | None,
    desc: str,
    unit: str = "it",
    *,
    enabled: bool = True,
    iterable: Iterable[Any] | None = None,
    waits: Any = None,
    file: IO[str] | None = None,
) -> Iterator[Any]:
    """A tqdm bar for the ``with`` block (see the module docstring).

    ``enabled``: the caller's ``progress`` argument; the bar is also off
    when nobody would see it (:func:`interactive`). ``iterable``: iterate
    the bar to step through it. ``waits``: a client's ``WaitNotice``,
    whose announcements become the bar's postfix while the block runs.
    ``file``: where to draw (default: standard error)."""
    from tqdm.auto import tqdm  # deferred: tqdm.auto probes for Jupyter on import

    scale = unit == "B"
    bar = tqdm(
        iterable, total=total, desc=desc, unit=unit, unit_scale=scale, unit_divisor=1024 if scale else 1000,
        disable=not (enabled and interactive(file)), leave=False, file=file,
    )
    with bar, (waits.shown_on(bar) if waits is not None else contextlib.nullcontext()):
        yield bar
