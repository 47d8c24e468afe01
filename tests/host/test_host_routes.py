"""Route templates: ASP.NET syntax, constraints, case-insensitivity and precedence."""

import pytest

from harness.host.triggers.routes import RouteTemplate, RouteTemplateError, sort_key


def m(template: str, path: str) -> dict[str, str] | None:
    return RouteTemplate.parse(template).match(path)


def test_literals_are_case_insensitive_and_trailing_slash_ignored():
    assert m("agents/health", "/Agents/HEALTH/") == {}
    assert m("agents/health", "/agents/other") is None
    assert m("agents", "/agents/x") is None


def test_parameters_and_values_keep_their_case():
    assert m("agents/{name}/run", "/agents/WeatherAgent/run") == {"name": "WeatherAgent"}
    assert m("agents/{name}/run", "/agents//run") is None


def test_optional_and_default_parameters():
    assert m("items/{id?}", "/items") == {}
    assert m("items/{id?}", "/items/3") == {"id": "3"}
    assert m("items/{id=7}", "/items") == {"id": "7"}


@pytest.mark.parametrize(
    ("template", "good", "bad"),
    [
        ("{x:int}", "-12", "1.5"),
        ("{x:long}", "123456789012", "abc"),
        ("{x:alpha}", "Abc", "ab1"),
        ("{x:bool}", "TRUE", "yes"),
        ("{x:guid}", "0f8fad5b-d9cb-469f-a165-70867728950e", "nope"),
        ("{x:double}", "1.5", "x"),
        ("{x:min(3)}", "3", "2"),
        ("{x:max(3)}", "3", "4"),
        ("{x:range(1,5)}", "5", "6"),
        ("{x:length(2)}", "ab", "abc"),
        ("{x:length(2,3)}", "abc", "abcd"),
        ("{x:minlength(2)}", "ab", "a"),
        ("{x:maxlength(2)}", "ab", "abc"),
        ("{x:regex(^[a-z]+\\d$)}", "ab1", "abc"),
        ("{x:int:min(10)}", "10", "9"),
        ("{x:datetime}", "2024-01-02", "yesterday"),
    ],
)
def test_constraints(template: str, good: str, bad: str):
    assert m(template, "/" + good) == {"x": good}
    assert m(template, "/" + bad) is None


def test_catch_all_matches_rest_including_slashes_or_nothing():
    assert m("files/{*path}", "/files/a/b/c.txt") == {"path": "a/b/c.txt"}
    assert m("files/{**path}", "/files") == {}
    assert m("items/{id:int}/{*rest}", "/items/5/x/y") == {"id": "5", "rest": "x/y"}


def test_mixed_segment():
    assert m("files/{name}.{ext}", "/files/report.pdf") == {"name": "report", "ext": "pdf"}


def test_empty_template_matches_root():
    assert m("", "/") == {}
    assert m("", "/x") is None


@pytest.mark.parametrize("bad", ["a/{*rest}/b", "{x:nosuch}", "{a}/{a}", "a//b", "{1x}", "a/{b"])
def test_invalid_templates_raise(bad: str):
    with pytest.raises(RouteTemplateError):
        RouteTemplate.parse(bad)


def test_precedence_literal_before_parameter_before_catch_all():
    routes = [RouteTemplate.parse(t) for t in ["{*all}", "agents/{name}", "agents/health", "agents/{id:int}"]]
    ordered = [r.template for r in sorted(routes, key=sort_key)]
    assert ordered == ["agents/health", "agents/{id:int}", "agents/{name}", "{*all}"]
