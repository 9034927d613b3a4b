"""Per-series DCE-MRI run: files in, parametric maps, sidecar and summary table out.

This is composition (io + dce + provenance); the CLI only parses options and shows progress.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping, Optional

from ..errors import TheraquantError
from ._outputs import check_out_dir, prepare_out_dir, write_manifest

__all__ = ["DceFitSettings", "DceRun", "run_dce_fit", "DCE_MODELS", "DCE_AIFS"]


@dataclass(frozen=True)
class DceRun:
    """What :func:`run_dce_fit` produced.

    Attributes
    ----------
    fit : theraquant.dce.VolumeFit
        The maps (float32, leading shape of the image) and counts.
    summary : pandas.DataFrame
        Per label and parameter: n voxels, median, IQR, percentiles, skewness, kurtosis, failed fraction.
    written : tuple of Path
        Every file written (maps, ``dce_fit.json``, ``summary.csv``).
    """

    fit: Any
    summary: Any
    written: tuple[Path, ...]


@dataclass(frozen=True)
class DceFitSettings:
    """Every setting of one ``dce fit`` run, in library types (the CLI parses its strings into this).

    Attributes
    ----------
    input_path : Path
        4-D NIfTI (frame times from its JSON sidecar) or DICOM DCE series folder.
    out_dir : Path
        Output folder; refused when not empty unless ``overwrite``.
    mask : Path, optional
        Label image (NIfTI): non-zero voxels are fitted and summarised per label.
    t1 : Path, optional
        T10 map (NIfTI, s), for ``input_kind="signal"``.
    t10, t10_blood : float, optional
        Fixed tissue and blood T10, s.
    aif : str or Path
        Population input function name (one of :data:`DCE_AIFS`) or a text file of plasma
        concentrations (mM, one per frame).
    aif_roi : int or Path, optional
        Artery for ``aif="roi"``: a label of ``mask`` or a mask NIfTI.
    aif_delay : float
        Bolus arrival of a population AIF, s.
    portal : "model", int or Path
        Portal-venous input of dual-input models: modelled, a label of ``mask`` or a mask NIfTI.
    hct : float
        Haematocrit (fraction).
    model : str
        One of :data:`DCE_MODELS`.
    input_kind : {"concentration", "signal"}
        What the input holds (mM, or SPGR signal).
    r1 : float
        Relaxivity, 1/(mM s).
    tr : float, optional
        Repetition time, s.
    flip_angle : float, optional
        Flip angle, degrees.
    n_baseline : int
        Pre-contrast frames averaged for the baseline signal.
    delay : float or "fit"
        Tissue delay relative to the input, s, or ``"fit"``.
    frame_times : tuple of float or Path, optional
        Frame times, s (or a text file of them); overrides the input's.
    dt : float, optional
        Uniform frame interval, s; overrides the input's.
    method : str
        Fit method of :func:`theraquant.dce.fit`.
    chunk_voxels : int
        Curves per batched fit.
    compress : bool
        Maps as .nii.gz (else .nii).
    overwrite : bool
        Write into a non-empty ``out_dir``.
    label_names : mapping of int to str, optional
        Names of the mask labels (else from the mask's sidecar ``LabelNames``).
    series_uid : str, optional
        SeriesInstanceUID when the DICOM folder holds several series.

    A label given as its digits (``aif_roi="5"``) and a delay given as a number's text are
    accepted and converted; anything else of the wrong type is a :class:`TheraquantError`
    naming the field.
    """

    input_path: Path
    out_dir: Path
    mask: Optional[Path] = None
    t1: Optional[Path] = None
    t10: Optional[float] = None
    t10_blood: Optional[float] = None
    aif: Any = "parker"
    aif_roi: Any = None
    aif_delay: float = 0.0
    portal: Any = "model"
    hct: float = 0.42
    model: str = "etofts"
    input_kind: str = "concentration"
    r1: float = 4.5
    tr: Optional[float] = None
    flip_angle: Optional[float] = None
    n_baseline: int = 5
    delay: Any = 0.0
    frame_times: Any = None
    dt: Optional[float] = None
    method: str = "nlls"
    chunk_voxels: int = 65536
    compress: bool = True
    overwrite: bool = False
    label_names: Optional[Mapping[int, str]] = None
    series_uid: Optional[str] = None

    def __post_init__(self) -> None:
        for name in ("input_path", "out_dir", "mask", "t1"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, Path):
                if not isinstance(v, str):
                    raise TheraquantError(f"{name} must be a path, got {type(v).__name__}", argument=name)
                object.__setattr__(self, name, Path(v))
        for name in ("aif_roi", "portal"):
            v = getattr(self, name)
            if isinstance(v, str) and v.lstrip("-").isdigit():
                object.__setattr__(self, name, int(v))
            elif isinstance(v, str) and not (name == "portal" and v == "model"):
                object.__setattr__(self, name, Path(v))
        if isinstance(self.aif, str) and self.aif.lower().replace("_", "-") not in DCE_AIFS:
            object.__setattr__(self, "aif", Path(self.aif))
        d = self.delay
        if isinstance(d, str):
            if d.strip().lower() == "fit":
                d = "fit"
            else:
                try:
                    d = float(d)
                except ValueError:
                    raise TheraquantError(f"delay must be a number of seconds or 'fit', got {d!r}",
                                          argument="delay") from None
        elif not isinstance(d, (int, float)) or isinstance(d, bool):
            raise TheraquantError(f"delay must be a number of seconds or 'fit', got {d!r}", argument="delay")
        else:
            d = float(d)
        object.__setattr__(self, "delay", d)
        ft = self.frame_times
        if isinstance(ft, str):
            ft = _parse_frame_times(ft)
        elif ft is not None and not isinstance(ft, Path):
            ft = tuple(float(x) for x in ft)
        object.__setattr__(self, "frame_times", ft)
        if self.label_names is not None:
            object.__setattr__(self, "label_names", MappingProxyType({int(k): str(v)
                                                                      for k, v in dict(self.label_names).items()}))

    def as_record(self) -> dict[str, Any]:
        """JSON-friendly dict of the settings (paths as text)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple)
                           else dict(v) if isinstance(v, Mapping) else v)
        return out


