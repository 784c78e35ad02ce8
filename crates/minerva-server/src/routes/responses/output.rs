//! The output items of a response, built from the chat events of the reply, with the
//! streaming events that announce each step. The same code builds a whole response and a
//! streamed one: the streamed events are what a whole response leaves unsent.

use minerva_engine::ChatEvent;
use minerva_responses::{ContentPart, OutputItem, ReasoningContent, StreamEvent};

/// Output items as they are written. Only the last item can be open (receiving deltas).
pub struct Output {
    pub items: Vec<OutputItem>,
    /// The last item is still open.
    open: bool,
    /// Reasoning pieces streamed (one per token of the reasoning block).
    pub reasoning_pieces: usize,
    /// This response's id without its `resp_` prefix: item ids are made from it.
    stem: String,
}

impl Output {
    pub fn new(stem: &str) -> Self {
        Output {
            items: Vec::new(),
            open: false,
            reasoning_pieces: 0,
            stem: stem.to_string(),
        }
    }

    fn item_id(&self, prefix: &str) -> String {
        format!("{prefix}_{}_{}", self.stem, self.items.len())
    }

    /// The open item, when `is` says it is of the kind wanted.
    fn open_item(&mut self, is: fn(&OutputItem) -> bool) -> Option<(usize, &mut OutputItem)> {
        let at = self.items.len().checked_sub(1)?;
        let item = self.items.last_mut().filter(|i| self.open && is(i))?;
        Some((at, item))
    }

    /// Closes the open item and opens `item`, announcing it; its place in `items`.
    fn start(&mut self, item: OutputItem, events: &mut Vec<StreamEvent>) -> usize {
        events.extend(self.close());
        let at = self.items.len();
        events.push(StreamEvent::OutputItemAdded {
            output_index: at,
            item: item.clone(),
        });
        self.items.push(item);
        self.open = true;
        at
    }

    /// Takes one chat event (not `Done`); returns the events it makes.
    pub fn push(&mut self, event: ChatEvent) -> Vec<StreamEvent> {
        let mut events = Vec::new();
        match event {
            ChatEvent::Content { text, .. } => {
                if self
                    .open_item(|i| matches!(i, OutputItem::Message { .. }))
                    .is_none()
                {
                    let id = self.item_id("msg");
                    let message = OutputItem::Message {
                        id: id.clone(),
                        status: "in_progress",
                        role: "assistant",
                        content: vec![text_part(String::new())],
                    };
                    let at = self.start(message, &mut events);
                    events.push(StreamEvent::ContentPartAdded {
                        item_id: id,
                        output_index: at,
                        content_index: 0,
                        part: text_part(String::new()),
                    });
                }
                if let Some((at, OutputItem::Message { id, content, .. })) =
                    self.open_item(|i| matches!(i, OutputItem::Message { .. }))
                {
                    if let Some(ContentPart::OutputText { text: all, .. }) = content.first_mut() {
                        all.push_str(&text);
                    }
                    events.push(StreamEvent::OutputTextDelta {
                        item_id: id.clone(),
                        output_index: at,
                        content_index: 0,
                        delta: text,
                        logprobs: Vec::new(),
                    });
                }
            }
            ChatEvent::Reasoning { text } => {
                self.reasoning_pieces += 1;
                if self
                    .open_item(|i| matches!(i, OutputItem::Reasoning { .. }))
                    .is_none()
                {
                    let reasoning = OutputItem::Reasoning {
                        id: self.item_id("rs"),
                        summary: Vec::new(),
                        content: vec![ReasoningContent::ReasoningText {
                            text: String::new(),
                        }],
                        status: "in_progress",
                    };
                    self.start(reasoning, &mut events);
                }
                if let Some((at, OutputItem::Reasoning { id, content, .. })) =
                    self.open_item(|i| matches!(i, OutputItem::Reasoning { .. }))
                {
                    if let Some(ReasoningContent::ReasoningText { text: all }) = content.first_mut()
                    {
                        all.push_str(&text);
                    }
                    events.push(StreamEvent::ReasoningTextDelta {
                        item_id: id.clone(),
                        output_index: at,
                        content_index: 0,
                        delta: text,
                    });
                }
            }
            ChatEvent::ToolCallStart { id, name, .. } => {
                let call = OutputItem::FunctionCall {
                    id: self.item_id("fc"),
                    call_id: id,
                    name,
                    arguments: String::new(),
                    status: "in_progress",
                };
                self.start(call, &mut events);
            }
            ChatEvent::ToolCallArgs { delta, .. } => {
                if let Some((at, OutputItem::FunctionCall { id, arguments, .. })) =
                    self.open_item(|i| matches!(i, OutputItem::FunctionCall { .. }))
                {
                    arguments.push_str(&delta);
                    events.push(StreamEvent::FunctionCallArgumentsDelta {
                        item_id: id.clone(),
                        output_index: at,
                        delta,
                    });
                }
            }
            ChatEvent::ToolCallEnd { .. } => events.extend(self.close()),
            ChatEvent::Done { .. } | ChatEvent::Hidden { .. } => {}
        }
        events
    }

