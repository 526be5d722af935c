{
  "format": "edge-ecg-manifest-signature",
  "version": 1,
  "algorithm": "ed25519",
  "manifest": "manifest.json",
  "manifest_sha256": "b5f5a1964f4e6477cb549c786bbd274da0c5e583e56be8e9ff04fea8ad4bc492",
  "key_id": "b35a5f1b57fb8e14b2c086e01508981d1a0d9082a6ae409a36dcae663de64398",
  "signer": "edge-ecg-bundled",
  "public_key": "+fAA6kxrJuP9xqQd30nWRGFjyLNqiwTW1LKBWepF7Dg=",
  "signature": "5MNmiyfh+2+XpPDDZcdOrhe120bV5BrvuB0e9DB7c25/fFM589CuaOxNKOhPbmUFXvHqsM5JcMTCFr4GfqGPBg=="
}
