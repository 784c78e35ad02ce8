//! Source rewrites for jinja2 extensions minijinja lacks.
//!
//! transformers loads its `AssistantTracker` extension, whose `{% generation %}` ...
//! `{% endgeneration %}` block only marks assistant text for training masks and renders its
//! body unchanged. minijinja has no custom tags, so each tag is rewritten to `{% if true %}` /
//! `{% endif %}` with the same whitespace-control marks: both are block tags, so trim_blocks,
//! lstrip_blocks, `{%-` and `-%}` act on them exactly as on the original.

/// One parsed block tag: where it starts and ends, its whitespace marks and its keyword.
struct Tag<'a> {
    end: usize,
    open_mark: &'a str,
    close_mark: &'a str,
    keyword: &'a str,
}

/// Parses `{%[-+]? keyword ...` at `start` (which points at `{%`) far enough to know the
/// keyword; `end` is set only for tags that are exactly `{% keyword %}`.
fn parse_tag(src: &str, start: usize) -> Tag<'_> {
    let bytes = src.as_bytes();
    let mut i = start + 2;
    let open_mark = match bytes.get(i) {
        Some(b'-') | Some(b'+') => {
            i += 1;
            &src[i - 1..i]
        }
        _ => "",
    };
    while bytes.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
        i += 1;
    }
    let kw_start = i;
    while bytes
        .get(i)
        .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
    {
        i += 1;
    }
    let keyword = &src[kw_start..i];
    while bytes.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
        i += 1;
    }
    let close_mark = match bytes.get(i) {
        Some(b'-') | Some(b'+') => {
            i += 1;
            &src[i - 1..i]
        }
        _ => "",
    };
    let end = if bytes.get(i..i + 2) == Some(b"%}") {
        i + 2
    } else {
        0
    };
    Tag {
        end,
        open_mark,
        close_mark,
        keyword,
    }
}

/// Rewrites `{% generation %}` and `{% endgeneration %}` (outside `{% raw %}` blocks) into
/// equivalent `if` blocks.
pub(crate) fn rewrite_generation_tags(src: &str) -> String {
    if !src.contains("generation") {
        return src.to_string();
    }
    let mut out = String::with_capacity(src.len());
    let mut pos = 0;
    let mut in_raw = false;
    while let Some(found) = src[pos..].find("{%") {
        let start = pos + found;
        let tag = parse_tag(src, start);
        let replacement = match (in_raw, tag.keyword, tag.end) {
            (false, "raw", _) => {
                in_raw = true;
                None
            }
            (true, "endraw", _) => {
                in_raw = false;
                None
            }
            (false, "generation", end) if end > 0 => Some("if true"),
            (false, "endgeneration", end) if end > 0 => Some("endif"),
            _ => None,
        };
        match replacement {
            Some(body) => {
                out.push_str(&src[pos..start]);
                out.push_str("{%");
                out.push_str(tag.open_mark);
                out.push(' ');
                out.push_str(body);
                out.push(' ');
                out.push_str(tag.close_mark);
                out.push_str("%}");
                pos = tag.end;
            }
            None => {
                out.push_str(&src[pos..start + 2]);
                pos = start + 2;
            }
        }
    }
    out.push_str(&src[pos..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_generation_keeping_marks() {
        assert_eq!(
            rewrite_generation_tags("a{%- generation %}b{% endgeneration -%}c"),
            "a{%- if true %}b{% endif -%}c"
        );
        assert_eq!(
            rewrite_generation_tags("{% raw %}{% generation %}{% endraw %}{%generation%}"),
            "{% raw %}{% generation %}{% endraw %}{% if true %}"
        );
        assert_eq!(
            rewrite_generation_tags("{{ generation }}"),
            "{{ generation }}"
        );
    }
}
