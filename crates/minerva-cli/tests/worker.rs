//! A model in a worker process behaves as it does in-process, and a worker's death costs only
//! its own requests. Needs `MINERVA_QWEN_GGUF` and `MINERVA_GEMMA_GGUF`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{drain, greedy, qwen, spec, workers};
use minerva_core::{Backend, CoreError, FinishReason, GenEvent, Model, SlotState};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn in_process() -> Arc<dyn Model> {
    minerva_llama::LlamaCppBackend::new()
        .load(&spec(qwen()))
        .expect("in-process load")
}

fn remote() -> Arc<dyn Model> {
    workers().load(&spec(qwen())).expect("worker load")
}

fn until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    done()
}

fn is_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn a_worker_tokenizes_renders_and_generates_as_in_process() {
    let local = in_process();
    let remote = remote();
    let pid = remote.process_id().expect("a worker pid");
    assert_ne!(pid, std::process::id());
    assert!(is_alive(pid));
    assert_eq!(local.process_id(), None);
    assert_eq!(remote.info().n_vocab, local.info().n_vocab);
    assert_eq!(remote.info().chat_template, local.info().chat_template);
    assert!(
        remote.memory_bytes() > 10 << 20,
        "{}",
        remote.memory_bytes()
    );

    for text in [
        "Hello, world!",
        "日本語のテキストと中文",
        "emoji 🦀🎉👩‍👩‍👧 mixed",
        "  leading spaces\n\ttabs<|im_start|>",
        "",
    ] {
        for (add, parse) in [(true, true), (false, false)] {
            let want = local.tokenize(text, add, parse).unwrap();
            assert_eq!(remote.tokenize(text, add, parse).unwrap(), want, "{text:?}");
            let pieces = local.token_bytes_many(&want, parse).unwrap();
            assert_eq!(remote.token_bytes_many(&want, parse).unwrap(), pieces);
            for (&t, piece) in want.iter().zip(&pieces) {
                assert_eq!(&remote.token_bytes(t, parse).unwrap(), piece);
            }
        }
    }
    let bad = remote.token_bytes(-1, false).unwrap_err();
    assert!(
        matches!(
            bad,
            CoreError::InvalidRequest {
                param: Some("tokens"),
                ..
            }
        ),
        "{bad:?}"
    );

    let messages =
        vec![serde_json::json!({"role": "user", "content": "Write a haiku about Rust."})];
    let text = local
        .render_chat(&messages, None, &Default::default(), true)
        .unwrap();
    assert_eq!(
        remote
            .render_chat(&messages, None, &Default::default(), true)
            .unwrap(),
        text
    );

    let prompt = local.tokenize(&text, false, true).unwrap();
    let want = drain(local.generate(greedy(prompt.clone(), 24, false)).unwrap());
    let got = drain(remote.generate(greedy(prompt, 24, false)).unwrap());
    assert!(want.error.is_none() && got.error.is_none(), "{got:?}");
    assert!(!want.tokens.is_empty());
    assert_eq!(got.tokens, want.tokens);
    assert_eq!(got.finish, want.finish);
}

#[test]
fn refusals_come_back_before_any_token() {
    let remote = remote();
    let empty = remote.generate(greedy(vec![], 4, false)).unwrap_err();
    assert!(
        matches!(
            empty,
            CoreError::InvalidRequest {
                param: Some("prompt"),
                ..
            }
        ),
        "{empty:?}"
    );
    let long = remote
        .generate(greedy(vec![1; 5000], 4, false))
        .unwrap_err();
    assert!(
        matches!(long, CoreError::ContextOverflow { .. }),
        "{long:?}"
    );
    assert!(remote.failure().is_none());
}

#[test]
fn concurrent_generations_in_one_worker_both_complete() {
    let remote = remote();
    let a = remote.tokenize("fn main() {", true, false).unwrap();
    let b = remote
        .tokenize("The capital of France is", true, false)
        .unwrap();
    let first = remote.generate(greedy(a, 16, true)).unwrap();
    let second = remote.generate(greedy(b, 16, true)).unwrap();
    let (first, second) = std::thread::scope(|s| {
        let first = s.spawn(|| drain(first));
        (first.join().unwrap(), drain(second))
    });
    for out in [first, second] {
        assert!(out.error.is_none(), "{out:?}");
        assert_eq!(out.tokens.len(), 16);
        assert_eq!(out.finish, Some(FinishReason::Length));
    }
}

