import sys

from keras_recipes_cli import run

sys.exit(run() or 0)
