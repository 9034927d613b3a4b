"""The one result type of theraquant's engines: a read-only mapping with units and provenance.

Every engine result (PET metrics, hypoxia, dose maps and DVHs, response decisions, statistics)
is a :class:`Result`:

* a read-only :class:`~collections.abc.Mapping` (``r["Ktrans"]``, ``dict(r)``, ``list(r)``) whose
  fields are also attributes (``r.Ktrans``);
* ``units`` maps each field to its unit (``""`` when dimensionless or not a quantity);
* numpy arrays are frozen (``writeable=False``): a result cannot be changed after the fact;
* ``summary()`` is fixed-width text (one line per field, value and unit) and ``_repr_html_()``
  shows the same in a notebook;
* ``to_dict()`` gives plain Python types (arrays as nested lists, NaN as ``None``) and
  ``to_json()`` the JSON text of fields, units and provenance;
* ``provenance`` is a dict that records how the result was made. Its ``"Command"`` is the Python
  call, e.g. ``"theraquant.pet.hypoxia(values=<array (64, 64, 32) float64>, ...)"``, never
  ``sys.argv``: see :func:`records_call` and :func:`describe_call`.

Two ways to build one:

1. directly, ``Result({"SUVmax": 4.0}, units={"SUVmax": "g/mL"}, title="lesion")``;
2. as a frozen dataclass subclass (fields are the dataclass fields; ``_UNITS`` a class mapping)::

       @dataclass(frozen=True)
       class RocResult(Result):
           _UNITS: ClassVar[Mapping[str, str]] = {"auc": ""}
           auc: float

   Dataclass subclasses that define ``__post_init__`` call ``super().__post_init__()``.

Examples
--------
>>> import numpy as np
>>> r = Result({"SUVmax": 4.0, "mask": np.ones(3, bool)}, units={"SUVmax": "g/mL"}, title="lesion")
>>> r["SUVmax"], r.SUVmax, r.units["SUVmax"]
(4.0, 4.0, 'g/mL')
>>> r.mask.flags.writeable
False
>>> print(r.summary())
lesion
  SUVmax  4                      g/mL
  mask    <array (3,) bool>
>>> r.to_dict()["mask"]
[True, True, True]
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import math
from collections.abc import Callable, Mapping
from html import escape
from types import MappingProxyType
from typing import Any, ClassVar, Iterator, TypeVar

import numpy as np

from .errors import TheraquantError

__all__ = ["Result", "attach_provenance", "call_provenance", "describe_call", "freeze", "records_call"]

F = TypeVar("F", bound=Callable[..., Any])


# ------------------------------------------------------------------------------ helpers
def freeze(value: Any) -> Any:
    """Return ``value`` made read-only: arrays as non-writeable views, dicts as read-only mappings.

    The caller's array is not changed (a view is frozen, not the original); lists become tuples.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros(2)
    >>> freeze(a).flags.writeable, a.flags.writeable
    (False, True)
    """
    if isinstance(value, np.ndarray):
        if not value.flags.writeable:
            return value
        v = value.view()
        v.flags.writeable = False
        return v
    if isinstance(value, MappingProxyType):
        return value
    if isinstance(value, dict):
        return MappingProxyType({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(freeze(v) for v in value)
    return value


def _short(value: Any) -> str:
    """A short description of an argument for a call record (arrays by shape and dtype)."""
    if isinstance(value, np.ndarray):
        return f"<array {tuple(value.shape)} {value.dtype}>"
    if isinstance(value, Result):
        return f"<{type(value).__name__}>"
    shape = getattr(value, "shape", None)
    if shape is not None and not isinstance(value, (int, float, str, bytes)):
        return f"<{type(value).__name__} {tuple(shape)}>"
    if isinstance(value, (list, tuple)) and len(value) > 8:
        return f"<{type(value).__name__} of {len(value)}>"
    if isinstance(value, Mapping) and len(value) > 8:
        return f"<mapping of {len(value)}>"
    if isinstance(value, np.generic):
        value = value.item()
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def describe_call(name: str, arguments: Mapping[str, Any]) -> str:
    """The text of a Python call, arrays shown by shape and dtype (for provenance).

    Parameters
    ----------
    name : str
        Fully qualified function name, e.g. ``"theraquant.pet.hypoxia"``.
    arguments : mapping
        Argument name -> value, in call order.

    Examples
    --------
    >>> import numpy as np
    >>> describe_call("theraquant.pet.hypoxia", {"values": np.zeros((4, 4, 2)), "threshold": "artemiso"})
    "theraquant.pet.hypoxia(values=<array (4, 4, 2) float64>, threshold='artemiso')"
    """
    return f"{name}(" + ", ".join(f"{k}={_short(v)}" for k, v in arguments.items()) + ")"


def _settings(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """JSON-friendly settings: plain scalars as they are, anything else by its short description."""
    out: dict[str, Any] = {}
    for k, v in arguments.items():
        if v is None or isinstance(v, (bool, int, float, str)):
            out[k] = v
        elif isinstance(v, np.generic):
            out[k] = v.item()
        elif isinstance(v, (tuple, list)) and len(v) <= 8 and all(isinstance(x, (bool, int, float, str)) for x in v):
            out[k] = list(v)
        else:
            out[k] = _short(v)
    return out


def call_provenance(name: str, arguments: Mapping[str, Any], *, settings: Mapping[str, Any] | None = None,
                    **extra: Any) -> dict[str, Any]:
    """A provenance record whose ``Command`` is the Python call ``name(arguments)``.

    ``Settings`` holds the arguments (arrays by shape), updated with ``settings`` (what the engine
    resolved, e.g. a default it chose); ``extra`` goes to :func:`theraquant.provenance.provenance`
    (``constants=``, ``units=``, other keys).
    """
    from .provenance import provenance

    merged = {**_settings(arguments), **dict(settings or {})}
    return provenance(command=describe_call(name, arguments), settings=merged, **extra)


def attach_provenance(result: "Result", record: Mapping[str, Any]) -> "Result":
    """Set ``result.provenance`` (once, by the function that made it) and return the result."""
    object.__setattr__(result, "_provenance", dict(record))
    return result


def records_call(name: str) -> Callable[[F], F]:
    """Decorator: a function's :class:`Result` gets the provenance of the call that made it.

    Only results without a provenance yet are stamped (an inner engine call does not overwrite
    the outer one's record). The function's signature and docstring are kept.

    Parameters
    ----------
    name : str
        The public name of the function, e.g. ``"theraquant.pet.hypoxia"``.

    Examples
    --------
    >>> @records_call("theraquant.example")
    ... def f(x, *, scale=2.0):
    ...     return Result({"y": x * scale})
    >>> f(3.0).provenance["Command"]
    'theraquant.example(x=3.0, scale=2.0)'
    """

    def deco(func: F) -> F:
        sig = inspect.signature(func)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            out = func(*args, **kwargs)
            if isinstance(out, Result) and not out.provenance:
                try:
                    bound = sig.bind(*args, **kwargs)
                    bound.apply_defaults()
                    arguments = dict(bound.arguments)
                except TypeError:  # pragma: no cover - the call itself succeeded
                    arguments = {**{f"arg{i}": a for i, a in enumerate(args)}, **kwargs}
                attach_provenance(out, call_provenance(name, arguments))
            return out

        return wrapper  # type: ignore[return-value]

    return deco


def _fmt_value(v: Any) -> str:
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return "nan" if math.isnan(f) else f"{f:.6g}"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, np.ndarray):
        return f"<array {tuple(v.shape)} {v.dtype}>"
    if isinstance(v, Result):
        return f"<{type(v).__name__}: {len(v)} fields>"
    shape = getattr(v, "shape", None)
    if shape is not None and not isinstance(v, (str, bytes)):
        return f"<{type(v).__name__} {tuple(shape)}>"
    text = str(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _describe(a: np.ndarray) -> dict[str, Any]:
    """Shape, dtype and the finite min/mean/max of an array (JSON-ready)."""
    out: dict[str, Any] = {"shape": list(a.shape), "dtype": str(a.dtype)}
    if a.dtype.kind in "biuf" and a.size:
        f = np.asarray(a, dtype=np.float64)
        ok = np.isfinite(f)
        out["n_finite"] = int(ok.sum())
        if ok.any():
            out.update(min=float(f[ok].min()), mean=float(f[ok].mean()), max=float(f[ok].max()))
    return out


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Result):
        return obj.to_dict()
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple, set)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if hasattr(obj, "to_dict") and callable(obj.to_dict):  # e.g. a pandas DataFrame
        try:
            return _jsonable(obj.to_dict(orient="records"))
        except TypeError:
            return _jsonable(obj.to_dict())
    return str(obj)


# ------------------------------------------------------------------------------ the base
class Result(Mapping[str, Any]):
    """Read-only mapping of named values; fields are also attributes; ``units[name]`` their units.

    Parameters
    ----------
    data : mapping of str to value
        The fields, in display order. Arrays are frozen (a read-only view), dicts become read-only
        mappings.
    units : mapping of str to str, optional
        Unit of each field (UCUM-like text: ``"g/mL"``, ``"Gy"``, ``"1/min"``); missing fields
        have ``""``.
    title : str, optional
        First line of :meth:`summary`.
    provenance : mapping, optional
        How the result was made (see :mod:`theraquant.provenance`); functions decorated with
        :func:`records_call` fill it with the Python call.

    Notes
    -----
    A field whose name is also a method or property of the base (``units``, ``summary``,
    ``keys``, ``values``, ...) is reached by item access only (``r["units"]``).

    Examples
    --------
    >>> r = Result({"SUVmax": 4.0, "MTV_mL": 12.5}, units={"SUVmax": "g/mL", "MTV_mL": "mL"}, title="lesion")
    >>> r["SUVmax"], r.MTV_mL, r.units["MTV_mL"]
    (4.0, 12.5, 'mL')
    >>> r.SUVmax = 5.0
    Traceback (most recent call last):
    ...
    AttributeError: Result is read-only: SUVmax cannot be set
    """

    __slots__ = ("_data", "_units", "_title", "_provenance", "__weakref__")
    _UNITS: ClassVar[Mapping[str, str]] = {}
    _TITLE: ClassVar[str] = ""

    def __init__(self, data: Mapping[str, Any] | None = None, /, *, units: Mapping[str, str] | None = None,
                 title: str = "", provenance: Mapping[str, Any] | None = None):
        object.__setattr__(self, "_data", {str(k): freeze(v) for k, v in dict(data or {}).items()})
        object.__setattr__(self, "_units", MappingProxyType({**self._UNITS, **dict(units or {})}))
        object.__setattr__(self, "_title", title or self._TITLE)
        object.__setattr__(self, "_provenance", dict(provenance or {}))

    # dataclass subclasses: their generated __init__ sets the fields, then calls this
    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            if isinstance(v, np.ndarray) and v.flags.writeable:  # containers are the subclass's choice
                object.__setattr__(self, f.name, freeze(v))
        object.__setattr__(self, "_units", MappingProxyType(dict(self._UNITS)))
        object.__setattr__(self, "_title", self._TITLE)
        object.__setattr__(self, "_provenance", {})

    # -------------------------------------------------------------- mapping
    def _fields(self) -> Mapping[str, Any]:
        if dataclasses.is_dataclass(self):
            return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return object.__getattribute__(self, "_data")

    def __getitem__(self, key: str) -> Any:
        if dataclasses.is_dataclass(self):
            if key in {f.name for f in dataclasses.fields(self)}:
                return getattr(self, key)
            raise KeyError(key)
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._fields()))

    def __len__(self) -> int:
        return len(self._fields())

    def __contains__(self, key: object) -> bool:
        return key in self._fields()

    def __getattr__(self, name: str) -> Any:
        # only reached when normal lookup fails: fields of a plain Result as attributes
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            data = object.__getattribute__(self, "_data")
        except AttributeError:
            raise AttributeError(f"{type(self).__name__!s} has no field {name!r}") from None
        try:
            return data[name]
        except KeyError:
            raise AttributeError(f"{type(self).__name__} has no field {name!r}; fields: "
                                 f"{', '.join(data) or 'none'}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only: {name} cannot be set")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only: {name} cannot be deleted")

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | {k for k in self._fields() if k.isidentifier()})

    __hash__ = None  # type: ignore[assignment]  # holds arrays and mappings

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mapping):
            return NotImplemented
        if set(self) != set(other):
            return False
        for k in self:
            a, b = self[k], other[k]
            if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
                if not np.array_equal(np.asarray(a), np.asarray(b), equal_nan=np.asarray(a).dtype.kind == "f"):
                    return False
            elif a != b and not (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)):
                return False
        return True

    def __reduce__(self) -> Any:  # pickling (Dask workers send results back)
        if dataclasses.is_dataclass(self):
            fields = {k: _thaw(v) for k, v in self._fields().items()}
            return (_rebuild_dataclass, (type(self), fields, self.provenance))
        return (_rebuild, (type(self), {k: _thaw(v) for k, v in self._data.items()}, dict(self._units),
                           self._title, self._provenance))

    # -------------------------------------------------------------- metadata
    @property
    def units(self) -> Mapping[str, str]:
        """Unit of each field (read-only; ``""`` for fields that are not physical quantities)."""
        try:
            u = object.__getattribute__(self, "_units")
        except AttributeError:  # a dataclass subclass whose __post_init__ did not call the base's
            u = self._UNITS
        return MappingProxyType({k: u.get(k, "") for k in self._fields()} | dict(u))

    @property
    def provenance(self) -> dict[str, Any]:
        """How the result was made: software, version, time, ``Command`` (the Python call), settings."""
        try:
            return dict(object.__getattribute__(self, "_provenance"))
        except AttributeError:
            return {}

    @property
    def title(self) -> str:
        """Title line of :meth:`summary`."""
        try:
            return object.__getattribute__(self, "_title")
        except AttributeError:
            return self._TITLE

    # -------------------------------------------------------------- output
    def summary(self) -> str:
        """Fixed-width text: the title, then one line per field with value and unit."""
        fields = self._fields()
        units = self.units
        width = max((len(k) for k in fields), default=0)
        lines = [self.title] if self.title else []
        for k, v in fields.items():
            lines.append(f"  {k:<{width}}  {_fmt_value(v):<22} {units.get(k, '')}".rstrip())
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        units = self.units
        rows = "".join(
            f"<tr><td>{escape(str(k))}</td><td>{escape(_fmt_value(v))}</td><td>{escape(units.get(k, ''))}</td></tr>"
            for k, v in self._fields().items())
        cap = f"<caption>{escape(self.title)}</caption>" if self.title else ""
        return f"<table>{cap}<tr><th>name</th><th>value</th><th>unit</th></tr>{rows}</table>"

    def to_dict(self, *, arrays: str = "list") -> dict[str, Any]:
        """The fields as plain Python (NaN/inf as ``None``).

        Parameters
        ----------
        arrays : {"list", "describe"}
            Arrays as nested lists (default), or described by shape, dtype and finite
            min/mean/max (for whole images, e.g. a dose map in a JSON record).
        """
        if arrays not in ("list", "describe"):
            raise TheraquantError(f"arrays must be 'list' or 'describe', got {arrays!r}", argument="arrays")
        if arrays == "describe":
            return {k: _describe(v) if isinstance(v, np.ndarray) else _jsonable(v) for k, v in self._fields().items()}
        return {k: _jsonable(v) for k, v in self._fields().items()}

    def to_json(self, *, indent: int | None = 2, arrays: str = "list") -> str:
        """JSON text ``{"title", "fields", "units", "provenance"}`` (no NaN: missing values are null)."""
        fields = self.to_dict(arrays=arrays) if arrays != "list" else self.to_dict()
        return json.dumps({"title": self.title, "fields": _jsonable(fields), "units": dict(self.units),
                           "provenance": _jsonable(self.provenance)}, indent=indent, allow_nan=False)

    def __repr__(self) -> str:
        if dataclasses.is_dataclass(self):
            inner = ", ".join(f"{k}={_fmt_value(v) if isinstance(v, np.ndarray) else repr(v)}"
                              for k, v in self._fields().items())
            return f"{type(self).__name__}({inner})"
        inner = ", ".join(f"{k!r}: {_fmt_value(v) if isinstance(v, np.ndarray) else repr(v)}"
                          for k, v in self._data.items())
        return f"{type(self).__name__}({{{inner}}})"


def _thaw(v: Any) -> Any:
    """Read-only mappings as dicts (mappingproxy does not pickle); the rebuild freezes them again."""
    if isinstance(v, MappingProxyType):
        return {k: _thaw(x) for k, x in v.items()}
    return v


def _rebuild(cls: type, data: dict, units: dict, title: str, provenance: dict) -> Result:
    obj = cls.__new__(cls)
    Result.__init__(obj, data, units=units, title=title, provenance=provenance)
    return obj


def _rebuild_dataclass(cls: type, fields: dict, provenance: dict) -> Result:
    obj = cls(**{f.name: fields[f.name] for f in dataclasses.fields(cls) if f.init})
    return attach_provenance(obj, provenance)
