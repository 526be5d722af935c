{
  "format": "edge-ecg-manifest-signature",
  "version": 1,
  "algorithm": "ed25519",
  "manifest": "manifest.json",
  "manifest_sha256": "e0a1ecba87d947947e743bc04d05153ee779aef8a7f2e5cfd1ca3e66aa4e1004",
  "key_id": "c2e9b8e8b357c837ddbf8a2b6e765eb2b7d854ab979c4dd240eb108d222bf36c",
  "signer": "edge-ecg-bundled",
  "public_key": "K9IL05DrUM+kfrer5uKuGcW/CSJPoeSQ0WIQtk17VcE=",
  "signature": "aaUNwiZUdCBup9bmhdYcYonetKqR6z8HJEK9LPsMvAKt5Pxa+AF7l1fNPqDP06Ld3km9+cEk6kgkPSKk0d8HAw=="
}
