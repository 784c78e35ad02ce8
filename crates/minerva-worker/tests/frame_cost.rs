//! The latency one token's event adds crossing the worker boundary, without a model: encode,
//! write to the socket, read and decode on a reader thread, hand to the caller's channel (what
//! the worker's pump and the parent's reader do). Ping-pong, so each number is a full one-way trip.
//!
//! `cargo test -p minerva-worker --test frame_cost -- --ignored --nocapture`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use minerva_core::{GenEvent, TokenOut};
use minerva_worker::protocol::{encode, read_message, FromWorker};
use std::io::{BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Instant;

#[test]
#[ignore = "a benchmark: run it with --ignored --nocapture"]
fn one_token_event_crossing_the_boundary() {
    const N: usize = 20_000;
    let (a, b) = UnixStream::pair().unwrap();
    let mut out = a;
    let (events, mut stream) = tokio::sync::mpsc::unbounded_channel();
    let reader = std::thread::spawn(move || {
        let mut input = BufReader::new(b);
        for _ in 0..N {
            let FromWorker::Event { event, .. } = read_message(&mut input).unwrap() else {
                panic!("not an event")
            };
            events.send(event).unwrap();
        }
    });
    let event = GenEvent::Token(TokenOut {
        id: 12345,
        bytes: b" lighthouse".to_vec(),
        logprob: None,
        top_logprobs: vec![],
    });
    let mut trips = Vec::with_capacity(N);
    for _ in 0..N {
        let start = Instant::now();
        let frame = encode(&FromWorker::Event {
            id: 7,
            event: event.clone(),
        })
        .unwrap();
        out.write_all(&frame).unwrap();
        stream.blocking_recv().unwrap();
        trips.push(start.elapsed().as_secs_f64() * 1e6);
    }
    reader.join().unwrap();
    trips.sort_by(f64::total_cmp);
    println!(
        "one token event across the boundary: median {:.1} us, p90 {:.1} us, p99 {:.1} us",
        trips[N / 2],
        trips[N * 9 / 10],
        trips[N * 99 / 100]
    );
}
