{
  "format": "edge-ecg-manifest-signature",
  "version": 1,
  "algorithm": "ed25519",
  "manifest": "manifest.json",
  "manifest_sha256": "8242298e5ff87f9b17d9030330091651abdfba4101aeb40be9884ad91569b53b",
  "key_id": "b35a5f1b57fb8e14b2c086e01508981d1a0d9082a6ae409a36dcae663de64398",
  "signer": "edge-ecg-bundled",
  "public_key": "+fAA6kxrJuP9xqQd30nWRGFjyLNqiwTW1LKBWepF7Dg=",
  "signature": "8/hPpJVJK8x9A9mM+7mzvhcE4B6ptVmxDe7APh813e4zN1XihJB2ObYwZARKmYtLquTGPSWEEw9/0UN59PvyDg=="
}
