//! `minerva run`: a reply (or a whole chat) in the terminal, streamed as it is generated.

use crate::{load, RunArgs};
use anyhow::Result;
use minerva_core::SamplingParams;
use minerva_engine::{CompletionJob, Engine, Prompt, TextEvent};
use serde_json::json;
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

pub fn run(args: RunArgs, models_dir: &Path) -> Result<()> {
    if let Some(variant) = &args.cpu_variant {
        // Read by minerva_llama::kernels when the model loads (in this process). Set before any
        // thread starts.
        std::env::set_var(minerva_llama::kernels::VARIANT_ENV, variant);
    }
    let spinner = loading_spinner(&args.model.model);
    let model = load::load(&args.model, models_dir, load::Placement::InProcess);
    if let Some(spinner) = spinner {
        spinner.finish_and_clear();
    }
    let model = model?;
    let id = model.info().id.clone();
    let engine = Engine::new([model]);
    let rt = tokio::runtime::Runtime::new()?;
    let mut sampling = SamplingParams::default();
    if let Some(t) = args.temperature {
        sampling.temperature = t;
    }
    sampling.seed = args.seed;

    let mut history = Vec::new();
    let interactive = args.prompt.is_none();
    let mut next_prompt = args.prompt.clone();
    let stdin = std::io::stdin();
    loop {
        let prompt = match next_prompt.take() {
            Some(p) => p,
            None if interactive => {
                eprint!(">>> ");
                std::io::stderr().flush()?;
                let mut line = String::new();
                if stdin.lock().read_line(&mut line)? == 0 {
                    break;
                }
                let line = line.trim_end_matches(['\n', '\r']).to_string();
                if line == "/bye" || line == "/exit" {
                    break;
                }
                if line.trim().is_empty() {
                    continue;
                }
                line
            }
            None => break,
        };
        history.push(json!({"role": "user", "content": prompt}));
        let job = CompletionJob {
            model: id.clone(),
            prompt: Prompt::Chat {
                messages: history.clone(),
                tools: None,
                kwargs: Default::default(),
            },
            sampling: sampling.clone(),
            max_tokens: Some(args.max_tokens),
            stop: Vec::new(),
            logprobs: None,
            cache_prompt: true,
            tools: Default::default(),
            keep_alive: None,
            reasoning: Default::default(),
            images: Vec::new(),
        };
        let reply = rt.block_on(async {
            let mut stream = engine.complete(job).await?;
            let mut reply = String::new();
            let mut out = std::io::stdout();
            while let Some(event) = stream.next().await {
                match event? {
                    TextEvent::Delta { text, .. } => {
                        out.write_all(text.as_bytes())?;
                        out.flush()?;
                        reply.push_str(&text);
                    }
                    TextEvent::Done { .. } => break,
                }
            }
            out.write_all(b"\n")?;
            anyhow::Ok(reply)
        })?;
        history.push(json!({"role": "assistant", "content": reply}));
        if !interactive {
            break;
        }
    }
    Ok(())
}

/// A spinner on stderr while the model loads, when stderr is a terminal (as `ollama run`).
fn loading_spinner(model: &str) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let spinner = indicatif::ProgressBar::new_spinner();
    // A path shows as its file name.
    let name = Path::new(model)
        .file_name()
        .map_or_else(|| model.to_string(), |n| n.to_string_lossy().into_owned());
    spinner.set_message(format!("loading {name}"));
    spinner.enable_steady_tick(std::time::Duration::from_millis(100));
    Some(spinner)
}
