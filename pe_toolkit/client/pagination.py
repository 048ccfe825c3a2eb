"""Offset pagination that survives a corpus changing underneath it.

``GET /v1/conversations`` pages by ``limit``/``offset`` over a stable order.
When conversations are added or removed before the current offset during a
pull, the pages shift: an addition repeats an item (a duplicate) and hides
the new one (a gap), a removal skips an item (a gap). Reconciling by id:

- consecutive pages overlap by one item; if the next page does not start
  with the last id of the previous one, the order shifted (*drift*);
- the caller keeps the ids it has seen and drops repeats;
- at the end of a pass, if drift was seen or fewer distinct ids than the
  latest ``total`` were collected, another pass runs (up to
  ``max_passes``); a pass that sees no drift settles it. Whatever is still
  missing after the last pass is reported as ``gaps`` -- never silently.

The state machine is pure (no I/O): the sync and async iterators and the
sync engine drive the same one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Paginator:
    page_size: int = 1000
    max_passes: int = 3
    offset: int = 0
    passes: int = 1
    total: int | None = None
    drift: bool = False
    done: bool = False
    gaps: int = 0
    drift_seen: bool = False  # in any pass (for the report)
    _expect: str | None = None

    def __post_init__(self) -> None:
        if not 2 <= self.page_size <= 1000:
            raise ValueError("page_size must be between 2 and 1000 (the contract's limit)")

    def request(self) -> tuple[int, int] | None:
        """``(limit, offset)`` of the next page, or None when finished."""
        return None if self.done else (self.page_size, self.offset)

    def skip_first(self, first_id: str | None) -> bool:
        """Whether the page's first item is the overlap (already seen); a
        mismatch marks drift."""
        if self._expect is None:
            return False
        if first_id == self._expect:
            return True
        self.drift = self.drift_seen = True
        return False

    def advance(self, ids_on_page: int, last_id: str | None, total: int, seen: int) -> None:
        """Record a page of ``ids_on_page`` items (``last_id`` the last one),
        the server's ``total`` and how many distinct ids the caller holds."""
        self.total = total
        end_of_pass = ids_on_page == 0 or self.offset + ids_on_page >= total
        if not end_of_pass:
            self._expect = last_id
            self.offset += ids_on_page - 1 if ids_on_page > 1 else ids_on_page
            return
        if (self.drift or seen < total) and self.passes < self.max_passes:
            self.passes += 1
            self.offset, self.drift, self._expect = 0, False, None
            return
        self.done = True
        self.gaps = max(0, total - seen)
