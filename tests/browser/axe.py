"""Accessibility checks with axe-core (from npm, `package.json` at the repository's root).

`assert_accessible(page)` runs axe on what the page shows now and fails on every violation of
impact serious or critical, naming each rule, its impact, the elements and axe's help. The
browser tests of every page call it; `scripts/test.sh` installs axe-core with `npm ci`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from playwright.async_api import Page

AXE_JS: Final = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
#: the impacts that fail a page; minor and moderate ones are reported by axe but let through
FAILING_IMPACTS: Final = frozenset({"serious", "critical"})


async def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe's violations of impact serious or critical on the page as it is now."""
    if not AXE_JS.is_file():
        raise AssertionError(
            f"{AXE_JS} is missing: run `npm ci` in the repository (scripts/test.sh does)"
        )
    if not await page.evaluate("() => typeof window.axe === 'object'"):
        await page.add_script_tag(path=str(AXE_JS))
    violations: list[dict[str, Any]] = await page.evaluate(
        """async () => {
          const results = await window.axe.run(document, { resultTypes: ['violations'] });
          return results.violations.map((v) => ({
            id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
            targets: v.nodes.map((node) => node.target.join(' ')),
          }));
        }"""
    )
    return [v for v in violations if v["impact"] in FAILING_IMPACTS]


def describe(violations: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"  {v['id']} ({v['impact']}): {v['help']} at {', '.join(v['targets'][:5])}"
        for v in violations
    )


async def assert_accessible(page: Page) -> None:
    """Fail when axe finds a serious or critical violation on the page."""
    violations = await axe_violations(page)
    assert not violations, f"axe found on {page.url}:\n{describe(violations)}"
