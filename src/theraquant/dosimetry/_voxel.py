"""Voxel dosimetry: activity calibration, time-integrated activity, LDM and VSV absorbed dose."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin
from numpy.typing import ArrayLike, NDArray

from ..errors import TheraquantError
from ..image import as_mask
from ..quantities import check_quantity, check_tia_total
from ..results import Result, call_provenance
from ._convolve import convolve_same
from ._kernels import check_spacing, voxel_kernel
from ._nuclides import MEV_TO_J, get_nuclide

__all__ = ["DoseMap", "absorbed_dose", "permanent_implant_tia", "calibrate_activity",
           "activity_from_concentration"]

DEFAULT_DENSITY_G_ML = 1.04  # ICRP soft tissue, the Lanconelli kernels' medium
#: 90Y absorbed dose per activity for complete local decay, Gy kg/GBq (= J/GBq): the MIRD /
#: partition-model constant (Gulec SA et al. J Nucl Med 2006;47:1209-11; Dezarn WA et al. Med Phys
#: 2011;38:4824-45, AAPM TG 144). ICRP 107 energy gives 49.39; the TheraSphere insert uses 50.
Y90_K_GY_KG_PER_GBQ = 49.67


class DoseMap(NDArrayOperatorsMixin, Result):
    """Absorbed dose per voxel, Gy, with how it was computed: a :class:`~theraquant.results.Result`.

    Fields: ``dose_gy`` (the (nz, ny, nx) float64 dose map, Gy, read-only), ``spacing_mm``
    (z, y, x), ``method``, ``nuclide``. ``.provenance`` records the Python call, method, nuclide
    constants, k, density and kernel; ``.unit`` is ``"Gy"``.

    It works where an array is expected: ``np.asarray(dose)`` is the dose map, integer/slice/
    boolean indexing (``dose[1, 1, 1]``, ``dose[mask]``) and arithmetic (``dose * 2``) act on it
    and give plain arrays (the record no longer describes them), ``shape``/``dtype``/``ndim``
    are the map's. String keys are the fields (``dose["dose_gy"]``).
    """

    __slots__ = ()
    _TITLE = "absorbed dose map"

    def __init__(self, dose_gy: NDArray[np.float64], record: Mapping[str, Any] | None = None, *,
                 spacing_mm: tuple[float, float, float] | None = None, method: str = "", nuclide: str = ""):
        super().__init__({"dose_gy": np.asarray(dose_gy, dtype=np.float64), "spacing_mm": spacing_mm,
                          "method": method, "nuclide": nuclide},
                         units={"dose_gy": "Gy", "spacing_mm": "mm"}, provenance=record)

    # array behaviour --------------------------------------------------------------------
    def __array__(self, dtype: Any = None, copy: bool | None = None) -> NDArray:
        a = self._data["dose_gy"]
        if dtype is not None and np.dtype(dtype) != a.dtype:
            return a.astype(dtype)
        return a.copy() if copy else a

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        inputs = tuple(np.asarray(x) if isinstance(x, DoseMap) else x for x in inputs)
        if "out" in kwargs:
            kwargs["out"] = tuple(np.asarray(x) if isinstance(x, DoseMap) else x for x in kwargs["out"])
        return getattr(ufunc, method)(*inputs, **kwargs)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return super().__getitem__(key)
        return self._data["dose_gy"][key]

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the dose map (nz, ny, nx)."""
        return self._data["dose_gy"].shape

    @property
    def dtype(self) -> np.dtype:
        """float64."""
        return self._data["dose_gy"].dtype

    @property
    def ndim(self) -> int:
        """3."""
        return self._data["dose_gy"].ndim

    @property
    def unit(self) -> str:
        """``"Gy"``."""
        return "Gy"

    @property
    def size(self) -> int:
        """Number of voxels."""
        return self._data["dose_gy"].size

    # the usual reductions of the dose map (plain numbers and arrays, as numpy's)
    def sum(self, *args: Any, **kwargs: Any) -> Any:
        """``np.sum`` of the dose map, Gy."""
        return self._data["dose_gy"].sum(*args, **kwargs)

    def max(self, *args: Any, **kwargs: Any) -> Any:
        """``np.max`` of the dose map, Gy."""
        return self._data["dose_gy"].max(*args, **kwargs)

    def min(self, *args: Any, **kwargs: Any) -> Any:
        """``np.min`` of the dose map, Gy."""
        return self._data["dose_gy"].min(*args, **kwargs)

    def mean(self, *args: Any, **kwargs: Any) -> Any:
        """``np.mean`` of the dose map, Gy."""
        return self._data["dose_gy"].mean(*args, **kwargs)

    def astype(self, dtype: Any, **kwargs: Any) -> NDArray:
        """The dose map as a new array of ``dtype``."""
        return self._data["dose_gy"].astype(dtype, **kwargs)

    def copy(self) -> NDArray:
        """A writeable copy of the dose map, Gy."""
        return self._data["dose_gy"].copy()

    def __reduce__(self) -> Any:
        return (_rebuild_dose_map, (np.asarray(self), self.provenance, self._data["spacing_mm"],
                                    self._data["method"], self._data["nuclide"]))


