"""The quality routes' link to pe_toolkit.analysis (nothing is scored here).

``POST /v1/quality/validate`` and the WebSocket's ``analyze_conversation`` /
``get_quality_suggestions`` call
:func:`pe_toolkit.analysis.validate_conversation`; its
:class:`~pe_toolkit.errors.InputError` becomes a 422 at the usual boundary.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from ..schema import QUALITY_METRICS
from .envelope import PROCESSING_ERROR, ApiProblem
from .models import INFORMATIONAL


def analysis() -> ModuleType:
    """pe_toolkit.analysis, or a 503 naming what is missing."""
    try:
        module = importlib.import_module("pe_toolkit.analysis")
    except ImportError as exc:
        raise ApiProblem(503, PROCESSING_ERROR, f"quality analysis is not available: {exc}") from None
    for name in ("validate_conversation", "analyze"):
        if not hasattr(module, name):
            raise ApiProblem(503, PROCESSING_ERROR, f"quality analysis is not available: pe_toolkit.analysis has no {name}")
    return module


def validate(conversation: dict[str, Any], *, include_messages: bool = False) -> dict[str, Any]:
    """The analyzers' answer; a ``tier`` or ``quality_score`` the caller
    sent is not scored (it is what they think, not what the text shows) and
    comes back under ``submitted``, as sent."""
    submitted = {k: conversation[k] for k in INFORMATIONAL if k in conversation}
    scored = {k: v for k, v in conversation.items() if k not in submitted} if submitted else conversation
    result: dict[str, Any] = analysis().validate_conversation(scored, include_messages=include_messages)
    if submitted:
        result["submitted"] = submitted
    return result


def suggestions(conversation: dict[str, Any]) -> dict[str, Any]:
    """Recommendations plus the weakest metrics they address."""
    result = validate(conversation)
    metrics = result.get("validation_results") or {}
    scored = sorted(
        ((name, float(metrics[name])) for name in QUALITY_METRICS if name != "overall_quality" and metrics.get(name) is not None),
        key=lambda item: item[1],
    )
    return {
        "conversation_id": result.get("conversation_id"),
        "recommendations": result.get("recommendations", []),
        "tier_classification": result.get("tier_classification"),
        "overall_quality": metrics.get("overall_quality"),
        "weakest_metrics": [{"metric": name, "score": score} for name, score in scored[:3]],
        "validation_timestamp": result.get("validation_timestamp"),
    }
