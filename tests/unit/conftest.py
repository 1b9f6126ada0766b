import pytest


def pytest_collection_modifyitems(config, items):
    # Pure rules: no database, so one pass (SQLite) is enough.
    for item in items:
        if "tests/unit/" in str(item.fspath):
            item.add_marker(pytest.mark.sqlite_only)
