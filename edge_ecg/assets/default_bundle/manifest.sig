{
  "format": "edge-ecg-manifest-signature",
  "version": 1,
  "algorithm": "ed25519",
  "manifest": "manifest.json",
  "manifest_sha256": "8cba2abf5db91e6fc4d2fde117b58032a9bc4ff279f65b76814d04e47f338098",
  "key_id": "c2e9b8e8b357c837ddbf8a2b6e765eb2b7d854ab979c4dd240eb108d222bf36c",
  "signer": "edge-ecg-bundled",
  "public_key": "K9IL05DrUM+kfrer5uKuGcW/CSJPoeSQ0WIQtk17VcE=",
  "signature": "sNDC/h3kkWnKI+wwxZQUZMjpzY3jiMruIJ5jqf9VU611r4zwTI4sA5f+AEi5y1AWSmz1n/HDf8VzzfyWtaYFDA=="
}
