"""Batch training: datasets, training, evaluation and the model registry.

Deliberately imports nothing: the stream imports ``batch_training.registry`` and must not
pull in the training code (and its dependencies) with it.
"""

__all__: list[str] = []
