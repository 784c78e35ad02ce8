//! `POST /v1/chat/completions`.

use super::choices;
use super::images::Images;
use super::params::{self, wire_usage};
use super::{json_event, new_id, now_secs, sse};
use crate::extract::JsonBody;
use crate::ApiError;
use axum::extract::State;
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use minerva_core::{FinishReason, LogprobRequest, TokenOut};
use minerva_engine::{ChatEvent, ChatReply, CompletionJob, Engine, Prompt};
use minerva_openai::{
    ChatChoice, ChatChunkChoice, ChatCompletion, ChatCompletionChunk, ChatCompletionRequest,
    ChatDelta, ChatLogprobs, ChatMessageOut, ChatTokenLogprob, FunctionCallOut, FunctionDelta,
    ToolCallDelta, ToolCallOut, TopLogprob,
};
use serde_json::{Map, Value};

const ROLES: [&str; 5] = ["system", "developer", "user", "assistant", "tool"];

#[utoipa::path(post, path = "/v1/chat/completions", tag = "openai",
    request_body = ChatCompletionRequest,
    responses((status = 200, description = "The completion; with `stream: true`, its chunks as server-sent events ending in `data: [DONE]`", content(
        (ChatCompletion = "application/json"),
        (ChatCompletionChunk = "text/event-stream")))))]
pub async fn handle(
    State(engine): State<Engine>,
    State(metrics): State<std::sync::Arc<crate::metrics::Metrics>>,
    State(urls): State<Option<super::images::ImageUrls>>,
    JsonBody(req): JsonBody<ChatCompletionRequest>,
) -> Result<Response, ApiError> {
    let started = std::time::Instant::now();
    let job = job(&engine, &req, urls).await?;
    let logprobs = job.logprobs;
    let n = params::choices(&req.sampling)?;
    let streams = choices::start(&engine, job, n, &metrics, started).await?;
    let mut chats = choices::chats(streams);
    let id = new_id("chatcmpl");
    let created = now_secs();
    let model_id = req.model;

    if req.sampling.stream {
        // A request refused before its first token (a queue timeout) still gets a status.
        for chat in chats.iter_mut() {
            chat.source_mut().started().await?;
        }
        let include_usage = req
            .sampling
            .stream_options
            .as_ref()
            .is_some_and(|o| o.include_usage);
        let want_logprobs = logprobs.is_some();
        let chunk = move |index: u32,
                          delta: ChatDelta,
                          lp: Option<ChatLogprobs>,
                          finish: Option<&'static str>| {
            ChatCompletionChunk {
                id: id.clone(),
                object: "chat.completion.chunk",
                created,
                model: model_id.clone(),
                choices: vec![ChatChunkChoice {
                    index,
                    delta,
                    logprobs: lp,
                    finish_reason: finish,
                }],
                usage: include_usage.then_some(None),
                system_fingerprint: super::FINGERPRINT,
            }
        };
        let mut events = choices::merge_chats(chats);
        let body = async_stream::stream! {
            for index in 0..n as u32 {
                let first = ChatDelta { role: Some("assistant"), content: Some(String::new()), ..ChatDelta::default() };
                yield json_event(&chunk(index, first, None, None));
            }
            let mut usages = Vec::new();
            while let Some((index, event)) = events.next().await {
                let index = index as u32;
                match event {
                    Ok(ChatEvent::Content { text, tokens }) => {
                        let lp = want_logprobs.then(|| chat_logprobs(&tokens));
                        let delta = ChatDelta { content: Some(text), ..ChatDelta::default() };
                        yield json_event(&chunk(index, delta, lp, None));
                    }
                    Ok(ChatEvent::Reasoning { text }) => {
                        let delta = ChatDelta { reasoning_content: Some(text), ..ChatDelta::default() };
                        yield json_event(&chunk(index, delta, None, None));
                    }
                    Ok(ChatEvent::ToolCallStart { index: call, id, name }) => {
                        let call = ToolCallDelta {
                            index: call,
                            id: Some(id),
                            kind: Some("function"),
                            function: FunctionDelta { name: Some(name), arguments: Some(String::new()) },
                        };
                        yield json_event(&chunk(index, tool_delta(call), None, None));
                    }
                    Ok(ChatEvent::ToolCallArgs { index: call, delta }) => {
                        let call = ToolCallDelta {
                            index: call,
                            id: None,
                            kind: None,
                            function: FunctionDelta { name: None, arguments: Some(delta) },
                        };
                        yield json_event(&chunk(index, tool_delta(call), None, None));
                    }
                    Ok(ChatEvent::ToolCallEnd { .. } | ChatEvent::Hidden { .. }) => {}
                    Ok(ChatEvent::Done { reason, usage }) => {
                        usages.push(usage);
                        yield json_event(&chunk(index, ChatDelta::default(), None, Some(reason.as_str())));
                    }
                    Err(e) => yield json_event(&ApiError::from(e).body()),
                }
            }
            if include_usage {
                let mut last = chunk(0, ChatDelta::default(), None, None);
                last.choices.clear();
                last.usage = Some(Some(wire_usage(&choices::usage(&usages))));
                yield json_event(&last);
            }
            yield Ok(Event::default().data("[DONE]"));
        };
        return Ok(sse(body));
    }

    let replies = futures::future::join_all(
        chats
            .into_iter()
            .map(|mut chat| async move { chat.collect().await }),
    )
    .await;
    let replies = replies.into_iter().collect::<Result<Vec<_>, _>>()?;
    let usage = choices::usage(replies.iter().map(|r| &r.usage));
    let choices = replies
        .into_iter()
        .enumerate()
        .map(|(index, done)| chat_choice(index as u32, done, logprobs.is_some()))
        .collect();
    let body = ChatCompletion {
        id,
        object: "chat.completion",
        created,
        model: model_id,
        choices,
        usage: wire_usage(&usage),
        system_fingerprint: super::FINGERPRINT,
    };
    Ok(Json(body).into_response())
}

