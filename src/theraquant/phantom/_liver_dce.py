"""A synthetic liver DCE-MRI phantom with ground-truth parameter maps."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import TheraquantError
from ..image import Image

__all__ = ["LiverDcePhantom", "liver_dce_phantom", "LIVER_LABELS", "LIVER_TISSUES", "LIVER_T10_S"]

#: Label values of the phantom's label image and their names.
LIVER_LABELS: Mapping[int, str] = MappingProxyType({
    1: "liver", 2: "hcc", 3: "metastasis", 4: "hypovascular", 5: "aorta", 6: "portal vein"})

#: Dual-input extended Tofts parameters of each tissue label (Ktrans 1/min, ve and vp mL/mL,
#: fa the arterial fraction of the input). Normal liver: dominant portal supply (fa ~0.25), large
#: extravascular space and sinusoidal plasma volume; hepatocellular carcinoma: arterialised
#: (fa ~0.8) and hypervascular; metastasis and a hypovascular lesion: lower perfusion. Orders of
#: magnitude after Materne R, et al. Clin Sci 2000;99:517-25 (doi:10.1042/cs0990517) and
#: Koh TS, et al. Phys Med Biol 2008;53:2741-55 (doi:10.1088/0031-9155/53/10/018).
LIVER_TISSUES: Mapping[int, Mapping[str, float]] = MappingProxyType({
    1: MappingProxyType({"Ktrans": 0.60, "ve": 0.25, "vp": 0.12, "fa": 0.25}),
    2: MappingProxyType({"Ktrans": 0.45, "ve": 0.30, "vp": 0.08, "fa": 0.80}),
    3: MappingProxyType({"Ktrans": 0.20, "ve": 0.35, "vp": 0.04, "fa": 0.60}),
    4: MappingProxyType({"Ktrans": 0.06, "ve": 0.20, "vp": 0.01, "fa": 0.50}),
})


#: Pre-contrast T1 (T10) of each label at 1.5 T, s, used by :meth:`LiverDcePhantom.signal`:
#: liver 0.586 s (de Bazelaire CMJ, et al. Radiology 2004;230:652-9, doi:10.1148/radiol.2303021331),
#: blood 1.441 s (Lu H, et al. Magn Reson Med 2004;52:679-82, doi:10.1002/mrm.20178); the tumour
#: values (longer than liver) are illustrative; background 1.0 s.
LIVER_T10_S: Mapping[int, float] = MappingProxyType({0: 1.0, 1: 0.586, 2: 1.10, 3: 1.20, 4: 1.30, 5: 1.441,
                                                     6: 1.441})


@dataclass(frozen=True, eq=False)
class LiverDcePhantom:
    """A synthetic liver DCE-MRI series and its ground truth.

    Attributes
    ----------
    image : Image
        4-D concentration image (z, y, x, t), mM, with ``frame_times_s`` (s).
    labels : Image
        3-D label image (int16): see :data:`LIVER_LABELS` (0 is background).
    truth : mapping of str to ndarray
        Ground-truth maps (z, y, x), float64: ``Ktrans`` and ``kep`` (1/min), ``ve``,
        ``vp`` and ``fa`` (fractions). NaN outside the liver tissue labels 1-4.
    cp, cp_portal : ndarray
        Arterial and portal-venous plasma concentration at the frame times, mM.
    t : ndarray
        Frame times, s.
    model : str
        Forward model that generated the tissue curves (``"dual_input_etofts"``).
    label_names : mapping of int to str
        Names of the labels.
    settings : dict
        Every setting used (AIF, haematocrit, noise, seed, grid).
    """

    image: Image
    labels: Image
    truth: Mapping[str, NDArray[np.float64]]
    cp: NDArray[np.float64]
    cp_portal: NDArray[np.float64]
    t: NDArray[np.float64]
    model: str
    label_names: Mapping[int, str] = field(default_factory=lambda: dict(LIVER_LABELS))
    settings: dict[str, Any] = field(default_factory=dict)

    def signal(self, *, tr: float = 0.004, flip_angle: float = 15.0, r1: float = 4.5,
               m0: float = 1000.0) -> tuple[Image, Image]:
        """The series as spoiled gradient-echo signal, and the T10 map that converts it back.

        Parameters
        ----------
        tr : float
            Repetition time, s.
        flip_angle : float
            Flip angle, degrees.
        r1 : float
            Relaxivity, 1/(mM s).
        m0 : float
            Equilibrium signal (arbitrary units).

        Returns
        -------
        signal : Image
            4-D SPGR signal (z, y, x, t), arbitrary units, from
            :func:`theraquant.dce.concentration_to_signal` with the T10 of each label
            (:data:`LIVER_T10_S`) and the **blood** concentration in the vessels.
        t10 : Image
            3-D T10 map, s.

        Examples
        --------
        >>> import numpy as np
        >>> from theraquant import dce
        >>> ph = liver_dce_phantom(shape=(2, 24, 24))
        >>> sig, t10 = ph.signal(tr=0.004, flip_angle=15.0)
        >>> conc = dce.signal_to_concentration(sig.array, t10=t10.array, r1=4.5, tr=0.004,
        ...                                    flip_angle=15.0, n_baseline=3)
        >>> bool(np.allclose(conc, ph.image.array, atol=1e-6))
        True
        """
        from .. import dce

        labels = self.labels.array
        t10 = np.full(labels.shape, LIVER_T10_S[0])
        for value, v in LIVER_T10_S.items():
            t10[labels == value] = v
        sig = dce.concentration_to_signal(np.asarray(self.image.array, dtype=np.float64), t10=t10, r1=r1, tr=tr,
                                          flip_angle=flip_angle, m0=m0)
        meta = {"tr_s": tr, "flip_angle_deg": flip_angle, "r1_per_mM_per_s": r1, "m0": m0}
        return (self.image.with_array(sig, units="", frame_times_s=self.t, meta=meta),
                self.labels.with_array(t10, units="s", meta={"description": "T10 of each label, s"}))


def _label_image(shape: tuple[int, int, int], spacing_mm: tuple[float, float, float]) -> NDArray[np.int16]:
    """Liver ellipsoid with three spherical lesions, an aorta and a portal vein (cylinders along z)."""
    nz, ny, nx = shape
    dz, dy, dx = spacing_mm
    z, y, x = np.meshgrid((np.arange(nz) - (nz - 1) / 2) * dz, (np.arange(ny) - (ny - 1) / 2) * dy,
                          (np.arange(nx) - (nx - 1) / 2) * dx, indexing="ij")
    fov_y, fov_x = ny * dy, nx * dx
    lab = np.zeros(shape, np.int16)
    # liver: ellipsoid filling the left two thirds of the field of view (patient's right)
    ax, ay, az = 0.36 * fov_x, 0.38 * fov_y, max(0.6 * nz * dz, 1.0)
    cx, cy = -0.10 * fov_x, 0.0
    liver = ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 + (z / az) ** 2 <= 1.0
    lab[liver] = 1
    r_les = 0.09 * min(fov_x, fov_y)
    for value, (fx, fy) in zip((2, 3, 4), ((-0.28, -0.16), (0.05, 0.12), (-0.18, 0.20))):
        ball = (x - fx * fov_x) ** 2 + (y - fy * fov_y) ** 2 + (z * 0.5) ** 2 <= r_les**2
        lab[ball & liver] = value
    # portal vein inside the liver, aorta outside it
    r_v = max(0.035 * min(fov_x, fov_y), 1.01 * max(dx, dy))
    lab[(x - (-0.02 * fov_x)) ** 2 + (y - (-0.05 * fov_y)) ** 2 <= r_v**2] = 6
    lab[(x - 0.36 * fov_x) ** 2 + (y - 0.05 * fov_y) ** 2 <= (1.2 * r_v) ** 2] = 5
    return lab


def liver_dce_phantom(
    *,
    shape: tuple[int, int, int] = (6, 48, 48),
    spacing_mm: ArrayLike = (5.0, 4.0, 4.0),
    t: ArrayLike | None = None,
    aif: str = "parker",
    bolus_arrival_s: float = 20.0,
    hct: float = 0.42,
    heterogeneity: float = 0.15,
    noise_sd: float = 0.0,
    rng: np.random.Generator | int | None = None,
) -> LiverDcePhantom:
    """Synthetic liver DCE-MRI concentration series with ground-truth maps.

    A liver with dual (arterial and portal-venous) input, three lesions of
    different perfusion (:data:`LIVER_TISSUES`), an aorta and a portal vein.
    Tissue curves come from :func:`theraquant.dce.simulate` with the
    ``"dual_input_etofts"`` model, a population AIF and a portal-venous
    input modelled from it; vessel voxels hold the **blood** concentration of
    their input (plasma x (1 - hct)), so that an ROI AIF measured on the aorta
    label recovers ``cp`` after the haematocrit correction.

    Parameters
    ----------
    shape : (3,) tuple of int
        Grid (z, y, x); the default (6, 48, 48) holds about 5,000 liver voxels.
    spacing_mm : float or (3,) array_like
        Voxel size (z, y, x), mm.
    t : (T,) array_like, optional
        Frame times, s (default every 4 s for 5 min, 75 frames).
    aif : str
        Population AIF of :mod:`theraquant.dce.aif` (``"parker"``, ``"orton"``...).
    bolus_arrival_s : float
        Delay of the AIF from the first frame, s (the pre-contrast baseline).
    hct : float
        Haematocrit, fraction: plasma = blood / (1 - hct).
    heterogeneity : float
        Relative amplitude (fraction) of a smooth spatial gradient of Ktrans and vp
        within each tissue label, so that the maps are not flat.
    noise_sd : float
        Standard deviation of Gaussian noise added to every voxel and frame, mM.
    rng : numpy.random.Generator or int, optional
        Random generator (or seed) for the noise; required when ``noise_sd > 0``
        so that the phantom is reproducible.

    Returns
    -------
    LiverDcePhantom

    Examples
    --------
    >>> from theraquant.phantom import liver_dce_phantom
    >>> ph = liver_dce_phantom(shape=(2, 24, 24))
    >>> ph.image.array.shape, ph.image.units, ph.t.size
    ((2, 24, 24, 75), 'mM', 75)
    >>> sorted(ph.truth)
    ['Ktrans', 'fa', 'kep', 've', 'vp']
    """
    from .. import dce
    from ..image import normalize_spacing

    if len(tuple(shape)) != 3 or any(int(n) < 1 for n in shape):
        raise TheraquantError(f"shape must be 3 positive sizes (z, y, x), got {shape!r}")
    shape = tuple(int(n) for n in shape)  # type: ignore[assignment]
    if min(shape[1:]) < 16:
        raise TheraquantError(f"shape {shape} is too small in-plane for the lesions and vessels; "
                              "use at least 16 x 16 voxels in y and x")
    spacing = normalize_spacing(spacing_mm)
    t = np.arange(0.0, 300.0, 4.0) if t is None else np.asarray(t, dtype=np.float64)
    if not 0.0 <= hct < 1.0:
        raise TheraquantError(f"hct must be a fraction in [0, 1), got {hct!r}")
    if noise_sd < 0 or not np.isfinite(noise_sd):
        raise TheraquantError(f"noise_sd must be >= 0 (mM), got {noise_sd!r}")
    if noise_sd > 0 and rng is None:
        raise TheraquantError("noise_sd > 0 needs rng= (a numpy Generator or an int seed) "
                              "so that the phantom is reproducible")
    cp = np.asarray(dce.aif.population(aif, t, delay=bolus_arrival_s, hct=hct), dtype=np.float64)  # plasma, mM
    cp_portal = np.asarray(dce.aif.portal_venous(t, cp), dtype=np.float64)

    labels = _label_image(shape, spacing)
    tissue = np.isin(labels, list(LIVER_TISSUES))
    # smooth gradient across the field of view (range -1..1) for heterogeneity
    gx = np.linspace(-1.0, 1.0, shape[2])[None, None, :]
    gy = np.linspace(-1.0, 1.0, shape[1])[None, :, None]
    grad = np.broadcast_to(0.6 * gx + 0.4 * gy, shape)
    truth = {k: np.full(shape, np.nan) for k in ("Ktrans", "ve", "vp", "fa")}
    for value, pars in LIVER_TISSUES.items():
        sel = labels == value
        for k, v in pars.items():
            scale = 1.0 + heterogeneity * grad[sel] if k in ("Ktrans", "vp") else 1.0
            truth[k][sel] = v * scale
    truth["kep"] = truth["Ktrans"] / truth["ve"]

    conc = np.zeros((*shape, t.size), dtype=np.float32)
    params = {k: truth[k][tissue] for k in ("Ktrans", "ve", "vp", "fa")}
    conc[tissue] = dce.simulate(t, "dual_input_etofts", params, cp=cp, cp_portal=cp_portal)
    conc[labels == 5] = cp * (1.0 - hct)
    conc[labels == 6] = cp_portal * (1.0 - hct)
    if noise_sd > 0:
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        conc += gen.normal(0.0, noise_sd, size=conc.shape).astype(np.float32)

    settings = {"shape": list(shape), "spacing_mm": list(spacing), "aif": aif, "bolus_arrival_s": bolus_arrival_s,
                "hct": hct,
                "heterogeneity": heterogeneity, "noise_sd_mM": noise_sd,
                "seed": rng if isinstance(rng, int) else None, "model": "dual_input_etofts",
                "portal_input": "theraquant.dce.aif.portal_venous(t, cp)",
                "tissues": {LIVER_LABELS[k]: dict(v) for k, v in LIVER_TISSUES.items()}}
    img = Image.from_spacing(conc, spacing, units="mM", frame_times_s=t,
                             meta={"description": "theraquant synthetic liver DCE phantom"})
    lab_img = Image.from_spacing(labels, spacing, meta={"label_names": dict(LIVER_LABELS)})
    return LiverDcePhantom(image=img, labels=lab_img, truth=MappingProxyType(truth), cp=cp,
                           cp_portal=cp_portal, t=t, model="dual_input_etofts",
                           label_names=dict(LIVER_LABELS), settings=settings)
