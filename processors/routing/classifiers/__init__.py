"""Classifiers: read a request, say what task it is and how likely a cheap model falls short.

Every classifier has the same shape, `classify(request) -> Classification`; the
routing policy (processors.policy) turns the score into a tier.
"""

from tierline.processors.routing.classifiers.base import Classification, Classifier

__all__ = ["Classification", "Classifier"]
