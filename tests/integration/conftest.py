import pytest


@pytest.fixture(autouse=True)
def _conserved(clean_and_conserved):
    yield
