"""A tiny DICOM study for the per-patient tests (DCE + VFA + FMISO + 90Y + SEG); not a test module.

The study is a stand-in for PHANTOM's studies: one patient, two lesions of known DCE parameters,
FMISO uptake ratios and 90Y activity, written as real DICOM (pydicom) with a SEG (io.write_seg)
on the DCE grid; the PET series share the frame of reference on a coarser grid.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from theraquant import dce, io
from theraquant.image import Image

HCT, R1, TR_MS, FA = 0.45, 4.5, 4.0, 15.0
T = np.arange(0.0, 210.0, 3.5)
SHAPE_MR = (6, 16, 16)
SP_MR = (4.0, 2.0, 2.0)
SHAPE_PET = (6, 8, 8)
SP_PET = (4.0, 4.0, 4.0)
Y90_HALF_LIFE_S = 64.053 * 3600
TRUTH = {"1": {"Ktrans": 0.25, "ve": 0.35, "vp": 0.06}, "2": {"Ktrans": 0.08, "ve": 0.20, "vp": 0.02}}


def _masks():
    m = {k: np.zeros(SHAPE_MR, bool) for k in ("Lesion 1", "Lesion 2", "Liver", "Aorta", "Blood pool", "Muscle")}
    m["Liver"][1:5, 4:16, 4:16] = True
    m["Lesion 1"][2:4, 6:10, 6:10] = True        # 8 mm x 8 mm, 2 slices
    m["Lesion 2"][2:4, 12:16, 12:16] = True
    m["Aorta"][1:5, 0:2, 0:2] = True
    m["Blood pool"][1:5, 0:4, 0:4] = True       # 2x2 PET voxels
    m["Muscle"][1:5, 0:4, 12:16] = True
    return m


def _base(uid_study, uid_series, for_uid, modality, sop, date, desc):
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop
    ds.PatientID, ds.PatientName, ds.PatientBirthDate, ds.PatientSex = "SECRET-ID-7", "Doe^Jane", "19500101", "F"
    ds.PatientWeight, ds.PatientSize = 70.0, 1.70
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = uid_study, uid_series, for_uid
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = date.strftime("%Y%m%d")
    ds.StudyTime, ds.SeriesTime = "090000", "100000"
    ds.Modality, ds.SeriesDescription, ds.StudyID, ds.SeriesNumber = modality, desc, "1", 1
    ds.AccessionNumber = "ACC1"
    return ds


def _write(folder: Path, arr, spacing, ds_factory, *, slope: float | None = None, per_frame=None):
    """Slices as uint16 with RescaleSlope (default max/60000: round-off below 1e-4 of values >= 0.1 max)."""
    folder.mkdir(parents=True, exist_ok=True)
    arr = np.asarray(arr, float)
    slope = float(arr.max()) / 60000.0 if slope is None else slope
    nt = arr.shape[3] if arr.ndim == 4 else 1
    n = 0
    for z in range(arr.shape[0]):
        for t in range(nt):
            ds = ds_factory()
            ds.SOPInstanceUID = generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.Rows, ds.Columns = arr.shape[1], arr.shape[2]
            ds.PixelSpacing = [spacing[1], spacing[2]]
            ds.SliceThickness = spacing[0]
            ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
            ds.ImagePositionPatient = [0.0, 0.0, z * spacing[0]]
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
            ds.RescaleSlope, ds.RescaleIntercept = slope, 0.0
            plane = arr[z] if arr.ndim == 3 else arr[z, :, :, t]
            ds.PixelData = np.round(plane / slope).astype(np.uint16).tobytes()
            ds.InstanceNumber = n + 1
            if per_frame is not None:
                per_frame(ds, t)
            ds.save_as(str(folder / f"im{n:05d}.dcm"), enforce_file_format=True)
            n += 1


def _pet_factory(study, series, for_uid, date, tracer, nuclide_half_life, dose_bq, inj: str, scan: str):
    def make():
        ds = _base(study, series, for_uid, "PT", "1.2.840.10008.5.1.4.1.1.128", date, tracer)
        ds.Units, ds.DecayCorrection, ds.CorrectedImage = "BQML", "START", ["ATTN", "DECY"]
        ds.SeriesTime = ds.AcquisitionTime = scan
        ds.FrameReferenceTime, ds.ActualFrameDuration = 0.0, 600000
        rp = Dataset()
        rp.Radiopharmaceutical = tracer
        rp.RadiopharmaceuticalStartDateTime = date.strftime("%Y%m%d") + inj
        rp.RadionuclideTotalDose, rp.RadionuclideHalfLife = dose_bq, nuclide_half_life
        ds.RadiopharmaceuticalInformationSequence = [rp]
        return ds
    return make


def write_study(root: Path, *, masks: str = "seg") -> dict:
    """One patient: baseline DCE + VFA + SEG (day -7), FMISO (day -5), 90Y PET (therapy day).

    ``masks="rtstruct"``: the masks as an RTSTRUCT on the DCE series instead of a SEG."""
    d0, therapy = dt.date(2026, 3, 2), dt.date(2026, 3, 9)
    for_uid = generate_uid()
    st_mr, st_pet, st_y = generate_uid(), generate_uid(), generate_uid()
    m = _masks()
    cp = dce.aif.parker(T, delay=14.0, hct=HCT)
    conc = np.zeros(SHAPE_MR + (T.size,))
    conc[m["Liver"]] = dce.simulate(T, "etofts", {"Ktrans": 0.5, "ve": 0.25, "vp": 0.1}, cp=cp)
    for k in ("1", "2"):
        conc[m[f"Lesion {k}"]] = dce.simulate(T, "etofts", TRUTH[k], cp=cp)
    conc[m["Aorta"]] = cp * (1 - HCT)
    t10 = np.full(SHAPE_MR, 0.8)
    t10[m["Aorta"] | m["Blood pool"]] = 1.6
    sig = dce.concentration_to_signal(conc, t10=t10, r1=R1, tr=TR_MS / 1000, flip_angle=FA, m0=2000.0)
    dce_uid = generate_uid()

    def dce_frame(ds, t):
        secs = 10 * 3600 + T[t]
        ds.AcquisitionTime = f"{int(secs // 3600):02d}{int(secs % 3600 // 60):02d}{secs % 60:09.6f}"
        ds.TemporalPositionIdentifier, ds.NumberOfTemporalPositions = t + 1, T.size
        ds.FlipAngle, ds.RepetitionTime, ds.EchoTime = FA, TR_MS, 1.2

    def mr(series_uid, desc):
        return lambda: _base(st_mr, series_uid, for_uid, "MR", "1.2.840.10008.5.1.4.1.1.4", d0, desc)

    _write(root / "mr" / "dce", sig, SP_MR, mr(dce_uid, "DCE"), slope=0.01, per_frame=dce_frame)
    for i, fa in enumerate((3.0, 10.0, 20.0)):
        s = dce.concentration_to_signal(np.zeros(SHAPE_MR + (1,)), t10=t10, r1=R1, tr=TR_MS / 1000,
                                        flip_angle=fa, m0=2000.0)[..., 0]
        uid = generate_uid()

        def vfa_frame(ds, t, fa=fa):
            ds.FlipAngle, ds.RepetitionTime, ds.EchoTime, ds.AcquisitionTime = fa, TR_MS, 1.2, "095000"
        _write(root / "mr" / f"vfa{i}", s, SP_MR, mr(uid, f"VFA {fa:g}"), slope=0.01, per_frame=vfa_frame)
    src = io.read_dicom_series(root / "mr" / "dce").meta["headers"]
    writer = io.write_seg if masks == "seg" else io.write_rtstruct
    writer({k: Image(v, Image.from_spacing(np.zeros(SHAPE_MR), SP_MR).affine) for k, v in m.items()},
           [h[0] if isinstance(h, list) else h for h in src], root / "seg" / "seg.dcm")
    # PET on a 4 mm grid covering the same volume (same frame of reference)
    coarse = lambda a: a.reshape(SHAPE_PET[0], 8, 2, 8, 2).mean(axis=(2, 4))  # noqa: E731
    pet = {k: coarse(v.astype(float)) > 0.5 for k, v in m.items()}
    # FMISO in Bq/mL such that SUV = value: SUV = C * weight_g / decayed dose
    w_g, dose = 70000.0, 3.7e8
    f18 = 6586.2
    decay = 2 ** (-2 * 3600 / f18)
    suv = np.full(SHAPE_PET, 0.8)
    suv[pet["Blood pool"]] = 1.0
    suv[pet["Muscle"]] = 0.9
    suv[pet["Lesion 1"]] = 1.5
    suv[pet["Lesion 2"]] = 1.1
    bqml = suv * dose * decay / w_g
    _write(root / "pet" / "fmiso", bqml, SP_PET,
           _pet_factory(st_pet, generate_uid(), for_uid, dt.date(2026, 3, 4), "FMISO", f18, dose, "080000", "100000"))
    # 90Y: activity at scan (START, 20 h after administration)
    act_admin = np.zeros(SHAPE_PET)
    act_admin[pet["Liver"]] = 2.0e5
    act_admin[pet["Lesion 1"]] = 2.5e6
    act_admin[pet["Lesion 2"]] = 1.0e6
    y_decay = 2 ** (-20 * 3600 / Y90_HALF_LIFE_S)
    _write(root / "pet" / "y90", act_admin * y_decay, SP_PET,
           _pet_factory(st_y, generate_uid(), for_uid, therapy, "Y-90 microspheres", Y90_HALF_LIFE_S, 2.0e9,
                        "080000", "040000"))
    # the 90Y scan is the next day at 04:00: fix SeriesDate/AcquisitionDate
    for f in (root / "pet" / "y90").iterdir():
        ds = pydicom.dcmread(f)
        ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = (therapy + dt.timedelta(days=1)).strftime("%Y%m%d")
        ds.save_as(f)
    (root / "study.yaml").write_text(f"therapy:\n  date: {therapy.isoformat()}\n  type: tare\n")
    return {"pet_masks": pet, "act_admin": act_admin, "suv": suv}




LU_HALF_LIFE_S = 6.647 * 86400
LU_TIMES_H = (4.0, 24.0, 72.0)
LU_EFF_HALF_LIFE_H = 60.0
TRUTH_FU = {"1": {"Ktrans": 0.15, "ve": 0.35, "vp": 0.06}, "2": {"Ktrans": 0.08, "ve": 0.20, "vp": 0.02}}


def _dce_series(root: Path, folder: str, study_uid: str, for_uid: str, date, masks, truth, t10_tissue=0.81):
    cp = dce.aif.parker(T, delay=14.0, hct=HCT)
    conc = np.zeros(SHAPE_MR + (T.size,))
    conc[masks["Liver"]] = dce.simulate(T, "etofts", {"Ktrans": 0.5, "ve": 0.25, "vp": 0.1}, cp=cp)
    for k, par in truth.items():
        conc[masks[f"Lesion {k}"]] = dce.simulate(T, "etofts", par, cp=cp)
    conc[masks["Aorta"]] = cp * (1 - HCT)
    t10 = np.full(SHAPE_MR, t10_tissue)
    t10[masks["Aorta"]] = 1.6
    sig = dce.concentration_to_signal(conc, t10=t10, r1=R1, tr=TR_MS / 1000, flip_angle=FA, m0=2000.0)
    uid = generate_uid()

    def dce_frame(ds, t):
        secs = 10 * 3600 + T[t]
        ds.AcquisitionTime = f"{int(secs // 3600):02d}{int(secs % 3600 // 60):02d}{secs % 60:09.6f}"
        ds.TemporalPositionIdentifier, ds.NumberOfTemporalPositions = t + 1, T.size
        ds.FlipAngle, ds.RepetitionTime, ds.EchoTime = FA, TR_MS, 1.2

    _write(root / folder, sig, SP_MR,
           lambda: _base(study_uid, uid, for_uid, "MR", "1.2.840.10008.5.1.4.1.1.4", date, "DCE"),
           slope=0.01, per_frame=dce_frame)
    src = io.read_dicom_series(root / folder).meta["headers"]
    io.write_seg({k: Image(v, Image.from_spacing(np.zeros(SHAPE_MR), SP_MR).affine) for k, v in masks.items()},
                 [h[0] if isinstance(h, list) else h for h in src], root / f"{folder}_seg" / "seg.dcm")


def write_prrt_study(root: Path) -> dict:
    """One PRRT patient: DCE at baseline (day -7) and follow-up (day +60, lesion 1 shrunk, Ktrans 0.25 -> 0.15)
    with their SEGs, no VFA (T10 defaults), 177Lu PET at 4, 24 and 72 h (START decay correction)."""
    d0, therapy, dfu = dt.date(2026, 3, 2), dt.date(2026, 3, 9), dt.date(2026, 5, 8)
    for_uid = generate_uid()
    m = {k: v for k, v in _masks().items() if k not in ("Blood pool", "Muscle")}
    _dce_series(root, "mr_base", generate_uid(), for_uid, d0, m, TRUTH)
    mf = {k: v.copy() for k, v in m.items()}
    mf["Lesion 1"][:] = False
    mf["Lesion 1"][2:4, 10:12, 6:8] = True                        # 4 x 4 mm (diameter halves), drawn off the
    #                                                              baseline mask: the dose grid must not take it
    _dce_series(root, "mr_fu", generate_uid(), for_uid, dfu, mf, TRUTH_FU)
    coarse = lambda a: a.reshape(SHAPE_PET[0], 8, 2, 8, 2).mean(axis=(2, 4))  # noqa: E731
    pet = {k: coarse(v.astype(float)) > 0.5 for k, v in m.items()}
    a0 = np.zeros(SHAPE_PET)
    a0[pet["Liver"]] = 1.0e4
    a0[pet["Lesion 1"]] = 2.0e5
    a0[pet["Lesion 2"]] = 5.0e4
    lam = np.log(2) / LU_EFF_HALF_LIFE_H
    for i, th in enumerate(LU_TIMES_H):
        when = dt.datetime(2026, 3, 9, 8, 0) + dt.timedelta(hours=th)
        _write(root / f"lu{i}", a0 * np.exp(-lam * th), SP_PET,
               _pet_factory(generate_uid(), generate_uid(), for_uid, when.date(), "Lu-177 DOTATATE", LU_HALF_LIFE_S,
                            7.4e9, "080000", when.strftime("%H%M%S")))
        for f in (root / f"lu{i}").iterdir():                   # the injection was on the therapy day
            ds = pydicom.dcmread(f)
            ds.RadiopharmaceuticalInformationSequence[0].RadiopharmaceuticalStartDateTime = "20260309080000"
            ds.save_as(f)
    (root / "study.yaml").write_text(f"therapy:\n  date: {therapy.isoformat()}\n  type: prrt\n")
    return {"a0": a0, "lambda_per_h": lam, "pet_masks": pet}


def write_mr_followup_study(root: Path) -> None:
    """One patient: DCE + SEG at baseline (day -7) and a plain 3-D MR with its SEG at follow-up (day +60),
    lesion 1 shrunk to a 2 x 2 pixel square (RECIST from the masks of a non-DCE series)."""
    d0, therapy, dfu = dt.date(2026, 3, 2), dt.date(2026, 3, 9), dt.date(2026, 5, 8)
    for_uid = generate_uid()
    m = {k: v for k, v in _masks().items() if k not in ("Blood pool", "Muscle")}
    _dce_series(root, "mr_base", generate_uid(), for_uid, d0, m, TRUTH)
    mf = {k: v.copy() for k, v in m.items()}
    mf["Lesion 1"][:] = False
    mf["Lesion 1"][2:4, 7:9, 7:9] = True
    uid, st = generate_uid(), generate_uid()

    def t2(ds, t):
        ds.FlipAngle, ds.RepetitionTime, ds.EchoTime, ds.AcquisitionTime = 90.0, 3000.0, 80.0, "100000"
    _write(root / "mr_fu", np.where(mf["Liver"], 500.0, 100.0), SP_MR,
           lambda: _base(st, uid, for_uid, "MR", "1.2.840.10008.5.1.4.1.1.4", dfu, "T2 follow-up"), per_frame=t2)
    src = io.read_dicom_series(root / "mr_fu").meta["headers"]
    io.write_seg({k: Image(v, Image.from_spacing(np.zeros(SHAPE_MR), SP_MR).affine) for k, v in mf.items()},
                 src, root / "mr_fu_seg" / "seg.dcm")
    (root / "study.yaml").write_text(f"therapy:\n  date: {therapy.isoformat()}\n  type: prrt\n")
