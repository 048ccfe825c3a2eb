"""LiveMonitor: charts that follow the event stream.

Events come from an :class:`EventSource` with two methods (``start(handler)``,
``stop()``): the in-process bus (:class:`BusSource` over
:data:`pe_toolkit.events.bus`, where sync, import and analysis publish), or
the mirror's server-sent-events stream (:class:`~pe_toolkit.widgets.SseSource`
over ``Client.stream_updates``). Handlers may be called from
the publishing thread (a sync runs in the background): counting happens
under a lock, and redrawing is throttled to ``min_interval`` seconds so a
burst of events costs one figure update.

>>> monitor = LiveMonitor()                 # follows pe_toolkit.events.bus
>>> monitor                                 # in JupyterLab; then run a sync
>>> monitor.stop()
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import ipywidgets as w

from ..events import Event, EventBus, bus as default_bus
from .display import View, figure_html, static_figure
from .figures import SERIES_COLOURS, figure_widget
from .html import STYLE, esc

Handler = Callable[[Event], None]


class EventSource(Protocol):
    """Where a LiveMonitor gets events from."""

    def start(self, handler: Handler) -> None:
        """Begin calling ``handler(event)`` for each event (any thread)."""
        ...

    def stop(self) -> None:
        """Stop calling the handler; calling it twice is harmless."""
        ...


class BusSource:
    """Events of an in-process :class:`EventBus` (default: the process-wide bus)."""

    def __init__(self, bus: EventBus | None = None, topics: Sequence[str] = ("*",)) -> None:
        self.bus = bus or default_bus
        self.topics = tuple(topics)
        self._unsubscribe: list[Callable[[], None]] = []

    def start(self, handler: Handler) -> None:
        self.stop()
        self._unsubscribe = [self.bus.subscribe(topic, handler) for topic in self.topics]

    def stop(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []


def _items(payload: dict[str, Any]) -> int:
    """How many conversations an event is about: an explicit count first (the
    mirror truncates ``ids`` to 1,000 per event and says how many there were),
    else the length of ``ids``."""
    for key in ("count", "conversations", "n"):
        value = payload.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    ids = payload.get("ids")
    if isinstance(ids, (list, tuple)):
        return len(ids)
    return 1


def _summary(payload: dict[str, Any]) -> str:
    """Payload without content: counts for lists, short scalars as they are."""
    parts = []
    for key, value in list(payload.items())[:6]:
        if isinstance(value, (list, tuple, set, dict)):
            parts.append(f"{key}: {len(value):,}")
        else:
            text = str(value)
            parts.append(f"{key}: {text[:40]}{'…' if len(text) > 40 else ''}")
    return ", ".join(parts)


class LiveMonitor(View):
    """Counts events per topic in time buckets over a sliding window and
    draws them; lists the latest events (payload summarized, never content)."""

    def __init__(
        self,
        source: EventSource | None = None,
        *,
        window: float = 300.0,
        bucket: float = 5.0,
        log_size: int = 15,
        min_interval: float = 0.5,
        autostart: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not bucket > 0 or not window >= bucket:
            from ..errors import InputError

            # Name the argument that is wrong and its value: a caller passing
            # only window= never chose the bucket it is compared with.
            if not bucket > 0:
                raise InputError(f"LiveMonitor needs bucket > 0 seconds, got bucket={bucket!r}")
            raise InputError(f"LiveMonitor's window ({window!r} s) must be at least its bucket ({bucket:g} s)")
        self.source = source or BusSource()
        self.window, self.bucket, self.min_interval = float(window), float(bucket), float(min_interval)
        self._clock = clock
        self._lock = threading.Lock()  # the counts
        self._draw_lock = threading.Lock()  # the figures: the flush timer draws from its own thread
        self._buckets: dict[float, Counter[str]] = {}
        self.totals: Counter[str] = Counter()
        self.items: Counter[str] = Counter()
        self.log: deque[Event] = deque(maxlen=log_size)
        self._last_draw = float("-inf")
        self._pending = False
        self.fig_rate = figure_widget(f"Events per {self.bucket:g} s (last {self.window:g} s)", height=300)
        self.fig_rate.update_xaxes(title_text="time (UTC)")
        self.fig_totals = figure_widget("Conversations per topic since start", height=300)
        self.fig_totals.add_bar(x=[], y=[], marker_color="#4f8fc7", name="conversations")
        self._log_html = w.HTML()
        self._status = w.HTML()
        self.ui = w.VBox(
            [w.HTML(STYLE), self._status, w.HBox([w.Box([self.fig_rate], layout=w.Layout(width="60%")), w.Box([self.fig_totals], layout=w.Layout(width="40%"))]), self._log_html]
        )
        self.running = False
        self.refresh()
        if autostart:
            self.start()

    # -- source ----------------------------------------------------------------
    def start(self) -> None:
        if not self.running:
            self.source.start(self.handle)
            self.running = True
            self._status.value = self._status_html()

    def stop(self) -> None:
        self.source.stop()
        self.running = False
        self.refresh()

    def __enter__(self) -> LiveMonitor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- events ------------------------------------------------------------------
    def handle(self, event: Event) -> None:
        """Count one event (called by the source, from any thread)."""
        at = event.at.timestamp()
        key = at - (at % self.bucket)
        with self._lock:
            self._buckets.setdefault(key, Counter())[event.topic] += 1
            self.totals[event.topic] += 1
            self.items[event.topic] += _items(event.payload)
            self.log.append(event)
            newest = max(self._buckets)
            for old in [k for k in self._buckets if k < newest - self.window]:  # a few dozen buckets
                del self._buckets[old]
            wait = self.min_interval - (self._clock() - self._last_draw)
            schedule = wait > 0 and not self._pending
            self._pending = wait > 0
        if wait <= 0:
            self.refresh()
        elif schedule:
            # The last event of a burst must be drawn even if no other follows.
            timer = threading.Timer(wait, self.flush)
            timer.daemon = True
            timer.start()

    def flush(self) -> None:
        """Draw events that arrived during the throttle interval."""
        if self._pending:
            self.refresh()

    def rates(self) -> dict[str, list[tuple[datetime, int]]]:
        """Events per bucket for each topic over the window (zeros filled)."""
        with self._lock:
            if not self._buckets:
                return {}
            newest = max(self._buckets)
            steps = int(self.window // self.bucket)
            keys = [newest - i * self.bucket for i in range(steps - 1, -1, -1)]
            topics = sorted({t for c in self._buckets.values() for t in c})
            return {
                t: [(datetime.fromtimestamp(k, UTC), self._buckets.get(k, Counter())[t]) for k in keys] for t in topics
            }

    def refresh(self) -> None:
        """Redraw the figures from the counts now."""
        with self._draw_lock:
            self._draw()

    def _draw(self) -> None:
        rates = self.rates()
        with self._lock:
            totals = sorted(self.items.items())
            log = list(self.log)
            self._last_draw = self._clock()
            self._pending = False
        with self.fig_rate.batch_update():
            existing = {trace.name: trace for trace in self.fig_rate.data}
            for topic, series in rates.items():
                if topic not in existing:
                    colour = SERIES_COLOURS[len(existing) % len(SERIES_COLOURS)]
                    self.fig_rate.add_scatter(name=topic, x=[], y=[], mode="lines", line=dict(color=colour, shape="hv"))
                    existing[topic] = self.fig_rate.data[-1]
                existing[topic].x = [t for t, _ in series]
                existing[topic].y = [n for _, n in series]
        with self.fig_totals.batch_update():
            self.fig_totals.data[0].x = [t for t, _ in totals]
            self.fig_totals.data[0].y = [n for _, n in totals]
        rows = "".join(
            f"<tr><td>{esc(e.at.strftime('%H:%M:%S'))}</td><td>{esc(e.topic)}</td><td>{esc(_summary(e.payload))}</td></tr>"
            for e in reversed(log)
        )
        self._log_html.value = (
            '<table class="pe-table"><thead><tr><th>time (UTC)</th><th>topic</th><th>payload</th></tr></thead>'
            f"<tbody>{rows}</tbody></table>"
            if rows
            else '<p class="pe-note">No events yet: start a sync, an import or an analysis.</p>'
        )
        self._status.value = self._status_html()

    def _status_html(self) -> str:
        state = "following" if self.running else "stopped"
        return f"<b>{state}</b> · {sum(self.totals.values()):,} events · {esc(type(self.source).__name__)}"

    def to_html(self) -> str:
        self.refresh()
        return (
            f'{STYLE}<div class="pe-view"><p>{self._status.value}</p>'
            f"{figure_html(static_figure(self.fig_rate))}{figure_html(static_figure(self.fig_totals))}{self._log_html.value}</div>"
        )
