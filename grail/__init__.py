"""GRAIL: humanoid loco-manipulation data from 3D assets and video priors."""

__version__ = "0.1.0"
