"""A tiny Chinese matching graph for the ranking tests (written as a dataset, loaded like real data)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["TINY", "write_dataset"]

TINY: dict[str, list[dict[str, Any]]] = {
    "districts.jsonl": [
        {"id": "D1", "name": "亭湖区", "neighbours": ["D2"]},
        {"id": "D2", "name": "盐都区", "neighbours": ["D1"]},
        {"id": "D3", "name": "大丰区"},
    ],
    "chains.jsonl": [{"id": "C1", "name": "新能源"}, {"id": "C2", "name": "汽车零部件"}],
    "skills.jsonl": [
        {"id": "S1", "name": "焊接", "aliases": ["电焊"], "chain_ids": ["C1"]},
        {"id": "S2", "name": "PLC编程", "aliases": ["PLC"]},
        {"id": "S3", "name": "数控加工", "aliases": ["数控"]},
    ],
    "enterprises.jsonl": [
        {"id": "e1", "name": "盐城光伏科技", "district": "亭湖区", "industry_chain": "新能源"},
        {"id": "e2", "name": "大丰风电装备", "district": "大丰区", "industry_chain": "新能源"},
        {"id": "e3", "name": "盐都汽配", "district": "盐都区", "industry_chain": "汽车零部件"},
    ],
    "workers.jsonl": [
        {"id": "w1", "name": "王焊工", "skills": ["焊接"], "district": "亭湖区", "employer_id": "e1", "capacity": 3,
         "teaches": True, "honours": ["全国劳动模范"], "active": True},
        {"id": "w2", "name": "李工", "skills": ["PLC编程"], "district": "盐都区", "capacity": 3, "active": True},
        {"id": "w3", "name": "张师傅", "skills": ["数控加工"], "district": "大丰区", "capacity": 3, "active": True},
        {"id": "w4", "name": "赵焊工", "skills": ["焊接"], "district": "亭湖区", "capacity": 3, "active": False},
        {"id": "w5", "name": "新人陈工", "skills": ["PLC"], "district": "亭湖区", "capacity": 3, "active": True,
         "service_menu": ["PLC程序调试与优化", "变频器故障诊断"]},
        {"id": "w6", "name": "孙焊工", "skills": ["电焊"], "district": "盐都区", "capacity": 1, "active": True},
    ],
    "problems.jsonl": [
        {"id": "p1", "title": "光伏支架焊接变形", "description": "焊缝开裂，焊接变形大", "skills": ["焊接"],
         "enterprise_id": "e1", "district": "亭湖区", "service_type": "技术帮扶", "status": "solved",
         "posted_at": "2025-01-05", "solved_at": "2025-01-20", "solved_by": ["w1"],
         "outcomes": [{"worker_id": "w1", "rating": 5, "hours": 8, "trainees": 4}]},
        {"id": "p2", "title": "风电塔筒焊缝气孔", "description": "埋弧焊焊缝出现气孔", "skills": ["焊接"],
         "enterprise_id": "e2", "district": "大丰区", "service_type": "技术帮扶", "status": "solved",
         "posted_at": "2025-02-01", "solved_at": "2025-02-10", "solved_by": ["w1", "w6"],
         "outcomes": [{"worker_id": "w1", "rating": 5}, {"worker_id": "w6", "rating": 3}]},
        {"id": "p3", "title": "PLC程序偶发死机", "description": "生产线PLC程序偶发死机", "skills": ["PLC编程"],
         "enterprise_id": "e3", "district": "盐都区", "service_type": "技术帮扶", "status": "solved",
         "posted_at": "2025-02-15", "solved_at": "2025-03-01", "solved_by": ["w2"],
         "outcomes": [{"worker_id": "w2", "rating": 4}]},
        {"id": "p4", "title": "数控机床主轴异响", "description": "加工中心主轴异响", "skills": ["数控加工"],
         "enterprise_id": "e3", "district": "盐都区", "service_type": "工艺改进", "status": "solved",
         "posted_at": "2025-03-05", "solved_at": "2025-03-20", "solved_by": ["w3"],
         "outcomes": [{"worker_id": "w3", "rating": 4}]},
        {"id": "p5", "title": "焊接机器人轨迹编程", "description": "焊接机器人PLC联调", "skills": ["焊接", "PLC编程"],
         "enterprise_id": "e2", "district": "大丰区", "service_type": "研发攻关", "status": "solved",
         "posted_at": "2025-04-01", "solved_at": "2025-04-30", "solved_by": ["w2"],
         "outcomes": [{"worker_id": "w2", "rating": 5}]},
        {"id": "p6", "title": "数控车床加工精度", "description": "零件尺寸超差", "skills": ["数控加工"],
         "enterprise_id": "e2", "district": "大丰区", "service_type": "技能培训", "status": "solved",
         "posted_at": "2025-05-01", "solved_at": "2025-05-20", "solved_by": ["w3"],
         "outcomes": [{"worker_id": "w3", "rating": 4, "trainees": 10}]},
        {"id": "p7", "title": "PLC通讯故障", "description": "触摸屏与PLC通讯中断", "skills": ["PLC编程"],
         "enterprise_id": "e3", "district": "盐都区", "service_type": "技术帮扶", "status": "open",
         "posted_at": "2025-06-01"},
        {"id": "p8", "title": "不锈钢焊接工艺", "description": "薄板不锈钢焊接烧穿", "skills": ["焊接"],
         "enterprise_id": "e1", "district": "亭湖区", "service_type": "技术帮扶", "status": "open",
         "posted_at": "2025-06-02"},
    ],
}


def write_dataset(directory: Path, data: dict[str, list[dict[str, Any]]] | None = None) -> Path:
    """Write ``data`` (default :data:`TINY`) as a dataset directory and return it."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, rows in (data or TINY).items():
        with open(directory / name, "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return directory
