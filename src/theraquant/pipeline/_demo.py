"""The demos.

:func:`run_demo` (``theraquant demo``): the two digital-phantom studies written as real DICOM (TARE
and PRRT), each run through the whole study pipeline, every recovered biomarker compared with its
ground truth (``vs_truth.csv``, ``validation.json``). :func:`run_dce_demo` (``theraquant dce demo``):
the single liver DCE phantom through the same path as ``theraquant dce fit``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
import shutil
from typing import Any, Callable, Mapping, Optional

import numpy as np

from ..errors import TheraquantError
from ._dce import run_dce_fit
from ._outputs import prepare_out_dir

__all__ = ["DemoRun", "run_demo", "DceDemoRun", "run_dce_demo", "DEMO_MODELS", "vs_truth_table",
           "validation_summary"]

DEMO_MODELS = ("dual_input_etofts", "etofts", "tofts", "patlak")


@dataclass(frozen=True)
class DceDemoRun:
    """What :func:`run_dce_demo` wrote.

    Attributes
    ----------
    vs_truth : pandas.DataFrame
        Per label and parameter: truth median, fitted median, relative error, IQR, failed fraction.
    out_dir, input_dir, truth_dir, maps_dir : Path
        Folders written.
    maps : tuple of Path
        The parametric maps.
    vs_truth_csv, figure : Path
        ``summary_vs_truth.csv`` and ``demo.png``.
    """

    vs_truth: Any
    out_dir: Path
    input_dir: Path
    truth_dir: Path
    maps_dir: Path
    maps: tuple[Path, ...]
    vs_truth_csv: Path
    figure: Path


def run_dce_demo(out_dir: str | Path, *, model: str = "dual_input_etofts", noise_sd: float = 0.02,
                 seed: int = 2026, overwrite: bool = False,
                 progress: Optional[Callable[[int, int], None]] = None) -> DceDemoRun:
    """Generate the liver phantom, fit it as ``theraquant dce fit`` would, compare with the truth.

    The phantom (:func:`theraquant.phantom.liver_dce_phantom`, noise SD ``noise_sd`` mM) is
    written as a 4-D NIfTI with its label image; the arterial and portal-venous inputs are
    measured on the aorta and portal-vein labels; ``model`` is fitted voxel by voxel; maps,
    ``dce_fit.json``, ``summary.csv``, ``summary_vs_truth.csv`` and a PNG figure are written.

    Parameters
    ----------
    out_dir : str or Path
        Output folder (refused when not empty unless ``overwrite``).
    model : {"dual_input_etofts", "etofts", "tofts", "patlak"}
        Model fitted (the phantom's truth is Ktrans, ve, vp and fa).
    noise_sd : float
        Gaussian noise added to the phantom's concentrations, mM.
    seed : int
        Seed of the noise.
    progress : callable, optional
        ``progress(done, total)`` in voxels.
    """
    from ..dce import MODELS, summarize_maps
    from ..image import Image
    from ..io import write_nifti
    from ..phantom import LIVER_LABELS, liver_dce_phantom
    from ..report import dce_phantom_figure

    if model not in DEMO_MODELS:
        raise TheraquantError(f"--model must be one of {', '.join(DEMO_MODELS)} for the demo (the phantom's "
                              f"truth is Ktrans, ve, vp, fa), got {model!r}")
    out_dir = prepare_out_dir(out_dir, overwrite)
    ph = liver_dce_phantom(noise_sd=noise_sd, rng=seed)
    inp = out_dir / "input"
    dce_path = write_nifti(ph.image, inp / "dce.nii.gz",
                           sidecar={"Description": "synthetic liver DCE phantom (concentration)", **ph.settings})
    lab_path = write_nifti(ph.labels, inp / "labels.nii.gz", dtype=np.int16,
                           sidecar={"LabelNames": dict(LIVER_LABELS)})
    truth_dir = out_dir / "truth"
    for name, arr in ph.truth.items():
        write_nifti(Image(arr, ph.image.affine), truth_dir / f"{name}.nii.gz",
                    sidecar={"Parameter": name, "Description": "ground truth of the phantom"})
    # the same code path as `theraquant dce fit`: ROI input functions from the aorta and portal vein labels
    maps_dir = out_dir / "maps"
    run = run_dce_fit(dce_path, maps_dir, mask=lab_path, aif="roi", aif_roi="5", portal="6",
                      hct=ph.settings["hct"], model=model, overwrite=True, label_names=dict(LIVER_LABELS),
                      progress=progress)
    res = run.fit
    truth_tab = summarize_maps({p: ph.truth[p] for p in ph.truth if p in res},
                               np.where(np.isin(ph.labels.array, [5, 6]), 0, ph.labels.array),
                               label_names=dict(LIVER_LABELS))
    both = run.summary.merge(truth_tab[["label", "parameter", "median"]].rename(columns={"median": "truth_median"}),
                             on=["label", "parameter"], how="inner")
    both["median_rel_error"] = both["median"] / both["truth_median"] - 1.0
    cols = ["label", "name", "parameter", "units", "n_voxels", "truth_median", "median", "median_rel_error",
            "iqr", "p10", "p90", "failed_fraction"]
    both = both[cols]
    vs_truth = out_dir / "summary_vs_truth.csv"
    from ..io import write_table

    write_table(both, vs_truth, float_format="%.6g")  # atomic
    slice_z = int(np.argmax(np.isin(ph.labels.array, [2, 3, 4]).sum(axis=(1, 2))))
    png = dce_phantom_figure(out_dir / "demo.png", ph, res, model, slice_z, params=MODELS[model].free,
                             curves=_example_curves(ph, res, model))
    maps = tuple(p for p in run.written if p.name.endswith((".nii.gz", ".nii")))
    return DceDemoRun(both, out_dir, inp, truth_dir, maps_dir, maps, vs_truth, png)


def _example_curves(ph, res, model: str) -> list[tuple[str, Any, Any]]:
    """One voxel per tissue label (the middle one that fitted): its data and the fitted model's curve."""
    from ..dce import MODELS, simulate

    labels = ph.labels.array
    curves = []
    for value in (1, 2, 3, 4):
        idx = np.argwhere((labels == value) & np.asarray(res["success"]))
        if idx.size == 0:
            continue
        z, y, x = idx[len(idx) // 2]
        fitted = {p: np.asarray([res[p][z, y, x]], dtype=float) for p in MODELS[model].free}
        fit_curve = simulate(ph.t, model, fitted, cp=ph.cp, cp_portal=ph.cp_portal)[0]
        curves.append((ph.label_names[value], np.asarray(ph.image.array[z, y, x], dtype=float), fit_curve))
    return curves


# ---------------------------------------------------------------------------------------------- study demo


@dataclass(frozen=True)
class DemoRun:
    """What :func:`run_demo` wrote.

    Attributes
    ----------
    out_dir : Path
        The demo folder (``tare/`` and ``prrt/`` inside, each with ``study/`` and ``results/``).
    runs : Mapping[str, StudyRun]
        The study run of each design (``"tare"``, ``"prrt"``).
    vs_truth : Mapping[str, pandas.DataFrame]
        Per design: patient, lesion, biomarker, unit, true, recovered, error, rel_error_pct.
    validation : Mapping[str, dict]
        Per design and biomarker: n, bias, bias_pct, loa_low, loa_high, unit (and agreement for
        categories).
    elapsed_s : float
        Wall time, s.
    """

    out_dir: Path
    runs: Mapping[str, Any]
    vs_truth: Mapping[str, Any]
    validation: Mapping[str, dict]
    elapsed_s: float

    @property
    def tare(self) -> Any:
        """The TARE study run."""
        return self.runs.get("tare")

    @property
    def prrt(self) -> Any:
        """The PRRT study run."""
        return self.runs.get("prrt")


def _number(v: Any) -> float:
    if isinstance(v, (bool, np.bool_)):
        return float(v)
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def vs_truth_table(truth: Any, lesions: Any, patients: Any, pseudonyms: Mapping[str, str]) -> Any:
    """Ground truth beside the recovered values, one row per (patient, lesion, biomarker).

    Parameters
    ----------
    truth : pandas.DataFrame
        ``patient_id, lesion, biomarker, unit, value`` (the phantom's truth; an empty lesion means a
        patient-level quantity, compared with ``patients.csv``).
    lesions, patients : pandas.DataFrame
        ``lesions.csv`` and ``patients.csv`` of the run.
    pseudonyms : Mapping[str, str]
        PatientID -> the name the run used (pseudonym).

    Returns
    -------
    pandas.DataFrame
        ``patient, lesion, biomarker, unit, true, recovered, error, rel_error_pct``; ``error`` is
        recovered - true (in ``unit``), ``rel_error_pct`` 100 error / |true| (NaN when true is 0 or a
        category). Categories (``response``) keep their text in true/recovered, error 0 (agree) or 1.

    Examples
    --------
    >>> import pandas as pd
    >>> truth = pd.DataFrame({"patient_id": ["A"], "lesion": [1], "biomarker": ["ktrans"], "unit": ["1/min"],
    ...                       "value": [0.2]})
    >>> les = pd.DataFrame({"patient": ["P001"], "lesion": ["1"], "ktrans": [0.21]})
    >>> vs_truth_table(truth, les, pd.DataFrame(), {"A": "P001"})[["true", "recovered", "rel_error_pct"]].round(3)
       true  recovered  rel_error_pct
    0   0.2       0.21            5.0
    """
    import pandas as pd

    les = lesions.copy()
    les["lesion"] = les["lesion"].astype(str)
    les = les.set_index(["patient", "lesion"])
    pats = patients.set_index("patient") if "patient" in getattr(patients, "columns", ()) else None
    rows = []
    for r in truth.itertuples(index=False):
        pname = pseudonyms.get(str(r.patient_id), str(r.patient_id))
        lid = "" if r.lesion is None or (isinstance(r.lesion, float) and np.isnan(r.lesion)) else str(r.lesion)
        if isinstance(r.lesion, (float, np.floating)) and float(r.lesion).is_integer():
            lid = str(int(r.lesion))
        rec: Any = np.nan
        if lid and r.biomarker in les.columns and (pname, lid) in les.index:
            rec = les.loc[(pname, lid), r.biomarker]
        elif not lid and pats is not None and r.biomarker in pats.columns and pname in pats.index:
            rec = pats.loc[pname, r.biomarker]
        if isinstance(rec, pd.Series):
            rec = rec.iloc[0]
        true = r.value
        tn, rn = _number(true), _number(rec)
        if isinstance(true, str) and np.isnan(tn):  # a category
            err = np.nan if rec is None or (isinstance(rec, float) and np.isnan(rec)) else float(str(rec) != true)
            rel = np.nan
        else:
            err = rn - tn
            rel = 100.0 * err / abs(tn) if tn not in (0.0,) and np.isfinite(tn) else np.nan
            true, rec = tn, rn
        rows.append({"patient": pname, "lesion": lid, "biomarker": r.biomarker, "unit": r.unit, "true": true,
                     "recovered": rec, "error": err, "rel_error_pct": rel})
    cols = ["patient", "lesion", "biomarker", "unit", "true", "recovered", "error", "rel_error_pct"]
    return pd.DataFrame(rows, columns=cols)


def validation_summary(vs_truth: Any) -> dict[str, dict]:
    """Bland-Altman agreement per biomarker (Bland & Altman 1986, Lancet 1:307).

    Returns
    -------
    dict
        biomarker -> ``{"n", "bias", "bias_pct", "loa_low", "loa_high", "unit"}``: n pairs with both
        values finite, bias = mean(recovered - true) in ``unit``, bias_pct = mean relative error (%),
        limits of agreement = bias -/+ 1.96 SD of the differences (NaN with fewer than 2 pairs).
        Categories instead give ``{"n", "agreement", "unit"}`` (fraction of lesions where the
        recovered category equals the truth).

    Examples
    --------
    >>> import pandas as pd
    >>> vt = pd.DataFrame({"biomarker": ["x"] * 3, "unit": ["Gy"] * 3, "true": [10.0, 20.0, 30.0],
    ...                    "recovered": [11.0, 21.0, 33.0], "error": [1.0, 1.0, 3.0],
    ...                    "rel_error_pct": [10.0, 5.0, 10.0]})
    >>> s = validation_summary(vt)["x"]
    >>> s["n"], round(s["bias"], 4), round(s["bias_pct"], 4), round(s["loa_high"], 4)
    (3, 1.6667, 8.3333, 3.9299)
    """
    out: dict[str, dict] = {}
    for name, g in vs_truth.groupby("biomarker", sort=True):
        unit = str(g["unit"].iloc[0]) if len(g) else ""
        numeric = all(isinstance(v, (int, float, np.integer, np.floating, bool, np.bool_)) for v in g["true"])
        if not numeric:
            ok = g["error"].notna()
            out[str(name)] = {"n": int(ok.sum()), "agreement": float(1.0 - g.loc[ok, "error"].mean())
                              if ok.any() else float("nan"), "unit": unit}
            continue
        err = g["error"].astype(float)
        ok = np.isfinite(err) & np.isfinite(g["true"].astype(float)) & np.isfinite(g["recovered"].astype(float))
        e = err[ok].to_numpy()
        rel = g.loc[ok, "rel_error_pct"].astype(float)
        rel = rel[np.isfinite(rel)]
        bias = float(e.mean()) if e.size else float("nan")
        sd = float(e.std(ddof=1)) if e.size > 1 else float("nan")
        out[str(name)] = {"n": int(e.size), "bias": bias, "bias_pct": float(rel.mean()) if rel.size else float("nan"),
                          "loa_low": bias - 1.96 * sd, "loa_high": bias + 1.96 * sd, "unit": unit}
    return out


_DEMO_FIT_MODELS = ("dual_input_etofts", "etofts")  # with and without a portal-vein segment


def _kernels_cold() -> bool:
    """True when the DCE fitting kernels the demo uses are not in numba's cache (the first fit compiles)."""
    from .. import dce

    ready = getattr(dce, "kernels_ready", None)
    if callable(ready):
        try:
            return not all(ready(m) for m in _DEMO_FIT_MODELS)
        except Exception:  # noqa: BLE001 - the notice is a courtesy
            return False
    import os

    folder = Path(dce.__file__).parent
    cache = Path(os.environ["NUMBA_CACHE_DIR"]) if os.environ.get("NUMBA_CACHE_DIR") else folder / "__pycache__"
    return not any(cache.rglob("*.nbi")) if cache.exists() else True


def _warm_up() -> None:
    """Compile the demo's kernels once here, into numba's on-disk cache, so the workers only load them."""
    from .. import dce

    warm = getattr(dce, "warm_up", None)
    if callable(warm):
        for m in _DEMO_FIT_MODELS:
            warm(m)


def run_demo(out_dir: str | Path, *, overwrite: bool = False, workers: int = 2, seed: int = 2026,
             n_tare: Optional[int] = None, n_prrt: Optional[int] = None, dicom: bool = True, report: bool = True,
             cohort: bool = True, quiet: bool = True, designs: tuple[str, ...] = ("tare", "prrt"),
             log: Optional[Callable[[str], None]] = None, process: Optional[Callable] = None) -> DemoRun:
    """The embedded demo: two phantom studies as real DICOM, each through the whole pipeline, against truth.

    Writes ``out_dir/tare/study`` (``phantom.write_tare_study``) and ``out_dir/prrt/study``
    (``phantom.write_prrt_study``), runs :func:`run_study` on each into ``out_dir/<design>/results``
    and adds ``vs_truth.csv`` and ``validation.json`` (:func:`vs_truth_table`,
    :func:`validation_summary`) to each results folder, then the report.

    Parameters
    ----------
    out_dir : str or Path
        Demo folder. An earlier demo there (recognised by its ``manifest.json``) is replaced; any
        other content needs ``overwrite``.
    overwrite : bool
        Write into a folder holding something else (its ``tare/`` and ``prrt/`` are replaced).
    workers : int
        Dask worker processes shared by both studies.
    seed : int
        Seed of the phantom studies.
    n_tare, n_prrt : int, optional
        Patients per study (default: the phantom's, 12 and 10).
    dicom, report, cohort : bool
        DICOM export, report and cohort statistics of each study.
    quiet : bool
        No progress bars.
    designs : tuple of str
        Which studies (``"tare"``, ``"prrt"``).
    log : callable, optional
        Receives one-line messages (e.g. the kernel compilation notice).
    process : callable, optional
        The per-patient step passed to :func:`run_study` (default ``process_patient``).

    Returns
    -------
    DemoRun
    """
    import inspect
    import time

    from .. import phantom
    from ..io import write_json, write_table
    from ._outputs import prepare_out_dir, read_manifest, write_manifest
    from ._run import RunSettings, _start_client, run_study

    t0 = time.perf_counter()
    unknown = [d for d in designs if d not in ("tare", "prrt")]
    if unknown or not designs:
        raise TheraquantError(f"designs={designs!r}: each must be 'tare' or 'prrt'", argument="designs")
    writers = {"tare": getattr(phantom, "write_tare_study", None), "prrt": getattr(phantom, "write_prrt_study", None)}
    missing = [f"write_{d}_study" for d in designs if writers[d] is None]
    if missing:
        raise TheraquantError(f"the phantom studies are not available in this installation "
                              f"(theraquant.phantom lacks {', '.join(missing)})", argument="designs")
    out = Path(out_dir).expanduser()
    earlier = read_manifest(out) if out.is_dir() else None
    own = earlier is not None and earlier.get("Kind") == "demo"
    if out.is_dir() and any(out.iterdir()) and not (own or overwrite):
        raise TheraquantError(f"--out {out} exists and holds something other than an earlier demo; pass "
                              "--overwrite to write the demo into it (its tare/ and prrt/ are replaced)",
                              argument="out_dir")
    out = prepare_out_dir(out, True)  # removes the earlier demo's outputs (listed in its manifest)
    for d in designs:
        if (out / d).exists():
            shutil.rmtree(out / d)
    say = log or (lambda _m: None)
    counts = {"tare": n_tare, "prrt": n_prrt}
    studies = {}
    for d in designs:
        kw = {"seed": seed} | ({"n_patients": counts[d]} if counts[d] is not None else {})
        if "workers" in inspect.signature(writers[d]).parameters:
            kw["workers"] = workers  # the phantom writes patients in as many processes
        say(f"writing the {d.upper()} phantom study (DICOM) to {out / d / 'study'}")
        studies[d] = writers[d](out / d / "study", **kw)
    if _kernels_cold():
        from ..dce import COMPILE_ESTIMATE_S

        say(f"compiling fitting kernels (once, ~{COMPILE_ESTIMATE_S} s)")
        _warm_up()
    runs, tables, validation = {}, {}, {}
    settings0 = RunSettings(out=out / "_", workers=workers, dicom=dicom, report=False, quiet=quiet)
    client, cluster = _start_client(settings0)
    try:
        for d in designs:
            res_dir = out / d / "results"
            settings = RunSettings(out=res_dir, workers=workers, dicom=dicom, report=False, cohort=cohort,
                                   quiet=quiet)
            run = run_study(studies[d].study_dir, settings, client=client, process=process)
            pseudonyms = {p.patient_id: p.pseudonym for p in run.study.patients}
            vt = vs_truth_table(studies[d].truth, run.lesions, run.patients, pseudonyms)
            write_table(vt, res_dir / "vs_truth.csv")
            val = validation_summary(vt)
            write_json(val, res_dir / "validation.json")
            runs[d], tables[d], validation[d] = run, vt, val
            if report:
                from ._run import _render_report

                for note in _render_report(res_dir, run.study, True, run.failures):
                    say(f"{d}: {note}")
    finally:
        import contextlib

        with contextlib.suppress(Exception):
            client.close()
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.close()
    write_manifest(out, list(designs), kind="demo", settings={"seed": seed, "n_tare": n_tare, "n_prrt": n_prrt},
                   extra={"Designs": list(designs)})
    return DemoRun(out_dir=out, runs=runs, vs_truth=tables, validation=validation,
                   elapsed_s=time.perf_counter() - t0)
