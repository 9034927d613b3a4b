"""Bad inputs, table-driven: every case states its expected outcome.

Each case is (class, id, action, expectation). Classes follow issue #11: ``files`` (never lose or
corrupt a file), ``units`` (never a silent unit slip), ``structure`` (never a silent wrong
structure), ``traceback`` (never a traceback: one line naming the file or option). Expectations:

* ``Error(match)``: a TheraquantError (DicomError included) whose message matches;
* ``Warns(match)``: a PlausibilityWarning whose message matches, and no error;
* ``Cli(exit, match)``: ``theraquant ...`` exits with that code and its output matches, on one
  error line, with no traceback;
* ``keep``: files whose bytes must be unchanged afterwards; ``absent``: paths that must not exist.

The inputs are small images and tables built in ``tmp_path`` (CC BY 4.0 reference lesion table from
tests/data/r_reference, written by make_reference.R).
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from theraquant import Image, TheraquantError
from theraquant.cli import app
from theraquant.quantities import PlausibilityWarning, check_quantity

REF_TABLE = Path(__file__).resolve().parents[1] / "data" / "r_reference" / "clustered_lesions.csv"
T = np.arange(40) * 5.0  # s: 5-s frames over 195 s


# ---------------------------------------------------------------------------- expectations
@dataclass(frozen=True)
class Error:
    match: str


@dataclass(frozen=True)
class Warns:
    match: str


@dataclass(frozen=True)
class Cli:
    exit: int
    match: str


@dataclass(frozen=True)
class Case:
    cls: str
    id: str
    act: Callable[[Path], Any]
    expect: Error | Warns | Cli
    setup: Callable[[Path], Any] = lambda d: None  # inputs made before the bytes of ``keep`` are read
    keep: tuple[str, ...] = ()  # files (relative to tmp_path) whose bytes must not change
    absent: tuple[str, ...] = ()  # paths (relative to tmp_path) that must not be created


# ---------------------------------------------------------------------------- small inputs
def _conc(n_frames: int = 40) -> np.ndarray:
    from theraquant.dce import aif, simulate

    t = np.arange(n_frames) * 5.0
    ct = simulate(t, "etofts", {"Ktrans": [0.2] * 8, "ve": [0.3] * 8, "vp": [0.05] * 8},
                  cp=aif.population("parker", t))
    return ct.reshape(2, 2, 2, n_frames)


def dce_nifti(d: Path, *, frame_times: Any = T, name: str = "dce.nii.gz") -> Path:
    from theraquant.io import write_nifti

    return write_nifti(Image.from_spacing(_conc(), 2.0, frame_times_s=frame_times), d / name)


def dce_no_time(d: Path) -> Path:
    p = d / "dce_notime.nii.gz"
    nib.save(nib.Nifti1Image(_conc().astype(np.float32), np.eye(4)), str(p))  # nibabel's default header
    return p


def nifti(d: Path, name: str, arr: Any, **kw: Any) -> Path:
    from theraquant.io import write_nifti

    return write_nifti(Image.from_spacing(np.asarray(arr), 2.0), d / name, **kw)


def suv_and_mask(d: Path, mask: Any = None) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    suv = rng.uniform(0.5, 2.0, (6, 6, 6))
    suv[2:4, 2:4, 2:4] = 8.0
    m = np.zeros((6, 6, 6), np.uint8)
    m[2:4, 2:4, 2:4] = 1
    return nifti(d, "suv.nii.gz", suv), nifti(d, "mask.nii.gz", m if mask is None else mask, dtype=None)


def table(d: Path, edit: Callable[[pd.DataFrame], pd.DataFrame] = lambda t: t, name: str = "t.csv") -> Path:
    t = edit(pd.read_csv(REF_TABLE))
    p = d / name
    t.to_csv(p, index=False)
    return p


def cli(*args: Any):
    return CliRunner().invoke(app, [str(a) for a in args])


def stats(d: Path, *extra: Any, edit=lambda t: t):
    return cli("stats", table(d, edit), "--outcome", "response", "--markers", "tbp", "--n-boot", "0",
               "--no-cluster", *extra)


def hdr(**changes: Any) -> dict:
    h = {"Units": "BQML", "DecayCorrection": "START", "PatientWeight": 70.0, "PatientSize": 1.75,
         "PatientSex": "M", "SeriesDate": "20250101", "SeriesTime": "110000", "AcquisitionDate": "20250101",
         "AcquisitionTime": "110000", "RadionuclideTotalDose": 370e6, "RadionuclideHalfLife": 6586.2,
         "RadiopharmaceuticalStartDateTime": "20250101100000", "ActualFrameDuration": 300000,
         "FrameReferenceTime": 150000.0}
    h.update(changes)
    return h


def suv(**kw: Any):
    from theraquant.pet import suv_factor

    norm = kw.pop("normalization", "bw")
    overrides = {k: v for k, v in kw.items() if k in ("weight_kg", "height_m", "injected_dose_bq", "half_life_s",
                                                      "injection_time")}
    return suv_factor([hdr(**{k: v for k, v in kw.items() if k not in overrides})], normalization=norm, **overrides)


def grade(is_node: list, new: list | None = None):
    from theraquant.response import grade_lesions

    t = pd.DataFrame({"baseline": [50.0, 50.0], "followup": [30.0, 34.0], "is_node": is_node,
                      "new_lesions": new if new is not None else [False, False]})
    return grade_lesions(t, "recist")


def truncated(d: Path, name: str) -> Path:
    p = nifti(d, name, np.random.default_rng(1).random((8, 16, 16)))
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    return p


def huge_header(d: Path) -> Path:
    p = d / "huge.nii.gz"
    img = nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4))
    img.header.set_data_shape((4096, 4096, 4096))  # 256 GiB of float32 promised by a 100-byte file
    with gzip.open(p, "wb") as fh:
        fh.write(img.header.binaryblock + b"\0" * 4 + b"\0" * 32)
    return p


def dicom_series(d: Path, *, copies: int = 1) -> Path:
    """Three 4x4 PT slices (pydicom), written ``copies`` times (different file names, same SOP UIDs)."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    series = d / "PT"
    series.mkdir()
    suid, study, frame = generate_uid(), generate_uid(), generate_uid()
    for z in range(3):
        ds = pydicom.Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.128"
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.Modality, ds.SeriesInstanceUID, ds.StudyInstanceUID = "PT", suid, study
        ds.FrameOfReferenceUID, ds.InstanceNumber = frame, z + 1
        ds.ImagePositionPatient, ds.ImageOrientationPatient = [0.0, 0.0, 4.0 * z], [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing, ds.SliceThickness = [4.0, 4.0], 4.0
        ds.Rows = ds.Columns = 4
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept = 1.0, 0.0
        ds.PixelData = (np.arange(16, dtype=np.uint16) + z).tobytes()
        ds.Units, ds.DecayCorrection = "BQML", "START"  # SUV tags: 70 kg, 370 MBq 18F, 1 h before the scan
        ds.PatientWeight, ds.PatientSize, ds.PatientSex = 70.0, 1.75, "M"
        ds.SeriesDate = ds.AcquisitionDate = "20250101"
        ds.SeriesTime = ds.AcquisitionTime = "110000"
        rp = pydicom.Dataset()
        rp.RadionuclideTotalDose, rp.RadionuclideHalfLife = 370e6, 6586.2
        rp.RadiopharmaceuticalStartDateTime = "20250101100000"
        ds.RadiopharmaceuticalInformationSequence = [rp]
        for c in range(copies):
            ds.save_as(series / f"copy{c}_IM{z}.dcm", enforce_file_format=True)
    return series


def read_series(d: Path, copies: int) -> Any:
    from theraquant.io import read_dicom_series

    return read_dicom_series(dicom_series(d, copies=copies))


# ---------------------------------------------------------------------------- the cases
def _units() -> list[Case]:
    from theraquant import dce, dosimetry as dm

    cp = dce.aif.population("parker", T)
    tia = np.zeros((5, 5, 5))
    tia[2, 2, 2] = 2e9  # a 2 GBq activity image passed as TIA
    point = np.zeros((5, 5, 5))
    point[2, 2, 2] = dm.permanent_implant_tia(1e9)  # 1 GBq 90Y: 3.3e14 Bq s
    plan = dict(tumour_mass_kg=0.3, normal_liver_mass_kg=1.2, tn_ratio=4.0, lung_shunt_fraction=0.05,
                activity_gbq=2.0)
    return [
        Case("units", "cli-suv-weight-in-lb",
             lambda d: cli("pet", "suv", d / "PT", "--out", d / "s.nii.gz", "--weight-kg", 154.3),
             Cli(0, r"warning: --weight-kg 154.3 is implausible .*probably in lb .*the header says 70 kg"),
             setup=dicom_series),
        Case("units", "cli-suv-dose-in-MBq",
             lambda d: cli("pet", "suv", d / "PT", "--out", d / "s.nii.gz", "--injected-dose-bq", 370),
             Cli(0, r"warning: --injected-dose-bq 370 is implausible .*probably in MBq"), setup=dicom_series),
        Case("units", "cli-suv-height-in-cm",
             lambda d: cli("pet", "suv", d / "PT", "--out", d / "s.nii.gz", "--normalization", "lbm-james",
                           "--height-m", 175),
             Cli(1, r"error: --height-m: height_m=175 is impossible .*probably in cm"), setup=dicom_series,
             absent=("s.nii.gz",)),
        Case("units", "table-weight-in-grams", lambda d: check_quantity("weight_kg", 72500, argument="weight_kg"),
             Error(r"weight_kg=72500 is impossible .*probably in g \(72500 g = 72.5 kg\)")),
        Case("units", "suv-weight-override-in-lb", lambda d: suv(weight_kg=154.3),
             Warns(r"weight_kg=154.3 .*probably in lb .*the header says 70 kg")),
        Case("units", "suv-weight-override-in-g", lambda d: suv(weight_kg=70000),
             Error(r"weight_kg=70000 is impossible .*probably in g")),
        Case("units", "suv-header-weight-implausible", lambda d: suv(PatientWeight=1.2),
             Warns(r"PatientWeight \(0010,1030\): 1.2 kg is implausible")),
        Case("units", "suv-height-in-cm", lambda d: suv(height_m=175, normalization="lbm-james"),
             Error(r"height_m=175 is impossible .*probably in cm \(175 cm = 1.75 m\)")),
        Case("units", "suv-dose-in-MBq", lambda d: suv(injected_dose_bq=370),
             Warns(r"injected_dose_bq=370 is implausible .*probably in MBq \(370 MBq = 3.7e\+08 Bq\)")),
        Case("units", "suv-dose-in-mCi", lambda d: suv(injected_dose_bq=10),
             Warns(r"injected_dose_bq=10 .*mCi \(10 mCi = 3.7e\+08 Bq\)")),
        Case("units", "suv-height-override-in-inches", lambda d: suv(height_m=69, normalization="bsa"),
             Error(r"height_m=69 is impossible .*probably in in \(69 in = 1.7526 m\)")),
        Case("units", "suv-half-life-in-minutes", lambda d: suv(half_life_s=109.77),
             Warns(r"half_life_s=109.77 .*probably in min \(109.77 min = 6586.2 s\), the half-life of F-18")),
        Case("units", "suv-half-life-in-hours",  # (a 1-s uptake, so that only the half-life is wrong)
             lambda d: suv(half_life_s=1.8295, RadiopharmaceuticalStartDateTime="20250101105959"),
             Warns(r"probably in h .*F-18")),
        Case("units", "suv-half-life-in-hours-uptake-impossible", lambda d: suv(half_life_s=1.8295),
             Error(r"1967.75 half-lives is impossible .*or the half-life is probably wrong")),
        Case("units", "suv-header-half-life-in-minutes", lambda d: suv(RadionuclideHalfLife=109.77),
             Warns(r"RadionuclideHalfLife \(0018,1075\): 109.77 s is implausible.*min")),
        Case("units", "suv-injection-days-before-scan",
             lambda d: suv(RadiopharmaceuticalStartDateTime="20241229100000"),
             Warns(r"39.9016 half-lives is implausible .*injection date or time .* is probably wrong")),
        Case("units", "suv-injection-years-before-scan",
             lambda d: suv(RadiopharmaceuticalStartDateTime="20200101100000"),
             Error(r"23967.8 half-lives is impossible .*must be at most 64.*injection date or time .* is probably")),
        Case("units", "dce-fit-times-in-minutes", lambda d: dce.fit(T / 60, 0.1 * cp, "tofts", cp=cp),
             Warns(r"frame times t, span: 3.25 s .*probably in min")),
        Case("units", "dce-fit-times-in-ms", lambda d: dce.fit(T * 1000, 0.1 * cp, "tofts", cp=cp),
             Warns(r"frame times t, span: 195000 s .*probably in ms")),
        Case("units", "cli-dt-5000", lambda d: cli("dce", "fit", dce_no_time(d), "--out", d / "o", "--dt", 5000),
             Cli(0, r"warning: frame times --dt, span: 195000 s is implausible.*probably in ms")),
        Case("units", "cli-strict-dt-5000",
             lambda d: cli("--strict", "dce", "fit", dce_no_time(d), "--out", d / "o", "--dt", 5000),
             Cli(1, r"error: --dt.*span: 195000 s .*ms"), absent=("o",)),
        Case("units", "cli-frame-times-file-in-ms",
             lambda d: (d.joinpath("t.txt").write_text(",".join(f"{v:g}" for v in T * 1000)),
                        cli("dce", "fit", dce_no_time(d), "--out", d / "o", "--frame-times", d / "t.txt"))[1],
             Cli(0, r"warning: frame times --frame-times, span: 195000 s .*ms")),
        Case("units", "cli-sidecar-frame-times-in-minutes",
             lambda d: cli("dce", "fit", dce_nifti(d, frame_times=T / 60), "--out", d / "o"),
             Cli(0, r"warning: frame times INPUT, span: 3.25 s .*min")),
        Case("units", "cli-4d-nifti-without-time", lambda d: cli("dce", "fit", dce_no_time(d), "--out", d / "o"),
             Cli(1, r"dce_notime.nii.gz: no frame times .*pass (--)?frame.times or (--)?dt"), absent=("o",)),
        Case("units", "dose-spacing-in-m",
             lambda d: dm.absorbed_dose(point, (0.004,) * 3, method="ldm"),
             Warns(r"spacing_mm=0.004 is implausible .*probably in m \(0.004 m = 4 mm\)")),
        Case("units", "dose-density-in-kg-m3",
             lambda d: dm.absorbed_dose(point, (4.0,) * 3, method="ldm", density=1040.0),
             Error(r"density=1040 is impossible .*kg/m3 \(1040 kg/m3 = 1.04 g/mL\)")),
        Case("units", "dose-activity-passed-as-tia", lambda d: dm.absorbed_dose(tia, (4.0,) * 3, method="ldm"),
             Warns(r"tia_bq_s \(sum\): 2e\+09 Bq s .*looks like an activity \(Bq\)")),
        Case("units", "dvh-negative-dose", lambda d: dm.dose_volume(np.r_[-5.0, 1, 2, 3].reshape(1, 2, 2),
                                                                     np.ones((1, 2, 2), bool)),
             Error(r"dose_gy=-5 .*is impossible for an absorbed dose .*must be at least 0")),
        Case("units", "dvh-dose-in-cGy", lambda d: dm.dose_volume(np.full((1, 2, 2), 12000.0),
                                                                   np.ones((1, 2, 2), bool)),
             Warns(r"dose_gy=12000 is implausible .*cGy \(12000 cGy = 120 Gy\)")),
        Case("units", "tac-times-in-days",
             lambda d: dm.fit_tac([0.17, 1.0, 3.0, 7.0], [90.0, 70.0, 40.0, 15.0], nuclide="Lu-177"),
             Warns(r"times_h=7 is implausible .*probably in d \(7 d = 168 h\)")),
        Case("units", "tac-times-in-seconds",
             lambda d: dm.fit_tac([14400.0, 86400.0, 259200.0, 604800.0], [90.0, 70.0, 40.0, 15.0],
                                  nuclide="Lu-177"),
             Warns(r"times_h=604800 is implausible .*probably in s \(604800 s = 168 h\)")),
        Case("units", "tac-activity-in-Bq",
             lambda d: dm.fit_tac([4.0, 24.0, 72.0, 168.0], [9e8, 7e8, 4e8, 1.5e8], nuclide="Lu-177"),
             Warns(r"activity_mbq=9e\+08 is implausible .*probably in Bq")),
        Case("units", "plan-tumour-mass-in-g", lambda d: dm.partition_model(**{**plan, "tumour_mass_kg": 300.0}),
             Error(r"tumour_mass_kg=300 is impossible .*probably in g \(300 g = 0.3 kg\)")),
        Case("units", "plan-liver-mass-in-g",
             lambda d: dm.mird_single_compartment(liver_mass_kg=1500.0, activity_gbq=2.0),
             Error(r"liver_mass_kg=1500 is impossible .*probably in g")),
        Case("units", "plan-activity-in-MBq", lambda d: dm.partition_model(**{**plan, "activity_gbq": 2000.0}),
             Error(r"activity_gbq=2000 is impossible .*probably in MBq \(2000 MBq = 2 GBq\)")),
        Case("units", "plan-fraction-wrong-type",
             lambda d: dm.partition_model(**{**plan, "lung_shunt_fraction": "5%"}),
             Error(r"lung_shunt_fraction must be a fraction in \[0, 1\), got '5%'")),
        Case("units", "plan-ratio-none", lambda d: dm.partition_model(**{**plan, "tn_ratio": None}),
             Error(r"tn_ratio must be a positive number, got None")),
        Case("units", "mtv-threshold-41",
             lambda d: cli("pet", "metrics", *suv_and_mask(d)[:1], "--mask", d / "mask.nii.gz",
                           "--mtv-threshold", "41"),
             Cli(0, r"warning: --mtv-threshold 41 is implausible .*written as a percentage: '41%'")),
        Case("units", "mtv-threshold-negative",
             lambda d: cli("pet", "metrics", suv_and_mask(d)[0], "--mask", d / "mask.nii.gz",
                           "--mtv-threshold", "-1"),
             Cli(1, r"--mtv-threshold -1 is impossible .*must be at least 0")),
        Case("units", "mtv-threshold-150-percent",
             lambda d: cli("pet", "metrics", suv_and_mask(d)[0], "--mask", d / "mask.nii.gz",
                           "--mtv-threshold", "150%"),
             Cli(1, r"--mtv-threshold 150 is impossible for a percentage")),
        Case("units", "tr-in-ms", lambda d: check_quantity("repetition_time_s", 4.5, argument="--tr"),
             Warns(r"--tr 4.5 is implausible .*probably in ms \(4.5 ms = 0.0045 s\)")),
        Case("units", "flip-angle-in-radians",
             lambda d: check_quantity("flip_angle_deg", 0.26, argument="--flip-angle"),
             Warns(r"--flip-angle 0.26 is implausible .*probably in rad")),
        Case("units", "strict-raise-turns-warning-into-error",
             lambda d: check_quantity("injected_activity_bq", 370, argument="injected_dose_bq", strict="raise"),
             Error(r"injected_dose_bq=370 is implausible .*MBq")),
        Case("units", "not-a-number", lambda d: check_quantity("weight_kg", "seventy", argument="weight_kg"),
             Error(r"weight_kg must be a number in kg .*got str 'seventy'")),
    ]


def _files() -> list[Case]:
    from theraquant.io import write_json, write_table

    pet = lambda d: suv_and_mask(d)  # noqa: E731
    return [
        Case("files", "pet-metrics-out-is-the-suv-input",
             lambda d: cli("pet", "metrics", d / "suv.nii.gz", "--mask", d / "mask.nii.gz", "--out",
                           d / "suv.nii.gz", "--overwrite"),
             Cli(1, r"--out suv.nii.gz: unsupported extension"), setup=pet, keep=("suv.nii.gz",)),
        Case("files", "pet-metrics-out-is-an-input-json",
             lambda d: cli("pet", "metrics", d / "suv.nii.gz", "--mask", d / "m.json", "--out", d / "m.json",
                           "--overwrite"),
             Cli(1, r"--out .*m.json is also an input of this command"),
             setup=lambda d: (pet(d), shutil.copy(d / "mask.nii.gz", d / "m.json")), keep=("m.json",)),
        Case("files", "pet-metrics-out-exists",
             lambda d: cli("pet", "metrics", d / "suv.nii.gz", "--mask", d / "mask.nii.gz", "--out", d / "r.json"),
             Cli(1, r"--out .*r.json exists; pass --overwrite"),
             setup=lambda d: (pet(d), d.joinpath("r.json").write_text("{}")), keep=("r.json",)),
        Case("files", "pet-metrics-out-without-extension",
             lambda d: cli("pet", "metrics", d / "suv.nii.gz", "--mask", d / "mask.nii.gz", "--out", d / "res"),
             Cli(1, r"--out res: unsupported extension \(none\); give a file name ending in .json"),
             setup=pet, absent=("res",)),
        Case("files", "stats-json-equals-save-model",
             lambda d: stats(d, "--json", d / "a.json", "--save-model", d / "a.json"),
             Cli(1, r"--json and --save-model name the same file"), absent=("a.json",)),
        Case("files", "stats-json-is-the-table",
             lambda d: cli("stats", d / "t.json", "--outcome", "response", "--markers", "tbp", "--json",
                           d / "t.json", "--overwrite"),
             Cli(1, r"--json .*t.json is also an input"), setup=lambda d: table(d, name="t.json"), keep=("t.json",)),
        Case("files", "stats-json-exists", lambda d: stats(d, "--json", d / "r.json"),
             Cli(1, r"--json .*r.json exists; pass --overwrite"),
             setup=lambda d: d.joinpath("r.json").write_text("{}"), keep=("r.json",)),
        Case("files", "stats-save-model-exists", lambda d: stats(d, "--save-model", d / "m.json"),
             Cli(1, r"--save-model .*m.json exists; pass --overwrite"),
             setup=lambda d: d.joinpath("m.json").write_text("{}"), keep=("m.json",)),
        Case("files", "pet-suv-out-exists", lambda d: cli("pet", "suv", d, "--out", d / "s.nii.gz"),
             Cli(1, r"--out .*s.nii.gz exists; pass --overwrite"),
             setup=lambda d: d.joinpath("s.nii.gz").write_bytes(b"old"), keep=("s.nii.gz",)),
        Case("files", "pet-suv-out-wrong-extension", lambda d: cli("pet", "suv", d, "--out", d / "s.txt"),
             Cli(1, r"--out s.txt: unsupported extension .txt; give a file name ending in .nii.gz or .nii"),
             absent=("s.txt",)),
        Case("files", "dce-out-is-the-input",
             lambda d: cli("dce", "fit", d / "dce.nii.gz", "--out", d / "dce.nii.gz", "--overwrite"),
             Cli(1, r"--out .*dce.nii.gz is also an input"), setup=dce_nifti, keep=("dce.nii.gz", "dce.json")),
        Case("files", "dce-out-not-empty", lambda d: cli("dce", "fit", d / "dce.nii.gz", "--out", d / "o"),
             Cli(1, r"--out .*o exists and is not empty; pass --overwrite"),
             setup=lambda d: (dce_nifti(d), (d / "o").mkdir(), (d / "o" / "mine.txt").write_text("keep")),
             keep=("o/mine.txt",)),
        Case("files", "dce-bad-chunk-size-leaves-no-folder",
             lambda d: cli("dce", "fit", d / "dce.nii.gz", "--out", d / "o", "--chunk-voxels", 0),
             Cli(1, r"chunk"), setup=dce_nifti, absent=("o",)),
        Case("files", "dce-all-nan-frame-leaves-no-folder",
             lambda d: cli("dce", "fit", d / "nan.nii.gz", "--out", d / "o"),
             Cli(1, r"NaN|infinite|non-finite"),
             setup=lambda d: nifti(d, "nan.nii.gz", np.where(np.arange(40) == 7, np.nan, _conc()),
                                   sidecar={"FrameTimes_s": T}), absent=("o",)),
        Case("files", "dce-out-below-a-regular-file",
             lambda d: cli("dce", "fit", d / "dce.nii.gz", "--out", d / "f.txt" / "o"),
             Cli(1, r"f.txt is a file, not a folder"),
             setup=lambda d: (dce_nifti(d), d.joinpath("f.txt").write_text("x")), keep=("f.txt",)),
        Case("files", "nifti-unsupported-extension", lambda d: nifti(d, "map.png", np.zeros((2, 2, 2))),
             Error(r"map.png: unsupported extension for a NIfTI output"), absent=("map.png",)),
        Case("files", "table-unsupported-extension",
             lambda d: write_table(pd.DataFrame({"a": [1]}), d / "t.xls"),
             Error(r"unsupported table extension '.xls'"), absent=("t.xls",)),
        Case("files", "output-below-a-regular-file", lambda d: write_json({}, d / "f" / "r.json"),
             Error(r"f is a file, not a folder"), setup=lambda d: d.joinpath("f").write_text("x"), keep=("f",)),
    ]


def _structure() -> list[Case]:
    lab = np.zeros((6, 6, 6))
    lab[2:4, 2:4, 2:4] = 1
    return [
        Case("structure", "dicom-series-present-twice", lambda d: read_series(d, 2),
             Error(r"3 slice position\(s\) hold the same image twice .*remove the duplicate files")),
        Case("structure", "mask-with-nan",
             lambda d: cli("pet", "metrics", suv_and_mask(d, np.where(lab > 0, 1.0, np.nan))[0], "--mask",
                           d / "mask.nii.gz"),
             Cli(1, r"--mask mask.nii.gz: \d+ NaN voxel\(s\)")),
        Case("structure", "probability-mask",
             lambda d: cli("pet", "metrics", suv_and_mask(d, lab * 0.7)[0], "--mask", d / "mask.nii.gz"),
             Cli(1, r"probability \(fractional\) mask.*threshold it")),
        Case("structure", "non-integer-labels",
             lambda d: cli("pet", "metrics", suv_and_mask(d, lab * 2.6)[0], "--mask", d / "mask.nii.gz"),
             Cli(1, r"non-integer labels such as 2.6 .*nearest-neighbour")),
        Case("structure", "liver-mask-probabilities",
             lambda d: cli("pet", "metrics", d / "suv.nii.gz", "--mask", d / "mask.nii.gz", "--liver-mask",
                           d / "liver.nii.gz"),
             Cli(1, r"--liver-mask liver.nii.gz: a probability"),
             setup=lambda d: (suv_and_mask(d), nifti(d, "liver.nii.gz", np.full((6, 6, 6), 0.4)))),
        Case("structure", "dce-mask-non-integer-labels",
             lambda d: cli("dce", "fit", d / "dce.nii.gz", "--out", d / "o", "--mask", d / "lab.nii.gz"),
             Cli(1, r"error: --mask: mask=.lab.nii.gz.: non-integer labels such as 2.6"),
             setup=lambda d: (dce_nifti(d), nifti(d, "lab.nii.gz", np.full((2, 2, 2), 2.6))), absent=("o",)),
        Case("structure", "dce-aif-roi-probability-mask",
             lambda d: cli("dce", "fit", d / "dce.nii.gz", "--out", d / "o", "--aif", "roi", "--aif-roi",
                           d / "artery.nii.gz"),
             Cli(1, r"artery.nii.gz'?: a probability \(fractional\) mask"),
             setup=lambda d: (dce_nifti(d), nifti(d, "artery.nii.gz", np.full((2, 2, 2), 0.3))), absent=("o",)),
        Case("structure", "response-is-node-unknown-string", lambda d: grade(["no", "maybe"]),
             Error(r"column 'is_node', row 2: 'maybe' is not a yes/no value")),
        Case("structure", "response-new-lesions-nan", lambda d: grade([False, False], [False, np.nan]),
             Error(r"column 'new_lesions', row 2: nan is not a yes/no value")),
        Case("structure", "stats-duplicated-rows",
             lambda d: stats(d, edit=lambda t: pd.concat([t, t.iloc[[3]]], ignore_index=True)),
             Cli(1, r"data rows 4, 73 are identical .*--allow-duplicates")),
        Case("structure", "stats-duplicated-lesion-id",
             lambda d: stats(d, edit=lambda t: t.assign(lesion=t["lesion"].where(t.index != 1, 1))),
             Cli(1, r"patient/lesion P01/1 occurs in data rows 1, 2")),
        Case("structure", "stats-inf-marker",
             lambda d: stats(d, edit=lambda t: t.assign(tbp=t["tbp"].where(t.index != 4, np.inf))),
             Cli(1, r"column 'tbp' is infinite in data row\(s\) 5")),
        Case("structure", "stats-responder-typo",
             lambda d: cli("stats", table(d), "--outcome", "recist", "--responder", "CR,PRR", "--markers", "tbp",
                           "--n-boot", "0"),
             Cli(1, r"--responder value\(s\) \['prr'\] never occur in 'recist' .*\['cr', 'pd', 'pr', 'sd'\]")),
    ]


def _traceback() -> list[Case]:
    from theraquant.io import read_nifti, read_table

    return [
        Case("traceback", "truncated-nii-gz", lambda d: read_nifti(truncated(d, "cut.nii.gz")),
             Error(r"cut.nii.gz: truncated or corrupt NIfTI data")),
        Case("traceback", "truncated-nii", lambda d: read_nifti(truncated(d, "cut.nii")),
             Error(r"cut.nii: truncated NIfTI file: it holds \d[\d,]* bytes but its header promises")),
        Case("traceback", "cli-truncated-input", lambda d: cli("dce", "fit", truncated(d, "cut.nii.gz"), "--out",
                                                               d / "o", "--dt", 5),
             Cli(1, r"error: .*cut.nii.gz: truncated or corrupt NIfTI data"), absent=("o",)),
        Case("traceback", "header-promises-more-memory-than-the-machine", lambda d: read_nifti(huge_header(d)),
             Error(r"huge.nii.gz: its header promises 4096 x 4096 x 4096 voxels, 256.0 GiB in memory, more than")),
        Case("traceback", "sidecar-not-json",
             lambda d: (dce_nifti(d), d.joinpath("dce.json").write_text("{oops"), read_nifti(d / "dce.nii.gz"))[2],
             Error(r"dce.json: sidecar is not valid JSON")),
        Case("traceback", "sidecar-a-list",
             lambda d: (dce_nifti(d), d.joinpath("dce.json").write_text("[1, 2]"), read_nifti(d / "dce.nii.gz"))[2],
             Error(r"dce.json: sidecar must hold a JSON object")),
        Case("traceback", "sidecar-frame-times-count",
             lambda d: (dce_nifti(d), d.joinpath("dce.json").write_text('{"FrameTimes_s": [0, 5, 10]}'),
                        read_nifti(d / "dce.nii.gz"))[2],
             Error(r"dce.json: FrameTimes_s has 3 values but the image has 40 frames")),
        Case("traceback", "sidecar-frame-times-words",
             lambda d: (dce_nifti(d), d.joinpath("dce.json").write_text('{"FrameTimes_s": ["a", "b"]}'),
                        read_nifti(d / "dce.nii.gz"))[2],
             Error(r"dce.json: FrameTimes_s must be a list of numbers")),
        Case("traceback", "sidecar-not-utf8",
             lambda d: (dce_nifti(d), d.joinpath("dce.json").write_bytes(b'{"Units": "\xe9"}'),
                        read_nifti(d / "dce.nii.gz"))[2],
             Error(r"dce.json: JSON sidecar is not UTF-8")),
        Case("traceback", "nifti-path-is-a-folder", lambda d: read_nifti(d),
             Error(r"is a folder, not a NIfTI file")),
        Case("traceback", "not-a-nifti", lambda d: (d.joinpath("x.nii").write_bytes(b"\0" * 400),
                                                     read_nifti(d / "x.nii"))[1],
             Error(r"x.nii: not a readable NIfTI file")),
        Case("traceback", "csv-not-utf8",
             lambda d: (d.joinpath("t.csv").write_bytes("patient,tbp\nJos\xe9,1\n".encode("latin-1")),
                        read_table(d / "t.csv"))[1],
             Error(r"t.csv: not UTF-8 text \(byte 0xe9 .*CSV UTF-8")),
        Case("traceback", "csv-empty", lambda d: (d.joinpath("t.csv").write_text(""), read_table(d / "t.csv"))[1],
             Error(r"t.csv: the file is empty")),
        Case("traceback", "csv-header-only",
             lambda d: (d.joinpath("t.csv").write_text("patient,tbp\n"), read_table(d / "t.csv"))[1],
             Error(r"t.csv: the table has a header \(patient, tbp\) but no rows")),
        Case("traceback", "csv-malformed",
             lambda d: (d.joinpath("t.csv").write_text('a,b\n1,2\n"3,4\n'), read_table(d / "t.csv"))[1],
             Error(r"t.csv: malformed CSV")),
        Case("traceback", "cli-stats-empty-csv",
             lambda d: (d.joinpath("t.csv").write_text(""),
                        cli("stats", d / "t.csv", "--outcome", "r", "--markers", "m"))[1],
             Cli(1, r"t.csv: the file is empty")),
        Case("traceback", "cli-long-frame-times-list",
             lambda d: cli("dce", "fit", dce_no_time(d), "--out", d / "o", "--frame-times",
                           ",".join(str(5 * i) for i in range(2000))),
             Cli(1, r"--frame-times.* gives 2000 frame times but dce_notime.nii.gz has 40 frames"),
             absent=("o",)),
        Case("traceback", "cli-frame-times-file-not-utf8",
             lambda d: (d.joinpath("t.txt").write_bytes(b"0,5,\xff"),
                        cli("dce", "fit", dce_no_time(d), "--out", d / "o", "--frame-times", d / "t.txt"))[1],
             Cli(1, r"--frame-times.*t.txt: not a UTF-8 text file")),
    ]


CASES = _units() + _files() + _structure() + _traceback()


def test_there_are_at_least_60_cases_in_four_classes():
    counts = {c: sum(case.cls == c for case in CASES) for c in ("units", "files", "structure", "traceback")}
    assert sum(counts.values()) == len(CASES) >= 60, counts
    assert min(counts.values()) >= 10, counts
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[f"{c.cls}:{c.id}" for c in CASES])
def test_bad_input(case: Case, tmp_path: Path):
    d = tmp_path
    case.setup(d)
    kept = {name: (d / name).read_bytes() for name in case.keep}
    exp = case.expect
    if isinstance(exp, Error):
        with pytest.raises(TheraquantError, match=exp.match):
            case.act(d)
    elif isinstance(exp, Warns):
        with warnings.catch_warnings():
            warnings.simplefilter("error", PlausibilityWarning)  # the first warning is the one expected
            with pytest.raises(PlausibilityWarning, match=exp.match):
                case.act(d)
        with warnings.catch_warnings():  # and it is only a warning: the call completes
            warnings.simplefilter("ignore", PlausibilityWarning)
            case.act(d)
    else:
        res = case.act(d)
        assert res.exit_code == exp.exit, res.output
        assert re.search(exp.match, res.output), res.output
        assert "Traceback" not in res.output, res.output
        if exp.exit == 1:
            errors = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
            assert len(errors) == 1, res.output  # one line naming the problem
    for name, before in kept.items():
        assert (d / name).read_bytes() == before, f"{name} was changed"
    for name in case.absent:
        assert not (d / name).exists(), f"{name} was created"
