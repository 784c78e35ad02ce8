//! From token bytes to client text: whole UTF-8 characters only, cut at stop strings.
//!
//! A token may end in the middle of a multi-byte character (byte-level BPE splits emoji and
//! CJK across tokens), and a stop string may arrive spread over several tokens. The assembler
//! holds back both, so a client never sees half a character nor the beginning of a stop
//! string that later completes.

/// What one pushed token produced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pushed {
    /// Text that can be sent now (may be empty while something is held back).
    pub text: String,
    /// A stop string matched: `text` is everything before it and the generation is over.
    pub stopped: bool,
    /// Which stop string matched (the one that starts first; the first given on a tie).
    pub matched: Option<String>,
}

/// Accumulates token bytes and releases text that is safe to send.
#[derive(Debug, Clone, Default)]
pub struct TextAssembler {
    stops: Vec<String>,
    /// Bytes of an incomplete UTF-8 sequence.
    partial: Vec<u8>,
    /// Decoded text not yet released because it may begin a stop string.
    held: String,
}

impl TextAssembler {
    /// `stops`: strings that end the generation when they appear in the output (empty ones are ignored).
    pub fn new(stops: impl IntoIterator<Item = String>) -> Self {
        TextAssembler {
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
            partial: Vec::new(),
            held: String::new(),
        }
    }

    /// Adds one token's bytes.
    pub fn push(&mut self, bytes: &[u8]) -> Pushed {
        self.partial.extend_from_slice(bytes);
        let decoded = decode_complete(&mut self.partial);
        self.held.push_str(&decoded);
        if let Some((pos, stop)) = self.earliest_stop() {
            let text = self.held[..pos].to_string();
            let matched = Some(self.stops[stop].clone());
            self.held.clear();
            self.partial.clear();
            return Pushed {
                text,
                stopped: true,
                matched,
            };
        }
        let keep = self.stop_prefix_len();
        let release = self.held.len() - keep;
        let text: String = self.held.drain(..release).collect();
        Pushed {
            text,
            stopped: false,
            matched: None,
        }
    }

    /// The end of generation: everything still held (an incomplete character becomes U+FFFD).
    pub fn finish(&mut self) -> String {
        let mut text = std::mem::take(&mut self.held);
        if !self.partial.is_empty() {
            text.push_str(&String::from_utf8_lossy(&self.partial));
            self.partial.clear();
        }
        text
    }

    /// Where the first stop string in `held` starts, and which one it is.
    fn earliest_stop(&self) -> Option<(usize, usize)> {
        self.stops
            .iter()
            .enumerate()
            .filter_map(|(i, s)| self.held.find(s.as_str()).map(|pos| (pos, i)))
            .min()
    }

    /// Length of the longest suffix of `held` that is a proper prefix of some stop string.
    fn stop_prefix_len(&self) -> usize {
        let mut best = 0;
        for stop in &self.stops {
            let max = stop.len().saturating_sub(1).min(self.held.len());
            for len in (best + 1..=max).rev() {
                let start = self.held.len() - len;
                if self.held.is_char_boundary(start)
                    && stop.as_bytes().starts_with(&self.held.as_bytes()[start..])
                {
                    best = len;
                    break;
                }
            }
        }
        best
    }
}

/// Decodes the complete UTF-8 prefix of `buf`, leaving an incomplete trailing sequence in it.
/// Invalid bytes (not merely incomplete) become U+FFFD.
fn decode_complete(buf: &mut Vec<u8>) -> String {
    let mut out = String::new();
    let mut rest: &[u8] = buf;
    loop {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.push_str(s);
                rest = &[];
                break;
            }
            Err(e) => {
                let (valid, after) = rest.split_at(e.valid_up_to());
                out.push_str(&String::from_utf8_lossy(valid));
                match e.error_len() {
                    Some(n) => {
                        out.push(char::REPLACEMENT_CHARACTER);
                        rest = &after[n..];
                    }
                    None => {
                        rest = after;
                        break;
                    }
                }
            }
        }
    }
    let keep = rest.to_vec();
    *buf = keep;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&[u8]]) -> (Vec<String>, bool, String) {
        let mut a = TextAssembler::new(stops.iter().map(|s| s.to_string()));
        let mut out = Vec::new();
        for p in pieces {
            let r = a.push(p);
            out.push(r.text);
            if r.stopped {
                return (out, true, String::new());
            }
        }
        let tail = a.finish();
        (out, false, tail)
    }

    #[test]
    fn multibyte_character_split_across_tokens_is_held_until_whole() {
        let snake = "🐍".as_bytes();
        let (out, stopped, tail) = run(&[], &[b"a", &snake[..2], &snake[2..3], &snake[3..], b"b"]);
        assert_eq!(out, vec!["a", "", "", "🐍", "b"]);
        assert!(!stopped);
        assert_eq!(tail, "");
    }

    #[test]
    fn stop_string_across_tokens_never_leaks() {
        let (out, stopped, _) = run(&["END"], &[b"hello E", b"N", b"D more"]);
        assert_eq!(out, vec!["hello ", "", ""]);
        assert!(stopped);
    }

    #[test]
    fn false_stop_prefix_is_released() {
        let (out, stopped, tail) = run(&["END"], &[b"E", b"N", b"X"]);
        assert_eq!(out, vec!["", "", "ENX"]);
        assert!(!stopped);
        assert_eq!(tail, "");
    }

    #[test]
    fn earliest_of_several_stops_wins() {
        let (out, stopped, _) = run(&["world", "lo w"], &[b"hello world"]);
        assert_eq!(out, vec!["hel"]);
        assert!(stopped);
    }

    #[test]
    fn held_prefix_flushes_at_end() {
        let (out, stopped, tail) = run(&["\n\n"], &[b"line\n"]);
        assert_eq!(out, vec!["line"]);
        assert!(!stopped);
        assert_eq!(tail, "\n");
    }

    #[test]
    fn invalid_bytes_become_replacement_character() {
        let (out, _, tail) = run(&[], &[b"a\xffb", b"\xe4\xb8"]);
        assert_eq!(out, vec!["a\u{fffd}b", ""]);
        assert_eq!(tail, "\u{fffd}");
    }

    #[test]
    fn stop_inside_multibyte_text() {
        let (out, stopped, _) = run(&["世界"], &["你好世".as_bytes(), "界!".as_bytes()]);
        assert_eq!(out, vec!["你好", ""]);
        assert!(stopped);
    }
}