def _rebuild_dose_map(dose: NDArray, record: dict, spacing_mm: Any, method: str, nuclide: str) -> DoseMap:
    return DoseMap(dose, record, spacing_mm=spacing_mm, method=method, nuclide=nuclide)


def _check_map(values: ArrayLike, name: str, *, ndim: int | None = 3) -> NDArray[np.float64]:
    try:
        a = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise TheraquantError(f"{name} must be a numeric array, got {type(values).__name__}") from None
    if ndim is not None and a.ndim != ndim:
        raise TheraquantError(f"{name} must be a {ndim}-D array indexed (z, y, x), got shape {a.shape}; "
                              "pass one volume (one time point)")
    if a.size == 0:
        raise TheraquantError(f"{name} is empty (shape {a.shape})")
    lo, hi = a.min(), a.max()  # two reductions without temporaries; NaN propagates into both
    if not (np.isfinite(lo) and np.isfinite(hi)):
        bad_nan = int(np.count_nonzero(~np.isfinite(a)))
        raise TheraquantError(f"{name} has {bad_nan} NaN or infinite voxel(s); activity must be finite; "
                              "set voxels outside the field of view to 0 (np.nan_to_num)")
    if lo < 0:
        neg = int(np.count_nonzero(a < 0))
        raise TheraquantError(f"{name} has {neg} negative voxel(s) (min {a.min():.4g}); activity cannot be "
                              "negative; clip reconstruction noise first (np.clip(a, 0, None)) if intended")
    return a


def _check_density(density: ArrayLike | None, shape: tuple[int, ...]) -> NDArray[np.float64] | float | None:
    if density is None:
        return None
    d = np.asarray(density, dtype=np.float64)
    if d.ndim == 0:
        if not (np.isfinite(d) and d > 0):
            raise TheraquantError(f"density must be a positive tissue density in g/mL, got {density!r}; "
                                  "use None for soft tissue (1.04 g/mL)")
        return float(d)
    if d.shape != shape:
        raise TheraquantError(f"density map shape {d.shape} differs from the activity map shape {shape}; "
                              "resample the CT-derived density onto the activity grid")
    if not np.all(np.isfinite(d) & (d > 0)):
        raise TheraquantError(f"density map has {int(np.count_nonzero(~(np.isfinite(d) & (d > 0))))} "
                              "non-positive or NaN voxel(s); clip it to a minimum such as 0.001 g/mL (air)")
    return d


