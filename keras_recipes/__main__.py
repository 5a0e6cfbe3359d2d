import sys

from keras_recipes.cli import run

sys.exit(run() or 0)
