"""Fault injection and latency control: markers in the prompt, headers, counters.

A test (or a designer trying the error screens) asks for trouble either with a
header or inside the prompt, so an end-to-end run through the real app can
trigger it without any way to set headers:

    X-Simulator-Fault: rate_limit            header, this request only
    [[fault:rate_limit]]                     prompt marker, every protocol
    [[fault:rate_limit@openai]]              only requests of that protocol (openai | gemini)
    [[fault:rate_limitx2]]                   only the first 2 requests with this exact prompt
    [[fault:timeout:30]]                     a number after ':' = seconds (timeout only)
    [[latency:2.5]] / X-Simulator-Latency: 2.5   seconds to wait, replacing the default

The parts combine in any order after the name: [[fault:server_error@geminix3]].

Keys: the app always sends one, so two faults stand for a provider that turns the
key down: `auth` answers as for a key that is not valid, `no_key` as for a request
that arrived without any key (compare/simulator/common.py `key_problem` also knows
a bad key by its value). `stream_error` sends a preview, then an error event in the
middle of a streamed OpenAI reply (a non-streamed request gets the same error whole).
Markers are removed before the prompt is drawn into the image. Markers that change
the text drawn ([[swap:钜>巨]], [[drop:Dashboard]]) are described in
compare/simulator/render.py.
"""

import re
import threading
import time
from dataclasses import dataclass

FAULTS = {
    "rate_limit",
    "quota",
    "server_error",
    "overloaded",
    "timeout",
    "malformed",
    "refusal",
    "prompt_blocked",
    "text_only",
    "no_image",
    "cutoff",
    "auth",
    "no_key",
    "stream_error",
}
PROTOCOLS = {"openai", "gemini"}
DEFAULT_TIMEOUT = 600.0

# name, then optional ':seconds', 'xN' and '@protocol' in either order.
_SPEC = r"(?P<name>[a-z_]+?)(?::(?P<seconds>\d+(?:\.\d+)?))?(?P<mods>(?:x\d+|@[a-z]+?)*)"
FAULT_MARKER = re.compile(r"\[\[\s*fault\s*:\s*" + _SPEC + r"\s*\]\]", re.IGNORECASE)
FAULT_HEADER = re.compile(r"^\s*" + _SPEC + r"\s*$", re.IGNORECASE)
LATENCY_MARKER = re.compile(
    r"\[\[\s*latency\s*:\s*(?P<seconds>\d+(?:\.\d+)?)(?:@(?P<protocol>[a-z]+))?\s*\]\]", re.IGNORECASE
)
# Also the wrong-text markers of compare/simulator/render.py ([[swap:…]], [[drop:…]]).
ANY_MARKER = re.compile(r"\[\[\s*(?:fault|latency|swap|drop)\s*[:@][^\]]*\]\]", re.IGNORECASE)


@dataclass(frozen=True)
class Fault:
    name: str
    protocol: str | None = None  # None = any protocol
    count: int | None = None  # None = every request
    seconds: float | None = None  # timeout length
    source: str = "prompt"

    def applies_to(self, protocol: str) -> bool:
        return self.protocol is None or self.protocol == protocol


class UnknownFault(ValueError):
    """A marker or header names a fault that doesn't exist: say so rather than succeed silently."""


def _from_match(match: re.Match, source: str) -> Fault:
    name = match.group("name").lower()
    mods = match.group("mods") or ""  # e.g. "@openaix2": the protocol is non-greedy, so x2 is the count
    protocols = re.findall(r"@([a-z]+?)(?=x\d|@|$)", mods, re.IGNORECASE)
    counts = re.findall(r"x(\d+)", mods, re.IGNORECASE)
    if name not in FAULTS:
        raise UnknownFault(f"Unknown simulator fault {name!r}; known: {', '.join(sorted(FAULTS))}.")
    protocol = protocols[-1].lower() if protocols else None
    if protocol is not None and protocol not in PROTOCOLS:
        raise UnknownFault(f"Unknown simulator protocol {protocol!r} in fault marker; use @openai or @gemini.")
    seconds = match.group("seconds")
    return Fault(name, protocol, int(counts[-1]) if counts else None, float(seconds) if seconds else None, source)


def parse_faults(prompt: str, header: str | None = None) -> list[Fault]:
    """Every fault requested, the header first (it wins over markers)."""
    faults = []
    if header and header.strip():
        match = FAULT_HEADER.match(header)
        if not match:
            raise UnknownFault(f"Cannot read X-Simulator-Fault {header!r}; expected e.g. 'rate_limit' or 'timeout:5'.")
        faults.append(_from_match(match, "header"))
    faults.extend(_from_match(m, "prompt") for m in FAULT_MARKER.finditer(prompt or ""))
    return faults


def strip_markers(prompt: str) -> str:
    """The prompt as a person wrote it, without the simulator's [[…]] markers."""
    return " ".join(ANY_MARKER.sub(" ", prompt or "").split())


# Counters for 'xN' faults: how many requests with this protocol + prompt have failed so far.
_counts: dict[tuple[str, str, str], int] = {}
_counts_lock = threading.Lock()


def reset_counters() -> None:
    with _counts_lock:
        _counts.clear()


def _take(fault: Fault, protocol: str, prompt: str) -> bool:
    """True if this request should fail; counted faults stop after N failures."""
    if fault.count is None:
        return True
    key = (protocol, prompt, fault.name)
    with _counts_lock:
        used = _counts.get(key, 0)
        if used >= fault.count:
            return False
        _counts[key] = used + 1
        return True


def select_fault(protocol: str, prompt: str, header: str | None) -> Fault | None:
    """The fault this request must show, if any (raises UnknownFault for a typo)."""
    for fault in parse_faults(prompt, header):
        if fault.applies_to(protocol):
            return fault if _take(fault, protocol, prompt) else None
    return None


def latency_override(protocol: str, prompt: str, header: str | None) -> float | None:
    """Seconds requested by header or [[latency:S]] marker; None = use the model's default."""
    if header and header.strip():
        try:
            return max(0.0, float(header))
        except ValueError:
            pass
    for match in LATENCY_MARKER.finditer(prompt or ""):
        wanted = (match.group("protocol") or "").lower()
        if not wanted or wanted == protocol:
            return float(match.group("seconds"))
    return None


# Sleeps wake early when release_sleepers() is called (tests, server shutdown),
# so a simulated 10-minute timeout never pins a worker thread for good.
_wake = threading.Condition()
_generation = 0


def sleep(seconds: float) -> bool:
    """Sleep up to `seconds`; False if woken early by release_sleepers()."""
    if seconds <= 0:
        return True
    deadline = time.monotonic() + seconds
    with _wake:
        start_generation = _generation
        while _generation == start_generation:
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            _wake.wait(left)
    return False


def release_sleepers() -> None:
    global _generation
    with _wake:
        _generation += 1
        _wake.notify_all()
