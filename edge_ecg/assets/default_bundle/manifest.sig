{
  "format": "edge-ecg-manifest-signature",
  "version": 1,
  "algorithm": "ed25519",
  "manifest": "manifest.json",
  "manifest_sha256": "bcecf641242e0790121b16b2a44bb889c945bfd424b43888bd1e1b083437858b",
  "key_id": "b35a5f1b57fb8e14b2c086e01508981d1a0d9082a6ae409a36dcae663de64398",
  "signer": "edge-ecg-bundled",
  "public_key": "+fAA6kxrJuP9xqQd30nWRGFjyLNqiwTW1LKBWepF7Dg=",
  "signature": "NDnqmi/cxuJEup/4e5cUXAWStQKPs4DDQAwe494reDSJJDbk6SyR+TXR4IcBuHhGGQAUexRQa+4XPjVST+pFDg=="
}