/// One choice of a whole (not streamed) reply. `content` is `null` when the reply is only tool
/// calls.
fn chat_choice(index: u32, done: ChatReply, logprobs: bool) -> ChatChoice {
    let tool_calls = (!done.tool_calls.is_empty()).then(|| {
        done.tool_calls
            .iter()
            .map(|c| ToolCallOut {
                id: c.id.clone(),
                kind: "function",
                function: FunctionCallOut {
                    name: c.name.clone(),
                    arguments: c.arguments.clone(),
                },
            })
            .collect::<Vec<_>>()
    });
    let content = if tool_calls.is_some() && done.content.is_empty() {
        None
    } else {
        Some(done.content)
    };
    ChatChoice {
        index,
        message: ChatMessageOut {
            role: "assistant",
            content,
            reasoning_content: Some(done.reasoning).filter(|r| !r.is_empty()),
            tool_calls,
        },
        logprobs: logprobs.then(|| chat_logprobs(&done.tokens)),
        finish_reason: Some(done.reason.unwrap_or(FinishReason::Stop).as_str()),
    }
}

fn tool_delta(call: ToolCallDelta) -> ChatDelta {
    ChatDelta {
        tool_calls: Some(vec![call]),
        ..ChatDelta::default()
    }
}

/// The engine job of a chat completion request: messages checked and normalised, tools,
/// output format, sampling, stops and reasoning read. Also how `/v1/responses` runs, after
/// translating its request into this one. `urls`: whether image URLs are fetched.
pub(crate) async fn job(
    engine: &Engine,
    req: &ChatCompletionRequest,
    urls: Option<super::images::ImageUrls>,
) -> Result<CompletionJob, ApiError> {
    let model = engine.model(Some(&req.model)).await?;
    super::contract::refuse_chat_fields(req)?;
    // A created model's system prompt, messages and parameters, under the request's own.
    let settings = super::settings::of(engine, &req.model).await;
    let mut fields = req.sampling.clone();
    super::settings::fill_fields(&settings, &mut fields);
    let mut cleaned = super::contract::clean_messages(&req.messages)?;
    settings.apply_to_messages(&mut cleaned);
    let mut images = Images::new(urls);
    let messages = normalize_messages(&cleaned, &mut images)?;
    let images = super::images::decode(images.raw, model.info()).await?;
    let messages = super::contract::developer_as_system(messages, &model.info().chat_template);
    let format = super::format::openai(req.response_format.as_ref(), &fields).await?;
    let tools = params::tools(req.tools.as_ref())?;
    let tool_request = params::tool_request(
        req.tools.as_ref(),
        req.tool_choice.as_ref(),
        req.parallel_tool_calls,
    )?;
    let mut sampling = params::sampling(&fields, model.info().n_vocab)?;
    sampling.format = format;
    let max_tokens = match req.max_completion_tokens {
        Some(v) => params::max_tokens(Some(v), "max_completion_tokens")?,
        None => params::max_tokens(fields.max_tokens, "max_tokens")?,
    };
    let logprobs = logprob_request(req.logprobs, req.top_logprobs)?;
    let thinking = super::reasoning::openai(req)?;
    let job = CompletionJob {
        model: req.model.clone(),
        prompt: Prompt::Chat {
            messages,
            tools,
            kwargs: thinking.kwargs,
        },
        sampling,
        max_tokens,
        stop: params::stops(&fields)?,
        logprobs,
        cache_prompt: fields.cache_prompt.unwrap_or(true),
        keep_alive: None,
        tools: tool_request,
        reasoning: thinking.request,
        images,
    };
    Ok(job)
}

fn logprob_request(logprobs: bool, top: Option<i64>) -> Result<Option<LogprobRequest>, ApiError> {
    let top = match top {
        None => 0,
        Some(t) if (0..=20).contains(&t) => t as usize,
        Some(t) => {
            return Err(ApiError::bad_request(
                format!("'top_logprobs' must be between 0 and 20, got {t}"),
                Some("top_logprobs"),
            ))
        }
    };
    if top > 0 && !logprobs {
        return Err(ApiError::bad_request(
            "'top_logprobs' requires 'logprobs' to be true",
            Some("top_logprobs"),
        ));
    }
    Ok(logprobs.then_some(LogprobRequest { top }))
}

