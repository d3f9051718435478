"""Provider adapters: one module per wire format, one registry, one HTTP exchange.

`registry.adapter_for(family)` gives the adapter; `call.call_model` performs the
exchange through a shared `httpx.AsyncClient`; `base.normalized` is the rule
every reply ends with (an empty answer is never a success); `http_errors`
types every failure (`capability_errors` tells "this model lacks tools" from a
wrong request); `tool_calls` moves tool calls between OpenAI's JSON-string
arguments and the object arguments of the others; `families` says where each
family lives and which key it needs; `compat` tabulates the OpenAI-compatible
family's quirks.

What each provider's wire format maps to the normalized reply:

| normalized     | OpenAI (+ compatible)    | Anthropic Messages      | Gemini generateContent    |
|----------------|--------------------------|-------------------------|---------------------------|
| endpoint       | POST /chat/completions   | POST /v1/messages       | POST /v1beta/models/      |
|                |                          |                         | {id}:generateContent      |
| auth           | Authorization: Bearer    | x-api-key, anthropic-   | x-goog-api-key            |
|                |                          | version: 2023-06-01     |                           |
| system prompt  | system message           | top-level `system`      | systemInstruction.parts   |
| turns          | messages[] as sent       | messages[] user /       | contents[] user / model,  |
|                | (developer -> system     | assistant, content      | parts[] (text,            |
|                | for compatible ones)     | blocks; tool_use and    | inlineData, fileData,     |
|                |                          | tool_result blocks      | functionCall/Response)    |
| max tokens     | max_completion_tokens    | max_tokens (required:   | generationConfig.         |
|                | (OpenAI), max_tokens     | default min(8192,       | maxOutputTokens           |
|                | (compatible)             | model's output limit))  |                           |
| tools          | tools, tool_choice,      | tools[].input_schema,   | tools[].function-         |
|                | parallel_tool_calls      | tool_choice auto/any/   | Declarations (parameters- |
|                | as sent                  | tool/none, disable_     | JsonSchema), toolConfig.  |
|                |                          | parallel_tool_use       | functionCallingConfig     |
| tool calls     | message.tool_calls       | tool_use blocks (input  | functionCall parts (args  |
| (normalized to |                          | -> JSON text)           | -> JSON text; thought-    |
| OpenAI's)      |                          |                         | Signature kept)           |
| JSON output    | response_format (json_   | output_config.format;   | responseMimeType +        |
|                | schema -> json_object    | json_object -> a        | responseJsonSchema        |
|                | where unsupported)       | system instruction      |                           |
| text           | choices[0].message.      | content[] `text`        | candidates[0].content.    |
|                | content (or its text     | blocks joined           | parts[] text joined,      |
|                | parts joined)            |                         | thought parts skipped     |
| stop           | stop, eos                | end_turn, stop_sequence | STOP                      |
| length         | length, model_length     | max_tokens, pause_turn, | MAX_TOKENS                |
| (truncated)    |                          | model_context_window_   |                           |
|                |                          | exceeded                |                           |
| content_filter | content_filter,          | refusal                 | SAFETY, RECITATION,       |
|                | message.refusal          |                         | BLOCKLIST, SPII, ...;     |
|                |                          |                         | promptFeedback.block-     |
|                |                          |                         | Reason                    |
| tool_calls     | tool_calls,              | tool_use                | functionCall parts        |
|                | function_call            |                         |                           |
| error          | error (Mistral,          | (error event in a 200)  | MALFORMED_FUNCTION_CALL   |
|                | OpenRouter), DeepSeek    |                         | (invalid_response)        |
|                | insufficient_system_     |                         |                           |
|                | resource (overloaded)    |                         |                           |
| input tokens   | usage.prompt_tokens      | input_tokens + cache_   | promptTokenCount +        |
| (cached incl.) | (DeepSeek: hit + miss)   | creation_input_tokens + | toolUsePromptTokenCount   |
|                |                          | cache_read_input_tokens |                           |
| cached read    | prompt_tokens_details.   | cache_read_input_tokens | cachedContentTokenCount   |
|                | cached_tokens; DeepSeek: |                         |                           |
|                | prompt_cache_hit_tokens  |                         |                           |
| cache write    | - (OpenRouter: prompt_   | cache_creation_input_   | - (no per-call charge)    |
|                | tokens_details.cache_    | tokens (5-minute TTL)   |                           |
|                | write_tokens)            |                         |                           |
| output tokens  | completion_tokens        | output_tokens           | candidatesTokenCount +    |
|                | (reasoning included)     | (thinking included)     | thoughtsTokenCount        |
| request id     | x-request-id header,     | request-id header,      | responseId                |
|                | else body id             | else message id         |                           |
| errors         | error.{message, code,    | error.{type, message}   | error.{code, message,     |
|                | type}; Mistral/vLLM:     |                         | status, details[].reason} |
|                | top-level message        |                         |                           |
| retry after    | retry-after-ms, else     | retry-after             | RetryInfo.retryDelay,     |
|                | retry-after              |                         | else Retry-After          |
"""