def _parse_frame_times(text: str) -> tuple[float, ...] | Path:
    """Frame times given as text: comma/space-separated seconds, or the name of a text file of them.

    The one parser of frame-time text (``DceFitSettings(frame_times="0,5,...")``, the text of a
    frame-times file, and ``theraquant dce fit --frame-times``, which passes its text through).

    Parameters
    ----------
    text : str
        Seconds separated by commas and/or spaces, or the path of an existing text file.

    Returns
    -------
    tuple of float or Path
        The seconds, or the file's path when ``text`` names an existing file.

    Raises
    ------
    TheraquantError
        ``text`` is neither (``argument="frame_times"``; the command line names ``--frame-times``).
    """
    p = Path(text)
    try:  # a long list of times is not a file name (is_file raises 'File name too long')
        if p.is_file():
            return p
    except (OSError, ValueError):
        pass
    try:
        return tuple(float(v) for v in text.replace(",", " ").split())
    except ValueError:
        raise TheraquantError(f"frame_times must be comma-separated seconds or a text file of them, got {text!r}",
                              argument="frame_times") from None


DCE_MODELS = ("tofts", "etofts", "patlak", "2cxm", "2cum", "dual_input_1c", "dual_input_etofts")
DCE_AIFS = ("parker", "orton", "weinmann", "fritz-hansen", "georgiou", "mcgrath", "roi")
_DCE_MAP_DESCRIPTION = {"success": "1 where the fit converged", "r2": "coefficient of determination",
                        "aic": "Akaike information criterion"}


