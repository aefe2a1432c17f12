"""The train and test loops, written once for every task.

- ``trainer.train(cfg)``: epochs of ``train_epoch`` (LR set per iteration), precise BN,
  checkpoints every ``TRAIN.CHECKPOINT_PERIOD``, ``eval_epoch`` every ``TRAIN.EVAL_PERIOD``;
- ``evaluator.test(cfg)``: multi-view testing with ``TestMeter``, predictions gathered from all
  ranks;
- ``run.main(argv)``: ``tools/run_net.py``'s body (train then test through ``launch_job``);
- ``steps``: what one iteration does with a batch. A task that differs (progressive training,
  detection) registers a step runner in ``STEP_RUNNER_REGISTRY`` instead of copying the loop.
"""
