"""firmware_bridge: the wire protocol between an ECG front end and the edge-ecg runtime.

PROTOCOL.md (the specification and link budget), protocol.py (message layouts, encoders),
decoder.py (incremental host decoder with resync and loss counters), budget.py (which leads x
rate x format fits which link), c/ (the C99 reference encoder for firmware), emulator.py (a
virtual monitor on a pseudo-terminal, with fault injection), serial_source.py and
ble_source.py + polar_pmd.py (the runtime's serial and Polar H10 BLE sources; backoff.py their
shared reconnection backoff). The sources implement `edge_ecg.signal.source.Source`.

Nothing heavy is imported here: bleak is imported inside BleSource.open().
"""
