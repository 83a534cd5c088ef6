"""Snapshots of an engine's state: pickle, keeping numpy views bound to the arrays they view.

The kernels keep their columns as rows of a few matrices and expose each row as a view
(``self.stop = self.F[4]``) so that the compiled loop takes few arguments. Plain pickle would save a
view as an independent copy, and after loading, writes through the view would no longer reach the
matrix. ``dumps`` saves a view ``a[i]`` of another attribute ``a`` of the same object as (``a``, ``i``)
and ``loads`` slices it again. A view of any other shape is refused rather than silently copied.

A snapshot is trusted input (it comes from this service's own Redis): never load one from elsewhere.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

import numpy as np


def _views(d: dict[str, Any]) -> dict[str, tuple[str, int]]:
    bases = {k: v for k, v in d.items() if isinstance(v, np.ndarray) and v.base is None and v.ndim >= 2}
    out: dict[str, tuple[str, int]] = {}
    for name, arr in d.items():
        if not isinstance(arr, np.ndarray) or arr.base is None:
            continue
        for bname, b in bases.items():
            if not np.shares_memory(arr, b):
                continue
            off = arr.__array_interface__["data"][0] - b.__array_interface__["data"][0]
            if arr.ndim == b.ndim - 1 and arr.dtype == b.dtype and arr.shape == b.shape[1:] and arr.strides == b.strides[1:] \
                    and off % b.strides[0] == 0:
                out[name] = (bname, off // b.strides[0])
                break
            raise pickle.PicklingError(f"{name}: a numpy view that is not {bname}[i]; cannot snapshot it faithfully")
    return out


def _rebuild(cls: type, state: dict[str, Any], views: dict[str, tuple[str, int]]) -> Any:
    obj = cls.__new__(cls)
    obj.__dict__.update(state)
    for name, (bname, row) in views.items():
        obj.__dict__[name] = obj.__dict__[bname][row]
    return obj


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        d = getattr(obj, "__dict__", None)
        if not isinstance(d, dict) or isinstance(obj, type) or not any(isinstance(v, np.ndarray) and v.base is not None for v in d.values()):
            return NotImplemented
        views = _views(d)
        if not views:
            return NotImplemented
        return _rebuild, (type(obj), {k: v for k, v in d.items() if k not in views}, views)


def dumps(obj: Any) -> bytes:
    buf = io.BytesIO()
    _Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return buf.getvalue()


def loads(blob: bytes) -> Any:
    return pickle.loads(blob)