def permanent_implant_tia(activity_bq: ArrayLike, nuclide: str = "Y-90") -> NDArray[np.float64]:
    """Time-integrated activity of a permanent implant (physical decay only), Bq s.

    Parameters
    ----------
    activity_bq : array_like of float
        Activity at implantation (e.g. 90Y microspheres) per voxel or region, Bq.
    nuclide : str
        Radionuclide (``"Y-90"``, ``"Lu-177"``).

    Returns
    -------
    ndarray of float64
        TIA = A0 T1/2 / ln 2, Bq s (332,657 s per Bq for 90Y, T1/2 = 64.05 h).

    References
    ----------
    .. [1] Bolch WE, et al. MIRD Pamphlet No. 21. J Nucl Med 2009;50:477-84. doi:10.2967/jnumed.108.056036

    Examples
    --------
    >>> round(float(permanent_implant_tia(1.0)))
    332657
    """
    nuc = get_nuclide(nuclide)
    a = _check_map(activity_bq, "activity_bq", ndim=None)
    return a * nuc.mean_life_s


def activity_from_concentration(bq_per_ml: ArrayLike, spacing_mm: tuple[float, float, float]
                                ) -> NDArray[np.float64]:
    """Activity per voxel from the scanner's quantitative concentration, Bq.

    Parameters
    ----------
    bq_per_ml : (nz, ny, nx) array_like
        Activity concentration (e.g. 90Y PET in Bq/mL), decay-corrected to the reference time.
    spacing_mm : (3,) tuple of float
        Voxel size (z, y, x), mm.

    Returns
    -------
    (nz, ny, nx) ndarray of float64
        Activity per voxel, Bq (concentration times voxel volume).

    Examples
    --------
    >>> import numpy as np
    >>> float(activity_from_concentration(np.full((1, 1, 1), 1000.0), (4.0, 4.0, 4.0))[0, 0, 0])
    64.0
    """
    sp = check_spacing(spacing_mm)
    c = _check_map(bq_per_ml, "bq_per_ml")
    return c * (float(np.prod(sp)) * 1e-3)


def calibrate_activity(counts: ArrayLike, *, administered_bq: float, residual_fraction: float = 0.0,
                       lung_shunt_fraction: float = 0.0, mask: ArrayLike | None = None
                       ) -> NDArray[np.float64]:
    """Scale a relative activity map so that it holds the activity implanted in the liver, Bq.

    The implanted activity is A_adm (1 - residual) (1 - LSF); the map (counts, or any map
    proportional to activity, e.g. bremsstrahlung SPECT) is scaled so that its sum inside
    `mask` (the whole map if None) equals it, and is zero outside the mask.

    Parameters
    ----------
    counts : (nz, ny, nx) array_like
        Relative activity per voxel (>= 0).
    administered_bq : float
        Activity administered at the reference time, Bq.
    residual_fraction : float
        Fraction left in the vial, tubing and catheter, 0-1.
    lung_shunt_fraction : float
        Fraction shunted to the lungs, 0-1.
    mask : (nz, ny, nx) array_like of bool, optional
        Liver (perfused volume) in which the activity is distributed.

    Returns
    -------
    (nz, ny, nx) ndarray of float64
        Activity per voxel, Bq.

    References
    ----------
    .. [1] Chiesa C, et al. EANM dosimetry committee series on 90Y. Eur J Nucl Med Mol Imaging
       2021;48:3018-32 (calibration to the administered activity). doi:10.1007/s00259-021-05340-0

    Examples
    --------
    >>> import numpy as np
    >>> a = calibrate_activity(np.ones((2, 2, 2)), administered_bq=2e9, lung_shunt_fraction=0.05)
    >>> float(a.sum()) / 1e9
    1.9
    """
    c = _check_map(counts, "counts")
    for name, f in (("residual_fraction", residual_fraction), ("lung_shunt_fraction", lung_shunt_fraction)):
        if not (0.0 <= float(f) < 1.0):
            raise TheraquantError(f"{name} must be a fraction in [0, 1), got {f!r}; pass e.g. 0.05 for 5 %")
    if not (np.isfinite(administered_bq) and administered_bq > 0):
        raise TheraquantError(f"administered_bq must be a positive activity in Bq, got {administered_bq!r}")
    if mask is not None:
        m = as_mask(mask, name="mask", shape=c.shape)
        c = np.where(m, c, 0.0)
    total = float(c.sum())
    if total <= 0:
        raise TheraquantError("counts sum to 0 inside the mask; cannot calibrate an empty map; check the mask")
    implanted = float(administered_bq) * (1.0 - residual_fraction) * (1.0 - lung_shunt_fraction)
    return c * (implanted / total)


