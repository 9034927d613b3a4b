"""Write the small example inputs of the README's `pet hypoxia`, `dose` and `response` commands.

Deterministic (no random numbers): running it again writes the same files. Run from the
repository root:  python examples/data/make_examples.py

* fmiso/fmiso_suv.nii.gz + labels.nii.gz: a 16 x 16 x 8 FMISO SUV image (4 mm voxels) with a
  tumour (label 1, a hot core at SUV 2.0 and a rim at 1.4), a blood pool (label 2, aorta, SUV 1.25)
  and a muscle region (label 3, SUV 1.0): T/BP = 1.6, T/M = 2.0.
* dose/y90_activity_bq_ml.nii.gz: 90Y PET activity concentration after radioembolization
  (Bq/mL), tumour (label 1) 2 MBq/mL and normal liver (label 2) 0.25 MBq/mL, 4 mm voxels;
  dose/lu177_tia_bq_s_ml.nii.gz: a 177Lu time-integrated activity concentration (Bq s/mL);
  dose/labels.nii.gz: the two regions.
* response/recist_lesions.csv (diameters, mm) and response/percist_lesions.csv (SULpeak).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from theraquant import Image
from theraquant.io import write_nifti

HERE = Path(__file__).resolve().parent
SHAPE = (8, 16, 16)  # z, y, x
SPACING = (4.0, 4.0, 4.0)  # mm


def _ball(centre, radius_vox):
    z, y, x = np.indices(SHAPE)
    return ((z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2) <= radius_vox ** 2


def fmiso() -> None:
    out = HERE / "fmiso"
    suv = np.full(SHAPE, 0.9)
    labels = np.zeros(SHAPE, np.int16)
    tumour = _ball((4, 6, 6), 2.5)
    core = _ball((4, 6, 6), 1.2)
    suv[tumour] = 1.4
    suv[core] = 2.0
    labels[tumour] = 1
    aorta = np.zeros(SHAPE, bool)
    aorta[1:7, 11:13, 11:13] = True
    suv[aorta] = 1.25
    labels[aorta] = 2
    muscle = np.zeros(SHAPE, bool)
    muscle[1:7, 12:15, 2:5] = True
    suv[muscle] = 1.0
    labels[muscle] = 3
    write_nifti(Image.from_spacing(suv, SPACING, units="g/mL"), out / "fmiso_suv.nii.gz",
                sidecar={"Description": "example FMISO SUV image (synthetic, theraquant examples)"})
    write_nifti(Image.from_spacing(labels, SPACING), out / "labels.nii.gz", dtype=np.int16,
                sidecar={"LabelNames": {"1": "tumour", "2": "aorta", "3": "muscle"}})


def dose() -> None:
    out = HERE / "dose"
    labels = np.zeros(SHAPE, np.int16)
    liver = np.zeros(SHAPE, bool)
    liver[1:7, 2:14, 2:14] = True
    tumour = _ball((4, 7, 7), 2.2)
    labels[liver] = 2
    labels[tumour] = 1
    activity = np.where(labels == 1, 2.0e6, np.where(labels == 2, 0.25e6, 0.0))  # Bq/mL
    write_nifti(Image.from_spacing(activity, SPACING, units="Bq/mL"), out / "y90_activity_bq_ml.nii.gz",
                sidecar={"Description": "example 90Y activity concentration at implantation (synthetic)"})
    # 177Lu: 0.2 MBq/mL in the tumour with a 60 h effective half-life -> TIA = A0 T/ln 2
    tia = np.where(labels == 1, 0.2e6, np.where(labels == 2, 0.02e6, 0.0)) * 60.0 * 3600.0 / np.log(2.0)
    write_nifti(Image.from_spacing(tia, SPACING, units="Bq s/mL"), out / "lu177_tia_bq_s_ml.nii.gz",
                sidecar={"Description": "example 177Lu time-integrated activity concentration (synthetic)"})
    write_nifti(Image.from_spacing(labels, SPACING), out / "labels.nii.gz", dtype=np.int16,
                sidecar={"LabelNames": {"1": "tumour", "2": "normal liver"}})


def response() -> None:
    out = HERE / "response"
    out.mkdir(parents=True, exist_ok=True)
    (out / "recist_lesions.csv").write_text(
        "patient,lesion,organ,baseline,followup\n"
        "P01,L1,liver,42.0,27.0\n"
        "P01,L2,liver,25.0,18.0\n"
        "P02,L1,liver,30.0,36.0\n"
        "P02,L2,lung,12.0,15.0\n"
        "P03,L1,liver,55.0,50.0\n")
    (out / "percist_lesions.csv").write_text(
        "patient,lesion,baseline,followup,reference_mean,reference_sd\n"
        "P01,L1,10.0,6.5,2.0,0.3\n"
        "P01,L2,6.0,4.0,2.0,0.3\n"
        "P02,L1,8.0,10.4,2.1,0.25\n"
        "P03,L1,9.0,8.0,1.9,0.3\n")


if __name__ == "__main__":
    fmiso()
    dose()
    response()
    print(f"wrote the example inputs under {HERE}")
