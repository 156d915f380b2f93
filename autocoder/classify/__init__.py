"""The trained classifier: training data, embedding network, losses, calibration, recipes.

Modules import torch lazily from here, so ``import autocoder.classify`` stays cheap; use
``autocoder.classify.model.load_model`` / ``autocoder.classify.recipe.train_from_recipe``.
"""
