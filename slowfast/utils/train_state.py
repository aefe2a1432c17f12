"""What a checkpoint carries beyond the weights so that a resumed run is bit-exact, and the
graceful stop on a signal.

- :func:`capture_rng_state` / :func:`restore_rng_state`: the python, numpy, torch and CUDA RNG
  states as plain tensors and lists (loadable with ``torch.load(weights_only=True)``);
- :class:`StopRequest`: SIGTERM, SIGINT and SIGUSR2 (SLURM's warning before a time-out or a
  pre-emption, submitit's ``--signal``) ask the training loop to stop after the current
  iteration; the loop writes a mid-epoch checkpoint and leaves through :class:`Interrupted`. A
  second signal, or no checkpoint within the grace period, ends the process at once.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import sys
import threading
from typing import Any, Callable, Dict, Optional

import numpy as np
import torch

logger = logging.getLogger(__name__)

STOP_SIGNALS = ("SIGTERM", "SIGINT", "SIGUSR2")
# Seconds between the first signal and a forced exit when the loop does not get to stop
# (a stuck data loader, a hung collective); SLURM's --signal lead time is usually 60-120 s.
GRACE_SECONDS = float(os.environ.get("SLOWFAST_STOP_GRACE_S", "90"))


def capture_rng_state() -> Dict[str, Any]:
    """The global RNG states of this process."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: Dict[str, Any] = {
        "python": [int(version), torch.tensor(internal, dtype=torch.int64), gauss],
        "numpy": [
            str(kind),
            torch.from_numpy(keys.astype(np.int64)),
            int(pos),
            int(has_gauss),
            float(cached),
        ],  # fmt: skip
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Optional[Dict[str, Any]]) -> bool:
    """Restore what :func:`capture_rng_state` captured; False when ``state`` is empty."""
    if not state:
        return False
    version, internal, gauss = state["python"]
    random.setstate((int(version), tuple(int(v) for v in internal.tolist()), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
        else:
            logger.warning(
                "the checkpoint holds %d CUDA RNG states for %d devices here; not restored",
                len(cuda_states),
                torch.cuda.device_count(),
            )
    return True


class Interrupted(RuntimeError):
    """Training stopped on a signal after writing a checkpoint (``path``; None on non-master
    ranks)."""

    def __init__(self, signame: str, epoch: int, iteration: int, path: Optional[str]) -> None:
        self.signame = signame
        signum = getattr(signal, signame, None) if signame.startswith("SIG") else None
        self.exit_code = 128 + int(signum if signum is not None else signal.SIGTERM)
        self.epoch = epoch
        self.iteration = iteration
        self.path = path
        where = f"epoch {epoch + 1}, after iteration {iteration}"
        saved = f"checkpoint {path} written" if path else "checkpoint written by rank 0"
        super().__init__(
            f"{signame}: training stopped at {where}; {saved}. Resume with the same command "
            "(TRAIN.AUTO_RESUME True picks the newest checkpoint of OUTPUT_DIR)"
        )


class StopRequest:
    """Catch the stop signals while a training loop runs (main thread only; elsewhere it does
    nothing). ``pending`` is the name of the first signal received, or None. After the loop has
    checkpointed, :meth:`after_checkpoint` hands the signal to the handler that was installed
    before (submitit's requeue on SIGUSR2), if any."""

    def __init__(self, grace_seconds: float = GRACE_SECONDS) -> None:
        self.pending: Optional[str] = None
        self.grace_seconds = float(grace_seconds)
        self._previous: Dict[int, Any] = {}
        self._timer: Optional[threading.Timer] = None
        self._signum: Optional[int] = None

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is not threading.main_thread():
            return self
        for name in STOP_SIGNALS:
            signum = getattr(signal, name, None)
            if signum is None:
                continue
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except (ValueError, OSError):  # not settable here
                continue
        return self

    def __exit__(self, *exc: Any) -> None:
        self.cancel_timer()
        for signum, handler in self._previous.items():
            try:
                signal.signal(signum, handler)
            except (ValueError, OSError, TypeError):
                pass
        self._previous.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        # a second signal; a stop relayed from another rank (``pending`` set by the training
        # loop, ``_signum`` None) is not one: this rank's own copy of it often comes just after
        if self._signum is not None:
            sys.stderr.write(f"\n{name} again: exiting now without a checkpoint\n")
            sys.stderr.flush()
            os._exit(128 + signum)
        self.pending = name
        self._signum = signum
        sys.stderr.write(
            f"\n{name} received: finishing the current iteration, then writing a checkpoint "
            f"(at most {self.grace_seconds:.0f} s; send it again to stop at once)\n"
        )
        sys.stderr.flush()
        self._timer = threading.Timer(self.grace_seconds, self._give_up, args=(signum,))
        self._timer.daemon = True
        self._timer.start()

    def _give_up(self, signum: int) -> None:
        sys.stderr.write(
            f"\nno checkpoint {self.grace_seconds:.0f} s after {signal.Signals(signum).name}: "
            "exiting; the newest checkpoint of OUTPUT_DIR is kept\n"
        )
        sys.stderr.flush()
        os._exit(128 + signum)

    def cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def after_checkpoint(self) -> None:
        """Pass the signal on to the handler installed before ours (e.g. submitit's, which
        requeues the job on SIGUSR2 and exits); plain SIG_DFL / SIG_IGN are not called."""
        self.cancel_timer()
        previous = self._previous.get(self._signum) if self._signum is not None else None
        if callable(previous) and previous not in (signal.default_int_handler,):
            handler: Callable = previous
            handler(self._signum, None)
        elif self.pending == "SIGUSR2" and os.environ.get("SLURM_JOB_ID"):
            requeue_slurm_job(os.environ["SLURM_JOB_ID"])


def requeue_slurm_job(job_id: str) -> bool:
    """``scontrol requeue <job_id>`` (a job started without submitit, e.g. from
    ``tools/slurm/run_net.sbatch``); the next attempt resumes from the checkpoint."""
    import subprocess

    try:
        proc = subprocess.run(
            ["scontrol", "requeue", str(job_id)], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        logger.warning("could not requeue SLURM job %s: %s", job_id, err)
        return False
    if proc.returncode != 0:
        logger.warning("scontrol requeue %s failed: %s", job_id, proc.stderr.strip())
        return False
    logger.info("requeued SLURM job %s", job_id)
    return True
