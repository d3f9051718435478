"""The provider simulator: a loopback HTTP server that fakes LLM providers at the HTTP boundary.

It speaks the real wire formats of OpenAI Chat Completions, Anthropic Messages
and Gemini generateContent (bodies, error bodies, status codes, headers), with
seeded latency and faults, so provider adapters, retries, billing, the demo and
the throughput benchmark run without a network or an API key.

    sim = await start_simulator(SimulatorProfile(seed=1, latency_ms=50))
    ...  # point an adapter at sim.url
    await sim.stop()

Modules: `profile` (knobs, directives, the deterministic draw), `server` (the
aiohttp app and the ways to run it), `openai_wire`, `anthropic_wire`,
`gemini_wire` (one provider's wire format each). `[sim:...]` directives that
force a fault from inside a prompt are listed in `profile`.
"""

from tierline.processors.simulator.profile import (
    Directives,
    ModelOverride,
    SimulatorProfile,
    parse_directives,
)
from tierline.processors.simulator.server import (
    ROUTES,
    RunningSimulator,
    SimulatorProcess,
    SimulatorStats,
    run_simulator_forever,
    spawn_simulator,
    start_simulator,
)

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
