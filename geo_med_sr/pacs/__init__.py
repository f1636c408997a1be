"""DICOM networking: DIMSE and DICOMweb clients, fetching and sending, the DICOM node and its rules."""
