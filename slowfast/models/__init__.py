"""Video models: the registry, ``build_model`` and the registered ResNet family and RegNet."""

from slowfast.models import regnet, video_model_builder  # noqa: F401  (registers the models)
from slowfast.models.build import MODEL_REGISTRY, build_model  # noqa: F401

__all__ = ["MODEL_REGISTRY", "build_model"]
