import azure.durable_functions as df
import pytest

from durableagent import AgentSessionId


def test_round_trips_through_string_and_entity_id():
    sid = AgentSessionId("WeatherAgent", "abc-123")
    assert str(sid) == "@WeatherAgent@abc-123"
    assert AgentSessionId.parse(str(sid)) == sid
    entity = sid.to_entity_id()
    assert (entity.name, entity.key) == ("dafx-WeatherAgent", "abc-123")
    assert AgentSessionId.from_entity_id(entity) == sid


def test_from_entity_id_accepts_lowercased_names():
    assert AgentSessionId.from_entity_id(df.EntityId("dafx-weatheragent", "k")).name == "weatheragent"


def test_random_keys_differ_and_are_valid():
    a, b = AgentSessionId.with_random_key("A"), AgentSessionId.with_random_key("A")
    assert a.key != b.key
    assert AgentSessionId.parse(str(a)) == a


@pytest.mark.parametrize(
    "key", ["", "a/b", "a?b", "a#b", "a@b", "a b", "tab\tkey", "new\nline", "x" * 257, "a\\b", "c1\x80"]
)
def test_rejects_keys_that_break_the_durable_http_api(key):
    with pytest.raises(ValueError, match="session key"):
        AgentSessionId("Agent", key)


def test_accepts_a_256_character_key():
    assert AgentSessionId("Agent", "k" * 256).key == "k" * 256


@pytest.mark.parametrize("text", ["WeatherAgent@k", "@WeatherAgent", "", "@@k"])
def test_parse_rejects_malformed_ids(text):
    with pytest.raises(ValueError):
        AgentSessionId.parse(text)
