"""Layer outputs of a model on a probe batch (tip G3), for every Keras model kind.

    probe = LayerProbe(model)
    names, outputs = probe.outputs(x)      # one array per probed layer, in layer order
    probe.layers                           # the layers probed (model.layers, inputs excluded)
    probe.note                             # None, or one line saying what could not be probed

- Sequential and functional models: a side model `keras.Model(model.inputs, [l.output ...])`
  built once, so every top-level layer (nested models count as one layer) is probed.
- Subclassed models: each top-level layer's `call` is wrapped for the duration of one forward
  pass and its first output is kept; layers the forward pass does not reach are left out. If the
  forward pass cannot be observed at all, `note` says so and `outputs` returns nothing (it never
  raises).

Outputs are the layer's first output tensor (e.g. an RNN's sequence, not its states), as
backend tensors (convert with keras.ops.convert_to_numpy when needed). Probes run in inference
mode (training=False) and change nothing in the model.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import keras


def _first_tensor(out):
    while isinstance(out, (list, tuple)) and out:
        out = out[0]
    if isinstance(out, dict) and out:
        out = next(iter(out.values()))
    return out


def _is_input_layer(layer) -> bool:
    return type(layer).__name__ == "InputLayer"


class LayerProbe:
    """Per-layer outputs of `model` on a batch; see the module docstring.

    Args:
        model: a built Keras model (Sequential, functional or subclassed).
        layers: the layers to probe (default: the model's top-level layers, inputs excluded).

    Example:
        >>> probe = LayerProbe(model)
        >>> names, outs = probe.outputs(x[:64])
    """

    def __init__(self, model, layers=None):
        self.model = model
        self.layers = [lyr for lyr in (layers if layers is not None else model.layers) if not _is_input_layer(lyr)]
        self.note: Optional[str] = None
        self._extractor = None
        self._mode = None
        self._setup()

    def _setup(self):
        model = self.model
        inputs = None
        try:
            inputs = model.inputs
            if inputs:
                try:
                    inputs = model.input  # the model's own input structure (a tensor, list or dict)
                except Exception:
                    pass
                if isinstance(inputs, (list, tuple)) and len(inputs) == 1:
                    inputs = inputs[0]
        except Exception:
            inputs = None
        if inputs is not None and (not isinstance(inputs, (list, tuple, dict)) or len(inputs)):
            kept, outs = [], []
            for lyr in self.layers:
                try:
                    out = _first_tensor(lyr.output)
                except Exception:  # shared layer (several nodes) or not on the graph
                    continue
                kept.append(lyr)
                outs.append(out)
            if kept:
                try:
                    self._extractor = keras.Model(inputs=inputs, outputs=outs, name=f"{model.name}_probe")
                    skipped = len(self.layers) - len(kept)
                    if skipped:
                        self.note = f"{skipped} layer(s) used more than once or off the graph are not probed"
                    self.layers = kept
                    self._mode = "functional"
                    return
                except Exception as e:  # fall back to hooks
                    self.note = f"could not build a probe model ({type(e).__name__}); observing calls instead"
        self._mode = "hooks"

    @property
    def extractor(self):
        """The side model giving every probed layer's output (functional mode), else None."""
        return self._extractor

    def outputs(self, x) -> Tuple[List[str], list]:
        """(layer names, outputs) on the batch `x`; empty lists when the model cannot be probed."""
        if self._mode == "functional":
            outs = self._extractor(x, training=False)
            if not isinstance(outs, (list, tuple)):
                outs = [outs]
            return [lyr.name for lyr in self.layers], list(outs)
        return self._outputs_by_hooks(x)

    def _outputs_by_hooks(self, x):
        seen = {}
        patched = []

        def wrap(layer):
            original = layer.call

            def call(*args, **kwargs):
                out = original(*args, **kwargs)
                if id(layer) not in seen:
                    seen[id(layer)] = _first_tensor(out)
                return out

            return original, call

        try:
            for lyr in self.layers:
                original, call = wrap(lyr)
                object.__setattr__(lyr, "call", call)
                patched.append(lyr)
            self.model(x, training=False)
        except Exception as e:
            self.note = f"subclassed model: layer outputs could not be observed ({type(e).__name__}: {e}); " \
                        "activation statistics are skipped"
            return [], []
        finally:
            for lyr in patched:
                try:
                    object.__delattr__(lyr, "call")
                except AttributeError:
                    pass
        names, outs = [], []
        for lyr in self.layers:
            if id(lyr) in seen and seen[id(lyr)] is not None:
                names.append(lyr.name)
                outs.append(seen[id(lyr)])
        if not outs and self.note is None:
            self.note = "subclassed model: no layer was reached through model.layers; activation statistics are skipped"
        return names, outs
