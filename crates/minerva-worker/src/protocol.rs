//! The messages between the server (parent) and a model's worker process, and their framing.
//!
//! A frame is a big-endian `u32` length followed by that many bytes of JSON (one message).
//! The worker speaks first: [`FromWorker::Hello`] with its [`PROTOCOL_VERSION`] and pid; the
//! parent checks the version and answers [`ToWorker::Hello`] and then [`ToWorker::Load`]. After
//! [`FromWorker::Loaded`], requests carry an id chosen by the parent: RPCs get one
//! [`FromWorker::Reply`]; a generation gets a `Reply` (started or refused), then
//! [`FromWorker::Event`]s and exactly one [`FromWorker::End`].

use crate::{Result, WorkerError};
use minerva_core::{
    CoreError, EmbedRequest, GenEvent, GenerateRequest, ModelInfo, ModelSpec, ModelStatus, TokenId,
};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::sync::{Mutex, PoisonError};

/// Bumped on any change to the messages below; both sides refuse a peer with another.
pub const PROTOCOL_VERSION: u32 = 3;

/// The largest frame either side accepts (a long conversation to render, a large batch of
/// token bytes, a request's images as base64 RGB: at most `MAX_REQUEST_PIXELS` × 3 bytes,
/// 128 MiB as base64): a corrupt length is refused instead of allocated.
pub const MAX_FRAME: usize = 256 << 20;

/// Parent to worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ToWorker {
    Hello {
        version: u32,
    },
    Load(ModelSpec),
    Tokenize {
        id: u64,
        text: String,
        add_special: bool,
        parse_special: bool,
    },
    TokenBytes {
        id: u64,
        tokens: Vec<TokenId>,
        special: bool,
    },
    RenderChat {
        id: u64,
        messages: Vec<serde_json::Value>,
        tools: Option<serde_json::Value>,
        #[serde(default)]
        kwargs: serde_json::Map<String, serde_json::Value>,
        add_generation_prompt: bool,
    },
    Status {
        id: u64,
    },
    Generate {
        id: u64,
        request: GenerateRequest,
    },
    /// Embeddings: answered like a generation (a `Reply`, then `Embedding` events and `End`).
    Embed {
        id: u64,
        request: EmbedRequest,
    },
    /// Stop the generation `id` (its stream was dropped).
    Cancel {
        id: u64,
    },
    /// Exit now.
    Shutdown,
}

/// Worker to parent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum FromWorker {
    Hello {
        version: u32,
        pid: u32,
    },
    Loaded {
        info: Box<ModelInfo>,
        /// The backend's own estimate of the memory the model holds.
        memory_bytes: u64,
    },
    LoadFailed(WireError),
    Reply {
        id: u64,
        result: std::result::Result<Reply, WireError>,
    },
    Event {
        id: u64,
        event: GenEvent,
    },
    /// The generation `id` is over: its stream ended (`None`) or failed.
    End {
        id: u64,
        error: Option<WireError>,
    },
}

/// The answer to one RPC.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Reply {
    Tokens(Vec<TokenId>),
    /// The bytes of each token asked for, in order.
    Bytes(Vec<Vec<u8>>),
    Text(String),
    Status(ModelStatus),
    /// The generation was accepted; its events follow.
    Started,
}

/// [`CoreError`] on the wire: every variant round-trips.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WireError {
    InvalidRequest {
        message: String,
        param: Option<String>,
    },
    ContextOverflow {
        prompt_tokens: usize,
        n_ctx: usize,
    },
    ModelNotFound(String),
    Load(String),
    Unsupported(String),
    Template(String),
    Busy,
    QueueTimeout {
        waited_secs: f64,
    },
    Unavailable(String),
    Backend(String),
}

impl From<&CoreError> for WireError {
    fn from(e: &CoreError) -> Self {
        match e {
            CoreError::InvalidRequest { message, param } => WireError::InvalidRequest {
                message: message.clone(),
                param: param.map(str::to_string),
            },
            CoreError::ContextOverflow {
                prompt_tokens,
                n_ctx,
            } => WireError::ContextOverflow {
                prompt_tokens: *prompt_tokens,
                n_ctx: *n_ctx,
            },
            CoreError::ModelNotFound(m) => WireError::ModelNotFound(m.clone()),
            CoreError::Load(m) => WireError::Load(m.clone()),
            CoreError::Unsupported(m) => WireError::Unsupported(m.clone()),
            CoreError::Template(m) => WireError::Template(m.clone()),
            CoreError::Busy => WireError::Busy,
            CoreError::QueueTimeout { waited_secs } => WireError::QueueTimeout {
                waited_secs: *waited_secs,
            },
            CoreError::Unavailable(m) => WireError::Unavailable(m.clone()),
            CoreError::Backend(m) => WireError::Backend(m.clone()),
        }
    }
}

