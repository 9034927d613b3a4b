"""PET series reading for SUV: the pixels (rescaled) and every slice's header, in image order.

The SUV rules (:func:`theraquant.pet.suv_factor`, :func:`theraquant.pet.suv_image`) are pure
functions of headers and pixels; this module is the file side of :func:`theraquant.pet.read_suv`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..image import Image
from ._dicom import read_dicom_series

__all__ = ["PetSeries", "read_pet_series"]


@dataclass(frozen=True)
class PetSeries:
    """A PET series as read: the image of rescaled stored values and the headers.

    Attributes
    ----------
    image : Image
        Stored values x RescaleSlope + RescaleIntercept (Bq/mL, counts or the scanner's
        unit; see the headers' Units), LPS affine, (z, y, x[, t]).
    headers : tuple of pydicom.Dataset
        One per slice (and frame), in image order (z, then t), without pixel data.
    names : tuple of str
        File name of each header, same order (for messages naming the file).
    """

    image: Image
    headers: tuple[Any, ...]
    names: tuple[str, ...]


def read_pet_series(series_dir: str | Path, *, series_uid: str | None = None) -> PetSeries:
    """Read one PET (Modality PT) DICOM series for SUV conversion.

    Parameters
    ----------
    series_dir : str or Path
        Folder holding the series (other series and modalities beside it are ignored).
    series_uid : str, optional
        Which series when the folder holds several PET series.

    Returns
    -------
    PetSeries
        The image and the flat, image-ordered headers and file names.

    Raises
    ------
    DicomError
        Unreadable files, no PT slices, inconsistent geometry (naming the file and tag).
    """
    img = read_dicom_series(series_dir, series_uid=series_uid, modality="PT")
    headers = img.meta["headers"]
    files = img.meta["files"]
    flat_h = tuple(h for hz in headers for h in (hz if isinstance(hz, list) else [hz]))
    flat_f = tuple(Path(f).name for fz in files for f in (fz if isinstance(fz, list) else [fz]))
    return PetSeries(image=img, headers=flat_h, names=flat_f)
