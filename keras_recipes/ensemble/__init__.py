"""Tip 12: train about ten networks and average their predictions.

* `AveragingEnsemble` (`averaging.py`): a `keras.Model` averaging its
  members' predictions.
* `MemberwiseLoss`, `MemberLoss` (`member_losses.py`): the loss that trains
  stacked members as one program, and each member's share of it.
* `FusedMembers` (`fused.py`): same-architecture members as one compiled
  program, stacked or vectorized (`vectorized.py`), each restored from its
  own best epoch (`best_weights.py`).
* `EnsembleResult` (`result.py`).

`keras_recipes.fit_ensemble` (in `keras_recipes.fit`) trains them with the
whole recipe of `fit_with_tips`.
"""

from keras_recipes.ensemble.averaging import AVERAGES
from keras_recipes.ensemble.averaging import AveragingEnsemble
from keras_recipes.ensemble.best_weights import MemberBestWeights
from keras_recipes.ensemble.fused import VECTORIZE
from keras_recipes.ensemble.fused import FusedMembers
from keras_recipes.ensemble.fused import assemble_fused
from keras_recipes.ensemble.member_layers import FoldMembers
from keras_recipes.ensemble.member_layers import MemberSlice
from keras_recipes.ensemble.member_layers import UnfoldMembers
from keras_recipes.ensemble.member_losses import MemberLoss
from keras_recipes.ensemble.member_losses import MemberwiseLoss
from keras_recipes.ensemble.result import EnsembleResult
from keras_recipes.ensemble.result import evaluate_members
from keras_recipes.ensemble.vectorized import VectorizedMembers
from keras_recipes.ensemble.vectorized import architecture_signature
from keras_recipes.ensemble.vectorized import stack_members

__all__ = [
    "AVERAGES",
    "AveragingEnsemble",
    "EnsembleResult",
    "FoldMembers",
    "FusedMembers",
    "MemberBestWeights",
    "MemberLoss",
    "MemberSlice",
    "MemberwiseLoss",
    "UnfoldMembers",
    "VECTORIZE",
    "VectorizedMembers",
    "architecture_signature",
    "assemble_fused",
    "evaluate_members",
    "stack_members",
]
