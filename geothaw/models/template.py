"""How to add a model (copy this file; nothing else in geothaw needs editing).

Contract shared by every model, trainer, evaluator and projector:

* constructor ``Model(spec: ModelSpec)`` — only the validated spec (sizes from config + feature spec);
* ``forward(batch: dict[str, Tensor]) -> dict[str, Tensor]`` with
  - ``batch["dynamic"]``: float32 ``[B, T, F_dyn]`` — normalised monthly inputs, ``T = window_months``,
    the last 12 steps are January…December of the target year Y;
  - ``batch["static"]``: float32 ``[B, F_static]`` — normalised statics (elevation, swvl, latitude, soil one-hot);
  - ``batch["band"]``: int64 ``[B]`` — latitude-band index for an ``nn.Embedding``;
  - optional ``batch["coords"]``: float32 ``[B, 2]`` (lat, lon), used only by the climatology baseline;
  - returns ``{"y_hat": [B, 12, 4]}`` — normalised soil temperature of the 12 months of Y at the 4 layers
    (:meth:`geothaw.features.FeatureSpec.denormalize_target` turns it into °C);
* class attributes: ``kind`` (``"neural"`` or ``"baseline"``), ``bidirectional``, ``uses_static``.

A sequence model subclasses :class:`BaseModel` and only sets ``self.core`` (``[B, T, H] → [B, T, H]``),
so it shares the input layer and output head with all other architectures::

    from torch import nn
    from geothaw.models import register
    from geothaw.models.base import BaseModel, ModelSpec

    @register("mlp_core")
    class MLPCore(BaseModel):
        def __init__(self, spec: ModelSpec):
            super().__init__(spec)
            self.core = nn.Sequential(nn.Linear(spec.hidden_size, spec.hidden_size), nn.ReLU())

Import the module somewhere before ``build_model("mlp_core", spec)`` (geothaw's own models are imported in
``geothaw/models/__init__.py``). Checkpoints are ``state_dict`` only, so any buffers a model needs must be
registered with ``register_buffer`` (see ``baselines.py``).
"""
