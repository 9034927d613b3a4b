"""Response assessment: RECIST 1.1, mRECIST, PERCIST 1.0, EORTC 1999."""
