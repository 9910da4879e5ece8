//! A task's artifacts on its page: markdown rendered safely, text and code shown as code, and
//! every one downloadable (through the same `artifacts::content_of` as the API's download, so
//! only the task's participants get it) with its size and type.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};

use super::pages::{as_caller, message_of};
use super::{internal, require_browser};
use crate::auth::Caller;
use crate::state::AppState;
use crate::tasks::artifacts;

/// Larger artifacts are offered as downloads only.
const SHOWN_INLINE_BYTES: i64 = 100 * 1024;

pub enum Body {
    /// Safe HTML from markdown.
    Markdown(String),
    Code(String),
    Text(String),
    /// Binary, or too large to show: download it.
    None,
}

pub struct ArtifactView {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub content_type: String,
    pub size: String,
    pub body: Body,
}

/// `1.5 KiB`, `312 bytes`.
pub fn size_text(bytes: i64) -> String {
    match bytes {
        b if b < 1024 => format!("{b} bytes"),
        b if b < 1024 * 1024 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)),
    }
}

fn body_of(kind: &str, content_type: &str, bytes: Vec<u8>) -> Body {
    let Ok(text) = String::from_utf8(bytes) else { return Body::None };
    let content_type = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match kind {
        "markdown" => Body::Markdown(super::markdown::to_safe_html(&text)),
        "text" | "link" if content_type == "text/markdown" => Body::Markdown(super::markdown::to_safe_html(&text)),
        "text" | "link" => Body::Text(text),
        "json" => Body::Code(
            serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| serde_json::to_string_pretty(&v).ok())
                .unwrap_or(text),
        ),
        // HTML is shown as its source, never rendered.
        "code_block" | "diff" | "html" => Body::Code(text),
        _ if content_type.starts_with("text/") || content_type == "application/json" => Body::Code(text),
        _ => Body::None,
    }
}

/// The artifacts of a task the caller takes part in, each with what the page shows of it.
pub async fn of_task(state: &AppState, caller: &Caller, task_id: &str) -> Result<Vec<ArtifactView>, Response> {
    let list = artifacts::list(&state.db, task_id).await.map_err(internal)?;
    let mut out = Vec::with_capacity(list.len());
    for a in list {
        let body = if a.size_bytes <= SHOWN_INLINE_BYTES {
            let file = artifacts::content_of(state, caller, &a.id).await.map_err(|e| internal(message_of(&e)))?;
            body_of(&a.artifact_type, &a.content_type, file.bytes)
        } else {
            Body::None
        };
        out.push(ArtifactView {
            size: size_text(a.size_bytes),
            id: a.id,
            name: a.name,
            kind: a.artifact_type,
            content_type: a.content_type,
            body,
        });
    }
    Ok(out)
}

/// `GET /dashboard/artifacts/:id/download`: the file as the API serves it (an attachment).
pub async fn download(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let b = match require_browser(&state, &headers).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    match artifacts::content_of(&state, &as_caller(&b), &id).await {
        Ok(file) => artifacts::file_response(&file.content_type, &file.name, file.bytes),
        // Someone else's artifact is as unknown as a missing one.
        Err(_) => (StatusCode::NOT_FOUND, Html("<h1>Not found</h1>")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(size_text(312), "312 bytes");
        assert_eq!(size_text(1536), "1.5 KiB");
        assert_eq!(size_text(3 * 1024 * 1024), "3.0 MiB");
    }

    #[test]
    fn each_kind_is_shown_as_what_it_is() {
        assert!(
            matches!(body_of("markdown", "text/markdown", b"# Hi".to_vec()), Body::Markdown(h) if h.contains("<h1>"))
        );
        assert!(matches!(body_of("html", "text/html", b"<b>x</b>".to_vec()), Body::Code(c) if c == "<b>x</b>"));
        assert!(
            matches!(body_of("json", "application/json", b"{\"a\":1}".to_vec()), Body::Code(c) if c.contains("\"a\": 1"))
        );
        assert!(matches!(body_of("image", "image/png", vec![0x89, 0x50, 0xff]), Body::None));
        assert!(matches!(body_of("file", "application/octet-stream", b"text".to_vec()), Body::None));
    }
}
