"""Signal processing shared by training and the on-device runtime (one implementation, no skew).

Imports nothing of the project beyond `edge_ecg.errors`, and never torch. Streams are
time-major arrays `(n_samples, n_leads)`; the model's tensors are `(leads, samples)`.
`chunk` and `source` are the stream's contract (what a source yields, the interface every
source implements): the device packages and the runtime both build on them.
"""
