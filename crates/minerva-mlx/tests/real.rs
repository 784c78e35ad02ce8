//! The MLX backend with a real model: `MINERVA_QWEN_HF` (a Hugging Face directory made from
//! `MINERVA_QWEN_GGUF` by scripts/fixtures/gguf_to_hf.py) and `MINERVA_PYTHON` (a Python with
//! mlx-lm). scripts/test.sh sets all three; a missing one fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use minerva_core::{
    Backend, CoreError, GenEvent, GenerateRequest, Model, ModelSpec, SamplingParams,
};
use minerva_mlx::tokenizer::HfTokenizer;
use minerva_mlx::{MlxBackend, MlxModel};
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn env_path(name: &str) -> PathBuf {
    match std::env::var_os(name) {
        Some(p) => PathBuf::from(p),
        None => panic!("{name} is not set (scripts/test.sh sets it)"),
    }
}

fn spec(path: PathBuf) -> ModelSpec {
    ModelSpec {
        id: "qwen-test".into(),
        path,
        ctx_size: Some(512),
        threads: None,
        parallel: Some(1),
        kv_size: None,
        kv_unified: None,
        flash_attn: None,
        queue: None,
        chat_template: None,
        queue_timeout: None,
        cache_bytes: Some(0),
        sha256: None,
        projector: None,
    }
}

/// Texts whose tokenization must match llama.cpp's: ASCII, code, whitespace runs, CJK, emoji,
/// combining marks, special tokens written as text.
const CORPUS: &[&str] = &[
    "Hello world",
    "  leading and trailing spaces  ",
    "fn main() {\n    println!(\"hi\");\n}\n",
    "tabs\tand\nnewlines\r\n\n\nthree",
    "It's, we're, they'll, I'd, she's",
    "numbers 1234567890 3.14159 1e-9",
    "你好，世界！这是一个测试。",
    "日本語のテキストとカタカナ",
    "한국어 문장입니다",
    "emoji 🎉🚀👩‍👩‍👧‍👦 and flags 🇫🇷",
    "Ünïcödé àccents café",
    "cafe\u{301} (a combining accent)",
    "\u{212B}ngström (the angstrom sign)",
    "<|im_start|>user\nhi<|im_end|>",
    "math: ∑ x² ≤ ∞, arrows → ⇒",
    "",
];

fn nfc(text: &str) -> String {
    use tokenizers::normalizers::unicode::NFC;
    use tokenizers::{NormalizedString, Normalizer};
    let mut n = NormalizedString::from(text);
    match NFC.normalize(&mut n) {
        Ok(()) => n.get().to_string(),
        Err(_) => text.to_string(),
    }
}

#[test]
fn tokenization_and_token_bytes_match_llama_cpp() {
    let gguf = minerva_llama::LlamaCppBackend::new()
        .load(&spec(env_path("MINERVA_QWEN_GGUF")))
        .expect("loading the GGUF");
    let dir = env_path("MINERVA_QWEN_HF");
    let mut hf = HfTokenizer::load(&dir.join("tokenizer.json"), gguf.info().n_vocab)
        .expect("loading tokenizer.json");
    let eog = hf.end_of_generation(&[]);
    assert!(eog.contains(&151645) && eog.contains(&151643), "{eog:?}");
    assert_eq!(hf.n_vocab(), gguf.info().n_vocab);

    let mut nfc_differences = Vec::new();
    for text in CORPUS {
        for parse_special in [true, false] {
            let ours = hf.encode(text, parse_special).expect("encode");
            let theirs = gguf.tokenize(text, false, parse_special).expect("tokenize");
            if ours == theirs {
                continue;
            }
            // tokenizer.json normalizes to NFC, llama.cpp does not: the only allowed difference.
            let normalized = nfc(text);
            assert_ne!(&normalized, text, "{text:?}: {ours:?} vs {theirs:?}");
            let theirs_nfc = gguf
                .tokenize(&normalized, false, parse_special)
                .expect("tokenize");
            assert_eq!(ours, theirs_nfc, "{text:?} after NFC");
            nfc_differences.push(*text);
        }
    }
    eprintln!("NFC differences: {nfc_differences:?}");
    assert!(nfc_differences.contains(&"cafe\u{301} (a combining accent)"));

    let n = gguf.info().n_vocab as i32;
    let mut mismatched = Vec::new();
    for id in 0..n {
        for special in [false, true] {
            let ours = hf.token_bytes(id, special).expect("bytes");
            let theirs = gguf.token_bytes(id, special).expect("bytes");
            if ours != theirs {
                mismatched.push((id, special, ours, theirs));
            }
        }
    }
    for (id, special, ours, theirs) in mismatched.iter().take(40) {
        eprintln!(
            "{id} {special} {:?} {:?}",
            String::from_utf8_lossy(ours),
            String::from_utf8_lossy(theirs)
        );
    }
    assert!(
        mismatched.is_empty(),
        "{} tokens differ, first: {:?}",
        mismatched.len(),
        mismatched.first()
    );
}

