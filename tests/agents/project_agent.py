"""An agent recording into the project named by TRACETAPE_PROJECT; ``own-provider`` as argument makes it
set up its own OTel TracerProvider first, whose Resource says nothing of tracetape's project."""

import json
import sys

import tracetape

if sys.argv[1:] == ["own-provider"]:
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    trace.set_tracer_provider(TracerProvider(resource=Resource.create({"service.name": "own"})))

tracetape.instrument()


@tracetape.tool
def lookup(claim: str) -> dict:
    return {"claim": claim, "status": "open"}


with tracetape.run(agent="project-agent") as run:
    lookup("C-1")
tracetape.flush(30)
print(json.dumps({"run_id": run.run_id}))
