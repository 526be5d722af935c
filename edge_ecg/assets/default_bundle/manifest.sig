{
  "format": "edge-ecg-manifest-signature",
  "version": 1,
  "algorithm": "ed25519",
  "manifest": "manifest.json",
  "manifest_sha256": "b5932c0eda5c26213e5d1d9a4e9aef0b892cedd4481038570f6215f343a4903a",
  "key_id": "b35a5f1b57fb8e14b2c086e01508981d1a0d9082a6ae409a36dcae663de64398",
  "signer": "edge-ecg-bundled",
  "public_key": "+fAA6kxrJuP9xqQd30nWRGFjyLNqiwTW1LKBWepF7Dg=",
  "signature": "k6WRg3KEnbp1KEW9YX8gI0QjsXb0mcuIy0LwVsGtz13Y+HTWVkGX/YRRbbB5VVttsreDauEitBpJYG5y17DfCA=="
}
