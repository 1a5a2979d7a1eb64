"""The docs that are derived from the code say what the code says."""

from pipelines.docs import PAGE, render


def test_the_generated_parts_of_the_parameters_page_are_current():
    """The CLI synopsis (argparse) and the run form's tables (the settings classes): `make docs` rewrites them."""
    text = PAGE.read_text()
    assert render(text) == text, "docs/parameters.md is stale: run `make docs`"
