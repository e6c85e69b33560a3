import pytest
from hypothesis import given, settings, strategies as st

from gateway.lwm2m import FormatError, LwM2MPath, PathError


def test_parse_and_format():
    p = LwM2MPath.parse("/3/0/7/1")
    assert p.ids == (3, 0, 7, 1)
    assert str(p) == "/3/0/7/1"
    assert (p.object_id, p.instance_id, p.resource_id, p.resource_instance_id) == (3, 0, 7, 1)
    assert p.is_resource_instance and not p.is_resource
    assert p.parent == LwM2MPath(3, 0, 7)
    assert p.resource_path == LwM2MPath(3, 0, 7)
    assert LwM2MPath(3, 0).child(1) == LwM2MPath.parse("/3/0/1")


def test_root():
    root = LwM2MPath.parse("/")
    assert root == LwM2MPath() and root.is_root and str(root) == "/"
    assert LwM2MPath(3).startswith(root)
    with pytest.raises(PathError, match="the root path has no parent"):
        _ = root.parent


def test_ordering_is_numeric_and_hashable():
    paths = [LwM2MPath.parse(s) for s in ["/3/0/10", "/3/0/9", "/3", "/3/0/9/1", "/1/0"]]
    assert [str(p) for p in sorted(paths)] == ["/1/0", "/3", "/3/0/9", "/3/0/9/1", "/3/0/10"]
    assert len({LwM2MPath(3, 0), LwM2MPath.parse("/3/0")}) == 1


def test_startswith_is_segment_wise():
    assert LwM2MPath.parse("/3/0/1").startswith(LwM2MPath(3, 0))
    assert not LwM2MPath.parse("/33/0").startswith(LwM2MPath(3))


def test_immutable():
    p = LwM2MPath(3)
    with pytest.raises(AttributeError):
        p.ids = (4,)  # type: ignore[misc]


@pytest.mark.parametrize("text, message", [
    ("3/0", "path '3/0' must start with '/'"),
    ("", "path '' must start with '/'"),
    ("/3//1", "path '/3//1' has an empty segment"),
    ("/3/0/", "path '/3/0/' has an empty segment"),
    ("/3/a", "path '/3/a': segment 'a' is not a decimal id"),
    ("/3/-1", "path '/3/-1': segment '-1' is not a decimal id"),
    ("/3/ 1", "path '/3/ 1': segment ' 1' is not a decimal id"),
    ("/3/\u0661", "path '/3/\u0661': segment '\u0661' is not a decimal id"),
    ("/65536", "path '/65536': id 65536 is out of range 0..65535"),
    ("/1/2/3/4/5", "path '/1/2/3/4/5' has 5 levels; at most 4 are allowed"),
    ("/" + "1" * 70, "path '/" + "1" * 63 + "'... is too long"),
])
def test_parse_errors(text, message):
    with pytest.raises(PathError) as exc:
        LwM2MPath.parse(text)
    assert str(exc.value) == message
    assert isinstance(exc.value, FormatError)


def test_constructor_errors():
    with pytest.raises(PathError, match=r"path id 70000 is out of range 0\.\.65535"):
        LwM2MPath(70000)
    with pytest.raises(PathError, match="path id True is not an integer"):
        LwM2MPath(True)
    with pytest.raises(PathError, match="path has 5 levels"):
        LwM2MPath(1, 2, 3, 4, 5)
    with pytest.raises(PathError, match="is not a string"):
        LwM2MPath.parse(3)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 65535), max_size=4))
def test_roundtrip(ids):
    p = LwM2MPath(*ids)
    assert LwM2MPath.parse(str(p)) == p
