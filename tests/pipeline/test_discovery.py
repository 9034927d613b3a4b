"""Study discovery on tiny synthetic DICOM studies (4x4 pixels, a few files each)."""

from __future__ import annotations

import datetime as dt
import importlib.util
import sys
from pathlib import Path

import pytest

from theraquant import TheraquantError
from theraquant.pipeline import StudyConfig, discover_study, parse_segment_label


def _factory():
    name = "_theraquant_study_factory"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("_study_factory.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


fac = _factory()
THERAPY = dt.date(2024, 3, 1)


@pytest.fixture(scope="module")
def tare_study(tmp_path_factory):
    root = tmp_path_factory.mktemp("tare")
    pats = [fac.Patient("ZZ-0002", name="Beta^Bob"), fac.Patient("AA-0001", name="Alpha^Ann")]
    uids = {p.patient_id: fac.tare_patient(root, p, THERAPY) for p in pats}
    (root / "README.txt").write_text("scanner export\n")
    return root, uids


def test_patients_pseudonymised_in_patientid_order(tare_study):
    root, _ = tare_study
    study = discover_study(root)
    assert [(p.pseudonym, p.patient_id) for p in study.patients] == [("P001", "AA-0001"), ("P002", "ZZ-0002")]
    assert study.patient("P002").identifiers["PatientName"] == "Beta^Bob"
    assert study.n_dicom == 2 * 25  # per patient: 2 + 2 VFA + 8 DCE files, 4 x 2 PET files, 5 SEG
    assert study.n_files == study.n_dicom + 1


def test_roles_and_time_points_from_headers(tare_study):
    root, uids = tare_study
    p = discover_study(root).patient("AA-0001")
    u = uids["AA-0001"]
    roles = {s.series_uid: s.role for s in p.series}
    assert roles[u["dce"]] == "dce" and roles[u["vfa2"]] == roles[u["vfa15"]] == "vfa"
    assert roles[u["fmiso"]] == "fmiso" and roles[u["fdg"]] == roles[u["fdg_fu"]] == "fdg"
    assert roles[u["y90"]] == "y90" and roles[u["seg_dce"]] == "seg"
    tp = p.timepoints
    assert set(tp) == {"dce_baseline", "vfa_baseline", "fmiso_baseline", "fdg_baseline", "fdg_followup", "y90_post"}
    assert tp["dce_baseline"].series_uid == u["dce"] and tp["dce_baseline"].n_temporal == 4
    # files without extension are found (the DCE is written with bare numbers as names)
    assert len(tp["dce_baseline"].files) == 8 and all(f.suffix == "" for f in tp["dce_baseline"].files)
    assert all(f.is_absolute() for f in tp["dce_baseline"].files)
    # the two one-angle VFA series are one time point holding both angles
    vfa = tp["vfa_baseline"]
    assert vfa.flip_angles == (2.0, 15.0) and set(vfa.member_series_uids) == {u["vfa2"], u["vfa15"]}
    assert len(vfa.files) == 4
    assert tp["fdg_baseline"].series_uid == u["fdg"] and tp["fdg_followup"].series_uid == u["fdg_fu"]
    # therapy date from the first 90Y series (no study.yaml)
    assert p.therapy_date == THERAPY + dt.timedelta(days=1) and p.therapy_source == "first y90/lu177"
    assert p.therapy_type == "tare"
    # masks: the SEG that references each series
    assert [m.series_uid for m in p.masks_for(u["dce"])] == [u["seg_dce"]]
    assert p.masks_for(u["dce"])[0].segment_labels == ("Lesion 1", "Lesion 2", "Liver", "Aorta", "Portal vein")
    assert [m.series_uid for m in p.masks_for(u["fmiso"])] == [u["seg_fmiso"]]


def test_non_dicom_file_is_a_problem_line_not_a_crash(tare_study):
    root, _ = tare_study
    study = discover_study(root)
    assert "README.txt: not a DICOM file (no DICM preamble); skipped" in study.problems
    assert not [p for p in study.patients if p.problems]  # complete patients: no problems


def test_therapy_date_from_config_moves_baseline_and_followup(tmp_path):
    p = fac.Patient("P-1")
    d1, d2, d3 = dt.date(2024, 1, 10), dt.date(2024, 2, 10), dt.date(2024, 3, 10)
    s1 = fac.mr_series(tmp_path / "a", p, d1, n_times=3, desc="dce jan")
    s2 = fac.mr_series(tmp_path / "b", p, d2, n_times=3, desc="dce feb")
    s3 = fac.mr_series(tmp_path / "c", p, d3, n_times=3, desc="dce mar")
    for s, d in ((s1, d1), (s2, d2), (s3, d3)):
        fac.seg_file(tmp_path / "seg" / f"{s}.dcm", p, d, ["Lesion 1"], [s])
    cases = [({"therapy": {"date": "2024-02-10"}}, s2, s3, "therapy.date"),
             ({"therapy": {"date": "2024-02-09"}, "patients": {"P-1": {"therapy_date": "2024-03-01"}}}, s2, s3,
              "patients.P-1.therapy_date"),
             ({"therapy": {"date": "2024-01-31"}}, s1, s2, "therapy.date")]
    for cfg, base, fu, source in cases:
        pt = discover_study(tmp_path, config=StudyConfig.model_validate(cfg)).patients[0]
        assert pt.timepoints["dce_baseline"].series_uid == base
        assert pt.timepoints["dce_followup"].series_uid == fu
        assert pt.therapy_source == source


def test_dce_from_acquisition_times_or_trigger_times_without_temporal_tags(tmp_path):
    p = fac.Patient("P-2")
    d = dt.date(2024, 1, 10)
    a = fac.mr_series(tmp_path / "a", p, d, n_times=3, temporal_tags=False, times_s=(0, 4.5, 13))
    b = fac.mr_series(tmp_path / "b", p, d, n_times=5, temporal_tags=False, trigger=True)
    c = fac.mr_series(tmp_path / "c", p, d, n_slices=3, desc="T2 anatomy")
    roles = {s.series_uid: (s.role, s.n_temporal) for s in discover_study(tmp_path).patients[0].series}
    assert roles[a] == ("dce", 3) and roles[b] == ("dce", 5) and roles[c] == ("mr", 1)


def test_vfa_with_several_angles_in_one_series(tmp_path):
    p = fac.Patient("P-3")
    d = dt.date(2024, 1, 10)
    v = fac.mr_series(tmp_path / "v", p, d, flip_angles=(2.0, 5.0, 15.0), desc="VFA")
    other = fac.mr_series(tmp_path / "w", p, d, n_slices=5, flip_angles=(90.0,), desc="other geometry")
    pt = discover_study(tmp_path, config=StudyConfig.model_validate({"therapy": {"date": "2024-02-01"}})).patients[0]
    roles = {s.series_uid: s.role for s in pt.series}
    assert roles[v] == "vfa" and roles[other] == "mr"
    vfa = pt.timepoints["vfa_baseline"]
    assert vfa.series_uid == v and vfa.flip_angles == (2.0, 5.0, 15.0) and vfa.n_temporal == 1
    assert vfa.member_series_uids == () and len(vfa.files) == 6


@pytest.mark.parametrize("modality, tracer, nuclide, role", [
    ("PT", "18F-Fluoromisonidazole", "", "fmiso"),
    ("PT", "fmiso", "^18^Fluorine", "fmiso"),
    ("PT", "Fludeoxyglucose F^18^ (FDG)", "", "fdg"),
    ("PT", "", "^90^Yttrium", "y90"),
    ("PT", "Y-90 microspheres", "", "y90"),
    ("NM", "Lu-177 DOTATATE", "", "lu177"),
    ("NM", "", "^177^Lutetium", "lu177"),
    ("PT", "177Lu-PSMA", "", "lu177"),
    ("PT", "Ga-68 DOTATOC", "", "other"),
    ("NM", "Tc-99m MAA", "", "other"),
])
def test_pet_and_nm_roles_from_the_tracer(tmp_path, modality, tracer, nuclide, role):
    p = fac.Patient("P-4")
    uid = fac.pet_series(tmp_path / "s", p, dt.date(2024, 1, 1), tracer=tracer, nuclide=nuclide, modality=modality)
    s = discover_study(tmp_path).patients[0].series_by_uid(uid)
    assert s.role == role and s.modality == modality


def test_lu177_time_points_in_order_and_therapy_type(tmp_path):
    p = fac.Patient("P-5")
    t = dt.date(2024, 5, 1)
    uids = [fac.pet_series(tmp_path / f"spect{k}", p, t + dt.timedelta(days=k), tracer="177Lu-DOTATATE",
                           modality="NM") for k in (3, 1, 6)]
    pt = discover_study(tmp_path, config=StudyConfig.model_validate({"therapy": {"date": "2024-05-01"}})).patients[0]
    assert [s.series_uid for s in pt.lu177] == [uids[1], uids[0], uids[2]]
    assert pt.therapy_type == "prrt"
    assert any("missing baseline DCE-MRI (dce_baseline)" in q for q in pt.problems)


def test_rtstruct_roi_names_and_reference(tmp_path):
    p = fac.Patient("P-6")
    d = dt.date(2024, 1, 1)
    ct = fac.pet_series(tmp_path / "fdg", p, d, tracer="FDG")
    rs = fac.rtstruct_file(tmp_path / "rs.dcm", p, d, ["Tumor 1", "Liver", "Blood Pool"], ct)
    pt = discover_study(tmp_path).patients[0]
    s = pt.series_by_uid(rs)
    assert s.role == "rtstruct" and s.segment_labels == ("Tumor 1", "Liver", "Blood Pool")
    assert s.referenced_series_uids == (ct,) and s.frame_of_reference_uid == p.for_uid
    assert [m.series_uid for m in pt.masks_for(ct)] == [rs]


def test_bad_files_and_inconsistent_studies_give_one_line_each(tmp_path):
    p = fac.Patient("P-7")
    t = dt.date(2024, 3, 1)
    dce = fac.mr_series(tmp_path / "dce", p, t - dt.timedelta(days=5), n_times=3)
    fac.seg_file(tmp_path / "seg_dce.dcm", p, t - dt.timedelta(days=5), ["Lesion 1", "Aorta"], [dce])
    fac.seg_file(tmp_path / "orphan" / "seg.dcm", p, t, ["Lesion 1"], ["1.2.3.4.5"])
    y90 = fac.pet_series(tmp_path / "y90", p, t - dt.timedelta(days=1), nuclide="^90^Yttrium")
    # a file truncated inside its header, an empty file, a text file
    good = next((tmp_path / "y90").iterdir()).read_bytes()
    (tmp_path / "broken.dcm").write_bytes(good[:300])
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "notes.csv").write_text("a,b\n1,2\n")
    # an MR whose acquisition date contradicts its StudyDate
    odd = fac.mr_series(tmp_path / "odd", p, t - dt.timedelta(days=5), desc="odd")
    import pydicom
    for f in (tmp_path / "odd").iterdir():
        ds = pydicom.dcmread(f)
        ds.AcquisitionDate = "20230101"
        ds.save_as(f)
    cfg = StudyConfig.model_validate({"therapy": {"date": "2024-03-01", "type": "tare"},
                                      "patients": {"NOBODY": {"therapy_date": "2024-01-01"}}})
    study = discover_study(tmp_path, config=cfg)
    text = "\n".join(study.problems)
    assert "broken.dcm: " in text and "empty: " in text and "notes.csv: not a DICOM file" in text
    assert "P001: orphan/seg.dcm: SEG references series 1.2.3.4.5, none of which is in the study" in text
    assert "P001: y90/0000.dcm: contradicting dates: the 90Y series of 2024-02-29 is before the therapy date " \
           "2024-03-01 (therapy.date)" in text
    assert "P001: odd/0000.dcm: contradicting dates: StudyDate 2024-02-25 but acquired 2023-01-01" in text
    assert "P001: missing baseline FMISO PET (fmiso_baseline)" in text
    assert "P001: missing post-therapy 90Y PET (y90_post)" in text
    assert "study.yaml: patients.NOBODY: no such PatientID in the study" in text
    pt = study.patients[0]
    assert pt.timepoints["dce_baseline"].series_uid == dce and "y90_post" not in pt.timepoints
    assert pt.series_by_uid(y90).role == "y90"
    assert "P-7" not in text  # problems name the patient by pseudonym


