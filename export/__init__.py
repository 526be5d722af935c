"""The export stage: merge LoRA, route experts, quantize, convert, check parity, write a bundle.

`export.manifest` is torch-free (the runtime uses it to verify bundles); the other modules
need the `[export]` extra.
"""