def _dce_frame_times(image, frame_times: Any, dt: Optional[float], source: Path):
    """Frame times (s) of a 4-D image: ``frame_times``, ``dt``, else the sidecar/header/DICOM times."""
    import numpy as np

    n = image.n_frames
    if frame_times is not None:
        if isinstance(frame_times, Path):
            try:
                text = frame_times.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                raise TheraquantError(f"frame_times {frame_times.name}: not a UTF-8 text file; give the frame times "
                                      "in s, comma- or space-separated", argument="frame_times") from None
            parsed = _parse_frame_times(text)
            if isinstance(parsed, Path):  # pragma: no cover - a file holding a file name
                raise TheraquantError(f"frame_times {frame_times.name}: not a list of numbers", argument="frame_times")
            frame_times = parsed
        t = np.asarray(frame_times, dtype=float)
        origin = "frame_times"
    elif dt is not None:
        if not dt > 0:
            raise TheraquantError(f"dt must be a positive frame interval in s, got {dt!r}", argument="dt")
        t, origin = np.arange(n) * float(dt), "dt"
    elif image.frame_times_s is not None and (n < 2 or np.ptp(image.frame_times_s) > 0):
        t, origin = np.asarray(image.frame_times_s, float), "input"
    else:
        raise TheraquantError(f"{source.name}: no frame times (no FrameTimes_s in a JSON sidecar, no time step "
                              "in the header, no AcquisitionTime); pass frame_times or dt", argument="frame_times")
    arg = origin if origin in ("frame_times", "dt") else "input_path"
    if t.shape != (n,):
        raise TheraquantError(f"{origin} gives {t.size} frame times but {source.name} has {n} frames; "
                              "give one time (s) per frame", argument=arg)
    if not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0):
        raise TheraquantError(f"frame times from {origin} must be finite and strictly increasing (s), got "
                              f"{np.round(t[:6], 3).tolist()}...; fix the timing", argument=arg)
    from ..quantities import check_frame_times

    check_frame_times(t, argument=arg)  # ms or minutes?
    return t, origin


def _dce_read_input(path: Path, series_uid: Optional[str] = None):
    import numpy as np

    from ..io import read_dicom_series, read_nifti

    if not path.exists():
        raise TheraquantError(f"{path}: no such file or directory; give a 4-D NIfTI or a DICOM series folder",
                              argument="input_path")
    if path.is_dir():
        try:
            image = read_dicom_series(path, series_uid=series_uid, dtype=np.float32)  # half the memory
        except TheraquantError as exc:
            if exc.argument is None and "series_uid" in str(exc):
                raise TheraquantError(str(exc), argument="series_uid", fix=exc.fix) from exc
            raise
    else:
        image = read_nifti(path, mmap=True)
    if image.array.ndim != 4 or image.n_frames < 3:
        raise TheraquantError(f"{path.name}: image of shape {image.array.shape} is not a dynamic series; "
                              "dce fit needs a 4-D (z, y, x, t) image with one frame per time point",
                              argument="input_path")
    return image


def _dce_acquisition(image, tr: Optional[float], flip_angle: Optional[float]):
    """TR (s) and flip angle (degrees): the options, else the DICOM headers (RepetitionTime in ms)."""
    headers = image.meta.get("headers") if isinstance(image.meta, dict) else None
    origin = "options"
    if headers and (tr is None or flip_angle is None):
        first = headers[0][0] if isinstance(headers[0], list) else headers[0]
        if tr is None and first.get("RepetitionTime") not in (None, ""):
            tr, origin = float(first.RepetitionTime) / 1000.0, "DICOM headers"
        if flip_angle is None and first.get("FlipAngle") not in (None, ""):
            flip_angle, origin = float(first.FlipAngle), "DICOM headers"
    return tr, flip_angle, origin


def _dce_read_3d(path: Path, image, option: str, *, labels: bool = False):
    from ..io import read_label_image, read_nifti

    # masks and ROIs: NaN, probability maps and non-integer labels are errors, never rounded or thresholded
    other = read_label_image(path, argument=option) if labels else read_nifti(path, mmap=False)
    if other.array.ndim != 3:
        raise TheraquantError(f"{option} {path.name}: shape {other.array.shape} is not a 3-D image", argument=option)
    try:
        image.check_same_grid(other, names=("input_path", option))
    except TheraquantError as exc:
        raise TheraquantError(str(exc), argument=option, fix=exc.fix) from None
    return other


