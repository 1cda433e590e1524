"""`python -m ess_dashboards [DIR]`: write the dashboards' JSON (monitoring/grafana/dashboards)."""

from __future__ import annotations

import sys
from pathlib import Path

from ess_dashboards.build import DASHBOARDS, render

EXPORT_DIR = Path(__file__).resolve().parents[2] / "monitoring" / "grafana" / "dashboards"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else EXPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    for spec in DASHBOARDS:
        (out / f"{spec.uid}.json").write_text(render(spec))
        print(f"wrote {out / spec.uid}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
