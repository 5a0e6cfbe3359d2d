from keras_recipes.cli import run

run()
