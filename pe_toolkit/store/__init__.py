"""The local DuckDB cache: open, migrate, upsert batches, query as polars."""

from .core import CONTENT_HASH_SQL, NewCacheWarning, Store, UpsertResult, cache_path, open_store
from .filters import ConversationFilter
from .summary import StoreSummary

__all__ = ["CONTENT_HASH_SQL", "ConversationFilter", "NewCacheWarning", "Store", "StoreSummary", "UpsertResult", "cache_path", "open_store"]
