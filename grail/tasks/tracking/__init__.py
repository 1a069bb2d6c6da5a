"""The general motion tracker for the G1: motion library, mjlab task, policy with a latent interface,
training, evaluation. Metrics live in a simulator-agnostic module so the mjlab evaluation and the
plain-MuJoCo sim2sim check score rollouts with the same code."""
