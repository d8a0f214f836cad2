"""Must FAIL mypy --strict with exactly the errors in mypy.expected."""

from __future__ import annotations

from tests.codegen.cases.flows.expected import FlowsMap
from tests.codegen.cases.flows.schema import FlowStats


def misuse(stats: FlowStats) -> None:
    flows = FlowsMap.create()
    flows[stats] = stats  # a FlowStats where a FlowKey is expected
    for _k, v in flows.items():
        print(v.pakets)  # a typo
    flows.push(stats)  # a hash map has no push
    for b in flows.drain().columns(FlowsMap.Batch):
        print(b.keys.sprot)  # a typo in a column name
        total: list[str] = b.values.packets  # a column of integers
        print(total)
