"""Every folder of tests belongs to exactly one of the Makefile's test tiers, so `make unit`,
`integration`, `e2e` and `chaos` together run what CI runs (a new folder must be given a tier)."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TIERS = ("unit", "integration", "e2e", "chaos")


def tier_folders() -> dict[str, list[str]]:
    makefile = (ROOT / "Makefile").read_text()
    folders = {}
    for tier in TIERS:
        recipe = re.search(rf"^{tier}:.*\n\t(.+)$", makefile, re.M)
        assert recipe, f"no `{tier}` target in the Makefile"
        folders[tier] = re.findall(r"\btests/\w+", recipe.group(1))
    return folders


def test_every_test_folder_is_in_exactly_one_tier():
    with_tests = sorted({f"tests/{path.relative_to(ROOT / 'tests').parts[0]}"
                         for path in (ROOT / "tests").glob("*/**/test_*.py")})
    listed = [folder for folders in tier_folders().values() for folder in folders]
    assert sorted(listed) == with_tests
