"""The figures published in README.md and docs/*.md are the committed results' (scripts/figures.py): each page,
regenerated in memory from metrics.json, the explorer assets and bench/results/*.json, is unchanged; the bench
results belong to the bundled weights and steps; and every relative link of the pages points at a file that exists."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

spec = importlib.util.spec_from_file_location("figures", ROOT / "scripts" / "figures.py")
figures = importlib.util.module_from_spec(spec)
spec.loader.exec_module(figures)


@pytest.fixture(scope="module")
def sources() -> dict:
    return figures.load_sources()


def test_every_published_figure_is_its_sources(sources):
    stale = []
    for page in figures.pages():
        for name, published, fresh in figures.drift(page.read_text(), sources):
            stale.append(
                f"{page.relative_to(ROOT)} [{name}]\n  published: {published.strip()}\n  source:    {fresh.strip()}"
            )
    assert not stale, "published figures differ from their sources (run python scripts/figures.py):\n" + "\n".join(
        stale
    )


def test_every_block_is_known_and_published():
    used = [m.group(1) for page in figures.pages() for m in figures.BLOCK.finditer(page.read_text())]
    assert set(used) <= set(figures.BLOCKS), set(used) - set(figures.BLOCKS)
    assert set(figures.BLOCKS) <= set(used), f"blocks no page shows: {set(figures.BLOCKS) - set(used)}"
    text = "\n".join(page.read_text() for page in figures.pages())
    assert text.count("<!-- figures:") == text.count("<!-- /figures -->")  # no block left open


def test_a_changed_number_is_caught(sources):
    readme = (ROOT / "README.md").read_text()
    assert not figures.drift(readme, sources)
    o = sources["ood"]
    published = f"false alarms {o['false_alarms']:.1%} of {o['n_scenes']}"
    assert published in readme
    edited = readme.replace(published, "false alarms 0.6% of 873")
    assert [name for name, *_ in figures.drift(edited, sources)] == ["ood"]
    assert figures.render(edited, sources) == readme  # and the generator writes it back


def test_bench_results_belong_to_the_bundled_checkpoint(sources):
    """A bench result of other weights (the README's 0.6% of 873 was an earlier checkpoint's) or other decoder steps
    is stale: rerun the bench (the commands are in scripts/figures.py)."""
    assets = sources["assets"]
    assert sources["ood"]["fingerprint"] == assets["fingerprint"]
    assert sources["ood"]["checkpoint"] == sources["latency"]["checkpoint"] == figures.CKPT
    measured = assets["decode_steps"]
    assert {k: sources["latency"]["steps"][k] for k in ("preview", "full")} == {
        k: measured[k] for k in ("preview", "full")
    }
    assert sources["metrics"]["edits"]["n_scenes"] == assets["slider_effects"]["n_scenes"]  # as the pages say


def test_relative_links_resolve():
    missing = []
    for page in figures.pages():
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            if not (page.parent / target.split("#")[0]).exists():
                missing.append(f"{page.relative_to(ROOT)}: {target}")
    assert not missing, missing
