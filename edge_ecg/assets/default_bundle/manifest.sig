{
  "format": "edge-ecg-manifest-signature",
  "version": 1,
  "algorithm": "ed25519",
  "manifest": "manifest.json",
  "manifest_sha256": "3348c62e51fa511a3eacb302dbaedc256586b7fc6500003f61216b659b52d246",
  "key_id": "c2e9b8e8b357c837ddbf8a2b6e765eb2b7d854ab979c4dd240eb108d222bf36c",
  "signer": "edge-ecg-bundled",
  "public_key": "K9IL05DrUM+kfrer5uKuGcW/CSJPoeSQ0WIQtk17VcE=",
  "signature": "M2snQ+iFB7XXAFPGVXpYJvwz2G/VQoJet79rUxlq2lC0VXC6tumE5cX3FFOY0OyPXmKc55S+MPlUJZc789W1Bg=="
}
