//! A chat reply with its reasoning block: the block is split off first (see
//! [`minerva_core::ReasoningSplitter`] for the rules), and only the answer is read for tool
//! calls — a call written while reasoning is part of the reasoning, as in llama.cpp.

use crate::{ReplyEvent, ReplyParser};
use minerva_core::{ReasoningPiece, ReasoningSpec, ReasoningSplitter};

/// Whether a chat template belongs to a model that reasons in `<think>…</think>` blocks: it
/// writes or strips them (Qwen3, QwQ, DeepSeek-R1 distills) or takes `enable_thinking`.
pub fn template_thinks(template: &str) -> bool {
    template.contains("<think>") || template.contains("</think>")
}

/// Whether a rendered prompt leaves a reasoning block open for the reply (the template ended
/// the generation prompt with `<think>`, as DeepSeek-R1's newer templates do).
pub fn prompt_opens_block(prompt: &str, spec: &ReasoningSpec) -> bool {
    prompt.trim_end().ends_with(spec.open.as_str())
}

/// Splits the reasoning off a reply, then parses the answer for tool calls. Reasoning comes
/// out as [`ReplyEvent::Reasoning`].
#[derive(Debug)]
pub struct ChatParser {
    reasoning: Option<ReasoningSplitter>,
    reply: ReplyParser,
}

impl ChatParser {
    /// A parser for a reply that may hold a reasoning block as `reasoning` describes (`None`:
    /// no block is looked for; the whole reply is answer).
    pub fn new(reasoning: Option<&ReasoningSpec>, reply: ReplyParser) -> Self {
        ChatParser {
            reasoning: reasoning.map(ReasoningSpec::splitter),
            reply,
        }
    }

    /// Tool calls read so far.
    pub fn calls(&self) -> usize {
        self.reply.calls()
    }

    /// Feeds the next piece of the reply.
    pub fn push(&mut self, text: &str) -> Vec<ReplyEvent> {
        match self.reasoning.as_mut() {
            None => self.reply.push(text),
            Some(splitter) => {
                let pieces = splitter.push(text);
                self.route(pieces)
            }
        }
    }

    /// The end of the reply.
    pub fn finish(&mut self) -> Vec<ReplyEvent> {
        let mut events = match self.reasoning.as_mut() {
            None => Vec::new(),
            Some(splitter) => {
                let pieces = splitter.finish();
                self.route(pieces)
            }
        };
        events.extend(self.reply.finish());
        events
    }

    fn route(&mut self, pieces: Vec<ReasoningPiece>) -> Vec<ReplyEvent> {
        let mut events = Vec::new();
        for piece in pieces {
            match piece {
                ReasoningPiece::Reasoning(text) => events.push(ReplyEvent::Reasoning(text)),
                ReasoningPiece::Answer(text) => events.extend(self.reply.push(&text)),
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ToolFormat;

    fn parse(spec: Option<&ReasoningSpec>, text: &str, piece: usize) -> Vec<ReplyEvent> {
        let mut p = ChatParser::new(
            spec,
            ReplyParser::new(ToolFormat::Hermes, vec!["get_weather".into()]),
        );
        let chars: Vec<char> = text.chars().collect();
        let mut events = Vec::new();
        for chunk in chars.chunks(piece) {
            events.extend(p.push(&chunk.iter().collect::<String>()));
        }
        events.extend(p.finish());
        // Join neighbouring pieces of the same kind.
        let mut joined: Vec<ReplyEvent> = Vec::new();
        for e in events {
            match (joined.last_mut(), e) {
                (Some(ReplyEvent::Reasoning(a)), ReplyEvent::Reasoning(b)) => a.push_str(&b),
                (Some(ReplyEvent::Content(a)), ReplyEvent::Content(b)) => a.push_str(&b),
                (
                    Some(ReplyEvent::ToolCallArgs { delta: a, .. }),
                    ReplyEvent::ToolCallArgs { delta: b, .. },
                ) => a.push_str(&b),
                (_, e) => joined.push(e),
            }
        }
        for e in &mut joined {
            if let ReplyEvent::ToolCallStart { id, .. } = e {
                *id = "call".into();
            }
        }
        joined
    }

    /// A reply in the shape Qwen3's model card shows (a think block, then a Hermes call); the
    /// text is written for this test.
    #[test]
    fn reasoning_then_a_call() {
        let spec = ReasoningSpec::think(false, None);
        let text = "<think>\nThe user wants the weather; I should call get_weather with Paris. <tool_call> is how.\n</think>\n\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>";
        for piece in 1..=7 {
            assert_eq!(
                parse(Some(&spec), text, piece),
                vec![
                    ReplyEvent::Reasoning(
                        "The user wants the weather; I should call get_weather with Paris. <tool_call> is how."
                            .into()
                    ),
                    ReplyEvent::ToolCallStart {
                        index: 0,
                        id: "call".into(),
                        name: "get_weather".into()
                    },
                    ReplyEvent::ToolCallArgs {
                        index: 0,
                        delta: "{\"city\": \"Paris\"}".into()
                    },
                    ReplyEvent::ToolCallEnd { index: 0 },
                ],
                "pieces of {piece}"
            );
        }
    }

    /// A bare call right after the block is still a call (the answer starts with it).
    #[test]
    fn a_bare_call_after_reasoning() {
        let spec = ReasoningSpec::think(true, None);
        let text =
            "Paris.\n</think>\n\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}";
        let events = parse(Some(&spec), text, 3);
        assert_eq!(events[0], ReplyEvent::Reasoning("Paris.".into()));
        assert!(
            matches!(&events[1], ReplyEvent::ToolCallStart { name, .. } if name == "get_weather")
        );
    }

    #[test]
    fn without_a_spec_the_block_is_content() {
        let text = "<think>x</think>Hi";
        assert_eq!(
            parse(None, text, 2),
            vec![ReplyEvent::Content("<think>x</think>Hi".into())]
        );
    }

    #[test]
    fn detection() {
        assert!(template_thinks("{{ '<think>\\n' }}"));
        assert!(template_thinks("{% set c = c.split('</think>')[-1] %}"));
        assert!(!template_thinks("<|im_start|>assistant"));
        let spec = ReasoningSpec::think(false, None);
        assert!(prompt_opens_block("<|Assistant|><think>\n", &spec));
        assert!(!prompt_opens_block("<think>\n\n</think>\n\n", &spec));
    }
}
