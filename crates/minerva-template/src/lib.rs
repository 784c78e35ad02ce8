//! Hugging Face chat templates, rendered byte for byte like Python's jinja2 as `transformers`
//! sets it up (`transformers/utils/chat_template_utils.py`), and sandboxed against hostile
//! templates.
//!
//! A model ships its prompt format as a Jinja template (`tokenizer.chat_template` in a GGUF,
//! `chat_template` in `tokenizer_config.json`). The prompt the model was trained on is what
//! jinja2 produces from it, so any difference here — a stray newline, `none` for `None`,
//! `{"a":1}` for `{"a": 1}` — silently degrades the model. This crate renders with minijinja
//! configured like transformers' `ImmutableSandboxedEnvironment(trim_blocks=True,
//! lstrip_blocks=True)` and re-implements what minijinja does differently: Python's `str()` of
//! values, transformers' `tojson` (`json.dumps` with `", "`/`": "` separators, non-ASCII kept,
//! no HTML escaping), `raise_exception`, `strftime_now`, the `{% generation %}` tag, and Python
//! string/dict methods (`.strip()`, `.get(k, default)`, `.format()` ...). Parity is checked
//! against fixtures recorded with real jinja2 (`scripts/templates/record.py`).
//!
//! Templates come from downloaded model files, so they are untrusted: rendering is bounded by
//! fuel (minijinja 3 charges it per instruction and per byte a template creates, so it bounds
//! memory as well as time), recursion depth, output size and source size, and a tripped bound is
//! a [`TemplateError::LimitExceeded`], never a hang. Each render runs on its own thread with a
//! large stack, so that values nested as deeply as the fuel allows cannot overflow it.
//!
//! This crate only turns messages into a prompt string. It must not depend on HTTP, async
//! runtimes, tokenizers or any ML/inference code: the engine calls it, it calls nothing.

use std::collections::BTreeMap;
use std::io;

use minijinja::value::Value;
use minijinja::{Environment, ErrorKind};

mod env;
mod filters;
mod go;
mod methods;
mod pyfmt;
mod pyobj;
mod source;
mod strftime;

pub use go::{is_go_template, GoTemplate};
pub use strftime::NOW_VAR;

/// The template used for models that ship none: ChatML, which is also llama-server's fallback.
///
/// It accepts `content` as a string, as a list of `{"type": "text", "text": ...}` parts (other
/// parts are skipped), or as null, and opens an assistant turn when `add_generation_prompt` is
/// set. Its source is `src/default_template.jinja`, which `scripts/templates/record.py` renders
/// with jinja2 for the parity fixtures.
pub const DEFAULT_TEMPLATE: &str = include_str!("default_template.jinja");

/// minijinja's own sandbox refusals, reported as [`TemplateError::LimitExceeded`].
const ENGINE_LIMIT_ERRORS: &[&str] = &[
    "recursion limit exceeded",
    "repeated string is too large",
    "repeated sequence is too large",
    "range has too many elements",
];

/// Stack of the thread a render runs on. Fuel bounds how deeply a template can nest values
/// (about 700k levels at the default fuel) and dropping them takes roughly 100-150 bytes of
/// stack per level; the memory is only reserved, and touched only by such templates.
const RENDER_STACK_BYTES: usize = 256 << 20;

/// The name the template is registered under; it shows in error messages.
const TEMPLATE_NAME: &str = "chat_template";

/// Errors from compiling or rendering a chat template.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    /// The template does not parse.
    #[error("chat template syntax error: {0}")]
    Syntax(String),
    /// Rendering failed: an undefined value used where jinja2 would fail too, a type error, an
    /// unknown filter or method.
    #[error("chat template render error: {0}")]
    Render(String),
    /// The template called `raise_exception(msg)`, usually to reject a conversation it cannot
    /// format (roles not alternating, a system message where none is allowed). The message is
    /// the template's own and is meant for the client.
    #[error("{0}")]
    Raised(String),
    /// A sandbox limit tripped: source size (in [`ChatTemplate::new`]), fuel, recursion depth,
    /// output size, or the size of a range, repeated string or nested value.
    #[error("chat template exceeded a limit: {0}")]
    LimitExceeded(String),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, TemplateError>;

