"""Shared fixtures for the LwM2M codec tests: registries and hypothesis strategies."""

from __future__ import annotations

from pathlib import Path

from hypothesis import strategies as st

from gateway.lwm2m import ObjectDef, ObjectRegistry, ObjLink, Operations, ResourceDef, ResourceType

MODELS_DIR = Path(__file__).parent / "data" / "lwm2m_models"
TEST_OID = 65000

# resource id -> type; rid + 10 is the multiple-instance twin; 20 is executable
TYPES = {
    0: ResourceType.STRING,
    1: ResourceType.INTEGER,
    2: ResourceType.UNSIGNED_INTEGER,
    3: ResourceType.FLOAT,
    4: ResourceType.BOOLEAN,
    5: ResourceType.OPAQUE,
    6: ResourceType.TIME,
    7: ResourceType.OBJLNK,
    8: ResourceType.CORELNK,
}


def all_types_object() -> ObjectDef:
    res = {}
    for rid, t in TYPES.items():
        res[rid] = ResourceDef(rid, f"single {t.value}", Operations.RW, False, False, t)
        res[rid + 10] = ResourceDef(rid + 10, f"multiple {t.value}", Operations.RW, True, False, t)
    res[20] = ResourceDef(20, "run", Operations.E, False, False, None)
    return ObjectDef(TEST_OID, "All types", True, False, res)


def build_registry() -> ObjectRegistry:
    reg = ObjectRegistry.load_default()
    reg.load_dir(MODELS_DIR)
    reg.add(all_types_object())
    return reg


REGISTRY = build_registry()

INT64 = st.integers(-(2**63), 2**63 - 1)
VALUES = {
    ResourceType.STRING: st.text(max_size=40),
    ResourceType.INTEGER: INT64,
    ResourceType.UNSIGNED_INTEGER: st.integers(0, 2**64 - 1),
    ResourceType.FLOAT: st.floats(allow_nan=False, allow_infinity=False),
    ResourceType.BOOLEAN: st.booleans(),
    ResourceType.OPAQUE: st.binary(max_size=40),
    ResourceType.TIME: INT64,
    ResourceType.OBJLNK: st.builds(ObjLink, st.integers(0, 65535), st.integers(0, 65535)),
    ResourceType.CORELNK: st.text(max_size=40),
}


@st.composite
def instance_values(draw, iid: int) -> dict[str, object]:
    """Values of one instance of the all-types object: some single, some multiple."""
    out: dict[str, object] = {}
    for rid in draw(st.sets(st.sampled_from(sorted(TYPES)), max_size=len(TYPES))):
        out[f"/{TEST_OID}/{iid}/{rid}"] = draw(VALUES[TYPES[rid]])
    for rid in draw(st.sets(st.sampled_from(sorted(TYPES)), max_size=3)):
        for riid in draw(st.sets(st.integers(0, 65535), min_size=1, max_size=3)):
            out[f"/{TEST_OID}/{iid}/{rid + 10}/{riid}"] = draw(VALUES[TYPES[rid]])
    return out


@st.composite
def object_values(draw) -> dict[str, object]:
    out: dict[str, object] = {}
    for iid in draw(st.sets(st.integers(0, 65535), max_size=3)):
        out.update(draw(instance_values(iid)))
    return out