impl From<WireError> for CoreError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::InvalidRequest { message, param } => CoreError::InvalidRequest {
                message,
                param: param.as_deref().map(static_param),
            },
            WireError::ContextOverflow {
                prompt_tokens,
                n_ctx,
            } => CoreError::ContextOverflow {
                prompt_tokens,
                n_ctx,
            },
            WireError::ModelNotFound(m) => CoreError::ModelNotFound(m),
            WireError::Load(m) => CoreError::Load(m),
            WireError::Unsupported(m) => CoreError::Unsupported(m),
            WireError::Template(m) => CoreError::Template(m),
            WireError::Busy => CoreError::Busy,
            WireError::QueueTimeout { waited_secs } => CoreError::QueueTimeout { waited_secs },
            WireError::Unavailable(m) => CoreError::Unavailable(m),
            WireError::Backend(m) => CoreError::Backend(m),
        }
    }
}

/// Parameter names a backend reports in `InvalidRequest` (core keeps them `&'static str`).
const KNOWN_PARAMS: &[&str] = &[
    "prompt",
    "tokens",
    "messages",
    "tools",
    "max_tokens",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "seed",
    "stop",
    "model",
    "input",
];

/// Names seen that are not in [`KNOWN_PARAMS`]: each is leaked once and reused, so the memory
/// stays bounded by the number of distinct names a backend uses.
static INTERNED: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

/// The `&'static str` for a parameter name read from the wire.
fn static_param(name: &str) -> &'static str {
    if let Some(known) = KNOWN_PARAMS.iter().find(|&&p| p == name) {
        return known;
    }
    let mut interned = INTERNED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(seen) = interned.iter().find(|&&p| p == name) {
        return seen;
    }
    let leaked: &'static str = Box::leak(name.to_string().into_boxed_str());
    interned.push(leaked);
    leaked
}

/// Serializes a message into one frame (length prefix included).
pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>> {
    let mut frame = vec![0u8; 4];
    serde_json::to_writer(&mut frame, message).map_err(WorkerError::Encode)?;
    let len = frame.len() - 4;
    if len > MAX_FRAME {
        return Err(WorkerError::FrameTooLarge(len));
    }
    let len = u32::try_from(len).map_err(|_| WorkerError::FrameTooLarge(len))?;
    frame[..4].copy_from_slice(&len.to_be_bytes());
    Ok(frame)
}

/// Writes one message as a frame.
pub fn write_message<T: Serialize>(out: &mut impl Write, message: &T) -> Result<()> {
    let frame = encode(message)?;
    out.write_all(&frame).map_err(WorkerError::Io)?;
    out.flush().map_err(WorkerError::Io)
}

