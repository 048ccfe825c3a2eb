"""The synthetic conversation generator: templated conversations with planted ground truth.

It checks the code (the phrases planted are the phrases detected), never the
construct: validity figures come from human labels (docs/metrics.md).
``generator`` holds the public API, ``build`` assembles one conversation from
``turns``, ``crisis``, ``pii`` and ``quality``; the wording lives in ``parts/*.toml``.
"""

from .generator import CRISIS_CATEGORIES, DATASETS, TIERS, TOPICS, SynthConfig, generate, write

__all__ = ["CRISIS_CATEGORIES", "DATASETS", "TIERS", "TOPICS", "SynthConfig", "generate", "write"]
