"""Two agents in one app: each gets its own entity and routes under /api/agents/{name}/."""

import ast
import operator
import os

from agent_framework import Agent
from agent_framework.openai import OpenAIChatClient
from azure.identity import DefaultAzureCredential

from durableagent import AgentFunctionApp

_OPERATORS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
}
_WORDS = (
    ("multiplied by", "*"),
    ("divided by", "/"),
    ("times", "*"),
    ("plus", "+"),
    ("minus", "-"),
    ("over", "/"),
    ("x", "*"),
    ("^", "**"),
)


def get_weather(location: str) -> str:
    """Get the current weather for a city (simulated)."""
    return f"{('sunny', 'cloudy', 'rainy')[len(location) % 3]}, {len(location) + 10} C in {location}"


def calculate(expression: str) -> str:
    """Evaluate an arithmetic expression such as '2 + 3 * 4'."""

    def walk(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](walk(node.operand))
        raise ValueError(f"unsupported expression: {expression!r}")

    text = expression.lower()
    for words, symbol in _WORDS:
        text = text.replace(words, symbol)
    result = walk(ast.parse(text, mode="eval").body)
    return str(int(result) if float(result).is_integer() else result)


def chat_client() -> OpenAIChatClient:
    api_key = os.environ.get("AZURE_OPENAI_API_KEY")
    return OpenAIChatClient(
        model=os.environ.get("AZURE_OPENAI_CHAT_DEPLOYMENT_NAME", "gpt-4o-mini"),
        azure_endpoint=os.environ["AZURE_OPENAI_ENDPOINT"],
        api_key=api_key,
        credential=None if api_key else DefaultAzureCredential(),
    )


app = AgentFunctionApp(
    agents=[
        Agent(
            client=chat_client(),
            name="WeatherAgent",
            instructions="Answer weather questions.",
            tools=[get_weather],
        ),
        Agent(
            client=chat_client(),
            name="MathAgent",
            instructions="Solve arithmetic with calculate.",
            tools=[calculate],
        ),
    ]
)
