import pytest

from gateway.lwm2m import (ModelError, ObjectRegistry, Operations, ResourceType, default_registry,
                           parse_ddf)
from gateway.lwm2m.objects import MAX_XML_BYTES

from _lwm2m_testlib import MODELS_DIR

REQUIRED = [0, 1, 3, 4, 5, 6, 7, 3303, 3311, 3338, 3336]


@pytest.fixture(scope="module")
def reg():
    return ObjectRegistry.load_default()


def test_loads_all_bundled_objects(reg):
    for oid in REQUIRED:
        assert oid in reg, oid
    assert len(reg) >= 40
    assert all(o.resources for o in reg)
    assert reg.ids() == sorted(reg.ids())


def test_exact_definitions(reg):
    r = reg.resource(3, 0)
    assert (r.name, r.type, r.operations, r.multiple, r.mandatory) == (
        "Manufacturer", ResourceType.STRING, Operations.R, False, False)
    lat = reg.resource(6, 0)
    assert (lat.name, lat.type, lat.operations, lat.mandatory) == ("Latitude", ResourceType.FLOAT, Operations.R, True)
    sv = reg.resource(3303, 5700)
    assert (sv.name, sv.type, sv.operations, sv.multiple, sv.mandatory) == (
        "Sensor Value", ResourceType.FLOAT, Operations.R, False, True)
    reboot = reg.resource(3, 4)
    assert reboot.type is None and reboot.operations is Operations.E and reboot.operations.executable
    assert reg.resource(3, 7).multiple and reg.resource(3, 7).type is ResourceType.INTEGER
    assert reg.resource(3, 13).type is ResourceType.TIME and reg.resource(3, 13).operations.writable
    lifetime = reg.resource(1, 1)
    assert (lifetime.name, lifetime.type, lifetime.operations, lifetime.units) == (
        "Lifetime", ResourceType.INTEGER, Operations.RW, "s")
    assert reg.resource(0, 3).type is ResourceType.OPAQUE and reg.resource(0, 3).operations is Operations.NONE
    assert reg.resource(5, 0).operations is Operations.W and not reg.resource(5, 0).operations.readable
    assert reg.resource(3336, 5514).type is ResourceType.STRING
    assert reg.resource(3311, 5850).type is ResourceType.BOOLEAN
    assert reg.resource(3338, 5548).type is ResourceType.FLOAT
    assert reg.object(3).multiple is False and reg.object(3303).multiple is True
    assert reg.object(1).name == "LwM2M Server"
    assert reg.resource(3, 999) is None and reg.resource(12345, 0) is None and reg.object(12345) is None


def test_default_registry_is_cached():
    assert default_registry() is default_registry()
    assert 3 in default_registry()


def test_load_dir_adds_user_objects_in_registry_layout():
    reg = ObjectRegistry.load_default()
    assert reg.load_dir(MODELS_DIR) == [65, 66]
    assert reg.resource(65, 0).multiple and reg.resource(65, 0).type is ResourceType.OBJLNK
    assert reg.object(65).description == "Refers to instances of object 66."
    assert reg.resource(66, 2).type is ResourceType.OBJLNK


def test_load_dir_replaces_same_id(tmp_path):
    (tmp_path / "a.xml").write_text(_obj(3, "My Device", '<Item ID="0"><Name>X</Name><Operations>R</Operations>'
                                      '<MultipleInstances>Single</MultipleInstances><Mandatory>Optional</Mandatory>'
                                      '<Type>Integer</Type></Item>'))
    reg = ObjectRegistry.load_default()
    reg.load_dir(tmp_path)
    assert reg.object(3).name == "My Device"
    assert reg.resource(3, 0).type is ResourceType.INTEGER


def test_load_dir_is_all_or_nothing(tmp_path):
    (tmp_path / "a.xml").write_text(_obj(700, "Good", ""))
    (tmp_path / "b.xml").write_text("<LWM2M><Object>")
    reg = ObjectRegistry()
    with pytest.raises(ModelError) as exc:
        reg.load_dir(tmp_path)
    assert str(exc.value).startswith(f"{tmp_path / 'b.xml'}: not well-formed XML (")
    assert 700 not in reg