/// The bounds a render runs under. The defaults leave real templates far from every bound (a
/// 1000-message conversation with tools takes 80k fuel with Qwen's template and 1M with
/// gpt-oss's, the heaviest measured) while a hostile template is stopped within about a second
/// and a few hundred MB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest template source accepted by [`ChatTemplate::new`].
    pub max_source_bytes: usize,
    /// Largest rendered prompt; rendering stops as soon as the output passes it. The default,
    /// 8 MiB, holds a few million tokens of conversation.
    pub max_output_bytes: usize,
    /// minijinja fuel for one render: about one unit per instruction executed, plus one per
    /// 64 bytes of data a template creates, so it bounds both time and memory (5M units allow
    /// about 320 MB of allocations).
    pub fuel: u64,
    /// Deepest nesting of macro calls, loops and blocks (minijinja caps it at 500).
    pub max_recursion: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_source_bytes: 1 << 20,
            max_output_bytes: 8 << 20,
            fuel: 5_000_000,
            max_recursion: 100,
        }
    }
}

/// What a render needs besides the messages.
#[derive(Debug, Clone, Copy, Default)]
pub struct RenderOptions<'a> {
    /// End the prompt with the header of an assistant turn.
    pub add_generation_prompt: bool,
    /// Tool (function) definitions, passed to the template as `tools`; `None` passes `None`,
    /// as transformers does.
    pub tools: Option<&'a serde_json::Value>,
    /// Extra template variables, as transformers' `**kwargs` of `apply_chat_template`
    /// (`enable_thinking`, `date_string`, `reasoning_effort` ...). They override `bos_token` and
    /// `eos_token` but not `messages`, `tools`, `documents` or `add_generation_prompt`.
    pub extra: Option<&'a serde_json::Map<String, serde_json::Value>>,
}

/// How a template is rendered: Jinja (Hugging Face's templates), or Go's `text/template` with
/// Ollama's values (an Ollama Modelfile's `TEMPLATE`).
#[derive(Debug)]
enum Engine {
    Jinja(Box<Environment<'static>>),
    Go(Box<GoTemplate>),
}

/// A compiled chat template. Compile once with [`ChatTemplate::new`], then render as often as
/// needed from any thread.
#[derive(Debug)]
pub struct ChatTemplate {
    engine: Engine,
    source: String,
    bos_token: String,
    eos_token: String,
    limits: Limits,
}

impl ChatTemplate {
    /// Compiles `source` with the default [`Limits`]; syntax errors are reported here.
    /// `bos_token` and `eos_token` are the tokenizer's special token strings, which templates
    /// read as `bos_token` and `eos_token`.
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<Self> {
        Self::with_limits(source, bos_token, eos_token, Limits::default())
    }

    /// Like [`ChatTemplate::new`] with explicit limits.
    pub fn with_limits(
        source: &str,
        bos_token: &str,
        eos_token: &str,
        limits: Limits,
    ) -> Result<Self> {
        if source.len() > limits.max_source_bytes {
            return Err(TemplateError::LimitExceeded(format!(
                "template source is {} bytes, more than the {} allowed",
                source.len(),
                limits.max_source_bytes
            )));
        }
        let engine = if is_go_template(source) {
            Engine::Go(Box::new(GoTemplate::new(source, limits)?))
        } else {
            let mut env = env::environment(&limits).map_err(|e| {
                TemplateError::Syntax(format!("template syntax configuration: {e}"))
            })?;
            // jinja2 reads `\r\n` and `\r` as `\n` everywhere in a template.
            let normalized = source.replace("\r\n", "\n").replace('\r', "\n");
            env.add_template_owned(TEMPLATE_NAME, source::rewrite_generation_tags(&normalized))
                .map_err(|e| TemplateError::Syntax(e.to_string()))?;
            Engine::Jinja(Box::new(env))
        };
        Ok(ChatTemplate {
            engine,
            source: source.to_string(),
            bos_token: bos_token.to_string(),
            eos_token: eos_token.to_string(),
            limits,
        })
    }

    /// The fill-in-the-middle prompt for `prefix` and `suffix`, for an Ollama Go template that
    /// reads `.Suffix` (`None` for any other template: the model's own FIM tokens apply).
    pub fn render_infill(&self, prefix: &str, suffix: &str) -> Option<Result<String>> {
        match &self.engine {
            Engine::Go(go) if go.uses_suffix() => Some(go.render_infill(prefix, suffix)),
            _ => None,
        }
    }

