"""Readers and writers: NIfTI and DICOM in; NIfTI (and DICOM results) out.

``io`` knows only :class:`theraquant.image.Image`; the engines never open files.
NIfTI's RAS frame is converted to the package's LPS convention here and only here.
"""

from ._dicom import read_dicom_series, read_dicom_headers, group_series
from ._nifti import read_label_image, read_nifti, write_nifti, sidecar_path
from ._tables import read_table
from ._atomic import (TEMP_PREFIX, atomic_path, atomic_paths, atomic_write, clean_temporaries, write_json, write_table,
                      write_text)
from ._seg import (Segmentation, parse_segment_label, read_seg, segment_kind,  # DICOM results (#12)
                   write_seg)
from ._rtstruct import read_rtstruct, write_rtstruct  # DICOM results (issue #12)
from ._pmap import (PARAMETRIC_QUANTITIES, read_parametric_map, read_rt_dose, write_parametric_map,  # (#12)
                    write_rt_dose)
from ._write_series import write_dicom_series  # source DICOM writer (phantom studies)

__all__ = ["read_nifti", "write_nifti", "sidecar_path", "read_dicom_series", "read_dicom_headers",
           "group_series", "atomic_write", "atomic_path", "atomic_paths", "clean_temporaries", "write_json",
           "write_text", "write_table", "TEMP_PREFIX", "read_label_image", "read_table"]
__all__ += ["Segmentation", "read_seg", "write_seg", "read_rtstruct", "write_rtstruct",  # DICOM results (#12)
            "PARAMETRIC_QUANTITIES", "write_parametric_map", "read_parametric_map", "write_rt_dose", "read_rt_dose"]
__all__ += ["write_dicom_series"]  # source DICOM writer (phantom studies)
__all__ += ["parse_segment_label", "segment_kind"]  # the study's segment-label vocabulary
from ._pet import PetSeries, read_pet_series  # PET series for SUV (conventions, issue #9)

__all__ += ["PetSeries", "read_pet_series"]  # PET series for SUV (conventions, issue #9)
