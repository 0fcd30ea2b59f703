"""The four warning colours (预警级别) and their order.

A *warning colour* grades an event (an alert); a *risk colour* grades a place (an enterprise's
静态评估). Both use the same four colours, so they share this enum, but they are never stored in
the same field: see :mod:`alerts.places`.
"""

from __future__ import annotations

import enum


class Colour(enum.IntEnum):
    """Ordered so that ``max()`` gives the more severe colour. 红 一级 is the most severe."""

    BLUE = 1  # 蓝色 四级 (Ⅳ)
    YELLOW = 2  # 黄色 三级 (Ⅲ)
    ORANGE = 3  # 橙色 二级 (Ⅱ)
    RED = 4  # 红色 一级 (Ⅰ)

    @property
    def id(self) -> str:
        return self.name.lower()

    @property
    def zh(self) -> str:
        return _ZH[self]

    @property
    def level_zh(self) -> str:
        return _LEVEL_ZH[self]

    @classmethod
    def parse(cls, value: str | int | Colour) -> Colour:
        """``"red"``, ``"红"``, ``"红色"``, ``"一级"``, ``4`` → :attr:`RED`; raises ``ValueError``."""
        if isinstance(value, Colour):
            return value
        if isinstance(value, int):
            return cls(value)
        text = str(value).strip().lower()
        for colour in cls:
            if text in (colour.id, colour.zh, colour.zh + "色", colour.level_zh):
                return colour
        raise ValueError(f"unknown colour {value!r}; use one of blue, yellow, orange, red")


_ZH = {Colour.BLUE: "蓝", Colour.YELLOW: "黄", Colour.ORANGE: "橙", Colour.RED: "红"}
_LEVEL_ZH = {Colour.BLUE: "四级", Colour.YELLOW: "三级", Colour.ORANGE: "二级", Colour.RED: "一级"}
