{
  "format": "edge-ecg-manifest-signature",
  "version": 1,
  "algorithm": "ed25519",
  "manifest": "manifest.json",
  "manifest_sha256": "b1056d8ceac4a809d80fa8923b9524697694972280ee3966d791641006e163c6",
  "key_id": "b35a5f1b57fb8e14b2c086e01508981d1a0d9082a6ae409a36dcae663de64398",
  "signer": "edge-ecg-bundled",
  "public_key": "+fAA6kxrJuP9xqQd30nWRGFjyLNqiwTW1LKBWepF7Dg=",
  "signature": "nrVo0ZZXm11UwhgfmAmI6QLNaKTOmKeRl1SnhYCBnsysIaCT3nEr+HJcBtcgwOLDyXTcMc9G5X12YO21y/8qDQ=="
}
