"""What a corpus carries, so the notebooks draw what it allows.

Conversations synced from the API carry a tier, the API's quality scores
and a creation date; imported corpora (counsel-chat, ESConv, a CSV of
pairs) usually carry none of them. :class:`Corpus` counts what is there
and words what is missing, once: figures group by tier when there are
tiers and by dataset otherwise (:attr:`Corpus.by`), a figure that needs
something absent is skipped with the reason from :meth:`Corpus.lacks`,
and :meth:`Corpus.selection` turns "the best conversations" into a filter
that selects something on any corpus.

>>> corpus = Corpus.of(store)
>>> print(corpus)          # one line, only about what is missing
>>> corpus.by              # "tier" or "dataset" (by_label: "API tier" or "dataset")
>>> sel = corpus.selection(store, tier="auto", min_quality=0.8)
>>> pe.export(store, "best.jsonl", **sel.filters)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape
from typing import Any

from ..schema import TIERS
from ..store import ConversationFilter, Store
from .scores import NOT_ANALYZED, ScoreInfo

# Why a figure is skipped, by what it needs (each completes "skipped, ...").
_LACKS = {
    "tier": "no conversation carries an API tier (imported corpora have none)",
    "created_at": "no conversation has a creation date (imported corpora often carry none)",
    "api_scores": "no conversation carries the API's quality scores (imported corpora have none)",
    "analysis": "the corpus has not been analyzed: run pe.analyze(store)",
    "conversations": "the cache holds no conversations",
}


@dataclass(frozen=True)
class Selection:
    """Keywords for ``store.count`` / ``pe.export`` and what they mean."""

    filters: dict[str, Any]
    description: str

    def __str__(self) -> str:
        return self.description


@dataclass(frozen=True)
class Corpus:
    """Counts of what the conversations in a store carry."""

    conversations: int
    datasets: tuple[str, ...]
    tiers: tuple[str, ...]  # API tiers present, basic to research
    tiered: int  # conversations with an API tier
    dated: int  # ... with a creation date
    api_scored: int  # ... with the API's overall quality
    analyzed: bool = False
    _info: ScoreInfo = field(default_factory=ScoreInfo, repr=False, compare=False)

    @classmethod
    def of(cls, store: Store) -> Corpus:
        row = store.sql(
            "SELECT count(*) AS n, count(tier) AS tiered, count(created_at) AS dated, "
            "count(overall_quality) AS api_scored, list(DISTINCT dataset) FILTER (WHERE dataset IS NOT NULL) AS datasets, "
            "list(DISTINCT tier) FILTER (WHERE tier IS NOT NULL) AS tiers FROM conversations"
        ).row(0, named=True)
        present = set(row["tiers"] or ())
        info = ScoreInfo.of(store)
        return cls(
            conversations=row["n"],
            datasets=tuple(sorted(row["datasets"] or ())),
            tiers=tuple(t for t in TIERS if t in present),
            tiered=row["tiered"],
            dated=row["dated"],
            api_scored=row["api_scored"],
            analyzed=info.analyzed,
            _info=info,
        )

    @property
    def by(self) -> str:
        """The column figures group by: ``tier`` when any conversation has
        one (the rest show as "no tier"), else ``dataset``."""
        return "tier" if self.tiered else "dataset"

    @property
    def by_label(self) -> str:
        """:attr:`by` as figure titles say it."""
        return "API tier" if self.tiered else "dataset"

    def lacks(self, what: str) -> str | None:
        """Why a figure needing ``what`` (tier, created_at, api_scores,
        analysis) cannot be drawn, or None when the corpus has it."""
        if what not in _LACKS or what == "conversations":
            raise ValueError(f"unknown need {what!r}; expected one of tier, created_at, api_scores, analysis")
        if not self.conversations:
            return _LACKS["conversations"]
        have = {"tier": self.tiered, "created_at": self.dated, "api_scores": self.api_scored, "analysis": self.analyzed}
        return None if have[what] else _LACKS[what]

    def notes(self) -> list[str]:
        """What is missing and what the notebooks do about it."""
        if not self.conversations:
            return [_LACKS["conversations"]]
        notes = []
        if not self.tiered:
            notes.append("no API tier: figures group by dataset")
        elif self.tiered < self.conversations:
            notes.append(f"{self.conversations - self.tiered:,} without an API tier: shown as 'no tier'")
        if not self.api_scored:
            notes.append("no API quality scores: comparisons with the API are skipped")
        if not self.dated:
            notes.append("no creation dates: figures over time are skipped")
        if not self.analyzed:
            notes.append(NOT_ANALYZED)
        return notes

    def __str__(self) -> str:
        notes = self.notes()
        what = f"{self.conversations:,} conversations in {len(self.datasets)} dataset{'s' * (len(self.datasets) != 1)}"
        return f"{what}; " + "; ".join(notes) if notes else what

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/html": f'<p class="pe-note">{escape(str(self))}</p>', "text/plain": str(self)}

    def selection(self, store: Store, *, tier: str | None = "auto", min_quality: float | None = None) -> Selection:
        """A filter for "the best conversations" that works on any corpus.

        ``tier="auto"`` is the highest tier present, or every conversation
        when none has a tier. ``min_quality`` bounds the API's overall
        quality when the corpus carries it, else the local overall quality
        of the analysis (as a list of ids; its top quarter when nothing
        reaches the bound), else nothing (and says so)."""
        said = []
        if tier == "auto":
            tier = self.tiers[-1] if self.tiers else None
            if tier is None:
                said.append("every tier (the corpus has none)")
        filters: dict[str, Any] = {}
        if tier is not None:
            filters["tier"] = tier
            said.append(f"tier {tier}")
        if min_quality is not None:
            if self.api_scored:
                filters["min_quality"] = min_quality
                said.append(f"API overall quality >= {min_quality}")
            elif self.analyzed:
                filters["ids"], bound = self._best_local(store, tier, min_quality)
                said.append(bound)
            else:
                said.append(f"no quality bound ({_LACKS['api_scores']}, and no analysis)")
        return Selection(filters, ", ".join(said) or "every conversation")

    def _best_local(self, store: Store, tier: str | None, min_quality: float) -> tuple[list[str], str]:
        """Ids at or above ``min_quality`` by the local overall quality, and
        how they were chosen. The local scale runs lower than the API's (0.4
        to 0.65 on published corpora, where the API's research tier starts at
        0.8), so when no conversation reaches the bound the top quarter of the
        local quality stands in, and the description says so."""
        where, params = ConversationFilter(tier=tier).where("c")
        analysed = f"conversations c JOIN {self._info.conversation_scores()} s ON s.conversation_id = c.id WHERE {where}"
        scored = f"{analysed} AND s.overall_quality IS NOT NULL"

        def at_least(bound: float) -> list[str]:
            return store.sql(f"SELECT c.id FROM {scored} AND s.overall_quality >= ? ORDER BY c.id", [*params, bound])["id"].to_list()

        ids = at_least(min_quality)
        if ids:
            return ids, f"local overall quality >= {min_quality} (no API scores in this corpus)"
        quartile = store.sql(f"SELECT quantile_cont(s.overall_quality, 0.75) AS q FROM {scored}", params)["q"][0]
        if quartile is None:
            # Analysed but unrated (quality v3: no reply to rate, as in a cache
            # of posts) is not "not scored": running the analysis again would
            # not change it.
            unrated = store.sql(f"SELECT count(*) AS n FROM {analysed}", params)["n"][0]
            why = "has a reply to rate" if unrated else "is scored"
            return [], f"local overall quality >= {min_quality}: no conversation{' of tier ' + tier if tier else ''} {why}"
        # Rounded down so the bound printed is the bound applied.
        bound = math.floor(quartile * 100) / 100
        return at_least(bound), (
            f"local overall quality >= {bound:.2f}, its top quarter "
            f"(none reaches {min_quality}; no API scores in this corpus)"
        )
