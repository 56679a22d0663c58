"""Online feature computation: the engine and its interchangeable stores."""

from feature_store.online.base import EntityEvent, History, LogEntry, OnlineStore
from feature_store.online.engine import OnlineFeatureEngine, epoch_ms
from feature_store.online.memory import MemoryOnlineStore
from feature_store.online.redis import KEY_LAYOUT_VERSION, RedisOnlineStore, entity_key

__all__ = [
    "KEY_LAYOUT_VERSION",
    "EntityEvent",
    "History",
    "LogEntry",
    "MemoryOnlineStore",
    "OnlineFeatureEngine",
    "OnlineStore",
    "RedisOnlineStore",
    "entity_key",
    "epoch_ms",
]
