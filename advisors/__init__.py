"""NNI-side algorithms our search spaces name by class (``advisor: {className: ...}``)."""
