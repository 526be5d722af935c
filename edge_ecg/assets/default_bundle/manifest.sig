{
  "format": "edge-ecg-manifest-signature",
  "version": 1,
  "algorithm": "ed25519",
  "manifest": "manifest.json",
  "manifest_sha256": "84978911f7fa2d1c9fb4cbbbb688b8567dce91d6f748a8482880fdc59543decb",
  "key_id": "c2e9b8e8b357c837ddbf8a2b6e765eb2b7d854ab979c4dd240eb108d222bf36c",
  "signer": "edge-ecg-bundled",
  "public_key": "K9IL05DrUM+kfrer5uKuGcW/CSJPoeSQ0WIQtk17VcE=",
  "signature": "Tb7YfvcGpfGR0woOsziEToxntp9HMnogEXJIbOCOL9IbCe7fCAyIK26eT2LqdtHl2XvszS8yT4mYK3fYMrtaCA=="
}
