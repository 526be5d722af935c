"""The export stage: merge LoRA, route experts, quantize, convert, check parity, write a bundle.

The bundle manifest this stage writes is the runtime's (`edge_ecg.runtime.bundle`,
torch-free); the modules here need the `[export]` extra. Modules, in
pipeline order: `request` (what is asked, checked before anything loads), `loading`
(checkpoint and data), `merge` (peft merge_and_unload + parity), `routing` (gate mass per
expert on calibration data -> experts kept), `routed` (the routed model measured in torch),
`graph_forms` (the model as exported: exact forms, the per-beat head routed), `onnx_graph`
(dynamo export at opset 18, one file), `int8_scope` (what int8 quantizes),
`quantize` (onnxruntime static QDQ int8), `weight_only` (int8-stored weights, fp32
arithmetic), `openvino_ir` (IR from the ONNX file, NNCF int8), `parity` (run and compare
engines), `variants` (each variant built, checked, timed), `acceptance` (fp32 parity and the
metric tolerance), `timing`, `report` (REPORT.md + chart), `provenance` (manifest fields),
`staging` (files, manifest, signature, install), `stage` (all of it: `export_bundle`),
`errors`.

The bundled default bundle is made from the bundled checkpoint with (REPORT.md in the bundle
carries the exact command):

    edge-ecg export --checkpoint edge_ecg/assets/default_checkpoint --out edge_ecg/assets/default_bundle --calib recipe:calib --eval "recipe:validation?subjects=edge_ecg/assets/default_checkpoint" --variants onnx-fp32,onnx-int8-routed,openvino-fp32-routed --no-route-heads --overwrite --sign-key KEY

`--eval` is where the route search and the acceptance gate take their choices: the
checkpoint's own validation patients, never the held-out fold (`recipe:heldout`), which
`edge-ecg evaluate` scores afterwards.
"""
