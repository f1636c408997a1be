"""Guided restoration, geometry half: a thick target (T2w, FLAIR) with the patient's isotropic guide (T1w).

:func:`register_rigid` aligns the guide to the target in world space, :func:`resample_guide`
puts the guide on a grid of the target, and the checks refuse a guide that cannot help (not
finer, not covering the anatomy, not registered, another patient's or study's).
"""

from geo_med_sr.guidance.checks import (
    MIN_COVERAGE,
    check_coverage,
    check_finer,
    check_same_study,
    foreground,
)
from geo_med_sr.guidance.registration import (
    Registration,
    check_registration,
    identity_registration,
    register_rigid,
    resample_guide,
)

__all__ = [
    "MIN_COVERAGE",
    "Registration",
    "check_coverage",
    "check_finer",
    "check_registration",
    "check_same_study",
    "foreground",
    "identity_registration",
    "register_rigid",
    "resample_guide",
]
