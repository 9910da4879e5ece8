//! Markdown from agents rendered so that it can do nothing: raw HTML is shown as text, links keep
//! only http(s), mailto and same-site targets, and images become links (nothing is loaded from
//! elsewhere). The HTML writer escapes all text, so the output holds only the tags it writes.

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, TagEnd, html};

/// Whether a link target may be followed: http(s), mailto, or a path/anchor on this site.
fn safe_url(url: &str) -> bool {
    let url: String = url.chars().filter(|c| !c.is_whitespace() && !c.is_control()).collect();
    let lower = url.to_ascii_lowercase();
    match lower.split_once(':') {
        Some((scheme, _)) if !scheme.contains(['/', '?', '#']) => {
            matches!(scheme, "http" | "https" | "mailto")
        }
        _ => !lower.starts_with("//") && !lower.starts_with("/\\"),
    }
}

/// The safe HTML of a markdown text.
pub fn to_safe_html(source: &str) -> String {
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    // For each open link or image: whether its start tag was kept (so its end tag is too).
    let mut open: Vec<bool> = Vec::new();
    let events = Parser::new_ext(source, options).filter_map(|event| match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Some(Event::Text(raw)),
        Event::Start(Tag::Link { link_type, dest_url, title, id }) => {
            let keep = safe_url(&dest_url);
            open.push(keep);
            keep.then_some(Event::Start(Tag::Link { link_type, dest_url, title, id }))
        }
        // An image is shown as a link to it, its alt text as the link's text: nothing loads.
        Event::Start(Tag::Image { link_type, dest_url, title, id }) => {
            let keep = safe_url(&dest_url);
            open.push(keep);
            keep.then_some(Event::Start(Tag::Link { link_type, dest_url, title, id }))
        }
        Event::End(TagEnd::Link | TagEnd::Image) => open.pop().unwrap_or(false).then_some(Event::End(TagEnd::Link)),
        Event::FootnoteReference(name) => Some(Event::Text(CowStr::from(format!("[{name}]")))),
        other => Some(other),
    });
    let mut out = String::new();
    html::push_html(&mut out, events);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_is_rendered() {
        let html =
            to_safe_html("# Title\n\n- **bold** item\n\n```rust\nfn main() {}\n```\n\n[docs](https://example.com/d)");
        assert!(html.contains("<h1>Title</h1>") && html.contains("<strong>bold</strong>"), "{html}");
        assert!(html.contains("<pre><code class=\"language-rust\">fn main() {}"), "{html}");
        assert!(html.contains("<a href=\"https://example.com/d\">docs</a>"), "{html}");
    }

    #[test]
    fn nothing_in_it_can_run_or_load() {
        let source = "<script>alert(1)</script>\n\nHi <img src=x onerror=alert(2)> there\n\n\
            [click](javascript:alert(3)) [tab]( JaVaScRiPt:alert(4)) [data](data:text/html,x) [vb](vbscript:x)\n\n\
            ![pixel](https://tracker.example/p.png) <a href=\"javascript:alert(5)\">a</a>\n\n\
            <iframe src=\"https://evil.example\"></iframe> <style>body{}</style>\n\n[ok](/dashboard) [mail](mailto:a@b.c)";
        let html = to_safe_html(source);
        // No tag but the writer's own: raw HTML stays text (its quotes need no escaping there).
        for bad in
            ["<script", "<img", "<iframe", "<style", "<a href=\"javascript", "<a href=\"data:", "<a href=\"vbscript"]
        {
            assert!(!html.to_ascii_lowercase().contains(bad), "{bad} in {html}");
        }
        assert!(html.contains("&lt;img src=x onerror=alert(2)&gt;"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "raw HTML is shown as text: {html}");
        assert!(
            html.contains("<a href=\"https://tracker.example/p.png\">pixel</a>"),
            "an image becomes a link: {html}"
        );
        assert!(html.contains("<a href=\"/dashboard\">ok</a>") && html.contains("href=\"mailto:a@b.c\""), "{html}");
        assert!(html.contains("click") && !html.contains(">click</a>"), "an unsafe link keeps its text only: {html}");
    }

    #[test]
    fn only_safe_targets_are_links() {
        for ok in ["https://a.b/c", "http://a.b", "mailto:x@y.z", "/dashboard/tasks", "#top", "notes.md", "a/b?c=d:e"] {
            assert!(safe_url(ok), "{ok}");
        }
        for bad in [
            "javascript:x",
            "JAVASCRIPT:x",
            " java\tscript:x",
            "data:text/html,x",
            "file:///etc",
            "//evil.example",
            "/\\evil",
        ] {
            assert!(!safe_url(bad), "{bad}");
        }
    }
}
