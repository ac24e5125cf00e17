"""The developer commands (`python -m registry.migrations ...`), on a copy of the revisions.

The copy lacks the newest revisions, as a working tree does before its author writes the
revision for a change to the tables: `check` must see the change, and `revision` must
write one that makes `check` pass again.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from registry.migrate import Migrations
from registry.migrate_cli import main
from registry.migrations import REGISTRY_MIGRATIONS
from tests.support.migrations import versions


@pytest.fixture
def without_serving_configs(tmp_path: Path) -> Migrations:
    """The registry's environment as it was at schema version 1: revision 0001 only."""
    folder = tmp_path / "migrations"
    shutil.copytree(
        REGISTRY_MIGRATIONS.folder, folder, ignore=shutil.ignore_patterns("__pycache__")
    )
    for later in ["v0002_*.py", "v0003_*.py", "v0004_*.py", "v0005_*.py", "v0006_*.py"]:
        for path in (folder / "versions").glob(later):
            path.unlink()
    return dataclasses.replace(REGISTRY_MIGRATIONS, folder=folder, head="0001")


def test_check_and_revision_find_a_new_table(
    without_serving_configs: Migrations, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = without_serving_configs
    assert main(plan, ["check"]) == 1
    assert "serving_configs" in capsys.readouterr().err

    assert main(plan, ["revision", "-m", "serving configs"]) == 0
    [written] = (plan.folder / "versions").glob("v0002_*.py")
    assert written.name == "v0002_serving_configs.py"
    source = written.read_text()
    assert 'down_revision: str | Sequence[str] | None = "0001"' in source
    assert 'op.create_table(\n        "serving_configs"' in source
    # Our column type is written as what it stores as: the revision never imports the schema.
    assert "sa.DateTime(timezone=True)" in source
    assert "registry.schema" not in source

    assert main(dataclasses.replace(plan, head="0002"), ["check"]) == 0


def test_upgrade_current_and_downgrade_a_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    plan = REGISTRY_MIGRATIONS
    assert main(plan, ["upgrade", "--url", url]) == 0
    assert capsys.readouterr().out.strip() == "applied 0001, 0002, 0003, 0004, 0005, 0006"
    assert main(plan, ["current", "--url", url]) == 0
    assert capsys.readouterr().out.strip() == "0006 (head)"

    assert main(plan, ["downgrade", "0001", "--url", url]) == 0
    assert versions(url, "alembic_version") == ["0001"]
    assert main(plan, ["downgrade", "0099", "--url", url]) == 1
    assert "0099" in capsys.readouterr().err
    assert main(plan, ["upgrade", "--url", url]) == 0
    assert capsys.readouterr().out.strip() == "applied 0002, 0003, 0004, 0005, 0006"
