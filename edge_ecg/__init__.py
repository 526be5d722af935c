"""edge-ecg: ECG-MoE on the edge.

signal -> data -> model -> export -> runtime. The on-device parts (`edge_ecg.signal`,
`edge_ecg.runtime`, `firmware_bridge`, `profiles`) never import torch.
"""

__version__ = "0.1.0"

# Said wherever the bundled model's outputs appear.
DISCLAIMER = (
    "The bundled model is trained on synthetic ECGs only: a demonstration, "
    "not a diagnostic device."
)
