"""One example of each request and response body, for the OpenAPI document (`openapi.finish`
puts them on the component schemas of the same name). `tests/api/test_openapi.py` validates
each against its model, so an example cannot drift from what the service accepts or answers."""

from __future__ import annotations

from typing import Any

BASE = "http://127.0.0.1:8000"
CREATED = "2026-12-03T10:15:02Z"
EXPIRES = "2026-12-03T10:30:02Z"

ASSET_ID = "ast_9c2f41d07e3b4a58"
CUT_ID = "cut_4d1e8b2a90c7f356"
RENDER_ID = "rnd_7a3b5c9d1e2f4a6b"
ENDPOINT_ID = "whe_2b8e6f0a4c1d3e5f"
EVENT_ID = "evt_6c0d2e4f8a1b3c5d"

SIGNED = "expires=1796292602&sig=3q2-7wE0bX9k"

ASSET_UPLOADING: dict[str, Any] = {
    "id": ASSET_ID,
    "object": "asset",
    "kind": "video",
    "filename": "talk.mp4",
    "state": "uploading",
    "cuttable": False,
    "duration": None,
    "video": None,
    "audio": None,
    "error": None,
    "created_at": CREATED,
    "upload": {
        "video": {
            "url": f"{BASE}/v1/uploads/assets/{ASSET_ID}/uploads/video?{SIGNED}",
            "method": "PUT",
            "headers": {},
            "expires_at": EXPIRES,
        }
    },
    "poster": None,
}
ASSET_READY: dict[str, Any] = ASSET_UPLOADING | {
    "state": "ready",
    "cuttable": True,
    "duration": 754.32,
    "video": {"width": 1920, "height": 1080, "fps": 29.97, "codec": "h264", "bitrate_kbps": 8120, "rotation": 0},
    "audio": {"codec": "aac", "bitrate_kbps": 192, "sample_rate": 48000, "channels": 2},
    "upload": None,
    "poster": {"url": f"{BASE}/v1/files/assets/{ASSET_ID}/poster.jpg?{SIGNED}", "expires_at": EXPIRES},
}
CUT: dict[str, Any] = {
    "id": CUT_ID,
    "object": "cut",
    "asset_id": ASSET_ID,
    "state": "completed",
    "method": "segments",
    "segments": [{"start": 1.5, "end": 10.0}, {"start": 20.0, "end": 30.0}],
    "error": None,
    "created_at": CREATED,
}
RENDER_RUNNING: dict[str, Any] = {
    "id": RENDER_ID,
    "object": "render",
    "asset_id": ASSET_ID,
    "cut_id": CUT_ID,
    "output": {"format": "mp4", "resolution": "720p", "video_bitrate": None, "audio_bitrate": None},
    "state": "running",
    "progress": 0.42,
    "error": None,
    "result": None,
    "created_at": CREATED,
    "started_at": "2026-12-03T10:15:03Z",
    "completed_at": None,
    "download_url": None,
    "download_expires_at": None,
}
RENDER_COMPLETED: dict[str, Any] = RENDER_RUNNING | {
    "state": "completed",
    "progress": 1.0,
    "result": {
        "format": "mp4",
        "width": 1280,
        "height": 720,
        "duration": 18.5,
        "size_bytes": 9_482_113,
        "video_bitrate_kbps": 4000,
        "audio_bitrate_kbps": 128,
        "copied": [],
        "encoder": "libx264",
    },
    "completed_at": "2026-12-03T10:15:21Z",
    "download_url": f"{BASE}/v1/files/renders/{RENDER_ID}/output.mp4?{SIGNED}&filename=talk-720p.mp4",
    "download_expires_at": EXPIRES,
}
LEDGER_CHARGE: dict[str, Any] = {
    "id": "led_1f3e5a7c9b2d4f6a",
    "type": "charge",
    "amount": -1,
    "asset_id": ASSET_ID,
    "reason": "asset processing",
    "created_at": CREATED,
}
ENDPOINT: dict[str, Any] = {
    "id": ENDPOINT_ID,
    "object": "webhook_endpoint",
    "url": "https://example.com/hooks/roughy",
    "events": ["render.completed", "render.failed"],
    "enabled": True,
    "disabled_reason": None,
    "created_at": CREATED,
    "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "previous_secret_expires_at": None,
}

#: Component schema name -> its examples.
EXAMPLES: dict[str, list[dict[str, Any]]] = {
    # requests
    "AssetCreate": [{"kind": "video", "filename": "talk.mp4"}, {"kind": "audio", "filename": "episode-12.wav"}],
    "CutCreate": [
        {"segments": [{"start": 1.5, "end": 10.0}, {"start": 20.0, "end": 30.0}]},
        {"method": "silence", "min_silence": 0.5, "threshold_db": -35, "padding": 0.1},
    ],
    "RenderCreate": [
        {"asset_id": ASSET_ID, "cut_id": CUT_ID, "output": {"format": "mp4", "resolution": "720p"}},
        {"asset_id": ASSET_ID, "output": {"format": "mp3", "audio_bitrate": 192}},
    ],
    "WebhookEndpointCreate": [{"url": "https://example.com/hooks/roughy", "events": ["render.completed"]}],
    "AccountCreate": [{"name": "Acme Video"}],
    "CreditGrant": [{"amount": 100, "reason": "December top-up"}],
    # responses
    "AssetOut": [ASSET_UPLOADING, ASSET_READY],
    "CutOut": [CUT],
    "RenderOut": [RENDER_COMPLETED, RENDER_RUNNING],
    "CreditsOut": [
        {
            "balance": 9,
            "entries": [
                LEDGER_CHARGE,
                LEDGER_CHARGE
                | {"id": "led_0a2c4e6f8b1d3f5a", "type": "grant", "amount": 10, "asset_id": None, "reason": "starter"},
            ],
        }
    ],
    "LedgerEntryOut": [LEDGER_CHARGE | {"type": "grant", "amount": 100, "asset_id": None, "reason": "top-up"}],
    "AccountOut": [{"id": "acct_5e7a9c1b3d2f4e6a", "name": "Acme Video"}],
    "ApiKeyOut": [{"id": "key_8b0d2f4a6c1e3a5b", "key": "rk_5q3JkP2mTnW8xYz0aBcDeFgHiJkLmNoPqRsTuVwXyZ0"}],
    "WebhookEndpointOut": [ENDPOINT],
    "DeliveryOut": [
        {
            "id": "dlv_3a5c7e9b1d2f4a6c",
            "object": "webhook_delivery",
            "event_id": EVENT_ID,
            "event_type": "render.completed",
            "state": "pending",
            "attempts": [
                {"attempted_at": CREATED, "status_code": 503, "latency_ms": 84.2, "error": None},
            ],
            "next_retry_at": "2026-12-03T10:15:32Z",
            "created_at": CREATED,
            "completed_at": None,
        }
    ],
    "RedeliverOut": [{"event_id": EVENT_ID, "deliveries": ["dlv_3a5c7e9b1d2f4a6c"]}],
    # webhook payloads' data
    "AssetEventData": [ASSET_READY | {"upload": None, "poster": None}],
    "RenderEventData": [RENDER_COMPLETED | {"download_url": None, "download_expires_at": None}],
}
