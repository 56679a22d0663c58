"""The contract between batch and stream: event schema, feature definitions, two engines."""

from feature_store.definitions import CORE_FEATURE_SET, FeatureSet, feature_set_by_name
from feature_store.errors import (
    FeatureStoreError,
    HistoryColumnsError,
    InvalidEvent,
    OnlineStoreUnavailable,
)
from feature_store.history import read_history
from feature_store.offline import canonical_order, compute_offline_features
from feature_store.schema import Transaction, TransactionCodec, looks_like_pan, redact_pans

__all__ = [
    "CORE_FEATURE_SET",
    "FeatureSet",
    "FeatureStoreError",
    "HistoryColumnsError",
    "InvalidEvent",
    "OnlineStoreUnavailable",
    "Transaction",
    "TransactionCodec",
    "canonical_order",
    "compute_offline_features",
    "feature_set_by_name",
    "looks_like_pan",
    "read_history",
    "redact_pans",
]
