"""A scripted device on a pseudo-terminal: ACKs every host command, answers START with bytes.

For tests of what the virtual monitor never sends on purpose (a device-info with fs = 0, a
clock that contradicts the announced rate, a reboot mid-stream): the script is raw protocol
bytes, written as given, with no emulator logic in between.
"""

from __future__ import annotations

import os
import select
import threading
import time
import tty
from collections.abc import Callable, Iterable

from firmware_bridge.decoder import StreamDecoder
from firmware_bridge.protocol import AckStatus, Command, CommandMsg, encode_ack


class ScriptedDevice:
    """Open a pty pair; `path` is the device for SerialSource. Close with `close()` or `with`."""

    def __init__(self, script: Callable[[], Iterable[bytes]] | Iterable[bytes],
                 pace_s: float = 0.0) -> None:
        self._script = script if callable(script) else (lambda: list(script))
        self._pace_s = pace_s
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scripted-device", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        dec = StreamDecoder()
        while not self._stop.is_set():
            if not select.select([self.master], [], [], 0.02)[0]:
                continue
            try:
                data = os.read(self.master, 4096)
            except OSError:
                return
            for m in dec.feed(data):
                if isinstance(m, CommandMsg):
                    os.write(self.master, encode_ack(m.command, m.token, AckStatus.OK))
                    if m.command == Command.START:
                        for part in self._script():
                            os.write(self.master, part)
                            if self._pace_s:
                                time.sleep(self._pace_s)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> "ScriptedDevice":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = ["ScriptedDevice"]
