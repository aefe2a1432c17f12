#!/usr/bin/env python3
"""Train then test a video model as the config says.

python tools/run_net.py --cfg configs/Kinetics/SLOWFAST_8x8_R50.yaml [KEY VALUE ...]
torchrun --nproc_per_node 2 tools/run_net.py --cfg CFG NUM_GPUS 0 DIST_BACKEND gloo
"""

from slowfast.engine.run import run_and_exit

if __name__ == "__main__":
    run_and_exit()
