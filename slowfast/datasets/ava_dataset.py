"""AVA spatio-temporal action detection on extracted frames (PySlowFast's ``ava``).

Inputs are read by :mod:`slowfast.datasets.ava_helper` (frame lists, box CSVs, label map). One
item per keyframe (a second of 902..1798 with at least one box): the clip of ``DATA.NUM_FRAMES``
frames ``DATA.SAMPLING_RATE`` apart with the keyframe at position ``T // 2`` (PySlowFast's
``get_sequence`` for even T), indices clamped to the video's frames, transformed with its boxes
by :func:`slowfast.datasets.box_transform.ava_transform`. Item = ``(frames, labels, index,
meta)``:

* ``frames``: a list of ``(C, T, H, W)`` tensors, one per pathway
  (:func:`slowfast.datasets.utils.pack_pathway_output`);
* ``labels``: float ``(n, MODEL.NUM_CLASSES)`` multi-hot, class id ``a`` in column ``a - 1``;
* ``meta["boxes"]``: float ``(n, 4)`` ``[x1, y1, x2, y2]`` in pixels of the transformed frames;
  ``meta["ori_boxes"]``: float ``(n, 4)`` the boxes as read (normalised to [0, 1]);
  ``meta["metadata"]``: long ``(n, 2)`` ``[video index, sec]``; ``meta["decode_failures"]``.

With ``PGT.ENABLE`` the long clip (T = ``DATA.NUM_FRAMES``; SlowFast: the fast T) is placed so
that the keyframe is the centre of the LAST step: position ``T'/2 + (P - 1)(T' - o)`` with
``T' = PGT.STEP_LEN[-1]``, ``o = PGT.OVERLAP[-1]``, ``P = PGT.STEPS``. Step ``k`` is supervised
with the boxes and labels of the second nearest to its centre frame ``seq[T'/2 + k (T' - o)]``
(the keyframe's where that second has no box); ``meta`` then also has ``step_boxes``,
``step_ori_boxes``, ``step_metadata`` and ``step_labels``, lists of P tensors in the formats
above (the last = the keyframe's). Every step's boxes get the item's spatial transform.

``video_names[v]`` is the id of video ``v`` (``metadata[:, 0]``); ``num_videos`` the number of
videos; ``len()`` the number of keyframes (PySlowFast's ``num_videos`` returns that count).
A frame that cannot be read is logged and counted; in train the item is replaced by another
random keyframe (``DATA_LOADER.NUM_RETRIES`` attempts), in val / test the error names the file.
"""

from __future__ import annotations

import logging
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.utils.data

from slowfast.datasets import ava_helper, utils
from slowfast.datasets.box_transform import ava_transform, params_from_cfg
from slowfast.datasets.build import DATASET_REGISTRY
from slowfast.datasets.clip_dataset import SPLITS, in_worker
from slowfast.datasets.frame_list import load_frames

logger = logging.getLogger(__name__)


def clip_indices(center: int, position: int, num_frames: int, rate: int, length: int) -> List[int]:
    """``num_frames`` indices ``rate`` apart with ``center`` at ``position``, clamped to
    ``[0, length - 1]``."""
    return [min(max(center + (i - position) * rate, 0), length - 1) for i in range(num_frames)]


def pgt_keyframe_position(step_len: int, overlap: int, steps: int) -> int:
    """Position of the keyframe in the long clip: the centre of the last step."""
    return step_len // 2 + (steps - 1) * (step_len - overlap)


