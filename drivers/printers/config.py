"""Configuration models for label printers."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class PrinterConfig(BaseModel):
    """One Zebra (ZPL) printer and how to reach it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    transport: Literal["tcp", "usb", "serial", "file"]
    host: str = "127.0.0.1"
    port: int = Field(default=9100, ge=1, le=65535)
    device: str = Field(default="", description="USB: 'vvvv:pppp' or /dev/usb/lpN; serial: port.")
    baudrate: int = 9600
    path: Path = Field(default=Path("labels.zpl"), description="file transport: output file.")
    dpi: Literal[203, 300, 600] = 203
    size: Literal["4x6", "4x2"] = "4x6"
    timeout: float = Field(default=5.0, gt=0)
    confirm_timeout: float = Field(default=30.0, gt=0)
    status_interval: float = Field(default=5.0, gt=0)
    stored_formats: bool = Field(
        default=True, description="Download templates once (^DF) and send only data (^XF)."
    )
    labels_dir: Path | None = Field(
        default=None, description="Site templates overriding the built-ins (config/labels)."
    )
