"""Stream benchmark launcher: ``python bench/stream.py [--json] ...`` (see stream_bench.py).

Run as a script, bench/ comes first on sys.path, where this file would shadow the
``stream`` package; the launcher takes that folder off the path, then imports the bench.
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))

from bench.stream_bench import main  # noqa: E402

if __name__ == "__main__":
    main()
