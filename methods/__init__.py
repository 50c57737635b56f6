"""The built-in hardness identifiers. Importing this package registers them all.

One module per family; each method is a function decorated with
``bench.register`` whose docstring cites its paper and states its formula.
"""
from . import baselines, final_model, gradients, hcat, out_of_sample, representation, training_dynamics  # noqa: F401