fn chat_logprobs(tokens: &[TokenOut]) -> ChatLogprobs {
    ChatLogprobs {
        content: tokens
            .iter()
            .map(|t| ChatTokenLogprob {
                token: String::from_utf8_lossy(&t.bytes).into_owned(),
                logprob: t.logprob.unwrap_or(0.0),
                bytes: t.bytes.clone(),
                top_logprobs: t
                    .top_logprobs
                    .iter()
                    .map(|c| TopLogprob {
                        token: String::from_utf8_lossy(&c.bytes).into_owned(),
                        logprob: c.logprob,
                        bytes: c.bytes.clone(),
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// Checks the messages and puts them in the shape chat templates expect: `content` as a
/// string (text parts joined; each image part becomes the media marker, its bytes go to
/// `images`), tool-call arguments as objects when they are JSON.
fn normalize_messages(messages: &[Value], images: &mut Images) -> Result<Vec<Value>, ApiError> {
    if messages.is_empty() {
        return Err(ApiError::bad_request(
            "'messages' must contain at least one message",
            Some("messages"),
        ));
    }
    messages
        .iter()
        .enumerate()
        .map(|(i, m)| normalize_message(i, m, images))
        .collect()
}

fn normalize_message(i: usize, message: &Value, images: &mut Images) -> Result<Value, ApiError> {
    let param = format!("messages[{i}]");
    let bad = |msg: String, p: &str| {
        let mut e = ApiError::bad_request(msg, None);
        e.param = Some(p.to_string());
        e
    };
    let obj = message
        .as_object()
        .ok_or_else(|| bad(format!("{param} must be an object"), &param))?;
    let role = obj.get("role").and_then(Value::as_str).ok_or_else(|| {
        bad(
            format!("{param}.role must be a string"),
            &format!("{param}.role"),
        )
    })?;
    if !ROLES.contains(&role) {
        return Err(bad(
            format!("{param}.role '{role}' is not one of {}", ROLES.join(", ")),
            &format!("{param}.role"),
        ));
    }
    let mut out: Map<String, Value> = obj.clone();
    let content = match obj.get("content") {
        None | Some(Value::Null) => {
            if role == "assistant" {
                Value::Null
            } else {
                return Err(bad(
                    format!("{param}.content is required for role '{role}'"),
                    &format!("{param}.content"),
                ));
            }
        }
        Some(Value::String(s)) => Value::String(s.clone()),
        Some(Value::Array(parts)) => Value::String(join_parts(parts, &param, images)?),
        Some(_) => {
            return Err(bad(
                format!("{param}.content must be a string or an array of content parts"),
                &format!("{param}.content"),
            ))
        }
    };
    out.insert("content".into(), content);
    if let Some(calls) = out.get_mut("tool_calls") {
        super::history::normalize(calls, &param, false).map_err(|e| bad(e.message, &e.param))?;
    }
    Ok(Value::Object(out))
}

/// The text of a message's content parts. Text parts are joined as they are; with images,
/// as llama-server joins them (`common_chat_msg::to_json_oaicompat` in llama.cpp's
/// `common/chat.cpp`): text parts on lines of their own, nothing added around an image's
/// marker.
fn join_parts(parts: &[Value], param: &str, images: &mut Images) -> Result<String, ApiError> {
    let has_media = parts
        .iter()
        .any(|p| p.get("type").and_then(Value::as_str) == Some("image_url"));
    let mut text = String::new();
    let mut after_media = false;
    for (j, part) in parts.iter().enumerate() {
        match part.get("type").and_then(Value::as_str) {
            Some("image_url") => {
                let at = format!("{param}.content[{j}].image_url");
                let url = match part.get("image_url") {
                    Some(Value::String(url)) => url.as_str(),
                    Some(obj) => obj.get("url").and_then(Value::as_str).ok_or_else(|| {
                        ApiError::bad_request(format!("{at}.url must be a string"), None)
                            .with_param(&format!("{at}.url"))
                    })?,
                    None => {
                        return Err(ApiError::bad_request(
                            format!("{at} is required for a part of type 'image_url'"),
                            None,
                        )
                        .with_param(&at))
                    }
                };
                let image = super::images::from_url(url, &at, images.urls)?;
                images.raw.push(image);
                text.push_str(minerva_core::media_marker());
                after_media = true;
            }
            Some("text") => match part.get("text").and_then(Value::as_str) {
                Some(t) => {
                    if has_media && !after_media && !text.is_empty() {
                        text.push('\n');
                    }
                    after_media = false;
                    text.push_str(t);
                }
                None => {
                    return Err(ApiError::bad_request(
                        format!("{param}.content[{j}].text must be a string"),
                        None,
                    ))
                }
            },
            Some(other) => {
                return Err(ApiError::bad_request(
                    format!("content parts of type '{other}' are not supported by this model"),
                    None,
                )
                .with_code("unsupported_content"))
            }
            None => {
                return Err(ApiError::bad_request(
                    format!("{param}.content[{j}] needs a 'type'"),
                    None,
                ))
            }
        }
    }
    Ok(text)
}
