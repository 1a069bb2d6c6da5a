"""The generate stage: interaction videos of a composed scene (procedural source first)."""
