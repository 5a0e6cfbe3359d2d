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

cd "$work"
for backend in tensorflow jax; do
  echo "== KERAS_BACKEND=$backend"
  KERAS_BACKEND=$backend TF_CPP_MIN_LOG_LEVEL=3 python -m pytest -q -p no:cacheprovider \
    -W ignore::DeprecationWarning -W ignore::pytest.PytestUnknownMarkWarning \
    reduce_lr_on_plateau_ours_test.py loss_scale_optimizer_ours_test.py 2>&1 | grep -E "^(FAILED|ERROR)|passed|failed"
done
echo "Expected difference (README): test_throws_when_optimizer_has_schedule (ours scales the schedule)."
