{
  "format": "edge-ecg-manifest-signature",
  "version": 1,
  "algorithm": "ed25519",
  "manifest": "manifest.json",
  "manifest_sha256": "7913ad64fe150b69bf5226fd8bbbb80e05f6ec1b09cb61dfeb76db24e8004154",
  "key_id": "b35a5f1b57fb8e14b2c086e01508981d1a0d9082a6ae409a36dcae663de64398",
  "signer": "edge-ecg-bundled",
  "public_key": "+fAA6kxrJuP9xqQd30nWRGFjyLNqiwTW1LKBWepF7Dg=",
  "signature": "6PukpCM6mM4DsalKdsRbOHdVN5YJNu6mLdG1YA/U7qs9NhJzVLQH4ldtrhWe5jiWgLdJFUeMagsG+5SQ1DV9CQ=="
}