#[test]
fn dropping_a_stream_cancels_the_generation_in_the_worker() {
    let remote = remote();
    let prompt = remote
        .tokenize("Count from one to a thousand:", true, false)
        .unwrap();
    let mut stream = remote.generate(greedy(prompt, 900, true)).unwrap();
    let first = stream.blocking_recv();
    assert!(matches!(first, Some(Ok(GenEvent::Token(_)))), "{first:?}");
    let busy = |m: &dyn Model| m.status().slots.iter().any(|s| s.state != SlotState::Idle);
    // The backend publishes its status once per decode step.
    assert!(
        until(Duration::from_secs(3), || busy(remote.as_ref())),
        "{:?}",
        remote.status()
    );
    drop(stream);
    assert!(
        until(Duration::from_secs(15), || !busy(remote.as_ref())),
        "still running: {:?}",
        remote.status()
    );
}

#[test]
fn a_killed_worker_fails_its_streams_and_the_model_loads_again() {
    let remote = remote();
    let pid = remote.process_id().unwrap();
    let prompt = remote.tokenize("Once upon a time", true, false).unwrap();
    let mut stream = remote.generate(greedy(prompt.clone(), 900, true)).unwrap();
    assert!(matches!(
        stream.blocking_recv(),
        Some(Ok(GenEvent::Token(_)))
    ));
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = drain(stream);
    let Some(CoreError::Backend(reason)) = &out.error else {
        panic!("the stream did not end with a backend error: {out:?}")
    };
    assert!(
        reason.contains("worker") && reason.contains("signal 9"),
        "{reason}"
    );
    assert_eq!(remote.failure().as_deref(), Some(reason.as_str()));
    let started = Instant::now();
    let later = remote.tokenize("hi", false, false).unwrap_err();
    assert!(matches!(later, CoreError::Backend(_)), "{later:?}");
    assert!(remote.generate(greedy(prompt.clone(), 4, false)).is_err());
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(
        until(Duration::from_secs(3), || !is_alive(pid)),
        "not reaped"
    );

    let again = workers().load(&spec(qwen())).unwrap();
    assert_ne!(again.process_id(), Some(pid));
    let out = drain(again.generate(greedy(prompt, 4, true)).unwrap());
    assert_eq!(out.tokens.len(), 4, "{out:?}");
}

#[test]
fn a_truncated_gguf_is_a_clean_load_error() {
    let gemma = common::model("MINERVA_GEMMA_GGUF");
    let bytes = std::fs::read(&gemma).unwrap();
    let dir = std::env::temp_dir().join(format!("minerva-truncated-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for keep in [4096, bytes.len() / 2, bytes.len() - 1] {
        let path = dir.join(format!("truncated-{keep}.gguf"));
        std::fs::write(&path, &bytes[..keep]).unwrap();
        let err = workers().load(&spec(path)).err().expect("a load error");
        assert!(matches!(err, CoreError::Load(_)), "{keep}: {err:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn dropping_the_model_ends_its_worker_process() {
    let remote = remote();
    let pid = remote.process_id().unwrap();
    assert!(remote.tokenize("x", false, false).is_ok());
    drop(remote);
    assert!(
        until(Duration::from_secs(5), || !is_alive(pid)),
        "worker {pid} still there"
    );
}

#[test]
fn a_worker_that_aborts_is_a_load_error_naming_the_signal() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("minerva-abort-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("aborts");
    std::fs::write(&exe, "#!/bin/sh\nkill -ABRT $$\n").unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = minerva_worker::ProcessBackend::new(&exe)
        .load(&spec(qwen()))
        .err()
        .expect("a load error");
    let _ = std::fs::remove_dir_all(&dir);
    let CoreError::Load(message) = err else {
        panic!("not a load error: {err:?}")
    };
    assert!(message.contains("signal 6 (SIGABRT)"), "{message}");
}
