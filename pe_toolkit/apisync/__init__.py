"""Sync from the Pixelated Empathy API into the store: bulk export or incremental listing.

Named ``apisync`` rather than ``sync`` so that it never shadows the lazily
imported ``pe_toolkit.sync`` function. ``run`` chooses the mode and drives
``bulk`` or ``incremental``; both share ``context`` (the run's state and
report), ``writer`` (batches into the store) and ``state`` (checkpoints and
dead letters).
"""

from .context import SyncReport
from .run import MODES, sync

__all__ = ["MODES", "SyncReport", "sync"]
