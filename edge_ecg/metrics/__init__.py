"""How well the model and the stream do, numpy only: the device side and `evaluate --bundle`
score without torch (pyproject's import contracts keep torch, the model and export out).

Modules: `tasks` (per-task MAE, F1, accuracy, macro F1 of windows), `field` (the field's
standard figures per database: CinC 2017 challenge F1, AUC, AF episodes), `beats` (AAMI EC57
beat-class scoring of a detector's beats), `rhythm` (EC57 runs, episodes and false alarms).
"""
