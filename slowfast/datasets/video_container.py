"""Opening video files for the decoding backends ("pyav", "opencv"; "torchvision" = "pyav")."""

from __future__ import annotations

from typing import Any

BACKENDS = ("pyav", "opencv")
_ALIASES = {"torchvision": "pyav"}


class DecodeError(RuntimeError):
    """A video that cannot be opened or decoded; carries the file and the reason."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"cannot decode {path}: {reason}")
        self.path = path
        self.reason = reason


def canonical_backend(backend: str) -> str:
    """Map ``DATA.DECODING_BACKEND`` to one of :data:`BACKENDS` (``torchvision`` -> ``pyav``)."""
    name = _ALIASES.get(str(backend).lower(), str(backend).lower())
    if name not in BACKENDS:
        raise ValueError(
            f"DATA.DECODING_BACKEND must be one of {BACKENDS + tuple(_ALIASES)}, got {backend!r}"
        )
    return name


def get_video_container(
    path_to_vid: str, multi_thread_decode: bool = False, backend: str = "pyav"
) -> Any:
    """Open ``path_to_vid`` for ``backend``.

    Returns a PyAV container (``pyav``; its first video stream decodes with several threads when
    ``multi_thread_decode``) or a ``cv2.VideoCapture`` (``opencv``). Raises :class:`DecodeError`
    naming the file when it cannot be opened or has no video stream.
    """
    backend = canonical_backend(backend)
    if backend == "pyav":
        import av

        try:
            container = av.open(str(path_to_vid))
        except Exception as err:  # PyAV raises FileNotFoundError, av.error.*, ...
            raise DecodeError(str(path_to_vid), f"{type(err).__name__}: {err}") from err
        if not container.streams.video:
            container.close()
            raise DecodeError(str(path_to_vid), "no video stream")
        if multi_thread_decode:
            container.streams.video[0].thread_type = "AUTO"
        return container

    import cv2

    capture = cv2.VideoCapture(str(path_to_vid))
    if not capture.isOpened():
        capture.release()
        raise DecodeError(str(path_to_vid), "OpenCV cannot open the file")
    return capture
