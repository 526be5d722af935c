{
  "format": "edge-ecg-manifest-signature",
  "version": 1,
  "algorithm": "ed25519",
  "manifest": "manifest.json",
  "manifest_sha256": "26d4e77e4ca90e88534535821afa34bb1dfba0428a92901390165e91a2d55a84",
  "key_id": "b35a5f1b57fb8e14b2c086e01508981d1a0d9082a6ae409a36dcae663de64398",
  "signer": "edge-ecg-bundled",
  "public_key": "+fAA6kxrJuP9xqQd30nWRGFjyLNqiwTW1LKBWepF7Dg=",
  "signature": "J6vBDFxp5EUmztExy/k0GMfbFXu6Vzsfuw6WO9xhBd8R7ZvllYohiKgOE0Hl7LLRQDF+rN1F5Ywci9bI2ZdqAg=="
}
