{
  "format": "edge-ecg-manifest-signature",
  "version": 1,
  "algorithm": "ed25519",
  "manifest": "manifest.json",
  "manifest_sha256": "1815aba40aec05e891e60347a3690ace656588cb337db403f13c584e1a0c916e",
  "key_id": "c2e9b8e8b357c837ddbf8a2b6e765eb2b7d854ab979c4dd240eb108d222bf36c",
  "signer": "edge-ecg-bundled",
  "public_key": "K9IL05DrUM+kfrer5uKuGcW/CSJPoeSQ0WIQtk17VcE=",
  "signature": "I9F65z45Kn5hjrPJmuScMHudr1orkYmfTLxanmJSM87xXZUzeVxWojnCeX08l8UFEpJaLp5dPkcQgmOoej8EAg=="
}
