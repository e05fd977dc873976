"""USB transport: pyusb on the printer-class interface, or the usblp device file — never both.

``device`` is ``"vvvv:pppp"`` / ``"vvvv"`` (hex, vendor defaults to Zebra 0x0A5F) for pyusb,
or a path such as ``/dev/usb/lp0`` for the kernel's usblp driver. With pyusb the usblp
driver is detached from the interface first, so the two never share one device.
"""

from __future__ import annotations

import os
import select
from typing import Any

from drivers.printers.transport import TransportError

ZEBRA_VENDOR = 0x0A5F
PRINTER_CLASS = 7


def parse_device(spec: str) -> tuple[str, int, int | None]:
    """``("file", 0, None)`` for a path, else ``("usb", vendor, product | None)``."""
    s = spec.strip()
    if s.startswith("/"):
        return ("file", 0, None)
    if not s:
        return ("usb", ZEBRA_VENDOR, None)
    parts = s.split(":")
    try:
        if len(parts) == 1:
            return ("usb", int(parts[0], 16), None)
        if len(parts) == 2:
            return ("usb", int(parts[0], 16), int(parts[1], 16))
    except ValueError:
        pass
    raise TransportError(f"USB device {spec!r}: expected VVVV:PPPP (hex) or /dev/usb/lpN")


class UsbLpTransport:
    """The usblp device file (``/dev/usb/lpN``); reads work when the printer is bidirectional."""

    bidirectional = True

    def __init__(self, path: str, *, timeout: float = 5.0) -> None:
        self.path, self.timeout = path, timeout
        self.name = f"usblp:{path}"
        self._fd: int | None = None

    @property
    def is_open(self) -> bool:
        """True while the device file is open."""
        return self._fd is not None

    def open(self) -> None:
        """Open the device file."""
        self.close()
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK)
        except OSError as exc:
            raise TransportError(f"{self.name}: {exc.strerror}") from exc

    def close(self) -> None:
        """Close the device file."""
        if self._fd is not None:
            try:
                os.close(self._fd)
            finally:
                self._fd = None

    def write(self, data: bytes) -> None:
        """Write everything, waiting for the device to accept it."""
        if self._fd is None:
            raise TransportError(f"{self.name}: not open")
        view = memoryview(data)
        try:
            while view:
                _, w, _ = select.select([], [self._fd], [], self.timeout)
                if not w:
                    raise TransportError(f"{self.name}: write timed out")
                n = os.write(self._fd, view)
                view = view[n:]
        except OSError as exc:
            self.close()
            raise TransportError(f"{self.name}: write failed: {exc}") from exc

    def read(self, timeout: float) -> bytes:
        """Bytes available within ``timeout``."""
        if self._fd is None:
            raise TransportError(f"{self.name}: not open")
        try:
            r, _, _ = select.select([self._fd], [], [], timeout)
            return os.read(self._fd, 4096) if r else b""
        except BlockingIOError:
            return b""
        except OSError as exc:
            self.close()
            raise TransportError(f"{self.name}: read failed: {exc}") from exc


class PyUsbTransport:
    """pyusb: printer-class interface, bulk OUT for data and bulk IN for status replies."""

    bidirectional = True

    def __init__(
        self, vendor: int = ZEBRA_VENDOR, product: int | None = None, *, timeout: float = 5.0
    ) -> None:
        self.vendor, self.product, self.timeout = vendor, product, timeout
        self.name = (
            f"usb:{vendor:04x}:{product:04x}" if product is not None else f"usb:{vendor:04x}"
        )
        self._dev: Any = None
        self._ep_out: Any = None
        self._ep_in: Any = None
        self._intf: int | None = None

    @property
    def is_open(self) -> bool:
        """True while the interface is claimed."""
        return self._dev is not None

    def open(self) -> None:
        """Find the printer, detach usblp from its printer interface, claim it."""
        import usb.core
        import usb.util

        self.close()
        kw: dict[str, int] = {"idVendor": self.vendor}
        if self.product is not None:
            kw["idProduct"] = self.product
        try:
            dev = usb.core.find(**kw)
            if dev is None:
                raise TransportError(f"{self.name}: no such USB device")
            cfg = dev.get_active_configuration()
            intf = usb.util.find_descriptor(cfg, bInterfaceClass=PRINTER_CLASS)
            if intf is None:
                raise TransportError(f"{self.name}: no printer-class interface")
            num = intf.bInterfaceNumber
            if dev.is_kernel_driver_active(num):
                dev.detach_kernel_driver(num)  # usblp must not hold it at the same time
            usb.util.claim_interface(dev, num)

            def direction(want: int) -> Any:
                return usb.util.find_descriptor(
                    intf,
                    custom_match=lambda e: (
                        usb.util.endpoint_direction(e.bEndpointAddress) == want
                        and usb.util.endpoint_type(e.bmAttributes) == usb.util.ENDPOINT_TYPE_BULK
                    ),
                )

            self._ep_out = direction(usb.util.ENDPOINT_OUT)
            self._ep_in = direction(usb.util.ENDPOINT_IN)
            if self._ep_out is None:
                raise TransportError(f"{self.name}: no bulk OUT endpoint")
            self._dev, self._intf = dev, num
        except usb.core.USBError as exc:
            raise TransportError(f"{self.name}: {exc}") from exc

    @property
    def has_input(self) -> bool:
        """True when the interface has a bulk IN endpoint (status replies)."""
        return self._ep_in is not None

    def close(self) -> None:
        """Release the interface."""
        if self._dev is not None:
            import usb.util

            try:
                usb.util.release_interface(self._dev, self._intf)
                usb.util.dispose_resources(self._dev)
            except Exception:
                pass
            self._dev = None

    def write(self, data: bytes) -> None:
        """Bulk OUT."""
        import usb.core

        if self._dev is None:
            raise TransportError(f"{self.name}: not open")
        try:
            self._ep_out.write(data, timeout=int(self.timeout * 1000))
        except usb.core.USBError as exc:
            self.close()
            raise TransportError(f"{self.name}: write failed: {exc}") from exc

    def read(self, timeout: float) -> bytes:
        """Bulk IN; a timeout returns b""."""
        import usb.core

        if self._dev is None:
            raise TransportError(f"{self.name}: not open")
        if self._ep_in is None:
            return b""
        try:
            return bytes(self._ep_in.read(512, timeout=max(1, int(timeout * 1000))))
        except usb.core.USBTimeoutError:
            return b""
        except usb.core.USBError as exc:
            self.close()
            raise TransportError(f"{self.name}: read failed: {exc}") from exc


def usb_transport(device: str, *, timeout: float = 5.0) -> UsbLpTransport | PyUsbTransport:
    """The USB transport for a config ``device`` string."""
    kind, vendor, product = parse_device(device)
    if kind == "file":
        return UsbLpTransport(device, timeout=timeout)
    return PyUsbTransport(vendor, product, timeout=timeout)
