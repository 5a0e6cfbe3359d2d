"""The plan's decisions, one module per concern; `keras_recipes.plan` runs
them in order and holds the `Plan`."""
