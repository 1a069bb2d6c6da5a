"""Training tasks: simulator-side task definitions (mjlab) and what they share with other simulators."""