def test_missing_folder_is_an_error(tmp_path):
    with pytest.raises(TheraquantError, match="does not exist or is not a folder"):
        discover_study(tmp_path / "nothing")


def test_progress_counts_every_file(tare_study):
    root, _ = tare_study
    seen = []
    study = discover_study(root, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (study.n_files, study.n_files)  # reported per chunk of files, up to all of them
    assert all(a[0] < b[0] for a, b in zip(seen, seen[1:]))


@pytest.mark.parametrize("label, expected", [
    ("Lesion 3", ("lesion", "3")), ("lesion_12", ("lesion", "12")), ("Tumour 2", ("lesion", "2")),
    ("TUMOR-7", ("lesion", "7")), ("liver", ("liver", None)), ("Blood Pool", ("blood_pool", None)),
    ("blood_pool", ("blood_pool", None)), ("AORTA", ("aorta", None)), ("portal vein", ("portal_vein", None)),
    ("Muscle", ("muscle", None)), ("Spleen", ("other", None)), ("Lesion", ("lesion", None)),  # no <id>: the pipeline skips it
])
def test_segment_labels(label, expected):
    assert parse_segment_label(label) == expected


def test_headers_read_on_an_executor_give_the_same_study(tare_study):
    from concurrent.futures import ThreadPoolExecutor

    root, _ = tare_study
    plain = discover_study(root)
    with ThreadPoolExecutor(2) as ex:
        pooled = discover_study(root, executor=ex)
    assert pooled.patients == plain.patients and pooled.problems == plain.problems


def test_enhanced_multiframe_mr_roles_from_functional_groups(tmp_path):
    """One Enhanced MR file: 2 slices x 3 temporal positions in its per-frame functional groups -> dce."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    p = fac.Patient("P-8")
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4.1"  # Enhanced MR Image Storage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4.1"
    ds.PatientID, ds.Modality, ds.StudyDate = p.patient_id, "MR", "20240110"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = generate_uid(), generate_uid(), p.for_uid
    ds.NumberOfFrames, ds.Rows, ds.Columns = 6, 4, 4
    shared = Dataset()
    timing = Dataset()
    timing.FlipAngle = 12.0
    shared.MRTimingAndRelatedParametersSequence = [timing]
    ds.SharedFunctionalGroupsSequence = [shared]
    frames = []
    for t in range(3):
        for z in range(2):
            fg, content, pos = Dataset(), Dataset(), Dataset()
            content.TemporalPositionIndex = t + 1
            pos.ImagePositionPatient = [0.0, 0.0, 2.0 * z]
            fg.FrameContentSequence, fg.PlanePositionSequence = [content], [pos]
            frames.append(fg)
    ds.PerFrameFunctionalGroupsSequence = frames
    ds.save_as(str(tmp_path / "enhanced.dcm"), enforce_file_format=True)
    s = discover_study(tmp_path).patients[0].series[0]
    assert (s.role, s.n_temporal, s.flip_angles) == ("dce", 3, (12.0,))
