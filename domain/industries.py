"""Industries yujing monitors (the registry's ``enterprises.industry``)."""

from __future__ import annotations

import enum


class Industry(enum.StrEnum):
    COAL_MINE = "coal_mine"  # 煤矿
    NON_COAL_MINE = "non_coal_mine"  # 非煤矿山 (metal and non-metal mines, tailings dams)
    HAZARDOUS_CHEMICALS = "hazardous_chemicals"  # 危险化学品
    COLD_STORAGE = "cold_storage"  # 涉氨制冷 (ammonia refrigeration, cold storage)
    GAS_PIPELINE = "gas_pipeline"  # 城镇燃气 (urban gas pipeline networks)


INDUSTRY_NAMES_ZH: dict[Industry, str] = {
    Industry.COAL_MINE: "煤矿",
    Industry.NON_COAL_MINE: "非煤矿山",
    Industry.HAZARDOUS_CHEMICALS: "危险化学品",
    Industry.COLD_STORAGE: "涉氨冷库",
    Industry.GAS_PIPELINE: "城镇燃气",
}
