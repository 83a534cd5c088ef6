"""Snapshots of an engine's state: pickle, keeping numpy views bound to the arrays they view.

The kernels keep their columns as rows of a few matrices and expose each row as a view
(``self.stop = self.F[4]``) so that the compiled loop takes few arguments. Plain pickle saves a view
as an independent copy, and after loading, writes through the view would no longer reach the matrix.
``dumps`` saves every array attribute that lies inside another array attribute of the same object as
(that attribute, byte offset, shape, strides) and ``loads`` makes the view again, so the state is the
same after any number of save/load cycles. (An array's ``base`` cannot tell this: a loaded array's
base is the pickle's buffer, not an array.)

A snapshot is trusted input (it comes from this service's own Redis): never load one from elsewhere.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

import numpy as np

try:
    from numpy.lib.array_utils import byte_bounds
except ImportError:  # numpy < 2
    from numpy import byte_bounds  # type: ignore[attr-defined,no-redef]  # numpy 1.x only: numpy 2's stubs lack it

View = tuple[str, int, tuple[int, ...], tuple[int, ...]]


def _views(d: dict[str, Any]) -> dict[str, View]:
    arrays = {k: v for k, v in d.items() if isinstance(v, np.ndarray) and v.size}
    bounds = {k: byte_bounds(v) for k, v in arrays.items()}
    out: dict[str, View] = {}
    for name, arr in arrays.items():
        lo, hi = bounds[name]
        outer = [k for k, (blo, bhi) in bounds.items()
                 if k != name and blo <= lo and hi <= bhi and (bhi - blo, arrays[k].ndim) > (hi - lo, arr.ndim)]
        if not outer:
            continue
        container = max(outer, key=lambda k: bounds[k][1] - bounds[k][0])
        base = arrays[container]
        if not base.flags.c_contiguous or arr.dtype != base.dtype:
            raise pickle.PicklingError(f"{name}: a view of {container} that cannot be rebuilt; cannot snapshot it faithfully")
        out[name] = (container, lo - bounds[container][0], arr.shape, arr.strides)
    return out


def _rebuild(cls: type[object], state: dict[str, Any], views: dict[str, View]) -> Any:
    obj = cls.__new__(cls)
    obj.__dict__.update(state)
    for name, (container, offset, shape, strides) in views.items():
        base = obj.__dict__[container]
        obj.__dict__[name] = np.ndarray(shape, base.dtype, buffer=base, offset=offset, strides=strides)
    return obj


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        d = getattr(obj, "__dict__", None)
        if not isinstance(d, dict) or isinstance(obj, type) or sum(isinstance(v, np.ndarray) for v in d.values()) < 2:
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