/// Reads one frame and decodes it. End of stream before a frame starts is
/// [`WorkerError::Closed`]; in the middle of one, an I/O error.
pub fn read_message<T: for<'de> Deserialize<'de>>(input: &mut impl Read) -> Result<T> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match input.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Err(WorkerError::Closed),
            Ok(0) => {
                return Err(WorkerError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(WorkerError::Io(e)),
        }
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(WorkerError::FrameTooLarge(len));
    }
    let mut body = vec![0u8; len];
    input.read_exact(&mut body).map_err(WorkerError::Io)?;
    serde_json::from_slice(&body).map_err(WorkerError::Decode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use minerva_core::{FinishReason, SamplingParams, TokenOut, Usage};

    fn round_trip<T: Serialize + for<'de> Deserialize<'de>>(message: &T) -> T {
        let frame = encode(message).unwrap();
        assert_eq!(
            u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize,
            frame.len() - 4
        );
        read_message(&mut frame.as_slice()).unwrap()
    }

    #[test]
    fn every_core_error_round_trips() {
        let errors = [
            CoreError::invalid("bad", Some("prompt")),
            CoreError::invalid("bad", Some("a_param_core_never_named")),
            CoreError::invalid("bad", None),
            CoreError::ContextOverflow {
                prompt_tokens: 5000,
                n_ctx: 4096,
            },
            CoreError::ModelNotFound("m".into()),
            CoreError::Load("corrupt".into()),
            CoreError::Unsupported("x".into()),
            CoreError::Template("t".into()),
            CoreError::Busy,
            CoreError::QueueTimeout { waited_secs: 12.5 },
            CoreError::Unavailable("memory".into()),
            CoreError::Backend("decode failed".into()),
        ];
        for e in errors {
            let wire = WireError::from(&e);
            let back = CoreError::from(round_trip(&wire));
            assert_eq!(format!("{back:?}"), format!("{e:?}"));
        }
    }

    #[test]
    fn an_unknown_param_name_is_interned_once() {
        let a = static_param("some_new_param");
        let b = static_param("some_new_param");
        assert_eq!(a, "some_new_param");
        assert!(std::ptr::eq(a, b));
    }

    #[test]
    fn a_generate_request_with_a_banned_token_survives_the_wire() {
        let request = GenerateRequest {
            prompt: vec![1, 2, 3],
            sampling: SamplingParams {
                logit_bias: vec![(42, f32::NEG_INFINITY)],
                ..SamplingParams::default()
            },
            max_tokens: Some(8),
            logprobs: None,
            cache_prompt: true,
            reasoning: None,
            images: Vec::new(),
        };
        let ToWorker::Generate { id, request: back } = round_trip(&ToWorker::Generate {
            id: 9,
            request: request.clone(),
        }) else {
            panic!("wrong message")
        };
        assert_eq!(id, 9);
        assert_eq!(back.sampling, request.sampling);
        assert_eq!(back.prompt, request.prompt);
    }

    #[test]
    fn a_grammar_output_format_survives_the_wire() {
        for format in [
            minerva_core::OutputFormat::JsonObject,
            minerva_core::OutputFormat::Grammar(minerva_core::GrammarSpec::eager(
                "root ::= \"a\" [\\x00-\\x1F]*\n",
            )),
            minerva_core::OutputFormat::Grammar(minerva_core::GrammarSpec {
                gbnf: "root ::= \"{\" .* \"}\"".into(),
                trigger_patterns: vec!["[\\s\\S]*?(<tool_call>)".into()],
                trigger_tokens: vec![151657],
            }),
        ] {
            let request = GenerateRequest {
                prompt: vec![1],
                sampling: SamplingParams {
                    format: Some(format),
                    ..SamplingParams::default()
                },
                max_tokens: None,
                logprobs: None,
                cache_prompt: false,
                reasoning: None,
                images: Vec::new(),
            };
            let ToWorker::Generate { request: back, .. } = round_trip(&ToWorker::Generate {
                id: 1,
                request: request.clone(),
            }) else {
                panic!("wrong message")
            };
            assert_eq!(back.sampling.format, request.sampling.format);
        }
    }

    #[test]
    fn events_survive_the_wire() {
        let events = [
            GenEvent::Embedding {
                index: 2,
                vector: vec![0.25, -1.5e-7, 3.4e38],
            },
            GenEvent::Token(TokenOut {
                id: 3,
                bytes: vec![0xe4, 0xb8],
                logprob: Some(f32::NEG_INFINITY),
                top_logprobs: vec![],
            }),
            GenEvent::Done {
                reason: FinishReason::Length,
                usage: Usage {
                    prompt_tokens: 3,
                    completion_tokens: 1,
                    cached_tokens: 0,
                    prompt_ms: 1.5,
                    generation_ms: 2.5,
                },
            },
        ];
        for event in events {
            let FromWorker::Event { event: back, .. } = round_trip(&FromWorker::Event {
                id: 1,
                event: event.clone(),
            }) else {
                panic!("wrong message")
            };
            assert_eq!(back, event);
        }
    }

    #[test]
    fn end_of_stream_and_oversized_frames_are_refused() {
        let empty: &[u8] = &[];
        assert!(matches!(
            read_message::<ToWorker>(&mut &*empty),
            Err(WorkerError::Closed)
        ));
        let huge = ((MAX_FRAME + 1) as u32).to_be_bytes();
        assert!(matches!(
            read_message::<ToWorker>(&mut huge.as_slice()),
            Err(WorkerError::FrameTooLarge(_))
        ));
        let truncated = [0u8, 0, 0, 10, b'{'];
        assert!(matches!(
            read_message::<ToWorker>(&mut truncated.as_slice()),
            Err(WorkerError::Io(_))
        ));
    }
}
