#!/usr/bin/env python3
"""Train only: ``tools/run_net.py`` with ``TEST.ENABLE False`` (the same exit path)."""

import sys

from slowfast.engine.run import run_and_exit

if __name__ == "__main__":
    run_and_exit(sys.argv[1:] + ["TEST.ENABLE", "False"])
