"""edge-ecg: ECG-MoE on the edge.

signal -> data -> model -> export -> runtime. The on-device parts (`edge_ecg.signal`,
`edge_ecg.runtime`, `firmware_bridge`, `profiles`) never import torch.
"""

__version__ = "0.1.0"

# Said wherever the bundled model's outputs appear.
DISCLAIMER = (
    "Not a diagnostic device. The bundled model learned rhythm, beat classes, RR, age and sex "
    "from real ECGs "
    "(CinC 2017, MIT-BIH, MIT-BIH Supraventricular, Creighton VT/VF, PTB-XL, LUDB) and "
    "potassium from synthetic ECGs only (it carries no information on a real ECG); how it did "
    "on patients it never saw is in its MODEL_CARD.md."
)
