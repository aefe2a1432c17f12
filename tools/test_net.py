#!/usr/bin/env python3
"""Test only: ``tools/run_net.py`` with ``TRAIN.ENABLE False``."""

import sys

from slowfast.engine.run import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] + ["TRAIN.ENABLE", "False"]))
