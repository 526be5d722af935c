"""The on-device runtime: sources -> ring buffer -> beat tracker -> quality -> predictor -> sinks.

No torch here (tests/test_imports.py checks): a monitor or a tablet runs exported bundles with
onnxruntime or OpenVINO. Modules: `sources` (`open_source`: the source a spec names; the
interface is `edge_ecg.signal.source`), `replay` (WFDB and synthetic replays), `edf_source`,
`ring_buffer`, `beat_tracker`, `quality`, `predictor`, `backends`, `events`
(records and sinks), `stream_processor` (the synchronous core: chunks in, events out) with
`settling`, `adc_rails`, `stage_timer` and `summary`, `pipeline` (the threaded live run),
`offline` (`run_offline`, the training chain on a whole signal).
"""
