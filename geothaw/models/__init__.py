"""Model zoo: a name → class registry filled by the :func:`register` decorator when this package is imported.

Every model takes one :class:`~geothaw.models.base.ModelSpec` and maps a batch dict (``dynamic``
[B, T, F_dyn], ``static`` [B, F_static], ``band`` [B]) to ``{"y_hat": [B, 12, 4]}``. Capabilities are
class attributes (``kind``: ``"neural"`` trained by gradient descent, ``"baseline"`` fitted in closed form).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    from .base import BaseModel, ModelSpec

_REGISTRY: dict[str, type] = {}


def register(name: str):
    """Class decorator adding a model to the registry under ``name`` (duplicates are an error)."""
    def deco(cls: type) -> type:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ConfigError(f"model name '{name}' is registered twice ({_REGISTRY[name].__name__}, {cls.__name__})")
        cls.name = name
        _REGISTRY[name] = cls
        return cls
    return deco


def available_models(kind: str | None = None) -> list[str]:
    """Registered model names, optionally only ``"neural"`` or ``"baseline"`` ones."""
    return sorted(n for n, c in _REGISTRY.items() if kind is None or c.kind == kind)


def get_model_class(name: str) -> type:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown model '{name}'; valid names: {', '.join(available_models())}") from None


def build_model(name: str, spec: "ModelSpec") -> "BaseModel":
    """Construct a registered model from its spec."""
    return get_model_class(name)(spec)


# Importing the modules fills the registry.
from . import baselines, bilstm, conv1dlstm, gru, tcn, transformer  # noqa: E402,F401
from .base import BaseModel, ModelSpec  # noqa: E402

__all__ = ["BaseModel", "ModelSpec", "register", "available_models", "get_model_class", "build_model"]
