"""The motion library: filter retargeted G1 motions by their quality metrics into one indexed
directory (``build``), and convert motions to and from the formats of peer tools (``formats``:
BeyondMimic / mjlab npz and CSV, GMR pickle, GRAIL-release pickle)."""
