"""Every document the code, configs and README point to is shipped in the repository, and so is every section
such a reference names."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("baselines", "sanm_plugin", "conf", "benchmarks", "examples", "docs", "tests")
TOP_LEVEL = ("README.md", "setup.cfg", "pyproject.toml")
THIS_FILE = Path(__file__).resolve()

# `docs/<file>.md section N`, `docs/<file>.md N`, `docs/<file>.md N.M`, `... N.M-N.K`, `... N.M, N.K and N.L`;
# inside docs/ the name may be a Markdown link, `[docs/<file>.md](<file>.md) N.M`
_SECTION = r"\d+(?:\.\d+)?"
_SUBSECTION = r"\d+\.\d+"
SECTION_REFERENCE = re.compile(
    rf"\bdocs/(?P<file>[\w./-]+\.md)(?:\]\([\w./#-]*\))?\s+(?:section\s+(?P<section>\d+)\b"
    rf"|(?P<list>{_SECTION}(?:(?:\s*-\s*|,\s*|\s+and\s+){_SUBSECTION})*)(?![\w.]*\d))"
)
HEADING = re.compile(r"^(#{2,3})[ \t]+(\d+(?:\.\d+)?)\.?[ \t]", re.MULTILINE)
# the documents the code once pointed to outside the repository; only docs/ copies may be named now
UNSHIPPED_NAMES = re.compile(r"\b(?:design|baselines|style)\.md\b")


def _texts():
    for folder in SOURCES:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix in (".py", ".yaml", ".md", ".csv", ".sh") and path.is_file() and path != THIS_FILE:
                yield path, path.read_text()
    for name in TOP_LEVEL:
        yield ROOT / name, (ROOT / name).read_text()


def referenced_sections(text: str) -> list[tuple[str, str]]:
    """(file under docs/, section number) for every section a `docs/<file>.md ...` reference in `text` names;
    a range N.M-N.K names every subsection from N.M to N.K."""
    found = []
    for match in SECTION_REFERENCE.finditer(text):
        if match["section"]:
            found.append((match["file"], match["section"]))
            continue
        items = re.split(r"(,\s*|\s+and\s+)", match["list"])
        for item in items[::2]:
            if "-" in item:
                low, high = (part.strip() for part in item.split("-"))
                (major, first), (major_high, last) = low.split("."), high.split(".")
                if major == major_high:
                    found.extend((match["file"], f"{major}.{k}") for k in range(int(first), int(last) + 1))
                else:
                    found.extend([(match["file"], low), (match["file"], high)])
            else:
                found.append((match["file"], item.strip()))
    return found


def headings(path: Path) -> set[str]:
    """'N' for every `## N.` heading of a Markdown file, 'N.M' for every `### N.M` one."""
    numbers = set()
    for level, number in HEADING.findall(path.read_text()):
        if (level == "##") == ("." not in number):
            numbers.add(number)
    return numbers


def test_every_docs_reference_names_a_shipped_file():
    references = {(path, ref) for path, text in _texts() for ref in re.findall(r"\bdocs/[\w./-]+\.md\b", text)}
    assert references, "no docs/ references found: the pattern is wrong"
    missing = sorted(f"{path.relative_to(ROOT)}: {ref}" for path, ref in references if not (ROOT / ref).is_file())
    assert not missing, missing


def test_the_reference_pattern_reads_sections_lists_and_ranges():
    text = ("see docs/baselines.md 4.3 (e.g. 50), docs/method.md section 1, docs/baselines.md 1.1, 1.3, 7.4;\n"
            "docs/baselines.md 9.3-9.5 and docs/baselines.md 6.1 and 6.2; docs/baselines.md 2. Then docs/runs.md\n"
            "section 3, and docs/reproducing.md lists the cells")
    assert referenced_sections(text) == [
        ("baselines.md", "4.3"), ("method.md", "1"), ("baselines.md", "1.1"), ("baselines.md", "1.3"),
        ("baselines.md", "7.4"), ("baselines.md", "9.3"), ("baselines.md", "9.4"), ("baselines.md", "9.5"),
        ("baselines.md", "6.1"), ("baselines.md", "6.2"), ("baselines.md", "2"), ("runs.md", "3"),
    ]


def test_every_referenced_section_is_a_heading_of_its_document():
    references = {(path, doc, section) for path, text in _texts() for doc, section in referenced_sections(text)}
    assert len(references) > 40, "too few section references found: the pattern is wrong"
    known: dict[str, set[str]] = {}
    missing = []
    for path, doc, section in sorted(references):
        target = ROOT / "docs" / doc
        if not target.is_file():
            continue  # the shipped-file test reports it
        if section not in known.setdefault(doc, headings(target)):
            level = "## N." if "." not in section else "### N.M"
            missing.append(f"{path.relative_to(ROOT)}: docs/{doc} {section} (no `{level}` heading {section})")
    assert not missing, missing


def test_no_source_names_a_document_outside_docs():
    stray = []
    for path, text in _texts():
        for match in UNSHIPPED_NAMES.finditer(text):
            before = text[: match.start()]
            if re.search(r"(?<![\w/.-])docs/$", before):
                continue
            if path.parent == ROOT / "docs" and before.endswith("](") and (path.parent / match.group()).is_file():
                continue  # a relative Markdown link between the shipped docs
            line = text.count("\n", 0, match.start()) + 1
            stray.append(f"{path.relative_to(ROOT)}:{line}: {match.group()}")
    assert not stray, f"name the shipped docs/ file instead: {stray}"


def _config_sizes(name: str) -> tuple[int | None, int]:
    """(train_subset, epochs) that conf/experiment/<name>.yaml sets."""
    from omegaconf import OmegaConf

    preset = OmegaConf.load(ROOT / "conf" / "experiment" / f"{name}.yaml")
    return preset.get("dataset", {}).get("train_subset"), preset.trainer.epochs


def test_the_docs_state_the_sizes_the_experiment_presets_have():
    """README once described the smoke preset as a 300-image subset while smoke.yaml held 128: the sizes README
    and docs/install.md state for the presets they name are read back from the configs."""
    install = (ROOT / "docs" / "install.md").read_text()
    smoke = re.search(r"`\+experiment=smoke` is the [\w-]+\s+version the tests use \(an? (?P<images>[\d,]+)-image "
                      r"subset,\s+(?P<epochs>\d+) epochs", install)
    assert smoke, "docs/install.md no longer says what +experiment=smoke runs; update this test with it"
    assert (int(smoke["images"].replace(",", "")), int(smoke["epochs"])) == _config_sizes("smoke")
    readme = (ROOT / "README.md").read_text()
    first = re.search(r"on all of scikit-learn's bundled digits[^.]*?,\s+(?P<epochs>\d+) epochs", readme)
    assert first, "README no longer says what +experiment=first_run runs; update this test with it"
    assert (None, int(first["epochs"])) == _config_sizes("first_run")


def test_every_relative_link_of_the_readme_resolves():
    """README is read on a repository host: each page, file and image it links to by relative path exists."""
    readme = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    assert any(t.endswith(".png") for t in targets) and any(t.startswith("docs/") for t in targets)
    missing = [t for t in targets if "://" not in t and not (ROOT / t).exists()]
    assert not missing, f"README links to files that do not exist: {missing}"


# how README's tables name the methods of baselines.registry.BASELINES
README_METHOD_NAMES = {"ce": "CE", "gce": "GCE", "sce": "SCE", "cdr": "CDR", "elr_plus": "ELR+",
                       "coteaching": "Co-teaching", "dividemix": "DivideMix", "c2d": "C2D"}


def test_the_readme_preset_table_states_what_each_method_class_declares_for_sanm_on():
    """Issue 39: README's table of what `+sanm=on` changes per method is read back from the classes
    (`Method.sanm_defaults`), so a new per-method value cannot land without its row."""
    from baselines.registry import BASELINES

    assert set(README_METHOD_NAMES) == set(BASELINES), "name the new method in README_METHOD_NAMES and README's table"
    readme = (ROOT / "README.md").read_text()
    table = re.search(r"^\| method \| `\+sanm=on` against `\+sanm=paper` \|.*?\n((?:\|.*\n)+)", readme, re.MULTILINE)
    assert table, "README no longer has the `+sanm=on` preset table; update this test with it"
    named: dict[str, str] = {}
    for row in table[1].splitlines()[1:]:  # below the |---| line
        methods, change = (cell.strip() for cell in row.strip("|").split("|")[:2])
        for display in (m.strip() for m in methods.split(",")):
            key = next(k for k, v in README_METHOD_NAMES.items() if v == display)
            assert key not in named, f"README's preset table names {display} twice"
            named[key] = change
            defaults = BASELINES[key].sanm_defaults
            if defaults:
                for field, value in defaults.items():
                    assert f"`{field}` {value}" in change, f"{display}: README says {change!r}, its class {defaults}"
            else:
                assert change == "the same", f"{display} declares no sanm_defaults, README says {change!r}"
    assert set(named) == set(BASELINES), f"README's preset table leaves out {sorted(set(BASELINES) - set(named))}"
