"""Quality flags carried by every stored reading (int16 bit set).

The low byte is what a gateway may send in a reading's ``q`` field; the high byte is set by
yujing itself. A flagged reading is still stored: safety data is never thrown away.
"""

from __future__ import annotations

import enum


class Quality(enum.IntFlag):
    GOOD = 0
    # --- set by the device or gateway (low byte) ---
    CALIBRATING = 0x0001  # 调校/标校: value is a calibration gas, never a real excursion
    FAULT = 0x0002  # 故障: the transducer reports a fault
    DISCONNECTED = 0x0004  # 断线: the substation lost the transducer
    MAINTENANCE = 0x0008  # 检修: point taken out of service by the enterprise
    # --- set by yujing (high byte) ---
    OVER_RANGE = 0x0100  # above the sensor's measuring range (a methane outburst saturates)
    UNDER_RANGE = 0x0200  # below the sensor's measuring range
    CLOCK_CORRECTED = 0x0400  # gateway clock beyond skew tolerance: stored at receive time


DEVICE_QUALITY_MASK = 0x00FF
"""Bits a gateway may set; any other bit in ``q`` makes the reading invalid."""

VALUE_UNTRUSTED = Quality.CALIBRATING | Quality.FAULT | Quality.DISCONNECTED | Quality.MAINTENANCE
"""Readings with any of these bits never raise value findings."""