def _dce_roi_curves(array, roi):
    """Curves (n, T) of the voxels in ``roi`` (z, y, x), read slice by slice from a (memory-mapped) array."""
    import numpy as np

    zs = np.flatnonzero(roi.any(axis=(1, 2)))
    if zs.size == 0:
        return np.empty((0, array.shape[-1]))
    return np.concatenate([np.asarray(array[z][roi[z]], dtype=np.float64) for z in zs])


def run_dce_fit(settings: DceFitSettings | Path | str, out_dir: Path | str | None = None, *,
                progress: Optional[Callable[[int, int], None]] = None, **options: Any) -> DceRun:
    """Fit a DCE series voxel by voxel and write the maps, the sidecar and the summary table.

    The composition behind ``theraquant dce fit`` (and the demo): read the 4-D NIfTI or DICOM
    series, check every option before any work, build the input functions (population, ROI
    or file; modelled or measured portal input), convert signal to concentration chunk by chunk
    when asked, fit with :func:`theraquant.dce.fit_volume`, then write one float32 NIfTI map per
    parameter (with sidecars), ``dce_fit.json`` (every setting, constants, units, input
    checksums, input functions, counts) and ``summary.csv`` (per mask label).

    Errors are :class:`TheraquantError` whose ``argument`` is the settings field at fault (the
    CLI names the matching ``--flag``).

    Parameters
    ----------
    settings : DceFitSettings
        Every setting, in library types. (``run_dce_fit(input_path, out_dir, **options)``
        builds one from keywords.)
    progress : callable, optional
        ``progress(done, total)`` in voxels, called after each chunk.

    Returns
    -------
    DceRun
        ``fit`` (:class:`~theraquant.dce.VolumeFit`), ``summary`` (DataFrame) and ``written`` (every
        file written: maps, their JSON sidecars, ``dce_fit.json``, ``summary.csv``, ``manifest.json``).
    """
    if not isinstance(settings, DceFitSettings):
        if out_dir is None:
            raise TheraquantError("run_dce_fit needs a DceFitSettings, or input_path and out_dir",
                                  argument="out_dir")
        settings = DceFitSettings(input_path=Path(settings), out_dir=Path(out_dir), **options)
    elif out_dir is not None or options:
        raise TheraquantError("give either a DceFitSettings or input_path, out_dir and options, not both",
                              argument="settings")
    cfg = settings
    input_path, out_dir, mask, t1, t10, t10_blood = (cfg.input_path, cfg.out_dir, cfg.mask, cfg.t1, cfg.t10,
                                                     cfg.t10_blood)
    aif, aif_roi, aif_delay, portal, hct, model = cfg.aif, cfg.aif_roi, cfg.aif_delay, cfg.portal, cfg.hct, cfg.model
    input_kind, r1, tr, flip_angle, n_baseline = cfg.input_kind, cfg.r1, cfg.tr, cfg.flip_angle, cfg.n_baseline
    frame_times, dt, method = cfg.frame_times, cfg.dt, cfg.method
    chunk_voxels, compress = cfg.chunk_voxels, cfg.compress
    overwrite, label_names, series_uid = cfg.overwrite, cfg.label_names, cfg.series_uid
    import os
    import time
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from .. import dce
    from ..dce import MODELS
    from ..image import Image
    from ..io import write_nifti
    from ..provenance import provenance, write_json

    t_start = time.perf_counter()
    # ---- options, checked before any work
    if model not in MODELS:
        raise TheraquantError(f"model must be one of {', '.join(DCE_MODELS)}, got {model!r}", argument="model")
    spec = MODELS[model]
    aif_file = None
    if isinstance(aif, Path):
        if not aif.is_file():
            raise TheraquantError(f"aif must be one of {', '.join(DCE_AIFS)} or a text file of plasma "
                                  f"concentrations (mM, one per frame), got {str(aif)!r}", argument="aif")
        aif_file, aif_key = aif, "file"
    else:
        aif_key = str(aif).lower().replace("_", "-")
    if aif_key == "roi" and aif_roi is None:
        raise TheraquantError("aif='roi' needs aif_roi (a label of mask, or a mask NIfTI of the artery)",
                              argument="aif_roi")
    if input_kind not in ("concentration", "signal"):
        raise TheraquantError(f"input_kind must be 'concentration' or 'signal', got {input_kind!r}",
                              argument="input_kind")
    if not 0.0 <= hct < 1.0:
        raise TheraquantError(f"hct must be a fraction in [0, 1), got {hct!r}", argument="hct")
    if t10 is not None and not 0.0 < t10 < 100.0:
        raise TheraquantError(f"t10 must be a positive T1 in s (e.g. 1.4), got {t10!r}", argument="t10")
    if t10_blood is not None and not 0.0 < t10_blood < 100.0:
        raise TheraquantError(f"t10_blood must be a positive T1 in s (e.g. 1.44 at 1.5 T), got {t10_blood!r}",
                              argument="t10_blood")
    roi_inputs = aif_key == "roi" or (spec.n_inputs == 2 and portal != "model")
    if input_kind == "signal" and roi_inputs and t1 is None and t10_blood is None:
        raise TheraquantError("input_kind='signal' with vessel ROI inputs needs the blood T10: pass t10_blood "
                              "(s; about 1.44 at 1.5 T, 1.66 at 3 T) or a t1 map that covers the vessels; "
                              "t10 is the tissue's", argument="t10_blood")
    fit_delay = cfg.delay
    inputs = [input_path, mask, t1, aif_file] + [s for s in (aif_roi, portal) if isinstance(s, Path)]
    check_out_dir(out_dir, overwrite, inputs=inputs)  # before any work; the folder is made after the fit

    image = _dce_read_input(input_path, series_uid)
    acq_from = None
    if input_kind == "signal":
        tr, flip_angle, acq_from = _dce_acquisition(image, tr, flip_angle)
        missing = [o for o, v in (("tr", tr), ("flip_angle", flip_angle)) if v is None]
        if t1 is None and t10 is None:
            missing.append("t1 or t10")
        if missing:
            raise TheraquantError(f"input_kind='signal' needs {', '.join(missing)} to convert signal to "
                                  "concentration (TR and T10 in s, flip angle in degrees)",
                                  argument=missing[0].split()[0])
        from ..quantities import check_quantity

        check_quantity("repetition_time_s", tr, argument="tr")  # TR in ms?
        check_quantity("flip_angle_deg", flip_angle, argument="flip_angle")  # in radians?
    t, t_origin = _dce_frame_times(image, frame_times, dt, input_path)
    labels = None
    if mask is not None:
        lab_img = _dce_read_3d(mask, image, "mask", labels=True)
        labels = np.asarray(lab_img.array, dtype=np.int32)
        if label_names is None:
            side = lab_img.meta.get("sidecar", {}) if isinstance(lab_img.meta, dict) else {}
            names = side.get("LabelNames") or {}
            label_names = {int(k): str(v) for k, v in names.items()}
    t10_map = None
    if t1 is not None:
        t10_map = np.asarray(_dce_read_3d(t1, image, "t1").array, dtype=np.float64)

    # ---- signal to concentration, one chunk at a time
    def to_conc(curves, index, *, blood=False):
        if blood and t10_blood is not None:
            t10_v = float(t10_blood)  # vessel ROIs hold blood: its own T10, not the tissue's
        else:
            t10_v = t10_map.reshape(-1)[index] if t10_map is not None else float(t10)
        return dce.signal_to_concentration(curves, t10=t10_v, r1=r1, tr=tr, flip_angle=flip_angle,
                                           n_baseline=n_baseline, return_info=True).conc

    def roi_mask(spec: int | Path, what: str):
        if isinstance(spec, int):
            if labels is None:
                raise TheraquantError(f"{what}={spec} is a label value but no mask was given; pass "
                                      "mask with the label image, or a mask NIfTI file", argument=what)
            roi = labels == spec
            if not roi.any():
                raise TheraquantError(f"{what}={spec}: no voxel of mask has that label; labels present: "
                                      f"{sorted(int(v) for v in np.unique(labels) if v)}", argument=what)
            return roi, spec
        roi = np.asarray(_dce_read_3d(Path(spec), image, what, labels=True).array) != 0
        if not roi.any():
            raise TheraquantError(f"{what} {spec} selects no voxel", argument=what)
        return roi, None

    def roi_input(spec: int | Path, what: str):
        roi, label = roi_mask(spec, what)
        curves = _dce_roi_curves(image.array, roi)
        if input_kind == "signal":
            idx = np.flatnonzero(roi.reshape(-1))
            curves = to_conc(curves, idx, blood=True)
        return dce.aif.measured(t, curves, hct=hct), label, int(roi.sum())

    # ---- input functions (plasma, mM)
    roi_labels: list[int] = []
    aif_info: dict = {"aif": aif_key, "hct": hct}
    if aif_key == "roi":
        cp, lab_v, n_roi = roi_input(aif_roi, "aif_roi")
        aif_info.update({"aif_roi": aif_roi if isinstance(aif_roi, int) else str(aif_roi), "aif_roi_voxels": n_roi})
        roi_labels += [lab_v] if lab_v is not None else []
    elif aif_file is not None:
        try:
            cp = np.asarray([float(v) for v in aif_file.read_text().replace(",", " ").split()])
        except ValueError:
            raise TheraquantError(f"aif {aif_file.name}: not a list of numbers; give the plasma AIF in mM, "
                                  "one value per frame, separated by commas, spaces or newlines",
                                  argument="aif") from None
        aif_info.update({"aif": str(aif_file), "aif_units": "mM plasma, as given"})
    else:
        cp = dce.aif.population(aif_key, t, delay=aif_delay, hct=hct)
        aif_info["aif_delay_s"] = aif_delay
    cp_portal = None
    if spec.n_inputs == 2:
        if portal == "model":
            cp_portal = dce.aif.portal_venous(t, cp)
            aif_info["portal"] = "modelled from the AIF with the gut impulse response (aif.portal_venous)"
        else:
            cp_portal, lab_v, n_roi = roi_input(portal, "portal")
            aif_info.update({"portal": portal if isinstance(portal, int) else str(portal), "portal_voxels": n_roi})
            roi_labels += [lab_v] if lab_v is not None else []
    for name, curve in (("AIF", cp), ("portal-venous input", cp_portal)):
        if curve is not None and np.shape(curve) != t.shape:
            raise TheraquantError(f"the {name} has {np.size(curve)} samples but there are {t.size} frame times; "
                                  "give the input function at the frame times (cp has the wrong length)")
        if curve is not None and not np.all(np.isfinite(curve)):
            raise TheraquantError(f"the {name} holds NaN or infinite values; check its ROI or file")
    fit_mask = None
    if labels is not None:
        fit_mask = (labels != 0) & ~np.isin(labels, roi_labels)  # vessels are inputs, not tissue
        if not fit_mask.any():
            raise TheraquantError(f"mask {mask.name} holds no tissue voxel (only background"
                                  f"{' and the input ROIs' if roi_labels else ''})", argument="mask")


    # ---- the fit, chunk by chunk (progress in voxels)
    res = dce.fit_volume(
        t, image.array, model, cp=cp, cp_portal=cp_portal, mask=fit_mask, method=method,
        chunk_voxels=chunk_voxels, transform=to_conc if input_kind == "signal" else None,
        progress=progress, delay=fit_delay)
    t_fit = time.perf_counter() - t_start
    prepare_out_dir(out_dir, overwrite, inputs=inputs)  # every check passed: now the folder (stale outputs go)

    # ---- outputs
    settings = {
        "input": str(input_path), "input_kind": input_kind, "mask": str(mask) if mask else None,
        "model": model, "method": method, "delay": fit_delay, **aif_info,
        "t1_map": str(t1) if t1 else None, "t10_s": t10, "t10_blood_s": t10_blood,
        "r1_per_mM_per_s": r1 if input_kind == "signal" else None,
        "tr_s": tr, "flip_angle_deg": flip_angle, "acquisition_from": acq_from,
        "n_baseline": n_baseline if input_kind == "signal" else None,
        "frame_times_from": t_origin, "chunk_voxels": chunk_voxels, "compress": compress,
        "series_uid": series_uid,
        "fit": dict(res.settings),
    }
    units = {k: res.units.get(k) or "" for k in res}
    ext = ".nii.gz" if compress else ".nii"

    def write_map(name: str) -> Path:
        sidecar = {"Parameter": name, "Units": units[name], "Model": model, "ModelCAPLEX": spec.caplex,
                   "Description": _DCE_MAP_DESCRIPTION.get(name, f"{name} of the {model} model")}
        return write_nifti(Image(res[name], image.affine), out_dir / f"{name}{ext}", sidecar=sidecar,
                           dtype=np.uint8 if name == "success" else np.float32)

    # a fixed delay is a setting, not a map; gzip releases the GIL, so maps compress in parallel
    names_out = [k for k in res if not (k == "delay" and fit_delay != "fit")]
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        written = list(pool.map(write_map, names_out))
    t_write = time.perf_counter() - t_start - t_fit
    summary_labels = labels if labels is not None else np.ones(image.shape, dtype=np.int32)
    names = dict(label_names or {})
    if labels is None:
        names.setdefault(1, "all voxels")
    elif roi_labels:
        summary_labels = np.where(np.isin(labels, roi_labels), 0, labels)
    summarised = [k for k in names_out if k not in ("success", "aic") and not k.endswith("_se")]
    summary = dce.summarize_maps(res, summary_labels, parameters=summarised, label_names=names)
    summary.insert(3, "units", [units.get(p, "") for p in summary["parameter"]])
    summary_csv = out_dir / "summary.csv"
    from ..io import write_table

    write_table(summary, summary_csv, float_format="%.6g")  # atomic
    from ..results import describe_call

    record = provenance(
        command="theraquant.pipeline.run_dce_fit(" + describe_call("DceFitSettings", {
            f.name: getattr(cfg, f.name) for f in fields(cfg) if getattr(cfg, f.name) != f.default}) + ")",
        settings=settings, constants={"hct": hct, **({"r1_per_mM_per_s": r1} if input_kind == "signal" else {})},
        units=units, inputs=[p for p in (input_path, mask, t1) if p is not None],
        Model=model, ModelCAPLEX=spec.caplex, ModelReference=spec.reference,
        FrameTimes_s=t, InputFunction_mM={"plasma_arterial": cp, **({"plasma_portal": cp_portal}
                                                                    if cp_portal is not None else {})},
        Counts={"voxels": res.n_voxels, "fitted": res.n_fitted, "failed": res.n_failed,
                "nonfinite": res.n_nonfinite, "constant": res.n_constant},
        Maps=[p.name for p in written], Summary=summary_csv.name, FitSeconds=round(t_fit, 3),
        WriteSeconds=round(t_write, 3))
    written.append(write_json(record, out_dir / "dce_fit.json"))
    written.append(summary_csv)
    from ..io import sidecar_path

    # every file written, counted once: maps, their sidecars, dce_fit.json, summary.csv, manifest.json
    sidecars = [sidecar_path(p) for p in written if p.name.endswith((".nii", ".nii.gz"))]
    written += [p for p in sidecars if p.exists()]
    written.append(write_manifest(out_dir, written, kind="dce fit", settings=settings))
    return DceRun(res, summary, tuple(written))