def test_load_dir_duplicate_ids(tmp_path):
    (tmp_path / "a.xml").write_text(_obj(700, "One", ""))
    (tmp_path / "b.xml").write_text(_obj(700, "Two", ""))
    with pytest.raises(ModelError) as exc:
        ObjectRegistry().load_dir(tmp_path)
    assert str(exc.value) == f"{tmp_path / 'b.xml'}: object 700 is also defined in a.xml"


def test_load_dir_not_a_directory(tmp_path):
    with pytest.raises(ModelError, match="not a directory"):
        ObjectRegistry().load_dir(tmp_path / "missing")


def _obj(oid, name, items, extra=""):
    return (f"<LWM2M><Object><Name>{name}</Name><ObjectID>{oid}</ObjectID>"
            f"<MultipleInstances>Single</MultipleInstances><Mandatory>Optional</Mandatory>{extra}"
            f"<Resources>{items}</Resources></Object></LWM2M>")


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>
<LWM2M><Object><Name>&lol2;</Name></Object></LWM2M>"""

XXE = b"""<?xml version="1.0"?><!doctype x [<!entity e SYSTEM "file:///etc/passwd">]><LWM2M/>"""


@pytest.mark.parametrize("data, message", [
    (BILLION_LAUGHS, "u.xml: DOCTYPE and ENTITY declarations are not allowed in object files"),
    (XXE, "u.xml: DOCTYPE and ENTITY declarations are not allowed in object files"),
    (b"<Foo/>", "u.xml: root element is <Foo>, expected <LWM2M>"),
    (b"<LWM2M/>", "u.xml: no <Object> element"),
    (_obj("x", "A", "").encode(), "u.xml: ObjectID 'x' is not an id in 0..65535"),
    (_obj(70000, "A", "").encode(), "u.xml: ObjectID '70000' is not an id in 0..65535"),
    (_obj(7, "", "").encode(), "u.xml: object 7 has no <Name>"),
    (_obj(7, "A", '<Item ID="1"><Type>Decimal</Type><MultipleInstances>Single</MultipleInstances>'
                  '<Operations>R</Operations></Item>').encode(),
     "u.xml: resource /7/x/1 has unknown Type 'Decimal'"),
    (_obj(7, "A", '<Item ID="1"><Type>String</Type><MultipleInstances>Some</MultipleInstances></Item>').encode(),
     "u.xml: resource /7/x/1 MultipleInstances 'Some' is not Single or Multiple"),
    (_obj(7, "A", '<Item ID="1"><Type>String</Type><MultipleInstances>Single</MultipleInstances>'
                  '<Operations>X</Operations></Item>').encode(),
     "u.xml: resource /7/x/1 Operations 'X' is not one of R, W, RW, E or empty"),
    (_obj(7, "A", '<Item ID="1"><MultipleInstances>Single</MultipleInstances></Item>' * 2).encode(),
     "u.xml: object 7 defines resource 1 twice"),
    (_obj(7, "A", '<Item ID="a"/>').encode(), "u.xml: object 7 resource ID 'a' is not an id in 0..65535"),
])
def test_bad_xml(data, message):
    with pytest.raises(ModelError) as exc:
        parse_ddf(data, "u.xml")
    assert str(exc.value) == message


def test_xml_size_limit(tmp_path):
    big = tmp_path / "big.xml"
    big.write_bytes(b" " * (MAX_XML_BYTES + 1))
    with pytest.raises(ModelError, match="over the 2097152-byte limit"):
        ObjectRegistry().load_file(big)
    with pytest.raises(ModelError, match="over the 2097152-byte limit"):
        parse_ddf(b" " * (MAX_XML_BYTES + 1))


def test_executable_and_lenient_spellings():
    items = ('<Item ID="0"><Name>Go</Name><Operations>E</Operations>'
             '<MultipleInstances>Single</MultipleInstances><Mandatory>Mandatory</Mandatory><Type></Type></Item>'
             '<Item ID="1"><Name>U</Name><Operations>rw</Operations>'
             '<MultipleInstances>single</MultipleInstances><Type>unsigned integer</Type></Item>')
    objs = parse_ddf(_obj(9, "A", items).encode())
    (o,) = objs
    assert o.resource(0).type is None and o.resource(0).mandatory
    assert o.resource(1).type is ResourceType.UNSIGNED_INTEGER and o.resource(1).operations is Operations.RW
