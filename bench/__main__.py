"""``python -m bench`` (``make bench``): run the benchmarks, print the table, write JSON."""

from __future__ import annotations

import sys

from bench.runner import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
