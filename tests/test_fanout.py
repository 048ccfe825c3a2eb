"""fan_out and its WidthTuner: bounded, adaptive concurrency for fetches."""

from __future__ import annotations

import threading
import time

import pytest

from pe_toolkit.client.fanout import MIN_WINDOW_SECONDS, RECHECK_EVERY, WidthTuner, fan_out


def settle(tuner: WidthTuner, rate_of, windows: int, clock: list[float]) -> list[int]:
    """Drive the tuner with a fake clock: completions arrive at
    ``rate_of(width)`` per second. Returns the width after each window."""
    widths = []
    for _ in range(windows):
        width, seen = tuner.width, tuner.windows
        while tuner.windows == seen:
            clock[0] += 1.0 / rate_of(width)
            tuner.completed(clock[0])
        widths.append(tuner.width)
    return widths


def test_a_window_is_long_enough_in_completions_and_in_time() -> None:
    tuner = WidthTuner(8, 0.0)
    for i in range(1, 100_000):  # 2,000 a second: 32 completions in 16 ms
        tuner.completed(i / 2000)
        if tuner.windows:
            break
    assert i / 2000 >= MIN_WINDOW_SECONDS and i >= 32
    slow = WidthTuner(8, 0.0)
    for i in range(1, 100):  # 10 a second: the count decides
        slow.completed(i / 10)
        if slow.windows:
            break
    assert i == 32


@pytest.mark.parametrize(
    ("rate_of", "ceiling", "expected"),
    [
        (lambda w: 100.0 * w, 8, 8),  # network-bound: the ceiling
        (lambda w: 100.0 * w, 6, 6),  # a ceiling that is not a power of two
        (lambda w: 1000.0, 8, 1),  # CPU-bound: width buys nothing, fewer threads
        (lambda w: 1000.0 / w, 8, 1),  # contention: wider is slower
        (lambda w: 100.0 * (1.05 ** w), 8, 8),  # one at a time loses over 5%: stay wide
        (lambda w: 100.0 * (1.005 ** w), 8, 1),  # within 5%: one thread will do
        (lambda w: 100.0 * (0.98 ** w), 8, 1),  # narrower slightly faster
        (lambda w: {1: 100.0, 2: 150.0, 4: 120.0, 8: 90.0}[w], 8, 2),  # one wins over eight, two over one
        # best at four, but one loses to eight: eight holds (four is found
        # by a later re-check of the narrower neighbour)
        (lambda w: {1: 100.0, 2: 150.0, 4: 200.0, 8: 190.0}[w], 8, 8),
    ],
)
def test_tuner_settles_on_the_fastest_width(rate_of, ceiling: int, expected: int) -> None:
    clock = [0.0]
    tuner = WidthTuner(ceiling, clock[0])
    assert tuner.width == ceiling  # starts wide: too narrow is the costlier mistake
    widths = settle(tuner, rate_of, 10, clock)
    assert widths[-1] == expected
    assert widths[0] == 1 or ceiling == 1  # the second window tries one at a time
    assert max(widths) <= ceiling


def test_tuner_rechecks_neighbours_when_conditions_change() -> None:
    clock = [0.0]
    tuner = WidthTuner(8, clock[0])
    settle(tuner, lambda w: 1000.0 / w, 10, clock)
    assert tuner.width == 1
    # Now the requests wait (a slower server, a network): each re-check
    # (every RECHECK_EVERY windows, alternately wider and narrower) moves
    # one step wider until the ceiling.
    widths = settle(tuner, lambda w: 50.0 * w, 6 * (RECHECK_EVERY + 1), clock)
    assert widths[RECHECK_EVERY + 1] == 2
    assert widths[-1] == 8
    # And back to contention: the narrower re-checks win, one step at a time.
    widths = settle(tuner, lambda w: 1000.0 / w, 6 * (RECHECK_EVERY + 1), clock)
    assert widths[-1] == 1


def test_tuner_with_ceiling_one_never_widens() -> None:
    clock = [0.0]
    tuner = WidthTuner(1, clock[0])
    assert settle(tuner, lambda w: 100.0 * w, 5, clock) == [1] * 5


class Gauge:
    """Counts calls in flight; the peak is what the bound is about."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.now, self.peak, self.calls = seconds, 0, 0, 0
        self.threads: set[str] = set()
        self.lock = threading.Lock()

    def __call__(self, item: int) -> int:
        with self.lock:
            self.now += 1
            self.calls += 1
            self.peak = max(self.peak, self.now)
            self.threads.add(threading.current_thread().name)
        time.sleep(self.seconds)  # waiting, as a request over a network does
        with self.lock:
            self.now -= 1
        return item * 2


def test_waiting_calls_widen_to_the_ceiling_and_never_past_it() -> None:
    gauge = Gauge(0.004)
    results = dict(fan_out(gauge, range(500), 4, ValueError))
    assert results == {i: 2 * i for i in range(500)}
    assert gauge.peak == 4


def test_width_one_runs_in_the_callers_thread() -> None:
    gauge = Gauge(0.0)
    assert sorted(r for _, r in fan_out(gauge, range(50), 1, ValueError)) == [2 * i for i in range(50)]
    assert gauge.threads == {threading.current_thread().name}


def test_caught_errors_are_yielded_and_others_raise() -> None:
    def call(item: int) -> int:
        if item == 3:
            raise KeyError("not caught")
        if item % 2:
            raise ValueError(f"odd {item}")
        return item

    out = dict(fan_out(call, [0, 1, 2, 5], 4, ValueError))
    assert out[0] == 0 and out[2] == 2
    assert isinstance(out[1], ValueError) and str(out[5]) == "odd 5"
    for width in (1, 4):
        with pytest.raises(KeyError):
            list(fan_out(call, range(10), width, ValueError))


def test_closing_early_drops_what_has_not_started() -> None:
    gauge = Gauge(0.002)
    stream = fan_out(gauge, range(10_000), 8, ValueError)
    for n, _ in enumerate(stream):
        if n == 100:
            break
    stream.close()
    calls = gauge.calls
    time.sleep(0.05)
    assert gauge.calls == calls  # the workers stopped
    assert calls < 200
    assert not [t for t in threading.enumerate() if t.name.startswith("pe-fetch_")]


@pytest.mark.parametrize("width", [1, 3])
def test_a_callers_cancel_event_is_set_only_when_the_run_ends_early(width):
    # An event the caller keeps (an app's shutdown event) set by a run that
    # simply finished made every later fetch_each raise RequestCancelledError.
    cancel = threading.Event()
    assert sorted(r for _, r in fan_out(lambda x: x * 2, [1, 2, 3], width, Exception, cancel=cancel)) == [2, 4, 6]
    assert not cancel.is_set()
    run = fan_out(lambda x: x, range(100), width, Exception, cancel=cancel)
    next(run)
    run.close()  # an early end: calls still waiting must stop
    assert cancel.is_set()
