"""The provider simulator: a loopback HTTP server that fakes LLM providers at the HTTP boundary.

It speaks the real wire formats of OpenAI Chat Completions, Anthropic Messages
and Gemini generateContent (bodies, error bodies, status codes, headers; whole or
streamed as each API streams: server-sent chunks, named events, a JSON array),
with seeded latency and faults, so provider adapters, retries, billing, the demo and
the throughput benchmark run without a network or an API key. It also speaks the
three providers' batch APIs (OpenAI Batch with its Files, Anthropic Message
Batches, Gemini batchGenerateContent), each item answered as its synchronous
route would answer it.

    sim = await start_simulator(SimulatorProfile(seed=1, latency_ms=50))
    ...  # point an adapter at sim.url
    await sim.stop()

Modules, in the order a request meets them:

* `launch`: the ways to run it (in this event loop, until a signal, in a child);
* `server`: the aiohttp app, and what it does with each request;
* `wire`, with `openai_wire`, `anthropic_wire`, `gemini_wire`: one provider's
  wire format each, on a shared skeleton; they parse into `request.SimRequest`;
* `directives`: the `[sim:...]` tags that force a fault from inside a prompt;
* `knobs`: `SimulatorProfile`, the latency, fault rates, rate limits and
  per-model overrides;
* `limits`: the sliding one-minute window that enforces `rpm_limit`/`tpm_limit`;
* `draw`: the deterministic draw of each request's `Fate`;
* `tool_use`: when the model calls a tool ("call <name>" in the prompt, or a forcing
  tool choice), and arguments valid for the tool's schema;
* `replies`: the answer text, tool calls and token counts the wire modules render;
* `batches`: the batch store and the life of a batch (running, ended, canceled,
  failed); `batch_desk`: what every batch route does alike (outage, auth, submit,
  look); `openai_batch`, `anthropic_batch`, `gemini_batch`: each provider's batch
  shapes and routes.
"""

from tierline.processors.simulator.directives import Directives, parse_directives
from tierline.processors.simulator.knobs import ModelOverride, SimulatorProfile
from tierline.processors.simulator.launch import (
    RunningSimulator,
    SimulatorProcess,
    run_simulator_forever,
    spawn_simulator,
    start_simulator,
)
from tierline.processors.simulator.server import ROUTES, SimulatorStats

__all__ = [
    "ROUTES",
    "Directives",
    "ModelOverride",
    "RunningSimulator",
    "SimulatorProcess",
    "SimulatorProfile",
    "SimulatorStats",
    "parse_directives",
    "run_simulator_forever",
    "spawn_simulator",
    "start_simulator",
]
