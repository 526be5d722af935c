{
  "format": "edge-ecg-manifest-signature",
  "version": 1,
  "algorithm": "ed25519",
  "manifest": "manifest.json",
  "manifest_sha256": "c2f87687433fcd7cd879dbea88af82acfe8727f8b2fc39412513bb0fc7882a80",
  "key_id": "b35a5f1b57fb8e14b2c086e01508981d1a0d9082a6ae409a36dcae663de64398",
  "signer": "edge-ecg-bundled",
  "public_key": "+fAA6kxrJuP9xqQd30nWRGFjyLNqiwTW1LKBWepF7Dg=",
  "signature": "LLu01HBGzseKXsRoSiYrXDnZmcPyakFnEsIk0Mo2hvkHJnUYxH6bvt6/MVj+Py2LipL16PstpZ+7qBUp4SPIDA=="
}