def pgt_step_centres(step_len: int, overlap: int, steps: int) -> List[int]:
    """Clip positions of the steps' centre frames, ``T'/2 + k (T' - o)``."""
    return [step_len // 2 + k * (step_len - overlap) for k in range(steps)]


def multi_hot(label_lists: Sequence[Sequence[int]], num_classes: int) -> torch.Tensor:
    """``(n, num_classes)`` float: 1 in column ``a - 1`` for each action ``a`` (-1 ignored)."""
    out = torch.zeros(len(label_lists), num_classes, dtype=torch.float32)
    for i, labels in enumerate(label_lists):
        for a in labels:
            if a == -1:
                continue
            if not 1 <= a <= num_classes:
                raise ValueError(f"action id {a} outside 1..MODEL.NUM_CLASSES = {num_classes}")
            out[i, a - 1] = 1.0
    return out


@DATASET_REGISTRY.register()
class Ava(torch.utils.data.Dataset):
    """AVA keyframes with their boxes; see the module docstring."""

    def __init__(self, cfg, split: str) -> None:
        if split not in SPLITS:
            raise ValueError(f"Ava split must be one of {SPLITS}, got {split!r}")
        self.cfg = cfg
        self._split = split
        self.mode = split
        self._num_classes = int(cfg.MODEL.NUM_CLASSES)
        self._sample_rate = int(cfg.DATA.SAMPLING_RATE)
        self._video_length = int(cfg.DATA.NUM_FRAMES)
        self._num_retries = int(cfg.DATA_LOADER.NUM_RETRIES)
        self._max_failures = int(cfg.DATA_LOADER.MAX_DECODE_FAILURES)
        self._transform = params_from_cfg(cfg, split)
        self._backend = self._transform.backend
        self.decode_failures: Dict[str, str] = {}
        if cfg.PGT.ENABLE:
            self._step_len = int(cfg.PGT.STEP_LEN[-1])
            self._overlap = int(cfg.PGT.OVERLAP[-1])
            self._steps = int(cfg.PGT.STEPS)
            self._key_pos = pgt_keyframe_position(self._step_len, self._overlap, self._steps)
            if self._key_pos >= self._video_length:
                raise ValueError(
                    f"PGT: the keyframe's position {self._key_pos} (centre of the last step) is "
                    f"outside the clip of DATA.NUM_FRAMES = {self._video_length} frames"
                )
        else:
            self._steps = 0
            self._key_pos = self._video_length // 2
        self._load_data(cfg)

    # ---------------------------------------------------------------------------- loading
    def _load_data(self, cfg) -> None:
        self.label_map_file = ava_helper.label_map_path(cfg)
        self.label_map = ava_helper.read_label_map(self.label_map_file)
        ava_helper.check_label_map(self.label_map, self.label_map_file, self._num_classes)
        ava_helper.log_label_map_use(self.label_map, self.label_map_file, self._num_classes)

        self._image_paths, self._video_idx_to_name = ava_helper.load_image_lists(
            cfg, is_train=self._split == "train"
        )
        table = ava_helper.load_boxes_and_labels(cfg, self._split, self._num_classes)
        index = {name: v for v, name in enumerate(self._video_idx_to_name)}
        unknown = sorted(set(table) - set(index))
        if unknown:
            lists, key = ava_helper.list_files(cfg, self._split)
            logger.warning(
                "AVA %s: %d video(s) of the box files are not in the frame lists %s (%s) and "
                "are skipped: %s%s",
                self._split,
                len(unknown),
                ", ".join(lists),
                key,
                ", ".join(unknown[:5]),
                " ..." if len(unknown) > 5 else "",
            )
        # Every second with boxes, per video (PGT steps read seconds that are not keyframes).
        self._boxes_by_sec: List[Dict[int, List[list]]] = [
            {
                sec: boxes
                for sec, boxes in table.get(name, {}).items()
                if sec in ava_helper.AVA_VALID_SECS and boxes
            }
            for name in self._video_idx_to_name
        ]
        self._keyframe_indices, self._keyframe_boxes_and_labels = ava_helper.get_keyframe_data(
            self._boxes_by_sec,
            sec_sample_rate=ava_helper.keyframe_sec_sample_rate(cfg, self._split),
        )
        if not self._keyframe_indices:
            files = ", ".join(p for p, _ in ava_helper.box_files(cfg, self._split))
            raise ValueError(
                f"AVA {self._split}: no keyframe (a second of 902..1798 with a box) in {files} "
                f"for the videos of the frame lists"
            )
        self._num_boxes_used = ava_helper.get_num_boxes_used(
            self._keyframe_indices, self._keyframe_boxes_and_labels
        )
        logger.info(
            "AVA %s: %d videos, %d frames, %d keyframes, %d boxes",
            self._split,
            len(self._image_paths),
            sum(len(p) for p in self._image_paths),
            len(self._keyframe_indices),
            self._num_boxes_used,
        )

    # ---------------------------------------------------------------------------- properties
    @property
    def video_names(self) -> List[str]:
        """Video index -> video id."""
        return list(self._video_idx_to_name)

    @property
    def num_videos(self) -> int:
        """The number of videos of the frame lists."""
        return len(self._video_idx_to_name)

    @property
    def video_paths(self) -> List[str]:
        """Every frame file, video after video (what ``tools/check_dataset.py`` probes)."""
        return [p for paths in self._image_paths for p in paths]

    def __len__(self) -> int:
        return len(self._keyframe_indices)

    # ---------------------------------------------------------------------------- items
    def clip_frames(self, index: int) -> List[int]:
        """The frame indices (in the video) of the clip of keyframe ``index``."""
        video_idx, _, _, center = self._keyframe_indices[index]
        return clip_indices(
            center,
            self._key_pos,
            self._video_length,
            self._sample_rate,
            len(self._image_paths[video_idx]),
        )

    def step_seconds(self, index: int) -> List[int]:
        """PGT: the second whose boxes supervise each step (the last = the keyframe's)."""
        video_idx, _, sec, _ = self._keyframe_indices[index]
        seq = self.clip_frames(index)
        out = []
        for k, pos in enumerate(pgt_step_centres(self._step_len, self._overlap, self._steps)):
            s = ava_helper.frame_to_sec(seq[pos])
            if k == self._steps - 1 or s not in self._boxes_by_sec[video_idx]:
                s = sec
            out.append(s)
        return out

    def _record_failure(self, path: str, reason: str) -> None:
        if path in self.decode_failures:
            return
        self.decode_failures[path] = reason
        (logger.debug if in_worker() else logger.warning)("frame failure: %s (%s)", path, reason)
        if len(self.decode_failures) > self._max_failures:
            listing = "\n".join(f"  {p}: {r}" for p, r in sorted(self.decode_failures.items()))
            raise RuntimeError(
                f"{len(self.decode_failures)} frames of the AVA {self._split} split failed to "
                f"read, more than DATA_LOADER.MAX_DECODE_FAILURES = {self._max_failures}:\n"
                f"{listing}"
            )

    def _read(self, index: int) -> Tuple[torch.Tensor, Optional[Tuple[str, str]]]:
        video_idx = self._keyframe_indices[index][0]
        paths = [self._image_paths[video_idx][i] for i in self.clip_frames(index)]
        try:
            return load_frames(paths, backend="cv2"), None
        except (OSError, ValueError) as err:
            bad = next((p for p in paths if p in str(err)), paths[0])
            return None, (bad, str(err))

    def __getitem__(self, index):
        if isinstance(index, tuple):  # PySlowFast's multigrid samplers pass (index, ...)
            index = index[0]
        failures: List[List[str]] = []
        attempts = max(1, self._num_retries)
        for _ in range(attempts):
            frames, failure = self._read(index)
            if failure is None:
                return self._item(index, frames, failures)
            failures.append(list(failure))
            self._record_failure(*failure)
            if self._split != "train":
                break
            index = int(torch.randint(0, len(self), ()).item())
        path, reason = failures[-1]
        raise RuntimeError(
            f"AVA {self._split} keyframe {index}: frames could not be read ({path}: {reason})"
        )

    def _boxes_of(self, entries: Sequence[list]) -> Tuple[np.ndarray, List[List[int]]]:
        boxes = np.asarray([e[0] for e in entries], dtype=np.float32).reshape(-1, 4)
        return boxes, [list(e[1]) for e in entries]

    def _item(self, index: int, frames: torch.Tensor, failures: List[List[str]]):
        video_idx, sec_idx, sec, _ = self._keyframe_indices[index]
        groups: List[Tuple[int, np.ndarray, List[List[int]]]] = []
        boxes, labels = self._boxes_of(self._keyframe_boxes_and_labels[video_idx][sec_idx])
        groups.append((sec, boxes, labels))
        if self._steps:
            for s in self.step_seconds(index):
                b, lab = self._boxes_of(self._boxes_by_sec[video_idx][s])
                groups.append((s, b, lab))
        all_boxes = np.concatenate([g[1] for g in groups], axis=0)
        clip, pixel_boxes = ava_transform(frames, all_boxes, self._transform)
        parts = []
        start = 0
        for s, b, lab in groups:
            n = b.shape[0]
            parts.append(
                (
                    torch.from_numpy(pixel_boxes[start : start + n].copy()),
                    torch.from_numpy(b.copy()),
                    torch.tensor([[video_idx, s]] * n, dtype=torch.long).reshape(n, 2),
                    multi_hot(lab, self._num_classes),
                )
            )
            start += n
        key_boxes, key_ori, key_meta, key_labels = parts[0]
        meta = {
            "boxes": key_boxes,
            "ori_boxes": key_ori,
            "metadata": key_meta,
            "decode_failures": failures,
        }
        if self._steps:
            steps = parts[1:]
            meta["step_boxes"] = [p[0] for p in steps]
            meta["step_ori_boxes"] = [p[1] for p in steps]
            meta["step_metadata"] = [p[2] for p in steps]
            meta["step_labels"] = [p[3] for p in steps]
        return utils.pack_pathway_output(self.cfg, clip), key_labels, index, meta
