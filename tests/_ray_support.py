"""What every Ray test module shares: its marks."""

from __future__ import annotations

import pytest

RAY_MARKS = [
    pytest.mark.ray,
    # Ray's own modules warn (deprecations) in its worker-side imports.
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]
