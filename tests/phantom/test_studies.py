"""The phantom studies on disk: DICOM that reads back through theraquant.io and theraquant.pet,
SEGs on the series they reference, one frame of reference per patient, dates, and a truth
table that agrees with the images.

Small studies (2 patients each, one process) keep this fast. Tolerances are stated per test:
the truth is defined on the noise-free images, so the read-back noisy images may differ by
the noise (PET 3 %, 90Y 8 % per voxel, SPECT 3 %) and the 16-bit storage (< 1e-4).
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pydicom
import pytest

from theraquant import dosimetry, pet
from theraquant.io import read_dicom_series, read_seg
from theraquant.phantom import write_prrt_study, write_tare_study
from theraquant.phantom._headers import TRACERS

N = 2


def _series(root: Path) -> dict[str, list[tuple[Path, pydicom.Dataset]]]:
    out: dict[str, list] = defaultdict(list)
    for f in root.rglob("*"):
        if f.is_file():
            ds = pydicom.dcmread(f, stop_before_pixels=True)  # every file is DICOM
            out[str(ds.SeriesInstanceUID)].append((f, ds))
    return out


def _role(ds: pydicom.Dataset) -> str:
    if ds.Modality == "SEG":
        return "seg"
    if ds.Modality in ("PT", "NM"):
        text = str(ds.RadiopharmaceuticalInformationSequence[0].Radiopharmaceutical).lower()
        return next(k for k in ("fmiso", "fdg", "y90", "lu177") if k.replace("y90", "90y") in text
                    or (k == "lu177" and "lu-177" in text))
    return "dce" if "NumberOfTemporalPositions" in ds else "vfa"


def _dt(da: str, tm: str) -> datetime:
    return datetime.strptime(da + tm.split(".")[0], "%Y%m%d%H%M%S")


@pytest.fixture(scope="module")
def tare(tmp_path_factory):
    return write_tare_study(tmp_path_factory.mktemp("tare"), n_patients=N, seed=11, workers=1)


@pytest.fixture(scope="module")
def prrt(tmp_path_factory):
    return write_prrt_study(tmp_path_factory.mktemp("prrt"), n_patients=N, seed=11, workers=1)


@pytest.fixture(scope="module")
def tare_series(tare):
    return _series(tare.study_dir)


@pytest.fixture(scope="module")
def prrt_series(prrt):
    return _series(prrt.study_dir)


def _by_patient(series):
    pats: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for uid, items in series.items():
        ds = items[0][1]
        pats[str(ds.PatientID)][_role(ds)].append(items)
    return pats


def _seg_for(pats_roles, series_uid):
    for items in pats_roles["seg"]:
        ds = items[0][1]
        if ds.ReferencedSeriesSequence[0].SeriesInstanceUID == series_uid:
            return items[0][0]
    raise AssertionError(f"no SEG references {series_uid}")


def test_tare_layout_roles_frame_of_reference_and_dates(tare, tare_series):
    files = [f for items in tare_series.values() for f, _ in items]
    assert any(f.suffix == "" for f in files) and any(f.suffix.lower() == ".dcm" for f in files)
    assert len({f.parent for f in files}) > 10 and max(len(f.relative_to(tare.study_dir).parts) for f in files) >= 4
    pats = _by_patient(tare_series)
    assert sorted(pats) == ["TARE-001", "TARE-002"]
    for pid, roles in pats.items():
        counts = {k: len(v) for k, v in roles.items()}
        assert counts == {"vfa": 2, "dce": 1, "fmiso": 1, "y90": 1, "fdg": 2, "seg": 5}, counts
        fors = {str(it[0][1].FrameOfReferenceUID) for v in roles.values() for it in v}
        assert len(fors) == 1  # registered: one frame of reference per patient
        assert sorted(float(it[0][1].FlipAngle) for it in roles["vfa"]) == [3.0, 15.0]
        therapy = date.fromisoformat(tare.patients.set_index("patient_id").therapy_date[pid])
        when = {r: sorted(_dt(it[0][1].SeriesDate, it[0][1].AcquisitionTime).date() for it in v)
                for r, v in roles.items() if r != "seg"}
        assert max(when["dce"] + when["vfa"] + when["fmiso"] + when["fdg"][:1]) < therapy
        assert when["y90"] == [therapy]  # the therapy date is that of the first 90Y series
        assert 60 <= (when["fdg"][1] - therapy).days <= 92  # follow-up 2-3 months after
        # SEG labels
        labels = set()
        for items in roles["seg"]:
            labels |= {str(s.SegmentLabel) for s in items[0][1].SegmentSequence}
        n_les = int(tare.patients.set_index("patient_id").n_lesions[pid])
        assert labels == {f"lesion {k}" for k in range(1, n_les + 1)} | {"liver", "aorta", "portal vein",
                                                                        "blood pool", "muscle"}


def test_tare_dce_reads_back_with_scanner_timing(tare_series):
    from theraquant.phantom._studies import _dce_frames

    items = next(v for v in tare_series.values() if _role(v[0][1]) == "dce")
    img = read_dicom_series(items[0][0].parent, series_uid=str(items[0][1].SeriesInstanceUID))
    assert img.array.ndim == 4 and img.array.shape[-1] == _dce_frames().size
    np.testing.assert_allclose(img.frame_times_s, _dce_frames(), atol=1e-5)
    assert len(set(np.round(np.diff(img.frame_times_s), 3))) > 1  # non-uniform frames


def test_seg_volume_matches_truth(tare, tare_series):
    """Lesion volume from the DCE SEG equals the truth volume_ml (same rasterisation: within 5 %)."""
    pats = _by_patient(tare_series)
    for pid, roles in pats.items():
        dce_uid = str(roles["dce"][0][0][1].SeriesInstanceUID)
        seg = read_seg(_seg_for(roles, dce_uid))
        for label, m in seg.masks.items():
            if label.startswith("lesion "):
                vol = m.array.sum() * m.voxel_volume_ml
                truth = tare.value(pid, label.split()[1], "volume_ml")
                assert vol == pytest.approx(truth, rel=0.05)


def test_fmiso_suv_and_t_bp_agree_with_truth(tare, tare_series):
    """T/BP from the read-back SUV image and SEG within 10 % of the noise-free truth (3 % voxel
    noise raises a lesion maximum over ~10-100 voxels by ~2-3 SD of the noise, < 10 %)."""
    pats = _by_patient(tare_series)
    for pid, roles in pats.items():
        items = roles["fmiso"][0]
        suv = pet.read_suv(items[0][0].parent, series_uid=str(items[0][1].SeriesInstanceUID))
        assert suv.units == "g/mL"
        seg = read_seg(_seg_for(roles, str(items[0][1].SeriesInstanceUID)), reference=suv)
        bp = suv.array[seg.masks["blood pool"].array].mean()
        for label, m in seg.masks.items():
            if label.startswith("lesion "):
                t_bp = suv.array[m.array].max() / bp
                assert t_bp == pytest.approx(tare.value(pid, label.split()[1], "t_bp"), rel=0.10)


def test_y90_dose_from_the_image_agrees_with_truth(tare, tare_series):
    """LDM dose from the read-back 90Y PET, decayed back to administration: lesion mean within
    10 % of the truth (8 % voxel noise averaged over >= 7 voxels, plus storage rounding)."""
    pats = _by_patient(tare_series)
    for pid, roles in pats.items():
        items = roles["y90"][0]
        ds = items[0][1]
        img = read_dicom_series(items[0][0].parent, series_uid=str(ds.SeriesInstanceUID))
        assert ds.Units == "BQML" and ds.DecayCorrection == "START"
        rp = ds.RadiopharmaceuticalInformationSequence[0]
        admin = datetime.strptime(str(rp.RadiopharmaceuticalStartDateTime).split(".")[0], "%Y%m%d%H%M%S")
        dt = (_dt(ds.SeriesDate, ds.SeriesTime) - admin).total_seconds()
        a0 = img.array * math.exp(math.log(2) / TRACERS["y90"]["half_life_s"] * dt)
        tia = dosimetry.permanent_implant_tia(a0 * img.voxel_volume_ml, "Y-90")
        dose = np.asarray(dosimetry.absorbed_dose(tia, img.spacing_mm, nuclide="Y-90", method="ldm"))
        seg = read_seg(_seg_for(roles, str(ds.SeriesInstanceUID)), reference=img)
        for label, m in seg.masks.items():
            if label.startswith("lesion "):
                truth = tare.value(pid, label.split()[1], "dmean_gy")
                assert dose[m.array].mean() == pytest.approx(truth, rel=0.10)


def test_fdg_followup_follows_the_drawn_response(tare, tare_series):
    """PERCIST on the read-back SUV images gives each lesion's truth category: CMR at or below the
    liver mean, PMR <= -40 %, SMD within +-10 %, PMD >= +40 % (clear of the 30 % boundaries)."""
    pats = _by_patient(tare_series)
    seen = set()
    for pid, roles in pats.items():
        fdg = sorted(roles["fdg"], key=lambda it: str(it[0][1].SeriesDate))
        imgs = [pet.read_suv(it[0][0].parent, series_uid=str(it[0][1].SeriesInstanceUID)) for it in fdg]
        segs = [read_seg(_seg_for(roles, str(it[0][1].SeriesInstanceUID)), reference=im)
                for it, im in zip(fdg, imgs)]
        liver_fu = imgs[1].array[segs[1].masks["liver"].array].mean()
        for label in segs[0].masks:
            if not label.startswith("lesion "):
                continue
            pk = [pet.suv_peak(im.array, s.masks[label].array, im.spacing_mm) for im, s in zip(imgs, segs)]
            cat = tare.value(pid, label.split()[1], "response")
            seen.add(cat)
            change = pk[1] / pk[0] - 1
            if cat == "CMR":
                assert pk[1] <= liver_fu
            elif cat == "PMR":
                assert change <= -0.40 and pk[1] > liver_fu
            elif cat == "SMD":
                assert abs(change) <= 0.10
            else:
                assert cat == "PMD" and change >= 0.40
    assert seen  # at least one lesion graded


def test_prrt_layout_spect_kinetics_and_recist_sizes(prrt, prrt_series):
    pats = _by_patient(prrt_series)
    assert sorted(pats) == ["PRRT-001", "PRRT-002"]
    for pid, roles in pats.items():
        counts = {k: len(v) for k, v in roles.items()}
        assert counts == {"vfa": 4, "dce": 2, "lu177": 4, "seg": 2}, counts
        assert len({str(it[0][1].FrameOfReferenceUID) for v in roles.values() for it in v}) == 1
        spect = sorted(roles["lu177"], key=lambda it: _dt(it[0][1].SeriesDate, it[0][1].SeriesTime))
        ds0 = spect[0][0][1]
        assert ds0.Modality == "NM" and ds0.Units == "BQML"
        admin = datetime.strptime(str(ds0.RadiopharmaceuticalInformationSequence[0]
                                      .RadiopharmaceuticalStartDateTime).split(".")[0], "%Y%m%d%H%M%S")
        hours = [(_dt(it[0][1].SeriesDate, it[0][1].SeriesTime) - admin).total_seconds() / 3600 for it in spect]
        np.testing.assert_allclose(hours, [4, 24, 72, 168], atol=1e-6)
        imgs = [read_dicom_series(it[0][0].parent, series_uid=str(it[0][1].SeriesInstanceUID)) for it in spect]
        dces = sorted(roles["dce"], key=lambda it: str(it[0][1].SeriesDate))
        segs = [read_seg(_seg_for(roles, str(it[0][1].SeriesInstanceUID))) for it in dces]
        for label, m in segs[0].masks.items():
            if not label.startswith("lesion "):
                continue
            lid = label.split()[1]
            # dose: fit the lesion's mean TAC (mask resampled onto the SPECT grid through the shared
            # frame of reference); within 15 % of the truth (8 mm MR slices resampled to 4.8 mm)
            mk = m.resample_like(imgs[0], interpolation="nearest").array > 0.5
            tac = np.asarray([im.array[mk].mean() for im in imgs])  # Bq/mL
            fit = dosimetry.fit_tac(hours, tac / 1e6, nuclide="Lu-177", model="mono")
            tia_per_ml = float(np.asarray(fit.tia_mbq_h)) * 1e6 * 3600.0
            gy = dosimetry.absorbed_dose(np.ones((1, 1, 1)) * tia_per_ml, (10.0, 10.0, 10.0), nuclide="Lu-177",
                                         method="ldm")
            gy = float(np.asarray(gy)[0, 0, 0]) / 1.0  # Gy for tia_per_ml in a 1 mL voxel
            assert gy == pytest.approx(prrt.value(pid, lid, "dmean_gy"), rel=0.15)
            # follow-up size consistent with the RECIST category: the longest axial diameters of the
            # SEG masks are the truth's (same rasterisation, exact) and clear of RECIST's boundaries
            from theraquant import response

            d0 = response.longest_axial_diameter(m.array, m.spacing_mm)
            d1 = response.longest_axial_diameter(segs[1].masks[label].array, m.spacing_mm)
            assert d0 == pytest.approx(prrt.value(pid, lid, "response_baseline"), abs=1e-9)
            assert d1 == pytest.approx(prrt.value(pid, lid, "response_followup"), abs=1e-9)
            v0 = m.array.sum()
            v1 = segs[1].masks[label].array.sum()
            cat = prrt.value(pid, lid, "response")
            if cat == "CR":
                assert v1 == 0 and d1 == 0.0
            elif cat == "PR":
                assert v1 < 0.25 * v0 and d1 <= 0.6 * d0  # RECIST PR: <= -30 %
            elif cat == "SD":
                assert v1 == v0 and d1 == d0
            else:
                assert v1 > 2.0 * v0 and d1 >= 1.3 * d0 and d1 - d0 >= 7.0  # PD: >= +20 % and +5 mm


def test_truth_table_and_reproducibility(tare, prrt, tmp_path):
    for st in (tare, prrt):
        t = st.truth
        assert list(t.columns) == ["patient_id", "lesion", "biomarker", "unit", "value"]
        assert not t.duplicated(["patient_id", "lesion", "biomarker"]).any()
        names = set(t.biomarker)
        assert {"ktrans", "kep", "ve", "vp", "fa", "dmean_gy", "d70_gy", "volume_ml", "response",
                "responder"} <= names
        p = st.write_truth(tmp_path / f"{st.design}.csv")
        assert p.read_text().startswith("patient_id,lesion,biomarker,unit,value")
    assert {"t_bp", "t_m", "hypoxic", "hypoxic_fraction"} <= set(tare.truth.biomarker)
    assert {"ktrans_followup", "ktrans_change_pct"} <= set(prrt.truth.biomarker)
    again = write_tare_study(tmp_path / "again", n_patients=1, seed=11, workers=1)
    first = tare.truth[tare.truth.patient_id == "TARE-001"].reset_index(drop=True)
    assert again.truth.equals(first)  # patient i draws from its own seed: same truth


def test_bad_arguments(tmp_path):
    from theraquant.errors import TheraquantError

    with pytest.raises(TheraquantError, match="n_patients must be a positive integer"):
        write_tare_study(tmp_path, n_patients=0)
    with pytest.raises(TheraquantError, match="n_patients must be a positive integer"):
        write_prrt_study(tmp_path, n_patients=2.5)


def test_patient_level_truth(tare, prrt):
    for st in (tare, prrt):
        pl = st.truth[st.truth.lesion == ""]
        assert set(pl.biomarker) == {"dose_normal_liver_gy"} and len(pl) == N
        # TARE normal liver 25-45 Gy before blur; PRRT 3-6 Gy (blur mixes in lesions and body)
        lo, hi = (15.0, 60.0) if st.design == "tare" else (1.0, 12.0)
        assert pl.value.astype(float).between(lo, hi).all(), pl