fn greedy(prompt: Vec<i32>, max_tokens: u32) -> GenerateRequest {
    GenerateRequest {
        prompt,
        sampling: SamplingParams {
            temperature: 0.0,
            ..SamplingParams::default()
        },
        max_tokens: Some(max_tokens),
        logprobs: None,
        cache_prompt: false,
        reasoning: None,
        images: Vec::new(),
    }
}

fn load() -> MlxModel {
    MlxBackend::with_python(env_path("MINERVA_PYTHON"))
        .load_mlx(&spec(env_path("MINERVA_QWEN_HF")))
        .expect("loading the HF model with MLX")
}

fn prompt(model: &MlxModel) -> Vec<i32> {
    let messages = [serde_json::json!({"role": "user", "content": "Count from 1 to 50."})];
    let text = model
        .render_chat(&messages, None, &Default::default(), true)
        .expect("render");
    model.tokenize(&text, true, true).expect("tokenize")
}

#[test]
fn generates_cancels_and_reports_a_crash() {
    let model = load();
    assert_eq!(model.info().backend, "mlx");
    let p = prompt(&model);

    // A short greedy generation: tokens with bytes, then Done with usage.
    let mut stream = model.generate(greedy(p.clone(), 3)).expect("generate");
    let mut tokens = Vec::new();
    let usage = loop {
        match stream.blocking_recv() {
            Some(Ok(GenEvent::Token(t))) => tokens.push(t),
            Some(Ok(GenEvent::Done { reason, usage })) => {
                assert_eq!(reason, minerva_core::FinishReason::Length);
                break usage;
            }
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(tokens.len(), 3);
    assert!(tokens.iter().all(|t| !t.bytes.is_empty()));
    assert_eq!(usage.completion_tokens, 3);
    assert_eq!(usage.prompt_tokens, p.len());

    // Dropping the stream stops the worker's generation: its token count stops growing.
    let before = model.worker_stats().expect("stats").generated;
    let mut stream = model.generate(greedy(p.clone(), 60)).expect("generate");
    for _ in 0..2 {
        assert!(matches!(
            stream.blocking_recv(),
            Some(Ok(GenEvent::Token(_)))
        ));
    }
    drop(stream);
    std::thread::sleep(Duration::from_secs(3));
    let settled = model.worker_stats().expect("stats").generated;
    std::thread::sleep(Duration::from_secs(3));
    let later = model.worker_stats().expect("stats").generated;
    assert_eq!(settled, later, "the worker kept generating");
    assert!(
        later - before < 10,
        "{} tokens after cancelling",
        later - before
    );

    // A crash ends the request in flight with an error and marks the model failed.
    let mut stream = model.generate(greedy(p, 60)).expect("generate");
    assert!(matches!(
        stream.blocking_recv(),
        Some(Ok(GenEvent::Token(_)))
    ));
    let pid = model.process_id().expect("pid");
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status();
    assert!(killed.map(|s| s.success()).unwrap_or(false));
    let error = loop {
        match stream.blocking_recv() {
            Some(Ok(GenEvent::Token(_))) => continue,
            Some(Err(e)) => break e,
            other => panic!("expected an error, got {other:?}"),
        }
    };
    assert!(
        matches!(&error, CoreError::Backend(m) if m.contains("exited")),
        "{error}"
    );
    std::thread::sleep(Duration::from_millis(200));
    let failure = model.failure().expect("the model is marked failed");
    assert!(
        failure.contains("SIGKILL") || failure.contains("signal: 9"),
        "{failure}"
    );
    assert!(model.generate(greedy(vec![1], 1)).is_err());
}

fn signal(pid: u32, signal: &str) -> bool {
    std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Until the stream ends: the tokens and how it ended.
fn drain(
    stream: &mut minerva_core::GenerationStream,
) -> (usize, Option<GenEvent>, Option<CoreError>) {
    let mut tokens = 0;
    loop {
        match stream.blocking_recv() {
            Some(Ok(GenEvent::Token(_))) => tokens += 1,
            Some(Ok(done)) => return (tokens, Some(done), None),
            Some(Err(e)) => return (tokens, None, Some(e)),
            None => return (tokens, None, None),
        }
    }
}

#[test]
fn a_busy_worker_answers_health_checks_and_a_stopped_one_is_killed() {
    let timeout = Duration::from_secs(3);
    let model = MlxBackend::with_python(env_path("MINERVA_PYTHON"))
        .health_timeout(timeout)
        .load_mlx(&spec(env_path("MINERVA_QWEN_HF")))
        .expect("loading the HF model with MLX");
    let p = prompt(&model);

    // Computing the prompt and 8 tokens takes several health timeouts on a CPU: the worker
    // answers pings meanwhile and is not killed.
    let started = Instant::now();
    let mut stream = model.generate(greedy(p.clone(), 8)).expect("generate");
    let (tokens, done, error) = drain(&mut stream);
    let took = started.elapsed();
    assert!(error.is_none(), "{error:?}");
    assert!(matches!(done, Some(GenEvent::Done { .. })), "{done:?}");
    assert_eq!(tokens, 8);
    assert!(took > timeout * 2, "the generation took only {took:?}");
    // Idle past the timeout: still answering.
    std::thread::sleep(timeout + Duration::from_secs(1));
    assert_eq!(model.failure(), None);

    // Stopped mid-generation (alive, silent): killed within the timeout, its request ends.
    let mut stream = model.generate(greedy(p, 60)).expect("generate");
    assert!(matches!(
        stream.blocking_recv(),
        Some(Ok(GenEvent::Token(_)))
    ));
    let pid = model.process_id().expect("pid");
    assert!(signal(pid, "-STOP"));
    let stopped = Instant::now();
    let (_, done, error) = drain(&mut stream);
    let waited = stopped.elapsed();
    assert!(done.is_none(), "{done:?}");
    let expected = format!(
        "the MLX worker (pid {pid}) stopped answering health checks for 3 s; it was killed"
    );
    assert!(
        matches!(&error, Some(CoreError::Backend(m)) if m == &expected),
        "{error:?}"
    );
    assert!(waited <= timeout + Duration::from_secs(2), "{waited:?}");
    assert_eq!(model.failure(), Some(expected));
    assert!(model.generate(greedy(vec![1], 1)).is_err());
    // Killed (a zombie until it is reaped), then reaped when the model goes.
    let dead = || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        stat.is_empty() || stat.contains(") Z ")
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !dead() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(dead(), "the stopped worker was not killed");
    drop(model);
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
}

#[test]
fn no_python_with_mlx_is_a_clear_error() {
    let backend = MlxBackend::with_python("/nonexistent/python3");
    let e = match backend.load_mlx(&spec(env_path("MINERVA_QWEN_HF"))) {
        Ok(_) => panic!("loaded without Python"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("pip install mlx-lm 'mlx[cpu]'"), "{e}");
    assert!(e.contains("MINERVA_PYTHON"), "{e}");
    assert!(e.contains("minerva mlx setup"), "{e}");
}

#[test]
fn another_protocol_version_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = dir.path().join("python");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho '{\"type\":\"hello\",\"protocol\":99,\"mlx_lm\":\"0\"}'\nsleep 5\n",
    )
    .expect("write");
    let chmod = std::process::Command::new("chmod")
        .arg("+x")
        .arg(&fake)
        .status();
    assert!(chmod.map(|s| s.success()).unwrap_or(false));
    let e = match MlxBackend::with_python(&fake).load_mlx(&spec(env_path("MINERVA_QWEN_HF"))) {
        Ok(_) => panic!("a worker of protocol 99 was accepted"),
        Err(e) => e.to_string(),
    };
    let expected = format!("protocol 99, Minerva speaks {}", minerva_mlx::PROTOCOL);
    assert!(e.contains(&expected), "{e}");
}

/// A Hugging Face vision-language directory (config.json with `vision_config`) is refused with
/// what to do instead, before any Python starts: the MLX backend serves text models only.
#[test]
fn vision_directories_are_refused() {
    let src = env_path("MINERVA_QWEN_HF");
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&src).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name != "config.json" {
            std::os::unix::fs::symlink(entry.path(), dir.path().join(&name)).unwrap();
        }
    }
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(src.join("config.json")).unwrap()).unwrap();
    config["vision_config"] = serde_json::json!({"depth": 2, "hidden_size": 32});
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    let err = match MlxBackend::with_python(env_path("MINERVA_PYTHON"))
        .load(&spec(dir.path().to_path_buf()))
    {
        Err(e) => e,
        Ok(_) => panic!("a vision directory loaded"),
    };
    assert!(matches!(err, CoreError::Load(_)), "{err}");
    assert!(err.to_string().contains("--mmproj"), "{err}");
}
