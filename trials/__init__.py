"""NSR trials: the regularizer and one entry per model family (``python -m trials.<entry>``)."""
