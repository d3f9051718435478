"""The OpenAI-compatible front door's pure parts: what the gateway says, no HTTP or Kafka here.

* `api_keys`: `Authorization: Bearer <key>` to a tenant (`[gateway.keys]`);
* `request_ids`: the request id from `Idempotency-Key` / `X-Request-Id`, or a new one;
* `model_names`: `tierline/auto`, `tierline/<tier>` and catalog models, and `/v1/models`;
* `openai_request`: a chat-completions body to a `RouteRequest`, or a 400 naming the field;
* `openai_response`: a `RouteResponse` to a `chat.completion` or an error body;
* `statuses`: which HTTP status and OpenAI error body each failure gets;
* `waiters`: the calls waiting for their answers, keyed by (tenant, id).

The server around them, and its Kafka producer and reply reader, is `streams.gateway`.
"""
