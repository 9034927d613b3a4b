"""Per-series DCE-MRI run: files in, parametric maps, sidecar and summary table out.

This is composition (io + dce + provenance); the CLI only parses options and shows progress.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from ..errors import TheraquantError
from ._outputs import check_out_dir, prepare_out_dir, write_manifest

__all__ = ["DceRun", "run_dce_fit", "DCE_MODELS", "DCE_AIFS"]


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


DCE_MODELS = ("tofts", "etofts", "patlak", "2cxm", "2cum", "dual_input_1c", "dual_input_etofts")
DCE_AIFS = ("parker", "orton", "weinmann", "fritz-hansen", "georgiou", "mcgrath", "roi")
_DCE_MAP_DESCRIPTION = {"success": "1 where the fit converged", "r2": "coefficient of determination",
                        "aic": "Akaike information criterion"}


def _dce_parse_delay(delay: str) -> float | str:
    if delay.strip().lower() == "fit":
        return "fit"
    try:
        value = float(delay)
    except ValueError:
        raise TheraquantError(f"--delay must be a number of seconds or 'fit', got {delay!r}") from None
    return value


def _dce_frame_times(image, frame_times: Optional[str], dt: Optional[float], source: Path):
    """Frame times (s) of a 4-D image: --frame-times, --dt, else the sidecar/header/DICOM times."""
    import numpy as np

    n = image.n_frames
    if frame_times is not None:
        p = Path(frame_times)
        try:  # a long list of times is not a file name (is_file raises 'File name too long')
            is_file = p.is_file()
        except (OSError, ValueError):
            is_file = False
        try:
            text = p.read_text(encoding="utf-8") if is_file else frame_times
        except UnicodeDecodeError:
            raise TheraquantError(f"--frame-times {p.name}: not a UTF-8 text file; give the frame times in s, "
                                  "comma- or space-separated") from None
        try:
            t = np.asarray([float(v) for v in text.replace(",", " ").split()], dtype=float)
        except ValueError:
            raise TheraquantError(f"--frame-times must be comma-separated seconds or a text file of them, "
                                  f"got {frame_times!r}") from None
        origin = "--frame-times"
    elif dt is not None:
        if not dt > 0:
            raise TheraquantError(f"--dt must be a positive frame interval in s, got {dt!r}")
        t, origin = np.arange(n) * float(dt), "--dt"
    elif image.frame_times_s is not None and (n < 2 or np.ptp(image.frame_times_s) > 0):
        t, origin = np.asarray(image.frame_times_s, float), "input"
    else:
        raise TheraquantError(f"{source.name}: no frame times (no FrameTimes_s in a JSON sidecar, no time step "
                              "in the header, no AcquisitionTime); pass --frame-times or --dt")
    if t.shape != (n,):
        raise TheraquantError(f"{origin} gives {t.size} frame times but {source.name} has {n} frames; "
                              "give one time (s) per frame")
    if not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0):
        raise TheraquantError(f"frame times from {origin} must be finite and strictly increasing (s), got "
                              f"{np.round(t[:6], 3).tolist()}...; fix the timing")
    from ..quantities import check_frame_times

    check_frame_times(t, argument=origin if origin.startswith("--") else source.name)  # ms or minutes?
    return t, origin


def _dce_read_input(path: Path, series_uid: Optional[str] = None):
    import numpy as np

    from ..io import read_dicom_series, read_nifti

    if not path.exists():
        raise TheraquantError(f"{path}: no such file or directory; give a 4-D NIfTI or a DICOM series folder")
    if path.is_dir():
        try:
            image = read_dicom_series(path, series_uid=series_uid, dtype=np.float32)  # half the memory
        except TheraquantError as exc:
            raise TheraquantError(str(exc).replace("pass series_uid= to choose one", "pass --series-uid to "
                                                   "choose one")) from exc
    else:
        image = read_nifti(path, mmap=True)
    if image.array.ndim != 4 or image.n_frames < 3:
        raise TheraquantError(f"{path.name}: image of shape {image.array.shape} is not a dynamic series; "
                              "dce fit needs a 4-D (z, y, x, t) image with one frame per time point")
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


def _dce_read_3d(path: Path, image, option: str):
    from ..io import read_nifti

    other = read_nifti(path, mmap=False)
    if other.array.ndim != 3:
        raise TheraquantError(f"{option} {path.name}: shape {other.array.shape} is not a 3-D image")
    image.check_same_grid(other, names=("INPUT", option))
    return other


def _dce_roi_curves(array, roi):
    """Curves (n, T) of the voxels in ``roi`` (z, y, x), read slice by slice from a (memory-mapped) array."""
    import numpy as np

    zs = np.flatnonzero(roi.any(axis=(1, 2)))
    if zs.size == 0:
        return np.empty((0, array.shape[-1]))
    return np.concatenate([np.asarray(array[z][roi[z]], dtype=np.float64) for z in zs])


def run_dce_fit(input_path: Path, out_dir: Path, *, mask: Optional[Path] = None, t1: Optional[Path] = None,
                 t10: Optional[float] = None, t10_blood: Optional[float] = None, aif: str = "parker",
                 aif_roi: Optional[str] = None, aif_delay: float = 0.0, portal: str = "model", hct: float = 0.42, model: str = "etofts",
                 input_kind: str = "concentration", r1: float = 4.5, tr: Optional[float] = None,
                 flip_angle: Optional[float] = None, n_baseline: int = 5, delay: str = "0",
                 frame_times: Optional[str] = None, dt: Optional[float] = None, method: str = "nlls",
                 chunk_voxels: int = 65536, compress: bool = True, overwrite: bool = False, label_names=None,
                 series_uid: Optional[str] = None,
                 progress: Optional[Callable[[int, int], None]] = None) -> DceRun:
    """Fit a DCE series voxel by voxel and write the maps, the sidecar and the summary table.

    The composition behind ``theraquant dce fit`` (and the demo): read the 4-D NIfTI or DICOM
    series, check every option before any work, build the input functions (population, ROI
    or file; modelled or measured portal input), convert signal to concentration chunk by chunk
    when asked, fit with :func:`theraquant.dce.fit_volume`, then write one float32 NIfTI map per
    parameter (with sidecars), ``dce_fit.json`` (every setting, constants, units, input
    checksums, input functions, counts) and ``summary.csv`` (per mask label).

    Option names in error messages are those of ``theraquant dce fit`` (``--mask``...).

    Parameters
    ----------
    input_path : Path
        4-D NIfTI (frame times from its JSON sidecar) or DICOM DCE series folder.
    out_dir : Path
        Output folder; refused when not empty unless ``overwrite``.
    progress : callable, optional
        ``progress(done, total)`` in voxels, called after each chunk.

    Returns
    -------
    DceRun
        ``fit`` (:class:`~theraquant.dce.VolumeFit`), ``summary`` (DataFrame) and ``written`` (paths).
    """
    import os
    import time
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from .. import dce
    from ..dce._models import MODELS, UNITS
    from ..image import Image
    from ..io import write_nifti
    from ..provenance import provenance, write_json

    t_start = time.perf_counter()
    # ---- options, checked before any work
    if model not in MODELS:
        raise TheraquantError(f"--model must be one of {', '.join(DCE_MODELS)}, got {model!r}")
    spec = MODELS[model]
    aif_key = aif.lower().replace("_", "-")
    aif_file = None
    if aif_key not in DCE_AIFS:
        if not Path(aif).is_file():
            raise TheraquantError(f"--aif must be one of {', '.join(DCE_AIFS)} or a text file of plasma "
                                  f"concentrations (mM, one per frame), got {aif!r}")
        aif_file, aif_key = Path(aif), "file"
    if aif_key == "roi" and aif_roi is None:
        raise TheraquantError("--aif roi needs --aif-roi (a label of --mask, or a mask NIfTI of the artery)")
    if input_kind not in ("concentration", "signal"):
        raise TheraquantError(f"--input must be 'concentration' or 'signal', got {input_kind!r}")
    if not 0.0 <= hct < 1.0:
        raise TheraquantError(f"--hct must be a fraction in [0, 1), got {hct!r}")
    if t10 is not None and not 0.0 < t10 < 100.0:
        raise TheraquantError(f"--t10 must be a positive T1 in s (e.g. 1.4), got {t10!r}")
    if t10_blood is not None and not 0.0 < t10_blood < 100.0:
        raise TheraquantError(f"--t10-blood must be a positive T1 in s (e.g. 1.44 at 1.5 T), got {t10_blood!r}")
    roi_inputs = aif_key == "roi" or (spec.n_inputs == 2 and portal != "model")
    if input_kind == "signal" and roi_inputs and t1 is None and t10_blood is None:
        raise TheraquantError("--input signal with vessel ROI inputs needs the blood T10: pass --t10-blood "
                              "(s; about 1.44 at 1.5 T, 1.66 at 3 T) or a --t1 map that covers the vessels; "
                              "--t10 is the tissue's")
    fit_delay = _dce_parse_delay(delay)
    inputs = [input_path, mask, t1, aif_file] + [Path(s) for s in (aif_roi, portal) if s and Path(s).suffix]
    check_out_dir(out_dir, overwrite, inputs=inputs)  # before any work; the folder is made after the fit

    image = _dce_read_input(input_path, series_uid)
    acq_from = None
    if input_kind == "signal":
        tr, flip_angle, acq_from = _dce_acquisition(image, tr, flip_angle)
        missing = [o for o, v in (("--tr", tr), ("--flip-angle", flip_angle)) if v is None]
        if t1 is None and t10 is None:
            missing.append("--t1 or --t10")
        if missing:
            raise TheraquantError(f"--input signal needs {', '.join(missing)} to convert signal to "
                                  "concentration (TR and T10 in s, flip angle in degrees)")
        from ..quantities import check_quantity

        check_quantity("repetition_time_s", tr, argument="--tr")  # TR in ms?
        check_quantity("flip_angle_deg", flip_angle, argument="--flip-angle")  # in radians?
    t, t_origin = _dce_frame_times(image, frame_times, dt, input_path)
    labels = None
    if mask is not None:
        lab_img = _dce_read_3d(mask, image, "--mask")
        lab = np.asarray(lab_img.array)
        if lab.dtype == bool:
            lab = lab.astype(np.int16)
        if not np.all(np.isfinite(lab)):
            raise TheraquantError(f"--mask {mask.name} holds NaN values; give a label image of integers")
        labels = np.rint(lab).astype(np.int32)
        if label_names is None:
            side = lab_img.meta.get("sidecar", {}) if isinstance(lab_img.meta, dict) else {}
            names = side.get("LabelNames") or {}
            label_names = {int(k): str(v) for k, v in names.items()}
    t10_map = None
    if t1 is not None:
        t10_map = np.asarray(_dce_read_3d(t1, image, "--t1").array, dtype=np.float64)

    # ---- signal to concentration, one chunk at a time
    def to_conc(curves, index, *, blood=False):
        if blood and t10_blood is not None:
            t10_v = float(t10_blood)  # vessel ROIs hold blood: its own T10, not the tissue's
        else:
            t10_v = t10_map.reshape(-1)[index] if t10_map is not None else float(t10)
        return dce.signal_to_concentration(curves, t10=t10_v, r1=r1, tr=tr, flip_angle=flip_angle,
                                           n_baseline=n_baseline, return_info=True).conc

    def roi_mask(spec_str: str, what: str):
        if spec_str.lstrip("-").isdigit():
            if labels is None:
                raise TheraquantError(f"{what} {spec_str} is a label value but no --mask was given; pass "
                                      "--mask with the label image, or a mask NIfTI file")
            roi = labels == int(spec_str)
            if not roi.any():
                raise TheraquantError(f"{what} {spec_str}: no voxel of --mask has that label; labels present: "
                                      f"{sorted(int(v) for v in np.unique(labels) if v)}")
            return roi, int(spec_str)
        roi = np.asarray(_dce_read_3d(Path(spec_str), image, what).array) != 0
        if not roi.any():
            raise TheraquantError(f"{what} {spec_str} selects no voxel")
        return roi, None

    def roi_input(spec_str: str, what: str):
        roi, label = roi_mask(spec_str, what)
        curves = _dce_roi_curves(image.array, roi)
        if input_kind == "signal":
            idx = np.flatnonzero(roi.reshape(-1))
            curves = to_conc(curves, idx, blood=True)
        return dce.aif.measured(t, curves, hct=hct), label, int(roi.sum())

    # ---- input functions (plasma, mM)
    roi_labels: list[int] = []
    aif_info: dict = {"aif": aif_key, "hct": hct}
    if aif_key == "roi":
        cp, lab_v, n_roi = roi_input(aif_roi, "--aif-roi")
        aif_info.update({"aif_roi": aif_roi, "aif_roi_voxels": n_roi})
        roi_labels += [lab_v] if lab_v is not None else []
    elif aif_file is not None:
        try:
            cp = np.asarray([float(v) for v in aif_file.read_text().replace(",", " ").split()])
        except ValueError:
            raise TheraquantError(f"--aif {aif_file.name}: not a list of numbers; give the plasma AIF in mM, "
                                  "one value per frame, separated by commas, spaces or newlines") from None
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
            cp_portal, lab_v, n_roi = roi_input(portal, "--portal")
            aif_info.update({"portal": portal, "portal_voxels": n_roi})
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
            raise TheraquantError(f"--mask {mask.name} holds no tissue voxel (only background"
                                  f"{' and the input ROIs' if roi_labels else ''})")


    # ---- the fit, chunk by chunk (progress in voxels)
    res = dce.fit_volume(
        image.array, t, model, cp=cp, cp_portal=cp_portal, mask=fit_mask, method=method,
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
    units = {k: res.units.get(k) or UNITS.get(k, "") for k in res}
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
    summary.to_csv(summary_csv, index=False, float_format="%.6g")
    record = provenance(
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

    write_manifest(out_dir, [*written, *(sidecar_path(p) for p in written if p.name.endswith((".nii", ".nii.gz")))],
                   kind="dce fit", settings=settings)
    return DceRun(res, summary, tuple(written))
