"""Reference values the study's report and plots set its numbers beside
(docs/science.md, "Properties and how they are measured": diamond Si)."""

DFT_PBE = {"a0": 5.469, "c11": 153.0, "c12": 56.5, "bulk_modulus": 88.7}
EXPERIMENT = {"a0": 5.431, "bulk_modulus": (98.0, 99.0)}
