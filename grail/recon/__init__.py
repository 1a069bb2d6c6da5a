"""The reconstruct stage: metric 4D human-object interaction from the video and the known scene."""
