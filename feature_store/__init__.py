"""The contract between batch and stream: event schema, feature definitions, two engines."""

from feature_store.catalogue import (
    CORE_FEATURE_SET,
    EXTENDED_FEATURE_SET,
    FEATURE_SET_NAMES,
    HANDBOOK_FEATURE_SET,
    feature_set_by_name,
)
from feature_store.columns import COLUMN_PRESETS, apply_column_preset
from feature_store.definitions import FeatureSet
from feature_store.errors import (
    FeatureStoreError,
    HistoryColumnsError,
    HistoryFormatError,
    HistoryTooLargeError,
    InvalidEvent,
    OnlineStoreUnavailable,
)
from feature_store.history import present_columns, read_history, validate_history
from feature_store.labels import LabelCodec, LabelEvent
from feature_store.offline import canonical_order, compute_offline_features
from feature_store.plan import FeaturePlan
from feature_store.schema import Transaction, TransactionCodec, looks_like_pan, redact_pans

__all__ = [
    "COLUMN_PRESETS",
    "CORE_FEATURE_SET",
    "EXTENDED_FEATURE_SET",
    "FEATURE_SET_NAMES",
    "HANDBOOK_FEATURE_SET",
    "FeaturePlan",
    "FeatureSet",
    "FeatureStoreError",
    "HistoryColumnsError",
    "HistoryFormatError",
    "HistoryTooLargeError",
    "InvalidEvent",
    "LabelCodec",
    "LabelEvent",
    "OnlineStoreUnavailable",
    "Transaction",
    "TransactionCodec",
    "apply_column_preset",
    "canonical_order",
    "compute_offline_features",
    "feature_set_by_name",
    "looks_like_pan",
    "present_columns",
    "read_history",
    "redact_pans",
    "validate_history",
]
