"""The stream worker: ingest, features, scoring, decision policy, output."""

from stream.processor import BatchOutput, BatchProcessor, RawEvent
from stream.records import DeadLetter, Decision, DecisionRecord
from stream.settings import StreamSettings, TopicNames

__all__ = [
    "BatchOutput",
    "BatchProcessor",
    "DeadLetter",
    "Decision",
    "DecisionRecord",
    "RawEvent",
    "StreamSettings",
    "TopicNames",
]
