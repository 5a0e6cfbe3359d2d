"""keras_recipes: Ilya Sutskever's practical training advice as Keras 3 parts.

Import the package before loading a `.keras` file that holds its objects:
loading needs the classes registered under the "keras_recipes" package.
"""

from keras_recipes import audio
from keras_recipes import callbacks
from keras_recipes import diagnostics
from keras_recipes import ensemble
from keras_recipes import initializers
from keras_recipes import layers
from keras_recipes import optimizers
from keras_recipes.diagnostics import audit
from keras_recipes.diagnostics import check_batch_independence
from keras_recipes.diagnostics import check_gradients
from keras_recipes.ensemble import AveragingEnsemble
from keras_recipes.ensemble import EnsembleResult
from keras_recipes.fit import fit_ensemble
from keras_recipes.fit import fit_with_tips
from keras_recipes.plan import Plan
from keras_recipes.plan import plan
from keras_recipes.result import FitResult
from keras_recipes.result import Tip
from keras_recipes.wrapped import Preprocessed

__version__ = "0.1.0"

__all__ = [
    "AveragingEnsemble",
    "EnsembleResult",
    "FitResult",
    "Plan",
    "Preprocessed",
    "Tip",
    "__version__",
    "audio",
    "audit",
    "fit_with_tips",
    "layers",
    "callbacks",
    "check_batch_independence",
    "check_gradients",
    "diagnostics",
    "ensemble",
    "fit_ensemble",
    "initializers",
    "optimizers",
    "plan",
]
