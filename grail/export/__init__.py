"""Exported policies: ONNX plus a policy card (``policy.json``) that holds everything a controller
needs, and the sim2sim check that runs them in plain MuJoCo."""
