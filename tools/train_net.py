#!/usr/bin/env python3
"""Train only: ``tools/run_net.py`` with ``TEST.ENABLE False``."""

import sys

from slowfast.engine.run import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] + ["TEST.ENABLE", "False"]))
