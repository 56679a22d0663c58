"""The ``fraud`` command line: one entry point for every component."""

__all__: list[str] = []
