"""Listing every conversation while the corpus changes underneath.

``GET /v1/conversations`` pages by ``limit``/``offset`` over a stable order.
When conversations are added or removed before the current offset during a
pull, the pages shift: an addition repeats an item, a removal skips one.
Two mechanisms, one state machine (:class:`Paginator`, pure, no I/O: both
clients, the facade through the sync one, and the incremental sync drive it):

*Keyset pages* where the server offers them. From the second page on, the
request also carries ``after=<last id seen>`` (an extension of the mirror,
docs/server.md): a server that honours it echoes ``after`` and answers the
ids after the cursor, so nothing before it can shift the page. A server
that does not know the parameter ignores it and answers by ``offset``; the
pager sees the missing echo and reconciles offsets for the rest of the pull.

*Offset reconciliation* otherwise. Consecutive pages overlap by one item;
if the next page does not start with the last id of the previous one, the
order shifted (*drift*). With no drift at any page boundary, consecutive
pages cover contiguous stretches of the order, so the pass saw every
conversation present from its start to its end -- the guarantee keyset
pages give by construction.

*The closing check.* One pass is not enough: a conversation added (and
another removed) before the cursor during the first pass is never seen,
and nothing in the answers reveals it (issue 15: ids ``[0, 1, 3, 4]``, 3 a
page, ``c002`` added and ``c000`` removed after the first page: no drift,
as many ids as ``total``). So every pull ends with a fresh pass over the
listing, held ids against listed ids: whatever it finds that the earlier
passes missed is returned like any other new id. The pull is *settled*
when a pass after the first shows no drift and finds at least ``total``
ids; then every conversation present throughout that last pass has been
seen. Otherwise another pass runs, up to ``max_passes``; what is still
unaccounted for after the last one is reported in ``gaps`` (at least 1
when the last pass drifted, since a shift may have skipped ids no count
reveals) -- never silently. The price is one more listing pass per pull:
``total / page_size`` requests, under 0.1 % of a pull that then fetches
each conversation.

*A listing that does not advance.* A server that repeats the ``after``
cursor, answers the same ids whatever the offset, or keeps saying
``has_more`` past ``total`` would otherwise be paged forever (the audit saw
2,669 requests in 30 s). The pull stops with
:class:`~pe_toolkit.errors.MalformedResponseError` when a keyset page ends
on the cursor it was asked for, when an offset page brings no new id and the
server says it answered another offset than the one asked (the contract's
list echoes ``offset``: the second page already shows it), when
:data:`STALL_PAGES` pages in a row answer the very ids of the page before (a
server that echoes the offset it ignored), or when the offset passes
``total`` by more than a page. One page with no new id alone is not enough:
``page_size - 1`` conversations added before the cursor between two requests
give exactly that, and with small pages several in a row (pages of 2 advance
by one id: three added at once give three). So the run counts pages that
answer exactly the ids of the page before: a changing corpus moves the
window on by an id or more each page, a server that ignores offset does not.
These never stop a sound pull.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Generic, TypeVar

from ..errors import MalformedResponseError
from .core import Call

log = logging.getLogger("pe_toolkit.client")

T = TypeVar("T")

# Consecutive pages with nothing beyond the last RECENT_PAGES pages that
# stop a pull as not advancing (one such page can be a shifted order).
STALL_PAGES = 3
RECENT_PAGES = 4


@dataclass(frozen=True, slots=True)
class PageRequest:
    """The next page: ``limit``/``offset`` for any server, plus the keyset
    cursor ``after`` when the server may honour it."""

    limit: int
    offset: int
    after: str | None = None

    def params(self) -> dict[str, Any]:
        found: dict[str, Any] = {"limit": self.limit, "offset": self.offset}
        if self.after is not None:
            found["after"] = self.after
        return found


@dataclass(frozen=True, slots=True)
class Listed(Generic[T]):
    """One page as the pager needs it: the ids in order, the server's
    ``total``, whether it honoured ``after``; ``data`` is the decoded page."""

    data: T
    ids: list[str]
    total: int
    keyset: bool = False
    has_more: bool | None = None
    offset: int | None = None  # the offset the server says it answered (the contract's echo)


def listing_call(call: Call[T], request: PageRequest) -> Call[Listed[T]]:
    """``call`` (a ``GET /conversations`` of :mod:`.routes`) for the page
    ``request`` names, decoding into :class:`Listed` around its own decode."""
    inner = call.decode
    asked = request.after

    def decode(d: Any) -> Listed[T]:
        rows = d["conversations"]
        if not isinstance(rows, list):
            raise TypeError("conversations must be a list")
        ids = [str(r["id"]) for r in rows]  # one id per summary of one page
        honoured = asked is not None and isinstance(d, Mapping) and d.get("after") == asked
        has_more = d.get("has_more")
        echoed = d.get("offset")
        offset = echoed if isinstance(echoed, int) and not isinstance(echoed, bool) else None
        return Listed(inner(d), ids, int(d["total"]), honoured, has_more if isinstance(has_more, bool) else None, offset)

    return call.decoded(decode, params={**(call.params or {}), **request.params()})


@dataclass
class Paginator:
    """The listing's state; checkpointable (:meth:`checkpoint`/:meth:`restore`)
    except ``seen``, the ids held, which the caller may keep elsewhere."""

    page_size: int = 1000
    max_passes: int = 3
    offset: int = 0
    passes: int = 1
    total: int | None = None
    drift: bool = False  # in the current pass
    done: bool = False
    gaps: int = 0
    drift_seen: bool = False  # in any pass (for the report)
    settled: bool = False
    keyset: bool | None = None  # None: not known yet whether the server honours `after`
    in_pass: int = 0  # ids read in this pass, overlaps excluded
    last_id: str | None = None
    stalled: int = 0  # consecutive pages that answered the ids of the page before
    seen: set[str] = field(default_factory=set, repr=False, compare=False)
    # The ids of the last RECENT_PAGES pages (not checkpointed: a resumed
    # pull rebuilds it within a few pages).
    _recent: deque[frozenset[str]] = field(
        default_factory=lambda: deque(maxlen=RECENT_PAGES), repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not 2 <= self.page_size <= 1000:
            raise ValueError("page_size must be between 2 and 1000 (the contract's limit)")
        if self.max_passes < 2:
            raise ValueError("max_passes must be at least 2 (a pass and the closing check)")

    # -- checkpoints ---------------------------------------------------------
    def checkpoint(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("seen", "_recent")}

    @classmethod
    def restore(cls, state: Mapping[str, Any], seen: set[str] | None = None) -> Paginator:
        names = {f.name for f in fields(cls)} - {"seen", "_recent"}
        known = {k: v for k, v in state.items() if k in names}
        if "_expect" in state and "last_id" not in known:  # a checkpoint from before keyset pages
            known["last_id"] = state["_expect"]
        return cls(**known, seen=set(seen or ()))

    # -- the walk --------------------------------------------------------------
    def next_request(self) -> PageRequest | None:
        """The next page to ask for, or None when the listing is complete."""
        if self.done:
            return None
        # The offset is kept in step with the cursor, so a server that
        # ignores `after` (one not known yet, or a failover endpoint without
        # the extension) answers the same page by position.
        after = self.last_id if self.keyset is not False else None
        return PageRequest(self.page_size, self.offset, after)

    def take(self, page: Listed[Any]) -> list[bool]:
        """Record a page; returns, for each of its ids, whether it is new
        (first seen now). The caller keeps the items marked True."""
        ids = page.ids
        keyset = page.keyset
        if self.keyset is None and self.last_id is not None:
            self.keyset = keyset  # the first page that could tell
        fresh: list[bool] = []
        start = 0
        if not keyset and ids and self.last_id is not None:
            # An offset page starts on the previous page's last item (the
            # overlap); anything else there means the order shifted.
            if ids[0] == self.last_id:
                fresh.append(False)
                start = 1
            else:
                self.drift = self.drift_seen = True
        seen = self.seen
        # One set lookup per id of one page: the ids are not sorted in any
        # order a columnar anti-join could rely on, and a page is small.
        for cid in ids[start:]:
            new = cid not in seen
            if new:
                seen.add(cid)
            fresh.append(new)
        self.in_pass += len(ids) - start
        # The offset echo counts on offset pages the listing would go on
        # from: a keyset page's means nothing (the mirror answers 0), and a
        # server may answer an offset past the end from an earlier one.
        goes_on = not keyset and self.offset + len(ids) < page.total
        self._check_progress(ids[start:], page.offset if goes_on else None)
        self._end_page(len(ids), ids[-1] if ids else None, page.total, keyset, page.has_more, len(seen))
        return fresh

    # -- a listing that does not advance ------------------------------------------
    def _check_progress(self, ids: list[str], answered: int | None) -> None:
        """Count pages that answer the very ids of the page before;
        :data:`STALL_PAGES` in a row mean the server answers the same ids
        whatever it is asked. A page of ids already seen is not enough: a
        shifted order gives those (``page_size - 1`` conversations added
        before the cursor between two requests, one for pages of 2; three
        added at once, three pages of 2 in a row), but it moves the window
        on by an id or more each page. Unless the server says it answered
        another offset than the one asked (``answered``): then it ignores
        offset, and a page of ids already seen shows it at once."""
        if not ids:
            return
        page = frozenset(ids)
        if (self._recent and answered is not None and answered != self.offset
                and page <= frozenset().union(*self._recent)):  # fmt: skip
            raise self._stuck(
                f"asked for offset {self.offset:,}, the server answered offset {answered:,} "
                "with ids it had already listed (it ignores offset)"
            )
        self.stalled = self.stalled + 1 if self._recent and page == self._recent[-1] else 0
        self._recent.append(page)
        if self.stalled >= STALL_PAGES:
            raise MalformedResponseError(
                f"the conversation listing does not advance: {self.stalled + 1} pages in a row "
                f"(offset {self.offset:,}) answered the same ids; the server ignores offset/after. Stopped instead of "
                "paging forever"
            )

    def _stuck(self, why: str) -> MalformedResponseError:
        return MalformedResponseError(
            f"the conversation listing does not advance: {why}; stopped instead of paging forever"
        )

    # -- the end of a page ------------------------------------------------------------
    def _end_page(self, n: int, last_id: str | None, total: int, keyset: bool, has_more: bool | None, held: int) -> None:
        self.total = total
        if keyset:
            end_of_pass = n == 0 or n < self.page_size or has_more is False
        else:
            end_of_pass = n == 0 or self.offset + n >= total
        if not end_of_pass:
            if keyset and last_id is not None and last_id == self.last_id:
                # The page ends where it was asked to start: the next request
                # would carry the same cursor and get the same page.
                raise self._stuck(f"the page after {last_id!r} ends on {last_id!r} again (the cursor repeats)")
            if self.offset > total + self.page_size:
                raise self._stuck(
                    f"offset {self.offset:,} is more than a page past the listing's total of {total:,}, "
                    "and the server still says there is more"
                )
            self.last_id = last_id
            # The next offset page starts on this page's last item (the
            # overlap); a keyset page has no overlap item of its own.
            self.offset += n if keyset or n == 1 else n - 1
            return
        settled = self.passes > 1 and not self.drift and self.in_pass >= total
        if not settled and self.passes < self.max_passes:
            self.passes += 1
            self.offset, self.drift, self.last_id, self.in_pass = 0, False, None, 0
            # A new pass reads the same ids again by design: not a stall.
            self.stalled = 0
            self._recent.clear()
            return
        self.done, self.settled = True, settled
        # Lower bounds: what the last pass read (it counts an id twice after a
        # shift), and all the ids held (some may have been removed since).
        self.gaps = max(0, total - self.in_pass, total - held)
        if self.drift:
            # The last pass shifted: ids may have been skipped that no count shows.
            self.gaps = max(1, self.gaps)
        if self.gaps:
            log.warning(
                "the conversation listing did not settle after %d passes (the corpus kept changing): "
                "%d conversation(s) listed by the server were not seen", self.passes, self.gaps,
            )
