"""process_patient on PHANTOM's TARE study (1 patient, 3 lesions, real DICOM): recovered vs truth.

Tolerances come from the phantom's design: the PET series are blurred (scanner FWHM) and noisy, so
lesion doses and FMISO ratios move by a few percent; DCE-MRI has Gaussian noise (sigma 4 on
M0 ~ 1000) and a two-angle VFA T10 map; the lesion medians move by up to ~10 % (a noise-free copy is
recovered within 5 %; tests/pipeline/test_patient_dce.py covers exactness). Volumes are exact (the masks
are the SEG).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

phantom = pytest.importorskip("theraquant.phantom")


@pytest.fixture(scope="module")
def tare(tmp_path_factory):
    from theraquant.pipeline import discover_study, process_patient

    root = tmp_path_factory.mktemp("tare")
    ps = phantom.write_tare_study(root / "study", n_patients=1, seed=2026)
    study = discover_study(root / "study")
    outs = {p.patient_id: process_patient(p, study.config, root / "results", study_dir=root / "study")
            for p in study.patients}
    return ps, study, outs


def _long(ps, outs, biomarker):
    t = ps.truth[ps.truth.biomarker == biomarker]
    rec = []
    for _, r in t.iterrows():
        les = outs[r.patient_id].lesions.set_index("lesion")
        rec.append(float(les.loc[str(r.lesion), biomarker]))
    return t["value"].to_numpy(float), np.asarray(rec)


@pytest.mark.slow
def test_tare_phantom_recovered(tare):
    ps, study, outs = tare
    assert len(outs) == 1 and len(ps.truth.lesion.unique()) >= 2
    for o in outs.values():
        assert o.failures == (), o.failures
        assert (o.lesions["notes"] == "").all()
        assert o.lesions["dce_model"].eq("dual_input_etofts").all()      # the phantom has a portal vein
    true, rec = _long(ps, outs, "volume_ml")
    np.testing.assert_allclose(rec, true, rtol=1e-9)
    for name, tol in (("dmean_gy", 0.05), ("t_bp", 0.10), ("suvmax_fmiso", 0.10)):
        true, rec = _long(ps, outs, name)
        np.testing.assert_allclose(rec, true, rtol=tol, err_msg=name)
    # DCE: Ktrans and ve within 20 %, vp within 30 % (measured on this phantom: up to 7 %, 3 % and 10 %)
    for name, tol in (("ktrans", 0.2), ("ve", 0.2), ("vp", 0.3)):
        true, rec = _long(ps, outs, name)
        np.testing.assert_allclose(rec, true, rtol=tol, err_msg=name)
    # hypoxia flags and PERCIST categories: the phantom puts every lesion well clear of the cut-offs here
    t = ps.truth[ps.truth.biomarker == "response"]
    got = [outs[r.patient_id].lesions.set_index("lesion").loc[str(r.lesion), "response"] for _, r in t.iterrows()]
    assert got == t["value"].tolist()
    # the patient rows
    for o in outs.values():
        assert o.patient_row["status"] == "ok" and o.patient_row["dose_normal_liver_gy"] > 0
        assert set(o.dvh["lesion"]) >= {"liver"}


@pytest.mark.slow
def test_percist_falls_back_to_suvbw_for_both_scans(tare, tmp_path):
    """The follow-up FDG without PatientSize: no SUL for it, so both scans are read as SUVbw (comparable),
    said in a warning; the lesion grades (relative changes) stay those of the SUL run."""
    import shutil

    import pydicom

    from theraquant.pipeline import discover_study, process_patient

    ps, study, outs = tare
    root = tmp_path / "study"
    shutil.copytree(study.study_dir, root)
    s = discover_study(root)
    p = s.patients[0]
    for f in p.timepoints["fdg_followup"].files:
        ds = pydicom.dcmread(root / Path(f).relative_to(s.study_dir))
        del ds.PatientSize
        ds.save_as(root / Path(f).relative_to(s.study_dir))
    s = discover_study(root)
    out = process_patient(s.patients[0], s.config, tmp_path / "res", study_dir=root)
    assert out.settings["response"]["normalization"] == "bw"
    assert any("SUVbw used for both scans" in w for w in out.warnings)
    ref = outs[p.patient_id].lesions.set_index("lesion")
    les = out.lesions.set_index("lesion")
    assert (les["response"] == ref["response"]).all()
    # SUVbw / SUL = weight / lean body mass, the same factor at both scans: the change is unchanged
    np.testing.assert_allclose(les["response_change_pct"], ref["response_change_pct"], rtol=1e-6)
    assert (les["response_baseline"] > ref["response_baseline"]).all()
