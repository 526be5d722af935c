"""`BleSource`: ECG from a Polar H10 over Bluetooth LE (PMD), through bleak.

bleak is imported inside `open()` (an optional dependency: `pip install edge-ecg[ble]`), and
the client class can be injected, which is how the tests drive this code without a radio. A
background thread runs bleak's asyncio loop; notifications are parsed by
`firmware_bridge.polar_pmd` and queued; `read()` turns them into `Chunk`s.

PMD frames carry no sequence number, only the sensor time of the last sample, so a gap is
found from time: when a frame's first sample comes more than one sample period after the
previous frame's last, the missing samples are skipped in `Chunk.index` (the ring buffer marks
the gap). Counts are microvolts: gain 1000 counts/mV, baseline 0.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time

import numpy as np

from edge_ecg.errors import FrameError, SourceError
from edge_ecg.signal.chunk import Chunk
from edge_ecg.signal.source import Source
from firmware_bridge.backoff import Backoff
from firmware_bridge.polar_pmd import (
    ECG_FS_HZ,
    PMD_CONTROL_UUID,
    PMD_DATA_UUID,
    START_ECG,
    STOP_ECG,
    ControlResponse,
    parse_control_response,
    parse_ecg_frame,
)

log = logging.getLogger(__name__)

# The H10's strap electrodes sit left and right on the lower chest: the nearest standard lead
# is I (horizontal, right arm to left arm). An approximation, named so the runtime can place it.
DEFAULT_LEAD = "I"


class BleSource(Source):
    """Polar H10 ECG over BLE at `address` (130 Hz, microvolts, one lead)."""

    def __init__(self, address: str, client_class=None, lead: str = DEFAULT_LEAD,
                 fs_hz: float = ECG_FS_HZ, connect_timeout_s: float = 15.0,
                 reconnect: bool = True, reconnect_timeout_s: float = 30.0,
                 backoff_s: float = 0.5, backoff_max_s: float = 5.0) -> None:
        self.address = address
        self._client_class = client_class
        self.lead = lead
        self.fs_hz = float(fs_hz)
        self.connect_timeout_s = connect_timeout_s
        self.reconnect = reconnect
        self.reconnect_timeout_s = reconnect_timeout_s
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self._frames: queue.Queue = queue.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        # both made afresh by each connection (_connect_and_start)
        self._control: asyncio.Queue = asyncio.Queue()
        self._closing = False
        self._disconnected = asyncio.Event()
        self._next_index = 0
        self._chunk_no = 0
        self._last_ts_ns: int | None = None
        self._counters = {"frames": 0, "bad_frames": 0, "lost_samples": 0, "gaps": 0,
                          "clock_jumps": 0, "reconnects": 0}

    # -- Source ---------------------------------------------------------------------------
    def open(self) -> None:
        if self._client_class is None:
            try:
                from bleak import BleakClient  # optional dependency, imported only here
            except ImportError:
                raise SourceError("BLE needs bleak: pip install 'edge-ecg[ble]'") from None
            self._client_class = BleakClient
        self._thread = threading.Thread(target=self._thread_main, name="BleSource", daemon=True)
        self._thread.start()
        if not self._ready.wait(self.connect_timeout_s):
            self.close()
            raise SourceError(f"no ECG stream from BLE device {self.address} within "
                              f"{self.connect_timeout_s:g} s: is it worn (H10 electrodes wet), "
                              "in range, and not connected to another app?")
        if self._error is not None:
            err = self._error
            self.close()
            raise SourceError(f"BLE device {self.address}: {err}") from None

    def read(self, timeout_s: float = 0.1) -> Chunk | None:
        if self._error is not None and self._frames.empty():
            raise SourceError(f"BLE device {self.address}: {self._error}")
        try:
            frame = self._frames.get(timeout=timeout_s)
        except queue.Empty:
            return None
        n = frame.samples_uv.shape[0]
        period_ns = 1e9 / self.fs_hz
        first_ns = frame.timestamp_ns - (n - 1) * period_ns
        if self._last_ts_ns is not None:
            missing = int(round((first_ns - self._last_ts_ns) / period_ns)) - 1
            if missing >= 1:
                self._next_index += missing
                self._counters["lost_samples"] += missing
                self._counters["gaps"] += 1
            elif missing < -max(1, n // 2):
                self._counters["clock_jumps"] += 1   # sensor time went back: keep counting on
        self._last_ts_ns = frame.timestamp_ns
        index = self._next_index
        self._next_index += n
        self._chunk_no += 1
        return Chunk(index=index, seq=self._chunk_no - 1, device_time_us=int(first_ns // 1000),
                     samples=frame.samples_uv.reshape(-1, 1).astype(np.int32),
                     gain=np.array([1000.0]), baseline=np.array([0]), leads=(self.lead,),
                     fs_hz=self.fs_hz)

    def close(self) -> None:
        self._closing = True
        loop = self._loop
        if loop is not None and loop.is_running():
            fut = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
            try:
                fut.result(timeout=5)
            except Exception as exc:   # noqa: BLE001 - best effort: the radio may be gone
                log.debug("BLE %s: stopping ECG on close failed: %r", self.address, exc)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def stats(self) -> dict[str, int]:
        return dict(self._counters)

    # -- asyncio side ---------------------------------------------------------------------
    def _thread_main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._session())
        except BaseException as exc:   # noqa: BLE001 - reported to the reading thread
            self._error = exc
            self._ready.set()
        finally:
            loop.close()
            self._loop = None

    async def _session(self) -> None:
        """Connect, start ECG, and keep reconnecting with backoff until close()."""
        self._stop = asyncio.Event()
        await self._connect_and_start()
        self._ready.set()
        while not self._closing:
            stop_wait = asyncio.ensure_future(self._stop.wait())
            lost_wait = asyncio.ensure_future(self._disconnected.wait())
            await asyncio.wait({stop_wait, lost_wait}, return_when=asyncio.FIRST_COMPLETED)
            stop_wait.cancel(), lost_wait.cancel()
            if self._closing or self._stop.is_set():
                break
            if not self.reconnect:
                raise SourceError("disconnected")
            self._counters["reconnects"] += 1
            log.warning("BLE %s disconnected; reconnecting for up to %g s", self.address,
                        self.reconnect_timeout_s)
            backoff = Backoff(self.backoff_s, self.backoff_max_s, self.reconnect_timeout_s)
            backoff.start(time.monotonic())
            while True:
                await asyncio.sleep(backoff.delay_s)
                try:
                    await self._connect_and_start()
                    log.info("BLE %s reconnected", self.address)
                    break
                except Exception as exc:   # noqa: BLE001 - retried, then reported
                    log.debug("BLE %s: reconnection attempt failed: %r", self.address, exc)
                    if backoff.expired(time.monotonic()):
                        raise SourceError(f"lost and not back within "
                                          f"{self.reconnect_timeout_s:g} s: {exc}") from None
                    backoff.failed(time.monotonic())

    async def _connect_and_start(self) -> None:
        self._disconnected = asyncio.Event()
        self._control = asyncio.Queue()
        client = self._client_class(self.address,
                                    disconnected_callback=lambda _c: self._disconnected.set())
        await client.connect()
        self._client = client
        await client.start_notify(PMD_CONTROL_UUID, self._on_control)
        await client.start_notify(PMD_DATA_UUID, self._on_data)
        await client.write_gatt_char(PMD_CONTROL_UUID, START_ECG, response=True)
        resp: ControlResponse = await asyncio.wait_for(self._control.get(), timeout=5.0)
        if not resp.ok:
            await client.disconnect()
            raise SourceError(f"H10 refused ECG start: {resp.status_name} "
                              f"(op {resp.op:#04x}, type {resp.measurement:#04x})")

    async def _shutdown(self) -> None:
        self._closing = True
        client = self._client
        if client is not None and getattr(client, "is_connected", False):
            try:
                await client.write_gatt_char(PMD_CONTROL_UUID, STOP_ECG, response=True)
            finally:
                await client.disconnect()
        if getattr(self, "_stop", None) is not None:
            self._stop.set()

    def _on_control(self, _sender, data: bytearray) -> None:
        try:
            self._control.put_nowait(parse_control_response(data))
        except SourceError as exc:
            self._error = exc

    def _on_data(self, _sender, data: bytearray) -> None:
        try:
            frame = parse_ecg_frame(data)
        except FrameError as exc:
            self._counters["bad_frames"] += 1
            # the first one said, the rest counted in stats()
            log.log(logging.WARNING if self._counters["bad_frames"] == 1 else logging.DEBUG,
                    "BLE %s: corrupt ECG notification skipped: %s", self.address, exc)
            return
        self._counters["frames"] += 1
        self._frames.put(frame)


__all__ = ["DEFAULT_LEAD", "BleSource"]
