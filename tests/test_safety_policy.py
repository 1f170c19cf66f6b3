"""Nothing downloaded or shared is ever unpickled: a static check of the package's load calls."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted([*ROOT.glob("perc_platform/**/*.py"), *ROOT.glob("plugins/**/*.py")])


def _calls(text: str, name: str) -> list[str]:
    """Every call of ``name(...)`` in ``text`` with its arguments (balanced parentheses)."""
    found = []
    for match in re.finditer(re.escape(name) + r"\(", text):
        depth, i = 1, match.end()
        while depth and i < len(text):
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            i += 1
        found.append(text[match.start(): i])
    return found


#: Files allowed to unpickle: the driver contract round-trips sources it pickled itself a line before.
OWN_PICKLES = {"perc_platform/testing/contracts.py"}


@pytest.mark.parametrize("path", SOURCES, ids=[str(p.relative_to(ROOT)) for p in SOURCES])
def test_no_unsafe_deserialisation(path: Path) -> None:
    text = path.read_text()
    if str(path.relative_to(ROOT)) in OWN_PICKLES:
        assert all("pickle.dumps(" in call for call in _calls(text, "pickle.loads")), "only loads(dumps(...))"
    else:
        assert not re.search(r"\bpickle\.loads?\(|\bcloudpickle\.loads?\(|\bdill\.loads?\(", text)
    assert not re.search(r"\byaml\.load\(|\byaml\.unsafe_load\(|\beval\(|\bexec\(", text)
    for call in _calls(text, "torch.load"):
        assert "weights_only=True" in call, f"{path}: {call}"
    for call in _calls(text, "np.load"):
        assert "allow_pickle=False" in call, f"{path}: {call}"


def test_the_check_sees_the_load_calls_that_exist() -> None:
    texts = "\n".join(p.read_text() for p in SOURCES)
    # torch.load went with the neural maps' npz format; np.load reads .cs tables, neural maps and class files.
    assert len(_calls(texts, "np.load")) >= 3


def test_only_the_policy_marks_urls_as_the_callers() -> None:
    """Trust in a URL (``CallerURL``) is made in ``storage/policy.py`` alone (``trusts_caller``, ``derived``):
    no other module may construct one, so no catalog, STAR file or API answer can be turned into one."""
    makers = [str(p.relative_to(ROOT)) for p in SOURCES if re.search(r"\bCallerURL\(", p.read_text())]
    assert makers == ["perc_platform/storage/policy.py"]
