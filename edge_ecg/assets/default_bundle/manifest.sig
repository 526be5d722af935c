{
  "format": "edge-ecg-manifest-signature",
  "version": 1,
  "algorithm": "ed25519",
  "manifest": "manifest.json",
  "manifest_sha256": "d4960ea0afed2535104fb57c4e3e941b89bffdf7643a197725153e47cb6c104e",
  "key_id": "c2e9b8e8b357c837ddbf8a2b6e765eb2b7d854ab979c4dd240eb108d222bf36c",
  "signer": "edge-ecg-bundled",
  "public_key": "K9IL05DrUM+kfrer5uKuGcW/CSJPoeSQ0WIQtk17VcE=",
  "signature": "UPmcYPr06dM1q9Iz/PzkgPpNqkWRr5bC58wEpe+Dmil3jfkWbNOQz63w3DknYdlvU7V1I9Ven8uimzpIe//6Dg=="
}
