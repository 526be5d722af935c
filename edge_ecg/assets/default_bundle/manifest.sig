{
  "format": "edge-ecg-manifest-signature",
  "version": 1,
  "algorithm": "ed25519",
  "manifest": "manifest.json",
  "manifest_sha256": "d66ba6d2ceee316b643cd34955a0881235bc26fbcdd891054f5ca9297867733e",
  "key_id": "b35a5f1b57fb8e14b2c086e01508981d1a0d9082a6ae409a36dcae663de64398",
  "signer": "edge-ecg-bundled",
  "public_key": "+fAA6kxrJuP9xqQd30nWRGFjyLNqiwTW1LKBWepF7Dg=",
  "signature": "WMmPF5P4HOfuxk+rm58wOszZiMDEq+ljoLnyaHMdjQphxuKjseSLeESQyQCldS2QTQzbmPaMvjbHI7vtwm92DQ=="
}