    /// The template source as given to [`ChatTemplate::new`].
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders the prompt for `messages` (OpenAI-style objects: `role`, `content`, and
    /// optionally `tool_calls`, `name`, `reasoning_content` ... passed through untouched).
    ///
    /// The render runs on its own short-lived thread with a large stack: a template can nest
    /// values as deep as its fuel allows (`{% set ns.x = [ns.x] %}` in a loop), and freeing such a
    /// value recurses once per level, which would overflow an ordinary thread's stack.
    pub fn render(
        &self,
        messages: &[serde_json::Value],
        opts: &RenderOptions<'_>,
    ) -> Result<String> {
        std::thread::scope(|scope| {
            let worker = std::thread::Builder::new()
                .name("chat-template".into())
                .stack_size(RENDER_STACK_BYTES)
                .spawn_scoped(scope, || self.render_here(messages, opts));
            match worker {
                Ok(handle) => handle.join().unwrap_or_else(|_| {
                    Err(TemplateError::Render("the template engine panicked".into()))
                }),
                // No thread to be had (a strict overcommit policy refusing the reservation,
                // a thread limit): render here, where only pathological nesting could hurt.
                Err(_) => self.render_here(messages, opts),
            }
        })
    }

    fn render_here(
        &self,
        messages: &[serde_json::Value],
        opts: &RenderOptions<'_>,
    ) -> Result<String> {
        let env = match &self.engine {
            Engine::Jinja(env) => env,
            Engine::Go(go) => return go.render(messages, opts),
        };
        let template = env
            .get_template(TEMPLATE_NAME)
            .map_err(|e| TemplateError::Render(e.to_string()))?;
        let mut ctx: BTreeMap<String, Value> = BTreeMap::new();
        ctx.insert("bos_token".into(), Value::from(self.bos_token.as_str()));
        ctx.insert("eos_token".into(), Value::from(self.eos_token.as_str()));
        for (k, v) in opts.extra.into_iter().flatten() {
            ctx.insert(k.clone(), pyobj::from_json(v));
        }
        ctx.insert(
            "messages".into(),
            messages.iter().map(pyobj::from_json).collect(),
        );
        ctx.insert(
            "tools".into(),
            opts.tools.map_or(Value::from(()), pyobj::from_json),
        );
        ctx.insert("documents".into(), Value::from(()));
        ctx.insert(
            "add_generation_prompt".into(),
            Value::from(opts.add_generation_prompt),
        );

        let mut out = CappedWriter {
            buf: Vec::new(),
            cap: self.limits.max_output_bytes,
            exceeded: false,
        };
        let result = template
            .render_captured_to(Value::from(ctx), &mut out)
            .map(drop);
        if out.exceeded {
            return Err(TemplateError::LimitExceeded(format!(
                "rendered prompt is longer than {} bytes",
                self.limits.max_output_bytes
            )));
        }
        result.map_err(|err| map_render_error(&err))?;
        String::from_utf8(out.buf).map_err(|e| TemplateError::Render(e.to_string()))
    }
}

fn map_render_error(err: &minijinja::Error) -> TemplateError {
    match env::find_stop(err) {
        Some(env::Stop::Raised(msg)) => return TemplateError::Raised(msg.clone()),
        Some(env::Stop::Limit(msg)) => return TemplateError::LimitExceeded(msg.clone()),
        None => {}
    }
    let text = err.to_string();
    match err.kind() {
        ErrorKind::OutOfFuel => TemplateError::LimitExceeded(format!(
            "template used too many instructions or too much memory ({text})"
        )),
        ErrorKind::InvalidOperation
            if err
                .detail()
                .is_some_and(|d| ENGINE_LIMIT_ERRORS.contains(&d)) =>
        {
            TemplateError::LimitExceeded(text)
        }
        ErrorKind::SyntaxError => TemplateError::Syntax(text),
        _ => TemplateError::Render(text),
    }
}

/// Collects the rendered output and refuses writes past `cap`, which makes minijinja stop the
/// render at that point instead of building an unbounded string.
pub(crate) struct CappedWriter {
    pub(crate) buf: Vec<u8>,
    pub(crate) cap: usize,
    pub(crate) exceeded: bool,
}

impl io::Write for CappedWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len().saturating_add(data.len()) > self.cap {
            self.exceeded = true;
            return Err(io::Error::other("output limit exceeded"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
