"""Signal processing shared by training and the on-device runtime (one implementation, no skew).

Imports nothing of the project beyond `edge_ecg.errors`, and never torch. Streams are
time-major arrays `(n_samples, n_leads)`; the model's tensors are `(leads, samples)`.
"""
