"""Run a blocking call over many items, up to ``width`` at a time, adaptively.

How many requests to keep in flight depends on where the time goes. Over
a network a request mostly waits, and eight in flight fetch about eight
times as fast as one. Against a mirror on the same machine a request costs
about as much client CPU (httpx, under the GIL) as it waits, so extra
threads only contend: measured on loopback, eight threads fetched at 62-79%
of the rate of one. No fixed default suits both, so :class:`WidthTuner`
measures: the ceiling first, then one at a time, then wider again while
that pays (see the class), re-checking the neighbouring widths from time
to time (the network or the server's load may change during a long sync).
Starting wide is the cautious side: too wide costs a third on loopback,
too narrow over a slow network (or through retries and backoff) costs a
factor of the width.

Why not ``ThreadPoolExecutor`` with ``wait(FIRST_COMPLETED)``: that costs a
future, a waiter installed on every pending future and a thread hand-off
per item. Here long-lived workers take items from one queue and put
results on another, and at width 1 the consumer makes the call itself.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from .. import interruptible

K = TypeVar("K")

log = logging.getLogger("pe_toolkit.client")

_STOP = object()

GAIN = 1.10  # a wider setting must be this much faster to be taken
TOLERANCE = 0.95  # a narrower one is taken unless slower than this share
RECHECK_EVERY = 40  # windows at the chosen width between re-checks
MIN_WINDOW_SECONDS = 1.0  # on loopback 32 completions take 15 ms: too noisy to judge by


class WidthTuner:
    """Chooses the number of requests in flight from measured completion rates.

    Feed it the time of every completion (:meth:`completed`); read
    :attr:`width`. A window is at least ``max(32, 4 * width)`` completions
    and :data:`MIN_WINDOW_SECONDS`, long enough to average over
    request-to-request noise and the consumer's pauses; :attr:`windows`
    counts them. Pure bookkeeping: the clock is the caller's, so the tests
    drive it with a fake one.

    The first window measures the ceiling, the second one request at a
    time: the two ends differ the most (on loopback one is 30-50% faster,
    over a network many times slower), so noise cannot hide which side is
    right. If one wins, twice as many are tried, and so on while each step
    gains 10%. Then the width holds, and every :data:`RECHECK_EVERY`
    windows a neighbour is tried, alternately the wider and the narrower.
    """

    def __init__(self, ceiling: int, start: float) -> None:
        self.ceiling = max(1, ceiling)
        self.width = self.best_width = self.ceiling
        self.best_rate = 0.0
        self._state = "first" if self.ceiling > 1 else "hold"
        self._held = 0  # windows at best_width since the last check
        self._checks = 0  # re-checks so far (odd: the wider neighbour)
        self._window_start, self._count = start, 0
        self.windows = 0

    def completed(self, now: float) -> int:
        """Record one completion at ``now``; returns the width to use next."""
        self._count += 1
        elapsed = now - self._window_start
        if self._count < max(32, 4 * self.width) or elapsed < MIN_WINDOW_SECONDS:
            return self.width
        rate = self._count / elapsed
        self._window_start, self._count = now, 0
        self.windows += 1
        self._decide(rate)
        return self.width

    def _better(self, width: int, rate: float) -> bool:
        """Whether ``width`` at ``rate`` should replace the current best:
        a wider one must be 10% faster, a narrower one at most 5% slower."""
        if width > self.best_width:
            return rate >= self.best_rate * GAIN
        return rate >= self.best_rate * TOLERANCE

    def _take(self, width: int, rate: float) -> None:
        if width != self.best_width:
            log.debug("fetching %d at a time (%.0f/s)", width, rate)
        self.best_width, self.best_rate = width, rate

    def _try(self, width: int, state: str) -> None:
        self.width, self._state = width, state

    def _hold(self) -> None:
        self.width, self._state = self.best_width, "hold"

    def _decide(self, rate: float) -> None:
        state, width = self._state, self.width
        if state == "first":
            self._take(width, rate)
            self._try(1, "ends")
        elif state in ("ends", "climb"):
            if not self._better(width, rate):
                self._hold()
                return
            self._take(width, rate)
            if width < self.ceiling:
                self._try(min(self.ceiling, width * 2), "climb")
            else:
                self._hold()
        elif state == "check":
            if self._better(width, rate):
                self._take(width, rate)
            self._hold()
        else:
            # Holding: the rate at the chosen width is measured afresh each
            # window (it drifts with load).
            self.best_rate = rate
            self._held += 1
            if self._held >= RECHECK_EVERY:
                self._held = 0
                self._checks += 1
                wider = self._checks % 2 == 1
                candidate = min(self.ceiling, self.best_width * 2) if wider else max(1, self.best_width // 2)
                if candidate != self.best_width:
                    self._try(candidate, "check")


def fan_out(
    call: Callable[[K], Any],
    items: Iterable[K],
    width: int,
    catch: type[BaseException],
    *,
    clock: Callable[[], float] = time.perf_counter,
    cancel: threading.Event | None = None,
) -> Iterator[tuple[K, Any]]:
    """Yield ``(item, result)`` as each call completes (not in input order),
    with at most ``width`` calls in flight (fewer where that is faster,
    see :class:`WidthTuner`).

    An exception of type ``catch`` is yielded as the result; any other one
    stops the run and re-raises here. Closing the generator (or breaking
    out of the loop) drops the items not started yet and waits for the
    calls already running; with ``cancel``, an event those calls watch, it
    is set first, so a call sleeping out a wait ends it instead of being
    waited for.
    """

    def guarded(item: K) -> Any:
        try:
            return call(item)
        except catch as exc:
            return exc

    source = iter(items)
    tuner = WidthTuner(width, clock())
    todo: queue.SimpleQueue[Any] = queue.SimpleQueue()
    done: queue.SimpleQueue[tuple[Any, Any, BaseException | None]] = queue.SimpleQueue()
    threads: list[threading.Thread] = []

    def worker() -> None:
        while (item := todo.get()) is not _STOP:
            try:
                done.put((item, guarded(item), None))
            except BaseException as exc:  # noqa: BLE001 - re-raised by the consumer
                done.put((item, None, exc))

    in_flight = 0
    exhausted = finished = False
    try:
        while True:
            if tuner.width == 1 and in_flight == 0:
                # One at a time: no thread hand-off at all.
                try:
                    one = next(source)
                except StopIteration:
                    finished = True
                    return
                result = guarded(one)
                tuner.completed(clock())
                yield one, result
                continue
            while not exhausted and in_flight < tuner.width:
                item = next(source, _STOP)
                if item is _STOP:
                    exhausted = True
                    break
                if len(threads) < tuner.width:  # started as the width grows
                    thread = threading.Thread(target=worker, name=f"pe-fetch_{len(threads)}", daemon=True)
                    thread.start()
                    threads.append(thread)
                todo.put(item)
                in_flight += 1
            if in_flight == 0:
                finished = True
                return
            item, result, error = interruptible.get(done)  # Ctrl-C ends the wait in a script's main thread
            in_flight -= 1
            if error is not None:
                raise error
            tuner.completed(clock())
            yield item, result
    finally:
        # Take back what no worker has started, then stop the workers
        # (each finishes the call it is making; one sleeping out a pacing
        # delay or a Retry-After wakes on ``cancel``, so closing does not
        # take as long as the longest such wait).
        if cancel is not None and not finished:  # a caller's event outlives this call: set only on an early end
            cancel.set()
        while True:
            try:
                todo.get_nowait()
            except queue.Empty:
                break
        for _ in threads:
            todo.put(_STOP)
        for thread in threads:
            thread.join()
