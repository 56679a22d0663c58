"""Online feature computation: the engine and its interchangeable stores."""

from feature_store.online.base import LATENESS_MS, EntityRequest, LabelUpdate, OnlineStore
from feature_store.online.engine import OnlineFeatureEngine, epoch_ms
from feature_store.online.memory import MemoryOnlineStore
from feature_store.online.redis import (
    KEY_LAYOUT_VERSION,
    RedisOnlineStore,
    frauds_key,
    log_key,
    tx_key,
)

__all__ = [
    "KEY_LAYOUT_VERSION",
    "LATENESS_MS",
    "EntityRequest",
    "LabelUpdate",
    "MemoryOnlineStore",
    "OnlineFeatureEngine",
    "OnlineStore",
    "RedisOnlineStore",
    "epoch_ms",
    "frauds_key",
    "log_key",
    "tx_key",
]
