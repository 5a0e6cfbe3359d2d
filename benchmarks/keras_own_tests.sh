#!/usr/bin/env bash
# Keras' own tests for the classes we extend, pointed at ours with the one
# edit that names our class, run on TensorFlow and JAX (issue 15). Not part of
# the suite: it downloads the keras source distribution of the installed
# version from PyPI, and nothing of it is kept in the project.
#   bash benchmarks/keras_own_tests.sh
set -uo pipefail
version=$(python -c "import keras; print(keras.__version__)")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python -m pip download -q --no-binary :all: --no-deps "keras==$version" -d "$work" || exit 1
tar xzf "$work/keras-$version.tar.gz" -C "$work"
src="$work/keras-$version/keras/src"

# ReduceLROnPlateau: ours, given the parent's arguments.
sed 's/callbacks\.ReduceLROnPlateau(/OurReduceLROnPlateau(/' "$src/callbacks/reduce_lr_on_plateau_test.py" \
  | sed '1i from keras_recipes.callbacks import ReduceLROnPlateau as OurReduceLROnPlateau' \
  > "$work/reduce_lr_on_plateau_ours_test.py"
# LossScaleOptimizer: its inner optimizer is ClippedOptimizer(SGD(...), max_norm=None).
sed 's/^from keras.src.optimizers.sgd import SGD$/from keras.src.optimizers.sgd import SGD as KerasSGD\nfrom keras_recipes.optimizers import ClippedOptimizer\n\n\ndef SGD(**kwargs):\n    return ClippedOptimizer(KerasSGD(**kwargs), max_norm=None)/' \
  "$src/optimizers/loss_scale_optimizer_test.py" > "$work/loss_scale_optimizer_ours_test.py"

# Optimizer: every optimizers.SGD(...) is ClippedOptimizer(SGD(...), max_norm=None); the
# private state the tests read (_iterations, _accumulated_gradients, the EMA copies) is the
# inner optimizer's, which does the work (issue 37).
sed 's/optimizers\.SGD(/_OursSGD(/g' "$src/optimizers/optimizer_test.py" \
  | sed 's/optimizer\._accumulated_gradients/optimizer.inner_optimizer._accumulated_gradients/g; s/optimizer\._model_variables_moving_average/optimizer.inner_optimizer._model_variables_moving_average/g; s/optimizer\._iterations/optimizer.inner_optimizer._iterations/g' \
  | sed '1i from keras_recipes.optimizers import ClippedOptimizer\nfrom keras.src.optimizers import SGD as _KerasSGD\n\n\ndef _OursSGD(*args, **kwargs):\n    return ClippedOptimizer(_KerasSGD(*args, **kwargs), max_norm=None)\n' \
  > "$work/optimizer_ours_test.py"

cd "$work"
for backend in tensorflow jax; do
  echo "== KERAS_BACKEND=$backend"
  KERAS_BACKEND=$backend TF_CPP_MIN_LOG_LEVEL=3 python -m pytest -q -p no:cacheprovider \
    -W ignore::DeprecationWarning -W ignore::pytest.PytestUnknownMarkWarning \
    reduce_lr_on_plateau_ours_test.py loss_scale_optimizer_ours_test.py optimizer_ours_test.py 2>&1 | grep -E "^(FAILED|ERROR)|passed|failed"
done
echo "Expected differences (README's table): test_throws_when_optimizer_has_schedule (ours scales the schedule);"
echo "test_clip_args, test_clip_norm, test_clip_value, test_global_clip_norm (an inner optimizer that clips is refused);"
echo "test_optimizer_auto_naming (the wrapper is named clipped_optimizer, as LossScaleOptimizer is loss_scale_optimizer)."
