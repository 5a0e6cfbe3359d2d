"""Diagnostics: the numerical gradient check (tip 8), batch independence,
and the audit of a model and its data against every tip."""

from keras_recipes.diagnostics.audit import AuditReport
from keras_recipes.diagnostics.audit import audit
from keras_recipes.diagnostics.gradients import GradientCheckReport
from keras_recipes.diagnostics.gradients import check_batch_independence
from keras_recipes.diagnostics.gradients import check_gradients
from keras_recipes.diagnostics.rules import Finding

__all__ = [
    "AuditReport",
    "Finding",
    "GradientCheckReport",
    "audit",
    "check_batch_independence",
    "check_gradients",
]