    /// Closes the open item, if any: its `done` events.
    pub fn close(&mut self) -> Vec<StreamEvent> {
        let mut events = Vec::new();
        let Some((at, item)) = self.open_item(|_| true) else {
            return events;
        };
        match item {
            OutputItem::Message {
                id,
                status,
                content,
                ..
            } => {
                *status = "completed";
                if let Some(part) = content.first() {
                    let ContentPart::OutputText { text, .. } = part;
                    events.push(StreamEvent::OutputTextDone {
                        item_id: id.clone(),
                        output_index: at,
                        content_index: 0,
                        text: text.clone(),
                        logprobs: Vec::new(),
                    });
                    events.push(StreamEvent::ContentPartDone {
                        item_id: id.clone(),
                        output_index: at,
                        content_index: 0,
                        part: part.clone(),
                    });
                }
            }
            OutputItem::Reasoning {
                id,
                status,
                content,
                ..
            } => {
                *status = "completed";
                if let Some(ReasoningContent::ReasoningText { text }) = content.first() {
                    events.push(StreamEvent::ReasoningTextDone {
                        item_id: id.clone(),
                        output_index: at,
                        content_index: 0,
                        text: text.clone(),
                    });
                }
            }
            OutputItem::FunctionCall {
                id,
                status,
                name,
                arguments,
                ..
            } => {
                *status = "completed";
                events.push(StreamEvent::FunctionCallArgumentsDone {
                    item_id: id.clone(),
                    output_index: at,
                    name: name.clone(),
                    arguments: arguments.clone(),
                });
            }
        }
        events.push(StreamEvent::OutputItemDone {
            output_index: at,
            item: item.clone(),
        });
        self.open = false;
        events
    }
}

fn text_part(text: String) -> ContentPart {
    ContentPart::OutputText {
        text,
        annotations: Vec::new(),
        logprobs: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_open_and_close_in_order() {
        let mut out = Output::new("x");
        let mut names = Vec::new();
        let mut feed = |out: &mut Output, e: ChatEvent| {
            for ev in out.push(e) {
                names.push(ev.name());
            }
        };
        feed(&mut out, ChatEvent::Reasoning { text: "hm".into() });
        feed(
            &mut out,
            ChatEvent::Content {
                text: "Hi".into(),
                tokens: Vec::new(),
            },
        );
        feed(
            &mut out,
            ChatEvent::Content {
                text: "!".into(),
                tokens: Vec::new(),
            },
        );
        feed(
            &mut out,
            ChatEvent::ToolCallStart {
                index: 0,
                id: "call_1".into(),
                name: "f".into(),
            },
        );
        feed(
            &mut out,
            ChatEvent::ToolCallArgs {
                index: 0,
                delta: "{}".into(),
            },
        );
        feed(&mut out, ChatEvent::ToolCallEnd { index: 0 });
        for ev in out.close() {
            names.push(ev.name());
        }
        assert_eq!(
            names,
            [
                "response.output_item.added",
                "response.reasoning_text.delta",
                "response.reasoning_text.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
            ]
        );
        assert_eq!(out.items.len(), 3);
        match &out.items[1] {
            OutputItem::Message {
                content, status, ..
            } => {
                assert_eq!(*status, "completed");
                assert!(
                    matches!(&content[0], ContentPart::OutputText { text, .. } if text == "Hi!")
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(&out.items[2], OutputItem::FunctionCall { call_id, arguments, .. } if call_id == "call_1" && arguments == "{}")
        );
    }
}
