"""CoRE link format (content format 40) for Register/Update payloads."""

import pytest
from hypothesis import given, settings, strategies as st

from gateway.lwm2m import (FormatError, Link, LwM2MPath, ObjectInfo, format_link_format, parse_link_format,
                           parse_registration)

REGISTER = '</>;rt="oma.lwm2m";ct=11543,</1/0>,</3/0>,</3303>;ver=1.1,</3303/0>,</3303/1>,</5>'


def test_parse_register_payload():
    links = parse_link_format(REGISTER)
    assert links[0] == Link("/", {"rt": "oma.lwm2m", "ct": "11543"})
    assert [uri for uri, _ in links] == ["/", "/1/0", "/3/0", "/3303", "/3303/0", "/3303/1", "/5"]
    assert links[3].attributes == {"ver": "1.1"}
    assert parse_link_format(REGISTER.encode()) == links


def test_registration_meaning():
    reg = parse_registration(REGISTER)
    assert reg.root == "/" and reg.content_formats == (11543,)
    assert reg.objects == {1: ObjectInfo(None, (0,)), 3: ObjectInfo(None, (0,)),
                           3303: ObjectInfo("1.1", (0, 1)), 5: ObjectInfo(None, ())}
    assert reg.instance_paths() == [LwM2MPath(1, 0), LwM2MPath(3, 0), LwM2MPath(3303, 0), LwM2MPath(3303, 1)]


def test_alternate_path_and_content_format_list():
    reg = parse_registration('</lwm2m>;rt="oma.lwm2m";ct="60 110 112 11543",</lwm2m/1/0>,</lwm2m/3/0>')
    assert reg.root == "/lwm2m" and reg.content_formats == (60, 110, 112, 11543)
    assert sorted(reg.objects) == [1, 3]


def test_real_client_spellings():
    # no root link (lwm2m-node-lib, coap-node), spaces, a trailing comma, repeated links
    reg = parse_registration("</1/0>, </3/0> ,\n</3/0>,</4/0>,")
    assert reg.objects == {1: ObjectInfo(None, (0,)), 3: ObjectInfo(None, (0,)), 4: ObjectInfo(None, (0,))}
    assert parse_registration("").objects == {}
    # Zephyr/Wakaama: </> root link with rt only, and a plain </> ignored
    assert parse_registration('</>;rt="oma.lwm2m",</>,</3/0>').objects == {3: ObjectInfo(None, (0,))}


def test_attributes():
    links = parse_link_format('</3/0>;obs;title="a, b;c \\"q\\"";sz=12;if="x y",</4>;ct=0')
    assert links[0].attributes == {"obs": None, "title": 'a, b;c "q"', "sz": "12", "if": "x y"}
    # the first of a repeated attribute is kept
    assert parse_link_format("</3>;ct=1;ct=2")[0].attributes == {"ct": "1"}


def test_format_roundtrip():
    links = parse_link_format('</>;rt="oma.lwm2m";ct=11543,</3/0>;obs;title="a \\"b\\"",</3303>;ver=1.1')
    text = format_link_format(links)
    assert text == '</>;rt="oma.lwm2m";ct=11543,</3/0>;obs;title="a \\"b\\"",</3303>;ver=1.1'
    assert parse_link_format(text) == links


@pytest.mark.parametrize("text, message", [
    ("1/0>", "link-format: expected '<' at character 0, found '1'"),
    ("</1/0", "link-format: '<' at character 0 is never closed with '>'"),
    ("<>", "link-format: bad URI reference '' at character 0"),
    ("</1 0>", "link-format: bad URI reference '/1 0' at character 0"),
    ("</1/0>;", "link-format: expected an attribute name at character 7"),
    ("</1/0>;=3", "link-format: expected an attribute name at character 7"),
    ("</1/0>;ct=", "link-format: attribute 'ct' has no value after '=' at character 10"),
    ("</1/0>;ct=,</3/0>", "link-format: attribute 'ct' has no value after '=' at character 10"),
    ('</1/0>;rt="abc', "link-format: quoted value starting at character 10 is never closed"),
    ("</1/0> </3/0>", "link-format: unexpected '<' at character 7 (expected ',' or ';')"),
    ("</1/0>x", "link-format: unexpected 'x' at character 6 (expected ',' or ';')"),
    ("</1/0>,,</3/0>", "link-format: expected '<' at character 7, found ','"),
    ("</1/0>,\x01", "link-format: control character '\\x01' at character 7"),
    (b"</1/0>\xff", "link-format: not UTF-8 (byte 6)"),
    ("<" * 70000, "link-format: 70000 characters is over the limit of 65536"),
])
def test_malformed_link_format(text, message):
    with pytest.raises(FormatError) as exc:
        parse_link_format(text)
    assert str(exc.value) == message


@pytest.mark.parametrize("text, message", [
    ("</abc>", "link-format: link 0: </abc> is not an object or object instance path "
               "(path '/abc': segment 'abc' is not a decimal id)"),
    ("</1/0>,</3/0/1>", "link-format: link 1: </3/0/1> is not an object or object instance path"),
    ("</70000/0>", "link-format: link 0: </70000/0> is not an object or object instance path "
                   "(path '/70000/0': id 70000 is out of range 0..65535)"),
    ('</>;rt="oma.lwm2m";ct=abc', "link-format: link 0: ct='abc' is not a list of content formats"),
    ('</lwm2m>;rt="oma.lwm2m",</3/0>', "link-format: link 1: </3/0> is not under the alternate path /lwm2m"),
    ('<lwm2m>;rt="oma.lwm2m"', "link-format: link 0: alternate path <lwm2m> must start with '/'"),
    ("</3>;ver=one", "link-format: link 0: ver='one' is not a version like 1.1"),
])
def test_bad_registration(text, message):
    with pytest.raises(FormatError) as exc:
        parse_registration(text)
    assert str(exc.value) == message


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet='</>;=",01 3ab\\\n', max_size=60))
def test_never_crashes(text):
    try:
        parse_registration(text)
    except FormatError:
        pass


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet='</>;=",01 3ab\\\n\tx-', max_size=50))
def test_fast_path_agrees_with_exact_parser(text):
    from gateway.lwm2m import linkformat
    fast = linkformat._parse_fast(text)
    try:
        slow = linkformat._parse_slow(text)
    except FormatError:
        assert fast is None
        return
    assert fast is None or fast == slow


def test_content_formats_from_bare_root_link():
    assert parse_registration("</>;ct=110,</3/0>").content_formats == (110,)
    assert parse_registration('</>;ct=110,</lwm2m>;rt="oma.lwm2m";ct=112,</lwm2m/3/0>').content_formats == (112,)
