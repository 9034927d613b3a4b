"""Response assessment: RECIST 1.1, mRECIST, PERCIST 1.0, EORTC 1999.

Every grading function returns a :class:`ResponseResult`: the category, the rule that
fired (id and sentence), the numbers it compared, the criteria's name, version and
DOI, and every threshold used. Thresholds are data (``criteria.json`` in this
package, see :func:`criteria`) and can be overridden with ``thresholds=``.
"""

from ._criteria import criteria
from ._measure import longest_axial_diameter
from ._pet import eortc, percist
from ._recist import Lesion, mrecist, recist
from ._result import Finding, ResponseResult, Rule
from ._table import grade_lesions, grade_patients

__all__ = ["Finding", "Lesion", "ResponseResult", "Rule", "criteria", "eortc", "grade_lesions",
           "grade_patients", "longest_axial_diameter", "mrecist", "percist", "recist"]
