"""Many users: per-session state is made only by the calls that keep something, so a flood of cheap calls from
fresh sessions evicts nobody; the store evicts by age and memory, and never a session whose run is running
(`app.core.store`)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

from gradio_client import Client, handle_file
from PIL import Image, ImageDraw

from app.core.store import SessionStore
from tests.support.calls import call

FLOOD = 40  # more than the store keeps here (`max_sessions` 16): had each call made a session, A's would go
CHEAP = [  # every event a fresh session can call for nearly nothing: stops, scrubs, views of nothing yet
    ("complete_stop", []), ("flow_at", [0.5, "predicted"]), ("stop", []), ("scrub", [3]), ("update_numbers", []),
    ("duel_scrub", [0.5]), ("duel_stop", []), ("complete_scrub", [0.5]), ("export_png", []), ("play", []),
]  # fmt: skip


def running(nbytes: int = 0) -> SimpleNamespace:
    """A run still sampling, as the store sees one."""
    return SimpleNamespace(running=True, nbytes=nbytes, stop=lambda: None)


def ended(nbytes: int = 0) -> SimpleNamespace:
    return SimpleNamespace(running=False, nbytes=nbytes, stop=lambda: None)


def test_reading_makes_no_session(tmp_path):
    store = SessionStore(max_sessions=2)
    assert store.find("new") is None and store.found("new", "digit") is None and len(store) == 0
    store.get("a").kept["digit"] = "a's digit"
    assert store.find("a") is store.get("a") and store.found("a", "digit") == "a's digit" and len(store) == 1


def test_beyond_its_count_the_store_forgets_empty_sessions_first_and_never_a_running_one():
    store = SessionStore(max_sessions=3)
    store.get("live").runs["generate"] = running()
    store.get("scored").kept["digit"] = "a digit"
    store.get("pixels")  # chose a pixel, holds nothing else
    store.get("new").kept["digit"] = "another digit"  # one too many: the empty one goes, though not the oldest
    assert {"live", "scored", "new"} == set(store._sessions)
    store.get("newer")  # one too many again: nothing empty to forget but itself, just made: the oldest idle one
    assert {"live", "new", "newer"} == set(store._sessions)
    for k in range(5):
        store.get(f"flood-{k}")  # each forgets the empty one before it
    assert {"live", "new", "flood-4"} == set(store._sessions)  # never the running one, however old


def test_beyond_its_memory_the_store_drops_what_idle_sessions_keep_oldest_first():
    store = SessionStore(max_bytes=1000)
    store.get("live").runs["generate"] = running(nbytes=300)
    store.get("live").kept["digit"] = SimpleNamespace(nbytes=100)
    store.keep("old", "digit", SimpleNamespace(nbytes=300))
    store.keep("mid", "digit", SimpleNamespace(nbytes=200))
    store.get("ended").runs["generate"] = ended(nbytes=100)
    store.keep("new", "digit", SimpleNamespace(nbytes=250))  # 1250 in all: "old" (idle, oldest) gives way
    assert store.found("old", "digit") is None and store.found("mid", "digit") and store.found("new", "digit")
    assert store.find("old") is not None  # the session stays; what it kept went
    store.keep("new", "digit", SimpleNamespace(nbytes=700))  # 1400: the ended run, then "mid"'s digit; never "live"'s
    assert store.find("ended").runs == {} and store.found("mid", "digit") is None
    assert store.found("live", "digit") is not None and store.find("live").runs


def _score_a_digit(client: Client, folder) -> str:
    seven = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
    ImageDraw.Draw(seven).line([(70, 60), (210, 60), (120, 230)], fill=(0, 0, 0, 255), width=24)
    seven.save(folder / "seven.png")
    drawing = {"background": None, "layers": [], "composite": handle_file(str(folder / "seven.png"))}
    return client.predict(drawing, "drawing", "discrete", 0, 0, 0.5, "predicted", api_name="/score")[0]


def test_a_flood_of_cheap_calls_from_fresh_sessions_evicts_nobody(server, tmp_path, monkeypatch):
    """User A scores a digit and has a generation running; a flood of cheap calls from fresh sessions (as the
    issue's `POST /gradio_api/call/complete_stop`) makes no session, so A's digit and run are still there (the
    store here keeps 16 sessions: 40 new ones would have evicted A, and stopped its run)."""
    url, app_server = server
    store = app_server.context.store
    monkeypatch.setattr(store, "max_sessions", 16)
    a = Client(url, verbose=False, download_files=False)
    try:
        assert "Scored your drawing" in _score_a_digit(a, tmp_path)
        job = a.submit("both", "all", 0, 1.0, 1000, 0, "bfn", api_name="/generate")
        deadline = time.monotonic() + 60
        while not any(s.run is not None and s.run.running for s in list(store._sessions.values())) and time.monotonic() < deadline:
            time.sleep(0.05)
        before = len(store)
        run = next(s.run for s in list(store._sessions.values()) if s.run is not None and s.run.running)
        with ThreadPoolExecutor(4) as pool:
            outcomes = list(pool.map(lambda k: call(url, *CHEAP[k % len(CHEAP)]), range(FLOOD)))
        assert len(outcomes) == FLOOD and len(store) == before, (before, len(store))
        assert store.find(a.session_hash).run is run  # A's session and run are still there, not evicted
        t_view = a.predict(0.3, "predicted", api_name="/flow_at")[-1]
        assert "Score a digit first" not in t_view and "t = 0.300" in t_view  # A's digit is still there
        job.cancel()
    finally:
        a.close()
    answered = [o.data[0] for o in outcomes if o.ok and o.data and isinstance(o.data[0], str)]
    assert len(answered) >= FLOOD // 3 and not any("Running" in text or "Done" in text for text in answered)  # nothing of A's