def absorbed_dose(tia_bq_s: ArrayLike, spacing_mm: tuple[float, float, float], *, nuclide: str = "Y-90",
                  method: str = "vsv", k: float = Y90_K_GY_KG_PER_GBQ, density: ArrayLike | None = None,
                  tissue: str = "soft", kernel: str = "lanconelli", workers: int = -1,
                  precision: str = "double") -> DoseMap:
    """Absorbed dose per voxel from the time-integrated activity per voxel, Gy.

    Parameters
    ----------
    tia_bq_s : (nz, ny, nx) array_like of float
        Time-integrated activity (number of decays) per voxel, Bq s, >= 0 and finite. For 90Y
        microspheres use :func:`permanent_implant_tia`.
    spacing_mm : (3,) tuple of float
        Voxel size (z, y, x), mm; 1-12 mm per edge for ``method="vsv"``.
    nuclide : str
        ``"Y-90"`` or ``"Lu-177"`` (constants in ``dose.provenance``).
    method : {"vsv", "ldm"}
        Voxel S-value convolution (Lanconelli 2012 kernels, linear FFT convolution) or local
        energy deposition.
    k : float
        90Y dose constant, Gy kg/GBq = J/GBq for complete decay (default 49.67, the MIRD and
        partition-model value; 49.39 from the ICRP 107 energy, 50 in the TheraSphere insert).
        Used by the 90Y LDM only: the energy per decay is k lambda. Other nuclides deposit
        their electron energy per decay (177Lu 0.1479 MeV).
    density : float or (nz, ny, nx) array_like, optional
        Tissue density, g/mL (e.g. from CT). None: 1.04 g/mL, the kernels' soft tissue, and
        VSV doses are not scaled. Given: LDM uses it for the voxel mass and VSV doses are
        multiplied by 1.04/density (or 1.85/density for ``tissue="bone"``) voxel by voxel.
    tissue : {"soft", "bone"}
        Kernel medium for VSV.
    kernel : {"lanconelli", "pytheranostics"}
        VSV kernel set (see :func:`theraquant.dosimetry.voxel_kernel`); the PyTheranostics
        177Lu kernel (4.7952 mm voxels only) has density 1.0 g/mL, the reference for its
        density scaling.
    workers : int
        FFT threads (-1: all cores).
    precision : {"double", "single"}
        FFT precision for VSV. ``"single"`` is ~1.5-2x faster with round-off ~3e-7 of the
        maximum dose (absolute): fine for Dmean, DVHs and isodoses, not for the far tail of a
        point-source kernel. Recorded in ``dose.provenance``.

    Returns
    -------
    DoseMap, (nz, ny, nx) float64
        Absorbed dose, Gy; ``.provenance`` records method, k, density, kernel and nuclide.

    Notes
    -----
    LDM: D = E TIA / (rho V), E = k lambda for 90Y (so D = k A0 / m for a permanent implant).
    VSV: D = (TIA * S) with S in mGy/(MBq s) (MIRD Pamphlet 17), zero-padded so the
    convolution is linear; activity outside the map is taken as zero. Kernels for voxel sizes
    not in the tables: see :func:`theraquant.dosimetry.voxel_kernel`.

    References
    ----------
    .. [1] Bolch WE, et al. MIRD Pamphlet No. 17. J Nucl Med 1999;40:11S-36S.
    .. [2] Lanconelli N, et al. Phys Med Biol 2012;57:517-33. doi:10.1088/0031-9155/57/2/517
    .. [3] Pasciak AS, et al. Front Oncol 2014;4:121 (90Y LDM). doi:10.3389/fonc.2014.00121

    Examples
    --------
    >>> import numpy as np
    >>> tia = np.zeros((3, 3, 3)); tia[1, 1, 1] = permanent_implant_tia(1e6)  # 1 MBq 90Y
    >>> d = absorbed_dose(tia, (4.0, 4.0, 4.0), method="ldm", density=1.0)
    >>> round(float(d[1, 1, 1]), 2), d.provenance["Constants"]["k_Gy_kg_per_GBq"]
    (776.09, 49.67)
    """
    nuc = get_nuclide(nuclide)
    if method not in ("vsv", "ldm"):
        raise TheraquantError(f"method must be 'vsv' or 'ldm', got {method!r}")
    if precision not in ("double", "single"):
        raise TheraquantError(f"precision must be 'double' or 'single', got {precision!r}")
    tia = _check_map(tia_bq_s, "tia_bq_s")
    check_tia_total(tia, argument="tia_bq_s")  # an activity (Bq) passed as TIA (Bq s)?
    check_quantity("voxel_size_mm", check_spacing(spacing_mm), argument="spacing_mm")  # spacing in m or cm?
    sp = check_spacing(spacing_mm, vsv=(method == "vsv"))
    rho = _check_density(density, tia.shape)
    if rho is not None:
        check_quantity("density_g_ml", rho, argument="density")  # kg/m3?
    if not (np.isfinite(k) and k > 0):
        raise TheraquantError(f"k must be a positive dose constant in Gy kg/GBq, got {k!r}; default 49.67")
    constants: dict[str, Any] = nuc.as_dict()
    settings: dict[str, Any] = {"method": method, "spacing_mm": sp,
                                "density_g_ml": "map" if isinstance(rho, np.ndarray) else rho}
    volume_ml = float(np.prod(sp)) * 1e-3
    if method == "ldm":
        if nuc.name == "Y-90":
            energy_j = k * 1e-9 * nuc.decay_constant_per_s  # J per decay
            constants["k_Gy_kg_per_GBq"] = float(k)
        else:
            energy_j = nuc.electron_energy_mev * MEV_TO_J
            constants["k_Gy_kg_per_GBq"] = None
        constants["energy_per_decay_J"] = energy_j
        mass_kg = (DEFAULT_DENSITY_G_ML if rho is None else rho) * volume_ml * 1e-3
        dose = tia * energy_j / mass_kg
    else:
        kern = voxel_kernel(sp, nuclide=nuc.name, tissue=tissue, source=kernel)
        constants.update(kern.as_dict())
        # Bq s x 1e-6 MBq/Bq x mGy/(MBq s) x 1e-3 Gy/mGy: the unit factor goes on the small kernel
        settings["fft_precision"] = precision
        dose = convolve_same(tia, kern.values * 1e-9, workers=workers, precision=precision)
        np.maximum(dose, 0.0, out=dose)  # FFT round-off (~1e-16 of max) below zero
        if rho is not None:
            dose *= kern.density_g_ml / rho
    record = call_provenance("theraquant.dosimetry.absorbed_dose", {
        "tia_bq_s": tia_bq_s, "spacing_mm": spacing_mm, "nuclide": nuclide, "method": method, "density": density,
        "k": k, "tissue": tissue, "kernel": kernel, "precision": precision}, settings=settings,
        constants=constants, units={"dose": "Gy", "tia": "Bq s"})
    return DoseMap(dose, record, spacing_mm=sp, method=method, nuclide=nuc.name)
