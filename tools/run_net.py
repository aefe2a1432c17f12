#!/usr/bin/env python3
"""Train then test a video model as the config says.

python tools/run_net.py --cfg configs/Kinetics/SLOWFAST_8x8_R50.yaml [KEY VALUE ...]
torchrun --nproc_per_node 2 tools/run_net.py --cfg CFG NUM_GPUS 0 DIST_BACKEND gloo
"""

import sys

from slowfast.engine.run import main

if __name__ == "__main__":
    sys.exit(main())
