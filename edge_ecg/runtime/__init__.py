"""The on-device runtime: sources -> ring buffer -> beat tracker -> quality -> predictor -> sinks.

No torch here (tests/test_imports.py checks): a monitor or a tablet runs exported bundles with
onnxruntime or OpenVINO. Modules: `source` (the interface), `sources` (open_source and the
replay sources), `ring_buffer`, `beat_tracker`, `quality`, `predictor`, `backends`, `events`
(records and sinks), `pipeline` (StreamProcessor, Pipeline, run_offline).
"""
